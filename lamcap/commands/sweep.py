"""`lamcap sweep`: search every (cell, seed)'s SAT/UNSAT threshold on Ray, into a Zarr store.

Everything is validated (spec, every cell, an existing store's spec) before Ray starts or the
store is touched. Running the same command on an existing store resumes it.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys

from lamcap.errors import InvalidInput
from lamcap.orchestrator.spec.presets import PRESETS


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("sweep", help="search SAT/UNSAT thresholds over a grid of cells (Ray)",
                                   description=__doc__)
    parser.add_argument("spec", nargs="?", default=None, help="sweep spec TOML file (keys of SweepSpec.to_dict)")
    parser.add_argument("--preset", default=None, help="start from a named spec: " + ", ".join(PRESETS))
    parser.add_argument("--store", required=True, help="Zarr store directory to write or resume")
    parser.add_argument("--address", default=None,
                        help="join a Ray cluster ('auto' or ray://host:port); default: embedded local Ray")
    parser.add_argument("--workers", type=int, default=None,
                        help="actors (default: one per GPU, or one per CPU core without GPUs)")
    parser.add_argument("--actors-per-gpu", default="1", metavar="K|auto",
                        help="probe actors sharing each GPU, each with 1/K of its memory (default 1; auto: the "
                             "most, up to 8, that keep every cell's competitors held as on a whole GPU)")
    add_spec_flags(parser)
    parser.add_argument("--device", default=None, help="cpu, cuda or auto (default: the spec's, usually auto)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("--flush-seconds", type=float, default=None,
                        help="most seconds between two store commits (default 10; a batch also commits "
                             "every 64 probes); what a crash can lose")
    parser.set_defaults(run=run)
    return parser


def add_spec_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that override a spec's keys (`lamcap sweep` and `lamcap plan`; overrides_from reads them)."""
    parser.add_argument("--problems", nargs="+", default=None, help="op and/or dp")
    parser.add_argument("--solvers", nargs="+", default=None, help="adam, hebbian and/or lp")
    parser.add_argument("--rho", nargs="+", type=float, default=None, help="rank fractions in (0, 1]")
    parser.add_argument("--d", nargs="+", type=int, default=None, help="dimensions (>= 2)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell")
    parser.add_argument("--steps", type=int, default=None, help="Adam step budget (max_steps)")
    parser.add_argument("--lr", type=float, default=None, help="Adam peak learning rate")
    parser.add_argument("--curve-points", type=int, default=None, help="extra loads per cell for accuracy curves")


def overrides_from(args: argparse.Namespace) -> dict:
    """Flag values as load_spec overrides (unset flags are None and ignored)."""
    out = {"problems": args.problems, "solvers": args.solvers, "rho": args.rho, "d": args.d,
           "seeds": args.seeds, "steps": args.steps, "lr": args.lr, "device": args.device}
    if args.curve_points is not None:
        out["search"] = {"curve_points": args.curve_points}
    return {k: v for k, v in out.items() if v is not None}


def build_spec(args: argparse.Namespace):
    """The validated SweepSpec of a command line; InvalidInput naming any bad value."""
    from lamcap.orchestrator.spec import load_spec

    if args.spec is None and args.preset is None and not (args.problems and args.solvers and args.d):
        raise InvalidInput("give a spec file, --preset NAME, or at least --problems, --solvers and --d")
    if args.workers is not None and args.workers < 1:
        raise InvalidInput(f"--workers {args.workers!r} must be >= 1")
    if args.flush_seconds is not None and not (math.isfinite(args.flush_seconds) and args.flush_seconds > 0):
        raise InvalidInput(f"--flush-seconds {args.flush_seconds!r} must be a positive number")
    actors_per_gpu(args)
    return load_spec(args.spec, args.preset, overrides_from(args))


def actors_per_gpu(args: argparse.Namespace) -> int | str:
    """--actors-per-gpu as an integer >= 1 or 'auto'; InvalidInput naming anything else."""
    value = getattr(args, "actors_per_gpu", "1")
    if value == "auto":
        return value
    try:
        k = int(value)
    except (TypeError, ValueError):
        k = 0
    if k < 1 or str(k) != str(value).strip():
        raise InvalidInput(f"--actors-per-gpu {value!r} must be an integer >= 1 or 'auto'")
    return k


def run(args: argparse.Namespace) -> int:
    from lamcap import api

    report = api.sweep(build_spec(args), args.store, address=args.address, workers=args.workers,
                       progress=not args.no_progress, flush_seconds=args.flush_seconds,
                       ray_logs=getattr(args, "verbose", False), actors_per_gpu=actors_per_gpu(args))
    print(format_table(report.thresholds))
    print(f"\n{report.probes_run} probes run, {report.probes_reused} reused from the store, "
          f"{report.retries} retried; actor utilisation {report.utilisation:.0%}; store: {args.store}")
    if report.interrupted:
        print("lamcap sweep: interrupted; finished probes are in the store, run the same command to resume",
              file=sys.stderr)
        return 130
    return 0


def _theory_columns(problem: str, solver: str, rho: float, d: int) -> tuple[float, float]:
    """(finite-size alpha prediction, asymptotic alpha_c) for a cell; NaN where theory has none."""
    from lamcap import predictions as theory

    kind = "hebbian" if solver == "hebbian" else "optimal"
    rank = theory.rank_of(rho, d)
    try:
        finite = theory.p_to_alpha(theory.predicted_critical_p(d, rank / d, kind, problem), d)
    except InvalidInput:  # a cell the theory cannot place: a table entry, never a reason to fail
        finite = math.nan
    asymptotic = theory.hebbian_asymptote(rank / d) if kind == "hebbian" else float(theory.alpha_c(rank / d))
    return finite, asymptotic


def format_table(rows: list[dict]) -> str:
    """Per cell: seeds, median alpha* and its spread over seeds, next to the theory."""
    cells: dict[tuple, list[float]] = {}
    for r in rows:
        if r["p_star"] >= 2:
            cells.setdefault((r["problem"], r["solver"], r["rho"], r["d"]), []).append(r["alpha_star"])
    header = f"{'problem':7} {'solver':7} {'rho':>5} {'d':>4} {'seeds':>5} {'alpha*':>8} {'spread':>7} " \
             f"{'theory(d)':>9} {'theory(inf)':>11}"
    lines = [header, "-" * len(header)]
    for (problem, solver, rho, d), alphas in sorted(cells.items()):
        finite, asymptotic = _theory_columns(problem, solver, rho, d)
        spread = (max(alphas) - min(alphas)) / 2
        lines.append(f"{problem:7} {solver:7} {rho:5.2f} {d:4d} {len(alphas):5d} {statistics.median(alphas):8.4f} "
                     f"{spread:7.4f} {finite:9.4f} {asymptotic:11.4f}")
    return "\n".join(lines)

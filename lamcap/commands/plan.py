"""`lamcap plan`: what a sweep will cost, per cell and in total, before anything runs.

    lamcap plan [SPEC.toml | --preset NAME] [--device D] [--workers N] [--clock wall|cpu] [--json] [spec flags]

Per cell: the p range the searches will visit (from the finite-size theory and its seed-to-seed
spread), the competitor memory per probe and the mode `auto` picks, the expected probes per
threshold, the seconds per probe on the chosen device, the device-seconds of the cell; totals in
device-hours and, with --workers, wall time. Seconds come from a short calibration of this
machine's kernels (one thread, about 10-30 s), or, for --device cuda where there is no GPU, from
the stated GPU model (labelled as such). --json prints the same numbers as one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys

from lamcap.commands.sweep import add_spec_flags
from lamcap.errors import InvalidInput
from lamcap.orchestrator.spec.presets import PRESETS


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("plan", help="predicted cost of a sweep per cell, before it runs",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", default=None, help="sweep spec TOML file (keys of SweepSpec.to_dict)")
    parser.add_argument("--preset", default=None, help="start from a named spec: " + ", ".join(PRESETS))
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or auto: the device to plan for (default: the spec's)")
    parser.add_argument("--workers", type=int, default=None, help="actors the sweep will run on: adds a wall time")
    parser.add_argument("--actors-per-gpu", type=int, default=1, metavar="K",
                        help="probes sharing each device, each with 1/K of its memory and throughput (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                        help="wall: seconds as this machine runs now (default); cpu: the calibration's CPU time, "
                             "what free cores would take (for planning on a busy machine)")
    add_spec_flags(parser)
    parser.add_argument("--resolution", type=float, default=None,
                        help="relative resolution of each threshold search, in [0, 0.5) (0: the exact p*)")
    parser.set_defaults(run=run)
    return parser


def build_spec(args: argparse.Namespace):
    """The validated SweepSpec of a command line; InvalidInput naming any bad value."""
    from lamcap.commands.sweep import overrides_from
    from lamcap.orchestrator.spec import load_spec

    if args.spec is None and args.preset is None and not (args.problems and args.solvers and args.d):
        raise InvalidInput("give a spec file, --preset NAME, or at least --problems, --solvers and --d")
    if args.workers is not None and args.workers < 1:
        raise InvalidInput(f"--workers {args.workers!r} must be >= 1")
    if args.actors_per_gpu < 1:
        raise InvalidInput(f"--actors-per-gpu {args.actors_per_gpu!r} must be >= 1")
    overrides = overrides_from(args)
    if args.resolution is not None:
        overrides.setdefault("search", {})["resolution"] = args.resolution
    return load_spec(args.spec, args.preset, overrides)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(plan, spec) -> str:
    """The table `lamcap plan` prints."""
    head = (f"{'problem':7} {'solver':7} {'rho':>5} {'d':>4} {'p* theory':>9} {'p visited':>11} "
            f"{'competitors':>11} {'mode':11} {'probes':>6} {'s/probe':>8} {'s/UNSAT':>8} "
            f"{'s/thresh.':>9} {'curve':>5} {'cell s':>8}")
    resolution = spec.search.resolution
    lines = [f"device {plan.device}: {plan.source}",
             f"search: resolution {resolution:g} ({'the exact p*' if resolution == 0 else 'relative'}), "
             f"{plan.width} point(s) asked at a time; max_steps {spec.solver_settings.max_steps}; "
             f"{spec.seeds} seeds per cell", "", head, "-" * len(head)]
    for c in plan.cells:
        lines.append(
            f"{c.problem:7} {c.solver:7} {c.rho:5.2f} {c.d:4d} {c.p_theory:9.1f} {f'{c.p_low}-{c.p_high}':>11} "
            f"{_bytes(c.competitor_bytes):>11} {c.mode:11} {c.probes_per_threshold:6.1f} "
            f"{c.seconds_per_probe:8.3g} {c.seconds_unsat_probe:8.3g} {c.seconds_per_threshold:9.4g} "
            f"{c.curve_probes:5d} {c.seconds:8.4g}")
    total = f"\ntotal: {plan.device_seconds:.4g} device-seconds = {plan.device_hours:.3g} device-hours"
    if plan.wall_seconds is not None:
        total += f"; with {plan.workers} workers about {_duration(plan.wall_seconds)} of wall time"
    lines.append(total)
    if plan.device == "cuda" and plan.source.startswith("stated"):
        lines.append("(an estimate from the stated GPU model in lamcap.orchestrator.planning.stated, "
                     "not a measurement)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from lamcap import api

    spec = build_spec(args)
    device = args.device or spec.device
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("lamcap plan: no CUDA device here: cannot calibrate; using the stated GPU model", file=sys.stderr)
    plan = api.plan(spec, device=device, workers=args.workers, clock=args.clock, actors_per_gpu=args.actors_per_gpu)
    print(json.dumps(plan.to_dict()) if args.json else format_plan(plan, spec))
    return 0

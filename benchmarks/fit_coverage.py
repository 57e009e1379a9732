"""Can a run's design measure the limit? Each scaling fit on synthetic runs shaped like a real one.

    .venv/bin/python benchmarks/fit_coverage.py docs/results/scale/summary.csv [--reps 200] [--solver adam]
        [--extend 128:4 256:2 512:2]

For every (problem, rho) of the solver in a `lamcap analyze` summary, the script keeps the run's design (its d,
seeds per d and the measured spread of alpha* over seeds at each d) and replaces its data by synthetic truths
of the finite-size theory's shape, alpha*(d) = A + K (alpha_RS(d) - alpha_c) plus Gaussian noise of that spread
per seed. Two truths: the theory itself (A = alpha_c, K = 1) and a shifted one (A = alpha_c - 0.05, K = 1.3).
Each form (naive, order2, theory) is fitted to `--reps` synthetic runs, as `lamcap analyze` fits the real one
(medians per d, seed bootstrap); the table gives the mean estimate of alpha_inf minus the truth, the share of
intervals that hold the truth (coverage; 0.95 is nominal) and the mean interval width. `--extend D:SEEDS ...`
asks what a larger run would give: it adds those dimensions to every design, with the spread of its largest d.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import xarray as xr

from lamcap.analysis import predicted
from lamcap.analysis.scaling import FORMS, fit_scaling


def synthetic_run(design: pd.DataFrame, problem: str, rho: float, truth_a: float, truth_k: float, reps: int,
                  rng: np.random.Generator) -> xr.Dataset:
    """Per-seed alpha* of `reps` synthetic runs of one (problem, rho); each run is its own solver label."""
    limit = predicted.asymptote("adam", rho)
    rows = []
    for rep in range(reps):
        for d, seeds, spread in design[["d", "n_seeds", "alpha_star_std"]].itertuples(index=False):
            law = truth_a + truth_k * (predicted.finite_size(problem, "adam", int(d), rho) - limit)
            for seed, value in enumerate(law + rng.normal(0.0, spread, size=int(seeds))):
                rows.append((f"run{rep:04d}", int(d), seed, value))
    n = len(rows)
    return xr.Dataset({
        "problem": ("threshold", [problem] * n), "solver": ("threshold", [r[0] for r in rows]),
        "rho": ("threshold", [rho] * n), "d": ("threshold", [r[1] for r in rows]),
        "seed": ("threshold", [r[2] for r in rows]), "alpha_star": ("threshold", [r[3] for r in rows]),
    })


def extended(design: pd.DataFrame, extra: list[tuple[int, int]]) -> pd.DataFrame:
    """The design with dimensions added (d, seeds), each with the spread over seeds of its largest d."""
    if not extra:
        return design
    spread = float(design.alpha_star_std.iloc[-1])
    added = pd.DataFrame({"d": [d for d, _ in extra], "n_seeds": [n for _, n in extra],
                          "alpha_star_std": [spread] * len(extra)})
    return pd.concat([design[["d", "n_seeds", "alpha_star_std"]], added]).drop_duplicates("d", keep="last")


def coverage(fit: xr.Dataset, truth: float) -> tuple[float, float, float] | None:
    """Mean error of alpha_inf, share of intervals holding the truth, mean interval width; None without a fit."""
    a = fit.sel(param="alpha_inf")
    ok = np.isfinite(a.estimate.values) & np.isfinite(a.lo.values)
    if not ok.any():
        return None
    est, lo, hi = a.estimate.values[ok], a.lo.values[ok], a.hi.values[ok]
    return float(np.mean(est - truth)), float(np.mean((lo <= truth) & (truth <= hi))), float(np.mean(hi - lo))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summary", help="summary.csv written by lamcap analyze")
    parser.add_argument("--solver", default="adam")
    parser.add_argument("--reps", type=int, default=200, help="synthetic runs per truth")
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates per fit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extend", nargs="*", default=[], metavar="D:SEEDS",
                        help="dimensions to add to the design, with their seed counts")
    args = parser.parse_args()
    extra = [tuple(int(v) for v in item.split(":")) for item in args.extend]
    summary = pd.read_csv(args.summary)
    summary = summary[summary.solver == args.solver]
    rng = np.random.default_rng(args.seed)
    print(f"{args.reps} synthetic runs per truth, each with the design of {args.summary} ({args.solver}); "
          f"alpha_inf: mean error, coverage of the 95% interval, mean width\n")
    print("| problem | rho | d | truth (A, K) | form | mean error | coverage | mean width |")
    print("|---|---|---|---|---|---|---|---|")
    for (problem, rho), design in summary.groupby(["problem", "rho"]):
        design = extended(design.sort_values("d"), extra)
        limit = predicted.asymptote("adam", rho)
        ds = f"{design.d.min()}..{design.d.max()}"
        for a, k in ((limit, 1.0), (limit - 0.05, 1.3)):
            runs = synthetic_run(design, problem, rho, a, k, args.reps, rng)
            for form in FORMS:
                fit = fit_scaling(runs, form, level=0.95, n_boot=args.n_boot, seed=args.seed)
                result = coverage(fit.sel(problem=problem, rho=rho), a)
                if result is None:
                    print(f"| {problem} | {rho:g} | {ds} | ({a:.3f}, {k:g}) | {form} | too few d | | |")
                    continue
                error, share, width = result
                print(f"| {problem} | {rho:g} | {ds} | ({a:.3f}, {k:g}) | {form} | {error:+.3f} | {share:.2f} "
                      f"| {width:.3f} |")


if __name__ == "__main__":
    main()

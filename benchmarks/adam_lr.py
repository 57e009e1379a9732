"""How close Adam gets to the exact LP, per seed, as a function of the learning rate.

    .venv/bin/python benchmarks/adam_lr.py [--lr 0.01 0.05 0.2 0.5 1.0] [--d 8 12] [--seeds 6] [--out /tmp/adam_lr]

Sweeps (lamcap sweep, embedded Ray) full-rank OP and DP with the LP once and Adam at each
learning rate on the same instances, then prints the mean of adam p* / lp p* per cell. This is
the experiment behind SolverSettings' default lr (about 20 minutes on 2 cores for the defaults).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys


def sweep(store: str, solvers: list[str], lr: float, ds: list[int], seeds: int) -> None:
    cmd = [sys.executable, "-m", "lamcap.cli", "sweep", "--problems", "op", "dp", "--solvers", *solvers,
           "--rho", "1", "--d", *map(str, ds), "--seeds", str(seeds), "--lr", str(lr), "--curve-points", "0",
           "--store", store, "--no-progress"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def p_stars(store: str, solver: str):
    from lamcap.analysis.load import open_store

    th = open_store(store).thresholds.to_dataframe()
    return th[th.solver == solver].set_index(["problem", "d", "seed"]).p_star


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lr", type=float, nargs="+", default=[0.01, 0.05, 0.2, 0.5, 1.0])
    parser.add_argument("--d", type=int, nargs="+", default=[8, 12])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--out", default="/tmp/adam_lr")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    lp_store = os.path.join(args.out, "lp.zarr")
    sweep(lp_store, ["lp"], 1.0, args.d, args.seeds)  # the LP ignores the learning rate
    lp = p_stars(lp_store, "lp")
    print(f"{'lr':>6}  {'mean adam/lp':>12}  per cell")
    for lr in args.lr:
        store = os.path.join(args.out, f"adam_{lr}.zarr")
        sweep(store, ["adam"], lr, args.d, args.seeds)
        ratio = (p_stars(store, "adam") / lp).dropna()
        cells = ", ".join(f"{p} d={d}: {v:.3f}" for (p, d), v in ratio.groupby(level=[0, 1]).mean().items())
        print(f"{lr:>6g}  {ratio.mean():>12.3f}  {cells}", flush=True)


if __name__ == "__main__":
    main()

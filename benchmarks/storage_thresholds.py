"""Does bfloat16 storage move thresholds? Exact per-seed p* of DP with bfloat16 against float32 storage.

    .venv/bin/python benchmarks/storage_thresholds.py --ds 32 64 --seeds 8 [--device cpu] [--workers 2]
        [--out /tmp/storage-thresholds] [--plan-only]

Runs two `lamcap.sweep`s of the same spec (DP, adam, full rank, competitors materialised, resolution 0:
the exact p* of every seed), one per storage dtype, into `<out>/float32.zarr` and `<out>/bfloat16.zarr`
(resumed when they exist), then compares p* seed by seed. The criterion: equal on at least 90% of the
seeds, never more than 1 apart (d = 32 and 64 with 8 seeds on a CPU; d = 128 with 4 seeds or more on a
GPU). The float64 verification on the exact instance judges every verdict in both sweeps; bfloat16 only
changes what training sees. `--plan-only` prints lamcap's cost estimate of both sweeps and stops.
"""
from __future__ import annotations

import argparse
import os
import time


def spec_for(ds: list[int], seeds: int, storage: str, device: str, max_steps: int) -> dict:
    return {"problems": ["dp"], "solvers": ["adam"], "rhos": [1.0], "ds": ds, "seeds": seeds, "device": device,
            "solver_settings": {"mode": "materialize", "storage_dtype": storage, "max_steps": max_steps},
            "search": {"resolution": 0.0, "curve_points": 0}}


def thresholds(path: str) -> dict[tuple[int, int], int]:
    """(d, seed) -> p* of a store's complete searches."""
    import lamcap

    table = lamcap.open_store(path).thresholds
    keep = table["complete"].values.astype(bool)
    return {(int(d), int(s)): int(p) for d, s, p, k in zip(table["d"].values, table["seed"].values,
                                                           table["p_star"].values, keep) if k}


def compare(a: dict, b: dict) -> dict:
    """Per d: seeds compared, equal, max |difference|, and whether the criterion (>= 90% equal, <= 1 apart) holds."""
    out = {}
    for d in sorted({d for d, _ in a} & {d for d, _ in b}):
        keys = sorted(k for k in a if k[0] == d and k in b)
        diffs = [abs(a[k] - b[k]) for k in keys]
        equal = sum(x == 0 for x in diffs)
        out[d] = {"seeds": len(keys), "equal": equal, "max_diff": max(diffs, default=0),
                  "pass": bool(keys) and equal >= 0.9 * len(keys) and max(diffs) <= 1,
                  "p_star": {k[1]: (a[k], b[k]) for k in keys}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=None, help="Ray actors (default: lamcap's)")
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--out", default="storage-thresholds")
    parser.add_argument("--plan-only", action="store_true", help="print the cost estimate and stop")
    args = parser.parse_args()
    import lamcap

    specs = {storage: spec_for(args.ds, args.seeds, storage, args.device, args.max_steps)
             for storage in ("float32", "bfloat16")}
    plan = lamcap.plan(specs["float32"], device=args.device, workers=args.workers)
    hours = 2 * plan.device_seconds / 3600
    wall = 2 * (plan.wall_seconds or plan.device_seconds)
    print(f"estimate (lamcap plan, both sweeps): {hours:.2f} device-hours, about {wall / 60:.0f} min of wall time "
          f"on {plan.workers or 1} worker(s)")
    if args.plan_only:
        return
    os.makedirs(args.out, exist_ok=True)
    for storage, spec in specs.items():
        start = time.perf_counter()
        lamcap.sweep(spec, os.path.join(args.out, f"{storage}.zarr"), workers=args.workers)
        print(f"{storage}: swept in {time.perf_counter() - start:.0f} s")
    result = compare(thresholds(os.path.join(args.out, "float32.zarr")),
                     thresholds(os.path.join(args.out, "bfloat16.zarr")))
    for d, row in result.items():
        print(f"d={d}: {row['equal']}/{row['seeds']} seeds equal, max |p*_bf16 - p*_fp32| = {row['max_diff']} "
              f"-> {'PASS' if row['pass'] else 'FAIL'} (>= 90% equal, <= 1 apart)")
        print("   seed: (float32, bfloat16) " + ", ".join(f"{s}: {v}" for s, v in row["p_star"].items()))


if __name__ == "__main__":
    main()

"""Time to compute the finite-size predictions (cold caches): the optimal memory by Monte Carlo for d = 8 .. 1024
and by the large-p expansion to d = 10^12, and the Hebbian memories (OP model, DP row law, rank cut). Target < 20 s
for the Monte Carlo part.

Run: PYTHONPATH=. .venv/bin/python benchmarks/theory.py [--samples N]
"""
from __future__ import annotations

import argparse
import time

from lamcap import predictions as theory

DS = (8, 16, 32, 64, 128, 256, 512, 1024)
LARGE_DS = (10**4, 10**6, 10**9, 10**12)
RHOS = (1.0, 0.5)


def _row(rho: float, d: int, optimal: tuple[float, float], t0: float) -> str:
    p_op, a_op = theory.hebbian_prediction("op", d, rho)
    p_dp, a_dp = theory.hebbian_prediction("dp", d, rho)
    return (f"{rho:>5.2f} {d:>14d}  {optimal[0]:>10.4g} {optimal[1]:>10.4f}  {p_op:>10.4g} {a_op:>8.4f}"
            f"  {p_dp:>10.4g} {a_dp:>8.4f}  {time.perf_counter() - t0:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=theory.DEFAULT_SAMPLES, help="Monte Carlo samples per p")
    args = parser.parse_args()
    print(f"{'rho':>5} {'d':>14}  {'p*':>10} {'alpha_c^RS':>10}  {'p_hebb_op':>10} {'a_op':>8}  {'p_hebb_dp':>10}"
          f" {'a_dp':>8}  {'seconds':>7}")
    start = time.perf_counter()
    for rho in RHOS:
        for d in DS:
            t0 = time.perf_counter()
            print(_row(rho, d, theory.finite_size_prediction(d, rho, n_samples=args.samples), t0))
    monte_carlo = time.perf_counter() - start
    for rho in RHOS:
        for d in LARGE_DS:
            t0 = time.perf_counter()
            print(_row(rho, d, theory.finite_size_prediction_expansion(d, rho), t0) + "  (expansion)")
    n_p = theory.capacity._expected_G.cache_info().currsize
    print(f"\ntotal {time.perf_counter() - start:.2f} s; Monte Carlo and Hebbian for d = {DS[0]}..{DS[-1]}: "
          f"{monte_carlo:.2f} s ({n_p} values of E[G_p] at {args.samples} samples each); target < 20 s")


if __name__ == "__main__":
    main()

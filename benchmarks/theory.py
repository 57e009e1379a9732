"""Time to compute the finite-size predictions for d = 8 .. 1024 (cold caches): target < 20 s.

Run: PYTHONPATH=. .venv/bin/python benchmarks/theory.py [--samples N]
"""
from __future__ import annotations

import argparse
import time

from lamcap import predictions as theory

DS = (8, 16, 32, 64, 128, 256, 512, 1024)
RHOS = (1.0, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=theory.DEFAULT_SAMPLES, help="Monte Carlo samples per p")
    args = parser.parse_args()
    print(f"{'rho':>5} {'d':>5}  {'p*':>10} {'alpha_c^RS':>10}  {'p_hebb':>10} {'alpha_hebb':>10}  {'seconds':>7}")
    start = time.perf_counter()
    for rho in RHOS:
        for d in DS:
            t0 = time.perf_counter()
            p_star, alpha = theory.finite_size_prediction(d, rho, n_samples=args.samples)
            p_hebb, alpha_hebb = theory.hebbian_finite_size(d)
            print(f"{rho:>5.2f} {d:>5d}  {p_star:>10.2f} {alpha:>10.4f}  {p_hebb:>10.2f} {alpha_hebb:>10.4f}"
                  f"  {time.perf_counter() - t0:>7.2f}")
    total = time.perf_counter() - start
    n_p = theory._expected_G.cache_info().currsize
    print(f"\ntotal {total:.2f} s for d = {DS[0]}..{DS[-1]}, rho in {RHOS} "
          f"({n_p} values of E[G_p] at {args.samples} samples each); target < 20 s")


if __name__ == "__main__":
    main()

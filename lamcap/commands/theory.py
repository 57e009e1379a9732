"""`lamcap theory [--rho R ...] [--d D ...] [--json]`: asymptotic and finite-size capacities from theory."""
from __future__ import annotations

import argparse
import json
import math

from lamcap.errors import InvalidInput

DEFAULT_RHO = (1.0, 0.75, 0.5, 0.25)
DEFAULT_D = (8, 16, 32, 64, 128, 256)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("theory", help="predicted capacities (asymptotic, finite-size, Hebbian)",
                                   description=__doc__)
    parser.add_argument("--rho", type=float, nargs="+", default=list(DEFAULT_RHO),
                        help="rank fractions in (0, 1] (default 1 0.75 0.5 0.25)")
    parser.add_argument("--d", type=int, nargs="+", default=list(DEFAULT_D),
                        help="dimensions >= 2 (default 8 16 32 64 128 256)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.set_defaults(run=run)
    return parser


def _validate(rhos: list[float], ds: list[int]) -> None:
    for rho in rhos:
        if not (math.isfinite(rho) and 0.0 < rho <= 1.0):
            raise InvalidInput(f"--rho {rho!r} is not in (0, 1]")
    for d in ds:
        if d < 2:
            raise InvalidInput(f"--d {d!r} is below 2")


def format_table(result: dict) -> str:
    """The readable table of `lamcap theory`."""
    lines = ["Asymptotic capacities: optimal alpha_c(rho) = kappa(rho) / 2, Hebbian kappa(rho) / 8",
             f"{'rho':>6}  {'alpha_c':>8}  {'alpha_H':>8}"]
    lines += [f"{row['rho']:>6.3f}  {row['alpha_c']:>8.4f}  {row['alpha_hebbian']:>8.4f}"
              for row in result["asymptotic"]]
    lines += ["", "Finite size: p* solves p E[G_p] = kappa d^2 (replica); Hebbian: P(all stored) = 1/2 (OP: Gaussian "
              "score model, DP: exact row law)",
              f"{'rho':>6} {'d':>6}  {'p*':>10} {'alpha_c^RS':>10}  {'p_H (op)':>10} {'alpha_H op':>10}"
              f"  {'p_H (dp)':>10} {'alpha_H dp':>10}"]
    lines += [f"{r['rho']:>6.3f} {r['d']:>6d}  {r['p_star']:>10.2f} {r['alpha_c_rs']:>10.4f}"
              f"  {r['p_hebbian_op']:>10.2f} {r['alpha_hebbian_op']:>10.4f}"
              f"  {r['p_hebbian_dp']:>10.2f} {r['alpha_hebbian_dp']:>10.4f}" for r in result["finite_size"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    _validate(args.rho, args.d)
    from lamcap.api import theory

    result = theory(list(args.rho), list(args.d))
    print(json.dumps(result) if args.json else format_table(result))
    return 0

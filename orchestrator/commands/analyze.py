"""`lamcap analyze STORE [--out DIR]`: threshold and fit tables, summary.csv, fits.json, figures."""
from __future__ import annotations

import argparse

from lamcap.kernels.errors import InvalidInput

DEFAULT_OUT = "out"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("analyze", help="tables, finite-size fits and figures from a store",
                                   description=__doc__)
    parser.add_argument("store", help="path of a lamcap Zarr store (written by `lamcap sweep`)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"folder for summary.csv, fits.json, PNGs (default {DEFAULT_OUT})")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    parser.add_argument("--n-boot", type=int, default=400, help="bootstrap replicates over seeds (default 400)")
    parser.set_defaults(run=run)
    return parser


def analyze_store(store: str, out: str, level: float = 0.95, n_boot: int = 400) -> int:
    """Analyse a store and print the tables and where the outputs are (shared with `lamcap demo`)."""
    if not 0.0 < level < 1.0:
        raise InvalidInput(f"--level {level!r} is not in (0, 1)")
    if n_boot < 10:
        raise InvalidInput(f"--n-boot {n_boot!r} is too small (need >= 10)")
    from lamcap.orchestrator.api import analyze

    report = analyze(store, out, level=level, n_boot=n_boot)
    print(report.text)
    print("\nOutputs:")
    for name, path in report.paths.items():
        print(f"  {name:9} {path}")
    for note in report.notes:
        print(f"  (skipped) {note}")
    return 0


def run(args: argparse.Namespace) -> int:
    return analyze_store(args.store, args.out, level=args.level, n_boot=args.n_boot)

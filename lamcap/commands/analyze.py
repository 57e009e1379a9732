"""`lamcap analyze STORE [STORE ...] [--out DIR]`: threshold and fit tables, summary.csv, fits.json, figures.

Several stores are analysed together as one. A cell (problem, solver, rho, d) present in more than one of them
is accepted only when their records agree: every (cell, seed) threshold row both hold has the same p_lo, p_hi,
p_star and complete, and every (cell, seed, p) both probed without an error has the same verdict (sat). Rows
and probes both hold are counted once (docs/STORE.md, "Analysing several stores together")."""
from __future__ import annotations

import argparse

from lamcap.errors import InvalidInput

DEFAULT_OUT = "out"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("analyze", help="tables, finite-size fits and figures from a store",
                                   description=__doc__)
    parser.add_argument("store", nargs="+", help="path of a lamcap Zarr store (written by `lamcap sweep`); several "
                        "are analysed together, refused where their records disagree")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"folder for summary.csv, fits.json, PNGs (default {DEFAULT_OUT})")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    parser.add_argument("--n-boot", type=int, default=400, help="bootstrap replicates over seeds (default 400)")
    parser.set_defaults(run=run)
    return parser


def analyze_store(store: str | list[str], out: str, level: float = 0.95, n_boot: int = 400) -> int:
    """Analyse a store (or several together) and print the tables and where the outputs are (shared with
    `lamcap demo`)."""
    if not 0.0 < level < 1.0:
        raise InvalidInput(f"--level {level!r} is not in (0, 1)")
    if n_boot < 10:
        raise InvalidInput(f"--n-boot {n_boot!r} is too small (need >= 10)")
    check_output_folder(out, "--out")
    from lamcap.api import analyze

    report = analyze(store, out, level=level, n_boot=n_boot)
    print(report.text)
    print("\nOutputs:")
    for name, path in report.paths.items():
        print(f"  {name:9} {path}")
    for note in report.notes:
        print(f"  (skipped) {note}")
    return 0


def check_output_folder(path: str, flag: str) -> None:
    """Refuse, before any work, an output folder that is a file or that cannot be created or written."""
    import os

    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidInput(f"{flag} {path!r} is a file, not a folder")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InvalidInput(f"{flag} {path!r}: {existing!r} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInput(f"{flag} {path!r} cannot be written: {existing!r} is not writable")


def run(args: argparse.Namespace) -> int:
    stores = args.store if len(args.store) > 1 else args.store[0]
    return analyze_store(stores, args.out, level=args.level, n_boot=args.n_boot)

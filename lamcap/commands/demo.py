"""`lamcap demo`: run the `demo` preset sweep on an embedded Ray, then analyse it."""
from __future__ import annotations

import argparse

from lamcap.errors import InvalidInput

DEFAULT_STORE = "demo-store.zarr"
DEFAULT_OUT = "demo-out"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="a small sweep end to end: search, store, analysis, figures",
                                   description=__doc__)
    parser.add_argument("--store", default=DEFAULT_STORE, help=f"store to write or resume (default {DEFAULT_STORE})")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"folder for tables and figures (default {DEFAULT_OUT})")
    parser.add_argument("--workers", type=int, default=None, help="Ray workers (default: the sweep's own default)")
    parser.set_defaults(run=run)
    return parser


def sweep_argv(store: str, workers: int | None) -> list[str]:
    """The `lamcap sweep` command line the demo runs."""
    argv = ["sweep", "--preset", "demo", "--store", store]
    return argv + (["--workers", str(workers)] if workers is not None else [])


def run_sweep(store: str, workers: int | None) -> int:
    """Run `lamcap sweep --preset demo` in-process through the sweep command's own parser."""
    from lamcap.cli import Parser
    from lamcap.commands import sweep

    parser = Parser(prog="lamcap")
    sweep.add_parser(parser.add_subparsers(dest="command", required=True, parser_class=Parser))
    args = parser.parse_args(sweep_argv(store, workers))
    return int(args.run(args) or 0)


def run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise InvalidInput(f"--workers {args.workers!r} must be >= 1")
    print(f"lamcap demo: sweeping the `demo` preset into {args.store} (resumes if it exists)")
    rc = run_sweep(args.store, args.workers)
    if rc != 0:
        print(f"lamcap demo: the sweep exited with status {rc}; analysing what it stored")
    from lamcap.commands.analyze import analyze_store

    analyze_store(args.store, args.out)
    print(f"\nlamcap demo: done. Figures and tables are in {args.out}/ (store: {args.store})")
    return rc

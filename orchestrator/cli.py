"""The `lamcap` console script: dispatch to one module per subcommand."""
from __future__ import annotations

import argparse
import importlib
import sys

from lamcap.kernels.errors import InvalidInput, StoreError

COMMANDS = ("trial", "bench", "theory", "plan", "sweep", "analyze", "demo")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, naming the bad value."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


DESCRIPTION = """lamcap measures how many facts a linear associative memory can store: SAT/UNSAT
thresholds of the original (op) and decoupled (dp) problems, full rank or rank r, trained by
Adam, Hebbian or decided by an exact LP; sweeps on Ray into Zarr; analysis and figures.
Start with `lamcap demo`, or `lamcap trial --help` for one instance."""


def build_parser() -> Parser:
    from lamcap import __version__

    parser = Parser(prog="lamcap", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"lamcap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"lamcap.orchestrator.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from lamcap.kernels.threads import quiet_openmp

    quiet_openmp()  # before torch is imported by a command
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except InvalidInput as exc:
        print(f"lamcap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"lamcap {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lamcap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

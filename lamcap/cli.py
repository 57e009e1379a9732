"""The `lamcap` console script: dispatch to one module per subcommand (lamcap.commands)."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from lamcap.errors import ClusterError, InvalidInput, StoreError

COMMANDS = ("trial", "bench", "theory", "plan", "sweep", "analyze", "demo")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, naming the bad value."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


DESCRIPTION = """lamcap measures how many facts a linear associative memory can store: SAT/UNSAT
thresholds of the original (op) and decoupled (dp) problems, full rank or rank r, trained by
Adam, Hebbian or decided by an exact LP; sweeps on Ray into Zarr; analysis and figures.
Start with `lamcap demo`, or `lamcap trial --help` for one instance."""


class TerminalHandler(logging.Handler):
    """lamcap's log lines on stderr as `lamcap COMMAND: message`, written above a progress bar if one is drawn."""

    def __init__(self, command: str) -> None:
        super().__init__(logging.INFO)
        self.command = command

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(f"lamcap {self.command}: {record.getMessage()}", file=sys.stderr)
        except Exception:
            self.handleError(record)


def configure_logging(command: str, verbose: bool = False) -> None:
    """lamcap's own messages (INFO and up) on the terminal; other libraries' only with --verbose."""
    lamcap_log = logging.getLogger("lamcap")
    lamcap_log.handlers[:] = [TerminalHandler(command)]
    lamcap_log.setLevel(logging.DEBUG if verbose else logging.INFO)
    lamcap_log.propagate = False


def build_parser() -> Parser:
    from lamcap import __version__

    parser = Parser(prog="lamcap", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"lamcap {__version__}")
    parser.add_argument("--verbose", action="store_true", help="also show Ray's own log lines and debug messages")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"lamcap.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from lamcap.kernels.threads import quiet_openmp

    quiet_openmp()  # before torch is imported by a command
    args = build_parser().parse_args(argv)
    configure_logging(args.command, args.verbose)
    try:
        return int(args.run(args) or 0)
    except InvalidInput as exc:
        print(f"lamcap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (StoreError, ClusterError) as exc:
        print(f"lamcap {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        resume = "; finished probes are in the store, run the same command to resume" \
            if args.command in ("sweep", "demo") else ""
        print(f"lamcap {args.command}: interrupted{resume}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

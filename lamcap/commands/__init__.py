"""One module per `lamcap` subcommand: `add_parser(subparsers)` and `run(args) -> int`.

Command modules import only the standard library at top level; torch, ray and
xarray are imported inside `run`, so `lamcap --help` stays fast.
"""

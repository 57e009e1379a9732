"""Per-cell settings of a spec: `[seeds_for]` and `[resolution_for]`, tables whose keys select cells.

A key is one or more terms joined by commas, every term naming a label of the cell: a problem (`dp`), a
solver (`lp`), a rank fraction (`rho=0.5`) or a dimension (`d=32`, `d>=32`, `d<=24`). A cell matches a key
when it matches all of its terms:

    [seeds_for]                    # fewer seeds where probes cost more (each a cap on `seeds`)
    "lp,d>=32" = 4                 # lp cells with d >= 32 run seeds 0..3, every other cell `seeds`
    [resolution_for]               # a search resolution other than search.resolution
    "hebbian" = 0.05

A cell's seeds are the smallest cap among the keys it matches (and `seeds` when none does); its resolution
is that of the first key it matches, in the table's order (search.resolution when none does). Pure: no
torch, no Ray.
"""
from __future__ import annotations

import math
from typing import Any

from lamcap.kernels.vocabulary import PROBLEMS, SOLVERS
from lamcap.orchestrator.spec.values import is_int, is_real

D_OPERATORS = (">=", "<=", "=")  # '>=' and '<=' before '=': the longest spelling is tried first


def _term_problem(term: str) -> str | None:
    """Why a term names no label ('' when it does)."""
    if term in PROBLEMS or term in SOLVERS:
        return ""
    if term.startswith("rho="):
        try:
            value = float(term[4:])
        except ValueError:
            return f"{term!r}: rho=R needs a number R"
        return "" if math.isfinite(value) and 0 < value <= 1 else f"{term!r}: R must be in (0, 1]"
    if term.startswith("d"):
        for op in D_OPERATORS:
            if term[1:].startswith(op):
                value = term[1 + len(op):]
                return "" if value.isdigit() and int(value) >= 2 else f"{term!r}: d{op}D needs an integer D >= 2"
    return f"{term!r} names no problem {PROBLEMS}, solver {SOLVERS}, 'rho=R' or 'd=D', 'd>=D', 'd<=D'"


def key_problems(key: Any) -> list[str]:
    """Why a selector key is malformed (empty when it is fine)."""
    if not isinstance(key, str) or not key.strip():
        return [f"key {key!r} must name labels, e.g. \"lp\" or \"dp,d>=64\""]
    return [p for p in (_term_problem(t.strip()) for t in key.split(",")) if p]


def matches(key: str, problem: str, solver: str, rho: float, d: int) -> bool:
    """Whether the cell (problem, solver, rho, d) matches every term of `key`."""
    for term in (t.strip() for t in key.split(",")):
        if term.startswith("rho="):
            if float(term[4:]) != rho:
                return False
        elif term.startswith("d") and term not in PROBLEMS and term not in SOLVERS:
            for op in D_OPERATORS:
                if term[1:].startswith(op):
                    bound = int(term[1 + len(op):])
                    ok = {">=": d >= bound, "<=": d <= bound, "=": d == bound}[op]
                    if not ok:
                        return False
                    break
        elif term not in (problem, solver):
            return False
    return True


def pairs(value: Any) -> Any:
    """A table (dict) as a tuple of (key, value) pairs in the table's order, keeping the spec hashable."""
    if isinstance(value, dict):
        return tuple(value.items())
    if isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        return tuple(tuple(p) for p in value)
    return value


def table_problems(name: str, table: Any, seeds: Any = None) -> list[str]:
    """Every bad entry of `[seeds_for]` (seeds: the spec's, the most a cap may be) or `[resolution_for]`."""
    if not isinstance(table, tuple):
        return [f"{name}={table!r} must be a table of cell selector = value"]
    out = []
    for key, value in table:
        out += [f"{name}: {p}" for p in key_problems(key)]
        if name == "seeds_for" and not (is_int(value) and 1 <= value and (not is_int(seeds) or value <= seeds)):
            out.append(f"{name}.{key!r}={value!r} must be an integer in 1..seeds = 1..{seeds}")
        if name == "resolution_for" and not (is_real(value) and 0 <= value < 0.5):
            out.append(f"{name}.{key!r}={value!r} must be a number in [0, 0.5) (0: the exact p*)")
    return out


def seeds_of(table: tuple, seeds: int, problem: str, solver: str, rho: float, d: int) -> int:
    """The seeds of a cell: the smallest cap among the keys it matches, else `seeds`."""
    return min([seeds, *(v for k, v in table if matches(k, problem, solver, rho, d))])


def resolution_of(table: tuple, default: float, problem: str, solver: str, rho: float, d: int) -> float:
    """The resolution of a cell's searches: the first key it matches, else `default`."""
    return next((float(v) for k, v in table if matches(k, problem, solver, rho, d)), float(default))

"""Caps on the dimensions of a sweep's cells: the spec's `d_max` table.

A key names a problem ('dp'), a solver ('lp') or a rank fraction ('rho=0.5'); a cell
(problem, solver, rho, d) exists only if d is at most every cap whose key names one of its
labels. {"dp": 96, "rho=0.5": 64, "lp": 40}: DP stops at d = 96, every rank-half cell at 64,
lp at 40, whichever is smallest. Pure: no torch, no Ray.
"""
from __future__ import annotations

import math
from typing import Any

RHO_PREFIX = "rho="


def key_rho(key: str) -> float | None:
    """The rank fraction a 'rho=R' key names (None for any other key or a malformed R)."""
    if not isinstance(key, str) or not key.startswith(RHO_PREFIX):
        return None
    try:
        value = float(key[len(RHO_PREFIX):])
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def names(key: str, problem: str, solver: str, rho: float) -> bool:
    """Whether a d_max key names one of the cell's labels."""
    r = key_rho(key)
    return key in (problem, solver) or (r is not None and r == rho)


def cap_for(d_max: tuple[tuple[str, int], ...], problem: str, solver: str | None = None,
            rho: float | None = None) -> int | None:
    """The smallest cap naming the labels given (None: uncapped)."""
    caps = [cap for key, cap in d_max if key == problem or (solver is not None and key == solver)
            or (rho is not None and key_rho(key) == rho)]
    return min(caps) if caps else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def cap_problems(d_max: Any, problems: tuple[str, ...], solvers: tuple[str, ...], rhos: Any, ds: Any) -> list[str]:
    """Every bad d_max entry, each message naming it: unknown keys, bad caps, caps that leave no d."""
    if not isinstance(d_max, tuple):
        return [f"d_max={d_max!r} must be a table of (problem | solver | 'rho=R') = largest d"]
    all_ds = [d for d in ds if _is_int(d)] if isinstance(ds, (list, tuple)) else []
    rho_values = [r for r in rhos if isinstance(r, (int, float))] if isinstance(rhos, (list, tuple)) else []
    out = []
    for key, cap in d_max:
        r = key_rho(key)
        if key not in problems and key not in solvers and r is None:
            out.append(f"d_max: unknown key {key!r}; expected a problem {problems}, a solver {solvers} or 'rho=R'")
        elif r is not None and rho_values and r not in rho_values:
            out.append(f"d_max: key {key!r} names no rank fraction of rhos = {rho_values}")
        elif not _is_int(cap) or cap < 2:
            out.append(f"d_max.{key}={cap!r} must be an integer >= 2")
        elif all_ds and not any(d <= cap for d in all_ds):
            out.append(f"d_max.{key}={cap} leaves {key!r} no d (ds = {all_ds})")
    return out

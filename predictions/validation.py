"""Argument checks shared by the theory modules: each names the bad value (InvalidInput)."""
from __future__ import annotations

import numpy as np

from lamcap.errors import InvalidInput


def check_rho(rho: float) -> float:
    if not (isinstance(rho, (int, float, np.integer, np.floating)) and 0.0 < float(rho) <= 1.0):
        raise InvalidInput(f"rho {rho!r} is not in (0, 1]")
    return float(rho)


def check_d(d: int) -> int:
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer, float, np.floating)) \
            or d != int(d) or d < 2:
        raise InvalidInput(f"d {d!r} is not an integer >= 2")
    return int(d)


def check_p(p, minimum: float = 2.0) -> np.ndarray:
    arr = np.asarray(p, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < minimum):
        raise InvalidInput(f"p {p!r} has a value below {minimum:g} (or not finite)")
    return arr

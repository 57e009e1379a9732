"""The load alpha = p ln p / d^2, its inverse, and the rank of a rank fraction: one definition each."""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from lamcap.errors import InvalidInput
from lamcap.predictions.validation import check_d, check_p


def alpha_of(p: float, d: int) -> float:
    """The load p ln p / d^2 of p associations at dimension d (NaN for p < 1, which is no load)."""
    return p * math.log(p) / d**2 if p >= 1 else float("nan")


def rank_of(rho: float, d: int) -> int:
    """The rank of rank fraction rho at dimension d: r = max(1, round(rho d)), Python's round (half to even)."""
    return max(1, round(rho * d))


def p_to_alpha(p, d):
    """The load alpha = p ln p / d^2 (numpy-vectorised in p and d)."""
    p = check_p(p, 1.0)
    d = np.asarray(d, dtype=float)
    if np.any(d < 2):
        raise InvalidInput(f"d {d!r} has a value below 2")
    out = p * np.log(p) / d**2
    return float(out) if out.ndim == 0 else out


def alpha_to_p(alpha: float, d: int) -> float:
    """The real p >= 1 solving p ln p = alpha d^2, i.e. p = alpha d^2 / W(alpha d^2)."""
    d = check_d(d)
    if not (math.isfinite(alpha) and alpha > 0):
        raise InvalidInput(f"alpha {alpha!r} is not a positive number")
    x = alpha * d * d
    return float(x / special.lambertw(x).real)

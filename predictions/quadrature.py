"""Gauss rules for the expectations of the Hebbian models: Gamma (so chi-square) variables, and the maximum of
n standard Gaussians. numpy and scipy only."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import special


@lru_cache(maxsize=256)
def gamma_rule(shape: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) of the n-point Gauss rule for Gamma(shape, 1), any shape > 0.

    Golub-Welsch on the generalised Laguerre recurrence: its eigenvalues are the nodes and the squared first
    components of its eigenvectors the weights, stable where scipy's roots_genlaguerre overflows (shape > 100).
    """
    i = np.arange(n, dtype=float)
    diagonal = 2.0 * i + shape
    off = np.sqrt(i[1:] * (i[1:] + shape - 1.0))
    nodes, vectors = np.linalg.eigh(np.diag(diagonal) + np.diag(off, 1) + np.diag(off, -1))
    weights = vectors[0] ** 2
    return np.clip(nodes, 0.0, None), weights / weights.sum()


def chi_square_rule(dof: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss rule for a chi-square with dof degrees of freedom."""
    nodes, weights = gamma_rule(dof / 2.0, n)
    return 2.0 * nodes, weights


@lru_cache(maxsize=256)
def maximum_rule(count: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for the maximum of `count` i.i.d. N(0, 1): Gauss-Legendre in its CDF value v.

    M = Phi^-1(v^(1/count)), v uniform on (0, 1); the tail 1 - v^(1/count) is formed with expm1 so that a
    count of 10^20 keeps its precision.
    """
    x, w = special.roots_legendre(n)
    v = 0.5 * (x + 1.0)
    upper_tail = -np.expm1(np.log(v) / count)  # P(N(0, 1) > M)
    return -special.ndtri(upper_tail), w / w.sum()

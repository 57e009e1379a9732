"""What theory predicts for a cell (problem, solver, rho, d): the finite-size critical load and its d -> infinity
limit (docs/THEORY.md 3.2, 3.3, 3.5, 3.8), looked up in lamcap.predictions and cached."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from lamcap import predictions as theory

HEBBIAN = "hebbian"  # every other solver (adam, lp, ...) is held against the optimal memory's prediction
EXPANSION_FROM = 64  # drawn curves: the Monte Carlo prediction below this d, the large-p expansion (0.3% apart) from it


def asymptote(solver: str, rho: float) -> float:
    """The d -> infinity critical load: alpha_c(rho) = kappa(rho) / 2, or kappa(rho) / 8 for the Hebbian rule."""
    return float(theory.hebbian_asymptote(rho) if solver == HEBBIAN else theory.alpha_c(rho))


@lru_cache(maxsize=None)
def finite_size(problem: str, solver: str, d: int, rho: float) -> float:
    """The parameter-free finite-size critical load: alpha_c^RS(d; rho), or the Hebbian memory's (per problem)."""
    if solver == HEBBIAN:
        return float(theory.hebbian_prediction(problem, int(d), float(rho))[1])
    return float(theory.finite_size_prediction(int(d), float(rho))[1])


@lru_cache(maxsize=None)
def _curve_point(problem: str, solver: str, d: int, rho: float) -> float:
    if solver != HEBBIAN and d >= EXPANSION_FROM:
        return float(theory.finite_size_prediction_expansion(d, rho)[1])
    return finite_size(problem, solver, d, rho)


def curve(problem: str, solver: str, rho: float, d: np.ndarray) -> np.ndarray:
    """The finite-size prediction on a grid of real dimensions (rounded) up to d = 10^12, for drawing: the
    optimal memory's from the large-p expansion at d >= EXPANSION_FROM (lamcap.predictions.large_p)."""
    return np.array([_curve_point(problem, solver, int(round(v)), float(rho)) for v in np.asarray(d, dtype=float)])

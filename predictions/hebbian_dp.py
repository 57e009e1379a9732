"""The Hebbian memory of the decoupled problem: the exact law of a row's normalised target score, and the
finite-size capacity it gives (docs/THEORY.md 3.5.2). numpy and scipy only.

For W_H = sum_lambda y^lambda_lambda x_lambda^T, row mu's scores are y^mu_nu . v with v = W x_mu. The
competitors y^mu_nu (nu != mu) do not enter W, so given W they are i.i.d. N(0, |v|^2): row mu is stored
iff t = y^mu_mu . v / |v| beats the maximum M of p - 1 independent N(0, 1). With a = |x_mu|^2,
r^2 = |y^mu_mu|^2, C = sum_(lambda != mu) (x_lambda . x_mu)^2 / a, Q = |part of v normal to y^mu_mu|^2 / (a C)
and z the part of v along y^mu_mu beyond a r, all independent (chi-square with d, d, p - 1, d - 1 degrees
of freedom, and N(0, 1)),

    t = r w / sqrt(w^2 + C Q),   w = sqrt(a) r + sqrt(C) z,

so P(t < M | r, a, C, Q) = Phi(M sqrt(Q / (r^2 - M^2)) - r sqrt(a / C)) for |M| < r. The rank cut maps t to
g mean(t) + h (t - mean(t)) (lamcap.predictions.hebbian_rank). The one approximation is the independence of
the rows: P(all stored) = P(row stored)^p.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special

from lamcap.predictions.hebbian import median_load
from lamcap.predictions.hebbian_rank import cut_factors
from lamcap.predictions.quadrature import chi_square_rule, maximum_rule
from lamcap.predictions.validation import check_d, check_p, check_rho

NODES = {"M": 24, "r2": 10, "a": 10, "C": 6, "Q": 4, "z": 24}  # Gauss points per variable: more move p by 0.1%


def _product_rule(rules: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list[np.ndarray], np.ndarray]:
    """Broadcastable node arrays of a product rule, and its joint weights."""
    nodes, weight = [], np.ones([len(x) for x, _ in rules])
    for axis, (x, w) in enumerate(rules):
        view = [1] * len(rules)
        view[axis] = len(x)
        nodes.append(x.reshape(view))
        weight = weight * w.reshape(view)
    return nodes, weight


def _chi_squares(p: float, d: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [chi_square_rule(d, NODES["r2"]), chi_square_rule(d, NODES["a"]), chi_square_rule(p - 1.0, NODES["C"]),
            chi_square_rule(d - 1.0, NODES["Q"])]


@lru_cache(maxsize=4096)
def target_mean(p: float, d: int) -> float:
    """E[t], the mean normalised target score of a row of the full-rank DP Hebbian memory."""
    z, zw = special.roots_hermitenorm(NODES["z"])
    (r2, a, c, q, z), weight = _product_rule([*_chi_squares(p, d), (z, zw / zw.sum())])
    r = np.sqrt(r2)
    w = np.sqrt(a) * r + np.sqrt(c) * z
    return float(np.sum(weight * r * w / np.sqrt(w * w + c * q)))


def row_failure(p: float, d: int, g: float = 1.0, h: float = 1.0) -> float:
    """P(a row of the DP Hebbian memory is not stored); g, h: the rank cut's factors (1, 1 at full rank)."""
    d, p = check_d(d), float(check_p(p, 2.0))
    (m, r2, a, c, q), weight = _product_rule([maximum_rule(p - 1.0, NODES["M"]), *_chi_squares(p, d)])
    if (g, h) != (1.0, 1.0):  # t_cut < M  <=>  t < mean + (M - g mean) / h
        mean = target_mean(p, d)
        m = mean + (m - g * mean) / h
    r = np.sqrt(r2)
    inside = np.abs(m) < r
    with np.errstate(divide="ignore", invalid="ignore"):
        z = m * np.sqrt(q / np.where(inside, r2 - m * m, 1.0)) - r * np.sqrt(a / np.maximum(c, 1e-300))
    fail = np.where(inside, special.ndtr(z), (m >= r).astype(float))
    return float(np.clip(np.sum(weight * fail), 0.0, 1.0))


def hebbian_dp_log_success(p: float, d: int, rho: float = 1.0) -> float:
    """ln P(all p rows stored) of the DP Hebbian memory (rank cut at rho < 1), rows taken as independent."""
    g, h = cut_factors(p, d, rho)
    return float(p) * math.log1p(-min(row_failure(p, d, g, h), 1.0 - 1e-16))


@lru_cache(maxsize=4096)
def _median_p(d: int, rho: float) -> float:
    return median_load(lambda p: hebbian_dp_log_success(p, d, rho), d)


def hebbian_dp_finite_size(d: int, rho: float = 1.0) -> tuple[float, float]:
    """(p, alpha) where the DP Hebbian memory (rank cut at rho < 1) stores all p rows with probability 1/2."""
    d, rho = check_d(d), check_rho(rho)
    p = _median_p(d, rho)
    return p, p * math.log(p) / (d * d)

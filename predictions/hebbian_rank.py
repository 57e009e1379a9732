"""The rank cut of the Hebbian memory: W_H truncated to its top r singular values changes each row's normalised
target score t, the mean by a factor g and the spread by a factor h (docs/THEORY.md 3.5.3). numpy and scipy only.

Both are measured on seeded Gaussian instances: for every row of W_H and of its cut, t = y_mu . v / |v| with
v = W x_mu (the DP statistic of lamcap.predictions.hebbian_dp; no competitors are needed), g = mean(t_cut) /
mean(t) and h = sd(t_cut) / sd(t) over the same rows. They depend on p / d and rho, hardly on d (d = 32 and
64 agree to 1%), so they are measured at d = 32 for every d. g = h = 1 while p <= r (W_H has rank p). For p >> d,
W_H / sqrt(p) is a Gaussian matrix and X^T X = p I; summed over rows the target scores are tr(P W W^T) and the
squared row scales tr(P W X^T X W^T) (P: the projector on the top r left singular vectors), so
g -> sqrt(kappa(rho)) and h -> 1: the asymptotic Hebbian capacity of the rank-r memory is kappa(rho) / 8.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from lamcap.predictions.capacity import kappa
from lamcap.predictions.units import rank_of
from lamcap.predictions.validation import check_d, check_p, check_rho

SIM_D = 32  # instances are drawn at this d, at the same rank fraction r / d
RATIO_MAX = 64.0  # beyond p / d = 64 the asymptote (sqrt(kappa(rho)), 1) is used: within 0.5% there
RATIOS = 20  # points of the p / d grid (g, h) are measured on, interpolated in ln(p / d) between them
ROWS = 3000  # rows pooled per point of the grid (at least 4 instances)


def _row_scores(x: np.ndarray, y: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """t of every row of W = y^T x, or of its projection on the columns of `basis`."""
    v = x @ (y.T @ x).T
    targets = y
    if basis is not None:
        v, targets = v @ basis, y @ basis
    return np.einsum("ij,ij->i", targets, v) / np.linalg.norm(v, axis=1)


def _measured(p: int, d: int, rank: int, seed: int) -> tuple[float, float]:
    """(g, h) over the rows of seeded instances of size (p, d), cut to `rank`."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, p, d, rank]))
    full, cut = [], []
    for _ in range(max(4, -(-ROWS // p))):
        x, y = rng.standard_normal((p, d)), rng.standard_normal((p, d))
        top = np.linalg.svd(y.T @ x)[0][:, :rank]
        full.append(_row_scores(x, y, None))
        cut.append(_row_scores(x, y, top))
    full, cut = np.concatenate(full), np.concatenate(cut)
    return float(cut.mean() / full.mean()), float(cut.std() / full.std())


@lru_cache(maxsize=64)
def _curve(d: int, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ln(p / d) and (g, h) on a grid from p = rank (g = h = 1) to p = RATIO_MAX d, at dimension d."""
    log_ratio = np.linspace(math.log(rank / d), math.log(RATIO_MAX), RATIOS)
    values = [(1.0, 1.0)] + [_measured(max(rank + 1, round(d * math.exp(v))), d, rank, seed) for v in log_ratio[1:]]
    g, h = np.array(values).T
    return log_ratio, g, h


def cut_factors(p: float, d: int, rho: float, seed: int = 0) -> tuple[float, float]:
    """(g, h): the rank cut's factors on the mean and the spread of a row's normalised Hebbian target score."""
    d, rho, p = check_d(d), check_rho(rho), float(check_p(p, 1.0))
    rank = rank_of(rho, d)
    if rank >= min(p, d):
        return 1.0, 1.0
    if p >= RATIO_MAX * d:
        return math.sqrt(kappa(rho)), 1.0
    log_ratio, g, h = _curve(SIM_D, max(1, round(rank * SIM_D / d)), seed)
    at = math.log(p / d)
    return float(np.interp(at, log_ratio, g)), float(np.interp(at, log_ratio, h))

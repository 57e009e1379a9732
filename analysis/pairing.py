"""OP against DP, paired by seed: the same (solver, rho, d, seed) holds the same inputs x_mu in both problems
(lamcap.kernels.disorder), so each seed gives one difference alpha*(OP) - alpha*(DP) (docs/THEORY.md 4.2).

Per (solver, rho, d): the mean difference over the seeds both problems hold, its seed-bootstrap interval,
and an exact two-sided sign test; per (solver, rho) the same over every pair, and the trend of the per-d mean
difference, c0 + c1 / ln d (c0: the difference extrapolated to d -> infinity). Thresholds known to a
resolution enter as their brackets: each bootstrap replicate draws every alpha* uniformly in its bracket,
and a pair counts for the sign test only when its bracket of differences excludes 0.
"""
from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy import stats

from lamcap.analysis.thresholds import alpha_brackets, per_seed
from lamcap.errors import InvalidInput

KEYS = ("solver", "rho")


def paired_differences(thresholds: xr.Dataset) -> xr.Dataset:
    """Per (solver, rho, d, seed): ``difference`` alpha*(op) - alpha*(dp) and its bracket ``lo``/``hi`` (NaN
    where one problem lacks the seed)."""
    alpha = per_seed(thresholds, "alpha_star")
    problems = set(alpha.problem.values.tolist())
    if not {"op", "dp"} <= problems:
        raise InvalidInput(f"OP vs DP needs both problems in the store, found {sorted(problems)}")
    lower, upper = alpha_brackets(thresholds)
    op, dp = alpha.sel(problem="op", drop=True), alpha.sel(problem="dp", drop=True)
    return xr.Dataset({
        "difference": op - dp,
        "lo": lower.sel(problem="op", drop=True) - upper.sel(problem="dp", drop=True),
        "hi": upper.sel(problem="op", drop=True) - lower.sel(problem="dp", drop=True),
    }).transpose(*KEYS, "d", "seed")


def _replicates(pairs: xr.Dataset, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means over seeds: (n_boot, solver, rho, d); seeds resampled among those present, each
    difference drawn uniformly in its bracket."""
    lo, hi = pairs.lo.values, pairs.hi.values
    present = ~np.isnan(pairs.difference.values)
    n = present.sum(axis=-1, keepdims=True)
    order = np.argsort(~present, axis=-1, kind="stable")  # present seeds first
    u = rng.random((n_boot, *lo.shape))
    idx = np.take_along_axis(np.broadcast_to(order, u.shape), np.minimum((u * n).astype(int), np.maximum(n - 1, 0)),
                             axis=-1)
    draws = np.take_along_axis(np.broadcast_to(lo, u.shape), idx, axis=-1)
    draws = draws + rng.random(u.shape) * (np.take_along_axis(np.broadcast_to(hi, u.shape), idx, axis=-1) - draws)
    keep = np.arange(lo.shape[-1]) < n
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(keep, draws, 0.0).sum(axis=-1) / np.where(n[..., 0] > 0, n[..., 0], np.nan)


def _sign_p(n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    """Exact two-sided sign-test p-value per entry; NaN without a signed pair."""
    out = np.full(n_pos.shape, np.nan)
    for index in np.ndindex(*n_pos.shape):
        total = int(n_pos[index] + n_neg[index])
        if total:
            out[index] = stats.binomtest(int(n_pos[index]), total, 0.5).pvalue
    return out


def _trend(means: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Least-squares (c0, c1) of means (..., d) against 1 / ln d over the d present; NaN with fewer than two."""
    out = np.full((*means.shape[:-1], 2), np.nan)
    x = np.column_stack([np.ones(len(d)), 1.0 / np.log(d)])
    flat, res = means.reshape(-1, means.shape[-1]), out.reshape(-1, 2)
    for i, row in enumerate(flat):
        ok = np.isfinite(row)
        if ok.sum() >= 2:
            res[i] = np.linalg.lstsq(x[ok], row[ok], rcond=None)[0]
    return res.reshape(out.shape)


def op_dp_comparison(thresholds: xr.Dataset, level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> xr.Dataset:
    """The paired OP - DP comparison: per (solver, rho, d) and pooled per (solver, rho) (see the module doc)."""
    if not 0.0 < level < 1.0:
        raise InvalidInput(f"confidence level {level!r} is not in (0, 1)")
    pairs = paired_differences(thresholds)
    present = pairs.difference.notnull()
    reps = _replicates(pairs, n_boot, np.random.default_rng(seed))
    q = [(1 - level) / 2, (1 + level) / 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells without pairs: all-NaN slices
        lo, hi = np.nanquantile(reps, q, axis=0)
        d = pairs.d.values.astype(float)
        trend = _trend(pairs.difference.mean("seed", skipna=True).values, d)
        trend_reps = _trend(reps, d)
        trend_lo, trend_hi = np.nanquantile(trend_reps, q, axis=0)
        pooled_reps = np.nansum(reps * present.sum("seed").values, axis=-1) / present.sum(("d", "seed")).values
        pooled_lo, pooled_hi = np.nanquantile(pooled_reps, q, axis=0)
    pos, neg = (pairs.lo > 0) & present, (pairs.hi < 0) & present
    per_d = (*KEYS, "d")
    out = xr.Dataset({
        "mean": pairs.difference.mean("seed", skipna=True), "median": pairs.difference.median("seed", skipna=True),
        "lo": (per_d, lo), "hi": (per_d, hi), "n_pairs": present.sum("seed"),
        "n_positive": pos.sum("seed"), "n_negative": neg.sum("seed"),
        "sign_p": (per_d, _sign_p(pos.sum("seed").values, neg.sum("seed").values)),
        "pooled_mean": pairs.difference.mean(("d", "seed"), skipna=True),
        "pooled_lo": (KEYS, pooled_lo), "pooled_hi": (KEYS, pooled_hi), "pooled_n_pairs": present.sum(("d", "seed")),
        "pooled_n_positive": pos.sum(("d", "seed")), "pooled_n_negative": neg.sum(("d", "seed")),
        "pooled_sign_p": (KEYS, _sign_p(pos.sum(("d", "seed")).values, neg.sum(("d", "seed")).values)),
        "trend": ((*KEYS, "coef"), trend), "trend_lo": ((*KEYS, "coef"), trend_lo),
        "trend_hi": ((*KEYS, "coef"), trend_hi),
    }, coords={"coef": ["c0", "c1"]})
    out.attrs.update(level=level, n_boot=n_boot, definition="per seed alpha*(op) - alpha*(dp), same (solver, rho, d, "
                     "seed); mean over seeds with a seed-bootstrap percentile interval; exact two-sided sign test; "
                     "trend: per-d mean = c0 + c1 / ln d")
    return out

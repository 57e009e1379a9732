"""Per-cell threshold statistics: median alpha* with bootstrap intervals, first violations, accuracy curves.

Thresholds searched to a resolution (SearchSettings.resolution > 0) know each seed's p* only to
its bracket p_lo .. p_hi - 1, and their alpha_star is the bracket's midpoint. The intervals are
widened to hold whatever p* is inside every bracket: the lower end of a median's interval is the
percentile of bootstrap medians of the brackets' lower ends alpha(p_lo), the upper end that of
their upper ends alpha(p_hi - 1), both over the same resamples of seeds (the median is monotone,
so each replicate of the true p* lies between the two). Exact brackets leave every interval as it was.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import xarray as xr

from lamcap.analysis.load import CELL
from lamcap.errors import InvalidInput

SEED_KEYS = (*CELL, "seed")


def _check_level(level: float, n_boot: int) -> None:
    if not 0.0 < level < 1.0:
        raise InvalidInput(f"confidence level {level!r} is not in (0, 1)")
    if n_boot < 10:
        raise InvalidInput(f"n_boot {n_boot!r} is too small (need >= 10)")


def complete_only(table: xr.Dataset) -> tuple[xr.Dataset, str]:
    """The thresholds whose search finished, and a note naming how many were left out and why.

    A search stops short of a threshold when one of its probes kept failing (an error is never a
    verdict) or when p_max was still SAT; its row has complete = False and a reason in the group
    attribute `reasons`. Stores without the `complete` variable hold only finished searches.
    """
    if "complete" not in table.data_vars or table.sizes.get("threshold", 0) == 0:
        return table, ""
    ok = table.complete.values.astype(bool)
    if ok.all():
        return table, ""
    import json
    from collections import Counter

    reasons = json.loads(table.attrs.get("reasons", "{}")) if isinstance(table.attrs.get("reasons"), str) else {}
    kinds = Counter(r.split(": ", 1)[-1].split(";")[0][:80] for r in reasons.values())
    why = "; ".join(f"{n} x {k}" for k, n in kinds.most_common(3))
    note = (f"{int((~ok).sum())} of {ok.size} thresholds are incomplete and excluded from every table and fit"
            + (f" ({why})" if why else ""))
    return table.isel(threshold=np.flatnonzero(ok)), note


def per_seed(table: xr.Dataset, name: str, reduce: str = "last") -> xr.DataArray:
    """``name`` on dims (problem, solver, rho, d, seed), NaN where a (cell, seed) has no row.

    ``reduce`` picks among several rows of one (cell, seed): 'last' (a resumed row wins) or 'min'.
    """
    dim = next(iter(table[name].dims))
    keyed = table.set_coords([k for k in SEED_KEYS if k in table.data_vars])[[name]]
    grouped = keyed.groupby(list(SEED_KEYS))
    out = getattr(grouped, reduce)()[name]
    return out.transpose(*SEED_KEYS).astype(float).drop_vars(dim, errors="ignore")


def alpha_brackets(table: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray]:
    """Per seed, the loads alpha(p_lo) and alpha(p_hi - 1) between which the seed's alpha* lies.

    Both are alpha_star itself where the bracket is exact (p_hi = p_lo + 1) or unknown (no p_lo/p_hi).
    """
    alpha = per_seed(table, "alpha_star")
    if "p_lo" not in table or "p_hi" not in table:
        return alpha, alpha
    lo, hi = per_seed(table, "p_lo"), per_seed(table, "p_hi") - 1
    d = alpha.d.astype(float)
    wide = (hi > lo) & alpha.notnull()
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = xr.where(wide, lo * np.log(lo.clip(min=1)) / d**2, alpha)
        upper = xr.where(wide, hi * np.log(hi.clip(min=1)) / d**2, alpha)
    return lower.transpose(*alpha.dims), upper.transpose(*alpha.dims)


def bootstrap_medians(values: np.ndarray, n_boot: int, rng: np.random.Generator,
                      upper: np.ndarray | None = None, jitter: np.random.Generator | None = None) -> np.ndarray:
    """Bootstrap replicates of the NaN-skipping median over the last axis: shape (n_boot, *values.shape[:-1]).

    Each replicate resamples, with replacement, as many values as are present in that row. With
    `upper` (>= values, NaN where values are) and `jitter`, each replicate first draws every value
    uniformly in its bracket [values, upper] (thresholds known to a resolution).
    """
    values = np.asarray(values, dtype=float)
    u = rng.random((n_boot, *values.shape))  # first: the resamples do not depend on the brackets
    if upper is not None and not np.array_equal(values, upper, equal_nan=True):
        values = values + jitter.random((n_boot, *values.shape)) * (np.asarray(upper, dtype=float) - values)
    present = np.sort(np.where(np.isnan(values), np.inf, values), axis=-1)  # present values first
    n = (~np.isnan(values)).sum(axis=-1, keepdims=True)
    idx = np.minimum((u * n).astype(np.int64), np.maximum(n - 1, 0))
    draws = np.take_along_axis(np.broadcast_to(present, u.shape), idx, axis=-1)
    draws = np.where(np.arange(values.shape[-1]) < n, draws, np.nan)  # a row of n draws only
    draws = np.where(np.isinf(draws), np.nan, draws)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (cells without seeds) give NaN
        return np.nanmedian(draws, axis=-1)


def _interval(replicates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0, NaN where every replicate is NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(replicates, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo, hi


def median_with_interval(values: xr.DataArray, level: float, n_boot: int, seed: int,
                         brackets: tuple[xr.DataArray, xr.DataArray] | None = None) -> xr.Dataset:
    """Median over ``seed`` of a per-seed array, with a percentile-bootstrap interval.

    With `brackets` (each seed's lower and upper possible value), the interval's ends come from the
    bootstrap medians of the lower ends and of the upper ends, over the same resamples.
    """
    _check_level(level, n_boot)
    rng = np.random.default_rng(seed)
    if brackets is None or brackets[0].equals(brackets[1]):
        reps = bootstrap_medians(values.transpose(..., "seed").values, n_boot, rng)
        lo, hi = _interval(reps, level)
    else:
        lower, upper = (b.transpose(*values.transpose(..., "seed").dims).values for b in brackets)
        lo = _interval(bootstrap_medians(lower, n_boot, copy.deepcopy(rng)), level)[0]
        hi = _interval(bootstrap_medians(upper, n_boot, rng), level)[1]
    template = values.isel(seed=0, drop=True)
    return xr.Dataset({
        "median": values.median("seed", skipna=True),
        "lo": template.copy(data=lo),
        "hi": template.copy(data=hi),
    })


def first_violation(probes: xr.Dataset) -> xr.DataArray:
    """The paper's estimate: per (cell, seed), the smallest probed alpha with a violation (error probes excluded)."""
    mask = (~probes.sat.astype(bool)) & (probes.status != "error")
    if not bool(mask.any()):
        raise InvalidInput("no probe records a violation: the first-violation estimate is undefined")
    unsat = probes.isel(probe=np.flatnonzero(mask.values))
    return per_seed(unsat, "alpha", reduce="min").rename("alpha_first_violation")


def _sample_std(values: xr.DataArray) -> xr.DataArray:
    """Standard deviation over seeds (ddof 1); NaN for cells with fewer than two seeds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return values.std("seed", skipna=True, ddof=1).where(values.notnull().sum("seed") > 1)


def threshold_summary(store_thresholds: xr.Dataset, probes: xr.Dataset | None = None,
                      level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> xr.Dataset:
    """Per cell: n_seeds, median/mean/std of alpha* and p*, bootstrap interval, the search's bracket; first-violation
    statistics if probes are given."""
    alpha = per_seed(store_thresholds, "alpha_star")
    brackets = alpha_brackets(store_thresholds)
    stats = median_with_interval(alpha, level, n_boot, seed, brackets)
    out = xr.Dataset({
        "n_seeds": alpha.notnull().sum("seed"),
        "alpha_star_median": stats["median"],
        "alpha_star_lo": stats["lo"],
        "alpha_star_hi": stats["hi"],
        "alpha_star_mean": alpha.mean("seed", skipna=True),
        "alpha_star_std": _sample_std(alpha),
        "p_star_median": per_seed(store_thresholds, "p_star").median("seed", skipna=True),
        # the search's resolution: alpha(p_hi - 1) - alpha(p_lo), 0 for an exact threshold
        "alpha_star_bracket": (brackets[1] - brackets[0]).median("seed", skipna=True),
    })
    if probes is not None and bool((~probes.sat.astype(bool)).any()):
        fv = first_violation(probes).reindex_like(alpha)
        out["first_violation_mean"] = fv.mean("seed", skipna=True)
        out["first_violation_median"] = fv.median("seed", skipna=True)
    out.attrs.update(level=level, n_boot=n_boot, interval="percentile bootstrap over seeds of the median "
                     "(of the brackets' lower / upper ends for thresholds known to a resolution)")
    return out


def accuracy_curves(probes: xr.Dataset, n_bins: int = 16) -> xr.Dataset:
    """Mean accuracy over probes (all seeds) per cell and bin of alpha; ``alpha_bin`` holds bin centres."""
    if n_bins < 2:
        raise InvalidInput(f"n_bins {n_bins!r} must be >= 2")
    from xarray.groupers import BinGrouper, UniqueGrouper

    valid = probes.isel(probe=np.flatnonzero((probes.status != "error").values))
    bins = np.linspace(0.0, float(valid.alpha.max()) * (1 + 1e-9), n_bins + 1)
    table = xr.Dataset({"accuracy": valid.accuracy.astype(float), "alpha": valid.alpha},
                       coords={k: valid[k] for k in CELL})
    grouped = table.groupby(problem=UniqueGrouper(), solver=UniqueGrouper(), rho=UniqueGrouper(),
                            d=UniqueGrouper(), alpha=BinGrouper(bins=bins))
    out = xr.Dataset({"accuracy": grouped.mean()["accuracy"], "n_probes": grouped.count()["accuracy"]})
    return out.rename(alpha_bins="alpha_bin").assign_coords(alpha_bin=(bins[1:] + bins[:-1]) / 2)

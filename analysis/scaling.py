"""Finite-size scaling of thresholds: three fits of the per-d median alpha*, each with its seed-bootstrap interval
and its bias (docs/THEORY.md 3.7).

* naive:  alpha_inf + a / ln d
* order2: alpha_inf + a / ln d + b / ln(d)^2
* theory: alpha_inf + k (alpha_th(d) - alpha_th(inf)), the shape of the finite-size correction taken from
  the parameter-free prediction alpha_th of the cell (lamcap.analysis.predicted), alpha_inf and k free.

All three are linear in their parameters: ordinary least squares on the medians, the same on every bootstrap
replicate of them. The bias of a form is what it makes of the theory itself: the same fit applied to
alpha_th(d) on the same d, minus alpha_th(inf) (zero for `theory` by construction).
"""
from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from lamcap.analysis import predicted
from lamcap.analysis.load import CELL
from lamcap.analysis.thresholds import alpha_brackets, bootstrap_medians, per_seed
from lamcap.errors import InvalidInput

FORMS = {"naive": ("alpha_inf", "a"), "order2": ("alpha_inf", "a", "b"), "theory": ("alpha_inf", "k")}
MODELS = {"naive": "alpha_inf + a / ln d", "order2": "alpha_inf + a / ln d + b / ln(d)^2",
          "theory": "alpha_inf + k (alpha_th(d) - alpha_th(inf))"}
GROUP = tuple(k for k in CELL if k != "d")  # one fit per (problem, solver, rho)


def scaling_law(inv_ln_d, alpha_inf, a, b=0.0):
    """alpha_c as a function of x = 1 / ln d (the naive and order-2 forms)."""
    return alpha_inf + a * inv_ln_d + b * inv_ln_d**2


def _theory(cell: dict, d: np.ndarray, drawn: bool) -> np.ndarray:
    """The cell's finite-size prediction at d: the canonical one (Monte Carlo) for fits, the smooth one for curves."""
    if drawn:
        return predicted.curve(cell["problem"], cell["solver"], cell["rho"], d)
    return np.array([predicted.finite_size(cell["problem"], cell["solver"], int(v), cell["rho"]) for v in d])


def design(form: str, d: np.ndarray, cell: dict, drawn: bool = False) -> np.ndarray:
    """The regressors of a form at dimensions d (one row per d): [1, 1/ln d(, 1/ln^2 d)] or [1, alpha_th - inf]."""
    d = np.asarray(d, dtype=float)
    x = 1.0 / np.log(d)
    if form == "naive":
        return np.column_stack([np.ones_like(x), x])
    if form == "order2":
        return np.column_stack([np.ones_like(x), x, x * x])
    shape = _theory(cell, d, drawn) - predicted.asymptote(cell["solver"], cell["rho"])
    return np.column_stack([np.ones_like(x), shape])


def _check(form: str, level: float) -> None:
    if form not in FORMS:
        raise InvalidInput(f"fit form {form!r} is not one of {', '.join(FORMS)}")
    if not 0.0 < level < 1.0:
        raise InvalidInput(f"confidence level {level!r} is not in (0, 1)")


def _solve(form: str, d: np.ndarray, values: np.ndarray, cell: dict) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients of every row of `values` (..., n_d) over the d where the first row is present,
    and the same fit applied to the cell's theory; NaN when fewer d than parameters."""
    n_par = len(FORMS[form])
    present = ~np.isnan(values.reshape(-1, values.shape[-1])[0])
    nan = np.full((*values.shape[:-1], n_par), np.nan)
    if present.sum() < n_par:
        return nan, np.full(n_par, np.nan)
    x = design(form, d[present], cell)
    solver = np.linalg.pinv(x)  # (n_par, n_present)
    coef = values[..., present] @ solver.T
    return coef, solver @ _theory(cell, d[present], drawn=False)


def fit_scaling(thresholds: xr.Dataset, form: str = "naive", level: float = 0.95, n_boot: int = 400,
                seed: int = 0) -> xr.Dataset:
    """One fit form of the per-d median alpha* of each (problem, solver, rho); intervals from a bootstrap over seeds.

    Returns dims (problem, solver, rho, param): ``estimate`` (fit of the medians), ``lo``/``hi`` (percentile
    interval of the refits of bootstrap medians), ``std`` (their standard deviation), ``theory_fit`` (the same
    fit of the cell's finite-size theory on the same d), ``bias`` (theory_fit's alpha_inf minus the theory's
    d -> infinity limit) and ``n_d``. Thresholds known only to a resolution (bracket wider than one) enter each
    replicate as a uniform draw within their bracket, so the intervals carry the resolution too.
    """
    _check(form, level)
    alpha = per_seed(thresholds, "alpha_star").transpose(*GROUP, "d", "seed")
    lower, upper = (b.transpose(*alpha.dims).values for b in alpha_brackets(thresholds))
    medians = alpha.median("seed", skipna=True)
    reps = bootstrap_medians(lower, n_boot, np.random.default_rng(seed), upper, np.random.default_rng(seed + 1))
    d = medians.d.values.astype(float)
    params = FORMS[form]
    shape = (*medians.shape[:-1], len(params))
    est, theory_fit = np.full(shape, np.nan), np.full(shape, np.nan)
    boot = np.full((n_boot, *shape), np.nan)
    for index in np.ndindex(*medians.shape[:-1]):
        cell = {k: _scalar(medians[k].values[i]) for k, i in zip(GROUP, index)}
        est[index], theory_fit[index] = _solve(form, d, medians.values[index], cell)
        boot[(slice(None), *index)] = _solve(form, d, reps[(slice(None), *index)], cell)[0]
    return _dataset(medians, form, params, est, boot, theory_fit, level, n_boot)


def _scalar(value):
    """A numpy label as a plain Python value (float or str)."""
    return value.item() if hasattr(value, "item") else value


def _dataset(medians: xr.DataArray, form: str, params: tuple[str, ...], est: np.ndarray, boot: np.ndarray,
             theory_fit: np.ndarray, level: float, n_boot: int) -> xr.Dataset:
    dims = (*GROUP, "param")
    coords = {**{k: medians[k].values for k in GROUP}, "param": list(params)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells without a fit: all-NaN replicates
        lo, hi = np.nanquantile(boot, [(1 - level) / 2, (1 + level) / 2], axis=0)
        std = np.nanstd(boot, axis=0, ddof=1)
    asym = np.array([[[predicted.asymptote(s, r) for r in medians.rho.values] for s in medians.solver.values]
                     for _ in medians.problem.values])
    fits = xr.Dataset({
        "estimate": (dims, est), "lo": (dims, lo), "hi": (dims, hi), "std": (dims, std),
        "theory_fit": (dims, theory_fit), "bias": (GROUP, theory_fit[..., 0] - asym),
        "n_d": (GROUP, medians.notnull().sum("d").values),
    }, coords=coords)
    fits.attrs.update(form=form, model=MODELS[form], level=level, n_boot=n_boot,
                      interval="percentile bootstrap over seeds, refit per replicate",
                      bias="the same fit of the cell's finite-size theory on the same d, minus its d -> infinity limit")
    return fits


def fitted_curve(fits: xr.Dataset, d: np.ndarray) -> np.ndarray:
    """The fitted alpha_c of one (problem, solver, rho) (``fits.sel`` of one cell) on a grid of dimensions."""
    cell = {k: _scalar(fits[k].values) for k in GROUP}
    coef = fits["estimate"].values
    if not np.isfinite(coef).all():
        return np.full(np.shape(d), np.nan)
    return design(fits.attrs["form"], np.asarray(d, dtype=float), cell, drawn=True) @ coef

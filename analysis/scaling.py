"""Finite-size scaling of thresholds: alpha_c(d) = alpha_inf + a / ln d (+ b / ln(d)^2), THEORY.md 3.7."""
from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from lamcap.analysis.load import CELL
from lamcap.analysis.thresholds import alpha_brackets, bootstrap_medians, per_seed
from lamcap.errors import InvalidInput

PARAMS = {1: ("alpha_inf", "a"), 2: ("alpha_inf", "a", "b")}
GROUP = tuple(k for k in CELL if k != "d")  # one fit per (problem, solver, rho)


def scaling_law(inv_ln_d, alpha_inf, a, b=0.0):
    """alpha_c as a function of x = 1 / ln d."""
    return alpha_inf + a * inv_ln_d + b * inv_ln_d**2


def _law(order: int):
    if order == 1:
        return lambda x, alpha_inf, a: scaling_law(x, alpha_inf, a)
    return lambda x, alpha_inf, a, b: scaling_law(x, alpha_inf, a, b)


def _curvefit(medians: xr.DataArray, order: int) -> xr.DataArray:
    """Least-squares fit along d of every other dimension's series; NaN where it is under-determined."""
    enough = medians.notnull().sum("d") >= len(PARAMS[order])
    data = medians.where(enough).rename("alpha").assign_coords(inv_ln_d=("d", 1.0 / np.log(medians.d.values.astype(float))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exactly determined fits cannot estimate a covariance
        fit = data.to_dataset().curvefit(coords="inv_ln_d", func=_law(order), reduce_dims="d",
                                         param_names=list(PARAMS[order]), errors="ignore")
    return fit["alpha_curvefit_coefficients"]


def fit_scaling(thresholds: xr.Dataset, order: int = 1, level: float = 0.95, n_boot: int = 400,
                seed: int = 0) -> xr.Dataset:
    """Fit the per-d median alpha* of each (problem, solver, rho); intervals from a bootstrap over seeds.

    Returns dims (problem, solver, rho, param): ``estimate`` (fit of the medians), ``lo``/``hi`` (percentile
    interval of the refits of bootstrap medians), ``std`` (bootstrap standard deviation), and ``n_d``.
    Thresholds known only to a resolution (bracket wider than one) enter each bootstrap replicate
    as a uniform draw within their bracket, so the intervals carry the resolution too.
    """
    if order not in PARAMS:
        raise InvalidInput(f"fit order {order!r} is not 1 (a / ln d) or 2 (+ b / ln(d)^2)")
    if not 0.0 < level < 1.0:
        raise InvalidInput(f"confidence level {level!r} is not in (0, 1)")
    alpha = per_seed(thresholds, "alpha_star").transpose(*GROUP, "d", "seed")
    lower, upper = (b.transpose(*alpha.dims).values for b in alpha_brackets(thresholds))
    medians = alpha.median("seed", skipna=True)
    # thresholds known to a resolution: each replicate draws every seed's alpha* within its bracket
    reps = bootstrap_medians(lower, n_boot, np.random.default_rng(seed), upper, np.random.default_rng(seed + 1))
    boot = xr.DataArray(reps, dims=("boot", *medians.dims), coords=medians.coords)
    boot_coef = _curvefit(boot, order)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = boot_coef.quantile([(1 - level) / 2, (1 + level) / 2], dim="boot", skipna=True)
    fits = xr.Dataset({
        "estimate": _curvefit(medians, order),
        "lo": lo.drop_vars("quantile"),
        "hi": hi.drop_vars("quantile"),
        "std": boot_coef.std("boot", skipna=True),
        "n_d": medians.notnull().sum("d"),
    })
    fits.attrs.update(model=" + ".join(["alpha_inf", "a / ln d", "b / ln(d)^2"][: order + 1]), order=order,
                      level=level, n_boot=n_boot, interval="percentile bootstrap over seeds, refit per replicate")
    return fits


def fitted_curve(fits: xr.Dataset, d: np.ndarray) -> xr.DataArray:
    """The fitted alpha_c on a grid of dimensions ``d`` (dims of the fit plus d)."""
    x = xr.DataArray(1.0 / np.log(np.asarray(d, dtype=float)), dims="d", coords={"d": np.asarray(d)})
    est = fits["estimate"]
    b = est.sel(param="b") if "b" in est.param.values else 0.0
    return scaling_law(x, est.sel(param="alpha_inf"), est.sel(param="a"), b)


def asymptotic_alpha(solver: str, rho: float) -> float:
    """The d -> infinity prediction for a solver: Hebbian 1/8, otherwise alpha_c(rho) = kappa(rho) / 2."""
    from lamcap import predictions as theory

    return float(theory.ALPHA_HEBBIAN) if solver == "hebbian" else float(theory.alpha_c(rho))


def finite_size_alpha(solver: str, d: int, rho: float) -> float:
    """The parameter-free finite-size prediction at dimension d (THEORY.md 3.2; Hebbian 3.5)."""
    from lamcap import predictions as theory

    if solver == "hebbian":
        return float(theory.hebbian_finite_size(int(d))[1])
    return float(theory.finite_size_prediction(int(d), float(rho))[1])

"""lamcap.analysis.scaling: the finite-size fit recovers known laws, and its bootstrap interval covers them."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from lamcap.analysis.scaling import fit_scaling, fitted_curve, scaling_law
from lamcap.errors import InvalidInput

DS = (8, 16, 32, 64, 128, 256)


def _thresholds(law, seeds: int, noise: float, reps: int = 1, rng_seed: int = 0) -> xr.Dataset:
    """Per-seed alpha* = law(d) + Gaussian noise; each repetition is its own (fake) rho label."""
    rng = np.random.default_rng(rng_seed)
    rows = [(rep, d, s) for rep in range(reps) for d in DS for s in range(seeds)]
    alpha = np.array([law(d) for _, d, _ in rows]) + rng.normal(0.0, noise, size=len(rows))
    n = len(rows)
    return xr.Dataset({
        "problem": ("threshold", ["op"] * n), "solver": ("threshold", ["adam"] * n),
        "rho": ("threshold", [1.0 + rep for rep, _, _ in rows]), "d": ("threshold", [d for _, d, _ in rows]),
        "seed": ("threshold", [s for _, _, s in rows]), "alpha_star": ("threshold", alpha),
    })


@pytest.mark.parametrize("order,params", [(1, (0.5, 1.2)), (2, (0.45, 1.5, -0.7))])
def test_noise_free_thresholds_give_the_law_exactly(order, params):
    th = _thresholds(lambda d: scaling_law(1 / np.log(d), *params), seeds=3, noise=0.0)
    fit = fit_scaling(th, order=order, n_boot=20).sel(problem="op", solver="adam", rho=1.0)
    np.testing.assert_allclose(fit.estimate.values, params, atol=1e-6)
    np.testing.assert_allclose(fit.lo.values, params, atol=1e-6)
    assert int(fit.n_d) == len(DS)
    curve = fitted_curve(fit, np.array([10, 1000]))
    np.testing.assert_allclose(curve.values, scaling_law(1 / np.log([10, 1000]), *params), atol=1e-6)


def test_interval_covers_true_parameters_in_most_repetitions():
    alpha_inf, a, reps = 0.5, 1.2, 50
    th = _thresholds(lambda d: alpha_inf + a / np.log(d), seeds=11, noise=0.06, reps=reps, rng_seed=11)
    fit = fit_scaling(th, order=1, level=0.95, n_boot=200, seed=5).sel(problem="op", solver="adam")
    covered_inf = (fit.lo.sel(param="alpha_inf") <= alpha_inf) & (alpha_inf <= fit.hi.sel(param="alpha_inf"))
    covered_a = (fit.lo.sel(param="a") <= a) & (a <= fit.hi.sel(param="a"))
    assert fit.sizes["rho"] == reps
    assert float(covered_inf.mean()) >= 0.8, float(covered_inf.mean())
    assert float(covered_a.mean()) >= 0.8, float(covered_a.mean())
    # the interval is informative, not just wide: its width is a few bootstrap standard deviations
    width = (fit.hi - fit.lo).sel(param="alpha_inf")
    assert float((width / fit["std"].sel(param="alpha_inf")).median()) == pytest.approx(3.9, rel=0.25)
    assert abs(float(fit.estimate.sel(param="alpha_inf").mean()) - alpha_inf) < 0.02


def test_too_few_dimensions_give_no_fit():
    th = _thresholds(lambda d: 1.0, seeds=3, noise=0.01)
    th = th.isel(threshold=np.flatnonzero(th.d.values <= 16))  # two dimensions: order 2 is under-determined
    two = fit_scaling(th, order=2, n_boot=20)
    assert np.isnan(two.estimate.values).all() and int(two.n_d.squeeze()) == 2
    assert np.isfinite(fit_scaling(th, order=1, n_boot=20).estimate.values).all()


def test_bad_order_and_level_are_rejected():
    th = _thresholds(lambda d: 1.0, seeds=2, noise=0.0)
    with pytest.raises(InvalidInput, match="3"):
        fit_scaling(th, order=3)
    with pytest.raises(InvalidInput, match="1.5"):
        fit_scaling(th, level=1.5)

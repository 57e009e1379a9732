"""lamcap.analysis.scaling: each fit form on synthetic thresholds of known law; whether its interval covers the truth.

The synthetic truth has the shape of the finite-size theory but its own limit: alpha*(d) = A + K (alpha_RS(d) -
alpha_c) with A = 0.45, K = 1.3 (alpha_c = 0.5 at rho = 1), plus Gaussian noise per seed, on the scale run's d.
"""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from lamcap.analysis import predicted
from lamcap.analysis.scaling import FORMS, fit_scaling, fitted_curve, scaling_law
from lamcap.errors import InvalidInput

DS = (8, 12, 16, 24, 32, 48, 64, 96, 128)
A, K, REPS = 0.45, 1.3, 20


def _thresholds(law, seeds: int, noise: float, reps: int = 1, rng_seed: int = 0, ds=DS) -> xr.Dataset:
    """Per-seed alpha* = law(d) + Gaussian noise; each repetition is its own (fake, optimal-memory) solver label."""
    rng = np.random.default_rng(rng_seed)
    rows = [(rep, d, s) for rep in range(reps) for d in ds for s in range(seeds)]
    alpha = np.array([law(d) for _, d, _ in rows]) + rng.normal(0.0, noise, size=len(rows))
    n = len(rows)
    return xr.Dataset({
        "problem": ("threshold", ["op"] * n), "solver": ("threshold", [f"adam{rep:02d}" for rep, _, _ in rows]),
        "rho": ("threshold", [1.0] * n), "d": ("threshold", [d for _, d, _ in rows]),
        "seed": ("threshold", [s for _, _, s in rows]), "alpha_star": ("threshold", alpha),
    })


def rs(d: int) -> float:
    return predicted.finite_size("op", "adam", d, 1.0)


@pytest.fixture(scope="module")
def synthetic_fits() -> dict[str, xr.Dataset]:
    th = _thresholds(lambda d: A + K * (rs(d) - 0.5), seeds=6, noise=0.02, reps=REPS, rng_seed=3)
    return {form: fit_scaling(th, form, level=0.95, n_boot=150, seed=1).sel(problem="op", rho=1.0) for form in FORMS}


def _coverage(fit: xr.Dataset, param: str, truth: float) -> float:
    sel = fit.sel(param=param)
    return float(((sel.lo <= truth) & (truth <= sel.hi)).mean())


def test_theory_shaped_fit_recovers_the_limit_and_its_interval_covers_it(synthetic_fits):
    fit = synthetic_fits["theory"]
    assert _coverage(fit, "alpha_inf", A) >= 0.85 and _coverage(fit, "k", K) >= 0.85
    assert float(fit.estimate.sel(param="alpha_inf").mean()) == pytest.approx(A, abs=0.01)
    assert float(np.abs(fit.bias).max()) < 1e-9  # the theory fit of the theory is the theory
    assert float((fit.hi - fit.lo).sel(param="alpha_inf").mean()) < 0.1


def test_order_two_fit_is_nearly_unbiased_but_wide(synthetic_fits):
    fit, shaped = synthetic_fits["order2"], synthetic_fits["theory"]
    assert _coverage(fit, "alpha_inf", A) >= 0.8
    assert float(fit.estimate.sel(param="alpha_inf").mean()) == pytest.approx(A, abs=0.03)
    assert 0.0 < float(fit.bias.mean()) < 0.03  # K times this is all it misses by on average
    width = lambda f: float((f.hi - f.lo).sel(param="alpha_inf").mean())  # noqa: E731
    assert width(fit) > 2 * width(shaped)


def test_naive_fit_misses_the_limit_by_its_stated_bias(synthetic_fits):
    """The naive form fitted to the RS curve on d = 8..128 gives alpha_inf 0.16 too high: on data of that shape
    its estimate sits K x bias above the truth and its interval (about 0.05 wide) never holds the truth."""
    fit = synthetic_fits["naive"]
    bias = float(fit.bias.isel(solver=0))
    assert bias == pytest.approx(0.16, abs=0.01) and np.allclose(fit.bias, bias)
    assert _coverage(fit, "alpha_inf", A) <= 0.05
    assert float(fit.estimate.sel(param="alpha_inf").mean()) == pytest.approx(A + K * bias, abs=0.01)
    theory_fit = fit.theory_fit.isel(solver=0).values  # the fit of the theory curve alone, noise-free
    assert theory_fit[0] - 0.5 == pytest.approx(bias)


@pytest.mark.parametrize("form,params", [("naive", (0.5, 1.2)), ("order2", (0.45, 1.5, -0.7)), ("theory", (0.47, 1.1))])
def test_noise_free_thresholds_give_the_law_exactly(form, params):
    if form == "theory":
        law = lambda d: params[0] + params[1] * (rs(d) - 0.5)  # noqa: E731
    else:
        law = lambda d: scaling_law(1 / np.log(d), *params)  # noqa: E731
    fit = fit_scaling(_thresholds(law, seeds=3, noise=0.0), form, n_boot=20).sel(problem="op", solver="adam00",
                                                                                  rho=1.0)
    np.testing.assert_allclose(fit.estimate.values, params, atol=1e-9)
    np.testing.assert_allclose(fit.lo.values, params, atol=1e-9)
    assert int(fit.n_d) == len(DS)
    grid = np.array([10, 100, 10**6])
    if form == "theory":  # drawn with the smooth theory curve (lamcap.analysis.predicted.curve)
        law = lambda d: params[0] + params[1] * (predicted.curve("op", "adam", 1.0, [d])[0] - 0.5)  # noqa: E731
    np.testing.assert_allclose(fitted_curve(fit, grid), [law(d) for d in grid], rtol=1e-9)


def test_too_few_dimensions_give_no_fit():
    th = _thresholds(lambda d: 1.0, seeds=3, noise=0.01, ds=(8, 16))  # two dimensions: order 2 is under-determined
    two = fit_scaling(th, "order2", n_boot=20)
    assert np.isnan(two.estimate.values).all() and int(two.n_d.squeeze()) == 2
    assert np.isfinite(fit_scaling(th, "naive", n_boot=20).estimate.values).all()
    assert np.isfinite(fit_scaling(th, "theory", n_boot=20).estimate.values).all()


def test_bad_form_and_level_are_rejected():
    th = _thresholds(lambda d: 1.0, seeds=2, noise=0.0)
    with pytest.raises(InvalidInput, match="'cubic'"):
        fit_scaling(th, "cubic")
    with pytest.raises(InvalidInput, match="1.5"):
        fit_scaling(th, level=1.5)

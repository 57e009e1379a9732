"""The finite-size prediction at large d: the Monte Carlo E[G_p] and the large-p expansion are independent
methods; where both run (p up to 10^12, d up to 10^6) they must agree."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lamcap import predictions as theory
from lamcap.errors import InvalidInput


@pytest.mark.parametrize("p", [10**3, 10**6, 10**9, 10**12, 10**22])
def test_expansion_of_expected_G_agrees_with_the_monte_carlo(p):
    mc, se = theory.expected_G(p)
    expansion = theory.expected_G_expansion(p)
    # the expansion's own error is about 0.2% (docs/THEORY.md 3.8), the Monte Carlo's one standard error
    assert abs(expansion - mc) < 0.003 * mc + 3 * se, (p, mc, se, expansion)


def test_expansion_is_smooth_and_rises_towards_two_ln_p():
    ps = np.geomspace(10, 1e22, 40)
    values = np.array([theory.expected_G_expansion(float(p)) for p in ps])
    ratio = values / (2 * np.log(ps))
    assert np.all(np.diff(values) > 0) and np.all(np.diff(ratio) > 0) and np.all(ratio < 1)
    assert theory.expected_G_expansion(22.5) == pytest.approx(
        0.5 * (theory.expected_G_expansion(22.0) + theory.expected_G_expansion(23.0)), rel=1e-3)  # a real p


@pytest.mark.parametrize("d", [64, 1000, 10**6])
def test_finite_size_prediction_by_both_methods_agrees_up_to_large_d(d):
    p_mc, alpha_mc = theory.finite_size_prediction(d, 1.0)  # the grid of the Monte Carlo now reaches p = 10^24
    p_ex, alpha_ex = theory.finite_size_prediction_expansion(d, 1.0)
    assert alpha_ex == pytest.approx(alpha_mc, rel=0.005)
    assert alpha_ex == pytest.approx(p_ex * math.log(p_ex) / d**2, rel=1e-12)


def test_finite_size_prediction_falls_slowly_towards_the_asymptote_up_to_d_10_to_12():
    ds = [8, 10**2, 10**3, 10**4, 10**6, 10**9, 10**12]
    for rho in (1.0, 0.5):
        alphas = np.array([theory.finite_size_prediction_expansion(d, rho)[1] for d in ds])
        excess = alphas - theory.alpha_c(rho)
        assert np.all(np.diff(alphas) < 0) and np.all(excess > 0)
        # the corrections fall like ln ln d / ln d: still 0.06-0.07 at d = 10^12
        assert 0.05 < excess[-1] < 0.08


def test_expansion_rejects_bad_p():
    with pytest.raises(InvalidInput, match="1.5"):
        theory.expected_G_expansion(1.5)
    with pytest.raises(InvalidInput, match="nan"):
        theory.expected_G_expansion(float("nan"))

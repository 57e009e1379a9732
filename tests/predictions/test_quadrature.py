"""The Gauss rules of lamcap.predictions.quadrature against closed-form moments and brute-force sampling."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from lamcap.predictions.quadrature import chi_square_rule, gamma_rule, maximum_rule


@pytest.mark.parametrize("shape", [0.5, 3.5, 40.0, 1e3, 1e9])
def test_gamma_rule_has_the_moments_of_the_gamma_law(shape):
    x, w = gamma_rule(shape, 12)
    assert w.sum() == pytest.approx(1.0) and np.all(w >= 0)
    assert np.dot(w, x) == pytest.approx(shape, rel=1e-9)
    assert np.dot(w, (x - shape) ** 2) == pytest.approx(shape, rel=1e-6)
    assert np.dot(w, (x - shape) ** 3) == pytest.approx(2 * shape, rel=1e-4, abs=1e-6 * shape**1.5)


def test_chi_square_rule_integrates_a_smooth_tail_function():
    x, w = chi_square_rule(63.0, 12)
    exact = integrate.quad(lambda v: special.ndtr((40.0 - v) / 4.0) * math.exp(
        (63 / 2 - 1) * math.log(v) - v / 2 - 63 / 2 * math.log(2) - special.gammaln(63 / 2)), 0, 300)[0]
    assert np.dot(w, special.ndtr((40.0 - x) / 4.0)) == pytest.approx(exact, rel=0.02)


@pytest.mark.parametrize("count", [1, 2, 9, 1000])
def test_maximum_rule_gives_the_law_of_the_maximum(count):
    m, w = maximum_rule(float(count), 32)
    brute = np.random.default_rng(count).standard_normal((200_000 // count + 2000, count)).max(axis=1)
    assert np.dot(w, m) == pytest.approx(brute.mean(), abs=4 * brute.std() / math.sqrt(brute.size) + 1e-3)
    if count == 2:
        assert np.dot(w, m) == pytest.approx(1 / math.sqrt(math.pi), rel=1e-4)  # E max of two N(0, 1)


def test_maximum_rule_keeps_its_precision_at_a_count_of_10_to_20():
    m, w = maximum_rule(1e20, 32)
    assert np.all(np.isfinite(m)) and 9.0 < np.dot(w, m) < 9.6  # sqrt(2 ln n) - O(ln ln n / sqrt(ln n))

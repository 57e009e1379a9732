"""lamcap.predictions against independent references: closed forms, sampled matrices, direct simulation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from lamcap import predictions as theory
from lamcap.errors import InvalidInput
from lamcap.predictions import capacity

D_SAMPLED = 1000


@pytest.fixture(scope="module")
def gaussian_squared_sv() -> np.ndarray:
    """Squared singular values, decreasing, of one d x d matrix with N(0, 1/d) entries (d = 1000)."""
    g = np.random.default_rng(20260).standard_normal((D_SAMPLED, D_SAMPLED)) / math.sqrt(D_SAMPLED)
    return np.linalg.eigvalsh(g @ g.T)[::-1]


def _cdf_on_grid(pdf, rho: float, top: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """CDF of a singular-value density by cumulative trapezoid on a grid dense near 0."""
    s = np.unique(np.concatenate([np.geomspace(1e-9, 0.05, 2000), np.linspace(0.0, top, 30001)]))
    dens = pdf(s, rho)
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(s))])
    return s, cdf / cdf[-1]


def _ks(values: np.ndarray, pdf, rho: float) -> float:
    s, cdf = _cdf_on_grid(pdf, rho)
    return float(stats.kstest(values, lambda x: np.interp(x, s, cdf)).statistic)


# ---------------------------------------------------------------- kappa and alpha_c
def test_kappa_of_one_is_one_and_the_table_of_docs_theory():
    assert theory.kappa(1.0) == pytest.approx(1.0, abs=1e-12)
    assert theory.alpha_c(1.0) == pytest.approx(0.5, abs=1e-12)
    table = {1.0: 0.5000, 0.75: 0.4935, 0.5: 0.4469, 0.25: 0.3115, 0.1: 0.1568}
    for rho, expected in table.items():
        assert theory.alpha_c(rho) == pytest.approx(expected, abs=6e-5)


@pytest.mark.parametrize("rho", [0.9, 0.6, 0.3, 0.05])
def test_kappa_equals_numerical_quadrature_on_the_quarter_circle(rho):
    edge = theory.lower_edge(rho)
    second, _ = integrate.quad(lambda s: s * s * math.sqrt(4 - s * s) / math.pi, edge, 2.0, epsabs=1e-13)
    assert theory.kappa(rho) == pytest.approx(second, rel=1e-9)
    mass, _ = integrate.quad(lambda s: math.sqrt(4 - s * s) / math.pi, theory.lower_edge(rho), 2.0)
    assert mass == pytest.approx(rho, rel=1e-9)


@pytest.mark.parametrize("rho", [1.0, 0.75, 0.5, 0.25, 0.1])
def test_alpha_c_matches_top_singular_values_of_sampled_matrices(gaussian_squared_sv, rho):
    r = round(rho * D_SAMPLED)
    sampled_kappa = gaussian_squared_sv[:r].sum() / D_SAMPLED
    assert theory.alpha_c(rho) == pytest.approx(sampled_kappa / 2, rel=0.01)


# ---------------------------------------------------------------- spectra
@pytest.mark.parametrize("rho", [1.0, 0.5, 0.25])
def test_spectral_densities_integrate_to_one(rho):
    edge = theory.lower_edge(rho)
    mass, _ = integrate.quad(lambda s: float(theory.truncated_quarter_circle_pdf(s, rho)), edge, 2.0)
    assert mass == pytest.approx(1.0, abs=1e-8)
    assert theory.truncated_quarter_circle_pdf(np.array([edge - 1e-6, 2.0 + 1e-6, 5.0]), rho).tolist() == [0, 0, 0]
    knots = list(np.linspace(0.0, 3.0, 121)[1:-1])
    f = lambda s: float(theory.two_layer_init_pdf(s, rho))  # noqa: E731
    mass, _ = integrate.quad(f, 0.0, 3.0, points=knots, limit=400)
    second, _ = integrate.quad(lambda s: s * s * f(s), 0.0, 3.0, points=knots, limit=400)
    assert mass == pytest.approx(1.0, abs=1e-4)
    assert second == pytest.approx(1.0, abs=1e-4)  # mean squared singular value 1
    assert np.all(theory.two_layer_init_pdf(np.array([-1.0, 0.0, 2.7, 6.0]), rho) == 0.0)


@pytest.mark.parametrize("rho", [0.75, 0.5, 0.25])
def test_truncated_quarter_circle_matches_top_singular_values(gaussian_squared_sv, rho):
    # the top rho d singular values of a Gaussian matrix follow the quarter circle truncated at s_rho
    top = np.sqrt(gaussian_squared_sv[:round(rho * D_SAMPLED)])
    assert _ks(top, theory.truncated_quarter_circle_pdf, rho) < 0.03
    assert _ks(top, theory.truncated_quarter_circle_pdf, rho / 2) > 0.1


def _two_layer_singular_values(rho: float, n_values: int, rng) -> np.ndarray:
    """Non-zero singular values of W = A B (d = 1000, N(0, 1/d) entries), scaled to mean square 1, pooled."""
    d, r, out = D_SAMPLED, round(rho * D_SAMPLED), []
    while sum(map(len, out)) < n_values:
        a = rng.standard_normal((d, r)) / math.sqrt(d)
        b = rng.standard_normal((r, d)) / math.sqrt(d)
        # non-zero eigenvalues of (AB)^T AB = those of L^T (A^T A) L with B B^T = L L^T (r x r, cheaper)
        chol = np.linalg.cholesky(b @ b.T)
        sq = np.clip(np.linalg.eigvalsh(chol.T @ (a.T @ a) @ chol), 0.0, None)
        out.append(np.sqrt(sq / sq.mean()))
    return np.concatenate(out)


@pytest.mark.parametrize("rho", [1.0, 0.5, 0.25])
def test_two_layer_init_density_matches_sampled_products(rho):
    sv = _two_layer_singular_values(rho, 2000 if rho < 1 else 1000, np.random.default_rng(int(rho * 100)))
    assert _ks(sv, theory.two_layer_init_pdf, rho) < 0.03
    other = 0.5 if rho != 0.5 else 1.0
    assert _ks(sv, theory.two_layer_init_pdf, other) > 0.1


# ---------------------------------------------------------------- G_p
def _generic_G(xi: np.ndarray) -> float:
    c = xi[1:] - xi[0]
    objective = lambda t: t * t + np.sum(np.clip(c - t, 0.0, None) ** 2)  # noqa: E731
    res = optimize.minimize_scalar(objective, bounds=(0.0, max(c.max(), 0.0) + 1.0), method="bounded",
                                   options={"xatol": 1e-12})
    return min(float(res.fun), objective(0.0))


@pytest.mark.parametrize("p", [2, 3, 7, 40, 300])
def test_G_closed_form_equals_a_generic_minimiser(p):
    xi = np.random.default_rng(p).standard_normal((30, p))
    xi[0, 0] = 10.0  # every competitor below the target: G = 0
    closed = theory.G_p(xi)
    generic = np.array([_generic_G(row) for row in xi])
    assert closed[0] == 0.0
    np.testing.assert_allclose(closed, generic, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("p", [5, 60, 1500])
def test_expected_G_matches_brute_force_monte_carlo(p):
    xi = np.random.default_rng(3 * p).standard_normal((max(4000, 400_000 // p), p))
    brute = theory.G_p(xi)
    mean, se = theory.expected_G(p)
    assert abs(brute.mean() - mean) < 4 * math.hypot(se, brute.std() / math.sqrt(len(brute)))
    assert se == pytest.approx(brute.std() / math.sqrt(theory.DEFAULT_SAMPLES), rel=0.1)


def test_expected_G_is_seeded_and_its_error_shrinks_with_samples():
    a, b = theory.expected_G(200, n_samples=3000, seed=4), theory.expected_G(200, n_samples=3000, seed=5)
    assert capacity._expected_G.__wrapped__(200, 3000, 4) == a  # recomputed, not read from the cache
    assert a != b and abs(a[0] - b[0]) < 5 * math.hypot(a[1], b[1])
    big = theory.expected_G(200, n_samples=12000, seed=4)
    assert big[1] == pytest.approx(a[1] / 2, rel=0.15)


def test_expected_G_over_extreme_value_rises_and_stays_below_one():
    ps = [10, 30, 100, 1000, 10**4, 10**5, 10**6]
    ratio = np.array([theory.expected_G(p)[0] / (2 * math.log(p)) for p in ps])
    assert np.all(np.diff(ratio) > 0) and np.all(ratio < 1)
    assert 0.55 < ratio[3] < 0.65  # docs/THEORY.md 3.1: about 0.6 at p = 10^3


# ---------------------------------------------------------------- finite-size prediction
def test_finite_size_prediction_at_d8_and_its_balance():
    p_star, alpha = theory.finite_size_prediction(8, 1.0)
    assert alpha == pytest.approx(1.07, abs=0.03)
    assert alpha == pytest.approx(theory.p_to_alpha(p_star, 8))
    # p* balances p E[G_p] = kappa d^2: bracketed by the integers around it
    lo, hi = math.floor(p_star), math.ceil(p_star)
    assert lo * theory.expected_G(lo)[0] <= 64 <= hi * theory.expected_G(hi)[0]


def test_finite_size_prediction_decreases_in_d_and_stays_above_the_asymptote():
    ds = [8, 16, 32, 64, 128, 256]
    for rho in (1.0, 0.5):
        alphas = np.array([theory.finite_size_prediction(d, rho)[1] for d in ds])
        assert np.all(np.diff(alphas) < 0)
        assert np.all(alphas > theory.alpha_c(rho))
    assert theory.finite_size_prediction(64, 0.5)[1] < theory.finite_size_prediction(64, 1.0)[1]


def test_predicted_critical_p_dispatches_on_kind():
    assert theory.predicted_critical_p(16, 0.5, "optimal") == theory.finite_size_prediction(16, 0.5)[0]
    assert theory.predicted_critical_p(16, 0.5, "hebbian") == theory.hebbian_finite_size(16, 0.5)[0]
    assert theory.predicted_critical_p(16, 0.5, "hebbian", "dp") == theory.hebbian_dp_finite_size(16, 0.5)[0]
    with pytest.raises(InvalidInput, match="'lp'"):
        theory.predicted_critical_p(16, 0.5, "lp")


# ---------------------------------------------------------------- Hebbian
def _simulated_success(p: int, d: int, trials: int, rng) -> float:
    """Independent-Gaussian model: per row a N(m, 1) target against p - 1 N(0, 1) off-targets."""
    m = math.sqrt(d**4 / (p * d**2 + 2 * d**3))
    target = m + rng.standard_normal((trials, p))
    best_other = rng.standard_normal((trials, p, p - 1)).max(axis=2)
    return float(np.mean(np.all(target > best_other, axis=1)))


@pytest.mark.parametrize("d", [8, 32])
def test_hebbian_probability_matches_direct_simulation(d):
    rng = np.random.default_rng(d)
    p_half, alpha = theory.hebbian_finite_size(d)
    assert theory.hebbian_success_probability(p_half, d) == pytest.approx(0.5, abs=1e-9)
    assert alpha == pytest.approx(theory.p_to_alpha(p_half, d))
    for p in sorted({max(2, round(p_half / 2)), round(p_half), round(2 * p_half)}):
        trials = 3000
        sim = _simulated_success(p, d, trials, rng)
        exact = theory.hebbian_success_probability(p, d)
        assert abs(sim - exact) < 4 * math.sqrt(exact * (1 - exact) / trials) + 1e-3


def test_hebbian_finite_size_nears_one_eighth_at_large_d():
    assert theory.ALPHA_HEBBIAN == 0.125
    # the 2 d^3 term pulls the small-d values far below 1/8; by d = 4096 it is within 10 %
    assert theory.hebbian_finite_size(16)[1] < 0.5 * theory.ALPHA_HEBBIAN
    assert theory.hebbian_finite_size(4096)[1] == pytest.approx(theory.ALPHA_HEBBIAN, rel=0.1)


# ---------------------------------------------------------------- load and extreme value
def test_alpha_to_p_inverts_p_to_alpha():
    for alpha, d in [(0.5, 8), (1.07, 8), (0.125, 300), (2.0, 1024)]:
        p = theory.alpha_to_p(alpha, d)
        assert theory.p_to_alpha(p, d) == pytest.approx(alpha, rel=1e-12)
    p = np.array([22.0, 100.0])
    np.testing.assert_allclose(theory.p_to_alpha(p, 8), p * np.log(p) / 64)


def test_extreme_value_threshold_is_vectorised_and_tracks_the_maximum():
    p = np.array([10, 1000, 100000])
    np.testing.assert_allclose(theory.extreme_value_threshold(p), np.sqrt(2 * np.log(p)))
    maxima = np.random.default_rng(1).standard_normal((200, 100000)).max(axis=1)
    assert 0.85 < maxima.mean() / theory.extreme_value_threshold(100000) < 1.0


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, needle", [
    (lambda: theory.kappa(0.0), "0.0"),
    (lambda: theory.alpha_c(1.5), "1.5"),
    (lambda: theory.finite_size_prediction(1, 1.0), "d 1"),
    (lambda: theory.finite_size_prediction(8, -0.2), "-0.2"),
    (lambda: theory.hebbian_finite_size(0), "d 0"),
    (lambda: theory.expected_G(1), "p 1"),
    (lambda: theory.extreme_value_threshold(np.array([5.0, 1.5])), "1.5"),
    (lambda: theory.alpha_to_p(-1.0, 8), "-1.0"),
    (lambda: theory.two_layer_init_pdf(1.0, 2.0), "2.0"),
    (lambda: theory.truncated_quarter_circle_pdf(1.0, 0), "rho 0"),
])
def test_bad_values_raise_invalid_input_naming_them(call, needle):
    with pytest.raises(InvalidInput, match=needle.replace(".", r"\.")):
        call()

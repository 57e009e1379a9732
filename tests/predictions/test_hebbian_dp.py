"""The DP Hebbian model and the rank cut against direct simulation of the Hebbian memory (numpy matrices).

The references build W_H = sum_mu y^mu_mu x_mu^T (cut to rank r by SVD, as lamcap.kernels.weights.hebbian
does) and, for DP, integrate the competitors out exactly: given W, row mu's competitors score i.i.d.
N(0, |W x_mu|^2), so P(all stored | W) = prod_mu Phi(t_mu)^(p - 1) with no approximation.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from lamcap import predictions as theory
from lamcap.errors import InvalidInput
from lamcap.predictions import hebbian_dp, hebbian_rank


def _row_scores(p: int, d: int, rank: int, rng) -> np.ndarray:
    """t_mu = y_mu . W x_mu / |W x_mu| of one instance, W the Hebbian memory cut to `rank`."""
    x, y = rng.standard_normal((p, d)), rng.standard_normal((p, d))
    w = y.T @ x
    if rank < d:
        u, s, vh = np.linalg.svd(w)
        w = (u[:, :rank] * s[:rank]) @ vh[:rank]
    v = x @ w.T
    return np.einsum("ij,ij->i", y, v) / np.linalg.norm(v, axis=1)


def _simulated_success(p: int, d: int, rho: float, instances: int, seed: int) -> tuple[float, float]:
    """P(all p rows stored) of the DP Hebbian memory, competitors integrated out exactly; (mean, std error)."""
    rng = np.random.default_rng(seed)
    rank = theory.rank_of(rho, d)
    values = [math.exp((p - 1) * special.log_ndtr(_row_scores(p, d, rank, rng)).sum()) for _ in range(instances)]
    return float(np.mean(values)), float(np.std(values) / math.sqrt(instances))


def test_row_law_has_the_moments_of_simulated_rows():
    rng = np.random.default_rng(0)
    t = np.concatenate([_row_scores(60, 48, 48, rng) for _ in range(60)])
    assert hebbian_dp.target_mean(60, 48) == pytest.approx(t.mean(), abs=4 * t.std() / math.sqrt(t.size))
    assert hebbian_dp.target_mean(60, 48) == pytest.approx(48 / math.sqrt(60 + 48), rel=0.03)  # d / sqrt(p + d)


def test_row_failure_quadrature_equals_sampling_the_row_law():
    rng = np.random.default_rng(1)
    p, d, n = 40, 32, 1_000_000
    r = np.sqrt(rng.chisquare(d, n))
    a, c, q, z = rng.chisquare(d, n), rng.chisquare(p - 1, n), rng.chisquare(d - 1, n), rng.standard_normal(n)
    w = np.sqrt(a) * r + np.sqrt(c) * z
    t = r * w / np.sqrt(w * w + c * q)
    sampled = np.mean(-np.expm1((p - 1) * special.log_ndtr(t)))
    assert hebbian_dp.row_failure(p, d) == pytest.approx(sampled, rel=0.03)


@pytest.mark.parametrize("rho", [1.0, 0.5])
def test_dp_prediction_matches_simulated_hebbian_memories(rho):
    d = 40
    p_half, alpha = theory.hebbian_prediction("dp", d, rho)
    assert alpha == pytest.approx(theory.p_to_alpha(p_half, d))
    for p in (round(0.8 * p_half), round(p_half), round(1.25 * p_half)):
        model = math.exp(theory.hebbian_dp_log_success(p, d, rho))
        sim, se = _simulated_success(p, d, rho, 200, seed=p)
        assert abs(model - sim) < 4 * se + 0.03, (p, model, sim, se)


def test_the_old_gaussian_model_misses_the_dp_memory_by_a_factor_of_about_two():
    # the finite-size OP model (off-target variance with 2 d^3) against the DP law at d = 64
    p_op, p_dp = theory.hebbian_finite_size(64)[0], theory.hebbian_dp_finite_size(64)[0]
    assert 1.5 < p_dp / p_op < 2.2
    sim_at_op, _ = _simulated_success(round(p_op), 64, 1.0, 100, seed=3)
    assert sim_at_op > 0.9  # where the old model says 1/2, the DP memory almost always stores every row


def test_cut_factors_are_one_below_the_rank_and_reach_the_asymptote():
    assert hebbian_rank.cut_factors(16, 64, 0.5) == (1.0, 1.0)  # rank of W_H is p = 16 < r = 32
    assert hebbian_rank.cut_factors(500, 64, 1.0) == (1.0, 1.0)
    g, h = hebbian_rank.cut_factors(10**5, 64, 0.5)
    assert (g, h) == (pytest.approx(math.sqrt(theory.kappa(0.5))), 1.0)
    g, h = hebbian_rank.cut_factors(128, 64, 0.5)  # measured at p / d = 2
    assert 0.935 < g < 0.96 and 1.0 < h < 1.06


def test_cut_factors_match_rows_of_a_larger_memory():
    """Measured at d = 32; the same p / d at d = 96 gives the same factors (to 1.5%)."""
    full = np.concatenate([_row_scores(144, 96, 96, np.random.default_rng(k)) for k in range(8)])
    cut = np.concatenate([_row_scores(144, 96, 48, np.random.default_rng(k)) for k in range(8)])
    g, h = hebbian_rank.cut_factors(144, 96, 0.5)
    assert cut.mean() / full.mean() == pytest.approx(g, rel=0.015)
    assert cut.std() / full.std() == pytest.approx(h, rel=0.04)


def test_hebbian_predictions_near_their_asymptotes_at_large_d():
    assert theory.hebbian_asymptote(1.0) == theory.ALPHA_HEBBIAN
    assert theory.hebbian_asymptote(0.5) == pytest.approx(theory.kappa(0.5) / 8)
    for rho in (1.0, 0.5):
        for problem in ("op", "dp"):
            alpha = theory.hebbian_prediction(problem, 10**12, rho)[1]
            assert alpha == pytest.approx(theory.hebbian_asymptote(rho), rel=0.06)


def test_hebbian_prediction_names_a_bad_problem():
    with pytest.raises(InvalidInput, match="'xp'"):
        theory.hebbian_prediction("xp", 16)

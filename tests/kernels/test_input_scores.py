"""Input 0's own scores (lamcap.kernels.input_scores) against a naive numpy computation on the materialised instance."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.input_scores import input_scores, raw_scores
from lamcap.kernels.solvers import solve
from lamcap.kernels.verify import HIST_EDGES, verify


def naive(instance: Instance, w: np.ndarray) -> tuple[float, np.ndarray, float, float]:
    """(target, competitor counts, mean_off, sigma_off) from every score of the materialised instance."""
    x = instance.inputs.double().numpy()
    y = instance.materialize().double().numpy()
    z = x @ w.T
    scores = z @ y.T if instance.problem == "op" else np.einsum("mnd,md->mn", y, z)
    off = scores[~np.eye(instance.p, dtype=bool)]
    mean, sigma = off.mean(), off.std()
    u = (scores[0] - mean) / sigma
    counts = np.zeros(len(HIST_EDGES) - 1, dtype=np.int64)
    for value in u[1:]:  # one by one, outside values into the end bins
        counts[min(max(np.searchsorted(HIST_EDGES, value, side="right") - 1, 0), len(counts) - 1)] += 1
    return u[0], counts, mean, sigma


@pytest.mark.parametrize("problem, d, p", [("op", 6, 9), ("dp", 5, 40), ("dp", 8, 300), ("op", 12, 257)])
def test_input_zero_matches_the_materialised_scores(problem, d, p):
    instance = Instance(InstanceSpec(problem, d, p, 3))
    w = np.random.default_rng(d * p).normal(size=(d, d))
    want_target, want_counts, mean, sigma = naive(instance, w)
    got = input_scores(instance, torch.from_numpy(w), mean, sigma)
    assert math.isclose(got.target, want_target, rel_tol=1e-9, abs_tol=1e-9)
    assert np.array_equal(got.competitor_hist, want_counts) and got.competitor_hist.sum() == p - 1


@pytest.mark.parametrize("problem", ["op", "dp"])
def test_input_zero_keeps_its_competitors_as_the_load_grows(problem):
    """Nested disorder: input 0's raw scores at p are the first p of its scores at any larger p."""
    w = torch.from_numpy(np.random.default_rng(0).normal(size=(8, 8)))
    small = raw_scores(Instance(InstanceSpec(problem, 8, 30, 1)), w)
    large = raw_scores(Instance(InstanceSpec(problem, 8, 300, 1)), w)
    assert torch.allclose(small, large[:30], rtol=1e-12, atol=0)  # the same numbers, up to BLAS blocking


def test_undefined_normalisation_gives_nan_and_no_counts():
    instance = Instance(InstanceSpec("op", 4, 6, 0))
    w = torch.eye(4, dtype=torch.float64)
    for mean, sigma in ((0.0, 0.0), (math.nan, 1.0)):
        got = input_scores(instance, w, mean, sigma)
        assert math.isnan(got.target) and not got.competitor_hist.any()
    assert math.isnan(input_scores(instance, torch.full((4, 4), math.nan), 0.0, 1.0).target)


def test_solve_records_input_zero_with_the_verification_normalisation():
    outcome = solve(InstanceSpec("dp", 6, 20, 2), "hebbian", 6)
    instance = Instance(InstanceSpec("dp", 6, 20, 2))
    from lamcap.kernels.weights import hebbian

    check = verify(instance, hebbian(instance))
    want = input_scores(instance, hebbian(instance), check.mean_off, check.sigma_off)
    assert outcome.input_target_score == want.target
    assert outcome.input_competitor_hist == want.competitor_hist.tolist() and sum(outcome.input_competitor_hist) == 19

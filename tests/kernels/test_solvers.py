"""Solvers against independent references: a one-shot LP over every pair, closed forms, each other."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lamcap.errors import InvalidInput
from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.settings import LP_MAX_D, LP_MAX_P, SolverSettings
from lamcap.kernels.solvers import solve, solve_with_weights
from lamcap.kernels.solvers.adam import learning_rate


def p_at(alpha: float, d: int) -> int:
    """The integer p nearest to p ln p = alpha d^2."""
    return min(range(2, 10 * d * d), key=lambda p: abs(p * math.log(p) - alpha * d * d))


@pytest.mark.parametrize("problem", ["op", "dp"])
def test_lp_and_adam_store_everything_well_below_capacity(problem):
    """The exact oracle (tests/kernels/test_lp.py) and the trained memory agree far from the threshold."""
    spec = InstanceSpec(problem, 8, p_at(0.4, 8), seed=1)
    lp, adam = solve(spec, "lp", 8), solve(spec, "adam", 8)
    assert lp.sat and lp.status == "feasible" and lp.n_violations == 0 and lp.lp_margin > 0
    assert adam.sat and adam.status == "converged" and adam.accuracy == 1.0


@pytest.mark.parametrize("problem", ["op", "dp"])
def test_lp_proves_unsat_well_above_capacity(problem):
    lp = solve(InstanceSpec(problem, 8, p_at(2.0, 8), seed=1), "lp", 8)
    assert not lp.sat and lp.status == "infeasible" and lp.lp_margin == 0.0


def test_hebbian_stores_all_at_small_load_and_fails_at_large_load():
    """alpha = 0.01 at d = 64 is far below the finite-size Hebbian threshold (about 0.05); 1.0 at d = 8 far above."""
    for problem in ("op", "dp"):
        small = [solve(InstanceSpec(problem, 64, p_at(0.01, 64), seed=s), "hebbian", 64).sat for s in range(10)]
        large = [solve(InstanceSpec(problem, 8, p_at(1.0, 8), seed=s), "hebbian", 8) for s in range(10)]
        assert sum(small) >= 9
        assert not any(o.sat for o in large) and all(o.status == "closed_form" and o.steps == 0 for o in large)


def test_hebbian_weights_are_the_closed_form():
    spec = InstanceSpec("dp", 6, 15, seed=3)
    _, w = solve_with_weights(spec, "hebbian", 6)
    instance = Instance(spec)
    y_mu_mu = instance.materialize()[torch.arange(15), torch.arange(15)].double()
    torch.testing.assert_close(w, y_mu_mu.T @ instance.inputs.double())
    _, w2 = solve_with_weights(spec, "hebbian", 2)  # rank 2: the best rank-2 approximation
    assert torch.linalg.matrix_rank(w2) == 2
    s = torch.linalg.svdvals(w)
    assert torch.linalg.norm(w - w2) == pytest.approx(float(torch.sqrt((s[2:] ** 2).sum())), rel=1e-9)


def test_two_layer_adam_returns_a_rank_r_matrix():
    outcome = solve(InstanceSpec("op", 10, 12, seed=0), "adam", 3)
    svs = np.array(outcome.singular_values)
    assert outcome.sat and len(svs) == 10 and svs[3:].max() < 1e-5 * svs[0]


def test_adam_outcome_is_a_pure_function_of_the_spec():
    spec = InstanceSpec("dp", 8, 20, seed=5)
    settings = SolverSettings(max_steps=150)
    a, b = (solve(spec, "adam", 4, settings).as_record() for _ in range(2))
    for timing in ("wall_seconds", "cpu_seconds", "peak_bytes"):
        a.pop(timing), b.pop(timing)
    assert a == b


def test_divergence_ends_unsat_with_its_status():
    """An absurd learning rate overflows float32 on a hard instance: UNSAT, status 'diverged', nothing stored."""
    outcome = solve(InstanceSpec("op", 6, 60, seed=0), "adam", 6, SolverSettings(lr=1e37, max_steps=60))
    assert outcome.status == "diverged" and not outcome.sat and outcome.n_violations == 60


def test_step_budget_runs_out_as_max_steps():
    outcome = solve(InstanceSpec("dp", 6, 60, seed=0), "adam", 6, SolverSettings(max_steps=5))
    assert outcome.status == "max_steps" and not outcome.sat and outcome.steps == 5


def test_learning_rate_warms_up_linearly_then_decays_as_a_cosine():
    s = SolverSettings(lr=0.1, max_steps=100, warmup_frac=0.1)
    assert learning_rate(0, s) == pytest.approx(0.01) and learning_rate(9, s) == pytest.approx(0.1)
    assert learning_rate(10, s) == pytest.approx(0.1)
    assert learning_rate(55, s) == pytest.approx(0.05)  # half way through the decay
    assert learning_rate(99, s) < 1e-3


@pytest.mark.parametrize("solver,rank,p,d,match", [
    ("lp", 4, 10, 8, "full rank"),
    ("lp", LP_MAX_D + 8, 10, LP_MAX_D + 8, rf"d={LP_MAX_D + 8} .*limit d <= {LP_MAX_D}"),
    ("lp", 8, LP_MAX_P + 1, 8, rf"p={LP_MAX_P + 1} .*limit p <= {LP_MAX_P}"),
    ("newton", 4, 10, 4, "newton"), ("adam", 0, 10, 4, "rank=0"), ("adam", 5, 10, 4, "rank=5"),
])
def test_solvers_refuse_what_they_cannot_take(solver, rank, p, d, match):
    with pytest.raises(InvalidInput, match=match):
        solve(InstanceSpec("op", d, p, seed=0), solver, rank)


@pytest.mark.parametrize("kwargs,name", [
    (dict(lr=0), "lr=0"), (dict(max_steps=0), "max_steps=0"), (dict(warmup_frac=1.0), "warmup_frac=1.0"),
    (dict(mode="stream"), "stream"), (dict(storage_dtype="int8"), "int8"), (dict(memory_budget_bytes=0), "memory"),
])
def test_bad_settings_name_the_value(kwargs, name):
    with pytest.raises(InvalidInput, match=name):
        SolverSettings(**kwargs)


def test_cuda_requested_without_cuda_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InvalidInput, match="cuda"):
        solve(InstanceSpec("op", 4, 5, seed=0), "hebbian", 4, device="cuda")

"""The exact LP oracle against a one-shot LP over every pair (scipy's HiGHS), numpy, and itself along nested p."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.solvers import lp, solve
from lamcap.kernels.solvers.lp import GAP_REL, HIGHS_SLACK, MARGIN_TOL, ZERO_TOL, LPUndecided, solve_lp
from lamcap.predictions import finite_size_prediction

# (d, seeds, loads as fractions of the finite-size p*): 123 nested instances per problem, d from 6 to
# 16, p from half to twice p*; few at large d, where the one-shot reference program is slow.
WIDE = (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0)
GRID = [(6, range(8), WIDE), (7, range(4), WIDE), (8, range(3), (0.5, 0.9, 1.0, 1.1, 1.5, 2.0)),
        (10, range(1), (0.5, 0.85, 1.0, 1.15, 1.5)), (12, range(1), (0.85, 1.0, 1.15)), (16, range(1), (1.0,))]


def all_pairs_margin(instance: Instance) -> float:
    """Reference: the max-margin program over every pair at once (no generation), scipy.optimize.linprog."""
    x = instance.inputs.double().numpy()
    y = instance.materialize().double().numpy()
    p, d = instance.p, instance.d
    rows = []
    for mu in range(p):
        if instance.problem == "op":
            target, others = y[mu], np.delete(y, mu, axis=0)
        else:
            target, others = y[mu, mu], np.delete(y[mu], mu, axis=0)
        rows.append(np.einsum("ki,j->kij", target - others, x[mu]).reshape(p - 1, d * d))
    a = np.concatenate(rows)
    a_ub = np.hstack([-a, np.ones((len(a), 1))])  # t - a . vec(W) <= 0
    cost = np.zeros(d * d + 1)
    cost[-1] = -1.0
    res = linprog(cost, A_ub=a_ub, b_ub=np.zeros(len(a)), bounds=[(-1, 1)] * (d * d) + [(0, None)], method="highs")
    assert res.status == 0, res.message
    return float(res.x[-1])


def numpy_margins(instance: Instance, w: np.ndarray) -> np.ndarray:
    """All p x p margins s[mu,mu] - s[mu,nu] in float64 numpy, the diagonal set to +inf."""
    x = instance.inputs.double().numpy()
    y = instance.materialize().double().numpy()
    z = x @ w.T
    scores = z @ y.T if instance.problem == "op" else np.einsum("mnd,md->mn", y, z)
    margins = np.diag(scores)[:, None] - scores
    np.fill_diagonal(margins, np.inf)
    return margins


def _cases():
    for problem in ("op", "dp"):
        for d, seeds, loads in GRID:
            p_star = finite_size_prediction(d)[0]
            ps = sorted({max(3, round(f * p_star)) for f in loads})
            for seed in seeds:
                yield problem, d, seed, ps


@pytest.fixture(scope="module")
def solved():
    """(problem, d, seed) -> [(p, LPResult, Instance)] along nested p; every instance decided without error."""
    torch.set_num_threads(1)
    out = {}
    for problem, d, seed, ps in _cases():
        runs = []
        for p in ps:
            instance = Instance(InstanceSpec(problem, d, p, seed))
            runs.append((p, solve_lp(instance), instance))
        out[(problem, d, seed)] = runs
    return out


def test_at_least_200_instances_of_both_problems_are_decided(solved):
    runs = [r for series in solved.values() for r in series]
    assert len(runs) >= 200
    assert {key[0] for key in solved} == {"op", "dp"} and {key[1] for key in solved} == {6, 7, 8, 10, 12, 16}
    verdicts = [result.sat for _, result, _ in runs]
    assert 0.25 < np.mean(verdicts) < 0.75  # the grid straddles the threshold


def test_verdicts_and_margins_equal_the_one_shot_program_over_every_pair(solved):
    for series in solved.values():
        for _p, result, instance in series:
            t_ref = all_pairs_margin(instance)
            assert result.sat == (t_ref > MARGIN_TOL * instance.d ** 2), (instance.spec, t_ref)
            assert result.lower <= t_ref * (1 + 1e-9) + 1e-9 and t_ref <= result.upper * (1 + 1e-9) + 1e-9
            if result.sat:  # the recorded margin is the optimum to within GAP_REL
                assert result.lower >= t_ref * (1 - GAP_REL) - HIGHS_SLACK


def test_verdicts_are_monotone_and_margins_non_increasing_along_nested_p(solved):
    for key, series in solved.items():
        verdicts = [result.sat for _, result, _ in series]
        assert verdicts == sorted(verdicts, reverse=True), (key, verdicts)  # SAT ... SAT UNSAT ... UNSAT
        margins = [result.lower for _, result, _ in series]
        for before, after in zip(margins, margins[1:]):  # more pairs: the optimum can only drop
            assert after <= before * (1 + 2 * GAP_REL) + HIGHS_SLACK, (key, margins)


def test_a_sat_w_passes_an_independent_numpy_check_of_every_margin(solved):
    n_sat = 0
    for series in solved.values():
        for _, result, instance in series:
            if result.sat:
                margins = numpy_margins(instance, result.w.numpy())
                assert margins.min() > 0 and margins.min() == pytest.approx(result.lower, rel=1e-9, abs=1e-12)
                assert np.abs(result.w.numpy()).max() <= 1 + 1e-9
                n_sat += 1
            else:
                assert not result.w.any() and result.upper <= ZERO_TOL * instance.d ** 2
    assert n_sat >= 50


def test_the_recorded_margin_is_normalised_by_sigma_off(solved):
    p, result, instance = next(r for r in solved[("dp", 8, 0)] if r[1].sat)
    outcome = solve(instance.spec, "lp", 8)
    margins = numpy_margins(instance, result.w.numpy())
    x, y = instance.inputs.double().numpy(), instance.materialize().double().numpy()
    s = np.einsum("mnd,md->mn", y, x @ result.w.numpy().T)
    sigma_off = s[~np.eye(p, dtype=bool)].std()  # population std of every off-target score
    assert outcome.sat and outcome.status == "feasible"
    assert outcome.lp_margin == pytest.approx(margins.min() / sigma_off, rel=1e-9)
    unsat = solve(InstanceSpec("dp", 8, 60, 0), "lp", 8)
    assert not unsat.sat and unsat.status == "infeasible" and unsat.lp_margin == 0.0
    assert math.isnan(solve(InstanceSpec("dp", 8, 10, 0), "hebbian", 8).lp_margin)


def test_a_non_optimal_highs_status_is_an_error_never_sat(monkeypatch):
    from lamcap.orchestrator.runtime.probe import run_probe
    from lamcap.orchestrator.spec import Cell, Probe

    monkeypatch.setitem(lp.HIGHS_OPTIONS, "simplex_iteration_limit", 1)
    spec = InstanceSpec("op", 8, 12, 0)  # SAT with a wide margin
    with pytest.raises(LPUndecided, match="Iteration limit"):
        solve_lp(Instance(spec))
    record = run_probe(Probe(Cell("op", "lp", 1.0, 8), 0, 12), None, "cpu")
    assert record["status"] == "error" and record["sat"] is False and "Iteration limit" in record["error"]


def test_a_margin_too_close_to_zero_is_an_error_that_names_it(monkeypatch):
    monkeypatch.setattr(lp, "MARGIN_TOL", 1.0)  # every optimum of this instance now falls inside the band
    with pytest.raises(LPUndecided, match=r"t\* lies in \[") as info:
        solve_lp(Instance(InstanceSpec("op", 8, 12, 0)))
    assert "MARGIN_TOL d^2 = 64" in str(info.value)

"""The adaptive axis of a sweep without Ray: searches grown from threshold rows, resume checked against the store.

The reference is the learners driven directly (lamcap.orchestrator.learners.decisions), told the same oracle results.
"""
from __future__ import annotations

import json
import math
import random

import pytest

from lamcap.errors import InvalidInput
from lamcap.orchestrator.learners.dimension import DimensionLearner
from lamcap.orchestrator.learners.expansion import (
    Expansion,
    cells_to_check,
    first_round_problems,
    max_searches,
    possible_cells,
)
from lamcap.orchestrator.learners.rank import RankLearner
from lamcap.orchestrator.spec import Cell, SweepSpec
from lamcap.predictions.units import alpha_of
from lamcap.store.schema import threshold_key
from tests.orchestrator.learners.adaptive_oracle import p_true

RHO = {"min": 0.1, "max": 1.0, "points": 6}
DIM = {"ladder": [8, 12, 16, 24, 32], "budget_device_hours": 0.02, "target": 0.01, "seeds_per_round": 3}


def make_spec(axis: str, ds=(8, 16), problems=("op", "dp"), **rule) -> SweepSpec:
    raw = {"problems": list(problems), "solvers": ["adam"], "seeds": 2, "device": "cpu"}
    if axis == "rho":
        raw.update(ds=list(ds), adaptive={"rho": {**RHO, **rule}})
    else:
        raw.update(rhos=[1.0], adaptive={"d": {**DIM, **rule}})
    return SweepSpec.from_dict(raw)


def cubic_cost(problem, solver, rho, d, seeds) -> float:
    return seeds * (d / 8) ** 3


def row(cell: Cell, seed: int, p_max: int | None = None) -> dict:
    """The threshold row the scheduler would emit for the oracle (incomplete when p_true exceeds p_max)."""
    p = p_true(cell, seed)
    complete = p_max is None or p < p_max
    return {"problem": cell.problem, "solver": cell.solver, "rho": cell.rho, "d": cell.d, "seed": seed,
            "p_star": p if complete else -1, "alpha_star": alpha_of(p if complete else -1, cell.d),
            "complete": complete, "reason": "" if complete else "p_max still SAT"}


def run(expansion: Expansion, order_seed: int | None = None, p_max: int | None = None,
        stop_after: int | None = None) -> tuple[dict, list[dict]]:
    """Tell the expansion its searches' rows until it asks for nothing (in a shuffled order when order_seed);
    returns (threshold rows by key, decisions taken, in order)."""
    todo = list(expansion.start())
    rows, decisions = {}, expansion.take_decisions()
    shuffle = random.Random(order_seed)
    while todo and (stop_after is None or len(rows) < stop_after):
        if order_seed is not None:
            shuffle.shuffle(todo)
        cell, seed = todo.pop(0)
        r = row(cell, seed, p_max)
        rows[threshold_key(r)] = r
        todo += expansion.tell(r)
        decisions += expansion.take_decisions()
    return rows, decisions


def reference(spec: SweepSpec, cost=cubic_cost, p_max: int | None = None) -> dict:
    """Each learner driven directly, told what its cells' oracle thresholds are: learner key -> its decisions."""
    out = {}
    for problem in spec.problems:
        for solver in spec.solvers:
            if spec.adaptive.rho is not None:
                for d in spec.ds:
                    lrn = RankLearner(spec.adaptive.rho, d, {"problem": problem, "solver": solver})
                    while rhos := lrn.ask():
                        for rho in rhos:
                            lrn.tell(rho, [row(Cell(problem, solver, rho, d), s, p_max)["alpha_star"]
                                           for s in range(spec.seeds)])
                    out["rank", problem, solver, d] = lrn.decisions
            else:
                lrn = DimensionLearner(spec.adaptive.d, cost, problem, solver, 1.0, spec.seeds)
                while batches := lrn.ask():
                    for b in batches:
                        for s in b.seeds:
                            lrn.tell((b.d, s), row(Cell(problem, solver, 1.0, b.d), s, p_max)["alpha_star"])
                out["dimension", problem, solver, 1.0] = lrn.decisions
    return out


def by_learner(decisions: list[dict], order_free: bool = False) -> dict:
    """learner key -> its decisions; order_free: each decision's `told` list sorted (the order results came in)."""
    out: dict = {}
    for dec in decisions:
        at = dec["d"] if dec["learner"] == "rank" else dec["rho"]
        if order_free:
            dec = {**dec, "told": sorted(dec["told"], key=lambda t: json.dumps(t, sort_keys=True))}
        out.setdefault((dec["learner"], dec["problem"], dec["solver"], at), []).append(dec)
    return out


@pytest.mark.parametrize("axis", ["rho", "d"])
def test_the_searches_are_what_the_learners_choose_in_any_order(axis):
    spec = make_spec(axis)
    expansion = Expansion(spec, cubic_cost)
    rows, decisions = run(expansion)
    assert expansion.finished
    want = reference(spec)
    assert by_learner(decisions) == want  # the same decisions, evidence included, each learner's in round order
    assert all(decs[-1]["basis"] == "stop" for decs in want.values())
    if axis == "rho":
        chosen = {(p, s, d, rho) for (_, p, s, d), decs in want.items() for dec in decs for rho in dec["chosen_rhos"]}
        assert {(c.problem, c.solver, c.d, c.rho) for c, _ in expansion.searches} == chosen
        assert {seed for _, seed in expansion.searches} == {0, 1}
    else:
        chosen = {(p, 1.0, c["d"], seed) for (_, p, _, _), decs in want.items() for dec in decs
                  for c in dec["chosen"] for seed in c["seeds"]}
        assert {(c.problem, c.rho, c.d, seed) for c, seed in expansion.searches} == chosen
        assert max(seed for _, seed in expansion.searches) > spec.seeds  # it added seeds where they pay
    assert set(rows) == {(c.problem, c.solver, c.rho, c.d, s) for c, s in expansion.searches}
    shuffled = Expansion(spec, cubic_cost)
    _, again = run(shuffled, order_seed=3)
    assert by_learner(again, True) == by_learner(decisions, True) and shuffled.searches == expansion.searches


@pytest.mark.parametrize("axis", ["rho", "d"])
def test_incomplete_thresholds_are_told_as_nan(axis):
    spec = make_spec(axis)
    p_max = 30  # the oracle's thresholds at d = 16 (rank axis) or d >= 16 (dimension axis) lie above it
    expansion = Expansion(spec, cubic_cost)
    rows, decisions = run(expansion, p_max=p_max)
    assert any(not r["complete"] for r in rows.values()) and any(r["complete"] for r in rows.values())
    assert by_learner(decisions) == reference(spec, p_max=p_max)
    told = [v for lrn in expansion.learners.values() for v in
            (sum(lrn.told.values(), ()) if isinstance(lrn, RankLearner) else lrn.told.values())]
    assert sum(math.isnan(v) for v in told) == sum(not r["complete"] for r in rows.values())


@pytest.mark.parametrize("axis", ["rho", "d"])
def test_resume_replays_the_stored_decisions_and_goes_on_as_before(axis):
    spec = make_spec(axis)
    full_rows, full = run(Expansion(spec, cubic_cost))
    cut = Expansion(spec, cubic_cost)
    rows, decisions = run(cut, stop_after=len(full_rows) // 2)
    stored = decisions[: len(decisions) - 2]  # the last batch's decisions were lost with the crash
    resumed = Expansion(spec, cubic_cost)
    searches = resumed.resume(rows, json.loads(json.dumps(stored)))
    assert set(searches) == cut.searches  # every search asked before the crash, stored or not
    assert by_learner(resumed.take_decisions()) == by_learner(decisions[len(stored):])  # replayed, to store now
    todo = list(searches)  # as the scheduler does: the stored rows are told again (a no-op for whole cells)
    while todo:
        cell, seed = todo.pop(0)
        todo += resumed.tell(row(cell, seed))
    assert resumed.finished and by_learner(resumed.decisions) == by_learner(full)


def test_resume_refuses_a_store_whose_decisions_differ_in_one_line():
    spec = make_spec("rho")
    rows, decisions = run(Expansion(spec), stop_after=30)
    tampered = json.loads(json.dumps(decisions))
    added = next(i for i, dec in enumerate(tampered) if dec["basis"] == "curvature")
    tampered[added]["chosen_ranks"] = [tampered[added]["chosen_ranks"][0] + 1]
    with pytest.raises(InvalidInput) as err:
        Expansion(spec).resume(rows, tampered)
    message = str(err.value)
    assert "refusing to resume" in message and f"round {tampered[added]['round']}" in message
    assert f"d={tampered[added]['d']}" in message and "\n" not in message
    dimension = make_spec("d")
    d_rows, d_decisions = run(Expansion(dimension, cubic_cost), stop_after=20)
    with pytest.raises(InvalidInput, match="refusing to resume"):  # another cost model chooses otherwise
        Expansion(dimension, lambda *args: cubic_cost(*args) * (args[3] / 8) ** 2).resume(d_rows, d_decisions)
    with pytest.raises(InvalidInput, match="decisions of the rank learner of \\(op, adam, d=16\\), which"):
        Expansion(make_spec("rho", ds=(8,))).resume({}, decisions)


def test_cells_searches_and_budget_checks_before_work():
    rank = make_spec("rho")
    cells = possible_cells(rank)
    assert len(cells) == 2 * (8 + 15)  # every rank of [0.1, 1] at d = 8 (1 .. 8) and d = 16 (2 .. 16)
    assert {c.rank for c in cells if c.d == 16} == set(range(2, 17))
    assert set(rank.cells()) <= set(cells) and cells_to_check(rank) == rank.cells()
    assert {c.rank for c in cells_to_check(rank)} >= {8, 16}  # each d's largest rank is checked
    assert max_searches(rank) == 2 * (6 + 6) * 2
    dim = make_spec("d")
    assert cells_to_check(dim) == possible_cells(dim) and len(possible_cells(dim)) == 2 * 5
    assert max_searches(dim) == 2 * 5 * 64
    assert first_round_problems(dim, cubic_cost) == []
    poor = make_spec("d", budget_device_hours=1e-3)  # 3.6 s: two seeds at d = 8 and 12 cost 2 x (1 + 3.4)
    problems = first_round_problems(poor, cubic_cost)
    assert len(problems) == 2 and "budget_device_hours=0.001" in problems[0] and "a fit needs two" in problems[0]

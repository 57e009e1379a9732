"""Adaptive rank and dimension axes: rules, learners, determinism, replay, and the statistics they decide on."""
from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest

from lamcap.analysis.decisions import added_cells
from lamcap.errors import InvalidInput
from lamcap.orchestrator.learners.decisions import ReplayMismatch, replay
from lamcap.orchestrator.learners.dimension import DimensionLearner
from lamcap.orchestrator.learners.rank import RankLearner
from lamcap.orchestrator.learners.stats import (
    intercept_sd,
    median_variance_factor,
    quantisation_sd,
    second_difference,
    spreads,
)
from lamcap.orchestrator.spec import SweepSpec, load_spec, to_toml
from lamcap.orchestrator.spec.adaptive_rules import DimensionRule, RhoRule

ROOT = Path(__file__).resolve().parents[3]
LADDER = (8, 12, 16, 24, 32, 48, 64)


# ---- oracles -------------------------------------------------------------------------------------
def knee(rho: float, at: float = 0.45, width: float = 0.03) -> float:
    """A curve that rises linearly, bends sharply around `at`, then stays flat (a softened min)."""
    return 0.2 + 0.6 * (at - width * math.log1p(math.exp((at - rho) / width)))


def run_rank(rule: RhoRule, d: int, curve, noise: float = 0.0, seeds: int = 3, seed: int = 0,
             shuffle: bool = False) -> RankLearner:
    """Drive a rank learner to the end; each seed's alpha* = curve(rho_eff) + Gaussian noise (seeded per rank)."""
    learner = RankLearner(rule, d, {"problem": "op", "solver": "adam"})
    order = random.Random(seed)
    while rhos := learner.ask():
        if shuffle:
            order.shuffle(rhos)
        for rho in rhos:
            rng = np.random.default_rng([seed, learner.rank_of(rho)])
            learner.tell(rho, list(curve(rho) + noise * rng.standard_normal(seeds)))
    return learner


def law(d: int) -> float:
    return 0.5 + 0.4 / math.log(d)


def spread(d: int) -> float:
    return 0.05 * math.sqrt(8 / d)


def cubic_cost(problem, solver, rho, d, seeds) -> float:
    return seeds * (d / 8) ** 3  # device-seconds


def run_dimension(rule: DimensionRule, cost=cubic_cost, seed: int = 0, shuffle: bool = False,
                  initial_seeds: int = 3) -> DimensionLearner:
    """Drive a dimension learner to the end; alpha* = law(d) + N(0, spread(d)), seeded per (d, seed)."""
    learner = DimensionLearner(rule, cost, "op", "adam", 1.0, initial_seeds)
    order = random.Random(seed)
    while batches := learner.ask():
        jobs = [(b.d, s) for b in batches for s in b.seeds]
        if shuffle:
            order.shuffle(jobs)
        for d, s in jobs:
            learner.tell((d, s), law(d) + spread(d) * np.random.default_rng([seed, d, s]).standard_normal())
    return learner


def chosen(learner) -> list:
    if isinstance(learner, RankLearner):
        return [d["chosen_ranks"] for d in learner.decisions]
    return [[(c["d"], c["seeds"]) for c in d["chosen"]] for d in learner.decisions]


# ---- rules and the spec hook ---------------------------------------------------------------------
def spec_dict(**adaptive) -> dict:
    raw = {"problems": ["op", "dp"], "solvers": ["adam"], "seeds": 3, "rhos": [1.0, 0.5], "ds": [16, 32],
           "adaptive": adaptive}
    for name, key in (("rho", "rhos"), ("d", "ds")):
        if name in adaptive:
            raw.pop(key)
    return raw


RHO = {"min": 0.1, "max": 1.0, "points": 12}
DIM = {"ladder": [8, 12, 16, 24, 32], "budget_device_hours": 2, "target": 0.02}


@pytest.mark.parametrize("adaptive, named", [
    ({"rho": {**RHO, "min": 0.8, "max": 0.2}}, "adaptive.rho.min=0.8 is not below adaptive.rho.max=0.2"),
    ({"rho": {**RHO, "points": 1}}, "adaptive.rho.points=1"),
    ({"rho": {**RHO, "min": 0.0}}, "adaptive.rho.min=0.0"),
    ({"rho": {**RHO, "initial": 20}}, "adaptive.rho.initial=20"),
    ({"rho": {"min": 0.1, "max": 1.0}}, "missing key adaptive.rho.points"),
    ({"rho": {**RHO, "step": 2}}, "unknown key adaptive.rho.step"),
    ({"d": {**DIM, "ladder": []}}, "adaptive.d.ladder is empty"),
    ({"d": {**DIM, "ladder": [16]}}, "adaptive.d.ladder=[16] has one dimension"),
    ({"d": {**DIM, "ladder": [8, 8, 16]}}, "adaptive.d.ladder: 8 appears twice"),
    ({"d": {**DIM, "ladder": [1, 8]}}, "adaptive.d.ladder: 1 must be an integer >= 2"),
    ({"d": {**DIM, "budget_device_hours": -1}}, "adaptive.d.budget_device_hours=-1"),
    ({"d": {**DIM, "target": 0}}, "adaptive.d.target=0"),
    ({"d": {**DIM, "start": 9}}, "adaptive.d.start=9"),
    ({"d": {**DIM, "level": 1.5}}, "adaptive.d.level=1.5"),
    ({"rho": RHO, "d": DIM}, "one adaptive axis per sweep"),
    ({"x": {}}, "unknown key adaptive.x"),
])
def test_bad_rules_are_refused_in_one_line_naming_the_value(adaptive, named):
    with pytest.raises(InvalidInput) as err:
        SweepSpec.from_dict(spec_dict(**adaptive))
    message = str(err.value)
    assert named in message and "\n" not in message
    assert not re.search(r"\bds is empty|\brhos is empty", message)  # no noise about the lists a rule replaces


def test_a_list_and_its_rule_together_are_refused():
    raw = {**spec_dict(rho=RHO), "rhos": [1.0]}
    with pytest.raises(InvalidInput, match=r"rhos and \[adaptive.rho\] both given"):
        SweepSpec.from_dict(raw)
    with pytest.raises(InvalidInput, match="seeds=1 with \\[adaptive.d\\]"):
        SweepSpec.from_dict({**spec_dict(d=DIM), "seeds": 1})
    with pytest.raises(InvalidInput, match=r"solver 'lp' with \[adaptive.rho\]"):
        SweepSpec.from_dict({**spec_dict(rho=RHO), "solvers": ["lp"]})
    with pytest.raises(InvalidInput, match=r"d_max.dp=10 leaves \[8\] of adaptive.d.ladder"):
        SweepSpec.from_dict({**spec_dict(d=DIM), "d_max": {"dp": 10}})


@pytest.mark.parametrize("adaptive", [{"rho": RHO}, {"rho": {**RHO, "initial": 4, "batch": 2}},
                                      {"d": DIM}, {"d": {**DIM, "start": 2, "max_seeds": 8, "level": 0.9}}])
def test_rules_round_trip_through_dict_json_and_toml(adaptive, tmp_path):
    spec = SweepSpec.from_dict(spec_dict(**adaptive))
    assert SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    path = tmp_path / "s.toml"
    path.write_text(to_toml(spec))
    assert load_spec(str(path)) == spec
    assert spec.compatible_with(spec) == []
    plain = SweepSpec.from_dict(spec_dict())
    assert any("adaptive rules differ" in r for r in spec.compatible_with(plain))


def test_cells_are_the_first_round_and_max_d_covers_the_ladder():
    spec = SweepSpec.from_dict(spec_dict(rho={**RHO, "initial": 4}))
    for d in (16, 32):
        ranks = sorted(c.rank for c in spec.cells() if c.d == d and c.problem == "op")
        assert ranks == RhoRule(**{**RHO, "initial": 4}).initial_ranks(d)
        assert ranks[0] == max(1, round(0.1 * d)) and ranks[-1] == d and len(set(ranks)) == 4
    spec = SweepSpec.from_dict({**spec_dict(d={**DIM, "start": 2}), "d_max": {"dp": 16}})
    assert spec.ds_for("op") == (8, 12, 16, 24, 32) and spec.ds_for("dp") == (8, 12, 16)
    assert sorted({c.d for c in spec.cells()}) == [8, 12] and spec.max_d == 32


def test_layers_a_rule_replaces_the_presets_list_and_a_flag_replaces_the_rule(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("[adaptive.rho]\nmin = 0.25\nmax = 1.0\npoints = 6\n")
    with pytest.raises(InvalidInput, match=r"solver 'lp' with \[adaptive.rho\]"):  # the demo's lp is full rank
        load_spec(str(path), preset="demo")
    path.write_text('solvers = ["adam", "hebbian"]\n[adaptive.rho]\nmin = 0.25\nmax = 1.0\npoints = 6\n')
    spec = load_spec(str(path), preset="demo")
    assert spec.rhos == () and spec.adaptive.rho == RhoRule(0.25, 1.0, 6)
    assert load_spec(str(path), preset="demo", overrides={"rho": [0.5]}).adaptive.rho is None
    path.write_text("[adaptive.d]\nladder = [8, 16]\nbudget_device_hours = 1\ntarget = 0.1\n")
    assert load_spec(str(path), preset="demo").ds == ()


def test_the_example_file_documents_both_rules():
    text = (ROOT / "examples" / "sweep.toml").read_text()
    import tomllib

    for name, key in (("rho", "rhos"), ("d", "ds")):
        block = re.search(rf"^# \[adaptive\.{name}\].*?(?=^# \[|^\[|\Z)", text, re.S | re.M).group(0)
        table = tomllib.loads("\n".join(line[2:] for line in block.splitlines() if line.startswith("# ")))
        raw = tomllib.loads(text)
        raw.pop(key)
        raw["adaptive"] = table["adaptive"]
        assert getattr(SweepSpec.from_dict(raw).adaptive, name) is not None


# ---- the rank learner ------------------------------------------------------------------------------
@pytest.mark.parametrize("at", [0.3, 0.7])
def test_rank_learner_puts_more_points_where_the_curve_bends(at):
    rule = RhoRule(0.1, 1.0, 16)
    learner = run_rank(rule, 200, lambda rho: knee(rho, at), noise=0.002)
    rhos = np.array(sorted(learner.told)) / 200
    assert len(rhos) == 16 and learner.done
    near = np.sum(np.abs(rhos - at) <= 0.1)
    assert near >= 6, rhos  # a uniform grid puts 16 * 0.2 / 0.9 = 3.6 cells within 0.1 of the bend
    gaps = np.diff(rhos)
    centre = (rhos[1:] + rhos[:-1]) / 2
    assert gaps[np.abs(centre - at) <= 0.1].mean() * 2 < gaps[np.abs(centre - at) > 0.2].mean()


def test_rank_learner_fills_a_curve_lost_in_noise_almost_uniformly():
    learner = run_rank(RhoRule(0.1, 1.0, 13), 120, lambda rho: 0.3 + 0.2 * rho, noise=0.05, seeds=5)
    gaps = np.diff(sorted(learner.told))
    assert gaps.max() <= 2 * gaps.min() + 1, gaps  # a straight line: no gap is favoured


def test_rank_learner_never_repeats_a_rank_and_stops_at_its_budget():
    for d, points in ((8, 12), (10, 4), (64, 9)):
        learner = run_rank(RhoRule(0.1, 1.0, points, batch=3), d, knee)
        asked = [r for dec in learner.decisions for r in dec["chosen_ranks"]]
        lo, hi = max(1, round(0.1 * d)), d
        assert len(asked) == len(set(asked)) == min(points, hi - lo + 1)
        assert all(lo <= r <= hi for r in asked)
        assert learner.decisions[-1]["basis"] == "stop" and learner.ask() == [] and learner.done


def test_rank_learner_is_deterministic_and_order_free():
    rule = RhoRule(0.1, 1.0, 14, initial=4, batch=3)
    a = run_rank(rule, 96, knee, noise=0.01)
    b = run_rank(rule, 96, knee, noise=0.01)
    c = run_rank(rule, 96, knee, noise=0.01, shuffle=True, seed=0)
    assert a.decisions == b.decisions
    assert chosen(c) == chosen(a)  # the order the results come back in does not matter
    assert [d["candidates"] for d in c.decisions] == [d["candidates"] for d in a.decisions]


def test_rank_learner_replay_and_fast_forward_give_the_same_decisions():
    rule = RhoRule(0.1, 1.0, 12, batch=2)
    done = run_rank(rule, 64, knee, noise=0.01)
    replayed = replay(RankLearner(rule, 64, {"problem": "op", "solver": "adam"}), done.decisions)
    assert replayed.decisions == json.loads(json.dumps(done.decisions))
    stored = {r: v for r, v in done.told.items()}
    resumed = RankLearner(rule, 64, {"problem": "op", "solver": "adam"})
    assert resumed.fast_forward(lambda rho: stored.get(resumed.rank_of(rho))) == []
    assert chosen(resumed) == chosen(done)
    partial = {r: v for r, v in list(stored.items())[:7]}  # interrupted: some cells never stored
    cut = RankLearner(rule, 64, {"problem": "op", "solver": "adam"})
    missing = cut.fast_forward(lambda rho: partial.get(cut.rank_of(rho)))
    assert missing and chosen(cut) == chosen(done)[: len(cut.decisions)]
    assert all(cut.rank_of(rho) not in partial for rho in missing)
    tampered = json.loads(json.dumps(done.decisions))
    tampered[2]["chosen_ranks"] = [tampered[2]["chosen_ranks"][0] + 1]
    with pytest.raises(ReplayMismatch, match="round 2"):
        replay(RankLearner(rule, 64, {"problem": "op", "solver": "adam"}), tampered)


def test_rank_learner_records_evidence_and_the_added_cells_table():
    learner = run_rank(RhoRule(0.1, 1.0, 8), 64, knee, noise=0.01)
    first, second = learner.decisions[0], learner.decisions[1]
    assert first["basis"] == "initial" and first["chosen_ranks"] == [6, 35, 64]
    assert [row["rank"] for row in second["told"]] == [6, 35, 64] and len(second["curve"]) == 3
    best = max(second["candidates"], key=lambda g: g["score"])
    assert best["lo"] < second["chosen_ranks"][0] < best["hi"]
    rows = added_cells(learner.decisions)
    assert [r["order"] for r in rows] == [0, 0, 0, 1, 2, 3, 4, 5]
    assert {r["rank"] for r in rows} == set(learner.told) and all(r["d"] == 64 for r in rows)


def test_rank_learner_refuses_bad_tells():
    learner = RankLearner(RhoRule(0.25, 0.75, 4), 16)
    learner.ask()
    with pytest.raises(InvalidInput, match="outside the rule's ranks"):
        learner.tell(1.0, [0.5])
    with pytest.raises(InvalidInput, match="no alpha"):
        learner.tell(0.25, [])
    learner.tell(0.25, [0.5, math.nan])
    learner.tell(0.25, [0.5, math.nan])  # the same result again is a no-op
    with pytest.raises(ValueError, match="two results"):
        learner.tell(0.25, [0.6, 0.5])


# ---- the dimension learner -------------------------------------------------------------------------
@pytest.mark.parametrize("hours", [0.02, 0.2, 1.0])
def test_dimension_learner_never_exceeds_its_budget(hours):
    rule = DimensionRule(LADDER, budget_device_hours=hours, target=1e-4, seeds_per_round=6)
    learner = run_dimension(rule)
    spent = sum(cubic_cost("op", "adam", 1.0, c["d"], len(c["seeds"]))
                for dec in learner.decisions for c in dec["chosen"])
    assert spent == pytest.approx(learner.committed_seconds) and spent <= hours * 3600
    assert learner.done and learner.decisions[-1]["basis"] == "stop"
    cheapest = min(cubic_cost("op", "adam", 1.0, d, 1) for d in learner.rungs)
    assert spent + cheapest > hours * 3600 or "max_seeds" in learner.decisions[-1]["reason"]


def test_dimension_learner_covers_the_ladder_it_can_pay_for():
    learner = run_dimension(DimensionRule(LADDER, budget_device_hours=0.05, target=0.01))
    first = {c["d"]: len(c["seeds"]) for c in learner.decisions[0]["chosen"]}
    assert first == {8: 3, 12: 3, 16: 3, 24: 1, 32: 1}  # 128 s; one seed at 48 (216 s) does not fit 180 s
    assert learner.rungs == (8, 12, 16, 24, 32) and "[48, 64] are beyond the budget" in learner.decisions[0]["reason"]
    assert {c["d"] for dec in learner.decisions for c in dec["chosen"]} <= set(learner.rungs)
    tiny = run_dimension(DimensionRule(LADDER, budget_device_hours=0.001, target=0.01))
    assert chosen(tiny) == [[]] and "a fit needs two" in tiny.decisions[0]["reason"]


def test_dimension_learner_stops_at_the_target():
    rule = DimensionRule(LADDER, budget_device_hours=50, target=0.05)
    learner = run_dimension(rule)
    stop, last = learner.decisions[-1], learner.decisions[-2]
    assert stop["reason"] == "target reached" and stop["width"] <= 0.05
    assert last["width"] is None or last["width"] > 0.05  # it did not go on after reaching it
    assert learner.committed_seconds < rule.budget_seconds / 10
    assert abs(learner.alpha_inf() - 0.5) < 0.03


def test_dimension_learner_takes_the_best_move_per_device_second():
    learner = run_dimension(DimensionRule(LADDER, budget_device_hours=1, target=1e-3, seeds_per_round=1))
    for dec in learner.decisions[1:-1]:
        (step,) = dec["steps"]
        width = dec["width"]
        gains = {(m["d"], m["k"]): (width - m["width"]) / cubic_cost("op", "adam", 1.0, m["d"], m["k"])
                 for m in step["moves"]}
        best = max(gains.values())
        assert gains[step["chosen"]["d"], step["chosen"]["k"]] == pytest.approx(best)
    taken = [c["d"] for dec in learner.decisions[1:] for c in dec["chosen"]]
    assert taken.count(8) > taken.count(64)  # cheap, noisy small d pay; d = 64 costs 512 times as much


def test_dimension_learner_is_deterministic_order_free_and_replays():
    rule = DimensionRule(LADDER, budget_device_hours=0.5, target=0.01, seeds_per_round=5)
    a, b = run_dimension(rule), run_dimension(rule)
    c = run_dimension(rule, shuffle=True)
    assert a.decisions == b.decisions and chosen(c) == chosen(a)
    fresh = DimensionLearner(rule, cubic_cost, "op", "adam", 1.0, 3)
    assert replay(fresh, a.decisions).decisions == json.loads(json.dumps(a.decisions))
    stored = a.told
    resumed = DimensionLearner(rule, cubic_cost, "op", "adam", 1.0, 3)
    assert resumed.fast_forward(stored.get) == [] and chosen(resumed) == chosen(a)
    partial = dict(list(stored.items())[: len(stored) // 2])
    cut = DimensionLearner(rule, cubic_cost, "op", "adam", 1.0, 3)
    missing = cut.fast_forward(partial.get)
    assert missing and all(key not in partial for key in missing)
    assert chosen(cut) == chosen(a)[: len(cut.decisions)]


def test_dimension_learner_refuses_bad_input():
    rule = DimensionRule(LADDER, budget_device_hours=1, target=0.01)
    with pytest.raises(InvalidInput, match="initial_seeds=1"):
        DimensionLearner(rule, cubic_cost, "op", "adam", 1.0, 1)
    with pytest.raises(InvalidInput, match="at least two rungs"):
        DimensionLearner(rule, cubic_cost, "op", "adam", 1.0, 3, ladder=[8])
    learner = DimensionLearner(rule, lambda *a: 0.0, "op", "adam", 1.0, 3)
    with pytest.raises(ValueError, match="positive finite"):
        learner.ask()
    with pytest.raises(InvalidInput, match="d=10"):
        learner.tell((10, 0), 0.5)


# ---- the statistics --------------------------------------------------------------------------------
def test_predicted_width_matches_monte_carlo_of_the_fit():
    """The learner's interval width against the spread of refitted alpha_inf over many noise draws (numpy)."""
    rule = DimensionRule(LADDER, budget_device_hours=1, target=0.01, level=0.95)
    learner = DimensionLearner(rule, cubic_cost, "op", "adam", 1.0, 3)
    counts = {8: 9, 12: 5, 16: 3, 24: 2, 32: 1, 48: 1, 64: 1}
    sd = {d: spread(d) for d in LADDER}
    rng = np.random.default_rng(3)
    x = 1 / np.log(np.array(LADDER, dtype=float))
    medians = np.stack([np.median(law(d) + sd[d] * rng.standard_normal((40000, counts[d])), axis=1) for d in LADDER])
    intercepts = np.polynomial.polynomial.polyfit(x, medians, 1)[0]
    assert learner._width(counts, sd) == pytest.approx(2 * 1.959964 * intercepts.std(), rel=0.08)


def test_statistics_against_independent_references():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 5, 9):
        mc = np.median(rng.standard_normal((100000, n)), axis=1).var()
        assert median_variance_factor(n) == pytest.approx(mc, rel=0.15)
    xs, v = [0.2, 0.3, 0.35, 0.5], [1.0, 2.0, 0.5, 3.0]
    design = np.column_stack([np.ones(4), xs])
    bread = np.linalg.inv(design.T @ design) @ design.T
    assert intercept_sd(xs, v) == pytest.approx(math.sqrt((bread @ np.diag(v) @ bread.T)[0, 0]))
    assert intercept_sd([0.3, 0.3], [1, 1]) == math.inf
    c, var = second_difference([0.1, 0.4, 0.5], [3 * t * t - t for t in (0.1, 0.4, 0.5)], [0.01, 0.02, 0.03])
    assert c == pytest.approx(6.0)
    draws = [second_difference([0.1, 0.4, 0.5], rng.normal(0, np.sqrt([0.01, 0.02, 0.03])), [0, 0, 0])[0]
             for _ in range(20000)]
    assert var == pytest.approx(np.var(draws), rel=0.05)
    out = spreads({"a": ([1.0, 1.2, 1.4], 200), "b": ([2.0, 2.0], 200), "c": ([3.0], 200)})
    pooled2 = (0.04 * 2 + 0.0) / 3
    assert out["a"] == pytest.approx(math.sqrt((2 * 0.04 + 2 * pooled2) / 4))
    assert out["c"] == pytest.approx(math.sqrt(pooled2))
    floor = spreads({"q": ([0.9, 0.9, 0.9], 8)})["q"]
    p = 0.9 * 64 / math.log(20)  # about p* = 20 at d = 8: alpha moves by (ln p + 1) / 64 per unit of p
    assert floor == pytest.approx(quantisation_sd(0.9, 8)) and 0.5 < floor / ((math.log(p) + 1) / 64 / 12 ** 0.5) < 1.5


def test_the_learners_import_neither_torch_nor_ray():
    import subprocess
    import sys

    code = ("import sys, lamcap.orchestrator.learners.decisions; "
            "print(sorted(m for m in ('torch', 'ray', 'zarr', 'xarray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""The cost model and the plan (lamcap.orchestrator.planning.cost_model, .plan) against independent references:
the kernels' own mode rule, the learner run by hand, exact arithmetic on synthetic timings."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from lamcap.api import load_spec
from lamcap.errors import InvalidInput
from lamcap.kernels.budget import DEFAULT_CPU_BUDGET_BYTES, competitor_mode, step_work
from lamcap.kernels.vocabulary import STORAGE_BYTES
from lamcap.orchestrator.learners.threshold import ThresholdLearner
from lamcap.orchestrator.learners.threshold import theory_guess as theory_p
from lamcap.orchestrator.planning import cost_model as cm
from lamcap.orchestrator.planning.calibration import CAL_MAX_ELEMENTS, calibration_sizes
from lamcap.orchestrator.planning.plan import cell_cost, plan_cell, plan_spec, search_trace, simulated_thresholds
from lamcap.orchestrator.planning.stated import stated_gpu_model
from lamcap.orchestrator.spec import Cell


@dataclass(frozen=True)
class FakeTiming:
    kind: str
    problem: str
    mode: str
    d: int
    p: int
    seconds: float


# Synthetic timings that follow straight lines exactly: seconds = A + B work.
LINES = {"step": (1e-3, 1e-9), "setup": (2e-3, 1e-8), "verify": (3e-3, 2e-8), "probe": (4e-3, 3e-8)}


def line_model() -> cm.CostModel:
    timings = []
    for problem in ("op", "dp"):
        for mode in (("materialize",) if problem == "op" else ("materialize", "regenerate")):
            for d, p in ((8, 30), (16, 90), (32, 250)):
                n = p * p * d
                for kind, (a, b) in LINES.items():
                    work = step_work(problem, d, p, mode) if kind == "step" else n
                    timings.append(FakeTiming(kind, problem, mode, d, p, a + b * work))
    return cm.from_timings(timings, "cpu", "synthetic lines", DEFAULT_CPU_BUDGET_BYTES)


# ---- curves ------------------------------------------------------------------------------------
def test_curve_interpolates_between_points_and_extrapolates_the_last_slope():
    curve = cm.Curve(((10.0, 1.0), (20.0, 3.0), (40.0, 5.0)))
    assert curve(15.0) == pytest.approx(2.0) and curve(30.0) == pytest.approx(4.0)
    assert curve(60.0) == pytest.approx(7.0)  # slope 0.1 of the last segment (average 0.125: inside [1/4, 2]x)
    assert curve(5.0) == pytest.approx(0.5) and curve(0.0) == 0.0  # first segment's intercept clamped at 0


def test_curve_is_made_non_decreasing_and_its_extrapolation_is_clamped():
    noisy = cm.Curve(((1.0, 2.0), (2.0, 1.0), (4.0, 4.0)))  # a descheduled small run took longer
    assert [t for _, t in noisy.points] == [2.0, 2.0, 4.0]
    flat = cm.Curve(((10.0, 10.0), (20.0, 10.0)))
    assert flat(40.0) == pytest.approx(10.0 + 20.0 * 0.5 / 4)  # a flat end still grows at 1/4 of the average rate
    with pytest.raises(InvalidInput, match="cost curve"):
        cm.Curve(((1.0, -1.0),))


def test_a_model_fitted_to_straight_lines_reproduces_them():
    model = line_model()
    cases = (("op", "materialize", 120, 20), ("dp", "materialize", 200, 24), ("dp", "regenerate", 70, 12))
    for problem, mode, p, d in cases:
        n = p * p * d
        a, b = LINES["step"]
        work = step_work(problem, d, p, mode)
        assert model.step[(problem, mode)](work) == pytest.approx(a + b * work)
        assert model.probe[problem](n) == pytest.approx(LINES["probe"][0] + LINES["probe"][1] * n)


def test_probe_seconds_add_up_as_documented():
    spec = load_spec({"problems": ["dp"], "solvers": ["adam", "hebbian"], "rhos": [1.0], "ds": [16], "seeds": 1,
                      "solver_settings": {"max_steps": 500}})
    ctx = cm.ProbeContext.of(spec, line_model())
    p, d, n = 90, 16, 90 * 90 * 16
    line = lambda kind, w: LINES[kind][0] + LINES[kind][1] * w  # noqa: E731
    step = line("step", step_work("dp", d, p, "materialize"))
    assert ctx.seconds(Cell("dp", "hebbian", 1.0, d), p, True, 0) == pytest.approx(line("probe", n))
    unsat = line("setup", n) + 500 * step + line("probe", n)
    assert ctx.probe_seconds(Cell("dp", "adam", 1.0, d), p, p_true=80.0) == pytest.approx(unsat)
    sat = line("setup", n) + 37 * step + line("probe", n) + line("verify", n) / 2
    assert ctx.seconds(Cell("dp", "adam", 1.0, d), p, True, 37) == pytest.approx(sat)
    assert ctx.steps(Cell("dp", "adam", 1.0, d), p, 80.0) == 500  # UNSAT runs max_steps
    assert 0 < ctx.steps(Cell("dp", "adam", 1.0, d), p, 200.0) < ctx.steps(Cell("dp", "adam", 1.0, d), p, 95.0) < 500


# ---- the mode `auto` picks -----------------------------------------------------------------------
@pytest.mark.parametrize("problem, p, d, budget, dtype", [
    ("dp", 100, 16, 1 << 30, "float32"), ("dp", 1700, 96, 1 << 30, "float32"), ("dp", 1600, 96, 1 << 30, "float32"),
    ("dp", 2300, 96, 1 << 30, "bfloat16"), ("dp", 50, 8, 1000, "float32"), ("op", 5000, 64, 10, "float32")])
def test_auto_mode_agrees_with_the_kernels(problem, p, d, budget, dtype):
    import torch

    from lamcap.kernels.competitors import resolve_mode
    from lamcap.kernels.disorder import Instance, InstanceSpec

    want = resolve_mode(Instance(InstanceSpec(problem, d, p, 0)), "auto", budget, getattr(torch, dtype))
    assert competitor_mode(problem, d, p, "auto", STORAGE_BYTES[dtype], budget) == want
    held = p * p * d * STORAGE_BYTES[dtype]  # the rule by hand: DP materialises what fits, OP holds its outputs
    assert want == ("materialize" if problem == "op" or held <= budget else "regenerate")


# ---- the simulated searches ---------------------------------------------------------------------
@pytest.mark.parametrize("resolution, width", [(0.0, 1), (0.0, 4), (0.05, 1), (0.02, 3)])
def test_search_trace_is_the_learner_against_a_monotone_oracle(resolution, width):
    spec = load_spec({"problems": ["op"], "solvers": ["adam"], "rhos": [1.0], "ds": [32], "seeds": 1,
                      "search": {"resolution": resolution}})
    cell = spec.cells()[0]
    guess = theory_p(cell)
    for p_true in simulated_thresholds(guess, 32, 0.06, n=9):
        trace = search_trace(cell, spec, guess, p_true, width)
        learner = ThresholdLearner(cell, 0, guess, None, resolution)
        for p, sat in trace:
            assert sat == (p <= p_true)
            learner.tell(p, sat)
        res = learner.result()
        assert learner.done and res.p_lo <= p_true < res.p_hi and len(set(p for p, _ in trace)) == len(trace)


def test_simulated_thresholds_are_spread_symmetrically_in_log():
    truths = simulated_thresholds(100.0, 8, 0.1, n=101)
    logs = [math.log(t / 100.0) for t in truths]
    assert sum(logs) == pytest.approx(0.0, abs=1e-9) and truths == sorted(truths)
    assert max(logs) == pytest.approx(-min(logs)) and 0.2 < max(logs) < 0.3  # about 2.6 sigma at the extremes


def test_cell_cost_grows_with_d_and_shrinks_with_resolution():
    model = line_model()
    exact = load_spec({"problems": ["op"], "solvers": ["adam"], "rhos": [1.0], "ds": [16, 24, 32], "seeds": 2})
    coarse = load_spec(exact, resolution=0.05)
    costs = [cell_cost(c, exact, model) for c in exact.cells()]
    assert costs == sorted(costs) and costs[0] > 0
    for cell in exact.cells():
        e, c = plan_cell(cell, exact, model), plan_cell(cell, coarse, model)
        assert c.probes_per_threshold < e.probes_per_threshold and c.seconds_per_threshold < e.seconds_per_threshold


def test_plan_totals_seeds_curves_and_wall_time():
    model = line_model()
    spec = load_spec({"problems": ["op", "dp"], "solvers": ["adam", "hebbian"], "rhos": [1.0], "ds": [8, 12],
                      "seeds": 3, "search": {"curve_points": 2}})
    plan = plan_spec(spec, model, workers=2)
    assert plan.device_seconds == pytest.approx(sum(c.seeds * c.seconds_per_threshold + c.curve_seconds
                                                    for c in plan.cells))
    assert all(c.curve_probes == 2 * 3 for c in plan.cells if c.solver == "adam")
    longest = max(c.seconds_per_threshold for c in plan.cells)
    assert plan.wall_seconds == pytest.approx(max(plan.device_seconds / 2, longest))
    assert plan_spec(spec, model).wall_seconds is None
    doc = plan.to_dict()
    assert doc["device_hours"] == pytest.approx(plan.device_seconds / 3600) and len(doc["cells"]) == len(spec.cells())
    with pytest.raises(InvalidInput, match="workers=0"):
        plan_spec(spec, model, workers=0)


# ---- the stated GPU model and the calibration sizes ----------------------------------------------
def test_the_stated_gpu_model_plans_the_paper_preset():
    spec = load_spec("paper", device="cuda")
    model = stated_gpu_model()
    assert model.device == "cuda" and model.source.startswith("stated GPU model")
    fits = plan_cell(Cell("dp", "adam", 1.0, 256), spec, model)
    assert fits.mode == "materialize" and fits.competitor_bytes < model.budget_bytes  # ~46 GB < 60% of 139 GiB
    big = plan_cell(Cell("dp", "adam", 1.0, 384), spec, model)
    assert big.mode == "regenerate" and big.competitor_bytes > model.budget_bytes
    small = plan_cell(Cell("op", "adam", 1.0, 64), spec, model)
    assert small.mode == "materialize" and 0 < small.seconds_unsat_probe < big.seconds_unsat_probe


def test_calibration_sizes_cover_each_problem_and_mode_within_the_time_caps():
    spec = load_spec("paper")
    sizes = calibration_sizes(spec, DEFAULT_CPU_BUDGET_BYTES)
    groups = {(problem, mode) for problem, _, _, mode in sizes}
    assert groups == {("op", "materialize"), ("dp", "materialize"), ("dp", "regenerate")}
    for problem, d, p, mode in sizes:
        assert p * p * d <= CAL_MAX_ELEMENTS["op" if problem == "op" else mode]
        assert p > theory_p(Cell(problem, "adam", 1.0, d))  # above capacity: nothing converges while timed
    assert sum(1 for s in sizes if s[0] == "op") <= 4


def test_the_cpu_clock_fits_the_cpu_seconds_of_the_timings():
    @dataclass(frozen=True)
    class Clocked(FakeTiming):
        cpu_seconds: float = 0.0

    timings = [Clocked(kind, "op", "materialize", d, p, seconds=2.0 * d, cpu_seconds=float(d))
               for kind in LINES for d, p in ((8, 30), (16, 90))]
    wall = cm.from_timings(timings, "cpu", "t", DEFAULT_CPU_BUDGET_BYTES)
    cpu = cm.from_timings(timings, "cpu", "t", DEFAULT_CPU_BUDGET_BYTES, clock="cpu")
    n = 30 * 30 * 8
    assert wall.probe["op"](n) == pytest.approx(16.0) and cpu.probe["op"](n) == pytest.approx(8.0)
    with pytest.raises(InvalidInput, match="clock='gpu'"):
        cm.from_timings(timings, "cpu", "t", DEFAULT_CPU_BUDGET_BYTES, clock="gpu")


def test_a_cell_whose_competitors_cannot_fit_the_device_is_refused_in_one_line():
    spec = load_spec({"problems": ["dp"], "solvers": ["adam"], "rhos": [1.0], "ds": [64, 384], "seeds": 1,
                      "solver_settings": {"mode": "materialize"}})
    with pytest.raises(InvalidInput) as info:
        plan_spec(spec, stated_gpu_model())
    message = str(info.value)
    assert message.startswith("cell dp adam rho=1 d=384: mode 'materialize' holds") and "\n" not in message
    auto = load_spec(spec, mode="auto")
    assert plan_spec(auto, stated_gpu_model()).cells[-1].mode == "regenerate"


# ---- a GPU: host-bound small steps, device-bound large ones --------------------------------------------
GPU_HOST_S = 2.4e-3  # the synthetic device: a step costs max(host, work / rate)
GPU_RATES = {"flops": 60e12, "bytes_per_s": 4.3e12, "samples_per_s": 2.9e11}


def gpu_timings() -> list:
    """Synthetic calibration of a GPU at small sizes only (all host-bound): what a short calibration sees."""
    rates = cm.device_step_rates(GPU_RATES)
    out = []
    for problem, mode in (("op", "materialize"), ("dp", "materialize"), ("dp", "regenerate")):
        for d, p in ((16, 70), (24, 130), (32, 200)):
            n = p * p * d
            step = max(GPU_HOST_S, step_work(problem, d, p, mode) / rates[(problem, mode)])
            out += [FakeTiming("step", problem, mode, d, p, step), FakeTiming("setup", problem, mode, d, p, 0.01),
                    FakeTiming("verify", problem, mode, d, p, 0.02 + n * 1e-12),
                    FakeTiming("probe", problem, mode, d, p, 0.05 + n * 1e-12)]
    return out


@pytest.mark.parametrize("problem, mode, d, p", [("op", "materialize", 512, 20000), ("dp", "materialize", 256, 6300),
                                                 ("op", "materialize", 256, 6000), ("dp", "regenerate", 384, 12000)])
def test_a_gpu_model_prices_large_steps_by_the_device_not_by_extrapolating_small_host_bound_ones(problem, mode, d, p):
    timings = gpu_timings()
    truth = max(GPU_HOST_S, step_work(problem, d, p, mode) / cm.device_step_rates(GPU_RATES)[(problem, mode)])
    roofline = cm.from_timings(timings, "cuda", "t", 1 << 36, rates=GPU_RATES)
    assert roofline.step[(problem, mode)](step_work(problem, d, p, mode)) == pytest.approx(truth, rel=1e-9)
    curves = cm.from_timings(timings, "cuda", "t", 1 << 36)  # what a fit of small sizes alone extrapolates to
    extrapolated = curves.step[(problem, mode)](step_work(problem, d, p, mode))
    assert extrapolated > 2 * truth or truth == GPU_HOST_S


def test_probes_sharing_a_gpu_pay_for_the_device_only_where_it_binds():
    model = cm.from_timings(gpu_timings(), "cuda", "t", 1 << 36, rates=GPU_RATES)
    spec = load_spec({"problems": ["op"], "solvers": ["adam"], "rhos": [1.0], "ds": [32, 512], "seeds": 1})
    alone, shared = cm.ProbeContext.of(spec, model), cm.ProbeContext.of(spec, model, share=8)
    small, large = (Cell("op", "adam", 1.0, 32), 200), (Cell("op", "adam", 1.0, 512), 20000)
    # host-bound: 8 probes at once each take as long as one alone, so each costs 1/8 of the device's time
    assert shared.wall_seconds(*small, False, 100) == pytest.approx(alone.wall_seconds(*small, False, 100))
    assert shared.seconds(*small, False, 100) == pytest.approx(alone.seconds(*small, False, 100) / 8)
    # device-bound: sharing gains nothing
    assert shared.seconds(*large, False, 100) == pytest.approx(alone.seconds(*large, False, 100), rel=0.05)
    many_small = load_spec({"problems": ["op"], "solvers": ["adam"], "rhos": [1.0], "ds": [32], "seeds": 16})
    one_gpu_shared = plan_spec(many_small, model, workers=8, share=8).wall_seconds
    assert one_gpu_shared == pytest.approx(plan_spec(many_small, model, workers=1).wall_seconds / 8, rel=0.02)

"""The threshold learner against plain-function oracles; curve loads against the closed form."""
from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamcap.errors import InvalidInput
from lamcap.orchestrator.learners.curves import curve_loads
from lamcap.orchestrator.learners.threshold import ThresholdLearner, initial_bracket
from lamcap.orchestrator.spec import Cell
from lamcap.predictions.units import alpha_of, alpha_to_p

CELL = Cell("op", "adam", 1.0, 8)
FAST = settings(max_examples=150, deadline=None)


def search(oracle, guess: float, n: int = 1, p_max: int | None = None, max_rounds: int = 10_000,
           resolution: float = 0.0):
    """Run a learner to the end: each round asks up to n points and tells all of them."""
    learner = ThresholdLearner(CELL, 0, guess, p_max, resolution)
    rounds = 0
    while not learner.done and not learner.exhausted:
        points = learner.ask(n)
        assert points, f"stuck: asked nothing at {learner.result()}"
        assert len(points) <= n and len(set(points)) == len(points)
        for p in points:
            learner.tell(p, oracle(p))
        rounds += 1
        assert rounds < max_rounds
    return learner, rounds


def expansions(p_true: int, a: int, b: int) -> int:
    """How many rungs past the initial bracket [a, b] the documented ladder needs to bracket p_true."""
    s0, k = b - a, 0
    if p_true >= b:  # going up: rung b + s0 (2^(k+1) - 2) must be UNSAT
        while b + s0 * (2 ** (k + 1) - 2) <= p_true:
            k += 1
    elif p_true < a:  # going down: rung a - s0 (2^(k+1) - 2) must be SAT, or reach p = 2
        while a - s0 * (2 ** (k + 1) - 2) > max(p_true, 2):
            k += 1
    return k


@FAST
@given(p_true=st.integers(1, 20_000), guess=st.floats(1.0, 20_000.0))
def test_finds_exact_p_star_within_the_documented_probe_bound(p_true, guess):
    learner, _ = search(lambda p: p <= p_true, guess)
    result = learner.result()
    assert result.p_star == p_true and result.monotone
    a, b = initial_bracket(guess)
    k = expansions(p_true, a, b)
    width = (b - a) * 2 ** k  # the ladder rung that holds p*: the first bracket is at most this wide
    ladder = 2 + k if p_true >= a else 1 + k  # going down, b is never probed
    assert result.n_probes <= ladder + math.ceil(math.log2(width))


@FAST
@given(guess=st.floats(2.0, 5_000.0), where=st.floats(0.0, 1.0), regime=st.sampled_from(["right", "low", "high"]))
def test_issue_bound_log2_width_plus_3_from_low_high_and_right_guesses(guess, where, regime):
    """Right guess: p* in [a, b). Too low / too high: p* within one rung (width W = 2 s0) outside it."""
    a, b = initial_bracket(guess)
    s0 = b - a
    lo, hi = {"right": (a, b - 1), "low": (b, b + 2 * s0 - 1), "high": (max(1, a - 2 * s0), a - 1)}[regime]
    if hi < lo:
        return  # a tiny guess leaves no room below the bracket
    p_true = lo + round(where * (hi - lo))
    width = s0 if regime == "right" else 2 * s0
    learner, _ = search(lambda p: p <= p_true, guess)
    assert learner.result().p_star == p_true
    assert learner.result().n_probes <= math.ceil(math.log2(width)) + 3


@pytest.mark.parametrize("p_true, guess", [(60, 20), (60, 60), (60, 200), (800, 700), (3000, 900), (2, 50)])
def test_k_section_with_4_points_takes_fewer_rounds_than_bisection(p_true, guess):
    one, rounds_1 = search(lambda p: p <= p_true, guess, n=1)
    four, rounds_4 = search(lambda p: p <= p_true, guess, n=4)
    assert one.result().p_star == four.result().p_star == p_true
    assert rounds_4 < rounds_1


@FAST
@given(p_true=st.integers(1, 3000), guess=st.floats(2.0, 3000.0), n=st.integers(2, 8))
def test_k_section_is_exact_and_never_slower(p_true, guess, n):
    many, rounds_n = search(lambda p: p <= p_true, guess, n=n)
    _, rounds_1 = search(lambda p: p <= p_true, guess, n=1)
    assert many.result().p_star == p_true and rounds_n <= rounds_1


@FAST
@given(p_true=st.integers(1, 3000), guess=st.floats(2.0, 3000.0), cut=st.integers(0, 40), seed=st.integers(0, 99))
def test_replay_gives_the_same_next_asks_and_result(p_true, guess, cut, seed):
    oracle = lambda p: p <= p_true  # noqa: E731
    original = ThresholdLearner(CELL, 0, guess)
    for _ in range(cut):  # an interrupted run, one probe at a time
        if original.done:
            break
        (p,) = original.ask(1)
        original.tell(p, oracle(p))
    told = list(original.probes.items())
    random.Random(seed).shuffle(told)  # a store hands rows back in any order
    replayed = ThresholdLearner(CELL, 0, guess)
    for p, sat in told:
        replayed.tell(p, sat)
    assert replayed.result() == original.result()
    asked = replayed.ask(3)
    assert asked == original.ask(3)
    assert not set(asked) & set(replayed.probes)


def test_replaying_a_finished_search_asks_nothing():
    learner, _ = search(lambda p: p <= 137, 100.0)
    fresh = ThresholdLearner(CELL, 0, 100.0)
    for p, sat in reversed(list(learner.probes.items())):
        fresh.tell(p, sat)
    assert fresh.done and fresh.ask(4) == [] and fresh.result() == learner.result()


def observed_non_monotone(probes: dict[int, bool]) -> bool:
    return any(sat and any(not s and q < p for q, s in probes.items()) for p, sat in probes.items())


@FAST
@given(seed=st.integers(0, 10_000), guess=st.floats(2.0, 400.0), n=st.integers(1, 5), p_sat=st.floats(0.1, 0.9))
def test_any_oracle_terminates_with_a_valid_first_violation_and_honest_flag(seed, guess, n, p_sat):
    rng = random.Random(seed)
    cap = 300  # beyond it everything fails, as any real memory does
    verdicts = {p: rng.random() < p_sat for p in range(2, cap)}
    oracle = lambda p: verdicts.get(p, False)  # noqa: E731
    learner, _ = search(oracle, guess, n=n, max_rounds=400)
    result = learner.result()
    assert result.p_star is not None
    assert result.p_star == 1 or (result.probes[result.p_star] and oracle(result.p_star))
    assert result.probes[result.p_star + 1] is False
    assert all(result.probes[p] == oracle(p) for p in result.probes)
    assert result.monotone == (not observed_non_monotone(result.probes))


def test_non_monotone_outcome_is_recorded_not_hidden():
    # a gradient solver that fails at 8 yet succeeds at 12: UNSAT at 8..9, SAT at 12
    oracle = lambda p: p <= 5 or p == 12  # noqa: E731
    learner, _ = search(oracle, 10.0, n=2)  # initial bracket (8, 12), both end points at once
    result = learner.result()
    assert initial_bracket(10.0) == (8, 12)
    assert result.probes[12] is True and result.probes[8] is False
    assert result.monotone is False
    assert result.p_star == 5 and result.p_hi == 6


def test_duplicates_conflicts_and_unasked_tells():
    learner = ThresholdLearner(CELL, 0, 40.0)
    asked = learner.ask(2)
    assert asked == list(initial_bracket(40.0)) and learner.pending == set(asked)
    learner.tell(asked[0], True)
    learner.tell(asked[0], True)  # a duplicate with the same verdict is a no-op
    assert learner.result().n_probes == 1 and learner.pending == {asked[1]}
    with pytest.raises(ValueError, match=str(asked[0])):
        learner.tell(asked[0], False)
    learner.tell(1000, False)  # never asked: a replay from a store
    assert learner.bracket() == (asked[0], 1000)
    for bad in (1, 0, -3, 2.5, True):
        with pytest.raises(InvalidInput, match=repr(bad)):
            learner.tell(bad, True)


def test_forget_makes_a_lost_probe_askable_again():
    learner = ThresholdLearner(CELL, 0, 40.0)
    first = learner.ask(1)
    assert first and learner.ask(1) != first  # pending: not proposed twice
    learner.forget(first[0])
    learner.forget(12345)  # forgetting an unknown p is harmless
    assert first[0] not in learner.pending
    fresh = ThresholdLearner(CELL, 0, 40.0)
    fresh.ask(1), fresh.ask(1)
    fresh.forget(first[0])
    assert fresh.ask(1) == first


def test_ask_nothing_useful_returns_empty():
    learner = ThresholdLearner(CELL, 0, 10.0)
    learner.tell(8, True)
    learner.tell(10, False)
    assert learner.ask(5) == [9]  # the only interior point
    assert learner.ask(5) == []  # it is pending: nothing else to learn now
    assert learner.ask(0) == []


def test_p_equal_2_unsat_reports_p_star_1():
    learner, _ = search(lambda p: False, 30.0)
    result = learner.result()
    assert learner.done and result.p_star == 1 and result.p_lo == 1 and result.p_hi == 2


def test_p_max_caps_probes_and_reports_an_unclosable_bracket():
    learner, _ = search(lambda p: True, 30.0, p_max=100)
    result = learner.result()
    assert learner.exhausted and not learner.done and learner.ask(3) == []
    assert result.p_star is None and result.p_hi is None and max(result.probes) == 100
    capped, _ = search(lambda p: p <= 77, 30.0, p_max=100)
    assert capped.result().p_star == 77 and max(capped.probes) <= 100


@pytest.mark.parametrize("guess", [0, -1.0, float("nan"), float("inf"), "12", True])
def test_bad_guess_is_named(guess):
    with pytest.raises(InvalidInput, match="guess_p"):
        ThresholdLearner(CELL, 0, guess)


@pytest.mark.parametrize("p_max", [2, 0, 10.5])
def test_bad_p_max_is_named(p_max):
    with pytest.raises(InvalidInput, match=f"p_max={p_max!r}"):
        ThresholdLearner(CELL, 0, 10.0, p_max)


@FAST
@given(alpha=st.floats(0.05, 3.0), d=st.integers(2, 600))
def test_alpha_to_p_inverts_the_load(alpha, d):
    p = alpha_to_p(alpha, d)
    assert p >= 1.0
    assert alpha_of(p, d) == pytest.approx(alpha, rel=1e-9)


@FAST
@given(alpha=st.floats(0.1, 2.0), d=st.integers(2, 300), n=st.integers(0, 12), span=st.floats(0.05, 0.9))
def test_curve_loads_are_distinct_integers_in_the_alpha_window(alpha, d, n, span):
    loads = curve_loads(alpha, d, n, span)
    assert loads == sorted(set(loads)) and all(isinstance(p, int) and p >= 2 for p in loads)
    lo_p, hi_p = alpha_to_p(alpha * (1 - span), d), alpha_to_p(alpha * (1 + span), d)
    in_window = [p for p in range(2, math.floor(hi_p) + 1) if p >= lo_p]
    if n >= 2:
        assert set(loads) <= set(in_window)
        assert len(loads) == min(n, len(in_window))
    elif n == 1:
        assert loads == [max(2, round(alpha_to_p(alpha, d)))]
    else:
        assert loads == []


def test_curve_loads_spread_over_the_window():
    loads = curve_loads(0.8, 64, 5, 0.3)
    alphas = [p * math.log(p) / 64**2 for p in loads]
    assert len(loads) == 5
    assert alphas[0] == pytest.approx(0.8 * 0.7, rel=0.01) and alphas[-1] == pytest.approx(0.8 * 1.3, rel=0.01)
    steps = [y - x for x, y in zip(alphas, alphas[1:])]
    assert max(steps) == pytest.approx(min(steps), rel=0.05)


@pytest.mark.parametrize("args, name", [((0.0, 8, 3, 0.3), "median_alpha"), ((1.0, 1, 3, 0.3), "d="),
                                        ((1.0, 8, -1, 0.3), "n="), ((1.0, 8, 3, 1.0), "span=")])
def test_curve_loads_bad_values_are_named(args, name):
    with pytest.raises(InvalidInput, match=name):
        curve_loads(*args)


# ---- resolution: stop once p_hi - p_lo <= max(1, resolution p_lo) ---------------------------------
@FAST
@given(p_true=st.integers(1, 20_000), guess=st.floats(2.0, 20_000.0), n=st.integers(1, 6),
       resolution=st.floats(0.0, 0.49))
def test_resolution_bracket_contains_the_true_threshold_and_is_narrow_enough(p_true, guess, n, resolution):
    learner, _ = search(lambda p: p <= p_true, guess, n=n, resolution=resolution)
    res = learner.result()
    assert res.p_lo <= p_true < res.p_hi  # SAT at p_lo (or p_lo = 1), UNSAT at p_hi: p* in [p_lo, p_hi - 1]
    assert res.p_lo == 1 or res.probes[res.p_lo] is True
    assert res.probes[res.p_hi] is False
    assert res.p_hi - res.p_lo <= max(1.0, resolution * res.p_lo)
    assert res.p_mid == (res.p_lo + res.p_hi - 1) / 2 and res.p_star == math.floor(res.p_mid)
    assert res.p_lo <= res.p_star <= res.p_hi - 1


@FAST
@given(p_true=st.integers(1, 20_000), guess=st.floats(2.0, 20_000.0), resolution=st.floats(0.0, 0.49))
def test_resolution_never_costs_a_bisection_more_probes_than_the_exact_search(p_true, guess, resolution):
    """One point at a time, the coarse search walks the exact search's path and stops earlier."""
    coarse, _ = search(lambda p: p <= p_true, guess, resolution=resolution)
    exact, _ = search(lambda p: p <= p_true, guess)
    assert coarse.result().n_probes <= exact.result().n_probes
    assert set(coarse.probes) <= set(exact.probes)


@pytest.mark.parametrize("n", [1, 4])
def test_resolution_saves_probes_on_large_thresholds(n):
    """Thresholds near a guess of 2000 (r p* ~ 20 at r = 0.01): about log2(20) ~ 4 probes fewer."""
    rng = random.Random(1)
    truths = [round(2000 * math.exp(0.1 * rng.gauss(0, 1))) for _ in range(40)]
    exact = [search(lambda p, t=t: p <= t, 2000.0, n=n)[0].result().n_probes for t in truths]
    coarse = [search(lambda p, t=t: p <= t, 2000.0, n=n, resolution=0.01)[0].result().n_probes for t in truths]
    assert sum(coarse) / len(coarse) <= sum(exact) / len(exact) - 2.5


def test_exact_bracket_reports_its_low_end():
    learner, _ = search(lambda p: p <= 137, 100.0, resolution=0.0)
    res = learner.result()
    assert (res.p_star, res.p_mid, res.p_lo, res.p_hi) == (137, 137.0, 137, 138)


@pytest.mark.parametrize("resolution", [-0.1, 0.5, 1.0, float("nan"), True, "0.1"])
def test_bad_resolution_is_named(resolution):
    with pytest.raises(InvalidInput, match="resolution=") as info:
        ThresholdLearner(CELL, 0, 50.0, None, resolution)
    assert len(str(info.value).splitlines()) == 1

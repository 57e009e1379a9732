"""The dispatch loop on an embedded Ray (2 CPUs) with fake, fast probe runners.

The oracle is monotone: SAT iff p <= p_true(cell, seed), so every threshold is known exactly.
Runners are module-level functions: Ray workers import this module by name.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections import Counter

import numpy as np
import pytest
import zarr

ray = pytest.importorskip("ray")

from lamcap.orchestrator.learners.decisions import decision_row
from lamcap.orchestrator.learners.expansion import Expansion
from lamcap.orchestrator.runtime.pool import WorkerPlan, WorkerPool
from lamcap.orchestrator.runtime.preflight import check_store
from lamcap.orchestrator.runtime.probe import failed_record, probe_labels
from lamcap.orchestrator.runtime.ray_session import start_ray, stop_ray
from lamcap.orchestrator.runtime.scheduler import Scheduler, SchedulerSettings
from lamcap.orchestrator.spec import Cell, Probe, SearchSettings, SweepSpec
from lamcap.store.reader import read_decisions, read_tables
from lamcap.store.schema import probe_key, threshold_key
from lamcap.store.writer import StoreWriter
from tests.orchestrator.learners import adaptive_oracle
from tests.orchestrator.learners.test_expansion import by_learner, cubic_cost, run
from tests.orchestrator.learners.test_expansion import make_spec as adaptive_spec

GUESS = 20.0


def p_true(problem: str, d: int, seed: int) -> int:
    """A made-up per-(cell, seed) threshold, some inside and some outside the first bracket."""
    return 6 + (3 * d + 7 * seed + (11 if problem == "dp" else 0)) % 37


def fake_runner(probe: Probe, settings, device: str) -> dict:
    sat = probe.p <= p_true(probe.cell.problem, probe.cell.d, probe.seed)
    return {**probe_labels(probe), "sat": sat, "status": "closed_form", "accuracy": 1.0 if sat else 0.9,
            "n_violations": 0 if sat else 1, "min_margin": 0.1, "final_loss": 0.0, "steps": 0,
            "wall_seconds": 0.0, "peak_bytes": 0, "device": device, "target_mean": 0.0, "target_var": 1.0,
            "offtarget_mean": 0.0, "offtarget_var": 1.0, "target_hist": [], "offtarget_hist": [],
            "singular_values": [1.0] * probe.cell.d, "error": ""}


def dying_once_runner(marker_dir: str, probe: Probe, settings, device: str) -> dict:
    """Kills its own process the first time any actor sees p == 17 (an exclusive marker: once per test)."""
    if probe.p == 17:
        try:  # O_EXCL: two actors starting p = 17 at once cannot both die
            os.close(os.open(os.path.join(marker_dir, "died"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return fake_runner(probe, settings, device)
        os._exit(1)
    return fake_runner(probe, settings, device)


def failing_runner(probe: Probe, settings, device: str) -> dict:
    """At p = 17 (the first probe of every seed): dp always kills its actor, op raises."""
    if probe.p == 17 and probe.cell.problem == "dp":
        os._exit(1)
    if probe.p == 17:
        raise RuntimeError("boom at p=17")
    return fake_runner(probe, settings, device)


def raising_once_runner(marker_dir: str, probe: Probe, settings, device: str) -> dict:
    """The first run of p == 17 anywhere returns an error record (as run_probe does for a raise); then fine."""
    if probe.p == 17:
        try:
            os.close(os.open(os.path.join(marker_dir, "raised"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return fake_runner(probe, settings, device)
        return failed_record(probe, device, "RuntimeError: CUDA error: an illegal memory access (transient)")
    return fake_runner(probe, settings, device)


def make_spec(ds=(8, 12), seeds=3, curve_points=0) -> SweepSpec:
    return SweepSpec(problems=("op", "dp"), solvers=("hebbian",), rhos=(1.0,), ds=ds, seeds=seeds, device="cpu",
                     search=SearchSettings(curve_points=curve_points))


@pytest.fixture(scope="module")
def pool():
    """Two warm CPU actors shared by the tests (each test installs its own fake runner)."""
    start_ray(None, num_cpus=2)
    workers = WorkerPool(WorkerPlan(count=2, num_gpus=0, num_cpus=1, device="cpu"), fake_runner)
    workers.wait_ready()
    yield workers
    workers.shutdown()
    stop_ray()


def sweep(path, spec, pool, runner, **settings):
    pool.set_runner(runner)
    store = StoreWriter.open_or_create(path, spec)
    opts = dict(progress=False, flush_every=8, wait_timeout=0.2, **settings)
    return Scheduler(spec, store, pool, SchedulerSettings(**opts), guess=lambda cell: GUESS).run()


def expected(spec) -> dict:
    return {(c.problem, c.solver, c.rho, c.d, s): p_true(c.problem, c.d, s)
            for c in spec.cells() for s in range(spec.seeds)}


def stored_thresholds(path) -> dict:
    _, rows, _ = read_tables(path)
    return {(r["problem"], r["solver"], r["rho"], r["d"], r["seed"]): r["p_star"] for r in rows}


def assert_no_duplicates(path) -> list[dict]:
    probes, rows, _ = read_tables(path)
    assert max(Counter(probe_key(r) for r in probes).values()) == 1
    assert len({(r["problem"], r["d"], r["seed"]) for r in rows}) == len(rows)
    return probes


def test_fake_oracle_thresholds_exact_and_every_actor_used(pool, tmp_path):
    spec = make_spec()
    report = sweep(tmp_path / "s.zarr", spec, pool, fake_runner)
    assert stored_thresholds(tmp_path / "s.zarr") == expected(spec)
    probes = assert_no_duplicates(tmp_path / "s.zarr")
    assert report.probes_run == len(probes) and report.retries == 0
    assert set(report.per_actor) == {0, 1}
    # every search probe is consistent with the oracle, and each seed's bracket is tight
    for r in probes:
        assert r["sat"] == (r["p"] <= p_true(r["problem"], r["d"], r["seed"]))


def test_a_coarse_resolution_stores_brackets_holding_each_threshold_for_fewer_probes(pool, tmp_path):
    import dataclasses
    import math

    exact = make_spec(ds=(8, 12, 16))
    coarse = dataclasses.replace(exact, search=dataclasses.replace(exact.search, resolution=0.3))
    sweep(tmp_path / "exact.zarr", exact, pool, fake_runner)
    sweep(tmp_path / "coarse.zarr", coarse, pool, fake_runner)
    (exact_probes, _, _), (coarse_probes, rows, _) = (read_tables(tmp_path / f) for f in ("exact.zarr", "coarse.zarr"))
    assert len(coarse_probes) < len(exact_probes)
    assert len(rows) == len(coarse.cells()) * coarse.seeds
    for r in rows:
        truth = p_true(r["problem"], r["d"], r["seed"])
        assert r["p_lo"] <= truth < r["p_hi"] and r["p_hi"] - r["p_lo"] <= max(1, 0.3 * r["p_lo"])
        mid = (r["p_lo"] + r["p_hi"] - 1) / 2
        assert r["p_star"] == math.floor(mid) and math.isclose(r["alpha_star"], mid * math.log(mid) / r["d"] ** 2)


def test_ksection_keeps_more_actors_busy_than_learners(pool, tmp_path):
    """One learner of width 4, two actors: its rounds of k-section keep both busy at once."""
    spec = SweepSpec(problems=("op",), solvers=("hebbian",), rhos=(1.0,), ds=(8,), seeds=1, device="cpu",
                     search=SearchSettings(width=4))
    report = sweep(tmp_path / "k.zarr", spec, pool, fake_runner)
    assert stored_thresholds(tmp_path / "k.zarr") == expected(spec)
    assert report.peak_in_flight == 2 and set(report.per_actor) == {0, 1}


class _Pool:
    """A stand-in pool for the pure parts of the scheduler (no Ray calls are made)."""

    def __init__(self, n: int) -> None:
        self.actors = [object()] * n
        self.ready = list(range(n))
        self.placing: dict = {}
        self.plan = WorkerPlan(count=n, num_gpus=0, num_cpus=1, device="cpu")


def test_each_idle_search_is_asked_a_round_of_its_width_and_nothing_more_until_it_is_answered(tmp_path):
    spec = dataclasses.replace(make_spec(ds=(8,), seeds=2), search=SearchSettings(width=2))  # 4 searches
    sched = Scheduler(spec, StoreWriter.open_or_create(tmp_path / "q.zarr", spec), _Pool(11),
                      SchedulerSettings(progress=False), guess=lambda cell: GUESS)
    first = sched._ask(100)
    assert len(first) == 8 and len({p.key for p, _ in first}) == 8
    assert Counter((p.cell, p.seed) for p, _ in first) == {k: 2 for k in sched.learners}
    assert sched._ask(100) == []  # every search waits for its round
    probe = first[0][0]
    learner = sched.learners[(probe.cell, probe.seed)]
    for p in sorted(learner.pending):
        learner.tell(p, p <= 10)
    sched._check_learner((probe.cell, probe.seed), learner)  # what a finished probe's record does
    again = sched._ask(100)
    assert {(p.cell, p.seed) for p, _ in again} == {(probe.cell, probe.seed)} and len(again) == 2
    assert sched._ask(1) == []  # one idle actor asks no round of the others: all of them are in flight


def test_the_longest_probes_start_first():
    from lamcap.orchestrator.runtime.dispatch import DispatchOrder

    order = DispatchOrder(make_spec(), "cpu")
    small, big_p, big_d = (Probe(Cell("op", "adam", 1.0, d), 0, p) for d, p in ((8, 10), (8, 20), (16, 10)))
    assert order.seconds(big_d) > order.seconds(small) and order.seconds(big_p) > order.seconds(small)
    def seconds(problem: str, solver: str, d: int, p: int) -> float:
        return order.seconds(Probe(Cell(problem, solver, 1.0, d), 0, p))

    assert seconds("dp", "adam", 8, 200) > seconds("op", "adam", 8, 200)
    assert seconds("op", "lp", 24, 100) > seconds("op", "adam", 24, 100)


def test_resume_from_partial_store_reruns_nothing_stored(pool, tmp_path):
    spec = make_spec()
    full = sweep(tmp_path / "full.zarr", spec, pool, fake_runner)
    probes, _, _ = read_tables(tmp_path / "full.zarr")
    half = probes[: len(probes) // 2]
    partial = StoreWriter.open_or_create(tmp_path / "part.zarr", spec)
    partial.append_probes([{**r, "target_hist": [], "offtarget_hist": [], "singular_values": []} for r in half])
    resumed = sweep(tmp_path / "part.zarr", spec, pool, fake_runner)
    assert stored_thresholds(tmp_path / "part.zarr") == expected(spec) == stored_thresholds(tmp_path / "full.zarr")
    after = assert_no_duplicates(tmp_path / "part.zarr")
    assert {probe_key(r) for r in half} <= {probe_key(r) for r in after}
    assert resumed.probes_run == len(after) - len(half) < full.probes_run


def test_actor_killed_mid_sweep_same_thresholds_no_duplicates(pool, tmp_path):
    spec = make_spec(ds=(8,), seeds=2)
    report = sweep(tmp_path / "kill.zarr", spec, pool, functools.partial(dying_once_runner, str(tmp_path)))
    assert os.path.exists(tmp_path / "died") and report.retries == 1
    assert stored_thresholds(tmp_path / "kill.zarr") == expected(spec)
    probes = assert_no_duplicates(tmp_path / "kill.zarr")
    assert max(r["attempt"] for r in probes if r["p"] == 17) == 2


def test_probes_that_keep_failing_leave_their_seed_incomplete_never_a_verdict(pool, tmp_path, caplog):
    spec = make_spec(ds=(12,), seeds=1)
    report = sweep(tmp_path / "dead.zarr", spec, pool, failing_runner, max_attempts=2)
    store = StoreWriter.open_or_create(tmp_path / "dead.zarr", spec)
    records = store.completed_probes()
    assert_no_duplicates(tmp_path / "dead.zarr")
    died = records[("dp", "hebbian", 1.0, 12, 0, 17, "search")]
    raised = records[("op", "hebbian", 1.0, 12, 0, 17, "search")]
    assert died["status"] == "error" and not died["sat"] and died["attempt"] == 2 and "actor died" in died["error"]
    assert raised["status"] == "error" and not raised["sat"] and "boom at p=17" in raised["error"]
    assert report.retries == 2  # each failing probe ran twice
    rows = store.completed_thresholds()
    assert len(rows) == 2
    for problem, needle in (("dp", "actor died"), ("op", "boom at p=17")):
        row = rows[(problem, "hebbian", 1.0, 12, 0)]
        assert not row["complete"] and row["p_star"] == -1 and "p=17" in row["reason"] and needle in row["reason"]
        # no threshold was computed past the error, although the other verdicts of the seed are exact
        searched = {k[5]: r["sat"] for k, r in records.items() if k[0] == problem and r["status"] != "error"}
        assert all(sat == (p <= p_true(problem, 12, 0)) for p, sat in searched.items())
    said = [r.getMessage() for r in caplog.records if r.name.startswith("lamcap")]
    assert sum("failed (attempt 1 of 2)" in m for m in said) == 2  # said when it happened
    assert any("giving up on this seed" in m for m in said) and report.failures == said


def test_a_transient_error_is_retried_and_gives_the_normal_threshold(pool, tmp_path):
    spec = make_spec(ds=(8,), seeds=2)
    report = sweep(tmp_path / "flaky.zarr", spec, pool, functools.partial(raising_once_runner, str(tmp_path)))
    assert os.path.exists(tmp_path / "raised") and report.retries == 1
    assert stored_thresholds(tmp_path / "flaky.zarr") == expected(spec)
    probes = assert_no_duplicates(tmp_path / "flaky.zarr")
    assert all(r["status"] != "error" for r in probes)
    assert max(r["attempt"] for r in probes if r["p"] == 17) == 2


def test_curve_probes_follow_the_median_threshold(pool, tmp_path):
    spec = make_spec(ds=(12,), seeds=2, curve_points=3)
    sweep(tmp_path / "curve.zarr", spec, pool, fake_runner)
    probes, _, _ = read_tables(tmp_path / "curve.zarr")
    curve = [r for r in probes if r["purpose"] == "curve"]
    assert {(r["problem"], r["seed"]) for r in curve} == {(p, s) for p in ("op", "dp") for s in (0, 1)}
    assert all(len([r for r in curve if (r["problem"], r["seed"]) == (p, s)]) == 3
               for p in ("op", "dp") for s in (0, 1))


class _FailingStore:
    """A store whose appends fail, as a full disk would."""

    def completed_probes(self) -> dict:
        return {}

    def completed_thresholds(self) -> dict:
        return {}

    def append_probes(self, records):
        raise OSError("No space left on device")

    def append_thresholds(self, rows):
        raise OSError("No space left on device")


def test_a_failed_store_write_is_raised_not_swallowed():
    """The writer thread's error surfaces at the next flush, and the final flush waits for it."""
    spec = make_spec(ds=(8,), seeds=1)
    sched = Scheduler(spec, _FailingStore(), _Pool(2), SchedulerSettings(progress=False), guess=lambda cell: GUESS)
    sched.writer.start()
    try:
        sched.writer.pending.records = [{"p": 5}]
        sched.flush()  # handed to the writer thread: the dispatch loop does not wait for it
        sched.writer.pending.records = [{"p": 6}]
        with pytest.raises(OSError, match="No space left"):
            sched.flush()
        with pytest.raises(OSError, match="No space left"):
            sched.flush(wait=True)
    finally:
        sched.writer._thread.shutdown(wait=True)


def test_progress_counts_thresholds_and_complete_cells(tmp_path):
    spec = make_spec(ds=(8,), seeds=2)  # op and dp: 2 cells x 2 seeds
    sched = Scheduler(spec, StoreWriter.open_or_create(tmp_path / "p.zarr", spec), _Pool(2),
                      SchedulerSettings(progress=False), guess=lambda cell: GUESS)
    op, dp = sorted({cell for cell, _ in sched.learners}, key=lambda c: c.problem != "op")
    sched.finished = {(op, 0), (op, 1), (dp, 0)}
    progress = sched._progress()
    assert (progress["thresholds"], progress["cells"], progress["cells_done"]) == (3, 2, 1)


# ---- adaptive axes: the searches grow as the learners choose (reference: the axis driven without Ray) ----
class Interrupt:
    """A heartbeat that presses Ctrl-C at its n-th call."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def adaptive_sweep(path, spec, pool, heartbeat=None, flush_every=8):
    """A sweep of an adaptive spec with the oracle runner, the dimension learner's cost cubic_cost."""
    pool.set_runner(adaptive_oracle.runner)
    store = StoreWriter.open_or_create(path, spec)
    settings = SchedulerSettings(progress=False, flush_every=flush_every, wait_timeout=0.2)
    scheduler = Scheduler(spec, store, pool, settings, guess=adaptive_oracle.guess,
                          expansion=Expansion(spec, cubic_cost))
    return scheduler.run(heartbeat)


def stored_decisions(path) -> tuple[dict, list[dict]]:
    """(p_star by threshold key, decision log) of a store."""
    _, rows, _ = read_tables(path)
    return {threshold_key(r): r["p_star"] for r in rows}, read_decisions(path)[1]


def with_p_max(spec, p_max):
    return dataclasses.replace(spec, search=SearchSettings(p_max=p_max, width=2))


@pytest.mark.parametrize("axis, p_max", [("rho", None), ("d", 30)])
def test_an_interrupted_sweep_resumes_to_the_same_cells_thresholds_and_decisions(pool, tmp_path, axis, p_max):
    spec = with_p_max(adaptive_spec(axis, problems=("op",)), p_max)
    rows, decisions = run(Expansion(spec, cubic_cost), p_max=p_max)
    whole = adaptive_sweep(tmp_path / "whole.zarr", spec, pool)
    whole_thresholds, whole_log = stored_decisions(tmp_path / "whole.zarr")
    assert whole_thresholds == {key: row["p_star"] for key, row in rows.items()}  # the oracle's, cell for cell
    assert by_learner(whole_log, True) == by_learner(json.loads(json.dumps(decisions)), True)
    assert len(whole.decisions) == len(whole_log) and whole_log[-1]["basis"] == "stop"
    if p_max is not None:  # a seed whose search hit p_max is stored incomplete (and told as NaN)
        assert -1 in whole_thresholds.values()

    report = adaptive_sweep(tmp_path / "cut.zarr", spec, pool, heartbeat=Interrupt(25), flush_every=4)
    assert report.interrupted
    cut_thresholds, cut_log = stored_decisions(tmp_path / "cut.zarr")
    assert 0 < len(cut_thresholds) < len(whole_thresholds) and 0 < len(cut_log) < len(whole_log)
    for dec in cut_log:  # a decision is stored only with the thresholds it was taken on
        for told in dec["told"]:
            if dec["learner"] == "rank":
                keys = [(dec["problem"], dec["solver"], told["rho"], dec["d"], s) for s in range(spec.seeds)]
            else:
                keys = [(dec["problem"], dec["solver"], dec["rho"], told["d"], told["seed"])]
            assert all(k in cut_thresholds for k in keys), (dec["round"], told)
    again = adaptive_sweep(tmp_path / "cut.zarr", spec, pool)
    assert not again.interrupted and again.probes_reused > 0
    thresholds, log = stored_decisions(tmp_path / "cut.zarr")
    assert thresholds == whole_thresholds
    assert by_learner(log, True) == by_learner(whole_log, True)


def test_searches_whose_probes_outlived_their_trigger_are_replayed_not_rerun(pool, tmp_path):
    """A crash can store a round's probes but not the thresholds that chose it (one batch: probes first): the
    resumed sweep re-derives those thresholds, makes the same decisions, and answers the round from the store."""
    spec = adaptive_spec("rho", problems=("op",))
    adaptive_sweep(tmp_path / "whole.zarr", spec, pool)
    probes, rows, _ = read_tables(tmp_path / "whole.zarr")
    log = read_decisions(tmp_path / "whole.zarr")[1]
    first = {(dec["d"], rho) for dec in log if dec["round"] == 0 for rho in dec["chosen_rhos"]}
    crashed = StoreWriter.open_or_create(tmp_path / "crashed.zarr", spec)
    crashed.append_probes(probes)
    crashed.append_thresholds([r for r in rows if (r["d"], r["rho"]) in first])
    first = [dec for dec in log if dec["round"] == 0]
    crashed.append_decisions(first, [decision_row(d) for d in first])
    report = adaptive_sweep(tmp_path / "crashed.zarr", spec, pool)
    assert report.probes_run == 0 and report.probes_reused == len(probes)
    assert stored_decisions(tmp_path / "crashed.zarr")[0] == stored_decisions(tmp_path / "whole.zarr")[0]
    assert by_learner(read_decisions(tmp_path / "crashed.zarr")[1], True) == by_learner(log, True)


def test_an_extended_store_holds_what_a_fresh_sweep_of_the_larger_spec_holds(pool, tmp_path):
    """More ds and seeds on an existing store: nothing stored is rerun or changed, and the store ends with
    the thresholds of the larger spec run from scratch (and the same record for every probe both ran)."""
    small, large = make_spec(ds=(8, 12), seeds=2), make_spec(ds=(8, 12, 16), seeds=3)
    sweep(tmp_path / "grown.zarr", small, pool, fake_runner)
    before, before_rows, _ = read_tables(tmp_path / "grown.zarr")
    added = check_store(str(tmp_path / "grown.zarr"), large).added  # what the driver does before it starts Ray
    StoreWriter.open_or_create(tmp_path / "grown.zarr", large, added)
    report = sweep(tmp_path / "grown.zarr", large, pool, fake_runner)
    sweep(tmp_path / "fresh.zarr", large, pool, fake_runner)
    grown, grown_rows, attrs = read_tables(tmp_path / "grown.zarr")
    fresh, fresh_rows, _ = read_tables(tmp_path / "fresh.zarr")
    assert report.probes_run == len(grown) - len(before)
    def as_text(rows):  # the scalars of each record (the spectra were widened); as text, NaN equals NaN
        return [json.dumps({k: v for k, v in r.items() if not isinstance(v, list)}, sort_keys=True) for r in rows]

    assert as_text(grown[: len(before)]) == as_text(before)
    sv = zarr.open_group(tmp_path / "grown.zarr", mode="r")["probes/singular_values"][:]
    assert sv.shape == (len(grown), 16)  # widened to the new largest d; the old rows padded with NaN
    for i, r in enumerate(grown):
        np.testing.assert_array_equal(sv[i, : r["d"]], 1.0)
        assert np.isnan(sv[i, r["d"]:]).all()
    fresh_by_key = {probe_key(r): r for r in fresh}
    common = [r for r in grown if probe_key(r) in fresh_by_key]
    assert len(common) == len(grown) == len(fresh)  # searches ask in rounds: the very same probes
    assert as_text(common) == as_text(fresh_by_key[probe_key(r)] for r in common)
    assert sorted(map(threshold_key, grown_rows)) == sorted(map(threshold_key, fresh_rows))
    assert stored_thresholds(tmp_path / "grown.zarr") == expected(large)
    assert [threshold_key(r) for r in grown_rows[: len(before_rows)]] == [threshold_key(r) for r in before_rows]
    assert SweepSpec.from_dict(json.loads(attrs["spec"])) == large
    assert [h["added"] for h in json.loads(attrs["extended"])] == [["ds + [16]", "seeds 2 -> 3"]]


def test_per_cell_seeds_and_resolutions_decide_the_searches(pool, tmp_path):
    import math

    spec = dataclasses.replace(make_spec(ds=(8, 12), seeds=3), seeds_for={"dp,d>=12": 1},
                               resolution_for={"op,d=12": 0.3})
    sweep(tmp_path / "cells.zarr", spec, pool, fake_runner)
    _, rows, _ = read_tables(tmp_path / "cells.zarr")
    seeds = Counter((r["problem"], r["d"]) for r in rows)
    assert seeds == {("op", 8): 3, ("op", 12): 3, ("dp", 8): 3, ("dp", 12): 1}
    for r in rows:
        exact = not (r["problem"] == "op" and r["d"] == 12)
        assert (r["p_hi"] == r["p_lo"] + 1) if exact else (r["p_hi"] - r["p_lo"] <= max(1, 0.3 * r["p_lo"]))
        assert r["p_lo"] <= p_true(r["problem"], r["d"], r["seed"]) < r["p_hi"]
        assert math.isfinite(r["alpha_star"])

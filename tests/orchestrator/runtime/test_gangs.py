"""Gang probes: the dispatch rule (pure), then gangs of Ray actors on an embedded Ray (3 logical CPUs).

The Ray tests are slow (actors import torch and warm up): a sharded trial against the unsharded one,
a gang member killed mid-probe, and a sweep that mixes gang probes and single probes.
"""
from __future__ import annotations

import functools
import os
import random
from collections import Counter

import pytest

from lamcap.orchestrator.runtime.gangs import assign

# ---- the dispatch rule, without Ray --------------------------------------------------------------------


def test_a_gang_takes_the_fullest_free_group_and_singles_fill_the_rest():
    groups = [[0, 1], [2, 3], [4]]
    # widths in priority order: a single first, then a gang: the gang still goes first (to the tightest group
    # with room), the single takes a slot of the group with the fewest idle slots
    assert assign([1, 2], [0, 1, 2, 3, 4], groups) == [(0, [4]), (1, [0, 1])]
    assert assign([2, 2, 2], [0, 1, 2, 3], groups) == [(0, [0, 1]), (1, [2, 3])]  # the third waits
    assert assign([2, 1, 1], [1, 2, 3], groups) == [(0, [2, 3]), (1, [1])]  # no group of 2 but 2-3
    assert assign([2, 1], [1, 3], groups) == [(1, [1])]  # no group has 2 idle: the single runs, the gang waits
    assert assign([4], [0, 1, 2, 3, 4], groups) == []  # wider than any group: never placed here
    assert assign([1, 1, 1], [0, 2, 3], groups) == [(0, [0]), (1, [2]), (2, [3])]


@pytest.mark.parametrize("seed", range(20))
def test_simulated_dispatch_never_idles_a_device_a_single_could_use_and_always_finishes(seed):
    """Random gang and single probes of random lengths on groups of 2 and 3 slots: after every dispatch no
    idle slot remains while a single waits, every gang sits in one group, and everything finishes."""
    rng = random.Random(seed)
    groups = [[0, 1, 2], [3, 4], [5]]
    waiting = [(rng.choice([1, 1, 1, 2, 3]), rng.randint(1, 6)) for _ in range(40)]  # (width, duration)
    running: list[tuple[int, list[int]]] = []  # (end time, slots)
    done, now = 0, 0
    while waiting or running:
        busy = {s for _, slots in running for s in slots}
        idle = [s for group in groups for s in group if s not in busy]
        for i, slots in reversed(assign([w for w, _ in waiting], idle, groups)):
            width, duration = waiting.pop(i)
            assert len(slots) == width and any(set(slots) <= set(g) for g in groups)
            assert not busy & set(slots)
            busy |= set(slots)
            running.append((now + duration, slots))
        if any(w == 1 for w, _ in waiting):
            assert len(busy) == 6, "a single waits while a device idles"
        now = min(end for end, _ in running)
        done += sum(1 for end, _ in running if end == now)
        running = [(end, slots) for end, slots in running if end > now]
        assert now < 10_000, "deadlock"
    assert done == 40


# ---- gangs of Ray actors -----------------------------------------------------------------------------

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def embedded_ray():
    """An embedded Ray with 3 logical CPUs (a gang of 3 on this 2-core machine), shared by the module."""
    from lamcap.orchestrator.runtime.ray_session import start_ray, stop_ray

    start_ray(None, num_cpus=3)
    yield
    stop_ray()


# ---- bad input: one line, before Ray or the store ------------------------------------------------------
@pytest.mark.parametrize("shards,p,needle", [("0", "20", "--shards 0 is below 1"),
                                             ("7", "6", "shards=7 is more than the p=6 inputs"),
                                             (str((os.cpu_count() or 1) + 1), "40", "a gang needs"),
                                             ("2", "20", "lp solver runs on one device only")])
def test_bad_shard_counts_are_refused_in_one_line_before_ray_starts(capsys, shards, p, needle):
    from lamcap import cli

    if ray.is_initialized():
        pytest.skip("a Ray of this process is up: the cluster's CPUs would decide")
    solver = "lp" if needle.startswith("lp") else "adam"
    assert cli.main(["trial", "--problem", "dp", "--d", "8", "--p", p, "--solver", solver, "--shards", shards]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not ray.is_initialized()


def test_a_sweep_asking_for_a_wider_gang_than_its_workers_is_refused_before_the_store(tmp_path):
    from lamcap.errors import InvalidInput
    from lamcap.orchestrator.runtime.driver import execute
    from lamcap.orchestrator.spec import SweepSpec

    spec = SweepSpec(problems=("dp",), solvers=("adam",), rhos=(1.0,), ds=(8,), seeds=1, device="cpu",
                     shards={"dp": {"k": 3}})
    with pytest.raises(InvalidInput, match=r"shards.dp.k=3: a gang needs 3 actors \(CPUs\) at once; this sweep has 2"):
        execute(spec, str(tmp_path / "s.zarr"), workers=2, progress=False)
    assert not (tmp_path / "s.zarr").exists() and not ray.is_initialized()


# ---- runners the actors import by name -----------------------------------------------------------------
def gang_fake_runner(probe, settings, device: str, collective=None) -> dict:
    """The scheduler tests' oracle; a gang's members first prove their process group with one sum."""
    import time

    import torch

    from tests.orchestrator.runtime.test_scheduler import fake_runner

    size = 1
    if collective is not None:
        size = int(collective.sum_(torch.ones(1)).item())
        assert size == collective.size
    time.sleep(0.05)
    return {**fake_runner(probe, settings, device), "shards": size}


def dying_gang_runner(marker_dir: str, probe, settings, device: str, collective=None) -> dict:
    """The real probe runner; the first gang member of rank 1 anywhere kills its process at its 5th sum."""
    from lamcap.orchestrator.runtime.probe import run_probe

    if collective is not None and collective.rank == 1:
        try:
            os.close(os.open(os.path.join(marker_dir, "died"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            collective = _DyingCollective(collective, 5)
        except FileExistsError:
            pass
    return run_probe(probe, settings, device, collective)


class _DyingCollective:
    """Passes every collective through to a real one; ends its process at the n-th sum (mid-training)."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n = inner, n
        self.rank, self.size, self.shard = inner.rank, inner.size, inner.shard

    def sum_(self, t):
        self.n -= 1
        if self.n == 0:
            os._exit(1)
        return self.inner.sum_(t)

    def __getattr__(self, name):
        return getattr(self.inner, name)


# ---- Ray tests -------------------------------------------------------------------------------------------
def _unsharded(problem, d, p, seed, steps, mode) -> dict:
    from lamcap.api import trial

    return trial(problem, d, p, seed=seed, steps=steps, mode=mode, device="cpu", threads=1)


@pytest.mark.slow
# k = 3 over 20 rows: an uneven split, regenerated competitors (tests/kernels/test_sharding.py covers
# both modes and k = 2, 3 in process groups without Ray; this checks the actors' path end to end).
@pytest.mark.parametrize("k,problem,p,mode", [(3, "dp", 20, "regenerate")])
def test_a_trial_on_a_gang_of_actors_gives_the_unsharded_record(embedded_ray, k, problem, p, mode):
    from lamcap.api import trial

    sharded = trial(problem, 8, p, seed=1, steps=200, mode=mode, device="cpu", shards=k)
    alone = _unsharded(problem, 8, p, 1, 200, mode)
    assert sharded["shards"] == k and alone["shards"] == 1
    for key in ("sat", "status", "steps", "n_violations", "accuracy", "mode", "generator"):
        assert sharded[key] == alone[key], key
    assert sharded["singular_values"] == pytest.approx(alone["singular_values"], rel=1e-5)
    assert ray.is_initialized()  # the gang trial leaves a Ray it did not start running


@pytest.mark.slow
def test_a_gang_member_killed_mid_probe_is_retried_on_a_fresh_gang_and_stored_once(embedded_ray, tmp_path):
    from lamcap.kernels.settings import SolverSettings
    from lamcap.orchestrator.runtime.pool import WorkerPlan, WorkerPool
    from lamcap.orchestrator.runtime.scheduler import Scheduler, SchedulerSettings
    from lamcap.orchestrator.spec import SearchSettings, SweepSpec
    from lamcap.orchestrator.spec.shard_rules import ShardPlan
    from lamcap.store.reader import read_tables
    from lamcap.store.schema import probe_key
    from lamcap.store.writer import StoreWriter

    spec = SweepSpec(problems=("dp",), solvers=("adam",), rhos=(1.0,), ds=(8,), seeds=1, device="cpu",
                     solver_settings=SolverSettings(max_steps=80), search=SearchSettings(width=1),
                     shards={"dp": {"k": 2}})
    pool = WorkerPool(WorkerPlan(2, 0, 1, "cpu"), functools.partial(dying_gang_runner, str(tmp_path)), group_width=2)
    try:
        pool.wait_ready(timeout=120)
        store = StoreWriter.open_or_create(tmp_path / "g.zarr", spec)
        scheduler = Scheduler(spec, store, pool, SchedulerSettings(progress=False, wait_timeout=0.2),
                              shards=ShardPlan(spec.shards, 2))
        report = scheduler.run()
    finally:
        pool.shutdown()
    assert os.path.exists(tmp_path / "died") and report.retries == 1 and pool.replaced == 2
    assert "gang of 2" in report.failures[0]
    probes, thresholds, _ = read_tables(tmp_path / "g.zarr")
    assert len(thresholds) == 1 and thresholds[0]["complete"]
    assert max(Counter(probe_key(r) for r in probes).values()) == 1  # nothing stored twice, nothing partial
    assert sorted(r["attempt"] for r in probes)[-1] == 2 and all(r["status"] != "error" for r in probes)
    for r in probes:  # the retried probe's record is the record of an undisturbed, unsharded solve
        alone = _unsharded("dp", 8, r["p"], 0, 80, "auto")
        assert r["shards"] == 2
        assert (r["sat"], r["steps"], r["n_violations"], r["status"]) == \
            (alone["sat"], alone["steps"], alone["n_violations"], alone["status"]), r["p"]


@pytest.mark.slow
def test_a_sweep_mixing_gang_and_single_probes_finds_every_threshold(embedded_ray, tmp_path):
    from lamcap.orchestrator.runtime.pool import WorkerPlan, WorkerPool
    from lamcap.orchestrator.runtime.scheduler import Scheduler, SchedulerSettings
    from lamcap.orchestrator.spec import SearchSettings, SweepSpec
    from lamcap.orchestrator.spec.shard_rules import ShardPlan
    from lamcap.store.reader import read_tables
    from lamcap.store.writer import StoreWriter
    from tests.orchestrator.runtime.test_scheduler import expected, stored_thresholds

    spec = SweepSpec(problems=("op", "dp"), solvers=("hebbian",), rhos=(1.0,), ds=(8, 12), seeds=2, device="cpu",
                     search=SearchSettings(), shards={"dp": {"d_min": 12, "k": 2}})
    pool = WorkerPool(WorkerPlan(3, 0, 1, "cpu"), gang_fake_runner, group_width=2)  # groups [0, 1] and [2]
    try:
        pool.wait_ready(timeout=120)
        store = StoreWriter.open_or_create(tmp_path / "mix.zarr", spec)
        scheduler = Scheduler(spec, store, pool, SchedulerSettings(progress=False, wait_timeout=0.2),
                              guess=lambda cell: 20.0, shards=ShardPlan(spec.shards, 2))
        report = scheduler.run()
    finally:
        pool.shutdown()
    assert stored_thresholds(tmp_path / "mix.zarr") == expected(spec)
    probes = read_tables(tmp_path / "mix.zarr")[0]
    assert {(r["problem"], r["d"], r["shards"]) for r in probes} == {("op", 8, 1), ("op", 12, 1), ("dp", 8, 1),
                                                                      ("dp", 12, 2)}
    assert scheduler.gangs.launched and all(slots == [0, 1] for slots in scheduler.gangs.launched)
    assert len(scheduler.gangs.launched) == sum(r["shards"] == 2 for r in probes)
    assert report.retries == 0 and set(report.per_actor) == {0, 1, 2}  # singles ran on the gang's actors too


@pytest.mark.slow
def test_the_sweep_driver_runs_a_shards_table_on_an_embedded_ray(tmp_path):
    """execute() as `lamcap sweep` runs it: the [shards] table gives a pool in groups and gang probes.
    Last in this module: the driver starts and stops its own Ray."""
    from lamcap.orchestrator.runtime.driver import execute
    from lamcap.orchestrator.runtime.ray_session import stop_ray
    from lamcap.orchestrator.spec import SweepSpec
    from lamcap.store.reader import read_tables
    from tests.orchestrator.runtime.test_scheduler import expected, stored_thresholds

    stop_ray()  # the module's Ray, if its tests ran: the driver starts an embedded Ray of its own
    spec = SweepSpec(problems=("dp",), solvers=("hebbian",), rhos=(1.0,), ds=(8, 12), seeds=2, device="cpu",
                     shards={"dp": {"d_min": 12, "k": 2}})
    report = execute(spec, str(tmp_path / "d.zarr"), workers=2, progress=False, runner=gang_fake_runner)
    assert not ray.is_initialized() and report.retries == 0
    assert stored_thresholds(tmp_path / "d.zarr") == expected(spec)
    assert {(r["d"], r["shards"]) for r in read_tables(tmp_path / "d.zarr")[0]} == {(8, 1), (12, 2)}

"""Several probe actors per GPU (`--actors-per-gpu K`): the checks before any work, `auto`, and K actors on one
declared GPU of a local Ray (no CUDA: a fake runner reports the share its actor plans with)."""
from __future__ import annotations

import dataclasses
import time

import pytest

ray = pytest.importorskip("ray")

from lamcap.errors import InvalidInput
from lamcap.orchestrator.runtime.pool import WorkerPlan, WorkerPool, plan_workers
from lamcap.orchestrator.runtime.preflight import auto_actors_per_gpu, check_actors_per_gpu, share_problems
from lamcap.orchestrator.runtime.scheduler import Scheduler, SchedulerSettings
from lamcap.orchestrator.spec import SearchSettings, SweepSpec
from lamcap.orchestrator.spec.shard_rules import ShardRules
from lamcap.store.reader import read_tables
from lamcap.store.writer import StoreWriter
from tests.orchestrator.runtime.test_scheduler import fake_runner, p_true

H200 = 141 * 2**30


def small_spec(**kw) -> SweepSpec:
    base = dict(problems=("op", "dp"), solvers=("adam",), rhos=(1.0,), ds=(16, 32), seeds=2, device="cuda",
                search=SearchSettings())
    return SweepSpec(**{**base, **kw})


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_a_bad_count_is_named_before_any_work(bad):
    with pytest.raises(InvalidInput, match=r"--actors-per-gpu"):
        check_actors_per_gpu(small_spec(), bad, joined=False)


def test_auto_on_a_joined_cluster_and_sharing_with_gangs_are_refused():
    with pytest.raises(InvalidInput, match=r"auto reads this machine's GPU"):
        check_actors_per_gpu(small_spec(), "auto", joined=True)
    sharded = small_spec(shards=ShardRules.from_dict({"dp": {"d_min": 32, "k": 2}}))
    with pytest.raises(InvalidInput, match=r"--actors-per-gpu 2: .*gangs, whose ranks need whole GPUs"):
        check_actors_per_gpu(sharded, 2, joined=False)
    check_actors_per_gpu(sharded, 1, joined=False)  # one actor per GPU: gangs as before


def test_small_cells_share_a_gpu_eight_ways_and_big_ones_are_named():
    assert auto_actors_per_gpu(small_spec(), H200, cpus_per_gpu=16) == 8
    assert auto_actors_per_gpu(small_spec(), H200, cpus_per_gpu=3) == 2  # one CPU core per actor
    big = small_spec(problems=("dp",), ds=(256,))  # ~46 GB of competitors at its first probes' largest p
    refused, slowed = share_problems(big, H200, 2)
    assert refused == [] and len(slowed) == 1 and slowed[0].startswith("dp adam rho=1 d=256")
    assert auto_actors_per_gpu(big, H200, cpus_per_gpu=16) == 1
    refused, _ = share_problems(small_spec(problems=("dp",), ds=(256,), solver_settings=dataclasses.replace(
        big.solver_settings, mode="materialize")), H200, 8)
    assert len(refused) == 1 and "1/8 of the GPU is 17.6 GiB" in refused[0]


def share_runner(probe, settings, device: str) -> dict:
    """The fake oracle, recording the memory share of the actor that ran it."""
    from lamcap.kernels.device_share import memory_share

    time.sleep(0.02)
    return {**fake_runner(probe, settings, device), "memory_share": memory_share()}


@pytest.fixture(scope="module")
def one_gpu_ray():
    """A local Ray with 4 CPUs and one declared GPU."""
    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, object_store_memory=80 * 1024**2)
    yield
    ray.shutdown()


def sweep(spec: SweepSpec, plan: WorkerPlan, path) -> tuple[list[dict], dict]:
    pool = WorkerPool(plan, share_runner)
    try:
        infos = pool.wait_ready(timeout=120)
        store = StoreWriter.open_or_create(path, spec)
        Scheduler(spec, store, pool, SchedulerSettings(progress=False, wait_timeout=0.2),
                  guess=lambda cell: 20.0).run()
    finally:
        pool.shutdown()
    probes, thresholds = read_tables(path)[:2]
    return infos, {(r["problem"], r["d"], r["seed"]): r["p_star"] for r in thresholds} | {"probes": probes}


@pytest.mark.slow
def test_k_actors_share_the_gpu_each_plans_with_1_over_k_and_thresholds_are_those_of_one(one_gpu_ray, tmp_path):
    spec = SweepSpec(problems=("op", "dp"), solvers=("hebbian",), rhos=(1.0,), ds=(8, 12), seeds=2, device="cuda",
                     search=SearchSettings())
    assert plan_workers(device="cuda") == WorkerPlan(count=1, num_gpus=1, num_cpus=1, device="cuda")
    plan = plan_workers(device="cuda", actors_per_gpu=4)
    assert plan == WorkerPlan(count=4, num_gpus=0.25, num_cpus=1, device="cuda", actors_per_gpu=4)
    assert plan_workers(device="cuda", actors_per_gpu=8).count == 4  # one CPU core each: 4 here
    infos, shared = sweep(spec, plan, tmp_path / "shared.zarr")
    assert [i["gpu_ids"] for i in infos] == [["0"]] * 4  # all four on the one GPU
    assert {i["memory_share"] for i in infos} == {0.25}
    _, alone = sweep(spec, plan_workers(device="cuda"), tmp_path / "alone.zarr")
    assert {r["memory_share"] for r in shared.pop("probes")} == {0.25}
    assert {r["memory_share"] for r in alone.pop("probes")} == {1.0}
    assert shared == alone == {(c.problem, c.d, s): p_true(c.problem, c.d, s) for c in spec.cells()
                               for s in range(spec.seeds)}


@pytest.mark.parametrize("value", ["0", "two", "1.5"])
def test_the_command_names_a_bad_count_and_writes_nothing(tmp_path, capsys, value):
    from lamcap import cli

    store = tmp_path / "s.zarr"
    assert cli.main(["sweep", "--preset", "demo", "--store", str(store), "--actors-per-gpu", value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--actors-per-gpu {value!r}" in err, err
    assert not store.exists()

"""A multi-node cluster with GPUs declared as resources (ray.cluster_utils.Cluster, one CPU machine).

Head: 1 CPU, no GPU; two worker nodes with 2 CPUs and 2 GPUs each. No CUDA device exists, so
with a fake probe runner ProbeWorker falls back to the CPU while each actor still holds one declared GPU
(the real kernels refuse: a test below). Not
AutoscalingCluster: its start/shutdown run `ray stop --force`, which ends every Ray on the machine.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster

from lamcap.orchestrator.runtime.driver import execute
from lamcap.orchestrator.runtime.pool import WorkerPlan, WorkerPool, plan_workers
from lamcap.orchestrator.runtime.preflight import stored_spec
from lamcap.orchestrator.runtime.scheduler import Scheduler, SchedulerSettings
from lamcap.orchestrator.spec import SearchSettings, SweepSpec
from lamcap.store.reader import read_tables
from lamcap.store.writer import StoreWriter
from tests.orchestrator.runtime.test_scheduler import fake_runner, p_true
from tests.orchestrator.runtime.test_sweep_e2e import alive, descendants

REPO = str(Path(__file__).resolve().parents[3])
GPU_NODES = 2
GPUS_PER_NODE = 2
NODE_ARGS = {"include_dashboard": False, "object_store_memory": 80 * 1024**2}


@pytest.fixture(scope="module")
def cluster():
    """Head (1 CPU, 0 GPU) + two nodes of 2 CPUs and 2 GPUs; torn down with every process it started."""
    old_path = os.environ.get("PYTHONPATH")
    # Node processes (and so the actors) inherit this: they import the fake runner's test module.
    os.environ["PYTHONPATH"] = os.pathsep.join([REPO, *([old_path] if old_path else [])])
    ours_before = descendants(os.getpid())
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, **NODE_ARGS})
    try:
        gpu_nodes = [cluster.add_node(num_cpus=2, num_gpus=GPUS_PER_NODE, **NODE_ARGS) for _ in range(GPU_NODES)]
        cluster.wait_for_nodes()
        yield cluster, {node.node_id for node in gpu_nodes}
    finally:
        started = descendants(os.getpid()) - ours_before  # the nodes' GCS, raylets, agents, actors
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        if old_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_path
        deadline = time.monotonic() + 30
        while alive(started) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = alive(started)
        for pid, _ in left:  # only processes this fixture started, by pid
            os.kill(pid, signal.SIGKILL)
        assert started and not left, f"cluster.shutdown() left {len(left)} of {len(started)} Ray processes running"


def slow_runner(probe, settings, device: str) -> dict:
    """The fake oracle at 0.2 s a probe: long enough that actors still being placed join the sweep."""
    time.sleep(0.2)
    return fake_runner(probe, settings, device)


def make_spec() -> SweepSpec:
    """4 cells x 2 seeds = 8 searches: more than the 4 actors, so the first dispatch fills every actor."""
    return SweepSpec(problems=("op", "dp"), solvers=("hebbian",), rhos=(1.0,), ds=(8, 12), seeds=2,
                     device="cuda", search=SearchSettings())


def expected(spec: SweepSpec) -> dict:
    return {(c.problem, c.solver, c.rho, c.d, s): p_true(c.problem, c.d, s)
            for c in spec.cells() for s in range(spec.seeds)}


def stored_thresholds(path) -> dict:
    return {(r["problem"], r["solver"], r["rho"], r["d"], r["seed"]): r["p_star"] for r in read_tables(path)[1]}


@pytest.mark.slow
def test_one_actor_per_declared_gpu_on_every_gpu_node_and_all_of_them_run_probes(cluster, tmp_path):
    import torch

    cl, gpu_node_ids = cluster
    ray.init(address=cl.address, include_dashboard=False)
    try:
        assert int(ray.cluster_resources()["GPU"]) == GPU_NODES * GPUS_PER_NODE
        plan = plan_workers()
        assert plan == WorkerPlan(count=GPU_NODES * GPUS_PER_NODE, num_gpus=1, num_cpus=1, device="cuda")
        assert plan_workers(3) == WorkerPlan(count=3, num_gpus=1, num_cpus=1, device="cuda")
        assert plan_workers(10).count == GPU_NODES * GPUS_PER_NODE  # no more actors than GPUs
        cpus = 1 + 2 * GPU_NODES
        assert plan_workers(device="cpu") == WorkerPlan(count=cpus, num_gpus=0, num_cpus=1, device="cpu")
        assert plan_workers(10, device="cpu").count == cpus  # no more actors than the cluster can place
        # A joined cluster may autoscale: an explicit count is honoured, the autoscaler adds the nodes.
        assert plan_workers(10, elastic=True) == WorkerPlan(count=10, num_gpus=1, num_cpus=1, device="cuda")
        assert plan_workers(elastic=True).count == GPU_NODES * GPUS_PER_NODE
        pool = WorkerPool(plan, fake_runner)
        try:
            where = pool.wait_ready(timeout=120)
            # Each actor holds one GPU of its own: two per GPU node, none on the head.
            assert Counter(w["node_id"] for w in where) == {node: GPUS_PER_NODE for node in gpu_node_ids}
            assert all(len(w["gpu_ids"]) == 1 for w in where)
            assert len({(w["node_id"], w["gpu_ids"][0]) for w in where}) == len(where)
            assert {w["device"] for w in where} == {"cuda" if torch.cuda.is_available() else "cpu"}
            assert len({w["pid"] for w in where}) == len(where)

            spec = make_spec()
            store = StoreWriter.open_or_create(tmp_path / "gpu.zarr", spec)
            report = Scheduler(spec, store, pool, SchedulerSettings(progress=False, flush_every=8, wait_timeout=0.2),
                               guess=lambda cell: 20.0).run()
            assert set(report.per_actor) == set(range(plan.count))  # probes ran on every actor
            assert report.retries == 0 and report.n_actors == plan.count
            assert stored_thresholds(tmp_path / "gpu.zarr") == expected(spec)
        finally:
            pool.shutdown()
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_sweep_command_joins_the_cluster_and_records_cuda(cluster, tmp_path):
    """execute(address=...) as `lamcap sweep --address` runs it: plan from the cluster, device 'cuda' stored."""
    cl, _ = cluster
    spec = dataclasses.replace(make_spec(), device="auto")
    path = tmp_path / "joined.zarr"
    report = execute(spec, str(path), address=cl.address, progress=False, runner=slow_runner)
    assert not ray.is_initialized()  # execute disconnects; the cluster itself stays up
    assert report.n_actors == GPU_NODES * GPUS_PER_NODE and set(report.per_actor) == set(range(report.n_actors))
    assert stored_spec(path).device == "cuda"
    assert stored_thresholds(path) == expected(spec)


@pytest.mark.slow
def test_actors_that_cannot_be_placed_are_reported_not_waited_for_forever(cluster):
    from lamcap.errors import InvalidInput

    cl, _ = cluster
    ray.init(address=cl.address, include_dashboard=False)
    try:
        pool = WorkerPool(plan_workers(GPU_NODES * GPUS_PER_NODE + 2, elastic=True), fake_runner)
        try:
            # two of the six can never be placed, however long the wait: the message says how many were
            with pytest.raises(InvalidInput, match=r"only [0-4] of 6 actors \(1 GPU each\) could be placed in 10 s"):
                pool.wait_ready(timeout=10)
        finally:
            pool.shutdown()
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_an_elastic_sweep_starts_with_the_placed_actors_and_adds_the_rest_as_nodes_come(cluster, tmp_path):
    """6 GPU actors asked for on a cluster of 4 GPUs: the sweep starts on 4; a node added mid-sweep adds 2."""
    import threading

    cl, _ = cluster
    spec = dataclasses.replace(make_spec(), ds=(8, 12, 16, 24))
    result: dict = {}

    def sweep():  # the driver in a thread: Ray nodes must be added from the main thread
        result["report"] = execute(spec, str(tmp_path / "elastic.zarr"), address=cl.address, workers=6,
                                   progress=False, runner=slow_runner)

    driver = threading.Thread(target=sweep)
    driver.start()
    time.sleep(2.0)
    node = cl.add_node(num_cpus=2, num_gpus=GPUS_PER_NODE, **NODE_ARGS)
    try:
        driver.join(timeout=240)
    finally:
        cl.remove_node(node)
    report = result["report"]
    assert stored_thresholds(tmp_path / "elastic.zarr") == expected(spec)
    assert report.n_actors == 6 and {4, 5} & set(report.per_actor)  # the late actors ran probes
    actors = json.loads(__import__("zarr").open_group(str(tmp_path / "elastic.zarr"), mode="r").attrs["actors"])
    assert len(actors) == 6 and {a["lamcap"] for a in actors} == {__import__("lamcap").__version__}
    assert all({"device_name", "memory_bytes", "torch", "cuda", "node_ip"} <= set(a) for a in actors)


@pytest.mark.slow
def test_a_gpu_sweep_whose_actors_see_no_cuda_ends_with_a_clear_error_not_cpu_records(cluster, tmp_path):
    import torch

    from lamcap.errors import InvalidInput

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: its actors would see it")
    cl, _ = cluster
    spec = dataclasses.replace(make_spec(), device="cuda")
    path = tmp_path / "nocuda.zarr"
    with pytest.raises(InvalidInput, match=r"an actor could not start: lamcap actor on node [\d.]+: Ray gave it "
                                           r"GPU\(s\) \[.+\] .*torch is a CPU build: install the CUDA build"):
        execute(spec, str(path), address=cl.address, progress=False)  # the real probe runner
    assert not ray.is_initialized()
    assert read_tables(path)[0] == []  # not one record: no probe ran on a CPU in the GPU's place


@pytest.mark.slow
def test_gang_actors_sit_on_the_nodes_their_placement_group_chose_and_a_mixed_sweep_finishes(cluster, tmp_path):
    """dp d = 12 probes on gangs of 2 GPUs, the rest on one: the pool's 4 GPU actors come in 2 placement groups
    (PACK: each on one node), every actor on the node its bundle was placed on, every gang in one group."""
    from ray.util.placement_group import placement_group_table

    from lamcap.orchestrator.spec.shard_rules import ShardPlan, ShardRules
    from tests.orchestrator.runtime.test_gangs import gang_fake_runner

    cl, gpu_node_ids = cluster
    ray.init(address=cl.address, include_dashboard=False)
    try:
        spec = dataclasses.replace(make_spec(), shards=ShardRules.from_dict({"dp": {"d_min": 12, "k": 2}}))
        plan = plan_workers()
        pool = WorkerPool(plan, gang_fake_runner, group_width=2)
        try:
            pool.wait_ready(timeout=120)
            assert pool.groups == [[0, 1], [2, 3]]
            for slot in range(plan.count):
                pg, bundle = pool.placement(slot)
                assert placement_group_table(pg)["bundles_to_node_id"][bundle] == pool.info[slot]["node_id"]
            assert {pool.info[s]["node_id"] for s in range(plan.count)} == gpu_node_ids
            assert all(len({pool.info[s]["node_id"] for s in group}) == 1 for group in pool.groups)
            store = StoreWriter.open_or_create(tmp_path / "gangs.zarr", spec)
            scheduler = Scheduler(spec, store, pool, SchedulerSettings(progress=False, wait_timeout=0.2),
                                  guess=lambda cell: 20.0, shards=ShardPlan(spec.shards, 2, "cuda"))
            report = scheduler.run()
        finally:
            pool.shutdown()
        assert stored_thresholds(tmp_path / "gangs.zarr") == expected(spec) and report.retries == 0
        assert scheduler.gangs.launched and all(slots in pool.groups for slots in scheduler.gangs.launched)
        probes = read_tables(tmp_path / "gangs.zarr")[0]
        assert {r["shards"] for r in probes if (r["problem"], r["d"]) == ("dp", 12)} == {2}
        assert {r["shards"] for r in probes if (r["problem"], r["d"]) != ("dp", 12)} == {1}
        deadline = time.monotonic() + 30  # removing placement groups is asynchronous
        while ray.available_resources().get("GPU", 0) < GPU_NODES * GPUS_PER_NODE and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ray.available_resources().get("GPU", 0) == GPU_NODES * GPUS_PER_NODE  # groups removed, GPUs free
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_an_embedded_ray_never_joins_a_cluster_left_on_the_machine(cluster):
    """A bare ray.init() joins the cluster named in /tmp/ray/ray_current_cluster (written by `ray start`, and
    by this fixture's Cluster) and then refuses num_cpus; lamcap's embedded Ray starts an instance of its own."""
    from ray._private.utils import read_ray_address

    from lamcap.orchestrator.runtime.ray_session import start_ray, stop_ray

    cl, _ = cluster
    assert read_ray_address() is not None  # the trap is set
    start_ray(None, num_cpus=1)
    try:
        assert ray.cluster_resources().get("GPU", 0) == 0 and len(ray.nodes()) == 1
        assert int(ray.cluster_resources()["CPU"]) == 1
    finally:
        stop_ray()

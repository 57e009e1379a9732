"""One probe on a gang of Ray actors from the command line (`lamcap trial --shards K`): place the gang, check
every member's memory, run each member's shard, return rank 0's record."""
from __future__ import annotations

import dataclasses
from typing import Any

import ray

from lamcap.kernels.sharding import DEFAULT_TIMEOUT_S, Rendezvous
from lamcap.orchestrator.runtime.cluster import actor_memory, check_placeable, placeable
from lamcap.orchestrator.runtime.gangs import ADDRESS_TIMEOUT_S, GangFailed
from lamcap.orchestrator.runtime.pool import WorkerPlan, WorkerPool
from lamcap.orchestrator.runtime.ray_session import start_ray, stop_ray
from lamcap.orchestrator.runtime.trial import check_memory


def run_gang_trial(plan: Any, shards: int, address: str | None = None,
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[dict, Any]:
    """(record, W) of one trial on a gang of `shards` actors (a placement group), on an embedded Ray or the
    cluster at `address`; Ray is stopped after if this call started it."""
    started = not ray.is_initialized()
    start_ray(address)
    pool = None
    try:
        if plan.device == "auto":  # a joined cluster: its GPUs decide
            plan = dataclasses.replace(plan, device="cuda" if placeable("cuda") else "cpu")
        check_placeable(shards, plan.device, placeable(plan.device))
        gpu = plan.device == "cuda"
        pool = WorkerPool(WorkerPlan(shards, int(gpu), 1, plan.device), group_width=shards)
        infos = pool.wait_ready(timeout=300.0)
        _check_memory(plan, shards, infos)
        address_, port = ray.get(pool.gang_address(0), timeout=ADDRESS_TIMEOUT_S)
        gang_plan = dataclasses.replace(plan, threads=1)
        refs = [pool.actors[rank].run_trial_shard.remote(Rendezvous(address_, port, rank, shards, timeout_s),
                                                         gang_plan) for rank in range(shards)]
        return _gang_results(refs)
    finally:
        if pool is not None:
            pool.shutdown()
        if started:
            stop_ray()


def _check_memory(plan: Any, shards: int, infos: list[dict]) -> None:
    """Every member's device must hold its shard (before any work)."""
    smallest = min(infos, key=actor_memory)
    check_memory(plan.spec, plan.rank, plan.solver, plan.settings, plan.device, shards=shards,
                 memory_bytes=actor_memory(smallest),
                 gpu_memory=smallest["memory_bytes"] if plan.device == "cuda" else None)


def _gang_results(refs: list[Any]) -> tuple[dict, Any]:
    """Rank 0's (record, W) once every member finished; the first failure as one GangFailed line otherwise."""
    pending = list(refs)
    results: dict[Any, Any] = {}
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            results[done[0]] = ray.get(done[0])
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
            rank = refs.index(done[0])
            raise GangFailed(f"gang member {rank} of {len(refs)} failed: "
                               f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}") \
                from None
    return results[refs[0]]

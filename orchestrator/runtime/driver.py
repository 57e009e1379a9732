"""The sweep driver: the pre-flight, then Ray, the worker pool, the store and the scheduler.

`lamcap sweep` and `lamcap.sweep` both end here. Order matters: the store's lock, then every check of
lamcap.orchestrator.runtime.preflight, before Ray starts or the store is written. No math: the kernels run
inside the actors.
"""
from __future__ import annotations

import dataclasses
import logging
import os

from lamcap.errors import InvalidInput
from lamcap.orchestrator.runtime.cluster import actor_memory, local_device, local_pool_size
from lamcap.orchestrator.runtime.pool import WorkerPool, plan_workers
from lamcap.orchestrator.runtime.preflight import (
    StoreCheck,
    auto_actors_per_gpu,
    check_actors_per_gpu,
    check_budget,
    check_cells,
    check_searches_fit,
    check_store,
    check_writable,
    memory_caps,
    shard_plan,
    share_problems,
)
from lamcap.orchestrator.runtime.ray_session import start_ray, stop_ray
from lamcap.orchestrator.runtime.scheduler import Scheduler, SchedulerSettings, SweepReport
from lamcap.orchestrator.spec import SweepSpec
from lamcap.store.lock import StoreLock
from lamcap.store.writer import StoreWriter

log = logging.getLogger(__name__)

# Seconds to wait for the first actors to be placed: an embedded Ray places them at once; a
# cluster's autoscaler may have to boot GPU nodes (and pull the image) first.
PLACEMENT_TIMEOUT_S = {False: 300.0, True: 1800.0}


def execute(spec: SweepSpec, store_path: str, address: str | None = None, workers: int | None = None,
            progress: bool = True, runner=None, flush_seconds: float | None = None,
            ray_logs: bool = False, actors_per_gpu: int | str = 1) -> SweepReport:
    """Check everything, start (or join) Ray, open the store, run the scheduler; returns its report.

    actors_per_gpu: K actors share each GPU, each planning and allocating with 1/K of its memory (each probe
    records its share); 'auto' picks K from this machine's GPU and the cells (preflight.auto_actors_per_gpu).
    flush_seconds: the most seconds between store commits (None: SchedulerSettings' default).
    runner: a probe runner for the actors instead of the kernels (tests).
    ray_logs: Ray's own log lines on the terminal too (else they stay in Ray's log files).
    """
    lock = StoreLock(store_path)
    check_writable(store_path)
    lock.acquire()
    try:
        if lock.taken_over:
            log.warning("took over the lock of a driver that is gone (%s, pid %s, since %s)",
                        lock.taken_over.get("host"), lock.taken_over.get("pid"), lock.taken_over.get("since"))
        check_actors_per_gpu(spec, actors_per_gpu, joined=address is not None)
        check_cells(spec)
        check_budget(spec)
        check_searches_fit(spec)
        stored = check_store(store_path, spec)
        if stored.added:
            log.warning("extending %s: %s (the stored results are kept and reused)", store_path,
                        "; ".join(stored.added))
        caps = None
        if address is None and runner is None:  # this machine is the device: check every cell before Ray
            from lamcap.kernels.budget import gpu_total_memory, memory_limit_bytes

            device = local_device(spec.device)
            memory = memory_limit_bytes(device)
            if device == "cpu":  # CPU actors share the host: each gets its share of the memory
                memory //= max(1, workers or os.cpu_count() or 1)
            gpu_memory = gpu_total_memory() if device == "cuda" else None
            if device == "cuda":
                actors_per_gpu = _actors_per_gpu(spec, actors_per_gpu, gpu_memory)
                memory = gpu_memory = gpu_memory // actors_per_gpu
            caps = memory_caps(spec, device, memory, gpu_memory,
                               shard_plan(spec, local_pool_size(spec.device, workers), device, gpu_memory))
        if actors_per_gpu == "auto":  # a CPU sweep, or a fake runner: nothing to share
            actors_per_gpu = 1
        return _run(spec, store_path, address, workers, progress, runner, flush_seconds, caps, lock, stored, ray_logs,
                    actors_per_gpu)
    finally:
        lock.release()


def _actors_per_gpu(spec: SweepSpec, asked: int | str, gpu_memory: int) -> int:
    """K for this machine's GPU: 'auto' resolved; InvalidInput naming the cells 1/K of the GPU cannot hold."""
    import torch

    if asked == "auto":
        gpus = max(1, torch.cuda.device_count())
        k = auto_actors_per_gpu(spec, gpu_memory, (os.cpu_count() or 1) // gpus)
        log.warning("--actors-per-gpu auto: %d actor(s) per GPU", k)
        return k
    if asked > 1:
        refused, slowed = share_problems(spec, gpu_memory, asked)
        if refused:
            raise InvalidInput(f"--actors-per-gpu {asked}: these cells cannot run on 1/{asked} of the GPU: "
                               f"{'; '.join(refused)}; use fewer actors per GPU, or sweep them in a store of their "
                               "own")
        if slowed:
            log.warning("--actors-per-gpu %d: these cells will regenerate their competitors every step where a whole "
                        "GPU would hold them: %s", asked, "; ".join(slowed))
    return asked


def _run(spec: SweepSpec, store_path: str, address: str | None, workers: int | None, progress: bool, runner,
         flush_seconds: float | None, caps: dict | None, lock: StoreLock, stored: StoreCheck,
         ray_logs: bool, actors_per_gpu: int = 1) -> SweepReport:
    num_cpus = max(os.cpu_count() or 1, workers or 1) if address is None else None
    start_ray(address, num_cpus=num_cpus, ray_logs=ray_logs)
    pool = None
    try:
        elastic = address is not None  # a joined cluster may autoscale: start with the actors placed
        plan = plan_workers(workers, spec.device, elastic=elastic, actors_per_gpu=actors_per_gpu)
        spec = dataclasses.replace(spec, device=plan.device)
        shards = shard_plan(spec, plan.count, plan.device)  # refuses a gang the pool cannot form
        store = StoreWriter.open_or_create(store_path, spec, stored.added)
        pool = WorkerPool(plan, runner, group_width=shards.width)
        if elastic:
            log.warning("asking for %d actors (%s); starting with those placed", plan.count, plan.device)
        infos = pool.wait_ready(timeout=PLACEMENT_TIMEOUT_S[elastic], minimum=1 if elastic else None)
        if runner is None and plan.device == "cuda":  # auto shard counts follow the GPUs' total memory
            gpu_memory = min(int(info["memory_bytes"]) for info in infos)
            shards = shard_plan(spec, plan.count, plan.device, gpu_memory)
        if caps is None and runner is None:  # the actors know their device's memory: the smallest decides
            smallest = min(infos, key=actor_memory)
            caps = memory_caps(spec, plan.device, actor_memory(smallest),
                               smallest["memory_bytes"] if plan.device == "cuda" else None, shards)
        settings = SchedulerSettings(progress=progress)
        if flush_seconds is not None:
            settings = dataclasses.replace(settings, flush_seconds=flush_seconds)
        scheduler = Scheduler(spec, store, pool, settings, p_caps=caps, expansion=stored.expansion, shards=shards)
        scheduler.actor_infos.extend(infos)
        return scheduler.run(heartbeat=lock.refresh)
    finally:
        if pool is not None:
            pool.shutdown()
        stop_ray()

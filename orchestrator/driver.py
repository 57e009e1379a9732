"""The sweep driver: every check before work, then Ray, the worker pool, the store and the scheduler.

`lamcap sweep` and `lamcap.sweep` both end here. Order matters: the store's lock, the spec against
the store, the store's integrity and writability, the device, the gangs the [shards] table asks for
and every cell's memory (per shard) are checked before Ray starts or the store is written. No math:
the kernels run inside the actors.
"""
from __future__ import annotations

import dataclasses
import os
import sys

from lamcap.kernels.errors import InvalidInput

# Seconds to wait for the first actors to be placed: an embedded Ray places them at once; a
# cluster's autoscaler may have to boot GPU nodes (and pull the image) first.
PLACEMENT_TIMEOUT_S = {False: 300.0, True: 1800.0}
SEARCH_BYTES = 4096  # driver memory per (cell, seed): its learner, threshold row and probe keys


def check_cells(spec) -> None:
    """Every cell's solver can take its first probes (lamcap.kernels.solvers.check_solvable); with an
    adaptive axis, the cells that stand for every cell its learners may choose (expansion.cells_to_check)."""
    from lamcap.kernels.disorder import InstanceSpec
    from lamcap.kernels.solvers import check_solvable
    from lamcap.orchestrator.expansion import cells_to_check
    from lamcap.orchestrator.scheduler import theory_guess
    from lamcap.orchestrator.search import initial_bracket

    for cell in cells_to_check(spec):
        _, b = initial_bracket(theory_guess(cell), spec.search.p_max)
        check_solvable(InstanceSpec(cell.problem, cell.d, b, 0), cell.solver, cell.rank)


def check_budget(spec) -> None:
    """InvalidInput when an adaptive dimension axis's budget cannot pay for the two rungs a fit needs."""
    from lamcap.orchestrator.expansion import first_round_problems

    problems = first_round_problems(spec)
    if problems:
        raise InvalidInput("; ".join(problems) + " (raise the budget or start the ladder lower)")


def check_searches_fit(spec) -> None:
    """The driver holds one search per (cell, seed): refuse a sweep whose searches cannot fit its memory
    (with an adaptive axis: the most its rules allow)."""
    from lamcap.kernels.budget import host_memory_bytes, human
    from lamcap.orchestrator.expansion import max_searches

    searches = max_searches(spec)
    limit = host_memory_bytes() // 4
    if searches * SEARCH_BYTES > limit:
        raise InvalidInput(f"seeds={spec.seeds} gives up to {searches} searches, "
                           f"about {human(searches * SEARCH_BYTES)} of driver memory; this machine can give "
                           f"{human(limit)}: at most {limit // SEARCH_BYTES // max(1, len(spec.cells()))} seeds")


def shard_plan(spec, pool_size: int, device: str, gpu_memory: int | None = None):
    """The spec's [shards] rules for a pool of `pool_size` actors; InvalidInput when a rule asks for a gang
    larger than the pool can ever form."""
    from lamcap.orchestrator.shard_rules import AUTO, ShardPlan

    for rule in spec.shards.rules:
        wanted = rule.k if rule.k != AUTO else rule.k_max
        if wanted is not None and wanted > pool_size:
            kind = "GPU" if device == "cuda" else "CPU"
            key = "k" if rule.k != AUTO else "k_max"
            raise InvalidInput(f"shards.{rule.problem}.{key}={wanted}: a gang needs {wanted} actors ({kind}s) at "
                               f"once; this sweep has {pool_size} (more --workers, or a smaller {key})")
    settings = spec.solver_settings
    return ShardPlan(spec.shards, spec.shards.gang_width(pool_size), device,
                     gpu_memory if device == "cuda" else None, settings.memory_budget_bytes, settings.storage_dtype)


def memory_caps(spec, device: str, memory_bytes: int, gpu_memory: int | None = None, shards=None) -> dict:
    """Per cell (every cell an adaptive axis may choose too), the largest p whose probe (its largest shard, on
    the most shards `shards` (a ShardPlan) allows the cell) fits `memory_bytes`; InvalidInput naming a cell
    whose first probes cannot fit (the estimate and the limit in the message). gpu_memory: the GPU's total
    memory, which sets a CUDA probe's competitor plan."""
    from lamcap.kernels.budget import check_fits, largest_p, probe_memory
    from lamcap.orchestrator.expansion import cells_to_check, possible_cells
    from lamcap.orchestrator.scheduler import theory_guess
    from lamcap.orchestrator.search import initial_bracket

    settings = spec.solver_settings
    kwargs = {"mode": settings.mode, "storage_dtype": settings.storage_dtype, "device_type": device,
              "total_memory": gpu_memory if device == "cuda" else None,
              "memory_budget_bytes": settings.memory_budget_bytes}
    def most(cell) -> int:
        return 1 if shards is None else shards.most(cell.problem, cell.d, cell.solver)

    for cell in cells_to_check(spec):
        k = most(cell)
        _, b = initial_bracket(theory_guess(cell), spec.search.p_max)
        estimate = probe_memory(cell.problem, cell.d, b, cell.rank, cell.solver, **kwargs, shards=k)
        on = f", one of {k} shards" if k > 1 else ""
        check_fits(estimate, memory_bytes, f"cell {cell.problem} {cell.solver} rho={cell.rho:g} d={cell.d} "
                                           f"(its first probes reach p={b}{on})", device)
    return {cell: largest_p(cell.problem, cell.d, cell.rank, cell.solver, memory_bytes, **kwargs, shards=most(cell))
            for cell in possible_cells(spec)}


def local_pool_size(spec, workers: int | None) -> int:
    """Actors an embedded Ray's sweep will have (lamcap.orchestrator.workers.plan_workers on this machine)."""
    from lamcap.kernels.solvers import resolve_device

    if resolve_device(spec.device) == "cuda":
        import torch

        return min(torch.cuda.device_count(), workers or torch.cuda.device_count())
    return workers or os.cpu_count() or 1


def check_writable(path: str) -> None:
    """InvalidInput naming the path when the store (or the folder it would be created in) is not writable."""
    target = path if os.path.exists(path) else (os.path.dirname(os.path.abspath(path)) or ".")
    if not os.path.exists(target):
        raise InvalidInput(f"cannot create store {path!r}: folder {target!r} does not exist")
    if not os.path.isdir(target):
        raise InvalidInput(f"store {path!r} is not a folder")
    if not os.access(target, os.W_OK | os.X_OK):
        raise InvalidInput(f"cannot write store {path!r}: {target!r} is not writable (permission denied or a "
                           "read-only filesystem)")


def precheck_store(path: str, spec) -> list[str]:
    """Refuse (read-only) a store whose spec differs, which is damaged or not writable, or whose stored
    thresholds replay to other adaptive decisions than it records; a spec device 'auto' takes the store's.
    Returns what the spec adds to the store (SweepSpec.additions_to; [] to resume or create)."""
    from lamcap.orchestrator.store import check_compatible, check_readable, stored_spec

    check_writable(path)
    if not os.path.exists(path):
        return []
    if spec.device == "auto":
        spec = dataclasses.replace(spec, device=stored_spec(path).device)
    added = check_compatible(path, spec)
    check_readable(path)
    if spec.adaptive:
        check_decisions(path, spec)
    return added


def check_decisions(path: str, spec) -> None:
    """InvalidInput (one line) when the store's thresholds, replayed through the adaptive learners, do not
    give the decisions the store records (the scheduler repeats this when it starts)."""
    from lamcap.orchestrator.expansion import Expansion
    from lamcap.orchestrator.store import read_decisions, read_tables, threshold_key

    _, rows, _ = read_tables(path)
    Expansion(spec).resume({threshold_key(r): r for r in rows}, read_decisions(path)[1])


def actor_memory(info: dict) -> int:
    """What one actor may use: its GPU's memory, or its host's available memory over the host's cores."""
    if info["device"] == "cuda":
        return int(info["memory_bytes"])
    return int(info["memory_bytes"]) // max(1, int(info.get("cpus", 1)))


def local_device(spec) -> str:
    """The device an embedded Ray's actors will use; InvalidInput for CUDA where there is none."""
    from lamcap.kernels.solvers import resolve_device

    return resolve_device(spec.device)


def execute(spec, store_path: str, address: str | None = None, workers: int | None = None,
            progress: bool = True, runner=None, flush_seconds: float | None = None):
    """Check everything, start (or join) Ray, open the store, run the scheduler; returns its report.

    flush_seconds: the most seconds between store commits (None: SchedulerSettings' default).
    runner: a probe runner for the actors instead of the kernels (tests).
    """
    from lamcap.orchestrator.lock import StoreLock

    lock = StoreLock(store_path)
    check_writable(store_path)
    lock.acquire()
    try:
        if lock.taken_over:
            print(f"lamcap sweep: took over the lock of a driver that is gone ({lock.taken_over.get('host')}, "
                  f"pid {lock.taken_over.get('pid')}, since {lock.taken_over.get('since')})", file=sys.stderr)
        check_cells(spec)
        check_budget(spec)
        check_searches_fit(spec)
        added = precheck_store(store_path, spec)
        if added:
            print(f"lamcap sweep: extending {store_path}: {'; '.join(added)} (the stored results are kept and "
                  "reused)", file=sys.stderr)
        caps = None
        if address is None and runner is None:  # this machine is the device: check every cell before Ray
            from lamcap.kernels.budget import gpu_total_memory, memory_limit_bytes

            device = local_device(spec)
            memory = memory_limit_bytes(device)
            if device == "cpu":  # CPU actors share the host: each gets its share of the memory
                memory //= max(1, workers or os.cpu_count() or 1)
            gpu_memory = gpu_total_memory() if device == "cuda" else None
            caps = memory_caps(spec, device, memory, gpu_memory,
                               shard_plan(spec, local_pool_size(spec, workers), device, gpu_memory))
        return _run(spec, store_path, address, workers, progress, runner, flush_seconds, caps, lock)
    finally:
        lock.release()


def _run(spec, store_path, address, workers, progress, runner, flush_seconds, caps, lock):
    from lamcap.orchestrator.scheduler import Scheduler, SchedulerSettings
    from lamcap.orchestrator.store import Store
    from lamcap.orchestrator.workers import WorkerPool, plan_workers, start_ray, stop_ray

    num_cpus = max(os.cpu_count() or 1, workers or 1) if address is None else None
    start_ray(address, num_cpus=num_cpus)
    pool = None
    try:
        elastic = address is not None  # a joined cluster may autoscale: start with the actors placed
        plan = plan_workers(workers, spec.device, elastic=elastic)
        spec = dataclasses.replace(spec, device=plan.device)
        shards = shard_plan(spec, plan.count, plan.device)  # refuses a gang the pool cannot form
        store = Store.open_or_create(store_path, spec)
        pool = WorkerPool(plan, runner, group_width=shards.width)
        if elastic:
            print(f"lamcap sweep: asking for {plan.count} actors ({plan.device}); starting with those placed",
                  file=sys.stderr)
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
        scheduler = Scheduler(spec, store, pool, settings, p_caps=caps, shards=shards)
        scheduler.actor_infos.extend(infos)
        return scheduler.run(heartbeat=lock.refresh)
    finally:
        if pool is not None:
            pool.shutdown()
        stop_ray()

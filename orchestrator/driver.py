"""The sweep driver: every check before work, then Ray, the worker pool, the store and the scheduler.

`lamcap sweep` and `lamcap.sweep` both end here. No math: the kernels run inside the actors.
"""
from __future__ import annotations

import os
import sys

# Seconds to wait for every actor to be placed: an embedded Ray places them at once; a cluster's
# autoscaler may have to boot GPU nodes (and pull the image) first.
PLACEMENT_TIMEOUT_S = {False: 300.0, True: 1800.0}


def check_cells(spec) -> None:
    """Every cell's solver can take its first probes (lamcap.kernels.solvers.check_solvable)."""
    from lamcap.kernels.disorder import InstanceSpec
    from lamcap.kernels.solvers import check_solvable
    from lamcap.orchestrator.scheduler import theory_guess
    from lamcap.orchestrator.search import initial_bracket

    for cell in spec.cells():
        _, b = initial_bracket(theory_guess(cell), spec.search.p_max)
        check_solvable(InstanceSpec(cell.problem, cell.d, b, 0), cell.solver, cell.rank)


def precheck_store(path: str, spec) -> None:
    """Refuse (read-only) a store whose spec differs; a spec device 'auto' takes the store's device."""
    import dataclasses

    from lamcap.orchestrator.store import check_compatible, stored_spec

    if not os.path.exists(path):
        return
    if spec.device == "auto":
        spec = dataclasses.replace(spec, device=stored_spec(path).device)
    check_compatible(path, spec)


def execute(spec, store_path: str, address: str | None = None, workers: int | None = None,
            progress: bool = True, runner=None, flush_seconds: float | None = None):
    """Start (or join) Ray, decide the device, open the store, run the scheduler; returns its report.

    flush_seconds: the most seconds between store commits (None: SchedulerSettings' default).
    """
    import dataclasses

    from lamcap.orchestrator.scheduler import Scheduler, SchedulerSettings
    from lamcap.orchestrator.store import Store
    from lamcap.orchestrator.workers import WorkerPool, plan_workers, start_ray, stop_ray

    num_cpus = max(os.cpu_count() or 1, workers or 1) if address is None else None
    start_ray(address, num_cpus=num_cpus)
    pool = None
    try:
        elastic = address is not None  # a joined cluster may autoscale: wait longer for actors to be placed
        plan = plan_workers(workers, spec.device, elastic=elastic)
        spec = dataclasses.replace(spec, device=plan.device)
        store = Store.open_or_create(store_path, spec)
        pool = WorkerPool(plan, runner)
        if elastic:
            print(f"lamcap sweep: waiting for {plan.count} actors ({plan.device}) to be placed", file=sys.stderr)
        pool.wait_ready(timeout=PLACEMENT_TIMEOUT_S[elastic])
        settings = SchedulerSettings(progress=progress)
        if flush_seconds is not None:
            settings = dataclasses.replace(settings, flush_seconds=flush_seconds)
        return Scheduler(spec, store, pool, settings).run()
    finally:
        if pool is not None:
            pool.shutdown()
        stop_ray()

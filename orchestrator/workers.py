"""Ray side of a sweep: starting or joining Ray, sizing the worker set, the probe actors.

No math here: an actor only keeps its device warm and calls a probe runner
(by default `lamcap.orchestrator.probe.run_probe`, which calls the kernels).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import ray

from lamcap.kernels.errors import InvalidInput

Runner = Callable[[Any, Any, str], dict]  # (probe, solver settings, device) -> record


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start an embedded local Ray (address None) or join a cluster ('auto' or a URL); no-op if up."""
    if ray.is_initialized():
        return
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.ERROR,
                 object_store_memory=256 * 1024**2, configure_logging=True)
    else:
        ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR)


def stop_ray() -> None:
    """Shut down (or disconnect from) Ray."""
    if ray.is_initialized():
        ray.shutdown()


@dataclass(frozen=True)
class WorkerPlan:
    """How many actors, what each reserves, and the sweep's device type."""

    count: int
    num_gpus: int  # per actor: 1 on a GPU cluster, else 0
    num_cpus: int  # per actor
    device: str  # 'cuda' or 'cpu': decided once by the driver and recorded in the spec


def cluster_device() -> str:
    """'cuda' when the cluster declares GPUs, else 'cpu'."""
    return "cuda" if int(ray.cluster_resources().get("GPU", 0)) > 0 else "cpu"


def plan_workers(workers: int | None = None, device: str = "auto", elastic: bool = False) -> WorkerPlan:
    """One actor per GPU on a GPU cluster; else one per CPU core; `workers`, if given, caps either.

    Without `elastic` (an embedded Ray) never more actors than the cluster can place now: an actor
    that cannot be placed would leave `WorkerPool.wait_ready` waiting for its whole timeout. With
    `elastic` (a joined cluster, which may autoscale) an explicit `workers` is honoured as asked:
    the autoscaler starts nodes for actors that cannot be placed yet (cluster.yaml starts at zero
    GPU nodes).
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidInput(f"--workers {workers!r} must be an integer >= 1")
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if device == "auto":
        device = "cuda" if gpus > 0 else "cpu"
    available = gpus if device == "cuda" else cpus
    if elastic and workers is not None:
        count = workers
    elif available == 0:
        kind = "GPU" if device == "cuda" else "CPU"
        hint = " (on an autoscaling cluster pass --workers N to ask for N actors)" if elastic else ""
        raise InvalidInput(f"device {device!r}: the Ray cluster has no {kind} to place an actor on now{hint}")
    else:
        count = min(available, workers or available)
    if device == "cuda":
        return WorkerPlan(count=count, num_gpus=1, num_cpus=1, device="cuda")
    return WorkerPlan(count=count, num_gpus=0, num_cpus=1, device="cpu")


class ProbeWorker:
    """A long-lived actor that runs probes on one device (one GPU, or one CPU thread)."""

    def __init__(self, device: str, runner: Runner | None = None) -> None:
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"  # a GPU declared as a resource without a CUDA device (test clusters)
        if device == "cpu":
            torch.set_num_threads(1)  # one core per actor; records do not depend on scheduling
        else:
            torch.zeros(1, device="cuda")  # create the CUDA context now, not in the first probe
        if runner is None:
            from lamcap.kernels.solvers import warm_up
            from lamcap.orchestrator.probe import run_probe as runner

            warm_up(device)  # so that no probe's wall_seconds carries the one-off import costs
        self.device = device
        self.runner = runner

    def set_runner(self, runner: Runner | None) -> None:
        """Swap the probe runner (tests reuse warm actors with different fake runners)."""
        if runner is None:
            from lamcap.orchestrator.probe import run_probe as runner
        self.runner = runner

    def where(self) -> dict:
        """Node id, GPU ids and device of this actor."""
        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "device": self.device, "pid": os.getpid()}

    def run(self, probe: Any, settings: Any) -> tuple[dict, float]:
        """(record, busy seconds) for one probe."""
        start = time.perf_counter()
        record = self.runner(probe, settings, self.device)
        return record, time.perf_counter() - start


RemoteProbeWorker = ray.remote(max_restarts=0, max_task_retries=0)(ProbeWorker)


class WorkerPool:
    """Numbered actor slots; a dead actor is replaced in its slot."""

    def __init__(self, plan: WorkerPlan, runner: Runner | None = None) -> None:
        self.plan = plan
        self.runner = runner
        self.actors = [self._make() for _ in range(plan.count)]
        self.replaced = 0

    def _make(self) -> Any:
        return RemoteProbeWorker.options(num_gpus=self.plan.num_gpus, num_cpus=self.plan.num_cpus).remote(
            self.plan.device, self.runner)

    def wait_ready(self, timeout: float = 300.0) -> list[dict]:
        """Block until every actor is placed and warm; their `where()` reports.

        InvalidInput (naming how many were placed) when some are still waiting after `timeout` s.
        """
        refs = [a.where.remote() for a in self.actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        if len(ready) < len(refs):
            kind = "GPU" if self.plan.num_gpus else "CPU"
            raise InvalidInput(
                f"only {len(ready)} of {len(refs)} actors ({self.plan.num_gpus or self.plan.num_cpus} {kind} each) "
                f"could be placed in {timeout:.0f} s; the cluster has {ray.cluster_resources().get(kind, 0):g} {kind}s "
                "(ask for fewer --workers, or wait longer for the autoscaler)")
        return ray.get(refs)

    def set_runner(self, runner: Runner | None) -> None:
        """Use `runner` on every actor, including those started later to replace dead ones."""
        self.runner = runner
        ray.get([a.set_runner.remote(runner) for a in self.actors])

    def submit(self, slot: int, probe: Any, settings: Any) -> Any:
        """Start one probe on the actor in `slot`; returns its object ref."""
        return self.actors[slot].run.remote(probe, settings)

    def replace(self, slot: int) -> None:
        """Kill whatever is left of the actor in `slot` and start a fresh one there."""
        try:
            ray.kill(self.actors[slot], no_restart=True)
        except Exception:  # noqa: BLE001 - the actor is usually dead already
            pass
        self.actors[slot] = self._make()
        self.replaced += 1

    def shutdown(self) -> None:
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass

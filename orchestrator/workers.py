"""Ray side of a sweep: starting or joining Ray, sizing the worker set, the probe actors.

No math here: an actor only keeps its device warm and calls a probe runner
(by default `lamcap.orchestrator.probe.run_probe`, which calls the kernels).

A sweep with sharded probes creates its actors in placement groups of `group_width` bundles (one
device each, strategy PACK: one node when it has room), so that the actors of one group can run a
probe together as a gang (lamcap.orchestrator.gangs); each of them still runs single probes too.
An actor of a gang joins a torch.distributed group through lamcap.kernels.sharding.joined and
leaves it when its shard is done.
"""
from __future__ import annotations

import logging
import os
import socket
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
    if address is None:  # "local": a new instance even where `ray start` left a cluster's address in /tmp/ray
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.ERROR,
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


def plan_workers(workers: int | None = None, device: str = "auto", elastic: bool = False) -> WorkerPlan:
    """One actor per GPU on a GPU cluster; else one per CPU core; `workers`, if given, caps either.

    Without `elastic` (an embedded Ray) never more actors than the cluster can place now. With
    `elastic` (a joined cluster, which may autoscale) an explicit `workers` is honoured as asked:
    the sweep starts with the actors that are placed and adds the others as the autoscaler brings
    nodes (cluster.yaml starts at zero GPU nodes). There, `device='auto'` with no GPU in the cluster
    yet is refused: an autoscaler may be about to add GPU nodes, and a CPU sweep would then be wrong.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidInput(f"--workers {workers!r} must be an integer >= 1")
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if device == "auto":
        if elastic and gpus == 0:
            raise InvalidInput("--device auto: the Ray cluster has no GPU now, but an autoscaling cluster may add "
                               "GPU nodes; pass --device cuda to wait for GPU actors, or --device cpu")
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


ACTOR_ERROR = "lamcap actor"  # prefix of the messages an actor raises at start-up (found again in RayActorError)


def missing_gpu_message() -> str:
    """Why a GPU actor cannot run: the node, the GPUs Ray gave it, and what torch lacks."""
    import torch

    build = torch.version.cuda
    cause = ("torch is a CPU build: install the CUDA build of torch on that node" if build is None else
             "no usable CUDA device: check the NVIDIA driver on that node (nvidia-smi)")
    return (f"{ACTOR_ERROR} on node {ray.util.get_node_ip_address()}: Ray gave it GPU(s) {ray.get_gpu_ids()} "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}) but torch {torch.__version__} "
            f"(CUDA build {build or 'none'}) sees no CUDA device: {cause}")


def actor_info(device: str) -> dict:
    """Where an actor runs and with what: recorded in the store, compared across actors."""
    import platform
    import socket

    import torch

    from lamcap import __version__
    from lamcap.kernels.budget import memory_limit_bytes

    ctx = ray.get_runtime_context()
    name = torch.cuda.get_device_name(0) if device == "cuda" else (platform.processor() or platform.machine())
    return {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(), "host": socket.gethostname(),
            "pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "device": device,
            "device_name": name, "memory_bytes": memory_limit_bytes(device), "cpus": os.cpu_count() or 1,
            "torch": torch.__version__,
            "cuda": torch.version.cuda or "", "lamcap": __version__}


class ProbeWorker:
    """A long-lived actor that runs probes on one device (one GPU, or one CPU thread)."""

    def __init__(self, device: str, runner: Runner | None = None) -> None:
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            if runner is None:  # the real kernels: never run a GPU sweep's probes on a CPU thread
                raise RuntimeError(missing_gpu_message())
            device = "cpu"  # a custom runner (tests on fake GPU resources) decides itself what it needs
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
        """actor_info: node, GPU ids, device, its name and memory, torch / CUDA / lamcap versions."""
        return actor_info(self.device)

    def run(self, probe: Any, settings: Any) -> tuple[dict, float]:
        """(record, busy seconds) for one probe."""
        start = time.perf_counter()
        record = self.runner(probe, settings, self.device)
        return record, time.perf_counter() - start

    def gang_address(self) -> tuple[str, int]:
        """Where rank 0 of a gang listens: this node's IP and a port free on it now (a fresh one per gang)."""
        ip = ray.util.get_node_ip_address()
        with socket.socket() as sock:
            sock.bind((ip, 0))
            return ip, sock.getsockname()[1]

    def run_shard(self, rendezvous: Any, probe: Any, settings: Any) -> tuple[dict, float]:
        """(record, busy seconds) of this actor's shard of a gang probe: join, run, always leave the group."""
        from lamcap.kernels.sharding import joined

        start = time.perf_counter()
        with joined(rendezvous, self.device) as collective:
            record = self.runner(probe, settings, self.device, collective=collective)
        return record, time.perf_counter() - start

    def run_trial_shard(self, rendezvous: Any, plan: Any) -> tuple[dict, Any]:
        """`lamcap trial`'s (record, verified W) of this actor's shard of a gang trial."""
        import dataclasses

        from lamcap.kernels.sharding import joined
        from lamcap.orchestrator.api import run_trial

        with joined(rendezvous, self.device) as collective:
            return run_trial(dataclasses.replace(plan, device=self.device), collective=collective)


RemoteProbeWorker = ray.remote(max_restarts=0, max_task_retries=0)(ProbeWorker)


def actor_failure(exc: BaseException) -> str:
    """One line from an actor's failure: the lamcap message it raised at start-up, if any."""
    text = str(exc)
    for line in text.splitlines():
        if ACTOR_ERROR in line:
            return line[line.index(ACTOR_ERROR):].strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".strip()


VERSION_KEYS = ("torch", "cuda", "lamcap")


def placement_groups(plan: WorkerPlan, width: int) -> list[Any]:
    """Placement groups of `width` bundles (the last one smaller) covering plan.count actor slots (PACK)."""
    from ray.util.placement_group import placement_group

    bundle = {"CPU": plan.num_cpus, **({"GPU": plan.num_gpus} if plan.num_gpus else {})}
    return [placement_group([dict(bundle)] * min(width, plan.count - start), strategy="PACK")
            for start in range(0, plan.count, width)]


class WorkerPool:
    """Numbered actor slots. A slot is usable once its actor is placed and warm (`ready`); a dead
    actor is replaced in its slot. Actors that the cluster cannot place yet join when it can.

    With group_width > 1 the slots come in placement groups of that many devices (`groups`): slots
    group_width * g .. group_width * (g + 1) - 1 share group g, whose actors a gang probe may use together.
    """

    def __init__(self, plan: WorkerPlan, runner: Runner | None = None, group_width: int = 1) -> None:
        self.plan = plan
        self.runner = runner
        self.group_width = max(1, group_width)
        self._pgs = placement_groups(plan, self.group_width) if self.group_width > 1 else []
        self.actors = [self._make(slot) for slot in range(plan.count)]
        self.placing: dict[Any, int] = {a.where.remote(): slot for slot, a in enumerate(self.actors)}
        self.info: dict[int, dict] = {}  # slot -> actor_info of the ready actor in it
        self.replaced = 0

    @property
    def groups(self) -> list[list[int]]:
        """Slots that can form a gang together (one placement group each); [[0], [1], ...] without groups."""
        w = self.group_width
        return [list(range(start, min(start + w, self.plan.count))) for start in range(0, self.plan.count, w)]

    def placement(self, slot: int) -> tuple[Any, int] | None:
        """(placement group, bundle index) of a slot, or None without groups."""
        if not self._pgs:
            return None
        return self._pgs[slot // self.group_width], slot % self.group_width

    def _make(self, slot: int) -> Any:
        options: dict[str, Any] = {"num_gpus": self.plan.num_gpus, "num_cpus": self.plan.num_cpus}
        where = self.placement(slot)
        if where is not None:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=where[0], placement_group_bundle_index=where[1])
        return RemoteProbeWorker.options(**options).remote(self.plan.device, self.runner)

    @property
    def ready(self) -> list[int]:
        """Slots whose actor is placed and warm."""
        return sorted(self.info)

    def admit(self, ref: Any) -> dict:
        """Take a finished placement ref: the actor's info (slot now ready), or InvalidInput on failure."""
        slot = self.placing.pop(ref)
        try:
            info = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
            raise InvalidInput(f"an actor could not start: {actor_failure(exc)}") from None
        self._check_versions(info)
        self.info[slot] = {**info, "slot": slot}
        return self.info[slot]

    def _check_versions(self, info: dict) -> None:
        from lamcap import __version__

        reference = next(iter(self.info.values()), {"lamcap": __version__, **{k: info[k] for k in ("torch", "cuda")}})
        differ = [f"{k} {info[k] or 'none'} (expected {reference[k] or 'none'})" for k in VERSION_KEYS
                  if info[k] != reference[k]]
        if differ:
            raise InvalidInput(f"actor on node {info['node_ip']} runs {', '.join(differ)}: every actor of a sweep "
                               "must run the same torch, CUDA and lamcap (pin them on every node)")

    def wait_ready(self, timeout: float = 300.0, minimum: int | None = None) -> list[dict]:
        """Block until `minimum` actors (default: all) are placed and warm; their infos.

        InvalidInput (naming how many were placed) when fewer are ready after `timeout` s.
        """
        want = len(self.actors) if minimum is None else minimum
        deadline = time.monotonic() + timeout
        while len(self.info) < want and self.placing:
            done, _ = ray.wait(list(self.placing), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                break
            self.admit(done[0])
        if len(self.info) < want:
            kind = "GPU" if self.plan.num_gpus else "CPU"
            raise InvalidInput(
                f"only {len(self.info)} of {len(self.actors)} actors ({self.plan.num_gpus or self.plan.num_cpus} "
                f"{kind} each) could be placed in {timeout:.0f} s; the cluster has "
                f"{ray.cluster_resources().get(kind, 0):g} {kind}s (ask for fewer --workers, or wait longer for "
                "the autoscaler)")
        return [self.info[s] for s in self.ready]

    def set_runner(self, runner: Runner | None) -> None:
        """Use `runner` on every actor, including those started later to replace dead ones."""
        self.runner = runner
        ray.get([a.set_runner.remote(runner) for a in self.actors])

    def submit(self, slot: int, probe: Any, settings: Any) -> Any:
        """Start one probe on the actor in `slot`; returns its object ref."""
        return self.actors[slot].run.remote(probe, settings)

    def submit_shard(self, slot: int, rendezvous: Any, probe: Any, settings: Any) -> Any:
        """Start the actor in `slot` on its shard of a gang probe; returns its object ref."""
        return self.actors[slot].run_shard.remote(rendezvous, probe, settings)

    def gang_address(self, slot: int) -> Any:
        """Ref to (node IP, free port) of the actor in `slot`, the rank 0 of a gang."""
        return self.actors[slot].gang_address.remote()

    def replace(self, slot: int) -> None:
        """Kill whatever is left of the actor in `slot` and start a fresh one there (ready once placed)."""
        try:
            ray.kill(self.actors[slot], no_restart=True)
        except Exception:  # noqa: BLE001 - the actor is usually dead already
            pass
        self.info.pop(slot, None)
        self.actors[slot] = self._make(slot)
        self.placing[self.actors[slot].where.remote()] = slot
        self.replaced += 1

    def shutdown(self) -> None:
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        from ray.util.placement_group import remove_placement_group

        for pg in self._pgs:  # or their resources stay reserved
            try:
                remove_placement_group(pg)
            except Exception:  # noqa: BLE001
                pass
        self._pgs = []

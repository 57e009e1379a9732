"""The actor pool of a sweep: how many actors, where they are placed, and slots refilled when one dies.

A sweep with sharded probes creates its actors in placement groups of `group_width` bundles (one
device each, strategy PACK: one node when it has room), so that the actors of one group can run a
probe together as a gang (lamcap.orchestrator.runtime.gangs); each of them still runs single probes too.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import ray

from lamcap.errors import ClusterError, InvalidInput
from lamcap.orchestrator.runtime.workers import ACTOR_ERROR, RemoteProbeWorker, Runner, actor_failure

log = logging.getLogger(__name__)
MAX_START_ATTEMPTS = 3  # actors started in one slot in a row before the slot is given up


@dataclass(frozen=True)
class WorkerPlan:
    """How many actors, what each reserves, and the sweep's device type."""

    count: int
    num_gpus: float  # per actor: 1 on a GPU cluster (1/K with K actors per GPU), else 0
    num_cpus: int  # per actor
    device: str  # 'cuda' or 'cpu': decided once by the driver and recorded in the spec
    actors_per_gpu: int = 1  # K actors share each GPU, each planning with 1/K of its memory

    @property
    def memory_share(self) -> float:
        """The share of its device each actor plans and allocates with."""
        return 1.0 / self.actors_per_gpu if self.device == "cuda" else 1.0


def plan_workers(workers: int | None = None, device: str = "auto", elastic: bool = False,
                 actors_per_gpu: int = 1) -> WorkerPlan:
    """One actor per GPU on a GPU cluster (K per GPU with `actors_per_gpu` K, one CPU core each); else one per
    CPU core; `workers`, if given, caps either.

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
    if isinstance(actors_per_gpu, bool) or not isinstance(actors_per_gpu, int) or actors_per_gpu < 1:
        raise InvalidInput(f"--actors-per-gpu {actors_per_gpu!r} must be an integer >= 1 (or auto)")
    if device != "cuda":
        actors_per_gpu = 1  # CPU actors never share a core
    available = gpus * actors_per_gpu if device == "cuda" else cpus
    if actors_per_gpu > 1 and not elastic:
        available = min(available, cpus)  # each actor still holds a CPU core for its host work
    if elastic and workers is not None:
        count = workers
    elif available == 0:
        kind = "GPU" if device == "cuda" else "CPU"
        hint = " (on an autoscaling cluster pass --workers N to ask for N actors)" if elastic else ""
        raise InvalidInput(f"device {device!r}: the Ray cluster has no {kind} to place an actor on now{hint}")
    else:
        count = min(available, workers or available)
    if device == "cuda":
        share = 1 if actors_per_gpu == 1 else 1 / actors_per_gpu
        return WorkerPlan(count=count, num_gpus=share, num_cpus=1, device="cuda", actors_per_gpu=actors_per_gpu)
    return WorkerPlan(count=count, num_gpus=0, num_cpus=1, device="cpu")



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
        self.start_failures: Counter = Counter()  # slot -> actors that died starting in it, in a row
        self.given_up: dict[int, str] = {}  # slots no actor could start in, and why

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
        return RemoteProbeWorker.options(**options).remote(self.plan.device, self.runner, self.plan.memory_share)

    @property
    def ready(self) -> list[int]:
        """Slots whose actor is placed and warm."""
        return sorted(self.info)

    def admit(self, ref: Any) -> dict | None:
        """Take a finished placement ref: the actor's info (its slot now ready), or None when it died starting.

        An actor killed while it starts is replaced in its slot, up to MAX_START_ATTEMPTS times in a row; a
        slot that never gets one is given up, and once every slot is, ClusterError names the cause. An actor
        that refuses to start because of the sweep's input (a GPU node whose torch sees no CUDA) is
        InvalidInput at once: a fresh actor would refuse the same way."""
        slot = self.placing.pop(ref)
        try:
            info = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
            return self._start_failed(slot, exc)
        self._check_versions(info)
        self.start_failures.pop(slot, None)
        self.info[slot] = {**info, "slot": slot}
        return self.info[slot]

    def _start_failed(self, slot: int, exc: BaseException) -> None:
        cause = actor_failure(exc)
        if cause.startswith(ACTOR_ERROR):
            raise InvalidInput(f"an actor could not start: {cause}")
        self.start_failures[slot] += 1
        tries = self.start_failures[slot]
        if tries < MAX_START_ATTEMPTS:
            log.warning("actor %d died while starting (attempt %d of %d: %s); starting a fresh one", slot, tries,
                        MAX_START_ATTEMPTS, cause)
            self.replace(slot)
            return None
        log.warning("actor %d died while starting %d times in a row (%s); going on without it", slot, tries, cause)
        self.given_up[slot] = cause
        if len(self.given_up) == len(self.actors):
            raise ClusterError(f"no actor of this sweep could start ({MAX_START_ATTEMPTS} tries per slot); the last "
                               f"cause: {cause}")
        return None

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
        while len(self.info) < min(want, len(self.actors) - len(self.given_up)) and self.placing:
            done, _ = ray.wait(list(self.placing), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                break
            self.admit(done[0])
        if len(self.info) < min(want, len(self.actors) - len(self.given_up)):
            kind = "GPU" if self.plan.num_gpus else "CPU"
            raise InvalidInput(
                f"only {len(self.info)} of {len(self.actors)} actors ({self.plan.num_gpus or self.plan.num_cpus:g} "
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
        except Exception:
            pass
        self.info.pop(slot, None)
        self.actors[slot] = self._make(slot)
        self.placing[self.actors[slot].where.remote()] = slot
        self.replaced += 1

    def shutdown(self) -> None:
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                pass
        from ray.util.placement_group import remove_placement_group

        for pg in self._pgs:  # or their resources stay reserved
            try:
                remove_placement_group(pg)
            except Exception:
                pass
        self._pgs = []

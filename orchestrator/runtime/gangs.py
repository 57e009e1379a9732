"""Gang probes: one probe on k actors at once, the scheduler's slot of width k. No math here.

A gang is k idle actors of one placement group (lamcap.orchestrator.runtime.workers.WorkerPool.groups).
Rank 0's actor names a fresh address (its node IP, a free port); each member then runs its shard
(ProbeWorker.run_shard), joined to the others by torch.distributed with a finite timeout. A gang
lives and dies as a whole: when any member dies, raises or returns an error record, every member
is killed and replaced (none is left waiting in a collective), its other results are dropped, and
the probe is run again on a fresh gang (the scheduler's retry rule); only rank 0's record of a
gang whose every member finished is kept. Nothing partial reaches the store.

Dispatch (`take`): gang probes first, each on the group with the fewest idle slots that still has
room (so nearly free groups fill up); then single probes on the remaining idle slots, taken first
from the groups with the fewest idle slots. A gang that finds no group with room waits while
singles use the devices, so no device idles while a single probe is runnable and nothing
deadlocks; a group frees up as its singles finish. Cells that run on gangs are searched with one
probe in flight per seed (`parallel_cap`): a gang probe is the costliest kind, and k-section
spends extra probes to save wall time.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray

from lamcap.kernels.sharding import DEFAULT_TIMEOUT_S, Rendezvous
from lamcap.orchestrator.spec.shard_rules import UNSHARDED, ShardPlan

ADDRESS_TIMEOUT_S = 60.0  # rank 0's actor must name its address within this long


class GangFailed(RuntimeError):
    """A gang trial's member died or raised (one line: which member, and why)."""


def assign(widths: Sequence[int], idle: Iterable[int], groups: Sequence[Sequence[int]]) -> list[tuple[int, list[int]]]:
    """(index into widths, slots) for the probes that start now; widths in priority order (see the module
    docstring for the rule). Pure: no Ray."""
    free = {g: [s for s in group if s in set(idle)] for g, group in enumerate(groups)}
    out: list[tuple[int, list[int]]] = []
    for wanted_gangs in (True, False):
        for i, width in enumerate(widths):
            if (width > 1) != wanted_gangs:
                continue
            room = [g for g, slots in free.items() if len(slots) >= width]
            if not room:
                continue
            g = min(room, key=lambda g: (len(free[g]), g))
            out.append((i, free[g][:width]))
            free[g] = free[g][width:]
    return sorted(out)


@dataclass
class _Run:
    """One gang probe in flight."""

    probe: Any
    attempt: int
    slots: list[int]
    refs: list[Any]
    done: dict[Any, tuple[dict, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class GangResult:
    """A finished gang: rank 0's record, or why the gang failed (then `abandoned`: its refs still in flight)."""

    probe: Any
    attempt: int
    slots: list[int]
    record: dict | None
    busy: float  # summed over the members
    failure: str = ""
    abandoned: tuple[Any, ...] = ()


class GangRuns:
    """The gang probes in flight on a WorkerPool, under a sweep's ShardPlan."""

    def __init__(self, pool: Any, plan: ShardPlan = UNSHARDED, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.pool, self.plan, self.timeout_s = pool, plan, timeout_s
        self._runs: dict[Any, _Run] = {}  # every member's ref -> its gang
        self.launched: list[list[int]] = []  # the slots of every gang started (for tests and reports)

    def width(self, probe: Any) -> int:
        """Actors the probe runs on."""
        cell = probe.cell
        return self.plan.shards(cell.problem, cell.d, cell.solver, probe.p)

    def parallel_cap(self, cell: Any, cap: int) -> int:
        """Probes a search of this cell may have in flight: 1 for cells on gangs, else `cap`."""
        return 1 if self.plan.most(cell.problem, cell.d, cell.solver) > 1 else cap

    def take(self, ready: list[tuple[Any, int]], idle: Sequence[int]) -> list[tuple[Any, int, list[int]]]:
        """Remove from `ready` the (probe, attempt) pairs that start now; each with its slots."""
        placed = assign([self.width(probe) for probe, _ in ready], idle, self.pool.groups)
        chosen = [(ready[i][0], ready[i][1], slots) for i, slots in placed]
        for i, _ in reversed(placed):
            del ready[i]
        return chosen

    def launch(self, slots: list[int], probe: Any, settings: Any, attempt: int) -> list[tuple[Any, int]] | str:
        """Start the gang: [(ref, slot)] of its members, or why it could not start (its actors replaced)."""
        try:
            address, port = ray.get(self.pool.gang_address(slots[0]), timeout=ADDRESS_TIMEOUT_S)
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError, ray.exceptions.GetTimeoutError) as exc:
            self._replace(slots)
            return f"gang of {len(slots)}: rank 0 gave no address ({type(exc).__name__})"
        refs = [self.pool.submit_shard(slot, Rendezvous(address, port, rank, len(slots), self.timeout_s), probe,
                                       settings) for rank, slot in enumerate(slots)]
        run = _Run(probe, attempt, list(slots), refs)
        self._runs.update({ref: run for ref in refs})
        self.launched.append(list(slots))
        return list(zip(refs, slots))

    def owns(self, ref: Any) -> bool:
        return ref in self._runs

    def collect(self, ref: Any) -> GangResult | None:
        """Take one member's finished ref: None while others still run, else the gang's result."""
        run = self._runs.pop(ref)
        rank = run.refs.index(ref)
        failure = ""
        try:
            record, busy = ray.get(ref)
            if record.get("status") == "error":
                failure = record.get("error") or "the probe raised"
        except ray.exceptions.RayActorError as exc:
            failure, busy, record = f"the actor died ({type(exc).__name__})", 0.0, {}
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            failure, busy, record = f"{type(cause).__name__}: {cause}".splitlines()[0], 0.0, {}
        run.done[ref] = (record, busy)
        busy_total = sum(b for _, b in run.done.values())
        if failure:
            abandoned = tuple(r for r in run.refs if r not in run.done)
            for r in abandoned:
                self._runs.pop(r, None)
            self._replace(run.slots)
            return GangResult(run.probe, run.attempt, run.slots, None, busy_total,
                              f"gang of {len(run.slots)}, rank {rank}: {failure}", abandoned)
        if len(run.done) < len(run.refs):
            return None
        return GangResult(run.probe, run.attempt, run.slots, run.done[run.refs[0]][0], busy_total)

    def _replace(self, slots: list[int]) -> None:
        """Kill every member (none may stay in a collective) and start fresh actors in their bundles."""
        for slot in slots:
            self.pool.replace(slot)

"""The scheduler's policies, each a small piece: which searches to ask now (rounds of the spec's width), which
ready probe starts first (the longest by the stated cost model), and when waiting for actors is hopeless."""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

from lamcap.errors import ClusterError
from lamcap.orchestrator.planning.cost_model import ProbeContext
from lamcap.orchestrator.planning.stated import stated_model
from lamcap.orchestrator.spec import Probe, SweepSpec


class RoundLimiter:
    """Searches ask in rounds: a search with nothing in flight is asked `width` points (the spec's
    search.width), and is asked again only when all of them are answered. So the probes of a search are a
    function of the spec and the verdicts alone, whatever the number of actors or the order of events
    (a rerun, a resume, or more workers visit the same probes).

    The searches waiting for their next round are kept in a heap, largest cells first (their searches run
    longest), so that asking for n actors costs O(n log searches), not a pass over every search."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._heap: list[tuple] = []
        self._queued: set = set()

    def offer(self, key: tuple, priority: tuple) -> None:
        """A search is ready for its next round (a no-op if it already waits)."""
        if key not in self._queued:
            self._queued.add(key)
            heapq.heappush(self._heap, (priority, key))

    def take(self, n: int) -> list[tuple]:
        """The searches to ask a round of `width` points for n idle actors: as many rounds as start at least one
        probe each, largest cells first."""
        out = []
        while self._heap and len(out) * self.width < n:
            _, key = heapq.heappop(self._heap)
            self._queued.discard(key)
            out.append(key)
        return out

    def __bool__(self) -> bool:
        return bool(self._heap)


class DispatchOrder:
    """The longest probes start first (a search's last probe is not left to the end of the sweep): seconds of an
    UNSAT probe under the stated model of the sweep's device, a pure function of the probe."""

    def __init__(self, spec: SweepSpec, device: str) -> None:
        self.context = ProbeContext.of(spec, stated_model(device if device in ("cpu", "cuda") else "cpu"))

    def seconds(self, probe: Probe) -> float:
        steps = self.context.max_steps if probe.cell.solver == "adam" else 0
        return self.context.seconds(probe.cell, probe.p, False, steps)


@dataclass
class Starvation:
    """Gives up when no actor has been ready for `timeout` seconds while probes wait (a cluster that cannot
    place any actor)."""

    timeout: float
    since: float = 0.0

    def reset(self) -> None:
        self.since = time.perf_counter()

    def check(self, served: bool) -> None:
        if served:
            self.reset()
        elif time.perf_counter() - self.since > self.timeout:
            raise ClusterError(f"no actor has been ready for {self.timeout:.0f} s while probes wait (the cluster "
                               "cannot place any); the store keeps what finished: resume when the cluster has room")

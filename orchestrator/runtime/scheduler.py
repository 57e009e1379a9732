"""The dispatch loop: the only place with concurrency.

One `ThresholdLearner` per (cell, seed), asked in rounds of the spec's width (RoundLimiter), so that the
probes of a search never depend on the number of actors or the order in which results arrive. A plain
loop keeps one call in flight per ready actor, waits with `ray.wait(..., num_returns=1, timeout=...)` on
the probes and on actors still being placed (an autoscaling cluster adds them as it can), and `ray.get`s
each ready ref inside try/except. An error is never a verdict: a probe whose actor died or that raised is
run again on a fresh actor (up to `max_attempts`); if it keeps failing it is stored as an 'error' record and
its seed's search stops there, its threshold marked incomplete with the reason. Records and thresholds go to
the store in batches (BatchWriter).

Resuming: a search asks its rounds again from the start, and every point the store holds is answered from
it, never run again; so a resumed sweep visits the very probes an uninterrupted one would have.
An adaptive axis (`[adaptive.rho]`, `[adaptive.d]`): the searches are what the adaptive learners of
lamcap.orchestrator.learners.expansion ask for; each threshold row is told to them, the searches they add
get learners on the fly, and their decisions are stored in the batch of the threshold rows that triggered
them. The sweep ends when every search is done and every adaptive learner has stopped.
"""
from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import ray

from lamcap.orchestrator.learners.curves import curve_loads
from lamcap.orchestrator.learners.decisions import decision_row
from lamcap.orchestrator.learners.expansion import Expansion
from lamcap.orchestrator.learners.threshold import ThresholdLearner, theory_guess, threshold_row
from lamcap.orchestrator.runtime.batches import BatchWriter
from lamcap.orchestrator.runtime.dispatch import DispatchOrder, RoundLimiter, Starvation
from lamcap.orchestrator.runtime.gangs import GangRuns
from lamcap.orchestrator.runtime.pool import WorkerPool
from lamcap.orchestrator.runtime.probe import failed_record
from lamcap.orchestrator.runtime.progress import ProgressBar
from lamcap.orchestrator.spec import Cell, Probe, SweepSpec
from lamcap.orchestrator.spec.shard_rules import ShardPlan
from lamcap.store.schema import threshold_key
from lamcap.store.writer import StoreWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulerSettings:
    """Batching, retry and polling knobs (not part of the spec: they do not change results)."""

    flush_every: int = 64  # records per store batch
    flush_seconds: float = 10.0  # ... or at most this long between batches
    max_attempts: int = 3  # runs of one probe on fresh actors before it is recorded as 'error'
    wait_timeout: float = 0.5  # seconds per ray.wait, so flushes and Ctrl-C are never starved
    progress: bool = True  # tqdm bar on stderr
    placement_timeout: float = 1800.0  # seconds without any ready actor (all dead, none placed) before giving up


@dataclass
class SweepReport:
    """What one scheduler run did."""

    thresholds: list[dict]  # every threshold row of the sweep (stored earlier or now)
    probes_run: int = 0  # probes computed in this run
    probes_reused: int = 0  # records already in the store that this run used (answered from the store)
    retries: int = 0  # probe runs repeated after their actor died or the probe raised
    failures: list[str] = field(default_factory=list)  # one line per failed run, as reported when it happened
    busy_seconds: float = 0.0  # summed over actors, measured inside them
    wall_seconds: float = 0.0  # of the dispatch loop, actors already warm
    n_actors: int = 0
    peak_in_flight: int = 0  # most probes running at once
    interrupted: bool = False
    per_actor: Counter = field(default_factory=Counter)  # probes finished per actor slot
    decisions: list[dict] = field(default_factory=list)  # every adaptive learner's decisions (stored earlier or now)

    @property
    def utilisation(self) -> float:
        """Busy time / (actors x wall time) of the dispatch loop."""
        denom = self.n_actors * self.wall_seconds
        return self.busy_seconds / denom if denom > 0 else 0.0


def _cap(p_max: int | None, cap: int | None) -> int | None:
    """The tighter of the spec's p_max and a memory cap (None: no limit)."""
    caps = [c for c in (p_max, cap) if c is not None]
    return max(3, min(caps)) if caps else None


class Scheduler:
    """Runs a sweep's searches (and curve probes) on a WorkerPool, writing through a StoreWriter."""

    def __init__(self, spec: SweepSpec, store: StoreWriter, pool: WorkerPool,
                 settings: SchedulerSettings = SchedulerSettings(),
                 guess: Callable[[Cell], float] = theory_guess, p_caps: dict[Cell, int] | None = None,
                 expansion: Expansion | None = None, shards: ShardPlan | None = None) -> None:
        """p_caps: per cell, the largest p a probe may have (what fits the device's memory).
        expansion: the adaptive axis's learners (an adaptive spec needs one), started or resumed from this store
        (the pre-flight does that) or not yet (then resumed here).
        shards: how many actors each probe runs on (lamcap.orchestrator.runtime.gangs; None: one each).
        InvalidInput when the store's thresholds replay to other decisions than it records."""
        self.spec, self.store, self.pool, self.settings = spec, store, pool, settings
        self.gangs = GangRuns(pool) if shards is None else GangRuns(pool, shards)
        self.guess, self.p_caps = guess, p_caps or {}
        self.rounds = RoundLimiter(spec.search.width)
        self.order = DispatchOrder(spec, pool.plan.device)
        self.stored = store.completed_probes()  # key -> record
        self.thresholds = store.completed_thresholds()  # threshold key -> row
        self.report = SweepReport(thresholds=[], n_actors=len(pool.actors))
        if spec.adaptive and expansion is None:
            raise ValueError("an adaptive spec needs its Expansion (lamcap.orchestrator.runtime.preflight.check_store)")
        self.expansion = expansion
        self.writer = BatchWriter(store, settings.flush_every, settings.flush_seconds,
                                  expansion.cost_model if expansion is not None else "")
        if expansion is not None:
            if not expansion.started:
                expansion.resume(self.thresholds, store.completed_decisions())
            searches = sorted(expansion.searches)
            self._queue_decisions(expansion.take_decisions())  # replayed, but not stored before a crash
        else:
            searches = [(cell, seed) for cell in spec.cells() for seed in range(spec.seeds_of(cell))]
        self.learners = {(cell, seed): self._learner(cell, seed) for cell, seed in searches}
        self.actor_infos: list[dict] = []  # actors that became ready, for the store
        self.ready: list[tuple[Probe, int]] = []  # (probe, attempt) waiting for an actor
        self.in_flight: dict[Any, tuple[int, Probe, int]] = {}  # ref -> (slot, probe, attempt)
        self.finished: set[tuple] = set()  # learner keys whose threshold row exists
        for lkey in self.learners:
            self._offer(lkey)
        self.curved: set[Cell] = set()
        self.bar = ProgressBar(0, False)

    def _learner(self, cell: Cell, seed: int) -> ThresholdLearner:
        return ThresholdLearner(cell, seed, self.guess(cell), _cap(self.spec.search.p_max, self.p_caps.get(cell)),
                                self.spec.resolution_of(cell))

    def _queue_decisions(self, decisions: list[dict]) -> None:
        self.writer.pending.decisions += decisions
        self.writer.pending.decision_rows += [decision_row(d) for d in decisions]

    def _expand(self, row: dict) -> None:
        """Tell the adaptive axis a threshold row; start the searches it asks for."""
        if self.expansion is None:
            return
        added = [(cell, seed) for cell, seed in self.expansion.tell(row) if (cell, seed) not in self.learners]
        self._queue_decisions(self.expansion.take_decisions())
        for lkey in added:
            self.learners[lkey] = self._learner(*lkey)
            self._offer(lkey)
        if added:
            self.bar.grow(len(self.learners))

    # ---- asking ------------------------------------------------------------------------------
    def _offer(self, lkey: tuple) -> None:
        """A search with nothing in flight and something left to learn waits for its next round."""
        learner = self.learners[lkey]
        if lkey in self.finished or learner.pending or learner.done or learner.exhausted or learner.failed:
            return
        cell = lkey[0]
        self.rounds.offer(lkey, (-cell.d, cell.problem != "dp", lkey))

    def _answer(self, lkey: tuple, learner: ThresholdLearner, p: int, record: dict) -> None:
        """A proposal the store already holds: told from the record, never run again."""
        self.report.probes_reused += 1
        if record["status"] == "error":
            learner.fail(p, record.get("error", ""))
        else:
            learner.tell(p, bool(record["sat"]))

    def _ask(self, n: int) -> list[tuple[Probe, int]]:
        """Rounds of new probes for up to n idle actors; proposals already stored are answered at once (and the
        search asked its next round)."""
        out: list[tuple[Probe, int]] = []
        while len(out) < n and self.rounds:
            for lkey in self.rounds.take(n - len(out)):
                learner = self.learners[lkey]
                for p in learner.ask(self.rounds.width):
                    probe = Probe(lkey[0], lkey[1], p, "search")
                    record = self.stored.get(probe.key)
                    if record is None:
                        out.append((probe, 1))
                    else:
                        self._answer(lkey, learner, p, record)
                self._check_learner(lkey, learner)  # a round answered whole from the store: the next one at once
        return out

    # ---- dispatching -------------------------------------------------------------------------
    def _fill(self) -> None:
        """Give every idle ready actor a probe: queued ones (retries, curves) first, then new rounds. A probe
        on k actors starts on k idle actors of one group, singles take the rest (gangs.take)."""
        busy = {slot for slot, _, _ in self.in_flight.values()}
        idle = [s for s in self.pool.ready if s not in busy]
        while idle:
            self.ready.sort(key=lambda pa: self.order.seconds(pa[0]), reverse=True)
            for probe, attempt, slots in self.gangs.take(self.ready, idle):
                self._start(probe, attempt, slots)
                idle = [s for s in idle if s not in slots]
            fresh = self._ask(len(idle)) if idle else []
            if not fresh:
                break
            self.ready += fresh
        self.report.peak_in_flight = max(self.report.peak_in_flight, len(self.in_flight))

    def _start(self, probe: Probe, attempt: int, slots: list[int]) -> None:
        """Submit a probe on one actor, or on a gang (a gang that cannot start is a failed run)."""
        if len(slots) == 1:
            self.in_flight[self.pool.submit(slots[0], probe, self.spec.solver_settings)] = (slots[0], probe, attempt)
            return
        started = self.gangs.launch(slots, probe, self.spec.solver_settings, attempt)
        if isinstance(started, str):
            return self._failed(probe, attempt, started, 0.0)
        for ref, slot in started:
            self.in_flight[ref] = (slot, probe, attempt)

    def _admit(self, ref: Any) -> None:
        """An actor finished starting: it joins the pool (its info is recorded in the store), or it died starting
        and its slot is filled again (the pool gives up, ClusterError, once no actor can start at all)."""
        info = self.pool.admit(ref)
        if info is None:
            return
        self.actor_infos.append(info)
        self.report.n_actors = max(self.report.n_actors, len(self.pool.ready))

    def _collect(self, ref: Any) -> None:
        """Take one finished ref: a record, or a failure (dead actor, raised probe, error record) to retry."""
        if self.gangs.owns(ref):
            return self._collect_gang(ref)
        slot, probe, attempt = self.in_flight.pop(ref)
        try:
            record, busy = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            self.pool.replace(slot)
            return self._failed(probe, attempt, f"actor died ({type(exc).__name__})", 0.0)
        except ray.exceptions.RayTaskError as exc:  # run_probe catches; a fake runner may not
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            return self._failed(probe, attempt, f"{type(cause).__name__}: {cause}".splitlines()[0], 0.0)
        self.report.busy_seconds += busy
        self.report.per_actor[slot] += 1
        if record["status"] == "error":
            if self.pool.plan.device == "cuda":  # its CUDA context may be broken (sticky errors): a fresh actor
                self.pool.replace(slot)
            return self._failed(probe, attempt, record.get("error", "") or "the probe raised", busy)
        record["attempt"] = attempt
        self._finish(probe, record)

    def _collect_gang(self, ref: Any) -> None:
        """One member of a gang finished: once all have, rank 0's record; on any failure the whole gang was
        replaced, its other members' refs are dropped and the probe runs again."""
        self.in_flight.pop(ref)
        result = self.gangs.collect(ref)
        if result is None:
            return
        for other in result.abandoned:
            self.in_flight.pop(other, None)
        self.report.busy_seconds += result.busy
        if result.failure:
            return self._failed(result.probe, result.attempt, result.failure, result.busy)
        for slot in result.slots:
            self.report.per_actor[slot] += 1
        result.record["attempt"] = result.attempt
        self._finish(result.probe, result.record)

    def _failed(self, probe: Probe, attempt: int, message: str, busy: float) -> None:
        """A run that gave no verdict: say so now, run it again, or after max_attempts store it as 'error'
        and stop its seed's search there (never told to the learner as a verdict)."""
        what = f"{probe.cell.problem} {probe.cell.solver} rho={probe.cell.rho:g} d={probe.cell.d} " \
               f"seed={probe.seed} p={probe.p}"
        again = attempt < self.settings.max_attempts
        line = f"probe {what} failed (attempt {attempt} of {self.settings.max_attempts}): {message}" \
               + ("; running it again on a fresh actor" if again else "; giving up on this seed")
        self.report.failures.append(line)
        log.warning(line)
        if again:
            self.report.retries += 1
            self.ready.append((probe, attempt + 1))
            return
        record = {**failed_record(probe, self.pool.plan.device, message, attempt), "shards": self.gangs.width(probe)}
        self._store(probe, record)
        if probe.purpose == "search":
            lkey = (probe.cell, probe.seed)
            self.learners[lkey].fail(probe.p, message)
            self._check_learner(lkey, self.learners[lkey])

    def _store(self, probe: Probe, record: dict) -> None:
        self.report.probes_run += 1
        self.stored[probe.key] = record
        self.writer.pending.records.append(record)

    def _finish(self, probe: Probe, record: dict) -> None:
        self._store(probe, record)
        if probe.purpose == "search":
            lkey = (probe.cell, probe.seed)
            self.learners[lkey].tell(probe.p, bool(record["sat"]))
            self._check_learner(lkey, self.learners[lkey])

    def _check_learner(self, lkey: tuple, learner: ThresholdLearner) -> None:
        """Emit a search's threshold once it is done and nothing of it is in flight (then curves); a search whose
        round is answered and that is not done waits for its next round."""
        if lkey in self.finished or learner.pending:
            return
        if not (learner.done or learner.exhausted or learner.failed):
            return self._offer(lkey)
        self.finished.add(lkey)
        row = threshold_row(learner)
        self.report.thresholds.append(row)
        if threshold_key(row) not in self.thresholds:
            self.thresholds[threshold_key(row)] = row
            self.writer.pending.thresholds.append(row)
        self._expand(self.thresholds[threshold_key(row)])  # the stored row, if any: what resume replays from
        self._queue_curves(lkey[0])

    def _queue_curves(self, cell: Cell) -> None:
        """Once seeds 0 .. seeds-1 of `cell` have thresholds: probes at loads around their median alpha*.

        (An adaptive dimension axis may give a cell other seeds, or more: only these decide the loads, so
        that an interrupted sweep queues the same curve probes.)"""
        n = self.spec.search.curve_points
        seeds = range(self.spec.seeds_of(cell))
        if n == 0 or cell in self.curved or any((cell, s) not in self.finished for s in seeds):
            return
        self.curved.add(cell)
        alphas = [r["alpha_star"] for r in self.report.thresholds
                  if (r["problem"], r["solver"], r["rho"], r["d"]) == (cell.problem, cell.solver, cell.rho, cell.d)
                  and r["seed"] < len(seeds) and r["p_star"] >= 2 and r.get("complete", True)]
        if not alphas:
            return
        for p in curve_loads(statistics.median(alphas), cell.d, n, self.spec.search.curve_span):
            for seed in seeds:
                probe = Probe(cell, seed, p, "curve")
                if probe.key in self.stored:
                    self.report.probes_reused += 1
                else:
                    self.ready.append((probe, 1))

    # ---- the loop ----------------------------------------------------------------------------
    def flush(self, wait: bool = False) -> None:
        """Hand buffered records, thresholds, decisions and actor infos to the store's writer."""
        self.writer.pending.actors += self.actor_infos
        self.actor_infos = []
        self.writer.flush(wait)

    def _progress(self) -> dict:
        """What the progress bar shows: thresholds found (of all seeds), cells with every seed done, probes."""
        per_cell = Counter(cell for cell, _seed in self.finished)
        seeds = Counter(cell for cell, _seed in self.learners)
        return {"thresholds": len(self.finished), "cells": len(seeds),
                "cells_done": sum(1 for cell, n in per_cell.items() if n == seeds[cell]),
                "probes_done": self.report.probes_run, "in_flight": len(self.in_flight)}

    def _work_left(self) -> bool:
        return bool(self.ready or self.rounds)

    def run(self, heartbeat: Callable[[], None] | None = None) -> SweepReport:
        """Search every (cell, seed) to its threshold; Ctrl-C stops dispatching and keeps what finished.

        heartbeat: called every loop turn (the driver renews its store lock there).
        """
        self.bar = ProgressBar(len(self.learners), self.settings.progress)
        self.writer.start()
        starved = Starvation(self.settings.placement_timeout)
        start = time.perf_counter()
        starved.reset()
        try:
            while True:
                self._fill()
                if not self.in_flight and not (self.pool.placing and self._work_left()):
                    break
                starved.check(bool(self.in_flight or self.pool.ready))
                if self.writer.due() or self.actor_infos:
                    self.flush()  # after _fill: the actors run while the batch is written
                if heartbeat is not None:
                    heartbeat()
                waiting = [*self.in_flight, *self.pool.placing]
                ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)  # every result in, at once
                if not ready:
                    ready, _ = ray.wait(waiting, num_returns=1, timeout=self.settings.wait_timeout)
                for ref in ready:
                    if ref in self.pool.placing:
                        self._admit(ref)
                    elif ref in self.in_flight:  # a gang's abandoned members are gone already
                        self._collect(ref)
                self.bar.update(self._progress)
        except KeyboardInterrupt:
            self.report.interrupted = True
        finally:
            self.report.wall_seconds = time.perf_counter() - start
            self.report.decisions = self.expansion.decisions if self.expansion is not None else []
            self.writer.pending.actors += self.actor_infos
            self.actor_infos = []
            self.writer.stop()
            self.bar.close(self._progress)
        return self.report

"""The dispatch loop: the only place with concurrency.

One `ThresholdLearner` per (cell, seed). A plain loop keeps one call in flight per ready actor,
waits with `ray.wait(..., num_returns=1, timeout=...)` on the probes and on actors still being
placed (an autoscaling cluster adds them as it can), and `ray.get`s each ready ref inside
try/except. An error is never a verdict: a probe whose actor died or that raised is run again on a
fresh actor (up to `max_attempts`); if it keeps failing it is stored as an 'error' record and its
seed's search stops there, its threshold marked incomplete with the reason. Records and thresholds are buffered and flushed to the store in batches, by
one writer thread (batches in order, one at a time), so that the actors never wait on the disk.
Resuming: learners are told every search probe the store already holds, and a proposal whose
record is stored is answered from it, never run again.
An adaptive axis (`[adaptive.rho]`, `[adaptive.d]`): the searches are not a fixed grid but what the
adaptive learners of lamcap.orchestrator.expansion ask for; each threshold row is told to them, the
searches they add get learners on the fly, and their decisions are stored in the batch of the
threshold rows that triggered them. The sweep ends when every search is done and every adaptive
learner has stopped.
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import ray

from lamcap.kernels.errors import InvalidInput
from lamcap.orchestrator.expansion import Expansion
from lamcap.orchestrator.gangs import GangRuns
from lamcap.orchestrator.probe import error_record
from lamcap.orchestrator.search import ThresholdLearner, curve_loads
from lamcap.orchestrator.shard_rules import ShardPlan
from lamcap.orchestrator.spec import Cell, Probe, SweepSpec
from lamcap.orchestrator.store import Store, threshold_key
from lamcap.orchestrator.workers import WorkerPool


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
    probes_reused: int = 0  # records already in the store that this run used (replayed or answered)
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


def theory_guess(cell: Cell) -> float:
    """The finite-size theory's critical p for this cell's solver kind (the learner's first guess)."""
    from lamcap.analysis.theory import predicted_critical_p

    return float(predicted_critical_p(cell.d, cell.rho_eff, cell.theory_kind))


def probe_cost(probe: Probe) -> float:
    """Relative run time, to dispatch the longest probes first: larger d and p first."""
    p, d = probe.p, probe.cell.d
    return d * d * p * (p if probe.cell.problem == "dp" else 1)


def alpha_of(p: int, d: int) -> float:
    """p ln p / d^2 (NaN for a p that is not a load)."""
    return p * math.log(p) / d**2 if p >= 1 else float("nan")


def threshold_row(learner: ThresholdLearner) -> dict:
    """A store row from a finished learner; an incomplete one (p_star = -1) says why in `reason`.

    alpha_star is the load of the midpoint of the p* candidates p_lo .. p_hi - 1 (= p_star when exact).
    """
    res, cell = learner.result(), learner.cell
    p_star = res.p_star if res.p_star is not None else -1
    if res.failure:
        reason = res.failure
    elif p_star == -1:
        reason = f"p={res.p_lo} (the search's cap p_max) is still SAT: the threshold lies above what may be probed"
    else:
        reason = ""
    return {
        "problem": cell.problem, "solver": cell.solver, "rho": float(cell.rho), "rho_eff": cell.rho_eff,
        "rank": cell.rank, "d": cell.d, "seed": learner.seed, "p_star": p_star,
        "alpha_star": alpha_of(res.p_mid, cell.d) if res.p_mid is not None else math.nan, "p_lo": res.p_lo,
        "p_hi": res.p_hi if res.p_hi is not None else -1, "n_probes": res.n_probes, "monotone": res.monotone,
        "complete": not reason, "reason": reason,
    }


class Scheduler:
    """Runs a sweep's searches (and curve probes) on a WorkerPool, writing through a Store."""

    def __init__(self, spec: SweepSpec, store: Store, pool: WorkerPool,
                 settings: SchedulerSettings = SchedulerSettings(),
                 guess: Callable[[Cell], float] = theory_guess, p_caps: dict[Cell, int] | None = None,
                 expansion: Expansion | None = None, shards: ShardPlan | None = None) -> None:
        """p_caps: per cell, the largest p a probe may have (what fits the device's memory).
        expansion: the adaptive axis's learners, not yet started (default: Expansion(spec) for an adaptive spec).
        shards: how many actors each probe runs on (lamcap.orchestrator.gangs; None: one each).
        InvalidInput when the store's thresholds replay to other decisions than it records."""
        self.spec, self.store, self.pool, self.settings = spec, store, pool, settings
        self.gangs = GangRuns(pool) if shards is None else GangRuns(pool, shards)
        self.guess, self.p_caps = guess, p_caps or {}
        self.stored = store.completed_probes()  # key -> record
        self.thresholds = store.completed_thresholds()  # threshold key -> row
        self.report = SweepReport(thresholds=[], n_actors=len(pool.actors))
        self.expansion = expansion if expansion is not None or not spec.adaptive else Expansion(spec)
        self.pending_decisions: list[dict] = []  # adaptive decisions for the next store batch
        if self.expansion is not None:
            searches = self.expansion.resume(self.thresholds, store.completed_decisions())
            self.pending_decisions = self.expansion.take_decisions()  # replayed, but not stored before a crash
        else:
            searches = [(cell, seed) for cell in spec.cells() for seed in range(spec.seeds)]
        self.learners = {(cell, seed): self._learner(cell, seed) for cell, seed in searches}
        self._stored_searches: dict[tuple, list[dict]] = {}  # (cell, seed) -> stored search records not yet told
        self.actor_infos: list[dict] = []  # actors that became ready, for the store
        self.ready: list[tuple[Probe, int]] = []  # (probe, attempt) waiting for an actor
        self.in_flight: dict[Any, tuple[int, Probe, int]] = {}  # ref -> (slot, probe, attempt)
        self.finished: set[tuple] = set()  # learner keys whose threshold row exists
        self.curved: set[Cell] = set()
        self.buffer: list[dict] = []
        self.pending_rows: list[dict] = []
        self.last_flush = time.monotonic()
        self._bar: Any = None  # the tqdm bar, inside run()
        self._writer: ThreadPoolExecutor | None = None  # the store's writer thread, inside run()
        self._writing: Future | None = None  # the batch it is writing

    def _learner(self, cell: Cell, seed: int) -> ThresholdLearner:
        return ThresholdLearner(cell, seed, self.guess(cell), _cap(self.spec.search.p_max, self.p_caps.get(cell)),
                                self.spec.search.resolution)

    # ---- resume ------------------------------------------------------------------------------
    def replay(self) -> None:
        """Tell the learners every stored search verdict (a stored error stops its seed's search, as it did
        when it happened); emit thresholds that are now known."""
        for key, record in sorted(self.stored.items(), key=lambda kv: kv[0][5]):
            if record["purpose"] == "search":
                self._stored_searches.setdefault((Cell(*key[:4]), key[4]), []).append(record)
        for lkey, learner in self.learners.items():
            self._replay_search(lkey, learner)
        for lkey, learner in list(self.learners.items()):
            self._check_learner(lkey, learner)

    def _replay_search(self, lkey: tuple, learner: ThresholdLearner) -> None:
        """Tell one learner its stored search verdicts, in order of p."""
        for record in self._stored_searches.pop(lkey, []):
            self.report.probes_reused += 1
            if record["status"] == "error":
                learner.fail(int(record["p"]), record.get("error", ""))
            else:
                learner.tell(int(record["p"]), bool(record["sat"]))

    def _expand(self, row: dict) -> None:
        """Tell the adaptive axis a threshold row; start the searches it asks for (their stored probes replayed)."""
        if self.expansion is None:
            return
        added = [(cell, seed) for cell, seed in self.expansion.tell(row) if (cell, seed) not in self.learners]
        self.pending_decisions += self.expansion.take_decisions()
        for lkey in added:
            self.learners[lkey] = self._learner(*lkey)
            self._replay_search(lkey, self.learners[lkey])
        if added and self._bar is not None:
            self._bar.total = len(self.learners)
        for lkey in added:  # a search whose probes were all stored before a crash is done at once
            self._check_learner(lkey, self.learners[lkey])

    # ---- asking ------------------------------------------------------------------------------
    def _active(self) -> list[tuple[tuple, ThresholdLearner]]:
        """Unfinished learners, largest (longest-running) cells first."""
        active = [(k, lrn) for k, lrn in self.learners.items()
                  if k not in self.finished and not lrn.done and not lrn.exhausted and not lrn.failed]
        return sorted(active, key=lambda kv: (-kv[0][0].d, kv[0][0].problem != "dp", kv[0]))

    def _quotas(self, n: int) -> dict[tuple, int]:
        """How many points to ask of each learner: one each for idle learners, then k-section extras."""
        active = self._active()
        cap = self.spec.search.max_parallel_per_learner
        quota = {k: 0 for k, _ in active}
        left = n
        for k, lrn in active:  # every learner with nothing in flight gets one point first
            if left and not lrn.pending:
                quota[k], left = 1, left - 1
        while left:
            grew = False
            for k, lrn in active:
                if left and len(lrn.pending) + quota[k] < self.gangs.parallel_cap(k[0], cap):
                    quota[k], left, grew = quota[k] + 1, left - 1, True
            if not grew:
                break
        return {k: q for k, q in quota.items() if q}

    def _ask(self, n: int) -> list[tuple[Probe, int]]:
        """Up to n new probes from the learners; proposals already stored are answered at once."""
        out: list[tuple[Probe, int]] = []
        answered = True
        while answered and len(out) < n:
            answered = False
            for lkey, q in self._quotas(n - len(out)).items():
                learner = self.learners[lkey]
                for p in learner.ask(q):
                    probe = Probe(lkey[0], lkey[1], p, "search")
                    record = self.stored.get(probe.key)
                    if record is None:
                        out.append((probe, 1))
                        continue
                    self.report.probes_reused += 1
                    if record["status"] == "error":
                        learner.fail(p, record.get("error", ""))
                    else:
                        learner.tell(p, bool(record["sat"]))
                    self._check_learner(lkey, learner)
                    answered = True
        return out

    # ---- dispatching -------------------------------------------------------------------------
    def _fill(self) -> None:
        """Give every idle ready actor a probe: queued ones (retries, curves) first, then new asks. A probe
        on k actors starts on k idle actors of one group, singles take the rest (gangs.take); asking goes on
        while actors are idle and the learners propose."""
        busy = {slot for slot, _, _ in self.in_flight.values()}
        idle = [s for s in self.pool.ready if s not in busy]
        while idle:
            self.ready.sort(key=lambda pa: probe_cost(pa[0]), reverse=True)
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
        """An actor finished starting: it joins the pool (its info is recorded in the store)."""
        info = self.pool.admit(ref)
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
        line = f"lamcap sweep: probe {what} failed (attempt {attempt} of {self.settings.max_attempts}): {message}" \
               + ("; running it again on a fresh actor" if again else "; giving up on this seed")
        self.report.failures.append(line)
        _say(line, self._bar)
        if again:
            self.report.retries += 1
            self.ready.append((probe, attempt + 1))
            return
        record = {**error_record(probe, self.pool.plan.device, message, attempt), "shards": self.gangs.width(probe)}
        self.report.probes_run += 1
        self.stored[probe.key] = record
        self.buffer.append(record)
        if probe.purpose == "search":
            lkey = (probe.cell, probe.seed)
            self.learners[lkey].fail(probe.p, message)
            self._check_learner(lkey, self.learners[lkey])

    def _finish(self, probe: Probe, record: dict) -> None:
        self.report.probes_run += 1
        self.stored[probe.key] = record
        self.buffer.append(record)
        if probe.purpose == "search":
            lkey = (probe.cell, probe.seed)
            self.learners[lkey].tell(probe.p, bool(record["sat"]))
            self._check_learner(lkey, self.learners[lkey])

    def _check_learner(self, lkey: tuple, learner: ThresholdLearner) -> None:
        """Emit a learner's threshold once it is done and nothing of it is in flight; then curves."""
        if lkey in self.finished or learner.pending or not (learner.done or learner.exhausted or learner.failed):
            return
        self.finished.add(lkey)
        row = threshold_row(learner)
        self.report.thresholds.append(row)
        if threshold_key(row) not in self.thresholds:
            self.thresholds[threshold_key(row)] = row
            self.pending_rows.append(row)
        self._expand(self.thresholds[threshold_key(row)])  # the stored row, if any: what resume replays from
        self._queue_curves(lkey[0])

    def _queue_curves(self, cell: Cell) -> None:
        """Once seeds 0 .. seeds-1 of `cell` have thresholds: probes at loads around their median alpha*.

        (An adaptive dimension axis may give a cell other seeds, or more: only these decide the loads, so
        that an interrupted sweep queues the same curve probes.)"""
        n = self.spec.search.curve_points
        seeds = range(self.spec.seeds)
        if n == 0 or cell in self.curved or any((cell, s) not in self.finished for s in seeds):
            return
        self.curved.add(cell)
        alphas = [r["alpha_star"] for r in self.report.thresholds
                  if (r["problem"], r["solver"], r["rho"], r["d"]) == (cell.problem, cell.solver, cell.rho, cell.d)
                  and r["seed"] < self.spec.seeds and r["p_star"] >= 2 and r.get("complete", True)]
        if not alphas:
            return
        for p in curve_loads(statistics.median(alphas), cell.d, n, self.spec.search.curve_span):
            for seed in seeds:
                probe = Probe(cell, seed, p, "curve")
                if probe.key in self.stored:
                    self.report.probes_reused += 1
                else:
                    self.ready.append((probe, 1))

    # ---- store -------------------------------------------------------------------------------
    def flush(self, wait: bool = False) -> None:
        """Hand buffered records, then the thresholds they complete, to the store's writer.

        Inside `run` one writer thread appends the batches in order (a threshold never precedes
        its probes) while the loop keeps the actors busy; at most one batch is being written, a
        write error is raised at the next flush, and `wait` blocks until every batch is stored.
        Outside `run` (no writer thread) the batch is written here.
        """
        if self.buffer or self.pending_rows or self.actor_infos or self.pending_decisions:
            self._await_write()  # before taking the buffer: if the last batch failed, this one stays buffered
            batch = self.buffer, self.pending_rows, self.actor_infos, self.pending_decisions
            self.buffer, self.pending_rows, self.actor_infos, self.pending_decisions = [], [], [], []
            if self._writer is None:
                self._write(*batch)
            else:
                self._writing = self._writer.submit(self._write, *batch)
        self.last_flush = time.monotonic()
        if wait:
            self._await_write()

    def _write(self, records: list[dict], rows: list[dict], actors: list[dict] = (),
               decisions: list[dict] = ()) -> None:
        """One batch, in this order: a decision is never stored before the thresholds it was taken on."""
        if records:
            self.store.append_probes(records)
        if rows:
            self.store.append_thresholds(rows)
        if decisions:
            self.store.append_decisions(decisions, self.expansion.cost_model)
        if actors:
            self.store.record_actors(actors)

    def _await_write(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def _maybe_flush(self) -> None:
        due = time.monotonic() - self.last_flush >= self.settings.flush_seconds
        if len(self.buffer) >= self.settings.flush_every or (due and (self.buffer or self.pending_rows
                                                                           or self.actor_infos
                                                                           or self.pending_decisions)):
            self.flush()

    # ---- the loop ----------------------------------------------------------------------------
    def _progress(self) -> dict:
        """What the progress bar shows: thresholds found (of all seeds), cells with every seed done, probes."""
        per_cell = Counter(cell for cell, _seed in self.finished)
        seeds = Counter(cell for cell, _seed in self.learners)
        return {"thresholds": len(self.finished), "cells": len(seeds),
                "cells_done": sum(1 for cell, n in per_cell.items() if n == seeds[cell]),
                "probes_done": self.report.probes_run, "in_flight": len(self.in_flight)}

    def _work_left(self) -> bool:
        return bool(self.ready or self._active())

    def run(self, heartbeat: Callable[[], None] | None = None) -> SweepReport:
        """Search every (cell, seed) to its threshold; Ctrl-C stops dispatching and keeps what finished.

        heartbeat: called every loop turn (the driver renews its store lock there).
        """
        self.replay()
        self._bar = _progress_bar(len(self.learners), self.settings.progress)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lamcap-store")
        start = starved_since = time.perf_counter()
        try:
            while True:
                self._fill()
                if not self.in_flight and not (self.pool.placing and self._work_left()):
                    break
                if self.in_flight or self.pool.ready:
                    starved_since = time.perf_counter()
                elif time.perf_counter() - starved_since > self.settings.placement_timeout:
                    raise InvalidInput(f"no actor has been ready for {self.settings.placement_timeout:.0f} s "
                                       "while probes wait (the cluster cannot place any); the store keeps what "
                                       "finished: resume when the cluster has room")
                self._maybe_flush()  # after _fill: the actors run while the batch is written
                if heartbeat is not None:
                    heartbeat()
                waiting = [*self.in_flight, *self.pool.placing]
                ready, _ = ray.wait(waiting, num_returns=1, timeout=self.settings.wait_timeout)
                for ref in ready:
                    if ref in self.pool.placing:
                        self._admit(ref)
                    else:
                        self._collect(ref)
                _update_bar(self._bar, self._progress())
        except KeyboardInterrupt:
            self.report.interrupted = True
        finally:
            self.report.wall_seconds = time.perf_counter() - start
            self.report.decisions = self.expansion.decisions if self.expansion is not None else []
            try:
                self.flush(wait=True)
            finally:
                self._writer.shutdown(wait=True)  # also a batch whose wait a Ctrl-C cut short
                self._writer = None
            if self._bar is not None:
                _update_bar(self._bar, self._progress(), force=True)
                self._bar.close()
        return self.report


def _cap(p_max: int | None, cap: int | None) -> int | None:
    """The tighter of the spec's p_max and a memory cap (None: no limit)."""
    caps = [c for c in (p_max, cap) if c is not None]
    return max(3, min(caps)) if caps else None


def _say(line: str, bar: Any) -> None:
    """A line on stderr now, above the progress bar if there is one."""
    if bar is not None:
        bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="thresholds", unit="seed", dynamic_ncols=True)


def _update_bar(bar: Any, progress: dict, force: bool = False) -> None:
    """Move the bar to the thresholds found; redraw the counts at most every 0.5 s."""
    if bar is None:
        return
    bar.n = progress["thresholds"]
    now = time.monotonic()
    if force or now - getattr(bar, "_lamcap_drawn", 0.0) >= 0.5:
        bar.set_postfix_str(f"cells done {progress['cells_done']}/{progress['cells']}, probes done "
                            f"{progress['probes_done']}, in flight {progress['in_flight']}", refresh=True)
        bar._lamcap_drawn = now

"""The dispatch loop: the only place with concurrency.

One `ThresholdLearner` per (cell, seed). A plain loop keeps one call in flight per actor,
waits with `ray.wait(..., num_returns=1, timeout=...)`, and `ray.get`s each ready ref inside
try/except: a dead actor is replaced and its probe requeued (up to `max_attempts`, then an
'error' record). Records and thresholds are buffered and flushed to the store in batches, by
one writer thread (batches in order, one at a time), so that the actors never wait on the disk.
Resuming: learners are told every search probe the store already holds, and a proposal whose
record is stored is answered from it, never run again.
"""
from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import ray

from lamcap.orchestrator.probe import error_record
from lamcap.orchestrator.search import ThresholdLearner, curve_loads
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


@dataclass
class SweepReport:
    """What one scheduler run did."""

    thresholds: list[dict]  # every threshold row of the sweep (stored earlier or now)
    probes_run: int = 0  # probes computed in this run
    probes_reused: int = 0  # proposals answered from records already in the store
    retries: int = 0  # probes requeued after their actor died
    busy_seconds: float = 0.0  # summed over actors, measured inside them
    wall_seconds: float = 0.0  # of the dispatch loop, actors already warm
    n_actors: int = 0
    peak_in_flight: int = 0  # most probes running at once
    interrupted: bool = False
    per_actor: Counter = field(default_factory=Counter)  # probes finished per actor slot

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
    """A store row from a finished learner (p_star = p_hi = -1 when p_max was SAT: no threshold).

    alpha_star is the load of the midpoint of the p* candidates p_lo .. p_hi - 1 (= p_star when exact).
    """
    res, cell = learner.result(), learner.cell
    p_star = res.p_star if res.p_star is not None else -1
    return {
        "problem": cell.problem, "solver": cell.solver, "rho": float(cell.rho), "rho_eff": cell.rho_eff,
        "rank": cell.rank, "d": cell.d, "seed": learner.seed, "p_star": p_star,
        "alpha_star": alpha_of(res.p_mid, cell.d) if res.p_mid is not None else math.nan, "p_lo": res.p_lo,
        "p_hi": res.p_hi if res.p_hi is not None else -1, "n_probes": res.n_probes, "monotone": res.monotone,
    }


class Scheduler:
    """Runs a sweep's searches (and curve probes) on a WorkerPool, writing through a Store."""

    def __init__(self, spec: SweepSpec, store: Store, pool: WorkerPool,
                 settings: SchedulerSettings = SchedulerSettings(),
                 guess: Callable[[Cell], float] = theory_guess) -> None:
        self.spec, self.store, self.pool, self.settings = spec, store, pool, settings
        self.learners = {(cell, seed): ThresholdLearner(cell, seed, guess(cell), spec.search.p_max,
                                                        spec.search.resolution)
                         for cell in spec.cells() for seed in range(spec.seeds)}
        self.stored = store.completed_probes()  # key -> record
        self.thresholds = store.completed_thresholds()  # threshold key -> row
        self.report = SweepReport(thresholds=[], n_actors=len(pool.actors))
        self.ready: list[tuple[Probe, int]] = []  # (probe, attempt) waiting for an actor
        self.in_flight: dict[Any, tuple[int, Probe, int]] = {}  # ref -> (slot, probe, attempt)
        self.finished: set[tuple] = set()  # learner keys whose threshold row exists
        self.curved: set[Cell] = set()
        self.buffer: list[dict] = []
        self.pending_rows: list[dict] = []
        self.last_flush = time.monotonic()
        self._writer: ThreadPoolExecutor | None = None  # the store's writer thread, inside run()
        self._writing: Future | None = None  # the batch it is writing

    # ---- resume ------------------------------------------------------------------------------
    def replay(self) -> None:
        """Tell the learners every stored search verdict; emit thresholds that are now known."""
        for key, record in sorted(self.stored.items(), key=lambda kv: kv[0][5]):
            learner = self.learners.get(((Cell(*key[:4])), key[4]))
            if learner is not None and record["purpose"] == "search":
                learner.tell(int(record["p"]), bool(record["sat"]))
        for lkey, learner in self.learners.items():
            self._check_learner(lkey, learner)

    # ---- asking ------------------------------------------------------------------------------
    def _active(self) -> list[tuple[tuple, ThresholdLearner]]:
        """Unfinished learners, largest (longest-running) cells first."""
        active = [(k, lrn) for k, lrn in self.learners.items()
                  if k not in self.finished and not lrn.done and not lrn.exhausted]
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
                if left and len(lrn.pending) + quota[k] < cap:
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
                    learner.tell(p, bool(record["sat"]))
                    self._check_learner(lkey, learner)
                    answered = True
        return out

    # ---- dispatching -------------------------------------------------------------------------
    def _fill(self) -> None:
        """Give every idle actor a probe: queued ones (retries, curves) first, then new asks."""
        busy = {slot for slot, _, _ in self.in_flight.values()}
        idle = [s for s in range(len(self.pool.actors)) if s not in busy]
        if not idle:
            return
        if len(self.ready) < len(idle):
            self.ready += self._ask(len(idle) - len(self.ready))
        self.ready.sort(key=lambda pa: probe_cost(pa[0]), reverse=True)
        for slot in idle:
            if not self.ready:
                break
            probe, attempt = self.ready.pop(0)
            ref = self.pool.submit(slot, probe, self.spec.solver_settings)
            self.in_flight[ref] = (slot, probe, attempt)
        self.report.peak_in_flight = max(self.report.peak_in_flight, len(self.in_flight))

    def _collect(self, ref: Any) -> None:
        """Take one finished ref: a record, a dead actor (retry), or an error."""
        slot, probe, attempt = self.in_flight.pop(ref)
        try:
            record, busy = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            self.pool.replace(slot)
            if attempt < self.settings.max_attempts:
                self.report.retries += 1
                self.ready.append((probe, attempt + 1))
                return
            record, busy = error_record(probe, self.pool.plan.device,
                                        f"actor died {attempt} times: {type(exc).__name__}", attempt), 0.0
        except ray.exceptions.RayTaskError as exc:  # run_probe catches; a fake runner may not
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            message = f"{type(cause).__name__}: {cause}".splitlines()[0]
            record, busy = error_record(probe, self.pool.plan.device, message, attempt), 0.0
        record["attempt"] = attempt
        self.report.busy_seconds += busy
        self.report.per_actor[slot] += 1
        self._finish(probe, record)

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
        if lkey in self.finished or learner.pending or not (learner.done or learner.exhausted):
            return
        self.finished.add(lkey)
        row = threshold_row(learner)
        self.report.thresholds.append(row)
        if threshold_key(row) not in self.thresholds:
            self.thresholds[threshold_key(row)] = row
            self.pending_rows.append(row)
        self._queue_curves(lkey[0])

    def _queue_curves(self, cell: Cell) -> None:
        """Once every seed of `cell` has a threshold: probes at loads around its median alpha*."""
        n = self.spec.search.curve_points
        seeds = range(self.spec.seeds)
        if n == 0 or cell in self.curved or any((cell, s) not in self.finished for s in seeds):
            return
        self.curved.add(cell)
        alphas = [r["alpha_star"] for r in self.report.thresholds
                  if (r["problem"], r["solver"], r["rho"], r["d"]) == (cell.problem, cell.solver, cell.rho, cell.d)
                  and r["p_star"] >= 2]
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
        if self.buffer or self.pending_rows:
            self._await_write()  # before taking the buffer: if the last batch failed, this one stays buffered
            records, rows = self.buffer, self.pending_rows
            self.buffer, self.pending_rows = [], []
            if self._writer is None:
                self._write(records, rows)
            else:
                self._writing = self._writer.submit(self._write, records, rows)
        self.last_flush = time.monotonic()
        if wait:
            self._await_write()

    def _write(self, records: list[dict], rows: list[dict]) -> None:
        if records:
            self.store.append_probes(records)
        if rows:
            self.store.append_thresholds(rows)

    def _await_write(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def _maybe_flush(self) -> None:
        due = time.monotonic() - self.last_flush >= self.settings.flush_seconds
        if len(self.buffer) >= self.settings.flush_every or (due and (self.buffer or self.pending_rows)):
            self.flush()

    # ---- the loop ----------------------------------------------------------------------------
    def _progress(self) -> dict:
        """What the progress bar shows: thresholds found (of all seeds), cells with every seed done, probes."""
        per_cell = Counter(cell for cell, _seed in self.finished)
        cells = {cell for cell, _seed in self.learners}
        return {"thresholds": len(self.finished), "cells": len(cells),
                "cells_done": sum(1 for n in per_cell.values() if n == self.spec.seeds),
                "probes_done": self.report.probes_run, "in_flight": len(self.in_flight)}

    def run(self) -> SweepReport:
        """Search every (cell, seed) to its threshold; Ctrl-C stops dispatching and keeps what finished."""
        self.replay()
        bar = _progress_bar(len(self.learners), self.settings.progress)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lamcap-store")
        start = time.perf_counter()
        try:
            while True:
                self._fill()
                if not self.in_flight:
                    break
                self._maybe_flush()  # after _fill: the actors run while the batch is written
                ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=self.settings.wait_timeout)
                for ref in ready:
                    self._collect(ref)
                _update_bar(bar, self._progress())
        except KeyboardInterrupt:
            self.report.interrupted = True
        finally:
            self.report.wall_seconds = time.perf_counter() - start
            try:
                self.flush(wait=True)
            finally:
                self._writer.shutdown(wait=True)  # also a batch whose wait a Ctrl-C cut short
                self._writer = None
            if bar is not None:
                _update_bar(bar, self._progress(), force=True)
                bar.close()
        return self.report


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

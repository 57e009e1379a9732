"""Buffered store writes: records, thresholds, adaptive decisions and actor infos handed to the one writer in
batches, by one writer thread, so that the actors never wait on the disk."""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

BACKLOG = 16  # batches' worth of records the loop buffers while the writer is busy, before it waits for it


@dataclass
class Batch:
    records: list[dict] = field(default_factory=list)
    thresholds: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)  # (decision dict, its table row) pairs' dicts
    decision_rows: list[dict] = field(default_factory=list)
    actors: list[dict] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.records or self.thresholds or self.decisions or self.actors)


class BatchWriter:
    """Collects what the scheduler produces and writes it through a StoreWriter in order: probes, then the
    thresholds they complete, then the decisions taken on those thresholds, then actor infos.

    Inside `started()` one thread appends the batches one at a time (a write error is raised at the next
    flush); outside it a flush writes in the caller's thread. `flush_every` records or `flush_seconds`
    seconds, whichever comes first, make a batch due.
    """

    def __init__(self, store: Any, flush_every: int, flush_seconds: float, cost_model: str = "") -> None:
        self.store, self.flush_every, self.flush_seconds = store, flush_every, flush_seconds
        self.cost_model = cost_model
        self.pending = Batch()
        self.last_flush = time.monotonic()
        self._thread: ThreadPoolExecutor | None = None
        self._writing: Future | None = None

    def start(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lamcap-store")

    def stop(self) -> None:
        """Write what is buffered and wait for it; the thread ends even if a write raised."""
        try:
            self.flush(wait=True)
        finally:
            if self._thread is not None:
                self._thread.shutdown(wait=True)  # also a batch whose wait a Ctrl-C cut short
                self._thread = None

    def due(self) -> bool:
        late = time.monotonic() - self.last_flush >= self.flush_seconds
        return len(self.pending.records) >= self.flush_every or (late and bool(self.pending))

    def flush(self, wait: bool = False) -> None:
        """Hand the buffered batch to the writer (after the previous one: if that failed, this one stays
        buffered and the error is raised); `wait` blocks until every batch is stored. While the writer is still
        busy with the previous batch the loop does not wait for it: the batch keeps growing (up to
        BACKLOG x flush_every records) and goes at the next flush."""
        busy = self._writing is not None and not self._writing.done()
        if busy and not wait and len(self.pending.records) < BACKLOG * self.flush_every:
            return
        if self.pending:
            self._await()
            batch, self.pending = self.pending, Batch()
            if self._thread is None:
                self._write(batch)
            else:
                self._writing = self._thread.submit(self._write, batch)
        self.last_flush = time.monotonic()
        if wait:
            self._await()

    def _write(self, batch: Batch) -> None:
        if batch.records:
            self.store.append_probes(batch.records)
        if batch.thresholds:
            self.store.append_thresholds(batch.thresholds)
        if batch.decisions:
            self.store.append_decisions(batch.decisions, batch.decision_rows, self.cost_model)
        if batch.actors:
            self.store.record_actors(batch.actors)

    def _await(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

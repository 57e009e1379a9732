"""The sweep's Zarr store (docs/STORE.md): the one writer, append-only, committed in batches.

Crash safety: every batch is appended array by array (zarr's LocalStore writes each chunk and
metadata file atomically: temp file + rename), and only then is the group attribute
`n_committed` raised in one metadata write. Readers and a reopening writer take only the first
`n_committed` rows, so a process killed mid-batch leaves every earlier batch intact and the
partial one invisible (reopening truncates it away).

One writer: the sweep driver holds the store's lock (orchestrator.lock) for its whole run, and
before every append checks that the store still holds exactly the rows it committed, so that a
second writer is stopped before anything is overwritten. Every chunk is written, even one equal
to the fill value, so a chunk missing under committed rows is damage (analysis.load.read_committed
refuses it), never data. Disk and permission errors end in StoreError naming the path, the
committed rows and how to resume.

Three tables: `probes` (one row per probe), `thresholds` (one per (cell, seed) search) and `decisions` (one
per decision of an adaptive learner, its full dict in the group attribute `log`; empty for a fixed grid).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamcap.kernels.errors import InvalidInput, StoreError

SCHEMA = 2
CHUNK_ROWS = 4096  # rows per chunk along probe / threshold; a batch rewrites at most a couple of chunks
CATEGORIES = {
    "problem": ("op", "dp"),
    "solver": ("adam", "hebbian", "lp"),
    "status": ("converged", "max_steps", "diverged", "closed_form", "feasible", "infeasible", "error"),
    "device": ("cpu", "cuda"),
    "purpose": ("search", "curve"),
    "generator": ("none", "splitmix64-erfcinv-v1"),  # lamcap.kernels.outcome.GENERATORS
    "mode": ("none", "materialize", "regenerate"),  # lamcap.kernels.outcome.PLAN_MODES
    "learner": ("rank", "dimension"),
    "basis": ("initial", "width", "curvature", "width_per_device_second", "stop"),
}
# Provenance fields a record may lack when no instance stands behind it (a probe that raised, a test runner).
RECORD_DEFAULTS = {"generator": "none", "mode": "none", "chunk_rows": 0, "chunk_cols": 0, "shards": 1}
CELL_FIELDS = {"problem": "i1", "solver": "i1", "rho": "f8", "rho_eff": "f8", "rank": "i8", "d": "i8"}
PROBE_FIELDS = {
    **CELL_FIELDS, "seed": "i8", "p": "i8", "alpha": "f8", "purpose": "i1", "attempt": "i8",
    "sat": "?", "status": "i1", "accuracy": "f8", "n_violations": "i8", "min_margin": "f8",
    "final_loss": "f8", "steps": "i8", "wall_seconds": "f8", "peak_bytes": "i8", "device": "i1",
    "target_mean": "f8", "target_var": "f8", "offtarget_mean": "f8", "offtarget_var": "f8",
    "generator": "i1", "mode": "i1", "chunk_rows": "i8", "chunk_cols": "i8", "shards": "i8",
    "input_target_score": "f8", "cpu_seconds": "f8", "lp_margin": "f8",
}
# Probe fields a record may lack (records of failed probes, fake runners): stored as this value.
OPTIONAL_PROBE_FIELDS = {"input_target_score": float("nan"), "cpu_seconds": float("nan"),
                         "lp_margin": float("nan")}
HIST_FIELDS = ("target_hist", "offtarget_hist", "input_competitor_hist")
THRESHOLD_FIELDS = {
    **CELL_FIELDS, "seed": "i8", "p_star": "i8", "alpha_star": "f8", "p_lo": "i8", "p_hi": "i8",
    "n_probes": "i8", "monotone": "?", "complete": "?",
}
DECISION_FIELDS = {  # one row per decision of an adaptive learner (lamcap.orchestrator.adaptive.decision_row)
    "learner": "i1", "problem": "i1", "solver": "i1", "d": "i8", "rho": "f8", "round": "i8", "basis": "i1",
    "n_chosen": "i8", "n_evidence": "i8", "gap_score": "f8", "alpha_inf": "f8", "width": "f8",
    "predicted_width": "f8", "target": "f8", "spent_seconds": "f8", "added_seconds": "f8", "budget_seconds": "f8",
}
DECISION_DESCRIPTIONS = {  # where a decisions column means something else than the probe / threshold column
    "d": ("1", "the rank learner's dimension (-1 for the dimension learner)"),
    "rho": ("1", "the dimension learner's requested rank fraction (NaN for the rank learner)"),
}
DESCRIPTIONS = {
    "problem": ("1", "op: shared outputs; dp: private competitors"),
    "solver": ("1", "how W was found"),
    "rho": ("1", "requested rank fraction"),
    "rho_eff": ("1", "rank / d, the rank fraction used"),
    "rank": ("1", "rank r of W = max(1, round(rho d))"),
    "d": ("1", "dimension of inputs and outputs"),
    "seed": ("1", "disorder seed"),
    "p": ("1", "number of associations"),
    "alpha": ("p ln p / d^2", "load"),
    "purpose": ("1", "search: threshold bisection probe; curve: extra load for accuracy curves"),
    "attempt": ("1", "1 + retries after the probe's actor died"),
    "sat": ("1", "every association stored (float64 verification)"),
    "status": ("1", "outcome status (lamcap.kernels.outcome.STATUSES)"),
    "accuracy": ("1", "fraction of associations stored"),
    "n_violations": ("1", "associations not stored"),
    "min_margin": ("sigma_off", "min over mu of target minus best competitor score, normalised"),
    "final_loss": ("nats", "mean cross-entropy of the returned W"),
    "steps": ("1", "optimiser steps (adam), LP rounds (lp), 0 (hebbian)"),
    "wall_seconds": ("s", "wall time of the solve on its actor"),
    "cpu_seconds": ("s", "CPU time of the actor's process over the solve (a CPU device: what a free core "
                         "takes; wall_seconds also counts waits for a busy machine's cores)"),
    "peak_bytes": ("bytes", "peak memory of the solve on its device"),
    "device": ("1", "device type the instance was generated and solved on"),
    "target_mean": ("sigma_off", "mean normalised target score"),
    "target_var": ("sigma_off^2", "variance of normalised target scores"),
    "offtarget_mean": ("sigma_off", "mean normalised competitor score"),
    "offtarget_var": ("sigma_off^2", "variance of normalised competitor scores"),
    "generator": ("1", "what generated the instance (lamcap.kernels.gaussian.GENERATOR); none: no instance"),
    "mode": ("1", "competitor mode of the fused loss (materialize or regenerate); none: hebbian, lp, error"),
    "chunk_rows": ("1", "inputs per chunk of the fused loss; 0: no fused loss"),
    "chunk_cols": ("1", "competitors per chunk of the fused loss; 0: no fused loss"),
    "lp_margin": ("sigma_off", "lp only (NaN otherwise): optimal margin t* of max t s.t. s[mu,mu] - s[mu,nu] >= t "
                  "for all nu != mu, -1 <= W_ij <= 1, divided by sigma_off of that optimal W; 0 when UNSAT"),
    "shards": ("1", "devices the probe's inputs were split over (a gang of actors); 1: one device"),
    "target_hist": ("count", "normalised target scores per score bin"),
    "offtarget_hist": ("count", "normalised competitor scores per score bin"),
    "singular_values": ("1", "singular values of W, descending, NaN-padded to the sweep's largest d"),
    "input_target_score": ("sigma_off", "normalised target score of input mu = 0 (in every p of a seed: "
                                        "disorder nests)"),
    "input_competitor_hist": ("count", "input mu = 0's p - 1 normalised competitor scores per score bin"),
    "p_star": ("1", "largest SAT p whose p + 1 is UNSAT; with resolution > 0 and a wider bracket, "
                    "floor((p_lo + p_hi - 1) / 2)"),
    "alpha_star": ("p ln p / d^2", "load of the midpoint (p_lo + p_hi - 1) / 2 of the p* candidates "
                                   "p_lo .. p_hi - 1 (= p_star ln p_star / d^2 when p_hi = p_lo + 1)"),
    "p_lo": ("1", "final bracket: SAT at p_lo"),
    "p_hi": ("1", "final bracket: UNSAT at p_hi"),
    "n_probes": ("1", "search probes spent on this (cell, seed)"),
    "monotone": ("1", "every SAT probe of this seed lies below every UNSAT probe"),
    "complete": ("1", "the search reached a threshold; if false, p_star is -1 and the group attribute "
                      "'reasons' says why (a probe that kept failing, or p_max still SAT)"),
    "learner": ("1", "rank: a RankLearner per (problem, solver, d); dimension: a DimensionLearner per "
                     "(problem, solver, rho)"),
    "round": ("1", "the learner's decision number, from 0 (its first round)"),
    "basis": ("1", "initial: first round; width / curvature: the rank gap chosen by width or by the "
                   "interpolant's largest miss; width_per_device_second: the dimension learner's greedy plan; "
                   "stop: the learner stopped (the log's 'reason' says why)"),
    "n_chosen": ("1", "what the decision added: ranks (rank learner: one cell each, with every seed) or seeds "
                      "(dimension learner: one threshold search each)"),
    "n_evidence": ("1", "results it was taken on: cells with a median alpha* (rank) or seeds with a threshold "
                        "(dimension)"),
    "gap_score": ("p ln p / d^2", "rank: the chosen gap's score, the interpolant's largest possible miss "
                                  "(basis curvature) or the gap's width in rho (basis width); NaN otherwise"),
    "alpha_inf": ("p ln p / d^2", "dimension: the fit's alpha_inf from the thresholds told so far"),
    "width": ("p ln p / d^2", "dimension: width (hi - lo) of the alpha_inf interval so far"),
    "predicted_width": ("p ln p / d^2", "dimension: the width predicted once the chosen seeds are in"),
    "target": ("p ln p / d^2", "dimension: the rule's target width"),
    "spent_seconds": ("device-s", "dimension: cost-model device-seconds of every earlier batch (all told)"),
    "added_seconds": ("device-s", "dimension: cost-model device-seconds of the batches this decision adds"),
    "budget_seconds": ("device-s", "dimension: the rule's budget"),
}


def hist_edges() -> np.ndarray:
    """The score-histogram bin edges (lamcap.kernels.verify.HIST_EDGES; imported lazily, it pulls torch)."""
    from lamcap.kernels.verify import HIST_EDGES

    return np.asarray(HIST_EDGES, dtype=np.float64)


def probe_key(record: dict) -> tuple:
    """The identity of a probe record; equals lamcap.orchestrator.spec.Probe.key."""
    return (record["problem"], record["solver"], float(record["rho"]), int(record["d"]),
            int(record["seed"]), int(record["p"]), record["purpose"])


def threshold_key(row: dict) -> tuple:
    """The identity of a threshold row: (problem, solver, rho, d, seed)."""
    return (row["problem"], row["solver"], float(row["rho"]), int(row["d"]), int(row["seed"]))


def _attrs(name: str, descriptions: dict | None = None) -> dict:
    units, description = (descriptions or {}).get(name, DESCRIPTIONS[name])
    attrs: dict[str, Any] = {"units": units, "description": description}
    if name in CATEGORIES:
        attrs["flag_values"] = list(range(len(CATEGORIES[name])))
        attrs["flag_meanings"] = " ".join(CATEGORIES[name])
    return attrs


def _fill(dtype: str) -> Any:
    return {"f8": np.nan, "?": False}.get(dtype, 0)


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("lamcap", "torch", "ray", "zarr", "xarray", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _column(records: list[dict], name: str, dtype: str) -> np.ndarray:
    if name in RECORD_DEFAULTS:
        records = [r if name in r else {**r, name: RECORD_DEFAULTS[name]} for r in records]
    if name in CATEGORIES:
        cats = CATEGORIES[name]
        bad = [r[name] for r in records if r[name] not in cats]
        if bad:
            raise ValueError(f"{name}={bad[0]!r} is not one of {cats}")
        return np.array([cats.index(r[name]) for r in records], dtype="i1")
    values = [r[name] for r in records]
    if dtype == "f8":
        return np.array([np.nan if v is None else float(v) for v in values], dtype="f8")
    return np.array(values, dtype=dtype)


@dataclass
class _Table:
    """One append-only group: its arrays share the leading dimension `dim`."""

    group: Any  # zarr.Group
    dim: str

    @property
    def n_committed(self) -> int:
        """The committed rows as this writer last wrote or read them."""
        return int(self.group.attrs.get("n_committed", 0))

    def n_committed_on_disk(self) -> int:
        """The committed rows as the store holds them now (another writer may have changed them)."""
        import zarr

        fresh = zarr.open_group(self.group.store, path=self.group.path, mode="r")
        return int(fresh.attrs.get("n_committed", 0))

    def check_unchanged(self, store_path: str) -> None:
        """StoreError when the store no longer holds exactly the rows this writer committed."""
        believed, now = self.n_committed, self.n_committed_on_disk()
        if believed != now:
            raise StoreError(f"store {store_path!r} changed under this sweep: its {self.group.path} group holds "
                             f"{now} committed rows where this driver committed {believed}; another process "
                             "wrote to it. Nothing was overwritten; check who writes the store, then resume")

    def truncate(self) -> None:
        """Cut every array back to the committed rows (drops a batch a crash left half-written)."""
        n = self.n_committed
        for _, arr in self.group.arrays():
            if arr.shape[0] != n:
                arr.resize((n, *arr.shape[1:]))

    def append(self, columns: dict[str, np.ndarray], extra_attrs: dict | None = None) -> None:
        """Append rows in three steps; a crash before the last leaves the committed rows as they were.

        1. chunk data of the new rows, written through in-memory arrays of the grown shape (the
           long step; on disk every array keeps its old, equal length),
        2. every array's grown shape (one small metadata file each, back to back),
        3. the group's `n_committed` (and `extra_attrs`) in one metadata write.
        """
        import zarr

        with zarr.config.set({"array.write_empty_chunks": True}):  # see the module docstring
            self._append(columns, extra_attrs)

    def _append(self, columns: dict[str, np.ndarray], extra_attrs: dict | None) -> None:
        n = self.n_committed
        k = len(next(iter(columns.values())))
        grown = {}
        for name, values in columns.items():
            arr = self.group[name]
            width = max(arr.shape[1], values.shape[1]) if values.ndim == 2 else None
            shape = (n + k,) if width is None else (n + k, width)
            grown[name] = shape
            view = _view(arr, shape)
            if view is None:  # zarr's internals moved: grow first (rows past n_committed hold fill values a moment)
                arr.resize(shape)
                view = arr
            view[n : n + k] = _pad(values, shape)
        for name, shape in grown.items():
            self.group[name].resize(shape)  # growing: no chunk lies outside
        self.group.attrs.update({**(extra_attrs or {}), "n_committed": n + k})


def _view(arr: Any, shape: tuple[int, ...]) -> Any:
    """The array `arr` with `shape`, in memory only (its metadata is not saved), or None.

    Writing through it puts the new rows' chunks on disk before any reader can see the rows. It
    relies on zarr 3.1's AsyncArray internals; None where those are not as expected.
    """
    try:
        import zarr
        from zarr.core.array import AsyncArray

        inner = arr._async_array
        grown = dataclasses.replace(inner.metadata, shape=shape)
        return zarr.Array(AsyncArray(metadata=grown, store_path=inner.store_path, config=inner.config))
    except (ImportError, AttributeError, TypeError):
        return None


def _pad(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """2-D rows padded on the right to the array's width (NaN or 0)."""
    if values.ndim == 1 or values.shape[1] == shape[1]:
        return values
    out = np.full((values.shape[0], shape[1]), _fill(values.dtype.str[1:]), dtype=values.dtype)
    out[:, : values.shape[1]] = values
    return out


class Store:
    """Append-only writer of one sweep's store; open with `Store.open_or_create`."""

    def __init__(self, path: str, root: Any, d_max: int) -> None:
        self.path = path
        self._root = root
        self._d_max = d_max
        self._probes = _Table(root["probes"], "probe")
        self._thresholds = _Table(root["thresholds"], "threshold")
        self._decisions = _Table(root["decisions"], "decision")
        self._probe_keys: set[tuple] | None = None  # committed keys, loaded on first append
        self._threshold_keys: set[tuple] | None = None
        self._decision_log: list[dict] | None = None  # the committed decision dicts, loaded on first use

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, spec: Any) -> Store:
        """Open the store at `path` for `spec` (a SweepSpec), creating it if absent.

        An existing store whose spec is incompatible raises InvalidInput naming every
        difference, before anything is written.
        """
        path = os.fspath(path)
        with _disk_errors(path, None):
            if os.path.exists(path):
                finish_widening(os.path.join(path, "probes"), "singular_values")
                root = _open_existing(path, spec)
                if "decisions" not in root:  # written before adaptive axes: the group is added, nothing else changes
                    _create_decisions(root)
            else:
                root = _create(path, spec)
            _add_missing_columns(root["probes"])
            store = cls(path, root, int(spec.max_d))
            for table in (store._probes, store._thresholds, store._decisions):
                table.truncate()
        return store

    def _guarded_append(self, table: _Table, columns: dict, extra: dict | None = None) -> None:
        """Append to `table` after checking nobody else wrote; disk errors as StoreError."""
        with _disk_errors(self.path, self):
            table.check_unchanged(self.path)
            table.append(columns, extra)

    def committed_counts(self) -> tuple[int, int]:
        """(probe rows, threshold rows) committed, as this writer knows them."""
        return self._probes.n_committed, self._thresholds.n_committed

    def append_probes(self, records: list[dict]) -> int:
        """Append finished probe records (probe fields + Outcome.as_record() + `error`); skip stored keys."""
        if self._probe_keys is None:
            self._probe_keys = set(self.completed_probes())
        records = [{**OPTIONAL_PROBE_FIELDS, **r} for r in _new_only(records, probe_key, self._probe_keys)]
        if not records:
            return 0
        columns = {name: _column(records, name, dtype) for name, dtype in PROBE_FIELDS.items()}
        n_bins = len(hist_edges()) - 1
        for name in HIST_FIELDS:
            columns[name] = _hist_column(records, name, n_bins)
        columns["singular_values"] = _sv_column(records, self._d_max)
        errors = {json.dumps(probe_key(r)): r["error"] for r in records if r.get("error")}
        extra = {}
        if errors:
            extra["errors"] = json.dumps({**json.loads(self._probes.group.attrs.get("errors", "{}")), **errors})
        self._guarded_append(self._probes, columns, extra)
        self._probe_keys.update(probe_key(r) for r in records)
        return len(records)

    def append_thresholds(self, rows: list[dict]) -> int:
        """Append per-(cell, seed) threshold rows (those already stored are skipped); return the count written."""
        if self._threshold_keys is None:
            self._threshold_keys = set(self.completed_thresholds())
        rows = _new_only(rows, threshold_key, self._threshold_keys)
        if rows:
            reasons = {json.dumps(threshold_key(r)): r["reason"] for r in rows if r.get("reason")}
            extra = {}
            if reasons:
                extra["reasons"] = json.dumps({**json.loads(self._thresholds.group.attrs.get("reasons", "{}")),
                                               **reasons})
            self._guarded_append(self._thresholds,
                                 {name: _column(rows, name, dtype) for name, dtype in THRESHOLD_FIELDS.items()}, extra)
            self._threshold_keys.update(threshold_key(r) for r in rows)
        return len(rows)

    def append_decisions(self, decisions: list[dict], cost_model: str = "") -> int:
        """Append adaptive learners' decisions (their full dicts; lamcap.orchestrator.adaptive), in the order made:
        one row each in the table, the dicts themselves in the group attribute `log` (a JSON list, row order);
        `cost_model` names the dimension learner's cost callable (group attribute `cost_model`)."""
        from lamcap.orchestrator.adaptive import decision_row

        if not decisions:
            return 0
        log = self.completed_decisions() + [json.loads(json.dumps(d)) for d in decisions]
        rows = [decision_row(d) for d in decisions]
        self._guarded_append(self._decisions, {name: _column(rows, name, dtype)
                                               for name, dtype in DECISION_FIELDS.items()},
                             {"log": json.dumps(log), **({"cost_model": cost_model} if cost_model else {})})
        self._decision_log = log
        return len(decisions)

    def completed_decisions(self) -> list[dict]:
        """Every committed decision dict, in the order made."""
        if self._decision_log is None:
            n = self._decisions.n_committed
            self._decision_log = json.loads(self._decisions.group.attrs.get("log", "[]"))[:n]
        return list(self._decision_log)

    def completed_probes(self) -> dict[tuple, dict]:
        """Every committed probe record, by probe_key (with its `error` message if any)."""
        records = read_rows(self._probes.group, PROBE_FIELDS, self._probes.n_committed)
        errors = json.loads(self._probes.group.attrs.get("errors", "{}"))
        out = {}
        for record in records:
            key = probe_key(record)
            record["error"] = errors.get(json.dumps(key), "")
            out[key] = record
        return out

    def completed_thresholds(self) -> dict[tuple, dict]:
        """Every committed threshold row, by threshold_key."""
        rows = read_rows(self._thresholds.group, THRESHOLD_FIELDS, self._thresholds.n_committed)
        reasons = json.loads(self._thresholds.group.attrs.get("reasons", "{}"))
        for row in rows:
            row["reason"] = reasons.get(json.dumps(threshold_key(row)), "")
        return {threshold_key(r): r for r in rows}

    def record_actors(self, infos: list[dict]) -> None:
        """Append actors' infos (node, device name and memory, torch / CUDA / lamcap) to root attr `actors`."""
        with _disk_errors(self.path, self):
            known = json.loads(self._root.attrs.get("actors", "[]"))
            self._root.attrs["actors"] = json.dumps(known + [{**i, "since": _now()} for i in infos])

    @property
    def attrs(self) -> dict:
        return dict(self._root.attrs)


@contextlib.contextmanager
def _disk_errors(path: str, store: Store | None):
    """Turn an OSError of the store's filesystem into one StoreError line naming what is safe."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if store is None:
            raise StoreError(f"cannot open or create store {path!r}: {reason} ({exc.filename or path})") from None
        probes, thresholds = store.committed_counts()
        raise StoreError(f"cannot write store {path!r}: {reason}; {probes} probe records and {thresholds} "
                         "thresholds are committed and intact; fix the cause and run the same command to "
                         "resume") from None


def _new_only(rows: list[dict], key, seen: set) -> list[dict]:
    """Rows whose key is neither in `seen` nor earlier in `rows`: no row is ever written twice."""
    out, batch = [], set()
    for row in rows:
        k = key(row)
        if k not in seen and k not in batch:
            batch.add(k)
            out.append(row)
    return out


def _hist_column(records: list[dict], name: str, n_bins: int) -> np.ndarray:
    out = np.zeros((len(records), n_bins), dtype="i8")
    for i, r in enumerate(records):
        counts = r.get(name) or []
        if counts:
            if len(counts) != n_bins:
                raise ValueError(f"{name} has {len(counts)} bins, expected {n_bins}")
            out[i] = counts
    return out


def _sv_column(records: list[dict], d_max: int) -> np.ndarray:
    width = max([d_max, *(len(r.get("singular_values") or []) for r in records)])
    out = np.full((len(records), width), np.nan)
    for i, r in enumerate(records):
        sv = r.get("singular_values") or []
        out[i, : len(sv)] = sv
    return out


def read_rows(group: Any, fields: dict[str, str], n: int) -> list[dict]:
    """The first n rows of a table group as plain dicts (categorical codes decoded)."""
    if n == 0:
        return []
    columns = {}
    present = set(group.array_keys())
    for name in fields:
        if name not in present:  # a store written before this variable existed: its default
            columns[name] = [{**RECORD_DEFAULTS, **OPTIONAL_PROBE_FIELDS}[name]] * n
            continue
        values = group[name][:n]
        if name in CATEGORIES:
            columns[name] = [CATEGORIES[name][int(c)] for c in values]
        else:
            columns[name] = values.tolist()
    return [{name: columns[name][i] for name in fields} for i in range(n)]


def _create_table(root: Any, name: str, dim: str, fields: dict[str, str], wide: dict[str, tuple],
                  descriptions: dict | None = None) -> None:
    group = root.create_group(name)
    for field, dtype in fields.items():
        group.create_array(field, shape=(0,), chunks=(CHUNK_ROWS,), dtype=dtype, fill_value=_fill(dtype),
                           dimension_names=(dim,), attributes=_attrs(field, descriptions))
    for field, (dtype, width, dim2, extra) in wide.items():
        group.create_array(field, shape=(0, width), chunks=(CHUNK_ROWS // 16, max(width, 1)), dtype=dtype,
                           fill_value=_fill(dtype), dimension_names=(dim, dim2),
                           attributes={**_attrs(field), **extra})
    group.attrs.update({"n_committed": 0, **{"probe": {"errors": "{}"}, "threshold": {"reasons": "{}"},
                                             "decision": {"log": "[]"}}[dim]})


def _create_decisions(root: Any) -> None:
    """The `decisions` group of an adaptive sweep (created in every store: empty when no axis is adaptive)."""
    _create_table(root, "decisions", "decision", DECISION_FIELDS, {}, DECISION_DESCRIPTIONS)


def _add_missing_columns(group: Any) -> None:
    """Give a store written before a defaulted scalar variable existed (`shards`, `cpu_seconds`, `lp_margin`...)
    that variable, filled with its default for the committed rows, so that appends find every array (the
    schema is unchanged)."""
    import zarr

    n = int(group.attrs.get("n_committed", 0))
    present = set(group.array_keys())
    defaults = {**RECORD_DEFAULTS, **OPTIONAL_PROBE_FIELDS}
    for name, value in defaults.items():
        if name in present:
            continue
        dtype = PROBE_FIELDS[name]
        with zarr.config.set({"array.write_empty_chunks": True}):
            arr = group.create_array(name, shape=(n,), chunks=(CHUNK_ROWS,), dtype=dtype, fill_value=_fill(dtype),
                                     dimension_names=("probe",), attributes=_attrs(name))
            if n:
                arr[:] = _column([{name: value}] * n, name, dtype)


def _create(path: str, spec: Any) -> Any:
    """A fresh store: the tables first, the root attrs (marking it complete) last."""
    import zarr

    tmp = f"{path}.creating"
    if os.path.exists(tmp):
        import shutil

        shutil.rmtree(tmp)
    root = zarr.open_group(tmp, mode="w", zarr_format=3)
    edges = [float(e) for e in hist_edges()]
    n_bins = len(edges) - 1
    wide = {
        "target_hist": ("i8", n_bins, "score_bin", {"score_bin_edges": edges}),
        "offtarget_hist": ("i8", n_bins, "score_bin", {"score_bin_edges": edges}),
        "input_competitor_hist": ("i8", n_bins, "score_bin", {"score_bin_edges": edges}),
        "singular_values": ("f8", int(spec.max_d), "sv_index", {}),
    }
    _create_table(root, "probes", "probe", PROBE_FIELDS, wide)
    _create_table(root, "thresholds", "threshold", THRESHOLD_FIELDS, {})
    _create_decisions(root)
    root.attrs.update({
        "lamcap_schema": SCHEMA,
        "spec": json.dumps(spec.to_dict()),
        "versions": json.dumps(_versions()),
        "created": _now(),
        "actors": "[]",
    })
    os.replace(tmp, path)  # a store appears whole or not at all
    return zarr.open_group(path, mode="r+", zarr_format=3)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def stored_spec(path: str | os.PathLike) -> Any:
    """The SweepSpec recorded in the store at `path` (read-only); InvalidInput if it is no lamcap store."""
    import zarr

    from lamcap.orchestrator.spec import SweepSpec

    path = os.fspath(path)
    try:
        attrs = zarr.open_group(path, mode="r", zarr_format=3).attrs
        stored_json, schema = attrs["spec"], attrs["lamcap_schema"]
    except Exception as exc:  # noqa: BLE001 - any unreadable store is refused the same way
        raise InvalidInput(f"{path!r} exists but is not a lamcap store ({type(exc).__name__}: {exc})") from exc
    if schema != SCHEMA:
        raise InvalidInput(f"store {path!r} has schema {schema!r}; this lamcap writes schema {SCHEMA}")
    return SweepSpec.from_dict(json.loads(stored_json))


def check_compatible(path: str | os.PathLike, spec: Any) -> list[str]:
    """What `spec` adds to the existing store at `path` ([] for a resume; SweepSpec.additions_to); raise
    InvalidInput naming every difference if the store cannot take it."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return []
    stored = stored_spec(path)
    added = spec.additions_to(stored)
    if added is None:
        raise InvalidInput(f"store {path!r} was written by a different sweep: "
                           + "; ".join(spec.compatible_with(stored))
                           + " (use another --store, the same spec to resume, or a spec that only adds "
                           "problems, solvers, rhos, ds or seeds to extend it)")
    return added


def check_readable(path: str | os.PathLike) -> None:
    """InvalidInput ("store damaged: ...") unless every committed row of every array can be read."""
    import zarr

    from lamcap.analysis.load import read_committed

    path = os.fspath(path)
    root = zarr.open_group(path, mode="r")
    for name in ("probes", "thresholds", "decisions"):
        if name == "decisions" and name not in root:  # a store from before adaptive axes
            continue
        group = zarr.open_group(path, mode="r", path=name)
        n = int(group.attrs.get("n_committed", 0))
        for _, arr in group.arrays():
            read_committed(path, arr, n)


def _open_existing(path: str, spec: Any) -> Any:
    """Open a store for appending after checking that `spec` may extend it and that it is whole
    (nothing written on refusal)."""
    import zarr

    added = check_compatible(path, spec)
    check_readable(path)
    root = zarr.open_group(path, mode="r+", zarr_format=3)
    if added:
        _extend(path, root, spec, added)
    return root


def _extend(path: str, root: Any, spec: Any, added: list[str]) -> None:
    """Make the store `spec`'s: singular values widened to its largest d first, then the spec attr (with
    a history line) in one metadata write; a crash between leaves a wider array, which appends accept."""
    probes = root["probes"]
    if "singular_values" in probes and probes["singular_values"].shape[1] < int(spec.max_d):
        _widen(path, probes, "singular_values", int(spec.max_d))
    history = json.loads(root.attrs.get("extended", "[]"))
    history.append({"when": _now(), "added": added})
    root.attrs.update({"spec": json.dumps(spec.to_dict()), "extended": json.dumps(history)})


def _widen(path: str, group: Any, name: str, width: int) -> None:
    """Rewrite the 2-D array `name` of `group` `width` columns wide (new columns: fill values), written
    whole beside the old one and swapped in by two renames, so that every chunk file exists."""
    import shutil

    import zarr

    folder = os.path.join(path, group.path)  # Store.open_or_create has settled any earlier widening
    old = group[name]
    n = old.shape[0]
    staged, retired = f"{name}.widening", f"{name}.narrow"
    dtype = old.dtype.str[1:]
    with zarr.config.set({"array.write_empty_chunks": True}):
        new = group.create_array(staged, shape=(n, width), chunks=(CHUNK_ROWS // 16, width), dtype=dtype,
                                 fill_value=_fill(dtype), dimension_names=old.metadata.dimension_names,
                                 attributes=dict(old.attrs))
        if n:
            new[:] = _pad(old[:], (n, width))
    os.rename(os.path.join(folder, name), os.path.join(folder, retired))
    os.rename(os.path.join(folder, staged), os.path.join(folder, name))
    shutil.rmtree(os.path.join(folder, retired))


def finish_widening(folder: str, name: str) -> None:
    """Settle a widening of `folder/name` that a crash interrupted: before the first rename the staged
    copy is dropped, between the renames the staged (whole) copy is moved in, after them the old one
    is removed."""
    import shutil

    staged, retired = os.path.join(folder, f"{name}.widening"), os.path.join(folder, f"{name}.narrow")
    current = os.path.join(folder, name)
    if os.path.exists(staged):
        if os.path.exists(current):
            shutil.rmtree(staged)
        else:
            os.rename(staged, current)
    shutil.rmtree(retired, ignore_errors=True)


def read_tables(path: str | os.PathLike) -> tuple[list[dict], list[dict], dict]:
    """(probe records, threshold rows, root attrs) of a store: committed rows only, labels decoded."""
    import zarr

    root = zarr.open_group(os.fspath(path), mode="r", zarr_format=3)
    probes = read_rows(root["probes"], PROBE_FIELDS, int(root["probes"].attrs.get("n_committed", 0)))
    thresholds = read_rows(root["thresholds"], THRESHOLD_FIELDS,
                           int(root["thresholds"].attrs.get("n_committed", 0)))
    return probes, thresholds, dict(root.attrs)


def read_decisions(path: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """(decision rows, decision dicts) of a store, committed only, labels decoded; empty for a store without
    the group (written before adaptive axes)."""
    import zarr

    root = zarr.open_group(os.fspath(path), mode="r", zarr_format=3)
    if "decisions" not in root:
        return [], []
    group = root["decisions"]
    n = int(group.attrs.get("n_committed", 0))
    return read_rows(group, DECISION_FIELDS, n), json.loads(group.attrs.get("log", "[]"))[:n]

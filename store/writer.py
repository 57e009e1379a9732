"""The one writer of a sweep's store (docs/STORE.md): create, open, extend, append in committed batches.

Only the sweep driver writes, and it holds the store's lock (lamcap.store.lock) for its whole run; before
every append the writer checks that the store still holds exactly the rows it committed, so that a second
writer is stopped before anything is overwritten. Appends are crash-safe (lamcap.store.append). Disk and
permission errors end in StoreError naming the path, the committed rows and how to resume.

Records are encoded with the schema (lamcap.store.schema); the writer never decides whether a spec may
use a store: the driver's pre-flight does (lamcap.orchestrator.runtime.preflight), before this opens it.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from lamcap.errors import StoreError
from lamcap.kernels.outcome import KERNEL, N_BINS
from lamcap.store.append import AppendTable, pad
from lamcap.store.reader import read_records
from lamcap.store.schema import (
    CHUNK_ROWS,
    DECISIONS,
    PROBES,
    SCHEMA,
    TABLES,
    THRESHOLDS,
    Field,
    Table,
    probe_key,
    threshold_key,
)

SV = "singular_values"  # the 2-D variable as wide as the sweep's largest d


class SpecLike(Protocol):
    """What the writer needs of a sweep spec (lamcap.orchestrator.spec.SweepSpec)."""

    max_d: int

    def to_dict(self) -> dict: ...


def versions() -> dict:
    """Versions of lamcap and the libraries whose behaviour a store's numbers depend on."""
    from importlib import metadata

    out = {}
    for name in ("lamcap", "torch", "ray", "zarr", "xarray", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---- encoding ------------------------------------------------------------------------------------------
def _width(f: Field, d_max: int) -> int:
    return N_BINS if f.columns == "score_bin" else d_max


def _wide_column(records: list[dict], f: Field, width: int) -> np.ndarray:
    """A 2-D variable: each record's list left-aligned, the rest the fill (NaN singular values, zero counts)."""
    widest = max([width, *(len(r.get(f.name) or []) for r in records)])
    out = np.full((len(records), widest), f.fill, dtype=f.dtype)
    for i, r in enumerate(records):
        values = r.get(f.name) or []
        if f.columns == "score_bin" and values and len(values) != width:
            raise ValueError(f"{f.name} has {len(values)} bins, expected {width}")
        out[i, : len(values)] = values
    return out


def encode(table: Table, records: list[dict], d_max: int = 1) -> dict[str, np.ndarray]:
    """Every variable of `table` as the column to append; a record may lack only variables with an `absent` value."""
    columns = {}
    for f in table.scalars:
        if f.absent is None:
            missing = [i for i, r in enumerate(records) if f.name not in r]
            if missing:
                raise KeyError(f"record {missing[0]} has no {f.name!r} ({table.group} needs every declared field)")
            columns[f.name] = f.encode([r[f.name] for r in records])
        else:
            columns[f.name] = f.encode([r.get(f.name, f.absent) for r in records])
    for f in table.wide:
        columns[f.name] = _wide_column(records, f, _width(f, d_max))
    return columns


def _new_only(rows: Iterable[dict], key, seen: set) -> list[dict]:
    """Rows whose key is neither in `seen` nor earlier in `rows`: no row is ever written twice."""
    out, batch = [], set()
    for row in rows:
        k = key(row)
        if k not in seen and k not in batch:
            batch.add(k)
            out.append(row)
    return out


# ---- creating and opening ----------------------------------------------------------------------------------
def _create_table(root: Any, table: Table, d_max: int) -> None:
    group = root.create_group(table.group)
    for f in table.fields:
        if f.columns is None:
            group.create_array(f.name, shape=(0,), chunks=(CHUNK_ROWS,), dtype=f.dtype, fill_value=f.fill,
                               dimension_names=(table.dim,), attributes=f.attrs())
        else:
            width = _width(f, d_max)
            group.create_array(f.name, shape=(0, width), chunks=(CHUNK_ROWS // 16, max(width, 1)), dtype=f.dtype,
                               fill_value=f.fill, dimension_names=(table.dim, f.columns), attributes=f.attrs())
    attrs = {"n_committed": 0}
    if table.text is not None:
        attrs[table.text[1]] = "{}"
    if table is DECISIONS:
        attrs["log"] = "[]"
    group.attrs.update(attrs)


def _create(path: str, spec: SpecLike) -> Any:
    """A fresh store: the tables first, the root attrs (marking it complete) last, renamed into place whole."""
    import zarr

    tmp = f"{path}.creating"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    root = zarr.open_group(tmp, mode="w", zarr_format=3)
    for table in TABLES:
        _create_table(root, table, int(spec.max_d))
    root.attrs.update({"lamcap_schema": SCHEMA, "spec": json.dumps(spec.to_dict()), "versions": json.dumps(versions()),
                       "kernel": KERNEL, "created": now(), "actors": "[]", "runs": "[]"})
    os.replace(tmp, path)  # a store appears whole or not at all
    return zarr.open_group(path, mode="r+", zarr_format=3)


def _complete(root: Any) -> None:
    """Bring an older store up to this schema without changing a stored value: a group it lacks (decisions),
    empty; a variable it lacks, filled with its declared `absent` value; categories the schema has appended."""
    import zarr

    for table in TABLES:
        if table.group not in root:
            _create_table(root, table, 1)
        group = root[table.group]
        n = int(group.attrs.get("n_committed", 0))
        present = set(group.array_keys())
        for f in table.scalars:
            if f.name in present:
                arr = group[f.name]
                if f.categories and arr.attrs.get("flag_meanings") != " ".join(f.categories):
                    _extend_categories(arr, f)
                continue
            with zarr.config.set({"array.write_empty_chunks": True}):
                arr = group.create_array(f.name, shape=(n,), chunks=(CHUNK_ROWS,), dtype=f.dtype, fill_value=f.fill,
                                         dimension_names=(table.dim,), attributes=f.attrs())
                if n:
                    arr[:] = f.encode([f.absent] * n)


def _extend_categories(arr: Any, f: Field) -> None:
    """A store's categories must be a prefix of the schema's (codes only ever appended): then take the schema's."""
    stored = str(arr.attrs.get("flag_meanings", "")).split()
    if tuple(stored) != f.categories[: len(stored)]:
        raise StoreError(f"{arr.path}: the store's categories {stored} are not a prefix of this lamcap's "
                         f"{list(f.categories)}; it was written by another lamcap: use a new store")
    arr.attrs.update({"flag_values": list(range(len(f.categories))), "flag_meanings": " ".join(f.categories)})


def _extend(path: str, root: Any, spec: SpecLike, added: list[str]) -> None:
    """Make the store `spec`'s: singular values widened to its largest d first, then the spec attr (with a
    history line) in one metadata write; a crash between leaves a wider array, which appends accept."""
    probes = root[PROBES.group]
    if SV in probes and probes[SV].shape[1] < int(spec.max_d):
        _widen(path, probes, SV, int(spec.max_d))
    history = json.loads(root.attrs.get("extended", "[]"))
    history.append({"when": now(), "added": added})
    root.attrs.update({"spec": json.dumps(spec.to_dict()), "extended": json.dumps(history)})


def _widen(path: str, group: Any, name: str, width: int) -> None:
    """Rewrite the 2-D array `name` of `group` `width` columns wide (new columns: fill values), written
    whole beside the old one and swapped in by two renames, so that every chunk file exists."""
    import zarr

    folder = os.path.join(path, group.path)
    old = group[name]
    n = old.shape[0]
    staged, retired = f"{name}.widening", f"{name}.narrow"
    f = PROBES[name]
    with zarr.config.set({"array.write_empty_chunks": True}):
        new = group.create_array(staged, shape=(n, width), chunks=(CHUNK_ROWS // 16, width), dtype=f.dtype,
                                 fill_value=f.fill, dimension_names=old.metadata.dimension_names,
                                 attributes=dict(old.attrs))
        if n:
            new[:] = pad(old[:], (n, width))
    os.rename(os.path.join(folder, name), os.path.join(folder, retired))
    os.rename(os.path.join(folder, staged), os.path.join(folder, name))
    shutil.rmtree(os.path.join(folder, retired))


def finish_widening(folder: str, name: str) -> None:
    """Settle a widening of `folder/name` that a crash interrupted: before the first rename the staged copy is
    dropped, between the renames the staged (whole) copy is moved in, after them the old one is removed."""
    staged, retired = os.path.join(folder, f"{name}.widening"), os.path.join(folder, f"{name}.narrow")
    current = os.path.join(folder, name)
    if os.path.exists(staged):
        if os.path.exists(current):
            shutil.rmtree(staged)
        else:
            os.rename(staged, current)
    shutil.rmtree(retired, ignore_errors=True)


@contextlib.contextmanager
def _disk_errors(path: str, writer: StoreWriter | None):
    """Turn an OSError of the store's filesystem into one StoreError line naming what is safe."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if writer is None:
            raise StoreError(f"cannot open or create store {path!r}: {reason} ({exc.filename or path})") from None
        probes, thresholds = writer.committed_counts()
        raise StoreError(f"cannot write store {path!r}: {reason}; {probes} probe records and {thresholds} "
                         "thresholds are committed and intact; fix the cause and run the same command to "
                         "resume") from None


class StoreWriter:
    """Append-only writer of one sweep's store; open with `StoreWriter.open_or_create`."""

    def __init__(self, path: str, root: Any, d_max: int) -> None:
        self.path = path
        self._root = root
        self._d_max = d_max
        self._tables = {t.group: AppendTable(root[t.group], t.dim) for t in TABLES}
        self._keys: dict[str, set[tuple] | None] = {PROBES.group: None, THRESHOLDS.group: None}
        self._decision_log: list[dict] | None = None  # the committed decision dicts, loaded on first use

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, spec: SpecLike, added: list[str] | None = None) -> StoreWriter:
        """Open the store at `path` for `spec`, creating it if absent; `added` (the spec's additions to the stored
        one, from the pre-flight) extends it first. A batch a crash left half-written is truncated away."""
        path = os.fspath(path)
        with _disk_errors(path, None):
            if os.path.exists(path):
                finish_widening(os.path.join(path, PROBES.group), SV)
                import zarr

                root = zarr.open_group(path, mode="r+", zarr_format=3)
                if added:
                    _extend(path, root, spec, added)
                _complete(root)
            else:
                root = _create(path, spec)
            runs = json.loads(root.attrs.get("runs", "[]"))
            root.attrs["runs"] = json.dumps(runs + [{"when": now(), "lamcap": versions()["lamcap"], "kernel": KERNEL}])
            writer = cls(path, root, int(spec.max_d))
            for table in writer._tables.values():
                table.truncate()
        return writer

    def committed_counts(self) -> tuple[int, int]:
        """(probe rows, threshold rows) committed, as this writer knows them."""
        return self._tables[PROBES.group].n_committed, self._tables[THRESHOLDS.group].n_committed

    def _append(self, table: Table, rows: list[dict], key, extra: dict | None = None) -> int:
        """Append rows not yet stored (by key) after checking nobody else wrote; disk errors as StoreError."""
        seen = self._keys[table.group]
        if seen is None:
            seen = self._keys[table.group] = {key(r) for r in read_records(self.path, table)}
        rows = _new_only(rows, key, seen)
        if not rows:
            return 0
        text_key, attr = table.text
        texts = {json.dumps(key(r)): r[text_key] for r in rows if r.get(text_key)}
        target = self._tables[table.group]
        if texts:
            extra = {**(extra or {}), attr: json.dumps({**json.loads(target.group.attrs.get(attr, "{}")), **texts})}
        with _disk_errors(self.path, self):
            target.check_unchanged(self.path)
            target.append(encode(table, rows, self._d_max), extra)
        seen.update(key(r) for r in rows)
        return len(rows)

    def append_probes(self, records: list[dict]) -> int:
        """Append finished probe records (labels + outcome + `error`); records already stored are skipped."""
        return self._append(PROBES, records, probe_key)

    def append_thresholds(self, rows: list[dict]) -> int:
        """Append per-(cell, seed) threshold rows (those already stored are skipped); return the count written."""
        return self._append(THRESHOLDS, rows, threshold_key)

    def append_decisions(self, decisions: list[dict], rows: list[dict], cost_model: str = "") -> int:
        """Append adaptive learners' decisions in the order made: `rows` (one flat row each, the table) and the
        dicts themselves in the group attribute `log`; `cost_model` names the dimension learner's cost callable."""
        if not decisions:
            return 0
        log = self.completed_decisions() + [json.loads(json.dumps(d)) for d in decisions]
        target = self._tables[DECISIONS.group]
        with _disk_errors(self.path, self):
            target.check_unchanged(self.path)
            target.append(encode(DECISIONS, rows), {"log": json.dumps(log),
                                                    **({"cost_model": cost_model} if cost_model else {})})
        self._decision_log = log
        return len(decisions)

    def completed_decisions(self) -> list[dict]:
        """Every committed decision dict, in the order made."""
        if self._decision_log is None:
            group = self._tables[DECISIONS.group].group
            self._decision_log = json.loads(group.attrs.get("log", "[]"))[: int(group.attrs.get("n_committed", 0))]
        return list(self._decision_log)

    def completed_probes(self) -> dict[tuple, dict]:
        """Every committed probe record, by probe_key (with its `error` message if any)."""
        return {probe_key(r): r for r in read_records(self.path, PROBES)}

    def completed_thresholds(self) -> dict[tuple, dict]:
        """Every committed threshold row, by threshold_key."""
        return {threshold_key(r): r for r in read_records(self.path, THRESHOLDS)}

    def record_actors(self, infos: list[dict]) -> None:
        """Append actors' infos (node, device name and memory, torch / CUDA / lamcap) to root attr `actors`."""
        with _disk_errors(self.path, self):
            known = json.loads(self._root.attrs.get("actors", "[]"))
            self._root.attrs["actors"] = json.dumps(known + [{**i, "since": now()} for i in infos])

    @property
    def attrs(self) -> dict:
        return dict(self._root.attrs)

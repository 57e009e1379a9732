"""The one reader of a lamcap store: committed rows only, every chunk and metadata file checked, labels decoded.

The sweep's resume (lamcap.orchestrator) and the analysis (lamcap.analysis.load) both read through here, so a
store means the same to both. A table's committed rows are the first `n_committed` (a group attribute the
writer raises after each batch); rows past it belong to a batch a crash cut short and are never read.

Damage is named, never read as data: a metadata file that is not valid Zarr 3 JSON, a missing or undecodable
chunk under the committed rows, or a variable the schema needs that is not there, each ends in InvalidInput
"store damaged: <file>: ..." (the CLI's exit status 2) before anything is computed on the store.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lamcap.errors import InvalidInput
from lamcap.store.schema import (
    DECISIONS,
    OPTIONAL_GROUPS,
    PROBES,
    SCHEMA,
    TABLES,
    THRESHOLDS,
    Table,
    probe_key,
    threshold_key,
    threshold_relations,
)

META = "zarr.json"


def damaged(where: str, what: str) -> InvalidInput:
    return InvalidInput(f"store damaged: {where}: {what} (docs/STORE.md says what can be recovered)")


def _metadata(path: str, node: str = "") -> dict:
    """The parsed zarr.json of one node (the store root when node is ''); InvalidInput naming a damaged file."""
    file = os.path.join(path, *[p for p in node.split("/") if p], META)
    try:
        with open(file, "rb") as fh:
            meta = json.loads(fh.read())
    except FileNotFoundError:
        raise damaged(file, "the metadata file is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(file, f"not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3 or meta.get("node_type") not in ("group", "array"):
        raise damaged(file, "not Zarr 3 metadata (zarr_format 3 and a node_type expected)")
    if meta["node_type"] == "array" and not all(k in meta for k in ("shape", "data_type", "chunk_grid")):
        raise damaged(file, "array metadata without shape, data_type or chunk_grid")
    return meta


def check_metadata(path: str) -> None:
    """Every group's and array's metadata file parses as Zarr 3 (InvalidInput naming the first that does not)."""
    _metadata(path)
    for table in TABLES:
        if not os.path.isdir(os.path.join(path, table.group)):
            if table.group in OPTIONAL_GROUPS:
                continue
            raise damaged(os.path.join(path, table.group), "the group is missing")
        if _metadata(path, table.group)["node_type"] != "group":
            raise damaged(os.path.join(path, table.group, META), "expected a group")
        for name in sorted(os.listdir(os.path.join(path, table.group))):
            if os.path.isdir(os.path.join(path, table.group, name)) and "." not in name:
                _metadata(path, f"{table.group}/{name}")


def root_attrs(path: str | os.PathLike) -> dict:
    """The root attributes of the store at `path`; InvalidInput for a missing path, a file, a foreign or damaged
    store, or one of another schema."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InvalidInput(f"no lamcap store at {path!r} (no such file or directory)")
    if not os.path.isdir(path):
        raise InvalidInput(f"{path!r} is a file, not a lamcap store (a store is a directory)")
    if not os.path.exists(os.path.join(path, META)):
        raise InvalidInput(f"{path!r} is not a lamcap store (no {META}: not a Zarr store)")
    attrs = _metadata(path).get("attributes", {})
    if "lamcap_schema" not in attrs:
        raise InvalidInput(f"{path!r} is a zarr group but not a lamcap store (no lamcap_schema attribute)")
    if attrs["lamcap_schema"] != SCHEMA:
        raise InvalidInput(f"store {path!r} has schema {attrs['lamcap_schema']!r}; this lamcap reads and writes "
                           f"schema {SCHEMA} (rerun its sweep into a new store)")
    return attrs


def read_committed(path: str, arr: Any, n: int) -> np.ndarray:
    """The first n rows of a zarr array, chunk by chunk, refusing a missing or unreadable chunk.

    Zarr reads a missing chunk as its fill value; the writer stores every chunk (empty ones too),
    so a chunk that should hold committed rows and is absent means damage, never data.
    """
    rows = arr.chunks[0]
    n_col_chunks = -(-arr.shape[1] // arr.chunks[1]) if arr.ndim == 2 else 1
    parts = []
    where = f"{path}/{arr.path}"
    if arr.shape[0] < n:
        raise damaged(where, f"holds {arr.shape[0]} rows where {n} are committed")
    for i in range(-(-n // rows)):
        for j in range(n_col_chunks):
            key = arr.metadata.encode_chunk_key((i, j) if arr.ndim == 2 else (i,))
            if not os.path.exists(os.path.join(path, *arr.path.split("/"), *key.split("/"))):
                raise damaged(where, f"chunk {key} is missing; the rows of that chunk cannot be read")
        try:
            parts.append(arr[i * rows: min(n, (i + 1) * rows)])
        except Exception as exc:
            raise damaged(where, f"chunk {i} cannot be decoded ({type(exc).__name__}: {exc})") from None
    return np.concatenate(parts) if parts else arr[:0]


def decode(values: np.ndarray, attrs: dict, where: str) -> np.ndarray:
    """Category codes as strings, by the variable's own CF flag_values / flag_meanings (the store describes itself)."""
    codes = np.atleast_1d(np.asarray(attrs["flag_values"])).astype(np.int64)
    meanings = str(attrs["flag_meanings"]).split()
    if len(codes) != len(meanings):
        raise damaged(where, f"{len(codes)} flag_values but {len(meanings)} flag_meanings")
    lookup = dict(zip(codes.tolist(), meanings))
    raw = np.asarray(values).astype(np.int64)
    unknown = sorted(set(np.unique(raw).tolist()) - set(lookup))
    if unknown:
        raise damaged(where, f"holds code(s) {unknown} not in its flag_values {codes.tolist()}")
    width = max(len(m) for m in meanings)
    return np.array([lookup[c] for c in raw.ravel()], dtype=f"<U{width}").reshape(raw.shape)


@dataclass
class TableData:
    """The committed rows of one table: each variable's values (categories as strings), dims and attributes."""

    table: Table
    n: int
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    dims: dict[str, tuple[str, ...]] = field(default_factory=dict)
    attrs: dict[str, dict] = field(default_factory=dict)
    group_attrs: dict = field(default_factory=dict)

    def text(self) -> dict[str, str]:
        """The table's texts (probe errors, threshold reasons) by the JSON of the row's key."""
        if self.table.text is None:
            return {}
        return json.loads(self.group_attrs.get(self.table.text[1], "{}"))

    def records(self) -> Iterator[dict]:
        """Row by row, every variable as a plain Python value (2-D variables as lists), plus the row's text."""
        key = {"probes": probe_key, "thresholds": threshold_key}.get(self.table.group)
        texts = self.text()
        plain = {name: values.tolist() for name, values in self.columns.items()}
        for i in range(self.n):
            row = {name: values[i] for name, values in plain.items()}
            if self.table.text is not None and key is not None:
                row[self.table.text[0]] = texts.get(json.dumps(key(row)), "")
            yield row


def read_table(path: str | os.PathLike, table: Table, complete: bool = True) -> TableData:
    """The committed rows of `table` in the store at `path` (empty for an optional group the store lacks).

    complete: give a variable younger than the store its declared `absent` value (what a resume appends next
    to); False leaves it out, as the store holds it (what an analysis shows)."""
    import zarr

    path = os.fspath(path)
    if not os.path.isdir(os.path.join(path, table.group)) and table.group in OPTIONAL_GROUPS:
        return TableData(table, 0)
    check_metadata(path)
    group = zarr.open_group(path, mode="r", path=table.group, zarr_format=3)
    group_attrs = dict(group.attrs)
    n = int(group_attrs.get("n_committed", 0))
    out = TableData(table, n, group_attrs=group_attrs)
    arrays = dict(group.arrays())
    for name, arr in arrays.items():
        where = f"{path}/{arr.path}"
        values = read_committed(path, arr, n)
        attrs = dict(arr.attrs)
        if "flag_values" in attrs:
            values = decode(values, attrs, where)
            attrs = {k: v for k, v in attrs.items() if k not in ("flag_values", "flag_meanings")}
        out.columns[name] = values
        out.dims[name] = tuple(arr.metadata.dimension_names or (table.dim,))
        out.attrs[name] = attrs
    for f in table.scalars:  # variables younger than the store: their declared value; others are damage
        if f.name in out.columns or (not complete and f.absent is not None):
            continue
        if f.absent is None:
            raise damaged(f"{path}/{table.group}", f"variable {f.name!r} is missing")
        out.columns[f.name] = np.array([f.absent] * n) if n else np.array([], dtype=type(f.absent))
        out.dims[f.name] = (table.dim,)
        out.attrs[f.name] = {k: v for k, v in f.attrs().items() if k not in ("flag_values", "flag_meanings")}
    if table is THRESHOLDS:
        _check_relations(path, out)
    return out


def _check_relations(path: str, data: TableData) -> None:
    """Threshold rows whose p_lo, p_hi, p_star and alpha_star disagree (docs/STORE.md) are damage: named, refused."""
    bad = []
    for i, row in enumerate(data.records()):
        broken = threshold_relations(row)
        if broken:
            where = f"{row['problem']} {row['solver']} rho={row['rho']:g} d={row['d']} seed={row['seed']}"
            bad.append(f"row {i} ({where}): {broken}")
    if bad:
        more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise damaged(f"{path}/{THRESHOLDS.group}", f"{len(bad)} threshold row(s) break the relations between p_lo, "
                      f"p_hi, p_star and alpha_star: {'; '.join(bad[:3])}{more}")


def read_records(path: str | os.PathLike, table: Table) -> list[dict]:
    """The committed rows of `table` as plain dicts (the resume's view of a store)."""
    return list(read_table(path, table).records())


def check_readable(path: str | os.PathLike) -> None:
    """InvalidInput ("store damaged: ...") unless the store's metadata and every committed row of every table read."""
    root_attrs(path)
    for table in TABLES:
        read_table(path, table)


def read_tables(path: str | os.PathLike) -> tuple[list[dict], list[dict], dict]:
    """(probe records, threshold rows, root attrs) of a store: committed rows only, labels decoded."""
    return read_records(path, PROBES), read_records(path, THRESHOLDS), root_attrs(path)


def read_decisions(path: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """(decision rows, decision dicts) of a store, committed only; empty for a store without the group."""
    data = read_table(path, DECISIONS)
    return list(data.records()), json.loads(data.group_attrs.get("log", "[]"))[: data.n]

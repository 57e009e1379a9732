"""Open a lamcap store (docs/STORE.md): its groups, categorical codes decoded to strings."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from lamcap.kernels.errors import InvalidInput

CELL = ("problem", "solver", "rho", "d")  # the labels that name one cell of a sweep
GROUPS = ("probes", "thresholds")
# Attributes a writer may use to mark how many leading rows are committed (rows past it are partial).
COMMITTED_ATTRS = ("n_committed", "committed_rows", "n_rows")


@dataclass(frozen=True)
class Store:
    """A store read into memory: ``probes`` (dim probe), ``thresholds`` (dim threshold), ``decisions`` (dim
    decision: the adaptive learners' decisions; empty for a fixed grid or a store written before them), root attrs."""

    path: str
    probes: xr.Dataset
    thresholds: xr.Dataset
    attrs: dict = field(default_factory=dict)
    decisions: xr.Dataset = field(default_factory=lambda: xr.Dataset(coords={"decision": np.arange(0)}))

    @property
    def spec(self) -> dict:
        """The sweep spec that produced the store (empty when the writer recorded none)."""
        raw = self.attrs.get("spec", "{}")
        return json.loads(raw) if isinstance(raw, str) else dict(raw)

    @property
    def decision_log(self) -> list[dict]:
        """The full decision dicts (evidence, candidates, reasons), one per row of ``decisions``, in order."""
        raw = self.decisions.attrs.get("log", "[]")
        return json.loads(raw)[: self.decisions.sizes.get("decision", 0)]


def decode(ds: xr.Dataset) -> xr.Dataset:
    """Turn every variable carrying CF ``flag_values``/``flag_meanings`` into strings."""
    out = ds.copy()
    for name, var in ds.variables.items():
        if "flag_values" not in var.attrs or "flag_meanings" not in var.attrs:
            continue
        values = np.atleast_1d(np.asarray(var.attrs["flag_values"])).astype(np.int64)
        meanings = str(var.attrs["flag_meanings"]).split()
        if len(values) != len(meanings):
            raise InvalidInput(f"variable {name!r}: {len(values)} flag_values but {len(meanings)} flag_meanings")
        codes = np.asarray(var.values).astype(np.int64)
        lookup = dict(zip(values.tolist(), meanings))
        unknown = sorted(set(np.unique(codes).tolist()) - set(lookup))
        if unknown:
            raise InvalidInput(f"variable {name!r} holds code(s) {unknown} not in its flag_values {values.tolist()}")
        width = max(len(m) for m in meanings)
        strings = np.array([lookup[c] for c in codes.ravel()], dtype=f"<U{width}").reshape(codes.shape)
        attrs = {k: v for k, v in var.attrs.items() if k not in ("flag_values", "flag_meanings")}
        out[name] = xr.Variable(var.dims, strings, attrs=attrs)
    return out


def _committed_rows(attrs: dict, arrays: dict) -> int:
    """The writer's committed-row count, or the shortest array when it records none."""
    for key in COMMITTED_ATTRS:
        if key in attrs:
            return int(attrs[key])
    return min((a.shape[0] for a in arrays.values()), default=0)


def _damaged(path: str, arr, what: str) -> InvalidInput:
    return InvalidInput(f"store damaged: {path}/{arr.path}: {what}; the rows of that chunk cannot be read "
                        "(docs/STORE.md says what can be recovered)")


def read_committed(path: str, arr, n: int) -> np.ndarray:
    """The first n rows of a zarr array, chunk by chunk, refusing a missing or unreadable chunk.

    Zarr reads a missing chunk as its fill value; the writer stores every chunk (empty ones too),
    so a chunk that should hold committed rows and is absent means damage, never data.
    """
    rows = arr.chunks[0]
    n_col_chunks = -(-arr.shape[1] // arr.chunks[1]) if arr.ndim == 2 else 1
    parts = []
    for i in range(-(-n // rows)):
        for j in range(n_col_chunks):
            coords = (i, j) if arr.ndim == 2 else (i,)
            key = arr.metadata.encode_chunk_key(coords)
            if not os.path.exists(os.path.join(path, *arr.path.split("/"), *key.split("/"))):
                raise _damaged(path, arr, f"chunk {key} is missing")
        try:
            parts.append(arr[i * rows: min(n, (i + 1) * rows)])
        except Exception as exc:  # noqa: BLE001 - a truncated or corrupt chunk raises codec-specific errors
            raise _damaged(path, arr, f"chunk {i} cannot be decoded ({type(exc).__name__}: {exc})") from None
    if not parts:
        return arr[:0]
    return np.concatenate(parts)


def _open_group(path: str, group: str, dim: str) -> xr.Dataset | None:
    """The committed rows of one table group as a Dataset (None if the group does not exist).

    Read array by array rather than with xr.open_zarr: after a crash mid-append the arrays of a
    group can have different lengths, which xr.open_zarr refuses; the committed rows are intact.
    """
    import zarr

    try:
        node = zarr.open_group(path, mode="r", path=group)
    except FileNotFoundError:  # zarr's GroupNotFoundError is one: the group was never written
        return None
    arrays = dict(node.arrays())
    n = _committed_rows(dict(node.attrs), arrays)
    variables = {
        name: xr.Variable(arr.metadata.dimension_names or (dim,), read_committed(path, arr, n),
                          attrs=dict(arr.attrs))
        for name, arr in arrays.items()
    }
    return decode(xr.Dataset(variables, attrs=dict(node.attrs)))


def _root_attrs(path: str) -> dict:
    """The root attributes; InvalidInput when `path` is no lamcap store."""
    import zarr

    try:
        attrs = dict(zarr.open_group(path, mode="r").attrs)
    except Exception as exc:  # noqa: BLE001 - any unreadable root is refused the same way
        raise InvalidInput(f"{path!r} is not a lamcap store (no readable zarr group: {type(exc).__name__})") \
            from None
    if "lamcap_schema" not in attrs:
        raise InvalidInput(f"{path!r} is a zarr group but not a lamcap store (no lamcap_schema attribute)")
    return attrs


def open_store(path: str | os.PathLike, require_thresholds: bool = True) -> Store:
    """Read a store; InvalidInput for a missing, foreign, damaged or empty store, or (by default) one
    without thresholds. Every committed row is read and checked (see read_committed)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise InvalidInput(f"no lamcap store at {path!r} (no such directory)")
    attrs = _root_attrs(path)
    probes = _open_group(path, "probes", "probe")
    if probes is None or probes.sizes.get("probe", 0) == 0:
        raise InvalidInput(f"store {path!r} is empty: no probes recorded yet")
    thresholds = _open_group(path, "thresholds", "threshold")
    if thresholds is None or thresholds.sizes.get("threshold", 0) == 0:
        if require_thresholds:
            raise InvalidInput(f"store {path!r} has no thresholds yet: no (cell, seed) search has finished")
        thresholds = xr.Dataset(coords={"threshold": np.arange(0)})
    decisions = _open_group(path, "decisions", "decision")
    if decisions is None:  # written before adaptive axes
        decisions = xr.Dataset(coords={"decision": np.arange(0)})
    return Store(path=path, probes=probes, thresholds=thresholds, attrs=attrs, decisions=decisions)

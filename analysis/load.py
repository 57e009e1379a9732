"""Open a lamcap store (docs/STORE.md) as xarray Datasets: its tables, committed rows only, labels decoded."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from lamcap.errors import InvalidInput
from lamcap.store import reader
from lamcap.store.schema import DECISIONS, PROBES, THRESHOLDS

CELL = ("problem", "solver", "rho", "d")  # the labels that name one cell of a sweep


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
    """Turn every variable carrying CF ``flag_values``/``flag_meanings`` into strings (for a Dataset opened with
    ``xr.open_zarr``; `open_store` returns labels decoded already)."""
    out = ds.copy()
    for name, var in ds.variables.items():
        if "flag_values" not in var.attrs or "flag_meanings" not in var.attrs:
            continue
        strings = reader.decode(var.values, var.attrs, f"variable {name!r}")
        attrs = {k: v for k, v in var.attrs.items() if k not in ("flag_values", "flag_meanings")}
        out[name] = xr.Variable(var.dims, strings, attrs=attrs)
    return out


def _dataset(data: reader.TableData) -> xr.Dataset:
    """One table's committed rows as a Dataset along its dimension, every label a variable."""
    variables = {name: xr.Variable(data.dims[name], values, attrs=data.attrs[name])
                 for name, values in data.columns.items()}
    return xr.Dataset(variables, coords={} if variables else {data.table.dim: np.arange(0)},
                      attrs=data.group_attrs)


def open_store(path: str | os.PathLike, require_thresholds: bool = True) -> Store:
    """Read a store; InvalidInput for a missing, foreign, damaged or empty store, or (by default) one
    without thresholds. Every committed row is read and checked (lamcap.store.reader)."""
    path = os.fspath(path)
    attrs = reader.root_attrs(path)
    probes = reader.read_table(path, PROBES, complete=False)
    if probes.n == 0:
        raise InvalidInput(f"store {path!r} is empty: no probes recorded yet")
    thresholds = reader.read_table(path, THRESHOLDS)
    if thresholds.n == 0 and require_thresholds:
        raise InvalidInput(f"store {path!r} has no thresholds yet: no (cell, seed) search has finished")
    return Store(path=path, probes=_dataset(probes), thresholds=_dataset(thresholds), attrs=attrs,
                 decisions=_dataset(reader.read_table(path, DECISIONS)))

"""Several stores as one: refuse cells whose records disagree, then concatenate their tables (docs/STORE.md,
"Analysing several stores together").

Two stores agree when (a) every (problem, solver, rho, d, seed) threshold row that both hold has the same
p_lo, p_hi, p_star and complete, and (b) every (problem, solver, rho, d, seed, p) that both probed without an
error has the same verdict (sat). Seeds, dimensions or loads held by one store only are simply added. Rows
both hold are taken once (from the first store named); so are probes with the same key.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from lamcap.analysis.load import CELL, Store
from lamcap.errors import InvalidInput

SEED_KEY = (*CELL, "seed")
PROBE_KEY = (*SEED_KEY, "p", "purpose")  # lamcap.store.schema.probe_key
THRESHOLD_VALUES = ("p_lo", "p_hi", "p_star", "complete")
HISTOGRAMS = ("target_hist", "offtarget_hist", "input_competitor_hist")


def _frame(ds: xr.Dataset, columns: Sequence[str], store: int) -> pd.DataFrame:
    frame = pd.DataFrame({c: ds[c].values for c in columns if c in ds})
    return frame.assign(store=store)


def _first_conflict(frames: list[pd.DataFrame], key: list[str], values: list[str]) -> pd.DataFrame:
    """Rows of the keys that two stores hold with different values (empty when they agree)."""
    table = pd.concat(frames, ignore_index=True)
    distinct = table.drop_duplicates(subset=key + values)
    clash = distinct[distinct.duplicated(subset=key, keep=False)]
    return clash.sort_values(key + ["store"])


def _refuse(clash: pd.DataFrame, key: list[str], values: list[str], paths: list[str], what: str) -> None:
    first = clash.iloc[0]
    rows = clash[(clash[key] == first[key]).all(axis=1)]
    name = " ".join(f"{k}={first[k]}" for k in key)
    seen = "; ".join(f"{paths[int(r.store)]!r}: " + ", ".join(f"{v}={getattr(r, v)}" for v in values)
                     for r in rows.itertuples())
    raise InvalidInput(f"the stores disagree on the {what} of {name} ({seen}): a cell present in several "
                       "stores is analysed only when their records agree")


def check_agreement(stores: Sequence[Store]) -> None:
    """InvalidInput naming the first (cell, seed) whose threshold rows, or (cell, seed, p) whose verdicts, differ."""
    paths = [s.path for s in stores]
    key = list(SEED_KEY)
    values = [v for v in THRESHOLD_VALUES if all(v in s.thresholds for s in stores)]
    clash = _first_conflict([_frame(s.thresholds, key + values, i) for i, s in enumerate(stores)], key, values)
    if len(clash):
        _refuse(clash, key, values, paths, "threshold")
    probe_key = key + ["p"]
    frames = []
    for i, s in enumerate(stores):
        ok = (s.probes.status != "error").values
        frames.append(_frame(s.probes.isel(probe=np.flatnonzero(ok)), probe_key + ["sat"], i))
    clash = _first_conflict(frames, probe_key, ["sat"])
    if len(clash):
        _refuse(clash, probe_key, ["sat"], paths, "probe verdict")


def _unique_rows(datasets: list[xr.Dataset], dim: str, key: Sequence[str]) -> list[xr.Dataset]:
    """Each dataset without the rows whose key an earlier dataset already holds."""
    seen: set[tuple] = set()
    out = []
    for ds in datasets:
        keys = list(zip(*(ds[k].values.tolist() for k in key))) if ds.sizes.get(dim, 0) else []
        keep = [i for i, k in enumerate(keys) if k not in seen]
        seen.update(keys)
        out.append(ds.isel({dim: keep}))
    return out


def _concat(datasets: list[xr.Dataset], dim: str, key: Sequence[str], texts: str) -> xr.Dataset:
    """Concatenate along dim the variables every dataset has; NaN-pad wider trailing axes (sv_index); union the
    JSON text attribute (errors or reasons, keyed by record key)."""
    common = set.intersection(*(set(ds.data_vars) for ds in datasets))
    widths = {}
    for ds in datasets:
        for name in common:
            for axis in ds[name].dims[1:]:
                widths[axis] = max(widths.get(axis, 0), ds.sizes[axis])
    padded = []
    for ds in _unique_rows(datasets, dim, key):
        ds = ds[sorted(common)]
        grow = {axis: (0, widths[axis] - ds.sizes[axis]) for axis in widths if ds.sizes.get(axis, 0) < widths[axis]}
        padded.append(ds.pad(grow, constant_values=np.nan) if grow else ds)
    out = xr.concat(padded, dim=dim, data_vars="all", coords="minimal", compat="override", combine_attrs="override")
    merged_text = {}
    for ds in datasets:
        merged_text.update(json.loads(ds.attrs.get(texts, "{}") or "{}"))
    out.attrs.update({texts: json.dumps(merged_text), "n_committed": out.sizes[dim]})
    return out


def _check_bins(stores: Sequence[Store]) -> None:
    for name in HISTOGRAMS:
        edges = {json.dumps(np.asarray(s.probes[name].attrs.get("score_bin_edges", [])).tolist())
                 for s in stores if name in s.probes}
        if len(edges) > 1:
            raise InvalidInput(f"the stores histogram {name} on different score bins: they cannot be pooled")


def _decisions(stores: Sequence[Store]) -> xr.Dataset:
    """The adaptive decisions of the one store that has any (a decision log belongs to one sweep), else none."""
    with_rows = [s for s in stores if s.decisions.sizes.get("decision", 0)]
    if len(with_rows) == 1:
        return with_rows[0].decisions
    return stores[0].decisions.isel(decision=slice(0, 0))


def _root_attrs(stores: Sequence[Store]) -> dict:
    """The first store's root attributes, every store's runs, and the paths merged."""
    attrs = dict(stores[0].attrs)
    runs = [run for s in stores for run in json.loads(s.attrs.get("runs", "[]") or "[]")]
    attrs.update(runs=json.dumps(runs), merged_from=json.dumps([s.path for s in stores]))
    return attrs


def merge_stores(stores: Sequence[Store]) -> Store:
    """One Store holding the records of several (each opened with lamcap.analysis.load.open_store), after
    check_agreement; the rows two stores share are taken once."""
    if not stores:
        raise InvalidInput("no store to analyse")
    if len(stores) == 1:
        return stores[0]
    paths = [s.path for s in stores]
    if len(set(paths)) < len(paths):
        raise InvalidInput(f"a store is named twice: {paths!r}")
    check_agreement(stores)
    _check_bins(stores)
    return Store(path=" + ".join(paths),
                 probes=_concat([s.probes for s in stores], "probe", PROBE_KEY, "errors"),
                 thresholds=_concat([s.thresholds for s in stores], "threshold", SEED_KEY, "reasons"),
                 attrs=_root_attrs(stores), decisions=_decisions(stores))

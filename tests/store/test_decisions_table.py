"""The store's `decisions` group: one row per adaptive decision, the full dicts in its `log`, older stores."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

from lamcap.analysis.load import open_store
from lamcap.orchestrator.learners.decisions import decision_row
from lamcap.orchestrator.learners.expansion import Expansion
from lamcap.orchestrator.runtime.probe import failed_record
from lamcap.orchestrator.spec import Cell, Probe
from lamcap.store.reader import read_decisions
from lamcap.store.schema import DECISIONS
from lamcap.store.writer import StoreWriter
from tests.orchestrator.learners.test_expansion import cubic_cost, make_spec, run


def _learner_run(axis: str) -> tuple:
    spec = make_spec(axis)
    rows, decisions = run(Expansion(spec, cubic_cost))
    return spec, list(rows.values()), decisions


def rows_of(decisions: list[dict]) -> list[dict]:
    return [decision_row(d) for d in decisions]


def _store(path, spec, rows: list[dict]) -> StoreWriter:
    """A store holding one probe record and the threshold rows."""
    store = StoreWriter.open_or_create(path, spec)
    store.append_probes([failed_record(Probe(Cell("op", "adam", 1.0, 8), 0, 5), "cpu", "RuntimeError: x")])
    store.append_thresholds(_threshold_rows(rows))
    return store


def _threshold_rows(rows: list[dict]) -> list[dict]:
    """The rows the scheduler stores: the cell fields and bracket added to the oracle's."""
    out = []
    for r in rows:
        rank = max(1, round(r["rho"] * r["d"]))
        out.append({**r, "rho_eff": rank / r["d"], "rank": rank, "p_lo": r["p_star"], "p_hi": r["p_star"] + 1,
                    "n_probes": 5, "monotone": True})
    return out


@pytest.mark.parametrize("axis", ["rho", "d"])
def test_decisions_round_trip_as_rows_and_log(tmp_path, axis):
    spec, rows, decisions = _learner_run(axis)
    path = tmp_path / "s.zarr"
    store = _store(path, spec, rows)
    half = len(decisions) // 2
    assert store.append_decisions(decisions[:half], rows_of(decisions[:half]), "a cost") == half
    writer = StoreWriter.open_or_create(path, spec)
    assert writer.append_decisions(decisions[half:], rows_of(decisions[half:])) == len(decisions) - half
    table, log = read_decisions(path)
    assert log == json.loads(json.dumps(decisions))  # every dict, in the order made
    assert StoreWriter.open_or_create(path, spec).completed_decisions() == log
    assert len(table) == len(decisions) == zarr.open_group(str(path), path="decisions").attrs["n_committed"]
    for got, dec in zip(table, decisions):  # each column against the dict it was taken from
        assert (got["learner"], got["problem"], got["solver"], got["round"]) == \
            (dec["learner"], dec["problem"], dec["solver"], dec["round"])
        assert got["basis"] == dec["basis"].replace(" ", "_").replace("-", "_")
        if axis == "rho":
            assert got["d"] == dec["d"] and math.isnan(got["rho"]) and math.isnan(got["width"])
            assert got["n_chosen"] == len(dec["chosen_ranks"]) and got["n_evidence"] == len(dec["curve"])
            if dec["basis"] in ("curvature", "width"):
                assert got["gap_score"] == max(g["score"] for g in dec["candidates"])
        else:
            assert got["d"] == -1 and got["rho"] == dec["rho"] and math.isnan(got["gap_score"])
            assert got["n_chosen"] == sum(len(c["seeds"]) for c in dec["chosen"])
            assert got["spent_seconds"] == dec["committed_seconds"]
            assert got["added_seconds"] == pytest.approx(sum(cubic_cost("op", "adam", 1.0, c["d"], len(c["seeds"]))
                                                             for c in dec["chosen"]))
            assert got["budget_seconds"] == spec.adaptive.d.budget_seconds
    group = zarr.open_group(str(path), path="decisions")
    assert group.attrs["cost_model"] == "a cost"
    for name in DECISIONS.names:  # every chunk is on disk (one here), so a missing one means damage
        assert (path / "decisions" / name / "c" / "0").is_file(), name


def test_labels_are_codes_with_flags_and_analysis_decodes_them(tmp_path):
    spec, rows, decisions = _learner_run("d")
    path = tmp_path / "s.zarr"
    _store(path, spec, rows).append_decisions(decisions, rows_of(decisions))
    raw = xr.open_zarr(path, group="decisions", consolidated=False, mask_and_scale=False)
    assert raw.learner.dtype == np.int8 and raw.basis.dtype == np.int8
    assert raw.basis.attrs["flag_meanings"].split()[raw.basis.attrs["flag_values"][-1]] == "stop"
    assert "device-s" == raw.spent_seconds.attrs["units"] and "-1" in raw.d.attrs["description"]
    read = open_store(path)
    assert read.decisions.sizes["decision"] == len(decisions)
    assert read.decisions.basis.values[-1] == "stop" and set(read.decisions.learner.values) == {"dimension"}
    assert read.decision_log == json.loads(json.dumps(decisions))
    assert json.loads(read.attrs["spec"])["adaptive"] == spec.adaptive.to_dict()  # the rule is in the spec


def test_a_store_written_before_the_decisions_group_opens_and_gains_it(tmp_path):
    spec, rows, decisions = _learner_run("rho")
    path = tmp_path / "old.zarr"
    _store(path, spec, rows)
    shutil.rmtree(path / "decisions")  # as an older lamcap wrote it
    assert read_decisions(path) == ([], [])
    old = open_store(path)
    assert old.decisions.sizes.get("decision", 0) == 0 and old.decision_log == []
    store = StoreWriter.open_or_create(path, spec)  # resuming adds the empty group, nothing else changes
    assert store.completed_decisions() == [] and store.append_decisions(decisions[:3], rows_of(decisions[:3])) == 3
    assert len(open_store(path).decision_log) == 3

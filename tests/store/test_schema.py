"""The store's schema, declared once (lamcap.store.schema): the page that documents it, the record of a failed
probe, and the relations a threshold row must keep."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from lamcap.kernels.outcome import STATUSES, Outcome
from lamcap.store.schema import PROBES, THRESHOLDS, error_record, markdown_all, threshold_relations

REPO = Path(__file__).resolve().parents[2]


def test_docs_store_md_holds_the_tables_the_schema_prints():
    page = (REPO / "docs" / "STORE.md").read_text()
    assert markdown_all() in page, "docs/STORE.md is out of date: paste `python -m lamcap.store.schema` into it"


def test_every_outcome_field_is_a_probe_variable_declared_with_units_and_a_description():
    names = {f.name for f in dataclasses.fields(Outcome)}
    assert names <= set(PROBES.names)
    for f in PROBES.fields:
        assert f.units and f.description and f.dtype in ("?", "i1", "i8", "f8")
        assert (f.dtype == "i1") == bool(f.categories), f.name
    assert PROBES["status"].categories == STATUSES


def test_a_failed_probe_is_never_sat_and_has_every_field():
    labels = {"problem": "op", "solver": "adam", "rho": 1.0, "rho_eff": 1.0, "rank": 8, "d": 8, "seed": 0, "p": 5,
              "alpha": 5 * math.log(5) / 64, "purpose": "search", "attempt": 3}
    record = error_record(labels, "cpu", "RuntimeError: boom")
    assert set(PROBES.names) <= set(record) and record["error"] == "RuntimeError: boom"
    assert record["status"] == "error" and record["sat"] is False and record["n_violations"] == -1
    assert record["kernel"] == "none" and record["target_hist"] == [] and math.isnan(record["accuracy"])
    Outcome(**{k: v for k, v in record.items() if k in {f.name for f in dataclasses.fields(Outcome)}})


def _row(p_lo, p_hi, p_star, alpha, d=8, complete=True):
    return {"p_lo": p_lo, "p_hi": p_hi, "p_star": p_star, "alpha_star": alpha, "d": d, "complete": complete}


@pytest.mark.parametrize("row, broken", [
    (_row(5, 6, 5, 5 * math.log(5) / 64), ""),
    (_row(10, 14, 11, 11.5 * math.log(11.5) / 64), ""),
    (_row(1, 2, 1, 0.0), ""),
    (_row(3, -1, -1, math.nan, complete=False), ""),
    (_row(5, 6, 5, 0.9), "alpha_star = 0.9"),
    (_row(5, 6, 6, 5 * math.log(5) / 64), "p_star = 6"),
    (_row(6, 5, 5, 0.1), "is not 1 <= p_lo < p_hi"),
    (_row(3, -1, 4, math.nan, complete=False), "incomplete but p_star = 4"),
])
def test_threshold_relations_hold_for_exact_and_bracketed_rows_and_name_what_breaks(row, broken):
    got = threshold_relations(row)
    assert (got == "") if not broken else (broken in got)
    assert {"p_lo", "p_hi", "p_star", "alpha_star", "complete"} <= set(THRESHOLDS.names)

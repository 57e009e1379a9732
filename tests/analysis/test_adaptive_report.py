"""`lamcap analyze` on adaptive stores: the rank and dimension figures, the decisions table, and skip notes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from lamcap.analysis import figures
from lamcap.analysis.report import build_report
from lamcap.orchestrator.learners.decisions import decision_row
from lamcap.orchestrator.learners.expansion import Expansion
from lamcap.orchestrator.spec import Cell, Probe
from lamcap.store.writer import StoreWriter
from tests.orchestrator.learners.adaptive_oracle import runner
from tests.orchestrator.learners.test_expansion import cubic_cost, make_spec, run
from tests.store.test_decisions_table import _threshold_rows


def adaptive_store(path, axis: str):
    """A store as an adaptive sweep leaves it: thresholds of the learners' cells and their decisions."""
    spec = make_spec(axis, problems=("op",))
    rows, decisions = run(Expansion(spec, cubic_cost))
    store = StoreWriter.open_or_create(path, spec)
    store.append_probes([runner(Probe(Cell(r["problem"], r["solver"], r["rho"], r["d"]), r["seed"], p), None, "cpu")
                         for r in rows.values() if r["complete"] for p in (r["p_star"], r["p_star"] + 1)])
    store.append_thresholds(_threshold_rows(list(rows.values())))
    store.append_decisions(decisions, [decision_row(d) for d in decisions])
    return spec, rows, decisions


def test_dimension_figure_draws_each_decisions_interval_and_the_seeds_per_d():
    spec = make_spec("d", problems=("op",))
    rows, decisions = run(Expansion(spec, cubic_cost))
    table = xr.Dataset.from_dataframe(pd.DataFrame([decision_row(d) for d in decisions])).rename(index="decision")
    runs = xr.Dataset.from_dataframe(pd.DataFrame(list(rows.values()))).rename(index="threshold")
    fig = figures.adaptive_dimension_figure(table, runs)
    left, right = fig.get_axes()
    shown = [d for d in decisions if d["width"] is not None and d["committed_seconds"] > 0]
    bars = left.containers[0]  # the errorbar container: points, caps, bar lines
    xs, ys = bars.lines[0].get_data()
    assert list(xs) == [d["committed_seconds"] for d in shown] and list(ys) == [d["alpha_inf"] for d in shown]
    segments = bars.lines[2][0].get_segments()
    assert [s[1][1] - s[0][1] for s in segments] == pytest.approx([d["width"] for d in shown])
    assert any(line.get_linestyle() == "-." and line.get_ydata()[0] == pytest.approx(0.5, abs=1e-3)
               for line in left.get_lines())  # the asymptote alpha_c(1) = kappa(1) / 2
    seeds = pd.DataFrame(list(rows.values())).groupby("d").size()
    assert [round(p.get_height()) for p in right.patches] == seeds.tolist()
    assert [t.get_text() for t in right.get_xticklabels()] == [str(d) for d in seeds.index]


@pytest.mark.filterwarnings("error")  # every figure is drawn without a warning
@pytest.mark.parametrize("axis, drawn, skipped", [("rho", "adaptive_rank", "adaptive_d"),
                                                  ("d", "adaptive_d", "adaptive_rank")])
def test_analyze_draws_the_adaptive_figure_and_prints_the_decisions(tmp_path, axis, drawn, skipped):
    _, _, decisions = adaptive_store(tmp_path / "s.zarr", axis)
    result, text, figs, paths = build_report(str(tmp_path / "s.zarr"), str(tmp_path / "out"), n_boot=20)
    assert drawn in figs and skipped not in figs and (tmp_path / "out" / paths[drawn].split("/")[-1]).is_file()
    assert any(note.startswith(f"figure {skipped}: the store has no") for note in result.notes)
    table = text.split("Adaptive axis")[1].splitlines()[4:]
    stops = [d for d in decisions if d["basis"] == "stop"]
    assert len(table) == len(stops)  # one line per learner, each with why it stopped
    for line, stop in zip(table, stops):
        assert stop["reason"] in line and line.split()[0] == ("rank" if axis == "rho" else "dimension")


def test_a_store_without_decisions_skips_both_figures_with_notes(tiny_store):
    result, text, figs, _ = build_report(str(tiny_store), None, n_boot=20)
    assert not {"adaptive_rank", "adaptive_d"} & set(figs) and "Adaptive axis" not in text
    notes = [n for n in result.notes if n.startswith("figure adaptive")]
    assert len(notes) == 2 and all("the store has no" in n for n in notes)
    assert np.isin(["scaling"], list(figs)).all()

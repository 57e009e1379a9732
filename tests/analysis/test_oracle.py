"""lamcap.analysis.oracle: margin curves and the optimizer gap against hand-computed values."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from lamcap.analysis import figures, oracle
from lamcap.analysis.load import open_store
from lamcap.analysis.report import analyze, report_text, summary_rows
from lamcap.errors import InvalidInput
from tests.analysis.store_factory import alpha_of, probe_record, threshold_record, write_store

# Per-seed p* of the same disorder: lp is the exact one; seed 4 has no adam threshold (unpaired).
LP_P = {("op", 8): [22, 23, 21, 24, 22], ("dp", 8): [21, 22, 20, 22, 23], ("op", 12): [40, 41, 39, 42, 40]}
ADAM_P = {("op", 8): [22, 21, 21, 20], ("dp", 8): [21, 22, 20, 22], ("op", 12): [38, 41, 37, 40]}


def _gap_store(path) -> str:
    rng = np.random.default_rng(0)
    probes, rows = [], []
    for (problem, d), lp_ps in LP_P.items():
        for solver, ps in (("lp", lp_ps), ("adam", ADAM_P[(problem, d)])):
            cell = {"problem": problem, "solver": solver, "rho": 1.0, "d": d}
            for seed, p_star in enumerate(ps):
                rows.append(threshold_record(cell, seed, p_star, 3))
                probes += [probe_record(cell, seed, p, p_star, "search", rng) for p in (p_star - 5, p_star, p_star + 1)]
    # distractors the gap must ignore: hebbian (not a gradient solver) and adam at rho = 0.5
    for solver, rho in (("hebbian", 1.0), ("adam", 0.5)):
        cell = {"problem": "op", "solver": solver, "rho": rho, "d": 8}
        rows.append(threshold_record(cell, 0, 5, 3))
        probes.append(probe_record(cell, 0, 5, 5, "search", rng))
    error = probe_record({"problem": "op", "solver": "lp", "rho": 1.0, "d": 8}, 0, 30, 22, "search", rng)
    probes.append({**error, "status": "error", "sat": False, "lp_margin": math.nan})
    return write_store(path, probes, rows)


@pytest.fixture(scope="module")
def gap_store(tmp_path_factory):
    return open_store(_gap_store(tmp_path_factory.mktemp("oracle") / "gap.zarr"))


def test_optimizer_gap_matches_a_hand_computation(gap_store):
    gap = oracle.optimizer_gap(gap_store.thresholds)
    assert gap.solver.values.tolist() == ["adam"]
    for (problem, d), lp_ps in LP_P.items():
        ratios = [a / b for a, b in zip(ADAM_P[(problem, d)], lp_ps)]
        cell = gap.sel(problem=problem, solver="adam", d=d)
        assert int(cell.n_seeds) == len(ratios) == 4
        assert float(cell.ratio_median) == pytest.approx(statistics.median(ratios))
        assert float(cell.ratio_min) == pytest.approx(min(ratios))
        assert float(cell.ratio_max) == pytest.approx(max(ratios))
        assert float(cell.share_equal) == pytest.approx(sum(r == 1 for r in ratios) / len(ratios))
    assert int(gap.n_seeds.sel(problem="dp", solver="adam", d=12)) == 0  # no dp at d = 12


def test_gap_records_and_table_list_only_paired_cells(gap_store):
    rows = oracle.gap_records(oracle.optimizer_gap(gap_store.thresholds))
    assert [(r["problem"], r["d"]) for r in rows] == [("op", 8), ("op", 12), ("dp", 8)]
    text = oracle.format_gap_table(rows)
    assert "0.957" in text and "50%" in text  # op d = 8: median of 21/23 and 1; two seeds of four equal


def test_optimizer_gap_needs_lp_and_a_gradient_solver(tiny):
    with pytest.raises(InvalidInput, match="lp and a gradient solver"):
        oracle.optimizer_gap(tiny.thresholds)


def test_margin_curves_are_sorted_per_seed_with_the_relative_load(gap_store):
    curves = oracle.margin_curves(gap_store.probes, gap_store.thresholds)
    n_lp = sum(3 * len(ps) for ps in LP_P.values())  # the error probe is left out
    assert curves.sizes["probe"] == n_lp
    for problem, d, seed in {(str(a), int(b), int(c)) for a, b, c in
                             zip(curves.problem.values, curves.d.values, curves.seed.values)}:
        one = curves.isel(probe=np.flatnonzero(((curves.problem == problem) & (curves.d == d)
                                                & (curves.seed == seed)).values))
        p_star = LP_P[(problem, d)][seed]
        assert one.p.values.tolist() == [p_star - 5, p_star, p_star + 1]
        np.testing.assert_allclose(one.relative_load.values, [alpha_of(p, d) / alpha_of(p_star, d)
                                                              for p in one.p.values])
        assert one.lp_margin.values[0] > one.lp_margin.values[1] > 0 == one.lp_margin.values[2]


def test_margin_curves_need_lp_probes(tiny):
    with pytest.raises(InvalidInput, match="no lp probe"):
        oracle.margin_curves(tiny.probes, tiny.thresholds)
    with pytest.raises(InvalidInput, match="no lp_margin"):
        oracle.margin_curves(tiny.probes.drop_vars("lp_margin"), tiny.thresholds)


def test_figures_draw_one_line_per_seed_and_the_gap_per_problem(gap_store):
    fig = figures.margin_figure(oracle.margin_curves(gap_store.probes, gap_store.thresholds))
    axes = np.array(fig.get_axes()).reshape(2, 2)  # rows: load, relative load; columns: op, dp
    for col, n_seeds in ((0, 10), (1, 5)):  # op: 5 seeds at d = 8 and 12; dp: 5 at d = 8
        for ax in axes[:, col]:
            assert "margin" in ax.get_ylabel()
            assert sum(len(line.get_xdata()) == 3 for line in ax.get_lines()) == n_seeds
    assert axes[0, 0].get_title().startswith("OP") and axes[1, 0].get_xlabel().startswith("relative load")
    gap_fig = figures.gap_figure(oracle.optimizer_gap(gap_store.thresholds))
    (ax,) = gap_fig.get_axes()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["dp: median; bars: interquartile range over seeds; dots: seeds",
                              "equal to the exact p*", "op: median; bars: interquartile range over seeds; dots: seeds"]
    drawn = sorted({int(d) for d in gap_store.thresholds.d.values[(gap_store.thresholds.solver == "lp").values]})
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(d) for d in drawn]  # only the d with a gap


def test_report_prints_the_gap_and_skips_it_with_a_note_without_lp(gap_store, tiny):
    result = analyze(gap_store, n_boot=20)
    assert result.gap is not None and result.margins is not None
    assert "Optimizer gap" in report_text(result, summary_rows(result.summary), 0.95)
    plain = analyze(tiny, n_boot=20)
    assert plain.gap is None and plain.margins is None
    assert any(n.startswith("optimizer gap:") for n in plain.notes)
    assert any(n.startswith("LP margin curves:") for n in plain.notes)

"""lamcap.analysis.figures from a tiny stored sweep: axes, labels, series (matplotlib objects, not pixels)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from matplotlib.container import ErrorbarContainer

from lamcap.analysis import figures, mechanism, predicted, thresholds
from lamcap.analysis.report import analyze

# The tiny sweep (tests/analysis/store_factory.synthetic_sweep): op, dp x adam, hebbian x rho 1, 0.5 x d 8, 12.
N_D, N_SOLVERS, N_PROBLEMS, N_RHOS = 2, 2, 2, 2


@pytest.fixture(scope="module")
def result(tiny):
    return analyze(tiny, n_boot=50)


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _figure_legend(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_accuracy_figure_has_one_panel_per_problem_and_rho(tiny):
    fig = figures.accuracy_figure(thresholds.accuracy_curves(tiny.probes))
    axes = fig.get_axes()
    assert len(axes) == N_PROBLEMS * N_RHOS
    assert {ax.get_title().split(",")[0] for ax in axes} == {"OP (shared outputs)", "DP (private competitors)"}
    for ax in axes:
        assert ax.get_xlabel() == "load α = p ln p / d²" and "accuracy" in ax.get_ylabel()
        assert len(ax.get_lines()) == N_D * N_SOLVERS and ax.get_legend() is None  # no legend on the data
        hebbian = [line for line in ax.get_lines() if line.get_label().startswith("hebbian")]
        assert len(hebbian) == N_D and all(line.get_linestyle() == "--" for line in hebbian)
    assert len(_figure_legend(fig)) == N_D * N_SOLVERS  # one legend for the figure, each label once


def test_accuracy_figure_leaves_out_the_oracle(tiny):
    """lp returns no W when infeasible: its 'accuracy' 0 is no measurement, so it is not drawn."""
    curves = thresholds.accuracy_curves(tiny.probes)
    with_lp = xr.concat([curves, curves.sel(solver=["adam"]).assign_coords(solver=["lp"])], dim="solver")
    fig = figures.accuracy_figure(with_lp)
    assert not any(label.startswith("lp") for label in _figure_legend(fig))
    assert "lp not drawn" in fig.get_suptitle()


def _labels(ax) -> list[str]:
    return ax.get_legend_handles_labels()[1]


def test_scaling_figure_has_points_fits_and_theory_to_large_d(result):
    fig = figures.scaling_figure(result.summary, result.fits)
    axes = fig.get_axes()
    tops = [ax for ax in axes if ax.get_ylabel().startswith("critical load α*")]
    assert len(tops) == N_RHOS
    for ax in tops:
        assert sum(isinstance(c, ErrorbarContainer) for c in ax.containers) == N_PROBLEMS * N_SOLVERS
        labels = _legend(ax)
        assert len(labels) == len(set(labels))  # each entry once
        # the three fits of the gradient-trained solver per problem; none for Hebbian
        assert sum(", theory fit" in s or ", naive fit" in s for s in labels) == 2 * N_PROBLEMS
        assert not any(s.startswith(("op hebbian,", "dp hebbian,")) for s in labels)
        assert sum("finite-size theory" in s for s in labels) == 1
        assert sum(s.startswith("Hebbian theory") for s in labels) == N_PROBLEMS
        theory = next(line for line in ax.get_lines() if "finite-size theory" in line.get_label())
        assert min(theory.get_xdata()) == pytest.approx(1 / np.log(1e12))  # drawn as far as the fits go
        assert ax.get_xlim()[0] == 0.0


def test_scaling_residuals_are_the_gradient_solvers_against_the_theory(result):
    fig = figures.scaling_figure(result.summary, result.fits)
    lows = [ax for ax in fig.get_axes() if ax.get_ylabel() == "α* − finite-size theory"]
    assert len(lows) == N_RHOS
    for low, rho in zip(lows, sorted(result.summary.rho.values.tolist(), reverse=True)):
        bars = [c for c in low.containers if isinstance(c, ErrorbarContainer)]
        assert len(bars) == N_PROBLEMS  # Adam only: Hebbian and lp are not in the residual panel
        for bar in bars:  # each residual is the plotted median minus the theory at that d
            problem, solver = bar.get_label().split(":")[0].split()
            _, y = bar.lines[0].get_data()
            cell = result.summary.sel(problem=problem, solver=solver, rho=rho).dropna("d", subset=["alpha_star_median"])
            want = [float(cell.alpha_star_median.sel(d=d)) - predicted.finite_size(problem, solver, int(d), rho)
                    for d in cell.d.values]
            assert solver == "adam" and list(y) == pytest.approx(want)


def test_scaling_residuals_show_the_search_bracket_when_thresholds_are_bracketed(result):
    wide = result.summary.copy()
    wide["alpha_star_bracket"] = xr.full_like(wide.alpha_star_median, 0.04)
    fig = figures.scaling_figure(wide, result.fits)
    low = next(ax for ax in fig.get_axes() if ax.get_ylabel() == "α* − finite-size theory")
    boxes = [p for p in low.patches if p.get_height() > 0]
    assert boxes and all(p.get_height() == pytest.approx(0.04) for p in boxes)
    assert "search bracket (median over seeds)" in _legend(low)


def test_spectra_figure_has_one_histogram_per_problem_and_the_theory(result):
    fig = figures.spectra_figure(result.spectra, result.distances)
    axes = fig.get_axes()
    assert len(axes) == N_RHOS
    for ax in axes:
        assert ax.get_xlabel().startswith("singular value") and ax.get_ylabel() == "density"
        labels = _legend(ax)
        series = [s for s in labels if s.startswith(("op ", "dp "))]
        assert len(series) == N_PROBLEMS and all(s.split(",")[0].endswith("adam") for s in series)  # no Hebbian
        assert all("d = 12, 3 seeds" in s for s in series)  # the largest d, pooled over seeds
        assert sum(s in ("truncated quarter circle (eq. 10)", "two-layer initialisation") for s in labels) == 2


def test_a_series_whose_solver_stops_at_a_smaller_d_is_drawn_at_its_own_largest_d(result):
    """(lp stops at d <= 36 in a sweep that goes further): its histogram is its largest d's, never empty."""
    import numpy as np
    from matplotlib.patches import StepPatch

    spectra = result.spectra
    keep = ~((spectra.problem == "dp") & (spectra.d == 12)).values
    fig = figures.spectra_figure(spectra.isel(probe=np.flatnonzero(keep)), None)
    for ax in fig.get_axes():
        series = sorted(s for s in _legend(ax) if s.startswith(("op ", "dp ")))
        assert [s.split(",")[1].strip() for s in series] == ["d = 8", "d = 12"]  # dp, then op
        for patch in ax.patches:
            if isinstance(patch, StepPatch):
                assert np.isfinite(patch.get_data().values).all() and patch.get_data().values.sum() > 0


def test_scores_figure_has_target_and_offtarget_per_solver_per_regime(tiny):
    hists = mechanism.score_histograms(tiny.probes, tiny.thresholds, "op", 1.0, 12)
    fig = figures.scores_figure(hists)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["below threshold", "near threshold", "above threshold"]
    for ax in axes:
        assert ax.get_xlabel().startswith("normalised score") and ax.get_ylabel() == "density"
        labels = _legend(ax)
        assert len(labels) == 3 * N_SOLVERS  # target, off-target and its own sqrt(2 ln p) per solver
        assert {"adam: target", "adam: off-target", "hebbian: target", "hebbian: off-target"} <= set(labels)
        for solver in ("adam", "hebbian"):  # the extreme-value line sits at the solver's own median p
            p = float(hists.p_median.sel(solver=solver, regime=ax.get_title().split()[0]))
            line = next(x for x in ax.get_lines() if x.get_label().startswith(f"{solver}: √(2 ln p)"))
            assert line.get_xdata()[0] == pytest.approx(np.sqrt(2 * np.log(p)))


def test_steps_figure_has_one_line_per_trained_cell_a_short_legend_and_the_cap(result):
    from lamcap.analysis.report import step_cap

    cap = step_cap(result.store.probes)
    fig = figures.steps_figure(result.steps, cap)
    (ax,) = fig.get_axes()
    assert ax.get_xlabel().startswith("relative load α / α*") and "steps" in ax.get_ylabel()
    assert ax.get_yscale() == "log"
    assert len(ax.get_lines()) == N_PROBLEMS * N_RHOS * N_D + 2  # Hebbian takes no steps; + threshold and cap
    # the legend names d, problem and rho once each, not every line
    assert len(_legend(ax)) == N_D + N_PROBLEMS + N_RHOS + 2
    assert cap == 4000 and any(f"step cap {cap:g}" in s for s in _legend(ax))
    assert any(line.get_ydata()[0] == cap for line in ax.get_lines() if len(line.get_ydata()) == 2)


# ---- the appendix figures -------------------------------------------------------------------------
def test_loss_figure_has_one_line_per_trained_cell_and_a_band(tiny):
    from lamcap.analysis.observables import loss_curves

    curves = loss_curves(tiny.probes)
    assert set(curves.solver.values) == {"adam"}  # Hebbian's scale, hence its loss, is arbitrary
    fig = figures.loss_figure(curves)
    axes = fig.get_axes()
    assert len(axes) == N_PROBLEMS * N_RHOS
    for ax in axes:
        assert ax.get_yscale() == "log" and "cross-entropy" in ax.get_ylabel()
        assert len(ax.get_lines()) == N_D and len(ax.collections) == N_D  # a mean line and a band per d


def test_a_zero_loss_is_marked_not_plotted_on_the_log_axis(tiny):
    from lamcap.analysis.observables import loss_curves
    from lamcap.analysis.plot_load import LOSS_FLOOR

    curves = loss_curves(tiny.probes)
    zero = curves.copy()  # each series' smallest mean loss becomes a float-precision zero
    zero["loss_mean"] = zero.loss_mean.where(zero.loss_mean != zero.loss_mean.min("alpha_bin"), 1e-15)
    fig = figures.loss_figure(zero)
    for ax in fig.get_axes():
        mean_lines = [line for line in ax.get_lines() if line.get_label().startswith("adam")]
        assert all(np.nanmin(line.get_ydata()) > LOSS_FLOOR for line in mean_lines)  # no 1e-15 on the log axis
        markers = [line for line in ax.get_lines() if line.get_label().startswith("mean loss <")]
        assert markers and all(np.allclose(line.get_ydata(), 0.0) for line in markers)  # the bottom edge, in axes
        assert all(line.get_transform() == ax.get_xaxis_transform() for line in markers)  # units: no 1e-15 limit
        assert ax.get_ylim()[0] > 1e-6


def test_loss_curves_are_the_mean_and_spread_of_final_losses(tiny):
    import numpy as np

    from lamcap.analysis.observables import loss_curves

    curves = loss_curves(tiny.probes, n_bins=4)
    probes = tiny.probes
    edges = np.linspace(0.0, float(probes.alpha.max()) * (1 + 1e-9), 5)
    for problem, rho, d in (("op", 1.0, 8), ("dp", 0.5, 12)):
        mask = ((probes.problem == problem) & (probes.rho == rho) & (probes.d == d) & (probes.solver == "adam")).values
        loss, alpha = probes.final_loss.values[mask], probes.alpha.values[mask]
        for k in range(4):
            inside = (alpha > edges[k]) & (alpha <= edges[k + 1])
            got = curves.sel(problem=problem, solver="adam", rho=rho, d=d).isel(alpha_bin=k)
            if inside.any():
                assert float(got.loss_mean) == pytest.approx(loss[inside].mean())
                assert float(got.loss_std) == pytest.approx(loss[inside].std(), nan_ok=True)


def test_input_figure_follows_one_input_below_near_and_above(tiny):
    from lamcap.analysis.observables import input_views

    views = input_views(tiny.probes, tiny.thresholds)
    assert (views.attrs["problem"], views.attrs["rho"], views.attrs["d"], views.attrs["seed"]) == ("op", 1.0, 12, 0)
    rel = views.relative_load.sel(solver="adam").values
    assert rel[0] < 0.95 and rel[1] == pytest.approx(1.0) and rel[2] > 1.05
    assert views.sat.sel(solver="adam").values.tolist() == [1.0, 1.0, 0.0]
    near = views.sel(solver="adam", regime="near")
    assert float(near.competitor_counts.sum()) == float(near.p) - 1  # its own p - 1 competitors
    fig = figures.input_figure(views)
    axes = fig.get_axes()
    assert len(axes) == N_SOLVERS * 3
    assert [ax.get_title().split(":")[0] for ax in axes[:3]] == ["adam, below", "adam, near", "adam, above"]
    for ax in axes:
        assert "its target score" in " ".join(_legend(ax)) and ax.get_xlabel().startswith("normalised score")


def test_hebbian_scores_figure_has_a_target_line_per_load_and_the_off_targets(tiny):
    from lamcap.analysis.observables import hebbian_per_problem

    by_load = hebbian_per_problem(tiny.probes, n_loads=3)
    assert [ds.attrs["problem"] for ds in by_load] == ["op", "dp"]
    for ds in by_load:
        assert ds.sizes["load"] == 3 and list(ds.alpha.values) == sorted(ds.alpha.values)
        widths = ds.attrs["target_bin_edges"][1] - ds.attrs["target_bin_edges"][0]
        assert float((ds.target_density * widths).sum("target_bin").min()) == pytest.approx(1.0)
    fig = figures.hebbian_scores_figure(by_load)
    for ax in fig.get_axes():
        labels = _legend(ax)
        assert sum(s.startswith("target, α =") for s in labels) == 3 and "off-target, all loads" in labels


def test_a_store_without_input_scores_gets_a_note_not_a_traceback(tmp_path):
    from lamcap.analysis.load import open_store
    from lamcap.analysis.report import build_report
    from tests.analysis.store_factory import synthetic_sweep, write_store

    probes, rows = synthetic_sweep(ds=(8, 12), seeds=(0, 1))
    path = write_store(tmp_path / "old.zarr", probes, rows, drop=("input_target_score", "input_competitor_hist"))
    assert "input_target_score" not in open_store(path).probes
    result, _, drawn, written = build_report(path, str(tmp_path / "out"), n_boot=20)
    assert "input_scores" not in drawn and {"loss", "hebbian_scores", "scaling"} <= set(drawn)
    assert any(note.startswith("figure input_scores: this store has no input_target_score") for note in result.notes)
    assert "fig7_input_scores.png" not in {p.split("/")[-1] for p in written.values()}

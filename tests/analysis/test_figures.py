"""lamcap.analysis.figures from a tiny stored sweep: axes, labels and number of series (matplotlib objects, not pixels)."""
from __future__ import annotations

import pytest
from matplotlib.container import ErrorbarContainer

from lamcap.analysis import figures, mechanism, thresholds
from lamcap.analysis.report import analyze

try:
    import lamcap.analysis.theory  # noqa: F401 (written alongside; figures draw theory curves only when it exists)

    HAS_THEORY = True
except ImportError:
    HAS_THEORY = False
# The tiny sweep (tests/analysis/store_factory.synthetic_sweep): op, dp x adam, hebbian x rho 1, 0.5 x d 8, 12.
N_D, N_SOLVERS, N_PROBLEMS, N_RHOS = 2, 2, 2, 2


@pytest.fixture(scope="module")
def result(tiny):
    return analyze(tiny, n_boot=50)


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_accuracy_figure_has_one_panel_per_problem_and_rho(tiny):
    fig = figures.accuracy_figure(thresholds.accuracy_curves(tiny.probes))
    axes = fig.get_axes()
    assert len(axes) == N_PROBLEMS * N_RHOS
    assert {ax.get_title().split(",")[0] for ax in axes} == {"OP (shared outputs)", "DP (private competitors)"}
    for ax in axes:
        assert ax.get_xlabel() == "load α = p ln p / d²" and "accuracy" in ax.get_ylabel()
        assert len(ax.get_lines()) == N_D * N_SOLVERS == len(_legend(ax))
        hebbian = [line for line in ax.get_lines() if line.get_label().startswith("hebbian")]
        assert len(hebbian) == N_D and all(line.get_linestyle() == "--" for line in hebbian)


def test_scaling_figure_has_points_fits_and_theory(result):
    fig = figures.scaling_figure(result.summary, result.fits[1])
    axes = fig.get_axes()
    assert len(axes) == N_RHOS
    for ax in axes:
        assert ax.get_xlabel().startswith("1 / ln d") and ax.get_ylabel().startswith("critical load α*")
        assert sum(isinstance(c, ErrorbarContainer) for c in ax.containers) == N_PROBLEMS * N_SOLVERS
        labels = _legend(ax)
        assert sum("fit" in s for s in labels) == N_PROBLEMS * N_SOLVERS
        assert sum("finite-size theory" in s for s in labels) == (N_SOLVERS if HAS_THEORY else 0)
        assert sum(s.startswith("asymptote") for s in labels) == (N_SOLVERS if HAS_THEORY else 0)


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
        assert sum(s in ("truncated quarter circle (eq. 10)", "two-layer initialisation") for s in labels) == (
            2 if HAS_THEORY else 0)


def test_scores_figure_has_target_and_offtarget_per_solver_per_regime(tiny):
    hists = mechanism.score_histograms(tiny.probes, tiny.thresholds, "op", 1.0, 12)
    fig = figures.scores_figure(hists)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["below threshold", "near threshold", "above threshold"]
    for ax in axes:
        assert ax.get_xlabel().startswith("normalised score") and ax.get_ylabel() == "density"
        labels = _legend(ax)
        assert len(labels) == 2 * N_SOLVERS + 1
        assert {"adam: target", "adam: off-target", "hebbian: target", "hebbian: off-target"} <= set(labels)


def test_steps_figure_has_one_line_per_trained_cell(result):
    fig = figures.steps_figure(result.steps)
    (ax,) = fig.get_axes()
    assert ax.get_xlabel().startswith("relative load α / α*") and "steps" in ax.get_ylabel()
    assert ax.get_yscale() == "log"
    assert len(_legend(ax)) == N_PROBLEMS * N_RHOS * N_D + 1  # Hebbian takes no steps; + the threshold line

"""The adaptive rank figure from thresholds and decisions of a real RankLearner run (matplotlib objects)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from lamcap.analysis import figures
from lamcap.analysis.decisions import added_cells
from lamcap.orchestrator.learners.rank import RankLearner
from lamcap.orchestrator.spec.adaptive_rules import RhoRule

DS = (8, 12)


def curve(rho: float, d: int) -> float:
    return 0.9 - 0.6 * (1 - rho) ** 2 + 1.0 / math.log(d)


@pytest.fixture(scope="module")
def sweep():
    """Thresholds (3 seeds per cell) and decisions of one rank learner per (problem, d)."""
    rows, decisions = [], []
    rng = np.random.default_rng(0)
    for problem in ("op", "dp"):
        for d in DS:
            learner = RankLearner(RhoRule(0.1, 1.0, 5), d, {"problem": problem, "solver": "adam"})
            while rhos := learner.ask():
                for rho in rhos:
                    alphas = curve(rho, d) + 0.01 * rng.standard_normal(3)
                    learner.tell(rho, list(alphas))
                    rows += [{"problem": problem, "solver": "adam", "rho": rho, "rho_eff": rho,
                              "rank": learner.rank_of(rho), "d": d, "seed": s, "alpha_star": a}
                             for s, a in enumerate(alphas)]
            decisions += learner.decisions
    thresholds = xr.Dataset.from_dataframe(pd.DataFrame(rows)).rename(index="threshold")
    return thresholds, xr.Dataset.from_dataframe(pd.DataFrame(added_cells(decisions))), decisions


def _markers(ax, size: float) -> list:
    return [line for line in ax.get_lines() if line.get_marker() == "o" and line.get_markersize() == size
            and len(line.get_xdata())]


def _points(items) -> set:
    return {(round(float(x), 9), round(float(y), 9)) for x, y in items}


def test_one_panel_per_problem_with_the_learners_cells_marked_in_order(sweep, tmp_path):
    thresholds, added, decisions = sweep
    fig = figures.adaptive_rank_figure(thresholds, added)
    axes = fig.get_axes()
    assert [ax.get_title().split(",")[0] for ax in axes] == ["OP (shared outputs)", "DP (private competitors)"]
    table = added.to_dataframe()
    for ax, problem in zip(axes, ("op", "dp")):
        mine = table[table.problem == problem]
        assert len(_markers(ax, 11)) == int((mine.order > 0).sum()) > 0  # filled: added by the learner
        assert len(_markers(ax, 7)) == int((mine.order == 0).sum())  # open: the first round
        assert sorted(int(t.get_text()) for t in ax.texts) == sorted(mine.order[mine.order > 0].tolist())
        filled = _points((line.get_xdata()[0], line.get_ydata()[0]) for line in _markers(ax, 11))
        assert filled == _points(t.get_position() for t in ax.texts)  # each number sits on its cell
        dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":" and len(line.get_xdata())]
        assert len(dotted) == len(DS)  # the finite-size theory at each d
        asymptote = [line for line in ax.get_lines() if line.get_linestyle() == "-."]
        assert len(asymptote) == 1 and np.nanmax(asymptote[0].get_ydata()) == pytest.approx(0.5, abs=1e-3)
        labels = {t.get_text() for t in ax.get_legend().get_texts()}
        assert {"first round", "added by the learner (number: order)", "d = 8", "d = 12"} <= labels
        assert "ρ" in ax.get_xlabel() and "α*" in ax.get_ylabel()
    added_rounds = [d for d in decisions if d["basis"] not in ("initial", "stop")]
    assert int(table.order.max()) == max(sum(1 for d in added_rounds if (d["problem"], d["d"]) == key)
                                         for key in {(d["problem"], d["d"]) for d in added_rounds})
    figures.save(fig, tmp_path / "adaptive.png")
    assert (tmp_path / "adaptive.png").stat().st_size > 10_000


def test_fixed_ranks_are_drawn_without_order(sweep):
    thresholds, _, _ = sweep
    fig = figures.adaptive_rank_figure(thresholds)
    cells = thresholds.to_dataframe().query("problem == 'op'").groupby(["d", "rank"]).ngroups
    for ax in fig.get_axes():
        assert not ax.texts and not _markers(ax, 11) and len(_markers(ax, 7)) == cells

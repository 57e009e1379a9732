"""Figures of the adaptive axes: alpha*(rho) with the rank learner's cells, the dimension learner's alpha_inf
interval against device-seconds (docs/STORE.md, group `decisions`)."""
from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from lamcap.analysis import predicted
from lamcap.analysis.plot_style import PROBLEM_NAMES, SOLVER_ORDER, colours, grid, ordered


def _rank_theory(ax, problem: str, solver: str, d: int, rhos: np.ndarray, colour) -> None:
    """The finite-size prediction at d and rank fraction r / d at every integer rank of the plotted range (at most
    40)."""
    ranks = np.unique(np.round(np.linspace(max(1, round(rhos.min() * d)), round(rhos.max() * d), 40)).astype(int))
    curve = [predicted.finite_size(problem, solver, d, r / d) for r in ranks]
    ax.plot(ranks / d, curve, ":", color=colour, lw=1.2)


def _learner_points(ax, cells: xr.Dataset, added, colour) -> None:
    """Medians joined by the interpolant; first-round cells open, added ones filled with their order inside."""
    ax.plot(cells.rho_eff, cells.median_alpha, "-", color=colour, lw=1, alpha=0.8, zorder=2)
    order = {int(r): int(o) for r, o in zip(added["rank"], added["order"])} if added is not None else {}
    red, green, blue = colour[:3]
    ink = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.55 else "white"  # legible on the fill
    for rank, rho, med in zip(cells["rank"].values, cells.rho_eff.values, cells.median_alpha.values):
        n = order.get(int(rank), 0)
        if n:
            ax.plot(rho, med, "o", ms=11, color=colour, mec="white", mew=0.8, zorder=3)
            ax.text(rho, med, str(n), ha="center", va="center", fontsize=6.5, color=ink, fontweight="bold", zorder=4)
        else:
            ax.plot(rho, med, "o", ms=7, color=colour, mfc="white", mew=1.6, zorder=3)


def _rank_panel(ax, series, chosen, shades: dict, problem: str, solver: str) -> None:
    """One (problem, solver) of adaptive_rank_figure: every d, the asymptote, the legend."""
    for d, at_d in series.groupby("d"):
        colour = shades[d]
        ax.plot(at_d.rho_eff, at_d.alpha_star, ".", ms=3, color=colour, alpha=0.35)
        cells = at_d.groupby("rank").agg(rho_eff=("rho_eff", "first"), median_alpha=("alpha_star", "median"))
        mine = None if chosen is None else chosen[(chosen.problem == problem) & (chosen.solver == solver)
                                                   & (chosen.d == d)]
        _learner_points(ax, xr.Dataset.from_dataframe(cells.reset_index()), mine, colour)
        _rank_theory(ax, problem, solver, int(d), series.rho_eff.values, colour)
        ax.plot([], [], "-", color=colour, lw=6, label=f"d = {d}")
    rho_grid = np.linspace(series.rho_eff.min(), 1.0, 200)
    ax.plot(rho_grid, [predicted.asymptote(solver, r) for r in rho_grid], "-.", color="k", lw=1,
            label="d → ∞: κ(ρ)/2" if solver != "hebbian" else "d → ∞: κ(ρ)/8")
    ax.plot([], [], "o", color="grey", ms=7, mfc="white", mew=1.6, label="first round")
    ax.plot([], [], "o", color="grey", ms=11, mec="white", label="added by the learner (number: order)")
    ax.plot([], [], ":", color="grey", label=r"finite-size theory $\alpha_c^{RS}(d;\,\rho)$")
    ax.set(title=f"{PROBLEM_NAMES.get(problem, problem)}, {solver}: α*(ρ) and the learner's cells",
           xlabel="rank fraction ρ = r / d", ylabel="critical load α* = p* ln p* / d²")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def adaptive_rank_figure(thresholds: xr.Dataset, added: xr.Dataset | None = None) -> Figure:
    """alpha*(rho) at each d: per-seed points, medians joined, finite-size theory (dotted) and asymptote;
    cells of the rank learner's first round open, the ones it added filled and numbered in the order it
    added them. One panel per (problem, solver).

    thresholds: the store's thresholds table (dim threshold; problem, solver, d, rank, rho_eff, alpha_star, labels
    decoded). added: the learner's table of chosen cells (lamcap.analysis.decisions.added_cells as a Dataset
    of one dimension: problem, solver, d, rank, order), None when the ranks were a fixed list.
    """
    table = thresholds.to_dataframe()
    chosen = added.to_dataframe() if added is not None else None
    solvers = ordered(table.solver.unique(), SOLVER_ORDER)
    panels = [(p, s) for p in ordered(table.problem.unique()) for s in solvers
              if ((table.problem == p) & (table.solver == s)).any()]
    fig, axes = grid(1, len(panels), width=6.5, height=5.0)
    shades = colours(table.d.unique().tolist())
    for ax, (problem, solver) in zip(axes[0], panels):
        _rank_panel(ax, table[(table.problem == problem) & (table.solver == solver)], chosen, shades, problem, solver)
    return fig


def _interval_panel(ax, series, colour, label: str, solver: str, rho: float) -> None:
    """One series of adaptive_dimension_figure's left panel: alpha_inf +- width / 2 against device-seconds."""
    known = series[np.isfinite(series.width) & (series.spent_seconds > 0)]
    ax.errorbar(known.spent_seconds, known.alpha_inf, yerr=known.width / 2, fmt="o-", ms=3, capsize=2, lw=1,
                color=colour, label=label)
    ax.axhline(predicted.asymptote(solver, rho), color=colour, ls="-.", lw=0.8)


def adaptive_dimension_figure(decisions: xr.Dataset, thresholds: xr.Dataset) -> Figure:
    """The adaptive dimension axis: (left) each decision's alpha_inf and its interval (the fit alpha_inf + a / ln d
    of the thresholds told so far) against the cost model's device-seconds spent, with the asymptotic theory
    (dash-dotted) and the target width; (right) the seeds the learner ran at each d, per (problem, solver, rho).

    decisions: the store's decisions table (dim decision; learner, problem, solver, rho, alpha_inf, width, target,
    spent_seconds, labels decoded); thresholds: its thresholds table (every seed run, complete or not).
    """
    table = decisions.to_dataframe()
    table = table[table.learner == "dimension"]
    runs = thresholds.to_dataframe()
    rank = {p: i for i, p in enumerate(ordered(table.problem.unique()))}
    keys = sorted({(p, s, float(r)) for p, s, r in zip(table.problem, table.solver, table.rho)},
                  key=lambda k: (rank[k[0]], k[1], -k[2]))
    shades = colours(range(len(keys)))
    fig, axes = grid(1, 2, width=6.0, height=4.4)
    left, right = axes[0]
    ds = sorted(int(d) for d in runs.d.unique())
    width = 0.8 / max(len(keys), 1)
    for i, (problem, solver, rho) in enumerate(keys):
        label = f"{problem} {solver}, ρ = {rho:g}"
        series = table[(table.problem == problem) & (table.solver == solver) & (table.rho == rho)]
        _interval_panel(left, series, shades[i], label, solver, rho)
        mine = runs[(runs.problem == problem) & (runs.solver == solver) & (runs.rho == rho)]
        seeds = mine.groupby("d").size().reindex(ds, fill_value=0)
        right.bar(np.arange(len(ds)) + (i - (len(keys) - 1) / 2) * width, seeds.values, width=width,
                  color=shades[i], label=label)
    right.set_xticks(np.arange(len(ds)), [str(d) for d in ds])
    target = float(table.target.iloc[0]) if len(table) else float("nan")
    left.plot([], [], " ", label=f"target width {target:g}; dash-dotted: d → ∞ theory")
    left.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log range overlap
    left.set(xscale="log", xlabel="device-seconds spent (cost model)", ylabel="α_∞ and its interval",
             title="Fit of α*(d) = α_∞ + a / ln d, decision by decision")
    right.set(xlabel="dimension d (ladder rungs run)", ylabel="seeds run", title="Seeds the learner chose per d")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig

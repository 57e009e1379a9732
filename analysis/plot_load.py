"""Figures against the load: accuracy (Fig. 1), optimiser steps to a solution (Fig. 5), final loss (Fig. A.1)."""
from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lamcap.analysis.plot_style import ALPHA_LABEL, PROBLEM_NAMES, SOLVER_ORDER, SOLVER_STYLE, colours, grid, ordered

NO_ACCURACY = ("lp",)  # the exact oracle returns no W when infeasible: it has a verdict, not an accuracy
LOSS_FLOOR = 1e-12  # a mean loss below this is zero to float precision: marked on the bottom edge, not on a log scale


def _figure_legend(fig: Figure, axes) -> None:
    """One legend for the whole figure, each label once, outside the panels on the right."""
    first: dict = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            first.setdefault(label, handle)
    if first:
        fig.legend(list(first.values()), list(first), loc="outside right upper", fontsize=7, handlelength=3.5)


def accuracy_figure(curves: xr.Dataset) -> Figure:
    """Fig. 1: mean accuracy vs alpha per d; rows rho, columns OP | DP; Hebbian dashed; lp has no accuracy."""
    problems, rhos = ordered(curves.problem.values), sorted(curves.rho.values.tolist(), reverse=True)
    shade = colours(curves.d.values.tolist())
    fig, axes = grid(len(rhos), len(problems))
    solvers = [s for s in ordered(curves.solver.values, SOLVER_ORDER) if s not in NO_ACCURACY]
    for (i, rho), (j, problem) in ((r, c) for r in enumerate(rhos) for c in enumerate(problems)):
        ax = axes[i, j]
        for solver in solvers:
            for d in sorted(curves.d.values.tolist()):
                acc = curves.accuracy.sel(problem=problem, solver=solver, rho=rho, d=d).dropna("alpha_bin")
                if acc.size:
                    ax.plot(acc.alpha_bin, acc, SOLVER_STYLE.get(solver, "-."), marker="o", ms=3,
                            color=shade[d], label=f"{solver}, d = {d}")
        ax.set(title=f"{PROBLEM_NAMES.get(problem, problem)}, ρ = {rho:g}", xlabel=ALPHA_LABEL,
               ylabel="accuracy (fraction stored)", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    _figure_legend(fig, axes)
    skipped = [s for s in NO_ACCURACY if s in curves.solver.values]
    fig.suptitle("Accuracy vs load, mean over probes and seeds (solid: trained, dashed: Hebbian)"
                 + (f"\n{', '.join(skipped)} not drawn: an infeasible oracle returns no W, hence no accuracy"
                    if skipped else ""), fontsize=10)
    return fig


def steps_figure(steps: xr.Dataset, cap: float | None = None) -> Figure:
    """Fig. 5: median steps to accuracy 1 vs alpha / alpha*: colour d, marker problem, line rho; the step cap."""
    fig, axes = grid(1, 1, width=7.5, height=4.4)
    ax = axes[0, 0]
    shade = colours(steps.d.values.tolist())
    markers, rhos = {"op": "o", "dp": "s"}, sorted(steps.rho.values.tolist(), reverse=True)
    styles = {rho: ["-", "--", ":", "-."][k % 4] for k, rho in enumerate(rhos)}
    for problem in ordered(steps.problem.values):
        for solver in steps.solver.values.tolist():
            for rho in rhos:
                for d in sorted(steps.d.values.tolist()):
                    med = steps.steps_median.sel(problem=problem, solver=solver, rho=rho, d=d).dropna("load_bin")
                    if med.size:
                        ax.plot(med.load_bin, med, styles[rho], marker=markers.get(problem, "^"), ms=4, lw=1,
                                color=shade[d])
    ax.axvline(1.0, color="k", lw=0.8)
    if cap is not None:
        ax.axhline(cap, color="C3", lw=1.0, ls="--")
    proxies = [Line2D([], [], color=shade[d], lw=2, label=f"d = {d}") for d in sorted(shade)]
    proxies += [Line2D([], [], color="grey", marker=markers.get(p, "^"), ls="", label=p.upper()) for p in
                ordered(steps.problem.values)]
    proxies += [Line2D([], [], color="grey", ls=styles[rho], label=f"ρ = {rho:g}") for rho in rhos]
    proxies += [Line2D([], [], color="k", lw=0.8, label="threshold α = α*")]
    if cap is not None:
        proxies.append(Line2D([], [], color="C3", ls="--", label=f"step cap {cap:g}: a run that reaches it is UNSAT"))
    ax.legend(handles=proxies, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.set(title="Training slows down near the transition (converged runs only)",
           xlabel="relative load α / α* (per seed)", ylabel="optimiser steps to accuracy 1 (median)", yscale="log")
    ax.grid(alpha=0.3)
    return fig


def _loss_series(ax, sel: xr.Dataset, solver: str, colour, label: str) -> bool:
    """A mean-loss line with its ± 1 s.d. band; means below LOSS_FLOOR marked as triangles on the bottom edge of the
    axes instead (they do not stretch the log axis). True if any positive mean was drawn."""
    mean, std = sel.loss_mean.values, np.nan_to_num(sel.loss_std.values)
    tiny = mean < LOSS_FLOOR
    shown = np.where(tiny, np.nan, mean)
    ax.plot(sel.alpha_bin, shown, SOLVER_STYLE.get(solver, "-."), marker="o", ms=3, color=colour, label=label)
    ax.fill_between(sel.alpha_bin, np.where(tiny, np.nan, np.maximum(mean - std, mean / 20)),
                    np.where(tiny, np.nan, mean + std), color=colour, alpha=0.15, lw=0)
    if tiny.any():  # y in axes units: 0 is the bottom edge
        ax.plot(sel.alpha_bin.values[tiny], np.zeros(int(tiny.sum())), "v", ms=6, color=colour, clip_on=False,
                transform=ax.get_xaxis_transform(), label=f"mean loss < {LOSS_FLOOR:g} (zero in float): ▼ on the axis")
    return bool((~tiny).any())


def loss_figure(curves: xr.Dataset) -> Figure:
    """Fig. A.1: mean final cross-entropy of trained W vs alpha per d, band = one standard deviation; rows rho."""
    problems, rhos = ordered(curves.problem.values), sorted(curves.rho.values.tolist(), reverse=True)
    shade = colours(curves.d.values.tolist())
    fig, axes = grid(len(rhos), len(problems))
    for (i, rho), (j, problem) in ((r, c) for r in enumerate(rhos) for c in enumerate(problems)):
        ax, positive = axes[i, j], False
        for solver in ordered(curves.solver.values, ("adam",)):
            for d in sorted(curves.d.values.tolist()):
                sel = curves.sel(problem=problem, solver=solver, rho=rho, d=d).dropna("alpha_bin", subset=["loss_mean"])
                if sel.sizes["alpha_bin"]:
                    positive |= _loss_series(ax, sel, solver, shade[d], f"{solver}, d = {d}")
        ax.set(title=f"{PROBLEM_NAMES.get(problem, problem)}, ρ = {rho:g}", xlabel=ALPHA_LABEL,
               ylabel="final cross-entropy loss (nats)")
        if positive:  # a panel without a positive loss stays linear (nothing to log)
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    _figure_legend(fig, axes)
    fig.suptitle("Training loss at the end of Adam vs load\n(line: mean over probes and seeds; band: ± 1 s.d.)",
                 fontsize=10)
    return fig

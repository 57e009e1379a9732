"""Figures of the exact LP oracle: the optimal margin per seed against load, and the optimizer gap."""
from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from lamcap.analysis.plot_style import ALPHA_LABEL, PROBLEM_NAMES, colours, grid, legend_outside, ordered


def margin_figure(curves: xr.Dataset) -> Figure:
    """The exact LP's optimal normalised margin per seed vs load (top) and vs alpha / alpha* (bottom); per problem."""
    problems = ordered(curves.problem.values)
    shade = colours(sorted(set(curves.d.values.tolist())))
    fig, axes = grid(2, len(problems), width=5.2)
    for j, problem in enumerate(problems):
        labelled: set[int] = set()
        at = curves.isel(probe=np.flatnonzero((curves.problem == problem).values))
        for d in sorted(set(at.d.values.tolist())):
            for seed in sorted(set(at.seed.values[at.d.values == d].tolist())):
                one = at.isel(probe=np.flatnonzero(((at.d == d) & (at.seed == seed)).values))
                label = None if d in labelled else f"d = {d}"
                labelled.add(d)
                for ax, x in ((axes[0, j], one.alpha.values), (axes[1, j], one.relative_load.values)):
                    ax.plot(x, one.lp_margin.values, "-", marker="o", ms=2.5, lw=0.8, alpha=0.8,
                            color=shade[d], label=label)
        axes[0, j].set(title=f"{PROBLEM_NAMES.get(problem, problem)}: exact max-margin W", xlabel=ALPHA_LABEL)
        axes[1, j].set(xlabel="relative load α / α* (α*: the seed's largest feasible load)")
        axes[1, j].axvline(1.0, color="k", lw=0.8)
        for ax in axes[:, j]:
            ax.set(ylabel="optimal margin t* / σ_off")
            ax.axhline(0.0, color="grey", lw=0.6)
            ax.grid(alpha=0.3)
            legend_outside(ax)
    fig.suptitle("Margin of the optimal memory vs load, one line per seed: positive up to the seed's p*, 0 from p* + 1 "
                 "on,\nso on the relative-load axis the first zero sits one p-step past 1 (α(p* + 1) / α(p*))",
                 fontsize=10)
    return fig


def _gap_series(ax, cell: xr.Dataset, k: int, problem: str, offset: float) -> list[int]:
    """Per-seed ratios (dots), the median and the interquartile range over seeds of one problem; the d drawn."""
    ds = [int(d) for d in cell.d.values.tolist() if int(cell.n_seeds.sel(d=d)) > 0]
    if not ds:
        return []
    x = np.log2(np.asarray(ds, dtype=float)) + offset
    seeds = cell.seed_ratio.sel(d=ds).transpose("d", "seed").values
    for xi, row in zip(x, seeds):
        row = row[~np.isnan(row)]
        ax.plot(np.full(row.size, xi), row, ".", color=f"C{k}", alpha=0.4, ms=5)
    med = cell.ratio_median.sel(d=ds).values
    q1, q3 = np.nanquantile(seeds, [0.25, 0.75], axis=1)
    ax.errorbar(x, med, yerr=np.vstack([med - q1, q3 - med]), fmt="o-", capsize=3, color=f"C{k}",
                label=f"{problem}: median; bars: interquartile range over seeds; dots: seeds")
    return ds


def gap_figure(gap: xr.Dataset) -> Figure:
    """Per-seed p*(gradient solver) / p*(lp) vs d at rho = 1 with the median and interquartile range; one panel
    per solver; the axis spans the d where lp has thresholds."""
    solvers = ordered(gap.solver.values, ("adam",))
    fig, axes = grid(1, len(solvers), width=8.0, height=4.2)
    offsets = {"op": -0.06, "dp": 0.06}  # in log2 d: side by side, not on top of each other
    for ax, solver in zip(axes[0], solvers):
        drawn: set[int] = set()
        for k, problem in enumerate(ordered(gap.problem.values)):
            drawn.update(_gap_series(ax, gap.sel(problem=problem, solver=solver), k, problem,
                                     offsets.get(problem, 0.0)))
        ax.axhline(1.0, color="k", lw=0.8, label="equal to the exact p*")
        ticks = sorted(drawn)
        ax.set_xticks(np.log2(ticks), [str(d) for d in ticks])
        if ticks:
            ax.set_xlim(np.log2(ticks[0]) - 0.4, np.log2(ticks[-1]) + 0.4)
        ax.set(title=f"Optimizer gap of {solver} at ρ = 1", xlabel="dimension d (log scale)",
               ylabel=f"per-seed p*({solver}) / p*(exact LP)")
        ax.grid(alpha=0.3)
        legend_outside(ax)
    return fig

"""The paper's figures from analysis results (matplotlib, no pyplot state); each returns its Figure."""
from __future__ import annotations

import os

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure

from lamcap.analysis import mechanism, scaling

PROBLEM_NAMES = {"op": "OP (shared outputs)", "dp": "DP (private competitors)"}
SOLVER_STYLE = {"adam": "-", "lp": ":", "hebbian": "--"}
ALPHA_LABEL = "load α = p ln p / d²"


def ordered(values, preferred=("op", "dp")) -> list:
    """Distinct labels, the preferred ones first in their order, then the rest sorted."""
    values = list(dict.fromkeys(v.item() if hasattr(v, "item") else v for v in values))
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def _colours(values) -> dict:
    values = sorted(values)
    cmap = colormaps["viridis"]
    return {v: cmap(0.85 * i / max(len(values) - 1, 1)) for i, v in enumerate(values)}


def _grid(n_rows: int, n_cols: int, width: float = 5.0, height: float = 3.8) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * n_cols, height * n_rows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    return fig, axes


def accuracy_figure(curves: xr.Dataset) -> Figure:
    """Fig. 1: mean accuracy vs alpha per d; rows rho, columns OP | DP; Hebbian dashed."""
    problems, rhos = ordered(curves.problem.values), sorted(curves.rho.values.tolist(), reverse=True)
    colours = _colours(curves.d.values.tolist())
    fig, axes = _grid(len(rhos), len(problems))
    for (i, rho), (j, problem) in ((r, c) for r in enumerate(rhos) for c in enumerate(problems)):
        ax = axes[i, j]
        for solver in ordered(curves.solver.values, ("adam", "lp", "hebbian")):
            for d in sorted(curves.d.values.tolist()):
                acc = curves.accuracy.sel(problem=problem, solver=solver, rho=rho, d=d).dropna("alpha_bin")
                if acc.size:
                    ax.plot(acc.alpha_bin, acc, SOLVER_STYLE.get(solver, "-."), marker="o", ms=3,
                            color=colours[d], label=f"{solver}, d = {d}")
        ax.set(title=f"{PROBLEM_NAMES.get(problem, problem)}, ρ = {rho:g}", xlabel=ALPHA_LABEL,
               ylabel="accuracy (fraction stored)", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, handlelength=3.5)  # long enough to show the dashes
    fig.suptitle("Accuracy vs load, averaged over seeds (solid: trained, dashed: Hebbian)")
    return fig


def _theory_lines(ax, solver: str, rho: float, d_values: list[int], x_max: float) -> None:
    """Finite-size prediction through the measured d, and the d -> infinity asymptote."""
    try:
        finite = [scaling.finite_size_alpha(solver, d, rho) for d in d_values]
        asym = scaling.asymptotic_alpha(solver, rho)
    except ImportError:  # lamcap.analysis.theory not available: data and fit only
        return
    x = 1.0 / np.log(np.asarray(d_values, dtype=float))
    ax.plot(x, finite, ":", color="k" if solver != "hebbian" else "grey",
            label=f"finite-size theory ({solver})")
    ax.hlines(asym, 0.0, x_max, colors="k" if solver != "hebbian" else "grey", linestyles="-.", lw=0.8,
              label=f"asymptote {asym:.3f} ({solver})")


def scaling_figure(summary: xr.Dataset, fits: xr.Dataset) -> Figure:
    """Fig. C.1: median alpha* vs 1/ln d with intervals, the fit, finite-size theory, asymptote; one panel per rho."""
    rhos = sorted(summary.rho.values.tolist(), reverse=True)
    fig, axes = _grid(1, len(rhos), width=6.0, height=6.2)
    d_values = sorted(int(d) for d in summary.d.values)
    x_max = 1.05 / np.log(min(d_values))
    colours = _colours([(p, s) for p in summary.problem.values.tolist() for s in summary.solver.values.tolist()])
    for ax, rho in zip(axes[0], rhos):
        for solver in ordered(summary.solver.values, ("adam", "lp", "hebbian")):
            for problem in ordered(summary.problem.values):
                cell = summary.sel(problem=problem, solver=solver, rho=rho).dropna("d", subset=["alpha_star_median"])
                if not cell.sizes["d"]:
                    continue
                x, med = 1.0 / np.log(cell.d.values.astype(float)), cell.alpha_star_median.values
                err = np.abs(np.vstack([med - cell.alpha_star_lo.values, cell.alpha_star_hi.values - med]))
                colour = colours[(problem, solver)]
                ax.errorbar(x, med, yerr=err, fmt="o", capsize=3, color=colour, label=f"{problem} {solver}: median α*")
                grid = np.geomspace(min(d_values), 1e12, 200)
                curve = scaling.fitted_curve(fits.sel(problem=problem, solver=solver, rho=rho), grid)
                if np.isfinite(curve.values).any():
                    ax.plot(1.0 / np.log(grid), curve, SOLVER_STYLE.get(solver, "-"), color=colour, lw=1,
                            label=f"{problem} {solver}: fit α∞ + a / ln d")
            _theory_lines(ax, solver, rho, d_values, x_max)
        ax.set(title=f"Critical load vs dimension, ρ = {rho:g}", xlabel="1 / ln d  (d = dimension)",
               ylabel="critical load α* = p* ln p* / d²", xlim=(0.0, x_max))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))  # below: never on the points
    return fig


def _theory_density(pdf_name: str, rho: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A theory density rescaled so its support ends at 2 (as the stored spectra are)."""
    try:
        from lamcap.analysis import theory
    except ImportError:
        return None
    pdf = getattr(theory, pdf_name)
    s = np.linspace(0.0, 6.0, 3001)
    dens = mechanism.evaluate_pdf(pdf, s, rho)
    if not np.any(dens > 0):
        return None
    scale = 2.0 / s[np.flatnonzero(dens > 0)[-1]]
    return s * scale, dens / scale


def _spectrum_series(ax, at_rho: xr.Dataset, distances: xr.Dataset | None, edges: np.ndarray) -> None:
    """One step histogram per (problem, solver) at the largest d of this rho, pooled over seeds."""
    d = int(at_rho.d.max())
    combos = [(p, s) for p in ordered(at_rho.problem.values) for s in ordered(at_rho.solver.values, ("adam", "lp"))
              if bool(((at_rho.problem == p) & (at_rho.solver == s)).any())]
    for problem, solver in combos:
        mask = (at_rho.d == d) & (at_rho.problem == problem) & (at_rho.solver == solver)
        sel = at_rho.isel(probe=np.flatnonzero(mask.values))
        values = sel.scaled_sv.values.ravel()
        counts, _ = np.histogram(values[~np.isnan(values)], edges, density=True)
        ks = ""
        if distances is not None:
            ks = f", KS = {float(distances.ks_truncated.sel(problem=problem, solver=solver, rho=float(at_rho.rho[0]), d=d)):.2f}"
        ax.stairs(counts, edges, label=f"{problem} {solver}, d = {d}, {sel.sizes['probe']} seeds{ks}")


def spectra_figure(spectra: xr.Dataset, distances: xr.Dataset | None = None) -> Figure:
    """Fig. 3: pooled singular values of trained W at threshold (top one scaled to 2) vs theory; per rho."""
    trained = spectra.isel(probe=np.flatnonzero((spectra.solver != "hebbian").values))
    rhos = sorted(set(trained.rho.values.tolist()), reverse=True)
    fig, axes = _grid(1, max(len(rhos), 1))
    for ax, rho in zip(axes[0], rhos):
        _spectrum_series(ax, trained.isel(probe=np.flatnonzero((trained.rho == rho).values)), distances,
                         np.linspace(0.0, 2.05, 31))
        for pdf_name, style, name in (("truncated_quarter_circle_pdf", "k-", "truncated quarter circle (eq. 10)"),
                                      ("two_layer_init_pdf", "r--", "two-layer initialisation")):
            law = _theory_density(pdf_name, rho)
            if law is not None:
                ax.plot(*law, style, lw=1.2, label=name)
        ax.set(title=f"Spectrum of W at threshold, ρ = {rho:g}", xlabel="singular value s (top scaled to 2)",
               ylabel="density", xlim=(0.0, 2.2))
        ax.legend(fontsize=7)
    return fig


def scores_figure(hists: xr.Dataset) -> Figure:
    """Fig. 4 / D.1: normalised target and off-target score densities, trained vs Hebbian, per regime."""
    regimes = hists.regime.values.tolist()
    fig, axes = _grid(1, len(regimes), width=4.6)
    colours = {"adam": "C0", "lp": "C2", "hebbian": "C3"}
    for ax, reg in zip(axes[0], regimes):
        for solver in ordered(hists.solver.values, ("adam", "lp", "hebbian")):
            h = hists.sel(solver=solver, regime=reg)
            if not np.isfinite(h.target_density.values).any():
                continue
            ax.plot(h.score, h.target_density, "-", color=colours.get(solver, "C4"), label=f"{solver}: target")
            ax.plot(h.score, h.offtarget_density, ":", color=colours.get(solver, "C4"), label=f"{solver}: off-target")
        p = float(np.nanmedian(hists.p_median.sel(regime=reg).values))
        ax.axvline(np.sqrt(2 * np.log(p)), color="k", lw=0.8, label=f"√(2 ln p), p = {p:.0f}")
        ax.set(title=f"{reg} threshold", xlabel="normalised score (s − mean_off) / σ_off", ylabel="density",
               xlim=(-5.0, 12.0))
        ax.legend(fontsize=7)
    fig.suptitle(f"Score distributions, {hists.attrs.get('problem', '')}, ρ = {hists.attrs.get('rho', '')}, "
                 f"d = {hists.attrs.get('d', '')}")
    return fig


def steps_figure(steps: xr.Dataset) -> Figure:
    """Fig. 5: median steps to reach accuracy 1 vs alpha / alpha*, one line per (problem, solver, rho, d)."""
    fig, axes = _grid(1, 1, width=6.0, height=4.2)
    ax = axes[0, 0]
    colours = _colours(steps.d.values.tolist())
    markers = {"op": "o", "dp": "s"}
    for problem in ordered(steps.problem.values):
        for solver in steps.solver.values.tolist():
            for rho in sorted(steps.rho.values.tolist(), reverse=True):
                for d in sorted(steps.d.values.tolist()):
                    med = steps.steps_median.sel(problem=problem, solver=solver, rho=rho, d=d).dropna("load_bin")
                    if med.size:
                        ax.plot(med.load_bin, med, "-" if rho == 1 else "--", marker=markers.get(problem, "^"),
                                color=colours[d], label=f"{problem} {solver}, ρ = {rho:g}, d = {d}")
    ax.axvline(1.0, color="k", lw=0.8, label="threshold α = α*")
    ax.set(title="Training slows down near the transition", xlabel="relative load α / α* (per seed)",
           ylabel="optimiser steps to accuracy 1 (median)", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return fig


def save(fig: Figure, path: str | os.PathLike) -> str:
    """Write a figure as PNG and return its path."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    return os.fspath(path)


def margin_figure(curves: xr.Dataset) -> Figure:
    """The exact LP's optimal normalised margin per seed vs load (top) and vs alpha / alpha* (bottom); per problem."""
    problems = ordered(curves.problem.values)
    colours = _colours(sorted(set(curves.d.values.tolist())))
    fig, axes = _grid(2, len(problems), width=5.2)
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
                            color=colours[d], label=label)
        axes[0, j].set(title=f"{PROBLEM_NAMES.get(problem, problem)}: exact max-margin W", xlabel=ALPHA_LABEL)
        axes[1, j].set(xlabel="relative load α / α* (α* of the seed's exact threshold)")
        axes[1, j].axvline(1.0, color="k", lw=0.8)
        for ax in axes[:, j]:
            ax.set(ylabel="optimal margin t* / σ_off")
            ax.axhline(0.0, color="grey", lw=0.6)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Margin of the optimal memory vs load, one line per seed: it reaches 0 at each seed's threshold")
    return fig


def gap_figure(gap: xr.Dataset) -> Figure:
    """Per-seed p*(gradient solver) / p*(lp) vs d at rho = 1 with the median and range; one panel per solver."""
    solvers = ordered(gap.solver.values, ("adam",))
    fig, axes = _grid(1, len(solvers), width=5.6, height=4.2)
    offsets = {"op": -0.04, "dp": 0.04}  # in log2 d: side by side, not on top of each other
    for ax, solver in zip(axes[0], solvers):
        for k, problem in enumerate(ordered(gap.problem.values)):
            cell = gap.sel(problem=problem, solver=solver)
            ds = [d for d in cell.d.values.tolist() if int(cell.n_seeds.sel(d=d)) > 0]
            if not ds:
                continue
            x = np.log2(np.asarray(ds, dtype=float)) + offsets.get(problem, 0.0)
            seeds = cell.seed_ratio.sel(d=ds).transpose("d", "seed").values
            for xi, row in zip(x, seeds):
                row = row[~np.isnan(row)]
                ax.plot(np.full(row.size, xi), row, ".", color=f"C{k}", alpha=0.35, ms=5)
            med = cell.ratio_median.sel(d=ds).values
            err = np.vstack([med - cell.ratio_min.sel(d=ds).values, cell.ratio_max.sel(d=ds).values - med])
            ax.errorbar(x, med, yerr=err, fmt="o-", capsize=3, color=f"C{k}",
                        label=f"{problem}: median, range over seeds")
        ax.axhline(1.0, color="k", lw=0.8, label="equal to the exact p*")
        all_d = sorted(int(d) for d in gap.d.values)
        ax.set_xticks(np.log2(all_d), [str(d) for d in all_d])
        ax.set(title=f"Optimizer gap of {solver} at ρ = 1", xlabel="dimension d (log scale)",
               ylabel=f"per-seed p*({solver}) / p*(exact LP)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig

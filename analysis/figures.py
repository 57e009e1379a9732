"""The paper's figures from analysis results (matplotlib, no pyplot state); each returns its Figure."""
from __future__ import annotations

import os

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

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
    except ImportError:  # lamcap.predictions not available: data and fit only
        return
    x = 1.0 / np.log(np.asarray(d_values, dtype=float))
    ax.plot(x, finite, ":", color="k" if solver != "hebbian" else "grey",
            label=f"finite-size theory ({solver})")
    ax.hlines(asym, 0.0, x_max, colors="k" if solver != "hebbian" else "grey", linestyles="-.", lw=0.8,
              label=f"asymptote {asym:.3f} ({solver})")


def _residual_series(ax, cell: xr.Dataset, solver: str, rho: float, colour, label: str) -> bool:
    """Median alpha* minus the finite-size theory at each d, with the interval; False without theory."""
    try:
        theory = np.array([scaling.finite_size_alpha(solver, int(d), rho) for d in cell.d.values])
    except ImportError:
        return False
    x, med = 1.0 / np.log(cell.d.values.astype(float)), cell.alpha_star_median.values
    err = np.abs(np.vstack([med - cell.alpha_star_lo.values, cell.alpha_star_hi.values - med]))
    ax.errorbar(x, med - theory, yerr=err, fmt="o-", lw=0.8, ms=4, capsize=3, color=colour, label=label)
    return True


def scaling_figure(summary: xr.Dataset, fits: xr.Dataset) -> Figure:
    """Fig. C.1: median alpha* vs 1/ln d with intervals, the fit, finite-size theory, asymptote; one panel per rho.

    Below each panel: the residuals of the medians against the finite-size theory (zero: theory exact).
    """
    rhos = sorted(summary.rho.values.tolist(), reverse=True)
    fig = Figure(figsize=(6.0 * len(rhos), 8.4), layout="constrained")
    axes = fig.subplots(2, len(rhos), squeeze=False, sharex="col", height_ratios=[3.0, 1.3])
    d_values = sorted(int(d) for d in summary.d.values)
    x_max = 1.05 / np.log(min(d_values))
    colours = _colours([(p, s) for p in summary.problem.values.tolist() for s in summary.solver.values.tolist()])
    for ax, low, rho in zip(axes[0], axes[1], rhos):
        drawn = False
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
                drawn |= _residual_series(low, cell, solver, rho, colour, f"{problem} {solver}")
            _theory_lines(ax, solver, rho, d_values, x_max)
        ax.set(title=f"Critical load vs dimension, ρ = {rho:g}", ylabel="critical load α* = p* ln p* / d²",
               xlim=(0.0, x_max))
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()  # below both panels: never on the points
        low.legend(handles, labels, fontsize=7, ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.32))
        low.axhline(0.0, color="k", lw=0.8)
        low.set(xlabel="1 / ln d  (d = dimension)", ylabel="α* − finite-size theory", xlim=(0.0, x_max))
        low.grid(alpha=0.3)
        if not drawn:
            low.text(0.5, 0.5, "finite-size theory not available", ha="center", va="center", transform=low.transAxes)
    return fig


def _theory_density(pdf_name: str, rho: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A theory density rescaled so its support ends at 2 (as the stored spectra are)."""
    try:
        from lamcap import predictions as theory
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
    """One step histogram per (problem, solver) at its largest d at this rho (lp stops earlier), pooled over
    seeds."""
    combos = [(p, s) for p in ordered(at_rho.problem.values) for s in ordered(at_rho.solver.values, ("adam", "lp"))
              if bool(((at_rho.problem == p) & (at_rho.solver == s)).any())]
    for problem, solver in combos:
        mine = (at_rho.problem == problem) & (at_rho.solver == solver)
        d = int(at_rho.d.values[mine.values].max())
        mask = (at_rho.d == d) & mine
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


def loss_figure(curves: xr.Dataset) -> Figure:
    """Fig. A.1: mean final cross-entropy of trained W vs alpha per d, band = one standard deviation; rows rho."""
    problems, rhos = ordered(curves.problem.values), sorted(curves.rho.values.tolist(), reverse=True)
    colours = _colours(curves.d.values.tolist())
    fig, axes = _grid(len(rhos), len(problems))
    for (i, rho), (j, problem) in ((r, c) for r in enumerate(rhos) for c in enumerate(problems)):
        ax, positive = axes[i, j], False
        for solver in ordered(curves.solver.values, ("adam",)):
            for d in sorted(curves.d.values.tolist()):
                sel = curves.sel(problem=problem, solver=solver, rho=rho, d=d).dropna("alpha_bin", subset=["loss_mean"])
                if not sel.sizes["alpha_bin"]:
                    continue
                mean, std = sel.loss_mean.values, np.nan_to_num(sel.loss_std.values)
                positive |= bool((mean > 0).any())
                ax.plot(sel.alpha_bin, mean, SOLVER_STYLE.get(solver, "-."), marker="o", ms=3, color=colours[d],
                        label=f"{solver}, d = {d}")
                ax.fill_between(sel.alpha_bin, np.maximum(mean - std, mean / 20), mean + std, color=colours[d],
                                alpha=0.15, lw=0)
        ax.set(title=f"{PROBLEM_NAMES.get(problem, problem)}, ρ = {rho:g}", xlabel=ALPHA_LABEL,
               ylabel="final cross-entropy loss (nats)")
        if positive:  # a panel without a positive loss stays linear (nothing to log)
            ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Training loss at the end of Adam vs load (line: mean over probes and seeds; band: ± 1 s.d.)")
    return fig


def input_figure(views: xr.Dataset) -> Figure:
    """Fig. A.2: input 0's target score against its own p - 1 competitors, below / near / above threshold."""
    solvers, regimes = views.solver.values.tolist(), views.regime.values.tolist()
    fig, axes = _grid(len(solvers), len(regimes), width=4.4, height=3.3)
    edges = np.asarray(views.attrs["score_bin_edges"], dtype=float)
    for (i, solver), (j, regime) in ((r, c) for r in enumerate(solvers) for c in enumerate(regimes)):
        ax, v = axes[i, j], views.sel(solver=solver, regime=regime)
        ax.set(xlabel="normalised score (s − mean_off) / σ_off", ylabel="competitors per bin")
        if not np.isfinite(float(v.p)):
            ax.set_title(f"{solver}, {regime} threshold: no probe", fontsize=9)
            continue
        p, target = int(v.p), float(v.target)
        counts = v.competitor_counts.values
        ax.stairs(counts, edges, fill=True, color="C0", alpha=0.45, label=f"its {p - 1} competitors")
        ax.axvline(target, color="C3", lw=2, label=f"its target score {target:.2f}")
        ax.axvline(np.sqrt(2 * np.log(p)), color="k", ls=":", lw=1, label=f"√(2 ln p) = {np.sqrt(2 * np.log(p)):.2f}")
        top = edges[1:][counts > 0].max() if counts.any() else 4.0
        ax.set_xlim(-5.0, max(top, target, np.sqrt(2 * np.log(p))) + 1.0)
        verdict = "SAT" if float(v.sat) == 1 else "UNSAT"
        ax.set_title(f"{solver}, {regime}: p = {p}, α/α* = {float(v.relative_load):.2f} ({verdict})", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    problem = PROBLEM_NAMES.get(views.attrs["problem"], views.attrs["problem"])
    fig.suptitle(f"One input (μ = 0, the same at every load) against its own competitors: {problem}, "
                 f"ρ = {views.attrs['rho']:g}, d = {views.attrs['d']}, seed {views.attrs['seed']} "
                 "(near: the seed's largest SAT load)")
    return fig


def hebbian_scores_figure(by_load: list[xr.Dataset]) -> Figure:
    """Fig. D.1: Hebbian normalised score densities across loads, against the Gaussian model N(m, 1) of 3.5."""
    fig, axes = _grid(1, len(by_load), width=5.6, height=4.2)
    cmap = colormaps["viridis"]
    for ax, ds in zip(axes[0], by_load):
        n, d = ds.sizes["load"], int(ds.attrs["d"])
        for k in range(n):
            colour = cmap(0.85 * k / max(n - 1, 1))
            p = float(ds.p_median[k])
            ax.stairs(ds.target_density[k].values, ds.attrs["target_bin_edges"], color=colour, lw=1.6,
                      label=f"target, α = {float(ds.alpha[k]):.3f} (p ≈ {p:.0f}, {int(ds.n_targets[k])} scores)")
            try:
                from lamcap.predictions import hebbian_target_mean

                m = hebbian_target_mean(p, d)
                ax.plot(ds.score, np.exp(-0.5 * (ds.score - m) ** 2) / np.sqrt(2 * np.pi), ":", color=colour, lw=1)
            except ImportError:
                pass
        ax.plot(ds.score, ds.offtarget_density.mean("load"), "-", color="0.4", lw=1.5, label="off-target, all loads")
        ax.plot(ds.score, np.exp(-0.5 * ds.score**2) / np.sqrt(2 * np.pi), "k--", lw=0.8, label="N(0, 1)")
        ax.set(title=f"Hebbian, {PROBLEM_NAMES.get(ds.attrs['problem'], ds.attrs['problem'])}, "
                     f"ρ = {ds.attrs['rho']:g}, d = {d}",
               xlabel="normalised score (s − mean_off) / σ_off", ylabel="density", xlim=(-5.0, 12.0))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="dotted: N(m, 1), m = d / √(p + 2d) (THEORY.md 3.5)", title_fontsize=7, ncols=2,
                  loc="upper center", bbox_to_anchor=(0.5, -0.16))  # below: never on the densities
    return fig


def save(fig: Figure, path: str | os.PathLike) -> str:
    """Write a figure as PNG and return its path."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    return os.fspath(path)


def _rank_theory(ax, solver: str, d: int, rhos: np.ndarray, colour) -> None:
    """The finite-size prediction alpha_c^RS(d; r / d) at every integer rank of the plotted range (at most 40)."""
    try:
        ranks = np.unique(np.round(np.linspace(max(1, round(rhos.min() * d)), round(rhos.max() * d), 40)).astype(int))
        curve = [scaling.finite_size_alpha(solver, d, r / d) for r in ranks]
    except ImportError:
        return
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


def _rank_panel(ax, series, chosen, colours: dict, problem: str, solver: str) -> None:
    """One (problem, solver) of adaptive_rank_figure: every d, the asymptote, the legend."""
    for d, at_d in series.groupby("d"):
        colour = colours[d]
        ax.plot(at_d.rho_eff, at_d.alpha_star, ".", ms=3, color=colour, alpha=0.35)
        cells = at_d.groupby("rank").agg(rho_eff=("rho_eff", "first"), median_alpha=("alpha_star", "median"))
        mine = None if chosen is None else chosen[(chosen.problem == problem) & (chosen.solver == solver)
                                                   & (chosen.d == d)]
        _learner_points(ax, xr.Dataset.from_dataframe(cells.reset_index()), mine, colour)
        _rank_theory(ax, solver, int(d), series.rho_eff.values, colour)
        ax.plot([], [], "-", color=colour, lw=6, label=f"d = {d}")
    rho_grid = np.linspace(series.rho_eff.min(), 1.0, 200)
    try:
        ax.plot(rho_grid, [scaling.asymptotic_alpha(solver, r) for r in rho_grid], "-.", color="k", lw=1,
                label="d → ∞: κ(ρ)/2" if solver != "hebbian" else "d → ∞: 1/8")
    except ImportError:
        pass
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
    decoded). added: the learner's table of chosen cells (lamcap.orchestrator.learners.decisions.added_cells as a Dataset
    of one dimension: problem, solver, d, rank, order), None when the ranks were a fixed list.
    """
    table = thresholds.to_dataframe()
    chosen = added.to_dataframe() if added is not None else None
    solvers = ordered(table.solver.unique(), ("adam", "lp", "hebbian"))
    panels = [(p, s) for p in ordered(table.problem.unique()) for s in solvers
              if ((table.problem == p) & (table.solver == s)).any()]
    fig, axes = _grid(1, len(panels), width=6.5, height=5.0)
    colours = _colours(table.d.unique().tolist())
    for ax, (problem, solver) in zip(axes[0], panels):
        _rank_panel(ax, table[(table.problem == problem) & (table.solver == solver)], chosen, colours, problem, solver)
    return fig


def _interval_panel(ax, series, colour, label: str, solver: str, rho: float) -> None:
    """One series of adaptive_dimension_figure's left panel: alpha_inf +- width / 2 against device-seconds."""
    known = series[np.isfinite(series.width) & (series.spent_seconds > 0)]
    ax.errorbar(known.spent_seconds, known.alpha_inf, yerr=known.width / 2, fmt="o-", ms=3, capsize=2, lw=1,
                color=colour, label=label)
    try:
        ax.axhline(scaling.asymptotic_alpha(solver, rho), color=colour, ls="-.", lw=0.8)
    except ImportError:
        pass


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
    colours = _colours(range(len(keys)))
    fig, axes = _grid(1, 2, width=6.0, height=4.4)
    left, right = axes[0]
    ds = sorted(int(d) for d in runs.d.unique())
    width = 0.8 / max(len(keys), 1)
    for i, (problem, solver, rho) in enumerate(keys):
        label = f"{problem} {solver}, ρ = {rho:g}"
        series = table[(table.problem == problem) & (table.solver == solver) & (table.rho == rho)]
        _interval_panel(left, series, colours[i], label, solver, rho)
        mine = runs[(runs.problem == problem) & (runs.solver == solver) & (runs.rho == rho)]
        seeds = mine.groupby("d").size().reindex(ds, fill_value=0)
        right.bar(np.arange(len(ds)) + (i - (len(keys) - 1) / 2) * width, seeds.values, width=width,
                  color=colours[i], label=label)
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

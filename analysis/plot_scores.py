"""Figures of the mechanism: spectra at threshold (Fig. 3), score densities (Fig. 4), one input against its
competitors (Fig. A.2), Hebbian score densities across loads (Fig. D.1)."""
from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure

from lamcap import predictions as theory
from lamcap.analysis import mechanism
from lamcap.analysis.plot_style import PROBLEM_NAMES, SOLVER_ORDER, grid, legend_outside, ordered, unique_legend

SOLVER_COLOURS = {"adam": "C0", "lp": "C2", "hebbian": "C3"}


def _theory_density(pdf_name: str, rho: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A theory density rescaled so its support ends at 2 (as the stored spectra are)."""
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
    combos = [(p, s) for p in ordered(at_rho.problem.values) for s in ordered(at_rho.solver.values, SOLVER_ORDER)
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
            ks_value = distances.ks_truncated.sel(problem=problem, solver=solver, rho=float(at_rho.rho[0]), d=d)
            ks = f", KS = {float(ks_value):.2f}"
        ax.stairs(counts, edges, label=f"{problem} {solver}, d = {d}, {sel.sizes['probe']} seeds{ks}")


def spectra_figure(spectra: xr.Dataset, distances: xr.Dataset | None = None) -> Figure:
    """Fig. 3: pooled singular values of trained W at threshold (top one scaled to 2) vs theory; per rho."""
    trained = spectra.isel(probe=np.flatnonzero((spectra.solver != "hebbian").values))
    rhos = sorted(set(trained.rho.values.tolist()), reverse=True)
    fig, axes = grid(1, max(len(rhos), 1))
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
        legend_outside(ax)
    return fig


def scores_figure(hists: xr.Dataset) -> Figure:
    """Fig. 4 / D.1: normalised target and off-target score densities per solver and regime, with each solver's
    own extreme-value level sqrt(2 ln p) (p: its median load in the regime)."""
    regimes = hists.regime.values.tolist()
    fig, axes = grid(1, len(regimes), width=4.6)
    for ax, reg in zip(axes[0], regimes):
        for solver in ordered(hists.solver.values, SOLVER_ORDER):
            h = hists.sel(solver=solver, regime=reg)
            if not np.isfinite(h.target_density.values).any():
                continue
            colour = SOLVER_COLOURS.get(solver, "C4")
            ax.plot(h.score, h.target_density, "-", color=colour, label=f"{solver}: target")
            ax.plot(h.score, h.offtarget_density, ":", color=colour, label=f"{solver}: off-target")
            p = float(h.p_median)
            ax.axvline(np.sqrt(2 * np.log(p)), color=colour, ls="--", lw=0.9,
                       label=f"{solver}: √(2 ln p) = {np.sqrt(2 * np.log(p)):.2f}, p = {p:.0f}")
        ax.set(title=f"{reg} threshold", xlabel="normalised score (s − mean_off) / σ_off", ylabel="density",
               xlim=(-5.0, 12.0))
        if not ax.get_legend_handles_labels()[1]:
            ax.text(0.5, 0.5, f"no probe {reg} threshold", ha="center", va="center", transform=ax.transAxes)
        unique_legend(ax, fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.18))  # below: never on data
    fig.suptitle(f"Score distributions, {hists.attrs.get('problem', '')}, ρ = {hists.attrs.get('rho', '')}, "
                 f"d = {hists.attrs.get('d', '')}")
    return fig


def input_figure(views: xr.Dataset) -> Figure:
    """Fig. A.2: input 0's target score against its own p - 1 competitors, below / near / above threshold."""
    solvers, regimes = views.solver.values.tolist(), views.regime.values.tolist()
    fig, axes = grid(len(solvers), len(regimes), width=4.4, height=3.3)
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


def _hebbian_model(ax, ds: xr.Dataset, k: int, colour) -> None:
    """OP: the Gaussian model N(m, 1) of docs/THEORY.md 3.5.1 at this load (dotted); DP has no such overlay."""
    if ds.attrs["problem"] != "op":
        return
    m = theory.hebbian_target_mean(float(ds.p_median[k]), int(ds.attrs["d"]))
    ax.plot(ds.score, np.exp(-0.5 * (ds.score - m) ** 2) / np.sqrt(2 * np.pi), ":", color=colour, lw=1)


def hebbian_scores_figure(by_load: list[xr.Dataset]) -> Figure:
    """Fig. D.1: Hebbian normalised score densities across loads; OP against its Gaussian model."""
    fig, axes = grid(1, len(by_load), width=5.6, height=4.2)
    cmap = colormaps["viridis"]
    notes = {"op": "dotted: N(m, 1), m = d / √(p + 2d) (docs/THEORY.md 3.5.1)",
             "dp": "one normalisation for all rows: rows differ in |W x_mu|; the row law is docs/THEORY.md 3.5.2"}
    for ax, ds in zip(axes[0], by_load):
        n, d = ds.sizes["load"], int(ds.attrs["d"])
        for k in range(n):
            colour = cmap(0.85 * k / max(n - 1, 1))
            ax.stairs(ds.target_density[k].values, ds.attrs["target_bin_edges"], color=colour, lw=1.6,
                      label=f"target, α = {float(ds.alpha[k]):.3f} (p ≈ {float(ds.p_median[k]):.0f}, "
                            f"{int(ds.n_targets[k])} scores)")
            _hebbian_model(ax, ds, k, colour)
        ax.plot(ds.score, ds.offtarget_density.mean("load"), "-", color="0.4", lw=1.5, label="off-target, all loads")
        ax.plot(ds.score, np.exp(-0.5 * ds.score**2) / np.sqrt(2 * np.pi), "k--", lw=0.8, label="N(0, 1)")
        ax.set(title=f"Hebbian, {PROBLEM_NAMES.get(ds.attrs['problem'], ds.attrs['problem'])}, "
                     f"ρ = {ds.attrs['rho']:g}, d = {d}",
               xlabel="normalised score (s − mean_off) / σ_off", ylabel="density", xlim=(-5.0, 12.0))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title=notes.get(ds.attrs["problem"], ""), title_fontsize=7, ncols=2,
                  loc="upper center", bbox_to_anchor=(0.5, -0.16))  # below: never on the densities
    return fig

"""Fig. C.1, extended: the critical load against 1 / ln d with the finite-size theory and the three fits drawn to
d = 10^12, and the gradient-trained solvers' residuals against the theory below (docs/THEORY.md 3.7)."""
from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from lamcap.analysis import predicted, scaling
from lamcap.analysis.plot_style import SOLVER_ORDER, legend_outside, ordered

D_FAR = 1e12  # the fits and the theory are drawn to this d
FIT_STYLE = {"theory": "-", "naive": "--", "order2": "-."}
MARKERS = {"op": "o", "dp": "s"}
HEBBIAN_STYLE = {"op": (0, (1, 1.5)), "dp": (0, (4, 1.5, 1, 1.5))}  # OP's Gaussian model, DP's row law
SERIES_COLOURS = {("op", "adam"): "C0", ("dp", "adam"): "C1", ("op", "lp"): "C2", ("dp", "lp"): "C4",
                  ("op", "hebbian"): "C3", ("dp", "hebbian"): "C5"}
NOT_TRAINED = ("lp", "hebbian")  # the residual panel shows gradient-trained solvers only
CAPTION = ("points: median α* over seeds; bars: {level:.0%} percentile-bootstrap interval of the median over "
           "seeds (widened to the search brackets);\ngrey boxes (residuals): the search's bracket, median over seeds "
           "(none when thresholds are exact); fits and theory drawn to d = 10¹² (a fit leaving the frame is cut)")


def _x(d) -> np.ndarray:
    return 1.0 / np.log(np.asarray(d, dtype=float))


def _cells(summary: xr.Dataset, rho: float) -> list[tuple[str, str, xr.Dataset]]:
    """(problem, solver, cell) with at least one median at this rho, solvers in SOLVER_ORDER."""
    out = []
    for solver in ordered(summary.solver.values, SOLVER_ORDER):
        for problem in ordered(summary.problem.values):
            cell = summary.sel(problem=problem, solver=solver, rho=rho).dropna("d", subset=["alpha_star_median"])
            if cell.sizes["d"]:
                out.append((problem, solver, cell))
    return out


def _points(ax, cell: xr.Dataset, problem: str, solver: str, y: np.ndarray | None = None) -> None:
    """Medians (or `y`, residuals) with their interval; DP a hair to the right so both stay visible."""
    med = cell.alpha_star_median.values
    err = np.abs(np.vstack([med - cell.alpha_star_lo.values, cell.alpha_star_hi.values - med]))
    x = _x(cell.d.values) + (0.0015 if problem == "dp" else 0.0)
    ax.errorbar(x, med if y is None else y, yerr=err, fmt=MARKERS.get(problem, "^"), ms=4, capsize=2.5, lw=0.9,
                color=SERIES_COLOURS.get((problem, solver), "C7"), label=f"{problem} {solver}: median α*")


def _theory(ax, cells, rho: float, grid: np.ndarray) -> None:
    """The finite-size theory and its limit for each kind of memory drawn in the panel."""
    solvers = {s for _, s, _ in cells}
    if solvers - {"hebbian"}:
        ax.plot(_x(grid), predicted.curve("op", "adam", rho, grid), ":", color="k", lw=1.4,
                label=r"finite-size theory $\alpha_c^{RS}(d;\,\rho)$")
        ax.axhline(predicted.asymptote("adam", rho), color="k", ls=(0, (6, 2, 1, 2)), lw=0.8,
                   label=f"limit α_c(ρ) = {predicted.asymptote('adam', rho):.3f}")
    for problem in ordered({p for p, s, _ in cells if s == "hebbian"}):
        ax.plot(_x(grid[::8]), predicted.curve(problem, "hebbian", rho, grid[::8]), ls=HEBBIAN_STYLE.get(problem, ":"),
                color=SERIES_COLOURS[(problem, "hebbian")], lw=1.3, label=f"Hebbian theory, {problem}")
    if "hebbian" in solvers:
        ax.axhline(predicted.asymptote("hebbian", rho), color="grey", ls=(0, (6, 2, 1, 2)), lw=0.8,
                   label=f"Hebbian limit κ(ρ)/8 = {predicted.asymptote('hebbian', rho):.3f}")


def _fits(ax, fits: dict[str, xr.Dataset], problem: str, solver: str, rho: float, grid: np.ndarray) -> None:
    for form, style in FIT_STYLE.items():
        if form not in fits:
            continue
        cell = fits[form].sel(problem=problem, solver=solver, rho=rho)
        curve = scaling.fitted_curve(cell, grid)
        if np.isfinite(curve).any():
            ai = cell.sel(param="alpha_inf")
            ax.plot(_x(grid), curve, style, color=SERIES_COLOURS.get((problem, solver), "C7"), lw=0.9,
                    label=f"{problem} {solver}, {form} fit: α∞ = {float(ai.estimate):.3f} "
                          f"[{float(ai.lo):.3f}, {float(ai.hi):.3f}]")


def _residuals(ax, cells, rho: float) -> None:
    """Gradient-trained medians minus the finite-size theory, with the search's bracket as a box."""
    drawn = False
    for problem, solver, cell in cells:
        if solver in NOT_TRAINED:
            continue
        theory = np.array([predicted.finite_size(problem, solver, int(d), rho) for d in cell.d.values])
        residual = cell.alpha_star_median.values - theory
        _points(ax, cell, problem, solver, residual)
        half = 0.5 * np.nan_to_num(cell.alpha_star_bracket.values) if "alpha_star_bracket" in cell else None
        if half is not None and (half > 0).any():
            x = _x(cell.d.values) + (0.0015 if problem == "dp" else 0.0)
            ax.bar(x, 2 * half, bottom=residual - half, width=0.008, color="0.45", alpha=0.45, zorder=1,
                   label="search bracket (median over seeds)")
        drawn = True
    ax.axhline(0.0, color="k", lw=0.8)
    if not drawn:
        ax.text(0.5, 0.5, "no gradient-trained solver at this ρ", ha="center", va="center", transform=ax.transAxes)


def _load_range(cells) -> tuple[float, float]:
    """Loads from 0 to a little above the highest interval: a fit that runs off (order 2 on few d) is cut."""
    highs = [float(np.nanmax(cell.alpha_star_hi.values)) for _, _, cell in cells]
    top = max([h for h in highs if np.isfinite(h)], default=1.0)
    return -0.02, 1.08 * max(top, 0.6)


def _dimension_ticks(ax) -> None:
    """A top axis labelled in d."""
    top = ax.secondary_xaxis("top")
    ds = [10, 100, 10**4, 10**12]
    top.set_xticks(_x(ds), ["10", "100", "10⁴", "10¹²"])
    top.set_xlabel("d", fontsize=8)


def scaling_figure(summary: xr.Dataset, fits: dict[str, xr.Dataset]) -> Figure:
    """One column per rho: medians with intervals, theory and fits to d = 10^12 (top), residuals (bottom)."""
    rhos = sorted(summary.rho.values.tolist(), reverse=True)
    fig = Figure(figsize=(9.5, 7.4 * len(rhos)), layout="constrained")
    axes = fig.subplots(2 * len(rhos), 1, squeeze=False, height_ratios=[3.0, 1.4] * len(rhos))[:, 0]
    d_min = int(summary.d.min())
    grid = np.geomspace(d_min, D_FAR, 64)
    x_max = 1.08 * _x(d_min)
    for k, rho in enumerate(rhos):
        top, low = axes[2 * k], axes[2 * k + 1]
        cells = _cells(summary, rho)
        for problem, solver, cell in cells:
            _points(top, cell, problem, solver)
            if solver not in NOT_TRAINED:
                _fits(top, fits, problem, solver, rho, grid)
        _theory(top, cells, rho, grid)
        top.set_ylim(*_load_range(cells))
        _residuals(low, cells, rho)
        top.set(title=f"Critical load vs dimension, ρ = {rho:g}", ylabel="critical load α* = p* ln p* / d²",
                xlim=(0.0, x_max), xlabel="1 / ln d")
        low.set(xlim=(0.0, x_max), xlabel="1 / ln d", ylabel="α* − finite-size theory",
                title=f"ρ = {rho:g}: gradient-trained solvers against the finite-size theory")
        _dimension_ticks(top)
        for ax in (top, low):
            ax.grid(alpha=0.3)
            legend_outside(ax, fontsize=7)
    fig.suptitle(CAPTION.format(level=float(summary.attrs.get("level", 0.95))), fontsize=8)
    return fig

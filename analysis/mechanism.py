"""Mechanism observables from stored probes: score-variance ratios, spectra at threshold, steps to solution."""
from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

from lamcap.analysis.load import CELL
from lamcap.analysis.thresholds import SEED_KEYS, per_seed
from lamcap.errors import InvalidInput

REGIMES = ("below", "near", "above")
NEAR = (0.9, 1.1)  # alpha / alpha* counted as "near threshold"


def per_probe(table: xr.Dataset, name: str, probes: xr.Dataset) -> xr.DataArray:
    """The per-seed value ``name`` of ``table`` (e.g. alpha_star) looked up for every probe; NaN if absent."""
    values = per_seed(table, name)
    labels = {k: probes[k] for k in SEED_KEYS}
    union = {k: np.union1d(values[k].values, np.unique(labels[k].values)) for k in SEED_KEYS}
    return values.reindex(union).sel(labels).drop_vars(list(SEED_KEYS), errors="ignore")


def relative_load(probes: xr.Dataset, thresholds: xr.Dataset) -> xr.DataArray:
    """alpha / alpha* of the probe's own (cell, seed), dim probe."""
    return (probes.alpha / per_probe(thresholds, "alpha_star", probes)).rename("relative_load")


def regime(relative: xr.DataArray) -> xr.DataArray:
    """'below', 'near' or 'above' threshold (NEAR bounds alpha/alpha*), '' where alpha* is unknown."""
    lo, hi = NEAR
    r = relative.values
    labels = np.where(r < lo, "below", np.where(r > hi, "above", "near"))
    return relative.copy(data=np.where(np.isnan(r), "", labels)).rename("regime")


def _valid(probes: xr.Dataset) -> xr.Dataset:
    return probes.isel(probe=np.flatnonzero((probes.status != "error").values))


def score_ratios(probes: xr.Dataset, thresholds: xr.Dataset) -> xr.Dataset:
    """Mean var(target)/var(off-target) of normalised scores per cell and regime (docs/THEORY.md 3.6)."""
    probes = _valid(probes)
    ratio = (probes.target_var / probes.offtarget_var).rename("ratio")
    table = xr.Dataset({"ratio": ratio, "regime": regime(relative_load(probes, thresholds))})
    table = table.assign({k: probes[k] for k in CELL})
    table = table.isel(probe=np.flatnonzero((table.regime != "").values))
    if table.sizes["probe"] == 0:
        raise InvalidInput("no probe matches a recorded threshold: score ratios are undefined")
    keyed = table.set_coords([*CELL, "regime"])
    grouped = keyed.groupby([*CELL, "regime"])
    out = xr.Dataset({"ratio_mean": grouped.mean()["ratio"], "ratio_median": grouped.median()["ratio"],
                      "n_probes": grouped.count()["ratio"]})
    present = [r for r in REGIMES if r in out.regime.values]
    return out.sel(regime=present)


def bin_centres(edges) -> np.ndarray:
    edges = np.asarray(edges, dtype=float)
    return (edges[1:] + edges[:-1]) / 2


def score_histograms(probes: xr.Dataset, thresholds: xr.Dataset, problem: str, rho: float, d: int) -> xr.Dataset:
    """Pooled normalised score densities per (solver, regime, score_bin) for one (problem, rho, d)."""
    probes = _valid(probes)
    mask = (probes.problem == problem) & (probes.rho == rho) & (probes.d == d)
    sub = probes.isel(probe=np.flatnonzero(mask.values))
    if sub.sizes["probe"] == 0:
        raise InvalidInput(f"no probes for problem={problem!r}, rho={rho!r}, d={d!r}")
    edges = np.asarray(sub.target_hist.attrs["score_bin_edges"], dtype=float)
    sub = sub[["target_hist", "offtarget_hist", "p", "solver"]].assign(regime=regime(relative_load(sub, thresholds)))
    sub = sub.isel(probe=np.flatnonzero((sub.regime != "").values)).set_coords(["solver", "regime"])
    grouped = sub.groupby(["solver", "regime"])
    counts = grouped.sum()
    width = np.diff(edges)
    out = xr.Dataset({
        name: (counts[name] / counts[name].sum("score_bin") / xr.DataArray(width, dims="score_bin"))
        for name in ("target_hist", "offtarget_hist")
    }).rename(target_hist="target_density", offtarget_hist="offtarget_density")
    out["p_median"] = grouped.median()["p"]
    out = out.assign_coords(score=("score_bin", bin_centres(edges)))
    out.attrs.update(problem=problem, rho=rho, d=d, score_bin_edges=edges.tolist())
    return out.sel(regime=[r for r in REGIMES if r in out.regime.values]).transpose("solver", "regime", ...)


def threshold_spectra(probes: xr.Dataset, thresholds: xr.Dataset) -> xr.Dataset:
    """Non-zero singular values of the SAT weights at each seed's p*, scaled so the top one is 2 (dim probe).

    The probe at p_lo: the seed's largest SAT load below its first UNSAT one (p* itself when exact).
    """
    p_lo = per_probe(thresholds, "p_lo" if "p_lo" in thresholds else "p_star", probes)
    # one probe per seed: a curve probe that happens to sit at p* would count its seed twice
    mask = (probes.p == p_lo) & probes.sat.astype(bool) & (probes.status != "error") & (probes.purpose == "search")
    sel = probes.isel(probe=np.flatnonzero(mask.values))
    if sel.sizes["probe"] == 0:
        raise InvalidInput("no SAT probe sits at a recorded p*: spectra at threshold are undefined")
    sv = sel.singular_values
    keep = xr.DataArray(np.arange(sv.sizes["sv_index"]), dims="sv_index") < sel["rank"]
    scaled = (2.0 * sv / sv.isel(sv_index=0)).where(keep)
    return xr.Dataset({"scaled_sv": scaled}, coords={k: sel[k] for k in SEED_KEYS})


def evaluate_pdf(pdf, s: np.ndarray, rho: float) -> np.ndarray:
    """``pdf(s, rho)`` on an array, element by element if the function only takes scalars; NaN -> 0."""
    try:
        dens = np.asarray(pdf(s, rho), dtype=float)
        if dens.shape != s.shape:
            raise ValueError("not elementwise")
    except (TypeError, ValueError):
        dens = np.array([float(pdf(float(v), rho)) for v in s])
    return np.nan_to_num(dens, nan=0.0, posinf=0.0, neginf=0.0)


def law_cdf(pdf, rho: float, n: int = 4001) -> tuple[np.ndarray, np.ndarray]:
    """Grid and CDF of a singular-value law given by ``pdf(s, rho)``, rescaled so its support ends at 2."""
    s = np.linspace(0.0, 6.0, n)
    dens = evaluate_pdf(pdf, s, rho)
    top = s[np.flatnonzero(dens > 0)[-1]] if np.any(dens > 0) else 2.0
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(s))])
    return 2.0 * s / top, cdf / cdf[-1]


def ks_distance(values: np.ndarray, grid: np.ndarray, cdf: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between a sample and a CDF tabulated on a grid."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan")
    return float(stats.kstest(values, lambda x: np.interp(x, grid, cdf)).statistic)


def spectrum_distances(spectra: xr.Dataset) -> xr.Dataset:
    """Per cell: KS distance of the pooled scaled spectra to the truncated quarter circle and to the init law."""
    from lamcap import predictions as theory

    laws = {rho: (law_cdf(theory.truncated_quarter_circle_pdf, rho), law_cdf(theory.two_layer_init_pdf, rho))
            for rho in np.unique(spectra.rho.values)}

    def one_cell(ds: xr.Dataset) -> xr.Dataset:
        values = ds.scaled_sv.values.ravel()
        trunc, init = laws[float(np.atleast_1d(ds.rho.values)[0])]
        return xr.Dataset({"ks_truncated": ks_distance(values, *trunc), "ks_init": ks_distance(values, *init),
                           "n_values": int(np.sum(~np.isnan(values))), "n_seeds": int(ds.sizes["probe"])})

    keyed = spectra.reset_coords([k for k in SEED_KEYS if k != "seed"]).set_coords(list(CELL))
    return keyed.groupby(list(CELL)).map(one_cell)


def steps_to_solution(probes: xr.Dataset, thresholds: xr.Dataset, bins: np.ndarray | None = None) -> xr.Dataset:
    """Median optimiser steps of converged trained probes, per (problem, rho, d) and bin of alpha/alpha*."""
    trained = probes.isel(probe=np.flatnonzero(((probes.steps > 0) & (probes.status == "converged")).values))
    if trained.sizes["probe"] == 0:
        raise InvalidInput("no converged trained probe: steps to solution are undefined")
    rel = relative_load(trained, thresholds)
    bins = np.linspace(0.0, 1.2, 13) if bins is None else np.asarray(bins, dtype=float)
    table = xr.Dataset({"steps": trained.steps.astype(float), "relative_load": rel},
                       coords={k: trained[k] for k in ("problem", "solver", "rho", "d")})
    table = table.isel(probe=np.flatnonzero(rel.notnull().values))
    from xarray.groupers import BinGrouper, UniqueGrouper

    grouped = table.groupby(problem=UniqueGrouper(), solver=UniqueGrouper(), rho=UniqueGrouper(),
                            d=UniqueGrouper(), relative_load=BinGrouper(bins=bins))
    out = xr.Dataset({"steps_median": grouped.median()["steps"], "n_probes": grouped.count()["steps"]})
    centres = bin_centres(bins)
    return out.rename(relative_load_bins="load_bin").assign_coords(load_bin=centres)

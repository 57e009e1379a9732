"""Per-load observables of the appendix figures: training loss vs load (Fig. A.1), one input's scores
below / near / above threshold (Fig. A.2), Hebbian score distributions across loads (Fig. D.1)."""
from __future__ import annotations

import numpy as np
import xarray as xr

from lamcap.analysis.load import CELL
from lamcap.analysis.mechanism import bin_centres, relative_load
from lamcap.errors import InvalidInput

UNTRAINED = ("hebbian", "lp")  # closed-form or exact solvers: their W's scale, hence their loss, is arbitrary
INPUT_VARIABLES = ("input_target_score", "input_competitor_hist")
REGIME_LOADS = {"below": 0.8, "near": 1.0, "above": 1.25}  # alpha / alpha* each regime's probe is closest to


def _valid(probes: xr.Dataset) -> xr.Dataset:
    return probes.isel(probe=np.flatnonzero((probes.status != "error").values))


def loss_curves(probes: xr.Dataset, n_bins: int = 16) -> xr.Dataset:
    """Mean and standard deviation of trained probes' final cross-entropy per cell and bin of alpha."""
    from xarray.groupers import BinGrouper, UniqueGrouper

    trained = _valid(probes)
    keep = ~trained.solver.isin(UNTRAINED) & trained.final_loss.notnull()
    trained = trained.isel(probe=np.flatnonzero(keep.values))
    if trained.sizes["probe"] == 0:
        raise InvalidInput("no trained probe with a final loss: the loss-vs-load figure needs adam probes")
    bins = np.linspace(0.0, float(trained.alpha.max()) * (1 + 1e-9), n_bins + 1)
    table = xr.Dataset({"loss": trained.final_loss.astype(float), "alpha": trained.alpha},
                       coords={k: trained[k] for k in CELL})
    grouped = table.groupby(problem=UniqueGrouper(), solver=UniqueGrouper(), rho=UniqueGrouper(),
                            d=UniqueGrouper(), alpha=BinGrouper(bins=bins))
    out = xr.Dataset({"loss_mean": grouped.mean()["loss"], "loss_std": grouped.std()["loss"],
                      "n_probes": grouped.count()["loss"]})
    return out.rename(alpha_bins="alpha_bin").assign_coords(alpha_bin=(bins[1:] + bins[:-1]) / 2)


def _require_inputs(probes: xr.Dataset) -> None:
    missing = [v for v in INPUT_VARIABLES if v not in probes]
    if missing:
        raise InvalidInput(f"this store has no {' / '.join(missing)} (it was written before lamcap recorded "
                           "input 0's own scores): the single-input figure needs them")


def _default_cell(probes: xr.Dataset) -> tuple[str, float, int]:
    """OP if present, the largest rho, then the largest d with a trained solver (else any)."""
    problems = set(probes.problem.values.tolist())
    problem = "op" if "op" in problems else sorted(problems)[0]
    at = probes.isel(probe=np.flatnonzero((probes.problem == problem).values))
    rho = float(at.rho.max())
    at = at.isel(probe=np.flatnonzero((at.rho == rho).values))
    trained = at.isel(probe=np.flatnonzero((~at.solver.isin(UNTRAINED)).values))
    return problem, rho, int((trained if trained.sizes["probe"] else at).d.max())


def _pick(rel: np.ndarray, sat: np.ndarray, p: np.ndarray) -> dict[str, int | None]:
    """Index of the probe shown per regime: near is the largest SAT p below every UNSAT one."""
    unsat_p = p[~sat].min() if (~sat).any() else np.inf
    near = np.flatnonzero(sat & (p < unsat_p))
    picks = {"near": int(near[np.argmax(p[near])]) if near.size else None}
    for name, lo, hi in (("below", 0.0, 0.95), ("above", 1.05, np.inf)):
        inside = np.flatnonzero((rel > lo) & (rel < hi))
        picks[name] = int(inside[np.argmin(np.abs(rel[inside] - REGIME_LOADS[name]))]) if inside.size else None
    return picks


def input_views(probes: xr.Dataset, thresholds: xr.Dataset, problem: str | None = None, rho: float | None = None,
                d: int | None = None, seed: int | None = None) -> xr.Dataset:
    """Input 0's normalised target score and competitor counts per (solver, regime) of one (cell, seed)."""
    _require_inputs(probes)
    probes = _valid(probes)
    if problem is None or rho is None or d is None:
        problem, rho, d = _default_cell(probes)
    mask = (probes.problem == problem) & (probes.rho == rho) & (probes.d == d)
    sub = probes.isel(probe=np.flatnonzero(mask.values))
    seed = int(sub.seed.min()) if seed is None and sub.sizes["probe"] else seed
    sub = sub.isel(probe=np.flatnonzero((sub.seed == seed).values))
    if sub.sizes["probe"] == 0:
        raise InvalidInput(f"no probes for problem={problem!r}, rho={rho!r}, d={d!r}, seed={seed!r}")
    rel = relative_load(sub, thresholds).values
    n_bins = sub.input_competitor_hist.sizes["score_bin"]
    solvers = [s for s in ("adam", "lp", "hebbian") if s in sub.solver.values] + \
        sorted(set(sub.solver.values.tolist()) - {"adam", "lp", "hebbian"})
    shape = (len(solvers), len(REGIME_LOADS))
    data = {name: np.full(shape, np.nan) for name in ("target", "p", "alpha", "relative_load", "sat")}
    counts = np.zeros((*shape, n_bins))
    for i, solver in enumerate(solvers):
        idx = np.flatnonzero((sub.solver == solver).values & np.isfinite(rel))
        picks = _pick(rel[idx], sub.sat.values[idx].astype(bool), sub.p.values[idx])
        for j, regime in enumerate(REGIME_LOADS):
            if picks[regime] is None:
                continue
            k = idx[picks[regime]]
            row = sub.isel(probe=k)
            data["target"][i, j], data["p"][i, j], data["alpha"][i, j] = (
                float(row.input_target_score), float(row.p), float(row.alpha))
            data["relative_load"][i, j], data["sat"][i, j] = rel[k], float(bool(row.sat))
            counts[i, j] = row.input_competitor_hist.values
    edges = np.asarray(sub.input_competitor_hist.attrs["score_bin_edges"], dtype=float)
    dims = ("solver", "regime")
    out = xr.Dataset({name: (dims, values) for name, values in data.items()},
                     coords={"solver": solvers, "regime": list(REGIME_LOADS),
                             "score": ("score_bin", bin_centres(edges))})
    out["competitor_counts"] = ((*dims, "score_bin"), counts)
    out.attrs.update(problem=problem, rho=rho, d=d, seed=seed, score_bin_edges=edges.tolist())
    return out


def hebbian_by_load(probes: xr.Dataset, problem: str, rho: float | None = None, d: int | None = None,
                    n_loads: int = 5) -> xr.Dataset:
    """Hebbian target and off-target score densities pooled per load (quantile bins of alpha) of one cell."""
    hebb = _valid(probes)
    hebb = hebb.isel(probe=np.flatnonzero(((hebb.solver == "hebbian") & (hebb.problem == problem)).values))
    if hebb.sizes["probe"] == 0:
        raise InvalidInput(f"no Hebbian probes of problem {problem!r}: the Hebbian score figure needs them")
    rho = float(hebb.rho.max()) if rho is None else rho
    hebb = hebb.isel(probe=np.flatnonzero((hebb.rho == rho).values))
    d = int(hebb.d.max()) if d is None else d
    hebb = hebb.isel(probe=np.flatnonzero((hebb.d == d).values))
    loads = np.unique(hebb.p.values)
    groups = np.array_split(loads, min(n_loads, loads.size))  # neighbouring loads pooled, in order
    edges = np.asarray(hebb.target_hist.attrs["score_bin_edges"], dtype=float)
    pooled = [hebb.isel(probe=np.flatnonzero(np.isin(hebb.p.values, g))) for g in groups]
    targets = [sel.target_hist.sum("probe").values for sel in pooled]
    offs = [sel.offtarget_hist.sum("probe").values for sel in pooled]
    factor = coarsening(min(t.sum() for t in targets), len(edges) - 1)  # few targets: wider bins
    coarse = edges[::factor]
    targets = [t.reshape(-1, factor).sum(axis=1) for t in targets]
    out = xr.Dataset({
        "target_density": (("load", "target_bin"), np.array([t / max(t.sum(), 1) / np.diff(coarse) for t in targets])),
        "offtarget_density": (("load", "score_bin"), np.array([o / max(o.sum(), 1) / np.diff(edges) for o in offs])),
        "alpha": ("load", [float(sel.alpha.mean()) for sel in pooled]),
        "p_median": ("load", [float(np.median(sel.p.values)) for sel in pooled]),
        "n_probes": ("load", [sel.sizes["probe"] for sel in pooled]),
        "n_targets": ("load", [int(t.sum()) for t in targets]),
    }, coords={"score": ("score_bin", bin_centres(edges)), "target_score": ("target_bin", bin_centres(coarse))})
    out.attrs.update(problem=problem, rho=rho, d=d, target_bin_edges=coarse.tolist())
    return out


def coarsening(n_samples: int, n_bins: int) -> int:
    """Bins merged per histogram bin so that a density of n_samples is not mostly noise (a divisor of n_bins)."""
    want = 4 if n_samples < 300 else 2 if n_samples < 3000 else 1
    return max(f for f in range(1, want + 1) if n_bins % f == 0)


def hebbian_per_problem(probes: xr.Dataset, n_loads: int = 5) -> list[xr.Dataset]:
    """hebbian_by_load of every problem with Hebbian probes (OP first), at its largest rho and d."""
    hebb = probes.problem.values[(probes.solver == "hebbian").values]
    problems = sorted(set(hebb.tolist()), key=lambda p: (p != "op", p))
    if not problems:
        raise InvalidInput("no Hebbian probes: the Hebbian score figure needs them")
    return [hebbian_by_load(probes, problem, n_loads=n_loads) for problem in problems]

"""What the exact LP oracle adds to a store: the margin vs load per seed, and the optimizer gap.

* Margin curves: every `lp` probe's optimal normalised margin `lp_margin` (t* over sigma_off of the
  optimal W; 0 when UNSAT) against its load, per (problem, d, seed). Nested disorder makes t*
  non-increasing in p for one seed, and it reaches 0 exactly past that seed's p*.
* Optimizer gap: per (problem, gradient solver, d) at rho = 1, the ratio of the gradient solver's
  per-seed p* to the exact `lp` p* of the same seed (the same disorder): median, range, and the
  share of seeds where the two are equal.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from lamcap.analysis.thresholds import per_seed
from lamcap.errors import InvalidInput

EXACT = "lp"
NOT_GRADIENT = ("lp", "hebbian")  # every other solver trains W by gradient steps


def _lp_probes(probes: xr.Dataset) -> xr.Dataset:
    if "lp_margin" not in probes.data_vars:
        raise InvalidInput("the store has no lp_margin variable (written before the margin was recorded)")
    mask = (probes.solver == EXACT) & (probes.status != "error") & (probes.rho == 1.0)
    sel = probes.isel(probe=np.flatnonzero(mask.values))
    if sel.sizes["probe"] == 0:
        raise InvalidInput("the store has no lp probe at rho = 1: no margin curve")
    return sel


def margin_curves(probes: xr.Dataset, thresholds: xr.Dataset) -> xr.Dataset:
    """One row per lp probe (dim probe): problem, d, seed, p, alpha, lp_margin, and alpha / alpha* of its seed.

    Sorted by (problem, d, seed, p), so each seed's curve reads in order of load. relative_load is
    NaN where the seed's lp threshold is not (yet) in the store.
    """
    sel = _lp_probes(probes)
    table = xr.Dataset({k: sel[k] for k in ("problem", "d", "seed", "p", "alpha", "lp_margin", "sat")})
    alpha_star = _lp_alpha_star(thresholds)
    table["relative_load"] = xr.DataArray(
        [table.alpha.values[i] / alpha_star.get((str(table.problem.values[i]), int(table.d.values[i]),
                                                 int(table.seed.values[i])), np.nan)
         for i in range(table.sizes["probe"])], dims="probe")
    order = np.lexsort((table.p.values, table.seed.values, table.d.values, table.problem.values))
    table = table.isel(probe=order)
    table.lp_margin.attrs.update(probes.lp_margin.attrs)
    return table.assign_coords(probe=np.arange(table.sizes["probe"]))


def _lp_alpha_star(thresholds: xr.Dataset) -> dict[tuple[str, int, int], float]:
    """alpha* of every lp (problem, d, seed) at rho = 1 in the thresholds table."""
    if thresholds.sizes.get("threshold", 0) == 0:
        return {}
    mask = (thresholds.solver == EXACT) & (thresholds.rho == 1.0)
    sel = thresholds.isel(threshold=np.flatnonzero(mask.values))
    return {(str(pr), int(d), int(s)): float(a) for pr, d, s, a in
            zip(sel.problem.values, sel.d.values, sel.seed.values, sel.alpha_star.values)}


def seed_ratios(thresholds: xr.Dataset) -> xr.DataArray:
    """p*(gradient solver) / p*(lp) per (problem, solver, d, seed) at rho = 1; NaN where either is missing."""
    if thresholds.sizes.get("threshold", 0) == 0:
        raise InvalidInput("the store has no thresholds: no optimizer gap")
    p_star = per_seed(thresholds, "p_star")
    solvers = p_star.solver.values.tolist()
    gradient = [s for s in solvers if s not in NOT_GRADIENT]
    if EXACT not in solvers or not gradient or 1.0 not in p_star.rho.values.tolist():
        raise InvalidInput(f"the optimizer gap needs lp and a gradient solver at rho = 1; the store has solvers "
                           f"{sorted(solvers)} and rhos {sorted(p_star.rho.values.tolist())}")
    at_one = p_star.sel(rho=1.0, drop=True)
    ratio = at_one.sel(solver=gradient) / at_one.sel(solver=EXACT, drop=True)
    if not bool(ratio.notnull().any()):
        raise InvalidInput("no (problem, d, seed) has both an lp and a gradient-solver threshold at rho = 1")
    return ratio.rename("p_star_ratio")


def optimizer_gap(thresholds: xr.Dataset) -> xr.Dataset:
    """Per (problem, solver, d): median, min and max over seeds of p*(solver) / p*(lp), share equal, seeds."""
    ratio = seed_ratios(thresholds)
    present = ratio.notnull()
    n = present.sum("seed")
    out = xr.Dataset({
        "ratio_median": ratio.median("seed", skipna=True),
        "ratio_min": ratio.min("seed", skipna=True),
        "ratio_max": ratio.max("seed", skipna=True),
        "share_equal": (ratio == 1.0).sum("seed") / n.where(n > 0),
        "n_seeds": n,
        "seed_ratio": ratio,
    })
    out.attrs["definition"] = "per seed p*(gradient solver) / p*(lp) at rho = 1, the same disorder realisation"
    return out


def gap_records(gap: xr.Dataset) -> list[dict]:
    """One dict per (problem, solver, d) with at least one paired seed, ordered op then dp, by d."""
    rows = []
    for problem in gap.problem.values.tolist():
        for solver in gap.solver.values.tolist():
            for d in gap.d.values.tolist():
                cell = gap.sel(problem=problem, solver=solver, d=d)
                if int(cell.n_seeds) == 0:
                    continue
                rows.append({"problem": problem, "solver": solver, "d": int(d), "n_seeds": int(cell.n_seeds),
                             **{k: float(cell[k]) for k in ("ratio_median", "ratio_min", "ratio_max",
                                                            "share_equal")}})
    order = {"op": 0, "dp": 1}
    return sorted(rows, key=lambda r: (order.get(r["problem"], 2), r["solver"], r["d"]))


def format_gap_table(rows: list[dict]) -> str:
    """The optimizer-gap table printed by `lamcap analyze`."""
    head = f"{'problem':7} {'solver':8} {'d':>5} {'seeds':>5}  {'median':>7} {'[min, max]':>15}  {'equal':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['problem']:7} {r['solver']:8} {r['d']:5d} {r['n_seeds']:5d}  {r['ratio_median']:7.3f} "
                     f"{'[' + format(r['ratio_min'], '.3f') + ', ' + format(r['ratio_max'], '.3f') + ']':>15}  "
                     f"{r['share_equal']:6.0%}")
    return "\n".join(lines)

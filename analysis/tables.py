"""The printed tables of `lamcap analyze` and the files it writes (summary.csv, fits.json) from an Analysis."""
from __future__ import annotations

import csv
import json
import math

import xarray as xr

from lamcap.analysis import oracle, predicted
from lamcap.analysis.scaling import FORMS

ORDER = {"op": 0, "dp": 1}


def clean(value):
    """JSON/CSV-safe scalar: numpy to Python, NaN to None."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


def num(value, fmt: str = ".3f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def _interval(lo, hi, fmt: str = ".3f") -> str:
    return f"[{num(lo, fmt)}, {num(hi, fmt)}]"


def summary_rows(summary: xr.Dataset) -> list[dict]:
    """One dict per cell that has thresholds, with the theory of the cell (finite-size and d -> infinity)."""
    table = summary.to_dataframe().reset_index()
    rows = []
    for rec in table[table.n_seeds > 0].to_dict("records"):
        problem, solver, d, rho = str(rec["problem"]), str(rec["solver"]), int(rec["d"]), float(rec["rho"])
        rows.append({**{k: clean(v) for k, v in rec.items()},
                     "alpha_theory_finite_size": clean(predicted.finite_size(problem, solver, d, rho)),
                     "alpha_theory_asymptotic": clean(predicted.asymptote(solver, rho))})
    return sorted(rows, key=lambda r: (ORDER.get(r["problem"], 2), r["solver"], -r["rho"], r["d"]))


def format_threshold_table(rows: list[dict], level: float) -> str:
    """The per-cell table printed by `lamcap analyze`."""
    head = (f"{'problem':7} {'solver':8} {'rho':>5} {'d':>5} {'seeds':>5}  {'median a*':>9} "
            f"{f'[{level:.0%} interval]':>17} {'bin':>6}  {'1st viol.':>9}  {'theory d':>8}  {'theory inf':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['problem']:7} {r['solver']:8} {r['rho']:5.2f} {int(r['d']):5d} {int(r['n_seeds']):5d}  "
            f"{num(r['alpha_star_median']):>9} {_interval(r['alpha_star_lo'], r['alpha_star_hi']):>17} "
            f"{num(r.get('alpha_star_bracket')):>6}  {num(r.get('first_violation_mean')):>9}  "
            f"{num(r['alpha_theory_finite_size']):>8}  {num(r['alpha_theory_asymptotic']):>10}")
    return "\n".join(lines)


def fit_records(fits: xr.Dataset) -> list[dict]:
    """One JSON-ready dict per (problem, solver, rho) with every parameter's estimate and interval, and the bias."""
    records = []
    for problem in fits.problem.values.tolist():
        for solver in fits.solver.values.tolist():
            for rho in fits.rho.values.tolist():
                cell = fits.sel(problem=problem, solver=solver, rho=rho)
                if int(cell.n_d) < cell.sizes["param"]:  # under-determined: no fit to report
                    continue
                params = {str(p): {k: clean(float(cell[k].sel(param=p))) for k in ("estimate", "lo", "hi", "std",
                                                                                      "theory_fit")}
                          for p in cell.param.values}
                records.append({"problem": problem, "solver": solver, "rho": rho, "n_d": int(cell.n_d),
                                "form": fits.attrs["form"], "model": fits.attrs["model"], "level": fits.attrs["level"],
                                "params": params, "bias": clean(float(cell.bias)),
                                "alpha_theory_asymptotic": clean(predicted.asymptote(solver, rho))})
    return sorted(records, key=lambda r: (ORDER.get(r["problem"], 2), r["solver"], -r["rho"]))


def format_fit_table(fits: dict[str, xr.Dataset]) -> str:
    """The finite-size fits printed by `lamcap analyze`: every form per (problem, solver, rho)."""
    head = (f"{'problem':7} {'solver':8} {'rho':>5} {'n_d':>3}  {'form':6} {'alpha_inf [interval]':>24} "
            f"{'bias':>7} {'limit':>6}  second parameter [interval]")
    lines = [head, "-" * len(head)]
    records = sorted((r for form in FORMS if form in fits for r in fit_records(fits[form])),
                     key=lambda r: (ORDER.get(r["problem"], 2), r["solver"], -r["rho"], list(FORMS).index(r["form"])))
    for r in records:
        ai = r["params"]["alpha_inf"]
        name, second = next((k, v) for k, v in r["params"].items() if k != "alpha_inf")
        lines.append(
            f"{r['problem']:7} {r['solver']:8} {r['rho']:5.2f} {r['n_d']:3d}  {r['form']:6} "
            f"{num(ai['estimate']) + ' ' + _interval(ai['lo'], ai['hi']):>24} {num(r['bias'], '+.3f'):>7} "
            f"{num(r['alpha_theory_asymptotic']):>6}  {name} = {num(second['estimate'])} "
            f"{_interval(second['lo'], second['hi'])}")
    return "\n".join(lines)


def records(ds: xr.Dataset | None, variables: list[str] | None = None, required: str | None = None) -> list[dict]:
    """Rows of a Dataset's table (its variables on their shared dims): rows with a NaN dropped, or only those
    whose `required` variable is NaN."""
    if ds is None:
        return []
    frame = (ds[variables] if variables else ds).to_dataframe().reset_index()
    frame = frame.dropna(subset=[required] if required else None)
    return [{k: clean(v) for k, v in rec.items()} for rec in frame.to_dict("records")]


def op_dp_records(cmp: xr.Dataset | None) -> tuple[list[dict], list[dict]]:
    """(per (solver, rho, d), per (solver, rho)) rows of the paired OP - DP comparison."""
    if cmp is None:
        return [], []
    per_d = records(cmp, ["mean", "median", "lo", "hi", "n_pairs", "n_positive", "n_negative", "sign_p"], "mean")
    per_d = [{**r, "difference": r["mean"]} for r in per_d if r["n_pairs"]]
    pooled = []
    for rec in records(cmp, ["pooled_mean", "pooled_lo", "pooled_hi", "pooled_n_pairs", "pooled_n_positive",
                             "pooled_n_negative", "pooled_sign_p"], "pooled_mean"):
        trend = cmp.sel(solver=rec["solver"], rho=rec["rho"])
        pooled.append({**rec, **{f"trend_{c}": {k: clean(float(trend[k].sel(coef=c))) for k in
                                                ("trend", "trend_lo", "trend_hi")} for c in ("c0", "c1")}})
    return per_d, pooled


def format_op_dp_table(cmp: xr.Dataset) -> str:
    """Paired OP - DP per (solver, rho, d), then pooled over d with the trend c0 + c1 / ln d."""
    per_d, pooled = op_dp_records(cmp)
    head = f"{'solver':8} {'rho':>5} {'d':>5} {'op-dp':>8} {'[interval]':>18} {'pairs':>5} {'+/-':>7} {'sign p':>7}"
    lines = [head, "-" * len(head)]
    for r in per_d:
        lines.append(f"{r['solver']:8} {r['rho']:5.2f} {int(r['d']):5d} {num(r['mean'], '+.3f'):>8} "
                     f"{_interval(r['lo'], r['hi'], '+.3f'):>18} {int(r['n_pairs']):5d} "
                     f"{str(int(r['n_positive'])) + '/' + str(int(r['n_negative'])):>7} {num(r['sign_p'], '.2g'):>7}")
    for r in pooled:
        c0, c1 = r["trend_c0"], r["trend_c1"]
        lines.append(f"{r['solver']:8} {r['rho']:5.2f}   all {num(r['pooled_mean'], '+.3f'):>8} "
                     f"{_interval(r['pooled_lo'], r['pooled_hi'], '+.3f'):>18} {int(r['pooled_n_pairs']):5d} "
                     f"{str(int(r['pooled_n_positive'])) + '/' + str(int(r['pooled_n_negative'])):>7} "
                     f"{num(r['pooled_sign_p'], '.2g'):>7}   trend: c0 = {num(c0['trend'], '+.3f')} "
                     f"{_interval(c0['trend_lo'], c0['trend_hi'], '+.3f')}, c1 = {num(c1['trend'], '+.3f')}")
    return "\n".join(lines)


def write_summary_csv(rows: list[dict], path: str) -> str:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    return path


def write_fits_json(result, path: str) -> str:
    """fits.json: the three scaling fits, OP vs DP, score ratios, spectral distances, optimizer gap, notes."""
    per_d, pooled = op_dp_records(result.op_dp)
    doc = {
        "store": result.store.path,
        "scaling": {form: fit_records(fits) for form, fits in result.fits.items()},
        "op_minus_dp": per_d,
        "op_minus_dp_pooled": pooled,
        "score_ratios": records(result.ratios),
        "spectral_distances": records(result.distances),
        "optimizer_gap": oracle.gap_records(result.gap) if result.gap is not None else [],
        "notes": result.notes,
    }
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=2)
    return path

"""From a store to tables, summary.csv, fits.json and the figures: the body of `lamcap analyze`."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from lamcap.analysis import figures, mechanism, observables, oracle, pairing, scaling, thresholds
from lamcap.analysis.decisions import added_cells
from lamcap.analysis.load import Store, open_store
from lamcap.analysis.merge import merge_stores
from lamcap.analysis.tables import (
    format_fit_table,
    format_op_dp_table,
    format_threshold_table,
    num,
    summary_rows,
    write_fits_json,
    write_summary_csv,
)
from lamcap.errors import InvalidInput

FIGURES = ("accuracy", "scaling", "spectra", "scores", "steps", "loss", "input_scores", "hebbian_scores",
           "adaptive_rank", "adaptive_d", "margin", "gap")


@dataclass
class Analysis:
    """Every derived table of one store; optional parts are None when the store cannot support them."""

    store: Store
    summary: xr.Dataset
    fits: dict[str, xr.Dataset]  # form (lamcap.analysis.scaling.FORMS) -> fit
    op_dp: xr.Dataset | None = None  # the paired OP - DP comparison (lamcap.analysis.pairing)
    ratios: xr.Dataset | None = None
    spectra: xr.Dataset | None = None
    distances: xr.Dataset | None = None
    steps: xr.Dataset | None = None
    margins: xr.Dataset | None = None  # lp probes: optimal margin vs load (lamcap.analysis.oracle)
    gap: xr.Dataset | None = None  # per-seed p*(gradient solver) / p*(lp) at rho = 1
    notes: list[str] = field(default_factory=list)
    excluded: str = ""  # how many thresholds are incomplete (and so left out of everything), and why


def _attempt(notes: list[str], what: str, fn, *args):
    """Run an optional analysis; record why it is missing instead of failing the whole report."""
    try:
        return fn(*args)
    except (InvalidInput, ImportError) as exc:
        notes.append(f"{what}: {exc}")
        return None


def analyze(store: Store, level: float = 0.95, n_boot: int = 400, seed: int = 0) -> Analysis:
    """Compute thresholds, the three scaling fits, OP vs DP, score ratios, spectra and steps for a store."""
    probes = store.probes
    notes: list[str] = []
    th, excluded = thresholds.complete_only(store.thresholds)
    summary = thresholds.threshold_summary(th, probes, level=level, n_boot=n_boot, seed=seed)
    fits = {form: scaling.fit_scaling(th, form, level=level, n_boot=n_boot, seed=seed) for form in scaling.FORMS}
    result = Analysis(store=store, summary=summary, fits=fits, notes=notes, excluded=excluded)
    result.op_dp = _attempt(notes, "OP vs DP", pairing.op_dp_comparison, th, level, n_boot, seed)
    result.ratios = _attempt(notes, "score ratios", mechanism.score_ratios, probes, th)
    result.spectra = _attempt(notes, "spectra", mechanism.threshold_spectra, probes, th)
    if result.spectra is not None:
        result.distances = _attempt(notes, "spectral distances", mechanism.spectrum_distances, result.spectra)
    result.steps = _attempt(notes, "steps to solution", mechanism.steps_to_solution, probes, th)
    result.margins = _attempt(notes, "LP margin curves", oracle.margin_curves, probes, th)
    result.gap = _attempt(notes, "optimizer gap", oracle.optimizer_gap, th)
    return result


def _score_cell(probes: xr.Dataset) -> tuple[str, float, int]:
    """The (problem, rho, d) shown in Fig. 4: first problem, largest rho, then largest d there."""
    problem = figures.ordered(set(probes.problem.values.tolist()))[0]
    at = probes.isel(probe=np.flatnonzero((probes.problem == problem).values))
    rho = float(at.rho.max())
    return problem, rho, int(at.d.where(at.rho == rho).max())


def step_cap(probes: xr.Dataset) -> float | None:
    """The optimiser's step budget as the probes show it: the most steps of a run that stopped at max_steps."""
    capped = probes.steps.values[(probes.status == "max_steps").values]
    return float(capped.max()) if capped.size else None


def make_figures(result: Analysis) -> dict[str, Figure]:
    """Draw the figures the store supports; returns name -> Figure (missing ones explained in notes)."""
    probes, notes, out = result.store.probes, result.notes, {}
    builders = {
        "accuracy": lambda: figures.accuracy_figure(thresholds.accuracy_curves(probes)),
        "scaling": lambda: figures.scaling_figure(result.summary, result.fits),
        "spectra": lambda: (figures.spectra_figure(result.spectra, result.distances)
                            if result.spectra is not None else None),
        "scores": lambda: figures.scores_figure(
            mechanism.score_histograms(probes, result.store.thresholds, *_score_cell(probes))),
        "steps": lambda: figures.steps_figure(result.steps, step_cap(probes)) if result.steps is not None else None,
        "loss": lambda: figures.loss_figure(observables.loss_curves(probes)),
        "input_scores": lambda: figures.input_figure(observables.input_views(probes, result.store.thresholds)),
        "hebbian_scores": lambda: figures.hebbian_scores_figure(observables.hebbian_per_problem(probes)),
        "adaptive_rank": lambda: adaptive_rank(result.store),
        "adaptive_d": lambda: adaptive_dimension(result.store),
        "margin": lambda: figures.margin_figure(result.margins) if result.margins is not None else None,
        "gap": lambda: figures.gap_figure(result.gap) if result.gap is not None else None,
    }
    for name in FIGURES:
        fig = _attempt(notes, f"figure {name}", builders[name])
        if fig is not None:
            out[name] = fig
    return out


def adaptive_rank(store: Store) -> Figure:
    """alpha*(rho) per d with theory, the rank learner's cells numbered in the order it added them."""
    import pandas as pd

    rows = added_cells(store.decision_log)
    if not rows:
        raise InvalidInput("the store has no rank decisions (its rhos are a list, not [adaptive.rho])")
    complete, _ = thresholds.complete_only(store.thresholds)
    return figures.adaptive_rank_figure(complete, xr.Dataset.from_dataframe(pd.DataFrame(rows)))


def adaptive_dimension(store: Store) -> Figure:
    """The dimension learner's alpha_inf interval against device-seconds, and the seeds it ran per d."""
    if "learner" not in store.decisions or not (store.decisions.learner == "dimension").any():
        raise InvalidInput("the store has no dimension decisions (its ds are a list, not [adaptive.d])")
    return figures.adaptive_dimension_figure(store.decisions, store.thresholds)


def format_decisions_table(log: list[dict]) -> str:
    """Per adaptive learner: rounds, what it added, where it ended and why it stopped."""
    head = f"{'learner':9} {'problem':7} {'solver':8} {'at':>9} {'rounds':>6}  {'added':>13}  result"
    lines = [head, "-" * len(head)]
    by_learner: dict[tuple, list[dict]] = {}
    for dec in log:
        at = f"d={dec['d']}" if dec["learner"] == "rank" else f"rho={dec['rho']:g}"
        by_learner.setdefault((dec["learner"], dec["problem"], dec["solver"], at), []).append(dec)
    for (kind, problem, solver, at), decs in by_learner.items():
        last = decs[-1]
        if kind == "rank":
            added = f"{sum(len(d['chosen_ranks']) for d in decs)} cells"
            result = f"{last['reason']}" if last["basis"] == "stop" else "running"
        else:
            added = f"{sum(len(c['seeds']) for d in decs for c in d['chosen'])} seeds"
            spent = last["committed_seconds"] + sum(c["cost"] for c in last["chosen"])
            result = (f"alpha_inf {num(last['alpha_inf'])} width {num(last['width'])} (target {last['target']:g});"
                      f" {spent:.3g} of {last['budget_seconds']:.3g} device-s; "
                      + (last["reason"] if last["basis"] == "stop" else "running"))
        lines.append(f"{kind:9} {problem:7} {solver:8} {at:>9} {len(decs):6d}  {added:>13}  {result}")
    return "\n".join(lines)


def figure_filename(name: str) -> str:
    """The PNG name of a figure: its place in FIGURES and its name (fig2_scaling.png)."""
    return f"fig{FIGURES.index(name) + 1}_{name}.png"


def provenance(store: Store) -> str:
    """Which kernels computed the store's probes (lamcap.kernels.outcome.KERNEL), and with which lamcap."""
    versions = json.loads(store.attrs.get("versions", "{}")).get("lamcap", "?")
    runs = json.loads(store.attrs.get("runs", "[]"))
    lamcaps = sorted({versions, *(r.get("lamcap", "?") for r in runs)})
    if "kernel" not in store.probes:
        return f"Computed by: a lamcap that did not name its kernel ({', '.join(lamcaps)}); records may mix versions"
    counts = {str(k): int(n) for k, n in zip(*np.unique(store.probes["kernel"].values, return_counts=True))}
    named = {k: n for k, n in counts.items() if k != "none"}
    text = ", ".join(f"kernel {k} ({n} probes)" for k, n in sorted(named.items())) or "no kernel"
    warn = "; MIXED: these records were computed differently" if len(named) > 1 else ""
    return f"Computed by: {text}; lamcap {', '.join(lamcaps)}{warn}"


def report_text(result: Analysis, rows: list[dict], level: float) -> str:
    """The tables `lamcap analyze` prints."""
    sections = [
        provenance(result.store),
        "Thresholds per cell (alpha* = p* ln p* / d^2; median over seeds, percentile-bootstrap interval)",
        format_threshold_table(rows, level) + (f"\n{result.excluded}" if result.excluded else ""),
        "Finite-size fits per (problem, solver, rho): naive alpha_inf + a / ln d, order2 (+ b / ln(d)^2), theory "
        "alpha_inf + k (alpha_th(d) - alpha_th(inf)); bias: the same fit of the finite-size theory on the same d, "
        "minus its limit",
        format_fit_table(result.fits),
    ]
    if result.op_dp is not None:
        sections += ["OP vs DP, paired by seed (the paper's Conjecture 1: equal capacities): mean of alpha*(op) - "
                     "alpha*(dp) over the seeds both hold, seed-bootstrap interval, pairs +/- and exact sign test",
                     format_op_dp_table(result.op_dp)]
    if result.store.decision_log:
        sections += ["Adaptive axis: each learner's decisions (the store's `decisions` group)",
                     format_decisions_table(result.store.decision_log)]
    if result.gap is not None:
        sections += ["Optimizer gap at rho = 1: per-seed p*(solver) / p*(exact lp), same disorder (median, range, "
                     "share of seeds equal)", oracle.format_gap_table(oracle.gap_records(result.gap))]
    return "\n\n".join(sections)


def open_stores(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> Store:
    """Open one store, or several as one (lamcap.analysis.merge: refused where their records disagree)."""
    if isinstance(paths, (str, os.PathLike)):
        return open_store(paths)
    return merge_stores([open_store(p) for p in paths])


def build_report(store_paths: str | os.PathLike | Sequence[str | os.PathLike], out_dir: str | None,
                 level: float = 0.95, n_boot: int = 400) -> tuple[Analysis, str, dict[str, Figure], dict[str, str]]:
    """Open and analyse a store (or several together), draw its figures, and with `out_dir` write summary.csv,
    figures and fits.json. Returns (analysis, printable text, name -> Figure, name -> path written)."""
    result = analyze(open_stores(store_paths), level=level, n_boot=n_boot)
    rows = summary_rows(result.summary)
    drawn = make_figures(result)
    paths: dict[str, str] = {}
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        paths["summary"] = write_summary_csv(rows, os.path.join(out_dir, "summary.csv"))
        for name, fig in drawn.items():
            paths[name] = figures.save(fig, os.path.join(out_dir, figure_filename(name)))
        paths["fits"] = write_fits_json(result, os.path.join(out_dir, "fits.json"))
    return result, report_text(result, rows, level), drawn, paths

"""Write tiny lamcap stores in exactly the schema of docs/STORE.md, without Ray or torch.

``write_store`` writes explicit records (hand-built stores); ``synthetic_sweep`` makes
records that look like a small sweep (thresholds, curve points, spectra, score histograms).
"""
from __future__ import annotations

import json
import math
from itertools import product

import numpy as np
import pytest
import xarray as xr
import zarr

CATEGORIES = {
    "problem": ("op", "dp"),
    "solver": ("adam", "hebbian", "lp"),
    "status": ("converged", "max_steps", "diverged", "closed_form", "feasible", "infeasible", "error"),
    "device": ("cpu", "cuda"),
    "purpose": ("search", "curve"),
    "generator": ("none", "splitmix64-erfcinv-v1"),
    "mode": ("none", "materialize", "regenerate"),
    "learner": ("rank", "dimension"),  # the decisions group (not written here)
    "basis": ("initial", "width", "curvature", "width_per_device_second", "stop"),
}
RECORD_DEFAULTS = {"generator": "none", "mode": "none", "chunk_rows": 0, "chunk_cols": 0, "shards": 1}
HIST_EDGES = np.linspace(-10.0, 20.0, 121)
UNITS = {"alpha": "p ln p / d^2", "alpha_star": "p ln p / d^2", "wall_seconds": "s", "cpu_seconds": "s",
         "peak_bytes": "bytes", "lp_margin": "sigma_off"}
PROBE_SCALARS = {
    "problem": "i1", "solver": "i1", "rho": "f8", "rho_eff": "f8", "rank": "i8", "d": "i8", "seed": "i8",
    "p": "i8", "alpha": "f8", "purpose": "i1", "attempt": "i8", "sat": "?", "status": "i1", "accuracy": "f8",
    "n_violations": "i8", "min_margin": "f8", "final_loss": "f8", "steps": "i8", "wall_seconds": "f8",
    "peak_bytes": "i8", "device": "i1", "target_mean": "f8", "target_var": "f8", "offtarget_mean": "f8",
    "offtarget_var": "f8", "generator": "i1", "mode": "i1", "chunk_rows": "i8", "chunk_cols": "i8", "shards": "i8",
    "input_target_score": "f8", "cpu_seconds": "f8", "lp_margin": "f8",
}
HISTS = ("target_hist", "offtarget_hist", "input_competitor_hist")
THRESHOLD_SCALARS = {
    "problem": "i1", "solver": "i1", "rho": "f8", "rho_eff": "f8", "rank": "i8", "d": "i8", "seed": "i8",
    "p_star": "i8", "alpha_star": "f8", "p_lo": "i8", "p_hi": "i8", "n_probes": "i8", "monotone": "?",
}


def alpha_of(p: int, d: int) -> float:
    return p * math.log(p) / d**2


def p_of(alpha: float, d: int) -> int:
    """The largest p with alpha_of(p, d) <= alpha (at least 2)."""
    p = 2
    while alpha_of(p + 1, d) <= alpha:
        p += 1
    return p


def _attrs(name: str) -> dict:
    attrs = {"units": UNITS.get(name, "1"), "description": f"{name} (synthetic test store)"}
    if name in CATEGORIES:
        attrs["flag_values"] = list(range(len(CATEGORIES[name])))
        attrs["flag_meanings"] = " ".join(CATEGORIES[name])
    return attrs


def _column(records: list[dict], name: str, dtype: str) -> np.ndarray:
    records = [r if name in r or name not in RECORD_DEFAULTS else {**r, name: RECORD_DEFAULTS[name]}
               for r in records]
    if name in CATEGORIES:
        return np.array([CATEGORIES[name].index(r[name]) for r in records], dtype="i1")
    return np.array([r[name] for r in records], dtype=dtype)


def _table(records: list[dict], dim: str, scalars: dict) -> tuple[xr.Dataset, dict]:
    ds = xr.Dataset(coords={dim: np.arange(len(records))})
    encoding = {}
    for name, dtype in scalars.items():
        ds[name] = xr.Variable(dim, _column(records, name, dtype), attrs=_attrs(name))
        if dtype == "f8":
            encoding[name] = {"fill_value": np.nan}
    return ds, encoding


def _probes_dataset(records: list[dict], drop: tuple[str, ...] = ()) -> tuple[xr.Dataset, dict]:
    ds, encoding = _table(records, "probe", {k: v for k, v in PROBE_SCALARS.items() if k not in drop})
    edges = [float(e) for e in HIST_EDGES]
    for name in (h for h in HISTS if h not in drop):
        counts = np.array([r[name] for r in records], dtype="i8").reshape(len(records), len(HIST_EDGES) - 1)
        ds[name] = xr.Variable(("probe", "score_bin"), counts, attrs={**_attrs(name), "score_bin_edges": edges})
    d_max = max(int(r["d"]) for r in records)
    sv = np.full((len(records), d_max), np.nan)
    for i, r in enumerate(records):
        sv[i, : len(r["singular_values"])] = r["singular_values"]
    ds["singular_values"] = xr.Variable(("probe", "sv_index"), sv, attrs=_attrs("singular_values"))
    encoding["singular_values"] = {"fill_value": np.nan}
    return ds, encoding


def write_store(path, probes: list[dict], thresholds: list[dict], spec: dict | None = None,
                drop: tuple[str, ...] = ()) -> str:
    """Write a store at ``path``: root attrs, then the non-empty groups among probes/thresholds.

    ``drop`` names probe variables to leave out (a store written before they existed)."""
    path = str(path)
    with zarr.config.set({"array.write_empty_chunks": True}):  # as lamcap's writer: every chunk on disk
        return _write_store(path, probes, thresholds, spec, drop)


def _write_store(path: str, probes: list[dict], thresholds: list[dict], spec: dict | None,
                 drop: tuple[str, ...]) -> str:
    root = zarr.open_group(path, mode="w", zarr_format=3)
    root.attrs.update({
        "lamcap_schema": 1, "spec": json.dumps(spec or {"preset": "synthetic"}),
        "versions": json.dumps({"lamcap": "test"}), "created": "2026-01-01T00:00:00Z",
    })
    if probes:
        ds, enc = _probes_dataset(probes, drop)
        ds.to_zarr(path, group="probes", mode="w", consolidated=False, encoding=enc, zarr_format=3)
    if thresholds:
        ds, enc = _table(thresholds, "threshold", THRESHOLD_SCALARS)
        ds.to_zarr(path, group="thresholds", mode="w", consolidated=False, encoding=enc, zarr_format=3)
    return path


def quarter_circle_sample(n: int, rho: float, rng: np.random.Generator) -> np.ndarray:
    """n draws from the quarter circle sqrt(4 - s^2)/pi truncated to its top mass rho (inverse CDF on a grid)."""
    s = np.linspace(0.0, 2.0, 4001)
    cdf = (s * np.sqrt(4 - s**2) / 2 + 2 * np.arcsin(s / 2)) / np.pi  # integral of the quarter circle from 0
    u = rng.uniform(1.0 - rho, 1.0, size=n)
    return np.sort(np.interp(u, cdf, s))[::-1]


def _counts(values: np.ndarray) -> list[int]:
    return np.histogram(np.clip(values, -9.99, 19.99), HIST_EDGES)[0].tolist()


def _scores(p: int, mean: float, var: float, rng: np.random.Generator) -> tuple[list[int], list[int], float, list[int]]:
    """Target and off-target counts, and input 0's target score and competitor counts."""
    target = rng.normal(mean, math.sqrt(var), size=p)
    off = rng.normal(0.0, 1.0, size=p * (p - 1))
    return _counts(target), _counts(off), float(target[0]), _counts(off[: p - 1])


def probe_record(cell: dict, seed: int, p: int, p_star: int, purpose: str, rng: np.random.Generator) -> dict:
    """One probe of a seed whose threshold is p_star (SAT iff p <= p_star)."""
    problem, solver, rho, d = cell["problem"], cell["solver"], cell["rho"], cell["d"]
    rank = max(1, round(rho * d))
    sat = p <= p_star
    load = p / p_star
    adam, lp = solver == "adam", solver == "lp"
    n_viol = 0 if sat else max(1, round((load - 1) * p * 0.3))
    t_var = (0.1 + max(0.0, load - 1.0)) if adam else 1.0
    t_mean = math.sqrt(2 * math.log(p)) + (0.5 if adam else 2.0)
    t_hist, o_hist, own_target, own_hist = _scores(p, t_mean, t_var, rng)
    sv = quarter_circle_sample(rank, rho, rng) if adam else np.linalg.svd(rng.normal(size=(d, d)), compute_uv=False)[:rank]
    sv = np.concatenate([sv * rng.uniform(0.5, 3.0), np.zeros(d - rank)]).tolist()
    return {
        "problem": problem, "solver": solver, "rho": rho, "rho_eff": rank / d, "rank": rank, "d": d, "seed": seed,
        "p": p, "alpha": alpha_of(p, d), "purpose": purpose, "attempt": 1, "sat": sat,
        "status": ("converged" if sat else "max_steps") if adam else
                  ("feasible" if sat else "infeasible") if lp else "closed_form",
        "accuracy": 1.0 - n_viol / p, "n_violations": n_viol, "min_margin": 0.2 if sat else -0.3,
        "final_loss": 0.1 * load, "steps": int(200 / max(abs(1 - load), 0.05)) if adam else 0,
        "wall_seconds": 0.01, "cpu_seconds": 0.009, "peak_bytes": 1000, "device": "cpu", "target_mean": t_mean,
        "target_var": t_var,
        "offtarget_mean": 0.0, "offtarget_var": 1.0, "target_hist": t_hist, "offtarget_hist": o_hist,
        "singular_values": sv, "generator": "splitmix64-erfcinv-v1", "mode": "materialize" if adam else "none",
        "chunk_rows": p if adam else 0, "chunk_cols": p if adam else 0,
        "input_target_score": own_target, "input_competitor_hist": own_hist,
        "lp_margin": (0.5 * (1 - p / (p_star + 1)) if sat else 0.0) if lp else math.nan,
    }


def threshold_record(cell: dict, seed: int, p_star: int, n_probes: int) -> dict:
    rank = max(1, round(cell["rho"] * cell["d"]))
    return {**cell, "rho_eff": rank / cell["d"], "rank": rank, "seed": seed, "p_star": p_star,
            "alpha_star": alpha_of(p_star, cell["d"]), "p_lo": p_star, "p_hi": p_star + 1,
            "n_probes": n_probes, "monotone": True}


def true_threshold(solver: str, rho: float, d: int) -> float:
    """The synthetic law the factory draws thresholds around: alpha_inf + a / ln d."""
    alpha_inf = 0.125 if solver == "hebbian" else 0.5 * (1.0 if rho == 1 else 0.9)
    return alpha_inf + (0.4 if solver == "hebbian" else 1.2) / math.log(d)


def synthetic_sweep(problems=("op", "dp"), solvers=("adam", "hebbian"), rhos=(1.0, 0.5), ds=(8, 12),
                    seeds=(0, 1, 2), rng_seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Records of a tiny sweep: per (cell, seed) search probes around p*, plus curve probes."""
    rng = np.random.default_rng(rng_seed)
    probes, thresholds = [], []
    for problem, solver, rho, d, seed in product(problems, solvers, rhos, ds, seeds):
        cell = {"problem": problem, "solver": solver, "rho": float(rho), "d": int(d)}
        p_star = p_of(true_threshold(solver, rho, d) * rng.uniform(0.9, 1.1), d)
        search = sorted({max(2, p_star - 3), p_star, p_star + 1, p_star + 4})
        curve = sorted({max(2, round(p_star * f)) for f in (0.5, 0.8, 1.3, 1.6)} - set(search))
        for p in search:
            probes.append(probe_record(cell, seed, p, p_star, "search", rng))
        for p in curve:
            probes.append(probe_record(cell, seed, p, p_star, "curve", rng))
        thresholds.append(threshold_record(cell, seed, p_star, len(search)))
    return probes, thresholds


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> str:
    """A tiny synthetic sweep written once per session (import this fixture to use it)."""
    probes, thresholds = synthetic_sweep()
    return write_store(tmp_path_factory.mktemp("stores") / "tiny.zarr", probes, thresholds)


@pytest.fixture(scope="session")
def tiny(tiny_store):
    """The tiny store opened with lamcap.analysis.load.open_store."""
    from lamcap.analysis.load import open_store

    return open_store(tiny_store)

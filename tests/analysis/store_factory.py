"""Write tiny lamcap stores with lamcap's own writer (lamcap.store.writer), without Ray or torch.

``write_store`` writes explicit records (hand-built stores); ``synthetic_sweep`` makes
records that look like a small sweep (thresholds, curve points, spectra, score histograms).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np
import pytest

HIST_EDGES = np.linspace(-10.0, 20.0, 121)


def alpha_of(p: int, d: int) -> float:
    return p * math.log(p) / d**2


def p_of(alpha: float, d: int) -> int:
    """The largest p with alpha_of(p, d) <= alpha (at least 2)."""
    p = 2
    while alpha_of(p + 1, d) <= alpha:
        p += 1
    return p


@dataclass(frozen=True)
class _Spec:
    """What the writer needs of a spec: its dict (recorded) and the largest d (the spectra's width)."""

    raw: dict
    max_d: int

    def to_dict(self) -> dict:
        return self.raw


def write_store(path, probes: list[dict], thresholds: list[dict], spec: dict | None = None,
                drop: tuple[str, ...] = ()) -> str:
    """Write a store at ``path`` with lamcap's writer: the records as given, the spec dict recorded as is.

    ``drop`` names probe variables to delete afterwards (a store written before they existed)."""
    import shutil

    from lamcap.store.writer import StoreWriter

    path = str(path)
    ds = [int(r["d"]) for r in probes] or [8]
    writer = StoreWriter.open_or_create(path, _Spec(spec or {"preset": "synthetic"}, max(ds)))
    writer.append_probes([{"error": "", **r} for r in probes])
    writer.append_thresholds(thresholds)
    for name in drop:
        shutil.rmtree(Path(path) / "probes" / name)
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
    sv = quarter_circle_sample(rank, rho, rng) if adam else \
        np.linalg.svd(rng.normal(size=(d, d)), compute_uv=False)[:rank]
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
            "n_probes": n_probes, "monotone": True, "complete": True, "reason": ""}


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

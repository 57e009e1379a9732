"""lamcap.analysis.thresholds on hand-built stores: per-cell statistics, first violations, OP vs DP pairs, curves."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from lamcap.analysis.load import open_store
from lamcap.analysis.pairing import op_dp_comparison
from lamcap.analysis.thresholds import accuracy_curves, bootstrap_medians, first_violation, threshold_summary
from lamcap.errors import InvalidInput
from tests.analysis.store_factory import alpha_of, probe_record, threshold_record, write_store

# Hand-built: per-seed p* of two cells of d = 10.
P_STAR = {("op", "adam"): {0: 20, 1: 24, 2: 22, 3: 30}, ("dp", "adam"): {0: 21, 1: 23, 2: 25}}
D = 10


def _hand_store(tmp_path):
    rng = np.random.default_rng(0)
    probes, thresholds = [], []
    for (problem, solver), seeds in P_STAR.items():
        cell = {"problem": problem, "solver": solver, "rho": 1.0, "d": D}
        for seed, p_star in seeds.items():
            for p in (p_star - 5, p_star, p_star + 1, p_star + 7):
                probes.append(probe_record(cell, seed, p, p_star, "search", rng))
            thresholds.append(threshold_record(cell, seed, p_star, 4))
    # An errored probe below p* must not count as a violation; a non-monotone UNSAT probe below p* must.
    bad = probe_record({"problem": "op", "solver": "adam", "rho": 1.0, "d": D}, 0, 12, 20, "curve", rng)
    probes.append({**bad, "sat": False, "status": "error", "accuracy": 0.0})
    odd = probe_record({"problem": "op", "solver": "adam", "rho": 1.0, "d": D}, 1, 18, 24, "curve", rng)
    probes.append({**odd, "sat": False, "status": "max_steps", "accuracy": 0.9})
    return open_store(write_store(tmp_path / "hand.zarr", probes, thresholds))


def test_summary_matches_numpy_on_a_hand_built_store(tmp_path):
    store = _hand_store(tmp_path)
    s = threshold_summary(store.thresholds, store.probes, level=0.9, n_boot=500)
    for (problem, solver), seeds in P_STAR.items():
        alphas = np.array([alpha_of(p, D) for p in seeds.values()])
        cell = s.sel(problem=problem, solver=solver, rho=1.0, d=D)
        assert int(cell.n_seeds) == len(seeds)
        assert float(cell.alpha_star_median) == pytest.approx(np.median(alphas))
        assert float(cell.alpha_star_mean) == pytest.approx(alphas.mean())
        assert float(cell.alpha_star_std) == pytest.approx(alphas.std(ddof=1))
        assert float(cell.p_star_median) == pytest.approx(np.median(list(seeds.values())))
        lo, hi = float(cell.alpha_star_lo), float(cell.alpha_star_hi)
        assert alphas.min() <= lo <= np.median(alphas) <= hi <= alphas.max()


def test_first_violation_is_the_smallest_unsat_load_per_seed(tmp_path):
    store = _hand_store(tmp_path)
    fv = first_violation(store.probes)
    op = fv.sel(problem="op", solver="adam", rho=1.0, d=D)
    # seed 0: the errored probe at p = 12 is ignored, so the first violation is at p* + 1;
    # seed 1: the UNSAT probe at p = 18 (below p* = 24) is the first violation the paper would see.
    assert float(op.sel(seed=0)) == pytest.approx(alpha_of(21, D))
    assert float(op.sel(seed=1)) == pytest.approx(alpha_of(18, D))
    assert float(op.sel(seed=3)) == pytest.approx(alpha_of(31, D))
    s = threshold_summary(store.thresholds, store.probes, n_boot=100)
    expected = np.mean([alpha_of(p, D) for p in (21, 18, 23, 31)])
    assert float(s.first_violation_mean.sel(problem="op", solver="adam", rho=1.0, d=D)) == pytest.approx(expected)


def test_op_dp_pairs_the_seeds_both_problems_hold(tmp_path):
    store = _hand_store(tmp_path)
    cmp = op_dp_comparison(store.thresholds, level=0.95, n_boot=2000).sel(solver="adam", rho=1.0, d=D)
    op, dp = P_STAR[("op", "adam")], P_STAR[("dp", "adam")]
    diffs = [alpha_of(op[s], D) - alpha_of(dp[s], D) for s in dp]  # seed 3 has no DP threshold: no pair
    assert float(cmp["mean"]) == pytest.approx(np.mean(diffs)) and int(cmp.n_pairs) == 3
    assert min(diffs) <= float(cmp.lo) <= np.mean(diffs) <= float(cmp.hi) <= max(diffs)
    assert (int(cmp.n_positive), int(cmp.n_negative)) == (1, 2)


def test_op_dp_needs_both_problems(tmp_path):
    store = _hand_store(tmp_path)
    only_op = store.thresholds.isel(threshold=np.flatnonzero((store.thresholds.problem == "op").values))
    with pytest.raises(InvalidInput, match="both problems"):
        op_dp_comparison(only_op)


def test_bootstrap_median_distribution_skips_missing_seeds():
    values = np.array([[1.0, 2.0, np.nan, np.nan], [5.0, np.nan, np.nan, np.nan]])
    reps = bootstrap_medians(values, 20000, np.random.default_rng(1))
    assert reps.shape == (20000, 2)
    # two present values: resamples {1,1}, {1,2}, {2,1}, {2,2} -> medians 1, 1.5, 2 with prob 1/4, 1/2, 1/4
    freq = [np.mean(reps[:, 0] == v) for v in (1.0, 1.5, 2.0)]
    np.testing.assert_allclose(freq, [0.25, 0.5, 0.25], atol=0.015)
    assert np.all(reps[:, 1] == 5.0)


def test_bootstrap_matches_a_naive_resampling_loop():
    rng = np.random.default_rng(7)
    row = rng.normal(size=9)
    fast = bootstrap_medians(row[None, :], 20000, np.random.default_rng(2))[:, 0]
    naive = np.array([np.median(rng.choice(row, size=row.size)) for _ in range(20000)])
    np.testing.assert_allclose(np.quantile(fast, [0.05, 0.5, 0.95]), np.quantile(naive, [0.05, 0.5, 0.95]), atol=0.05)


def test_accuracy_curves_average_probes_in_each_load_bin():
    alpha = np.array([0.1, 0.15, 0.9, 0.95, 0.9])
    acc = np.array([1.0, 1.0, 0.8, 0.6, 0.5])
    probes = xr.Dataset({
        "alpha": ("probe", alpha), "accuracy": ("probe", acc),
        "problem": ("probe", ["op"] * 4 + ["dp"]), "solver": ("probe", ["adam"] * 5),
        "rho": ("probe", [1.0] * 5), "d": ("probe", [8] * 5), "status": ("probe", ["converged"] * 5),
    })
    curves = accuracy_curves(probes, n_bins=2)
    op = curves.accuracy.sel(problem="op", solver="adam", rho=1.0, d=8).values
    np.testing.assert_allclose(op, [1.0, 0.7])
    assert float(curves.accuracy.sel(problem="dp", solver="adam", rho=1.0, d=8).isel(alpha_bin=1)) == 0.5
    with pytest.raises(InvalidInput, match="n_bins"):
        accuracy_curves(probes, n_bins=1)


# ---- thresholds known to a resolution: brackets wider than one widen the intervals ---------------
def _bracketed(rows: list[dict], below: float, above: float) -> list[dict]:
    """The same seeds searched to a resolution: p* inside [p_lo, p_hi - 1], alpha* at the candidates' midpoint."""
    out = []
    for r in rows:
        p_lo = max(2, r["p_star"] - round(below * r["p_star"]))
        p_hi = r["p_star"] + 1 + round(above * r["p_star"])
        mid = (p_lo + p_hi - 1) / 2
        out.append({**r, "p_lo": p_lo, "p_hi": p_hi, "p_star": int(mid), "alpha_star": alpha_of(mid, r["d"])})
    return out


def test_bracketed_thresholds_widen_the_median_interval_to_hold_every_p_star_in_them(tmp_path):
    from tests.analysis.store_factory import synthetic_sweep

    probes, rows = synthetic_sweep(problems=("op", "dp"), solvers=("adam",), rhos=(1.0,), ds=(12, 16),
                                   seeds=tuple(range(6)))
    exact = open_store(write_store(tmp_path / "exact.zarr", probes, rows))
    wide = open_store(write_store(tmp_path / "wide.zarr", probes, _bracketed(rows, 0.06, 0.04)))
    s_exact = threshold_summary(exact.thresholds, level=0.9, n_boot=300)
    s_wide = threshold_summary(wide.thresholds, level=0.9, n_boot=300)
    assert (s_wide.alpha_star_lo <= s_exact.alpha_star_lo).all()
    assert (s_wide.alpha_star_hi >= s_exact.alpha_star_hi).all()
    assert ((s_wide.alpha_star_hi - s_wide.alpha_star_lo) > (s_exact.alpha_star_hi - s_exact.alpha_star_lo)).all()
    d_exact = op_dp_comparison(exact.thresholds, level=0.9, n_boot=300)
    d_wide = op_dp_comparison(wide.thresholds, level=0.9, n_boot=300)
    assert (d_wide.lo <= d_exact.lo).all() and (d_wide.hi >= d_exact.hi).all()
    assert ((d_wide.hi - d_wide.lo) > (d_exact.hi - d_exact.lo)).all()


def test_bracketed_thresholds_widen_the_fit_interval(tmp_path):
    from lamcap.analysis.scaling import fit_scaling
    from tests.analysis.store_factory import synthetic_sweep

    probes, rows = synthetic_sweep(problems=("op",), solvers=("adam",), rhos=(1.0,), ds=(8, 12, 16, 24),
                                   seeds=tuple(range(6)))
    exact = open_store(write_store(tmp_path / "exact.zarr", probes, rows))
    wide = open_store(write_store(tmp_path / "wide.zarr", probes, _bracketed(rows, 0.15, 0.15)))
    widths = [(f.hi - f.lo).sel(param="alpha_inf").item()
              for f in (fit_scaling(s.thresholds, "naive", n_boot=300) for s in (exact, wide))]
    assert widths[1] > widths[0] > 0

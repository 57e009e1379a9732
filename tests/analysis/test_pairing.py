"""lamcap.analysis.pairing on synthetic stores whose DP thresholds sit a known offset below OP's, seed by seed."""
from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from lamcap.analysis.load import open_store
from lamcap.analysis.pairing import op_dp_comparison, paired_differences
from lamcap.errors import InvalidInput
from tests.analysis.store_factory import alpha_of, p_of, synthetic_sweep, threshold_record, write_store

DS, SEEDS = (32, 48, 64, 96), tuple(range(6))  # p* is an integer: its alpha step is below 0.007 here


def _rows(offset, noise: float, rng) -> list[dict]:
    """Per (d, seed) an OP threshold near 0.9 and a DP one at OP's alpha* minus offset(d) (plus noise), both
    as integer p*."""
    rows = []
    for d in DS:
        for seed in SEEDS:
            op = p_of(0.9 + rng.normal(0.0, 0.03), d)
            dp = p_of(alpha_of(op, d) - offset(d) + rng.normal(0.0, noise), d)
            for problem, p_star in (("op", op), ("dp", dp)):
                rows.append(threshold_record({"problem": problem, "solver": "adam", "rho": 1.0, "d": d}, seed,
                                             p_star, 4))
    return rows


def _store(tmp_path, name: str, offset, noise: float, seed: int = 0):
    probes, _ = synthetic_sweep(problems=("op",), solvers=("adam",), rhos=(1.0,), ds=(8,), seeds=(0,))
    return open_store(write_store(tmp_path / name, probes, _rows(offset, noise, np.random.default_rng(seed))))


def _exact_differences(store) -> dict[tuple[int, int], float]:
    th = store.thresholds.to_dataframe()
    key = lambda r: (int(r.d), int(r.seed))  # noqa: E731
    op = {key(r): r.alpha_star for r in th[th.problem == "op"].itertuples()}
    return {k: v - next(r.alpha_star for r in th[th.problem == "dp"].itertuples() if key(r) == k)
            for k, v in op.items()}


def test_known_offset_is_measured_with_an_interval_and_a_sign_test(tmp_path):
    store = _store(tmp_path, "offset.zarr", lambda d: 0.04, noise=0.0)
    exact = _exact_differences(store)
    cmp = op_dp_comparison(store.thresholds, level=0.95, n_boot=2000).sel(solver="adam", rho=1.0)
    for d in DS:
        want = [v for (dd, _), v in exact.items() if dd == d]
        assert float(cmp["mean"].sel(d=d)) == pytest.approx(np.mean(want))
        assert int(cmp.n_pairs.sel(d=d)) == len(SEEDS)
        # p* is an integer: each difference lies within one p-step of the offset
        assert float(cmp.lo.sel(d=d)) <= np.mean(want) <= float(cmp.hi.sel(d=d))
        assert 0.0 < float(cmp.lo.sel(d=d))
        assert int(cmp.n_positive.sel(d=d)) == len(SEEDS) and float(cmp.sign_p.sel(d=d)) == pytest.approx(2 / 2**6)
    assert float(cmp.pooled_sign_p) == pytest.approx(2 / 2 ** (len(DS) * len(SEEDS)))
    assert float(cmp.pooled_lo) <= 0.04 + 0.01 and float(cmp.pooled_hi) >= 0.04 - 0.01


def test_no_offset_gives_an_interval_holding_zero_and_no_sign(tmp_path):
    store = _store(tmp_path, "none.zarr", lambda d: 0.0, noise=0.04, seed=1)
    cmp = op_dp_comparison(store.thresholds, level=0.95, n_boot=2000).sel(solver="adam", rho=1.0)
    assert float(cmp.pooled_lo) < 0.0 < float(cmp.pooled_hi)
    assert float(cmp.pooled_sign_p) > 0.05
    n_pos, n_neg = int(cmp.pooled_n_positive), int(cmp.pooled_n_negative)
    assert float(cmp.pooled_sign_p) == pytest.approx(stats.binomtest(n_pos, n_pos + n_neg).pvalue)


def test_trend_recovers_an_offset_that_shrinks_with_d(tmp_path):
    """An offset 0.01 + 0.3 / ln d: the per-d mean differences, fitted against 1 / ln d, give back (0.01, 0.3)
    to the resolution that integer p* allows."""
    store = _store(tmp_path, "trend.zarr", lambda d: 0.01 + 0.3 / math.log(d), noise=0.0, seed=2)
    cmp = op_dp_comparison(store.thresholds, n_boot=500).sel(solver="adam", rho=1.0)
    c0, c1 = cmp.trend.values
    assert c0 == pytest.approx(0.01, abs=0.02) and c1 == pytest.approx(0.3, abs=0.06)
    assert float(cmp.trend_lo.sel(coef="c1")) <= c1 <= float(cmp.trend_hi.sel(coef="c1"))


def test_pairs_are_only_the_seeds_both_problems_hold(tmp_path):
    store = _store(tmp_path, "partial.zarr", lambda d: 0.02, noise=0.0, seed=3)
    th = store.thresholds
    keep = ~((th.problem == "dp") & (th.d == 48) & (th.seed >= 4)).values  # DP lacks two seeds at d = 48
    pairs = paired_differences(th.isel(threshold=np.flatnonzero(keep)))
    assert int(pairs.difference.sel(solver="adam", rho=1.0, d=48).notnull().sum()) == 4
    assert int(pairs.difference.sel(solver="adam", rho=1.0, d=64).notnull().sum()) == 6


def test_brackets_widen_the_interval_and_leave_uncertain_pairs_unsigned():
    def table(p_lo_pad: int) -> xr.Dataset:
        rows = []
        for problem, p_star in (("op", 30), ("dp", 29)):
            for seed in range(5):
                lo, hi = p_star - p_lo_pad, p_star + 1 + p_lo_pad
                rows.append(dict(problem=problem, solver="adam", rho=1.0, d=12, seed=seed, p_lo=lo, p_hi=hi,
                                 p_star=p_star, alpha_star=alpha_of(p_star, 12)))
        return xr.Dataset({k: ("threshold", [r[k] for r in rows]) for k in rows[0]})

    exact, wide = (op_dp_comparison(table(pad), n_boot=500).sel(solver="adam", rho=1.0, d=12) for pad in (0, 2))
    assert int(exact.n_positive) == 5 and int(wide.n_positive) == 0 and np.isnan(float(wide.sign_p))
    assert float(wide.hi - wide.lo) > float(exact.hi - exact.lo)


def test_one_problem_alone_is_refused(tmp_path):
    probes, rows = synthetic_sweep(problems=("op",), solvers=("adam",), rhos=(1.0,), ds=(8,), seeds=(0, 1))
    with pytest.raises(InvalidInput, match="both problems"):
        op_dp_comparison(open_store(write_store(tmp_path / "op.zarr", probes, rows)).thresholds)

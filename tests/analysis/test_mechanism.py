"""lamcap.analysis.mechanism: relative loads, score ratios, spectra at threshold, KS distances, steps to solution."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from lamcap.analysis.load import open_store
from lamcap.analysis.mechanism import (
    ks_distance,
    law_cdf,
    regime,
    relative_load,
    score_histograms,
    score_ratios,
    steps_to_solution,
    threshold_spectra,
)
from lamcap.errors import InvalidInput
from tests.analysis.store_factory import alpha_of, probe_record, quarter_circle_sample, threshold_record, write_store

CELL = {"problem": "dp", "solver": "adam", "rho": 0.5, "d": 10}
HEBB = {**CELL, "solver": "hebbian"}


def _store(tmp_path):
    rng = np.random.default_rng(4)
    probes, thresholds = [], []
    for cell, p_star in ((CELL, 24), (HEBB, 10)):
        for seed in (0, 1):
            for p in (p_star // 2, p_star, p_star + 1, 2 * p_star):
                probes.append(probe_record(cell, seed, p, p_star + seed, "search", rng))
            thresholds.append(threshold_record(cell, seed, p_star + seed, 4))
    return open_store(write_store(tmp_path / "m.zarr", probes, thresholds))


def test_relative_load_uses_each_probes_own_seed(tmp_path):
    store = _store(tmp_path)
    rel = relative_load(store.probes, store.thresholds).values
    p_star = {(r, s): int(store.thresholds.p_star[i]) for i, (r, s) in
              enumerate(zip(store.thresholds.solver.values, store.thresholds.seed.values))}
    for i in range(store.probes.sizes["probe"]):
        pr = store.probes.isel(probe=i)
        ps = p_star[(str(pr.solver.values), int(pr.seed))]
        assert rel[i] == pytest.approx(alpha_of(int(pr.p), 10) / alpha_of(ps, 10))
    labels = regime(relative_load(store.probes, store.thresholds)).values
    assert set(labels) == {"below", "near", "above"}


def test_score_ratios_average_target_over_offtarget_variance(tmp_path):
    store = _store(tmp_path)
    out = score_ratios(store.probes, store.thresholds)
    probes = store.probes
    rel = relative_load(probes, store.thresholds).values
    for solver in ("adam", "hebbian"):
        for reg, sel in (("below", rel < 0.9), ("above", rel > 1.1)):
            mask = sel & (probes.solver.values == solver)
            expected = np.mean(probes.target_var.values[mask] / probes.offtarget_var.values[mask])
            got = float(out.ratio_mean.sel(problem="dp", solver=solver, rho=0.5, d=10, regime=reg))
            assert got == pytest.approx(expected)
    adam_below = float(out.ratio_mean.sel(problem="dp", solver="adam", rho=0.5, d=10, regime="below"))
    hebb_below = float(out.ratio_mean.sel(problem="dp", solver="hebbian", rho=0.5, d=10, regime="below"))
    assert adam_below < hebb_below  # the factory draws the trained memory's targets concentrated


def test_score_histograms_are_densities(tmp_path):
    store = _store(tmp_path)
    h = score_histograms(store.probes, store.thresholds, "dp", 0.5, 10)
    width = np.diff(h.attrs["score_bin_edges"])
    total = (h.target_density * xr.DataArray(width, dims="score_bin")).sum("score_bin")
    np.testing.assert_allclose(total.values[np.isfinite(total.values)], 1.0)
    with pytest.raises(InvalidInput, match="d=99"):
        score_histograms(store.probes, store.thresholds, "dp", 0.5, 99)


def test_spectra_at_threshold_are_scaled_and_truncated_to_rank(tmp_path):
    store = _store(tmp_path)
    spectra = threshold_spectra(store.probes, store.thresholds)
    assert spectra.sizes["probe"] == 4  # one SAT probe at p* per (cell, seed)
    sv = spectra.scaled_sv.values
    np.testing.assert_allclose(sv[:, 0], 2.0)
    assert np.all(np.isfinite(sv[:, :5])) and np.all(np.isnan(sv[:, 5:]))  # rank = 0.5 * 10
    assert np.all(np.diff(sv[:, :5], axis=1) <= 0)


def test_a_curve_probe_at_p_star_does_not_count_its_seed_twice(tmp_path):
    rng = np.random.default_rng(5)
    probes = [probe_record(CELL, 0, p, 20, "search", rng) for p in (10, 20, 21)]
    probes.append(probe_record(CELL, 0, 20, 20, "curve", rng))  # the same p as the search probe at p*
    store = open_store(write_store(tmp_path / "c.zarr", probes, [threshold_record(CELL, 0, 20, 3)]))
    assert threshold_spectra(store.probes, store.thresholds).sizes["probe"] == 1


def _quarter_circle(s, rho):
    """Truncated quarter circle with its lower edge found from the closed-form CDF (test-side reference)."""
    grid = np.linspace(0, 2, 20001)
    cdf = (grid * np.sqrt(4 - grid**2) / 2 + 2 * np.arcsin(grid / 2)) / np.pi
    lower = np.interp(1 - rho, cdf, grid)
    return np.where((s >= lower) & (s <= 2), np.sqrt(np.clip(4 - s**2, 0, None)) / (np.pi * rho), 0.0)


def test_law_cdf_matches_the_closed_form_quarter_circle():
    grid, cdf = law_cdf(_quarter_circle, 1.0)
    s = np.linspace(0, 2, 50)
    exact = (s * np.sqrt(4 - s**2) / 2 + 2 * np.arcsin(s / 2)) / np.pi
    np.testing.assert_allclose(np.interp(s, grid, cdf), exact, atol=2e-3)


def test_ks_distance_separates_right_and_wrong_laws():
    sample = quarter_circle_sample(4000, 0.5, np.random.default_rng(0))
    right = ks_distance(sample, *law_cdf(_quarter_circle, 0.5))
    wrong = ks_distance(sample, *law_cdf(_quarter_circle, 1.0))
    assert right < 0.03 < 0.2 < wrong
    assert np.isnan(ks_distance(np.array([np.nan]), *law_cdf(_quarter_circle, 0.5)))


def test_steps_to_solution_binned_by_relative_load(tmp_path):
    store = _store(tmp_path)
    steps = steps_to_solution(store.probes, store.thresholds, bins=np.array([0.0, 0.75, 1.2]))
    probes = store.probes
    rel = relative_load(probes, store.thresholds).values
    conv = (probes.status.values == "converged")
    for lo, hi, centre in ((0.0, 0.75, 0.375), (0.75, 1.2, 0.975)):
        mask = conv & (rel > lo) & (rel <= hi)
        got = float(steps.steps_median.sel(problem="dp", solver="adam", rho=0.5, d=10, load_bin=centre))
        assert got == pytest.approx(np.median(probes.steps.values[mask]))
    assert set(steps.solver.values) == {"adam"}  # Hebbian takes no steps


def test_spectrum_distances_prefer_the_law_the_spectra_were_drawn_from(tmp_path):
    pytest.importorskip("lamcap.predictions")
    from lamcap.analysis.mechanism import spectrum_distances

    rng = np.random.default_rng(9)
    cell = {**CELL, "d": 40}
    probes = [probe_record(cell, seed, 150, 150, "search", rng) for seed in range(3)]
    thresholds = [threshold_record(cell, seed, 150, 1) for seed in range(3)]
    store = open_store(write_store(tmp_path / "sv.zarr", probes, thresholds))
    dist = spectrum_distances(threshold_spectra(store.probes, store.thresholds)).sel(
        problem="dp", solver="adam", rho=0.5, d=40)
    # the factory draws trained spectra from the truncated quarter circle (20 per seed, 3 seeds)
    assert int(dist.n_values) == 60 and int(dist.n_seeds) == 3
    assert float(dist.ks_truncated) < 0.25
    assert float(dist.ks_truncated) < float(dist.ks_init)

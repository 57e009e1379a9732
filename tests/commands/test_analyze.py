"""`lamcap analyze` and `lamcap demo` through the CLI entry point (Ray-free: the sweep is replaced)."""
from __future__ import annotations

import csv
import json
import os

import pytest
import zarr

from lamcap import cli
from lamcap.commands import demo
from tests.analysis.store_factory import synthetic_sweep, threshold_record, write_store


@pytest.fixture(autouse=True)
def only_our_commands(monkeypatch):
    """Build the parser from the analysis commands alone, so these tests do not depend on the others."""
    monkeypatch.setattr(cli, "COMMANDS", ("analyze", "demo"))


def _one_line_error(capsys, *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_missing_store_gives_a_message_and_nonzero_exit(tmp_path, capsys):
    missing = str(tmp_path / "absent.zarr")
    assert cli.main(["analyze", missing, "--out", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "lamcap analyze: error:", "absent.zarr")
    assert not os.path.exists(tmp_path / "out")


def test_empty_store_gives_a_message_and_nonzero_exit(tmp_path, capsys):
    path = tmp_path / "empty.zarr"
    zarr.open_group(str(path), mode="w", zarr_format=3)
    assert cli.main(["analyze", str(path)]) == 2
    _one_line_error(capsys, "empty")


def test_store_without_thresholds_gives_a_message(tmp_path, capsys):
    probes, _ = synthetic_sweep(ds=(8,), seeds=(0,))
    path = write_store(tmp_path / "young.zarr", probes, [])
    assert cli.main(["analyze", path]) == 2
    _one_line_error(capsys, "no thresholds")


def test_bad_level_is_rejected_before_work(tiny_store, tmp_path, capsys):
    assert cli.main(["analyze", tiny_store, "--out", str(tmp_path / "o"), "--level", "95"]) == 2
    _one_line_error(capsys, "--level 95")
    assert not os.path.exists(tmp_path / "o")


def test_analyze_writes_tables_and_figures(tiny_store, tmp_path, capsys):
    out = tmp_path / "analysis"
    assert cli.main(["analyze", tiny_store, "--out", str(out), "--n-boot", "50"]) == 0
    text = capsys.readouterr().out
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 16  # 2 problems x 2 solvers x 2 rho x 2 d, every cell with 3 seeds
    assert all(r["n_seeds"] == "3" for r in rows)
    assert {"alpha_star_median", "alpha_star_lo", "alpha_star_hi", "alpha_theory_finite_size",
            "alpha_theory_asymptotic", "first_violation_mean"} <= set(rows[0])
    fits = json.loads((out / "fits.json").read_text())
    scaling = fits["scaling"]
    assert len(scaling["naive"]) == len(scaling["theory"]) == 8 and scaling["order2"] == []  # 2 d: no 3 params
    assert {"alpha_inf", "a"} == set(scaling["naive"][0]["params"]) and "bias" in scaling["naive"][0]
    assert {"alpha_inf", "k"} == set(scaling["theory"][0]["params"])
    assert len(fits["op_minus_dp"]) == 8 and len(fits["op_minus_dp_pooled"]) == 4
    for i, name in enumerate(("accuracy", "scaling", "spectra", "scores", "steps"), start=1):
        png = out / f"fig{i}_{name}.png"
        assert png.exists() and str(png) in text
    assert "median a*" in text and "alpha_inf" in text
    op_dp_table = text.split("OP vs DP")[1].split("Outputs:")[0]
    op_dp_rows = [line for line in op_dp_table.splitlines() if line.startswith(("adam", "hebbian"))]
    assert len(op_dp_rows) == 8 + 4  # one per (solver, rho, d), then one per (solver, rho) over every d
    first = fits["op_minus_dp"][0]
    assert f"{first['difference']:+.3f}" in op_dp_rows[0]


def test_analyze_takes_several_stores(tmp_path, capsys):
    probes, thresholds = synthetic_sweep(problems=("op",), solvers=("adam",), rhos=(1.0,), ds=(8, 12, 16))
    a = write_store(tmp_path / "a.zarr", [p for p in probes if p["d"] < 16], [t for t in thresholds if t["d"] < 16])
    b = write_store(tmp_path / "b.zarr", [p for p in probes if p["d"] == 16], [t for t in thresholds if t["d"] == 16])
    assert cli.main(["analyze", a, b, "--out", str(tmp_path / "out"), "--n-boot", "20"]) == 0
    with open(tmp_path / "out" / "summary.csv") as fh:
        assert sorted(int(r["d"]) for r in csv.DictReader(fh)) == [8, 12, 16]
    capsys.readouterr()
    first = thresholds[0]
    other = threshold_record({k: first[k] for k in ("problem", "solver", "rho", "d")}, first["seed"],
                             first["p_star"] + 1, 4)
    clash = write_store(tmp_path / "c.zarr", probes[:2], [other])
    assert cli.main(["analyze", a, clash, "--out", str(tmp_path / "o2")]) == 2
    _one_line_error(capsys, "disagree", "a.zarr", "c.zarr")


def test_demo_runs_the_sweep_then_the_analysis(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_sweep(store, workers):
        calls.append((store, workers))
        probes, thresholds = synthetic_sweep(problems=("op",), solvers=("adam",), rhos=(1.0,), ds=(8, 10, 12))
        write_store(store, probes, thresholds)
        return 0

    monkeypatch.setattr(demo, "run_sweep", fake_sweep)
    store, out = str(tmp_path / "demo-store.zarr"), str(tmp_path / "demo-out")
    assert cli.main(["demo", "--store", store, "--out", out, "--workers", "2"]) == 0
    assert calls == [(store, 2)]
    assert os.path.exists(os.path.join(out, "summary.csv"))
    assert capsys.readouterr().out.rstrip().endswith(f"Figures and tables are in {out}/ (store: {store})")


def test_demo_sweep_command_line():
    assert demo.sweep_argv("s.zarr", None) == ["sweep", "--preset", "demo", "--store", "s.zarr"]
    assert demo.sweep_argv("s.zarr", 3)[-2:] == ["--workers", "3"]


def test_demo_rejects_zero_workers(capsys):
    assert cli.main(["demo", "--workers", "0"]) == 2
    _one_line_error(capsys, "--workers 0")

"""What a careful user throws at the CLI: every refusal is one line, before Ray, before allocation."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from lamcap import cli
from lamcap.orchestrator.runtime import driver

SMALL = ["--problems", "op", "--solvers", "hebbian", "--rho", "1", "--d", "8", "--seeds", "1", "--no-progress"]


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if anything starts Ray."""
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(driver, "start_ray", refuse)


def one_line_error(capsys, code: int, needle: str, argv: list[str]) -> str:
    assert cli.main(argv) == code
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and needle in err, err
    return err


@pytest.mark.parametrize("argv, needle", [
    (["--problem", "op", "--d", "8", "--p", "4000000000", "--solver", "hebbian"], "this cpu has"),
    (["--problem", "op", "--d", "8", "--p", "100000000000", "--solver", "hebbian"], "must be an integer in 2.."),
    (["--problem", "op", "--d", "8", "--alpha", "1e300", "--solver", "hebbian"], "must be an integer in 2.."),
    (["--problem", "dp", "--d", "256", "--p", "20000", "--solver", "adam", "--mode", "materialize"],
     "competitors 381.5 GiB"),
    (["--problem", "op", "--d", "1000000", "--p", "10", "--solver", "hebbian"], "weights"),
    (["--problem", "op", "--d", "10000000", "--p", "10", "--solver", "hebbian"], "must be an integer in 2.."),
])
def test_oversized_trials_are_refused_before_allocating(capsys, monkeypatch, argv, needle):
    from lamcap import api

    monkeypatch.setattr(api, "run_trial", lambda plan: pytest.fail("the trial ran"))
    err = one_line_error(capsys, 2, needle, ["trial", *argv])
    assert "needs about" in err or "the instance's counter layout" in err


def test_huge_seed_counts_are_refused_before_the_store_or_ray(tmp_path, capsys, no_ray):
    store = tmp_path / "s.zarr"
    one_line_error(capsys, 2, "seeds=10000000000000000000000 gives",
                   ["sweep", *SMALL[:-3], "--seeds", "10000000000000000000000", "--store", str(store)])
    assert not store.exists()


def test_a_cuda_sweep_without_cuda_is_refused_before_ray(tmp_path, capsys, no_ray):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    one_line_error(capsys, 2, "device 'cuda' requested but no CUDA device",
                   ["sweep", *SMALL, "--device", "cuda", "--store", str(tmp_path / "s.zarr")])


HOLD = textwrap.dedent("""
    import sys, time
    from lamcap.store.lock import StoreLock
    StoreLock(sys.argv[1]).acquire(); print("held", flush=True); time.sleep(120)
""")


def test_a_store_held_by_another_driver_is_refused_naming_it(tmp_path, capsys, no_ray):
    store = tmp_path / "s.zarr"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(store)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        err = one_line_error(capsys, 2, "being written by another lamcap sweep (host ",
                             ["sweep", *SMALL, "--store", str(store)])
        assert f"pid {holder.pid}, since 20" in err and not store.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_damaged_store_is_refused_before_ray(tmp_path, capsys, no_ray):
    from tests.store.test_writer import committed_store

    path = committed_store(tmp_path)
    os.remove(path / "thresholds" / "p_star" / "c" / "0")
    spec = json.loads(__import__("zarr").open_group(str(path), mode="r").attrs["spec"])
    argv = ["sweep", "--problems", *spec["problems"], "--solvers", *spec["solvers"],
            "--rho", *map(str, spec["rhos"]), "--d", *map(str, spec["ds"]), "--seeds", str(spec["seeds"]),
            "--device", "cpu", "--no-progress", "--store", str(path)]
    one_line_error(capsys, 2, "store damaged:", argv)


def test_save_and_out_paths_are_checked_before_any_work(tmp_path, capsys, monkeypatch):
    from lamcap import api

    monkeypatch.setattr(api, "run_trial", lambda plan: pytest.fail("the trial ran"))
    trial = ["trial", "--problem", "op", "--d", "8", "--p", "20", "--solver", "adam"]
    one_line_error(capsys, 2, "does not exist", [*trial, "--save", str(tmp_path / "missing" / "w.npz")])
    one_line_error(capsys, 2, "is a folder", [*trial, "--save", str(tmp_path)])
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line_error(capsys, 2, "is a file, not a folder", ["analyze", str(tmp_path), "--out", str(afile)])
    one_line_error(capsys, 2, "is a file, so the folder cannot be created",
                   ["analyze", str(tmp_path), "--out", str(afile / "sub")])


def test_a_folder_that_is_no_store_and_a_spec_that_is_a_folder_are_named_as_such(tmp_path, capsys, no_ray):
    (tmp_path / "plain").mkdir()
    one_line_error(capsys, 2, "is not a lamcap store", ["analyze", str(tmp_path / "plain"), "--out",
                                                         str(tmp_path / "o")])
    one_line_error(capsys, 2, "is a directory, not a TOML file", ["sweep", str(tmp_path / "plain"), "--store",
                                                                  str(tmp_path / "s.zarr")])


def test_every_bad_solver_setting_is_reported_at_once(tmp_path, capsys, no_ray):
    spec = tmp_path / "bad.toml"
    spec.write_text('preset = "demo"\n[solver_settings]\nlr = -1.0\nmax_steps = 0\nmode = "fast"\n')
    err = one_line_error(capsys, 2, "lr=-1.0", ["sweep", str(spec), "--store", str(tmp_path / "s.zarr")])
    assert "max_steps=0" in err and "'fast'" in err

"""`lamcap trial` and `lamcap bench kernel` through the CLI entry point."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from lamcap import cli


def trial_json(capsys, *argv: str) -> dict:
    assert cli.main(["trial", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_record_holds_the_spec_settings_and_outcome(capsys):
    out = trial_json(capsys, "--problem", "dp", "--d", "8", "--p", "12", "--solver", "adam", "--seed", "2",
                     "--rho", "0.5", "--steps", "300", "--lr", "0.1")
    assert (out["problem"], out["d"], out["p"], out["rank"], out["seed"]) == ("dp", 8, 12, 4, 2)
    assert out["settings"]["max_steps"] == 300 and out["settings"]["lr"] == 0.1
    assert out["alpha"] == pytest.approx(12 * math.log(12) / 64)
    assert out["sat"] == (out["n_violations"] == 0) and len(out["singular_values"]) == 8
    assert out["status"] in ("converged", "max_steps", "diverged")


def test_alpha_is_converted_to_the_nearest_p_and_said(capsys):
    assert cli.main(["trial", "--problem", "op", "--d", "10", "--alpha", "0.8", "--solver", "hebbian"]) == 0
    text = capsys.readouterr().out
    want = min(range(2, 500), key=lambda p: abs(p * math.log(p) - 80))
    assert f"p = {want} " in text and "--alpha 0.8" in text and "SAT:" in text


@pytest.mark.parametrize("problem,shape", [("op", (20, 6)), ("dp", (20, 20, 6))])
def test_save_lets_numpy_recheck_the_verdict(tmp_path, capsys, problem, shape):
    path = tmp_path / "trial.npz"
    out = trial_json(capsys, "--problem", problem, "--d", "6", "--p", "20", "--solver", "hebbian",
                     "--save", str(path))
    arrays = np.load(path)
    w, x, y = arrays["W"], arrays["X"], arrays["Y"]
    assert w.dtype == x.dtype == y.dtype == np.float64 and y.shape == shape
    z = x @ w.T
    s = z @ y.T if problem == "op" else np.einsum("mnd,md->mn", y, z)
    off = np.where(np.eye(20, dtype=bool), -np.inf, s).max(axis=1)
    assert int((np.diag(s) <= off).sum()) == out["n_violations"]


@pytest.mark.parametrize("argv,needle", [
    (["--problem", "op", "--d", "1", "--p", "5", "--solver", "adam"], "--d 1"),
    (["--problem", "op", "--d", "4", "--p", "1", "--solver", "adam"], "--p 1"),
    (["--problem", "op", "--d", "4", "--alpha", "-1", "--solver", "adam"], "--alpha -1"),
    (["--problem", "op", "--d", "4", "--p", "5", "--rank", "5", "--solver", "adam"], "--rank 5"),
    (["--problem", "op", "--d", "4", "--p", "5", "--rank", "0", "--solver", "adam"], "--rank 0"),
    (["--problem", "op", "--d", "4", "--p", "5", "--rho", "1.5", "--solver", "adam"], "--rho 1.5"),
    (["--problem", "op", "--d", "4", "--p", "5", "--rho", "0", "--solver", "adam"], "--rho 0"),
    (["--problem", "xp", "--d", "4", "--p", "5", "--solver", "adam"], "'xp'"),
    (["--problem", "op", "--d", "4", "--p", "5", "--solver", "sgd"], "'sgd'"),
    (["--problem", "op", "--d", "4", "--p", "5", "--solver", "adam", "--device", "tpu"], "'tpu'"),
    (["--problem", "op", "--d", "4", "--p", "5", "--solver", "adam", "--mode", "lazy"], "'lazy'"),
    (["--problem", "op", "--d", "4", "--p", "5", "--solver", "adam", "--steps", "0"], "max_steps=0"),
    (["--problem", "op", "--d", "8", "--p", "5", "--rank", "4", "--solver", "lp"], "full rank"),
    (["--problem", "dp", "--d", "64", "--p", "6000", "--solver", "hebbian", "--save", "x.npz"], "--save"),
])
def test_bad_input_gives_one_line_naming_the_value(capsys, argv, needle):
    assert cli.main(["trial", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and len(err.splitlines()) == 1 and needle in err, err


def test_cuda_where_none_exists_is_refused(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.main(["trial", "--problem", "op", "--d", "4", "--p", "5", "--solver", "adam", "--device", "cuda"]) == 2
    assert "cuda" in capsys.readouterr().err


def test_a_bad_value_from_the_console_script_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "lamcap.cli", "trial", "--problem", "op", "--d", "4",
                           "--p", "5", "--rank", "9", "--solver", "adam"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--rank 9" in proc.stderr


@pytest.mark.parametrize("mode", ["naive", "materialize", "regenerate"])
def test_bench_kernel_json_reports_time_and_memory(capsys, mode):
    assert cli.main(["bench", "kernel", "--problem", "dp", "--d", "8", "--p", "40", "--mode", mode,
                     "--repeats", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == mode and out["step_seconds"] > 0 and out["peak_bytes"] >= 0
    assert out["tensor_bytes"] == 40 * 40 * 8 * 4 and out["stream_seconds"] > 0 and out["randn_seconds"] > 0
    assert out["held_bytes"] == (0 if mode == "regenerate" else 40 * 40 * 8 * 4)


def test_bench_rejects_an_unknown_mode(capsys):
    assert cli.main(["bench", "kernel", "--mode", "fast"]) == 2
    assert "'fast'" in capsys.readouterr().err

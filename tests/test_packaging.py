"""The wheel ships one top-level package, `lamcap`, and works from site-packages alone."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _clean_env() -> dict:
    """The environment of a user outside the repository: no PYTHONPATH into the source tree."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


@pytest.mark.slow
def test_wheel_installs_only_lamcap_and_runs_from_site_packages(tmp_path):
    wheels, source = tmp_path / "wheels", tmp_path / "source"
    # From a copy: a build leaves build/ behind, and a stale build/ can leak removed modules into a wheel.
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "*.zarr",
                                                                "__pycache__", ".pytest_cache", "out", "demo-*"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = wheels.glob("lamcap-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"lamcap"}
    names = zipfile.ZipFile(wheel).namelist()
    assert {"lamcap/kernels/fused_loss.py", "lamcap/cli.py", "lamcap/predictions/capacity.py", "lamcap/store/schema.py",
            "lamcap/orchestrator/runtime/scheduler.py", "lamcap/analysis/scaling.py"} <= set(names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, env=_clean_env(), cwd=tmp_path)
    # The dependencies (torch, ray, ...) come from this test's environment: a plain path entry, so that
    # the editable install of lamcap living there (its .pth finder) is not activated.
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = _clean_env()
    probe = ("import importlib.util, json, lamcap, lamcap.kernels.disorder; "
             "print(json.dumps({'file': lamcap.kernels.disorder.__file__, 'tops': "
             "{m: importlib.util.find_spec(m) is not None for m in ('kernels', 'orchestrator', 'analysis')}}))")
    found = json.loads(subprocess.run([str(py), "-c", probe], cwd=outside, env=env, check=True,
                                      capture_output=True, text=True).stdout)
    assert found["file"].startswith(site) and not any(found["tops"].values())

    lamcap = [str(py), "-m", "lamcap"]
    theory = subprocess.run([*lamcap, "theory", "--rho", "1", "--d", "8", "--json"], cwd=outside, env=env,
                            check=True, capture_output=True, text=True)
    assert json.loads(theory.stdout)["asymptotic"] == [{"rho": 1.0, "alpha_c": 0.5, "alpha_hebbian": 0.125}]
    sweep = subprocess.run([*lamcap, "sweep", "--problems", "op", "--solvers", "hebbian", "--rho", "1", "--d", "6",
                            "--seeds", "2", "--workers", "1", "--device", "cpu", "--no-progress",
                            "--store", "s.zarr"], cwd=outside, env=env, capture_output=True, text=True, timeout=300)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert "2 probes run" not in sweep.stdout and "probes run" in sweep.stdout
    check = ("import lamcap; s = lamcap.open_store('s.zarr'); "
             "print(s.thresholds.sizes['threshold'], sorted(set(s.probes.device.values.tolist())))")
    out = subprocess.run([str(py), "-c", check], cwd=outside, env=env, check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["2", "['cpu']"]

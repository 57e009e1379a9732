"""`import lamcap`: the API against the CLI that is built on it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import lamcap
from lamcap import cli
from lamcap.errors import InvalidInput

TIMING = ("wall_seconds", "cpu_seconds", "peak_bytes")


def untimed(record: dict) -> str:
    """The record without its timings, as comparable text (NaN equals NaN there)."""
    return json.dumps({k: v for k, v in record.items() if k not in TIMING}, sort_keys=True)


def test_import_lamcap_is_light_and_lists_its_api():
    code = "import sys, lamcap; print(sorted(m for m in ('torch', 'ray', 'xarray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert {"trial", "sweep", "open_store", "analyze", "theory", "load_spec", "plan"} <= set(dir(lamcap))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lamcap.nope  # noqa: B018


def test_version_from_the_cli_and_python_m(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"lamcap {lamcap.__version__}"
    out = subprocess.run([sys.executable, "-m", "lamcap", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"lamcap {lamcap.__version__}"


@pytest.mark.parametrize("solver", ["adam", "hebbian", "lp"])
def test_trial_equals_the_cli_json_record(capsys, solver):
    record = lamcap.trial("dp", 6, 14, seed=3, solver=solver, steps=200, device="cpu")
    assert cli.main(["trial", "--problem", "dp", "--d", "6", "--p", "14", "--seed", "3", "--solver", solver,
                     "--steps", "200", "--device", "cpu", "--json"]) == 0
    assert untimed(record) == untimed(json.loads(capsys.readouterr().out))
    assert record["sat"] == (record["n_violations"] == 0)


def test_trial_alpha_and_rho_resolve_like_the_cli():
    record = lamcap.trial("op", 10, alpha=0.8, rho=0.5, solver="hebbian")
    assert record["rank"] == 5 and abs(record["p"] * __import__("math").log(record["p"]) - 80) < 12


@pytest.mark.parametrize("kwargs,needle", [
    ({"problem": "op", "d": 1, "p": 5}, "d=1"),
    ({"problem": "op", "d": 4, "p": 1}, "p=1"),
    ({"problem": "op", "d": 4}, "exactly one of p and alpha"),
    ({"problem": "op", "d": 4, "p": 5, "alpha": 1.0}, "exactly one of p and alpha"),
    ({"problem": "op", "d": 4, "p": 5, "rank": 2, "rho": 0.5}, "at most one of rank and rho"),
    ({"problem": "op", "d": 4, "p": 5, "rho": 2.0}, "rho=2.0"),
    ({"problem": "xp", "d": 4, "p": 5}, "'xp'"),
    ({"problem": "op", "d": 4, "p": 5, "solver": "sgd"}, "'sgd'"),
    ({"problem": "op", "d": 4, "p": 5, "seed": -1}, "seed=-1"),
])
def test_trial_refuses_bad_values_by_name(kwargs, needle):
    with pytest.raises(InvalidInput, match=needle.replace("(", r"\(")):
        lamcap.trial(**kwargs)


def test_theory_equals_the_cli_json(capsys):
    assert cli.main(["theory", "--rho", "1", "0.5", "--d", "8", "16", "--json"]) == 0
    assert lamcap.theory(rho=[1, 0.5], d=[8, 16]) == json.loads(capsys.readouterr().out)
    single = lamcap.theory(rho=1.0, d=8)
    assert single["asymptotic"] == [{"rho": 1.0, "alpha_c": 0.5, "alpha_hebbian": 0.125}]
    assert len(single["finite_size"]) == 1
    with pytest.raises(InvalidInput, match="rho=0"):
        lamcap.theory(rho=0)


def test_load_spec_takes_presets_dicts_paths_and_specs(tmp_path):
    demo = lamcap.load_spec("demo")
    assert lamcap.load_spec({"preset": "demo"}) == demo
    assert lamcap.load_spec(demo) is demo
    assert lamcap.load_spec(demo, ds=[8], seeds=2).ds == (8,)
    path = tmp_path / "s.toml"
    path.write_text('preset = "demo"\nseeds = 2\n')
    assert lamcap.load_spec(path).seeds == 2
    for bad, needle in ((str(tmp_path), "is a directory"), ("nosuch", "neither a preset"), (3, "a sweep spec must")):
        with pytest.raises(InvalidInput, match=needle):
            lamcap.load_spec(bad)


def test_sweep_refuses_bad_arguments_before_any_work(tmp_path):
    store = tmp_path / "s.zarr"
    spec = {"problems": ["op"], "solvers": ["hebbian"], "rhos": [1.0], "ds": [6], "seeds": 1}
    for kwargs, needle in (({"workers": 0}, "workers=0"), ({"flush_seconds": -1}, "flush_seconds=-1"),
                           ({"seeds": 0}, "seeds=0")):
        with pytest.raises(InvalidInput, match=needle):
            lamcap.sweep(spec, store, **kwargs)
    assert not store.exists()


@pytest.mark.slow
def test_sweep_and_analyze_equal_the_cli(tmp_path, capsys):
    spec = {"problems": ["op", "dp"], "solvers": ["hebbian", "adam"], "rhos": [1.0], "ds": [6, 8], "seeds": 2,
            "device": "cpu", "solver_settings": {"max_steps": 150}}
    api_store, cli_store = tmp_path / "api.zarr", tmp_path / "cli.zarr"
    report = lamcap.sweep(spec, api_store, workers=2, progress=False)
    assert cli.main(["sweep", "--problems", "op", "dp", "--solvers", "hebbian", "adam", "--rho", "1", "--d", "6",
                     "8", "--seeds", "2", "--device", "cpu", "--steps", "150", "--workers", "2",
                     "--no-progress", "--store", str(cli_store)]) == 0
    capsys.readouterr()
    a, c = lamcap.open_store(api_store), lamcap.open_store(cli_store)
    key = ["problem", "solver", "d", "seed"]
    def table(ds, cols):
        frame = ds[cols].to_dataframe()
        return frame[sorted(frame.columns)].sort_values([*key, *(["p", "purpose"] if "p" in cols else [])]) \
            .reset_index(drop=True)

    # Which loads a search visits depends on how many actors were idle when it asked (k-section), so
    # the thresholds are compared, and the probes both runs made, record by record.
    verdict = ["problem", "solver", "rho", "rank", "d", "seed", "p_star", "alpha_star", "p_lo", "p_hi"]
    th_a, th_c = (table(s.thresholds, verdict) for s in (a, c))
    assert len(th_a) == len(report.thresholds) == 16 and th_a.equals(th_c)
    cols = [v for v in a.probes.data_vars if a.probes[v].dims == ("probe",) and v not in TIMING]
    pr_a, pr_c = (table(s.probes, cols) for s in (a, c))
    both = pr_a.merge(pr_c[[*key, "p", "purpose"]], on=[*key, "p", "purpose"])
    assert len(both) >= 16 and both.equals(pr_c.merge(pr_a[[*key, "p", "purpose"]], on=[*key, "p", "purpose"]))
    analysis = lamcap.analyze(api_store, n_boot=50)
    assert not analysis.paths and "scaling" in analysis.figures
    assert set(analysis.thresholds.solver) == {"hebbian", "adam"}
    out = tmp_path / "out"
    assert cli.main(["analyze", str(cli_store), "--out", str(out), "--n-boot", "50"]) == 0
    assert analysis.text in capsys.readouterr().out
    assert (out / "summary.csv").exists() and (out / "fig2_scaling.png").exists()

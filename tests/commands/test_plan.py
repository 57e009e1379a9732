"""`lamcap plan` through the CLI entry point against `lamcap.plan`: the stated GPU model (no calibration), bad input."""
from __future__ import annotations

import json

import pytest

import lamcap
from lamcap import cli


@pytest.fixture(autouse=True)
def only_plan(monkeypatch):
    """Build the parser from this command alone, so these tests do not depend on the others."""
    monkeypatch.setattr(cli, "COMMANDS", ("plan",))


def no_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_json_equals_the_api_and_says_where_its_numbers_come_from(capsys, monkeypatch):
    no_cuda(monkeypatch)
    assert cli.main(["plan", "--preset", "demo", "--device", "cuda", "--workers", "8", "--json"]) == 0
    out = capsys.readouterr()
    assert "cannot calibrate" in out.err and "stated GPU model" in out.err
    doc = json.loads(out.out)
    want = lamcap.plan("demo", device="cuda", workers=8).to_dict()
    assert doc == json.loads(json.dumps(want))
    assert doc["source"].startswith("stated GPU model") and doc["device"] == "cuda"
    assert len(doc["cells"]) == len(lamcap.load_spec("demo").cells()) and doc["wall_seconds"] > 0


def test_table_lists_every_cell_the_totals_and_the_estimate_label(capsys, monkeypatch):
    no_cuda(monkeypatch)
    assert cli.main(["plan", "--preset", "demo", "--device", "cuda", "--d", "8", "16", "--resolution", "0.1"]) == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines() if line.split()[:1] in (["op"], ["dp"])]
    assert len(rows) == len(lamcap.load_spec("demo", ds=[8, 16]).cells())
    assert "resolution 0.1 (relative)" in text and "device-hours" in text and "wall time" not in text
    assert "an estimate from the stated GPU model" in text


@pytest.mark.parametrize("argv, needle", [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--preset", "demo", "--resolution", "0.5"], "resolution=0.5"),
    (["--preset", "demo", "--resolution", "-0.1"], "resolution=-0.1"),
    (["--preset", "demo", "--workers", "0"], "--workers 0"),
    (["--problems", "op", "--solvers", "adam", "--rho", "1", "--d", "8", "1000000", "--seeds", "1"],
     "cell op adam rho=1 d=1000000"),  # the theory cannot place its p* (beyond 1e9)
    (["--problems", "op", "--solvers", "lp", "--rho", "1", "--d", "64", "--seeds", "1"], "d=64 with solver 'lp'"),
])
def test_bad_input_is_one_line_with_exit_2(capsys, monkeypatch, argv, needle):
    no_cuda(monkeypatch)
    assert cli.main(["plan", *argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert needle in err[-1] and err[-1].startswith("lamcap plan: error:")
    assert all("Traceback" not in line for line in err)

"""`lamcap theory` through the CLI entry point: the table, the JSON shape, bad values."""
from __future__ import annotations

import json

import pytest

from lamcap import cli
from lamcap import predictions as theory


@pytest.fixture(autouse=True)
def only_theory(monkeypatch):
    """Build the parser from this command alone, so these tests do not depend on the others."""
    monkeypatch.setattr(cli, "COMMANDS", ("theory",))


def test_json_has_the_documented_shape_and_the_library_values(capsys):
    assert cli.main(["theory", "--rho", "1", "0.5", "--d", "8", "16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"alpha_hebbian", "asymptotic", "finite_size"}
    assert out["alpha_hebbian"] == 0.125
    assert out["asymptotic"] == [{"rho": 1.0, "alpha_c": 0.5, "alpha_hebbian": 0.125},
                                 {"rho": 0.5, "alpha_c": theory.alpha_c(0.5), "alpha_hebbian": theory.alpha_c(0.5) / 4}]
    rows = out["finite_size"]
    assert [(r["rho"], r["d"]) for r in rows] == [(1.0, 8), (1.0, 16), (0.5, 8), (0.5, 16)]
    for row in rows:
        assert set(row) == {"rho", "d", "p_star", "alpha_c_rs", "p_hebbian_op", "alpha_hebbian_op", "p_hebbian_dp",
                            "alpha_hebbian_dp"}
        assert (row["p_star"], row["alpha_c_rs"]) == theory.finite_size_prediction(row["d"], row["rho"])
        assert (row["p_hebbian_op"], row["alpha_hebbian_op"]) == theory.hebbian_finite_size(row["d"], row["rho"])
        assert (row["p_hebbian_dp"], row["alpha_hebbian_dp"]) == theory.hebbian_dp_finite_size(row["d"], row["rho"])
    assert rows[0]["alpha_c_rs"] == pytest.approx(1.07, abs=0.03)


def test_table_lists_every_rho_and_every_cell(capsys):
    assert cli.main(["theory", "--rho", "0.75", "0.25", "--d", "8", "32"]) == 0
    text = capsys.readouterr().out
    assert "0.4935" in text and "0.3115" in text  # alpha_c(0.75), alpha_c(0.25)
    cells = [line.split() for line in text.splitlines() if line.split()[:1] in (["0.750"], ["0.250"])]
    expected = [("0.750", "8"), ("0.750", "32"), ("0.250", "8"), ("0.250", "32")]
    assert [(c[0], c[1]) for c in cells if len(c) == 8] == expected
    p_star, alpha = theory.finite_size_prediction(32, 0.25)
    assert f"{p_star:.2f}" in text and f"{alpha:.4f}" in text


@pytest.mark.parametrize("argv, needle", [
    (["--rho", "0"], "--rho 0.0"),
    (["--rho", "1", "1.5"], "--rho 1.5"),
    (["--rho", "nan"], "--rho nan"),
    (["--d", "8", "1"], "--d 1"),
])
def test_bad_values_give_one_line_and_exit_2(capsys, argv, needle):
    assert cli.main(["theory", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lamcap theory: error:") and needle in err, err


def test_unparsable_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["theory", "--d", "eight"])
    assert exc.value.code == 2
    assert "eight" in capsys.readouterr().err

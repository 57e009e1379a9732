"""Several stores analysed together (lamcap.analysis.merge): the same tables as one store holding every record;
refused where two stores disagree on a cell."""
from __future__ import annotations

import json

import pytest

from lamcap.analysis.load import open_store
from lamcap.analysis.merge import merge_stores
from lamcap.analysis.report import build_report
from lamcap.errors import InvalidInput
from tests.analysis.store_factory import synthetic_sweep, threshold_record, write_store

KW = dict(problems=("op", "dp"), solvers=("adam", "hebbian"), rhos=(1.0,), ds=(8, 12, 16), seeds=(0, 1, 2))


def _split(probes: list[dict], rows: list[dict]):
    """Store A: d = 8 and 12; store B: d = 16, and d = 12 seed 0 again (the same records: they agree)."""
    def part(records, keep):
        return [r for r in records if keep(r)]

    in_a = lambda r: r["d"] in (8, 12)  # noqa: E731
    in_b = lambda r: r["d"] == 16 or (r["d"] == 12 and r["seed"] == 0)  # noqa: E731
    return (part(probes, in_a), part(rows, in_a)), (part(probes, in_b), part(rows, in_b))


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("merge")
    probes, rows = synthetic_sweep(**KW)
    (pa, ra), (pb, rb) = _split(probes, rows)
    return {"a": write_store(base / "a.zarr", pa, ra), "b": write_store(base / "b.zarr", pb, rb),
            "both": write_store(base / "both.zarr", probes, rows), "base": str(base)}


def _tables(text: str) -> str:
    return text.split("\n", 1)[1]  # everything after the provenance line


def test_two_stores_give_the_tables_of_one_store_holding_both(stores, tmp_path):
    merged, text_m, figs_m, paths_m = build_report([stores["a"], stores["b"]], str(tmp_path / "m"), n_boot=30)
    single, text_s, _, paths_s = build_report(stores["both"], str(tmp_path / "s"), n_boot=30)
    assert _tables(text_m) == _tables(text_s)
    assert merged.store.probes.sizes["probe"] == single.store.probes.sizes["probe"]  # shared probes counted once
    assert merged.store.thresholds.sizes["threshold"] == single.store.thresholds.sizes["threshold"]
    with open(paths_m["summary"]) as fm, open(paths_s["summary"]) as fs:
        assert fm.read() == fs.read()
    fits_m, fits_s = (json.load(open(p["fits"])) for p in (paths_m, paths_s))
    assert fits_m.pop("store") == f"{stores['a']} + {stores['b']}" and fits_s.pop("store") == stores["both"]
    assert fits_m == fits_s
    assert "scaling" in figs_m


def test_a_store_named_alone_is_analysed_as_before(stores):
    one = open_store(stores["a"])
    assert merge_stores([one]) is one


def test_a_threshold_row_that_differs_is_refused(stores, tmp_path):
    probes, rows = synthetic_sweep(**KW)
    (_, ra), _ = _split(probes, rows)
    clash = [threshold_record({k: r[k] for k in ("problem", "solver", "rho", "d")}, 0, r["p_star"] + 1, 4) for r in ra
             if r["d"] == 12 and r["seed"] == 0 and r["problem"] == "op" and r["solver"] == "adam"]
    other = write_store(tmp_path / "clash.zarr", [p for p in probes if p["d"] == 8][:4], clash)
    with pytest.raises(InvalidInput, match=r"threshold of problem=op solver=adam rho=1.0 d=12 seed=0") as err:
        merge_stores([open_store(stores["a"]), open_store(other)])
    assert "a.zarr" in str(err.value) and "clash.zarr" in str(err.value)


def test_a_contradictory_probe_verdict_is_refused(stores, tmp_path):
    probes, rows = synthetic_sweep(**KW)
    flipped = [dict(p, sat=not p["sat"], purpose="curve") for p in probes
               if p["d"] == 8 and p["seed"] == 1 and p["problem"] == "dp" and p["solver"] == "adam"][:1]
    other = write_store(tmp_path / "flip.zarr", flipped, [])
    with pytest.raises(InvalidInput, match=r"probe verdict of problem=dp solver=adam rho=1.0 d=8 seed=1 p="):
        merge_stores([open_store(stores["a"]), open_store(other, require_thresholds=False)])


def test_the_same_store_twice_is_refused(stores):
    with pytest.raises(InvalidInput, match="named twice"):
        merge_stores([open_store(stores["a"]), open_store(stores["a"])])


def test_the_python_api_takes_a_list_of_stores(monkeypatch, stores):
    import lamcap
    from lamcap.analysis import report

    seen = []
    monkeypatch.setattr(report, "build_report", lambda s, out, level, n_boot: seen.append(s) or (None, "", {}, {}))
    lamcap.analyze([stores["a"], stores["b"]])
    lamcap.analyze([stores["a"]])
    lamcap.analyze(stores["a"])
    assert seen == [[stores["a"], stores["b"]], stores["a"], stores["a"]]
    for bad in ([], [stores["a"], 3], 7):
        with pytest.raises(InvalidInput, match="store="):
            lamcap.analyze(bad)

"""The Zarr store: schema round trip, no duplicate rows, batch atomicity under SIGKILL, refusals."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from lamcap.errors import InvalidInput, StoreError
from lamcap.kernels.outcome import Outcome
from lamcap.orchestrator.runtime.preflight import check_store
from lamcap.orchestrator.runtime.probe import failed_record, probe_labels
from lamcap.orchestrator.spec import Cell, Probe, SweepSpec
from lamcap.store.reader import read_tables
from lamcap.store.schema import PROBES, probe_key
from lamcap.store.writer import StoreWriter

REPO = Path(__file__).resolve().parents[2]
N_BINS = 120


def make_spec(**changes) -> SweepSpec:
    base = dict(problems=("op", "dp"), solvers=("adam", "hebbian"), rhos=(1.0, 0.5), ds=(8, 12), seeds=2,
                device="cpu")
    return SweepSpec(**{**base, **changes})


def record(problem="op", solver="adam", rho=0.5, d=12, seed=0, p=10, purpose="search") -> dict:
    """A record as lamcap.orchestrator.runtime.probe.run_probe builds it, from a real Outcome."""
    probe = Probe(Cell(problem, solver, rho, d), seed, p, purpose)
    rank = probe.cell.rank
    rng = np.random.default_rng(p * 100 + seed)
    outcome = Outcome(sat=p % 3 != 0, n_violations=p % 3, accuracy=1 - (p % 3) / p, min_margin=float(rng.normal()),
                      final_loss=float(rng.uniform()), steps=int(rng.integers(1, 500)), status="max_steps",
                      wall_seconds=0.5, cpu_seconds=0.4, peak_bytes=12345, device="cpu", target_mean=3.0,
                      target_var=0.2,
                      offtarget_mean=0.0, offtarget_var=1.0, target_hist=rng.integers(0, 9, N_BINS).tolist(),
                      offtarget_hist=rng.integers(0, 9, N_BINS).tolist(),
                      singular_values=sorted(rng.uniform(0, 3, rank).tolist(), reverse=True) + [0.0] * (d - rank),
                      input_target_score=float(rng.normal(3.0)),
                      input_competitor_hist=rng.integers(0, 3, N_BINS).tolist())
    return {**probe_labels(probe), **outcome.as_record(), "error": ""}


def threshold(problem="op", seed=0, p_star=20) -> dict:
    cell = Cell(problem, "adam", 0.5, 12)
    return {"problem": problem, "solver": "adam", "rho": 0.5, "rho_eff": cell.rho_eff, "rank": cell.rank, "d": 12,
            "seed": seed, "p_star": p_star, "alpha_star": p_star * math.log(p_star) / 144, "p_lo": p_star,
            "p_hi": p_star + 1, "n_probes": 7, "monotone": True, "complete": True}


def open_checked(path, spec) -> StoreWriter:
    """What the sweep driver does: the pre-flight's checks of the store, then the writer (extending the store
    when the spec adds cells)."""
    return StoreWriter.open_or_create(path, spec, check_store(str(path), spec).added)


def tree_digest(path: Path) -> dict:
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*")) if f.is_file()}


def test_every_outcome_field_has_a_column():
    assert {f.name for f in dataclasses.fields(Outcome)} <= set(PROBES.names)
    wide = {"target_hist", "offtarget_hist", "input_competitor_hist", "singular_values"}
    assert {f.name for f in PROBES.wide} == wide


def test_round_trip_through_store_xarray_and_analysis_reader(tmp_path):
    from lamcap.analysis.load import open_store

    path = tmp_path / "s.zarr"
    store = StoreWriter.open_or_create(path, make_spec())
    records = [record(p=p, problem=pr) for p in (5, 6, 9) for pr in ("op", "dp")]
    records.append(failed_record(Probe(Cell("dp", "hebbian", 1.0, 8), 1, 7), "cpu", "RuntimeError: boom"))
    assert store.append_probes(records[:4]) == 4 and store.append_probes(records[4:]) == 3
    assert store.append_thresholds([threshold(), threshold("dp", 1, 18)]) == 2

    back = StoreWriter.open_or_create(path, make_spec()).completed_probes()
    assert set(back) == {probe_key(r) for r in records}
    for r in records:
        got = back[probe_key(r)]
        for f in PROBES.scalars:
            name = f.name
            want = r.get(name, f.absent)  # a failed probe's record lacks the optional ones
            assert got[name] == want or (isinstance(want, float) and math.isnan(want) and math.isnan(got[name]))
        assert got["error"] == r["error"]

    ds = xr.open_zarr(path, group="probes", consolidated=False)
    assert ds.sizes["probe"] == 7 and ds.sizes["score_bin"] == N_BINS and ds.sizes["sv_index"] == 12
    assert all("units" in ds[v].attrs and "description" in ds[v].attrs for v in ds.data_vars)
    sv = ds["singular_values"].values
    assert np.isnan(sv[-1]).all()  # the error record has no spectrum: NaN, not 0
    assert np.array_equal(sv[0], records[0]["singular_values"])
    assert len(ds["target_hist"].attrs["score_bin_edges"]) == N_BINS + 1
    assert np.array_equal(ds["input_competitor_hist"].values[0], records[0]["input_competitor_hist"])
    assert not ds["input_competitor_hist"].values[-1].any()  # nothing counted for the error record

    loaded = open_store(path)
    assert list(loaded.probes["status"].values) == [r["status"] for r in records]
    assert list(loaded.probes["problem"].values) == [r["problem"] for r in records]
    assert loaded.thresholds["p_star"].values.tolist() == [20, 18]
    assert loaded.spec["ds"] == [8, 12] and "versions" in loaded.attrs and "created" in loaded.attrs


@pytest.mark.parametrize("name, default, later", [("shards", 1, 3), ("lp_margin", None, 0.25),
                                                    ("cpu_seconds", None, 1.5), ("input_target_score", None, 2.0)])
def test_a_store_from_before_a_defaulted_variable_gets_it_filled_and_takes_new_records(tmp_path, name, default,
                                                                                      later):
    import math
    import shutil

    import zarr

    def values() -> list:
        got = [r[name] for r in read_tables(path)[0]]
        return [None if isinstance(v, float) and math.isnan(v) else v for v in got]

    path = tmp_path / "old.zarr"
    store = StoreWriter.open_or_create(path, make_spec())
    store.append_probes([record(p=5), record(p=6)])
    shutil.rmtree(path / "probes" / name)  # as a store written before the variable existed
    assert name not in zarr.open_group(str(path), mode="r", path="probes").array_keys()
    assert values() == [default, default]  # read as the default (NaN: None here)

    store = StoreWriter.open_or_create(path, make_spec())
    assert store.append_probes([{**record(p=7), name: later}]) == 1
    assert values() == [default, default, later]
    assert "units" in zarr.open_group(str(path), mode="r", path="probes")[name].attrs


def test_a_probe_or_threshold_is_never_written_twice(tmp_path):
    store = StoreWriter.open_or_create(tmp_path / "s.zarr", make_spec())
    assert store.append_probes([record(p=5), record(p=5), record(p=6)]) == 2
    assert store.append_probes([record(p=6), record(p=7)]) == 1
    reopened = StoreWriter.open_or_create(tmp_path / "s.zarr", make_spec())
    assert reopened.append_probes([record(p=5)]) == 0
    assert reopened.append_thresholds([threshold()]) == 1 and reopened.append_thresholds([threshold()]) == 0
    probes, rows, _ = read_tables(tmp_path / "s.zarr")
    assert sorted(r["p"] for r in probes) == [5, 6, 7] and len(rows) == 1


def test_half_written_batch_is_invisible_and_truncated_on_reopen(tmp_path):
    """Rows written past n_committed (a crash between arrays of one batch) are never read."""
    from lamcap.analysis.load import open_store

    path = tmp_path / "s.zarr"
    store = StoreWriter.open_or_create(path, make_spec())
    store.append_probes([record(p=p) for p in (5, 6)])
    store.append_thresholds([threshold()])
    import zarr

    group = store._tables["probes"].group
    with zarr.config.set({"array.write_empty_chunks": True}):  # as the writer writes
        for name in ("p", "sat", "problem"):  # the crash: a few arrays of the next batch, no commit
            arr = group[name]
            arr.resize((3,))
            arr[2] = arr[1]
    probes, _, _ = read_tables(path)
    assert [r["p"] for r in probes] == [5, 6]
    assert open_store(path).probes.sizes["probe"] == 2
    reopened = StoreWriter.open_or_create(path, make_spec())
    assert {a.shape[0] for _, a in reopened._tables["probes"].group.arrays()} == {2}
    reopened.append_probes([record(p=7)])
    assert xr.open_zarr(path, group="probes", consolidated=False)["p"].values.tolist() == [5, 6, 7]


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {tests!r})
    from test_writer import make_spec, record
    from lamcap.store.writer import StoreWriter
    store = StoreWriter.open_or_create({path!r}, make_spec())
    batch = 0
    while True:
        store.append_probes([record(p=2 + 20 * batch + i, d=12) for i in range(20)])
        batch += 1
        print(batch, flush=True)
""")


def test_sigkill_mid_append_leaves_every_committed_batch(tmp_path):
    path = tmp_path / "s.zarr"
    StoreWriter.open_or_create(path, make_spec())  # created here so the writer only appends
    code = WRITER.format(repo=str(REPO), tests=str(Path(__file__).parent), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        committed = [int(proc.stdout.readline()) for _ in range(3)]
        time.sleep(0.05)  # land somewhere inside a later batch
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    probes, _, _ = read_tables(path)
    assert len(probes) % 20 == 0 and len(probes) >= 20 * committed[-1]
    assert [r["p"] for r in probes] == list(range(2, 2 + len(probes)))
    store = StoreWriter.open_or_create(path, make_spec())  # reopening truncates; appending continues the sequence
    store.append_probes([record(p=1000, d=12)])
    assert len(read_tables(path)[0]) == len(probes) + 1


def test_incompatible_spec_is_refused_naming_differences_and_store_untouched(tmp_path):
    path = tmp_path / "s.zarr"
    StoreWriter.open_or_create(path, make_spec()).append_probes([record()])
    before = tree_digest(path)
    with pytest.raises(InvalidInput, match=r"ds: this spec drops \[12\]") as info:
        open_checked(path, make_spec(seeds=3, ds=(8, 16)))
    assert "seeds" not in str(info.value).split("(use")[0]  # more seeds alone would extend the store
    assert tree_digest(path) == before


def test_a_directory_that_is_not_a_store_is_refused(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("hello")
    with pytest.raises(InvalidInput, match="not a lamcap store"):
        check_store(str(tmp_path / "junk"), make_spec())
    assert os.listdir(tmp_path / "junk") == ["file.txt"]


def test_appending_without_zarr_internals_gives_the_same_store(tmp_path, monkeypatch):
    """The public-API fallback (grow, then write) stores exactly what the in-memory view does."""
    from lamcap.store import append

    records = [record(p=p, problem=pr) for p in (5, 6, 9) for pr in ("op", "dp")]
    StoreWriter.open_or_create(tmp_path / "view.zarr", make_spec()).append_probes(records)
    monkeypatch.setattr(append, "view_as", lambda arr, shape: None)
    fallback = StoreWriter.open_or_create(tmp_path / "plain.zarr", make_spec())
    fallback.append_probes(records[:2])
    fallback.append_probes(records[2:])
    a = xr.open_zarr(tmp_path / "view.zarr", group="probes", consolidated=False).load()
    b = xr.open_zarr(tmp_path / "plain.zarr", group="probes", consolidated=False).load()
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())


def test_rows_of_an_unfinished_batch_are_not_visible_to_a_plain_reader(tmp_path, monkeypatch):
    """With the in-memory view, the arrays keep their committed length until the batch's data is on disk."""
    import zarr

    from lamcap.store import append

    store = StoreWriter.open_or_create(tmp_path / "s.zarr", make_spec())
    store.append_probes([record(p=5)])
    seen = []
    original = append.pad

    def spy(values, shape):  # called while the batch's chunk data is being written
        seen.append(zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["probes"]["p"].shape[0])
        return original(values, shape)

    monkeypatch.setattr(append, "pad", spy)
    store.append_probes([record(p=6), record(p=7)])
    assert seen and set(seen) == {1}


# ---- one writer, damage, disk errors ------------------------------------------------------------

def test_a_second_writer_is_stopped_before_it_overwrites(tmp_path):
    path = tmp_path / "two.zarr"
    first, second = StoreWriter.open_or_create(path, make_spec()), StoreWriter.open_or_create(path, make_spec())
    first.append_probes([record(p=5)])
    with pytest.raises(StoreError, match=r"changed under this sweep: its probes group holds 1 committed rows where "
                                         r"this driver committed 0.*Nothing was overwritten"):
        second.append_probes([record(p=6)])
    first.append_probes([record(p=7)])  # the first writer is unaffected
    assert [r["p"] for r in read_tables(path)[0]] == [5, 7]


def committed_store(tmp_path) -> Path:
    path = tmp_path / "whole.zarr"
    store = StoreWriter.open_or_create(path, make_spec())
    store.append_probes([record(p=p) for p in range(5, 9)])
    store.append_thresholds([threshold()])
    return path


def test_a_deleted_chunk_is_named_never_read_as_fill_values(tmp_path):
    from lamcap.analysis.load import open_store

    path = committed_store(tmp_path)
    os.remove(path / "probes" / "p" / "c" / "0")
    with pytest.raises(InvalidInput, match=r"store damaged: .*whole.zarr/probes/p: chunk c/0 is missing"):
        open_store(path)
    with pytest.raises(InvalidInput, match=r"store damaged: .*probes/p: chunk c/0 is missing"):
        open_checked(path, make_spec())


def test_a_truncated_chunk_is_named(tmp_path):
    from lamcap.analysis.load import open_store

    path = committed_store(tmp_path)
    chunk = path / "probes" / "min_margin" / "c" / "0"
    chunk.write_bytes(chunk.read_bytes()[:7])
    with pytest.raises(InvalidInput, match=r"store damaged: .*probes/min_margin: chunk 0 cannot be decoded"):
        open_store(path)


def test_every_chunk_is_written_even_when_it_equals_the_fill_value(tmp_path):
    path = committed_store(tmp_path)  # steps > 0 but many all-zero / all-False columns exist
    store = StoreWriter.open_or_create(path, make_spec())
    store.append_probes([{**record(p=p), "attempt": 0} for p in range(20, 22)])  # attempt 0 = the fill value
    assert (path / "probes" / "attempt" / "c" / "0").exists()
    assert (path / "thresholds" / "complete" / "c" / "0").exists()


@pytest.mark.parametrize("code, text", [(28, "No space left on device"), (13, "Permission denied")])
def test_disk_errors_end_in_one_line_and_keep_the_committed_rows(tmp_path, monkeypatch, code, text):
    import zarr.storage

    path = committed_store(tmp_path)
    store = StoreWriter.open_or_create(path, make_spec())

    async def refuse(self, key, value, *args, **kwargs):
        raise OSError(code, text)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", refuse)
    with pytest.raises(StoreError, match=rf"cannot write store .*whole.zarr.: {text}; 4 probe records and 1 "
                                         rf"thresholds are committed and intact; .*run the same command to resume"):
        store.append_probes([record(p=30)])
    monkeypatch.undo()
    assert [r["p"] for r in read_tables(path)[0]] == [5, 6, 7, 8]
    StoreWriter.open_or_create(path, make_spec()).append_probes([record(p=30)])  # and it resumes
    assert [r["p"] for r in read_tables(path)[0]] == [5, 6, 7, 8, 30]


def test_a_spec_that_adds_cells_extends_the_store_keeping_every_row(tmp_path):
    from lamcap.store.reader import check_readable

    path = tmp_path / "s.zarr"
    records = [record(d=12, p=p) for p in (10, 11)] + [record(d=8, p=5)]
    StoreWriter.open_or_create(path, make_spec()).append_probes(records)
    before = read_tables(path)[0]
    larger = make_spec(ds=(8, 12, 24), seeds=3)
    store = open_checked(path, larger)
    store.append_probes([record(d=24, p=50, seed=2)])
    check_readable(path)  # every chunk of the widened array exists
    probes, _, attrs = read_tables(path)
    assert [probe_key(r) for r in probes[:3]] == [probe_key(r) for r in before]
    assert json.loads(attrs["spec"]) == larger.to_dict()
    sv = xr.open_zarr(path, group="probes", consolidated=False)["singular_values"].values
    assert sv.shape == (4, 24)
    for i, r in enumerate(records):
        np.testing.assert_array_equal(sv[i, :12], np.pad(r["singular_values"], (0, 12 - r["d"]),
                                                         constant_values=np.nan))
        assert np.isnan(sv[i, 12:]).all()
    assert not np.isnan(sv[3]).any()


@pytest.mark.parametrize("crash_after", ["staged", "first rename", "second rename"])
def test_a_widening_cut_short_is_settled_on_reopen(tmp_path, crash_after):
    from lamcap.store.reader import check_readable
    from lamcap.store.writer import finish_widening

    path = tmp_path / "s.zarr"
    StoreWriter.open_or_create(path, make_spec()).append_probes([record(d=12, p=10)])
    folder = path / "probes"
    shutil.copytree(folder / "singular_values", tmp_path / "narrow")
    open_checked(path, make_spec(ds=(8, 12, 24)))  # widens to 24
    wide = tmp_path / "wide"
    shutil.copytree(folder / "singular_values", wide)
    shutil.rmtree(folder / "singular_values")
    if crash_after == "staged":  # the widened copy written, nothing renamed: the narrow array stays
        shutil.copytree(tmp_path / "narrow", folder / "singular_values")
        shutil.copytree(wide, folder / "singular_values.widening")
        width = 12
    elif crash_after == "first rename":  # the narrow array moved aside: the whole widened copy goes in
        shutil.copytree(tmp_path / "narrow", folder / "singular_values.narrow")
        shutil.copytree(wide, folder / "singular_values.widening")
        width = 24
    else:  # both renamed, the narrow array not yet removed
        shutil.copytree(wide, folder / "singular_values")
        shutil.copytree(tmp_path / "narrow", folder / "singular_values.narrow")
        width = 24
    finish_widening(str(folder), "singular_values")
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("singular_values")) == ["singular_values"]
    check_readable(path)
    assert xr.open_zarr(path, group="probes", consolidated=False)["singular_values"].shape == (1, width)


def test_a_spec_that_is_no_extension_is_refused_with_the_way_to_extend(tmp_path):
    path = tmp_path / "s.zarr"
    StoreWriter.open_or_create(path, make_spec()).append_probes([record()])
    before = tree_digest(path)
    match = r"ds: this spec drops \[12\].*only adds problems, solvers, rhos, ds or seeds"
    with pytest.raises(InvalidInput, match=match):
        open_checked(path, make_spec(ds=(8,)))
    assert tree_digest(path) == before

"""`lamcap sweep` end to end: real kernels on an embedded Ray, a driver killed and resumed, bad specs.

The Ray tests are marked slow. The killed driver runs in its own session, so that
`os.killpg(..., SIGKILL)` takes its embedded Ray (GCS, raylet, agents) down with it and never
touches pytest's process group; its workers, in groups of their own, must die with their raylet.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from lamcap import cli
from lamcap.orchestrator.runtime.probe import failed_record
from lamcap.orchestrator.spec import Cell, Probe, load_spec
from lamcap.store.reader import read_tables
from lamcap.store.schema import probe_key, threshold_key
from lamcap.store.writer import StoreWriter

REPO = Path(__file__).resolve().parents[3]
STEPS = "300"  # a small Adam step budget: probes of d <= 12 take tens of milliseconds

# A spec file for the kill test: real solvers, and one probe in flight per (cell, seed)
# (width = 1), so that each search is a fixed sequence of probes whatever the
# timing, and a killed-and-resumed sweep must reproduce the undisturbed one probe for probe.
KILL_SPEC = """\
problems = ["op", "dp"]
solvers = ["adam", "hebbian"]
rhos = [1.0]
ds = [8, 12]
seeds = 2
device = "cpu"

[solver_settings]
max_steps = 300

[search]
width = 1
"""


# ---- helpers ---------------------------------------------------------------------------------
def tree_digest(path: Path) -> dict:
    """Every file under `path` (relative name -> sha256): equal digests mean byte-for-byte equal trees."""
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*")) if f.is_file()}


def n_committed(path: Path, table: str = "probes") -> int:
    """The committed rows of one table of the store (0 while the store does not exist yet)."""
    try:
        return int(zarr.open_group(str(path), mode="r", zarr_format=3)[table].attrs.get("n_committed", 0))
    except Exception:
        return 0


def committed_arrays(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """The committed rows of every array of both tables, as numpy (hists and spectra included)."""
    root = zarr.open_group(str(path), mode="r", zarr_format=3)
    out = {}
    for table in ("probes", "thresholds"):
        group = root[table]
        n = int(group.attrs.get("n_committed", 0))
        out[table] = {name: arr[:n] for name, arr in group.arrays()}
    return out


def assert_rows_kept(before: dict, after: dict) -> None:
    """Every row of `before` is still the same row, at the same index, in `after`."""
    for table, arrays in before.items():
        for name, old in arrays.items():
            new = after[table][name][: len(old)]
            assert np.array_equal(old, new, equal_nan=old.dtype.kind == "f"), (table, name)


def assert_consistent_store(path: Path, spec) -> tuple[list[dict], list[dict]]:
    """Both groups open in xarray; one threshold per (cell, seed); each threshold agrees with its probes."""
    ds_probes = xr.open_zarr(path, group="probes", consolidated=False)
    ds_thresholds = xr.open_zarr(path, group="thresholds", consolidated=False)
    probes, rows, _ = read_tables(path)
    assert ds_probes.sizes["probe"] == len(probes) > 0
    assert ds_thresholds.sizes["threshold"] == len(rows)
    assert max(Counter(probe_key(r) for r in probes).values()) == 1, "a probe row is duplicated"
    want = {(c.problem, c.solver, c.rho, c.d, s) for c in spec.cells() for s in range(spec.seeds)}
    assert sorted(threshold_key(r) for r in rows) == sorted(want)  # exactly one row each
    assert all(r["status"] != "error" for r in probes), [r for r in probes if r["status"] == "error"][:1]
    search: dict[tuple, dict[int, bool]] = {}
    for r in probes:
        if r["purpose"] == "search":
            search.setdefault(threshold_key(r), {})[r["p"]] = r["sat"]
    for row in rows:
        verdicts = search[threshold_key(row)]
        p_star = row["p_star"]
        assert p_star >= 1 and row["p_lo"] == p_star and row["p_hi"] == p_star + 1, row
        assert p_star == 1 or verdicts[p_star] is True, row  # p = 1 is SAT by definition
        assert verdicts[p_star + 1] is False, row
        assert not any(not sat for p, sat in verdicts.items() if p <= p_star), row  # no UNSAT below p*
        assert row["n_probes"] == len(verdicts), row
        assert row["monotone"] == (not any(sat for p, sat in verdicts.items() if p > p_star + 1)), row
        assert math.isclose(row["alpha_star"], p_star * math.log(p_star) / row["d"] ** 2), row
    return probes, rows


def thresholds_of(path: Path) -> dict:
    return {threshold_key(r): (r["p_star"], r["p_lo"], r["p_hi"]) for r in read_tables(path)[1]}


def descendants(root_pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of every live process below root_pid (Ray's GCS, raylet, agents, workers)."""
    parent, start = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parent[int(entry)], start[int(entry)] = int(fields[1]), fields[19]
    out, frontier = set(), [root_pid]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid:
                out.add((child, start[child]))
                frontier.append(child)
    return out


def alive(procs: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Those of `procs` still running (a zombie or a reused pid does not count)."""
    out = set()
    for pid, start in procs:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and fields[19] == start:
            out.add((pid, start))
    return out


def sweep_cmd(spec_file: Path, store: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lamcap.cli", "sweep", str(spec_file), "--store", str(store),
            "--workers", "2", "--no-progress", *extra]


def kill_group(proc: subprocess.Popen) -> set[tuple[int, str]]:
    """SIGKILL the driver's whole process group; the Ray processes below it that are still running after 60 s."""
    ray_procs = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver's own session: pytest's group is not touched
    proc.wait(timeout=30)
    deadline = time.monotonic() + 60
    while alive(ray_procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = alive(ray_procs)
    for pid, _ in survivors:  # only ours, by pid, so that a failing test leaves the machine clean
        os.kill(pid, signal.SIGKILL)
    return survivors


@contextlib.contextmanager
def sweep_process(spec_file: Path, store: Path, *extra: str, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    """`lamcap sweep` as a subprocess in its own session; killed with all its Ray processes if still running on exit."""
    # SIGINT back to its default in the child: a disposition of SIG_IGN (which something earlier in a full
    # test session may leave on this process) is inherited across exec, and Python then never raises
    # KeyboardInterrupt, so a Ctrl-C test would see the sweep run to its end.
    with session_process(sweep_cmd(spec_file, store, *extra), stdout=stdout, stderr=stderr,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as proc:
        yield proc


@contextlib.contextmanager
def session_process(cmd: list[str], **popen):
    """`cmd` in the repository, in a session of its own; on exit, killed with its process group if still running
    and its pipes closed."""
    proc = subprocess.Popen(cmd, cwd=REPO, text=True, start_new_session=True, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            kill_group(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def finish(proc: subprocess.Popen) -> str:
    """Wait for a sweep subprocess to exit 0; its stdout."""
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out


def counts(stdout: str) -> tuple[int, int]:
    """(probes run, probes reused) from the sweep's closing line."""
    match = re.search(r"(\d+) probes run, (\d+) reused from the store", stdout)
    assert match, stdout
    return int(match.group(1)), int(match.group(2))


# ---- a: the real kernels end to end ----------------------------------------------------------
@pytest.mark.slow
def test_real_sweep_end_to_end(tmp_path):
    from lamcap.orchestrator.runtime.driver import execute

    spec = load_spec(overrides={"problems": ["op", "dp"], "solvers": ["adam", "hebbian"], "d": [8, 12],
                                "rho": [1.0, 0.5], "seeds": 2, "steps": int(STEPS), "device": "cpu"})
    path = tmp_path / "e2e.zarr"
    report = execute(spec, str(path), workers=2, progress=False)
    assert not report.interrupted and report.n_actors == 2 and report.retries == 0
    probes, rows = assert_consistent_store(path, spec)
    assert report.probes_run == len(probes) and report.probes_reused == 0
    assert len(report.thresholds) == len(rows) == 2 * 2 * 2 * 2 * 2
    assert set(report.per_actor) == {0, 1}
    assert {r["solver"] for r in probes} == {"adam", "hebbian"} and {r["device"] for r in probes} == {"cpu"}
    adam = [r for r in probes if r["solver"] == "adam"]  # the step budget reached the kernels
    assert all(0 <= r["steps"] <= int(STEPS) for r in adam)
    assert any(r["status"] == "max_steps" for r in adam)
    assert all(r["steps"] == int(STEPS) for r in adam if r["status"] == "max_steps")
    assert all(r["sat"] == (r["n_violations"] == 0) for r in probes)  # SAT only from verification


# ---- b: SIGKILL the driver mid-sweep, Ctrl-C the resumed one, then the same command again ---------
@pytest.mark.slow
def test_a_driver_killed_then_one_interrupted_resume_without_rerunning(tmp_path):
    """One sweep, three drivers in turn (SIGKILLed, Ctrl-C'd, finishing), beside an undisturbed one: the
    store ends with the undisturbed run's probes, and nothing committed was computed twice."""
    spec_file = tmp_path / "kill.toml"
    spec_file.write_text(KILL_SPEC)
    store, reference = tmp_path / "killed.zarr", tmp_path / "undisturbed.zarr"
    with sweep_process(spec_file, reference) as undisturbed:  # alongside the others, to save wall time
        # 1. SIGKILL once a few batches are in
        with open(tmp_path / "killed.err", "w") as err, \
                sweep_process(spec_file, store, "--flush-seconds", "0.5", stdout=subprocess.DEVNULL,
                              stderr=err) as driver:
            deadline = time.monotonic() + 240
            while n_committed(store) < 16 or n_committed(store, "thresholds") == 0:  # a few batches in
                assert driver.poll() is None, (tmp_path / "killed.err").read_text()[-3000:]
                assert time.monotonic() < deadline, "no batches committed in 240 s"
                time.sleep(0.05)
            assert kill_group(driver) == set(), "the killed driver left Ray processes running"
            assert driver.returncode == -signal.SIGKILL
        before = committed_arrays(store)
        n_before = len(before["probes"]["p"])
        killed_probes, killed_rows, _ = read_tables(store)
        # Batches commit in order: a threshold committed before the kill has all its probes committed.
        for row in killed_rows:
            mine = [r for r in killed_probes if threshold_key(r) == threshold_key(row) and r["purpose"] == "search"]
            assert len(mine) == row["n_probes"], row

        # 2. resume, and Ctrl-C it (the whole foreground group, as a terminal does) once it has committed more
        with sweep_process(spec_file, store, "--flush-seconds", "0.5") as driver:
            deadline = time.monotonic() + 240
            while n_committed(store) < n_before + 4:
                assert driver.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            ray_procs = descendants(driver.pid)
            os.killpg(driver.pid, signal.SIGINT)
            _, err = driver.communicate(timeout=120)
        assert driver.returncode == 130 and "interrupted" in err and "run the same command to resume" in err
        deadline = time.monotonic() + 60
        while alive(ray_procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(ray_procs), "Ctrl-C left Ray processes running"
        interrupted = committed_arrays(store)
        assert_rows_kept(before, interrupted)
        n_interrupted = len(interrupted["probes"]["p"])
        # What finished is stored; nothing interrupted is recorded as a verdict or an error.
        assert {r["status"] for r in read_tables(store)[0]} <= {"converged", "max_steps", "closed_form"}

        # 3. the same command finishes it
        with sweep_process(spec_file, store) as again:
            resumed_out = finish(again)
        reference_out = finish(undisturbed)

    spec = load_spec(str(spec_file))
    after, expected = assert_consistent_store(store, spec)[0], assert_consistent_store(reference, spec)[0]
    assert_rows_kept(interrupted, committed_arrays(store))
    assert thresholds_of(store) == thresholds_of(reference)
    # One probe in flight per search: the resumed store holds exactly the undisturbed run's probes,
    # with the same verdicts (a probe is a pure function of its spec).
    assert {probe_key(r): (r["sat"], r["n_violations"]) for r in after} == \
        {probe_key(r): (r["sat"], r["n_violations"]) for r in expected}
    run_again, reused = counts(resumed_out)
    run_full, _ = counts(reference_out)
    assert 16 <= n_before < n_interrupted < run_full, "a driver was stopped after the sweep had finished"
    assert run_again == run_full - n_interrupted  # nothing committed before the kill or Ctrl-C was computed again
    assert reused == n_interrupted  # every committed record was used (replayed into its search, or a stored curve)
    assert {r["attempt"] for r in after} == {1}


# ---- c: bad specs through the command line (no Ray) ------------------------------------------
BASE = ["--problems", "op", "dp", "--solvers", "hebbian", "--d", "8", "--rho", "1", "--seeds", "2",
        "--device", "cpu", "--no-progress"]


@pytest.fixture
def existing_store(tmp_path) -> Path:
    """A store written by the BASE command line's spec, holding one probe record."""
    path = tmp_path / "store.zarr"
    spec = load_spec(overrides={"problems": ["op", "dp"], "solvers": ["hebbian"], "d": [8], "rho": [1.0],
                                "seeds": 2, "device": "cpu"})
    store = StoreWriter.open_or_create(path, spec)
    store.append_probes([failed_record(Probe(Cell("op", "hebbian", 1.0, 8), 0, 5), "cpu", "RuntimeError: x")])
    return path


@pytest.mark.parametrize("extra, needles", [
    (["--problems", "op", "xp"], ["problems", "'xp'"]),
    (["--d", "8", "1"], ["ds: 1 ", ">= 2"]),
    (["--rho", "1.5"], ["rhos: 1.5", "(0, 1]"]),
    (["--rho", "0"], ["rhos: 0.0", "(0, 1]"]),
    (["--solvers", "lp", "--rho", "0.5"], ["rhos = [0.5]", "'lp' needs rho = 1"]),
    (["--seeds", "0"], ["seeds=0"]),
    (["--seeds", "1"], ["seeds: this spec has fewer (1 < 2)", "store.zarr"]),  # contradicts the existing store
    (["--d", "12"], ["ds: this spec drops [8]", "only adds"]),  # not an extension: d = 8 would be dropped
    (["--seeds", "3", "--curve-points", "2"], ["search.curve_points differ: 2 vs 0"]),
    (["--d", "eight"], ["--d", "'eight'"]),  # refused by the argument parser itself
    (["--flush-seconds", "0"], ["--flush-seconds 0.0"]),
])
def test_bad_spec_exits_2_with_one_line_and_leaves_the_store_alone(existing_store, capsys, extra, needles):
    import ray

    before = tree_digest(existing_store.parent)
    try:
        code = cli.main(["sweep", "--store", str(existing_store), *BASE, *extra])
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("lamcap sweep: error:"), err
    for needle in needles:
        assert needle in err, err
    assert out == ""
    assert tree_digest(existing_store.parent) == before  # the store and its folder, byte for byte
    assert not ray.is_initialized()


def test_bad_spec_file_is_refused_and_no_store_is_created(tmp_path, capsys):
    spec_file = tmp_path / "bad.toml"
    spec_file.write_text(KILL_SPEC.replace("rhos = [1.0]", "rhos = [1.0, 2.0]").replace("seeds = 2", "seeds = -1"))
    store = tmp_path / "new.zarr"
    assert cli.main(["sweep", str(spec_file), "--store", str(store), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "rhos: 2.0" in err and "seeds=-1" in err  # every bad value, in one message
    assert sorted(os.listdir(tmp_path)) == ["bad.toml"]

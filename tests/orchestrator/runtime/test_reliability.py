"""What a careless user or a hostile machine does to a sweep, and what lamcap says back: damaged metadata,
rows edited by hand, a store of another kernel, actors killed while they start, Ray's own log lines, reruns
with other worker counts, a driver killed with its embedded Ray, and the small messages of the Python API."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import zarr

import lamcap
from lamcap import cli
from lamcap.errors import ClusterError, InvalidInput
from lamcap.kernels.outcome import KERNEL
from lamcap.orchestrator.runtime import driver
from lamcap.orchestrator.runtime.driver import execute
from lamcap.orchestrator.runtime.preflight import check_store
from lamcap.orchestrator.runtime.probe import probe_labels
from lamcap.orchestrator.spec import Probe, SearchSettings, SweepSpec
from lamcap.store.reader import read_tables
from lamcap.store.schema import probe_key
from tests.analysis.store_factory import synthetic_sweep, write_store

REPO = Path(__file__).resolve().parents[3]
SMALL = ["--problems", "op", "--solvers", "hebbian", "--rho", "1", "--d", "8", "--seeds", "1", "--no-progress"]


def p_true(problem: str, d: int, seed: int) -> int:
    return 10 + 2 * seed + (3 if problem == "dp" else 0) + d // 4


def oracle(probe, settings, device: str) -> dict:
    """A fake probe: SAT iff p <= p_true, with a random delay so that results arrive in varying order."""
    time.sleep(0.01 * (hash((probe.p, probe.seed, time.time())) % 5))
    sat = probe.p <= p_true(probe.cell.problem, probe.cell.d, probe.seed)
    return {**probe_labels(probe), "sat": sat, "status": "closed_form", "accuracy": 1.0 if sat else 0.9,
            "n_violations": 0 if sat else 1, "min_margin": 0.1, "final_loss": 0.0, "steps": 0, "wall_seconds": 0.0,
            "peak_bytes": 0, "device": device, "target_mean": 0.0, "target_var": 0.0, "offtarget_mean": 0.0,
            "offtarget_var": 1.0, "target_hist": [], "offtarget_hist": [], "singular_values": [1.0] * probe.cell.d,
            "error": ""}


class DiesStarting:
    """A probe runner whose actor dies in its start-up (warm_up) the first `times` times anywhere, then works."""

    def __init__(self, marker_dir: str, times: int) -> None:
        self.marker_dir, self.times = marker_dir, times

    def warm_up(self, device: str) -> None:
        for i in range(self.times):
            try:
                os.close(os.open(os.path.join(self.marker_dir, f"died-{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            os._exit(1)

    def __call__(self, probe, settings, device: str) -> dict:
        return oracle(probe, settings, device)


def killing_runner(probe, settings, device: str) -> dict:
    """The first probe at p = 12 kills its actor (a marker file next to the test's store says it happened)."""
    marker = os.environ.get("LAMCAP_TEST_MARKER", "")
    if probe.p == 12 and marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return oracle(probe, settings, device)


def spec(width: int = 1, seeds: int = 2) -> SweepSpec:
    return SweepSpec(problems=("op", "dp"), solvers=("hebbian",), rhos=(1.0,), ds=(8, 16), seeds=seeds,
                     device="cpu", search=SearchSettings(width=width))


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(driver, "start_ray", refuse)


def one_line_error(capsys, code: int, argv: list[str], *needles: str) -> str:
    assert cli.main(argv) == code
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and all(n in err for n in needles), err
    return err


def small_store(path: Path) -> Path:
    probes, rows = synthetic_sweep(problems=("op",), solvers=("hebbian",), rhos=(1.0,), ds=(8,), seeds=(0,))
    return Path(write_store(path, [{**r, "kernel": KERNEL} for r in probes], rows))


# ---- damage, edits and provenance are named before any work ---------------------------------------------
@pytest.mark.parametrize("node", ["", "probes", "thresholds", "decisions", "probes/p", "thresholds/alpha_star"])
def test_damaged_metadata_of_any_group_or_array_is_named_by_analyze_and_sweep(tmp_path, capsys, no_ray, node):
    store = small_store(tmp_path / "s.zarr")
    meta = store.joinpath(*node.split("/"), "zarr.json") if node else store / "zarr.json"
    meta.write_text('{"zarr_format": 3, "node_type": "gro')
    one_line_error(capsys, 2, ["analyze", str(store), "--out", str(tmp_path / "out")], "store damaged", str(meta))
    one_line_error(capsys, 2, ["sweep", *SMALL, "--store", str(store)], "store damaged", str(meta))


def test_a_threshold_row_edited_by_hand_is_named_on_read_and_on_resume(tmp_path, capsys, no_ray):
    store = small_store(tmp_path / "s.zarr")
    alpha = zarr.open_group(str(store / "thresholds"), mode="r+")["alpha_star"]
    alpha[0] = 0.9
    err = one_line_error(capsys, 2, ["analyze", str(store)], "store damaged", "alpha_star = 0.9")
    assert "row 0 (op hebbian rho=1 d=8 seed=0)" in err
    with pytest.raises(InvalidInput, match="alpha_star = 0.9"):
        lamcap.open_store(store)


def test_a_store_computed_by_another_kernel_is_not_resumed_but_is_analysed(tmp_path, capsys, no_ray):
    store = small_store(tmp_path / "s.zarr")
    root = zarr.open_group(str(store), mode="r+")
    root.attrs["kernel"] = "2025.01-0"
    root.attrs["spec"] = json.dumps(spec(seeds=1).to_dict())
    with pytest.raises(InvalidInput, match=r"computed by kernel '2025.01-0'.*resuming would mix"):
        check_store(str(store), spec(seeds=1))
    report = lamcap.analyze(store)
    assert report.text.startswith(f"Computed by: kernel {KERNEL} ({len(report.analysis.store.probes.probe)} probes)")


def test_an_extension_that_drops_a_solver_names_only_that(tmp_path, capsys, no_ray):
    base = ["--problems", "op", "dp", "--rho", "1", "--d", "8", "--seeds", "1", "--no-progress"]
    store = tmp_path / "s.zarr"
    stored = SweepSpec(problems=("op", "dp"), solvers=("adam", "hebbian"), rhos=(1.0,), ds=(8,), seeds=1)
    from lamcap.store.writer import StoreWriter

    StoreWriter.open_or_create(store, stored)
    err = one_line_error(capsys, 2, ["sweep", *base, "--solvers", "adam", "--d", "8", "12", "--store", str(store)],
                         "solvers: this spec drops ['hebbian']")
    conflicts = err.split("(use")[0]
    assert "problems" not in conflicts and "ds" not in conflicts


def test_the_python_api_names_every_bad_argument():
    with pytest.raises(InvalidInput, match="store=None must be a path"):
        lamcap.sweep("demo", None)
    with pytest.raises(InvalidInput) as info:
        lamcap.trial("xx", -3)
    assert "unknown problem 'xx'" in str(info.value) and "d=-3" in str(info.value)


def test_a_file_where_a_store_should_be_is_called_a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a store")
    with pytest.raises(InvalidInput, match="is a file, not a lamcap store"):
        lamcap.open_store(path)


# ---- actors, Ray's log lines, reruns, the embedded Ray's processes (Ray: slow) ------------------------
@pytest.mark.slow
def test_actors_killed_while_starting_are_replaced_and_a_pool_that_never_starts_ends_in_one_line(tmp_path):
    report = execute(spec(), str(tmp_path / "s.zarr"), workers=2, progress=False,
                     runner=DiesStarting(str(tmp_path), 2))
    assert len([f for f in os.listdir(tmp_path) if f.startswith("died-")]) == 2
    assert all(r["complete"] for r in report.thresholds) and len(report.thresholds) == 8
    os.makedirs(tmp_path / "never")
    with pytest.raises(ClusterError, match="no actor of this sweep could start"):
        execute(spec(), str(tmp_path / "never.zarr"), workers=1, progress=False,
                runner=DiesStarting(str(tmp_path / "never"), 99))


@pytest.mark.slow
def test_a_worker_kill_shows_lamcaps_line_and_no_line_of_rays(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("LAMCAP_TEST_MARKER", str(tmp_path / "killed"))
    report = execute(spec(), str(tmp_path / "s.zarr"), workers=2, progress=False, runner=killing_runner)
    time.sleep(1.0)  # what Ray streams to the driver arrives late
    out, err = capfd.readouterr()
    assert (tmp_path / "killed").exists() and report.retries == 1
    assert "(raylet)" not in out + err and "A worker died" not in out + err


@pytest.mark.slow
def test_reruns_and_other_worker_counts_visit_the_same_probes(tmp_path):
    runs = {}
    for name, workers in (("one", 1), ("two", 2), ("two-again", 2)):
        execute(spec(width=2), str(tmp_path / f"{name}.zarr"), workers=workers, progress=False, runner=oracle)
        probes, rows, _ = read_tables(tmp_path / f"{name}.zarr")
        per_search = Counter((r["problem"], r["d"], r["seed"]) for r in probes)
        runs[name] = ({probe_key(r) for r in probes}, per_search, sorted((r["p_lo"], r["p_hi"]) for r in rows))
    assert runs["one"] == runs["two"] == runs["two-again"]


KILLED_DRIVER = """
import sys, time
from lamcap.orchestrator.runtime.ray_session import start_ray
from lamcap.orchestrator.runtime.reaper import children_of, descendants
import os
start_ray(None, num_cpus=1)
print(" ".join(map(str, descendants(children_of(os.getpid())))), flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_an_embedded_rays_processes_end_with_a_killed_driver():
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) >= 3  # gcs, raylet and friends
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") and _alive(p) for p in pids):
        time.sleep(0.5)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}") and _alive(p)]


STOPPED_DRIVER = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a script's background job starts
from lamcap.orchestrator.runtime.driver import execute
from tests.orchestrator.runtime.test_reliability import oracle, spec

def slow(probe, settings, device):
    time.sleep(0.2)
    return oracle(probe, settings, device)

report = execute(spec(seeds=4), sys.argv[1], workers=1, progress=False, runner=slow, flush_seconds=0.1)
print("interrupted" if report.interrupted else "finished", report.probes_run, flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_a_sigint_started_ignored_stop_a_sweep_as_ctrl_c_does(tmp_path, sig):
    """`kill`, `timeout` and a batch system send SIGTERM; a script's background job starts with SIGINT ignored.
    Either signal stops the sweep cleanly (no stack dump of Ray's), with its finished probes stored."""
    from tests.orchestrator.runtime.test_sweep_e2e import n_committed

    store = tmp_path / "s.zarr"
    proc = subprocess.Popen([sys.executable, "-c", STOPPED_DRIVER, str(store)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while n_committed(store) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
            time.sleep(0.05)
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0 and out.split()[0] == "interrupted", err[-3000:]
    assert "SIGTERM received" not in err and "Traceback" not in err, err[-3000:]
    stored = read_tables(store)[0]
    assert 3 <= len(stored) == int(out.split()[1]) < 8 * 8  # all it ran is stored, and it stopped early


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def old_store(path: Path, records: list[dict] | None = None) -> Path:
    """A store as lamcap 0.1 wrote it: no kernel named (root attribute and variable), a spec with a key since
    dropped, probes of the splitmix64 generator (`records`, or two per cell)."""
    import shutil

    from lamcap.store.writer import StoreWriter

    stored = spec(seeds=1)
    writer = StoreWriter.open_or_create(path, stored)
    if records is None:
        records = [oracle(Probe(cell, 0, p), None, "cpu") for cell in stored.cells() for p in (9, 30)]
    writer.append_probes([{**r, "generator": "splitmix64-erfcinv-v1"} for r in records])
    root = zarr.open_group(str(path), mode="r+")
    raw = stored.to_dict()
    raw["search"]["max_parallel_per_learner"] = 4
    root.attrs["spec"] = json.dumps(raw)
    del root.attrs["kernel"]
    shutil.rmtree(path / "probes" / "kernel")
    return path


def test_a_store_of_lamcap_0_1_is_taken_for_its_kernel_and_resumes(tmp_path):
    store = old_store(tmp_path / "old.zarr")
    assert check_store(str(store), spec(seeds=1)).added == []
    assert "spec this lamcap cannot read" not in str(lamcap.open_store(store).spec)


@pytest.mark.slow
def test_a_store_of_lamcap_0_1_resumes_to_the_thresholds_of_a_fresh_sweep(tmp_path):
    fresh = execute(spec(seeds=1), str(tmp_path / "fresh.zarr"), workers=2, progress=False, runner=oracle)
    probes, _, _ = read_tables(tmp_path / "fresh.zarr")
    store = old_store(tmp_path / "old.zarr", probes[: len(probes) // 2])
    report = execute(spec(seeds=1), str(store), workers=2, progress=False, runner=oracle)
    assert report.probes_reused == len(probes) // 2 and report.probes_run == len(probes) - len(probes) // 2
    assert sorted((r["problem"], r["d"], r["p_star"]) for r in report.thresholds) == \
        sorted((r["problem"], r["d"], r["p_star"]) for r in fresh.thresholds)

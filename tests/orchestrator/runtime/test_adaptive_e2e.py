"""Adaptive sweeps end to end: the driver SIGKILLed mid-run and resumed (fake oracle runner), and the real kernels.

The killed driver runs in its own session (tests.orchestrator.learners.adaptive_oracle as a script: `lamcap sweep` with
the oracle runner), so that killing its process group takes its embedded Ray down and never touches pytest's.
"""
from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lamcap.orchestrator.learners.decisions import decision_row
from lamcap.orchestrator.learners.expansion import Expansion
from lamcap.orchestrator.spec import load_spec
from lamcap.store.reader import read_decisions, read_tables
from lamcap.store.schema import probe_key, threshold_key
from tests.orchestrator.learners.test_expansion import by_learner, run
from tests.orchestrator.runtime.test_sweep_e2e import (
    assert_consistent_store,
    assert_rows_kept,
    committed_arrays,
    kill_group,
    n_committed,
    session_process,
)

# One probe in flight per search, so that a search is the same probes whatever the timing.
RANK_SPEC = """\
problems = ["op"]
solvers = ["adam"]
ds = [8, 16]
seeds = 2
device = "cpu"

[search]
width = 1

[adaptive.rho]
min = 0.1
max = 1.0
points = 6
"""


@contextlib.contextmanager
def oracle_sweep(spec_file: Path, store: Path, flush: float, stderr=subprocess.PIPE):
    """The driver with the oracle runner as a subprocess in its own session; killed with its Ray on exit."""
    oracle = "tests.orchestrator.learners.adaptive_oracle"
    with session_process([sys.executable, "-m", oracle, str(spec_file), str(store), str(flush)],
                         stdout=subprocess.PIPE, stderr=stderr) as proc:
        yield proc


def finish(proc: subprocess.Popen) -> tuple[int, int]:
    """Wait for a sweep subprocess to exit 0; (probes run, probes reused)."""
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, (err or "")[-3000:]
    match = re.search(r"(\d+) probes run, (\d+) reused", out)
    assert match, out
    return int(match.group(1)), int(match.group(2))


def decisions_of(path: Path) -> dict:
    return by_learner(read_decisions(path)[1], order_free=True)


def thresholds_of(path: Path) -> dict:
    return {threshold_key(r): (r["p_star"], r["p_lo"], r["p_hi"]) for r in read_tables(path)[1]}


def stored_searches(path: Path) -> set:
    return {threshold_key(r) for r in read_tables(path)[1]}


def assert_cells_are_the_learners(path: Path, seeds: int) -> None:
    """The stored searches are exactly the rank learners' chosen cells, with every seed."""
    chosen = {(dec["problem"], dec["solver"], rho, dec["d"], s) for dec in read_decisions(path)[1]
              for rho in dec["chosen_rhos"] for s in range(seeds)}
    assert stored_searches(path) == chosen


@pytest.mark.slow
def test_adaptive_driver_killed_mid_sweep_resumes_to_the_undisturbed_result(tmp_path):
    """The undisturbed result is the adaptive axis driven without Ray on the same oracle (test_expansion.run),
    which an undisturbed sweep reproduces exactly (test_scheduler's adaptive test): no second driver needed."""
    spec_file = tmp_path / "rank.toml"
    spec_file.write_text(RANK_SPEC)
    spec = load_spec(str(spec_file))
    rows, decisions = run(Expansion(spec))
    store = tmp_path / "killed.zarr"
    with open(tmp_path / "killed.err", "w") as err, oracle_sweep(spec_file, store, 0.2, stderr=err) as driver:
        deadline = time.monotonic() + 240
        while n_committed(store, "decisions") < 3:  # the first rounds and one added cell are in
            assert driver.poll() is None, (tmp_path / "killed.err").read_text()[-3000:]
            assert time.monotonic() < deadline, "no decisions committed in 240 s"
            time.sleep(0.02)
        assert kill_group(driver) == set(), "the killed driver left Ray processes running"
        assert driver.returncode == -signal.SIGKILL
    before = committed_arrays(store)
    assert n_committed(store, "decisions") < len(decisions), "the kill came after the sweep had finished"
    with oracle_sweep(spec_file, store, 10.0) as again:
        run_again, reused = finish(again)

    assert_rows_kept(before, committed_arrays(store))
    assert {k: v[0] for k, v in thresholds_of(store).items()} == {k: r["p_star"] for k, r in rows.items()}
    assert decisions_of(store) == by_learner(json.loads(json.dumps(decisions)), order_free=True)
    assert_cells_are_the_learners(store, spec.seeds)
    n_before = len(before["probes"]["p"])
    probes = read_tables(store)[0]
    assert len({probe_key(r) for r in probes}) == len(probes) == n_before + run_again  # none written twice
    assert reused == n_before  # every probe committed before the kill was used, none computed again


@pytest.mark.slow
def test_adaptive_rank_sweep_with_the_real_kernels(tmp_path):
    from lamcap.orchestrator.runtime.driver import execute

    spec = load_spec(overrides={"problems": ["op"], "solvers": ["hebbian"], "d": [12], "seeds": 2,
                                "device": "cpu", "adaptive": {"rho": {"min": 0.25, "max": 1.0, "points": 4}}})
    path = tmp_path / "real.zarr"
    report = execute(spec, str(path), workers=2, progress=False)
    assert not report.interrupted and report.retries == 0
    log = read_decisions(path)[1]
    assert [dec["basis"] for dec in log][0] == "initial" and log[-1]["basis"] == "stop"
    assert_cells_are_the_learners(path, spec.seeds)
    assert len({r["rank"] for r in read_tables(path)[1]}) == 4  # the budget: 4 distinct ranks
    for dec in log[1:]:  # each decision was told the stored thresholds of the cells before it
        for told in dec["told"]:
            rows = [r for r in read_tables(path)[1] if r["rho"] == told["rho"]]
            assert sorted(r["alpha_star"] for r in rows) == sorted(told["alpha_star"])
    assert_consistent_store_of(path, spec)


def assert_consistent_store_of(path: Path, spec) -> None:
    """test_sweep_e2e's checks of every threshold against its probes, for the cells the learner chose."""
    import dataclasses

    rows = read_tables(path)[1]
    fixed = dataclasses.replace(spec, adaptive=type(spec.adaptive)(),
                                rhos=tuple(sorted({r["rho"] for r in rows})))
    assert_consistent_store(path, fixed)
    assert json.loads(read_tables(path)[2]["spec"])["adaptive"] == spec.adaptive.to_dict()


def test_a_store_whose_decisions_differ_is_refused_before_ray_in_one_line(tmp_path, capsys):
    import ray

    from lamcap import cli
    from lamcap.store.writer import StoreWriter
    from tests.orchestrator.runtime.test_sweep_e2e import tree_digest
    from tests.store.test_decisions_table import _threshold_rows

    spec_file = tmp_path / "rank.toml"
    spec_file.write_text(RANK_SPEC)
    spec = load_spec(str(spec_file))
    rows, decisions = run(Expansion(spec), stop_after=12)
    tampered = json.loads(json.dumps(decisions))
    tampered[0]["chosen_ranks"] = [tampered[0]["chosen_ranks"][0] + 1] + tampered[0]["chosen_ranks"][1:]
    path = tmp_path / "s.zarr"
    store = StoreWriter.open_or_create(path, spec)
    store.append_thresholds(_threshold_rows(list(rows.values())))
    store.append_decisions(tampered, [decision_row(d) for d in tampered])
    before = tree_digest(tmp_path)
    assert cli.main(["sweep", str(spec_file), "--store", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "refusing to resume" in err and "round 0" in err, err
    assert tree_digest(tmp_path) == before and not ray.is_initialized()

"""lamcap.kernels.threads: one thread for small steps, the idle cores for large ones, a checked override."""
from __future__ import annotations

import os

import pytest

from lamcap.errors import InvalidInput
from lamcap.kernels import budget, threads


def test_step_work_counts_the_fused_loss():
    assert budget.step_work("op", 32, 300) == 4 * 300 * 300 * 32
    assert budget.step_work("dp", 64, 580) == 2 * 580 * 580 * 64


@pytest.mark.parametrize("load, cores, idle", [(0.0, 2, 2), (0.4, 2, 2), (0.6, 2, 1), (1.6, 2, 1), (9.0, 4, 1),
                                               (1.0, 8, 7)])
def test_idle_cores_subtract_the_load_and_never_go_below_one(monkeypatch, load, cores, idle):
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert threads.idle_cores() == idle


def test_small_steps_get_one_thread_large_ones_the_idle_cores(monkeypatch):
    monkeypatch.setattr(threads, "idle_cores", lambda: 3)
    assert threads.choose_threads(threads.PARALLEL_MIN_WORK / 2) == 1
    assert threads.choose_threads(threads.PARALLEL_MIN_WORK * 2) == 3
    assert threads.choose_threads(threads.PARALLEL_MIN_WORK * 2, requested=1) == 1  # the override wins
    assert threads.choose_threads(1.0, requested=4) == 4


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_a_bad_thread_count_is_refused_naming_it(bad):
    with pytest.raises(InvalidInput, match=f"--threads {bad!r}"):
        threads.choose_threads(1e9, requested=bad)


def test_openmp_is_asked_to_sleep_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    threads.quiet_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    threads.quiet_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_use_threads_sets_torch(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        assert threads.use_threads(1.0, requested=1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)

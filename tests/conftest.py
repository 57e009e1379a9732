"""Test-session setup shared by every test module."""
import os
from pathlib import Path

# lamcap itself is importable in Ray workers from its installation. Tests also hand Ray fake probe
# runners defined in test modules (`tests.orchestrator.runtime...`), which workers import by name: put the
# repository root (home of the `tests` package) on the path every worker process inherits.
REPO = str(Path(__file__).resolve().parents[1])
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if REPO not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join([REPO, *_paths])

import pytest

# Tests run torch in the pytest process beside another xdist worker and Ray actors: one thread each, and
# OpenMP told to sleep rather than spin while it waits (a spinning wait steals the other worker's core; set
# before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Every test starts with one torch thread (a test that sets another count does not leak it)."""
    import torch

    torch.set_num_threads(1)


# `make test` hands whole modules to two xdist workers in collection order: the longest go first, so that
# both workers finish together (seconds per module with two workers on 2 cores, 2026-11-23).
LONGEST_FIRST = [
    "tests/orchestrator/runtime/test_sweep_e2e.py",
    "tests/orchestrator/runtime/test_cluster_gpus.py",
    "tests/orchestrator/runtime/test_scheduler.py",
    "tests/orchestrator/runtime/test_reliability.py",
    "tests/orchestrator/runtime/test_gangs.py",
    "tests/orchestrator/runtime/test_adaptive_e2e.py",
    "tests/kernels/test_sharding.py",
    "tests/test_api.py",
    "tests/kernels/test_lp.py",
    "tests/test_packaging.py",
    "tests/commands/test_analyze.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {module: i for i, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: modules stay whole

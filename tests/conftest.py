"""Test-session setup shared by every test module."""
import os
from pathlib import Path

# lamcap itself is importable in Ray workers from its installation. Tests also hand Ray fake probe
# runners defined in test modules (`tests.orchestrator...`), which workers import by name: put the
# repository root (home of the `tests` package) on the path every worker process inherits.
REPO = str(Path(__file__).resolve().parents[1])
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if REPO not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join([REPO, *_paths])

import pytest  # noqa: E402

# Tests run torch in the pytest process beside another xdist worker and Ray actors: one thread each, and
# OpenMP told to sleep rather than spin while it waits (PITFALLS.md, "CPU threads"; before torch's import).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Every test starts with one torch thread (a test that sets another count does not leak it)."""
    import torch

    torch.set_num_threads(1)

# `make test` runs two pytest-xdist workers (--dist loadgroup). The modules that start an embedded Ray
# (or a `lamcap sweep` that does) form one group, run one after another on one worker: two Rays at once
# on two cores starve each other's start-up. Every other module is a group of its own, so that its
# module-scoped fixtures (Gloo gangs, LP instances) are built once.
RAY_MODULES = {
    "tests.orchestrator.test_adaptive_e2e", "tests.orchestrator.test_api", "tests.orchestrator.test_cli_analyze",
    "tests.orchestrator.test_cli_safety", "tests.orchestrator.test_cluster_gpus", "tests.orchestrator.test_gangs",
    "tests.orchestrator.test_plan_sweep", "tests.orchestrator.test_scheduler", "tests.orchestrator.test_sweep_e2e",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__ if item.module is not None else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group("ray" if module in RAY_MODULES else module))

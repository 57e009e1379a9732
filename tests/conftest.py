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

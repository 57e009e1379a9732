"""How many CPU threads a probe run outside Ray (`lamcap trial`, `lamcap bench`) should use.

torch's default is one thread per core, and its OpenMP threads spin while they wait: when other
processes hold those cores, every small parallel op waits on a descheduled thread, and a probe
ran 50x slower on a busy 2-core machine. So: one thread for small problems, where more threads
never paid off (benchmarks/threads.py measures where they start to), and above that as many
threads as there are idle cores (cores minus the 1-minute load average), at least one. Sweep
actors always run one thread each. OpenMP is also told to sleep rather than spin while waiting
(OMP_WAIT_POLICY=PASSIVE), which takes effect only if torch is not imported yet.
"""
from __future__ import annotations

import os

from lamcap.errors import InvalidInput

# Work per optimiser step (float operations, the fused loss's 4 p^2 d for OP, 2 p^2 d reads for
# DP) below which one thread is as fast as two on an idle machine. benchmarks/threads.py on the
# 2-core build machine: two threads lose at 1.4e6 (DP d = 32: 0.85x) and win from 1.2e7 (OP d = 32:
# 1.49x; 1.7x-1.9x from 4e7 up); the crossing lies between, taken at their geometric middle.
PARALLEL_MIN_WORK = 4e6


def quiet_openmp() -> None:
    """Ask OpenMP to sleep, not spin, while waiting (effective before torch's first import)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def idle_cores() -> int:
    """Cores this process may use minus the 1-minute load average, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


def choose_threads(work: float, requested: int | None = None) -> int:
    """`requested` if given (checked), else 1 below PARALLEL_MIN_WORK and the idle cores above it."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise InvalidInput(f"--threads {requested!r} must be an integer >= 1")
        return requested
    return 1 if work < PARALLEL_MIN_WORK else idle_cores()


def use_threads(work: float, requested: int | None = None) -> int:
    """Choose and set torch's intra-op thread count; returns it."""
    import torch

    n = choose_threads(work, requested)
    torch.set_num_threads(n)
    return n

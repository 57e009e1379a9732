"""The share of its GPU a process plans and allocates with: 1 for a GPU of its own, 1/K when K probe actors
share one (`lamcap sweep --actors-per-gpu K`).

Every memory rule of a probe (the `auto` mode's budget, chunk sizes, held scores, verification blocks) reads
the device's memory through lamcap.kernels.competitors.device_memory_bytes, which is the GPU's total memory
times this share: a probe's plan is a pure function of the probe, the GPU's total memory and the share, and
each probe records its share. On a GPU the share is also enforced (the caching allocator refuses to grow
past it), so that co-tenants never run each other out of memory.
"""
from __future__ import annotations

import math

from lamcap.errors import InvalidInput

_share = 1.0


def memory_share() -> float:
    """This process's share of its device's memory (1: the whole device)."""
    return _share


def check_share(share: float) -> float:
    """`share` as a float in (0, 1]; InvalidInput naming it otherwise."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not (math.isfinite(share)
                                                                              and 0.0 < share <= 1.0):
        raise InvalidInput(f"memory share {share!r} must be a number in (0, 1]")
    return float(share)


def set_memory_share(share: float, device: str) -> None:
    """Plan every later probe of this process with `share` of its device's memory; on 'cuda', also cap the
    caching allocator at that fraction of the GPU."""
    global _share
    _share = check_share(share)
    if device == "cuda":
        import torch

        torch.cuda.set_per_process_memory_fraction(_share)

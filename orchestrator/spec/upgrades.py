"""Specs recorded by older lamcaps, brought to this one's form (never a user's spec: only what a store recorded).

Each upgrade drops or renames a key whose meaning did not change a stored record, so that a store written by an
older lamcap can be resumed; anything that changed how probes are computed is refused instead (the store's
`kernel`, lamcap.orchestrator.runtime.preflight.check_kernel).
"""
from __future__ import annotations

import copy

# lamcap 0.1: how many points a search could have in flight, chosen from idle actors; searches now ask in rounds of
# search.width (1 unless given), the same probes whatever the actors.
DROPPED = {"search": ("max_parallel_per_learner",)}


def upgrade_stored(raw: dict) -> dict:
    """A copy of a stored spec dict in this lamcap's form."""
    out = copy.deepcopy(raw)
    for section, keys in DROPPED.items():
        table = out.get(section)
        if isinstance(table, dict):
            for key in keys:
                table.pop(key, None)
    return out

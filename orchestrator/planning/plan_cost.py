"""The dimension learner's cost: device-seconds of a cell's threshold searches under a stated device model."""
from __future__ import annotations

import functools

from lamcap.orchestrator.planning.plan import cell_cost
from lamcap.orchestrator.planning.stated import stated_model
from lamcap.orchestrator.spec import Cell, SweepSpec


class PlanCost:
    """Device-seconds of `seeds` threshold searches of a cell: `lamcap plan`'s per-cell cost (`cell_cost`: the
    real learner against a simulated oracle, every probe priced) under the STATED model of the sweep's device
    (`stated_model`), never a calibration: the dimension learner's decisions must replay identically on any
    machine. A store's decisions depend on it: a store written under another cost model refuses to resume.
    """

    def __init__(self, spec: SweepSpec, device: str) -> None:
        """device: 'cpu' or 'cuda', the device the sweep runs on (its spec's 'auto' resolved by the caller)."""
        self.spec, self.device = spec, device
        self.name = f"lamcap.orchestrator.planning.plan.cell_cost under the stated {device} model"

    def __call__(self, problem: str, solver: str, rho: float, d: int, seeds: int) -> float:
        return seeds * _per_threshold(Cell(problem, solver, rho, d), self.spec, self.device)


@functools.lru_cache(maxsize=4096)
def _per_threshold(cell: Cell, spec: SweepSpec, device: str) -> float:
    return cell_cost(cell, spec, stated_model(device))

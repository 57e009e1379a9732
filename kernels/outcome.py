"""What one solved and verified instance reports: the probe record's kernel half."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

# The closed vocabulary of outcome statuses (the store keeps them as integer codes).
STATUSES = (
    "converged",  # adam: training reached accuracy 1 and verification agreed
    "max_steps",  # adam: step budget spent before verification found all stored
    "diverged",  # adam: loss or weights became NaN/inf; counted UNSAT
    "closed_form",  # hebbian: no training; verdict from verification
    "feasible",  # lp: a strictly separating W exists (SAT)
    "infeasible",  # lp: proven that no W stores all (UNSAT)
    "error",  # the probe raised; never SAT
)


@dataclass
class Outcome:
    """Result of ``lamcap.kernels.solvers.solve``; every field is a plain Python value."""

    sat: bool
    n_violations: int
    accuracy: float  # fraction of associations stored, from verification
    min_margin: float  # min_mu (s_mu,mu - max_{nu!=mu} s_mu,nu) / sigma_off
    final_loss: float  # mean cross-entropy of the returned W (float64 pass)
    steps: int  # optimiser steps (adam), constraint-generation rounds (lp), 0 (hebbian)
    status: str  # one of STATUSES
    wall_seconds: float
    peak_bytes: int  # peak memory of the solve (CUDA: allocator peak; CPU: resident high-water mark over its start, reset per probe)
    device: str  # device type the instance was generated and solved on: 'cpu' or 'cuda'
    target_mean: float  # normalised target scores: (s - mean_off) / sigma_off
    target_var: float
    offtarget_mean: float
    offtarget_var: float
    target_hist: list[int] = field(default_factory=list)  # counts on lamcap.kernels.verify.HIST_EDGES
    offtarget_hist: list[int] = field(default_factory=list)
    singular_values: list[float] = field(default_factory=list)  # of W, descending, length d
    # lp only (NaN for other solvers): the optimal max-margin t* of lamcap.kernels.solvers.lp over sigma_off
    # of the optimal W, i.e. in the units of min_margin; 0 when UNSAT (t* = 0: no W separates strictly)
    lp_margin: float = math.nan

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")

    def as_record(self) -> dict:
        return asdict(self)

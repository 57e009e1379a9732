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
# What generated the instance (lamcap.kernels.gaussian.GENERATOR); 'none': no instance behind the record.
GENERATORS = ("none", "splitmix64-erfcinv-v1")
# How the fused loss walked the competitors (lamcap.kernels.competitors.SourcePlan); 'none': no fused loss
# (hebbian, lp), or no record of it.
PLAN_MODES = ("none", "materialize", "regenerate")


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
    peak_bytes: int  # peak memory of the solve (CUDA: allocator peak; CPU: resident high-water mark over its start, reset per probe); sharded: the largest shard's
    device: str  # device type the instance was generated and solved on: 'cpu' or 'cuda'
    target_mean: float  # normalised target scores: (s - mean_off) / sigma_off
    target_var: float
    offtarget_mean: float
    offtarget_var: float
    generator: str = "none"  # one of GENERATORS: what generated the instance
    mode: str = "none"  # one of PLAN_MODES: the resolved competitor mode of the fused loss
    chunk_rows: int = 0  # inputs per chunk of the fused loss (0: no fused loss)
    chunk_cols: int = 0  # competitors per chunk of the fused loss (0: no fused loss)
    target_hist: list[int] = field(default_factory=list)  # counts on lamcap.kernels.verify.HIST_EDGES
    offtarget_hist: list[int] = field(default_factory=list)
    singular_values: list[float] = field(default_factory=list)  # of W, descending, length d
    # input mu = 0 alone (lamcap.kernels.input_scores; in every instance of a seed): its normalised
    # target score, and its p - 1 normalised competitor scores counted on HIST_EDGES
    input_target_score: float = float("nan")
    input_competitor_hist: list[int] = field(default_factory=list)
    # CPU time of the solving process over the solve: on a CPU device what a free core takes, where
    # wall_seconds also counts the time other processes held it (on CUDA: the host's share only)
    cpu_seconds: float = float("nan")
    # lp only (NaN for other solvers): the optimal max-margin t* of lamcap.kernels.solvers.lp over sigma_off
    # of the optimal W, i.e. in the units of min_margin; 0 when UNSAT (t* = 0: no W separates strictly)
    lp_margin: float = math.nan
    shards: int = 1  # processes (devices) the probe's rows were split over (lamcap.kernels.sharding)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")
        if self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r}")
        if self.mode not in PLAN_MODES:
            raise ValueError(f"unknown plan mode {self.mode!r}")

    def as_record(self) -> dict:
        return asdict(self)

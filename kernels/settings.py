"""Solver settings and the solvers' size limits: plain values with defaults, recorded with every result (torch-free)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from lamcap.errors import InvalidInput
from lamcap.kernels.vocabulary import MATMUL_PRECISIONS, MODES, STORAGE_DTYPES

LP_MAX_D = 36  # the lp oracle's largest d: near-threshold probes finish in < 10 CPU minutes up to here
LP_MAX_P = 2000  # the lp oracle's largest p: every round scans all p (p - 1) pairs
# Steps between two reads of the stopping rule on a GPU, when check_every is None: a read makes the host wait for
# the GPU, and at most this many steps are taken past the one training stops at (and thrown away).
GPU_CHECK_EVERY = 32


@dataclass(frozen=True)
class SolverSettings:
    """Adam protocol and loss-streaming settings (hebbian and lp ignore the Adam ones).

    Defaults (see lamcap.kernels.solvers.adam for the experiment that chose them):
    lr = 1.0, max_steps = 2000, warmup_frac = 0.05.
    check_every: Adam steps between two host reads of the stopping rule (None: 1 on a CPU, where a read costs
    nothing, GPU_CHECK_EVERY on a GPU); any value gives the same record (lamcap.kernels.solvers.stopping).
    matmul_precision: of the fused loss's score and gradient products on a GPU ('highest', 'tf32', 'bf16x3'; DP's
    float32 GEMVs stay 'highest' under 'bf16x3'); a CPU computes 'highest' whatever is asked, and each probe
    records the precision it used (lamcap.kernels.products).
    """

    lr: float = 1.0
    max_steps: int = 2000
    warmup_frac: float = 0.05
    mode: str = "auto"
    memory_budget_bytes: int | None = None
    storage_dtype: str = "float32"
    check_every: int | None = None
    matmul_precision: str = "highest"

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InvalidInput("; ".join(problems))

    def problems(self) -> list[str]:
        """Every bad value, each message naming it."""
        out = []
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) \
                or not (math.isfinite(self.lr) and self.lr > 0):
            out.append(f"lr={self.lr!r} must be a positive finite number")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1:
            out.append(f"max_steps={self.max_steps!r} must be an integer >= 1")
        if isinstance(self.warmup_frac, bool) or not isinstance(self.warmup_frac, (int, float)) \
                or not 0.0 <= self.warmup_frac < 1.0:
            out.append(f"warmup_frac={self.warmup_frac!r} must be a number in [0, 1)")
        if self.mode not in MODES:
            out.append(f"unknown mode {self.mode!r}; expected one of {MODES}")
        budget = self.memory_budget_bytes
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
            out.append(f"memory_budget_bytes={budget!r} must be a positive integer or None")
        if self.storage_dtype not in STORAGE_DTYPES:
            out.append(f"unknown storage_dtype {self.storage_dtype!r}; expected one of {STORAGE_DTYPES}")
        every = self.check_every
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            out.append(f"check_every={every!r} must be a positive integer or None")
        if self.matmul_precision not in MATMUL_PRECISIONS:
            out.append(f"unknown matmul_precision {self.matmul_precision!r}; expected one of {MATMUL_PRECISIONS}")
        return out

"""What one solved and verified instance reports: the kernel half of a probe record, declared once.

Every field of `Outcome` carries its store declaration in its metadata (`recorded`): units, description,
storage dtype, categories and the value a record without an instance holds (a probe that raised). The
store's schema (lamcap.store.schema) is built from these declarations; nothing repeats them.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

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
# How probes are computed, as one name: bumped (appended here) by any change that can alter the record of the same
# probe with the same settings (the training protocol or its stopping rule, the generator, the verification, the
# precision of a product). A store holds the probes of one kernel: a resume by another is refused.
KERNELS = ("none", "2026.12-1")
KERNEL = KERNELS[-1]
# The kernel of a store written before kernels were named (lamcap 0.1), from the generator its probes name: the
# splitmix64 generator's probes were computed as kernel 2026.12-1 computes them.
KERNEL_OF_GENERATOR = {"splitmix64-erfcinv-v1": "2026.12-1"}
# How the fused loss walked the competitors (lamcap.kernels.competitors.SourcePlan); 'none': no fused loss
# (hebbian, lp), or no record of it.
PLAN_MODES = ("none", "materialize", "regenerate")
# What the fused loss's products read and at which precision (SourcePlan.storage, .precision); 'none': no fused loss.
PLAN_STORAGES = ("none", "float32", "bfloat16")
PLAN_PRECISIONS = ("none", "highest", "tf32", "bf16x3")
# normalised-score bins of every histogram; outside values go to the end bins
HIST_EDGES = np.linspace(-10.0, 20.0, 121)
N_BINS = len(HIST_EDGES) - 1
_REQUIRED = object()  # `recorded` without a default: a required field


def recorded(units: str, description: str, dtype: str, *, missing: Any = None, categories: tuple[str, ...] = (),
             columns: str | None = None, default: Any = _REQUIRED) -> Any:
    """A dataclass field declared for the store: `dtype` a numpy code ('?', 'i1' for a category, 'i8', 'f8'),
    `columns` the second dimension of a 2-D field, `missing` what a record without an instance holds (default:
    the dtype's fill), `default` the field's default in Outcome (none: required)."""
    meta = {"units": units, "description": description, "dtype": dtype, "categories": categories,
            "columns": columns, "missing": missing}
    if default is _REQUIRED:
        return field(metadata=meta)
    if isinstance(default, list):
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Outcome:
    """Result of ``lamcap.kernels.solvers.solve``; every field is a plain Python value."""

    sat: bool = recorded("1", "every association stored (float64 verification)", "?", missing=False)
    n_violations: int = recorded("1", "associations not stored", "i8", missing=-1)
    accuracy: float = recorded("1", "fraction of associations stored", "f8")
    min_margin: float = recorded("sigma_off", "min over mu of target minus best competitor score, normalised", "f8")
    final_loss: float = recorded("nats", "mean cross-entropy of the returned W", "f8")
    steps: int = recorded("1", "optimiser steps (adam), LP rounds (lp), 0 (hebbian)", "i8", missing=0)
    status: str = recorded("1", "how the solve ended", "i1", categories=STATUSES, missing="error")
    wall_seconds: float = recorded("s", "wall time of the solve on its actor", "f8")
    peak_bytes: int = recorded("bytes", "peak memory of the solve on its device (CUDA: allocator peak; CPU: resident "
                               "high-water mark over its start); sharded: the largest shard's", "i8", missing=0)
    device: str = recorded("1", "device type the instance was generated and solved on", "i1",
                           categories=("cpu", "cuda"))
    target_mean: float = recorded("sigma_off", "mean normalised target score", "f8")
    target_var: float = recorded("sigma_off^2", "variance of normalised target scores", "f8")
    offtarget_mean: float = recorded("sigma_off", "mean normalised competitor score", "f8")
    offtarget_var: float = recorded("sigma_off^2", "variance of normalised competitor scores", "f8")
    generator: str = recorded("1", "what generated the instance (lamcap.kernels.gaussian.GENERATOR); none: no "
                              "instance", "i1", categories=GENERATORS, default="none")
    mode: str = recorded("1", "competitor mode of the fused loss (materialize or regenerate); none: hebbian, lp, "
                         "error", "i1", categories=PLAN_MODES, default="none")
    chunk_rows: int = recorded("1", "inputs per chunk of the fused loss; 0: no fused loss", "i8", default=0)
    chunk_cols: int = recorded("1", "competitors per chunk of the fused loss; 0: no fused loss", "i8", default=0)
    target_hist: list[int] = recorded("count", "normalised target scores per score bin", "i8", columns="score_bin",
                                      default=[])
    offtarget_hist: list[int] = recorded("count", "normalised competitor scores per score bin", "i8",
                                         columns="score_bin", default=[])
    singular_values: list[float] = recorded("1", "singular values of W, descending, NaN-padded to the sweep's "
                                            "largest d", "f8", columns="sv_index", default=[])
    input_target_score: float = recorded("sigma_off", "normalised target score of input mu = 0 (in every p of a "
                                         "seed: disorder nests)", "f8", default=math.nan)
    input_competitor_hist: list[int] = recorded("count", "input mu = 0's p - 1 normalised competitor scores per "
                                                "score bin", "i8", columns="score_bin", default=[])
    cpu_seconds: float = recorded("s", "CPU time of the solving process over the solve (a CPU device: what a free "
                                  "core takes; wall_seconds also counts waits for a busy machine's cores)", "f8",
                                  default=math.nan)
    lp_margin: float = recorded("sigma_off", "lp only (NaN otherwise): optimal margin t* of max t s.t. "
                                "s[mu,mu] - s[mu,nu] >= t for all nu != mu, -1 <= W_ij <= 1, divided by sigma_off "
                                "of that optimal W; 0 when UNSAT", "f8", default=math.nan)
    shards: int = recorded("1", "devices the probe's inputs were split over (a gang of actors); 1: one device",
                           "i8", missing=1, default=1)
    storage_dtype: str = recorded("1", "what the fused loss's products read: float32, or the materialised bfloat16 "
                                  "competitors (storage_dtype bfloat16, or auto where float32 did not fit); none: "
                                  "hebbian, lp, error", "i1", categories=PLAN_STORAGES, default="none")
    matmul_precision: str = recorded("1", "precision of the fused loss's score and gradient products: highest "
                                     "(float32; every CPU), tf32 or bf16x3 (GPU tensor cores); none: hebbian, lp, "
                                     "error", "i1", categories=PLAN_PRECISIONS, default="none")
    memory_share: float = recorded("1", "share of its device's memory the probe planned and ran with: 1 for a device "
                                   "of its own, 1/K when K actors shared a GPU (lamcap.kernels.device_share)", "f8",
                                   missing=1.0, default=1.0)
    kernel: str = recorded("1", "how the probe was computed (lamcap.kernels.outcome.KERNEL, bumped by any change "
                           "that can alter a record); none: not recorded (a probe that raised, or a store written "
                           "before kernels were named)", "i1", categories=KERNELS, missing="none", default="none")

    def __post_init__(self) -> None:
        for f in fields(self):
            categories = f.metadata["categories"]
            if categories and getattr(self, f.name) not in categories:
                raise ValueError(f"unknown {f.name} {getattr(self, f.name)!r}; expected one of {categories}")

    def as_record(self) -> dict:
        return asdict(self)

"""One input's own view of a weight matrix: its target score against its p - 1 competitors (Fig. A.2).

Input mu = 0 is part of every instance of a seed (the disorder nests in p, and so does each
input's competitor list), so the same input, with the same first competitors, can be followed as
the load grows. Scores are float64 and normalised as the verification's are,
u = (s - mean_off) / sigma_off, with the instance-wide off-target mean and standard deviation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lamcap.kernels.disorder import Instance
from lamcap.kernels.outcome import HIST_EDGES

INPUT = 0  # the input followed across loads


@dataclass(frozen=True)
class InputScores:
    """Input 0's normalised target score and the counts of its p - 1 competitors' on HIST_EDGES."""

    target: float
    competitor_hist: np.ndarray  # int64, len(HIST_EDGES) - 1; values outside the edges in the end bins


def raw_scores(instance: Instance, w: torch.Tensor) -> torch.Tensor:
    """s[0, nu] = y^0_nu . W x_0 for nu = 0 .. p - 1 (nu = 0 is the target), float64."""
    w = w.detach().to(device=instance.device, dtype=torch.float64)
    z = w @ instance.inputs[INPUT].double()
    if instance.problem == "op":
        outputs = instance.shared_outputs.double()
    else:
        outputs = instance.competitors(INPUT, INPUT + 1)[0].double()
    return outputs @ z


def input_scores(instance: Instance, w: torch.Tensor, mean_off: float, sigma_off: float) -> InputScores:
    """Input 0's scores, normalised by the instance's off-target statistics (NaN and no counts when undefined)."""
    n_bins = len(HIST_EDGES) - 1
    if not (math.isfinite(mean_off) and math.isfinite(sigma_off) and sigma_off > 0):
        return InputScores(math.nan, np.zeros(n_bins, dtype=np.int64))
    u = ((raw_scores(instance, w) - mean_off) / sigma_off).cpu().numpy()
    if not np.all(np.isfinite(u)):
        return InputScores(math.nan, np.zeros(n_bins, dtype=np.int64))
    counts, _ = np.histogram(np.clip(u[1:], HIST_EDGES[0], HIST_EDGES[-1]), HIST_EDGES)
    return InputScores(float(u[0]), counts.astype(np.int64))

"""The Hebbian rule (docs/THEORY.md 3.5): closed form, no training."""
from __future__ import annotations

import torch

from lamcap.kernels.disorder import Instance
from lamcap.kernels.weights import hebbian


def solve_hebbian(instance: Instance, rank: int) -> torch.Tensor:
    """W_H = sum_mu y_target_mu x_mu^T; for rank < d, its best rank-r (truncated SVD) approximation."""
    return hebbian(instance, rank)

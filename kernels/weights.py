"""Initial and closed-form weights: full rank, two-layer rank r, Hebbian."""
from __future__ import annotations

import torch

from lamcap.kernels.disorder import Instance, block_seed

STREAM_WEIGHTS = 101  # disorder.py uses streams 1-3; weights get their own


def weight_generator(seed: int, rank: int, d: int) -> torch.Generator:
    """A CPU generator for the initial weights of (seed, rank, d), independent of the disorder."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(block_seed(seed, STREAM_WEIGHTS, rank, d))
    return gen


def init_full(d: int, gen: torch.Generator) -> torch.Tensor:
    """W (d x d) with i.i.d. N(0, 1/d) entries, float32 on the CPU."""
    return torch.randn((d, d), generator=gen, dtype=torch.float32) / d**0.5


def init_two_layer(d: int, rank: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A (d x r) and B (r x d) with i.i.d. N(0, s^2) entries, s = (r d)^(-1/4).

    Both factors share one scale s; Var[(AB)_ij] = r s^4 = 1/d, so W = A B starts
    with entries of variance 1/d like the full-rank W (at r = d, s^2 = 1/d).
    """
    scale = (rank * d) ** -0.25
    a = torch.randn((d, rank), generator=gen, dtype=torch.float32) * scale
    b = torch.randn((rank, d), generator=gen, dtype=torch.float32) * scale
    return a, b


def hebbian(instance: Instance, rank: int | None = None) -> torch.Tensor:
    """W_H = sum_mu y_target_mu x_mu^T (float64); for rank < d its best rank-r approximation."""
    w = instance.targets.double().T @ instance.inputs.double()
    if rank is None or rank >= instance.d:
        return w
    u, s, vh = torch.linalg.svd(w)
    return (u[:, :rank] * s[:rank]) @ vh[:rank]

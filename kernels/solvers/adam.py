"""The paper's training protocol (THEORY.md 2), as one function top to bottom.

Full batch cross-entropy over each input's p candidates, Adam, a linear warm-up
over the first warmup_frac of max_steps, then cosine decay of the learning rate
to 0 at max_steps. The fused loss reports the fp32 count of stored associations
every step; when it reaches p, an exact float64 count must agree before training
stops (fp32 ties are not stores), otherwise training goes on. Full rank trains W
itself; rank r < d trains the two factors of W = A B.

Defaults (kernels.solvers.settings.SolverSettings): lr = 0.05, max_steps = 2000,
warmup_frac = 0.05. Chosen by the experiment in the closing report of issue 2
(`benchmarks/adam_defaults.py`-style sweep, 3 seeds per point, CPU): at
alpha = 0.4 every run for d = 8, 16, 32, both problems, reached SAT in well under
the budget; at d = 8 full-rank OP/DP the largest p reached is about 85-90% of the
LP capacity's p. Larger lr (0.2+) stores faster at low load but loses capacity
near the transition; smaller (0.01) needs more steps than the budget near it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kernels.competitors import make_source
from kernels.disorder import Instance
from kernels.fused_loss import fused_loss
from kernels.solvers.settings import SolverSettings
from kernels.verify import count_stored
from kernels.weights import init_full, init_two_layer, weight_generator


@dataclass(frozen=True)
class Trained:
    """What training returns: the weights, optimiser steps taken, and why it stopped."""

    w: torch.Tensor
    steps: int
    status: str  # 'converged', 'max_steps' or 'diverged'


def learning_rate(step: int, settings: SolverSettings) -> float:
    """Linear warm-up to settings.lr, then cosine decay to 0 at max_steps."""
    warmup = int(settings.warmup_frac * settings.max_steps)
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, settings.max_steps - warmup)
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_adam(instance: Instance, rank: int, settings: SolverSettings) -> Trained:
    """Train W (rank == d) or A, B (rank < d) on the instance with the paper's protocol."""
    d, p, device = instance.d, instance.p, instance.device
    gen = weight_generator(instance.spec.seed, rank, d)
    if rank == d:
        params = [init_full(d, gen).to(device).requires_grad_()]
        weight = lambda: params[0]  # noqa: E731
    else:
        params = [t.to(device).requires_grad_() for t in init_two_layer(d, rank, gen)]
        weight = lambda: params[0] @ params[1]  # noqa: E731
    source = make_source(
        instance,
        settings.mode,
        memory_budget_bytes=settings.memory_budget_bytes,
        storage_dtype=getattr(torch, settings.storage_dtype),
    )
    x = instance.inputs
    optimizer = torch.optim.Adam(params, lr=settings.lr)
    for step in range(settings.max_steps):
        w = weight()
        loss, n_stored = fused_loss(x @ w.T, source)
        if not torch.isfinite(loss):
            return Trained(w.detach(), step, "diverged")
        if int(n_stored) == p and count_stored(instance, w) == p:
            return Trained(w.detach(), step, "converged")
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    w = weight().detach()
    status = "max_steps" if torch.isfinite(w).all() else "diverged"
    return Trained(w, settings.max_steps, status)

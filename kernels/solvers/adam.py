"""The paper's training protocol (docs/THEORY.md 2), as one function top to bottom.

Full batch cross-entropy over each input's p candidates, Adam, a linear warm-up
over the first warmup_frac of max_steps, then cosine decay of the learning rate
to 0 at max_steps. The fused loss reports the fp32 count of stored associations
every step; when it reaches p, an exact float64 count must agree before training
stops (fp32 ties are not stores), otherwise training goes on. Full rank trains W
itself; rank r < d trains the two factors of W = A B.

Defaults (lamcap.kernels.settings.SolverSettings): lr = 1.0, max_steps = 2000,
warmup_frac = 0.05. The solutions form a cone, so a large step only grows |W| and the
learning rate mostly sets how fast the direction moves. Measured with `lamcap sweep`
(full rank, 6 seeds per cell, per-seed p* of adam over the exact LP's p* on the same
instances, d = 8 and 12, OP and DP): lr 0.01 -> 0.83, 0.05 -> 0.92, 0.2 -> 0.96,
0.5 -> 0.97, 1.0 -> 0.985, with no divergence and no non-monotone seed; median steps of
converged probes 396 at lr 0.05, 111 at lr 1.0. At rho = 0.5 the lr barely matters
(p*(1.0) / p*(0.05) = 1.00); at OP d = 32 and 64 lr 1.0 gave alpha* 0.946 and 0.899
against 0.919 and 0.883 at lr 0.05 (finite-size theory 0.930, 0.877).

Sharded (lamcap.kernels.sharding), each shard walks its rows' competitors; one all-reduce per step
sums dL/dW (d x d, float64; the factors' gradients of W = A B follow from it on every shard), the
loss and the fp32 count. Every shard then takes the same Adam step from the same sums, so W and the
optimiser state stay replicated, and every stopping decision is taken on reduced values by every
shard alike. The gradient is computed before the stopping checks, so that one collective per step
carries all three. dL/dW is accumulated in float64 sharded or not: Adam divides by the gradient's
running scale per entry, so float32 rounding in near-zero entries grew into W differences of 1e-4
after 30 steps between orders of summation; in float64 sharded and unsharded W agree to ~1e-7.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lamcap.kernels.competitors import SourcePlan, make_source
from lamcap.kernels.disorder import Instance
from lamcap.kernels.fused_loss import fused_loss
from lamcap.kernels.sharding import SOLO, Collective
from lamcap.kernels.settings import SolverSettings
from lamcap.kernels.verify import count_stored
from lamcap.kernels.weights import init_full, init_two_layer, weight_generator


@dataclass(frozen=True)
class Trained:
    """What training returns: the weights, optimiser steps taken, and why it stopped."""

    w: torch.Tensor
    steps: int
    status: str  # 'converged', 'max_steps' or 'diverged'
    plan: SourcePlan  # how the fused loss walked the competitors


def learning_rate(step: int, settings: SolverSettings) -> float:
    """Linear warm-up to settings.lr, then cosine decay to 0 at max_steps."""
    warmup = int(settings.warmup_frac * settings.max_steps)
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, settings.max_steps - warmup)
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _step_gradient(x: torch.Tensor, x64: torch.Tensor, w: torch.Tensor, source, collective: Collective,
                   ) -> tuple[float, int, torch.Tensor]:
    """(loss, fp32 count of stored rows, dL/dW) of one step, summed over the shards in one collective.

    dL/dW = dL/dZ^T X is accumulated in float64 (dL/dZ from the fused loss, per row, the same however the
    rows are split), so that the shards' partial sums add up to the unsharded gradient up to float64
    rounding: cast to float32, the step is then almost always bit for bit the unsharded one.
    """
    z = (x @ w.detach().T).requires_grad_()
    loss, n_stored = fused_loss(z, source)
    loss.backward()
    grad = z.grad.double().T @ x64
    if collective.size == 1:
        return float(loss.detach()), int(n_stored), grad.float()
    summed = collective.sum_(torch.cat([grad.reshape(-1), loss.detach().double().reshape(1),
                                        n_stored.double().reshape(1)]))
    total_loss, total_stored = summed[-2:].tolist()
    return total_loss, round(total_stored), summed[:-2].view_as(grad).float()


def train_adam(instance: Instance, rank: int, settings: SolverSettings, collective: Collective = SOLO) -> Trained:
    """Train W (rank == d) or A, B (rank < d) on the instance with the paper's protocol (sharded: on the
    collective's shard of the rows; every shard returns the same W)."""
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
        shard=collective.shard,
    )
    row0, row1 = collective.shard.rows(p)
    x = instance.inputs[row0:row1]
    x64 = x.double()
    optimizer = torch.optim.Adam(params, lr=settings.lr)
    for step in range(settings.max_steps):
        w = weight()
        total_loss, total_stored, grad_w = _step_gradient(x, x64, w, source, collective)
        if not math.isfinite(total_loss):  # a diverged run stores nothing: its W is NaN, verification says UNSAT
            return Trained(torch.full_like(w.detach(), float("nan")), step, "diverged", source.plan)
        if total_stored == p and count_stored(instance, w, collective) == p:
            return Trained(w.detach(), step, "converged", source.plan)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        optimizer.zero_grad(set_to_none=True)
        w.backward(grad_w)  # into W itself, or through W = A B into both factors
        optimizer.step()
    w = weight().detach()
    if not torch.isfinite(w).all():
        return Trained(torch.full_like(w, float("nan")), settings.max_steps, "diverged", source.plan)
    return Trained(w, settings.max_steps, "max_steps", source.plan)

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

The host reads the stopping rule's values every k steps (lamcap.kernels.solvers.stopping), with the record
of a per-step read. On a GPU Adam runs fused (its step counter on the device, one kernel per update): no
step reads the device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lamcap.kernels.competitors import CompetitorSource, SourcePlan, make_source
from lamcap.kernels.disorder import Instance
from lamcap.kernels.fused_loss import fused_loss
from lamcap.kernels.scores import Scores
from lamcap.kernels.settings import SolverSettings
from lamcap.kernels.sharding import SOLO, Collective
from lamcap.kernels.solvers.stopping import Window, check_interval
from lamcap.kernels.verify import exact_count
from lamcap.kernels.weights import init_full, init_two_layer, weight_generator


@dataclass(frozen=True)
class Trained:
    """What training returns: the weights, optimiser steps taken, and why it stopped."""

    w: torch.Tensor
    steps: int
    status: str  # 'converged', 'max_steps' or 'diverged'
    plan: SourcePlan  # how the fused loss walked the competitors
    refused: int = 0  # steps whose float32 count said all stored and the float64 count did not
    scores: Scores | None = None  # the float64 scores of a converged W (its count's), for verification
    source: CompetitorSource | None = None  # the competitors trained on (verification reads float32 ones)


def learning_rate(step: int, settings: SolverSettings) -> float:
    """Linear warm-up to settings.lr, then cosine decay to 0 at max_steps."""
    warmup = int(settings.warmup_frac * settings.max_steps)
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, settings.max_steps - warmup)
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


FUSED_DEVICES = ("cuda",)  # device types whose Adam runs fused: one kernel per update, its step on the device


def make_optimizer(params: list[torch.Tensor], settings: SolverSettings, device: torch.device) -> torch.optim.Adam:
    """Adam; fused on FUSED_DEVICES (the CPU keeps torch's default loop, which defines its records)."""
    if device.type in FUSED_DEVICES:
        return torch.optim.Adam(params, lr=settings.lr, fused=True)
    return torch.optim.Adam(params, lr=settings.lr)


def _step_gradient(x: torch.Tensor, x64: torch.Tensor, w: torch.Tensor, source, collective: Collective,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, fp32 count of stored rows, dL/dW) of one step, summed over the shards in one collective; 0-dim
    device tensors, never read here.

    dL/dW = dL/dZ^T X is accumulated in float64 (dL/dZ from the fused loss, per row, the same however the
    rows are split), so that the shards' partial sums add up to the unsharded gradient up to float64
    rounding: cast to float32, the step is then almost always bit for bit the unsharded one.
    """
    z = (x @ w.detach().T).requires_grad_()
    loss, n_stored = fused_loss(z, source)
    loss.backward()
    grad = z.grad.double().T @ x64
    if collective.size == 1:
        return loss.detach(), n_stored, grad.float()
    summed = collective.sum_(torch.cat([grad.reshape(-1), loss.detach().double().reshape(1),
                                        n_stored.double().reshape(1)]))
    return summed[-2], summed[-1], summed[:-2].view_as(grad).float()


class _Run:
    """One training run's state: the parameters (W, or A and B of W = A B), Adam, the competitors, the inputs."""

    def __init__(self, instance: Instance, rank: int, settings: SolverSettings, collective: Collective) -> None:
        d, device = instance.d, instance.device
        gen = weight_generator(instance.spec.seed, rank, d)
        inits = [init_full(d, gen)] if rank == d else list(init_two_layer(d, rank, gen))
        self.params = [t.to(device).requires_grad_() for t in inits]
        self.settings, self.collective = settings, collective
        self.source = make_source(instance, settings.mode, memory_budget_bytes=settings.memory_budget_bytes,
                                  storage_dtype=settings.storage_dtype, shard=collective.shard,
                                  precision=settings.matmul_precision)
        row0, row1 = collective.shard.rows(instance.p)
        self.x = instance.inputs[row0:row1]
        self.x64 = self.x.double()
        self.optimizer = make_optimizer(self.params, settings, device)

    def weight(self) -> torch.Tensor:
        return self.params[0] if len(self.params) == 1 else self.params[0] @ self.params[1]

    def gradient(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _step_gradient(self.x, self.x64, w, self.source, self.collective)

    def advance(self, step: int, w: torch.Tensor, grad_w: torch.Tensor) -> None:
        """Adam's update of `step` from dL/dW (into W itself, or through W = A B into both factors)."""
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(step, self.settings)
        self.optimizer.zero_grad(set_to_none=True)
        w.backward(grad_w)
        self.optimizer.step()

    def snapshot(self) -> tuple[list[torch.Tensor], list[dict]]:
        """The parameters and Adam's state, copied (to replay steps from here)."""
        state = [{k: v.clone() for k, v in self.optimizer.state[p].items()} for p in self.params]
        return [p.detach().clone() for p in self.params], state

    def restore(self, saved: tuple[list[torch.Tensor], list[dict]]) -> None:
        values, state = saved
        with torch.no_grad():
            for p, v, s in zip(self.params, values, state):
                p.copy_(v)
                self.optimizer.state[p] = {k: t.clone() for k, t in s.items()}

    def replay(self, start: int, stop: int) -> torch.Tensor:
        """From the state at step `start`, take the updates of steps start..stop-1; W of step `stop`."""
        for step in range(start, stop):
            w = self.weight()
            self.advance(step, w, self.gradient(w)[2])
        return self.weight()


def _resolve(run: _Run, instance: Instance, window: Window, saved, start: int,
             refused: int) -> tuple[Trained | None, int, bool]:
    """The per-step rule over the window's events, in step order: (Trained if training ends in the window, the
    float64 refusals so far, whether the state was replayed; then it stands at the window's last step)."""
    cursor = None  # the replay's step once the state was restored to the window's start
    for n, event in enumerate(window.read()):
        step = start + event.index
        if event.kind == "diverged":  # a diverged run stores nothing: its W is NaN, verification says UNSAT
            return Trained(torch.full_like(window.kept, float("nan")), step, "diverged", run.source.plan,
                           refused), refused, cursor is not None
        if n == 0:
            w = window.kept
        else:  # a second candidate: reach its W by replaying the window
            if cursor is None:
                run.restore(saved)
                cursor = start
            w = run.replay(cursor, step).detach()
            cursor = step
        count, scores = exact_count(instance, w, run.collective, run.source)
        if count == instance.p:
            return (Trained(w, step, "converged", run.source.plan, refused, scores, run.source), refused,
                    cursor is not None)
        refused += 1
    if cursor is not None:
        run.replay(cursor, start + window.steps - 1)
    return None, refused, cursor is not None


def train_adam(instance: Instance, rank: int, settings: SolverSettings, collective: Collective = SOLO) -> Trained:
    """Train W (rank == d) or A, B (rank < d) on the instance with the paper's protocol (sharded: on the
    collective's shard of the rows; every shard returns the same W)."""
    run = _Run(instance, rank, settings, collective)
    every, step, refused = check_interval(settings, instance.device.type), 0, 0
    while step < settings.max_steps:
        start, size = step, min(every, settings.max_steps - step)
        saved = run.snapshot() if size > 1 else None
        window = Window(size, instance.p, instance.device)
        for step in range(start, start + size):
            w = run.weight()
            loss, stored, grad_w = run.gradient(w)
            window.record(loss, stored, w)
            if step < start + size - 1:  # the window's last update waits for its read
                run.advance(step, w, grad_w)
        ended, refused, replayed = _resolve(run, instance, window, saved, start, refused)
        if ended is not None:
            return ended
        if replayed:
            w = run.weight()  # the replay left the state at the window's last step: rebuild its W's graph
        run.advance(step, w, grad_w)
        step += 1
    w = run.weight().detach()
    if not torch.isfinite(w).all():
        return Trained(torch.full_like(w, float("nan")), settings.max_steps, "diverged", run.source.plan, refused)
    return Trained(w, settings.max_steps, "max_steps", run.source.plan, refused, source=run.source)

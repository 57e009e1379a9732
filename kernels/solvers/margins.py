"""Every pair's margin s[mu,mu] - s[mu,nu] of a W, for the LP oracle: the float64 scan and a warm start.

The instance's outputs are held once (OP: the shared (p, d) outputs; DP: the (p, p, d) competitors
in float32, at most LP_MAX_P^2 d floats), so that the constraint-generation rounds and the warm
start do not regenerate them.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from lamcap.kernels.disorder import Instance
from lamcap.kernels.weights import hebbian

BLOCK_BYTES = 1 << 25  # float64 bytes of competitors per scanned block
WARM_STEPS = 200  # Frank-Wolfe steps of the warm start
WARM_MIN_D = 16  # below, the LP is fast from the Hebbian W and the warm start would cost more than it saves
WARM_BETA = 3.0  # soft-min sharpness, in units of 1 / (standard deviation of the margins)


@dataclass(frozen=True)
class Pairs:
    """Selected pairs: input mu, competitor nu, and the row's vector y_mu - y_nu (float64, CPU)."""

    mu: np.ndarray
    nu: np.ndarray
    diff: torch.Tensor  # (n, d)


class PairMargins:
    """The margins of every pair of one instance under any W, streamed in row blocks."""

    def __init__(self, instance: Instance) -> None:
        self.p, self.d = instance.p, instance.d
        self.x = instance.inputs.double().cpu()
        self.targets = instance.targets.double().cpu()
        if instance.problem == "op":
            self._outputs = instance.shared_outputs.double().cpu()
        else:
            self._outputs = instance.materialize().float().cpu().contiguous()
        self._rows = max(1, BLOCK_BYTES // (8 * self.p * self.d))

    def blocks(self, dtype: torch.dtype = torch.float64) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(mu0, mu1, C): competitors of inputs mu0..mu1-1, (p, d) shared for OP, (m, p, d) for DP."""
        for mu0 in range(0, self.p, self._rows):
            mu1 = min(mu0 + self._rows, self.p)
            c = self._outputs if self._outputs.dim() == 2 else self._outputs[mu0:mu1]
            yield mu0, mu1, c.to(dtype)

    def _margins(self, z: torch.Tensor, target: torch.Tensor, mu0: int, mu1: int, c: torch.Tensor) -> torch.Tensor:
        """Block of margins target[mu] - z_mu . y^mu_nu, +inf on the diagonal nu = mu."""
        zb = z[mu0:mu1]
        scores = zb @ c.T if c.dim() == 2 else torch.einsum("mnd,md->mn", c, zb)
        margin = target[mu0:mu1, None] - scores
        margin[torch.arange(mu1 - mu0), torch.arange(mu0, mu1)] = math.inf
        return margin

    def scan(self, w: torch.Tensor, k: int, below: float) -> tuple[Pairs, float, int]:
        """In float64: the k smallest-margin pairs of each row among those with margin < `below`,
        the smallest margin of all, and how many pairs lie below `below`."""
        z = self.x @ w.double().T  # z_mu = W x_mu
        target = (self.targets * z).sum(dim=1)
        picked_mu, picked_nu, picked_diff = [], [], []
        lowest, n_below = math.inf, 0
        for mu0, mu1, c in self.blocks():
            margin = self._margins(z, target, mu0, mu1, c)
            lowest = min(lowest, float(margin.min()))
            n_below += int((margin < below).sum())
            vals, nu = margin.topk(min(k, self.p - 1), dim=1, largest=False)
            keep = vals < below
            mu = torch.arange(mu0, mu1)[:, None].expand_as(nu)[keep]
            nu = nu[keep]
            y_nu = c[nu] if c.dim() == 2 else c[mu - mu0, nu]
            picked_mu.append(mu)
            picked_nu.append(nu)
            picked_diff.append(self.targets[mu] - y_nu)
        pairs = Pairs(torch.cat(picked_mu).numpy(), torch.cat(picked_nu).numpy(), torch.cat(picked_diff))
        return pairs, lowest, n_below

    def warm_start(self, instance: Instance, steps: int | None = None, beta: float = WARM_BETA) -> torch.Tensor:
        """A W in the box [-1, 1] with a large smallest margin: Frank-Wolfe on the soft-min of all margins.

        Only the first subset of constraints comes from it (its smallest-margin pairs), so it needs
        no accuracy: 200 steps from the Hebbian W cut the LP's rounds and rows (benchmarks/lp.py).
        """
        steps = (WARM_STEPS if self.d >= WARM_MIN_D else 0) if steps is None else steps
        w = hebbian(instance).double().cpu()
        w = (w / w.abs().max()).float()
        x, targets = self.x.float(), self.targets.float()
        for step in range(steps):
            z = x @ w.T
            target = (targets * z).sum(dim=1)
            blocks = [(mu0, mu1, c, self._margins(z, target, mu0, mu1, c))
                      for mu0, mu1, c in self.blocks(torch.float32)]
            finite = torch.cat([m[torch.isfinite(m)] for *_, m in blocks])
            sharpness, ref = beta / max(float(finite.std()), 1e-30), float(finite.min())
            g = torch.zeros_like(targets)  # G_mu = sum_nu pi (y_mu - y_nu): the soft-min's gradient is G^T X
            for mu0, mu1, c, m in blocks:
                pi = torch.exp(-sharpness * (m - ref))
                competitors = pi @ c if c.dim() == 2 else torch.einsum("mn,mnd->md", pi, c)
                g[mu0:mu1] = pi.sum(dim=1, keepdim=True) * targets[mu0:mu1] - competitors
            gamma = 2.0 / (step + 3)
            w = (1 - gamma) * w + gamma * torch.sign(g.T @ x)  # the box's vertex that maximises the linearisation
        return w.double()

"""Exact verification of a weight matrix: a streaming float64 pass over the instance.

SAT is decided here and only here: association mu is stored when its target score
beats every competitor strictly, s[mu, mu] > max_{nu != mu} s[mu, nu].

Scores are normalised as (s - mean_off) / sigma_off, where mean_off and sigma_off
are the mean and the population standard deviation over ALL p (p - 1) off-target
scores. Hence the normalised off-target mean and variance are 0 and 1 up to
rounding; they are reported anyway, as a check. The pass walks the score matrix
twice in blocks (statistics first, then off-target histograms); competitors are
regenerated from the instance, so no p x p x d tensor is ever held.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from lamcap.kernels.disorder import TILE_MU, TILE_NU, Instance

HIST_EDGES = np.linspace(-10.0, 20.0, 121)  # normalised-score bins; outside values go to the end bins
BLOCK_BYTES = 1 << 25  # float64 bytes of competitors per streamed block (32 MiB)


@dataclass(frozen=True)
class Verification:
    """What the float64 pass found for one W."""

    sat: bool
    n_violations: int
    accuracy: float
    min_margin: float  # min_mu (s[mu,mu] - max_{nu!=mu} s[mu,nu]) / sigma_off
    loss: float  # mean cross-entropy (1/p) sum_mu [logsumexp_nu s[mu,nu] - s[mu,mu]]
    target_mean: float
    target_var: float
    offtarget_mean: float
    offtarget_var: float
    target_hist: np.ndarray  # int64 counts on HIST_EDGES
    offtarget_hist: np.ndarray
    singular_values: np.ndarray  # of W, descending, length d
    mean_off: float  # raw (unnormalised) off-target mean and standard deviation
    sigma_off: float


def _blocks(instance: Instance, w: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (mu0, nu0, S) float64 score blocks that tile the whole p x p score matrix."""
    p, d = instance.p, instance.d
    z = instance.inputs.double() @ w.T  # z_mu = W x_mu
    if instance.problem == "op":
        y = instance.shared_outputs.double()
        rows = max(1, BLOCK_BYTES // (8 * p))
        for mu0 in range(0, p, rows):
            yield mu0, 0, z[mu0 : mu0 + rows] @ y.T
        return
    cols = max(TILE_NU, (BLOCK_BYTES // (8 * TILE_MU * d)) // TILE_NU * TILE_NU)
    for mu0 in range(0, p, TILE_MU):
        mu1 = min(mu0 + TILE_MU, p)
        for nu0 in range(0, p, cols):
            c = instance.competitors(mu0, mu1, nu0, min(nu0 + cols, p)).double()
            yield mu0, nu0, torch.einsum("mnd,md->mn", c, z[mu0:mu1])


def _diagonal_mask(mu0: int, nu0: int, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """True where the block entry is a target score (nu == mu)."""
    mu = torch.arange(mu0, mu0 + shape[0], device=device)[:, None]
    nu = torch.arange(nu0, nu0 + shape[1], device=device)[None, :]
    return mu == nu


class _Accumulator:
    """Running float64 statistics of the first pass (Chan's parallel mean/M2 for off-targets)."""

    def __init__(self, p: int, device: torch.device) -> None:
        kw = dict(dtype=torch.float64, device=device)
        self.target = torch.full((p,), float("nan"), **kw)
        self.max_off = torch.full((p,), -math.inf, **kw)
        self.row_max = torch.full((p,), -math.inf, **kw)  # running max of all scores of a row
        self.row_sum = torch.zeros(p, **kw)  # sum exp(s - row_max)
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, mu0: int, nu0: int, s: torch.Tensor) -> None:
        rows = slice(mu0, mu0 + s.shape[0])
        diag = _diagonal_mask(mu0, nu0, s.shape, s.device)
        hit = diag.any(dim=1)
        if hit.any():
            self.target[rows][hit] = s[diag]
        off = s.masked_fill(diag, -math.inf)
        self.max_off[rows] = torch.maximum(self.max_off[rows], off.max(dim=1).values)
        new_max = torch.maximum(self.row_max[rows], s.max(dim=1).values)
        self.row_sum[rows] = self.row_sum[rows] * torch.exp(self.row_max[rows] - new_max) + torch.exp(
            s - new_max[:, None]
        ).sum(dim=1)
        self.row_max[rows] = new_max
        values = s[~diag]
        n_b = values.numel()
        if n_b:
            mean_b = values.mean().item()
            m2_b = ((values - mean_b) ** 2).sum().item()
            n = self.n + n_b
            delta = mean_b - self.mean
            self.mean += delta * n_b / n
            self.m2 += m2_b + delta * delta * self.n * n_b / n
            self.n = n


def _histogram(values: torch.Tensor) -> torch.Tensor:
    """Counts on HIST_EDGES with values outside the range clipped into the end bins (numpy semantics)."""
    edges = torch.as_tensor(HIST_EDGES, dtype=torch.float64, device=values.device)
    idx = torch.bucketize(values, edges, right=True) - 1
    idx = idx.clamp(0, len(HIST_EDGES) - 2)
    return torch.bincount(idx, minlength=len(HIST_EDGES) - 1)


def _offtarget_pass(instance: Instance, w: torch.Tensor, mean: float, sigma: float) -> tuple[np.ndarray, float, float]:
    """Second pass: histogram, mean and variance of the normalised off-target scores."""
    counts = torch.zeros(len(HIST_EDGES) - 1, dtype=torch.int64, device=instance.device)
    n, total, total_sq = 0, 0.0, 0.0
    for mu0, nu0, s in _blocks(instance, w):
        diag = _diagonal_mask(mu0, nu0, s.shape, s.device)
        u = (s[~diag] - mean) / sigma
        counts += _histogram(u)
        n, total, total_sq = n + u.numel(), total + u.sum().item(), total_sq + (u * u).sum().item()
    u_mean = total / n
    return counts.cpu().numpy(), u_mean, total_sq / n - u_mean * u_mean


def _undefined(instance: Instance, w: torch.Tensor) -> Verification:
    """The record for a non-finite W: nothing stored, every statistic NaN."""
    nan = float("nan")
    zeros = np.zeros(len(HIST_EDGES) - 1, dtype=np.int64)
    return Verification(
        False, instance.p, 0.0, nan, nan, nan, nan, nan, nan, zeros, zeros.copy(),
        np.full(instance.d, nan), nan, nan,
    )


def verify(instance: Instance, w: torch.Tensor) -> Verification:
    """Decide SAT for W (d x d) on the instance exactly, in float64, with score statistics."""
    w = w.detach().to(device=instance.device, dtype=torch.float64)
    if not torch.isfinite(w).all():
        return _undefined(instance, w)
    acc = _first_pass(instance, w)
    stored = acc.target > acc.max_off
    n_violations = int((~stored).sum().item())
    loss = (acc.row_max + torch.log(acc.row_sum) - acc.target).mean().item()
    mean_off, sigma_off = acc.mean, math.sqrt(acc.m2 / acc.n)
    svals = torch.linalg.svdvals(w).cpu().numpy()
    if sigma_off == 0.0:
        zeros = np.zeros(len(HIST_EDGES) - 1, dtype=np.int64)
        nan = float("nan")
        return Verification(
            n_violations == 0, n_violations, 1 - n_violations / instance.p, nan, loss,
            nan, nan, nan, nan, zeros, zeros.copy(), svals, mean_off, sigma_off,
        )
    t = (acc.target - mean_off) / sigma_off
    off_hist, off_mean, off_var = _offtarget_pass(instance, w, mean_off, sigma_off)
    return Verification(
        sat=n_violations == 0,
        n_violations=n_violations,
        accuracy=1 - n_violations / instance.p,
        min_margin=((acc.target - acc.max_off) / sigma_off).min().item(),
        loss=loss,
        target_mean=t.mean().item(),
        target_var=t.var(unbiased=False).item(),
        offtarget_mean=off_mean,
        offtarget_var=off_var,
        target_hist=_histogram(t).cpu().numpy(),
        offtarget_hist=off_hist,
        singular_values=svals,
        mean_off=mean_off,
        sigma_off=sigma_off,
    )


def _first_pass(instance: Instance, w: torch.Tensor) -> _Accumulator:
    acc = _Accumulator(instance.p, instance.device)
    for mu0, nu0, s in _blocks(instance, w):
        acc.add(mu0, nu0, s)
    return acc


def count_stored(instance: Instance, w: torch.Tensor) -> int:
    """Number of strictly stored associations of W, float64, one streaming pass."""
    w = w.detach().to(device=instance.device, dtype=torch.float64)
    if not torch.isfinite(w).all():
        return 0
    acc = _first_pass(instance, w)
    return int((acc.target > acc.max_off).sum().item())

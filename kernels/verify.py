"""Exact verification of a weight matrix: a streaming float64 pass over the instance.

SAT is decided here and only here: association mu is stored when its target score
beats every competitor strictly, s[mu, mu] > max_{nu != mu} s[mu, nu].

Scores are normalised as (s - mean_off) / sigma_off, where mean_off and sigma_off
are the mean and the population standard deviation over ALL p (p - 1) off-target
scores. Hence the normalised off-target mean and variance are 0 and 1 up to
rounding; they are reported anyway, as a check. The pass walks the score matrix
twice in blocks (statistics first, then off-target histograms); the blocks are those of
lamcap.kernels.scores.Scores: computed once and held when they fit, the competitors read from a
float32 materialised source or regenerated from the instance, so no p x p x d float64 tensor is
ever held. The stopping rule's float64 count hands its Scores on, so that a converged W's
competitors are read once for the count and both passes.

Every running statistic stays on the device: a block costs a fixed number of kernel launches
(its generation, one float64 GEMV batch, about 25 small reductions and updates) and no
host synchronisation; the host reads the device a fixed number of times per verification
(about ten: after the first pass, for the target statistics, after the second pass).
Blocks are whole rows of competitors: BLOCK_BYTES of float64 on a CPU, 1/32 of a GPU's total
memory (lamcap.kernels.budget.CUDA_CHUNK_DIVISOR) on a GPU.

Sharded (lamcap.kernels.sharding), each shard walks only its rows; the per-row results (target,
best competitor, log-sum-exp parts: O(p) numbers) are gathered to every shard, the off-target
(n, mean, M2) merged in rank order with Chan's formula, and the second pass's histograms and sums
added up. Every shard then computes the same Verification from the same vectors as the unsharded pass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lamcap.kernels.budget import CUDA_CHUNK_DIVISOR
from lamcap.kernels.competitors import CompetitorSource, device_memory_bytes
from lamcap.kernels.disorder import Instance
from lamcap.kernels.outcome import HIST_EDGES
from lamcap.kernels.scores import Scores
from lamcap.kernels.sharding import SOLO, Collective, shard_rows

BLOCK_BYTES = 1 << 25  # float64 bytes of competitors per streamed block on a CPU (32 MiB)
FLOAT64_BYTES = 8


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


def block_elements(device: torch.device) -> int:
    """Competitors per verification block: a pure function of the device type and its total memory."""
    total = device_memory_bytes(device)
    if total is None:
        return max(1, BLOCK_BYTES // FLOAT64_BYTES)
    return max(1, total // (CUDA_CHUNK_DIVISOR * FLOAT64_BYTES))


def scores_of(instance: Instance, w: torch.Tensor, collective: Collective = SOLO,
              source: CompetitorSource | None = None) -> Scores:
    """The float64 score blocks of W (any dtype, finite) on the collective's shard of the rows."""
    w = w.detach().to(device=instance.device, dtype=torch.float64)
    return Scores(instance, w, collective.shard.rows(instance.p), block_elements(instance.device), source)


def _target_slots(mu0: int, nu0: int, shape: torch.Size) -> tuple[int, int, int]:
    """(offset, first row, count) of the block's target scores s[mu, mu]: its diagonal at mu0 - nu0."""
    offset = mu0 - nu0
    first = max(0, -offset)
    count = max(0, min(shape[0], shape[1] - offset) - first)
    return offset, first, count


class _Accumulator:
    """Running float64 statistics of the first pass over rows [row0, row1), all on the device (Chan's
    parallel mean/M2 for off-targets)."""

    def __init__(self, rows: tuple[int, int], device: torch.device, full: bool = True) -> None:
        kw = dict(dtype=torch.float64, device=device)
        self.full = full
        self.row0 = rows[0]
        n_rows = rows[1] - rows[0]
        self.target = torch.full((n_rows,), float("nan"), **kw)
        self.max_off = torch.full((n_rows,), -math.inf, **kw)
        self.row_max = torch.full((n_rows,), -math.inf, **kw)  # running max of all scores of a row
        self.row_sum = torch.zeros(n_rows, **kw)  # sum exp(s - row_max)
        self.n = 0  # off-target scores so far (exact, on the host)
        self.mean = torch.zeros((), **kw)
        self.m2 = torch.zeros((), **kw)

    def add(self, mu0: int, nu0: int, s: torch.Tensor) -> None:
        a = mu0 - self.row0  # local row of mu0
        rows = slice(a, a + s.shape[0])
        offset, first, count = _target_slots(mu0, nu0, s.shape)
        diag = s.diagonal(offset)
        if count:
            self.target[a + first : a + first + count] = diag
        if self.full:
            self._add_row_sums(rows, s)
            self._add_moments(s, diag, s.numel() - count)
        if count:
            diag.fill_(-math.inf)
        torch.maximum(self.max_off[rows], s.amax(dim=1), out=self.max_off[rows])
        if count:  # blocks are read-only (lamcap.kernels.scores): put the targets back
            diag.copy_(self.target[a + first : a + first + count])

    def _add_row_sums(self, rows: slice, s: torch.Tensor) -> None:
        new_max = torch.maximum(self.row_max[rows], s.amax(dim=1))
        self.row_sum[rows] = self.row_sum[rows] * torch.exp(self.row_max[rows] - new_max) + torch.exp(
            s - new_max[:, None]).sum(dim=1)
        self.row_max[rows] = new_max

    def _add_moments(self, s: torch.Tensor, diag: torch.Tensor, n_b: int) -> None:
        """Fold the block's off-target scores (all of s but its diagonal) into (n, mean, m2)."""
        if n_b == 0:
            return
        mean_b = (s.sum() - diag.sum()) / n_b
        m2_b = (s - mean_b).square_().sum() - (diag - mean_b).square_().sum()
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * (n_b / n)
        self.m2 += m2_b + delta * delta * (self.n * n_b / n)
        self.n = n


_EDGES: dict[torch.device, torch.Tensor] = {}


def _edges(device: torch.device) -> torch.Tensor:
    """HIST_EDGES as a float64 tensor on `device`, copied once per process and device."""
    found = _EDGES.get(device)
    if found is None:
        found = _EDGES[device] = torch.as_tensor(HIST_EDGES, dtype=torch.float64, device=device)
    return found


def _histogram(values: torch.Tensor) -> torch.Tensor:
    """Counts on HIST_EDGES with values outside the range clipped into the end bins (numpy semantics); no sync."""
    edges = _edges(values.device)
    idx = (torch.bucketize(values.flatten().contiguous(), edges, right=True) - 1).clamp_(0, len(HIST_EDGES) - 2)
    counts = torch.zeros(len(HIST_EDGES) - 1, dtype=torch.int64, device=values.device)
    return counts.index_add_(0, idx, torch.ones_like(idx))


def _offtarget_pass(instance: Instance, scores: Scores, mean: float, sigma: float,
                    collective: Collective) -> tuple[np.ndarray, float, float]:
    """Second pass: histogram, mean and variance of the normalised off-target scores (one sync, at the end)."""
    counts = torch.zeros(len(HIST_EDGES) - 1, dtype=torch.int64, device=instance.device)
    total = torch.zeros((), dtype=torch.float64, device=instance.device)
    total_sq = torch.zeros((), dtype=torch.float64, device=instance.device)
    for mu0, nu0, s in scores.blocks():
        offset, _, count = _target_slots(mu0, nu0, s.shape)
        u = torch.sub(s, mean).div_(sigma)
        diag = u.diagonal(offset)
        counts += _histogram(u)
        total += u.sum()
        total_sq += u.square().sum()
        if count:
            counts -= _histogram(diag)
            total -= diag.sum()
            total_sq -= diag.square().sum()
    if collective.size > 1:  # one sum: float64 holds the counts exactly (up to 2^53)
        summed = collective.sum_(torch.cat([counts.double(), torch.stack([total, total_sq])]))
        counts, total, total_sq = summed[:-2].round().long(), summed[-2], summed[-1]
    n = instance.p * (instance.p - 1)  # every off-target score
    total_host, total_sq_host = torch.stack([total, total_sq]).tolist()
    u_mean = total_host / n
    return counts.cpu().numpy(), u_mean, total_sq_host / n - u_mean * u_mean


def _undefined(instance: Instance, w: torch.Tensor) -> Verification:
    """The record for a non-finite W: nothing stored, every statistic NaN."""
    nan = float("nan")
    zeros = np.zeros(len(HIST_EDGES) - 1, dtype=np.int64)
    return Verification(
        False, instance.p, 0.0, nan, nan, nan, nan, nan, nan, zeros, zeros.copy(),
        np.full(instance.d, nan), nan, nan,
    )


def _merged_moments(acc: _Accumulator, p: int, collective: Collective) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, M2) of every off-target score: the shards' (n, mean, M2) merged in rank order (Chan)."""
    if collective.size == 1:
        return acc.mean, acc.m2
    parts = collective.gather(torch.stack([acc.mean, acc.m2]))
    n, mean, m2 = 0, torch.zeros_like(acc.mean), torch.zeros_like(acc.m2)
    for rank in range(collective.size):
        row0, row1 = shard_rows(p, rank, collective.size)
        n_b = (row1 - row0) * (p - 1)  # a shard's off-target scores
        delta = parts[rank, 0] - mean
        m2 = m2 + parts[rank, 1] + delta * delta * (n * n_b / (n + n_b))
        mean = mean + delta * (n_b / (n + n_b))
        n += n_b
    return mean, m2


def _gathered_rows(acc: _Accumulator, p: int, collective: Collective) -> tuple[torch.Tensor, ...]:
    """(target, max_off, row_max, row_sum) of all p rows from every shard's rows."""
    if collective.size == 1:
        return acc.target, acc.max_off, acc.row_max, acc.row_sum
    local = torch.stack([acc.target, acc.max_off, acc.row_max, acc.row_sum], dim=1)
    return tuple(collective.gather_rows(local, p).unbind(1))


def verify(instance: Instance, w: torch.Tensor, collective: Collective = SOLO, scores: Scores | None = None,
           source: CompetitorSource | None = None) -> Verification:
    """Decide SAT for W (d x d) on the instance exactly, in float64, with score statistics.

    Sharded, each shard walks its rows; every shard returns the same Verification (W must be the same on all).
    `scores`: W's score blocks if already computed (the stopping rule's); `source`: the probe's competitors
    (a float32 materialised source is read instead of regenerating).
    """
    w = w.detach().to(device=instance.device, dtype=torch.float64)
    if not torch.isfinite(w).all():
        return _undefined(instance, w)
    p = instance.p
    if scores is None or scores.rows != collective.shard.rows(p) or not torch.equal(scores.w, w):
        scores = scores_of(instance, w, collective, source)
    acc = _first_pass(scores, True)
    target, max_off, row_max, row_sum = _gathered_rows(acc, p, collective)
    mean, m2 = _merged_moments(acc, p, collective)
    stored = target > max_off
    loss = (row_max + torch.log(row_sum) - target).mean()
    first = torch.stack([(~stored).sum().double(), loss, mean, m2]).tolist()  # the first pass's one sync
    n_violations, loss_value, mean_off = int(first[0]), first[1], first[2]
    sigma_off = math.sqrt(first[3] / (p * (p - 1)))
    svals = torch.linalg.svdvals(w).cpu().numpy()
    if sigma_off == 0.0:
        zeros = np.zeros(len(HIST_EDGES) - 1, dtype=np.int64)
        nan = float("nan")
        return Verification(
            n_violations == 0, n_violations, 1 - n_violations / instance.p, nan, loss_value,
            nan, nan, nan, nan, zeros, zeros.copy(), svals, mean_off, sigma_off,
        )
    t = (target - mean_off) / sigma_off
    min_margin, target_mean, target_var = torch.stack(
        [((target - max_off) / sigma_off).min(), t.mean(), t.var(unbiased=False)]).tolist()
    target_hist = _histogram(t).cpu().numpy()
    off_hist, off_mean, off_var = _offtarget_pass(instance, scores, mean_off, sigma_off, collective)
    return Verification(
        sat=n_violations == 0,
        n_violations=n_violations,
        accuracy=1 - n_violations / instance.p,
        min_margin=min_margin,
        loss=loss_value,
        target_mean=target_mean,
        target_var=target_var,
        offtarget_mean=off_mean,
        offtarget_var=off_var,
        target_hist=target_hist,
        offtarget_hist=off_hist,
        singular_values=svals,
        mean_off=mean_off,
        sigma_off=sigma_off,
    )


def _first_pass(scores: Scores, full: bool) -> _Accumulator:
    acc = _Accumulator(scores.rows, scores.instance.device, full)
    for mu0, nu0, s in scores.blocks():
        acc.add(mu0, nu0, s)
    return acc


def exact_count(instance: Instance, w: torch.Tensor, collective: Collective = SOLO,
                source: CompetitorSource | None = None) -> tuple[int, Scores | None]:
    """(Number of strictly stored associations of W in float64, W's score blocks for verify); sharded, each
    shard counts its rows and the counts are summed. A non-finite W stores nothing (and has no scores)."""
    w = w.detach().to(device=instance.device, dtype=torch.float64)
    if not torch.isfinite(w).all():
        return 0, None
    scores = scores_of(instance, w, collective, source)
    acc = _first_pass(scores, False)
    return int(collective.sum_((acc.target > acc.max_off).sum()).item()), scores


def count_stored(instance: Instance, w: torch.Tensor, collective: Collective = SOLO) -> int:
    """Number of strictly stored associations of W, float64 (exact_count without its scores)."""
    return exact_count(instance, w, collective)[0]

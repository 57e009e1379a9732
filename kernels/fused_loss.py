"""The fused cross-entropy of a linear associative memory, in one pass over the competitors.

For z_mu = W x_mu the scores of input mu are s[mu, nu] = y^mu_nu . z_mu (OP: y_nu . z_mu):
attention with query z_mu and keys = values = that input's competitors. One walk
over every (row chunk, competitor tile) with an online (running-max) softmax,
as in flash attention, gives the loss

    L = (1/p) sum_mu [logsumexp_nu s[mu, nu] - s[mu, mu]],

its gradient dL/dz_mu = (1/p) (sum_nu softmax(s[mu])_nu y^mu_nu - y^mu_mu), and the
number of stored associations (s[mu, mu] > max_{nu != mu} s[mu, nu], strict).
The gradient is saved by the forward pass; backward only scales it.

A source may own only some rows (a shard of a probe, lamcap.kernels.sharding): Z then holds those
rows, and the loss and count are that shard's part of the sums, still divided by the instance's p,
so that summing the shards' losses, counts and gradients gives the unsharded ones.
Arithmetic is float32 for float32 Z and float64 for float64 Z (tiles are upcast); the two products per tile
are the source's (lamcap.kernels.products: the probe's matmul precision, bfloat16 storage read directly).
"""
from __future__ import annotations

import torch

from lamcap.errors import InvalidInput
from lamcap.kernels.competitors import CompetitorSource
from lamcap.kernels.products import HIGHEST, Products


def _walk_row_chunk(z: torch.Tensor, tiles, mu0: int, out_max: torch.Tensor, out_sum: torch.Tensor,
                    out_acc: torch.Tensor, products: Products = HIGHEST) -> None:
    """Online softmax over the OFF-target scores of rows mu0.. (targets are masked to -inf).

    Writes, per row, the off-target max m, sum_nu exp(s - m) and sum_nu exp(s - m) y_nu.
    """
    floor = torch.finfo(z.dtype).min  # a row whose first tile holds only its target: exp(-inf - floor) = 0
    _weighted_sum = products.weighted_sum
    m = denom = acc = None
    for nu0, _nu1, tile in tiles:
        s = products.scores(z, tile)
        s.diagonal(mu0 - nu0).fill_(float("-inf"))  # the targets nu = mu of these rows, if any
        m_tile = s.amax(dim=1)
        if m is None:
            m_new = m_tile.clamp_min(floor)
            probs = s.sub_(m_new[:, None]).exp_()
            denom, acc = probs.sum(dim=1), _weighted_sum(probs, tile)
        else:
            m_new = torch.maximum(m, m_tile)
            scale = torch.exp(m - m_new)
            probs = s.sub_(m_new[:, None]).exp_()
            denom = denom * scale + probs.sum(dim=1)
            acc = acc * scale[:, None] + _weighted_sum(probs, tile)
        m = m_new
    out_max.copy_(m)
    out_sum.copy_(denom)
    out_acc.copy_(acc)


def _single_pass(z_all: torch.Tensor, source: CompetitorSource) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, dL/dZ, n_stored) of the source's rows from one walk over them; z_all holds those rows."""
    p, row0 = source.p, source.row0
    y_target = source.targets[row0:source.row1].to(z_all.dtype)
    target = (z_all * y_target).sum(dim=1)  # s[mu, mu]
    off_max, off_sum, off_acc = torch.empty_like(target), torch.empty_like(target), torch.empty_like(z_all)
    for mu0, mu1 in source.row_chunks():
        a, b = mu0 - row0, mu1 - row0
        _walk_row_chunk(z_all[a:b], source.tiles(mu0, mu1), mu0, off_max[a:b], off_sum[a:b], off_acc[a:b],
                        source.products)
    # Fold the target term back in, vectorised over all rows, around the true row max.
    m = torch.maximum(off_max, target)
    rescale, own = torch.exp(off_max - m), torch.exp(target - m)
    total = off_sum * rescale + own
    weighted = off_acc * rescale[:, None] + own[:, None] * y_target
    loss = (m + torch.log(total) - target).sum() / p
    grad = (weighted / total[:, None] - y_target) / p
    return loss, grad, (target > off_max).sum()


class FusedLoss(torch.autograd.Function):
    """Mean cross-entropy of Z against a competitor source; gradient computed in forward."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, source: CompetitorSource):  # type: ignore[override]
        loss, grad, n_stored = _single_pass(z.detach(), source)
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(n_stored)
        return loss, n_stored

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, _grad_count: torch.Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_loss * grad, None


def fused_loss(Z: torch.Tensor, source: CompetitorSource) -> tuple[torch.Tensor, torch.Tensor]:
    """Z = X W^T for the source's rows mu in [row0, row1) (all p unsharded), shape (rows, d). Returns (loss, n_stored):
    loss = (1/p) sum_mu [logsumexp_nu s[mu,nu] - s[mu,mu]] over those rows (0-dim, differentiable w.r.t. Z);
    n_stored = int64 0-dim tensor, number of those mu with s[mu,mu] > max_{nu != mu} s[mu,nu] (strict), not
    differentiable."""
    rows = source.row1 - source.row0
    if Z.dim() != 2 or tuple(Z.shape) != (rows, source.d):
        raise InvalidInput(f"Z has shape {tuple(Z.shape)}; expected (rows, d) = ({rows}, {source.d}) for the "
                           f"source's rows [{source.row0}, {source.row1}) of p={source.p}")
    if Z.dtype not in (torch.float32, torch.float64):
        raise InvalidInput(f"Z has dtype {Z.dtype}; expected float32 or float64")
    if Z.device.type != source.device.type:
        raise InvalidInput(f"Z is on {Z.device} but the competitors are on {source.device}")
    return FusedLoss.apply(Z, source)

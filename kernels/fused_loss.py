"""The fused cross-entropy of a linear associative memory, in one pass over the competitors.

For z_mu = W x_mu the scores of input mu are s[mu, nu] = y^mu_nu . z_mu (OP: y_nu . z_mu):
attention with query z_mu and keys = values = that input's competitors. One walk
over every (row chunk, competitor tile) with an online (running-max) softmax,
as in flash attention, gives the loss

    L = (1/p) sum_mu [logsumexp_nu s[mu, nu] - s[mu, mu]],

its gradient dL/dz_mu = (1/p) (sum_nu softmax(s[mu])_nu y^mu_nu - y^mu_mu), and the
number of stored associations (s[mu, mu] > max_{nu != mu} s[mu, nu], strict).
The gradient is saved by the forward pass; backward only scales it.
Arithmetic is float32 for float32 Z and float64 for float64 Z (tiles are upcast).
"""
from __future__ import annotations

import torch

from kernels.competitors import CompetitorSource
from kernels.errors import InvalidInput


class _RowState:
    """Running softmax statistics of one row chunk (flash-attention style)."""

    def __init__(self, rows: int, d: int, dtype: torch.dtype, device: torch.device) -> None:
        neg_inf = torch.full((rows,), float("-inf"), dtype=dtype, device=device)
        self.m = neg_inf.clone()  # running max of all scores
        self.l = torch.zeros(rows, dtype=dtype, device=device)  # sum of exp(s - m)
        self.acc = torch.zeros(rows, d, dtype=dtype, device=device)  # sum of exp(s - m) y
        self.off_max = neg_inf  # running max of off-target scores
        self.target = torch.empty(rows, dtype=dtype, device=device)  # s[mu, mu]
        self.y_target = torch.empty(rows, d, dtype=dtype, device=device)

    def update(self, s: torch.Tensor, weighted_sum) -> None:
        """Fold in scores s (rows, cols); weighted_sum(P) gives sum_nu P[:, nu] y_nu, shape (rows, d)."""
        m_new = torch.maximum(self.m, s.amax(dim=1))
        scale = torch.exp(self.m - m_new)
        probs = torch.exp(s - m_new[:, None])
        self.l = self.l * scale + probs.sum(dim=1)
        self.acc = self.acc * scale[:, None] + weighted_sum(probs)
        self.m = m_new


def _diagonal(mu0: int, mu1: int, nu0: int, nu1: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Local (rows, cols) of the targets nu = mu that fall in this tile, or None."""
    lo, hi = max(mu0, nu0), min(mu1, nu1)
    if lo >= hi:
        return None
    return torch.arange(lo - mu0, hi - mu0, device=device), torch.arange(lo - nu0, hi - nu0, device=device)


def _fold_tile(state: _RowState, z: torch.Tensor, tile: torch.Tensor, mu0: int, mu1: int, nu0: int, nu1: int) -> None:
    """Fold one competitor tile into the row chunk's state."""
    if tile.dim() == 3:  # DP: private competitors (rows, cols, d)
        # (1 x d) @ (d x cols) per row: on CPU this is ~5x faster than bmm(tile, z[..., None]).
        s = torch.bmm(z[:, None, :], tile.mT)[:, 0]
        weighted = lambda probs: torch.bmm(probs[:, None, :], tile)[:, 0]  # noqa: E731
    else:  # OP: shared outputs (cols, d)
        s = z @ tile.T
        weighted = lambda probs: probs @ tile  # noqa: E731
    diag = _diagonal(mu0, mu1, nu0, nu1, z.device)
    if diag is None:
        state.off_max = torch.maximum(state.off_max, s.amax(dim=1))
    else:
        rows, cols = diag
        state.target[rows] = s[rows, cols]
        state.y_target[rows] = tile[rows, cols] if tile.dim() == 3 else tile[cols]
        masked = s.clone()
        masked[rows, cols] = float("-inf")
        state.off_max = torch.maximum(state.off_max, masked.amax(dim=1))
    state.update(s, weighted)


def _single_pass(z_all: torch.Tensor, source: CompetitorSource) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, dL/dZ, n_stored) from one walk over the source."""
    p, d = z_all.shape
    loss = torch.zeros((), dtype=z_all.dtype, device=z_all.device)
    grad = torch.empty_like(z_all)
    n_stored = torch.zeros((), dtype=torch.int64, device=z_all.device)
    for mu0, mu1 in source.row_chunks():
        z = z_all[mu0:mu1]
        state = _RowState(mu1 - mu0, d, z_all.dtype, z_all.device)
        for nu0, nu1, tile in source.tiles(mu0, mu1):
            _fold_tile(state, z, tile.to(z_all.dtype), mu0, mu1, nu0, nu1)
        loss += (state.m + torch.log(state.l) - state.target).sum()
        grad[mu0:mu1] = (state.acc / state.l[:, None] - state.y_target) / p
        n_stored += (state.target > state.off_max).sum()
    return loss / p, grad, n_stored


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
    """Z = X W^T, shape (p, d). Returns (loss, n_stored):
    loss = (1/p) sum_mu [logsumexp_nu s[mu,nu] - s[mu,mu]] (0-dim, differentiable w.r.t. Z);
    n_stored = int64 0-dim tensor, number of mu with s[mu,mu] > max_{nu != mu} s[mu,nu] (strict), not differentiable."""
    if Z.dim() != 2 or tuple(Z.shape) != (source.p, source.d):
        raise InvalidInput(f"Z has shape {tuple(Z.shape)}; expected (p, d) = ({source.p}, {source.d})")
    if Z.dtype not in (torch.float32, torch.float64):
        raise InvalidInput(f"Z has dtype {Z.dtype}; expected float32 or float64")
    if Z.device.type != source.device.type:
        raise InvalidInput(f"Z is on {Z.device} but the competitors are on {source.device}")
    return FusedLoss.apply(Z, source)

"""The naive materialised reference: all scores at once, F.cross_entropy, autograd.

Independent of the fused loss (no chunks, no online softmax); for tests and the
`naive` benchmark mode. Holds the whole (p, p) score matrix and, in DP, the
(p, p, d) competitor tensor.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lamcap.errors import InvalidInput


def naive_scores(Z: torch.Tensor, Y_full: torch.Tensor, problem: str) -> torch.Tensor:
    """s[mu, nu] = y^mu_nu . z_mu (DP, Y_full (p, p, d)) or y_nu . z_mu (OP, Y_full (p, d))."""
    Y = Y_full.to(Z.dtype)
    if problem == "dp":
        return torch.einsum("mnd,md->mn", Y, Z)
    if problem == "op":
        return Z @ Y.T
    raise InvalidInput(f"unknown problem {problem!r}; expected 'op' or 'dp'")


def naive_loss(Z: torch.Tensor, Y_full: torch.Tensor, problem: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, number of mu with s[mu,mu] > max_{nu != mu} s[mu,nu]); loss differentiable via autograd."""
    s = naive_scores(Z, Y_full, problem)
    p = s.shape[0]
    labels = torch.arange(p, device=s.device)
    loss = F.cross_entropy(s, labels)
    with torch.no_grad():
        eye = torch.eye(p, dtype=torch.bool, device=s.device)
        off_max = s.masked_fill(eye, float("-inf")).amax(dim=1)
        n_stored = (s.diagonal() > off_max).sum()
    return loss, n_stored

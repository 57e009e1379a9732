"""Exact feasibility oracle for full-rank W: a linear program solved by HiGHS.

Variables vec(W) (d^2 of them, free), one constraint per pair mu != nu:
    (y_mu - y_nu)^T W x_mu >= 1      (y_mu: the target, y_nu: a competitor of mu)
The solution set is a cone, so margin 1 is the same as strict separation.

Constraint generation: start from the K most violated pairs of each mu under the
Hebbian W, solve, scan all p (p - 1) pairs of the solution in float64 (streaming),
add the K most violated pairs of every row still violated, and repeat. The loop
ends with a W that satisfies every constraint (SAT), or with an infeasible subset,
which proves the whole system infeasible (UNSAT).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linprog

from lamcap.kernels.disorder import TILE_MU, TILE_NU, Instance
from lamcap.kernels.errors import InvalidInput
from lamcap.kernels.weights import hebbian

LP_MAX_D = 40  # d^2 = 1600 LP variables at most
LP_MAX_P = 2000  # every round scans all p (p - 1) pairs
MAX_ROUNDS = 200
VIOLATION_TOL = 1e-6  # a pair is violated when its margin is below 1 - VIOLATION_TOL
BLOCK_BYTES = 1 << 25


@dataclass(frozen=True)
class LPResult:
    """feasible: W satisfies every constraint; otherwise w is None and the system is infeasible."""

    feasible: bool
    w: torch.Tensor | None  # float64, d x d
    rounds: int
    n_constraints: int


def check_lp_size(d: int, p: int) -> None:
    """Raise InvalidInput when the instance is beyond what this oracle handles."""
    if d > LP_MAX_D:
        raise InvalidInput(f"d={d} too large for the lp solver (limit d <= {LP_MAX_D})")
    if p > LP_MAX_P:
        raise InvalidInput(f"p={p} too large for the lp solver (limit p <= {LP_MAX_P})")


def _blocks(instance: Instance) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (mu0, nu0, C) float64 competitor blocks: C (m, n, d) covering the p x p pairs."""
    p, d = instance.p, instance.d
    if instance.problem == "op":
        y = instance.shared_outputs.double()
        rows = max(1, BLOCK_BYTES // (8 * p * d))
        for mu0 in range(0, p, rows):
            yield mu0, 0, y.expand(min(rows, p - mu0), p, d)
        return
    cols = max(TILE_NU, (BLOCK_BYTES // (8 * TILE_MU * d)) // TILE_NU * TILE_NU)
    for mu0 in range(0, p, TILE_MU):
        for nu0 in range(0, p, cols):
            yield mu0, nu0, instance.competitors(mu0, min(mu0 + TILE_MU, p), nu0, min(nu0 + cols, p)).double()


def worst_pairs(instance: Instance, w: torch.Tensor, k: int, only_violated: bool):
    """The k pairs of largest violation 1 - (s[mu,mu] - s[mu,nu]) per row, streamed in float64.

    Returns (mu, nu, y_nu) of the selected pairs (numpy / torch float64) and the
    number of violated pairs in the whole instance.
    """
    p, d, dev = instance.p, instance.d, instance.device
    z = instance.inputs.double() @ w.to(dev, torch.float64).T
    target = (instance.targets.double() * z).sum(dim=1)
    best_v = torch.full((p, k), -math.inf, dtype=torch.float64, device=dev)
    best_nu = torch.full((p, k), -1, dtype=torch.int64, device=dev)
    best_y = torch.zeros((p, k, d), dtype=torch.float64, device=dev)
    n_violated = 0
    for mu0, nu0, c in _blocks(instance):
        m, n = c.shape[0], c.shape[1]
        rows = slice(mu0, mu0 + m)
        v = 1.0 - (target[rows, None] - torch.einsum("mnd,md->mn", c, z[rows]))
        nu = torch.arange(nu0, nu0 + n, device=dev).expand(m, n)
        v = v.masked_fill(nu == torch.arange(mu0, mu0 + m, device=dev)[:, None], -math.inf)
        n_violated += int((v > VIOLATION_TOL).sum())
        vals, idx = torch.cat([best_v[rows], v], dim=1).topk(k, dim=1)
        best_v[rows] = vals
        best_nu[rows] = torch.cat([best_nu[rows], nu], dim=1).gather(1, idx)
        best_y[rows] = torch.cat([best_y[rows], c], dim=1).gather(1, idx[..., None].expand(m, k, d))
    keep = best_nu >= 0
    if only_violated:
        keep &= best_v > VIOLATION_TOL
    mu = torch.arange(p, device=dev)[:, None].expand(p, k)
    return mu[keep].cpu().numpy(), best_nu[keep].cpu().numpy(), best_y[keep].cpu(), n_violated


def _constraint_rows(instance: Instance, mu: np.ndarray, y_nu: torch.Tensor) -> np.ndarray:
    """Rows of (y_mu - y_nu) x_mu^T flattened row-major, so row . vec(W) = s[mu,mu] - s[mu,nu]."""
    diff = instance.targets.double().cpu()[mu] - y_nu
    x = instance.inputs.double().cpu()[mu]
    return torch.einsum("ki,kj->kij", diff, x).reshape(len(mu), -1).numpy()


def _feasible_point(a: np.ndarray, d: int) -> np.ndarray | None:
    """A W with a @ vec(W) >= 1, or None when HiGHS proves there is none."""
    res = linprog(
        np.zeros(d * d), A_ub=-a, b_ub=-np.ones(len(a)), bounds=(None, None), method="highs"
    )
    if res.status == 2:
        return None
    if res.status != 0:
        raise RuntimeError(f"HiGHS failed on {a.shape[0]} constraints: status {res.status}, {res.message}")
    return res.x.reshape(d, d)


def solve_lp(instance: Instance) -> LPResult:
    """Decide by constraint generation whether some full-rank W stores every association."""
    d, p = instance.d, instance.p
    check_lp_size(d, p)
    k = min(p - 1, max(2, math.ceil(2 * d * d / p)))
    mu, nu, y_nu, _ = worst_pairs(instance, hebbian(instance), k, only_violated=False)
    rows = _constraint_rows(instance, mu, y_nu)
    seen = set(zip(mu.tolist(), nu.tolist()))
    for rounds in range(1, MAX_ROUNDS + 1):
        w_np = _feasible_point(rows, d)
        if w_np is None:
            return LPResult(False, None, rounds, len(rows))
        w = torch.from_numpy(w_np)
        mu, nu, y_nu, n_violated = worst_pairs(instance, w, k, only_violated=True)
        if n_violated == 0:
            return LPResult(True, w, rounds, len(rows))
        new = [i for i, pair in enumerate(zip(mu.tolist(), nu.tolist())) if pair not in seen]
        if not new:
            raise RuntimeError(f"lp: {n_violated} violated pairs are already constraints (HiGHS tolerance)")
        seen.update((int(mu[i]), int(nu[i])) for i in new)
        rows = np.concatenate([rows, _constraint_rows(instance, mu[new], y_nu[new])])
    raise RuntimeError(f"lp: no verdict after {MAX_ROUNDS} constraint-generation rounds")

"""The float64 scores of one W on a shard's rows, computed once for every exact pass over them.

The exact passes over one W (the stopping rule's float64 count, then verification's statistics pass and its
histogram pass) walk the score matrix s[mu, nu] = y^mu_nu . W x_mu in the same blocks, whole rows when they
fit (lamcap.kernels.verify.block_elements). `Scores` computes each block once and holds it while the shard's
rows x p float64 scores fit lamcap.kernels.budget.held_score_bytes; beyond that every walk recomputes them.
A DP block's competitors come from a float32 materialised source when the probe has one (its entries are the
instance's, and float32 converts to float64 exactly), else they are regenerated from the seed: the same
partition and the same product either way, so a block has the same bits however it was obtained.

Blocks are handed out read-only: a pass that masks a block's targets puts them back.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

from lamcap.kernels.budget import held_score_bytes
from lamcap.kernels.competitors import CompetitorSource, device_memory_bytes
from lamcap.kernels.disorder import Instance
from lamcap.kernels.sharding import row_pieces

Block = tuple[int, int, torch.Tensor]  # (mu0, nu0, s): s[a, b] = s[mu0 + a, nu0 + b], float64


class Scores:
    """The score blocks of W (d x d, float64, on the instance's device) on rows [row0, row1)."""

    def __init__(self, instance: Instance, w: torch.Tensor, rows: tuple[int, int], block_elements: int,
                 source: CompetitorSource | None = None) -> None:
        self.instance, self.w, self.rows, self.block_elements = instance, w, rows, block_elements
        row0, row1 = rows
        self._z = instance.inputs[row0:row1].double() @ w.T  # z_mu = W x_mu
        self._y = instance.shared_outputs.double() if instance.problem == "op" else None
        exact = source is not None and source.problem == "dp" and (source.row0, source.row1) == rows
        self._source = source if exact and source.exact_float32 else None
        device = instance.device
        limit = held_score_bytes(device.type, device_memory_bytes(device))
        self._held = list(self._compute()) if (row1 - row0) * instance.p * 8 <= limit else None
        if self._held is not None:
            self._source = None  # every block is here: the competitors are not needed again

    @property
    def held(self) -> bool:
        return self._held is not None

    def blocks(self) -> Iterator[Block]:
        """Every block of the rows, in the same order on every walk."""
        if self._held is not None:
            yield from self._held
        else:
            yield from self._compute()

    def _compute(self) -> Iterator[Block]:
        instance, (row0, row1) = self.instance, self.rows
        p, d = instance.p, instance.d
        if self._y is not None:
            step = max(1, self.block_elements // (p * d))
            for mu0 in range(row0, row1, step):
                yield mu0, 0, self._z[mu0 - row0: min(mu0 + step, row1) - row0] @ self._y.T
            return
        for mu0, mu1, nu0, nu1 in row_pieces(row0, row1, p, d, self.block_elements):
            if self._source is not None:
                block = self._source.exact_block(mu0, mu1, nu0, nu1).double()
            else:
                block = instance.competitor_block(mu0, mu1, nu0, nu1).double()  # (rows, d, cols)
            yield mu0, nu0, torch.bmm(self._z[mu0 - row0: mu1 - row0, None, :], block)[:, 0]

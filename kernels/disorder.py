"""Counter-based, block-wise Gaussian disorder with nested prefixes.

Every block of every tensor comes from its own generator, seeded by a hash of
(seed, stream, block indices). Hence
  * any block can be regenerated alone, on any device, without the others;
  * the instance for ``p`` is a prefix of the instance for any larger ``p``
    (inputs, shared outputs, and each input's list of private competitors),
    because block contents never depend on ``p``;
  * the same spec gives bit-identical tensors on the same device type.
CPU (Mersenne twister) and CUDA (Philox) generators give *different* instances
for the same seed: the device type is part of an instance's identity, and the
orchestrator records it with every probe.

Block geometry is part of the definition of an instance: changing any of the
constants below changes every instance ever generated.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from lamcap.kernels.errors import InvalidInput

PROBLEMS = ("op", "dp")
ROW_BLOCK = 64  # rows of X (and of the shared Y) per generated block
TILE_MU = 32  # inputs per DP competitor tile
TILE_NU = 256  # competitors per DP competitor tile

STREAM_INPUTS = 1
STREAM_SHARED_OUTPUTS = 2
STREAM_PRIVATE_COMPETITORS = 3

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def block_seed(seed: int, stream: int, *indices: int) -> int:
    """A 63-bit generator seed for one block, a hash of all its coordinates."""
    h = _splitmix64(seed & _MASK64)
    for v in (stream, *indices):
        h = _splitmix64(h ^ (v & _MASK64))
    return h >> 1


@dataclass(frozen=True)
class InstanceSpec:
    """One disorder realisation: problem 'op' or 'dp', dimension d, p associations, seed."""

    problem: str
    d: int
    p: int
    seed: int

    def __post_init__(self) -> None:
        if self.problem not in PROBLEMS:
            raise InvalidInput(f"unknown problem {self.problem!r}; expected one of {PROBLEMS}")
        if not isinstance(self.d, int) or self.d < 2:
            raise InvalidInput(f"d={self.d!r} must be an integer >= 2")
        if not isinstance(self.p, int) or self.p < 2:
            raise InvalidInput(f"p={self.p!r} must be an integer >= 2")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInput(f"seed={self.seed!r} must be a non-negative integer")

    @property
    def competitor_count(self) -> int:
        """Number of stored output vectors: p (OP) or p*p (DP)."""
        return self.p if self.problem == "op" else self.p * self.p


def _randn(shape: tuple[int, ...], seed: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return torch.randn(shape, generator=gen, device=device, dtype=torch.float32)


class Instance:
    """The tensors of one spec on one device, generated lazily block by block (float32)."""

    def __init__(self, spec: InstanceSpec, device: torch.device | str = "cpu") -> None:
        self.spec = spec
        self.device = torch.device(device)

    @property
    def p(self) -> int:
        return self.spec.p

    @property
    def d(self) -> int:
        return self.spec.d

    @property
    def problem(self) -> str:
        return self.spec.problem

    def _row_blocks(self, stream: int, n_rows: int) -> torch.Tensor:
        n_blocks = -(-n_rows // ROW_BLOCK)
        blocks = [
            _randn((ROW_BLOCK, self.d), block_seed(self.spec.seed, stream, b), self.device)
            for b in range(n_blocks)
        ]
        return torch.cat(blocks)[:n_rows]

    @cached_property
    def inputs(self) -> torch.Tensor:
        """X, shape (p, d): row mu is the input x_mu."""
        return self._row_blocks(STREAM_INPUTS, self.p)

    @cached_property
    def shared_outputs(self) -> torch.Tensor:
        """Y, shape (p, d), the OP's shared outputs y_nu."""
        if self.problem != "op":
            raise InvalidInput("shared_outputs exist only for problem 'op'")
        return self._row_blocks(STREAM_SHARED_OUTPUTS, self.p)

    def tile(self, i: int, j: int) -> torch.Tensor:
        """DP competitor tile (i, j), d-major: shape (TILE_MU, d, TILE_NU), untruncated.

        Entry [a, :, b] is y^mu_nu with mu = i*TILE_MU + a, nu = j*TILE_NU + b. The d-major
        layout lets both passes of the fused loss run as fast batched GEMVs on the CPU.
        """
        return _randn(
            (TILE_MU, self.d, TILE_NU),
            block_seed(self.spec.seed, STREAM_PRIVATE_COMPETITORS, i, j),
            self.device,
        )

    def competitor_block(self, mu0: int, mu1: int, nu0: int = 0, nu1: int | None = None) -> torch.Tensor:
        """DP competitors of inputs mu0..mu1-1, candidates nu0..nu1-1, d-major: (mu1-mu0, d, nu1-nu0).

        Generates only the tiles that overlap the block.
        """
        nu1 = self.p if nu1 is None else nu1
        self._check_block(mu0, mu1, nu0, nu1)
        if self.problem != "dp":
            raise InvalidInput("competitor_block exists only for problem 'dp'; OP outputs are shared_outputs")
        rows = []
        for i in range(mu0 // TILE_MU, -(-mu1 // TILE_MU)):
            cols = [self.tile(i, j) for j in range(nu0 // TILE_NU, -(-nu1 // TILE_NU))]
            rows.append(torch.cat(cols, dim=2) if len(cols) > 1 else cols[0])
        block = torch.cat(rows, dim=0) if len(rows) > 1 else rows[0]
        r0 = (mu0 // TILE_MU) * TILE_MU
        c0 = (nu0 // TILE_NU) * TILE_NU
        return block[mu0 - r0 : mu1 - r0, :, nu0 - c0 : nu1 - c0]

    def competitors(self, mu0: int, mu1: int, nu0: int = 0, nu1: int | None = None) -> torch.Tensor:
        """Competitors of inputs mu0..mu1-1, candidates nu0..nu1-1, in the paper's index order.

        DP: shape (mu1-mu0, nu1-nu0, d), entry [a, b] = y^(mu0+a)_(nu0+b) (a strided view of
        competitor_block). OP: shape (nu1-nu0, d), the shared rows (mu0, mu1 only checked).
        """
        nu1 = self.p if nu1 is None else nu1
        self._check_block(mu0, mu1, nu0, nu1)
        if self.problem == "op":
            return self.shared_outputs[nu0:nu1]
        return self.competitor_block(mu0, mu1, nu0, nu1).transpose(1, 2)

    def _check_block(self, mu0: int, mu1: int, nu0: int, nu1: int) -> None:
        if not (0 <= mu0 <= mu1 <= self.p and 0 <= nu0 <= nu1 <= self.p):
            raise IndexError(f"range mu[{mu0}:{mu1}] nu[{nu0}:{nu1}] outside p={self.p}")

    @cached_property
    def targets(self) -> torch.Tensor:
        """The target output of each input, shape (p, d): y_mu (OP) or y^mu_mu (DP)."""
        if self.problem == "op":
            return self.shared_outputs
        out = torch.empty(self.p, self.d, device=self.device)
        for i in range(-(-self.p // TILE_MU)):
            mu0, mu1 = i * TILE_MU, min((i + 1) * TILE_MU, self.p)
            for j in range(mu0 // TILE_NU, -(-mu1 // TILE_NU)):
                t = self.tile(i, j)
                for mu in range(max(mu0, j * TILE_NU), min(mu1, (j + 1) * TILE_NU)):
                    out[mu] = t[mu - mu0, :, mu - j * TILE_NU]
        return out

    def materialize(self) -> torch.Tensor:
        """All outputs at once: (p, d) for OP, (p, p, d) for DP. For references and small p."""
        if self.problem == "op":
            return self.shared_outputs
        return self.competitors(0, self.p)  # a (p, p, d) view of the d-major block

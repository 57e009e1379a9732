"""Counter-based Gaussian disorder: every entry a function of (seed, stream, its coordinates) alone.

Each entry comes from lamcap.kernels.gaussian: a counter built from the entry's coordinates, hashed
with a key of (seed, stream), turned into N(0, 1) with integer and correctly rounded float32
operations only. Hence
  * the same spec gives bit-identical tensors on every device: CPU, any CUDA GPU model, MIG slices
    (no launch grid, piece size or torch generator enters), so a CPU can re-verify a GPU verdict;
  * any block of any tensor can be generated alone, in one buffer, in any pieces;
  * the instance for ``p`` is a prefix of the instance for any larger ``p`` (inputs, shared outputs,
    and each input's list of private competitors), because no entry depends on ``p``.

Counter layout (part of the definition of an instance: changing it changes every instance). Every
counter numbers a PAIR of entries (the two 32-bit words of one 64-bit hash):
  * inputs x_mu[k] and shared outputs y_nu[k]: counter = row << 32 | k >> 1, word k & 1;
  * private competitors y^mu_nu[k]: counter = mu << 42 | k << 21 | nu >> 1, word nu & 1.
Hence d <= 2^21, DP p <= 2^22 and OP p <= 2^32.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import torch

from lamcap.errors import InvalidInput
from lamcap.kernels.vocabulary import PROBLEMS
from lamcap.kernels import gaussian_cuda
from lamcap.kernels.gaussian import GENERATOR, Stream, mix64_, pairs_to_normal, splitmix64, words_to_normal

TILE_MU = 32  # inputs per tile(i, j); blocks of any shape may be generated, tiles are a convenience
TILE_NU = 256  # competitors per tile(i, j)

STREAM_INPUTS = 1
STREAM_SHARED_OUTPUTS = 2
STREAM_PRIVATE_COMPETITORS = 3

ROW_SHIFT = 32  # 2-D streams: counter = row << ROW_SHIFT | k >> 1
MU_SHIFT, K_SHIFT = 42, 21  # DP competitors: counter = mu << MU_SHIFT | k << K_SHIFT | nu >> 1
MAX_D = 1 << K_SHIFT
MAX_P = {"op": 1 << (64 - ROW_SHIFT), "dp": 1 << (64 - MU_SHIFT)}

MATERIALIZE_PIECE = 1 << 20  # competitors generated at a time by materialize(): bounds its temporaries
_MASK64 = (1 << 64) - 1


def block_seed(seed: int, stream: int, *indices: int) -> int:
    """A 63-bit seed hashed from (seed, stream, indices) (the initial weights' CPU generator uses it)."""
    h = splitmix64(seed & _MASK64)
    for v in (stream, *indices):
        h = splitmix64(h ^ (v & _MASK64))
    return h >> 1


def pieces(p: int, d: int, max_elements: int) -> Iterator[tuple[int, int, int, int]]:
    """(mu0, mu1, nu0, nu1) blocks of at most max_elements competitors covering p x p: whole rows when they fit."""
    rows = max_elements // (p * d)
    if rows >= 1:
        for mu0 in range(0, p, rows):
            yield mu0, min(mu0 + rows, p), 0, p
        return
    cols = max(1, max_elements // d)
    for mu0 in range(p):
        for nu0 in range(0, p, cols):
            yield mu0, mu0 + 1, nu0, min(nu0 + cols, p)


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
        if not isinstance(self.d, int) or not 2 <= self.d <= MAX_D:
            raise InvalidInput(f"d={self.d!r} must be an integer in 2..{MAX_D} (the instance's counter layout "
                               "addresses no more)")
        if not isinstance(self.p, int) or not 2 <= self.p <= MAX_P[self.problem]:
            raise InvalidInput(f"p={self.p!r} must be an integer in 2..{MAX_P[self.problem]} for {self.problem} "
                               "(the instance's counter layout addresses no more)")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInput(f"seed={self.seed!r} must be a non-negative integer")

    @property
    def competitor_count(self) -> int:
        """Number of stored output vectors: p (OP) or p*p (DP)."""
        return self.p if self.problem == "op" else self.p * self.p


class Instance:
    """The tensors of one spec on one device, generated on demand (float32, identical on every device)."""

    generator = GENERATOR  # what generated the entries (recorded with every probe)

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

    def _stream(self, stream: int) -> Stream:
        return Stream.of(self.spec.seed, stream)

    def _rows(self, stream: int, r0: int, r1: int) -> torch.Tensor:
        """Rows r0..r1-1 of a (rows, d) stream, row-major."""
        s = self._stream(stream)
        if gaussian_cuda.enabled(self.device):  # the same bits in one kernel
            return gaussian_cuda.normals(s, r0, r1 - r0, ROW_SHIFT, 1, 0, 0, self.d, self.device)[:, 0]
        states = s.axis(r0, r1, 1 << ROW_SHIFT, self.device, with_key=True)[:, None] + s.axis(
            0, -(-self.d // 2), 1, self.device)[None, :]
        return pairs_to_normal(states, 0, self.d)

    @cached_property
    def inputs(self) -> torch.Tensor:
        """X, shape (p, d): row mu is the input x_mu."""
        return self._rows(STREAM_INPUTS, 0, self.p)

    @cached_property
    def shared_outputs(self) -> torch.Tensor:
        """Y, shape (p, d), the OP's shared outputs y_nu."""
        if self.problem != "op":
            raise InvalidInput("shared_outputs exist only for problem 'op'")
        return self._rows(STREAM_SHARED_OUTPUTS, 0, self.p)

    def _block(self, mu0: int, mu1: int, nu0: int, nu1: int) -> torch.Tensor:
        """DP competitors, d-major (mu1-mu0, d, nu1-nu0), in one buffer; no range check against p."""
        s = self._stream(STREAM_PRIVATE_COMPETITORS)
        if gaussian_cuda.enabled(self.device):  # the same bits in one kernel
            return gaussian_cuda.normals(s, mu0, mu1 - mu0, MU_SHIFT, self.d, K_SHIFT, nu0, nu1 - nu0, self.device)
        q0, q1 = nu0 // 2, -(-nu1 // 2)  # the pairs covering nu0..nu1-1
        rows_and_k = (s.axis(mu0, mu1, 1 << MU_SHIFT, self.device, with_key=True)[:, None]
                      + s.axis(0, self.d, 1 << K_SHIFT, self.device)[None, :])
        states = rows_and_k[:, :, None] + s.axis(q0, q1, 1, self.device)[None, None, :]
        del rows_and_k
        return pairs_to_normal(states, nu0 - 2 * q0, nu1 - 2 * q0)

    def tile(self, i: int, j: int) -> torch.Tensor:
        """DP competitor tile (i, j), d-major: shape (TILE_MU, d, TILE_NU), untruncated.

        Entry [a, :, b] is y^mu_nu with mu = i*TILE_MU + a, nu = j*TILE_NU + b. The d-major
        layout lets both passes of the fused loss run as fast batched GEMVs on the CPU.
        """
        return self._block(i * TILE_MU, (i + 1) * TILE_MU, j * TILE_NU, (j + 1) * TILE_NU)

    def competitor_block(self, mu0: int, mu1: int, nu0: int = 0, nu1: int | None = None) -> torch.Tensor:
        """DP competitors of inputs mu0..mu1-1, candidates nu0..nu1-1, d-major: (mu1-mu0, d, nu1-nu0).

        Generated in one buffer (about 4x its size in temporaries while it is made).
        """
        nu1 = self.p if nu1 is None else nu1
        self._check_block(mu0, mu1, nu0, nu1)
        if self.problem != "dp":
            raise InvalidInput("competitor_block exists only for problem 'dp'; OP outputs are shared_outputs")
        return self._block(mu0, mu1, nu0, nu1)

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
        s = self._stream(STREAM_PRIVATE_COMPETITORS)
        mu = torch.arange(self.p, dtype=torch.int64, device=self.device)
        own = s.term(mu << MU_SHIFT, with_key=True).add_(s.term(mu >> 1))  # nu = mu: pair mu >> 1, word mu & 1
        states = own[:, None] + s.axis(0, self.d, 1 << K_SHIFT, self.device)[None, :]
        words = mix64_(states).view(torch.int32).view(self.p, self.d, 2)
        mine = torch.gather(words, 2, (mu & 1)[:, None, None].expand(self.p, self.d, 1))[..., 0]
        return words_to_normal(mine)

    def materialize(self) -> torch.Tensor:
        """All outputs at once, contiguous: (p, d) for OP, (p, p, d) for DP. For references and small p.

        DP is filled piece by piece: the peak is the tensor and one piece's temporaries.
        """
        if self.problem == "op":
            return self.shared_outputs
        out = torch.empty((self.p, self.p, self.d), device=self.device)
        for mu0, mu1, nu0, nu1 in pieces(self.p, self.d, MATERIALIZE_PIECE):
            out[mu0:mu1, nu0:nu1] = self._block(mu0, mu1, nu0, nu1).transpose(1, 2)
        return out

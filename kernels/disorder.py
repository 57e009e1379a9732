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
from lamcap.kernels import gaussian_cuda
from lamcap.kernels.gaussian import (
    GENERATOR,
    PIECE_SAMPLES,
    Stream,
    _work,
    mix64_,
    pairs_to_normal,
    splitmix64,
    words_to_normal,
)
from lamcap.kernels.vocabulary import PROBLEMS

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


def slabs(rows: int, mids: int, cols: int, most: int) -> Iterator[tuple[slice, slice, slice]]:
    """Contiguous slabs of a (rows, mids, cols) array holding at most `most` entries each (at least one column)."""
    whole = slice(None)
    if mids * cols <= most:
        step = most // (mids * cols)
        for a in range(0, rows, step):
            yield slice(a, min(a + step, rows)), whole, whole
    elif cols <= most:
        step = most // cols
        for a in range(rows):
            for k in range(0, mids, step):
                yield slice(a, a + 1), slice(k, min(k + step, mids)), whole
    else:
        for a in range(rows):
            for k in range(mids):
                for c in range(0, cols, most):
                    yield slice(a, a + 1), slice(k, k + 1), slice(c, min(c + most, cols))


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
        self._streams: dict[int, Stream] = {}
        self._axes: dict[tuple, torch.Tensor] = {}  # keyless axis terms, the same for every chunk of a walk

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
        found = self._streams.get(stream)
        if found is None:
            found = self._streams[stream] = Stream.of(self.spec.seed, stream)
        return found

    def _axis(self, s: Stream, start: int, stop: int, weight: int) -> torch.Tensor:
        """s.axis(start, stop, weight) without the key, kept for the next chunk (read-only)."""
        key = (s.key, start, stop, weight)
        found = self._axes.get(key)
        if found is None:
            if len(self._axes) >= 64:
                self._axes.clear()
            found = self._axes[key] = s.axis(start, stop, weight, self.device)
        return found

    def _normals(self, s: Stream, i0: int, i1: int, shift_i: int, mids: int, shift_j: int, l0: int,
                 l1: int) -> torch.Tensor:
        """(i1-i0, mids, l1-l0) samples, entry [i, j, l] of counter (i0+i) << shift_i | j << shift_j | (l0+l) >> 1,
        word (l0+l) & 1: on a GPU in one kernel, on a CPU PIECE_SAMPLES at a time (temporaries stay cached)."""
        rows, cols, device = i1 - i0, l1 - l0, self.device
        if gaussian_cuda.enabled(device):
            return gaussian_cuda.normals(s, i0, rows, shift_i, mids, shift_j, l0, cols, device)
        out = torch.empty((rows, mids, cols), device=device)
        most = PIECE_SAMPLES if device.type == "cpu" else rows * mids * cols
        for a, k, c in slabs(rows, mids, cols, max(1, most)):
            piece = out[a, k, c]
            a0, a1 = i0 + a.indices(rows)[0], i0 + a.indices(rows)[1]
            k0, k1 = k.indices(mids)[:2]
            c0, c1 = l0 + c.indices(cols)[0], l0 + c.indices(cols)[1]
            q0, q1 = c0 // 2, -(-c1 // 2)  # the pairs covering c0..c1-1
            ij = s.axis(a0, a1, 1 << shift_i, device, with_key=True)[:, None] + self._axis(s, k0, k1, 1 << shift_j)
            states = _work("states", (a1 - a0, k1 - k0, q1 - q0), torch.int64, device)
            torch.add(ij[:, :, None], self._axis(s, q0, q1, 1)[None, None, :], out=states)
            pairs_to_normal(states, c0 - 2 * q0, c1 - 2 * q0, out=piece)
        return out

    def _rows(self, stream: int, r0: int, r1: int) -> torch.Tensor:
        """Rows r0..r1-1 of a (rows, d) stream, row-major."""
        return self._normals(self._stream(stream), r0, r1, ROW_SHIFT, 1, 0, 0, self.d)[:, 0]

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
        return self._normals(self._stream(STREAM_PRIVATE_COMPETITORS), mu0, mu1, MU_SHIFT, self.d, K_SHIFT, nu0, nu1)

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

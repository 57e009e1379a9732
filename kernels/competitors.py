"""Where the fused loss gets its competitors from, tile by tile.

A ``CompetitorSource`` walks the outputs an input competes against:
  * OP: the shared outputs Y (p, d), always held in memory (they are small);
  * DP, ``materialize``: the private competitors kept in memory as row shards
    (float32 or bfloat16 storage; tiles are handed out in float32);
  * DP, ``regenerate``: every tile regenerated from the seed on each pass, so the
    p x p x d tensor never exists; memory is one generated tile at a time.
``auto`` materializes when the p*p*d tensor in the storage dtype fits the budget.
Chunk sizes only change the order of float operations, never the result.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch

from kernels.disorder import TILE_MU, TILE_NU, Instance
from kernels.errors import InvalidInput

MODES = ("auto", "materialize", "regenerate")
STORAGE_DTYPES = (torch.float32, torch.bfloat16)
DEFAULT_CPU_BUDGET_BYTES = 1 << 30  # 1 GiB for materialised competitors on CPU
CUDA_BUDGET_FRACTION = 0.5  # of the free device memory, when no budget is given

# Chunk defaults, tuned at DP d=96 p=1200 on a 2-core EPYC (benchmarks/kernel.py):
# a row chunk of a few inputs over all their competitors keeps a (rows, cols, d)
# tile small enough to be read twice (scores, then weighted sum) from cache.
DEFAULT_CHUNK_ROWS = {"op": 512, "materialize": 4, "regenerate": TILE_MU}
DEFAULT_CHUNK_COLS = {"op": 2048, "materialize": 1 << 30, "regenerate": TILE_NU}


class CompetitorSource(ABC):
    """Walks the competitors of one instance, tile by tile, in float32."""

    problem: str
    p: int
    d: int
    device: torch.device
    nbytes: int  # memory held by this source between passes
    chunk_rows: int
    chunk_cols: int

    def row_chunks(self) -> Iterator[tuple[int, int]]:
        """(mu0, mu1) chunks of inputs covering [0, p)."""
        for mu0 in range(0, self.p, self.chunk_rows):
            yield mu0, min(mu0 + self.chunk_rows, self.p)

    @abstractmethod
    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(nu0, nu1, T) covering nu in [0, p): DP T is (mu1-mu0, nu1-nu0, d) float32; OP T is (nu1-nu0, d)."""

    def _check_rows(self, mu0: int, mu1: int) -> None:
        if not 0 <= mu0 < mu1 <= self.p:
            raise IndexError(f"row range [{mu0}, {mu1}) outside p={self.p}")


class SharedSource(CompetitorSource):
    """OP: the shared outputs Y, held once; every row chunk sees the same tiles."""

    def __init__(self, instance: Instance, chunk_rows: int, chunk_cols: int) -> None:
        self.problem, self.p, self.d, self.device = "op", instance.p, instance.d, instance.device
        self.chunk_rows, self.chunk_cols = chunk_rows, chunk_cols
        self._y = instance.shared_outputs
        self.nbytes = self._y.numel() * self._y.element_size()

    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        self._check_rows(mu0, mu1)
        for nu0 in range(0, self.p, self.chunk_cols):
            nu1 = min(nu0 + self.chunk_cols, self.p)
            yield nu0, nu1, self._y[nu0:nu1]


class MaterializedSource(CompetitorSource):
    """DP: all competitors in memory, one shard per TILE_MU inputs, in the storage dtype."""

    def __init__(self, instance: Instance, chunk_rows: int, chunk_cols: int, storage_dtype: torch.dtype) -> None:
        self.problem, self.p, self.d, self.device = "dp", instance.p, instance.d, instance.device
        self.chunk_rows, self.chunk_cols = chunk_rows, chunk_cols
        self._shards = [
            instance.competitors(mu0, min(mu0 + TILE_MU, self.p)).to(storage_dtype).contiguous()
            for mu0 in range(0, self.p, TILE_MU)
        ]
        self.nbytes = sum(s.numel() * s.element_size() for s in self._shards)

    def _rows(self, mu0: int, mu1: int) -> torch.Tensor:
        first, last = mu0 // TILE_MU, (mu1 - 1) // TILE_MU
        if first == last:
            return self._shards[first][mu0 - first * TILE_MU : mu1 - first * TILE_MU]
        parts = torch.cat(self._shards[first : last + 1])
        return parts[mu0 - first * TILE_MU : mu1 - first * TILE_MU]

    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        self._check_rows(mu0, mu1)
        rows = self._rows(mu0, mu1)
        for nu0 in range(0, self.p, self.chunk_cols):
            nu1 = min(nu0 + self.chunk_cols, self.p)
            yield nu0, nu1, rows[:, nu0:nu1].float()


class RegeneratedSource(CompetitorSource):
    """DP: each (TILE_MU x TILE_NU) tile regenerated from the seed when walked, cut into column chunks."""

    def __init__(self, instance: Instance, chunk_rows: int, chunk_cols: int) -> None:
        self.problem, self.p, self.d, self.device = "dp", instance.p, instance.d, instance.device
        self.chunk_rows, self.chunk_cols = chunk_rows, chunk_cols
        self._instance = instance
        self.nbytes = 0

    def _generated(self, mu0: int, mu1: int, j: int) -> torch.Tensor:
        """Rows mu0..mu1-1 of tile column j, all TILE_NU columns (untruncated)."""
        first, last = mu0 // TILE_MU, (mu1 - 1) // TILE_MU
        parts = [self._instance.tile(i, j) for i in range(first, last + 1)]
        block = parts[0] if len(parts) == 1 else torch.cat(parts)
        return block[mu0 - first * TILE_MU : mu1 - first * TILE_MU]

    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        self._check_rows(mu0, mu1)
        for j in range(-(-self.p // TILE_NU)):
            base, end = j * TILE_NU, min((j + 1) * TILE_NU, self.p)
            block = self._generated(mu0, mu1, j)
            for nu0 in range(base, end, self.chunk_cols):
                nu1 = min(nu0 + self.chunk_cols, end)
                yield nu0, nu1, block[:, nu0 - base : nu1 - base]


def default_budget_bytes(device: torch.device) -> int:
    """Memory allowed for materialised competitors when none is given."""
    if device.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * CUDA_BUDGET_FRACTION)
    return DEFAULT_CPU_BUDGET_BYTES


def resolve_mode(
    instance: Instance, mode: str, memory_budget_bytes: int | None, storage_dtype: torch.dtype = torch.float32
) -> str:
    """'auto' -> 'materialize' if the p*p*d tensor (storage dtype) fits the budget, else 'regenerate'.

    OP always materializes its (p, d) Y, whatever the mode asked.
    """
    if mode not in MODES:
        raise InvalidInput(f"unknown competitor mode {mode!r}; expected one of {MODES}")
    if memory_budget_bytes is not None and memory_budget_bytes < 0:
        raise InvalidInput(f"memory_budget_bytes={memory_budget_bytes!r} must be >= 0")
    if instance.problem == "op":
        return "materialize"
    if mode != "auto":
        return mode
    budget = default_budget_bytes(instance.device) if memory_budget_bytes is None else memory_budget_bytes
    needed = instance.p * instance.p * instance.d * torch.tensor([], dtype=storage_dtype).element_size()
    return "materialize" if needed <= budget else "regenerate"


def _chunk(value: int | None, default: int, name: str) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"{name}={value!r} must be a positive integer")
    return value


def make_source(
    instance: Instance,
    mode: str = "auto",
    *,
    memory_budget_bytes: int | None = None,
    storage_dtype: torch.dtype = torch.float32,
    chunk_rows: int | None = None,
    chunk_cols: int | None = None,
) -> CompetitorSource:
    """The competitor source for an instance: mode 'auto', 'materialize' or 'regenerate'."""
    if storage_dtype not in STORAGE_DTYPES:
        raise InvalidInput(f"storage_dtype={storage_dtype!r}; expected one of {STORAGE_DTYPES}")
    resolved = resolve_mode(instance, mode, memory_budget_bytes, storage_dtype)
    key = "op" if instance.problem == "op" else resolved
    rows = _chunk(chunk_rows, DEFAULT_CHUNK_ROWS[key], "chunk_rows")
    cols = _chunk(chunk_cols, DEFAULT_CHUNK_COLS[key], "chunk_cols")
    if instance.problem == "op":
        return SharedSource(instance, rows, cols)
    if resolved == "materialize":
        return MaterializedSource(instance, rows, cols, storage_dtype)
    return RegeneratedSource(instance, rows, cols)

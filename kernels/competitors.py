"""Where the fused loss gets its competitors from, chunk by chunk.

A ``CompetitorSource`` walks the outputs an input competes against:
  * OP: the shared outputs Y (p, d), always held in memory (they are small);
  * DP, ``materialize``: the private competitors held in memory as one d-major
    (p, d, p) tensor, filled tile by tile (float32 or bfloat16 storage; chunks are
    handed out in float32);
  * DP, ``regenerate``: every tile regenerated from the seed on each pass, so the
    p x p x d tensor never exists; memory is one generated tile at a time.
``auto`` materializes when the p*p*d tensor in the storage dtype fits the budget.
Chunk sizes only change the order of float operations, never the result.

DP chunks are d-major, (rows, d, cols): on the CPU both passes of the fused loss
(scores z^T Y, then the softmax-weighted sum) are then batched GEMVs that stream
at memory speed, where the (rows, cols, d) order made the second one 5x slower.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch

from lamcap.kernels.disorder import TILE_MU, TILE_NU, Instance
from lamcap.kernels.errors import InvalidInput

MODES = ("auto", "materialize", "regenerate")
STORAGE_DTYPES = (torch.float32, torch.bfloat16)
DEFAULT_CPU_BUDGET_BYTES = 1 << 30  # 1 GiB for materialised competitors on CPU
CUDA_BUDGET_FRACTION = 0.5  # of the free device memory, when no budget is given

# Float32 bytes of competitors per chunk. On the CPU a chunk must stay in the last-level cache
# between the two passes over it (benchmarks/kernel.py: 8 MiB is best on a 16 MiB L3); on a GPU
# it only needs to be large enough that kernel launches are negligible.
CHUNK_BYTES = {"cpu": 8 << 20, "cuda": 512 << 20}
FLOAT32_BYTES = 4


def chunk_bytes(device: torch.device) -> int:
    """Target float32 size of one competitor chunk on this device type."""
    return chunk_bytes_for(device.type)


def chunk_bytes_for(device_type: str) -> int:
    """CHUNK_BYTES of a device type given by name ('cpu' or 'cuda')."""
    return CHUNK_BYTES.get(device_type, CHUNK_BYTES["cpu"])


def auto_budget_bytes(device_type: str, total_memory: int) -> int:
    """The competitor budget of mode 'auto' on a device of `total_memory` bytes."""
    if device_type == "cuda":
        return int(total_memory * CUDA_BUDGET_FRACTION)
    return DEFAULT_CPU_BUDGET_BYTES


class CompetitorSource(ABC):
    """Walks the competitors of one instance in float32 chunks: ``tiles(mu0, mu1)`` per row chunk."""

    problem: str
    p: int
    d: int
    device: torch.device
    nbytes: int  # memory held by this source between passes
    chunk_rows: int
    chunk_cols: int
    targets: torch.Tensor  # (p, d) float32: each input's own target output y_mu (OP) or y^mu_mu (DP)

    def row_chunks(self) -> Iterator[tuple[int, int]]:
        """(mu0, mu1) chunks of inputs covering [0, p)."""
        for mu0 in range(0, self.p, self.chunk_rows):
            yield mu0, min(mu0 + self.chunk_rows, self.p)

    @abstractmethod
    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(nu0, nu1, T) covering nu in [0, p): DP T is (mu1-mu0, d, nu1-nu0); OP T is (nu1-nu0, d)."""

    def _check_rows(self, mu0: int, mu1: int) -> None:
        if not 0 <= mu0 < mu1 <= self.p:
            raise IndexError(f"row range [{mu0}, {mu1}) outside p={self.p}")

    def _column_ranges(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        for nu0 in range(start, end, self.chunk_cols):
            yield nu0, min(nu0 + self.chunk_cols, end)


class SharedSource(CompetitorSource):
    """OP: the shared outputs Y, held once; every row chunk sees the same tiles."""

    def __init__(self, instance: Instance, chunk_rows: int, chunk_cols: int) -> None:
        self.problem, self.p, self.d, self.device = "op", instance.p, instance.d, instance.device
        self.chunk_rows, self.chunk_cols = chunk_rows, chunk_cols
        self.targets = instance.targets
        self._y = instance.shared_outputs
        self.nbytes = self._y.numel() * self._y.element_size()

    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        self._check_rows(mu0, mu1)
        for nu0, nu1 in self._column_ranges(0, self.p):
            yield nu0, nu1, self._y[nu0:nu1]


class MaterializedSource(CompetitorSource):
    """DP: all competitors in memory as one d-major (p, d, p) tensor in the storage dtype."""

    def __init__(self, instance: Instance, chunk_rows: int, chunk_cols: int, storage_dtype: torch.dtype) -> None:
        self.problem, self.p, self.d, self.device = "dp", instance.p, instance.d, instance.device
        self.chunk_rows, self.chunk_cols = chunk_rows, chunk_cols
        # The source is the instance rounded to the storage dtype, targets included (self-consistent scores).
        self.targets = instance.targets.to(storage_dtype).float()
        p = self.p
        # Filled tile by tile: the peak is the tensor plus one tile, never twice the tensor.
        self._y = torch.empty((p, self.d, p), dtype=storage_dtype, device=self.device)
        for mu0 in range(0, p, TILE_MU):
            mu1 = min(mu0 + TILE_MU, p)
            for nu0 in range(0, p, TILE_NU):
                nu1 = min(nu0 + TILE_NU, p)
                self._y[mu0:mu1, :, nu0:nu1] = instance.competitor_block(mu0, mu1, nu0, nu1)
        self.nbytes = self._y.numel() * self._y.element_size()

    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        self._check_rows(mu0, mu1)
        rows = self._y[mu0:mu1]
        for nu0, nu1 in self._column_ranges(0, self.p):
            yield nu0, nu1, rows[:, :, nu0:nu1].float()


class RegeneratedSource(CompetitorSource):
    """DP: each (TILE_MU x TILE_NU) tile regenerated from the seed when walked, cut into column chunks."""

    def __init__(self, instance: Instance, chunk_rows: int, chunk_cols: int) -> None:
        self.problem, self.p, self.d, self.device = "dp", instance.p, instance.d, instance.device
        self.chunk_rows, self.chunk_cols = chunk_rows, chunk_cols
        self.targets = instance.targets
        self._instance = instance
        self.nbytes = 0

    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        self._check_rows(mu0, mu1)
        for j in range(-(-self.p // TILE_NU)):
            base, end = j * TILE_NU, min((j + 1) * TILE_NU, self.p)
            block = self._instance.competitor_block(mu0, mu1, base, end)
            for nu0, nu1 in self._column_ranges(base, end):
                yield nu0, nu1, block[:, :, nu0 - base : nu1 - base]


def default_chunks(instance: Instance, mode: str) -> tuple[int, int]:
    """(rows, cols) per chunk: whole rows of competitors, as many as fit CHUNK_BYTES.

    Regenerated chunks follow the generated tiles, so that no tile is generated twice per pass.
    """
    p, d, budget = instance.p, instance.d, chunk_bytes(instance.device)
    if instance.problem == "op":  # a chunk is a (rows, p) block of scores
        return max(1, min(p, budget // (FLOAT32_BYTES * p))), p
    if mode == "regenerate":
        return TILE_MU, TILE_NU
    row_bytes = FLOAT32_BYTES * p * d
    if row_bytes <= budget:
        return max(1, min(p, budget // row_bytes)), p
    return 1, max(1, budget // (FLOAT32_BYTES * d))


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
    default_rows, default_cols = default_chunks(instance, resolved)
    rows = _chunk(chunk_rows, default_rows, "chunk_rows")
    cols = _chunk(chunk_cols, default_cols, "chunk_cols")
    if instance.problem == "op":
        return SharedSource(instance, rows, cols)
    if resolved == "materialize":
        return MaterializedSource(instance, rows, cols, storage_dtype)
    return RegeneratedSource(instance, rows, cols)

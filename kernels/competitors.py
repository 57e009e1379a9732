"""Where the fused loss gets its competitors from, chunk by chunk.

A ``CompetitorSource`` walks the outputs an input competes against:
  * OP: the shared outputs Y (p, d), always held in memory (they are small);
  * DP, ``materialize``: the private competitors held in memory as one d-major
    (p, d, p) tensor, filled block by block (float32 or bfloat16 storage; chunks are
    handed out in float32);
  * DP, ``regenerate``: each chunk regenerated from the seed in one buffer on every pass,
    so the p x p x d tensor never exists; memory is one chunk and its generation temporaries.

The plan (mode and chunk shape) is a pure function of the instance's shape, the device TYPE,
the device's TOTAL memory and the settings: never of free memory, so an actor resolves a probe
the same way on a fresh start and after a large probe (the caching allocator keeps memory
reserved), and the probe records it. ``auto`` materializes when the p*p*d tensor in the storage
dtype fits the budget: 1 GiB on a CPU, CUDA_BUDGET_FRACTION of a GPU's total memory.
Chunk sizes only change the order of float32 operations, never the instance.

A sharded probe (lamcap.kernels.sharding) gives each source a row range [mu0, mu1): it holds or
regenerates only those rows' competitors, and walks only them. The mode is decided for the gang's
largest shard, so every shard of a probe resolves the same mode.

DP chunks are d-major, (rows, d, cols): on the CPU both passes of the fused loss
(scores z^T Y, then the softmax-weighted sum) are then batched GEMVs that stream
at memory speed, where the (rows, cols, d) order made the second one 5x slower.

bfloat16 storage holds twice the instance in the same memory. On a CPU each chunk is upcast to float32
before its two GEMVs. On a GPU whose torch has bf16 x bf16 -> fp32 products (``torch.bmm(...,
out_dtype=torch.float32)``) the products read the bfloat16 tensor itself, the float32 operand split exactly
into three bfloat16s (lamcap.kernels.products): the float32 product with the rounded competitors, at half
the bytes. Rounding z or the softmax weights to one bfloat16 instead (8-bit mantissas: scores off by ~0.4%)
would change the loss rather than only the competitors' storage.

The source also carries the products its chunks are multiplied with (``products``: the matmul precision
of lamcap.kernels.products, 'highest' on a CPU), and the plan records the storage and precision used.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lamcap.errors import InvalidInput
from lamcap.kernels.device_share import memory_share
from lamcap.kernels.disorder import Instance
from lamcap.kernels.products import HIGHEST, Products, products_for
from lamcap.kernels.sharding import WHOLE, Shard, row_pieces
from lamcap.kernels.vocabulary import MATMUL_PRECISIONS, MODES

STORAGE_DTYPES = (torch.float32, torch.bfloat16)
_STORAGE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", "float32": "float32",
                  "bfloat16": "bfloat16", "auto": "auto"}
# The plan's pure rules (budgets, chunk sizes) live in the torch-free lamcap.kernels.budget, so that
# the cost planner and the memory checks use the very same numbers.
from lamcap.kernels.budget import (  # noqa: E402
    GENERATION_OVERHEAD,
    budget_bytes,
    chunk_bytes,
    competitor_plan,
)

# Competitors generated at a time while a CPU fills a materialised tensor: 512 KiB of float32, whose
# temporaries stay in L2 and leave the allocator's heap small (with 2 MiB pieces the heap kept ~14 MiB
# after the fill; benchmarks/shard.py measures peak memory per shard, where that mattered).
CPU_FILL_ELEMENTS = 1 << 17
FLOAT32_BYTES = 4


def device_memory_bytes(device: torch.device) -> int | None:
    """The memory a probe on a CUDA device plans with: the device's TOTAL memory (fixed for the device) times this
    process's share of it (lamcap.kernels.device_share; 1 for a GPU of its own); None on a CPU."""
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    return int(torch.cuda.get_device_properties(index).total_memory * memory_share())


def chunking_for(problem: str, d: int, p: int, mode: str, device_type: str,
                 total_memory: int | None) -> tuple[int, int]:
    """(rows, cols) per chunk: whole rows of competitors, as many as fit the chunk size.

    OP: a chunk is a (rows, p) block of scores against the shared outputs.
    """
    budget = chunk_bytes(device_type, total_memory, mode)
    if problem == "op":
        return max(1, min(p, budget // (FLOAT32_BYTES * p))), p
    row_bytes = FLOAT32_BYTES * p * d
    if row_bytes <= budget:
        return max(1, min(p, budget // row_bytes)), p
    return 1, max(1, min(p, budget // (FLOAT32_BYTES * d)))


@dataclass(frozen=True)
class SourcePlan:
    """How the fused loss walks one instance: the resolved mode, the chunk shape, the storage it reads and the
    precision of its products (recorded per probe)."""

    mode: str  # 'materialize' or 'regenerate' (OP: always 'materialize'); 'none' for solvers without the loss
    chunk_rows: int
    chunk_cols: int
    storage: str = "float32"  # what the products read: 'bfloat16' only for materialised bfloat16 competitors
    precision: str = "highest"  # of the products (lamcap.kernels.products); 'highest' on a CPU


class CompetitorSource(ABC):
    """Walks the competitors of its rows [row0, row1) of one instance in float32 chunks:
    ``tiles(mu0, mu1)`` per row chunk."""

    problem: str
    p: int  # the instance's p: every row competes against p candidates
    d: int
    row0: int  # the rows this source walks (a shard's; [0, p) unsharded)
    row1: int
    device: torch.device
    nbytes: int  # memory held by this source between passes
    chunk_rows: int
    chunk_cols: int
    plan: SourcePlan
    products: Products = HIGHEST  # how its chunks are multiplied (set by make_source)
    targets: torch.Tensor  # (p, d) float32: each input's own target output y_mu (OP) or y^mu_mu (DP)
    exact_float32 = False  # holds the instance's own float32 competitors (exact_block), not a rounding of them

    def row_chunks(self) -> Iterator[tuple[int, int]]:
        """(mu0, mu1) chunks of inputs covering [row0, row1)."""
        for mu0 in range(self.row0, self.row1, self.chunk_rows):
            yield mu0, min(mu0 + self.chunk_rows, self.row1)

    def _set_rows(self, instance: Instance, rows: tuple[int, int]) -> None:
        self.problem, self.p, self.d, self.device = instance.problem, instance.p, instance.d, instance.device
        self.row0, self.row1 = rows
        if not 0 <= self.row0 < self.row1 <= self.p:
            raise InvalidInput(f"row range [{self.row0}, {self.row1}) outside p={self.p}")

    @abstractmethod
    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(nu0, nu1, T) covering nu in [0, p): DP T is (mu1-mu0, d, nu1-nu0); OP T is (nu1-nu0, d)."""

    def _check_rows(self, mu0: int, mu1: int) -> None:
        if not self.row0 <= mu0 < mu1 <= self.row1:
            raise IndexError(f"row range [{mu0}, {mu1}) outside this source's rows [{self.row0}, {self.row1})")

    def _column_ranges(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        for nu0 in range(start, end, self.chunk_cols):
            yield nu0, min(nu0 + self.chunk_cols, end)


class SharedSource(CompetitorSource):
    """OP: the shared outputs Y, held once; every row chunk sees the same tiles."""

    def __init__(self, instance: Instance, chunk_rows: int, chunk_cols: int, rows: tuple[int, int]) -> None:
        self._set_rows(instance, rows)
        self.chunk_rows, self.chunk_cols = chunk_rows, chunk_cols
        self.targets = instance.targets
        self._y = instance.shared_outputs
        self.nbytes = self._y.numel() * self._y.element_size()

    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        self._check_rows(mu0, mu1)
        for nu0, nu1 in self._column_ranges(0, self.p):
            yield nu0, nu1, self._y[nu0:nu1]


class MaterializedSource(CompetitorSource):
    """DP: the competitors of its rows in memory as one d-major (rows, d, p) tensor in the storage dtype."""

    def __init__(self, instance: Instance, chunk_rows: int, chunk_cols: int, storage_dtype: torch.dtype,
                 rows: tuple[int, int]) -> None:
        self._set_rows(instance, rows)
        self.chunk_rows, self.chunk_cols = chunk_rows, chunk_cols
        # The source is the instance rounded to the storage dtype, targets included (self-consistent scores).
        self.targets = instance.targets.to(storage_dtype).float()
        p, d, row0 = self.p, self.d, self.row0
        # Filled block by block: the peak is the tensor plus one block's generation (on a GPU a quarter of a
        # default chunk, so its temporaries take one chunk; on a CPU CPU_FILL_ELEMENTS), never twice the tensor.
        self._y = torch.empty((self.row1 - row0, d, p), dtype=storage_dtype, device=self.device)
        chunk = chunk_bytes(self.device.type, device_memory_bytes(self.device), "materialize")
        piece = chunk // (FLOAT32_BYTES * GENERATION_OVERHEAD) if self.device.type == "cuda" else CPU_FILL_ELEMENTS
        for mu0, mu1, nu0, nu1 in row_pieces(row0, self.row1, p, d, max(1, piece)):
            self._y[mu0 - row0:mu1 - row0, :, nu0:nu1] = instance.competitor_block(mu0, mu1, nu0, nu1)
        self.nbytes = self._y.numel() * self._y.element_size()
        self.exact_float32 = storage_dtype == torch.float32

    def exact_block(self, mu0: int, mu1: int, nu0: int, nu1: int) -> torch.Tensor:
        """The instance's competitors of rows mu0..mu1-1 (in this source's rows), candidates nu0..nu1-1, d-major
        (a view; float32 storage only: Instance.competitor_block's bits, without regenerating them)."""
        if not self.exact_float32:
            raise InvalidInput("a bfloat16 source holds rounded competitors, not the instance's")
        self._check_rows(mu0, mu1)
        return self._y[mu0 - self.row0:mu1 - self.row0, :, nu0:nu1]

    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        self._check_rows(mu0, mu1)
        rows = self._y[mu0 - self.row0:mu1 - self.row0]
        direct = self.products.low is not None  # bfloat16 read by the products themselves (a GPU)
        for nu0, nu1 in self._column_ranges(0, self.p):
            tile = rows[:, :, nu0:nu1]
            yield nu0, nu1, tile if direct or tile.dtype == torch.float32 else tile.float()


class RegeneratedSource(CompetitorSource):
    """DP: each chunk regenerated from the seed, in one buffer, whenever it is walked."""

    def __init__(self, instance: Instance, chunk_rows: int, chunk_cols: int, rows: tuple[int, int]) -> None:
        self._set_rows(instance, rows)
        self.chunk_rows, self.chunk_cols = chunk_rows, chunk_cols
        self.targets = instance.targets
        self._instance = instance
        self.nbytes = 0

    def tiles(self, mu0: int, mu1: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        self._check_rows(mu0, mu1)
        for nu0, nu1 in self._column_ranges(0, self.p):
            yield nu0, nu1, self._instance.competitor_block(mu0, mu1, nu0, nu1)


def default_chunks(instance: Instance, mode: str) -> tuple[int, int]:
    """(rows, cols) per chunk for this instance on its device (see chunking_for)."""
    device = instance.device
    return chunking_for(instance.problem, instance.d, instance.p, mode, device.type, device_memory_bytes(device))


def default_budget_bytes(device: torch.device) -> int:
    """Memory allowed for materialised competitors when none is given: fixed per device, never free memory."""
    return budget_bytes(device.type, device_memory_bytes(device))


def storage_name(storage_dtype: torch.dtype | str) -> str:
    """'float32', 'bfloat16' or 'auto' for a torch dtype or a name; InvalidInput otherwise."""
    name = _STORAGE_NAMES.get(storage_dtype) if isinstance(storage_dtype, (str, torch.dtype)) else None
    if name is None:
        raise InvalidInput(f"storage_dtype={storage_dtype!r}; expected one of {STORAGE_DTYPES} or 'auto'")
    return name


def _competitor_plan(instance: Instance, mode: str, memory_budget_bytes: int | None, storage_dtype: torch.dtype | str,
                     shards: int) -> tuple[str, str]:
    if mode not in MODES:
        raise InvalidInput(f"unknown competitor mode {mode!r}; expected one of {MODES}")
    if memory_budget_bytes is not None and memory_budget_bytes < 0:
        raise InvalidInput(f"memory_budget_bytes={memory_budget_bytes!r} must be >= 0")
    budget = default_budget_bytes(instance.device) if memory_budget_bytes is None else memory_budget_bytes
    return competitor_plan(instance.problem, instance.d, instance.p, mode, storage_name(storage_dtype), budget, shards)


def resolve_mode(
    instance: Instance, mode: str, memory_budget_bytes: int | None, storage_dtype: torch.dtype | str = torch.float32,
    shards: int = 1,
) -> str:
    """'auto' -> 'materialize' if the largest shard's (rows, d, p) tensor (storage dtype) fits the budget,
    else 'regenerate' (unsharded: the p*p*d tensor). OP always materializes its (p, d) Y, whatever the mode asked.
    """
    return _competitor_plan(instance, mode, memory_budget_bytes, storage_dtype, shards)[0]


def _chunk(value: int | None, default: int, name: str) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"{name}={value!r} must be a positive integer")
    return value


def _products(instance: Instance, storage: str, precision: str) -> tuple[Products, str]:
    """The products of a probe and the precision to record. bfloat16 tiles read directly are multiplied as the
    float32 product they round to ('highest'), whatever was asked for float32 ones; DP's float32 products stay
    'highest' under 'bf16x3' (per-row GEMVs bound by memory gain nothing from tensor cores, while splitting each
    chunk would hold it three times over)."""
    if precision not in MATMUL_PRECISIONS:
        raise InvalidInput(f"unknown matmul_precision {precision!r}; expected one of {MATMUL_PRECISIONS}")
    if instance.problem == "dp" and precision == "bf16x3":
        precision = "highest"
    products = products_for(instance.device, precision)
    if storage == "bfloat16" and products.low is not None:
        return products, "highest"
    return products, products.precision


def plan_source(
    instance: Instance,
    mode: str = "auto",
    *,
    memory_budget_bytes: int | None = None,
    storage_dtype: torch.dtype | str = torch.float32,
    chunk_rows: int | None = None,
    chunk_cols: int | None = None,
    shards: int = 1,
    precision: str = "highest",
) -> SourcePlan:
    """The resolved mode, chunk shape, storage and precision: a pure function of the instance, its device, the
    settings and the number of shards (the same on every shard of a probe)."""
    resolved, storage = _competitor_plan(instance, mode, memory_budget_bytes, storage_dtype, shards)
    default_rows, default_cols = default_chunks(instance, resolved)
    precision_used = _products(instance, storage, precision)[1]
    return SourcePlan(resolved, _chunk(chunk_rows, default_rows, "chunk_rows"),
                      _chunk(chunk_cols, default_cols, "chunk_cols"), storage, precision_used)


def make_source(
    instance: Instance,
    mode: str = "auto",
    *,
    memory_budget_bytes: int | None = None,
    storage_dtype: torch.dtype | str = torch.float32,
    chunk_rows: int | None = None,
    chunk_cols: int | None = None,
    shard: Shard = WHOLE,
    precision: str = "highest",
) -> CompetitorSource:
    """The competitor source for an instance (its `shard`'s rows): mode 'auto', 'materialize' or 'regenerate'."""
    plan = plan_source(instance, mode, memory_budget_bytes=memory_budget_bytes, storage_dtype=storage_dtype,
                       chunk_rows=chunk_rows, chunk_cols=chunk_cols, shards=shard.count, precision=precision)
    rows, cols, span = plan.chunk_rows, plan.chunk_cols, shard.rows(instance.p)
    if instance.problem == "op":
        source: CompetitorSource = SharedSource(instance, rows, cols, span)
    elif plan.mode == "materialize":
        source = MaterializedSource(instance, rows, cols, getattr(torch, plan.storage), span)
    else:
        source = RegeneratedSource(instance, rows, cols, span)
    source.plan = plan
    source.products = _products(instance, plan.storage, precision)[0]
    return source

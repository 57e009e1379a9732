"""How much memory one probe needs, estimated before anything is allocated.

`probe_memory(...)` adds up the tensors a solve holds at its peak: the inputs and targets, the
competitors in the mode `auto` resolves to, the weights with Adam's state, the scores of one
streamed chunk, and the float64 verification pass. It is an upper estimate (every part counted
as if alive at once), used to refuse a probe that cannot fit before any work: `trial` and `sweep`
call `check_fits` with the device's memory, and a sweep caps each search's p at `largest_p`.

A sharded probe (lamcap.kernels.sharding) is estimated per shard, for its largest shard: the
competitors and the per-row tensors of ceil(p / k) rows, the inputs and weights replicated.
`auto_shards` picks the smallest shard count whose shard's competitors can be held in memory.
"""
from __future__ import annotations

from dataclasses import dataclass

from lamcap.errors import InvalidInput
from lamcap.kernels.vocabulary import STORAGE_BYTES

FLOAT32, FLOAT64 = 4, 8

# ---- the competitor plan's rules (lamcap.kernels.competitors.plan_source uses these) -----------------
DEFAULT_CPU_BUDGET_BYTES = 1 << 30  # 1 GiB for materialised competitors on CPU
# Of the GPU's total memory: the rest holds the chunk temporaries (GENERATION_OVERHEAD chunks while a
# chunk is generated, 1/32 of the memory each), the CUDA context, inputs, verification blocks.
CUDA_BUDGET_FRACTION = 0.6
CUDA_CHUNK_DIVISOR = 32  # a CUDA chunk holds total_memory / 32 bytes of float32 competitors
# Float32 bytes of competitors per chunk on a CPU. A materialised chunk must stay in the last-level
# cache between the two passes over it (benchmarks/kernel.py: 8 MiB is best on a 16 MiB L3); a
# regenerated one brings 4x its size in generation temporaries, which had best stay in L2
# (benchmarks/generator.py: a 0.4 MiB chunk generates at 9 ns per sample, a 7.9 MiB one at 31).
CPU_CHUNK_BYTES = {"materialize": 8 << 20, "regenerate": 1 << 20}
GENERATION_OVERHEAD = 4  # temporaries of lamcap.kernels.gaussian, in units of the float32 block generated
# Float64 scores of one W held between its exact passes (lamcap.kernels.scores): the rows x p matrix of a shard
# is computed once when it fits this much, else recomputed by each pass.
CPU_HELD_SCORE_BYTES = 256 << 20
CUDA_HELD_SCORE_DIVISOR = 16  # of a GPU's total memory


def held_score_bytes(device_type: str, total_memory: int | None) -> int:
    """The most float64 score bytes a probe holds between its exact passes on this device."""
    if device_type == "cuda":
        return (total_memory or 0) // CUDA_HELD_SCORE_DIVISOR
    return CPU_HELD_SCORE_BYTES


def chunk_bytes(device_type: str, total_memory: int | None, mode: str) -> int:
    """Target float32 size of one competitor chunk: a cache's worth on a CPU, 1/32 of a GPU's memory."""
    if device_type == "cuda":
        if total_memory is None:
            raise InvalidInput("a CUDA plan needs the device's total memory")
        return max(1 << 20, total_memory // CUDA_CHUNK_DIVISOR)
    return CPU_CHUNK_BYTES["regenerate" if mode == "regenerate" else "materialize"]


def budget_bytes(device_type: str, total_memory: int | None) -> int:
    """Memory allowed for materialised competitors when none is given: fixed per device, never free memory."""
    if device_type == "cuda":
        if total_memory is None:
            raise InvalidInput("a CUDA plan needs the device's total memory")
        return int(total_memory * CUDA_BUDGET_FRACTION)
    return DEFAULT_CPU_BUDGET_BYTES


# ---- one probe's memory ---------------------------------------------------------------------------
VERIFY_BLOCK_BYTES = 1 << 25  # kernels.verify.BLOCK_BYTES: float64 competitors per streamed block on a CPU
VERIFY_BLOCK_COPIES = 4  # the block, its scores, the mask and exp() alive together
CHUNK_COPIES = 3  # a fused-loss chunk, its upcast and its scores/probabilities
OVERHEAD_BYTES = 64 << 20  # interpreter, torch and allocator slack per probe


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per part of one probe; `total` is what must fit on the device."""

    inputs: int
    competitors: int
    weights: int
    chunks: int
    verification: int
    mode: str

    @property
    def total(self) -> int:
        return self.inputs + self.competitors + self.weights + self.chunks + self.verification + OVERHEAD_BYTES

    def describe(self) -> str:
        parts = {"competitors": self.competitors, "inputs": self.inputs, "weights": self.weights,
                 "chunks": self.chunks, "verification": self.verification}
        top = sorted(parts.items(), key=lambda kv: -kv[1])[:2]
        return f"{human(self.total)} ({', '.join(f'{k} {human(v)}' for k, v in top)})"


def largest_shard(p: int, count: int) -> int:
    """Rows of the largest of `count` shards of p rows (lamcap.kernels.sharding.shard_rows): ceil(p / count)."""
    return -(-p // count)


def human(n: float) -> str:
    """Bytes as a short human string (KiB, MiB, GiB, TiB, PiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def competitor_mode(problem: str, d: int, p: int, mode: str, storage_bytes: int, budget: int, shards: int = 1) -> str:
    """The mode a probe's fused loss runs in, the one rule every layer uses: OP holds its (p, d) outputs
    ('materialize', whatever was asked); DP 'auto' materialises when the largest shard's (rows, d, p) tensor of
    `storage_bytes` per entry fits `budget` bytes, and regenerates otherwise; an explicit mode is kept.
    (Storage 'auto' counts 2 bytes, STORAGE_BYTES: it materialises exactly when bfloat16 fits.)"""
    if problem == "op":
        return "materialize"
    if mode != "auto":
        return mode
    return "materialize" if largest_shard(p, max(1, min(shards, p))) * p * d * storage_bytes <= budget else "regenerate"


def competitor_plan(problem: str, d: int, p: int, mode: str, storage_dtype: str, budget: int,
                    shards: int = 1) -> tuple[str, str]:
    """(mode, storage dtype) of a probe's competitors, by competitor_mode: storage 'auto' holds float32 where that
    fits the budget, bfloat16 where only that fits, and regenerates otherwise. The storage is what the fused
    loss reads: 'float32' for OP and for regenerated competitors."""
    if problem == "op":
        return "materialize", "float32"
    if storage_dtype != "auto":
        resolved = competitor_mode(problem, d, p, mode, STORAGE_BYTES[storage_dtype], budget, shards)
        return resolved, storage_dtype if resolved == "materialize" else "float32"
    if mode == "regenerate":
        return "regenerate", "float32"
    if competitor_mode(problem, d, p, "auto", STORAGE_BYTES["float32"], budget, shards) == "materialize":
        return "materialize", "float32"
    resolved = competitor_mode(problem, d, p, mode, STORAGE_BYTES["bfloat16"], budget, shards)
    return resolved, "bfloat16" if resolved == "materialize" else "float32"


def step_work(problem: str, d: int, p: int, mode: str = "materialize") -> float:
    """The work of one loss + gradient step that its time is fitted to: OP 4 p^2 d flops (scores, then the
    softmax-weighted sum); DP 2 p^2 d competitor reads (materialised) or p^2 d generated samples (regenerated)."""
    n = float(p) * p * d
    if problem == "op":
        return 4.0 * n
    return n if mode == "regenerate" else 2.0 * n


def _materialize_limit(device_type: str, total_memory: int | None, memory_budget_bytes: int | None) -> int:
    return memory_budget_bytes if memory_budget_bytes is not None else budget_bytes(device_type, total_memory)


def probe_memory(problem: str, d: int, p: int, rank: int, solver: str, *, mode: str = "auto",
                 storage_dtype: str = "float32", device_type: str = "cpu", total_memory: int | None = None,
                 memory_budget_bytes: int | None = None, shards: int = 1) -> MemoryEstimate:
    """Peak bytes of one probe (of its largest shard when it runs on `shards` devices; see the module
    docstring); integer arithmetic on the competitor plan's rules (lamcap.kernels.competitors: the same
    budget, mode and chunk size a solve would use).

    total_memory: the GPU's total memory for device_type 'cuda' (its plan depends on it), else None.
    """
    mine = largest_shard(p, max(1, min(shards, p)))  # the rows of the largest shard
    limit = _materialize_limit(device_type, total_memory, memory_budget_bytes)
    resolved, stored = competitor_plan(problem, d, p, mode, storage_dtype if storage_dtype in STORAGE_BYTES
                                       else "float32", limit, shards)
    storage = STORAGE_BYTES[stored]
    rows = p * d
    inputs = rows * FLOAT32 * 2 + mine * d * FLOAT64  # X, targets (float32) and the shard's X in float64
    if problem == "op":
        inputs += rows * FLOAT32  # the shared outputs
    competitors = mine * p * d * storage if problem == "dp" and resolved == "materialize" else 0
    params = d * d if rank >= d else 2 * d * rank
    weights = params * FLOAT32 * 4 + d * d * FLOAT64 * 3  # W (or A, B) with grad and Adam moments; SVD
    chunks = 0
    if solver == "adam":
        weights += mine * d * FLOAT32 * 3  # Z, dL/dZ and the softmax-weighted sums of the shard's rows
        copies = GENERATION_OVERHEAD + 1 if resolved == "regenerate" else CHUNK_COPIES
        chunks = copies * chunk_bytes(device_type, total_memory, "regenerate" if resolved == "regenerate" else
                                      "materialize")
    # a CUDA block holds 1/CUDA_CHUNK_DIVISOR of the GPU's memory in float64 (kernels.verify.block_elements)
    block = VERIFY_BLOCK_BYTES if device_type != "cuda" else (total_memory or 0) // CUDA_CHUNK_DIVISOR
    scores = mine * p * FLOAT64  # held between the exact passes when they fit (lamcap.kernels.scores)
    held = scores if scores <= held_score_bytes(device_type, total_memory) else 0
    verification = VERIFY_BLOCK_COPIES * block + mine * d * FLOAT64 + p * FLOAT64 * 8 + held
    return MemoryEstimate(inputs, competitors, weights, chunks, verification, "shared" if problem == "op" else resolved)


def auto_shards(problem: str, d: int, p: int, k_max: int, *, storage_dtype: str = "float32",
                device_type: str = "cpu", total_memory: int | None = None,
                memory_budget_bytes: int | None = None) -> int:
    """The smallest shard count in 1..min(k_max, p) whose largest shard's competitors fit the materialize
    budget (the device's, as lamcap.kernels.competitors.budget_bytes, or memory_budget_bytes); OP: 1 (its
    outputs are shared, never split); k_max (capped at p) when no count fits: then every shard regenerates."""
    top = max(1, min(k_max, p))
    if problem == "op":
        return 1
    limit = _materialize_limit(device_type, total_memory, memory_budget_bytes)
    row_bytes = p * d * STORAGE_BYTES.get(storage_dtype, FLOAT32)
    for k in range(1, top + 1):
        if largest_shard(p, k) * row_bytes <= limit:
            return k
    return top


def check_fits(estimate: MemoryEstimate, limit_bytes: int, what: str, device: str) -> None:
    """InvalidInput with the estimate and the limit when the probe cannot fit."""
    if estimate.total > limit_bytes:
        hint = " (mode regenerate keeps no competitors in memory)" if estimate.mode == "materialize" else ""
        raise InvalidInput(f"{what} needs about {estimate.describe()} of memory; this {device} has "
                           f"{human(limit_bytes)}{hint}")


def largest_p(problem: str, d: int, rank: int, solver: str, limit_bytes: int, **kwargs) -> int:
    """The largest p whose probe fits in limit_bytes (1 when not even p = 2 fits)."""
    if probe_memory(problem, d, 2, rank, solver, **kwargs).total > limit_bytes:
        return 1
    lo, hi = 2, 4
    while probe_memory(problem, d, hi, rank, solver, **kwargs).total <= limit_bytes:
        lo, hi = hi, hi * 2
        if hi > 1 << 62:
            return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe_memory(problem, d, mid, rank, solver, **kwargs).total <= limit_bytes:
            lo = mid
        else:
            hi = mid
    return lo


def host_memory_bytes() -> int:
    """Memory a probe on this host's CPU may use: MemAvailable (Linux), else the physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def memory_limit_bytes(device: str) -> int:
    """What one probe in this process may use: its share of its CUDA device's total memory
    (lamcap.kernels.device_share), or the host's available memory."""
    if device == "cuda":
        from lamcap.kernels.device_share import memory_share

        return int(gpu_total_memory() * memory_share())
    return host_memory_bytes()


def gpu_total_memory() -> int:
    """Total memory of this process's current CUDA device."""
    import torch

    return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)

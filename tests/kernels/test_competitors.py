"""The competitor plan (mode, chunk shape) is a pure function of the probe, the device and its total memory."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lamcap.kernels import budget as budgets
from lamcap.kernels import competitors, verify
from lamcap.kernels.budget import CUDA_BUDGET_FRACTION, CUDA_CHUNK_DIVISOR
from lamcap.kernels.competitors import SourcePlan, make_source, plan_source
from lamcap.kernels.disorder import Instance, InstanceSpec
from lamcap.kernels.outcome import GENERATORS, PLAN_MODES
from lamcap.kernels.settings import SolverSettings
from lamcap.kernels.solvers import solve

TOTAL = 80 * 10**9  # bytes of the emulated GPU


class FakeAllocator:
    """torch.cuda as a long-lived actor sees it: fixed total memory, reserved memory that only grows."""

    def __init__(self) -> None:
        self.reserved = 0
        self.free_queries = 0

    def mem_get_info(self, device=None) -> tuple[int, int]:
        self.free_queries += 1
        return TOTAL - self.reserved, TOTAL

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(total_memory=TOTAL))
        monkeypatch.setattr(torch.cuda, "mem_get_info", self.mem_get_info)
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: self.reserved)


@pytest.mark.parametrize("storage_dtype", [torch.float32, torch.bfloat16])
def test_plan_does_not_change_after_a_large_probe_on_the_same_actor(monkeypatch, storage_dtype):
    allocator = FakeAllocator()
    allocator.install(monkeypatch)
    d, p = 256, 4500  # 20.7 GB of float32 competitors: under half of a fresh GPU, over half of what is left later
    needed = p * p * d * 4
    instance = Instance(InstanceSpec("dp", d, p, seed=0), "cuda")
    fresh = plan_source(instance, "auto", storage_dtype=storage_dtype)
    fresh_block = verify.block_elements(instance.device)
    allocator.reserved = 70 * 10**9  # a large probe ran; the caching allocator keeps its memory reserved
    assert (needed <= (TOTAL - 0) / 2) != (needed <= (TOTAL - allocator.reserved) / 2)  # the old rule would flip
    later = plan_source(instance, "auto", storage_dtype=storage_dtype)
    assert later == fresh and verify.block_elements(instance.device) == fresh_block
    assert allocator.free_queries == 0
    chunk = TOTAL // CUDA_CHUNK_DIVISOR
    storage = "float32" if storage_dtype == torch.float32 else "bfloat16"
    assert needed <= TOTAL * CUDA_BUDGET_FRACTION
    assert fresh == SourcePlan("materialize", chunk // (4 * p * d), p, storage)


def test_regenerate_plan_on_cuda_follows_total_memory_only(monkeypatch):
    FakeAllocator().install(monkeypatch)
    d, p = 256, 10000  # 102 GB: more than any budget of an 80 GB device
    plan = plan_source(Instance(InstanceSpec("dp", d, p, seed=0), "cuda"), "auto")
    assert plan == SourcePlan("regenerate", (TOTAL // CUDA_CHUNK_DIVISOR) // (4 * p * d), p)
    op = plan_source(Instance(InstanceSpec("op", d, p, seed=0), "cuda"), "regenerate")
    assert op == SourcePlan("materialize", min(p, (TOTAL // CUDA_CHUNK_DIVISOR) // (4 * p)), p)


@pytest.mark.parametrize("p,d", [(50, 8), (700, 40), (3000, 1000)])
def test_cpu_chunks_hold_whole_rows_within_the_chunk_bytes(p, d):
    for mode in ("materialize", "regenerate"):
        rows, cols = competitors.chunking_for("dp", d, p, mode, "cpu", None)
        budget = budgets.CPU_CHUNK_BYTES[mode]
        assert rows * cols * d * 4 <= max(budget, 4 * d)
        assert cols == p or rows == 1
        whole_rows = cols == p and (rows == p or (rows + 1) * p * d * 4 > budget)
        assert whole_rows or (rows == 1 and (cols + 1) * d * 4 > budget)


def test_every_probe_records_its_generator_and_plan():
    spec = InstanceSpec("dp", 6, 20, seed=2)
    settings = SolverSettings(max_steps=5, mode="regenerate")
    adam = solve(spec, "adam", 6, settings)
    plan = make_source(Instance(spec), "regenerate").plan
    assert (adam.generator, adam.mode, adam.chunk_rows, adam.chunk_cols) == (
        Instance.generator, plan.mode, plan.chunk_rows, plan.chunk_cols)
    hebbian = solve(spec, "hebbian", 6)
    got = (hebbian.generator, hebbian.mode, hebbian.chunk_rows, hebbian.chunk_cols)
    assert got == (Instance.generator, "none", 0, 0)


def test_the_store_knows_every_generator_and_plan_mode():
    from lamcap.store.schema import PROBES

    assert PROBES["generator"].categories == GENERATORS and PROBES["mode"].categories == PLAN_MODES
    assert {"generator", "mode", "chunk_rows", "chunk_cols"} <= set(PROBES.names)

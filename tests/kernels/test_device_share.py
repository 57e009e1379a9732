"""A process's share of its GPU (lamcap.kernels.device_share): every memory rule of a probe reads the GPU's total
memory times the share, and a probe records it. CUDA is faked by its device properties: no GPU needed."""
from __future__ import annotations

import types

import pytest
import torch

from lamcap.errors import InvalidInput
from lamcap.kernels import budget, competitors, device_share
from lamcap.kernels.disorder import InstanceSpec
from lamcap.kernels.solvers import solve

TOTAL = 141 * 2**30  # an H200's memory


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch.cuda reports one device of TOTAL bytes; the share is put back afterwards."""
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: types.SimpleNamespace(total_memory=TOTAL))
    yield
    device_share.set_memory_share(1.0, "cpu")


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_every_plan_of_a_cuda_probe_reads_its_share_of_the_gpu(fake_gpu, k):
    device_share.set_memory_share(1 / k, "cpu")  # 'cpu': no allocator to cap here; the plan is what is tested
    cuda = torch.device("cuda")
    assert competitors.device_memory_bytes(cuda) == int(TOTAL / k)
    assert budget.memory_limit_bytes("cuda") == int(TOTAL / k)
    # the materialize budget and the chunk size are those of a GPU of TOTAL / k bytes
    assert competitors.default_budget_bytes(cuda) == budget.budget_bytes("cuda", int(TOTAL / k))
    rows, cols = competitors.chunking_for("dp", 256, 6000, "materialize", "cuda", competitors.device_memory_bytes(cuda))
    assert (rows, cols) == competitors.chunking_for("dp", 256, 6000, "materialize", "cuda", int(TOTAL / k))


def test_a_cpu_probe_ignores_the_share_and_records_a_whole_device():
    device_share.set_memory_share(0.25, "cpu")
    try:
        assert competitors.device_memory_bytes(torch.device("cpu")) is None
        out = solve(InstanceSpec("op", 8, 12, 0), "hebbian", 8)
        assert out.memory_share == 1.0
    finally:
        device_share.set_memory_share(1.0, "cpu")


def test_the_share_halves_what_auto_materializes(fake_gpu):
    """A DP probe whose competitors fit 60% of the whole GPU but not of half of it: the half regenerates."""
    d = 256
    whole, half = budget.budget_bytes("cuda", TOTAL), budget.budget_bytes("cuda", TOTAL // 2)
    p = int(((whole + half) / 2 / (4 * d)) ** 0.5)
    assert half < 4 * p * p * d < whole
    assert budget.competitor_mode("dp", d, p, "auto", 4, whole) == "materialize"
    assert budget.competitor_mode("dp", d, p, "auto", 4, half) == "regenerate"
    device_share.set_memory_share(0.5, "cpu")
    assert competitors.default_budget_bytes(torch.device("cuda")) == half


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, float("nan"), True, "half"])
def test_a_bad_share_is_named(bad):
    with pytest.raises(InvalidInput, match="memory share"):
        device_share.set_memory_share(bad, "cpu")
    assert device_share.memory_share() == 1.0

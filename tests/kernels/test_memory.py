"""lamcap.kernels.memory: each measurement reports its own peak, not the largest one the process ever had."""
from __future__ import annotations

import os

import pytest
import torch

from lamcap.kernels.memory import PeakMemory

MIB = 2**20


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's clear_refs")
def test_a_small_job_after_a_large_one_reports_its_own_peak():
    memory = PeakMemory("cpu")
    memory.start()
    big = torch.ones(64 * MIB // 4)  # 64 MiB, touched
    large = memory.peak()
    del big
    memory.start()
    small = torch.ones(MIB // 4)
    assert large >= 60 * MIB and memory.peak() < 16 * MIB
    del small

"""Every stored sweep and published threshold names its instances by (problem, d, p, seed): those instances must
never change. The hash below was computed by lamcap 0.2.0's first release of the kernel '2026.12-1' generator
(before the fused CUDA generator, the CPU generator's signed tables and per-thread workspace) and is reproduced
bit for bit by every later version."""
from __future__ import annotations

import hashlib

import torch

from lamcap.kernels.disorder import Instance, InstanceSpec

PUBLISHED = "72ce4f8835cacee4c76ad7a9091a0112e7735f8b0e74bbfe9e38a01b8786fcfd"


def instance_hash() -> str:
    h = hashlib.sha256()
    for problem in ("op", "dp"):
        for d, p, seed in ((8, 20, 0), (13, 33, 7), (32, 190, 1), (64, 560, 2)):
            inst = Instance(InstanceSpec(problem=problem, d=d, p=p, seed=seed))
            parts = [inst.inputs, inst.targets]
            if problem == "op":
                parts.append(inst.shared_outputs)
            else:  # rows, a ragged corner, a block, and the whole tensor where small
                parts += [inst.competitors(0, min(p, 7), 0, p), inst.competitors(p - 3, p, 5, p - 1),
                          inst.competitor_block(1, 4, 2, min(p, 40))]
                if p <= 200:
                    parts.append(inst.materialize())
            for t in parts:
                h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def test_instances_are_bit_identical_to_the_published_ones():
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):  # the generator's pieces and workspaces must not depend on the thread count
            torch.set_num_threads(n)
            assert instance_hash() == PUBLISHED
    finally:
        torch.set_num_threads(threads)

"""The fused CUDA generator (lamcap.kernels.gaussian_cuda) gives the CPU definition's bits.

Without a GPU: the kernel's source is compiled by the host's C++ compiler (CUDA's intrinsics defined as the
correctly rounded host operations they are, no contraction) and run over blocks of every shape the kernels
ask for, against the torch path; and, where nvcc exists, compiled to PTX for a Hopper GPU, which must hold
no fused multiply-add. With a GPU (tests marked `cuda`): Instance blocks on the device against the CPU's,
over every piece size and launch grid the code uses.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from lamcap.kernels import gaussian_cuda
from lamcap.kernels.disorder import (
    K_SHIFT,
    MU_SHIFT,
    ROW_SHIFT,
    STREAM_INPUTS,
    STREAM_PRIVATE_COMPETITORS,
    Instance,
    InstanceSpec,
)
from lamcap.kernels.gaussian import Stream, _signed, tables

HOST_PRELUDE = r"""
#include <cstring>
typedef long long int64_t;
static inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
static inline float __int2float_rn(int i) { return (float)i; }  // cvtsi2ss: round to nearest even
static inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
static inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
"""
HOST_DRIVER = r"""
extern "C" void fill(int rows, int mids, int cols, int64_t key, int64_t gamma, int64_t i0, int64_t shift_i,
                     int64_t shift_j, int64_t l0, const float* a, const float* b, int* out) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < mids; j++)
            for (int l = 0; l < cols; l++)
                *out++ = lamcap_normal<int>(i, j, l, key, gamma, i0, shift_i, shift_j, l0,
                                            (int64_t)a, (int64_t)b);
}
"""


@pytest.fixture(scope="module")
def host_kernel(tmp_path_factory):
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no host C++ compiler")
    folder = tmp_path_factory.mktemp("kernel")
    source, library = folder / "kernel.cpp", folder / "kernel.so"
    source.write_text(HOST_PRELUDE + gaussian_cuda.KERNEL_SOURCE + HOST_DRIVER)
    subprocess.run([compiler, "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(library), str(source)],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(library))
    lib.fill.argtypes = [ctypes.c_int] * 3 + [ctypes.c_longlong] * 6 + [ctypes.c_void_p] * 3
    a, b = (np.ascontiguousarray(t) for t in tables())

    def run(stream: Stream, i0, rows, shift_i, mids, shift_j, l0, cols) -> torch.Tensor:
        out = np.empty((rows, mids, cols), dtype=np.int32)
        lib.fill(rows, mids, cols, _signed(stream.key), _signed(stream.gamma), i0, shift_i, shift_j, l0,
                 a.ctypes.data, b.ctypes.data, out.ctypes.data)
        return torch.from_numpy(out)

    return run


# (mu0, mu1, nu0, nu1) of DP blocks: whole rows, one row's pieces starting odd or even, odd widths, far rows
BLOCKS = [(0, 3, 0, 37), (5, 6, 1, 36), (2, 4, 7, 8), (36, 37, 0, 1), (0, 1, 11, 30), (4090, 4092, 99, 160)]


@pytest.mark.parametrize("d", [2, 5, 16])
def test_the_kernel_body_gives_the_cpu_bits_for_competitor_blocks(host_kernel, d):
    instance = Instance(InstanceSpec("dp", d, 5000, seed=7))
    stream = Stream.of(7, STREAM_PRIVATE_COMPETITORS)
    for mu0, mu1, nu0, nu1 in BLOCKS:
        want = instance.competitor_block(mu0, mu1, nu0, nu1).view(torch.int32)
        got = host_kernel(stream, mu0, mu1 - mu0, MU_SHIFT, d, K_SHIFT, nu0, nu1 - nu0)
        assert torch.equal(got, want), (mu0, nu0)


@pytest.mark.parametrize("d", [3, 8])
def test_the_kernel_body_gives_the_cpu_bits_for_inputs(host_kernel, d):
    instance = Instance(InstanceSpec("op", d, 300, seed=11))
    got = host_kernel(Stream.of(11, STREAM_INPUTS), 0, 300, ROW_SHIFT, 1, 0, 0, d)[:, 0]
    assert torch.equal(got, instance.inputs.view(torch.int32))


def test_the_ptx_holds_no_fused_multiply_add(tmp_path):
    """NVRTC, like nvcc, would contract b * offset + a into an fma; the _rn intrinsics forbid it."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("no nvcc")
    source = tmp_path / "kernel.cu"
    source.write_text(gaussian_cuda.KERNEL_SOURCE.replace(  # nvcc has int64_t (jiterator typedefs it)
        "template <typename T> T", "template <typename T> __device__ T") + r"""
extern "C" __global__ void fill(const int* i, int* out, int64_t key, int64_t a, int64_t b) {
    int t = threadIdx.x;
    out[t] = lamcap_normal<int>(i[t], i[t], i[t], key, key, 0, 42, 21, 0, a, b);
}
""")
    ptx = tmp_path / "kernel.ptx"
    done = subprocess.run([nvcc, "-ptx", "-arch=sm_90", "-o", str(ptx), str(source)], capture_output=True, text=True,
                          env={**os.environ, "PATH": os.environ.get("PATH", "")})
    assert done.returncode == 0, done.stderr
    text = ptx.read_text()
    assert re.search(r"\bmul\.rn\.f32\b", text) and re.search(r"\badd\.rn\.f32\b", text)
    assert not re.search(r"\bfma\.", text)


# ---- on a GPU ------------------------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@cuda
def test_device_blocks_equal_cpu_blocks_for_every_piece_the_code_asks_for():
    from lamcap.kernels import verify
    from lamcap.kernels.competitors import make_source
    from lamcap.kernels.sharding import row_pieces

    assert gaussian_cuda.enabled(torch.device("cuda"))
    for d, p in ((7, 61), (32, 227), (96, 400)):
        cpu, gpu = Instance(InstanceSpec("dp", d, p, 3)), Instance(InstanceSpec("dp", d, p, 3), "cuda")
        for name in ("inputs", "targets"):
            assert torch.equal(getattr(cpu, name).view(torch.int32), getattr(gpu, name).cpu().view(torch.int32))
        pieces = set(BLOCKS[:5])
        for elements in (d * 5, d * p - 1, 3 * d * p, verify.block_elements(gpu.device), 1 << 20):
            pieces |= set(row_pieces(0, p, p, d, elements))
        for mu0, mu1, nu0, nu1 in sorted(pieces):
            block = gpu.competitor_block(mu0, mu1, nu0, nu1)
            assert block.is_contiguous()
            want = cpu.competitor_block(mu0, mu1, nu0, nu1)
            assert torch.equal(block.cpu().view(torch.int32), want.view(torch.int32))
        for mode in ("materialize", "regenerate"):  # the sources' own chunks and fill pieces
            source = make_source(gpu, mode, chunk_rows=3, chunk_cols=p // 2 + 1)
            for mu0, mu1 in source.row_chunks():
                for (nu0, nu1, tile) in source.tiles(mu0, mu1):
                    want = cpu.competitor_block(mu0, mu1, nu0, nu1)
                    assert torch.equal(tile.cpu().view(torch.int32), want.view(torch.int32))


@pytest.mark.cuda
@cuda
def test_a_launch_beyond_32_bit_offsets_keeps_the_bits():
    """A block over 2^31 bytes runs as several launches (TensorIterator's 32-bit split): sampled against the CPU."""
    d, p = 64, 4200  # 5.4e8 competitors in one block of 2.15 GB, just past 2^31 bytes
    gpu = Instance(InstanceSpec("dp", d, p, 5), "cuda")
    cpu = Instance(InstanceSpec("dp", d, p, 5))
    rows = (1 << 31) // (4 * d * p) + 3
    block = gpu.competitor_block(0, rows, 0, p)
    for mu in (0, rows // 2, rows - 1):
        for nu0 in (0, p - 257):
            want = cpu.competitor_block(mu, mu + 1, nu0, nu0 + 257)
            assert torch.equal(block[mu:mu + 1, :, nu0:nu0 + 257].cpu().view(torch.int32), want.view(torch.int32))
    del block
    torch.cuda.empty_cache()

"""lamcap.kernels.gaussian's samples on a CUDA device in one kernel per block (torch.cuda.jiterator; no Triton).

The CPU torch path (lamcap.kernels.gaussian, lamcap.kernels.disorder) defines every instance. On a GPU the
same construction as a chain of ~23 full-size torch operations is bound by memory traffic (~200 bytes per
sample); here one elementwise kernel goes from an entry's coordinates to its float32 sample: the counter,
state = key + gamma * counter (mod 2^64), splitmix64's finaliser, the word, the table interpolation and the
sign, writing 4 bytes per sample. It gives the CPU's bits because every step is exact or correctly rounded
alike: 64-bit unsigned integer arithmetic, `__int2float_rn` (int32 -> float32, round to nearest even, as
the CPU's conversion), and `__fadd_rn(__fmul_rn(b, offset), a)`: NVRTC would otherwise contract
`b * offset + a` into one fused multiply-add, rounded once where the CPU rounds twice.

A block is laid out (rows, mids, cols) with counter (i0 + i) << shift_i | j << shift_j | (l0 + l) >> 1 and
word (l0 + l) & 1 of the pair's hash (low word first): DP competitors are (mu, k, nu) with shifts (42, 21),
the 2-D streams (row, -, k) with (32, 0). jiterator's inputs are elementwise tensors, so the three index
vectors go in as broadcast int32 tensors, the scalars as int64 extra arguments, and the two 128K-entry
tables by their device addresses (`data_ptr()`); the int32 output holds the float32 bits (`.view`).
tests/kernels/test_gaussian_cuda.py compiles the kernel body with the host's C++ compiler and checks its
bits against the torch path on the CPU; the CUDA-marked tests check the device's bits.
"""
from __future__ import annotations

import os

import torch

from lamcap.kernels.gaussian import FRAC_BITS, KNOT_BITS, Stream, _signed, device_tables

_SLOTS = 32 << KNOT_BITS

KERNEL_SOURCE = r"""
template <typename T> T lamcap_normal(T i, T j, T l, int64_t key, int64_t gamma, int64_t i0, int64_t shift_i,
                                      int64_t shift_j, int64_t l0, int64_t table_a, int64_t table_b) {
    unsigned long long nu = (unsigned long long)(l0 + (long long)l);
    unsigned long long counter = ((unsigned long long)(i0 + (long long)i) << shift_i)
        | ((unsigned long long)(long long)j << shift_j) | (nu >> 1);
    unsigned long long z = (unsigned long long)key + (unsigned long long)gamma * counter;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z = z ^ (z >> 31);
    unsigned int word = (nu & 1ULL) ? (unsigned int)(z >> 32) : (unsigned int)(z & 0xFFFFFFFFULL);
    float x = __int2float_rn((int)(word | 1u));
    int bits = __float_as_int(x);
    int slot = (bits >> FRAC) & (SLOTS - 1);
    float offset = __int2float_rn(bits & ((1 << FRAC) - 1));
    const float* a = reinterpret_cast<const float*>(table_a);
    const float* b = reinterpret_cast<const float*>(table_b);
    float v = __fadd_rn(__fmul_rn(b[slot], offset), a[slot]);
    return (T)((__float_as_int(v) & 0x7FFFFFFF) | (bits & (int)0x80000000));
}
""".replace("FRAC", str(FRAC_BITS)).replace("SLOTS", str(_SLOTS))

ENV_SWITCH = "LAMCAP_FUSED_GENERATOR"  # "0" turns the fused kernel off (the torch path then runs on the GPU too)
# The kernel's int64 extra arguments in the order of its parameters: jiterator hands keyword values to the kernel
# in the order they were declared (a dict's order), after the tensor inputs.
EXTRA_ARGS = ("key", "gamma", "i0", "shift_i", "shift_j", "l0", "table_a", "table_b")
_KERNEL = None
_IOTA: dict[torch.device, torch.Tensor] = {}


def enabled(device: torch.device) -> bool:
    """Whether blocks on `device` come from the fused kernel: CUDA (not ROCm), unless LAMCAP_FUSED_GENERATOR=0."""
    return device.type == "cuda" and torch.version.hip is None and os.environ.get(ENV_SWITCH, "1") != "0"


def _kernel():
    """The jitted kernel (compiled by NVRTC at its first launch, then cached by torch)."""
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = torch.cuda.jiterator._create_jit_fn(KERNEL_SOURCE, **{name: 0 for name in EXTRA_ARGS})
    return _KERNEL


def _iota(n: int, device: torch.device) -> torch.Tensor:
    """0..n-1 as int32 on the device (one growing vector per device, sliced)."""
    found = _IOTA.get(device)
    if found is None or found.numel() < n:
        found = _IOTA[device] = torch.arange(max(n, 1 << 16), dtype=torch.int32, device=device)
    return found[:n]


def normals(stream: Stream, i0: int, rows: int, shift_i: int, mids: int, shift_j: int, l0: int, cols: int,
            device: torch.device) -> torch.Tensor:
    """float32 samples (rows, mids, cols) on the CUDA device, in one kernel: entry [i, j, l] has counter
    (i0 + i) << shift_i | j << shift_j | (l0 + l) >> 1 and word (l0 + l) & 1."""
    a, b = device_tables(device)
    values = dict(key=_signed(stream.key), gamma=_signed(stream.gamma), i0=i0, shift_i=shift_i, shift_j=shift_j,
                  l0=l0, table_a=a.data_ptr(), table_b=b.data_ptr())
    out = _kernel()(_iota(rows, device).view(rows, 1, 1), _iota(mids, device).view(1, mids, 1),
                    _iota(cols, device).view(1, 1, cols), **values)
    return out.contiguous().view(torch.float32)  # (a no-op: TensorIterator lays out a broadcast output row-major)

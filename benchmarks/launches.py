"""Kernel launches per loss + gradient step of the fused loss, counted with torch.profiler on the CPU.

    .venv/bin/python benchmarks/launches.py [--d 256] [--p 6300] [--total-memory 85520809984] [--verify]

In eager mode every leaf operator a CUDA step calls launches (about) one kernel; the CPU profiler
sees the same operator calls. This script profiles one forward + backward of `fused_loss` on the
CPU with the chunking CUDA would use for DP at (d, p) on a device of the given total memory (an
80 GB H100 by default), and counts leaf `aten::` operators, leaving out those that launch nothing on
a GPU (views, reshapes, allocation) and counting device-to-host reads (syncs) apart. The operator
sequence does not depend on d, so the instance is profiled at d = 2 (at the real d the competitor
tensor is 40 GB). The x @ W^T product and the backward are included; the Adam update (a few
foreach kernels) is not. `--verify` also counts one float64 verification (lamcap.kernels.verify.verify:
two passes over score blocks computed once) with the blocks CUDA would use at (d, p).

A CUDA device generates each block in one fused kernel (lamcap.kernels.gaussian_cuda), where a CPU runs the
torch path in pieces: the profile stands in for the fused kernel with one `aten::randn` per block (its
launch count), unless --torch-generator counts the torch path (one piece per block, as on a GPU without it).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import math
from unittest import mock

import torch

NO_LAUNCH = {  # views, metadata and allocation: no kernel on a GPU
    "aten::empty", "aten::empty_strided", "aten::view", "aten::as_strided", "aten::_reshape_alias",
    "aten::unsqueeze", "aten::squeeze", "aten::transpose", "aten::t", "aten::permute", "aten::expand",
    "aten::slice", "aten::select", "aten::diagonal", "aten::alias", "aten::detach", "aten::lift_fresh",
    "aten::resize_", "aten::result_type", "aten::_unsafe_view", "aten::set_", "aten::view_as_real",
    "aten::_view_dtype", "aten::unbind", "aten::split", "aten::narrow", "aten::mT", "aten::numpy_T",
    "aten::resolve_conj", "aten::resolve_neg", "aten::_has_compatible_shallow_copy_type", "aten::is_nonzero",
    "aten::item", "aten::_local_scalar_dense", "aten::empty_like", "aten::detach_",
}
PASSTHROUGH = {  # launch only what they call (a copy when needed)
    "aten::to", "aten::_to_copy", "aten::contiguous", "aten::reshape", "aten::matmul", "aten::einsum",
    "aten::clone", "aten::flatten",
}
# One kernel each on a GPU (on the CPU, GEMMs and reductions first fill their output: not a launch there).
ATOMIC = {
    "aten::bmm", "aten::mm", "aten::addmm", "aten::baddbmm", "aten::mv", "aten::dot", "aten::sum", "aten::amax",
    "aten::amin", "aten::max", "aten::min", "aten::mean", "aten::any", "aten::all", "aten::bincount",
}
SYNCS = {"aten::_local_scalar_dense"}
# A Python scalar operand is wrapped in a 0-dim CPU tensor and cast on the host: no kernel, on any device.
SCALAR_CASTS = {"aten::to", "aten::_to_copy", "aten::copy_"}  # a device-to-host read: the host waits for the device


def launches(event, ops: collections.Counter) -> int:
    """Kernels an operator call launches on a GPU: 1 for a GEMM or a leaf kernel, else what its callees launch."""
    name = event.name
    if name in NO_LAUNCH or (name in SCALAR_CASTS and event.input_shapes and event.input_shapes[0] == []):
        return 0
    if name in ATOMIC:
        ops[name] += 1
        return 1
    inner = sum(launches(child, ops) for child in event.cpu_children if child.name.startswith("aten::"))
    if inner == 0 and name not in PASSTHROUGH:
        ops[name] += 1
        return 1
    return inner


def cuda_chunking(d: int, p: int, mode: str, total_memory: int) -> tuple[int, int]:
    """(rows, cols) per chunk that CUDA would use: the plan of lamcap.kernels.competitors (or the old defaults)."""
    from lamcap.kernels import competitors

    if hasattr(competitors, "chunking_for"):
        return competitors.chunking_for("dp", d, p, mode, "cuda", total_memory)
    # before issue 14: tiles of 32 x 256 when regenerating; whole rows in 512 MiB when materialised
    if mode == "regenerate":
        return 32, 256
    return max(1, min(p, (512 << 20) // (4 * p * d))), p


def count_step(p: int, mode: str, rows: int, cols: int, d_profiled: int = 2) -> tuple[collections.Counter, int]:
    """Leaf operators (name -> calls) and syncs of one loss + gradient step."""
    from torch.profiler import ProfilerActivity, profile

    from lamcap.kernels.competitors import make_source
    from lamcap.kernels.disorder import Instance, InstanceSpec
    from lamcap.kernels.fused_loss import fused_loss

    instance = Instance(InstanceSpec("dp", d_profiled, p, 0))
    source = make_source(instance, mode, chunk_rows=rows, chunk_cols=cols)
    x = instance.inputs
    w = (torch.eye(d_profiled) * 0.5).requires_grad_()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        loss, _ = fused_loss(x @ w.T, source)
        loss.backward()
    return _tally(prof)


def count_verification(d: int, p: int, total_memory: int, d_profiled: int = 2) -> tuple[collections.Counter, int, int]:
    """Leaf operators, syncs and blocks per pass of one verify() with the block rows CUDA would use at d."""
    from unittest import mock

    from torch.profiler import ProfilerActivity, profile

    from lamcap.kernels import verify
    from lamcap.kernels.disorder import Instance, InstanceSpec

    instance = Instance(InstanceSpec("dp", d_profiled, p, 0))
    w = torch.randn(d_profiled, d_profiled, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    if hasattr(verify, "block_elements"):  # whole rows: the rows a CUDA block holds at the real d
        rows = max(1, total_memory // (32 * 8) // (p * d))
        patch = mock.patch.object(verify, "block_elements", lambda device: rows * p * d_profiled)
        blocks = math.ceil(p / rows)
    else:  # before issue 14: 32 rows x `cols` columns, cols from 32 MiB of float64 at the real d
        cols = max(256, ((1 << 25) // (8 * 32 * d)) // 256 * 256)
        patch = mock.patch.object(verify, "BLOCK_BYTES", cols * 8 * 32 * d_profiled)
        blocks = math.ceil(p / 32) * math.ceil(p / cols)
    reads = []
    spies = [mock.patch.object(torch.Tensor, name, _spy(getattr(torch.Tensor, name), reads)) for name in HOST_READS]
    with patch, profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for spy in spies:
            spy.start()
        try:
            verify.verify(instance, w)
        finally:
            for spy in spies:
                spy.stop()
    ops, _ = _tally(prof)
    return ops, len(reads), blocks


HOST_READS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy")  # make a GPU wait


def _spy(method, calls: list):
    def spy(self, *args, **kwargs):
        calls.append(method.__name__)
        return method(self, *args, **kwargs)
    return spy


def _tally(prof) -> tuple[collections.Counter, int]:
    ops: collections.Counter = collections.Counter()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    for event in events:
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None:
            launches(event, ops)
    return ops, sum(e.name in SYNCS for e in events)


@contextlib.contextmanager
def cuda_generation(fused: bool):
    """Blocks generated as a CUDA device would: one stand-in launch per block (fused), or the torch path unpieced."""
    from lamcap.kernels import disorder, gaussian, gaussian_cuda

    if not fused:
        whole = 1 << 62
        with mock.patch.object(gaussian, "PIECE_SAMPLES", whole), mock.patch.object(disorder, "PIECE_SAMPLES", whole):
            yield
        return
    stand_in = lambda s, i0, rows, si, mids, sj, l0, cols, device: torch.randn(rows, mids, cols)  # noqa: E731
    with mock.patch.object(gaussian_cuda, "enabled", lambda device: True), \
            mock.patch.object(gaussian_cuda, "normals", stand_in):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--p", type=int, default=6300)
    parser.add_argument("--total-memory", type=int, default=81559 << 20, help="bytes (80 GB H100: 81559 MiB)")
    parser.add_argument("--modes", nargs="+", default=["materialize", "regenerate"])
    parser.add_argument("--top", type=int, default=8, help="operators listed per mode")
    parser.add_argument("--verify", action="store_true", help="also count one float64 verification")
    parser.add_argument("--torch-generator", action="store_true", help="count the torch generator, not the fused one")
    args = parser.parse_args()
    with cuda_generation(not args.torch_generator):
        report(args)


def report(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    print(f"DP d={args.d} p={args.p}, CUDA device of {args.total_memory / 2**30:.1f} GiB; profiled at d=2")
    for mode in args.modes:
        rows, cols = cuda_chunking(args.d, args.p, mode, args.total_memory)
        chunks = math.ceil(args.p / rows) * math.ceil(args.p / cols)
        ops, syncs = count_step(args.p, mode, rows, cols)
        total = sum(ops.values())
        print(f"{mode:12} chunk {rows} rows x {cols} cols, {chunks} chunks: {total} launches per step "
              f"({total / chunks:.1f} per chunk), {syncs} syncs")
        print("    " + ", ".join(f"{name[6:]} {n}" for name, n in ops.most_common(args.top)))
    if args.verify:
        ops, syncs, blocks = count_verification(args.d, args.p, args.total_memory)
        total = sum(ops.values())
        print(f"{'verify':12} {blocks} blocks per pass, 2 passes: {total} launches "
              f"({total / (2 * blocks):.1f} per block and pass), {syncs} device-to-host reads")
        print("    (blocks held between the passes when their scores fit; lamcap.kernels.scores)")
        print("    " + ", ".join(f"{name[6:]} {n}" for name, n in ops.most_common(args.top)))


if __name__ == "__main__":
    main()

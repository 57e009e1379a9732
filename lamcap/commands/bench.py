"""`lamcap bench kernel`: time and memory of one loss + gradient step of the decoupled loss.

    lamcap bench kernel --problem dp --d 96 --p 1200 --mode regenerate [--json]

Modes: `naive` (the materialised einsum + F.cross_entropy + autograd reference),
`materialize` and `regenerate` (the fused loss). One mode per call, so that the peak memory
is that mode's alone; `benchmarks/kernel.py` runs every mode and prints the ratios. Next to the
step, the same process times the two streaming references of the issue: `torch.sum` over the
(p, p, d) float32 competitor tensor, and `torch.randn` of p * p * d samples.

Peak memory is the growth of the process's peak resident set (Linux: VmHWM, reset before the
step) over its size before the competitors exist; on CUDA it is the allocator's peak.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from lamcap.errors import InvalidInput

BENCH_MODES = ("naive", "materialize", "regenerate")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("bench", help="speed and memory of the fused loss", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["kernel"], help="what to benchmark (kernel: one loss + gradient step)")
    parser.add_argument("--problem", default="dp", help="op or dp (default dp)")
    parser.add_argument("--d", type=int, default=96, help="dimension (default 96)")
    parser.add_argument("--p", type=int, default=1200, help="associations (default 1200)")
    parser.add_argument("--mode", default="materialize", help=f"one of {', '.join(BENCH_MODES)}")
    parser.add_argument("--storage-dtype", default="float32",
                        help="materialize storage: float32, bfloat16 or auto (float32 where it fits, else bfloat16)")
    parser.add_argument("--precision", default="highest",
                        help="matmul precision of the products on a GPU: highest, tf32 or bf16x3 (a CPU: highest)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps after one warm-up (default 5)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 on a busy machine, where threads wait on each "
                             "other)")
    parser.add_argument("--no-references", action="store_true", help="skip the torch.sum / torch.randn timings")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)
    return parser


def _timed(fn, repeats: int, device: str) -> list[float]:
    import torch

    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def step_function(instance, mode: str, storage_dtype: str, precision: str = "highest"):
    """A closure running one loss + gradient step of `mode`, and the bytes of competitors it holds."""
    import torch

    from lamcap.kernels.competitors import make_source
    from lamcap.kernels.fused_loss import fused_loss
    from lamcap.kernels.reference import naive_loss

    d = instance.d
    w0 = torch.randn(d, d, generator=torch.Generator().manual_seed(0)).to(instance.device) / d**0.5
    x = instance.inputs
    if mode == "naive":
        y = instance.materialize()  # contiguous (p, p, d), filled piece by piece
        loss_fn = lambda z: naive_loss(z, y, instance.problem)  # noqa: E731
        held = y.numel() * y.element_size()
    else:
        source = make_source(instance, mode, storage_dtype=storage_dtype, precision=precision)
        loss_fn = lambda z: fused_loss(z, source)  # noqa: E731
        held = source.nbytes

    def step() -> None:
        w = w0.clone().requires_grad_()
        loss, _ = loss_fn(x @ w.T)
        loss.backward()

    return step, held


def reference_times(instance, repeats: int, device: str) -> dict:
    """Median seconds of torch.sum over the float32 (p, p, d) tensor and torch.randn of as many samples."""
    import torch

    n = instance.p * (instance.p if instance.problem == "dp" else 1) * instance.d
    tensor = torch.randn(n, device=device)
    stream = statistics.median(_timed(lambda: tensor.sum(), repeats, device))
    # torch.randn writes into the same buffer: never two full-size tensors at once
    randn = statistics.median(_timed(lambda: torch.randn(n, device=device, out=tensor), max(3, repeats // 2), device))
    tensor = None  # freed before the caller's next allocation
    return {"stream_seconds": stream, "randn_seconds": randn, "tensor_bytes": 4 * n}


def measure(problem: str, d: int, p: int, mode: str, repeats: int = 5, device: str = "cpu",
            storage_dtype: str = "float32", references: bool = True, precision: str = "highest") -> dict:
    """One mode's step time (median over repeats, after a warm-up) and peak memory."""
    import torch

    from lamcap.kernels.disorder import Instance, InstanceSpec
    from lamcap.kernels.memory import PeakMemory

    instance = Instance(InstanceSpec(problem, d, p, 0), device)
    instance.inputs, instance.targets  # noqa: B018 - generated before the baseline: not the loss's memory
    memory = PeakMemory(device)
    memory.start()
    step, held = step_function(instance, mode, storage_dtype, precision)
    step()
    times = _timed(step, repeats, device)
    out = {"problem": problem, "d": d, "p": p, "mode": mode, "storage_dtype": storage_dtype, "precision": precision,
           "device": device,
           "threads": torch.get_num_threads(), "step_seconds": statistics.median(times), "step_times": times,
           "peak_bytes": memory.peak(), "held_bytes": held}
    del step  # frees the mode's competitors before the references allocate their full-size tensor
    if references:
        out.update(reference_times(instance, repeats, device))
    return out


def run(args: argparse.Namespace) -> int:
    from lamcap.kernels.disorder import InstanceSpec
    from lamcap.kernels.solvers import resolve_device

    if args.mode not in BENCH_MODES:
        raise InvalidInput(f"--mode {args.mode!r} is not one of {BENCH_MODES}")
    if args.repeats < 1:
        raise InvalidInput(f"--repeats {args.repeats!r} must be >= 1")
    if args.threads is not None and args.threads < 1:
        raise InvalidInput(f"--threads {args.threads!r} must be >= 1")
    from lamcap.kernels.vocabulary import MATMUL_PRECISIONS, STORAGE_DTYPES

    if args.storage_dtype not in STORAGE_DTYPES:
        raise InvalidInput(f"--storage-dtype {args.storage_dtype!r} is not one of {STORAGE_DTYPES}")
    if args.precision not in MATMUL_PRECISIONS:
        raise InvalidInput(f"--precision {args.precision!r} is not one of {MATMUL_PRECISIONS}")
    InstanceSpec(args.problem, args.d, args.p, 0)  # names a bad problem, d or p
    device = resolve_device(args.device)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    result = measure(args.problem, args.d, args.p, args.mode, args.repeats, device, args.storage_dtype,
                     references=not args.no_references, precision=args.precision)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.problem} d={args.d} p={args.p} mode={args.mode} ({args.storage_dtype}) on {device}, "
          f"{result['threads']} threads")
    print(f"  step (loss + gradient): {result['step_seconds'] * 1e3:.1f} ms (median of {args.repeats})")
    print(f"  peak memory: {result['peak_bytes'] / 2**20:.1f} MiB (competitors held: "
          f"{result['held_bytes'] / 2**20:.1f} MiB)")
    if "stream_seconds" in result:
        print(f"  references: torch.sum over the {result['tensor_bytes'] / 2**20:.0f} MiB float32 tensor "
              f"{result['stream_seconds'] * 1e3:.1f} ms; torch.randn of as many samples "
              f"{result['randn_seconds'] * 1e3:.1f} ms")
    return 0

"""Cost of the counter-based disorder generator against torch.randn, on one CPU thread.

    .venv/bin/python benchmarks/generator.py [--d 96] [--p 1200] [--rows 1 4 18] [--repeats 7]

Times `Instance.competitor_block(mu0, mu0 + rows, 0, p)` (a whole-row chunk of the DP competitors,
as `regenerate` makes it: states, splitmix64, table lookup) and `torch.randn` of as many float32
samples into a preallocated buffer, interleaved in one process so that both see the same load;
prints medians, nanoseconds per sample and their ratio. Also prints the bytes a GPU would move per
sample, counted from the operator sequence of lamcap.kernels.gaussian's torch path (see the README's GPU
section); a CUDA device runs the fused kernel instead (lamcap.kernels.gaussian_cuda: 4 bytes per sample).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

# Bytes read + written per sample by each tensor operation of the generator (int64 states hold 2 samples).
GPU_BYTES_PER_SAMPLE = {
    "states (broadcast add of the axis terms)": 8 / 2,
    "splitmix64: 3 x (shift, mask, xor) + 2 x multiply, int64": (3 * (16 + 16 + 24) + 2 * 16) / 2,
    "word -> |x| (or, int32 -> float32)": 8 + 8,
    "table slot (shift, mask), offset (mask, -> float32)": 8 + 8 + 8 + 8,
    "two table lookups, the sign in the index (index reads + writes)": 8 + 8,
    "a + b * offset": 12 + 12,
}


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=96)
    parser.add_argument("--p", type=int, default=1200)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 4, 18], help="chunk rows (CPU default: 4 at d=96)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from lamcap.kernels.disorder import Instance, InstanceSpec

    instance = Instance(InstanceSpec("dp", args.d, args.p, 0))
    instance.competitor_block(0, 1, 0, args.p)  # builds the table once
    print(f"DP d={args.d} p={args.p}, {args.threads} thread(s); medians of {args.repeats}")
    print(f"{'chunk':>22} {'generator':>11} {'randn':>9} {'ns/sample':>16} {'ratio':>6}")
    for rows in args.rows:
        n = rows * args.d * args.p
        buffer = torch.empty(n)
        gen, ref = [], []
        for _ in range(args.repeats):  # interleaved: both see the same machine load
            gen.append(median_seconds(lambda rows=rows: instance.competitor_block(0, rows, 0, args.p), 1))
            ref.append(median_seconds(lambda n=n, buffer=buffer: torch.randn(n, out=buffer), 1))
        g, r = statistics.median(gen), statistics.median(ref)
        print(f"{rows:>4} rows ({4 * n / 2**20:6.1f} MiB) {g * 1e3:9.1f}ms {r * 1e3:7.1f}ms "
              f"{g / n * 1e9:7.1f} vs {r / n * 1e9:5.1f} {g / r:5.1f}x")
    total = sum(GPU_BYTES_PER_SAMPLE.values())
    print(f"\nGPU memory traffic of the torch path: {total:.0f} bytes per sample (the fused CUDA kernel: 4; "
          "torch.randn: 4)")
    for what, nbytes in GPU_BYTES_PER_SAMPLE.items():
        print(f"  {nbytes:6.1f}  {what}")


if __name__ == "__main__":
    main()

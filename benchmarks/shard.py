"""Sharded probes on this machine's cores: step time, memory per shard, time in communication.

    .venv/bin/python benchmarks/shard.py [--d 64 96] [--p 600 1200] [--k 2] [--steps 20] [--repeats 3]

Every run is a set of fresh spawned processes with one torch thread each: k = 1 is one process
training alone; k > 1 is k processes joined by Gloo on 127.0.0.1 (lamcap.kernels.sharding.joined),
each training its shard of the same DP instance with `materialize`d competitors. In each process:
  * warm-up (lamcap.kernels.solvers.warm_up), then train_adam for steps + 1 steps under PeakMemory
    (the resident high-water mark over the run: the shard's competitors, its chunks, the inputs),
    then train_adam for 1 step; step time = (long - short) / steps, which leaves out building the
    instance; the slowest shard's is reported;
  * time in communication: seconds inside the per-step all-reduce of the long run, per step (waiting
    for the slower shard included: on a busy machine that is most of it).
The median over `repeats` fresh runs is reported, with the 1-minute load average before and after
(the machine is shared: compare ratios within one run). Targets on this 2-core machine:
k = 2 steps >= 1.7x faster than k = 1; peak memory per shard <= 0.55x of unsharded.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pickle
import queue
import socket
import statistics
import sys
import time
import traceback


def measure(collective, d: int, p: int, steps: int, mode: str) -> dict:
    """One process's numbers (runs inside the spawned process)."""
    import dataclasses

    import torch

    from lamcap.kernels.disorder import Instance, InstanceSpec
    from lamcap.kernels.memory import PeakMemory
    from lamcap.kernels.settings import SolverSettings
    from lamcap.kernels.solvers import warm_up
    from lamcap.kernels.solvers.adam import train_adam

    warm_up("cpu")
    spec = InstanceSpec("dp", d, p, seed=0)
    settings = SolverSettings(mode=mode)
    memory = PeakMemory("cpu")
    memory.start()
    comm0 = collective.seconds
    start = time.perf_counter()
    trained = train_adam(Instance(spec, "cpu"), d, dataclasses.replace(settings, max_steps=steps + 1), collective)
    long_run = time.perf_counter() - start
    peak = memory.peak()
    comm = (collective.seconds - comm0) / (steps + 1)
    start = time.perf_counter()
    train_adam(Instance(spec, "cpu"), d, dataclasses.replace(settings, max_steps=1), collective)
    short_run = time.perf_counter() - start
    if trained.status != "max_steps":
        raise RuntimeError(f"the probe stopped early ({trained.status} after {trained.steps} steps): give a larger p")
    return {"step": (long_run - short_run) / steps, "peak": peak, "comm": comm, "w": trained.w.numpy(),
            "mode": trained.plan.mode, "threads": torch.get_num_threads()}


def _process(rank: int, size: int, port: int, args: tuple, results) -> None:
    import torch

    torch.set_num_threads(1)
    from lamcap.kernels.sharding import SOLO, Rendezvous, joined

    try:
        if size == 1:
            out = measure(SOLO, *args)
        else:
            with joined(Rendezvous("127.0.0.1", port, rank, size, timeout_s=600.0), "cpu") as collective:
                out = measure(collective, *args)
        results.put((rank, pickle.dumps(out), ""))
    except BaseException:
        results.put((rank, b"", traceback.format_exc()))


def run(size: int, d: int, p: int, steps: int, mode: str) -> list[dict]:
    """measure() on `size` fresh processes (a Gloo gang when size > 1); their results in rank order."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = [ctx.Process(target=_process, args=(r, size, port, (d, p, steps, mode), results)) for r in range(size)]
    for proc in procs:
        proc.start()
    out: dict[int, dict] = {}
    try:
        while len(out) < size:
            try:
                rank, payload, error = results.get(timeout=5.0)
            except queue.Empty:
                if any(proc.exitcode not in (None, 0) for proc in procs):
                    raise RuntimeError("a benchmark process died") from None
                continue
            if error:
                raise RuntimeError(f"rank {rank} failed:\n{error}")
            out[rank] = pickle.loads(payload)
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    return [out[r] for r in range(size)]


def summary(size: int, d: int, p: int, args: argparse.Namespace) -> dict:
    """Median over repeats of the slowest shard's step, the largest shard's peak, the communication time."""
    runs = [run(size, d, p, args.steps, args.mode) for _ in range(args.repeats)]
    return {"step": statistics.median(max(r["step"] for r in ranks) for ranks in runs),
            "peak": statistics.median(max(r["peak"] for r in ranks) for ranks in runs),
            "comm": statistics.median(max(r["comm"] for r in ranks) for ranks in runs),
            "w": runs[0][0]["w"], "mode": runs[0][0]["mode"]}


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, nargs="+", default=[64, 96])
    parser.add_argument("--p", type=int, nargs="+", default=[600, 1200], help="one p per d")
    parser.add_argument("--k", type=int, default=2, help="shards (processes) against one")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", default="materialize")
    args = parser.parse_args()
    if len(args.p) != len(args.d):
        sys.exit("give one --p per --d")
    load_before = os.getloadavg()[0]
    print(f"DP, mode {args.mode}, one torch thread per process, {args.steps} steps, median of {args.repeats} runs; "
          f"{os.cpu_count()} cores, load average {load_before:.2f} (1 min) before")
    head = (f"{'d':>4} {'p':>5} {'k':>2} {'step ms':>8} {'speed-up':>9} {'peak MiB':>9} {'peak/unsharded':>15} "
            f"{'comm ms/step':>13} {'comm share':>11} {'W rel diff':>11}")
    print(head + "\n" + "-" * len(head))
    for d, p in zip(args.d, args.p):
        one, many = summary(1, d, p, args), summary(args.k, d, p, args)
        diff = float(np.linalg.norm(many["w"] - one["w"]) / np.linalg.norm(one["w"]))
        for k, r in ((1, one), (args.k, many)):
            print(f"{d:4} {p:5} {k:2} {r['step'] * 1e3:8.1f} {one['step'] / r['step']:8.2f}x "
                  f"{r['peak'] / 2**20:9.1f} {r['peak'] / one['peak']:14.2f}x {r['comm'] * 1e3:13.2f} "
                  f"{r['comm'] / r['step']:10.1%} {diff if k > 1 else 0.0:11.1e}")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) after; targets: speed-up >= 1.7x, peak/unsharded <= 0.55x")


if __name__ == "__main__":
    main()

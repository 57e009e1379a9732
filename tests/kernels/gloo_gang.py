"""Run a function on k local processes joined in a Gloo process group (no Ray): a gang for kernel tests.

`run_gang(fn, k, *args)` spawns k processes; each joins the group through
lamcap.kernels.sharding.joined on 127.0.0.1 and returns fn(collective, *args). The result is the
list of the k return values in rank order. `fn` must be importable by name (module level).
"""
from __future__ import annotations

import multiprocessing as mp
import pickle
import queue
import socket
import time
import traceback
from typing import Any, Callable

TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _member(rank: int, size: int, port: int, fn: Callable, args: tuple, results: Any) -> None:
    import torch

    from lamcap.kernels.sharding import Rendezvous, joined

    torch.set_num_threads(1)
    try:
        with joined(Rendezvous("127.0.0.1", port, rank, size, timeout_s=120.0), "cpu") as collective:
            # plain pickle bytes: a tensor put on the queue as is would travel as a shared-memory handle that
            # dies with this process
            results.put((rank, "ok", pickle.dumps(fn(collective, *args))))
    except BaseException:
        results.put((rank, "error", traceback.format_exc()))


def run_gang(fn: Callable, size: int, *args: Any) -> list[Any]:
    """fn(collective, *args) on each of `size` ranks; their results in rank order (RuntimeError if one failed)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_member, args=(r, size, port, fn, args, results), daemon=True) for r in range(size)]
    for proc in procs:
        proc.start()
    out: dict[int, Any] = {}
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(out) < size:
            try:
                rank, status, value = results.get(timeout=1.0)
            except queue.Empty:
                dead = [r for r, proc in enumerate(procs) if r not in out and proc.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"gang of {size}: ranks {dead} died" if dead else
                                       f"the gang of {size} did not answer in {TIMEOUT_S:.0f} s") from None
                continue
            if status != "ok":
                raise RuntimeError(f"rank {rank} of {size} failed:\n{value}")
            out[rank] = pickle.loads(value)
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    return [out[r] for r in range(size)]

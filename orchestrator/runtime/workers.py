"""The probe actor: a long-lived Ray actor that keeps one device warm and runs probes on it.

No math here: an actor only calls a probe runner (by default lamcap.orchestrator.runtime.probe.run_probe,
which calls the kernels). An actor of a gang joins a torch.distributed group through
lamcap.kernels.sharding.joined and leaves it when its shard is done.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Any, Callable

import ray

from lamcap.orchestrator.runtime.probe import run_probe
from lamcap.orchestrator.runtime.trial import solve_trial

Runner = Callable[[Any, Any, str], dict]  # (probe, solver settings, device) -> record; may have .warm_up(device)


ACTOR_ERROR = "lamcap actor"  # prefix of the messages an actor raises at start-up (found again in RayActorError)


def missing_gpu_message() -> str:
    """Why a GPU actor cannot run: the node, the GPUs Ray gave it, and what torch lacks."""
    import torch

    build = torch.version.cuda
    cause = ("torch is a CPU build: install the CUDA build of torch on that node" if build is None else
             "no usable CUDA device: check the NVIDIA driver on that node (nvidia-smi)")
    return (f"{ACTOR_ERROR} on node {ray.util.get_node_ip_address()}: Ray gave it GPU(s) {ray.get_gpu_ids()} "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}) but torch {torch.__version__} "
            f"(CUDA build {build or 'none'}) sees no CUDA device: {cause}")


def actor_info(device: str) -> dict:
    """Where an actor runs and with what: recorded in the store, compared across actors."""
    import platform
    import socket

    import torch

    from lamcap import __version__
    from lamcap.kernels.budget import memory_limit_bytes
    from lamcap.kernels.device_share import memory_share

    ctx = ray.get_runtime_context()
    name = torch.cuda.get_device_name(0) if device == "cuda" else (platform.processor() or platform.machine())
    return {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(), "host": socket.gethostname(),
            "pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "device": device,
            "device_name": name, "memory_bytes": memory_limit_bytes(device), "memory_share": memory_share(),
            "cpus": os.cpu_count() or 1,
            "torch": torch.__version__,
            "cuda": torch.version.cuda or "", "lamcap": __version__}


class ProbeWorker:
    """A long-lived actor that runs probes on one device (one GPU, its share of one, or one CPU thread)."""

    def __init__(self, device: str, runner: Runner | None = None, memory_share: float = 1.0) -> None:
        import torch

        from lamcap.kernels.device_share import set_memory_share

        if device == "cuda" and not torch.cuda.is_available():
            if runner is None:  # the real kernels: never run a GPU sweep's probes on a CPU thread
                raise RuntimeError(missing_gpu_message())
            device = "cpu"  # a custom runner (tests on fake GPU resources) decides itself what it needs
        if device == "cpu":
            torch.set_num_threads(1)  # one core per actor; records do not depend on scheduling
        else:
            torch.zeros(1, device="cuda")  # create the CUDA context now, not in the first probe
        set_memory_share(memory_share, device)  # every probe of this actor plans (and, on CUDA, allocates) with it
        self.device = device
        self.runner = run_probe if runner is None else runner
        warm_up = getattr(self.runner, "warm_up", None)
        if warm_up is not None:  # so that no probe's wall_seconds carries the one-off import costs
            warm_up(device)

    def set_runner(self, runner: Runner | None) -> None:
        """Swap the probe runner (tests reuse warm actors with different fake runners)."""
        self.runner = run_probe if runner is None else runner

    def where(self) -> dict:
        """actor_info: node, GPU ids, device, its name and memory, torch / CUDA / lamcap versions."""
        return actor_info(self.device)

    def run(self, probe: Any, settings: Any) -> tuple[dict, float]:
        """(record, busy seconds) for one probe."""
        start = time.perf_counter()
        record = self.runner(probe, settings, self.device)
        return record, time.perf_counter() - start

    def gang_address(self) -> tuple[str, int]:
        """Where rank 0 of a gang listens: this node's IP and a port free on it now (a fresh one per gang)."""
        ip = ray.util.get_node_ip_address()
        with socket.socket() as sock:
            sock.bind((ip, 0))
            return ip, sock.getsockname()[1]

    def run_shard(self, rendezvous: Any, probe: Any, settings: Any) -> tuple[dict, float]:
        """(record, busy seconds) of this actor's shard of a gang probe: join, run, always leave the group."""
        from lamcap.kernels.sharding import joined

        start = time.perf_counter()
        with joined(rendezvous, self.device) as collective:
            record = self.runner(probe, settings, self.device, collective=collective)
        return record, time.perf_counter() - start

    def run_trial_shard(self, rendezvous: Any, plan: Any) -> tuple[dict, Any]:
        """`lamcap trial`'s (record, verified W) of this actor's shard of a gang trial."""
        from lamcap.kernels.sharding import joined

        with joined(rendezvous, self.device) as collective:
            return solve_trial(dataclasses.replace(plan, device=self.device), collective=collective)


RemoteProbeWorker = ray.remote(max_restarts=0, max_task_retries=0)(ProbeWorker)


def actor_failure(exc: BaseException) -> str:
    """One line from an actor's failure: the lamcap message it raised at start-up, if any."""
    text = str(exc)
    for line in text.splitlines():
        if ACTOR_ERROR in line:
            return line[line.index(ACTOR_ERROR):].strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".strip()


VERSION_KEYS = ("torch", "cuda", "lamcap")



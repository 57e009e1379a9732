"""What devices this machine or a Ray cluster offers, and how much memory one actor may use: device discovery."""
from __future__ import annotations

import os

from lamcap.errors import InvalidInput


def placeable(device: str) -> int:
    """Devices of the kind a gang on `device` needs that the joined Ray cluster has in all (free or not)."""
    import ray

    kind = "GPU" if device == "cuda" else "CPU"
    return int(ray.cluster_resources().get(kind, 0))


def local_devices(device: str) -> int:
    """Devices an embedded Ray would have (the running one's, if this process runs Ray already)."""
    import ray

    if ray.is_initialized():
        return placeable(device)
    if device == "cuda":
        import torch

        return torch.cuda.device_count()
    return os.cpu_count() or 1


def check_placeable(width: int, device: str, have: int) -> None:
    """InvalidInput when a gang of `width` devices is more than the cluster's `have` can ever hold."""
    if width > have:
        kind = "GPU" if device == "cuda" else "CPU"
        raise InvalidInput(f"shards={width}: a gang needs {width} {kind}s at once; the Ray cluster has {have}")


def local_device(device: str) -> str:
    """The device an embedded Ray's actors will use for a spec's `device`; InvalidInput for CUDA where there is none."""
    from lamcap.kernels.solvers import resolve_device

    return resolve_device(device)


def local_pool_size(device: str, workers: int | None) -> int:
    """Actors an embedded Ray's sweep will have on this machine (lamcap.orchestrator.runtime.pool.plan_workers)."""
    if local_device(device) == "cuda":
        import torch

        return min(torch.cuda.device_count(), workers or torch.cuda.device_count())
    return workers or os.cpu_count() or 1


def actor_memory(info: dict) -> int:
    """What one actor may use: its GPU's memory, or its host's available memory over the host's cores."""
    if info["device"] == "cuda":
        return int(info["memory_bytes"])
    return int(info["memory_bytes"]) // max(1, int(info.get("cpus", 1)))

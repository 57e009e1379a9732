"""Starting an embedded Ray, or joining a cluster, and stopping it again."""
from __future__ import annotations

import logging

import ray


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start an embedded local Ray (address None) or join a cluster ('auto' or a URL); no-op if up."""
    if ray.is_initialized():
        return
    if address is None:  # "local": a new instance even where `ray start` left a cluster's address in /tmp/ray
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.ERROR,
                 object_store_memory=256 * 1024**2, configure_logging=True)
    else:
        ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR)


def stop_ray() -> None:
    """Shut down (or disconnect from) Ray."""
    if ray.is_initialized():
        ray.shutdown()

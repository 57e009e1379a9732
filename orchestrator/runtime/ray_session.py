"""Starting an embedded Ray, or joining a cluster, and stopping it again.

An embedded Ray's processes must not outlive their sweep: a reaper (lamcap.orchestrator.runtime.reaper) ends
them if the driver dies without shutting Ray down. Ray's own log lines (its workers' output, the raylet's
messages about dead workers) stay in Ray's log files unless `ray_logs` asks for them on the terminal: lamcap
says in its own words what happened.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

import ray

from lamcap.orchestrator.runtime.reaper import children_of, descendants, watch

log = logging.getLogger(__name__)
_reaper_pipe: int | None = None  # the write end only this driver holds (see reaper.watch)
_outer_handlers: dict[int, object] = {}  # the signal handlers start_ray replaced, for stop_ray to put back


def start_ray(address: str | None = None, num_cpus: int | None = None, ray_logs: bool = False) -> None:
    """Start an embedded local Ray (address None) or join a cluster ('auto' or a URL); no-op if up."""
    global _reaper_pipe
    if ray.is_initialized():
        return
    if address is None:  # "local": a new instance even where `ray start` left a cluster's address in /tmp/ray
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.ERROR,
                 object_store_memory=256 * 1024**2, configure_logging=True, log_to_driver=ray_logs)
        _reaper_pipe = watch(descendants(children_of(os.getpid())))  # agents too: orphans leave the tree
    else:
        ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=ray_logs)
    if not ray_logs:
        _quiet_error_listener()
    _stop_on_signals()


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _stop_on_signals() -> None:
    """SIGTERM (`kill`, `timeout`, a batch system) and SIGINT stop a sweep as Ctrl-C does: cleanly, resumable.

    After ray.init, whose own SIGTERM handler dumps a stack and exits; and SIGINT even where lamcap was started
    with it ignored (a script's background job inherits SIG_IGN), so `timeout -s INT` and `kill -INT` work there.
    Signals reach Python's main thread only: a sweep started from another thread keeps the process's handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, _interrupt)):
        _outer_handlers.setdefault(sig, signal.getsignal(sig))
        signal.signal(sig, handler)


def _restore_signals() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, handler in _outer_handlers.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    _outer_handlers.clear()


def _quiet_error_listener() -> None:
    """Route the lines Ray's error listener prints on the driver's terminal ("(raylet) A worker died ...") to
    lamcap's debug log instead: lamcap reports what happened to a probe in its own words. (The listener
    thread looks the printing function up in its module at every message, so replacing it takes effect.)"""
    try:
        from ray._private import worker as ray_worker
    except ImportError:  # Ray's internals moved: its lines stay on the terminal
        return
    if getattr(ray_worker, "print_to_stdstream", None) is None:
        return

    def to_debug_log(data: dict, ignore_prefix: bool = False) -> None:
        for line in data.get("lines", []):
            log.debug("(%s) %s", data.get("pid", "ray"), line)

    ray_worker.print_to_stdstream = to_debug_log


def stop_ray() -> None:
    """Shut down (or disconnect from) Ray, and release the reaper (it ends whatever did not stop)."""
    global _reaper_pipe
    if ray.is_initialized():
        ray.shutdown()
    _restore_signals()
    if _reaper_pipe is not None:
        os.close(_reaper_pipe)
        _reaper_pipe = None

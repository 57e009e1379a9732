"""Peak memory of one piece of work: the CUDA allocator's peak, or the process's resident high-water mark.

On Linux the high-water mark (VmHWM) is reset at `start()` (`/proc/self/clear_refs`), so a
long-lived actor reports each probe's own peak, not the largest one it ever ran. Elsewhere it
falls back to the growth of `ru_maxrss`, which only rises (an upper bound of 0 after a larger probe).
"""
from __future__ import annotations

import resource
import sys

import torch


class PeakMemory:
    """`start()`, do the work, then `peak()`: bytes above the baseline at `start()`."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.base = 0

    def start(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        _reset_high_water_mark()
        self.base = _resident_bytes()

    def peak(self) -> int:
        if self.device == "cuda":
            torch.cuda.synchronize()
            return int(torch.cuda.max_memory_allocated() - self.base)
        return max(0, _high_water_bytes() - self.base)


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_high_water_mark() -> None:
    try:  # Linux >= 4.0: "5" resets VmHWM to the current resident size
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _resident_bytes() -> int:
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else _maxrss_bytes()


def _high_water_bytes() -> int:
    kib = _status_kib("VmHWM")
    return kib * 1024 if kib is not None else _maxrss_bytes()

"""Ends an embedded Ray's processes once the sweep that started them is gone, however it went (a SIGKILL too).

`watch(...)` starts this module as a process of its own session, holding the read end of a pipe whose write
end only the sweep's driver holds. While the driver lives, the reaper notes every descendant of the Ray
processes the driver started (agents and workers come and go; an orphan is reparented away from its tree, so
each is remembered when first seen, with its start time against pid reuse). When the driver exits or is
killed, the pipe reads end-of-file: after a grace period (a clean `ray.shutdown()` ends everything itself)
the reaper ends every remembered process still running. Linux only; elsewhere `watch` does nothing.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

GRACE_S = 5.0
POLL_S = 1.0  # how often the reaper notes the processes below the Ray it watches


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids of every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid ...
        tree.setdefault(int(fields[1]), []).append(int(name))
    return tree


def children_of(pid: int) -> list[int]:
    """The pids of a process's children (none off Linux)."""
    return _children().get(pid, []) if os.path.isdir("/proc") else []


def descendants(pids: list[int]) -> list[int]:
    """The given pids that still run, and every process below them."""
    tree, out, todo = _children(), [], list(pids)
    while todo:
        pid = todo.pop()
        if pid in out or not os.path.exists(f"/proc/{pid}"):
            continue
        out.append(pid)
        todo += tree.get(pid, [])
    return out


def watch(pids: list[int]) -> int | None:
    """Start a reaper for the processes `pids` (and their descendants); returns the pipe's write end to keep
    open for as long as they should live (closing it, or dying, releases them), or None off Linux."""
    if not sys.platform.startswith("linux") or not pids:
        return None
    read, write = os.pipe()
    subprocess.Popen([sys.executable, "-m", "lamcap.orchestrator.runtime.reaper", str(read), *map(str, pids)],
                     pass_fds=(read,), start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(read)
    return write


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), None once it has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return None if fields[0] == "Z" else int(fields[19])


def _note(known: dict[int, int], roots: list[int]) -> None:
    """Remember every process now below the roots or below one already remembered."""
    for pid in descendants([*roots, *known]):
        started = start_time(pid)
        if started is not None:
            known.setdefault(pid, started)


def main(argv: list[str]) -> None:
    read, roots = int(argv[0]), [int(p) for p in argv[1:]]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the sweep's terminal is the driver's to handle
    known: dict[int, int] = {}
    while True:
        _note(known, roots)
        ready, _, _ = select.select([read], [], [], POLL_S)
        if ready and not os.read(read, 1):
            break
    _note(known, roots)
    time.sleep(GRACE_S)
    for pid, started in known.items():
        if start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    main(sys.argv[1:])

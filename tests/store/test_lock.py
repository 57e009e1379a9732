"""One writer per store: the lock of orchestrator.lock, by flock and by its no-flock fallback."""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from lamcap.store import lock as lock_module
from lamcap.store.lock import StoreLock, StoreLocked, lock_path

HOLDER = textwrap.dedent("""
    import sys, time
    from lamcap.store.lock import StoreLock
    StoreLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(120)
""")


def hold_in_child(store: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, store], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    store = str(tmp_path / "s.zarr")
    child = hold_in_child(store)
    try:
        with pytest.raises(StoreLocked, match=rf"being written by another lamcap sweep \(host "
                                              rf"{socket.gethostname()}, pid {child.pid}, since 20\d\d-"):
            StoreLock(store).acquire()
    finally:
        child.kill()
        child.wait()


def test_a_lock_left_by_a_killed_holder_is_taken_over_and_says_whose(tmp_path):
    store = str(tmp_path / "s.zarr")
    child = hold_in_child(store)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert os.path.exists(lock_path(store))  # the file stays; the kernel released the flock
    lock = StoreLock(store).acquire()
    try:
        assert lock.taken_over["pid"] == child.pid
        assert json.loads(open(lock_path(store)).read())["pid"] == os.getpid()
    finally:
        lock.release()
    assert not os.path.exists(lock_path(store))


def test_release_lets_the_next_driver_in_and_is_idempotent(tmp_path):
    store = str(tmp_path / "s.zarr")
    with StoreLock(store) as first:
        assert first.taken_over is None
        with pytest.raises(StoreLocked):
            StoreLock(store).acquire()  # a second open file description in the same process is refused too
    second = StoreLock(store).acquire()
    second.release()
    second.release()


@pytest.fixture
def no_flock(monkeypatch):
    """A filesystem without working locks (some FUSE and parallel filesystems)."""
    def refuse(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", refuse)


def write_holder(store: str, **info) -> None:
    with open(lock_path(store), "w") as fh:
        fh.write(json.dumps(info))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_fallback_refuses_a_live_holder_on_this_host(tmp_path, no_flock):
    store = str(tmp_path / "s.zarr")
    write_holder(store, host=socket.gethostname(), pid=os.getppid(), since="x", heartbeat=time.time())
    with pytest.raises(StoreLocked, match=f"pid {os.getppid()}"):
        StoreLock(store).acquire()


def test_fallback_takes_over_a_dead_pid_here_or_a_silent_holder_elsewhere(tmp_path, no_flock):
    store = str(tmp_path / "s.zarr")
    pid = dead_pid()
    write_holder(store, host=socket.gethostname(), pid=pid, since="x", heartbeat=time.time())
    lock = StoreLock(store).acquire()
    assert lock.taken_over["pid"] == pid
    lock.release()
    stale = time.time() - lock_module.STALE_S - 5
    write_holder(store, host="elsewhere", pid=1, since="x", heartbeat=stale)
    lock = StoreLock(store).acquire()
    assert lock.taken_over["host"] == "elsewhere"
    lock.release()
    write_holder(store, host="elsewhere", pid=1, since="x", heartbeat=time.time())
    with pytest.raises(StoreLocked, match="host elsewhere"):
        StoreLock(store).acquire()

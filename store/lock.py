"""One writer per store: an exclusive lock held by a sweep's driver for its whole run.

The lock is the file `<store>.lock` next to the store (so it also covers the store's creation),
held with `fcntl.flock(LOCK_EX | LOCK_NB)` and holding a JSON line that names its holder (host,
pid, since when). The kernel releases a flock when its process dies, however it dies, so a lock
left by a dead driver is simply free: the next driver takes it and says whose it was. After
taking the flock the file's inode is compared with the path's, so that a lock file deleted and
re-created in between is never held by two drivers at once.

Shared filesystems: on NFS (v4, or v3 with lockd) Linux maps flock to byte-range locks that all
clients see, so two drivers on two machines exclude each other. Where the filesystem has no
working locks (flock raises ENOLCK or EOPNOTSUPP: some FUSE and parallel filesystems), the lock
falls back to exclusive creation of the file plus a heartbeat its holder refreshes every
HEARTBEAT_S seconds: a holder on this host whose pid is gone, or whose heartbeat is older than
STALE_S, is taken over; anything else is refused.
"""
from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import socket
import time

from lamcap.errors import InvalidInput

HEARTBEAT_S = 30.0
STALE_S = 300.0
NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class StoreLocked(InvalidInput):
    """Another live driver holds the store's lock."""


def lock_path(store_path: str) -> str:
    return os.fspath(store_path).rstrip(os.sep) + ".lock"


def _holder_text(info: dict) -> str:
    return f"host {info.get('host', '?')}, pid {info.get('pid', '?')}, since {info.get('since', '?')}"


def _read(path: str) -> dict:
    try:
        with open(path) as fh:
            return json.loads(fh.read() or "{}")
    except (OSError, ValueError):
        return {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StoreLock:
    """`acquire()` before touching a store, `refresh()` now and then, `release()` at the end."""

    def __init__(self, store_path: str) -> None:
        self.store_path = os.fspath(store_path)
        self.path = lock_path(self.store_path)
        self._fd: int | None = None
        self._flock = True
        self._last_beat = 0.0
        self.taken_over: dict | None = None  # the dead holder whose lock this one replaced, if any

    def _info(self) -> dict:
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return {"host": socket.gethostname(), "pid": os.getpid(), "since": getattr(self, "_since", now),
                "heartbeat": time.time()}

    def acquire(self) -> StoreLock:
        """Take the lock or raise StoreLocked naming the holder; never waits."""
        self._since = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        try:
            self._acquire_flock()
        except OSError as exc:
            if exc.errno not in NO_LOCKS:
                raise
            self._flock = False
            self._acquire_exclusive()
        self._write()
        return self

    def _acquire_flock(self) -> None:
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StoreLocked(f"store {self.store_path!r} is being written by another lamcap sweep "
                                  f"({_holder_text(_read(self.path))}); lock file {self.path}") from None
            except OSError:
                os.close(fd)
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                previous = _read(self.path)
                self.taken_over = previous or None
                self._fd = fd
                return
            os.close(fd)  # the file was replaced between open and flock: try the new one
        raise StoreLocked(f"could not lock {self.path}: it keeps being replaced")

    def _acquire_exclusive(self) -> None:
        while True:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                return
            except FileExistsError:
                holder = _read(self.path)
                if not self._stale(holder):
                    raise StoreLocked(f"store {self.store_path!r} is being written by another lamcap sweep "
                                      f"({_holder_text(holder)}); lock file {self.path}") from None
                self.taken_over = holder
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass

    @staticmethod
    def _stale(holder: dict) -> bool:
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            return not _pid_alive(holder["pid"])
        return time.time() - float(holder.get("heartbeat", 0.0)) > STALE_S

    def _write(self) -> None:
        data = (json.dumps(self._info()) + "\n").encode()
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, data)
        self._last_beat = time.monotonic()

    def refresh(self) -> None:
        """Renew the heartbeat (needed only where the filesystem has no locks; cheap otherwise)."""
        if self._fd is not None and not self._flock and time.monotonic() - self._last_beat >= HEARTBEAT_S:
            self._write()

    def release(self) -> None:
        """Remove the lock file and let go; safe to call twice."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still held: nobody can take a lock on a file about to vanish
        except FileNotFoundError:
            pass
        os.close(self._fd)  # also releases the flock
        self._fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

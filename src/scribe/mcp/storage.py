"""Files shared by every thread and every ``scribe mcp`` process on a repository:
locks that give up, and whole-file swaps.

A lock is an exclusive ``flock``, tried without blocking, with naps that grow from
half a millisecond to 20 ms, until a deadline; then the call fails fast with
``BUSY``, so an agent hears that a file is stuck instead of waiting on it without
end. Registries (projects, cases, session fingerprints) are read-modify-write JSON
files: each change holds the lock of a lock file beside the registry and replaces
the registry whole (temp file, fsync, rename, directory fsync), so a crash leaves
the old or the new version, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from scribe.files import fsync_dir
from scribe.mcp.failures import BUSY, ToolFailure

#: How long a caller waits for a lock before the call fails fast with BUSY.
LOCK_TIMEOUT = 2.0
_FIRST_NAP, _LONGEST_NAP = 0.0005, 0.02


def busy(what: str, timeout: float) -> ToolFailure:
    return ToolFailure(
        BUSY,
        f"{what} is locked by another writer; gave up after {timeout:g} s, try again",
        file=what,
    )


def take(guard: threading.Lock, deadline: float, what: str, timeout: float) -> None:
    """Acquire ``guard`` by ``deadline`` (a ``time.monotonic()`` value) or raise BUSY."""
    if not guard.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
        raise busy(what, timeout)


def flock_by(fd: int, deadline: float, what: str, timeout: float) -> None:
    """Take an exclusive ``flock`` on ``fd`` by ``deadline`` or raise BUSY: a lock
    held for a single write is caught at once, a stuck one costs no CPU."""
    nap = _FIRST_NAP
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise busy(what, timeout) from None
            time.sleep(min(nap, left))
            nap = min(nap * 2, _LONGEST_NAP)


def write_all(fd: int, data: bytes) -> None:
    while data:  # a regular file takes it all in one write unless the disk fills up
        data = data[os.write(fd, data) :]


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing), or raise BUSY
    after ``timeout`` seconds. Separate opens conflict, so threads exclude each other
    as processes do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        flock_by(fd, time.monotonic() + timeout, path.name, timeout)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, directory fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)

"""Small, crash-safe state files under ``.scribe/registry/``: a lock and a whole-file swap.

Registries (projects, cases, session fingerprints) are read-modify-write JSON
files shared by every thread and every ``scribe mcp`` process on a repository:
each change holds an exclusive ``flock`` on a lock file beside the registry and
replaces the registry whole (temp file, fsync, rename, directory fsync), so a
crash leaves the old or the new version, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from scribe.files import fsync_dir
from scribe.mcp.failures import BUSY, ToolFailure

#: How long a caller waits for a lock before the call fails fast with BUSY.
LOCK_TIMEOUT = 2.0


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing).

    Tries without blocking, with short sleeps, for ``timeout`` seconds; then
    raises ``ToolFailure(BUSY)`` rather than letting a call hang on another
    process that holds the lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ToolFailure(
                        BUSY, f"{path.name} is locked by another writer; try again", lock=str(path)
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, directory fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)

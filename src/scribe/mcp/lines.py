"""Locks that give up, and files of lines appended whole by many writers at once.

A lock here is a thread lock plus an exclusive ``flock``: the thread lock orders
this process's threads (a ``flock`` on one shared descriptor would not tell them
apart), the ``flock`` keeps out other processes. Both are tried until a deadline
and then refused with ``ToolFailure(BUSY)``: an agent hears that a file is stuck
instead of waiting on it without end.

``LineFile`` appends like ``scribe.journal.mirrors`` does for the journal's own
copies, without reopening the file per line: each append is one ``os.write`` of
whole lines on an ``O_APPEND`` descriptor, under the lock, so lines from several
processes never tear or interleave; and a file whose last line was cut short (a
crash mid-write) gets a newline first, so the next line starts fresh.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from pathlib import Path

from scribe.mcp.failures import ToolFailure
from scribe.mcp.storage import flock_by, take, write_all

log = logging.getLogger("scribe")

#: Lines a stuck file may owe before the oldest are given up (the journal keeps them).
MAX_HELD_LINES = 10_000


class LineFile:
    """One append-only file of lines, shared by this process's threads and other processes.

    The descriptor is opened once and kept; it is reopened when the file was
    removed or replaced behind it. ``label`` names the file in messages.
    """

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label
        self._guard = threading.Lock()
        self._fd: int | None = None
        self._retired = False
        self._held: list[bytes] = []
        self._held_guard = threading.Lock()
        #: (inode, size) where this process's last append ended: a file still that
        #: size still ends with its newline, and needs no look at its last byte.
        self._end = (-1, -1)

    @property
    def held(self) -> int:
        """Lines given to ``hold`` that are not written yet."""
        with self._held_guard:
            return len(self._held)

    def probe(self, timeout: float) -> None:
        """Raise BUSY unless the lock can be had within ``timeout`` (then let it go)."""
        deadline = time.monotonic() + timeout
        take(self._guard, deadline, self.label, timeout)
        try:
            fd = self._open()
            try:
                flock_by(fd, deadline, self.label, timeout)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                self._done_with(fd)
        finally:
            self._guard.release()

    def probe_now(self) -> bool:
        """Whether the lock is free right now; never waits."""
        if not self._guard.acquire(blocking=False):
            return False
        try:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                return True
            finally:
                self._done_with(fd)
        finally:
            self._guard.release()

    def append(self, data: bytes, timeout: float) -> bool:
        """Append ``data`` (whole lines), after any held lines, in one write.

        Returns True if the file's last line had been cut short (it now ends with a
        newline before ``data``). Raises BUSY when the lock is not had within
        ``timeout``, and OSError when the disk refuses; then nothing is written.
        """
        deadline = time.monotonic() + timeout
        take(self._guard, deadline, self.label, timeout)
        try:
            fd, facts = self._locked(deadline, timeout)
            try:
                size = facts.st_size
                torn = (
                    size > 0
                    and (facts.st_ino, size) != self._end
                    and os.pread(fd, 1, size - 1) != b"\n"
                )
                with self._held_guard:
                    held, self._held = self._held, []
                lines = (b"\n" if torn else b"") + b"".join(held) + data
                try:
                    write_all(fd, lines)
                except OSError:
                    self._end = (-1, -1)
                    with self._held_guard:
                        self._held[:0] = held
                    raise
                self._end = (facts.st_ino, size + len(lines)) if lines.endswith(b"\n") else (-1, -1)
                return torn
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                self._done_with(fd)
        finally:
            self._guard.release()

    def hold(self, data: bytes) -> None:
        """Keep ``data`` to write first on the next append that gets the lock."""
        with self._held_guard:
            self._held.append(data)
            if len(self._held) > MAX_HELD_LINES:
                del self._held[0]
                log.error("%s: too many lines waiting for the lock; dropped the oldest", self.label)

    def retire(self, timeout: float) -> None:
        """Write what is held (if the lock comes within ``timeout``) and close the file.

        Later appends still work, opening and closing the file each time.
        """
        try:
            if self.held:
                self.append(b"", timeout)
        except (ToolFailure, OSError) as exc:
            message = exc.message if isinstance(exc, ToolFailure) else str(exc)
            log.error("%s: %d lines not written (%s)", self.label, self.held, message)
        with self._guard:
            self._retired = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:  # its folder was removed: make it again
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o644)
        if not self._retired:
            self._fd = fd
        return fd

    def _done_with(self, fd: int) -> None:
        if fd != self._fd:
            os.close(fd)

    def _locked(self, deadline: float, timeout: float) -> tuple[int, os.stat_result]:
        """The descriptor of the file now at ``path``, flocked, and its ``fstat``."""
        while True:
            fd = self._open()
            try:
                flock_by(fd, deadline, self.label, timeout)
            except BaseException:
                self._done_with(fd)
                raise
            facts = os.fstat(fd)
            try:
                current = os.stat(self.path).st_ino == facts.st_ino
            except FileNotFoundError:
                current = False
            if current:
                return fd, facts
            fcntl.flock(fd, fcntl.LOCK_UN)  # removed or replaced while we waited: reopen
            os.close(fd)
            if fd == self._fd:
                self._fd = None

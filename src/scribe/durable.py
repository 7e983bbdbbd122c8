"""Making a batch of writes durable: ``fsync`` per file, or ``syncfs`` per file system.

Each write's data must be on disk before it is swapped in, and the swap before it is
reported done (the first invariant of the design). One ``fsync`` per file and per directory
does that, at the cost of a disk flush each: on a virtual disk about a millisecond,
so a scan that rewrites 10,000 files spends most of its time waiting for them.
``syncfs(2)`` makes everything written to a file system so far durable with one
flush, so a batch needs two: one after its temp files are written, one after they
are swapped in. The same guarantee with far fewer flushes: on a two-CPU virtual
machine, four threads writing files this way managed about 6,000 a second against
1,800 with ``fsync``.

The price is that ``syncfs`` also flushes what other programs wrote to that file
system and have not synced; a machine writing a lot elsewhere makes it slower, not
less safe. Small batches (a save or two while watching) keep per-file ``fsync``,
and the ``batch_sync`` setting turns this off.

Linux only, and only from 5.8, the first kernel whose ``syncfs`` reports a write
error (earlier ones returned success whatever happened). An error is reported to
descriptors opened before it, so ``BatchSync`` opens its descriptors before the
batch is written.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from scribe.files import fsync_dir

#: Batches with fewer writes sync each file: two file system flushes cost more.
MIN_WRITES = 8

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_syncfs = getattr(_libc, "syncfs", None)


def _kernel_reports_errors(release: str) -> bool:
    found = re.match(r"(\d+)\.(\d+)", release)
    return found is not None and (int(found[1]), int(found[2])) >= (5, 8)


#: Whether ``syncfs`` can stand for ``fsync`` on this system.
SUPPORTED = _syncfs is not None and _kernel_reports_errors(platform.release())


class BatchSync:
    """How one batch of writes is made durable: each temp file before it is swapped
    in (``stage(sync=per_file)`` then ``before_swaps``), each swap before it is
    reported done (``after_swaps``).

    Per file and directory with ``fsync``; or, for a batch of ``MIN_WRITES`` or
    more where ``allowed`` and ``SUPPORTED``, with one ``syncfs`` per file system
    each time, through descriptors opened now, before the batch is written;
    ``close`` them when the batch is done.
    """

    def __init__(self, directories: Sequence[Path], *, allowed: bool) -> None:
        self._fds: dict[int, int] | None = None  # device -> a descriptor on it
        if allowed and SUPPORTED and len(directories) >= MIN_WRITES:
            try:
                self._fds = self._open(directories)
            except OSError:  # a folder gone since it was read: each write finds out
                self._fds = None

    @staticmethod
    def _open(directories: Iterable[Path]) -> dict[int, int]:
        fds: dict[int, int] = {}
        try:
            for directory in dict.fromkeys(directories):
                fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                device = os.fstat(fd).st_dev
                if device in fds:
                    os.close(fd)
                else:
                    fds[device] = fd
        except BaseException:
            for fd in fds.values():
                os.close(fd)
            raise
        return fds

    @property
    def per_file(self) -> bool:
        """Whether each temp file must be synced as it is written."""
        return self._fds is None

    def before_swaps(self) -> str | None:
        """Make the batch's temp files durable; None, or why they may not be."""
        return None if self._fds is None else self._flush()

    def after_swaps(self, directories: Iterable[Path]) -> dict[Path, str]:
        """Make the swaps in ``directories`` durable; those that may not be, with why."""
        folders = list(dict.fromkeys(directories))
        if self._fds is not None:
            problem = self._flush() if folders else None
            return dict.fromkeys(folders, problem) if problem else {}
        problems = {}
        for directory in folders:
            try:
                fsync_dir(directory)
            except OSError as exc:
                problems[directory] = str(exc)
        return problems

    def _flush(self) -> str | None:
        assert _syncfs is not None
        assert self._fds is not None
        for fd in self._fds.values():
            if _syncfs(fd) != 0:
                return f"syncfs failed: {os.strerror(ctypes.get_errno())}"
        return None

    def close(self) -> None:
        fds, self._fds = self._fds or {}, None
        for fd in fds.values():
            os.close(fd)

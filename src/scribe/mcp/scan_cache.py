"""Scans kept by file identity, so an unchanged file is not hashed twice.

The key is what ``fstat`` says of the file (device, inode, size, mtime, ctime) and
the chunk size. Entries live in a small in-memory LRU and, when ``index_dir`` is
given, in one file each there, so other processes (``scribe read``, a second
``scribe mcp``) find them too. Disk entries are written to a temp file and renamed
into place, so a reader sees a whole entry or none; at most ``DISK_ENTRIES`` are
kept, the least recently written going first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from scribe.mcp.scan import FileFacts

__all__ = ["DISK_ENTRIES", "Key", "ScanCache"]

log = logging.getLogger("scribe")

DISK_ENTRIES = 256

Key = tuple[int, ...]


class ScanCache:
    """``get`` and ``put`` scans by key; safe to share between threads."""

    def __init__(self, index_dir: Path | None = None, size: int = 64) -> None:
        self.index_dir = index_dir
        self._size = size
        self._memory: OrderedDict[Key, FileFacts] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> FileFacts | None:
        with self._lock:
            facts = self._memory.get(key)
            if facts is not None:
                self._memory.move_to_end(key)
                return facts
        facts = self._load(key)
        if facts is not None:
            self._remember(key, facts)
        return facts

    def put(self, key: Key, facts: FileFacts) -> None:
        self._remember(key, facts)
        self._store(key, facts)

    def _remember(self, key: Key, facts: FileFacts) -> None:
        with self._lock:
            self._memory[key] = facts
            while len(self._memory) > self._size:
                self._memory.popitem(last=False)

    def _where(self, key: Key) -> tuple[Path, str] | None:
        if self.index_dir is None:
            return None
        text = "-".join(map(str, key))
        return self.index_dir / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.idx", text

    def _load(self, key: Key) -> FileFacts | None:
        where = self._where(key)
        if where is None:
            return None
        try:
            data = where[0].read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read the scan index %s: %s", where[0], exc)
            return None
        return FileFacts.from_bytes(data, where[1])

    def _store(self, key: Key, facts: FileFacts) -> None:
        """Keep ``facts`` on disk; a failure is logged and only costs a rescan later."""
        where = self._where(key)
        if where is None:
            return
        path, text = where
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".scribe-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(facts.to_bytes(text))
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            kept = sorted(path.parent.glob("*.idx"), key=_mtime)
            for old in kept[: max(0, len(kept) - DISK_ENTRIES)]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot keep the scan index in %s: %s", path.parent, exc)


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:  # another process pruned it meanwhile
        return 0

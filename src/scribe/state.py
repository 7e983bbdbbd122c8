"""What Scribe last saw of each file, kept across restarts in ``.scribe/state.db``.

Two facts per path: the hash of the content Scribe last left there (so saves that
change nothing never re-trigger it) and the hash of that content with the stamped
fields masked out (so a stamp rule fires only when something other than its own
stamp changed).

This is a cache of decisions, not a record of changes: losing its last moments in
a crash costs at most one extra restamp. So writes are batched (one transaction
per batch) instead of paying SQLite's locking and WAL append for every file.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scribe.sqlite_rows import delete_in, insert_rows

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    masked TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
)
"""
_UPSERT = "INSERT INTO files"
_ON_CONFLICT = (
    "ON CONFLICT(path) DO UPDATE SET sha256=excluded.sha256, masked=excluded.masked, "
    "size=excluded.size, mtime_ns=excluded.mtime_ns"
)
#: A batch is written once it holds this many changes or is this old.
BATCH_SIZE = 256
BATCH_AGE = 0.25


@dataclass(frozen=True)
class Seen:
    sha256: str
    masked: str
    size: int
    mtime_ns: int


class State:
    """An in-memory map of ``Seen`` records over SQLite (WAL); thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._seen: dict[str, Seen] = {}
        self._dirty: dict[str, Seen | None] = {}  # path -> record, or None to delete
        self._oldest_dirty = 0.0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            rows = self._db.execute("SELECT path, sha256, masked, size, mtime_ns FROM files")
            self._seen = {row[0]: Seen(*row[1:]) for row in rows}

    def get(self, path: str) -> Seen | None:
        return self._seen.get(path)

    def put(self, path: str, seen: Seen) -> None:
        with self._lock:
            if self._seen.get(path) != seen:
                self._seen[path] = seen
                self._mark(path, seen)

    def forget(self, path: str) -> None:
        with self._lock:
            if self._seen.pop(path, None) is not None:
                self._mark(path, None)

    def flush(self) -> None:
        """Write every pending change now."""
        with self._lock:
            self._flush()

    def close(self) -> None:
        with self._lock:
            self._flush()
            if self._db is not None:
                self._db.close()
                self._db = None

    def _mark(self, path: str, seen: Seen | None) -> None:
        if self._db is None:
            return
        if not self._dirty:
            self._oldest_dirty = time.monotonic()
        self._dirty[path] = seen
        if len(self._dirty) >= BATCH_SIZE or time.monotonic() - self._oldest_dirty >= BATCH_AGE:
            self._flush()

    def _flush(self) -> None:
        if self._db is None or not self._dirty:
            return
        upserts = [(p, s.sha256, s.masked, s.size, s.mtime_ns) for p, s in self._dirty.items() if s]
        deletes = [p for p, s in self._dirty.items() if s is None]
        with self._db:  # one transaction
            self._db.execute("BEGIN")
            insert_rows(self._db, _UPSERT, upserts, _ON_CONFLICT)
            delete_in(self._db, "files", "path", deletes)
        self._dirty.clear()

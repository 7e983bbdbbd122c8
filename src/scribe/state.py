"""What Scribe last saw of each file, kept across restarts in ``.scribe/state.db``.

Two facts per path: the hash of the content Scribe last left there (so its own
writes, and saves that change nothing, never re-trigger it) and the hash of that
content with the stamped fields masked out (so a stamp rule fires only when
something other than its own stamp changed).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    masked TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class Seen:
    sha256: str
    masked: str
    size: int
    mtime_ns: int


class State:
    """A write-through cache of ``Seen`` records over SQLite (WAL); thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._seen: dict[str, Seen] = {}
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
            if self._seen.get(path) == seen:
                return
            self._seen[path] = seen
            if self._db is not None:
                self._db.execute(
                    "INSERT INTO files VALUES (?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET "
                    "sha256=excluded.sha256, masked=excluded.masked, size=excluded.size, "
                    "mtime_ns=excluded.mtime_ns",
                    (path, seen.sha256, seen.masked, seen.size, seen.mtime_ns),
                )

    def forget(self, path: str) -> None:
        with self._lock:
            if self._seen.pop(path, None) is not None and self._db is not None:
                self._db.execute("DELETE FROM files WHERE path = ?", (path,))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

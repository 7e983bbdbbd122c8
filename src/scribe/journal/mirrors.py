"""Readable daily copies of the journal, for people and for tools that tail files.

For each entry, one line in ``.scribe/log/YYYY-MM-DD/journal.jsonl`` (the entry as
canonical JSON) and then one in ``JOURNAL.md`` beside it (``[✅] [time UTC] [actor]
path: message``). The day is the entry's UTC day.

The store is the truth and these are copies: they are not fsynced, queries never
read them, and ``export`` rebuilds them from the store. What they must never be is
garbled, and several processes append to them at once. So each file is appended
under an exclusive ``flock``, with one ``os.write`` per line on an ``O_APPEND``
descriptor: lines from different processes never tear or interleave. A crash can
still cut the last line short; the next append starts a fresh line and reports
the file, so the engine can journal that it happened.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from scribe.journal.entry import Entry, Journal, Query, emoji

LOG_DIR = Path(".scribe") / "log"
JSONL = "journal.jsonl"
MARKDOWN = "JOURNAL.md"
_EXPORT_CHUNK = 10_000


def markdown_line(entry: Entry) -> str:
    """``[✅] [2026-11-23 10:00:00 UTC] [rule:stamp] notes/a.md: modified set``."""
    text = entry.message or entry.kind
    if entry.path:
        text = f"{entry.path}: {text}" if entry.message else entry.path
    text = " ".join(text.splitlines())  # one entry, one line, whatever the message holds
    return f"[{emoji(entry.kind)}] [{entry.ts[:10]} {entry.ts[11:19]} UTC] [{entry.actor}] {text}"


def _renderings(entries: Sequence[Entry]) -> tuple[tuple[str, list[bytes]], ...]:
    """Lines per file, JSONL first: a crash between the two leaves the JSONL complete."""
    return (
        (JSONL, [entry.to_json().encode() + b"\n" for entry in entries]),
        (MARKDOWN, [markdown_line(entry).encode() + b"\n" for entry in entries]),
    )


def _write_all(fd: int, data: bytes) -> None:
    while data:  # a regular file takes it all in one write unless the disk fills up
        data = data[os.write(fd, data) :]


@dataclass
class _Open:
    """A mirror file kept open: its descriptor, its inode, and where our last append
    ended (a file that still ends there ends with our newline: no need to look)."""

    fd: int
    ino: int
    end: int = -1


#: Mirror files kept open at once (two per day: today's, and yesterday's stragglers).
_KEPT_OPEN = 4


class Mirrors:
    """The mirror files of the repository at ``root``.

    Used by one thread at a time (the journal writer's). Files stay open between
    appends; each append still takes the file's ``flock`` and checks that the path
    names the file it holds (``export`` may have replaced it), so other processes
    appending, and a rebuild, are safe.
    """

    def __init__(self, root: Path) -> None:
        self.dir = root / LOG_DIR
        self._made: set[str] = set()  # day folders known to exist: no mkdir per batch
        self._open: dict[Path, _Open] = {}

    def append(self, entries: Sequence[Entry]) -> list[Path]:
        """Append ``entries``' lines; return the files whose last line had been cut
        short by a crash (each now continues on a fresh line)."""
        days: dict[str, list[Entry]] = {}
        for entry in entries:
            days.setdefault(entry.ts[:10], []).append(entry)
        repaired = []
        for day, group in days.items():
            folder = self.dir / day
            if day not in self._made:
                folder.mkdir(parents=True, exist_ok=True)
                self._made.add(day)
            for name, lines in _renderings(group):
                try:
                    torn = self._append_lines(folder / name, lines)
                except FileNotFoundError:  # the folder was removed since: make it again
                    folder.mkdir(parents=True, exist_ok=True)
                    torn = self._append_lines(folder / name, lines)
                if torn:
                    repaired.append(folder / name)
        return repaired

    def close(self) -> None:
        for held in self._open.values():
            os.close(held.fd)
        self._open.clear()

    def _held(self, path: Path) -> _Open:
        held = self._open.get(path)
        if held is None:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            held = self._open[path] = _Open(fd, os.fstat(fd).st_ino)
            while len(self._open) > _KEPT_OPEN:  # the oldest day's files are done with
                os.close(self._open.pop(next(iter(self._open))).fd)
        return held

    def _append_lines(self, path: Path, lines: list[bytes]) -> bool:
        """Append ``lines`` under the file's lock; True if its last line had been cut short."""
        while True:
            held = self._held(path)
            fcntl.flock(held.fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino == held.ino
            except FileNotFoundError:
                current = False
            if not current:  # export replaced the file, or it was removed: reopen
                del self._open[path]
                os.close(held.fd)  # and with it, the lock
                continue
            try:
                size = os.fstat(held.fd).st_size
                torn = size not in (0, held.end) and os.pread(held.fd, 1, size - 1) != b"\n"
                written = 0
                if torn:
                    _write_all(held.fd, b"\n")
                    written += 1
                for line in lines:
                    _write_all(held.fd, line)
                    written += len(line)
                held.end = size + written
                return torn
            finally:
                fcntl.flock(held.fd, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Exported:
    entries: int
    files: int


def export(
    store: Journal,
    root: Path,
    since: date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Exported:
    """Rebuild the mirror files of every day (or every day from ``since``) from the store.

    Each file is written to a temp file and renamed over the old one while holding
    the old one's lock, so readers see the old file or the new, and concurrent
    appends go to the new one. An entry appended while its day is being rebuilt
    may miss the rebuilt file; run export again once Scribe is quiet.
    """
    start = datetime(since.year, since.month, since.day, tzinfo=UTC) if since else None
    first = store.query(Query(since=start, limit=1))
    last = store.head()
    if not first or last is None:
        return Exported(0, 0)
    total = last.seq - first[0].seq + 1
    done = files = 0
    day: _DayFiles | None = None
    after = first[0].seq - 1
    while chunk := store.query(Query(after_seq=after, limit=_EXPORT_CHUNK)):
        for entry in chunk:
            if day is None or entry.ts[:10] != day.name:
                files += day.finish() if day else 0
                day = _DayFiles(root / LOG_DIR / entry.ts[:10])
            day.add(entry)
        done += len(chunk)
        after = chunk[-1].seq
        if progress is not None:
            progress(done, total)
    files += day.finish() if day else 0
    return Exported(done, files)


class _DayFiles:
    """The two temp files of one day being rebuilt."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name
        self.entries: list[Entry] = []
        self.temps: dict[str, int] = {}

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        if len(self.entries) >= _EXPORT_CHUNK:
            self._spill()

    def _spill(self) -> None:
        if not self.temps:
            self.folder.mkdir(parents=True, exist_ok=True)
        for name, lines in _renderings(self.entries):
            if name not in self.temps:
                tmp = self.folder / f".{name}.{os.getpid()}.tmp"
                self.temps[name] = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            _write_all(self.temps[name], b"".join(lines))
        self.entries = []

    def finish(self) -> int:
        """Move the rebuilt files into place; return how many."""
        if self.entries:
            self._spill()
        for name, fd in self.temps.items():
            os.close(fd)
            target = self.folder / name
            lock = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                os.replace(self.folder / f".{name}.{os.getpid()}.tmp", target)
            finally:
                os.close(lock)
        return len(self.temps)

"""Group commit: the engine's worker threads share one journal transaction.

A durable commit costs a disk sync, whatever it holds. ``JournalWriter`` has one
thread that takes everything queued, commits it as one transaction and wakes the
callers. Callers who arrive while a commit is on disk queue up and all go in the
next one, so under load a sync carries many entries. A caller who finds nothing
committing or queued commits on its own thread (``append_now``): handing the
commit to the writer thread and being woken again costs two thread switches,
about half as much as the commit itself.

The mirror lines (copies, not the record) follow in batches, at most
``MIRROR_LAG`` after their commit: written after every commit, they would compete
with the woken callers for the interpreter at the moment those callers answer.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from scribe.journal.entry import (
    JOURNAL_FLAGGED,
    Entry,
    Journal,
    JournalUnavailable,
    NewEntry,
)
from scribe.journal.mirrors import LOG_DIR, Mirrors
from scribe.observe import metrics

log = logging.getLogger("scribe")

#: The text index is brought up to date once the journal has been idle this long
#: (seconds), or at once when this many entries wait for it. Searches index what is
#: pending themselves, so a late index is never a wrong answer.
INDEX_IDLE = 0.25
INDEX_AFTER = 5_000

#: Mirror lines are written at most this long (seconds) after their entries were
#: committed, all at once, or as soon as this many entries wait for them.
MIRROR_LAG = 0.1
MIRROR_AFTER = 1_000


@dataclass(eq=False)
class _Request:
    """Entries queued together; ``finished`` is released once they are committed or
    failed, so only the caller waiting on them wakes up, not every waiting caller."""

    entries: list[NewEntry]
    #: A ``flush``: finished once what was queued before it is committed and mirrored.
    flush: bool = False
    committed: list[Entry] = field(default_factory=list)
    problem: str = ""
    cause: BaseException | None = None
    finished: threading.Lock = field(default_factory=threading.Lock)
    wake: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.finished.acquire()

    def finish(self) -> None:
        self.finished.release()
        if self.wake is not None:
            try:
                self.wake()
            except Exception as exc:  # its caller is gone (a closed event loop)
                log.warning("could not tell a caller its entries were committed: %s", exc)

    def wait(self) -> None:
        self.finished.acquire()

    def result(self) -> list[Entry]:
        """The committed entries; JournalUnavailable if they were not committed."""
        if self.problem:
            raise JournalUnavailable(self.problem) from self.cause
        return self.committed


class JournalWriter:
    """Appends from many threads, batched into one store transaction at a time.

    ``healthy`` turns False, with the reason in ``problem``, when a commit fails
    (disk full, read-only database, locked for too long), and True again after the
    next commit succeeds.
    """

    def __init__(self, store: Journal, mirrors: Mirrors | None = None) -> None:
        self.store = store
        self.mirrors = mirrors
        self.problem = ""
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._closed = False
        self._committing = 0
        #: A commit is under way, the writer thread's or a caller's (``append_now``).
        self._busy = False
        #: Committed entries whose mirror lines are not written yet, in commit order,
        #: and when they are due; entries committed since the text index was updated,
        #: and when the last commit ended.
        self._unmirrored: list[Entry] = []
        self._mirror_at = math.inf
        self._stale = 0
        self._last_commit = 0.0
        self._thread = threading.Thread(target=self._run, name="scribe-journal", daemon=True)
        self._thread.start()

    @property
    def healthy(self) -> bool:
        return not self.problem

    @property
    def backlog(self) -> int:
        """Entries waiting for the next commit."""
        with self._cond:
            return sum(len(request.entries) for request in self._queue)

    @property
    def committing(self) -> int:
        """Entries in the writer thread's commit under way (not a caller's own)."""
        return self._committing

    def append(self, entries: Sequence[NewEntry]) -> list[Entry]:
        """Block until ``entries`` are committed; raise JournalUnavailable if they were not."""
        if not entries:
            return []
        sealed = self.append_now(entries)
        if sealed is not None:
            return sealed
        request = _Request(list(entries))
        with self._cond:
            if self._closed:
                raise JournalUnavailable("the journal writer is closed")
            self._queue.append(request)
            self._cond.notify()  # only the writer thread waits on it
        request.wait()
        return request.result()

    def append_now(self, entries: Sequence[NewEntry]) -> list[Entry] | None:
        """Commit ``entries`` on this thread if no commit is under way or queued and the
        store can take them without waiting for another writer; else None (nothing
        written: queue them). Raises JournalUnavailable if the commit failed.

        It still waits for the disk's sync, so an event loop calls it only when no
        other call is waiting on the loop."""
        if not entries:
            return []
        with self._cond:
            if self._closed:
                raise JournalUnavailable("the journal writer is closed")
            if self._busy or self._queue:
                return None
            self._busy = True
        started = time.perf_counter()
        sealed: list[Entry] | None = None
        try:
            sealed = self.store.append_now(entries)
        except Exception as exc:
            problem = f"the journal cannot be written: {exc}"
            log.error("%s", problem)
            with self._cond:
                self.problem = problem
            raise JournalUnavailable(problem) from exc
        finally:
            with self._cond:
                self._busy = False
                first = False
                if sealed:
                    self.problem = ""
                    first = self._committed(sealed)
                # Else the writer thread already knows when it has something to do.
                if first or self._queue or self._closed:
                    self._cond.notify()
        if sealed:
            metrics.JOURNAL_APPEND_SECONDS.observe(time.perf_counter() - started)
            metrics.JOURNAL_APPENDS.inc(len(sealed))
        return sealed

    def append_then(self, entries: Sequence[NewEntry], wake: Callable[[], None]) -> _Request:
        """Queue ``entries`` and return at once; ``wake`` is called from the writer's
        thread once they are committed or failed, and then the request's ``result()``
        is the entries committed (or raises JournalUnavailable). For callers that
        must not block a thread on the commit: an event loop."""
        request = _Request(list(entries), wake=wake)
        with self._cond:
            if self._closed:
                raise JournalUnavailable("the journal writer is closed")
            self._queue.append(request)
            self._cond.notify()
        return request

    def submit(self, entries: Sequence[NewEntry]) -> None:
        """Queue ``entries`` for the next commit without waiting for it.

        For records that guard no write (an unchanged file, a skip, a write's
        ``work.done``); a failure is logged and shows in ``healthy``.
        """
        if not entries:
            return
        with self._cond:
            if self._closed:
                log.error("journal writer closed; %d entries not journaled", len(entries))
                return
            self._queue.append(_Request(list(entries)))
            self._cond.notify()

    def flush(self) -> None:
        """Wait until everything queued before this call is committed (or failed), and
        the mirror lines of everything committed are written."""
        marker = _Request([], flush=True)
        with self._cond:
            if self._closed:
                return
            self._queue.append(marker)  # batches commit in order: when it is done, all are
            self._cond.notify()
        marker.wait()

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        if self.mirrors is not None:
            self.mirrors.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed or self._busy:
                    if self._queue and not self._busy:
                        break
                    index_at = self._last_commit + INDEX_IDLE if self._stale else math.inf
                    wait = min(self._mirror_at, index_at) - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(None if wait == math.inf else wait)
                batch, self._queue = ([], self._queue) if self._busy else (self._queue, [])
                closing = self._closed and not batch and not self._busy
                if any(not request.flush for request in batch):
                    self._busy = True
                    self._committing = sum(len(request.entries) for request in batch)
            flushes = [request for request in batch if request.flush]
            batch = [request for request in batch if not request.flush]
            if batch:
                self._commit(batch)
            with self._cond:
                due = closing or flushes or len(self._unmirrored) >= MIRROR_AFTER
                if self._unmirrored and (due or time.monotonic() >= self._mirror_at):
                    unmirrored, self._unmirrored = self._unmirrored, []
                    self._mirror_at = math.inf
                else:
                    unmirrored = []
                # Index once the journal has been idle a moment (a caller appending one
                # entry at a time must not pay for indexing between its calls), or in a
                # long busy spell once INDEX_AFTER entries wait, right after a commit.
                idle = time.monotonic() >= self._last_commit + INDEX_IDLE
                index = self._stale and (idle or closing or self._stale >= INDEX_AFTER)
            if unmirrored:
                self._mirror(unmirrored)  # in commit order, batch after batch
            for request in flushes:
                request.finish()
            if index:
                self._index_text()  # idle: off every caller's path
            if closing:
                with self._cond:
                    if not self._queue:  # else the mirrors flagged a torn file: commit that too
                        break

    def _index_text(self) -> None:
        with self._cond:
            self._stale = 0  # what commits from now on is left for the next pass
        try:
            self.store.index_text()
        except Exception as exc:  # searches index what is pending themselves
            log.warning("could not update the journal's text index: %s", exc)

    def _commit(self, batch: list[_Request]) -> None:
        """Commit ``batch`` and wake its callers."""
        started = time.perf_counter()
        try:
            sealed = self.store.append([entry for request in batch for entry in request.entries])
        except Exception as exc:  # whatever it is, every caller must hear it, or they wait forever
            problem = f"the journal cannot be written: {exc}"
            log.error("%s", problem)
            with self._cond:
                self.problem, self._committing, self._busy = problem, 0, False
            for request in batch:
                request.problem, request.cause = problem, exc
                request.finish()
            return
        metrics.JOURNAL_APPEND_SECONDS.observe(time.perf_counter() - started)
        metrics.JOURNAL_APPENDS.inc(len(sealed))
        with self._cond:
            self.problem, self._committing, self._busy = "", 0, False
            self._committed(sealed)
        start = 0
        for request in batch:
            end = start + len(request.entries)
            request.committed = sealed[start:end]
            request.finish()
            start = end

    def _committed(self, sealed: list[Entry]) -> bool:
        """Note ``sealed`` as committed (holding ``_cond``); whether they are the first
        that wait for their mirror lines, so the writer thread must learn when those
        are due."""
        now = time.monotonic()
        first = not self._unmirrored
        if first:
            self._mirror_at = now + MIRROR_LAG
        self._unmirrored += sealed
        self._stale += len(sealed)
        self._last_commit = now
        return first

    def _mirror(self, sealed: list[Entry]) -> None:
        if self.mirrors is None:
            return
        try:
            repaired = self.mirrors.append(sealed)
        except OSError as exc:  # the commit stands; `scribe journal export` rebuilds them
            log.warning("could not write the journal mirrors: %s", exc)
            return
        if repaired:  # journaled by this thread, in the next batch; nobody waits on it
            with self._cond:
                self._queue.append(_Request([_flag(path) for path in repaired]))
                self._cond.notify()


def _flag(path: Path) -> NewEntry:
    file = (LOG_DIR / path.parent.name / path.name).as_posix()
    return NewEntry(
        JOURNAL_FLAGGED,
        "scribe",
        message=f"{file} ended with a line cut short (a crash?); the next line starts fresh",
        payload={"file": file, "problem": "torn line"},
    )

"""From raw changes to engine calls: coalesce per path, wait for the writer, serialise.

A path is *ready* once its writer is known to be done (a close, a rename) or it has
been quiet for the quiet window. Changes that arrive while a path waits or is being
processed fold into one pending event (latest content wins), so a burst of saves
costs one rewrite and a file is never planned twice at once.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from scribe.events import Event, EventKind, merge_kinds
from scribe.watch import Change

log = logging.getLogger("scribe")


@dataclass
class _Pending:
    kind: EventKind
    source_path: str  # where a move came from (else the path itself)
    last_change: float  # monotonic
    closed: bool
    live: bool
    version: int


class Scheduler:
    """Runs ``handle`` for batches of ready paths on ``workers`` threads.

    A worker takes one path when few are ready and more as they queue up, up to
    ``max_batch``: each worker's share of the queue, so that a burst is spread over
    every worker and a lone save is not held back by others.
    """

    def __init__(
        self,
        handle: Callable[[list[Event]], object],
        *,
        quiet: float = 0.02,
        open_writer_grace: float = 1.0,
        closes_known: bool = True,
        workers: int = 4,
        max_batch: int = 64,
    ) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._quiet = quiet
        # When the platform reports closes, a file still open for writing waits for
        # its close; only a writer that never closes falls back to this longer window.
        self._open_quiet = max(quiet, open_writer_grace) if closes_known else quiet
        self._cond = threading.Condition()
        self._pending: dict[str, _Pending] = {}
        self._ready: deque[tuple[str, int]] = deque()
        self._timers: list[tuple[float, str, int]] = []
        self._inflight: set[str] = set()
        self._version = 0
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"scribe-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        self.processed = 0
        self.coalesced = 0

    def expect_no_closes(self, quiet: float) -> None:
        """The source can no longer report closes (it fell back to polling): from
        now on a file is ready after ``quiet`` seconds without a change."""
        with self._cond:
            self._open_quiet = quiet

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, change: Change, *, live: bool = True) -> None:
        """Record a change (thread-safe); it is handled once its path is ready."""
        with self._cond:
            self._version += 1
            now = time.monotonic()
            path = change.target
            pending = self._pending.get(path)
            if pending is None:
                source = change.path if change.kind is EventKind.MOVED else path
                pending = _Pending(change.kind, source, now, change.closed, live, self._version)
                self._pending[path] = pending
            else:
                self.coalesced += 1
                kind = merge_kinds(pending.kind, change.kind)
                if kind is None:  # created then deleted before we looked: nothing to do
                    del self._pending[path]
                    return
                pending.kind = kind
                pending.last_change = now
                pending.closed = change.closed
                pending.live = pending.live or live
                pending.version = self._version
            if pending.closed or pending.kind is EventKind.DELETED:
                self._ready.append((path, pending.version))
            else:
                wait = self._quiet if pending.kind is EventKind.MOVED else self._open_quiet
                heapq.heappush(self._timers, (now + wait, path, pending.version))
            self._cond.notify()

    def _next(self) -> list[tuple[str, _Pending]]:
        """Under the lock: pop ready paths that are not in flight (maybe none)."""
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, path, version = heapq.heappop(self._timers)
            self._ready.append((path, version))
        share = -(-len(self._ready) // len(self._threads))
        want = max(1, min(self._max_batch, share))
        taken: list[tuple[str, _Pending]] = []
        for _ in range(len(self._ready)):
            if len(taken) == want:
                break
            path, version = self._ready.popleft()
            pending = self._pending.get(path)
            if pending is None or pending.version != version:
                continue  # superseded by a later change
            if path in self._inflight:
                self._ready.append((path, version))  # taken again once the current run ends
                continue
            del self._pending[path]
            self._inflight.add(path)
            taken.append((path, pending))
        return taken

    def _work(self) -> None:
        while True:
            with self._cond:
                batch = self._next()
                while not batch:
                    if self._stopping and not self._pending:
                        return
                    timeout = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._cond.wait(timeout=max(timeout, 0.0005) if timeout is not None else 0.5)
                    batch = self._next()
            try:
                self._run([_event(path, pending) for path, pending in batch])
            finally:
                with self._cond:
                    self._inflight.difference_update(path for path, _ in batch)
                    self.processed += len(batch)
                    self._cond.notify_all()

    def _run(self, events: list[Event]) -> None:
        """Handle a batch; if it fails, each of its events alone, so that one bad
        file costs only itself (handling is idempotent, so a repeat is harmless)."""
        try:
            self._handle(events)
            return
        except Exception:
            if len(events) == 1:
                # One file's failure (disk full, a directory removed mid-write...) must
                # not kill the worker: with every worker gone, watching stops silently.
                log.exception("failed to process %s", events[0].target)
                return
        for event in events:
            self._run([event])

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._inflight

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending or in flight (True) or the timeout passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(timeout=min(remaining, 0.05))
            return True

    def stop(self, *, timeout: float = 5.0) -> None:
        """Finish what is pending (writes in flight always complete), then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _event(path: str, pending: _Pending) -> Event:
    moved = pending.kind is EventKind.MOVED
    return Event(
        pending.kind,
        pending.source_path if moved else path,
        dest=path if moved else None,
        source="watcher" if pending.live else "scan",
    )

"""From raw changes to engine calls: coalesce per path, wait for the writer, serialise.

A path is *ready* once its writer is known to be done (a close, a rename) or it has
been quiet for the quiet window. Changes that arrive while a path waits or is being
processed fold into one pending event (latest content wins), so a burst of saves
costs one rewrite and a file is never planned twice at once.

The queue is bounded by construction: it holds at most one entry per path (pending,
ready and timer alike), however many changes arrive, so a `git checkout` of 10,000
files costs 10,000 small records, not one per inotify event. Past ``high_water``
paths the scheduler reports itself saturated (``/readyz`` says so) but never drops
a change.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from scribe.events import Event, EventKind, merge_kinds
from scribe.observe import metrics
from scribe.watch import Change

log = logging.getLogger("scribe")

# Resolved once: a labelled child costs a lock and a dict lookup to find per call.
_RECEIVED = {kind: metrics.EVENTS.labels(kind=kind.value) for kind in EventKind}
_COALESCED = {kind: metrics.COALESCED.labels(kind=kind.value) for kind in EventKind}


@dataclass(eq=False)
class _Pending:
    kind: EventKind
    source_path: str  # where a move came from (else the path itself)
    last_change: float  # monotonic
    closed: bool
    live: bool
    queued: bool = False  # in the ready queue
    due: float = 0.0  # ready at this time without a close
    timed: bool = False  # has an entry in the timer heap


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
        high_water: int = 10_000,
    ) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._quiet = quiet
        self._grace = open_writer_grace
        self._closes_known = closes_known
        self._poll_quiet: float | None = None
        self.high_water = high_water
        self._cond = threading.Condition()
        self._pending: dict[str, _Pending] = {}
        self._ready: OrderedDict[str, None] = OrderedDict()
        self._timers: list[tuple[float, int, str, _Pending]] = []
        self._tie = itertools.count()
        self._inflight: set[str] = set()
        #: Custom events raised by rules, in order; each waits until its path is free.
        self._events: deque[Event] = deque()
        self._stopping = False
        self._abandon_at = float("inf")
        self._saturated = False
        self._threads = [
            threading.Thread(target=self._work, name=f"scribe-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        self.processed = 0
        self.coalesced = 0

    @property
    def _open_quiet(self) -> float:
        """How long a change whose writer may still be at work waits."""
        if self._poll_quiet is not None:
            return max(self._quiet, self._poll_quiet)
        # When the platform reports closes, a file still open for writing waits for
        # its close; only a writer that never closes falls back to the longer grace.
        return max(self._quiet, self._grace) if self._closes_known else self._quiet

    def expect_no_closes(self, quiet: float) -> None:
        """The source can no longer report closes (it fell back to polling): from
        now on a file is ready after ``quiet`` seconds without a change."""
        with self._cond:
            self._poll_quiet = quiet

    def configure(self, *, quiet: float | None = None, max_batch: int | None = None) -> None:
        """Change the quiet window or the batch limit while running (hot reload)."""
        with self._cond:
            if quiet is not None:
                self._quiet = quiet
            if max_batch is not None:
                self._max_batch = max_batch

    @property
    def depth(self) -> int:
        """Paths waiting or in flight, and custom events waiting."""
        with self._cond:
            return len(self._pending) + len(self._inflight) + len(self._events)

    @property
    def saturated(self) -> bool:
        """More paths are waiting than the high-water mark."""
        return self._saturated

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, change: Change, *, live: bool = True) -> None:
        """Record a change (thread-safe); it is handled once its path is ready."""
        _RECEIVED[change.kind].inc()
        with self._cond:
            now = time.monotonic()
            path = change.target
            pending = self._pending.get(path)
            if pending is None:
                source = change.path if change.kind is EventKind.MOVED else path
                pending = _Pending(change.kind, source, now, change.closed, live)
                self._pending[path] = pending
                if len(self._pending) > self.high_water and not self._saturated:
                    self._saturated = True
                    log.warning(
                        "%d paths queued, over the high-water mark of %d; "
                        "changes are coalesced per path until the queue drains",
                        len(self._pending),
                        self.high_water,
                    )
            else:
                self.coalesced += 1
                _COALESCED[change.kind].inc()
                kind = merge_kinds(pending.kind, change.kind)
                if kind is None:  # created then deleted before we looked: nothing to do
                    self._forget(path, pending)
                    return
                pending.kind = kind
                pending.last_change = now
                pending.closed = change.closed
                pending.live = pending.live or live
            if pending.closed or pending.kind is EventKind.DELETED:
                self._enqueue(path, pending)
            else:
                if pending.queued:  # its writer is back: wait for it again
                    pending.queued = False
                    del self._ready[path]
                wait = self._quiet if pending.kind is EventKind.MOVED else self._open_quiet
                pending.due = now + wait
                if not pending.timed:
                    pending.timed = True
                    heapq.heappush(self._timers, (pending.due, next(self._tie), path, pending))
            self._cond.notify()

    def submit_event(self, event: Event) -> None:
        """Queue a custom event a rule raised; it runs once no other work holds its path."""
        with self._cond:
            self._events.append(event)
            self._cond.notify()

    def _enqueue(self, path: str, pending: _Pending) -> None:
        if not pending.queued:
            pending.queued = True
            self._ready[path] = None

    def _forget(self, path: str, pending: _Pending) -> None:
        del self._pending[path]
        if pending.queued:
            del self._ready[path]

    def _next(self) -> list[Event]:
        """Under the lock: pop ready paths that are not in flight (maybe none), and
        custom events whose paths are free, as the events to handle."""
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, path, pending = heapq.heappop(self._timers)
            if self._pending.get(path) is not pending:
                continue  # taken or cancelled since
            pending.timed = False
            if pending.queued:
                continue
            if pending.due > now:  # changed again since the timer was set: wait on
                pending.timed = True
                heapq.heappush(self._timers, (pending.due, next(self._tie), path, pending))
            else:
                self._enqueue(path, pending)
        share = -(-len(self._ready) // len(self._threads))
        want = max(1, min(self._max_batch, share))
        taken: list[tuple[str, _Pending]] = []
        for path in self._ready:
            if len(taken) == want:
                break
            if path not in self._inflight:  # else taken once the current run ends
                taken.append((path, self._pending[path]))
        for path, _ in taken:
            del self._ready[path]
            del self._pending[path]
            self._inflight.add(path)
        events = [_event(path, pending) for path, pending in taken]
        if self._events and len(events) < want:
            events += self._free_events(want - len(events))
        if self._saturated and len(self._pending) <= self.high_water // 2:
            self._saturated = False
            log.info("queue back under the high-water mark (%d paths)", len(self._pending))
        return events

    def _free_events(self, room: int) -> list[Event]:
        """Under the lock: up to ``room`` custom events on paths nothing holds, in order
        (an event waits behind an earlier one on its path)."""
        taken: list[Event] = []
        kept: deque[Event] = deque()
        held: set[str] = set()
        while self._events:
            event = self._events.popleft()
            path = event.target
            if len(taken) < room and path not in self._inflight and path not in held:
                self._inflight.add(path)
                taken.append(event)
            else:
                kept.append(event)
            held.add(path)
        self._events = kept
        return taken

    def _finished(self) -> bool:
        """Under the lock: a stopping worker may leave."""
        busy = self._pending or self._events
        return self._stopping and (not busy or time.monotonic() >= self._abandon_at)

    def _work(self) -> None:
        while True:
            with self._cond:
                if self._finished():
                    return
                batch = self._next()
                while not batch:
                    if self._finished():
                        return
                    wake = self._timers[0][0] if self._timers else time.monotonic() + 0.5
                    if self._stopping:
                        wake = min(wake, self._abandon_at)
                    self._cond.wait(timeout=max(wake - time.monotonic(), 0.0005))
                    batch = self._next()
            metrics.BATCH_SIZE.observe(len(batch))
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._inflight.difference_update(event.target for event in batch)
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
            return not self._pending and not self._inflight and not self._events

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending or in flight (True) or the timeout passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._inflight or self._events:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(timeout=min(remaining, 0.05))
            return True

    def stop(self, *, drain: float = 3.0, timeout: float = 5.0) -> dict[str, EventKind]:
        """Stop: go on with pending work for up to ``drain`` seconds, then take no
        more; batches in flight always complete (a write is never cut short).

        Returns the paths left pending, with their kinds, for the next start.
        """
        started = time.monotonic()
        with self._cond:
            self._stopping = True
            self._abandon_at = started + min(drain, timeout)
            self._cond.notify_all()
        deadline = started + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._cond:
            if self._events:
                log.warning("%d custom event(s) not handled before the stop", len(self._events))
            return {path: pending.kind for path, pending in self._pending.items()}


def _event(path: str, pending: _Pending) -> Event:
    moved = pending.kind is EventKind.MOVED
    return Event(
        pending.kind,
        pending.source_path if moved else path,
        dest=path if moved else None,
        source="watcher" if pending.live else "scan",
        received=pending.last_change,
    )

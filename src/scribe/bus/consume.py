"""The NATS bus on a worker's side: pull events from every shard's durable
consumer, handle them in batches, acknowledge each once its handling returned.

Each shard's consumer lets one message out at a time (``max_ack_pending=1``)
across all workers, so one file's events are handled in order and never by two
workers at once; a worker holds at most one message per shard, and the messages it
holds (distinct shards, so distinct files) are handled together, sharing one
journal commit as the scheduler's batches do.

A message is acknowledged only after ``Engine.handle_many`` returned: its write is
journaled and swapped in. A worker that dies before that leaves the message
unacknowledged, and the stream delivers it again after ``bus_ack_wait``. The second
handling changes nothing: if the file holds what the journal says Scribe last
wrote there, the event is an echo of that write and is acknowledged unhandled;
otherwise the write never happened, and the engine plans it again from the file's
current content (compare-and-swap). An event delivered ``max_deliveries`` times
without success is quarantined (journaled, with the reason) and acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nats.errors
from nats.aio.msg import Msg

from scribe import records
from scribe.bus.link import Link
from scribe.bus.wire import STREAM, decode, durable
from scribe.engine import Outcome, Status
from scribe.events import Event, EventKind
from scribe.files import hash_file
from scribe.journal.entry import (
    FILE_WRITTEN,
    QUARANTINED,
    Journal,
    JournalUnavailable,
    NewEntry,
    Query,
)
from scribe.journal.writer import JournalWriter

log = logging.getLogger("scribe")

Handle = Callable[[list[Event]], Sequence[Outcome]]

NEEDS_JOURNAL = (
    "handling events from the bus needs the journal (journal: false in scribe.yaml): "
    "it is how a worker knows what Scribe wrote, so that a redelivery changes nothing"
)
#: Seconds one pull request waits for a message; a stop is noticed within it.
FETCH_WAIT = 1.0
#: The most a failed event waits before it is delivered again.
MAX_RETRY_DELAY = 5.0
#: Batches are cut to about this much handling time. A batch's messages are all
#: acknowledged when it is done, and until then their shards are held from every
#: other worker: a long batch leaves the others idle, then hands them its shards
#: all at once, so the workers take turns instead of working side by side.
BATCH_SECONDS = 0.02
#: Weight of the newest batch in the running mean of handling time per event.
SMOOTHING = 0.3


@dataclass(eq=False)
class _Job:
    event: Event
    done: asyncio.Future[Outcome]
    loop: asyncio.AbstractEventLoop = field(repr=False)

    def finish(self, outcome: Outcome | None, error: BaseException | None = None) -> None:
        def settle() -> None:
            if self.done.done():
                return
            if error is not None:
                self.done.set_exception(error)
            else:
                assert outcome is not None
                self.done.set_result(outcome)

        self.loop.call_soon_threadsafe(settle)


def echo_of_write(journal: Journal | None, root: Path, event: Event) -> bool:
    """Whether the event's file holds exactly what Scribe last journaled writing
    there: the event is that write's echo (or a redelivery after it)."""
    if journal is None or event.kind in (EventKind.DELETED, EventKind.CUSTOM):
        return False
    last = journal.query(Query(kinds=[FILE_WRITTEN], path=event.target, newest_first=True, limit=1))
    return bool(last) and last[0].after_hash == hash_file(root / event.target)


def quarantined(event: Event | None, subject: str, deliveries: int, reason: str) -> NewEntry:
    """The journal entry of an event the bus gives up on."""
    what = f"bus event {event.id}" if event is not None else f"undecodable message on {subject}"
    return NewEntry(
        QUARANTINED,
        records.SCRIBE,
        # Never None: ``scribe quarantine list`` lists it by path (an unreadable
        # message has none: its subject stands in).
        path=event.target if event is not None else subject,
        message=f"{what} quarantined after {deliveries} deliveries: {reason}",
        payload={
            "rule": "bus",
            "reason": reason,
            "deliveries": deliveries,
            "subject": subject,
            **({"event": records.event_payload(event)} if event is not None else {}),
        },
    )


class Consumer:
    """Consumes every shard until ``stop``; ``handle`` runs on one thread.

    One, whatever the ``workers`` setting: handling is planning, Python code that
    more threads of one process only slow down (they take turns at the interpreter
    lock); a worker's batch shares one journal commit, and more throughput comes
    from more worker processes (measured on two CPUs with a CPU-heavy rule: two
    workers handled 1.6x what one did with one thread each, 1.3x with two, 1.1x
    with four).

    Batches are as large as ``BATCH_SECONDS`` of handling allows (``batch_limit``).

    Before a message is acknowledged, everything its handling journaled is
    committed, down to each write's ``work.done``: the next worker to get an event
    for the file finds the last one's work complete in the journal.
    """

    def __init__(
        self,
        link: Link,
        handle: Handle,
        *,
        root: Path,
        journal: JournalWriter | None,
        max_deliveries: int,
        max_batch: int = 64,
    ) -> None:
        self.link = link
        self._handle = handle
        self._root = root
        self._journal = journal
        self._max_deliveries = max_deliveries
        self._max_batch = max_batch
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._threads = [
            threading.Thread(target=self._work, name="scribe-bus-handler", daemon=True)
        ]
        self.handled = 0
        self.quarantined = 0
        #: Mean seconds of handling per event (None until the first batch).
        self.per_event: float | None = None

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self.link.call(self._start())

    async def _start(self) -> None:
        for shard in range(self.link.shards):
            sub = await self.link.js.pull_subscribe_bind(durable=durable(shard), stream=STREAM)
            self._tasks.append(asyncio.create_task(self._pull(sub), name=durable(shard)))

    def stop(self, timeout: float = 10.0) -> None:
        """Take no new message; finish, acknowledge and return once what is in hand
        is done (within ``timeout``)."""
        self._stopping = True
        try:
            self.link.call(self._drain(), timeout=timeout)
        except TimeoutError:
            log.warning("bus: work still in hand at the stop is delivered again later")
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=2)

    async def _drain(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the loop's side --------------------------------------------------------------

    async def _pull(self, sub: nats.js.JetStreamContext.PullSubscription) -> None:
        while not self._stopping:
            try:
                messages = await sub.fetch(1, timeout=FETCH_WAIT)
            except nats.errors.TimeoutError:
                continue
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                # Reconnecting: the client retries by itself; so does this loop.
                log.debug("bus: fetch failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            for message in messages:
                try:
                    await self._one(message)
                except (nats.errors.Error, OSError, TimeoutError) as exc:
                    log.warning("bus: could not acknowledge a message (%s)", exc)
                except Exception:
                    # Whatever went wrong, this shard must go on being consumed (a
                    # dead loop would leave it to the other workers, silently); the
                    # message is delivered again.
                    log.exception("bus: failed to handle a message on %s", message.subject)

    async def _one(self, message: Msg) -> None:
        deliveries = message.metadata.num_delivered
        event: Event | None = None
        try:
            event = decode(message.data)
        except ValueError as exc:
            reason = str(exc)
        else:
            if deliveries > self._max_deliveries:
                reason = f"no worker finished it in {deliveries - 1} deliveries"
                await self._give_up(message, event, deliveries - 1, reason)
                return
            reason = await self._run(message, event)
            if not reason:
                await message.ack_sync()
                return
        if deliveries >= self._max_deliveries:
            await self._give_up(message, event, deliveries, reason)
            return
        log.warning(
            "bus: %s failed (delivery %d of %d): %s; retrying",
            event.target if event else message.subject,
            deliveries,
            self._max_deliveries,
            reason,
        )
        await message.nak(delay=min(0.1 * 2**deliveries, MAX_RETRY_DELAY))

    async def _run(self, message: Msg, event: Event) -> str:
        """Handle ``event``; why it failed, or '' once it is done."""
        loop = asyncio.get_running_loop()
        job = _Job(event, loop.create_future(), loop)
        self._jobs.put(job)
        while True:
            # Tell the stream this worker is alive while a long batch runs, so that
            # it is not delivered to another worker meanwhile.
            done, _ = await asyncio.wait({job.done}, timeout=self.link.ack_wait / 3)
            if done:
                break
            await message.in_progress()
        try:
            outcome = job.done.result()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        if outcome.status is Status.FAILED:  # not written (journal down, disk full...)
            return outcome.reason or "the write failed"
        return ""

    async def _give_up(self, message: Msg, event: Event | None, deliveries: int, why: str) -> None:
        entry = quarantined(event, message.subject, deliveries, why)
        await asyncio.get_running_loop().run_in_executor(None, self._record, entry)
        log.error("%s", entry.message, extra={"path": entry.path, "result": "quarantined"})
        self.quarantined += 1
        await message.ack_sync()

    def _record(self, entry: NewEntry) -> None:
        if self._journal is None:
            return
        try:
            self._journal.append([entry])
        except JournalUnavailable as exc:
            log.error("could not journal %r: %s", entry.message, exc)

    # -- the handling threads ---------------------------------------------------------

    def _work(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.batch_limit():
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._jobs.put(None)  # for the thread it was meant for
                    break
                batch.append(job)
            started = time.perf_counter()
            self._run_batch(batch)
            self._learn((time.perf_counter() - started) / len(batch))

    def batch_limit(self) -> int:
        """How many events the next batch may take: as many as fit in
        ``BATCH_SECONDS`` at the handling time seen so far (one to begin with), so
        that light events still share journal commits and heavy ones are
        acknowledged one by one."""
        if self.per_event is None:
            return 1
        return max(1, min(self._max_batch, int(BATCH_SECONDS / max(self.per_event, 1e-6))))

    def _learn(self, seconds: float) -> None:
        last = self.per_event
        self.per_event = seconds if last is None else last + SMOOTHING * (seconds - last)

    def _run_batch(self, batch: list[_Job]) -> None:
        todo = []
        for job in batch:
            store = self._journal.store if self._journal is not None else None
            if echo_of_write(store, self._root, job.event):
                job.finish(Outcome(job.event.target, Status.ECHO))
            else:
                todo.append(job)
        if not todo:
            return
        try:
            outcomes = self._handle([job.event for job in todo])
        except Exception as exc:
            if len(todo) == 1:
                log.exception("bus: failed to handle %s", todo[0].event.target)
                todo[0].finish(None, exc)
                return
            for job in todo:  # each alone, so that one bad file costs only itself
                self._run_batch([job])
            return
        if self._journal is not None:
            self._journal.flush()
        for job, outcome in zip(todo, outcomes, strict=True):
            job.finish(outcome)
        self.handled += len(todo)

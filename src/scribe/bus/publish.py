"""The NATS bus on the watcher's side: the in-process scheduler still decides when
a file is ready (its writer closed it, or it went quiet) and coalesces bursts, but a
ready batch is published to JetStream instead of being handled here."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

import nats.errors

from scribe.bus.link import Link
from scribe.bus.wire import STREAM, encode, shard_of, subject
from scribe.events import Event, EventKind
from scribe.scheduler import Scheduler
from scribe.watch import Change

log = logging.getLogger("scribe")

#: Seconds one publish may wait for the stream's acknowledgement before it is retried.
PUBLISH_TIMEOUT = 5.0


class NatsBus:
    """Ready events go to ``SCRIBE_EVENTS``, each on its path's shard."""

    def __init__(
        self,
        link: Link,
        *,
        quiet: float,
        closes_known: bool,
        workers: int,
        max_batch: int,
        high_water: int,
    ) -> None:
        self.link = link
        self._stopping = threading.Event()
        self._queue = Scheduler(
            self.publish,
            quiet=quiet,
            closes_known=closes_known,
            workers=workers,
            max_batch=max_batch,
            high_water=high_water,
        )
        self.published = 0

    # -- the Bus protocol: what the watch service asks of its queue -------------------

    def submit(self, change: Change, *, live: bool = True) -> None:
        self._queue.submit(change, live=live)

    def submit_event(self, event: Event) -> None:
        """A custom event a rule raised: published at once (its order is its shard's)."""
        self.publish([event])

    def start(self) -> None:
        self._queue.start()

    def stop(self, *, drain: float = 3.0, timeout: float = 5.0) -> dict[str, EventKind]:
        self._stopping.set()  # a publish that fails from now on is left to the next start
        return self._queue.stop(drain=drain, timeout=timeout)

    def wait_idle(self, timeout: float) -> bool:
        return self._queue.wait_idle(timeout)

    def configure(self, *, quiet: float | None = None, max_batch: int | None = None) -> None:
        self._queue.configure(quiet=quiet, max_batch=max_batch)

    def expect_no_closes(self, quiet: float) -> None:
        self._queue.expect_no_closes(quiet)

    @property
    def depth(self) -> int:
        return self._queue.depth

    @property
    def processed(self) -> int:
        return self._queue.processed

    @property
    def saturated(self) -> bool:
        return self._queue.saturated

    @property
    def high_water(self) -> int:
        return self._queue.high_water

    @high_water.setter
    def high_water(self, value: int) -> None:
        self._queue.high_water = value

    # -- publishing ------------------------------------------------------------------

    def publish(self, events: Sequence[Event]) -> None:
        publish(self.link, events, self._stopping)
        self.published += len(events)


def publish(link: Link, events: Sequence[Event], stopping: threading.Event) -> None:
    """Publish ``events`` and wait until the stream has stored each one.

    A server that is down (restarting) is waited for until ``stopping`` is set: the
    scheduler holds the paths meanwhile, so their later changes coalesce instead of
    racing ahead. The event id is the message id, so a publish retried after a lost
    acknowledgement is stored once.
    """
    warned = False
    while True:
        try:
            link.call(_publish(link, events), timeout=PUBLISH_TIMEOUT * 2)
            return
        except (nats.errors.Error, TimeoutError) as exc:
            if stopping.is_set():
                raise
            if not warned:
                log.warning("bus %s: cannot publish (%s); retrying", link.url, exc)
                warned = True
            stopping.wait(0.2)


async def _publish(link: Link, events: Sequence[Event]) -> None:
    await asyncio.gather(
        *(
            link.js.publish(
                subject(shard_of(event.target, link.shards)),
                encode(event),
                timeout=PUBLISH_TIMEOUT,
                stream=STREAM,
                headers={"Nats-Msg-Id": event.id},
            )
            for event in events
        )
    )

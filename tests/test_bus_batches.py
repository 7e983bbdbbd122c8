"""How a worker cuts batches from the bus (``Consumer.batch_limit``): events that
take long are taken and acknowledged one at a time, so that no shard waits in a
batch while another worker could handle it; quick ones still share a batch (and
so a journal commit). A real nats-server; the handling is the test's own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nats_helpers import NatsServer, bus, nats_server
from scribe.bus import Consumer, Link, publish
from scribe.config import Settings
from scribe.engine import Outcome, Status
from scribe.events import Event, EventKind

__all__ = ["bus", "nats_server"]  # fixtures, used by name

SHARDS = 8


class Handler:
    """Takes ``seconds`` per event and records each batch's size."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.batches: list[int] = []
        self.done = threading.Event()
        self.expected = 0

    def __call__(self, events: list[Event]) -> list[Outcome]:
        time.sleep(self.seconds * len(events))
        self.batches.append(len(events))
        if sum(self.batches) >= self.expected:
            self.done.set()
        return [Outcome(event.target, Status.WRITTEN) for event in events]


@pytest.fixture
def link(bus: NatsServer) -> Iterator[Link]:
    made = Link(Settings(bus=bus.url, bus_shards=SHARDS))
    try:
        yield made
    finally:
        made.close()


def consume(link: Link, handler: Handler, files: int, tmp_path: Path) -> Consumer:
    """Publish one event for each of ``files`` files, then let a consumer handle them."""
    events = [Event(EventKind.MODIFIED, f"n{i:03d}.md") for i in range(files)]
    publish(link, events, threading.Event())
    handler.expected = files
    consumer = Consumer(link, handler, root=tmp_path, journal=None, max_deliveries=3)
    consumer.start()
    try:
        assert handler.done.wait(60), f"handled {sum(handler.batches)} of {files}"
    finally:
        consumer.stop()
    return consumer


def test_events_that_take_long_are_handled_one_at_a_time(link: Link, tmp_path: Path) -> None:
    # 40 ms an event: a batch of eight would hold eight shards for a third of a second.
    handler = Handler(0.04)
    consumer = consume(link, handler, 24, tmp_path)
    assert handler.batches == [1] * 24
    assert consumer.batch_limit() == 1


def test_quick_events_still_share_batches(link: Link, tmp_path: Path) -> None:
    handler = Handler(0.0002)
    consumer = consume(link, handler, 400, tmp_path)
    assert handler.batches[0] == 1  # nothing is known of the handling time yet
    assert max(handler.batches) > 1
    assert sum(handler.batches) == 400
    assert consumer.batch_limit() > 1

"""The bus: how ready events reach the engine.

Two implementations of one protocol. ``scribe.scheduler.Scheduler`` is the default,
in-process one: the watcher's changes wait for their writer, coalesce per path and
go to the engine in this process, with nothing in between. ``NatsBus`` keeps the
same scheduler for the waiting and coalescing, then publishes each ready event to
NATS JetStream, where ``Consumer`` (in ``scribe worker``, or in ``scribe watch``
itself) takes it to an engine. See docs/scale-out.md for the guarantees.
"""

from __future__ import annotations

from typing import Protocol

from scribe.bus.consume import NEEDS_JOURNAL, Consumer, echo_of_write
from scribe.bus.link import Link, check_url, tls_context
from scribe.bus.publish import NatsBus, publish
from scribe.bus.wire import STREAM, shard_of
from scribe.events import Event, EventKind
from scribe.watch import Change

__all__ = [
    "NEEDS_JOURNAL",
    "STREAM",
    "Bus",
    "Consumer",
    "Link",
    "NatsBus",
    "check_url",
    "echo_of_write",
    "publish",
    "shard_of",
    "tls_context",
]


class Bus(Protocol):
    """What ``scribe watch`` asks of the queue between its watcher and the engine."""

    high_water: int

    def submit(self, change: Change, *, live: bool = True) -> None: ...

    def submit_event(self, event: Event) -> None: ...

    def start(self) -> None: ...

    def stop(self, *, drain: float = 3.0, timeout: float = 5.0) -> dict[str, EventKind]: ...

    def wait_idle(self, timeout: float) -> bool: ...

    def configure(self, *, quiet: float | None = None, max_batch: int | None = None) -> None: ...

    def expect_no_closes(self, quiet: float) -> None: ...

    @property
    def depth(self) -> int: ...

    @property
    def processed(self) -> int: ...

    @property
    def saturated(self) -> bool: ...

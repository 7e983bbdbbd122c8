"""The event: what happened to which path, when, and who saw it."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

#: Seeded from the OS once (and again in a forked child); ``uuid4()`` itself asks the
#: OS for randomness on every call, a syscall per event that shows up in a scan.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def _new_id() -> str:
    return uuid.UUID(int=_ids.getrandbits(128), version=4).hex


class EventKind(StrEnum):
    CREATED = "created"
    MODIFIED = "modified"
    DELETED = "deleted"
    MOVED = "moved"
    #: A custom event raised by a rule's ``emit`` step; ``Event.name`` says which.
    CUSTOM = "event"


#: The kinds a change to a file gives (every kind but ``CUSTOM``).
FILE_KINDS = (EventKind.CREATED, EventKind.MODIFIED, EventKind.DELETED, EventKind.MOVED)


@dataclass(frozen=True)
class Event:
    """One observed change. ``time`` is also the frozen ``now()`` of every rule it runs.

    Events from the watcher and from scans leave ``time`` unset: the engine then
    takes the moment it reads the file (again for each re-read), so a stamp is
    never older than the content it is written into.
    """

    kind: EventKind
    path: str  # posix path relative to the repository root
    dest: str | None = None  # for moves: where it went
    time: datetime | None = None
    source: str = "watcher"
    id: str = field(default_factory=_new_id)
    #: When the last change folded into this event arrived (``time.monotonic()``):
    #: the start of the event-to-write latency.
    received: float | None = field(default=None, compare=False, repr=False)
    #: For ``CUSTOM`` events: the event's name and data, and how many emits led to it.
    name: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict, compare=False)
    depth: int = 0

    def at(self, time: datetime) -> Event:
        """This event with ``time`` set, unless it already has one."""
        return self if self.time is not None else replace(self, time=time)

    def describe(self) -> dict[str, Any]:
        """What templates see as ``event``: kind, and name, data and depth for custom events."""
        if self.kind is not EventKind.CUSTOM:
            return {"kind": self.kind.value}
        return {
            "kind": self.kind.value,
            "name": self.name,
            "data": dict(self.data),
            "depth": self.depth,
        }

    @property
    def target(self) -> str:
        """The path whose content the event is about (the destination of a move)."""
        return self.dest if self.kind is EventKind.MOVED and self.dest else self.path


def merge_kinds(first: EventKind, then: EventKind) -> EventKind | None:
    """Coalesce two events on one path into one; ``None`` means they cancel out."""
    if first is EventKind.CREATED:
        return None if then is EventKind.DELETED else EventKind.CREATED
    if first is EventKind.DELETED:
        return EventKind.DELETED if then is EventKind.DELETED else EventKind.MODIFIED
    if then is EventKind.DELETED:
        return EventKind.DELETED
    return first if first is EventKind.MOVED else EventKind.MODIFIED

"""Idempotency keys: a call repeated with the key of one already recorded gets the
first call's result instead of being recorded twice.

A key belongs to one agent instance: ``(agent id, instance id, key)``. It is
remembered with a fingerprint of the event it came with, so a key reused for a
different event is refused rather than silently answered with the wrong result.
The most recent ``MAX_KEYS`` keys are kept in memory. Keys are also recorded in
the sentinel JSONL lines, and ``learn`` reads them back from a day's file once per
process, so a retry after a restart is still recognised.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scribe.journal.entry import canonical
from scribe.mcp.failures import BUSY, CONFLICT, ToolFailure

MAX_KEYS = 10_000
#: The fields of an event its fingerprint covers: what the agent said, not when.
EVENT_FIELDS = ("event_type", "severity", "message", "paths", "data")
_SCAN_BYTES = 32 * 1024 * 1024  # how much of the end of a day's file ``learn`` reads
_WAIT = 30.0  # how long a repeated key waits for the first call to finish

Key = tuple[str, str, str]


def fingerprint(event: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: event[k] for k in EVENT_FIELDS}).encode()).hexdigest()


@dataclass(eq=False)
class Slot:
    """One key: the event it came with and, once recorded, the call's result."""

    fingerprint: str
    result: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)


class KnownKeys:
    """The keys this process knows, newest last; thread-safe."""

    def __init__(self, limit: int = MAX_KEYS) -> None:
        self.limit = limit
        self._slots: OrderedDict[Key, Slot] = OrderedDict()
        self._guard = threading.Lock()
        self._learnt: set[Path] = set()
        self._learning = threading.Lock()

    def claim(self, key: Key, event: Mapping[str, Any]) -> tuple[Slot, bool]:
        """The key's slot, and True if this call is the first with it and must record
        the event (then ``settle`` the slot). A repeat waits for the first call."""
        mark = fingerprint(event)
        deadline = time.monotonic() + _WAIT
        while True:
            with self._guard:
                slot = self._slots.get(key)
                if slot is None:
                    slot = self._slots[key] = Slot(mark)
                    self._trim()
                    return slot, True
                self._slots.move_to_end(key)
            if slot.fingerprint != mark:
                raise ToolFailure(
                    CONFLICT,
                    f"idempotency_key {key[2]!r} was already used by this agent instance for"
                    " another event; a new event needs a new key",
                    idempotency_key=key[2],
                )
            if not slot.done.wait(max(deadline - time.monotonic(), 0.0)):
                raise ToolFailure(
                    BUSY, f"the first call with idempotency_key {key[2]!r} is still being recorded"
                )
            if slot.result is not None:
                return slot, False
            # the first call failed and gave the key up: this one may record the event

    def settle(self, key: Key, slot: Slot, result: dict[str, Any] | None) -> None:
        """Record the first call's ``result``; None (it failed) frees the key for a retry."""
        slot.result = result
        if result is None:
            with self._guard:
                if self._slots.get(key) is slot:
                    del self._slots[key]
        slot.done.set()

    def learn(self, jsonl: Path, result: Mapping[str, Any]) -> None:
        """Learn the keys recorded in ``jsonl`` (once per file and process); a repeat
        of one gets ``result`` with that line's ``entry_id`` and ``seq``."""
        with self._learning:
            if jsonl in self._learnt:
                return
            self._learnt.add(jsonl)
            found = _recorded(jsonl)
        with self._guard:
            for key, mark, recorded in found:
                if key not in self._slots:
                    slot = self._slots[key] = Slot(mark, {**result, **recorded})
                    slot.done.set()
                    self._slots.move_to_end(key, last=False)  # older than any seen live
            self._trim()

    def _trim(self) -> None:
        while len(self._slots) > self.limit:
            self._slots.popitem(last=False)


def _recorded(jsonl: Path) -> Sequence[tuple[Key, str, dict[str, Any]]]:
    """Each keyed line of (the end of) ``jsonl``: key, fingerprint, entry_id and seq."""
    try:
        file = jsonl.open("rb")
    except FileNotFoundError:
        return []
    found = []
    with file:
        size = os.fstat(file.fileno()).st_size
        if size > _SCAN_BYTES:
            file.seek(size - _SCAN_BYTES)
            file.readline()  # the rest of the line the seek cut
        for raw in file:
            if b'"idempotency_key"' not in raw:
                continue
            try:
                record = json.loads(raw)
                agent = record["agent"]
                key = (agent["id"], agent["instance_id"], record["idempotency_key"])
                mark = fingerprint(record)
                recorded = {"entry_id": record["entry_id"], "seq": record["seq"]}
            except (ValueError, KeyError, TypeError):  # a line cut short by a crash
                continue
            if all(isinstance(part, str) for part in key):
                found.append((key, mark, recorded))
    return found

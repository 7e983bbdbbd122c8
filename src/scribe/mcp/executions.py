"""Execution summaries: one small file per agent run and sentinel day.

``<day folder>/executions/exec-<execution_id>.json`` says who ran (``agent``), from
when to when (the first and last call's ``timestamp_utc``), why (the first
``MAX_INTENTS`` intents), what (``counts`` of calls by event type, case changes by
journal kind, and their total ``calls``) and the ``last_seq`` journaled. It is a
convenience for people and dashboards; the journal has every entry.

Rewriting it on every call would cost a file create per call, so a summary is
written when its execution first shows up in this process, then at most once per
``interval`` while calls keep coming (by the call that finds it due), and by
``close()``. A write adds this process's new counts to what the file holds, under
an exclusive ``flock`` of the ``executions`` folder, so several processes, and a
process restarted mid-run, add up instead of overwriting each other.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from scribe.mcp.context import Call
from scribe.mcp.failures import INVALID_CONTEXT, SCOPE_VIOLATION, ToolFailure
from scribe.mcp.storage import atomic_write, flock_by

log = logging.getLogger("scribe")

EXECUTIONS = "executions"
MAX_INTENTS = 50
_MAX_KEPT = 4096  # executions remembered; those with nothing left to write go first
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")  # context.Token's rule


def summary_path(day_folder: Path, execution_id: str) -> Path:
    """Where the summary of ``execution_id`` in that day folder lives; checked to be there."""
    if not _TOKEN.fullmatch(execution_id):
        raise ToolFailure(INVALID_CONTEXT, f"execution_id {execution_id!r} is not an identifier")
    folder = day_folder / EXECUTIONS
    path = folder / f"exec-{execution_id}.json"
    if path.parent != folder:
        raise ToolFailure(SCOPE_VIOLATION, f"{path} is not a file of {folder}")
    return path


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class _Tally:
    """Part of one execution's summary: what the file holds, or what is new since."""

    agent: Mapping[str, Any]
    first: datetime
    last: datetime
    intents: tuple[str, ...]
    counts: Counter[str]
    last_seq: int

    @classmethod
    def of(cls, call: Call, label: str, seq: int) -> _Tally:
        moment = call.context.timestamp_utc
        agent = call.context.agent_identity.model_dump(exclude_none=True)
        return cls(agent, moment, moment, (call.context.intent,), Counter([label]), seq)

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> _Tally:
        """The tally a summary file holds; KeyError, TypeError or ValueError if none."""
        return cls(
            dict(data["agent"]),
            datetime.fromisoformat(data["first_timestamp_utc"]),
            datetime.fromisoformat(data["last_timestamp_utc"]),
            tuple(str(intent) for intent in data["intents"]),
            Counter({str(k): int(v) for k, v in data["counts"].items()}),
            int(data["last_seq"]),
        )

    def then(self, later: _Tally) -> _Tally:
        """This tally followed by ``later``."""
        intents = self.intents + tuple(i for i in later.intents if i not in self.intents)
        return _Tally(
            self.agent,
            min(self.first, later.first),
            max(self.last, later.last),
            intents[:MAX_INTENTS],
            self.counts + later.counts,
            max(self.last_seq, later.last_seq),
        )

    def summary(self, execution_id: str, day: str) -> dict[str, Any]:
        return {
            "execution_id": execution_id,
            "sentinel_day": day,
            "agent": dict(self.agent),
            "first_timestamp_utc": _z(self.first),
            "last_timestamp_utc": _z(self.last),
            "intents": list(self.intents),
            "counts": dict(sorted(self.counts.items())),
            "calls": sum(self.counts.values()),
            "last_seq": self.last_seq,
        }


@dataclass
class _Execution:
    path: Path
    label: str  # the path relative to the repository, for messages
    new: _Tally | None = None  # not yet added to the file
    written_at: float = float("-inf")  # time.monotonic() of the last write


class Executions:
    """The summaries of the executions this process has seen calls of."""

    def __init__(self, *, lock_timeout: float, interval: float) -> None:
        self.lock_timeout = lock_timeout
        self.interval = interval
        self._known: dict[tuple[str, str], _Execution] = {}
        self._guard = threading.Lock()

    def count(self, call: Call, day_folder: Path, day_rel: str, label: str, seq: int) -> None:
        """Count one call (as ``label``, journaled at ``seq``) in its execution's summary."""
        due = self.tally(call, day_folder, day_rel, label, seq)
        if due is not None:
            due()

    def tally(
        self, call: Call, day_folder: Path, day_rel: str, label: str, seq: int
    ) -> Callable[[], None] | None:
        """``count`` without the write: the summary's write when one is due (the caller
        runs it where a wait for the folder's lock and a disk sync do no harm)."""
        key = (day_rel, call.context.execution_id)
        tally = _Tally.of(call, label, seq)
        now = time.monotonic()
        with self._guard:
            execution = self._known.get(key)
            if execution is None:
                if len(self._known) >= _MAX_KEPT:
                    for done in [k for k, known in self._known.items() if known.new is None]:
                        del self._known[done]
                path = summary_path(day_folder, call.context.execution_id)
                rel = f"{day_rel}/{EXECUTIONS}/{path.name}"
                execution = self._known[key] = _Execution(path, rel)
            execution.new = tally if execution.new is None else execution.new.then(tally)
            if now - execution.written_at < self.interval:
                return None
            new, execution.new, execution.written_at = execution.new, None, now
        return functools.partial(self._write, execution, new)

    def close(self) -> None:
        """Write every summary that has counts not written yet."""
        with self._guard:
            due = [(known, known.new) for known in self._known.values() if known.new is not None]
            for known, _ in due:
                known.new = None
        for execution, new in due:
            self._write(execution, new)

    def _write(self, execution: _Execution, new: _Tally) -> None:
        """Add ``new`` to the summary file; if that fails, keep it for the next write."""
        path, label = execution.path, execution.label
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                flock_by(folder, time.monotonic() + self.lock_timeout, label, self.lock_timeout)
                stored = _stored(path, label)
                total = new if stored is None else stored.then(new)
                summary = total.summary(path.stem.removeprefix("exec-"), path.parent.parent.name)
                atomic_write(path, json.dumps(summary, ensure_ascii=False, indent=1).encode())
            finally:
                os.close(folder)  # and with it, the lock
        except (ToolFailure, OSError) as exc:
            problem = exc.message if isinstance(exc, ToolFailure) else str(exc)
            log.warning("could not write %s (%s); will try again", label, problem)
            with self._guard:
                execution.new = new if execution.new is None else new.then(execution.new)


def _stored(path: Path, label: str) -> _Tally | None:
    """What the summary file holds: None if there is none, or if it is not a summary."""
    try:
        return _Tally.read(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning("%s is not an execution summary (%s); writing it anew", label, exc)
        return None

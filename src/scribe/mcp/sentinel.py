"""Sentinel logs: what agents in audit mode report they do, filed by day.

Sentinel mode writes nowhere but ``<root>/.scribe/sentinel/YYYY-MM-DD/``, the day of
the call's ``timestamp_utc``. Paths are built from the root, that day (a date), a
fixed set of names (``SentinelFile``) and the execution id (a checked token), and
each is checked to lie in the day folder anyway. In the folder:

``sentinel.jsonl``
    One JSON object per event: the journal entry's ``seq``, ``ts``, ``kind``,
    ``actor`` and ``message``, then its payload: the call's provenance
    (``execution_id``, ``agent``, ``intent``, ``session_id``...), ``event_type``,
    ``severity``, ``paths``, ``data``, ``entry_id`` and, when the agent gave one,
    ``idempotency_key``.
``bug.jsonl``, ``security.jsonl``
    The same, one object per change to a case (see ``scribe.mcp.cases``).
``SENTINEL_LOG.md``
    One line per event or case change, for people::

        [⚠️] [2026-12-01 10:00:00 UTC] [Agent: claude-code/7f3a] [Exec: run-42] Edited
        a.md | type=file.edit; severity=warning; paths=a.md, b.md; seq=17

    (one line in the file). The time is the agent's ``timestamp_utc``. The mark is
    the severity's (🔍 debug, 🔹 info, ⚠️ warning, ❌ error, 🚨 critical, 🛰️ none) or
    a case change's journal kind's. Whitespace in the message is folded into single
    spaces, and ``key=value`` pairs follow the last `` | `` for what the event has.
    Tools should read the JSONL files: this line is not meant to be parsed.
``executions/exec-<execution_id>.json``
    A summary of one execution's calls that day (see ``scribe.mcp.executions``).

Journal first: an event is committed to the journal before its lines are written,
and the journal is the durable record (the line files are not synced). An append
first checks that both files' locks can be had, so a stuck file fails the call
with ``BUSY`` before anything is journaled. Should the lock be lost between that
check and the write, or the disk refuse the line, the call still succeeds (the
journal has the event) and lists the files as ``deferred``: the line is written
ahead of that file's next one.

``append_event_soon`` serves ``append_event`` on the server's event loop: the
loop checks the locks without waiting, awaits the journal's commit without a
thread, and writes the two lines waiting at most ``LOOP_LOCK_WAIT`` for a lock
(they were free a moment before), else defers them as above. Only what may wait
longer goes to a worker thread: a lock held elsewhere, a call with an
idempotency key (it may wait for a first call with that key, or read another
day's keys), a due execution summary. Once journaled, a call's lines are written
even if its caller gives up on it.

An ``idempotency_key`` used again by the same agent instance returns the first
call's result, marked ``replayed``, and appends nothing (see
``scribe.mcp.idempotency``). Keys are read back from today's and yesterday's
``sentinel.jsonl`` when a ``SentinelLog`` starts, and from another day's the first
time a key comes for it; two processes serving one repository learn each other's
keys only then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import anyio

from scribe.journal.entry import (
    AGENT_EVENT,
    JOURNAL_FLAGGED,
    Entry,
    JournalUnavailable,
    NewEntry,
    canonical,
    emoji,
)
from scribe.journal.writer import JournalWriter
from scribe.mcp.context import Call
from scribe.mcp.executions import EXECUTIONS, Executions
from scribe.mcp.failures import (
    INVALID_ARGUMENT,
    SCOPE_VIOLATION,
    UNAVAILABLE,
    WRONG_MODE,
    ToolFailure,
)
from scribe.mcp.idempotency import KnownKeys
from scribe.mcp.lines import LineFile

log = logging.getLogger("scribe")

SENTINEL_DIR = Path(".scribe") / "sentinel"


class SentinelFile(StrEnum):
    """The only files sentinel mode appends to, in the day folder."""

    LOG = "SENTINEL_LOG.md"
    EVENTS = "sentinel.jsonl"
    BUGS = "bug.jsonl"
    SECURITY = "security.jsonl"


SEVERITIES = ("debug", "info", "warning", "error", "critical")
_MARKS = {"debug": "🔍", "info": "🔹", "warning": "⚠️", "error": "❌", "critical": "🚨"}

MAX_MESSAGE = 4000
MAX_PATHS = 100
MAX_PATH = 1024
MAX_DATA = 16_384  # bytes of canonical JSON
_OPEN_DAYS = 8  # day folders whose files stay open
#: How long a call served on the event loop may hold the loop waiting for a line
#: file's lock (it was free just before the commit); then the line is deferred.
LOOP_LOCK_WAIT = 0.02
_EVENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def invalid(name: str, problem: str) -> ToolFailure:
    return ToolFailure(INVALID_ARGUMENT, f"{name}: {problem}", field=name)


def text(value: object, name: str, *, limit: int) -> str:
    """``value`` stripped; refused if it is not a string, is empty or is too long."""
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    value = value.strip()
    if not value:
        raise invalid(name, "must not be empty")
    if len(value) > limit:
        raise invalid(name, f"is {len(value)} characters long; at most {limit} are allowed")
    return value


def repo_paths(values: object, name: str) -> list[str]:
    """Repository-relative paths, normalised; checked as text only, never opened."""
    if not isinstance(values, list):
        raise invalid(name, "must be a list of repository-relative paths (it may be empty)")
    if len(values) > MAX_PATHS:
        raise invalid(name, f"has {len(values)} paths; at most {MAX_PATHS} are allowed")
    paths = []
    for i, value in enumerate(values):
        where = f"{name}[{i}]"
        if not isinstance(value, str) or not value.strip():
            raise invalid(where, "must be a non-empty path")
        if len(value) > MAX_PATH:
            raise invalid(where, f"is longer than {MAX_PATH} characters")
        if any(c in value for c in "\x00\r\n"):
            raise invalid(where, "must not contain NUL or line breaks")
        if "\\" in value:
            raise invalid(where, f"{value!r}: use / between folders")
        if value.startswith(("/", "~")) or PureWindowsPath(value).drive:
            raise invalid(where, f"{value!r} must be relative to the repository root")
        path = PurePosixPath(value)
        if ".." in path.parts:
            raise invalid(where, f"{value!r} must not contain '..'")
        if path.as_posix() == ".":
            raise invalid(where, "must name something inside the repository")
        paths.append(path.as_posix())
    return paths


def commit(journal: JournalWriter, new: NewEntry) -> Entry:
    """Journal ``new``, waiting for the commit; UNAVAILABLE if it was not committed."""
    try:
        return journal.append([new])[0]
    except JournalUnavailable as exc:
        raise _unrecorded(exc) from None


def _unrecorded(exc: JournalUnavailable) -> ToolFailure:
    return ToolFailure(UNAVAILABLE, f"nothing was recorded: {exc}")


async def commit_soon(journal: JournalWriter, new: NewEntry, *, alone: bool) -> Entry:
    """``commit`` for a caller on an asyncio loop: waits for the commit without a thread.

    A call ``alone`` on the loop commits on the loop's own thread if the journal is
    idle: nobody else is kept waiting, and it saves two thread hand-offs."""
    if alone:
        try:
            sealed = journal.append_now([new])
        except JournalUnavailable as exc:
            raise _unrecorded(exc) from None
        if sealed is not None:
            return sealed[0]
    loop = asyncio.get_running_loop()
    committed = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(committed.set)

    try:
        request = journal.append_then([new], wake)
        await committed.wait()
        return request.result()[0]
    except JournalUnavailable as exc:
        raise _unrecorded(exc) from None


def markdown_line(call: Call, mark: str, message: str, details: Mapping[str, object]) -> str:
    """One ``SENTINEL_LOG.md`` line (without the newline); empty details are left out."""
    agent = call.context.agent_identity
    when = call.context.timestamp_utc.strftime("%Y-%m-%d %H:%M:%S")
    line = (
        f"[{mark}] [{when} UTC] [Agent: {agent.id}/{agent.instance_id}] "
        f"[Exec: {call.context.execution_id}] {_fold(message)}"
    )
    pairs = "; ".join(f"{k}={_fold(str(v))}" for k, v in details.items() if v not in (None, ""))
    return f"{line} | {pairs}" if pairs else line


def _fold(value: str) -> str:
    return " ".join(value.split())


class DayFolder:
    """The paths of one day's sentinel folder; its files open on first use."""

    def __init__(self, root: Path, day: date) -> None:
        self.name = day.isoformat()
        self.rel = (SENTINEL_DIR / self.name).as_posix()
        self.folder = root / SENTINEL_DIR / self.name
        self.files: dict[SentinelFile, LineFile] = {}
        for name in SentinelFile:
            path = self.folder / name.value
            if path.parent != self.folder:
                raise ToolFailure(SCOPE_VIOLATION, f"{path} is not a file of {self.folder}")
            self.files[name] = LineFile(path, f"{self.rel}/{name.value}")


class SentinelLog:
    """The sentinel logs of the repository at ``root``; thread-safe, and safe beside
    other processes appending to the same files.

    ``lock_timeout`` bounds every wait for a file lock (then ``BUSY``);
    ``summary_interval`` is the least time between two writes of one execution's
    summary while its calls keep coming.
    """

    def __init__(
        self,
        root: Path,
        journal: JournalWriter,
        *,
        lock_timeout: float = 2.0,
        summary_interval: float = 1.0,
    ) -> None:
        self.root = root.resolve()
        self.journal = journal
        self.lock_timeout = lock_timeout
        self._closed = False
        self._days: OrderedDict[str, DayFolder] = OrderedDict()
        self._days_guard = threading.Lock()
        self._keys = KnownKeys()
        self._executions = Executions(lock_timeout=lock_timeout, interval=summary_interval)
        today = datetime.now(UTC).date()
        for day in (today - timedelta(days=1), today):
            self._learn_keys(DayFolder(self.root, day))

    def append_event(
        self,
        call: Call,
        *,
        event_type: str,
        message: str,
        severity: str | None,
        paths: list[str],
        data: dict[str, Any] | None,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        """Journal one event, then append it to ``sentinel.jsonl`` and ``SENTINEL_LOG.md``.

        Returns ``{"entry_id", "seq", "sentinel_day", "files"}``, with ``"deferred"``
        if a line could not be written yet and ``"replayed": True`` for a repeated key.
        """
        event = _event(event_type, message, severity, paths, data)
        key_text = None if idempotency_key is None else _idempotency_key(idempotency_key)
        day = self.day(call)
        if key_text is None:
            return self._append(call, day, event, None)
        return self._append_once(call, day, event, key_text)

    def _append_once(
        self, call: Call, day: DayFolder, event: Mapping[str, Any], key_text: str
    ) -> dict[str, Any]:
        """``_append`` unless this agent instance already sent ``key_text``; then the
        first call's result, marked ``replayed``."""
        self._learn_keys(day)
        agent = call.context.agent_identity
        key = (agent.id, agent.instance_id, key_text)
        slot, first = self._keys.claim(key, event)
        if not first:
            assert slot.result is not None
            return {**slot.result, "replayed": True}
        result: dict[str, Any] | None = None
        try:
            result = self._append(call, day, event, key_text)
        finally:
            self._keys.settle(key, slot, result)
        return result

    def day(self, call: Call) -> DayFolder:
        """The day folder of ``call`` (made if need be); refused outside sentinel mode."""
        if self._closed:
            raise ToolFailure(UNAVAILABLE, "the sentinel log is closed")
        if call.root != self.root:
            raise ToolFailure(
                SCOPE_VIOLATION, f"this call is for {call.root}; this sentinel log is {self.root}"
            )
        name = call.context.sentinel_day
        if name is None:
            raise ToolFailure(
                WRONG_MODE,
                f"sentinel logs are written in sentinel mode; this call is in {call.context.mode}"
                " mode",
            )
        with self._days_guard:
            if (found := self._days.get(name)) is not None:
                self._days.move_to_end(name)
                return found
        made = DayFolder(self.root, date.fromisoformat(name))
        if not made.folder.resolve().is_relative_to(self.root):  # a symlink on the way out
            problem = f"{made.rel} leads outside the repository; no sentinel log is written there"
            raise ToolFailure(SCOPE_VIOLATION, problem, path=made.rel)  # the server journals it
        (made.folder / EXECUTIONS).mkdir(parents=True, exist_ok=True)
        with self._days_guard:
            found = self._days.setdefault(name, made)
            evicted = []
            while len(self._days) > _OPEN_DAYS:
                evicted.append(self._days.popitem(last=False)[1])
        for old in evicted:
            for line_file in old.files.values():
                line_file.retire(self.lock_timeout)
        return found

    def probe(self, day: DayFolder, name: SentinelFile) -> None:
        """BUSY unless the locks of ``name`` and ``SENTINEL_LOG.md`` can be had now."""
        day.files[name].probe(self.lock_timeout)
        day.files[SentinelFile.LOG].probe(self.lock_timeout)

    def record(
        self,
        call: Call,
        day: DayFolder,
        name: SentinelFile,
        entry: Entry,
        line: str,
        count_as: str,
    ) -> dict[str, list[str]]:
        """Append committed ``entry`` to ``name`` and ``line`` to ``SENTINEL_LOG.md``, and
        count it in the call's execution summary as ``count_as``.

        Returns ``{"files": [...]}`` and, if a line had to wait, ``"deferred"``."""
        written = self._lines(day, name, entry, line, self.lock_timeout)
        self._executions.count(call, day.folder, day.rel, count_as, entry.seq)
        return written

    def _lines(
        self, day: DayFolder, name: SentinelFile, entry: Entry, line: str, wait: float
    ) -> dict[str, list[str]]:
        """``record``'s two lines, waiting at most ``wait`` seconds for each lock."""
        record = {
            "seq": entry.seq,
            "ts": entry.ts,
            "kind": entry.kind,
            "actor": entry.actor,
            "message": entry.message,
            **entry.payload,
        }
        target, log_file = day.files[name], day.files[SentinelFile.LOG]
        markdown = line.encode("utf-8") + b"\n"
        written: list[str] = []
        deferred: list[str] = []
        if not self._write(target, canonical(record).encode("utf-8") + b"\n", wait):
            log_file.hold(markdown)  # the Markdown line must not run ahead of its JSONL line
            deferred += [target.label, log_file.label]
        elif self._write(log_file, markdown, wait):
            written += [target.label, log_file.label]
        else:
            written.append(target.label)
            deferred.append(log_file.label)
        return {"files": written, **({"deferred": deferred} if deferred else {})}

    def close(self) -> None:
        """Write the execution summaries and any lines still waiting; close the files."""
        self._closed = True
        self._executions.close()
        with self._days_guard:
            days, self._days = list(self._days.values()), OrderedDict()
        for day in days:
            for line_file in day.files.values():
                line_file.retire(self.lock_timeout)

    async def append_event_soon(
        self,
        call: Call,
        *,
        event_type: str,
        message: str,
        severity: str | None,
        paths: list[str],
        data: dict[str, Any] | None,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        """``append_event`` for a caller on an event loop: the loop's thread does the
        work and waits for the commit without blocking, so many calls in flight cost
        no thread each. A call that may wait (a lock held elsewhere, an idempotency
        key) does it in a worker thread."""
        event = _event(event_type, message, severity, paths, data)
        key_text = None if idempotency_key is None else _idempotency_key(idempotency_key)
        day = self.day(call)
        if key_text is not None:
            return await anyio.to_thread.run_sync(self._append_once, call, day, event, key_text)
        if not self.probe_now(day, SentinelFile.EVENTS):
            await anyio.to_thread.run_sync(self.probe, day, SentinelFile.EVENTS)
        new = self._event_entry(call, event, None)
        with anyio.CancelScope(shield=True):  # once journaled, its lines are written too
            entry = await commit_soon(self.journal, new, alone=call.alone)
            line = _event_line(call, event, entry)
            written = self._lines(day, SentinelFile.EVENTS, entry, line, LOOP_LOCK_WAIT)
            due = self._executions.tally(call, day.folder, day.rel, event["event_type"], entry.seq)
            if due is not None:
                await anyio.to_thread.run_sync(due)
        return _event_answer(day, entry, written)

    def probe_now(self, day: DayFolder, name: SentinelFile) -> bool:
        """Whether the locks of ``name`` and ``SENTINEL_LOG.md`` are free right now."""
        return day.files[name].probe_now() and day.files[SentinelFile.LOG].probe_now()

    def _append(
        self, call: Call, day: DayFolder, event: Mapping[str, Any], key: str | None
    ) -> dict[str, Any]:
        self.probe(day, SentinelFile.EVENTS)
        new = self._event_entry(call, event, key)
        entry = commit(self.journal, new)
        return self._record_event(call, day, event, entry)

    @staticmethod
    def _event_entry(call: Call, event: Mapping[str, Any], key: str | None) -> NewEntry:
        extra = {k: v for k, v in event.items() if k != "message"}
        extra["entry_id"] = uuid.uuid4().hex
        if key is not None:
            extra["idempotency_key"] = key
        if call.context.project is not None:
            extra["project"] = call.context.project
        return NewEntry(
            AGENT_EVENT, call.context.actor, message=event["message"], payload=call.payload(**extra)
        )

    def _record_event(
        self, call: Call, day: DayFolder, event: Mapping[str, Any], entry: Entry
    ) -> dict[str, Any]:
        line = _event_line(call, event, entry)
        written = self.record(call, day, SentinelFile.EVENTS, entry, line, event["event_type"])
        return _event_answer(day, entry, written)

    def _write(self, line_file: LineFile, data: bytes, wait: float) -> bool:
        """Append ``data``; if that cannot be done now, hold it for the next append."""
        try:
            torn = line_file.append(data, wait)
        except (ToolFailure, OSError) as exc:
            line_file.hold(data)
            problem = exc.message if isinstance(exc, ToolFailure) else str(exc)
            log.warning("%s: line deferred to the next append (%s)", line_file.label, problem)
            return False
        if torn:  # journaled in the writer's next batch; nobody waits on it
            problem = f"{line_file.label} ended with a line cut short (a crash?); "
            self.journal.submit(
                [NewEntry(JOURNAL_FLAGGED, "scribe", message=problem + "the next line starts fresh",
                          payload={"file": line_file.label, "problem": "torn line"})]
            )  # fmt: skip
        return True

    def _learn_keys(self, day: DayFolder) -> None:
        events, log_file = day.files[SentinelFile.EVENTS], day.files[SentinelFile.LOG]
        result = {"sentinel_day": day.name, "files": [events.label, log_file.label]}
        self._keys.learn(events.path, result)


def _event(
    event_type: object, message: object, severity: object, paths: object, data: object
) -> dict[str, Any]:
    """An event's fields checked and normalised; INVALID_ARGUMENT naming the first bad one."""
    return {
        "event_type": _event_type(event_type),
        "severity": _severity(severity),
        "message": text(message, "message", limit=MAX_MESSAGE),
        "paths": repo_paths(paths, "paths"),
        "data": _data(data),
    }


def _event_line(call: Call, event: Mapping[str, Any], entry: Entry) -> str:
    """The ``SENTINEL_LOG.md`` line of a committed event."""
    severity = event["severity"]
    details = {
        "type": event["event_type"],
        "severity": severity,
        "paths": ", ".join(event["paths"]),
        "seq": entry.seq,
    }
    mark = _MARKS.get(severity, emoji(AGENT_EVENT))
    return markdown_line(call, mark, event["message"], details)


def _event_answer(day: DayFolder, entry: Entry, written: Mapping[str, list[str]]) -> dict[str, Any]:
    return {
        "entry_id": entry.payload["entry_id"],
        "seq": entry.seq,
        "sentinel_day": day.name,
        **written,
    }


def _event_type(value: object) -> str:
    if not isinstance(value, str) or not _EVENT_TYPE.fullmatch(value.strip()):
        raise invalid(
            "event_type",
            "must be 1 to 64 letters, digits or . _ : / - starting with a letter or digit"
            " (e.g. file.edit)",
        )
    return value.strip()


def _idempotency_key(value: object) -> str:
    if not isinstance(value, str) or not _KEY.fullmatch(value):
        raise invalid(
            "idempotency_key",
            "must be 1 to 128 letters, digits or . _ : @ - starting with a letter or digit",
        )
    return value


def _severity(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value in SEVERITIES:
        return value
    raise invalid("severity", f"{value!r} is not one of {', '.join(SEVERITIES)} (or null)")


def _data(value: object) -> dict[str, Any] | None:
    """A JSON copy of ``value``; refused if it is not a JSON object or is too large."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("data", "must be a JSON object or null")
    try:
        encoded = canonical(value)
    except (TypeError, ValueError) as exc:
        raise invalid("data", f"is not JSON: {exc}") from None
    if len(encoded.encode("utf-8")) > MAX_DATA:
        raise invalid("data", f"is larger than {MAX_DATA} bytes as JSON; log less or point to it")
    copy: dict[str, Any] = json.loads(encoded)
    return copy

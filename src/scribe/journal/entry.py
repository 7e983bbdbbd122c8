"""Journal records and the contract every store keeps.

``NewEntry`` is what callers append and ``Entry`` what a store returns; ``Journal``
is the interface the SQLite store implements today and a PostgreSQL store will.

An entry's ``hash`` is the SHA-256 of the canonical JSON of every other field,
``prev_hash`` included, so each entry vouches for the whole history before it.
Canonical means ``json.dumps(..., sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8: any implementation (the PostgreSQL store, an
auditor's script) can recompute it without Scribe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from scribe.errors import ScribeError

#: The ``prev_hash`` of the first entry.
GENESIS = "0" * 64

# Kinds Scribe itself writes. Kinds are open strings: other writers (the MCP server)
# add their own, and every reader must accept kinds it does not know.
EVENT_OBSERVED = "event.observed"
WORK_PENDING = "work.pending"
WORK_DONE = "work.done"
RULE_MATCHED = "rule.matched"
FILE_WRITTEN = "file.written"
FILE_SKIPPED = "file.skipped"
FILE_DELETED = "file.deleted"
FILE_REVERTED = "file.reverted"
ACTION_FAILED = "action.failed"
QUARANTINED = "quarantined"
QUARANTINE_RELEASED = "quarantine.released"
BREAKER_OPENED = "breaker.opened"
BREAKER_HALF_OPEN = "breaker.half_open"
BREAKER_CLOSED = "breaker.closed"
RULES_LOADED = "rules.loaded"
RULES_REJECTED = "rules.rejected"
CONFIG_LOADED = "config.loaded"
CONFIG_REJECTED = "config.rejected"
ENGINE_STARTED = "engine.started"
ENGINE_STOPPED = "engine.stopped"
SCOPE_VIOLATION = "scope.violation"
JOURNAL_FLAGGED = "journal.flagged"
# Kinds the MCP server writes for agents.
AGENT_EVENT = "agent.event"  # sentinel mode: an event an agent reports
AGENT_ENTRY = "agent.entry"  # project mode: a progress log entry
FILE_READ = "file.read"  # provenance of a read: never the content
CASE_OPENED = "case.opened"
CASE_UPDATED = "case.updated"
CASE_CLOSED = "case.closed"
DOC_CHANGED = "doc.changed"
PROJECT_SET = "project.set"
# Effects of rules
COMMAND_RAN = "command.ran"
EVENT_EMITTED = "event.emitted"
CHAIN_CUT = "chain.cut"
RULE_FINDING = "rule.finding"
FILE_MOVED = "file.moved"

#: The mark each kind gets in ``JOURNAL.md``; unknown kinds get ``DEFAULT_EMOJI``.
EMOJI: Mapping[str, str] = {
    EVENT_OBSERVED: "👀",
    WORK_PENDING: "⏳",
    WORK_DONE: "🏁",
    RULE_MATCHED: "🎯",
    FILE_WRITTEN: "✅",
    FILE_SKIPPED: "⏭️",
    FILE_DELETED: "🗑️",
    FILE_REVERTED: "↩️",
    ACTION_FAILED: "❌",
    QUARANTINED: "🚧",
    QUARANTINE_RELEASED: "🔓",
    BREAKER_OPENED: "🔴",
    BREAKER_HALF_OPEN: "🟡",
    BREAKER_CLOSED: "🟢",
    RULES_LOADED: "📜",
    RULES_REJECTED: "🚫",
    CONFIG_LOADED: "⚙️",
    CONFIG_REJECTED: "🚫",
    ENGINE_STARTED: "▶️",
    ENGINE_STOPPED: "⏹️",
    SCOPE_VIOLATION: "⛔",
    JOURNAL_FLAGGED: "⚠️",
    AGENT_EVENT: "🛰️",
    AGENT_ENTRY: "🗒️",
    FILE_READ: "📖",
    CASE_OPENED: "🐞",
    CASE_UPDATED: "🔗",
    CASE_CLOSED: "✔️",
    DOC_CHANGED: "📄",
    PROJECT_SET: "📁",
    COMMAND_RAN: "🛠️",
    EVENT_EMITTED: "📣",
    CHAIN_CUT: "✂️",
    RULE_FINDING: "🔎",
    FILE_MOVED: "🚚",
}
DEFAULT_EMOJI = "📝"
KINDS = tuple(EMOJI)

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


class JournalError(ScribeError):
    """The journal cannot be used as asked: an entry that cannot be recorded, a
    database from a newer Scribe, a malformed JSONL line."""


class JournalUnavailable(JournalError):
    """Entries could not be committed (disk full, read-only, locked); says why."""


def emoji(kind: str) -> str:
    return EMOJI.get(kind, DEFAULT_EMOJI)


def canonical(record: Mapping[str, Any]) -> str:
    """The one JSON spelling of ``record`` that hashes are computed over."""
    return _ENCODER.encode(record)


def digest(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(record).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewEntry:
    """One record to append; the store adds seq, ts and the hashes.

    ``payload`` must be JSON (no NaN); it is copied when the entry is made, so
    changing the caller's dict afterwards cannot change what is written.
    ``message`` is one readable line, shown in ``JOURNAL.md`` and searched by
    ``scribe log --grep``. ``ref`` is the seq of an earlier entry this one completes.
    """

    kind: str
    actor: str
    path: str | None = None
    before_hash: str | None = None
    after_hash: str | None = None
    diff: str | None = None
    message: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    ref: int | None = None
    payload_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Refused here, in the caller's thread, so one bad entry cannot fail a batch
        # committed together with other callers' entries.
        try:
            text = canonical(dict(self.payload))
            for value in (self.kind, self.actor, self.path, self.diff, self.message, text):
                if value is not None:
                    value.encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise JournalError(f"cannot journal this {self.kind} entry: {exc}") from None
        if not self.kind or not self.actor:
            raise JournalError("a journal entry needs a kind and an actor")
        object.__setattr__(self, "payload_json", text)
        object.__setattr__(self, "payload", json.loads(text))


def utc_now() -> datetime:
    """The moment, in UTC: the clock the stores stamp entries with by default."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Entry:
    """One committed record, as the store returns it. Field order is column order."""

    seq: int
    ts: str
    kind: str
    actor: str
    path: str | None
    before_hash: str | None
    after_hash: str | None
    diff: str | None
    message: str
    payload: Mapping[str, Any]
    ref: int | None
    prev_hash: str
    hash: str

    @classmethod
    def seal(cls, new: NewEntry, *, seq: int, ts: str, prev_hash: str) -> Entry:
        """``new`` at position ``seq``, linked to ``prev_hash``, with its hash."""
        body: dict[str, Any] = {
            "seq": seq,
            "ts": ts,
            "kind": new.kind,
            "actor": new.actor,
            "path": new.path,
            "before_hash": new.before_hash,
            "after_hash": new.after_hash,
            "diff": new.diff,
            "message": new.message,
            "payload": new.payload,
            "ref": new.ref,
            "prev_hash": prev_hash,
        }
        return cls(**body, hash=digest(body))

    def body(self) -> dict[str, Any]:
        """Every field but ``hash``: what the hash covers."""
        fields = dict(vars(self))
        del fields["hash"]
        return fields

    def recompute(self) -> str:
        """The hash this entry's fields call for (equal to ``hash`` unless tampered with)."""
        return digest(self.body())

    def to_json(self) -> str:
        """One canonical JSONL line (without the newline), ``hash`` included."""
        return canonical(vars(self))

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Entry:
        """An entry as a store's row holds it: the fields in order, the payload as
        JSON text."""
        seq, ts, kind, actor, path, before, after, diff, message, payload, ref, prev, hash_ = row
        return cls(
            seq, ts, kind, actor, path, before, after, diff, message, json.loads(payload), ref,
            prev, hash_,
        )  # fmt: skip

    @classmethod
    def from_json(cls, line: str) -> Entry:
        try:
            data = json.loads(line)
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise JournalError(f"not a journal entry: {exc}") from None


def stamp(moment: datetime) -> str:
    """``moment`` as an entry's ``ts``: UTC, microseconds, ``Z``; naive times are UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Query:
    """Which entries to return: every filter given must hold.

    ``since`` is inclusive and ``until`` exclusive. ``path_glob`` uses the rules'
    glob syntax (``notes/**/*.md``); ``text`` matches words and word prefixes of the
    message, payload and path, whatever punctuation it holds. ``after_seq`` is for
    following: only entries appended after that one; ``before_seq`` pages back:
    only entries before that one.

    The rest select by what agents' entries carry in their payload (see
    ``scribe.mcp.context``): ``execution_id``, ``agent_instance_id``
    (``payload.agent.instance_id``), ``intent``, ``case_id`` and ``mode`` match the
    payload key exactly; ``project`` matches entries whose ``payload.project`` is it
    or whose ``payload.affected_dev_projects`` lists it; ``event_types`` matches
    entries of those kinds and ``agent.event`` entries whose ``payload.event_type``
    is one of them.
    """

    since: datetime | None = None
    until: datetime | None = None
    kinds: Sequence[str] = ()
    path: str | None = None
    path_glob: str | None = None
    actor: str | None = None
    text: str | None = None
    after_seq: int | None = None
    before_seq: int | None = None
    limit: int | None = None
    newest_first: bool = False
    execution_id: str | None = None
    agent_instance_id: str | None = None
    intent: str | None = None
    case_id: str | None = None
    mode: str | None = None
    project: str | None = None
    event_types: Sequence[str] = ()


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found; ``problem`` says what is wrong at ``first_bad_seq``."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""
    last_seq: int | None = None
    last_hash: str | None = None


class Journal(Protocol):
    """An append-only, hash-chained store of entries. There is no way to change or
    remove an entry: correcting history means appending an entry that says so."""

    def append(self, entries: Sequence[NewEntry]) -> list[Entry]:
        """Commit ``entries`` as one transaction, in order, and return them sealed."""
        ...

    def append_now(self, entries: Sequence[NewEntry]) -> list[Entry] | None:
        """``append`` if that waits for nothing but the local disk; else None, having
        written nothing (another writer holds the journal, or it is across a network)."""
        ...

    def get(self, seq: int) -> Entry | None: ...

    def head(self) -> Entry | None:
        """The last entry, or None for an empty journal."""
        ...

    def count(self) -> int: ...

    def query(self, q: Query) -> list[Entry]: ...

    def index_text(self) -> int:
        """Bring the full-text index up to date; how many entries were added."""
        ...

    def open_work(
        self, pending_kind: str = WORK_PENDING, done_kind: str = WORK_DONE
    ) -> list[Entry]:
        """``pending_kind`` entries that no later ``done_kind`` entry refers to, oldest first."""
        ...

    def last_hashes(self) -> dict[str, str]:
        """Per path, the content hash the journal last recorded (deleted paths absent)."""
        ...

    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        """Recompute every hash and link; ``progress(checked, total)`` is called as it goes."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

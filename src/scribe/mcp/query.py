"""``query_entries``: agents read the journal's history, filtered and paged.

Every filter is optional and they combine with AND; each one is checked here and
refused with ``INVALID_ARGUMENT`` naming the parameter, never bent into something
that returns a different answer. The filters become one journal ``Query``, which
the store serves from its indexes (see ``scribe.journal.search``).

Pages are cut by seq: the cursor says where the last page stopped and which
query it belongs to, so entries appended meanwhile neither repeat nor shift a
page (newest first, they are newer than the first page; oldest first, they come
at the end).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from scribe.journal.entry import AGENT_EVENT, Entry, Query, canonical
from scribe.journal.writer import JournalWriter
from scribe.mcp.context import PROJECT, SENTINEL, Call
from scribe.mcp.failures import INVALID_ARGUMENT, INVALID_CONTEXT, ToolFailure

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "ORDERS", "SCOPES", "JournalQueries", "summary"]

#: Scope name -> the ``payload.mode`` it selects (None: every entry, engine's too).
SCOPES: dict[str, str | None] = {PROJECT: PROJECT, SENTINEL: SENTINEL, "all": None}
ORDERS = ("newest", "oldest")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_CURSOR_VERSION = 1


def _bad(parameter: str, message: str, **details: Any) -> ToolFailure:
    return ToolFailure(INVALID_ARGUMENT, f"{parameter} {message}", parameter=parameter, **details)


def _word(parameter: str, value: object) -> str | None:
    """A string filter: None if not given; refused if empty or not a string."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(parameter, f"must be a string, not {type(value).__name__}")
    if not value.strip():
        raise _bad(parameter, "must not be empty; leave it out to not filter on it")
    return value.strip()


def _moment(parameter: str, value: object) -> datetime | None:
    """An RFC 3339 timestamp with its UTC offset, as an aware datetime."""
    text = _word(parameter, value)
    if text is None:
        return None
    if not _RFC3339.fullmatch(text):
        raise _bad(
            parameter,
            f"must be an RFC 3339 timestamp with its offset, like 2026-11-24T10:00:00Z, "
            f"not {text!r}",
        )
    try:  # lower-case t and z are RFC 3339 too; fromisoformat wants them upper-case
        return datetime.fromisoformat(f"{text[:10]}T{text[11:].upper()}")
    except ValueError as exc:
        raise _bad(parameter, f"is not a valid time ({exc}): {text!r}") from None


def _day_range(value: object) -> tuple[datetime, datetime] | None:
    text = _word("day", value)
    if text is None:
        return None
    try:
        if not _DAY.fullmatch(text):
            raise ValueError("expected YYYY-MM-DD")
        start = date.fromisoformat(text)
    except ValueError:
        raise _bad(
            "day", f"must be a UTC day as YYYY-MM-DD, like 2026-11-24, not {text!r}"
        ) from None
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    return begin, begin + timedelta(days=1)


def _types(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list | tuple) or not values:
        raise _bad(
            "event_type", "must be a journal kind or event type, or a non-empty list of them"
        )
    return tuple(dict.fromkeys(str(_word("event_type", item)) for item in values))


def _limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    if not 1 <= value <= MAX_LIMIT:
        raise _bad("limit", f"must be from 1 to {MAX_LIMIT}, not {value}")
    return value


@dataclass(frozen=True)
class _Filters:
    """The query as asked, normalised: what a cursor is bound to."""

    mode: str | None
    since: datetime | None
    until: datetime | None
    execution_id: str | None
    agent_instance_id: str | None
    intent: str | None
    case_id: str | None
    project: str | None
    path: str | None
    event_types: tuple[str, ...]
    text: str | None
    newest_first: bool

    def fingerprint(self) -> str:
        fields = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in vars(self).items()}
        return hashlib.sha256(canonical(fields).encode()).hexdigest()[:16]

    def query(self, *, before: int | None, after: int | None, limit: int) -> Query:
        return Query(
            since=self.since, until=self.until, path_glob=self.path, text=self.text,
            after_seq=after, before_seq=before, limit=limit, newest_first=self.newest_first,
            execution_id=self.execution_id, agent_instance_id=self.agent_instance_id,
            intent=self.intent, case_id=self.case_id, mode=self.mode, project=self.project,
            event_types=self.event_types,
        )  # fmt: skip


def _encode_cursor(seq: int, filters: _Filters) -> str:
    raw = canonical({"v": _CURSOR_VERSION, "seq": seq, "q": filters.fingerprint()}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: object, filters: _Filters) -> int:
    """The seq a page continues from; INVALID_ARGUMENT for a cursor this query did not make."""
    text = _word("cursor", cursor)
    assert text is not None
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        seq, version, made_for = data["seq"], data["v"], data["q"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise _bad("cursor", "is not a cursor query_entries returned") from None
    if version != _CURSOR_VERSION or not isinstance(seq, int) or isinstance(seq, bool):
        raise _bad("cursor", "is not a cursor query_entries returned")
    if made_for != filters.fingerprint():
        raise _bad(
            "cursor",
            "belongs to a query with other filters or another order: repeat that query's "
            "filters to continue it, or leave the cursor out to start over",
        )
    return seq


def summary(entry: Entry) -> str:
    """One readable line: ``2026-11-24 10:00:00 UTC agent:claude case.opened [BUG-7]
    notes/a.md: the parser drops the last line``."""
    payload = entry.payload
    kind = entry.kind
    if kind == AGENT_EVENT and isinstance(payload.get("event_type"), str):
        kind = f"{kind}/{payload['event_type']}"
    parts = [f"{entry.ts[:10]} {entry.ts[11:19]} UTC", entry.actor, kind]
    if isinstance(payload.get("case_id"), str):
        parts.append(f"[{payload['case_id']}]")
    if entry.path:
        parts.append(entry.path)
    line = " ".join(parts)
    if entry.message:
        line += f": {entry.message}"
    return " ".join(line.split())


def _entry_json(entry: Entry, *, with_summary: bool, with_diff: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seq": entry.seq,
        "ts": entry.ts,
        "kind": entry.kind,
        "actor": entry.actor,
        "path": entry.path,
        "message": entry.message,
        "payload": dict(entry.payload),
        "ref": entry.ref,
        "hash": entry.hash,
    }
    if with_diff:
        out["diff"] = entry.diff
    if with_summary:
        out["summary"] = summary(entry)
    return out


class JournalQueries:
    """``query_entries`` over the journal of the repository at ``root``.

    Read-only and stateless: any number of sessions may query at once, while the
    engine and other processes append.
    """

    def __init__(self, root: Path, journal: JournalWriter) -> None:
        self.root = root
        self.journal = journal

    def query_entries(
        self,
        call: Call,
        *,
        scope: str,
        day: str | None = None,
        since: str | None = None,
        until: str | None = None,
        execution_id: str | None = None,
        agent_instance_id: str | None = None,
        intent: str | None = None,
        case_id: str | None = None,
        project: str | None = None,
        path: str | None = None,
        event_type: str | Sequence[str] | None = None,
        text: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        order: str = "newest",
        summaries: bool = False,
        include_diff: bool = False,
    ) -> dict[str, Any]:
        """Entries matching every filter given, newest first unless ``order="oldest"``.

        Returns ``{"entries": [...], "next_cursor": str | None, "count": n}``;
        ``next_cursor`` continues after the last entry returned and is None when
        no entry is left.
        """
        if call.root != self.root:
            raise ToolFailure(INVALID_CONTEXT, f"this journal is {self.root}'s, not {call.root}'s")
        filters = self._filters(
            scope=scope, day=day, since=since, until=until, execution_id=execution_id,
            agent_instance_id=agent_instance_id, intent=intent, case_id=case_id,
            project=project, path=path, event_type=event_type, text=text, order=order,
        )  # fmt: skip
        size = _limit(limit)
        start = _decode_cursor(cursor, filters) if cursor is not None else None
        before, after = (start, None) if filters.newest_first else (None, start)
        found = self.journal.store.query(filters.query(before=before, after=after, limit=size + 1))
        page = found[:size]
        more = len(found) > size
        return {
            "entries": [
                _entry_json(e, with_summary=bool(summaries), with_diff=bool(include_diff))
                for e in page
            ],
            "next_cursor": _encode_cursor(page[-1].seq, filters) if more else None,
            "count": len(page),
        }

    def _filters(
        self,
        *,
        scope: object,
        day: object,
        since: object,
        until: object,
        execution_id: object,
        agent_instance_id: object,
        intent: object,
        case_id: object,
        project: object,
        path: object,
        event_type: object,
        text: object,
        order: object,
    ) -> _Filters:
        if not isinstance(scope, str) or scope not in SCOPES:
            raise _bad("scope", f"must be one of {', '.join(SCOPES)}, not {scope!r}")
        if order not in ORDERS:
            raise _bad("order", f"must be newest or oldest, not {order!r}")
        start, end = _moment("since", since), _moment("until", until)
        days = _day_range(day)
        if days is not None:
            if start is not None or end is not None:
                raise _bad("day", "cannot be combined with since/until: pass one or the other")
            start, end = days
        if start is not None and end is not None and start >= end:
            raise _bad("until", "must be later than since")
        words = _word("text", text)
        if words is not None and not any(c.isalnum() for c in words):
            raise _bad("text", "holds no word to search for (letters or digits)")
        return _Filters(
            mode=SCOPES[scope],
            since=start,
            until=end,
            execution_id=_word("execution_id", execution_id),
            agent_instance_id=_word("agent_instance_id", agent_instance_id),
            intent=_word("intent", intent),
            case_id=_word("case_id", case_id),
            project=_word("project", project),
            path=self._path(path),
            event_types=_types(event_type),
            text=words,
            newest_first=order == "newest",
        )

    def _path(self, value: object) -> str | None:
        """A path or glob as the journal records paths: relative, with ``/``."""
        text = _word("path", value)
        if text is None:
            return None
        if text.startswith("/"):
            prefix = self.root.as_posix().rstrip("/") + "/"
            if not text.startswith(prefix):
                raise _bad("path", f"must be relative to the repository root, not {text!r}")
            text = text[len(prefix) :]
        text = text.removeprefix("./")
        if not text:
            raise _bad("path", "names no file: give a path or glob relative to the root")
        return text

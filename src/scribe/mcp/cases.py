"""Bug and security cases: opened by agents with their evidence, linked to a fix, and
closed only once the fix is verified.

A case id is ``BUG-YYYYMMDD-NNNN`` or ``SEC-YYYYMMDD-NNNN``: the opening call's
sentinel day and a number counted per type and day from 0001 (longer past 9999).
Evidence paths are checked as repository-relative text; the files are never opened.
A fix's ``landing_status`` goes ``proposed`` < ``merged`` < ``verified`` and never
back; a case closes only with a root cause, a fix link and ``verified``.

The journal is the truth: every ``case.*`` entry carries ``case_id``, ``case_type``
and the whole case as the change left it (``case``). So that ``link_fix`` need not
search the journal, the registry keeps each case's current state in
``.scribe/registry/cases/<ID>.json``, and ``.scribe/registry/cases.json`` keeps the
last number used per type and day (``last``) and the seq of the last case entry
applied (``applied_seq``). A change holds ``cases.lock`` (a thread lock, then an
exclusive ``flock``) while it catches up, journals (waiting for the commit) and
writes the case file and then ``cases.json``, each replaced atomically. A process
that dies between the commit and those writes leaves the registry behind the
journal: the next change, in any process, first applies every case entry
journaled after ``applied_seq``, so no update is lost and no id is used twice;
queries catch up the same way when the journal is ahead.

Each change is then appended to the call's sentinel day, to ``bug.jsonl`` or
``security.jsonl`` and to ``SENTINEL_LOG.md`` (see ``scribe.mcp.sentinel``); a case
opened on one day can be updated and closed on another.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scribe.journal.entry import (
    CASE_CLOSED,
    CASE_OPENED,
    CASE_UPDATED,
    Entry,
    NewEntry,
    Query,
    emoji,
)
from scribe.journal.writer import JournalWriter
from scribe.mcp.context import Call
from scribe.mcp.failures import CONFLICT, INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, ToolFailure
from scribe.mcp.sentinel import (
    SentinelFile,
    SentinelLog,
    commit,
    invalid,
    markdown_line,
    repo_paths,
    text,
)
from scribe.mcp.storage import atomic_write, file_lock, take

log = logging.getLogger("scribe")

REGISTRY = Path(".scribe") / "registry"
CASES_DIR = REGISTRY / "cases"
INDEX = REGISTRY / "cases.json"
LOCK = REGISTRY / "cases.lock"

CASE_TYPES = ("bug", "security")
SEVERITIES = ("low", "medium", "high", "critical")
LANDING_STATUSES = ("proposed", "merged", "verified")  # in the order a fix lands
STATUSES = ("open", "closed")
MAX_TITLE, MAX_DESCRIPTION, MAX_LINK, MAX_ROOT_CAUSE = 200, 10_000, 2000, 4000

_PREFIX = {"bug": "BUG", "security": "SEC"}
_TYPE_OF = {prefix: case_type for case_type, prefix in _PREFIX.items()}
_FILE = {"bug": SentinelFile.BUGS, "security": SentinelFile.SECURITY}
_CASE_ID = re.compile(r"(BUG|SEC)-(\d{8})-(\d{4,9})")
_KINDS = (CASE_OPENED, CASE_UPDATED, CASE_CLOSED)
_SEQS = ("opened_seq", "seq")  # kept in the registry, not in the journaled case


def _choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in allowed:
        return value
    raise invalid(name, f"{value!r} is not one of {', '.join(allowed)}")


def _case_id(value: object) -> str:
    if not isinstance(value, str) or not _CASE_ID.fullmatch(value):
        raise invalid("case_id", f"{value!r} is not a case id (BUG-YYYYMMDD-NNNN or SEC-...)")
    return value


def _one_line(value: object, name: str, limit: int) -> str:
    return " ".join(text(value, name, limit=limit).split())


def _z(call: Call) -> str:
    return call.context.timestamp_utc.isoformat().replace("+00:00", "Z")


class Cases:
    """The cases of the repository at ``root``; thread-safe and safe across processes.

    ``lock_timeout`` bounds the wait for the registry lock, queued behind this
    process's other changes or held by another process; then ``BUSY``.
    """

    def __init__(
        self,
        root: Path,
        journal: JournalWriter,
        sentinel: SentinelLog,
        *,
        lock_timeout: float = 10.0,
    ) -> None:
        self.root = root.resolve()
        self.journal = journal
        self.sentinel = sentinel
        self.lock_timeout = lock_timeout
        self._guard = threading.Lock()

    def open_bug(
        self,
        call: Call,
        *,
        title: str,
        severity: str,
        evidence_paths: list[str],
        description: str | None = None,
    ) -> dict[str, Any]:
        """Open a bug case. Returns ``{"case", "seq", "sentinel_day", "files"}``."""
        return self._open(call, "bug", title, severity, evidence_paths, description)

    def open_security(
        self,
        call: Call,
        *,
        title: str,
        severity: str,
        evidence_paths: list[str],
        description: str | None = None,
    ) -> dict[str, Any]:
        """Open a security case. Returns ``{"case", "seq", "sentinel_day", "files"}``."""
        return self._open(call, "security", title, severity, evidence_paths, description)

    def link_fix(
        self,
        call: Call,
        *,
        case_id: str,
        fix_link: str | None = None,
        root_cause: str | None = None,
        landing_status: str | None = None,
        close: bool = False,
    ) -> dict[str, Any]:
        """Attach a fix's link, root cause and landing status to a case, and maybe close it.

        Returns ``{"case", "changed", "seq", "sentinel_day", "files"}``; a call that
        changes nothing journals nothing and says ``"changed": False``.
        """
        case_id = _case_id(case_id)
        changes: dict[str, str] = {}
        if fix_link is not None:
            changes["fix_link"] = _one_line(fix_link, "fix_link", MAX_LINK)
        if root_cause is not None:
            changes["root_cause"] = text(root_cause, "root_cause", limit=MAX_ROOT_CAUSE)
        if landing_status is not None:
            changes["landing_status"] = _choice(landing_status, "landing_status", LANDING_STATUSES)
        if not isinstance(close, bool):
            raise invalid("close", "must be true or false")
        if not changes and not close:
            raise ToolFailure(
                INVALID_ARGUMENT,
                "nothing to change: give fix_link, root_cause, landing_status or close",
                fields=["fix_link", "root_cause", "landing_status", "close"],
            )
        day = self.sentinel.day(call)
        file = _FILE[_TYPE_OF[case_id[:3]]]
        self.sentinel.probe(day, file)
        with self._locked():
            index = self._catch_up()
            case = self._read_case(case_id)
            if case is None:
                raise ToolFailure(NOT_FOUND, f"there is no case {case_id}", case_id=case_id)
            _check_change(case, changes, close)
            changed = {k: v for k, v in changes.items() if case.get(k) != v}
            if not changed and not close:
                return {"case": case, "changed": False, "seq": case["seq"],
                        "sentinel_day": day.name, "files": []}  # fmt: skip
            kind, message, state = _changed(call, case, changed, close)
            extra = {"changes": changed, "opened_seq": case["opened_seq"]}
            entry = commit(self.journal, self._entry(call, kind, message, state, extra))
            stored = self._store(index, {**state, "opened_seq": case["opened_seq"]}, entry)
        details: dict[str, object] = {k: changed.get(k) for k in ("landing_status", "fix_link")}
        details |= {"root_cause": changed.get("root_cause"), "seq": entry.seq}
        line = markdown_line(call, emoji(kind), message, details)
        written = self.sentinel.record(call, day, file, entry, line, kind)
        return {"case": stored, "changed": True, "seq": entry.seq, "sentinel_day": day.name,
                **written}  # fmt: skip

    def get_case(self, case_id: str) -> dict[str, Any]:
        """The current state of one case; NOT_FOUND if there is none with that id."""
        case_id = _case_id(case_id)
        self._refresh()
        case = self._read_case(case_id)
        if case is None:
            raise ToolFailure(NOT_FOUND, f"there is no case {case_id}", case_id=case_id)
        return case

    def list_cases(self, status: str | None = None, case_type: str | None = None) -> dict[str, Any]:
        """Every case (oldest first), or those with that status and type.

        Returns ``{"cases": [...], "count": n}``."""
        if status is not None:
            status = _choice(status, "status", STATUSES)
        if case_type is not None:
            case_type = _choice(case_type, "case_type", CASE_TYPES)
        self._refresh()
        cases = []
        for path in (self.root / CASES_DIR).glob("*.json"):
            if not _CASE_ID.fullmatch(path.stem):
                continue
            case = self._read_case(path.stem)
            if case is None:
                continue
            if status in (None, case["status"]) and case_type in (None, case["case_type"]):
                cases.append(case)
        cases.sort(key=lambda case: (case["opened_seq"] or 0, case["case_id"]))
        return {"cases": cases, "count": len(cases)}

    # -- opening --------------------------------------------------------------

    def _open(
        self,
        call: Call,
        case_type: str,
        title: object,
        severity: object,
        evidence_paths: object,
        description: object,
    ) -> dict[str, Any]:
        title = _one_line(title, "title", MAX_TITLE)
        severity = _choice(severity, "severity", SEVERITIES)
        evidence = repo_paths(evidence_paths, "evidence_paths")
        if description is not None:
            description = text(description, "description", limit=MAX_DESCRIPTION)
        day = self.sentinel.day(call)
        file = _FILE[case_type]
        self.sentinel.probe(day, file)
        with self._locked():
            index = self._catch_up()
            prefix = f"{_PREFIX[case_type]}-{day.name.replace('-', '')}"
            number = index["last"].get(prefix, 0) + 1
            case_id = f"{prefix}-{number:04d}"
            state = {
                "case_id": case_id,
                "case_type": case_type,
                "title": title,
                "severity": severity,
                "description": description,
                "evidence_paths": evidence,
                "reporter": call.context.agent_identity.model_dump(exclude_none=True),
                "execution_id": call.context.execution_id,
                "status": "open",
                "created_at": _z(call),
                "sentinel_day": day.name,
                "fix_link": None,
                "root_cause": None,
                "landing_status": None,
                "updated_at": _z(call),
                "closed_at": None,
                "closed_by": None,
            }
            message = f"{case_id} opened: {title}"
            entry = commit(self.journal, self._entry(call, CASE_OPENED, message, state, {}))
            index["last"][prefix] = number
            stored = self._store(index, {**state, "opened_seq": entry.seq}, entry)
        details = {"severity": severity, "evidence": ", ".join(evidence), "seq": entry.seq}
        line = markdown_line(call, emoji(CASE_OPENED), message, details)
        written = self.sentinel.record(call, day, file, entry, line, CASE_OPENED)
        return {"case": stored, "seq": entry.seq, "sentinel_day": day.name, **written}

    def _entry(
        self, call: Call, kind: str, message: str, state: Mapping[str, Any], extra: dict[str, Any]
    ) -> NewEntry:
        if call.context.project is not None:
            extra["project"] = call.context.project
        payload = call.payload(
            case_id=state["case_id"], case_type=state["case_type"], case=dict(state), **extra
        )
        return NewEntry(kind, call.context.actor, message=message, payload=payload)

    # -- the registry ---------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        deadline = time.monotonic() + self.lock_timeout
        take(self._guard, deadline, LOCK.as_posix(), self.lock_timeout)
        try:
            with file_lock(self.root / LOCK, timeout=max(deadline - time.monotonic(), 0.0)):
                yield
        finally:
            self._guard.release()

    def _store(self, index: dict[str, Any], case: dict[str, Any], entry: Entry) -> dict[str, Any]:
        """Write journaled ``case`` and ``index`` (under the lock); the stored case."""
        stored = {**case, "seq": entry.seq}
        index["applied_seq"] = entry.seq
        try:
            self._write_case(stored)
            self._write_index(index)
        except OSError as exc:
            raise ToolFailure(
                UNAVAILABLE,
                f"{case['case_id']} is journaled (seq {entry.seq}) but the registry could not be"
                f" written ({exc}); the next change to any case brings it up to date",
                case_id=case["case_id"],
                seq=entry.seq,
            ) from None
        return stored

    def _catch_up(self) -> dict[str, Any]:
        """The index, after applying the case entries journaled since it was written."""
        index = self._read_index()
        entries = self.journal.store.query(Query(kinds=_KINDS, after_seq=index["applied_seq"]))
        for entry in entries:
            self._apply(entry, index)
        if entries:
            self._write_index(index)
        return index

    def _refresh(self) -> None:
        """Catch up (under the lock) if the journal holds case entries the registry lacks."""
        after = self._read_index()["applied_seq"]
        if self.journal.store.query(Query(kinds=_KINDS, after_seq=after, limit=1)):
            with self._locked():
                self._catch_up()

    def _apply(self, entry: Entry, index: dict[str, Any]) -> None:
        case, case_id = entry.payload.get("case"), entry.payload.get("case_id")
        index["applied_seq"] = entry.seq
        found = _CASE_ID.fullmatch(case_id) if isinstance(case_id, str) else None
        if found is None or not isinstance(case, Mapping) or case.get("case_id") != case_id:
            log.warning("journal entry %d (%s) holds no case; skipped", entry.seq, entry.kind)
            return
        case_id, prefix = found[0], f"{found[1]}-{found[2]}"
        index["last"][prefix] = max(index["last"].get(prefix, 0), int(found[3]))
        existing = self._read_case(case_id)
        if existing is not None and existing["seq"] >= entry.seq:
            return
        opened: object = entry.seq
        if entry.kind != CASE_OPENED:
            opened = existing["opened_seq"] if existing else entry.payload.get("opened_seq")
        log.info("registry: %s brought up to journal entry %d", case_id, entry.seq)
        self._write_case({**case, "opened_seq": opened, "seq": entry.seq})

    def _read_index(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / INDEX).read_bytes())
            applied, last = int(data["applied_seq"]), dict(data["last"])
            return {"applied_seq": applied, "last": {str(k): int(v) for k, v in last.items()}}
        except FileNotFoundError:
            pass
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("%s is unreadable (%s); rebuilding it from the journal", INDEX, exc)
        return {"applied_seq": 0, "last": {}}

    def _write_index(self, index: Mapping[str, Any]) -> None:
        atomic_write(self.root / INDEX, json.dumps(index, indent=1, sort_keys=True).encode())

    def _read_case(self, case_id: str) -> dict[str, Any] | None:
        rel = (CASES_DIR / f"{case_id}.json").as_posix()
        try:
            raw = (self.root / rel).read_bytes()
        except FileNotFoundError:
            return None
        try:
            case = json.loads(raw)
        except ValueError as exc:
            raise ToolFailure(UNAVAILABLE, f"{rel} is not valid JSON: {exc}", file=rel) from None
        if not isinstance(case, dict):
            raise ToolFailure(UNAVAILABLE, f"{rel} does not hold a case", file=rel)
        return case

    def _write_case(self, case: Mapping[str, Any]) -> None:
        data = json.dumps(case, ensure_ascii=False, indent=1).encode("utf-8")
        atomic_write(self.root / CASES_DIR / f"{case['case_id']}.json", data)


def _changed(
    call: Call, case: Mapping[str, Any], changed: Mapping[str, str], close: bool
) -> tuple[str, str, dict[str, Any]]:
    """The journal kind, message and new state of ``case`` with ``changed`` (and closed)."""
    state = {k: v for k, v in case.items() if k not in _SEQS} | dict(changed)
    state["updated_at"] = _z(call)
    if not close:
        return CASE_UPDATED, f"{case['case_id']} updated: {', '.join(changed)}", state
    closer = call.context.agent_identity.model_dump(exclude_none=True)
    state |= {"status": "closed", "closed_at": _z(call), "closed_by": closer}
    return CASE_CLOSED, f"{case['case_id']} closed", state


def _check_change(case: Mapping[str, Any], changes: Mapping[str, str], close: bool) -> None:
    """Refuse a change to a closed case, a landing status going back, or a close too early."""
    case_id = case["case_id"]
    if case["status"] == "closed":
        raise ToolFailure(CONFLICT, f"{case_id} is closed; open a new case", case_id=case_id)
    now, given = case.get("landing_status"), changes.get("landing_status")
    if now and given and LANDING_STATUSES.index(given) < LANDING_STATUSES.index(now):
        raise ToolFailure(
            CONFLICT,
            f"{case_id}: landing_status cannot go back from {now} to {given}"
            f" (order: {' < '.join(LANDING_STATUSES)})",
            case_id=case_id,
            landing_status=now,
        )
    if not close:
        return
    after = {**case, **changes}
    missing = [name for name in ("root_cause", "fix_link") if not after.get(name)]
    if after.get("landing_status") != "verified":
        missing.append("landing_status")
    if missing:
        status = after.get("landing_status") or "not set"
        raise ToolFailure(
            CONFLICT,
            f"{case_id} cannot be closed yet: missing {', '.join(missing)}"
            f" (a case closes with a root cause, a fix link and landing_status verified;"
            f" landing_status is {status})",
            case_id=case_id,
            missing=missing,
        )

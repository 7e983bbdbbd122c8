"""query_entries: agents' filtered, paged queries over a real journal."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import scribe.mcp.query
from scribe.journal.entry import (
    AGENT_ENTRY,
    AGENT_EVENT,
    CASE_CLOSED,
    CASE_OPENED,
    CASE_UPDATED,
    DOC_CHANGED,
    FILE_READ,
    FILE_WRITTEN,
    GENESIS,
    Entry,
    NewEntry,
    Query,
    canonical,
)
from scribe.journal.mirrors import Mirrors
from scribe.journal.schema import MIGRATIONS, SCHEMA_VERSION
from scribe.journal.search import compile_query, glob_match
from scribe.journal.sqlite import _INSERT, SqliteJournal
from scribe.journal.writer import JournalWriter
from scribe.mcp.context import Call, ExecutionContext
from scribe.mcp.failures import INVALID_ARGUMENT, INVALID_CONTEXT, ToolFailure
from scribe.mcp.query import MAX_LIMIT, JournalQueries
from scribe.sqlite_rows import insert_rows

BASE = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SENTINEL_MODE = "sentinel"


class Clock:
    def __init__(self) -> None:
        self.now = BASE

    def __call__(self) -> datetime:
        return self.now


def make_call(
    root: Path,
    mode: str = "project",
    *,
    execution: str = "exec-a",
    instance: str = "inst-1",
    agent: str = "claude",
    intent: str = "fix the parser",
    projects: tuple[str, ...] = ("alpha",),
    project: str | None = None,
) -> Call:
    context = ExecutionContext.model_validate(
        {
            "repo_root": str(root),
            "mode": mode,
            "execution_id": execution,
            "agent_identity": {"id": agent, "instance_id": instance},
            "intent": intent,
            "timestamp_utc": "2026-11-22T12:00:00Z",
            "affected_dev_projects": list(projects),
            "project": project,
        }
    )
    return Call(context, root, "session-1")


def by(call: Call, kind: str, message: str, path: str | None = None, **extra: Any) -> NewEntry:
    """An entry as an agent's tool call journals it."""
    return NewEntry(kind, call.context.actor, path, message=message, payload=call.payload(**extra))


def engine_entry(i: int) -> NewEntry:
    path = f"notes/{i % 4}.md"
    return NewEntry(
        FILE_WRITTEN, "rule:stamp", path, f"{i:064x}", f"{i + 1:064x}",
        f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{i}\n+{i + 1}\n", "modified set",
        {"rule": "stamp"},
    )  # fmt: skip


MESSAGES = (
    'fix a-b "c" parser',
    "état réglé; CVE-2026-1234 patched",
    "timeout in user@example.com's sync (retry 3/5)",
    "plan: [x] parser, [ ] docs",
)


def agent_entry(root: Path, i: int) -> NewEntry:
    """One of several agents' entries, rotating modes, executions, cases and projects."""
    message = MESSAGES[i % len(MESSAGES)]
    match i % 5:
        case 0:
            c = make_call(root, execution=f"exec-{'ab'[i % 2]}", instance=f"inst-{1 + i % 2}",
                          projects=("alpha", "beta") if i % 3 else ("beta",), project="alpha")  # fmt: skip
            return by(c, AGENT_ENTRY, message, project="alpha")
        case 1:
            c = make_call(root, SENTINEL_MODE, execution="exec-s", instance="inst-3",
                          intent="watch deploys", projects=("alpha",))  # fmt: skip
            return by(c, AGENT_EVENT, message, event_type=("deploy", "alert")[i % 2])
        case 2:
            c = make_call(root, SENTINEL_MODE, execution="exec-s", instance="inst-3",
                          intent="triage security reports", projects=("gamma",))  # fmt: skip
            kind = (CASE_OPENED, CASE_UPDATED, CASE_CLOSED)[i // 5 % 3]
            return by(c, kind, message, case_id=f"SEC-{i % 4}")
        case 3:
            c = make_call(root, execution="exec-a", projects=())
            return by(c, FILE_READ, "read lines 1-40", f"docs/{i % 3}.md")
        case _:
            c = make_call(root, execution="exec-b", instance="inst-2", projects=("beta",),
                          project="delta")  # fmt: skip
            return by(c, DOC_CHANGED, message, "docs/plan.md", project="delta", case_id="BUG-1")


@dataclass
class History:
    root: Path
    store: SqliteJournal
    writer: JournalWriter
    queries: JournalQueries
    clock: Clock

    def everything(self) -> list[Entry]:
        return self.store.query(Query())

    def ask(self, **arguments: Any) -> dict[str, Any]:
        arguments.setdefault("scope", "all")
        arguments.setdefault("limit", MAX_LIMIT)
        return self.queries.query_entries(make_call(self.root), **arguments)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    """300 entries 15 minutes apart (three days): engine rewrites and five kinds of
    agents' entries in both modes."""
    root = tmp_path / "repo"
    clock = Clock()
    store = SqliteJournal.for_root(root, clock=clock)
    writer = JournalWriter(store, Mirrors(root))
    for i in range(300):
        clock.now = BASE + timedelta(minutes=15 * i)
        writer.append([engine_entry(i) if i % 3 == 0 else agent_entry(root, i)])
    yield History(root, store, writer, JournalQueries(root, writer), clock)
    writer.close()
    store.close()


def seqs(answer: dict[str, Any]) -> list[int]:
    return [entry["seq"] for entry in answer["entries"]]


def _words(text: str) -> list[str]:
    """Roughly how FTS5's unicode61 tokenizer splits text: letters and digits, case
    and accents folded."""
    folded = unicodedata.normalize("NFKD", text.casefold()).encode("ascii", "ignore").decode()
    return re.findall(r"[^\W_]+", folded)


def says(entry: Entry, text: str) -> bool:
    """Whether ``text`` is found in the entry as the journal's text search finds it:
    each word a phrase (its last token a prefix) in the path, message or payload."""
    columns = [_words(c) for c in (entry.path or "", entry.message, canonical(entry.payload))]
    for term in text.split():
        phrase = _words(term)
        if phrase and not any(
            col[i : i + len(phrase) - 1] == phrase[:-1]
            and col[i + len(phrase) - 1].startswith(phrase[-1])
            for col in columns
            for i in range(len(col) - len(phrase) + 1)
        ):
            return False
    return True


def in_scope(entry: Entry, scope: str) -> bool:
    return scope == "all" or entry.payload.get("mode") == scope


def affects(entry: Entry, project: str) -> bool:
    p = entry.payload
    return p.get("project") == project or project in p.get("affected_dev_projects", [])


def of_type(entry: Entry, *types: str) -> bool:
    return entry.kind in types or (
        entry.kind == AGENT_EVENT and entry.payload.get("event_type") in types
    )


def test_public_surface_is_pinned() -> None:
    assert scribe.mcp.query.__all__ == [
        "DEFAULT_LIMIT", "MAX_LIMIT", "ORDERS", "SCOPES", "JournalQueries", "summary",
    ]  # fmt: skip


Keep = Callable[[Entry], bool]
SINGLE: list[tuple[dict[str, Any], Keep]] = [
    ({}, lambda e: True),
    ({"scope": "project"}, lambda e: True),
    ({"scope": "sentinel"}, lambda e: True),
    ({"day": "2026-11-23"}, lambda e: e.ts.startswith("2026-11-23")),
    ({"since": "2026-11-23T06:00:00Z", "until": "2026-11-23T09:30:00+00:00"},
     lambda e: "2026-11-23T06:00" <= e.ts < "2026-11-23T09:30"),
    ({"since": "2026-11-24T10:00:00.5+02:00"}, lambda e: e.ts >= "2026-11-24T08:00:00.5"),
    ({"execution_id": "exec-b"}, lambda e: e.payload.get("execution_id") == "exec-b"),
    ({"agent_instance_id": "inst-3"},
     lambda e: e.payload.get("agent", {}).get("instance_id") == "inst-3"),
    ({"intent": "watch deploys"}, lambda e: e.payload.get("intent") == "watch deploys"),
    ({"case_id": "SEC-2"}, lambda e: e.payload.get("case_id") == "SEC-2"),
    ({"case_id": "BUG-1"}, lambda e: e.payload.get("case_id") == "BUG-1"),
    ({"project": "alpha"}, lambda e: affects(e, "alpha")),
    ({"project": "delta"}, lambda e: affects(e, "delta")),
    ({"path": "notes/1.md"}, lambda e: e.path == "notes/1.md"),
    ({"path": "docs/*.md"}, lambda e: (e.path or "").startswith("docs/")),
    ({"path": "**/[12].md"}, lambda e: (e.path or "")[-4:] in ("1.md", "2.md")),
    ({"event_type": "deploy"}, lambda e: of_type(e, "deploy")),
    ({"event_type": CASE_OPENED}, lambda e: e.kind == CASE_OPENED),
    ({"event_type": ["alert", FILE_READ, AGENT_EVENT]},
     lambda e: of_type(e, "alert", FILE_READ, AGENT_EVENT)),
    ({"text": "parser"}, lambda e: says(e, "parser")),
]  # fmt: skip
COMBINED: list[tuple[dict[str, Any], Keep]] = [
    ({"scope": "sentinel", "day": "2026-11-23", "event_type": "alert"},
     lambda e: e.ts.startswith("2026-11-23") and of_type(e, "alert")),
    ({"scope": "project", "project": "delta", "case_id": "BUG-1"},
     lambda e: affects(e, "delta") and e.payload.get("case_id") == "BUG-1"),
    ({"execution_id": "exec-a", "text": "parser"},
     lambda e: e.payload.get("execution_id") == "exec-a" and says(e, "parser")),
    ({"project": "beta", "text": "CVE-2026-1234", "day": "2026-11-22"},
     lambda e: affects(e, "beta") and says(e, "CVE-2026-1234") and e.ts < "2026-11-23"),
    ({"agent_instance_id": "inst-2", "since": "2026-11-23T12:00:00Z"},
     lambda e: e.payload.get("agent", {}).get("instance_id") == "inst-2"
     and e.ts >= "2026-11-23T12"),
    ({"scope": "sentinel", "project": "gamma", "event_type": [CASE_CLOSED, CASE_OPENED]},
     lambda e: affects(e, "gamma") and e.kind in (CASE_CLOSED, CASE_OPENED)),
    ({"execution_id": "exec-a", "path": "docs/**"},
     lambda e: e.payload.get("execution_id") == "exec-a" and (e.path or "").startswith("docs/")),
    ({"scope": "project", "intent": "fix the parser", "event_type": AGENT_ENTRY,
      "project": "beta", "text": "état"},
     lambda e: e.kind == AGENT_ENTRY and affects(e, "beta") and says(e, "état")
     and e.payload.get("intent") == "fix the parser"),
    ({"scope": "project", "execution_id": "exec-s"}, lambda e: False),
]  # fmt: skip


def _label(case: tuple[dict[str, Any], Keep]) -> str:
    return ",".join(case[0]) or "no-filter"


@pytest.mark.parametrize("case", SINGLE + COMBINED, ids=[_label(c) for c in SINGLE + COMBINED])
def test_each_filter_alone_and_combined_returns_exactly_its_entries(
    history: History, case: tuple[dict[str, Any], Keep]
) -> None:
    filters, keep = case
    scope = filters.get("scope", "all")
    expected = [e.seq for e in history.everything() if keep(e) and in_scope(e, scope)]
    if "scope" not in filters:
        assert expected, "a filter that matches nothing here proves little"
    newest = history.ask(**filters)
    assert seqs(newest) == expected[::-1]
    assert newest["count"] == len(expected)
    assert newest["next_cursor"] is None
    assert seqs(history.ask(**filters, order="oldest")) == expected


def test_scopes_keep_project_and_sentinel_entries_apart(history: History) -> None:
    everything = history.everything()
    project = history.ask(scope="project")["entries"]
    sentinel = history.ask(scope="sentinel")["entries"]
    assert project
    assert sentinel
    assert {e["payload"]["mode"] for e in project} == {"project"}
    assert {e["payload"]["mode"] for e in sentinel} == {"sentinel"}
    engine = [e.seq for e in everything if "mode" not in e.payload]
    assert engine
    assert len(project) + len(sentinel) + len(engine) == len(everything)
    assert set(engine) <= set(seqs(history.ask(scope="all")))
    # A sentinel-only filter under project scope finds nothing, and the reverse.
    assert history.ask(scope="project", event_type="deploy")["entries"] == []
    assert history.ask(scope="sentinel", case_id="BUG-1")["entries"] == []


def test_entries_carry_their_fields_a_summary_and_the_diff_only_when_asked(
    history: History,
) -> None:
    plain = history.ask(limit=3, path="notes/**")
    keys = {"seq", "ts", "kind", "actor", "path", "message", "payload", "ref", "hash"}
    assert all(set(entry) == keys for entry in plain["entries"])
    rich = history.ask(limit=3, path="notes/**", summaries=True, include_diff=True)
    first = rich["entries"][0]
    stored = history.store.get(first["seq"])
    assert stored is not None
    assert first["diff"] == stored.diff
    assert first["hash"] == stored.hash
    when = f"{stored.ts[:10]} {stored.ts[11:19]} UTC"
    assert first["summary"] == f"{when} rule:stamp file.written {stored.path}: modified set"
    case = history.ask(limit=1, case_id="SEC-1", summaries=True)["entries"][0]
    assert case["summary"].startswith(f"{case['ts'][:10]} {case['ts'][11:19]} UTC agent:claude")
    assert f"{case['kind']} [SEC-1]" in case["summary"]
    event = history.ask(limit=1, event_type="alert", summaries=True)["entries"][0]
    assert " agent.event/alert: " in event["summary"]
    assert json.loads(json.dumps(rich)) == rich  # JSON-ready as it is


def test_a_multi_line_message_makes_a_one_line_summary(history: History) -> None:
    call = make_call(history.root, execution="exec-lines")
    history.writer.append([by(call, AGENT_ENTRY, "first line\nsecond\tline")])
    (entry,) = history.ask(execution_id="exec-lines", summaries=True)["entries"]
    assert entry["message"] == "first line\nsecond\tline"
    assert entry["summary"].endswith("agent.entry: first line second line")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('a-b "c', True),
        ("CVE-2026-1234", True),
        ("user@example.com's", True),
        ("(retry 3/5)", True),
        ("[x] parser,", True),
        ("ÉTAT", True),
        ("'); DROP TABLE entries; --", False),
        ("parser NEAR docs", False),
        ('"unbalanced AND (', False),
    ],
)
def test_text_search_takes_punctuation_literally(history: History, text: str, found: bool) -> None:
    expected = [e.seq for e in history.everything() if says(e, text)]
    assert bool(expected) == found
    assert seqs(history.ask(text=text)) == expected[::-1]
    assert history.store.count() == 300  # nothing was executed


def test_paging_returns_every_entry_once_while_threads_and_a_process_append(
    history: History,
) -> None:
    """Pages are cut by seq: appends between pages (from this process's writer and
    from another process) neither repeat nor skip an entry."""
    other = history.root / ".scribe" / "journal.db"
    before = history.everything()
    expected = {
        "newest": [e.seq for e in before if e.payload.get("mode") == "project"][::-1],
        "oldest": [e.seq for e in before if e.payload.get("mode") == "project"],
    }
    appended: list[int] = []
    for order in ("newest", "oldest"):
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            page = history.ask(scope="project", order=order, limit=7, cursor=cursor)
            seen += seqs(page)
            pages += 1
            call = make_call(history.root, execution=f"exec-page-{order}")
            appended += [e.seq for e in history.writer.append([by(call, AGENT_ENTRY, "more")])]
            if pages % 5 == 0:
                appended += _append_from_another_process(other, history.root)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        if order == "newest":
            assert seen == expected["newest"]  # entries newer than page one never show
        else:
            new = sorted(s for s in appended if s > expected["oldest"][-1])
            assert seen[: len(expected["oldest"])] == expected["oldest"]
            assert sorted(set(seen)) == seen  # strictly increasing: none twice
            assert set(seen[len(expected["oldest"]) :]) <= set(new)
        assert pages > 5


def _append_from_another_process(db: Path, root: Path) -> list[int]:
    """A second process (as a second ``scribe mcp`` would) appends a project entry."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from scribe.journal.entry import NewEntry\n"
        "from scribe.journal.sqlite import SqliteJournal\n"
        "payload = {'mode': 'project', 'execution_id': 'exec-other', 'affected_dev_projects': []}\n"
        "with SqliteJournal(Path(sys.argv[1])) as store:\n"
        "    new = NewEntry('agent.entry', 'agent:other', message='elsewhere', payload=payload)\n"
        "    print(store.append([new])[0].seq)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(db)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [int(done.stdout)]


def test_concurrent_sessions_page_consistently_while_the_writer_appends(
    history: History,
) -> None:
    cases: list[tuple[dict[str, Any], Keep]] = [
        ({"scope": "sentinel"}, lambda e: e.payload.get("mode") == "sentinel"),
        ({"project": "beta"}, lambda e: affects(e, "beta")),
        ({"execution_id": "exec-a"}, lambda e: e.payload.get("execution_id") == "exec-a"),
        ({"event_type": [CASE_OPENED, "deploy"]}, lambda e: of_type(e, CASE_OPENED, "deploy")),
    ]
    filters = [f for f, _ in cases]
    expected = {i: [e.seq for e in history.everything() if keep(e)][::-1]
                for i, (_, keep) in enumerate(cases)}  # fmt: skip
    results: dict[int, list[int]] = {}
    problems: list[BaseException] = []
    stop = threading.Event()

    def page_through(i: int) -> None:
        try:
            seen: list[int] = []
            cursor = None
            while True:
                page = history.ask(**filters[i], limit=3, cursor=cursor)
                seen += seqs(page)
                if (cursor := page["next_cursor"]) is None:
                    break
            results[i] = seen
        except BaseException as exc:
            problems.append(exc)

    def keep_appending() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            call = make_call(history.root, SENTINEL_MODE, execution="exec-a", projects=("beta",))
            history.writer.append([by(call, CASE_OPENED, f"opened {n}", case_id=f"NEW-{n}")])

    appender = threading.Thread(target=keep_appending)
    readers = [threading.Thread(target=page_through, args=(i,)) for i in range(len(filters))]
    appender.start()
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    stop.set()
    appender.join(60)
    assert not problems
    last = history.everything()[-1].seq
    for i, seen in results.items():
        # Entries appended before a reader's first page come first; after that, the
        # pages hold exactly what matched, once each.
        fresh = len(seen) - len(expected[i])
        assert seen[fresh:] == expected[i]
        assert all(300 < seq <= last for seq in seen[:fresh])
        assert seen[:fresh] == sorted(set(seen[:fresh]), reverse=True)
    assert last > 300


def test_a_cursor_only_continues_the_query_that_made_it(history: History) -> None:
    page = history.ask(scope="project", limit=5)
    cursor = page["next_cursor"]
    assert isinstance(cursor, str)
    assert (
        seqs(history.ask(scope="project", limit=5, cursor=cursor))
        == [e.seq for e in history.everything() if e.payload.get("mode") == "project"][::-1][5:10]
    )
    # Other limits, summaries or diffs are fine: they do not change which entries match.
    assert history.ask(scope="project", limit=2, cursor=cursor, summaries=True)["count"] == 2
    for other in ({"scope": "sentinel"}, {"scope": "project", "order": "oldest"},
                  {"scope": "project", "text": "parser"}):  # fmt: skip
        with pytest.raises(ToolFailure) as failure:
            history.ask(**other, limit=5, cursor=cursor)
        assert failure.value.code == INVALID_ARGUMENT
        assert "cursor belongs to a query with other filters or another order" in str(failure.value)
    for forged in ("nonsense", "eyJ2IjoxfQ", cursor[:-3], "!!!"):
        with pytest.raises(ToolFailure, match="cursor is not a cursor query_entries returned"):
            history.ask(scope="project", cursor=forged)


@pytest.mark.parametrize(
    ("arguments", "parameter", "words"),
    [
        (
            {"scope": "everything"},
            "scope",
            "scope must be one of project, sentinel, all, not 'everything'",
        ),
        ({"scope": None}, "scope", "scope must be one of"),
        ({"day": "2026-11-31"}, "day", "day must be a UTC day as YYYY-MM-DD"),
        ({"day": "24.11.2026"}, "day", "day must be a UTC day as YYYY-MM-DD"),
        (
            {"day": "2026-11-24", "since": "2026-11-24T00:00:00Z"},
            "day",
            "cannot be combined with since/until",
        ),
        (
            {"since": "2026-11-24T10:00:00"},
            "since",
            "since must be an RFC 3339 timestamp with its offset",
        ),
        ({"until": "yesterday"}, "until", "until must be an RFC 3339 timestamp"),
        ({"since": "2026-11-24T25:00:00Z"}, "since", "since is not a valid time"),
        (
            {"since": "2026-11-24T10:00:00Z", "until": "2026-11-24T10:00:00Z"},
            "until",
            "until must be later than since",
        ),
        ({"limit": 0}, "limit", "limit must be from 1 to 500, not 0"),
        ({"limit": 501}, "limit", "limit must be from 1 to 500, not 501"),
        ({"limit": True}, "limit", "limit must be a whole number"),
        ({"limit": "10"}, "limit", "limit must be a whole number"),
        ({"execution_id": ""}, "execution_id", "execution_id must not be empty"),
        ({"case_id": "  "}, "case_id", "case_id must not be empty"),
        ({"intent": 7}, "intent", "intent must be a string, not int"),
        ({"event_type": []}, "event_type", "event_type must be a journal kind or event type"),
        ({"event_type": ["deploy", ""]}, "event_type", "event_type must not be empty"),
        ({"text": "-- ()"}, "text", "text holds no word to search for"),
        ({"order": "random"}, "order", "order must be newest or oldest"),
        ({"path": "/etc/passwd"}, "path", "path must be relative to the repository root"),
        ({"path": "./"}, "path", "path names no file"),
        ({"cursor": ""}, "cursor", "cursor must not be empty"),
    ],
)
def test_invalid_arguments_name_the_parameter(
    history: History, arguments: dict[str, Any], parameter: str, words: str
) -> None:
    with pytest.raises(ToolFailure) as failure:
        history.ask(**arguments)
    assert failure.value.code == INVALID_ARGUMENT
    assert words in failure.value.message
    assert failure.value.details["parameter"] == parameter


def test_an_absolute_path_inside_the_root_is_taken_as_relative(history: History) -> None:
    relative = history.ask(path="notes/1.md")
    assert relative["count"] > 0
    assert history.ask(path=f"{history.root}/notes/1.md") == relative
    assert history.ask(path="./notes/1.md") == relative


def test_a_call_for_another_repository_is_refused(history: History, tmp_path: Path) -> None:
    with pytest.raises(ToolFailure) as failure:
        history.queries.query_entries(make_call(tmp_path / "elsewhere"), scope="all")
    assert failure.value.code == INVALID_CONTEXT


# -- the store underneath --------------------------------------------------------


def schema_2_journal(db: Path, entries: list[NewEntry]) -> list[Entry]:
    """A journal as Scribe wrote it before schema 3, built with the old statements."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for statements in MIGRATIONS[:2]:
        for statement in statements:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    sealed, prev = [], GENESIS
    for seq, new in enumerate(entries, 1):
        ts = (BASE + timedelta(minutes=seq)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        entry = Entry.seal(new, seq=seq, ts=ts, prev_hash=prev)
        insert_rows(conn, _INSERT, [
            (seq, ts, new.kind, new.actor, new.path, new.before_hash, new.after_hash, new.diff,
             new.message, new.payload_json, new.ref, entry.prev_hash, entry.hash),
        ])  # fmt: skip
        sealed.append(entry)
        prev = entry.hash
    conn.close()
    return sealed


def test_a_schema_2_journal_upgrades_in_place_and_serves_the_new_filters(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    db = root / ".scribe" / "journal.db"
    db.parent.mkdir(parents=True)
    old = schema_2_journal(db, [engine_entry(i) if i % 3 == 0 else agent_entry(root, i)
                                for i in range(60)])  # fmt: skip
    with SqliteJournal(db) as store:
        assert store.count() == 60
        assert store.get(60) == old[-1]
        assert store.verify().ok
        writer = JournalWriter(store)
        try:
            queries = JournalQueries(root, writer)
            call = make_call(root, execution="exec-a", project="delta")
            (new,) = writer.append([by(call, AGENT_ENTRY, "after the upgrade", project="delta")])
            every = store.query(Query())
            for filters, keep in SINGLE + COMBINED:
                scope = filters.get("scope", "all")
                expected = [e.seq for e in every if keep(e) and in_scope(e, scope)][::-1]
                got = queries.query_entries(call, **{"scope": "all", **filters}, limit=MAX_LIMIT)
                assert seqs(got) == expected, filters
            delta = queries.query_entries(call, scope="project", project="delta", limit=500)
            assert new.seq in seqs(delta)
            assert len(seqs(delta)) > 1  # old entries were filed under their projects too
        finally:
            writer.close()
        assert store.verify().ok
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert {"entries_no_update", "entries_no_delete"} <= triggers
    conn.close()


def test_an_upgrade_survives_a_payload_tampered_into_non_json(tmp_path: Path) -> None:
    """The upgrade must not lock the owner out of ``verify`` on a tampered journal."""
    db = tmp_path / "journal.db"
    root = tmp_path
    schema_2_journal(db, [agent_entry(root, i) for i in range(1, 11)])
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET payload = '{not json' WHERE seq = 4")
    conn.close()
    with SqliteJournal(db) as store:
        report = store.verify()
        assert not report.ok
        assert report.first_bad_seq == 4
        found = store.query(Query(execution_id="exec-s", newest_first=True))
        assert 4 not in [e.seq for e in found]
        assert found


def test_project_filing_is_as_append_only_as_the_entries(history: History) -> None:
    conn = sqlite3.connect(history.store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only: entries cannot be changed"):
        conn.execute("UPDATE entry_projects SET project = 'other'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: entries cannot be deleted"):
        conn.execute("DELETE FROM entry_projects")
    conn.close()
    assert history.ask(project="alpha")["count"] > 0


FACET = "SEARCH f USING PRIMARY KEY (facet=? AND value=?)"
FACET_RANGE = "SEARCH f USING PRIMARY KEY (facet=? AND value=? AND seq>? AND seq<?)"


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (Query(execution_id="x", newest_first=True, limit=50), FACET),
        (Query(agent_instance_id="x", newest_first=True, limit=50), FACET),
        (Query(case_id="x", mode="project", newest_first=True, limit=50), FACET),
        (Query(intent="x", mode="sentinel", newest_first=True, limit=50), FACET),
        (Query(mode="sentinel", newest_first=True, limit=50), FACET),
        (Query(project="x", newest_first=True, limit=50), "SEARCH p USING PRIMARY KEY (project=?)"),
        (Query(event_types=("deploy",), limit=50), FACET),
        (Query(execution_id="x", project="p", mode="project", kinds=("a",)), FACET),
        (Query(execution_id="x", after_seq=10, before_seq=90), FACET_RANGE),
        (Query(event_types=("deploy",), after_seq=10, before_seq=90, limit=50), FACET_RANGE),
    ],
)
def test_each_agent_filter_is_served_by_its_index(
    history: History, query: Query, index: str
) -> None:
    """No timing here: the plan shows whether a filter is an index walk or a scan."""
    compiled = compile_query(query, "e.seq", None, None, lambda sql, params: 0)
    assert compiled is not None
    conn = sqlite3.connect(history.store.path)
    conn.create_function("scribe_glob", 2, glob_match, deterministic=True)
    plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + compiled[0], compiled[1]))
    conn.close()
    assert index in plan
    assert "SCAN e" not in plan
    assert "TEMP B-TREE" not in plan  # seq order straight from the index: nothing to sort


def test_a_query_is_answered_while_an_append_is_in_its_commit(tmp_path: Path) -> None:
    """Reads have their own connection: a commit under way (here held still inside
    its transaction by the store's clock) holds up no query, not even a text search
    once the text index is up to date."""
    root = tmp_path / "repo"
    inside, release = threading.Event(), threading.Event()

    def clock() -> datetime:
        if hold.is_set():
            inside.set()
            release.wait(30)
        return BASE

    hold = threading.Event()
    with SqliteJournal.for_root(root, clock=clock) as store, JournalWriter(store) as writer:
        writer.append([agent_entry(root, 3)])
        store.index_text()  # as the writer does when idle
        queries = JournalQueries(root, writer)
        hold.set()
        appending = threading.Thread(target=writer.append, args=([agent_entry(root, 8)],))
        appending.start()
        assert inside.wait(10)
        answers: list[dict[str, Any]] = []

        def read() -> None:
            for text in (None, "parser"):
                answers.append(queries.query_entries(make_call(root), scope="all", text=text))

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(10)
        done_before_commit = not reader.is_alive()
        hold.clear()
        release.set()
        appending.join(10)
        reader.join(10)
    assert done_before_commit
    assert [[e["seq"] for e in answer["entries"]] for answer in answers] == [[1], [1]]

"""The journal store: a hash chain on disk that notices any edit, and finds entries fast.

Every test that holds for any store runs against both, SQLite and PostgreSQL (a
real server, see ``pg_helpers``); what only one of them has (the SQLite head file,
its migrations and text index) is tested here for SQLite and in
``test_journal_postgres.py`` for PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

import scribe.journal
from pg_helpers import PostgresServer, shared_postgres
from scribe.errors import ScribeError
from scribe.journal import Entry, JournalError, NewEntry, Query, SqliteJournal
from scribe.journal.commands import register
from scribe.journal.entry import (
    FILE_DELETED,
    FILE_SKIPPED,
    FILE_WRITTEN,
    GENESIS,
    RULE_MATCHED,
    WORK_DONE,
    WORK_PENDING,
    Journal,
    JournalUnavailable,
)
from scribe.journal.head import SLOT
from scribe.journal.postgres import PostgresJournal
from scribe.journal.schema import SCHEMA_VERSION
from scribe.journal.writer import JournalWriter

BASE = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class Clock:
    """The store's clock, moved by the test: entries that span hours, made in a second."""

    def __init__(self, now: datetime = BASE) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def written(i: int, path: str = "notes/a.md") -> NewEntry:
    return NewEntry(
        FILE_WRITTEN,
        "rule:stamp",
        path,
        before_hash=f"{i:064x}",
        after_hash=f"{i + 1:064x}",
        diff=f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{i}\n+{i + 1}\n",
        message=f"modified set to {i}",
        payload={"rule": "stamp", "round": i},
    )


def fill(db: Path, count: int) -> list[Entry]:
    """``count`` entries, one transaction each (so the head file follows every one)."""
    with SqliteJournal(db) as store:
        return [store.append([written(i)])[0] for i in range(count)]


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> PostgresServer:
    return shared_postgres(request)


class Raw:
    """A store's database as an attacker sees it: plain SQL with ``?`` placeholders."""

    def __init__(self, sqlite: Path | None = None, url: str | None = None) -> None:
        self._sqlite = sqlite3.connect(sqlite, isolation_level=None) if sqlite else None
        self._pg = (
            psycopg.connect(url, autocommit=True, options="-c search_path=scribe,public")
            if url
            else None
        )

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._sqlite is not None:
            return self._sqlite.execute(sql, params).fetchall()
        assert self._pg is not None
        cur = self._pg.execute(sql.replace("?", "%s"), params)
        return cur.fetchall() if cur.description else []

    def drop_triggers(self) -> None:
        for name in ("entries_no_update", "entries_no_delete"):
            on = " ON entries" if self._pg is not None else ""
            self.rows(f"DROP TRIGGER {name}{on}")

    def close(self) -> None:
        for conn in (self._sqlite, self._pg):
            if conn is not None:
                conn.close()


@dataclass
class Backend:
    """One kind of store, made fresh for a test: how to open it and reach behind it."""

    name: str
    open: Callable[..., Journal]
    raw: Callable[[], Raw]
    #: What the store says when its database refuses writes.
    read_only_words: str
    #: The SQLite store's database file.
    db: Path | None = None

    @contextmanager
    def holding_the_write_lock(self) -> Iterator[Callable[[], None]]:
        """Another process in the middle of an append; yields the function that ends it."""
        raw = self.raw()
        if self.name == "sqlite":
            raw.rows("BEGIN IMMEDIATE")
        else:
            raw.rows("BEGIN")
            raw.rows("SELECT seq FROM head FOR UPDATE")

        def release() -> None:
            raw.rows("ROLLBACK")

        try:
            yield release
        finally:
            raw.close()


def _backend(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Backend:
    if name == "sqlite":
        db = tmp_path / "journal.db"
        return Backend(
            name,
            lambda **options: SqliteJournal(db, **options),
            lambda: Raw(sqlite=db),
            "readonly",
            db,
        )
    url = request.getfixturevalue("postgres").new_database()
    return Backend(
        name,
        lambda **options: PostgresJournal(url, **options),
        lambda: Raw(url=url),
        "read-only transaction",
    )


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return _backend(request.param, tmp_path, request)


def fill_store(backend: Backend, count: int) -> list[Entry]:
    """``count`` entries, one transaction each."""
    with backend.open() as store:
        return [store.append([written(i)])[0] for i in range(count)]


def raw(db: Path) -> sqlite3.Connection:
    """The database as an attacker sees it: plain SQL, triggers dropped."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("DROP TRIGGER entries_no_delete")
    return conn


def test_public_surface_is_pinned() -> None:
    assert scribe.journal.__all__ == [
        "Entry",
        "Journal",
        "JournalError",
        "JournalUnavailable",
        "JournalUnreachable",
        "JournalWriter",
        "Mirrors",
        "NewEntry",
        "PostgresJournal",
        "Query",
        "SqliteJournal",
        "VerifyReport",
    ]
    assert scribe.journal.PostgresJournal is PostgresJournal
    assert issubclass(scribe.journal.JournalUnreachable, JournalError)


def test_entries_form_a_chain_of_canonical_json_hashes(backend: Backend) -> None:
    with backend.open() as store:
        first = store.append([NewEntry("engine.started", "scribe", message="watching")])
        batch = store.append([written(1), written(2, "ünï/çødé.md")])
    entries = first + batch
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    for entry in entries:
        assert TS.fullmatch(entry.ts)
        body = {k: v for k, v in json.loads(entry.to_json()).items() if k != "hash"}
        spelled = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert entry.hash == hashlib.sha256(spelled.encode()).hexdigest()
        assert Entry.from_json(entry.to_json()) == entry
    assert "ünï/çødé.md" in entries[2].to_json()  # UTF-8, not \\u escapes
    with backend.open() as again:  # the chain survives a reopen
        assert [again.get(e.seq) for e in entries] == entries
        assert again.head() == entries[-1]
        assert again.count() == 3
        assert again.get(4) is None
        assert again.verify().ok


def test_a_batch_larger_than_one_statement_holds_is_stored_whole_and_in_order(
    backend: Backend,
) -> None:
    news = [
        replace(written(i, f"n{i:04d}.md"), payload={"round": i, "project": f"p{i % 3}"})
        for i in range(1_234)
    ]
    with backend.open() as store:
        sealed = store.append(news)
        assert [e.seq for e in sealed] == list(range(1, 1_235))
        assert store.count() == 1_234
        assert [e.path for e in store.query(Query(limit=2_000))] == [n.path for n in news]
        assert len(store.query(Query(project="p1", limit=2_000))) == 411  # i % 3 == 1
        assert store.verify().ok


def test_an_entry_that_cannot_be_journaled_is_refused_before_any_batch() -> None:
    with pytest.raises(JournalError, match="cannot journal"):
        NewEntry("x", "user", payload={"v": float("nan")})
    with pytest.raises(JournalError, match="cannot journal"):
        NewEntry("x", "user", payload={"v": object()})
    with pytest.raises(JournalError, match="cannot journal"):
        NewEntry("x", "user", message="half a surrogate \ud800")
    with pytest.raises(JournalError, match="needs a kind and an actor"):
        NewEntry("", "user")
    assert issubclass(JournalError, ScribeError)
    payload: dict[str, object] = {"files": ["a.md"]}
    entry = NewEntry("x", "user", payload=payload)
    payload["files"] = ["changed afterwards"]
    assert entry.payload == {"files": ["a.md"]}


def test_sql_cannot_change_or_delete_entries(backend: Backend) -> None:
    fill_store(backend, 3)
    conn = backend.raw()
    refused = (sqlite3.DatabaseError, psycopg.Error)
    with pytest.raises(refused, match="append-only: entries cannot be changed"):
        conn.rows("UPDATE entries SET message = 'nothing happened' WHERE seq = 2")
    with pytest.raises(refused, match="append-only: entries cannot be deleted"):
        conn.rows("DELETE FROM entries WHERE seq = 3")
    conn.close()
    with backend.open() as store:
        assert store.count() == 3
        assert store.verify().ok


ENTRY_FIELDS = list(Entry.__dataclass_fields__)


def _edit(conn: Raw) -> None:
    conn.rows("UPDATE entries SET message = 'nothing to see' WHERE seq = 5")


def _edit_payload(conn: Raw) -> None:
    conn.rows("""UPDATE entries SET payload = '{"round":4,"rule":"other"}' WHERE seq = 5""")


def _delete(conn: Raw) -> None:
    conn.rows("DELETE FROM entries WHERE seq = 5")


def _reorder(conn: Raw) -> None:
    # Swap the contents of entries 5 and 6, leaving each seq in place.
    conn.rows("UPDATE entries SET seq = -5 WHERE seq = 5")
    conn.rows("UPDATE entries SET seq = 5 WHERE seq = 6")
    conn.rows("UPDATE entries SET seq = 6 WHERE seq = -5")


def _truncate(conn: Raw) -> None:
    conn.rows("DELETE FROM entries WHERE seq > 8")


def _rewrite(conn: Raw) -> None:
    """Change entry 5 and recompute every hash after it: a valid chain, but not ours."""
    conn.rows("UPDATE entries SET message = 'rewritten' WHERE seq = 5")
    prev = conn.rows("SELECT hash FROM entries WHERE seq = 4")[0][0]
    for (seq,) in conn.rows("SELECT seq FROM entries WHERE seq >= 5 ORDER BY seq"):
        conn.rows("UPDATE entries SET prev_hash = ? WHERE seq = ?", (prev, seq))
        (row,) = conn.rows(f"SELECT {', '.join(ENTRY_FIELDS)} FROM entries WHERE seq = ?", (seq,))
        body = dict(zip(ENTRY_FIELDS, row, strict=True))
        body["payload"] = json.loads(body["payload"])
        del body["hash"]
        prev = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        ).hexdigest()
        conn.rows("UPDATE entries SET hash = ? WHERE seq = ?", (prev, seq))


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "words"),
    [
        (_edit, 5, "entry 5 was changed"),
        (_edit_payload, 5, "entry 5 was changed"),
        (_delete, 5, "entry 5 is missing"),
        (_reorder, 5, "entry 5 does not follow entry 4"),
        (_truncate, 9, r"ends at entry 8 but (journal|scribe)\.head records entry 10"),
        (_rewrite, 10, r"entry 10 is not the one (journal|scribe)\.head records"),
    ],
    ids=["edit", "edit-payload", "delete", "reorder", "truncate", "rewrite-all-hashes"],
)
def test_verify_names_the_first_entry_tampered_with(
    backend: Backend, tamper: Callable[[Raw], None], bad_seq: int, words: str
) -> None:
    fill_store(backend, 10)
    with backend.open() as store:
        assert store.verify().ok
    conn = backend.raw()
    conn.drop_triggers()
    tamper(conn)
    conn.close()
    with backend.open() as store:
        report = store.verify()
    assert not report.ok
    assert report.first_bad_seq == bad_seq
    assert re.search(words, report.problem)


def test_the_head_file_may_lag_behind_but_not_lie(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    fill(db, 3)
    head = db.with_suffix(".head")
    stale = head.read_bytes()
    with SqliteJournal(db) as store:
        store.append([written(9)])
    head.write_bytes(stale)  # a crash between the commit and the head update
    with SqliteJournal(db) as store:
        report = store.verify()
        assert (report.ok, report.checked, report.last_seq) == (True, 4, 4)
    head.write_bytes(b"not a head\n")
    with SqliteJournal(db) as store:
        report = store.verify()
    assert not report.ok
    assert "garbled" in report.problem


def test_a_head_slot_torn_by_a_crash_falls_back_to_the_other(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    entries = fill(db, 4)
    head = db.with_suffix(".head")
    data = bytearray(head.read_bytes())
    slot = (entries[-1].seq % 2) * SLOT
    data[slot + 10 : slot + SLOT] = b"\0" * (SLOT - 10)  # the write of entry 4 cut short
    head.write_bytes(bytes(data))
    with SqliteJournal(db) as store:
        assert store.verify().ok
    conn = raw(db)
    conn.execute("DELETE FROM entries WHERE seq >= 3")  # entry 3 is still in the other slot
    conn.close()
    with SqliteJournal(db) as store:
        assert store.verify().first_bad_seq == 3


def test_migrations_build_an_empty_database_and_refuse_a_newer_one(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "journal.db"
    with SqliteJournal(db) as store:
        assert store.count() == 0
        assert store.head() is None
        assert store.verify().ok
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"entries", "entries_text", "entries_no_update", "entries_ref"} <= tables
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(
        JournalError, match=rf"written by a newer Scribe \(journal schema {SCHEMA_VERSION + 1}"
    ):
        SqliteJournal(db)


def test_a_version_1_journal_is_migrated_forward(tmp_path: Path) -> None:
    """Version 1 indexed text on append: version 2 starts its batches after that."""
    db = tmp_path / "journal.db"
    with SqliteJournal(db) as store:
        store.append([NewEntry("note", "user", message=f"n{i}") for i in range(3)])
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE text_progress")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with SqliteJournal(db) as store:
        assert store.count() == 3
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT seq FROM text_progress").fetchone()[0] == 3
    conn.close()


def test_the_migrate_command_upgrades_a_sqlite_journal_once(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)

    def migrate() -> tuple[int, str]:
        done = CliRunner().invoke(app, ["journal", "migrate", "--root", str(tmp_path)])
        return done.exit_code, done.stdout.strip()

    assert migrate()[0] == 1  # no journal yet: none is made
    assert not (tmp_path / ".scribe").exists()
    db = tmp_path / ".scribe" / "journal.db"
    fill(db, 2)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE text_progress")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    assert migrate() == (0, f"{db}: journal schema {SCHEMA_VERSION}, upgraded from 1")
    assert migrate() == (0, f"{db}: journal schema {SCHEMA_VERSION}, up to date")
    with SqliteJournal(db) as store:
        assert store.count() == 2


def test_text_search_sees_entries_appended_since_the_last_indexing(backend: Backend) -> None:
    with backend.open() as store:
        store.append([NewEntry("note", "user", message="alpha one")])
        assert [e.message for e in store.query(Query(text="alpha"))] == ["alpha one"]
        store.append([NewEntry("note", "user", message="alpha two")])  # not indexed yet
        assert [e.message for e in store.query(Query(text="alpha"))] == ["alpha one", "alpha two"]
        assert store.index_text() == 0  # the query brought it up to date


def test_a_query_by_payload_key_sees_entries_appended_since_the_last_indexing(
    backend: Backend,
) -> None:
    def event(n: int) -> NewEntry:
        payload = {"execution_id": "ex-9", "event_type": "deploy", "n": n}
        return NewEntry("agent.event", "agent:a", message=f"deploy {n}", payload=payload)

    with backend.open() as store:
        store.append([event(1)])
        store.index_text()
        store.append([event(2), NewEntry("note", "user", message="deploy 3")])  # not filed yet
        assert [e.payload["n"] for e in store.query(Query(execution_id="ex-9"))] == [1, 2]
        assert store.index_text() == 0  # the query brought the facets up to date
        store.append([event(4)])
        by_type = store.query(Query(event_types=("deploy",), newest_first=True, limit=2))
        assert [e.payload["n"] for e in by_type] == [4, 2]
        store.append([event(5)])
        both = store.query(Query(execution_id="ex-9", text="deploy", after_seq=1))
        assert [e.payload["n"] for e in both] == [2, 4, 5]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def sample(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Journal, list[Entry]]]:
    """300 entries a minute apart: four paths, four kinds, three actors, odd messages.
    Made once per store (the tests only read it)."""
    clock = Clock()
    paths = ["notes/a.md", "notes/sub/b.md", "docs/c.md", "notes/d.txt", None]
    kinds = [FILE_WRITTEN, FILE_SKIPPED, RULE_MATCHED, "case.opened"]
    actors = ["rule:stamp", "user", "agent:claude/1234"]
    messages = ["modified set", 'fix a-b "c" parser', "état réglé", "skipped: binary"]
    store = _backend(request.param, tmp_path_factory.mktemp("sample"), request).open(clock=clock)
    entries = []
    for i in range(300):
        clock.now = BASE + timedelta(minutes=i)
        new = NewEntry(
            kinds[i % 4],
            actors[i % 3],
            paths[i % 5],
            message=messages[i % 4],
            payload={"rule": f"stamp-{i % 7}", "note": "tag-omega" if i % 50 == 0 else ""},
        )
        entries.extend(store.append([new]))
    yield store, entries
    store.close()


def seqs(entries: list[Entry]) -> list[int]:
    return [e.seq for e in entries]


def test_query_filters_agree_with_a_plain_scan(
    sample: tuple[Journal, list[Entry]],
) -> None:
    store, entries = sample

    def expect(keep: Callable[[Entry], bool]) -> list[int]:
        return [e.seq for e in entries if keep(e)]

    since, until = BASE + timedelta(minutes=100), BASE + timedelta(minutes=200)
    assert seqs(store.query(Query())) == expect(lambda e: True)
    assert seqs(store.query(Query(since=since))) == expect(lambda e: e.ts >= "2026-11-24T11:40")
    assert seqs(store.query(Query(since=since, until=until))) == list(range(101, 201))
    naive_local = datetime(2026, 11, 24, 11, 40)  # no zone: taken as UTC
    assert seqs(store.query(Query(since=naive_local))) == list(range(101, 301))
    assert store.query(Query(since=BASE + timedelta(days=1))) == []
    kinds = (FILE_WRITTEN, "case.opened")
    assert seqs(store.query(Query(kinds=kinds))) == expect(lambda e: e.kind in kinds)
    assert seqs(store.query(Query(path_glob="notes/**/*.md"))) == expect(
        lambda e: e.path in ("notes/a.md", "notes/sub/b.md")
    )
    assert seqs(store.query(Query(path_glob="**/*.md", limit=5000))) == expect(
        lambda e: (e.path or "").endswith(".md")
    )
    assert seqs(store.query(Query(path_glob="notes/*"))) == expect(
        lambda e: e.path in ("notes/a.md", "notes/d.txt")
    )
    assert seqs(store.query(Query(path_glob="notes/a.md"))) == expect(
        lambda e: e.path == "notes/a.md"
    )
    assert seqs(store.query(Query(path="notes/a.m"))) == []
    assert seqs(store.query(Query(path="docs/c.md"))) == expect(lambda e: e.path == "docs/c.md")
    assert seqs(store.query(Query(actor="user"))) == expect(lambda e: e.actor == "user")
    assert seqs(store.query(Query(after_seq=290))) == list(range(291, 301))
    assert seqs(store.query(Query(limit=3, newest_first=True))) == [300, 299, 298]
    assert seqs(store.query(Query(after_seq=10, limit=3))) == [11, 12, 13]
    combined = Query(
        since=since, kinds=(FILE_WRITTEN,), path_glob="notes/**", actor="rule:stamp", limit=4,
        newest_first=True,
    )  # fmt: skip
    assert seqs(store.query(combined)) == expect(
        lambda e: e.seq > 100 and e.kind == FILE_WRITTEN and e.actor == "rule:stamp"
        and (e.path or "").startswith("notes/")
    )[::-1][:4]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "keep"),
    [
        ('a-b "c', lambda e: "a-b" in e.message),
        ('"c" parser', lambda e: "parser" in e.message),
        ("modif", lambda e: e.message == "modified set"),
        ("ÉTAT", lambda e: e.message.startswith("état")),
        ("omega", lambda e: e.payload["note"] == "tag-omega"),
        ("sub", lambda e: e.path == "notes/sub/b.md"),
        ("' \" -- ()*:^", lambda e: False),
        ("AND OR NOT NEAR", lambda e: False),
    ],
)
def test_text_search_takes_any_user_input(
    sample: tuple[Journal, list[Entry]], text: str, keep: Callable[[Entry], bool]
) -> None:
    store, entries = sample
    expected = [e.seq for e in entries if keep(e)]
    assert seqs(store.query(Query(text=text))) == expected
    assert seqs(store.query(Query(text=text, limit=3, newest_first=True))) == expected[::-1][:3]
    assert seqs(store.query(Query(text=text, path="notes/sub/b.md"))) == [
        e.seq for e in entries if keep(e) and e.path == "notes/sub/b.md"
    ]


def agent_entry(i: int) -> NewEntry:
    """Entry ``i`` of three agents' work: executions, cases, intents, modes, projects."""
    payload: dict[str, Any] = {
        "execution_id": f"ex-{i % 4}",
        "agent": {"instance_id": f"agent-{i % 3}"},
        "intent": ("fix", "review")[i % 2],
        "mode": ("project", "sentinel")[i % 5 == 0],
        "project": f"p{i % 3}",
        "affected_dev_projects": [f"p{(i + 1) % 3}"] if i % 4 == 0 else [],
    }
    if i % 6 == 0:
        payload["case_id"] = f"case-{i % 12}"
    if i % 2:
        payload["event_type"] = ("deploy", "alert")[i % 3 == 0]
        return NewEntry("agent.event", f"agent:{i % 3}", payload=payload, message="event")
    kind = ("agent.entry", "deploy", "case.opened")[i % 3]
    return NewEntry(kind, f"agent:{i % 3}", payload=payload, message="entry")


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        (Query(execution_id="ex-1"), lambda p, k: p["execution_id"] == "ex-1"),
        (Query(agent_instance_id="agent-2"), lambda p, k: p["agent"]["instance_id"] == "agent-2"),
        (Query(case_id="case-6"), lambda p, k: p.get("case_id") == "case-6"),
        (Query(intent="review", mode="sentinel"),
         lambda p, k: p["intent"] == "review" and p["mode"] == "sentinel"),
        (Query(project="p1"), lambda p, k: "p1" in (p["project"], *p["affected_dev_projects"])),
        (Query(event_types=("deploy",)),
         lambda p, k: k == "deploy" or (k == "agent.event" and p.get("event_type") == "deploy")),
        (Query(execution_id="ex-0", project="p2"),
         lambda p, k: p["execution_id"] == "ex-0"
         and "p2" in (p["project"], *p["affected_dev_projects"])),
        (Query(case_id="nobody"), lambda p, k: False),
    ],
    ids=["execution", "agent", "case", "intent-mode", "project", "event-type", "two", "none"],
)  # fmt: skip
def test_agents_filters_agree_with_a_plain_scan(
    backend: Backend, query: Query, keep: Callable[[dict[str, Any], str], bool]
) -> None:
    with backend.open() as store:
        entries = store.append([agent_entry(i) for i in range(60)])
        expected = [e.seq for e in entries if keep(dict(e.payload), e.kind)]
        assert seqs(store.query(query)) == expected
        page = replace(
            query, limit=3, newest_first=True, before_seq=expected[-1] if expected else None
        )
        assert seqs(store.query(page)) == expected[:-1][::-1][:3]


def test_open_work_is_pending_entries_no_done_entry_refers_to(backend: Backend) -> None:
    with backend.open() as store:
        pending = store.append(
            [NewEntry(WORK_PENDING, "scribe", f"n{i}.md", message="plan") for i in range(4)]
        )
        store.append(
            [
                NewEntry(WORK_DONE, "scribe", "n0.md", ref=pending[0].seq),
                NewEntry(FILE_WRITTEN, "rule:x", "n1.md", ref=pending[1].seq),  # not done yet
                NewEntry(WORK_DONE, "scribe", "n3.md", ref=pending[3].seq),
            ]
        )
        assert seqs(store.open_work()) == [pending[1].seq, pending[2].seq]
        assert store.open_work(pending_kind="case.opened", done_kind="case.closed") == []


def test_last_hashes_follow_each_paths_newest_outcome(backend: Backend) -> None:
    h = [f"{i:064x}" for i in range(6)]
    with backend.open() as store:
        store.append(
            [
                NewEntry(FILE_WRITTEN, "rule:x", "a.md", h[0], h[1]),
                NewEntry(FILE_WRITTEN, "user", "b.md", None, h[2]),
                NewEntry(FILE_WRITTEN, "rule:x", "a.md", h[1], h[3]),
                NewEntry(RULE_MATCHED, "rule:x", "a.md"),  # says nothing about the content
                NewEntry(FILE_SKIPPED, "scribe", "a.md", h[3]),  # nor does a skip
                NewEntry(FILE_DELETED, "user", "b.md", h[2]),
                NewEntry(FILE_WRITTEN, "user", "c.md", None, h[4]),
                NewEntry(FILE_DELETED, "user", "c.md", h[4]),
                NewEntry(FILE_WRITTEN, "user", "c.md", None, h[5]),  # back again
            ]
        )
        assert store.last_hashes() == {"a.md": h[3], "c.md": h[5]}


def test_threads_appending_through_the_writer_make_one_linear_chain(backend: Backend) -> None:
    store = backend.open()
    writer = JournalWriter(store)
    results: dict[int, list[list[Entry]]] = {t: [] for t in range(8)}

    def work(t: int) -> None:
        for i in range(40):
            batch = [
                NewEntry("test.step", f"thread:{t}", message=f"{t}/{i}/{j}")
                for j in range(i % 3 + 1)
            ]
            results[t].append(writer.append(batch))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    everything = sorted(e.seq for calls in results.values() for call in calls for e in call)
    assert everything == list(range(1, store.count() + 1))
    assert store.count() == 8 * sum(i % 3 + 1 for i in range(40))
    for t, calls in results.items():
        for i, call in enumerate(calls):  # each caller gets its own entries, in order, contiguous
            assert [e.message for e in call] == [f"{t}/{i}/{j}" for j in range(i % 3 + 1)]
            assert seqs(call) == list(range(call[0].seq, call[0].seq + len(call)))
    assert store.verify().ok
    store.close()


def test_callers_arriving_during_a_commit_share_the_next_one(backend: Backend) -> None:
    store = backend.open()
    writer = JournalWriter(store)
    blocker = backend.holding_the_write_lock()
    release = blocker.__enter__()  # the first commit waits on this lock
    done: dict[str, list[Entry]] = {}

    def call(name: str) -> None:
        done[name] = writer.append([NewEntry("test.step", name)])

    first = threading.Thread(target=call, args=("first",))
    first.start()
    wait_for(lambda: writer.committing == 1)  # taken by the writer thread, stuck on the lock
    others = [threading.Thread(target=call, args=(f"t{i}",)) for i in range(4)]
    for thread in others:
        thread.start()
    wait_for(lambda: writer.backlog == 4)
    release()
    for thread in [first, *others]:
        thread.join()
    writer.close()
    blocker.__exit__(None, None, None)
    later = [done[f"t{i}"][0] for i in range(4)]
    assert done["first"][0].seq == 1
    assert sorted(e.seq for e in later) == [2, 3, 4, 5]
    assert len({e.ts for e in later}) == 1  # one transaction, one time stamp
    store.close()


def test_append_now_writes_nothing_while_another_process_holds_the_journal(
    backend: Backend,
) -> None:
    # A caller that must not wait (an event loop) is told at once, and queues instead.
    with backend.open(busy_timeout=30) as store, JournalWriter(store) as writer:
        with backend.holding_the_write_lock() as release:
            assert store.append_now([NewEntry("test.step", "user")]) is None
            assert writer.append_now([NewEntry("test.step", "user")]) is None
            release()
        assert store.count() == 0
        assert writer.healthy


def test_append_now_commits_at_once_and_later_appends_still_wait_their_turn(
    tmp_path: Path,
) -> None:
    with SqliteJournal(tmp_path / "journal.db", busy_timeout=30) as store:
        assert store.append_now([]) == []
        (first,) = store.append_now([NewEntry("test.step", "user", message="now")]) or []
        assert (first.seq, first.message) == (1, "now")
        raw = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
        raw.execute("BEGIN IMMEDIATE")
        assert store.append_now([NewEntry("test.step", "user")]) is None
        # The blocking append waits out the other writer (its busy timeout is back),
        # where a timeout left at zero would fail at once.
        threading.Timer(0.2, raw.execute, args=("ROLLBACK",)).start()
        (second,) = store.append([NewEntry("test.step", "user", message="waited")])
        raw.close()
        assert [e.message for e in store.query(Query())] == ["now", "waited"]
        assert second.prev_hash == first.hash
        assert store.verify().ok


def test_nobody_commits_ahead_of_what_the_writer_has_queued(backend: Backend) -> None:
    with backend.open() as store, JournalWriter(store) as writer:
        with backend.holding_the_write_lock() as release:
            writer.submit([NewEntry("test.step", "user", message="queued first")])
            wait_for(lambda: writer.committing == 1)  # the writer thread is stuck on the lock
            assert writer.append_now([NewEntry("test.step", "user")]) is None
            writer.submit([NewEntry("test.step", "user", message="queued second")])
            assert writer.append_now([NewEntry("test.step", "user")]) is None
            release()
        (last,) = writer.append([NewEntry("test.step", "user", message="then this")])
        writer.flush()
        assert [e.message for e in store.query(Query())] == [
            "queued first",
            "queued second",
            "then this",
        ]
        assert last.seq == 3


def test_every_caller_of_a_failed_commit_hears_why(backend: Backend) -> None:
    with backend.open(busy_timeout=0.5) as store, JournalWriter(store) as writer:
        heard: dict[str, str] = {}

        def call(name: str) -> None:
            try:
                writer.append([NewEntry("test.step", name)])
                heard[name] = "committed"
            except JournalUnavailable as exc:
                heard[name] = str(exc)

        with backend.holding_the_write_lock():  # another process, for too long
            callers = [threading.Thread(target=call, args=(f"t{i}",)) for i in range(6)]
            for thread in callers:
                thread.start()
            for thread in callers:
                thread.join(timeout=10)
        assert not any(thread.is_alive() for thread in callers)  # nobody waits forever
        assert sorted(heard) == [f"t{i}" for i in range(6)]
        assert all("locked" in problem for problem in heard.values()), heard
        assert store.count() == 0


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while not condition():
            if deadline.wait(0.005):
                raise AssertionError("condition not met in time")
    finally:
        timer.cancel()


@pytest.fixture
def read_only(backend: Backend) -> Iterator[Backend]:
    """A journal whose database refuses writes: for SQLite a file that cannot be
    written (chattr when running as root), for PostgreSQL a read-only database."""
    fill_store(backend, 2)
    if backend.name == "postgres":
        raw = backend.raw()
        ((name,),) = raw.rows("SELECT current_database()")
        raw.rows(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        raw.close()
        yield backend
        return
    assert backend.db is not None
    path = backend.db
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield backend
        path.chmod(0o644)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr: cannot make a file read-only")
    try:
        yield backend
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_journal_makes_the_writer_unavailable_not_silent(read_only: Backend) -> None:
    with read_only.open() as store, JournalWriter(store) as writer:
        assert store.count() == 2  # reading still works
        with pytest.raises(JournalUnavailable, match=read_only.read_only_words):
            writer.append([NewEntry("test.step", "user")])
        assert not writer.healthy
        assert read_only.read_only_words in writer.problem


def test_the_writer_recovers_once_appends_succeed_again(backend: Backend) -> None:
    with backend.open(busy_timeout=0.05) as store, JournalWriter(store) as writer:
        with backend.holding_the_write_lock() as release:  # another process, for too long
            with pytest.raises(JournalUnavailable, match="locked"):
                writer.append([NewEntry("test.step", "user", message="lost")])
            assert not writer.healthy
            release()
        (entry,) = writer.append([NewEntry("test.step", "user", message="kept")])
        assert writer.healthy
        assert writer.problem == ""
        assert (entry.seq, entry.message) == (1, "kept")
        writer.close()
        with pytest.raises(JournalUnavailable, match="closed"):
            writer.append([NewEntry("test.step", "user")])


def test_submitted_entries_are_committed_by_the_next_flush(backend: Backend) -> None:
    with backend.open() as store:
        writer = JournalWriter(store)
        for i in range(20):
            writer.submit([NewEntry("test.step", "user", message=f"step {i}")])
        writer.flush()
        assert [e.message for e in store.query(Query())] == [f"step {i}" for i in range(20)]
        writer.close()
        writer.submit([NewEntry("test.step", "user", message="too late")])  # logged, not raised
        writer.flush()
        assert store.count() == 20


def test_time_never_runs_backwards_along_the_chain(backend: Backend) -> None:
    clock = Clock()
    with backend.open(clock=clock) as store:
        (first,) = store.append([written(1)])
        clock.now = BASE - timedelta(hours=1)  # the system clock was set back
        (second,) = store.append([written(2)])
        clock.now = BASE + timedelta(minutes=1)
        (third,) = store.append([written(3)])
        assert second.ts == first.ts < third.ts
        assert seqs(store.query(Query(since=BASE))) == [1, 2, 3]
        assert seqs(store.query(Query(until=BASE + timedelta(seconds=1)))) == [1, 2]


def test_the_writer_indexes_text_when_idle(tmp_path: Path) -> None:
    store = SqliteJournal(tmp_path / "journal.db")
    writer = JournalWriter(store)
    writer.append([NewEntry("note", "user", message="beta")])
    # Idle after the commit, the writer indexes on its own: a look at the index
    # from another connection (not a query, which would index first) finds it.
    other = sqlite3.connect(tmp_path / "journal.db")
    match = "SELECT count(*) FROM entries_text WHERE entries_text MATCH 'beta'"
    wait_for(lambda: other.execute(match).fetchone()[0] == 1)
    other.close()
    writer.append([NewEntry("note", "user", message="gamma")])
    writer.close()  # leaves the index complete
    assert store.index_text() == 0
    store.close()

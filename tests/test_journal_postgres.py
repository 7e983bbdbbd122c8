"""What only the PostgreSQL journal has: several processes on one chain, its schema
and migrations, the copy from SQLite, a connection lost and found again, and the
errors a wrong ``journal_url`` gives through the real ``scribe`` command.

The tests every store passes are in ``test_journal_store.py``.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from cli_helpers import make_repo, scribe
from pg_helpers import PostgresServer, free_port, shared_postgres
from scribe.journal import Entry, JournalError, NewEntry, Query, SqliteJournal
from scribe.journal.entry import FILE_WRITTEN, WORK_DONE
from scribe.journal.postgres import PostgresJournal
from scribe.journal.postgres_schema import SCHEMA_VERSION
from scribe.journal.sqlite import JOURNAL_DB

BASE = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
#: One process of the concurrency test: BATCHES appends of 1-3 entries, each entry
#: naming its process, batch and place, then "done".
APPENDER = """
import sys
from scribe.journal import NewEntry
from scribe.journal.postgres import PostgresJournal

url, name, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
with PostgresJournal(url) as store:
    for i in range(batches):
        store.append([NewEntry("test.step", name, message=f"{name}/{i}/{j}")
                      for j in range(i % 3 + 1)])
print("done")
"""
BATCHES = 150


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> PostgresServer:
    return shared_postgres(request)


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    return postgres.new_database()


def sql(url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True, options="-c search_path=scribe") as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def test_two_processes_appending_at_once_keep_one_linear_chain(url: str) -> None:
    """Real processes, each with its own connections, appending batches of 1-3 entries."""
    # The database is new: both processes also race to build the schema, and the
    # advisory lock lets only one of them do it.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, url, name, str(BATCHES)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("p1", "p2")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode, out.strip()) == (0, "done"), err
    with PostgresJournal(url) as store:
        entries = store.query(Query())
        report = store.verify()
    per_process = 2 * sum(i % 3 + 1 for i in range(BATCHES))
    assert [e.seq for e in entries] == list(range(1, per_process + 1))
    assert report.ok
    assert report.checked == per_process
    for name in ("p1", "p2"):  # each batch is whole, in order, and the process's own order holds
        mine = [e for e in entries if e.actor == name]
        assert [e.message for e in mine] == [
            f"{name}/{i}/{j}" for i in range(BATCHES) for j in range(i % 3 + 1)
        ]
        start = 0
        for i in range(BATCHES):
            batch = mine[start : start + i % 3 + 1]
            assert [e.seq for e in batch] == list(range(batch[0].seq, batch[0].seq + len(batch)))
            assert len({e.ts for e in batch}) == 1
            start += len(batch)


def test_migrate_creates_the_schema_once_and_again_changes_nothing(
    url: str, tmp_path: Path
) -> None:
    first = scribe("journal", "migrate", "--journal", url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith(f"journal schema {SCHEMA_VERSION}, upgraded from 0")
    tables = {
        name for (name,) in sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'scribe'")
    }
    assert {"entries", "entry_projects", "head", "version"} <= tables
    with PostgresJournal(url) as store:
        assert store.migrated == SCHEMA_VERSION  # nothing left to do when opened
        store.append([NewEntry("note", "user", message="kept")])
    again = scribe("journal", "migrate", "--journal", url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith(f"journal schema {SCHEMA_VERSION}, up to date")
    assert "postgres@127.0.0.1" in again.stdout
    with PostgresJournal(url) as store:
        assert [e.message for e in store.query(Query())] == ["kept"]
    assert sql(url, "SELECT n FROM version") == [(SCHEMA_VERSION,)]


def test_a_journal_from_a_newer_scribe_is_refused(url: str) -> None:
    PostgresJournal(url).close()
    sql(url, f"UPDATE version SET n = {SCHEMA_VERSION + 1}")
    with pytest.raises(JournalError, match=rf"newer Scribe \(journal schema {SCHEMA_VERSION + 1}"):
        PostgresJournal(url)


def test_sql_cannot_truncate_the_journal_or_move_its_head_back(url: str) -> None:
    with PostgresJournal(url) as store:
        store.append([NewEntry("note", "user", message=f"n{i}") for i in range(3)])
    for statement in ("TRUNCATE entries", "TRUNCATE entry_projects", "UPDATE head SET seq = 1"):
        with pytest.raises(psycopg.Error, match="append-only"):
            sql(url, statement)
    with PostgresJournal(url) as store:
        assert store.count() == 3
        assert store.verify().ok


def sqlite_journal(root: Path) -> list[Entry]:
    """A repository's SQLite journal of 40 entries over 40 minutes, some with projects."""
    clock = [BASE]
    with SqliteJournal(root / JOURNAL_DB, clock=lambda: clock[0]) as store:
        entries: list[Entry] = []
        for i in range(40):
            clock[0] = BASE + timedelta(minutes=i)
            payload = {"project": "alpha", "n": i, "ünï": "çødé"} if i % 5 == 0 else {"n": i}
            entries += store.append(
                [NewEntry(FILE_WRITTEN, "rule:x", f"notes/{i % 4}.md", None, f"{i:064x}",
                          message=f"écrit {i}", payload=payload)]
            )  # fmt: skip
    return entries


def test_copy_moves_a_sqlite_journal_entry_for_entry_and_verifies_it(
    url: str, tmp_path: Path
) -> None:
    entries = sqlite_journal(tmp_path)
    done = scribe("journal", "copy", "--to", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"copied 40 entries into {url} and verified them, head 40" in done.stdout
    queries = [
        Query(project="alpha"),
        Query(text="ecrit 3"),
        Query(text="çødé"),
        Query(path_glob="notes/[12].md", limit=5, newest_first=True),
        Query(since=BASE + timedelta(minutes=10), until=BASE + timedelta(minutes=20)),
    ]
    with PostgresJournal(url) as store, SqliteJournal(tmp_path / JOURNAL_DB) as source:
        assert store.query(Query()) == entries  # same seq, time, fields and hashes
        for query in queries:  # and the same answers
            assert store.query(query) == source.query(query), query
            assert store.query(query)
        store.append([NewEntry(WORK_DONE, "scribe", message="after the move")])
    verified = scribe("verify", "--journal", url, cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("ok: 41 entries")
    refused = scribe("journal", "copy", "--to", url, cwd=tmp_path)
    assert refused.returncode == 1
    assert "nothing was copied" in refused.stderr
    assert "already holds a journal" in refused.stderr
    with PostgresJournal(url) as store:
        assert store.count() == 41


def test_copy_refuses_a_broken_sqlite_journal_and_copies_nothing(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    sqlite_journal(tmp_path)
    conn = sqlite3.connect(tmp_path / JOURNAL_DB, isolation_level=None)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("DROP TRIGGER entries_no_delete")
    conn.execute("UPDATE entries SET message = 'nothing happened' WHERE seq = 17")
    conn.close()
    target = postgres.new_database()
    refused = scribe("journal", "copy", "--to", target, cwd=tmp_path)
    assert refused.returncode == 1
    assert "entry 17 was changed" in refused.stderr
    assert "nothing was copied" in refused.stderr
    with PostgresJournal(target) as store:
        assert store.count() == 0
        with SqliteJournal(tmp_path / JOURNAL_DB) as source:
            with pytest.raises(JournalError, match="entry 17 was changed: its hash"):
                store.copy_from(source)
            assert store.count() == 0
            conn = sqlite3.connect(tmp_path / JOURNAL_DB, isolation_level=None)
            conn.execute("DELETE FROM entries WHERE seq >= 17")
            conn.close()
            seen: list[tuple[int, int]] = []
            assert store.copy_from(source, lambda n, total: seen.append((n, total))) == 16
        assert seen[-1] == (16, 16)
        assert store.verify().ok


def test_scribe_run_journals_into_postgres_and_mirrors_into_the_repository(
    url: str, tmp_path: Path
) -> None:
    repo = make_repo(
        tmp_path / "repo",
        'rules:\n  - id: tag\n    paths: ["*.md"]\n    do: [{set: {field: tagged, value: done}}]\n',
    )
    (repo / "a.md").write_text("---\ntitle: A\n---\nbody\n")
    run = scribe("run", cwd=repo, env={"SCRIBE_JOURNAL_URL": url})
    assert run.returncode == 0, run.stderr
    assert "tagged: done" in (repo / "a.md").read_text()
    assert not (repo / JOURNAL_DB).exists()
    with PostgresJournal(url) as store:
        (write,) = store.query(Query(kinds=[FILE_WRITTEN]))
        assert write.path == "a.md"
        assert store.verify().ok
    mirrors = list((repo / ".scribe" / "log").rglob("*.jsonl"))
    assert mirrors
    assert write.hash in "".join(p.read_text() for p in mirrors)
    log = scribe("log", "--kind", FILE_WRITTEN, cwd=repo, env={"SCRIBE_JOURNAL_URL": url})
    assert log.returncode == 0
    assert "a.md" in log.stdout


def test_a_connection_the_server_dropped_is_opened_again(url: str) -> None:
    with PostgresJournal(url) as store:
        store.append([NewEntry("note", "user", message="before")])
        sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND pid <> pg_backend_pid()")  # fmt: skip
        (after,) = store.append([NewEntry("note", "user", message="after")])
        assert after.seq == 2
        assert [e.message for e in store.query(Query())] == ["before", "after"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path,
        'rules:\n  - id: tag\n    paths: ["*.md"]\n    do: [{set: {field: t, value: x}}]\n',
    )


@pytest.mark.parametrize(
    ("command", "journal", "words"),
    [
        ("verify --journal", "mysql://db/journal",
         "is not a PostgreSQL URL: give postgresql://USER@HOST:PORT/DATABASE"),
        ("log", "postgresql://127.0.0.1:notaport/x", "invalid integer value"),
        ("run", "postgresql://postgres@127.0.0.1:{closed}/x",
         "check journal_url (SCRIBE_JOURNAL_URL) and that the server is running"),
        ("journal migrate", "postgresql://postgres@127.0.0.1:{port}/missing",
         'database "missing" does not exist; create the database first'),
    ],
    ids=["scheme", "port", "server-down", "no-database"],
)  # fmt: skip
def test_a_bad_journal_url_is_a_clear_error_not_a_traceback(
    postgres: PostgresServer, repo: Path, command: str, journal: str, words: str
) -> None:
    """Through the flag or the environment, for the journal's commands and for a run."""
    given = journal.format(closed=free_port(), port=postgres.port)
    args = command.split()
    if args[-1] == "--journal":
        done = scribe(*args, given, cwd=repo)
    else:
        done = scribe(*args, cwd=repo, env={"SCRIBE_JOURNAL_URL": given})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert words in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr

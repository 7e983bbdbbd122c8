"""The PostgreSQL journal: one history that many Scribe processes, on many machines, share.

Entries, hashes and query semantics are the SQLite store's; what differs is how
PostgreSQL is made to keep them:

* **One chain, many writers.** The ``head`` row holds the chain's end (seq, ts,
  hash). An append locks it (``SELECT ... FOR UPDATE``) before reading it, so
  appends from every process and thread queue on that row and each links to the
  one committed before it. Updating it in the same transaction also keeps a record
  of the end that ``verify`` compares with, as ``journal.head`` does for SQLite.
* **Durable.** Sessions run with ``synchronous_commit = on``: ``append`` returns
  only once the server has flushed the commit to its WAL.
* **Exact text.** The payload is stored as the canonical JSON its hash was computed
  over, not as ``jsonb`` (which would respell numbers and refuse ``\\u0000``).
  Text columns use the ``C`` collation, so order and prefixes go by code point, as
  in SQLite, whatever the database's locale.
* **Rows stream.** A glob query's exact match runs here, on rows read through a
  server-side cursor in seq order until the limit is reached; ``verify`` reads the
  whole chain the same way, in one snapshot.

Everything lives in the schema ``scribe`` (see ``postgres_schema.py``); queries are
built by ``postgres_search.py``. A connection the server dropped is opened again on
the next call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import psycopg

from scribe.journal.entry import (
    FILE_DELETED,
    GENESIS,
    WORK_DONE,
    WORK_PENDING,
    Entry,
    Journal,
    JournalError,
    NewEntry,
    Query,
    VerifyReport,
    canonical,
    stamp,
    utc_now,
)
from scribe.journal.postgres_connection import (
    check_url,
    connect,
    display_url,
    failures,
)
from scribe.journal.postgres_schema import (
    COLUMNS,
    MIGRATIONS,
    PAYLOAD_COLUMNS,
    SCHEMA_VERSION,
    table_row,
)
from scribe.journal.postgres_search import compile_query
from scribe.journal.schema import projects_named
from scribe.journal.search import glob_match

#: The advisory lock key migrations hold ("scribe" in ASCII).
_MIGRATION_LOCK = 0x736372696265
_COPY_ENTRIES = f"COPY entries ({COLUMNS}, words, {', '.join(PAYLOAD_COLUMNS)}) FROM STDIN"
_COPY_PROJECTS = "COPY entry_projects (project, seq) FROM STDIN"
_CHUNK = 10_000
_T = TypeVar("_T")


class PostgresJournal:
    """The journal in a PostgreSQL database (``postgresql://USER@HOST:PORT/DB``).

    Thread-safe, and safe for any number of processes. ``busy_timeout`` is how long
    an append waits for other writers before failing; ``clock`` gives the time
    stamped on appended entries. Opening applies missing migrations; ``migrated`` is
    the schema version found (``SCHEMA_VERSION`` when there was nothing to do).
    """

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        check_url(url)
        self.url = url
        self._busy_timeout = busy_timeout
        self._connect_timeout = connect_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._db = self._connect()
        try:
            self.migrated = self._migrate()
            self._reader = self._connect()
        except BaseException:
            self._db.close()
            raise

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(
            self.url, busy_timeout=self._busy_timeout, connect_timeout=self._connect_timeout
        )

    def _migrate(self) -> int:
        db = self._db
        try:
            if self._version(db) == SCHEMA_VERSION:
                return SCHEMA_VERSION
            # A session lock, taken before the transaction: a transaction started after
            # another process's migration committed sees its tables (one that began
            # earlier may still look them up in stale catalog caches).
            db.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
            try:
                with db.transaction():
                    version = self._version(db)  # another process may have just migrated
                    for statements in MIGRATIONS[version:]:
                        for statement in statements:
                            db.execute(statement)
                    db.execute("UPDATE version SET n = %s", (SCHEMA_VERSION,))
            finally:
                if not db.broken:
                    db.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
            return version
        except psycopg.Error as exc:
            raise JournalError(
                f"cannot set up the journal's schema in {display_url(self.url)}: {exc}; the "
                "user needs CREATE on the database (and pg_trgm must be installable)"
            ) from None

    def _version(self, db: psycopg.Connection[Any]) -> int:
        found = db.execute("SELECT to_regclass('scribe.version') IS NOT NULL").fetchone()
        row = db.execute("SELECT n FROM version").fetchone() if found and found[0] else None
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{display_url(self.url)} was written by a newer Scribe (journal schema "
                f"{version}; this version knows up to {SCHEMA_VERSION}); upgrade Scribe to use it"
            )
        return version

    # -- writing --------------------------------------------------------------

    def _writer(self) -> psycopg.Connection[Any]:
        if self._db.broken or self._db.closed:  # the server restarted: start a new session
            self._db = self._connect()
        return self._db

    def append(self, entries: Sequence[NewEntry]) -> list[Entry]:
        """Commit ``entries`` in one transaction and return them sealed.

        The head row is locked first, so appends from several processes form one chain.
        """
        if not entries:
            return []
        for new in entries:
            for value in (new.kind, new.actor, new.path, new.diff, new.message):
                if value is not None and "\0" in value:
                    raise JournalError(
                        f"cannot journal this {new.kind} entry: PostgreSQL text cannot hold NUL"
                    )
        with self._lock, self._errors("append to"):
            for attempt in range(2):
                db = self._writer()
                locked = False
                try:
                    with db.transaction():
                        seq, last_ts, prev = self._locked_head(db)
                        locked = True
                        ts = max(stamp(self._clock()), last_ts)
                        sealed: list[Entry] = []
                        for new in entries:
                            seq += 1
                            sealed.append(Entry.seal(new, seq=seq, ts=ts, prev_hash=prev))
                            prev = sealed[-1].hash
                        self._insert(db, sealed, [new.payload_json for new in entries])
                    return sealed
                except psycopg.OperationalError:
                    # A connection lost before the head was locked (the server restarted
                    # while it was idle) committed nothing: once more, on a new one.
                    if locked or attempt or not db.broken:
                        raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    def append_now(self, entries: Sequence[NewEntry]) -> list[Entry] | None:
        """None: a commit here waits on the network, so it stays on the writer's thread."""
        return None

    @staticmethod
    def _locked_head(db: psycopg.Connection[Any]) -> tuple[int, str, str]:
        row = db.execute("SELECT seq, ts, hash FROM head FOR UPDATE").fetchone()
        assert row is not None  # migration 1 inserts it and a trigger refuses its deletion
        return int(row[0]), str(row[1]), str(row[2])

    @staticmethod
    def _insert(db: psycopg.Connection[Any], sealed: list[Entry], payloads: list[str]) -> None:
        """Insert ``sealed`` (whose payloads' canonical texts are ``payloads``), file them
        under their projects, and move the head to the last."""
        projects = [(name, e.seq) for e in sealed for name in projects_named(e.payload)]
        with db.cursor() as cur:
            with cur.copy(_COPY_ENTRIES) as copy:
                for entry, payload in zip(sealed, payloads, strict=True):
                    copy.write_row(table_row(entry, payload))
            if projects:
                with cur.copy(_COPY_PROJECTS) as copy:
                    for project in projects:
                        copy.write_row(project)
            last = sealed[-1]
            cur.execute("UPDATE head SET seq = %s, ts = %s, hash = %s", (last.seq, last.ts,
                                                                           last.hash))  # fmt: skip

    def _errors(self, doing: str) -> AbstractContextManager[None]:
        return failures(doing, self.url, self._busy_timeout)

    def copy_from(self, source: Journal, progress: Callable[[int, int], None] | None = None) -> int:
        """Copy every entry of ``source`` here unchanged (seq, time and hash), checking
        each link and hash on the way; all or nothing, into an empty journal only.
        Returns how many entries were copied."""
        total = source.count()
        copied = 0
        with self._lock, self._errors("copy into"):
            db = self._writer()
            with db.transaction():
                seq, _, prev = self._locked_head(db)
                ((holds,),) = db.execute("SELECT EXISTS (SELECT 1 FROM entries)").fetchall()
                if seq or holds:
                    raise JournalError(
                        f"{display_url(self.url)} already holds a journal (up to entry {seq}): "
                        "copy only into an empty one"
                    )
                for page in _pages(source):
                    for entry in page:
                        _check_link(entry, seq + 1, prev)
                        seq, prev = entry.seq, entry.hash
                    self._insert(db, page, [canonical(entry.payload) for entry in page])
                    copied += len(page)
                    if progress is not None:
                        progress(copied, total)
        return copied

    # -- reading --------------------------------------------------------------

    def _read(self) -> psycopg.Connection[Any]:
        if self._reader.broken or self._reader.closed:
            self._reader = self._connect()
        return self._reader

    def _reading(self, read: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        with self._read_lock, self._errors("read"):
            try:
                return read(self._read())
            except psycopg.OperationalError:
                if not self._reader.broken:
                    raise
                return read(self._read())  # a read is safe to repeat, on a new connection

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._reading(lambda db: db.execute(sql, params).fetchall())

    def get(self, seq: int) -> Entry | None:
        rows = self._all(f"SELECT {COLUMNS} FROM entries WHERE seq = %s", (seq,))
        return Entry.from_row(rows[0]) if rows else None

    def head(self) -> Entry | None:
        rows = self._all(f"SELECT {COLUMNS} FROM entries ORDER BY seq DESC LIMIT 1")
        return Entry.from_row(rows[0]) if rows else None

    def count(self) -> int:
        return int(self._all("SELECT count(*) FROM entries")[0][0])

    def index_text(self) -> int:
        """Nothing to do: an entry's words are written with it."""
        return 0

    def query(self, q: Query) -> list[Entry]:
        compiled = compile_query(q, COLUMNS)
        if compiled is None:
            return []
        sql, params, check = compiled
        if check is None:
            return [Entry.from_row(row) for row in self._all(sql, params)]

        def stream(db: psycopg.Connection[Any]) -> list[Entry]:
            found: list[Entry] = []
            with db.transaction(), db.cursor(name="scribe_query") as cur:
                cur.itersize = 500
                cur.execute(sql, params)
                for row in cur:
                    if glob_match(check, row[4]):
                        found.append(Entry.from_row(row))
                        if len(found) == q.limit:
                            break
            return found

        return self._reading(stream)

    def open_work(
        self, pending_kind: str = WORK_PENDING, done_kind: str = WORK_DONE
    ) -> list[Entry]:
        """``pending_kind`` entries that no later ``done_kind`` entry refers to, oldest first."""
        rows = self._all(
            f"SELECT {COLUMNS} FROM entries AS p WHERE kind = %s AND NOT EXISTS ("
            "SELECT 1 FROM entries AS d WHERE d.ref = p.seq AND d.kind = %s AND d.seq > p.seq"
            ") ORDER BY seq",
            (pending_kind, done_kind),
        )
        return [Entry.from_row(row) for row in rows]

    def last_hashes(self) -> dict[str, str]:
        """Per path, the ``after_hash`` of its newest entry that says what the file holds
        (``file.deleted`` entries remove the path)."""
        rows = self._all(
            "SELECT DISTINCT ON (path) path, after_hash FROM entries WHERE path IS NOT NULL "
            f"AND (after_hash IS NOT NULL OR kind = '{FILE_DELETED}') ORDER BY path, seq DESC"
        )
        return {path: after for path, after in rows if after is not None}

    # -- verifying ------------------------------------------------------------

    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        """Recompute every hash and link in seq order, in one snapshot, and compare the
        end with the head row. Detects entries edited, removed, inserted or reordered
        anywhere, and entries cut off the end; appends go on meanwhile."""
        with self._errors("verify"), self._connect() as db, db.transaction():
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            head = self._recorded_head(db)
            (total,) = db.execute("SELECT count(*) FROM entries").fetchall()[0]
            with db.cursor(name="scribe_verify") as cur:
                cur.itersize = _CHUNK
                cur.execute(f"SELECT {COLUMNS} FROM entries ORDER BY seq")
                return _check_chain(cur, head, int(total), progress)

    @staticmethod
    def _recorded_head(db: psycopg.Connection[Any]) -> tuple[int, str]:
        row = db.execute("SELECT seq, hash FROM head").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._reader.close()
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _pages(source: Journal) -> Iterator[list[Entry]]:
    after = 0
    while page := source.query(Query(after_seq=after, limit=_CHUNK)):
        yield page
        after = page[-1].seq


def _link_problem(seq: int, prev_hash: str, expected: int, prev: str) -> tuple[int, str] | None:
    """Which entry breaks the chain, and how, if ``seq`` does not come next after
    ``prev``: the seq and link checks that ``verify`` and ``copy_from`` share."""
    if seq != expected:
        return expected, f"entry {expected} {'is missing' if seq > expected else 'is out of order'}"
    if prev_hash != prev:
        return seq, (f"entry {seq} does not follow entry {seq - 1}: an entry before it was "
                     "changed, removed or moved")  # fmt: skip
    return None


def _check_link(entry: Entry, expected: int, prev: str) -> None:
    found = _link_problem(entry.seq, entry.prev_hash, expected, prev)
    if found is None and entry.recompute() != entry.hash:
        found = entry.seq, f"entry {entry.seq} was changed: its hash does not match"
    if found is not None:
        raise JournalError(f"the source journal is broken: {found[1]}; nothing was copied")


def _check_chain(
    rows: Any, head: tuple[int, str], total: int, progress: Callable[[int, int], None] | None
) -> VerifyReport:
    checked, expected, prev = 0, 1, GENESIS
    head_seq, head_hash = head
    seen_head: str | None = None

    def broken(seq: int, problem: str) -> VerifyReport:
        return VerifyReport(False, checked, seq, problem, expected - 1 or None, prev)

    for row in rows:
        seq, prev_hash, hash_ = row[0], row[11], row[12]
        if found := _link_problem(seq, prev_hash, expected, prev):
            return broken(*found)
        try:
            intact = Entry.from_row(row).recompute() == hash_
        except (TypeError, ValueError):
            intact = False
        if not intact:
            return broken(seq, f"entry {seq} was changed: its hash does not match")
        if seq == head_seq:
            seen_head = hash_
        checked += 1
        expected += 1
        prev = hash_
        if progress is not None and checked % _CHUNK == 0:
            progress(checked, total)
    if progress is not None:
        progress(checked, total)
    if head_seq > checked:
        return broken(checked + 1, f"the journal ends at entry {checked} but scribe.head "
                      f"records entry {head_seq}: entries were removed from the end")  # fmt: skip
    if head_seq < checked:
        return broken(head_seq + 1, f"entry {head_seq + 1} was not appended by Scribe: "
                      f"scribe.head records entry {head_seq} as the last")  # fmt: skip
    if head_seq and seen_head != head_hash:
        return broken(head_seq, f"entry {head_seq} is not the one scribe.head records: "
                      "history was rewritten")  # fmt: skip
    return VerifyReport(True, checked, None, "", checked or None, prev if checked else None)

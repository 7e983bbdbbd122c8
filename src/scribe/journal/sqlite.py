"""The SQLite journal: one database file, WAL, every commit durable before ``append`` returns.

Durability is what "journal first" means: ``synchronous=FULL`` makes a committed
entry survive power loss, so the engine may report a change done once it is here.

Full-text search uses an FTS5 table with *external content* (``content='entries'``):
the text lives once, in ``entries``, and the index holds only tokens. External
content tables drift when their content table changes behind their back, but
entries never change (triggers refuse it), so the index stays exact. It is
brought up to date in batches (``index_text``) rather than in each append's
transaction: updating it there cost a quarter of every one-entry commit. The
agents' payload keys (``entry_facets``: execution, agent instance, case, intent,
mode, event type) are filed in the same batches, for the same reason. The writer
indexes whenever it is idle, and a query by text or by one of those keys indexes
what is pending first, so it always sees every entry. Both can be rebuilt from
the entries, so their batches are committed without a sync of their own.

``ts`` never decreases along the chain (an append takes the later of the clock and
the head's ``ts``), so a time range is a range of ``seq``; ``search.py`` turns the
rest of a query into SQL. The schema and its migrations are in ``schema.py``; an
append also files each entry under the projects it names (``entry_projects``), in
the same transaction. Reads use a second connection, so they never wait for an
append's sync.

Outside the database, ``journal.head`` (see ``head.py``) records the chain's end
after each commit, which lets ``verify`` notice entries cut off the end.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from scribe.journal.entry import (
    FILE_DELETED,
    GENESIS,
    WORK_DONE,
    WORK_PENDING,
    Entry,
    JournalError,
    NewEntry,
    Query,
    VerifyReport,
    stamp,
    utc_now,
)
from scribe.journal.head import HeadFile, read_head
from scribe.journal.schema import MIGRATIONS, SCHEMA_VERSION, file_facets, projects_named
from scribe.journal.search import compile_query, glob_match, uses_facets
from scribe.sqlite_rows import insert_rows

log = logging.getLogger("scribe")

#: Where a repository's journal lives, relative to its root.
JOURNAL_DB = Path(".scribe") / "journal.db"

_COLUMNS = (
    "seq, ts, kind, actor, path, before_hash, after_hash, diff, message, payload, ref, "
    "prev_hash, hash"
)
_E_COLUMNS = ", ".join(f"e.{name}" for name in _COLUMNS.split(", "))
_INSERT = f"INSERT INTO entries ({_COLUMNS})"
_INSERT_PROJECT = "INSERT INTO entry_projects (project, seq)"
_INDEX_TEXT = (
    "INSERT INTO entries_text(rowid, path, message, payload) "
    "SELECT seq, path, message, payload FROM entries WHERE seq > ? ORDER BY seq"
)
_FILE_FACETS = file_facets("?1")
_TEXT_HEAD = "SELECT seq FROM text_progress"
_TEXT_BEHIND = (
    "SELECT (SELECT seq FROM text_progress) < (SELECT coalesce(max(seq), 0) FROM entries)"
)
_TEXT_DONE = "UPDATE text_progress SET seq = (SELECT coalesce(max(seq), 0) FROM entries)"
# The canonical JSON of an entry's body, built by SQLite; keys in sorted order.
_BODY = (
    "json_object('actor', actor, 'after_hash', after_hash, 'before_hash', before_hash, "
    "'diff', diff, 'kind', kind, 'message', message, 'path', path, "
    "'payload', iif(json_valid(payload), json(payload), NULL), 'prev_hash', prev_hash, "
    "'ref', ref, 'seq', seq, 'ts', ts)"
)
_CHUNK = 10_000


class SqliteJournal:
    """The journal in one SQLite file; thread-safe, and safe for several processes.

    ``clock`` gives the time stamped on appended entries (tests and benchmarks
    build journals that span days). ``busy_timeout`` is how long an append waits
    for another process's transaction before failing.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float = 5.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._head = HeadFile(path.with_suffix(".head"))
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._db = self._connect()
        try:
            self._migrate()
            # Reads have a connection of their own: in WAL they see every commit but
            # never wait for one, so a query is not held up by an append's sync.
            self._read_lock = threading.Lock()
            self._reader = self._connect()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def for_root(cls, root: Path, **options: Any) -> SqliteJournal:
        """The journal of the repository at ``root`` (``.scribe/journal.db``)."""
        return cls(root / JOURNAL_DB, **options)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.create_function("scribe_glob", 2, glob_match, deterministic=True)
        return db

    def _migrate(self) -> None:
        if self._version() == SCHEMA_VERSION:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = self._version()  # another process may have just migrated
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        finally:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    def _version(self) -> int:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path} was written by a newer Scribe (journal schema {version}; "
                f"this version knows up to {SCHEMA_VERSION}); upgrade Scribe to use it"
            )
        return version

    # -- writing --------------------------------------------------------------

    def append(self, entries: Sequence[NewEntry]) -> list[Entry]:
        """Commit ``entries`` in one transaction and return them sealed.

        The chain head is read inside ``BEGIN IMMEDIATE``, which holds SQLite's
        write lock, so appends from several processes still form one chain.
        """
        if not entries:
            return []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            return self._append_begun(entries)

    def append_now(self, entries: Sequence[NewEntry]) -> list[Entry] | None:
        """``append``, unless another thread or process holds the journal's write lock
        this instant: then None, and nothing is written. The disk sync is still waited
        for; no other writer is."""
        if not entries:
            return []
        if not self._lock.acquire(blocking=False):
            return None
        try:
            db = self._db
            db.execute("PRAGMA busy_timeout = 0")
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:  # or an extended BUSY
                    return None
                raise
            finally:
                db.execute(f"PRAGMA busy_timeout = {round(self._busy_timeout * 1000)}")
            return self._append_begun(entries)
        finally:
            self._lock.release()

    def _append_begun(self, entries: Sequence[NewEntry]) -> list[Entry]:
        """The body of an append, inside its ``BEGIN IMMEDIATE`` and ``self._lock``."""
        db = self._db
        try:
            last = db.execute(
                "SELECT seq, ts, hash FROM entries ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, last_ts, prev = last if last else (0, "", GENESIS)
            ts = max(stamp(self._clock()), last_ts)
            sealed, rows = [], []
            projects: list[tuple[str, int]] = []
            for new in entries:
                seq += 1
                projects.extend((name, seq) for name in projects_named(new.payload))
                entry = Entry.seal(new, seq=seq, ts=ts, prev_hash=prev)
                prev = entry.hash
                sealed.append(entry)
                rows.append(
                    (
                        seq, ts, new.kind, new.actor, new.path, new.before_hash,
                        new.after_hash, new.diff, new.message, new.payload_json, new.ref,
                        entry.prev_hash, entry.hash,
                    )
                )  # fmt: skip
            insert_rows(db, _INSERT, rows)
            insert_rows(db, _INSERT_PROJECT, projects)
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
        self._head.write(sealed[-1].seq, sealed[-1].hash)
        return sealed

    # -- reading --------------------------------------------------------------

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._read_lock:
            return self._reader.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock:
            return self._reader.execute(sql, params).fetchall()

    def get(self, seq: int) -> Entry | None:
        row = self._one(f"SELECT {_COLUMNS} FROM entries WHERE seq = ?", (seq,))
        return Entry.from_row(row) if row else None

    def head(self) -> Entry | None:
        row = self._one(f"SELECT {_COLUMNS} FROM entries ORDER BY seq DESC LIMIT 1")
        return Entry.from_row(row) if row else None

    def count(self) -> int:
        return int(self._one("SELECT count(*) FROM entries")[0])

    def _first_seq_at(self, moment: datetime) -> int | None:
        row = self._one(
            "SELECT seq FROM entries WHERE ts >= ? ORDER BY ts, seq LIMIT 1", (stamp(moment),)
        )
        return int(row[0]) if row else None

    def index_text(self) -> int:
        """Add the entries not yet in the full-text index, and file their payload keys
        in ``entry_facets``; how many entries were added."""
        with self._lock:
            db = self._db
            db.execute("PRAGMA synchronous=NORMAL")  # derived data: no sync of its own
            db.execute("BEGIN IMMEDIATE")
            try:
                done = db.execute(_TEXT_HEAD).fetchone()
                added = db.execute(_INDEX_TEXT, done).rowcount
                db.execute(_FILE_FACETS, done)
                db.execute(_TEXT_DONE)
                db.execute("COMMIT")
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                db.execute("PRAGMA synchronous=FULL")
        return max(added, 0)

    def query(self, q: Query) -> list[Entry]:
        if (q.text or uses_facets(q)) and self._one(_TEXT_BEHIND)[0]:  # write only if needed
            try:
                self.index_text()
            except sqlite3.OperationalError as exc:  # a read-only copy: search what is indexed
                log.debug("could not bring the text index up to date: %s", exc)
        first_seq = end_seq = None
        if q.since is not None and (first_seq := self._first_seq_at(q.since)) is None:
            return []
        if q.until is not None:
            end_seq = self._first_seq_at(q.until)
        compiled = compile_query(q, _E_COLUMNS, first_seq, end_seq, self._count)
        return [Entry.from_row(row) for row in self._all(*compiled)] if compiled else []

    def _count(self, sql: str, params: list[Any]) -> int:
        return int(self._one(sql, params)[0])

    def open_work(
        self, pending_kind: str = WORK_PENDING, done_kind: str = WORK_DONE
    ) -> list[Entry]:
        """``pending_kind`` entries that no later ``done_kind`` entry refers to, oldest first."""
        rows = self._all(
            f"SELECT {_COLUMNS} FROM entries AS p WHERE kind = ? AND NOT EXISTS ("
            "SELECT 1 FROM entries AS d WHERE d.ref = p.seq AND d.kind = ? AND d.seq > p.seq"
            ") ORDER BY seq",
            (pending_kind, done_kind),
        )
        return [Entry.from_row(row) for row in rows]

    def last_hashes(self) -> dict[str, str]:
        """Per path, the ``after_hash`` of its newest entry that says what the file holds.

        Those are entries with an ``after_hash``, and ``file.deleted`` entries, which
        remove the path from the result.
        """
        rows = self._all(
            "SELECT path, after_hash, max(seq) FROM entries WHERE path IS NOT NULL AND "
            f"(after_hash IS NOT NULL OR kind = '{FILE_DELETED}') GROUP BY path"
        )
        return {path: after for path, after, _ in rows if after is not None}

    # -- verifying ------------------------------------------------------------

    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        """Recompute every hash and link in seq order, then compare with the head file.

        Detects entries edited, removed, inserted or reordered anywhere, and entries
        cut off the end (the head file then names a seq the database lacks). Reads
        its own snapshot, so appends go on meanwhile.
        """
        try:
            recorded = read_head(self._head.path)  # first: the head never runs ahead of a commit
        except JournalError as exc:
            return VerifyReport(False, 0, None, str(exc))
        db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            db.execute("BEGIN")  # one snapshot for the count and the scan
            report = _check_chain(db, recorded, progress)
            db.execute("COMMIT")
            return report
        finally:
            db.close()

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._reader.close()
            self._db.close()
            self._head.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_chain(
    db: sqlite3.Connection,
    recorded: tuple[int, str] | None,
    progress: Callable[[int, int], None] | None,
) -> VerifyReport:
    total = int(db.execute("SELECT count(*) FROM entries").fetchone()[0])
    checked, expected, prev = 0, 1, GENESIS
    head_hash: str | None = None

    def broken(seq: int, problem: str) -> VerifyReport:
        return VerifyReport(False, checked, seq, problem, expected - 1 or None, prev)

    rows = db.execute(f"SELECT seq, prev_hash, hash, {_BODY} FROM entries ORDER BY seq")
    try:
        while chunk := rows.fetchmany(_CHUNK):
            for seq, prev_hash, hash_, body in chunk:
                if seq != expected:
                    what = "is missing" if seq > expected else "is out of order"
                    return broken(expected, f"entry {expected} {what}")
                if prev_hash != prev:
                    return broken(
                        seq, f"entry {seq} does not follow entry {seq - 1}: an entry before "
                        "it was changed, removed or moved",
                    )  # fmt: skip
                if (body is None or sha256(body.encode()).hexdigest() != hash_) and _slow_hash(
                    db, seq
                ) != hash_:
                    return broken(seq, f"entry {seq} was changed: its hash does not match")
                if recorded is not None and seq == recorded[0]:
                    head_hash = hash_
                checked += 1
                expected += 1
                prev = hash_
            if progress is not None:
                progress(checked, total)
    except sqlite3.Error as exc:  # a value SQLite cannot render: only tampering does that
        return broken(expected, f"entry {expected} cannot be read: {exc}")
    if recorded is not None:
        head_seq, recorded_hash = recorded
        if head_seq > checked:
            return broken(
                checked + 1,
                f"the journal ends at entry {checked} but journal.head records entry "
                f"{head_seq}: entries were removed from the end",
            )
        if head_hash != recorded_hash:
            return broken(
                head_seq, f"entry {head_seq} is not the one journal.head records: "
                "history was rewritten",
            )  # fmt: skip
    return VerifyReport(True, checked, None, "", checked or None, prev if checked else None)


def _slow_hash(db: sqlite3.Connection, seq: int) -> str | None:
    """The hash recomputed in Python, the authority when SQLite's JSON spelling of an
    entry differs from Python's (the fast path is an optimisation, never the judge)."""
    row = db.execute(f"SELECT {_COLUMNS} FROM entries WHERE seq = ?", (seq,)).fetchone()
    try:
        return Entry.from_row(row).recompute()
    except (TypeError, ValueError):
        return None

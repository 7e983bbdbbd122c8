"""Benchmark of scale-out: the PostgreSQL journal against SQLite, and the bus.

Sections (``--section NAME``, repeatable; default: all):

* ``journal``: appends/s of ``PostgresJournal`` against ``SqliteJournal`` on this
  machine, one entry per transaction and 100 per transaction, and through the
  group-commit writer with 4 threads. Yardsticks: a plain ``INSERT`` into an
  unindexed PostgreSQL table in the same server (what durability alone costs
  there), and the floor: the same bytes appended to a file with one ``fsync`` per
  transaction.
* ``bus``: see ``bus_section``.

A real PostgreSQL 15 and a real ``nats-server`` are started in temporary
directories (installed with apt-get when missing), as the tests do.
Run ``.venv/bin/python bench/scale.py [--quick] [--out PATH] [--section NAME]``.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))  # the servers the tests start

from engine import Line, Section, SectionBuilder, sections_main  # noqa: E402
from journal import batches_of, make_paths, rate_floor  # noqa: E402
from pg_helpers import PostgresServer, start_postgres  # noqa: E402
from scribe.journal import NewEntry, SqliteJournal  # noqa: E402
from scribe.journal.entry import Journal  # noqa: E402
from scribe.journal.postgres import PostgresJournal  # noqa: E402
from scribe.journal.writer import JournalWriter  # noqa: E402

DEFAULT_OUT = BENCH_DIR / "results" / "scale.json"
NAIVE, FLOOR, SQLITE = "naive", "floor", "sqlite"


@dataclass(frozen=True)
class Config:
    """Workload sizes; ``--quick`` makes each about 10x smaller."""

    single: int  # entries appended one per transaction
    batched: int  # entries appended 100 per transaction
    threaded: int  # entries appended by 4 threads through the writer
    seed: int = 0


FULL = Config(single=2_000, batched=20_000, threaded=4_000)
QUICK = Config(single=200, batched=2_000, threaded=400)


# -- journal ---------------------------------------------------------------------------


def rate(store: Journal, batches: list[list[NewEntry]]) -> float:
    """Entries per second appending ``batches`` to ``store``, one transaction each."""
    started = time.perf_counter()
    for batch in batches:
        store.append(batch)
    return sum(map(len, batches)) / (time.perf_counter() - started)


def rate_naive_pg(url: str, batches: list[list[NewEntry]]) -> float:
    """A plain INSERT per entry into a table with no chain and no index, committed
    per batch, in the same server with the same durability (synchronous_commit)."""
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE entries (kind text, actor text, path text, message text, "
                   "payload text)")  # fmt: skip
        rows = [[(e.kind, e.actor, e.path, e.message, e.payload_json) for e in b] for b in batches]
        started = time.perf_counter()
        for batch in rows:
            with db.transaction(), db.cursor() as cursor:
                cursor.executemany("INSERT INTO entries VALUES (%s, %s, %s, %s, %s)", batch)
        return sum(map(len, rows)) / (time.perf_counter() - started)


def rate_threads(store: Journal, entries: list[NewEntry], threads: int) -> float:
    """``threads`` callers appending one entry at a time through group commit."""
    with JournalWriter(store) as writer:
        shares = [entries[i::threads] for i in range(threads)]

        def append(share: list[NewEntry]) -> None:
            for entry in share:
                writer.append([entry])

        workers = [threading.Thread(target=append, args=(s,)) for s in shares]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return len(entries) / (time.perf_counter() - started)


def journal_section(cfg: Config, scratch: Path, console: Console) -> Section:
    rng = random.Random(cfg.seed)
    paths = make_paths(2_000)
    server = start_postgres()
    try:
        lines, details = measure_journals(cfg, scratch, server, rng, paths, console)
    finally:
        server.stop()
    return Section("journal", lines, details)


def measure_journals(
    cfg: Config,
    scratch: Path,
    server: PostgresServer,
    rng: random.Random,
    paths: list[str],
    console: Console,
) -> tuple[list[Line], dict[str, Any]]:
    lines: list[Line] = []
    details: dict[str, Any] = {}
    for label, count, size in (("one per commit", cfg.single, 1),
                               ("100 per commit", cfg.batched, 100)):  # fmt: skip
        batches = batches_of(count, size, rng, paths)
        folder = scratch / f"journal-{size}"
        folder.mkdir()
        console.print(f"journal: {count:,} entries, {label}")
        with PostgresJournal(server.new_database()) as pg:
            pg_rate = rate(pg, batches)
        with SqliteJournal(folder / "journal.db") as sqlite:
            sqlite_rate = rate(sqlite, batches)
        naive = rate_naive_pg(server.new_database(), batches)
        floor = rate_floor(folder, batches)
        lines.append(Line(f"PostgreSQL journal appends, {label}", "entries/s", pg_rate,
                          {SQLITE: sqlite_rate, NAIVE: naive, FLOOR: floor}))  # fmt: skip
        details[label] = {"postgres": pg_rate, SQLITE: sqlite_rate, NAIVE: naive, FLOOR: floor}
    entries = [e for batch in batches_of(cfg.threaded, 1, rng, paths) for e in batch]
    console.print(f"journal: {len(entries):,} entries from 4 threads through the writer")
    with PostgresJournal(server.new_database()) as pg:
        pg_threads = rate_threads(pg, entries, 4)
    folder = scratch / "journal-threads"
    folder.mkdir()
    with SqliteJournal(folder / "journal.db") as sqlite:
        sqlite_threads = rate_threads(sqlite, entries, 4)
    lines.append(Line("PostgreSQL journal, 4 threads through group commit", "entries/s",
                      pg_threads, {SQLITE: sqlite_threads}))  # fmt: skip
    details["4 threads"] = {"postgres": pg_threads, SQLITE: sqlite_threads}
    return lines, details


# -- running ---------------------------------------------------------------------------

SECTIONS: dict[str, SectionBuilder] = {
    "journal": journal_section,
}


def main(argv: list[str] | None = None) -> int:
    return sections_main("Benchmark Scribe's scale-out.", "scale", SECTIONS, (FULL, QUICK),
                         DEFAULT_OUT, (SQLITE, NAIVE, FLOOR), argv)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

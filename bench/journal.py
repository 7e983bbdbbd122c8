"""Benchmark of the journal store, against two yardsticks.

* ``scribe``: ``SqliteJournal`` (hash chain, FTS index, six indexes, head file), and
  for information ``JournalWriter`` with its mirrors under several threads;
* ``naive``: a plain ``INSERT`` into a table with no chain, no FTS and no index, in
  the same WAL database settings (``synchronous=FULL``): what durability alone costs
  in SQLite;
* ``floor``: the same bytes (each entry's JSONL line) appended to a file with
  ``os.write`` and one ``fsync`` per transaction: nothing durable can be faster.

Phases: (a) one entry per transaction, (b) 1,000 entries per transaction, (c) a
journal of 1,000,000 entries built in batches with a realistic mix of paths,
kinds and actors spread over 30 days, then (d) ``scribe log``-style queries on it
(path glob + time filter), (e) a few real ``scribe log`` processes, (f) ``verify``.
Run ``.venv/bin/python bench/journal.py [--quick] [--out PATH] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from engine import cell, percentile, ratio, write_report
from scribe.journal import NewEntry, Query, SqliteJournal
from scribe.journal.entry import (
    EVENT_OBSERVED,
    FILE_SKIPPED,
    FILE_WRITTEN,
    RULE_MATCHED,
    WORK_DONE,
    WORK_PENDING,
    Journal,
)
from scribe.journal.mirrors import Mirrors
from scribe.journal.writer import JournalWriter

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results" / "journal.json"
SPAN = timedelta(days=30)
STEPS = 1000  # the big journal is built in this many transactions, evenly over SPAN
GLOBS = (
    "notes/**",
    "docs/**/*.md",
    "journal/2026/**",
    "src/pkg/1*/**",
    "wiki/3/*.md",
    "**/note-1*.md",
)
AGES = (timedelta(hours=1), timedelta(hours=6), timedelta(days=1), timedelta(days=3))
CLI_APP = (
    "import typer; from scribe.journal.commands import register; "
    "app = typer.Typer(); register(app); app()"
)


@dataclass(frozen=True)
class Config:
    """Workload sizes; ``--quick`` makes each 10x smaller."""

    singles: int  # (a) one-entry transactions
    batches: int  # (b) transactions of ``batch`` entries
    batch: int
    entries: int  # (c) size of the big journal
    paths: int  # (c) distinct paths in it
    queries: int  # (d)
    cli_runs: int  # (e)
    threads: int = 8  # (a') JournalWriter callers


FULL = Config(singles=5000, batches=100, batch=1000, entries=1_000_000, paths=1000,
              queries=200, cli_runs=5)  # fmt: skip
QUICK = Config(singles=500, batches=10, batch=1000, entries=100_000, paths=1000,
               queries=200, cli_runs=3)  # fmt: skip


# -- workload ------------------------------------------------------------------


def make_paths(count: int) -> list[str]:
    tops = ("notes", "docs", "journal/2026", "src/pkg", "wiki")
    return [f"{tops[i % len(tops)]}/{i % 37}/note-{i}.md" for i in range(count)]


def cycles(rng: random.Random, paths: list[str], first_seq: int) -> Iterator[list[NewEntry]]:
    """Entries as the engine writes them, one file change at a time: observed, pending,
    matched, then written (or skipped), then done referring to the pending entry."""
    actors = ("rule:stamp", "rule:toc", "rule:tags", "agent:claude/4242", "user")
    seq = first_seq
    while True:
        path, actor = rng.choice(paths), rng.choice(actors)
        before, after = f"{rng.getrandbits(256):064x}", f"{rng.getrandbits(256):064x}"
        written = rng.random() < 0.8
        outcome = (
            NewEntry(FILE_WRITTEN, actor, path, before, after,
                     f"--- a/{path}\n+++ b/{path}\n@@ -1,3 +1,4 @@\n ---\n title: t\n"
                     f"+modified: 2026-11-{rng.randint(1, 28):02d}\n ---\n",
                     "modified set", {"rule": actor, "bytes": rng.randint(100, 9000)})
            if written
            else NewEntry(FILE_SKIPPED, "scribe", path, before, message="binary file")
        )  # fmt: skip
        yield [
            NewEntry(EVENT_OBSERVED, "scribe", path, message="modified (inotify)",
                     payload={"event": "modified", "source": "inotify"}),
            NewEntry(WORK_PENDING, "scribe", path, before, message="planning",
                     payload={"rules": [actor]}),
            NewEntry(RULE_MATCHED, actor, path, message="field modified differs",
                     payload={"rule": actor}),
            outcome,
            NewEntry(WORK_DONE, "scribe", path, message="done", ref=seq + 1),
        ]  # fmt: skip
        seq += 5


def batches_of(count: int, size: int, rng: random.Random, paths: list[str]) -> list[list[NewEntry]]:
    out: list[list[NewEntry]] = []
    batch: list[NewEntry] = []
    for group in cycles(rng, paths, 1):
        batch.extend(group)
        if len(batch) >= size:
            out.append(batch[:size])
            if len(out) * size >= count:
                return out
            batch = batch[size:]
    raise AssertionError("unreachable")


def jsonl_lines(batch: list[NewEntry]) -> bytes:
    """The bytes the floor writes: about what one entry's JSONL line weighs."""
    return b"".join(
        json.dumps({"kind": e.kind, "actor": e.actor, "path": e.path, "message": e.message,
                    "before_hash": e.before_hash, "after_hash": e.after_hash, "diff": e.diff,
                    "payload": e.payload, "hash": "0" * 64, "prev_hash": "0" * 64,
                    "ts": "2026-11-24T10:00:00.000000Z", "seq": 1, "ref": e.ref}).encode() + b"\n"
        for e in batch
    )  # fmt: skip


# -- (a)/(b) append rates ----------------------------------------------------------


def rate(store: Journal, batches: list[list[NewEntry]]) -> float:
    """Entries per second appending ``batches`` to ``store``, one transaction each."""
    started = time.perf_counter()
    for batch in batches:
        store.append(batch)
    return sum(map(len, batches)) / (time.perf_counter() - started)


def rate_scribe(folder: Path, batches: list[list[NewEntry]]) -> float:
    with SqliteJournal(folder / "journal.db") as store:
        return rate(store, batches)


def rate_naive(folder: Path, batches: list[list[NewEntry]]) -> float:
    db = sqlite3.connect(folder / "naive.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE entries (kind, actor, path, message, payload)")
    rows = [[(e.kind, e.actor, e.path, e.message, e.payload_json) for e in b] for b in batches]
    started = time.perf_counter()
    for batch in rows:
        db.execute("BEGIN")
        db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?)", batch)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return sum(map(len, rows)) / elapsed


def rate_floor(folder: Path, batches: list[list[NewEntry]]) -> float:
    data = [jsonl_lines(batch) for batch in batches]
    fd = os.open(folder / "floor.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    started = time.perf_counter()
    for chunk in data:
        os.write(fd, chunk)
        os.fsync(fd)
    elapsed = time.perf_counter() - started
    os.close(fd)
    return sum(map(len, batches)) / elapsed


def rate_threads(
    store: Journal, entries: list[NewEntry], threads: int, mirrors: Mirrors | None = None
) -> float:
    """``threads`` callers appending one entry at a time to ``store`` through group
    commit (with ``mirrors``, their lines written too)."""
    with JournalWriter(store, mirrors) as writer:
        share = [entries[i::threads] for i in range(threads)]
        workers = [
            threading.Thread(target=lambda mine=mine: [writer.append([e]) for e in mine])
            for mine in share
        ]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return len(entries) / (time.perf_counter() - started)


def rate_writer(folder: Path, entries: list[NewEntry], threads: int) -> float:
    """``threads`` callers through group commit into SQLite, mirrors on."""
    with SqliteJournal(folder / "journal.db") as store:
        return rate_threads(store, entries, threads, Mirrors(folder))


# -- (c)-(f) the big journal -----------------------------------------------------


@dataclass
class Big:
    entries: int
    build_s: float = 0.0
    db_bytes: int = 0
    query_ms: list[float] = field(default_factory=list)
    query_rows: list[int] = field(default_factory=list)
    p50_ms: float | None = None
    p95_ms: float | None = None
    open_work_ms: float | None = None
    last_hashes_ms: float | None = None
    cli_ms: list[float] = field(default_factory=list)
    verify_s: float | None = None
    verify_ok: bool | None = None
    index_s: float | None = None  # bringing the text index up to date over every entry


def build(folder: Path, cfg: Config, end: datetime) -> tuple[SqliteJournal, float]:
    """The big journal, with ``ts`` spread evenly over the 30 days before ``end``."""
    rng = random.Random(7)
    paths = make_paths(cfg.paths)
    size = cfg.entries // STEPS
    count = STEPS
    moment = [end - SPAN]
    store = SqliteJournal(folder / ".scribe" / "journal.db", clock=lambda: moment[0])
    started = time.perf_counter()
    batch: list[NewEntry] = []
    step = SPAN / STEPS
    for group in cycles(rng, paths, 1):
        batch.extend(group)
        if len(batch) >= size:
            store.append(batch)
            moment[0] += step
            batch = []
            count -= 1
            if count == 0:
                break
    return store, time.perf_counter() - started


def run_big(cfg: Config, folder: Path, console: Console) -> Big:
    end = datetime.now(UTC)
    result = Big(cfg.entries)
    console.print(f"(c) building a journal of {cfg.entries:,} entries")
    store, result.build_s = build(folder, cfg, end)
    console.print(f"(c') text index over {cfg.entries:,} entries")
    started = time.perf_counter()
    store.index_text()  # the writer does this in its idle moments, batch by batch
    result.index_s = time.perf_counter() - started
    result.db_bytes = sum(p.stat().st_size for p in (folder / ".scribe").glob("journal.db*"))
    rng = random.Random(11)
    console.print(f"(d) {cfg.queries} queries: path glob + time filter, last 100")
    for _ in range(cfg.queries):
        q = Query(since=end - rng.choice(AGES), path_glob=rng.choice(GLOBS), limit=100,
                  newest_first=True)  # fmt: skip
        started = time.perf_counter()
        rows = store.query(q)
        result.query_ms.append((time.perf_counter() - started) * 1000)
        result.query_rows.append(len(rows))
    ordered = sorted(result.query_ms)
    result.p50_ms, result.p95_ms = percentile(ordered, 50), percentile(ordered, 95)
    started = time.perf_counter()
    store.open_work()
    result.open_work_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    store.last_hashes()
    result.last_hashes_ms = (time.perf_counter() - started) * 1000
    console.print(f"(e) {cfg.cli_runs} `scribe log` processes")
    for i in range(cfg.cli_runs):
        argv = [sys.executable, "-c", CLI_APP, "log", "--root", str(folder),
                "--path", GLOBS[i % len(GLOBS)], "--since", "1d"]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        result.cli_ms.append((time.perf_counter() - started) * 1000)
        if done.returncode != 0:
            raise RuntimeError(f"scribe log failed: {done.stderr.decode()}")
    console.print(f"(f) verify {cfg.entries:,} entries")
    started = time.perf_counter()
    result.verify_ok = store.verify().ok
    result.verify_s = time.perf_counter() - started
    store.close()
    return result


# -- report ----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    metric: str
    values: dict[str, float | None]
    target: str
    passed: bool | None
    unit: str = ""


def render(rows: list[Row], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    columns = ("metric", "scribe", "naive", "floor", "scribe/naive", "scribe/floor", "target",
               "pass")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("metric", "target") else "right")
    for row in rows:
        s, n, f = (row.values.get(k) for k in ("scribe", "naive", "floor"))
        ratios = [ratio(s, n), ratio(s, f)]
        verdict = "—" if row.passed is None else "[green]pass[/]" if row.passed else "[red]FAIL[/]"
        table.add_row(
            row.metric + (f" ({row.unit})" if row.unit else ""),
            cell(s, ""), cell(n, ""), cell(f, ""),
            *(f"{r:.2f}x" if r is not None else "—" for r in ratios),
            row.target, verdict,
        )  # fmt: skip
    return table


def measure(cfg: Config, scratch: Path, console: Console) -> tuple[list[Row], dict[str, Any]]:
    rng = random.Random(3)
    paths = make_paths(cfg.paths)
    singles = [[e] for b in batches_of(cfg.singles, 1, rng, paths) for e in b]
    grouped = batches_of(cfg.batches * cfg.batch, cfg.batch, rng, paths)
    rates: dict[str, dict[str, float]] = {"single": {}, "batched": {}}
    for label, work in (("single", singles), ("batched", grouped)):
        for name, run in (("scribe", rate_scribe), ("naive", rate_naive), ("floor", rate_floor)):
            console.print(f"({'a' if label == 'single' else 'b'}) {label}: {name}")
            folder = Path(tempfile.mkdtemp(prefix=f"{label}-{name}-", dir=scratch))
            rates[label][name] = run(folder, work)
    console.print(f"(a') JournalWriter, {cfg.threads} threads, one entry per call")
    folder = Path(tempfile.mkdtemp(prefix="writer-", dir=scratch))
    writer_rate = rate_writer(folder, [e for b in singles for e in b], cfg.threads)
    big = run_big(cfg, Path(tempfile.mkdtemp(prefix="big-", dir=scratch)), console)
    single, batched = rates["single"], rates["batched"]
    millions = f"{cfg.entries / 1e6:g}M"
    rows = [
        Row("appends/s, 1 entry per transaction", dict(single), ">= 2,000",
            single["scribe"] >= 2000),
        Row(f"appends/s, {cfg.batch} per transaction", dict(batched), ">= 20,000",
            batched["scribe"] >= 20000),
        Row(f"  JournalWriter, {cfg.threads} threads + mirrors", {"scribe": writer_rate},
            "info", None),
        Row(f"build {millions} entries (appends/s)", {"scribe": cfg.entries / big.build_s},
            "info", None),
        Row(f"  journal size at {millions}", {"scribe": big.db_bytes / 2**20}, "info", None,
            "MiB"),
        Row("query glob + time, last 100: p50", {"scribe": big.p50_ms}, "info", None, "ms"),
        Row("query glob + time, last 100: p95", {"scribe": big.p95_ms}, "<= 20 ms",
            big.p95_ms is not None and big.p95_ms <= 20, "ms"),
        Row("  `scribe log` process, median", {"scribe": statistics.median(big.cli_ms)},
            "info", None, "ms"),
        Row(f"  text index of all {millions} at once", {"scribe": big.index_s}, "info", None, "s"),
        Row(f"open_work at {millions}", {"scribe": big.open_work_ms}, "info", None, "ms"),
        Row(f"last_hashes at {millions}", {"scribe": big.last_hashes_ms}, "info", None, "ms"),
        Row(f"verify {millions} entries", {"scribe": big.verify_s}, "<= 10 s",
            bool(big.verify_ok) and big.verify_s is not None and big.verify_s <= 10, "s"),
    ]  # fmt: skip
    details = {"rates": rates, "writer_rate": writer_rate, "big": asdict(big)}
    return rows, details


def run(cfg: Config, out: Path, *, keep: bool, quick: bool) -> dict[str, Any]:
    console = Console(stderr=True)
    scratch = Path(tempfile.mkdtemp(prefix="scribe-journal-bench-", dir="/tmp"))
    started = time.perf_counter()
    load_before = os.getloadavg()
    try:
        rows, details = measure(cfg, scratch, console)
    finally:
        if keep:
            console.print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - started
    title = f"scribe journal benchmark ({'quick' if quick else 'full'} run, {elapsed:.0f} s)"
    Console(width=max(Console().width, 132)).print(render(rows, title))
    return write_report(
        out,
        console,
        quick=quick,
        elapsed=elapsed,
        cfg=cfg,
        load_before=load_before,
        all_pass=all(row.passed for row in rows if row.passed is not None),
        summary=[
            {
                "metric": row.metric,
                "unit": row.unit,
                "target": row.target,
                "pass": row.passed,
                **row.values,
                "scribe/naive": ratio(row.values.get("scribe"), row.values.get("naive")),
                "scribe/floor": ratio(row.values.get("scribe"), row.values.get("floor")),
            }
            for row in rows
        ],
        **details,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the journal store.")
    parser.add_argument("--quick", action="store_true", help="10x smaller workload (smoke run)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory in /tmp")
    args = parser.parse_args(argv)
    try:
        run(QUICK if args.quick else FULL, args.out, keep=args.keep, quick=args.quick)
    except KeyboardInterrupt:
        print("interrupted; scratch directory removed", file=sys.stderr)
        return 130
    return 0  # a missed target is a result, not an error: see "all_pass" in the JSON


if __name__ == "__main__":
    sys.exit(main())

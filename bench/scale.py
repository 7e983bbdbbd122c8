"""Benchmark of scale-out: the PostgreSQL journal against SQLite, and the bus.

Sections (``--section NAME``, repeatable; default: all):

* ``journal``: appends/s of ``PostgresJournal`` against ``SqliteJournal`` on this
  machine, one entry per transaction and 100 per transaction, and through the
  group-commit writer with 4 threads. Yardsticks: a plain ``INSERT`` into an
  unindexed PostgreSQL table in the same server (what durability alone costs
  there), and the floor: the same bytes appended to a file with one ``fsync`` per
  transaction.
* ``bus``: events/s through NATS JetStream with 1, 2 and 4 ``scribe worker``
  processes on a CPU-heavy rule (a plug-in that spends about 30 ms of CPU per file),
  against the in-process default (``scribe watch`` alone) on the same load; the
  target is 2 workers >= 1.6x one worker's rate, the median of interleaved rounds,
  beside the physical limit: two processes running the rule's loop against one.
* ``latency``: event-to-write latency of ``scribe watch`` with the bus (it publishes
  and consumes through NATS itself) against the in-process queue, one save at a
  time (``bench/engine.py``'s latency phase); the target is p50 + 5 ms at most.

A real PostgreSQL 15 and a real ``nats-server`` are started in temporary
directories (installed with apt-get when missing), as the tests do.
Run ``.venv/bin/python bench/scale.py [--quick] [--out PATH] [--section NAME]``.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))  # the servers the tests start

from engine import FULL as ENGINE_FULL  # noqa: E402
from engine import QUICK as ENGINE_QUICK  # noqa: E402
from engine import (  # noqa: E402
    WRITES,
    DirWatch,
    Line,
    Section,
    SectionBuilder,
    System,
    run_latency,
    scribe_executable,
    sections_main,
    track,
)
from engine import Config as EngineConfig  # noqa: E402
from journal import batches_of, make_paths, rate, rate_floor, rate_threads  # noqa: E402
from live_helpers import ScribeProcess  # noqa: E402
from nats_helpers import NatsServer, WorkerProcess, reset_stream  # noqa: E402
from pg_helpers import PostgresServer, start_postgres  # noqa: E402
from scribe.journal import NewEntry, SqliteJournal  # noqa: E402
from scribe.journal.postgres import PostgresJournal  # noqa: E402

DEFAULT_OUT = BENCH_DIR / "results" / "scale.json"
NAIVE, FLOOR, SQLITE, IN_PROCESS = "naive", "floor", "sqlite", "in-process"


@dataclass(frozen=True)
class Config:
    """Workload sizes; ``--quick`` makes each about 10x smaller."""

    single: int  # entries appended one per transaction
    batched: int  # entries appended 100 per transaction
    threaded: int  # entries appended by 4 threads through the writer
    bus_files: int  # files saved at once for the bus's throughput
    latency: EngineConfig  # the latency phase of bench/engine.py
    bus_rounds: int = 3  # interleaved rounds of 1 and 2 workers
    bus_deadline_s: float = 300.0
    seed: int = 0


FULL = Config(single=2_000, batched=20_000, threaded=4_000, bus_files=1_000,
              latency=ENGINE_FULL)  # fmt: skip
QUICK = Config(single=200, batched=2_000, threaded=400, bus_files=100, bus_rounds=1,
               latency=ENGINE_QUICK)  # fmt: skip


# -- journal ---------------------------------------------------------------------------


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


# -- the bus ---------------------------------------------------------------------------

#: A content action that spends about 15 ms of CPU per call (twice per file: the
#: plan, then its fixpoint check), then marks the file: the CPU-heavy rule,
#: deterministic and idempotent like any rule.
BURN = """
import hashlib
from pydantic import BaseModel
from scribe.actions import Content

class Params(BaseModel):
    rounds: int = 20_000

def plan(file, params):
    digest = file.text.encode()
    for _ in range(params.rounds):
        digest = hashlib.sha256(digest).digest()
    if "burnt: yes" in file.text:
        return file.text
    return file.text.replace("\\n---\\n", "\\nburnt: yes\\n---\\n", 1)

action = Content("burn", Params, plan, "Spend CPU, then mark the file.", self_contained=True)
manifest = {"version": "1.0.0", "permissions": {"write": ["**"]}}
"""
BURN_RULES = """rules:
  - id: burn
    on: [created, modified]
    paths: ["**/*.md"]
    do: [{burn: {}}]
"""
BUS_TARGET = 1.6
LATENCY_TARGET_MS = 5.0
#: CPU-bound calls each process makes to measure how far this machine's CPUs scale.
BURN_CALLS = 60


def burn_repo(root: Path) -> None:
    (root / ".scribe" / "actions").mkdir(parents=True)
    (root / ".scribe" / "rules.yaml").write_text(BURN_RULES)
    (root / ".scribe" / "actions" / "burn.py").write_text(BURN)
    (root / "scribe.yaml").write_text("plugins_local: true\nlisten: 'off'\n")


def drain(root: Path, files: int, deadline_s: float) -> float | None:
    """Save ``files`` new notes at once; seconds until every one is marked, or None.

    Files are re-read only when inotify says they changed (``bench/engine.py``'s
    ``track``): polling them all would take CPU from the workers being measured.
    """
    names = [f"n{i:05d}.md" for i in range(files)]
    watch = DirWatch(root, WRITES)
    try:
        started = time.perf_counter()
        for name in names:
            (root / name).write_text(f"---\ntitle: {name}\n---\nbody\n")
        done = track(watch, root, names, lambda text: "burnt: yes" in text,
                     deadline_s=deadline_s, idle_s=30.0)  # fmt: skip
    finally:
        watch.close()
    return done.done_at - started if done.converged and done.done_at is not None else None


def _burn(calls: int) -> None:
    for _ in range(calls):
        digest = b"x" * 40
        for _ in range(20_000):
            digest = hashlib.sha256(digest).digest()


def cpu_scaling() -> float:
    """The physical limit: how much more two processes running the burn rule's loop
    get done than one, on this machine, now."""
    context = multiprocessing.get_context("fork")

    def rate(processes: int) -> float:
        started = time.perf_counter()
        running = [context.Process(target=_burn, args=(BURN_CALLS,)) for _ in range(processes)]
        for process in running:
            process.start()
        for process in running:
            process.join()
        return processes * BURN_CALLS / (time.perf_counter() - started)

    return rate(2) / rate(1)


def bus_rate(
    server: NatsServer, cfg: Config, scratch: Path, workers: int, tag: str
) -> float | None:
    """Events/s draining ``cfg.bus_files`` saves with ``workers`` worker processes
    (0: ``scribe watch`` alone, no bus), in a fresh repository and stream."""
    root = scratch / f"bus-{tag}"
    burn_repo(root)
    logs = scratch / f"bus-{tag}-logs"
    logs.mkdir()
    reset_stream(server.url)
    processes: list[ScribeProcess] = []
    try:
        if workers:
            watcher = ScribeProcess(root, "--bus", server.url, "--no-workers",
                                    log_path=logs / "watch.log")  # fmt: skip
        else:
            watcher = ScribeProcess(root, log_path=logs / "watch.log")
        processes.append(watcher)
        watcher.wait_ready()
        for k in range(workers):
            worker = WorkerProcess(root, server.url, log_path=logs / f"worker-{k}.log")
            processes.append(worker)
            worker.wait_ready()
        took = drain(root, cfg.bus_files, cfg.bus_deadline_s)
        return cfg.bus_files / took if took else None
    finally:
        for process in processes:
            process.close()


def bus_section(cfg: Config, scratch: Path, console: Console) -> Section:
    """One and two workers in interleaved rounds, each round's ratio taken from runs
    next to each other (this machine's speed drifts by 20% over minutes); the
    in-process default and four workers once. The median round is reported."""
    server = NatsServer(scratch / "nats")
    rounds: list[dict[str, float | None]] = []
    once: dict[str, float | None] = {}
    try:
        for number in range(cfg.bus_rounds):
            found: dict[str, float | None] = {"cpus": cpu_scaling()}
            for workers in (1, 2):
                console.print(f"bus: {cfg.bus_files:,} files, {workers} worker(s), "
                              f"round {number + 1} of {cfg.bus_rounds}")  # fmt: skip
                found[str(workers)] = bus_rate(server, cfg, scratch, workers, f"{workers}-{number}")
            one, two = found["1"], found["2"]
            found["ratio"] = two / one if one and two else None
            rounds.append(found)
        for workers in (0, 4):
            label = f"{workers} worker(s)" if workers else "in-process"
            console.print(f"bus: {cfg.bus_files:,} files, {label}")
            once[label] = bus_rate(server, cfg, scratch, workers, str(workers))
    finally:
        server.stop()
    ratios = [r["ratio"] for r in rounds]
    middle = (
        sorted(rounds, key=lambda r: r["ratio"] or 0.0)[len(rounds) // 2]
        if None not in ratios
        else {"1": None, "2": None, "ratio": None, "cpus": None}
    )
    scaling, cpus = middle["ratio"], middle["cpus"]
    in_process = {IN_PROCESS: once["in-process"]}
    lines = [
        Line("events/s through NATS, 1 worker", "events/s", middle["1"], in_process),
        Line("events/s through NATS, 2 workers", "events/s", middle["2"], in_process),
        Line("events/s through NATS, 4 workers", "events/s", once["4 worker(s)"], in_process),
        Line("2 workers against 1 (median round; floor: the bare loop, 2 processes)", "x",
             scaling, {FLOOR: cpus},
             target=f">= {BUS_TARGET}x", passed=scaling is not None and scaling >= BUS_TARGET),
        Line("  each round", "x", None, target=", ".join(
            f"{r:.2f}" if r is not None else "—" for r in ratios)),
    ]  # fmt: skip
    return Section(
        "bus",
        lines,
        {"rounds": rounds, "once": once, "files": cfg.bus_files, "burn_calls": BURN_CALLS},
    )


def latency_section(cfg: Config, scratch: Path, console: Console) -> Section:
    server = NatsServer(scratch / "nats-latency")
    scribe = scribe_executable()
    try:
        reset_stream(server.url)
        alone = System("in-process", lambda root, scan: [scribe, "watch", str(root),
                                                          "--listen", "off"])  # fmt: skip
        bussed = System("nats", lambda root, scan: [scribe, "watch", str(root), "--bus",
                                                     server.url, "--listen", "off"])  # fmt: skip
        runs = {s.name: run_latency(s, cfg.latency, scratch, console) for s in (alone, bussed)}
    finally:
        server.stop()
    base, bus = runs["in-process"], runs["nats"]
    added = (bus.p50_ms - base.p50_ms) if bus.p50_ms is not None and base.p50_ms else None
    lines = [
        Line("event-to-write p50 through NATS", "ms", bus.p50_ms, {IN_PROCESS: base.p50_ms}),
        Line("event-to-write p95 through NATS", "ms", bus.p95_ms, {IN_PROCESS: base.p95_ms}),
        Line("  p50 added by the bus", "ms", added, target=f"<= {LATENCY_TARGET_MS:.0f} ms",
             passed=added is not None and added <= LATENCY_TARGET_MS),
        Line("  saves unanswered or answered wrongly", "count",
             float(bus.missed + bus.bad + base.missed + base.bad), target="0",
             passed=bus.missed + bus.bad + base.missed + base.bad == 0),
    ]  # fmt: skip
    return Section("latency", lines, {name: asdict(run) for name, run in runs.items()})


# -- running ---------------------------------------------------------------------------

SECTIONS: dict[str, SectionBuilder] = {
    "journal": journal_section,
    "bus": bus_section,
    "latency": latency_section,
}


def main(argv: list[str] | None = None) -> int:
    return sections_main("Benchmark Scribe's scale-out.", "scale", SECTIONS, (FULL, QUICK),
                         DEFAULT_OUT, (SQLITE, IN_PROCESS, NAIVE, FLOOR), argv)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

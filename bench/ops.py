"""Operations benchmark of ``scribe watch``: what running it in production costs and
how it behaves when operated, measured from the outside on real files.

A watcher lives for weeks beside a repository: scraped by Prometheus, exporting
traces, hit by a branch switch, reloaded in place and stopped by a service
manager. Each phase plays one of those against a real subprocess, next to a
baseline measured in the same run, because on a small shared box only ratios of
neighbouring measurements mean anything:

1. observability cost: one ``--scan`` workload with logs, metrics and tracing off
   and on, interleaved in pairs;
2. a ``git checkout`` of 10,000 files under the watcher: memory, correctness and
   drain time, against the checkout alone and the floor of atomic writes;
3. hot reload: from saving a changed rules file until a rewrite follows it;
4. graceful stop: SIGTERM with a full queue; time to exit, exit code, torn files.

Run ``.venv/bin/python bench/ops.py [--quick] [--out PATH] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil  # type: ignore[import-untyped]
from inotify_simple import flags
from rich.console import Console
from rich.table import Table

from engine import (
    DOC,
    MB,
    RULES,
    SCANNED,
    STAMP_FORMAT,
    STOP_TIMEOUT,
    WRITES,
    DirWatch,
    Watcher,
    atomic_write,
    guarded,
    interrupt,
    is_corrupt,
    make_repo,
    parse_stamp,
    read_text,
    running,
    scribe_executable,
    stamped_with,
    track,
    user_text,
    wait_rewrite,
    write_plain,
    write_report,
)

if TYPE_CHECKING:
    from types import TracebackType

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results" / "ops.json"
#: The reload phase alternates the stamp between this and ``STAMP_FORMAT``.
SHORT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
READY_TIMEOUT = 60.0
SHOWN_LINES = 20  # stderr lines quoted when a watcher misbehaves


@dataclass(frozen=True)
class Config:
    """Workload sizes; ``--quick`` shrinks each phase by about 10x."""

    obs_files: int  # (1) files stamped by each --scan run
    obs_pairs: int  # (1) off/on pairs, interleaved
    storm_files: int  # (2) files the checkout replaces
    reloads: int  # (3) rules saves measured
    stop_files: int  # (4) files queued when SIGTERM arrives
    scrape_interval: float = 1.0  # (1) seconds between two GET /metrics, as Prometheus would
    trace_sample: float = 1.0  # (1) share of events traced in "on" (--trace-sample)
    obs_timeout: float = 120.0
    storm_timeout: float = 120.0
    reload_timeout: float = 5.0
    catch_up_timeout: float = 60.0


FULL = Config(obs_files=3000, obs_pairs=3, storm_files=10_000, reloads=5, stop_files=3000)
QUICK = Config(obs_files=300, obs_pairs=1, storm_files=1000, reloads=2, stop_files=300)


# -- small generic helpers ------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on right now (the watcher binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_exit(pid: int, timeout: float) -> float | None:
    """When our child ``pid`` exited (perf_counter), or None after ``timeout``.

    A pidfd becomes readable at exit without reaping the child, so the Watcher can
    still collect its exit code; the wake-up is immediate, not a polling interval.
    """
    fd = os.pidfd_open(pid)
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return time.perf_counter() if readable else None


def alive(pid: int) -> bool:
    """Whether our child ``pid`` still runs (it is not reaped by asking)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a process has used so far: less moved by the
    neighbours than wall time, since waiting for the disk or for a core costs none."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def tail(proc: Watcher) -> str:
    return "\n".join(proc.lines[-SHOWN_LINES:])


def log_events(proc: Watcher) -> list[dict[str, Any]]:
    """The watcher's stderr lines that are JSON objects, in order."""
    events = []
    for line in list(proc.lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def named(events: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [e for e in events if str(e.get("event", "")).startswith(prefix)]


def log_summary(proc: Watcher) -> dict[str, Any]:
    """Counts by level, the first warnings and errors, and any line that is not JSON
    (a traceback, a print): what a log shipper would choke on or alert about."""
    events = log_events(proc)
    levels: dict[str, int] = {}
    for event in events:
        level = str(event.get("level", "?"))
        levels[level] = levels.get(level, 0) + 1
    loud = [e for e in events if e.get("level") in ("warning", "error", "critical")]
    plain = [line for line in list(proc.lines) if line and not line.startswith("{")]
    return {
        "levels": levels,
        "notable": [str(e.get("event"))[:300] for e in loud[:5]],
        "not_json": len(plain),
        "not_json_examples": plain[:5],
        "exit_code": proc.exit_code,
    }


def fits(stamp: str | None, fmt: str) -> bool:
    """Whether a ``modified`` value (quoted or not) is written in ``fmt``."""
    if stamp is None:
        return False
    try:
        datetime.strptime(stamp.strip("'\""), fmt)
    except ValueError:
        return False
    return True


def verdict(text: str | None, body: str) -> str:
    """``right`` (``body`` plus one valid stamp), ``unstamped`` (``body`` as saved),
    ``lost`` (missing, or another body) or ``torn`` (any other shape)."""
    if text is None:
        return "lost"
    match = DOC.fullmatch(text)
    if match is None or is_corrupt(text):
        return "torn"
    if match["body"] != body + "\n":
        return "lost"
    if not match["modified"]:
        return "unstamped"
    return "right" if parse_stamp(match["modified"]) is not None else "torn"


def right(text: str, body: str) -> bool:
    """The cheap check the bench runs on every event: ``body`` and a valid stamp."""
    match = DOC.fullmatch(text)
    return bool(match and stamped_with(text, body) and parse_stamp(match["modified"]))


def tally(root: Path, names: list[str], body: str) -> tuple[dict[str, int], dict[str, str]]:
    """How many files are in each ``verdict``, and one example of each problem."""
    counts = {"right": 0, "unstamped": 0, "lost": 0, "torn": 0}
    examples: dict[str, str] = {}
    for name in names:
        text = read_text(root / name)
        kind = verdict(text, body)
        counts[kind] += 1
        if kind != "right":
            examples.setdefault(kind, f"{name}: {text!r}")
    return counts, examples


def temp_files(root: Path) -> int:
    """Scribe's temp files left in the repository (outside ``.scribe/``)."""
    return sum(1 for _ in root.glob(".scribe-*.tmp"))


def journal_count(db: Path, kind: str, reason: str) -> int | None:
    """Entries of ``kind`` whose payload has this ``reason``, read only."""
    if not db.exists():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute(
            "SELECT count(*) FROM entries WHERE kind = ? AND json_extract(payload, '$.reason') = ?",
            (kind, reason),
        ).fetchone()
    finally:
        con.close()
    return int(row[0])


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost",
         "-c", "commit.gpgsign=false", "-C", str(root), *args],
        check=True, capture_output=True,
    )  # fmt: skip


class Background:
    """A command on a thread: the bench watches its effects while it runs."""

    def __init__(self, argv: list[str]) -> None:
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.returncode: int | None = None
        self.stderr = ""
        self._thread = threading.Thread(target=self._run, args=(argv,), daemon=True)
        self._thread.start()

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        self.ended = time.perf_counter()
        self.returncode, self.stderr = done.returncode, done.stderr

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


# -- the outer edge of the world: a collector and a scraper ---------------------------------


class TraceSink:
    """A stand-in for an OpenTelemetry collector: answers 200 to ``POST /v1/traces``
    and counts requests and bytes. It does not decode them; the bench only needs to
    know that spans left the watcher, and what that cost it."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a collector would

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                found = self.path == "/v1/traces"
                if found:
                    with sink._lock:
                        sink.requests += 1
                        sink.bytes += len(body)
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the bench's output is its table, not access logs

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> TraceSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class Scraper:
    """Prometheus' part: ``GET /metrics`` every ``interval`` while the run lasts.

    Until the first answer it retries every 50 ms, so even a short run is scraped
    (a real Prometheus may come at any instant, including the first second).
    """

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self.ok = 0
        self.failed = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-scraper", daemon=True)

    def _loop(self) -> None:
        while True:
            try:
                with urllib.request.urlopen(self.url, timeout=2.0) as response:
                    self.bytes += len(response.read())
                self.ok += 1
            except OSError:
                self.failed += 1  # not listening yet, or gone
            if self._stop.wait(self.interval if self.ok else 0.05):
                return

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


# -- (1) observability cost -----------------------------------------------------------------


@dataclass
class ObsRun:
    mode: str  # "off" or "on"
    files: int
    rewrites_per_s: float | None = None  # files / write_span_s: the compared figure
    write_span_s: float | None = None  # first temp file seen until every file is stamped
    after_ready_s: float | None = None  # "watching" line until every file is stamped
    external_s: float | None = None  # process start until every file is stamped
    startup_s: float | None = None  # process start until "watching"
    logged_scan_s: float | None = None  # Scribe's "scanned N file(s)" line
    rewrites_logged: int = 0  # "rewrote" JSON lines
    unstamped: int = 0
    cpu_s: float | None = None  # the watcher's user+system CPU over write_span_s
    peak_rss: int = 0
    trace_exports: int = 0
    trace_bytes: int = 0
    scrapes: int = 0
    scrape_failures: int = 0  # includes the tries before the server listened
    scrape_bytes: int = 0
    log: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Observability:
    files: int
    trace_sample: float = 1.0  # share of events the "on" runs traced
    runs: list[ObsRun] = field(default_factory=list)  # off, on, off, on, ...
    costs: list[float | None] = field(default_factory=list)  # per pair: off/on - 1
    median_cost: float | None = None
    proof: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def obs_argv(
    root: Path, *, port: int | None, endpoint: str | None, sample: float = 1.0
) -> list[str]:
    """``off``: no endpoints, warnings only, no OTEL_* variables (the bench removed
    them from its own environment); ``on``: all three, the way production runs it,
    tracing every event or, with ``sample`` < 1, that share of them (the standard
    ratio sampler)."""
    argv = [scribe_executable(), "watch", str(root), "--scan"]
    if port is None or endpoint is None:
        return [*argv, "--listen", "off", "--log-level", "warning"]
    return [
        "env",  # exec's, so the watcher keeps this pid: RSS and signals reach Scribe
        f"OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}",
        *(
            ["OTEL_TRACES_SAMPLER=parentbased_traceidratio", f"OTEL_TRACES_SAMPLER_ARG={sample}"]
            if sample < 1
            else []
        ),
        *argv,
        "--listen",
        f"127.0.0.1:{port}",
        "--log-level",
        "info",
    ]


def first_activity(watch: DirWatch, proc: Watcher, limit_s: float) -> float:
    """When the watcher first touched the directory (its first temp file).

    This marks the start of the work in both modes; the ``watching`` line is an info
    line, so at ``--log-level warning`` it is never written.
    """
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        if watch.read(0.1):
            return time.perf_counter()
        if not alive(proc.pid):
            raise RuntimeError(f"scribe exited before writing anything:\n{tail(proc)}")
    raise RuntimeError(f"scribe wrote nothing within {limit_s:.0f} s:\n{tail(proc)}")


def run_obs(on: bool, cfg: Config, scratch: Path, tag: str) -> ObsRun:
    """(1) One ``--scan`` of files that each need one rewrite."""
    result = ObsRun("on" if on else "off", cfg.obs_files)
    root = scratch / f"obs-{result.mode}{tag}"
    make_repo(root)
    names = [f"o{i:05d}.md" for i in range(cfg.obs_files)]
    for i, name in enumerate(names):
        write_plain(root / name, user_text(f"o{i}", "body 0"))
    sink: TraceSink | None = None
    scraper: Scraper | None = None
    with ExitStack() as stack:  # unwinds scraper, watcher, sink: the last spans are caught
        watch = DirWatch(root, WRITES | int(flags.CREATE))
        stack.callback(watch.close)
        port = endpoint = None
        if on:
            sink = stack.enter_context(TraceSink())
            port, endpoint = free_port(), sink.url
        argv = obs_argv(root, port=port, endpoint=endpoint, sample=cfg.trace_sample)
        proc = stack.enter_context(running(argv))
        if on:
            scraper = stack.enter_context(
                Scraper(f"http://127.0.0.1:{port}/metrics", cfg.scrape_interval)
            )
        began = first_activity(watch, proc, READY_TIMEOUT)
        cpu_began = cpu_seconds(proc.pid)
        tracked = track(
            watch,
            root,
            names,
            lambda t: stamped_with(t, "body 0"),
            deadline_s=cfg.obs_timeout,
            idle_s=10.0,
        )
        result.unstamped = tracked.failing
        cpu_done = cpu_seconds(proc.pid)
        if cpu_began is not None and cpu_done is not None:
            result.cpu_s = cpu_done - cpu_began
        if tracked.done_at is not None:
            result.write_span_s = tracked.done_at - began
            result.rewrites_per_s = cfg.obs_files / result.write_span_s
            result.external_s = tracked.done_at - proc.started_at
            if proc.ready_at is not None:
                result.after_ready_s = tracked.done_at - proc.ready_at
        if proc.ready_at is not None:
            result.startup_s = proc.ready_at - proc.started_at
            proc.wait_line(SCANNED, timeout=5.0)  # logged once the queue is idle
    events = log_events(proc)
    if scanned := named(events, "scanned "):
        result.logged_scan_s = float(scanned[-1].get("duration_ms", 0)) / 1000
    result.rewrites_logged = len(named(events, "rewrote"))
    result.peak_rss = max(proc.peak_rss, proc.vm_hwm or 0)
    result.log = log_summary(proc)
    if sink is not None:
        result.trace_exports, result.trace_bytes = sink.requests, sink.bytes
    if scraper is not None:
        result.scrapes, result.scrape_failures = scraper.ok, scraper.failed
        result.scrape_bytes = scraper.bytes
    if result.unstamped:
        result.error = f"{result.unstamped} file(s) never stamped"
    return result


def run_observability(cfg: Config, scratch: Path, console: Console) -> Observability:
    """(1) Pairs of off and on, interleaved so the disk's and neighbours' mood hits
    both alike; the cost is the median of the pairs' ratios."""
    result = Observability(cfg.obs_files, cfg.trace_sample)
    for i in range(cfg.obs_pairs):
        pair = [
            guarded(
                console,
                f"(1) observability {mode}: --scan of {cfg.obs_files} files "
                f"({i + 1}/{cfg.obs_pairs})",
                partial(run_obs, mode == "on", cfg, scratch, f"-{i}"),
                ObsRun(mode, cfg.obs_files),
            )
            for mode in ("off", "on")
        ]
        result.runs.extend(pair)
        off, on = (run.rewrites_per_s for run in pair)
        result.costs.append(off / on - 1 if off and on else None)
    known = [c for c in result.costs if c is not None]
    result.median_cost = statistics.median(known) if len(known) == len(result.costs) else None
    on_runs = [run for run in result.runs if run.mode == "on"]
    result.proof = {
        "trace_exports": sum(r.trace_exports for r in on_runs),
        "trace_bytes": sum(r.trace_bytes for r in on_runs),
        "scrapes": sum(r.scrapes for r in on_runs),
        "rewrite_log_lines": sum(r.rewrites_logged for r in on_runs),
        # every "on" run exported spans, was scraped and logged its rewrites
        "ok": bool(on_runs)
        and all(r.trace_exports > 0 and r.scrapes > 0 and r.rewrites_logged > 0 for r in on_runs),
    }
    return result


# -- (2) the checkout storm -----------------------------------------------------------------


@dataclass
class Storm:
    files: int
    drain_s: float | None = None  # `git checkout` start until every file is right
    checkout_s: float | None = None  # the same checkout's own time, under the watcher
    checkout_alone_s: float | None = None  # baseline: that checkout with no watcher
    floor_s: float | None = None  # baseline: one thread rewriting every file atomically
    converged: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # verdict -> files, at the end
    examples: dict[str, str] = field(default_factory=dict)
    temp_files: int = 0
    peak_rss: int = 0  # max of sampled RSS and VmHWM, bytes
    sampled_rss: int = 0
    vm_hwm: int | None = None
    overflows: int = 0  # the bench's own inotify overflows (each forces a re-read)
    rewrites_logged: int = 0
    rescans_logged: int = 0  # Scribe's "event queue overflowed; rescanned" warnings
    log: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def make_storm_repo(root: Path, names: list[str]) -> None:
    """A git repository with the files on ``main`` and other bodies on ``other``,
    left on ``main``; ``.scribe/`` is ignored, so the rules survive checkouts."""
    make_repo(root)
    (root / ".gitignore").write_text(".scribe/\n", encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    for branch in ("main", "other"):
        if branch != "main":
            git(root, "checkout", "-q", "-b", branch)
        for i, name in enumerate(names):
            write_plain(root / name, user_text(f"t{i}", f"body {branch}"))
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", branch)
    git(root, "checkout", "-q", "main")


def floor_seconds(root: Path, names: list[str]) -> float:
    """The physical floor: one thread reading each file and writing it back with a
    stamp, crash-safely (temp, fsync, rename, directory fsync), nothing else."""
    started = time.perf_counter()
    for name in names:
        path = root / name
        head, sep, body = (read_text(path) or "").partition("\n---\n")
        now = datetime.now(UTC).strftime(STAMP_FORMAT)
        atomic_write(path, f"{head}\nmodified: {now}{sep}{body}")
    return time.perf_counter() - started


def run_storm(cfg: Config, scratch: Path) -> Storm:
    """(2) A real branch switch replaces every file while the watcher runs."""
    result = Storm(cfg.storm_files)
    names = [f"t{i:05d}.md" for i in range(cfg.storm_files)]
    floor_root = scratch / "storm-floor"
    floor_root.mkdir()
    for i, name in enumerate(names):
        write_plain(floor_root / name, user_text(f"t{i}", "body other"))
    result.floor_s = floor_seconds(floor_root, names)
    root = scratch / "storm"
    make_storm_repo(root, names)
    alone = time.perf_counter()
    git(root, "checkout", "-q", "other")
    result.checkout_alone_s = time.perf_counter() - alone
    git(root, "checkout", "-q", "main")
    watch = DirWatch(root, WRITES)
    try:
        with running([scribe_executable(), "watch", str(root), "--listen", "off"]) as proc:
            proc.wait_ready()
            watch.drain()
            checkout = Background(["git", "-C", str(root), "checkout", "-q", "other"])
            tracked = track(
                watch,
                root,
                names,
                lambda t: right(t, "body other"),
                deadline_s=cfg.storm_timeout,
                idle_s=10.0,
            )
            checkout.join(timeout=cfg.storm_timeout)
            if checkout.returncode not in (0, None):  # None: still running, timed below
                raise RuntimeError(f"git checkout failed: {checkout.stderr.strip()}")
            if checkout.ended is not None:
                result.checkout_s = checkout.ended - checkout.started
            if tracked.done_at is not None:
                result.drain_s = tracked.done_at - checkout.started
            result.converged, result.overflows = tracked.converged, tracked.overflows
            result.vm_hwm = proc.read_hwm()
    finally:
        watch.close()
    result.sampled_rss = proc.peak_rss
    result.peak_rss = max(proc.peak_rss, result.vm_hwm or 0)
    result.counts, result.examples = tally(root, names, "body other")
    result.temp_files = temp_files(root)
    events = log_events(proc)
    result.rewrites_logged = len(named(events, "rewrote"))
    result.rescans_logged = len(named(events, "event queue overflowed"))
    result.log = log_summary(proc)
    return result


# -- (3) hot reload -------------------------------------------------------------------------


@dataclass
class Reload:
    reloads: int
    samples_s: list[float] = field(default_factory=list)  # rules save until the new format
    saves_needed: list[int] = field(default_factory=list)  # note saves until then
    missed: int = 0  # the new format never came within the timeout
    median_s: float | None = None
    max_s: float | None = None
    journaled: int | None = None  # rules.loaded entries with reason "reload"
    reloads_logged: int = 0
    log: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def until_format(
    watch: DirWatch, note: Path, fmt: str, deadline: float, tag: str
) -> tuple[float | None, int]:
    """Save ``note`` again after each rewrite until one is stamped in ``fmt``; return
    when that rewrite was seen and how many saves it took."""
    saves = 0
    while time.perf_counter() < deadline:
        body = f"reload {tag}.{saves}"
        watch.drain()
        write_plain(note, user_text("note", body))
        saves += 1
        seen, _bad = wait_rewrite(watch, note, body, deadline)
        if seen is None:
            break
        match = DOC.fullmatch(read_text(note) or "")
        if match and fits(match["modified"], fmt):
            return seen, saves
        watch.wait_quiet(0.01, limit_s=1.0)  # let the old rules' rewrite finish first
    return None, saves


def run_reload(cfg: Config, scratch: Path) -> Reload:
    """(3) Rules saved with another stamp format, alternating, while notes are saved."""
    result = Reload(cfg.reloads)
    root = scratch / "reload"
    make_repo(root)
    rules, note = root / ".scribe" / "rules.yaml", root / "note.md"
    watch = DirWatch(root, WRITES)
    try:
        with running([scribe_executable(), "watch", str(root), "--listen", "off"]) as proc:
            proc.wait_ready()
            first, _ = until_format(watch, note, STAMP_FORMAT, time.perf_counter() + 10, "w")
            if first is None:
                raise RuntimeError(f"the first note was never stamped:\n{tail(proc)}")
            for k in range(cfg.reloads):
                fmt = SHORT_FORMAT if k % 2 == 0 else STAMP_FORMAT
                watch.wait_quiet(0.05, limit_s=2.0)
                write_plain(rules, RULES.replace(STAMP_FORMAT, fmt))
                saved = time.perf_counter()
                seen, saves = until_format(watch, note, fmt, saved + cfg.reload_timeout, str(k))
                result.saves_needed.append(saves)
                if seen is None:
                    result.missed += 1
                else:
                    result.samples_s.append(seen - saved)
    finally:
        watch.close()
    if result.samples_s:
        result.median_s = statistics.median(result.samples_s)
        result.max_s = max(result.samples_s)
    result.journaled = journal_count(root / ".scribe" / "journal.db", "rules.loaded", "reload")
    result.reloads_logged = len(named(log_events(proc), "rules reloaded"))
    result.log = log_summary(proc)
    return result


# -- (4) graceful stop ----------------------------------------------------------------------


@dataclass
class Stop:
    files: int
    exit_s: float | None = None  # SIGTERM until the process exited
    exit_code: int | None = None
    counts: dict[str, int] = field(default_factory=dict)  # verdict -> files, after exit
    examples: dict[str, str] = field(default_factory=dict)
    temp_files: int = 0
    stopped_ms: float | None = None  # the "stopped" line's duration_ms
    left: int | None = None  # files it says it left for the next start
    caught_up_s: float | None = None  # a restart until every file is stamped (if any was left)
    unstamped_after_restart: int | None = None
    log: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def torn(self) -> int | None:
        """Files neither as the user wrote them nor that plus one valid stamp."""
        if not self.counts:
            return None
        return self.counts["torn"] + self.counts["lost"]


def run_stop(cfg: Config, scratch: Path) -> Stop:
    """(4) SIGTERM right after a burst of new files, then a restart that must catch up."""
    result = Stop(cfg.stop_files)
    root = scratch / "stop"
    make_repo(root)
    names = [f"g{i:05d}.md" for i in range(cfg.stop_files)]
    scribe = [scribe_executable(), "watch", str(root), "--listen", "off"]
    with running(scribe) as proc:
        proc.wait_ready()
        for i, name in enumerate(names):
            write_plain(root / name, user_text(f"g{i}", "body 0"))
        signalled = time.perf_counter()
        os.kill(proc.pid, signal.SIGTERM)
        exited = wait_exit(proc.pid, STOP_TIMEOUT)
        if exited is None:
            os.kill(proc.pid, signal.SIGKILL)  # a second SIGTERM would mean "exit at once"
        else:
            result.exit_s = exited - signalled
        proc.stop()
    result.exit_code = proc.exit_code
    result.counts, result.examples = tally(root, names, "body 0")
    result.temp_files = temp_files(root)
    if stopped := named(log_events(proc), "stopped"):
        result.stopped_ms = stopped[-1].get("duration_ms")
        result.left = stopped[-1].get("left")
    result.log = log_summary(proc)
    if not result.counts["unstamped"]:
        return result  # nothing left for a restart to catch up with
    watch = DirWatch(root, WRITES)
    try:
        with running(scribe) as again:
            tracked = track(
                watch,
                root,
                names,
                lambda t: right(t, "body 0"),
                deadline_s=cfg.catch_up_timeout,
                idle_s=10.0,
            )
            result.unstamped_after_restart = tracked.failing
            if tracked.done_at is not None:
                result.caught_up_s = tracked.done_at - again.started_at
    finally:
        watch.close()
    return result


# -- report ---------------------------------------------------------------------------------


@dataclass
class Row:
    metric: str
    value: float | None
    target: str
    passed: bool | None  # None: information
    baseline: float | None = None
    unit: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.value is not None and self.baseline else None


def at_most(value: float | None, limit: float) -> bool:
    return value is not None and value <= limit


def median_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def obs_rows(obs: Observability) -> list[Row]:
    off = [r for r in obs.runs if r.mode == "off"]
    on = [r for r in obs.runs if r.mode == "on"]

    def med(runs: list[ObsRun], key: str) -> float | None:
        return median_of([getattr(r, key) for r in runs])

    cost = obs.median_cost
    rows = [
        Row(f"(1) rewrites/s, --scan of {obs.files} files: on (baseline off)",
            med(on, "rewrites_per_s"), "info", None, med(off, "rewrites_per_s")),
        Row(f"  observability cost: off/on - 1, median of {len(obs.costs)} pair(s)"
            + (f", traces sampled at {obs.trace_sample:g}" if obs.trace_sample < 1 else ""),
            None if cost is None else cost * 100, "<= 10 %",
            at_most(cost, 0.10) and bool(obs.proof.get("ok")), unit="%"),
    ]  # fmt: skip
    for i, (a, b) in enumerate(zip(off, on, strict=False)):
        c = obs.costs[i] if i < len(obs.costs) else None
        label = "—" if c is None else f"{c * 100:+.1f} %"
        rows.append(
            Row(f"    pair {i + 1}: on (baseline off), cost {label}",
                b.rewrites_per_s, "info", None, a.rewrites_per_s)
        )  # fmt: skip
    rows += [
        Row("  process start until all stamped: on (baseline off)", med(on, "external_s"),
            "info", None, med(off, "external_s"), "s"),
        Row("  'watching' until all stamped (on)", med(on, "after_ready_s"), "info", None,
            unit="s"),
        Row("  scan as logged by scribe (on)", med(on, "logged_scan_s"), "info", None, unit="s"),
        Row("  watcher CPU over the same span: on (baseline off)", med(on, "cpu_s"), "info",
            None, med(off, "cpu_s"), "s"),
        Row("  peak RSS: on (baseline off)", median_of([r.peak_rss / MB for r in on]), "info",
            None, median_of([r.peak_rss / MB for r in off]), "MB"),
        Row("  proof: OTLP exports received", obs.proof.get("trace_exports"), "> 0",
            bool(obs.proof.get("trace_exports"))),
        Row("  proof: /metrics scrapes answered", obs.proof.get("scrapes"), "> 0",
            bool(obs.proof.get("scrapes"))),
        Row("  proof: 'rewrote' log lines", obs.proof.get("rewrite_log_lines"), "> 0",
            bool(obs.proof.get("rewrite_log_lines"))),
    ]  # fmt: skip
    return rows


def storm_rows(s: Storm) -> list[Row]:
    c = s.counts
    bad = c["lost"] + c["torn"] + c["unstamped"] if c else None
    detail = f"{c['lost']} lost, {c['torn']} torn, {c['unstamped']} unstamped" if c else "—"
    return [
        Row(f"(2) storm: git checkout of {s.files} files until all right (baseline floor)",
            s.drain_s, "<= 15 s", s.error is None and at_most(s.drain_s, 15), s.floor_s, "s"),
        Row("  drain (baseline: the same checkout alone)", s.drain_s, "info", None,
            s.checkout_alone_s, "s"),
        Row("  git checkout under the watcher (baseline: alone)", s.checkout_s, "info", None,
            s.checkout_alone_s, "s"),
        Row("  peak RSS", s.peak_rss / MB if s.peak_rss else None, "<= 150 MB",
            s.error is None and 0 < s.peak_rss / MB <= 150, unit="MB"),
        Row(f"  files not right ({detail})", None if bad is None else float(bad), "0",
            s.error is None and bad == 0),
        Row("  temp files left", float(s.temp_files), "info", None),
        Row("  rewrites logged", float(s.rewrites_logged), "info", None),
        Row("  'event queue overflowed' warnings", float(s.rescans_logged), "info", None),
    ]  # fmt: skip


def reload_rows(r: Reload) -> list[Row]:
    ok = r.error is None and r.missed == 0
    return [
        Row(f"(3) hot reload: rules save until the note follows, median of {r.reloads}",
            r.median_s, "<= 1 s", ok and at_most(r.median_s, 1.0), unit="s"),
        Row("  max", r.max_s, "<= 1 s", ok and at_most(r.max_s, 1.0), unit="s"),
        Row("  reloads that never took effect", float(r.missed), "info", None),
        Row("  rules.loaded (reason reload) journaled (baseline: saves)",
            None if r.journaled is None else float(r.journaled), "info", None, float(r.reloads)),
    ]  # fmt: skip


def stop_rows(s: Stop) -> list[Row]:
    torn = s.torn
    unstamped = s.counts.get("unstamped") if s.counts else None
    return [
        Row(f"(4) graceful stop, {s.files} files just created: SIGTERM until exit",
            s.exit_s, "<= 5 s", s.error is None and at_most(s.exit_s, 5.0), unit="s"),
        Row("  exit code", None if s.exit_code is None else float(s.exit_code), "0",
            s.error is None and s.exit_code == 0),
        Row("  torn files", None if torn is None else float(torn), "0",
            s.error is None and torn == 0),
        Row("  'stopped' line duration_ms", s.stopped_ms, "info", None, unit="ms"),
        Row("  left unstamped at exit (baseline: 'left' in the log)",
            None if unstamped is None else float(unstamped), "info", None,
            None if s.left is None else float(s.left)),
        Row("  restart until all caught up (if any was left)", s.caught_up_s, "info", None,
            unit="s"),
        Row("  still unstamped after the restart",
            None if s.unstamped_after_restart is None else float(s.unstamped_after_restart),
            "info", None),
    ]  # fmt: skip


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == int(value) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


COLUMNS = ("metric", "scribe", "baseline", "ratio", "target", "pass")


def render(rows: list[Row], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("metric", "target") else "right")
    for row in rows:
        verdict = "—" if row.passed is None else "[green]pass[/]" if row.passed else "[red]FAIL[/]"
        table.add_row(
            row.metric + (f" ({row.unit})" if row.unit else ""),
            fmt(row.value),
            fmt(row.baseline),
            "—" if row.ratio is None else f"{row.ratio:.2f}x",
            row.target,
            verdict,
        )
    return table


# -- main -----------------------------------------------------------------------------------


def run(cfg: Config, out: Path, *, keep: bool, quick: bool) -> dict[str, Any]:
    console = Console(stderr=True)
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        del os.environ[name]  # "off" means off; "on" sets its own endpoint
    scratch = Path(tempfile.mkdtemp(prefix="scribe-ops-", dir="/tmp"))
    started = time.perf_counter()
    load_before = os.getloadavg()
    try:
        obs = guarded(
            console, "(1) observability cost",
            partial(run_observability, cfg, scratch, console),
            Observability(cfg.obs_files, cfg.trace_sample),
        )  # fmt: skip
        storm = guarded(
            console, f"(2) storm: git checkout of {cfg.storm_files} files",
            partial(run_storm, cfg, scratch), Storm(cfg.storm_files),
        )  # fmt: skip
        reload = guarded(
            console, f"(3) hot reload, {cfg.reloads} rules saves",
            partial(run_reload, cfg, scratch), Reload(cfg.reloads),
        )  # fmt: skip
        stop = guarded(
            console, f"(4) graceful stop with {cfg.stop_files} files queued",
            partial(run_stop, cfg, scratch), Stop(cfg.stop_files),
        )  # fmt: skip
    finally:
        if keep:
            console.print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    rows = [*obs_rows(obs), *storm_rows(storm), *reload_rows(reload), *stop_rows(stop)]
    elapsed = time.perf_counter() - started
    title = f"scribe operations benchmark ({'quick' if quick else 'full'} run, {elapsed:.0f} s)"
    Console(width=max(Console().width, 132)).print(render(rows, title))
    return write_report(
        out,
        console,
        quick=quick,
        elapsed=elapsed,
        cfg=cfg,
        load_before=load_before,
        all_pass=all(row.passed for row in rows if row.passed is not None),
        proof=obs.proof,
        summary=[
            {
                "metric": row.metric,
                "unit": row.unit,
                "scribe": row.value,
                "baseline": row.baseline,
                "ratio": row.ratio,
                "target": row.target,
                "pass": row.passed,
            }
            for row in rows
        ],
        observability=asdict(obs),
        storm=asdict(storm),
        reload=asdict(reload),
        stop={**asdict(stop), "torn": stop.torn},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark operating `scribe watch`.")
    parser.add_argument("--quick", action="store_true", help="10x smaller workload (smoke run)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory in /tmp")
    parser.add_argument(
        "--trace-sample",
        type=float,
        default=1.0,
        help="share of events traced in the 'on' runs (standard ratio sampler; default all)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        cfg = replace(QUICK if args.quick else FULL, trace_sample=args.trace_sample)
        run(cfg, args.out, keep=args.keep, quick=args.quick)
    except KeyboardInterrupt:
        print("interrupted; watchers stopped, scratch directory removed", file=sys.stderr)
        return 130
    return 0  # a missed target is a result, not an error: see "all_pass" in the JSON


if __name__ == "__main__":
    sys.exit(main())

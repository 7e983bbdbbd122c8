"""End-to-end benchmark of ``scribe watch`` on real files, against two yardsticks.

Everything is measured from the outside, the way a user experiences it: real
subprocesses, real files under /tmp, plain ``open``/``write``/``close`` saves, and
the bench's own inotify watch to see rewrites land. The same harness drives three
watchers so the numbers compare like for like:

* ``scribe``: the real console script, ``scribe watch ROOT``;
* ``naive``:  ``bench/naive.py``, a regex-and-plain-write loop with no guarantees;
* ``floor``:  this file with ``--floor ROOT``, which does nothing but wait on
  inotify and make one atomic write (temp, fsync, rename, directory fsync): no
  implementation of the rule can beat it, so ``scribe/floor`` is Scribe's overhead.

Phases: (a) latency of sequential edits, (b) throughput of a burst of edits over
many files with correctness checks, (c) peak RSS while doing (b), (d) ``--scan``
of many existing files. Run ``.venv/bin/python bench/engine.py [--quick] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import compileall
import ctypes
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

import psutil  # type: ignore[import-untyped]
import yaml
from inotify_simple import INotify, flags
from rich.console import Console
from rich.table import Table

import scribe

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

BENCH_DIR = Path(__file__).resolve().parent
NAIVE_SCRIPT = BENCH_DIR / "naive.py"
DEFAULT_OUT = BENCH_DIR / "results" / "engine.json"

RULES = """\
rules:
  - id: stamp
    on: [created, modified]
    paths: ["**/*.md"]
    do:
      - set: {field: modified, value: "{{ now('%Y-%m-%dT%H:%M:%S.%fZ') }}"}
"""
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: The only shape a file may have in this workload: the user's frontmatter, at most
#: one ``modified`` line added after ``title``, and a one-line body (possibly lost).
DOC = re.compile(
    r"---\ntitle: (?P<title>[^\n]*)\n(?:modified: (?P<modified>[^\n]*)\n)?---\n(?P<body>[^\n]*\n)?"
)
BODY_ROUND = re.compile(r"^body round (\d+)$", re.MULTILINE)
SCANNED = re.compile(r"scanned (\d+) file\(s\) in ([0-9.]+) s")

WRITES = int(flags.CLOSE_WRITE | flags.MOVED_TO)  # a file's content was (re)placed
ACTIVITY = WRITES | int(flags.CREATE | flags.DELETE | flags.MODIFY | flags.MOVED_FROM)
OVERFLOW = int(flags.Q_OVERFLOW)

READY_TIMEOUT = 60.0  # a watcher must log "watching" within this
EDIT_TIMEOUT = 2.0  # one latency edit must be rewritten within this
MAX_MISSED = 20  # give up the latency phase after this many unanswered edits
STOP_TIMEOUT = 10.0  # SIGTERM, then SIGKILL after this
RSS_INTERVAL = 0.02


@dataclass(frozen=True)
class Config:
    """Workload sizes; ``--quick`` shrinks every phase by 10x."""

    edits: int  # (a) sequential edits measured
    files: int  # (b) files edited in the burst
    rounds: int  # (b) edits per file
    scan_files: int  # (d) files present before ``--scan``
    gap_ms: int  # (a) quiet time after each rewrite before the next edit (user think time)
    warmup: int = 5  # (a) edits not measured
    drain_timeout: float = 60.0  # (b) bound on the drain
    drain_idle: float = 2.0  # (b) no file event for this long: the watcher has given up
    scan_timeout: float = 90.0  # (d) bound on the scan
    quiescence: float = 1.0  # (b) window in which any further rewrite is an echo
    drain_rounds: int = 5  # (b) interleaved rounds of every watcher; the median run counts


FULL = Config(edits=500, files=1000, rounds=5, scan_files=10_000, gap_ms=10)
QUICK = Config(edits=50, files=100, rounds=5, scan_files=1_000, gap_ms=10, drain_rounds=1)


# -- files ------------------------------------------------------------------------


def user_text(title: str, body: str) -> str:
    """What the simulated user saves: their frontmatter (no ``modified``) and a body."""
    return f"---\ntitle: {title}\n---\n{body}\n"


def write_plain(path: Path, text: str) -> None:
    """A user's save: truncate and write in place, like most tools and shells do."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def make_repo(root: Path, config: str = "") -> None:
    (root / ".scribe").mkdir(parents=True)
    (root / ".scribe" / "rules.yaml").write_text(RULES, encoding="utf-8")
    if config:
        (root / "scribe.yaml").write_text(config, encoding="utf-8")


def parse_stamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:  # quoted or plain: either is valid YAML for the same stamp
        return datetime.strptime(value.strip("'\""), STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def stamped_with(text: str, body: str) -> bool:
    """True when ``text`` is well formed, carries a stamp, and has exactly ``body``."""
    match = DOC.fullmatch(text)
    return bool(match and match["modified"] and match["body"] == body + "\n")


def is_corrupt(text: str | None) -> bool:
    """Unreadable, not the expected shape, unparseable frontmatter, or stamped twice."""
    if text is None:
        return True
    match = DOC.fullmatch(text)
    if match is None or text.count("\nmodified:") > 1 or text.count("---\n") != 2:
        return True
    try:
        fields = yaml.load(text.split("---\n")[1], Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return True
    return not isinstance(fields, dict) or "title" not in fields


# -- inotify ----------------------------------------------------------------------


class DirWatch:
    """The bench's own eyes: one inotify watch on a flat directory.

    Blocking reads with a timeout, so waiting for a rewrite costs no CPU and wakes
    within microseconds of the kernel event; an overflow is reported as a name-less
    ``OVERFLOW`` event so callers can fall back to re-reading everything.
    """

    def __init__(self, root: Path, mask: int) -> None:
        self._inotify: Any = INotify()
        self._inotify.add_watch(root, mask)

    def read(self, timeout_s: float) -> list[tuple[int, str]]:
        timeout_ms = max(0, int(timeout_s * 1000 + 0.999))
        return [(int(e.mask), str(e.name)) for e in self._inotify.read(timeout=timeout_ms)]

    def drain(self) -> int:
        """Discard what is queued; return how many events that was."""
        count = 0
        while events := self.read(0):
            count += len(events)
        return count

    def wait_quiet(self, quiet_s: float, limit_s: float) -> bool:
        """Block until no event arrives for ``quiet_s`` (False if ``limit_s`` passes first)."""
        deadline = time.perf_counter() + limit_s
        while (remaining := deadline - time.perf_counter()) > 0:
            if not self.read(min(quiet_s, remaining)):
                return True
        return False

    def close(self) -> None:
        self._inotify.close()


# -- the watcher under test ---------------------------------------------------------


def _die_with_parent() -> None:
    """Child-side: get SIGTERM if the bench dies, so no watcher outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Watcher:
    """A watcher run as a real subprocess: its stderr lines and its memory.

    stderr is drained by a thread (Scribe logs every rewrite; a full pipe would stall
    it); RSS is sampled by another, and VmHWM read from /proc just before stopping.
    """

    def __init__(self, argv: list[str], *, marker: str = "watching") -> None:
        self.argv = argv
        self.marker = marker
        self.lines: list[str] = []
        self.peak_rss = 0
        self.vm_hwm: int | None = None
        self.started_at = 0.0
        self.ready_at: float | None = None
        self.exit_code: int | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._popen is not None
        return self._popen.pid

    def start(self) -> None:
        env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
        self.started_at = time.perf_counter()
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=_die_with_parent,
        )
        assert self._popen.stderr is not None
        stderr = self._popen.stderr
        for target, name in (
            (lambda: self._read_stderr(stderr), "stderr"),
            (self._sample_rss, "rss"),
        ):
            thread = threading.Thread(target=target, name=f"bench-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
            if self.ready_at is None and self.marker in line:
                self.ready_at = time.perf_counter()
                self._ready.set()

    def _sample_rss(self) -> None:
        try:
            process = psutil.Process(self.pid)
            while True:
                self.peak_rss = max(self.peak_rss, int(process.memory_info().rss))
                if self._done.wait(RSS_INTERVAL):
                    return
        except psutil.Error:
            return  # exited

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.perf_counter() + timeout
        while not self._ready.wait(0.05):
            assert self._popen is not None
            if self._popen.poll() is not None or time.perf_counter() > deadline:
                tail = "\n".join(self.lines[-20:])
                raise RuntimeError(f"{self.argv[0]} did not become ready:\n{tail}")

    def wait_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        """The first stderr line matching ``pattern``, waiting at most ``timeout``."""
        deadline = time.perf_counter() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if match := pattern.search(line):
                        return match
                seen = len(self.lines)
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def count(self, needle: str) -> int:
        with self._cond:
            return sum(needle in line for line in self.lines)

    def read_hwm(self) -> int | None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) * 1024 if match else None

    def stop(self) -> None:
        """SIGTERM (Scribe finishes in-flight writes), then SIGKILL; always reaped."""
        if self._popen is None:
            return
        if self._popen.poll() is None:
            self.vm_hwm = self.read_hwm()
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(STOP_TIMEOUT)
        self.exit_code = self._popen.returncode
        self._done.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        if self._popen.stderr is not None:
            self._popen.stderr.close()


@contextmanager
def running(argv: list[str]) -> Iterator[Watcher]:
    watcher = Watcher(argv)
    try:
        watcher.start()
        yield watcher
    finally:
        watcher.stop()


LOG_NEEDLES = {
    "rewrote": '"event": "rewrote"',  # Scribe's JSON log lines
    "re_planned": "changed while planning",
    "not_written": "not written",
    "rule_failed": "failed on",
    "worker_failed": "failed to process",
    "overflowed": "overflowed",
    "errors": '"level": "error"',
    "warnings": '"level": "warning"',
    "tracebacks": "Traceback",
}


def log_counts(proc: Watcher) -> dict[str, int]:
    """Notable stderr lines; the naive loop reports its rewrite count when stopped."""
    counts = {key: proc.count(needle) for key, needle in LOG_NEEDLES.items()}
    if match := proc.wait_line(re.compile(r"naive: (\d+) rewrite"), 0):
        counts["rewrote"] = int(match.group(1))
    if proc.exit_code is not None:  # once stopped: a clean SIGTERM shutdown gives 0
        counts["exit_code"] = proc.exit_code
    return counts


@dataclass(frozen=True)
class System:
    """How to start one of the watchers being compared."""

    name: str
    argv: Callable[[Path, bool], list[str]]  # (root, scan) -> command line
    config: str = ""  # scribe.yaml for its repositories


def scribe_executable() -> str:
    """The console script: next to this interpreter first (the venv), else on PATH.

    The package's bytecode is compiled first. Where ``PYTHONDONTWRITEBYTECODE`` is
    set, no process caches it, so each timed start would pay for compiling every
    module again (half a second here), which no installed copy does.
    """
    compileall.compile_dir(Path(scribe.__file__).parent, quiet=1)
    beside = Path(sys.executable).with_name("scribe")
    if beside.is_file():
        return str(beside)
    found = shutil.which("scribe")
    if found is None:
        raise SystemExit("cannot find the `scribe` console script; install the project first")
    return found


def systems() -> dict[str, System]:
    scribe = scribe_executable()
    return {
        "scribe": System(
            "scribe", lambda root, scan: [scribe, "watch", str(root), *(["--scan"] if scan else [])]
        ),
        "scribe-no-journal": System(
            "scribe-no-journal",
            lambda root, scan: [scribe, "watch", str(root), *(["--scan"] if scan else [])],
            config="journal: false\n",
        ),
        "naive": System(
            "naive",
            lambda root, scan: [
                sys.executable,
                str(NAIVE_SCRIPT),
                str(root),
                *(["--scan"] if scan else []),
            ],
        ),
        "floor": System(
            "floor",
            lambda root, scan: [
                sys.executable,
                str(Path(__file__).resolve()),
                "--floor",
                str(root),
                *(["--scan"] if scan else []),
            ],
        ),
    }


# -- (a) latency ------------------------------------------------------------------


@dataclass
class Latency:
    edits: int
    samples_ms: list[float] = field(default_factory=list)
    missed: int = 0  # no rewrite within EDIT_TIMEOUT
    bad: int = 0  # a rewrite appeared with content other than the user's body plus a stamp
    p50_ms: float | None = None
    p95_ms: float | None = None
    mean_ms: float | None = None
    max_ms: float | None = None
    rewrites_logged: int | None = (
        None  # what the watcher says it rewrote (edits + warmup if no echo)
    )
    error: str | None = None

    def summarise(self) -> None:
        if self.samples_ms:
            ordered = sorted(self.samples_ms)
            self.p50_ms = percentile(ordered, 50)
            self.p95_ms = percentile(ordered, 95)
            self.mean_ms = statistics.fmean(ordered)
            self.max_ms = ordered[-1]


def percentile(ordered: list[float], pct: float) -> float:
    """Linear-interpolated percentile of already sorted samples."""
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def wait_rewrite(
    watch: DirWatch, path: Path, body: str, deadline: float
) -> tuple[float | None, int]:
    """Block until ``path`` holds ``body`` with a stamp; return (time it was seen, bad rewrites).

    The time is taken when inotify wakes us, before reading, so reading and
    verifying are not charged to the watcher.
    """
    bad = 0
    while (remaining := deadline - time.perf_counter()) > 0:
        for mask, name in watch.read(remaining):
            if name != path.name or not mask & WRITES:
                continue
            seen = time.perf_counter()
            text = read_text(path) or ""
            if "modified:" not in text:
                continue  # the user's own save
            if stamped_with(text, body):
                return seen, bad
            bad += 1
    return None, bad


def run_latency(system: System, cfg: Config, scratch: Path, console: Console) -> Latency:
    """(a) One file, sequential saves; each waits for the previous rewrite to settle."""
    root = scratch / f"latency-{system.name}"
    make_repo(root)
    target = root / "note.md"
    result = Latency(edits=cfg.edits)
    watch = DirWatch(root, ACTIVITY)
    try:
        with running(system.argv(root, False)) as proc:
            proc.wait_ready()
            for i in range(cfg.warmup + cfg.edits):
                watch.drain()
                body = f"body {i}"
                write_plain(target, user_text("n", body))
                t0 = time.perf_counter()
                seen, bad = wait_rewrite(watch, target, body, t0 + EDIT_TIMEOUT)
                if seen is not None:  # let the watcher finish (echo, state) before the next save
                    watch.wait_quiet(cfg.gap_ms / 1000, limit_s=1.0)
                if i < cfg.warmup:
                    continue
                result.bad += bad
                if seen is not None:
                    result.samples_ms.append((seen - t0) * 1000)
                    continue
                result.missed += 1
                if result.missed >= MAX_MISSED:
                    console.print(f"[red]{system.name}: {result.missed} saves unanswered; stop[/]")
                    break
        if system.name != "floor":
            result.rewrites_logged = log_counts(proc)["rewrote"]
    finally:
        watch.close()
    result.summarise()
    return result


# -- (b) throughput, (c) memory ---------------------------------------------------------


@dataclass
class Tracked:
    converged: bool  # every file passed the check
    done_at: float | None  # perf_counter when the last file passed
    last_event_at: float  # perf_counter of the last file event seen
    failing: int  # files still failing the check at the end
    overflows: int


def track(
    watch: DirWatch,
    root: Path,
    names: list[str],
    ok: Callable[[str], bool],
    *,
    deadline_s: float,
    idle_s: float,
) -> Tracked:
    """Wait until every file passes ``ok``, re-reading a file only when it changes.

    A file can pass and later fail again (a clobber); it is simply re-checked. Ends
    when all pass, when no file event arrives for ``idle_s`` (the watcher has
    stopped working), or at ``deadline_s``.
    """
    wanted = set(names)
    failing: set[str] = set()
    overflows = 0

    def check(name: str) -> None:
        text = read_text(root / name)
        if text is not None and ok(text):
            failing.discard(name)
        else:
            failing.add(name)

    for name in names:
        check(name)
    start = last = time.perf_counter()
    done_at = start if not failing else None
    deadline = start + deadline_s
    while failing and (remaining := deadline - time.perf_counter()) > 0:
        events = watch.read(min(remaining, idle_s))
        now = time.perf_counter()
        if not events:
            if now - last >= idle_s:
                break
            continue
        last = now
        for mask, name in events:
            if mask & OVERFLOW:
                overflows += 1
                for each in names:
                    check(each)
            elif mask & WRITES and name in wanted:
                check(name)
        if not failing:
            done_at = now
    return Tracked(not failing, done_at, last, len(failing), overflows)


def count_rewrites(watch: DirWatch, names: set[str], window_s: float) -> int:
    """Content replacements of any of ``names`` during the next ``window_s``."""
    count = 0
    deadline = time.perf_counter() + window_s
    while (remaining := deadline - time.perf_counter()) > 0:
        for mask, name in watch.read(remaining):
            if mask & WRITES and name in names:
                count += 1
    return count


@dataclass
class Verdicts:
    """The final state of every file, from the user's point of view."""

    ok: int = 0
    lost: int = 0  # the last body the user wrote is not there, and no older one is either
    clobbered: int = 0  # an older body of the user's replaced their last one
    corrupt: int = 0  # not the expected shape / frontmatter unparseable / stamped twice
    unstamped: int = 0  # right body, no stamp: never rewritten after the last edit
    stale_stamps: int = 0  # a stamp older than the user's last save of that file
    max_stale_ms: float = 0.0  # by how much, at worst
    examples: dict[str, str] = field(default_factory=dict)  # one file's content per problem


def classify(
    root: Path, names: list[str], final_round: int, last_saved: dict[str, datetime]
) -> Verdicts:
    verdicts = Verdicts()
    for name in names:
        text = read_text(root / name)
        problems: list[str] = []
        rounds = BODY_ROUND.findall(text or "")
        if not rounds:
            problems.append("lost")
        elif int(rounds[-1]) != final_round:
            problems.append("clobbered")
        if is_corrupt(text):
            problems.append("corrupt")
        match = DOC.fullmatch(text or "")
        if match and not match["modified"]:
            problems.append("unstamped")
        stamp = parse_stamp(match["modified"]) if match else None
        if stamp is not None and name in last_saved and stamp < last_saved[name]:
            problems.append("stale_stamps")
            stale_ms = (last_saved[name] - stamp).total_seconds() * 1000
            verdicts.max_stale_ms = max(verdicts.max_stale_ms, stale_ms)
        for problem in problems:
            setattr(verdicts, problem, getattr(verdicts, problem) + 1)
            verdicts.examples.setdefault(problem, f"{name}: {text!r}")
        verdicts.ok += not problems
    return verdicts


@dataclass
class Throughput:
    files: int
    edits: int
    settle_s: float | None = None  # creating the files until all were stamped
    write_s: float = 0.0  # how long the simulated user took to make every edit
    drain_s: float | None = None  # first edit until every file is right (or activity stopped)
    converged: bool = False  # every file ended with its last body and a stamp
    rewrites_per_s: float | None = None  # files / drain_s: files brought right per second
    made_per_s: float | None = None  # rewrites Scribe made during the drain / drain_s
    verdicts: Verdicts = field(default_factory=Verdicts)
    echo_rewrites: int = 0  # rewrites in the quiescence window after the drain
    overflows: int = 0  # bench-side inotify overflows (each forces a full re-read)
    peak_rss: int = 0  # sampled RSS, bytes
    vm_hwm: int | None = None  # kernel high-water mark, bytes
    create_unlink_us: float | None = None  # µs per create + unlink there, before the run
    burst_rewrites: int | None = None  # rewrites Scribe logged from the first edit to the end
    log: dict[str, int] = field(default_factory=dict)  # counts of notable stderr lines
    error: str | None = None


def create_unlink_us(directory: Path, count: int = 100) -> float:
    """Mean microseconds to create, close and delete an empty file in ``directory``:
    what the file system charges for the new inode every crash-safe replace needs
    (naive's in-place writes need none). On ext4 without a journal it grows with
    the inodes deleted in the last few minutes, which each allocation steps over,
    so it shows how much the disk's recent history weighs on a run."""
    started = time.perf_counter()
    for i in range(count):
        path = directory / f".probe-{i}"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
        path.unlink()
    return (time.perf_counter() - started) / count * 1e6


def run_throughput(system: System, cfg: Config, scratch: Path, tag: str = "") -> Throughput:
    """(b)+(c) Many files settled, then rounds of saves as fast as one writer can go."""
    root = scratch / f"throughput-{system.name}{tag}"
    make_repo(root, system.config)
    names = [f"n{i:04d}.md" for i in range(cfg.files)]
    result = Throughput(files=cfg.files, edits=cfg.files * cfg.rounds)
    last_saved: dict[str, datetime] = {}
    final = f"body round {cfg.rounds}"
    result.create_unlink_us = create_unlink_us(root)
    watch = DirWatch(root, WRITES)
    try:
        with running(system.argv(root, False)) as proc:
            proc.wait_ready()
            created = time.perf_counter()
            for i, name in enumerate(names):
                write_plain(root / name, user_text(f"n{i}", "body round 0"))
            settled = track(
                watch,
                root,
                names,
                lambda t: stamped_with(t, "body round 0"),
                deadline_s=cfg.drain_timeout,
                idle_s=5.0,
            )
            result.settle_s = settled.done_at - created if settled.done_at else None
            watch.wait_quiet(0.5, limit_s=10.0)
            watch.drain()

            logged_before = proc.count(LOG_NEEDLES["rewrote"])
            first = time.perf_counter()
            for r in range(1, cfg.rounds + 1):
                for i, name in enumerate(names):
                    last_saved[name] = datetime.now(UTC)
                    write_plain(root / name, user_text(f"n{i}", f"body round {r}"))
            result.write_s = time.perf_counter() - first
            drained = track(
                watch,
                root,
                names,
                lambda t: stamped_with(t, final),
                deadline_s=cfg.drain_timeout,
                idle_s=cfg.drain_idle,
            )
            end = drained.done_at if drained.done_at is not None else drained.last_event_at
            result.drain_s = end - first
            result.converged = drained.converged
            result.overflows = settled.overflows + drained.overflows
            result.rewrites_per_s = cfg.files / result.drain_s if result.drain_s > 0 else None
            # Events still queued were caused before the drain was seen to end: only
            # what happens from now on is a rewrite after quiescence.
            watch.drain()
            result.echo_rewrites = count_rewrites(watch, set(names), cfg.quiescence)
            result.verdicts = classify(root, names, cfg.rounds, last_saved)
            result.vm_hwm = proc.read_hwm()
            if system.name == "scribe":
                result.burst_rewrites = proc.count(LOG_NEEDLES["rewrote"]) - logged_before
                if result.drain_s and result.drain_s > 0:
                    result.made_per_s = result.burst_rewrites / result.drain_s
        result.peak_rss = max(proc.peak_rss, proc.vm_hwm or 0, result.vm_hwm or 0)
        result.log = log_counts(proc)
    finally:
        watch.close()
    return result


# -- (d) scan ---------------------------------------------------------------------


@dataclass
class Scan:
    files: int
    external_s: float | None = None  # process start until every file is stamped (authoritative)
    after_ready_s: float | None = None  # from the "watching" line until every file is stamped
    logged_s: float | None = None  # what Scribe itself reports ("scanned N file(s) in X s")
    logged_files: int | None = None
    startup_s: float | None = None  # process start until "watching"
    stamped: int = 0
    unstamped: int = 0
    corrupt: int = 0
    peak_rss: int = 0
    log: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def run_scan(system: System, cfg: Config, scratch: Path) -> Scan:
    """(d) Files that exist before the watcher starts, stamped by ``--scan``."""
    root = scratch / f"scan-{system.name}"
    make_repo(root)
    names = [f"s{i:05d}.md" for i in range(cfg.scan_files)]
    for i, name in enumerate(names):
        write_plain(root / name, user_text(f"s{i}", "body 0"))
    result = Scan(files=cfg.scan_files)
    watch = DirWatch(root, WRITES)
    try:
        with running(system.argv(root, True)) as proc:
            tracked = track(
                watch,
                root,
                names,
                lambda t: stamped_with(t, "body 0"),
                deadline_s=cfg.scan_timeout,
                idle_s=cfg.scan_timeout / 3,
            )
            if tracked.done_at is not None:
                result.external_s = tracked.done_at - proc.started_at
                if proc.ready_at is not None:
                    result.after_ready_s = tracked.done_at - proc.ready_at
            if proc.ready_at is not None:
                result.startup_s = proc.ready_at - proc.started_at
            if match := proc.wait_line(SCANNED, timeout=10.0 if tracked.converged else 0.5):
                result.logged_files, result.logged_s = int(match.group(1)), float(match.group(2))
            for name in names:
                text = read_text(root / name) or ""
                result.stamped += stamped_with(text, "body 0")
                result.corrupt += is_corrupt(text)
            result.unstamped = cfg.scan_files - result.stamped
        result.peak_rss = max(proc.peak_rss, proc.vm_hwm or 0)
        result.log = log_counts(proc)
    finally:
        watch.close()
    return result


# -- the physical floor -----------------------------------------------------------------


def atomic_write(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename over, fsync the directory."""
    tmp = path.with_name(f".floor-{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def floor_main(root: Path, *, scan: bool) -> int:
    """The least any watcher can do: hear the close, write the stamp atomically.

    One thread, no checks, no coalescing: every close (and, with ``scan``, every
    existing file) costs exactly one read and one crash-safe replace.
    """
    inotify: Any = INotify()
    inotify.add_watch(root, flags.CLOSE_WRITE)
    print("watching", root, file=sys.stderr, flush=True)
    if scan:
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            _floor_stamp(root, entry.name)
    while True:
        for event in inotify.read():
            _floor_stamp(root, str(event.name))


def _floor_stamp(root: Path, name: str) -> None:
    if not name.endswith(".md") or name.startswith("."):
        return
    path = root / name
    text = read_text(path)
    if text is None or "modified:" in text:
        return
    head, sep, body = text.partition("\n---\n")
    now = datetime.now(UTC).strftime(STAMP_FORMAT)
    atomic_write(path, f"{head}\nmodified: {now}{sep}{body}")


# -- report -----------------------------------------------------------------------------

MB = 1024 * 1024


@dataclass
class Row:
    metric: str
    values: dict[str, float | None]  # per system
    target: str
    passed: bool | None  # Scribe against the target; None: informational
    unit: str = ""
    compare: bool = True  # ratios are meaningful (not for counts that should be 0)


def rate(count: int, seconds: float | None) -> float | None:
    return count / seconds if seconds else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass
class Line:
    """A table row shared by the benches: Scribe's value beside each baseline's,
    measured in the same run (``unit`` "count" for things that must be 0 or match)."""

    metric: str
    unit: str
    scribe: float | None
    baselines: dict[str, float | None] = field(default_factory=dict)
    target: str = "info"
    passed: bool | None = None

    def ratios(self) -> dict[str, float | None]:
        """Scribe's value divided by each baseline's."""
        return {f"scribe/{name}": ratio(self.scribe, v) for name, v in self.baselines.items()}


def cell(value: float | None, unit: str) -> str:
    """A value as the tables show it: counts and large values whole, others to 2 places."""
    if value is None:
        return "—"
    if unit == "count" or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def lines_table(title: str, lines: list[Line], baselines: list[str]) -> Table:
    """``lines`` as a table: Scribe, each baseline, Scribe's ratio to each, the target."""
    table = Table(title=title, title_justify="left")
    columns = ("metric", "scribe", *baselines, *(f"scribe/{n}" for n in baselines))
    for column in (*columns, "target", "pass"):
        table.add_column(column, justify="left" if column in ("metric", "target") else "right")
    for line in lines:
        ratios = line.ratios()
        verdict = (
            "—" if line.passed is None else "[green]pass[/]" if line.passed else "[red]FAIL[/]"
        )
        table.add_row(
            f"{line.metric} ({line.unit})", cell(line.scribe, line.unit),
            *(cell(line.baselines.get(n), line.unit) for n in baselines),
            *("—" if line.unit == "count" or (r := ratios.get(f"scribe/{n}")) is None
              else f"{r:.3g}x" for n in baselines),
            line.target, verdict,
        )  # fmt: skip
    return table


def at_most(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value <= limit


Ranked = TypeVar("Ranked")


def median_by(items: Sequence[Ranked], key: Callable[[Ranked], float]) -> Ranked:
    """The item in the middle when ranked by ``key`` (the lower middle of an even count)."""
    return sorted(items, key=key)[(len(items) - 1) // 2]


def median_run(runs: list[Throughput]) -> Throughput:
    """The run with the median drain (a run that never drained counts as slowest)."""
    return median_by(runs, lambda r: r.drain_s if r.drain_s is not None else float("inf"))


def build_rows(
    lat: dict[str, Latency],
    thr: dict[str, Throughput],
    scans: dict[str, Scan],
    journal_ratios: list[float],
) -> list[Row]:
    """One row per target, plus the informational numbers next to them."""
    s_lat, s_thr, s_scan = lat["scribe"], thr["scribe"], scans["scribe"]
    naive_drain = thr["naive"].drain_s if "naive" in thr else None
    journal_cost = statistics.median(journal_ratios) if journal_ratios else None

    def counts(get: Callable[[Throughput, Scan | None], int]) -> dict[str, float | None]:
        return {k: float(get(v, scans.get(k))) for k, v in thr.items()}

    def corrupt(t: Throughput, s: Scan | None) -> int:
        return t.verdicts.corrupt + (s.corrupt if s else 0)

    def unstamped(t: Throughput, s: Scan | None) -> int:
        return t.verdicts.unstamped + (s.unstamped if s else 0)

    v = s_thr.verdicts
    return [
        Row("latency p50", {k: x.p50_ms for k, x in lat.items()}, "<= 10 ms",
            at_most(s_lat.p50_ms, 10), "ms"),
        Row("latency p95", {k: x.p95_ms for k, x in lat.items()}, "<= 25 ms",
            at_most(s_lat.p95_ms, 25), "ms"),
        Row("latency: missed or wrong rewrites",
            {k: float(x.missed + x.bad) for k, x in lat.items()},
            "0", s_lat.error is None and s_lat.missed + s_lat.bad == 0, compare=False),
        Row(f"drain, {s_thr.edits} edits / {s_thr.files} files",
            {k: x.drain_s for k, x in thr.items()}, "<= 1.5x naive",
            at_most(s_thr.drain_s, 1.5 * naive_drain if naive_drain else None), "s"),
        Row("  journal cost: drain with / without (median of pairs)", {"scribe": journal_cost},
            "<= 1.25x",
            at_most(journal_cost, 1.25)),
        Row(f"rewrites/s, each needed (--scan: {s_scan.files} files / time)",
            {k: rate(x.files, x.external_s) for k, x in scans.items()}, ">= 1000",
            s_scan.error is None and (rate(s_scan.files, s_scan.external_s) or 0) >= 1000),
        Row("  file system: create + unlink of a file, before the run",
            {k: x.create_unlink_us for k, x in thr.items()}, "info", None, "µs", compare=False),
        Row("  edits drained/s (edits / drain)",
            {k: rate(x.edits, x.drain_s) for k, x in thr.items()}, "info", None),
        Row("  rewrites made during the drain / drain", {"scribe": s_thr.made_per_s}, "info",
            None),
        Row("files settled/s (files / drain)", {k: x.rewrites_per_s for k, x in thr.items()},
            "info", None),
        Row("lost edits", counts(lambda t, _: t.verdicts.lost), "0",
            s_thr.error is None and v.lost == 0, compare=False),
        Row("clobbered edits", counts(lambda t, _: t.verdicts.clobbered), "0",
            s_thr.error is None and v.clobbered == 0, compare=False),
        Row("rewrites after quiescence", counts(lambda t, _: t.echo_rewrites), "0",
            s_thr.error is None and s_thr.echo_rewrites == 0, compare=False),
        Row("corrupt files (b)+(d)", counts(corrupt), "0",
            s_thr.error is None and s_scan.error is None and corrupt(s_thr, s_scan) == 0,
            compare=False),
        Row("unstamped files (b)+(d)", counts(unstamped), "0",
            s_thr.error is None and s_scan.error is None and unstamped(s_thr, s_scan) == 0,
            compare=False),
        Row("stamp older than last save (b)", counts(lambda t, _: t.verdicts.stale_stamps),
            "info", None, compare=False),
        Row("  worst stamp lag (b)", {k: x.verdicts.max_stale_ms for k, x in thr.items()},
            "info", None, "ms", compare=False),
        Row(f"peak RSS, {s_thr.files} files", {k: x.peak_rss / MB for k, x in thr.items()},
            "<= 80 MB", s_thr.error is None and 0 < s_thr.peak_rss / MB <= 80, "MB"),
        Row(f"--scan of {s_scan.files} files", {k: x.external_s for k, x in scans.items()},
            "<= 10 s", at_most(s_scan.external_s, 10), "s"),
        Row("  scan as logged by scribe", {"scribe": s_scan.logged_s}, "info", None, "s"),
        Row("  scan after 'watching'", {k: x.after_ready_s for k, x in scans.items()}, "info",
            None, "s"),
    ]  # fmt: skip


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == int(value) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _ratio_cell(value: float | None, compare: bool) -> str:
    return f"{value:.2f}x" if compare and value is not None else "—"


COLUMNS = ("metric", "scribe", "naive", "floor", "scribe/naive", "scribe/floor", "target", "pass")


def render(rows: list[Row], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("metric", "target") else "right")
    for row in rows:
        s, n, f = (row.values.get(k) for k in ("scribe", "naive", "floor"))
        verdict = "—" if row.passed is None else "[green]pass[/]" if row.passed else "[red]FAIL[/]"
        table.add_row(
            row.metric + (f" ({row.unit})" if row.unit else ""),
            _fmt(s),
            _fmt(n),
            _fmt(f),
            _ratio_cell(ratio(s, n), row.compare),
            _ratio_cell(ratio(s, f), row.compare),
            row.target,
            verdict,
        )
    return table


def _command(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def machine() -> dict[str, Any]:
    """Enough about the machine and the code to tell two result files apart."""
    partitions = sorted(psutil.disk_partitions(all=True), key=lambda p: -len(p.mountpoint))
    tmp = tempfile.gettempdir()
    repo = BENCH_DIR.parent
    try:
        scribe_version: str | None = importlib.metadata.version("scribe")
    except importlib.metadata.PackageNotFoundError:
        scribe_version = None
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "memory_bytes": int(psutil.virtual_memory().total),
        "loadavg_at_end": os.getloadavg(),  # other work on the box skews every number
        "tmp_filesystem": next(
            (p.fstype for p in partitions if tmp.startswith(p.mountpoint)), None
        ),
        "scribe_version": scribe_version,
        "git_commit": _command(["git", "-C", str(repo), "rev-parse", "HEAD"]),
        # Results describe the working tree, which may differ from the commit.
        "git_dirty_src": _command(["git", "-C", str(repo), "status", "--porcelain", "--", "src"]),
    }


# -- main -------------------------------------------------------------------------------


def write_report(
    out: Path,
    console: Console,
    *,
    quick: bool,
    elapsed: float,
    cfg: Any,
    load_before: tuple[float, float, float],
    all_pass: bool,
    **sections: Any,
) -> dict[str, Any]:
    """Write a bench's JSON: when, mode, machine and config, the verdict, then the
    bench's own ``sections``; say where, and how loaded the machine was."""
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "elapsed_s": elapsed,
        "machine": {**machine(), "loadavg_at_start": load_before},
        "config": asdict(cfg),
        "all_pass": all_pass,
        **sections,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    load = report["machine"]["loadavg_at_end"][0]
    console.print(f"1-min load average {load_before[0]:.2f} at start, {load:.2f} at end")
    console.print(f"wrote {out}")
    return report


def interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every ``finally``: watchers are stopped


@dataclass
class Section:
    """One part of a bench made of ``Line`` rows, with its raw numbers."""

    name: str
    lines: list[Line]
    details: dict[str, Any] = field(default_factory=dict)


#: Builds one section: (config, scratch directory, console) -> Section.
SectionBuilder = Callable[[Any, Path, Console], Section]


def run_sections(
    bench: str,
    builders: dict[str, SectionBuilder],
    names: Sequence[str],
    cfg: Any,
    out: Path,
    *,
    quick: bool,
    keep: bool,
    baseline_order: Sequence[str],
) -> dict[str, Any]:
    """Build the sections ``names`` in a scratch directory, print one table each
    (baselines in ``baseline_order``) and write the JSON report."""
    console = Console(stderr=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"scribe-{bench}-bench-", dir="/tmp"))
    started = time.perf_counter()
    load_before = os.getloadavg()
    sections: list[Section] = []
    try:
        for name in names:
            sections.append(builders[name](cfg, scratch, console))
    finally:
        if keep:
            console.print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - started
    wide = Console(width=max(Console().width, 160))
    for section in sections:
        present = {n for line in section.lines for n in line.baselines}
        title = f"scribe {bench} benchmark: {section.name} ({'quick' if quick else 'full'} run)"
        wide.print(lines_table(title, section.lines, [n for n in baseline_order if n in present]))
    lines = [line for section in sections for line in section.lines]
    return write_report(
        out,
        console,
        quick=quick,
        elapsed=elapsed,
        cfg=cfg,
        load_before=load_before,
        all_pass=all(line.passed for line in lines if line.passed is not None),
        summary=[
            {"section": section.name, **asdict(line), **line.ratios()}
            for section in sections
            for line in section.lines
        ],
        **{section.name: section.details for section in sections},
    )


def sections_main(
    description: str,
    bench: str,
    builders: dict[str, SectionBuilder],
    configs: tuple[Any, Any],
    default_out: Path,
    baseline_order: Sequence[str],
    argv: list[str] | None = None,
) -> int:
    """The command line of a bench made of sections: ``--quick`` (``configs[1]``
    instead of ``configs[0]``), ``--out``, ``--keep`` and ``--section`` (repeatable)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="10x smaller workload (smoke run)")
    parser.add_argument("--out", type=Path, default=default_out, help="results JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory in /tmp")
    parser.add_argument("--section", action="append", choices=list(builders),
                        help="run only this section (repeatable; default: all)")  # fmt: skip
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        run_sections(bench, builders, args.section or list(builders),
                     configs[1] if args.quick else configs[0], args.out, quick=args.quick,
                     keep=args.keep, baseline_order=baseline_order)  # fmt: skip
    except KeyboardInterrupt:
        print("interrupted; scratch directory removed", file=sys.stderr)
        return 130
    return 0  # a missed target is a result, not an error: see "all_pass" in the JSON


class _Result(Protocol):
    error: str | None


R = TypeVar("R", bound=_Result)


def guarded(console: Console, label: str, measure: Callable[[], R], failed: R) -> R:
    """Run one measurement; an exception is recorded in its result, not fatal to the run."""
    console.print(label)
    try:
        return measure()
    except Exception as exc:  # report the rest of the run anyway
        console.print(f"[red]{label}: {type(exc).__name__}: {exc}[/]")
        failed.error = f"{type(exc).__name__}: {exc}"
        return failed


def run(cfg: Config, out: Path, *, keep: bool, quick: bool) -> dict[str, Any]:
    console = Console(stderr=True)
    by_name = systems()
    scratch = Path(tempfile.mkdtemp(prefix="scribe-bench-", dir="/tmp"))
    started = time.perf_counter()
    load_before = os.getloadavg()
    latency: dict[str, Latency] = {}
    throughput: dict[str, Throughput] = {}
    scans: dict[str, Scan] = {}
    journal_ratios: list[float] = []
    try:
        edits = cfg.files * cfg.rounds
        for name in ("scribe", "naive", "floor"):
            latency[name] = guarded(
                console, f"(a) latency: {name}, {cfg.edits} edits",
                partial(run_latency, by_name[name], cfg, scratch, console), Latency(cfg.edits),
            )  # fmt: skip
        runs: dict[str, list[Throughput]] = {
            name: [] for name in ("scribe", "scribe-no-journal", "naive", "floor")
        }
        for i in range(cfg.drain_rounds):  # interleaved: the disk's mood hits all alike
            for name, done in runs.items():
                done.append(guarded(
                    console,
                    f"(b) throughput: {name}, {edits} edits over {cfg.files} files "
                    f"({i + 1}/{cfg.drain_rounds})",
                    partial(run_throughput, by_name[name], cfg, scratch, f"-{i}"),
                    Throughput(cfg.files, edits),
                ))  # fmt: skip
        for name, done in runs.items():
            throughput[name] = median_run(done)
        journal_ratios = [
            a.drain_s / b.drain_s
            for a, b in zip(runs["scribe"], runs["scribe-no-journal"], strict=True)
            if a.drain_s and b.drain_s
        ]
        for name in ("scribe", "naive", "floor"):
            scans[name] = guarded(
                console, f"(d) --scan: {name}, {cfg.scan_files} files",
                partial(run_scan, by_name[name], cfg, scratch), Scan(cfg.scan_files),
            )  # fmt: skip
    finally:
        if keep:
            console.print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    rows = build_rows(latency, throughput, scans, journal_ratios)
    elapsed = time.perf_counter() - started
    title = f"scribe engine benchmark ({'quick' if quick else 'full'} run, {elapsed:.0f} s)"
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
                **{k: row.values.get(k) for k in ("scribe", "naive", "floor")},
                "scribe/naive": ratio(row.values.get("scribe"), row.values.get("naive")),
                "scribe/floor": ratio(row.values.get("scribe"), row.values.get("floor")),
            }
            for row in rows
        ],
        latency={k: asdict(v) for k, v in latency.items()},
        throughput={k: asdict(v) for k, v in throughput.items()},
        journal_cost_ratios=journal_ratios,
        scan={k: asdict(v) for k, v in scans.items()},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark `scribe watch` on real files.")
    parser.add_argument("--quick", action="store_true", help="10x smaller workload (smoke run)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory in /tmp")
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)  # internal: floor watcher
    parser.add_argument("--scan", action="store_true", help=argparse.SUPPRESS)  # with --floor
    args = parser.parse_args(argv)
    if args.floor is not None:
        return floor_main(args.floor.resolve(), scan=args.scan)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        run(QUICK if args.quick else FULL, args.out, keep=args.keep, quick=args.quick)
    except KeyboardInterrupt:
        print("interrupted; watchers stopped, scratch directory removed", file=sys.stderr)
        return 130
    return 0  # a missed target is a result, not an error: see "all_pass" in the JSON


if __name__ == "__main__":
    sys.exit(main())

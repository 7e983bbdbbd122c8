"""Crash torture for ``scribe watch``: SIGKILL it at random instants while a user saves.

Shared by ``tests/test_torture.py`` (CI-sized) and ``bench/torture.py`` (the long run).
Everything is judged from the outside: the files on disk, the journal read with the
standard library (read-only), and ``scribe verify``. The journal's hash rule is
recomputed here from its documented definition, not with Scribe's code.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
import statistics
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from live_helpers import SCRIBE, ScribeProcess, holds_for, wait_until

RULES = """\
rules:
  - id: stamp
    on: [created, modified]
    paths: ["**/*.md"]
    do:
      - set: {field: modified, value: "{{ now('%Y-%m-%dT%H:%M:%S.%fZ') }}"}
"""
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
#: Any file in this workload: the user's frontmatter, any number of ``modified``
#: lines (exactly one is right) and one body line. Anything else is torn.
SHAPE = re.compile(
    r"---\ntitle: (?P<title>[^\n]*)\n(?P<stamps>(?:modified: [^\n]*\n)*)---\nbody (?P<n>\d+)\n"
)
GENESIS = "0" * 64
COLUMNS = (
    "seq", "ts", "kind", "actor", "path", "before_hash", "after_hash", "diff", "message",
    "payload", "ref", "prev_hash", "hash",
)  # fmt: skip
FILE_WRITTEN = "file.written"
WORK_DONE = "work.done"
EXAMPLES = 5  # examples kept per kind of problem


@dataclass(frozen=True)
class Config:
    """One torture run. Times in milliseconds are drawn uniformly from each range."""

    kills: int = 50
    files: int = 30
    seed: int = 20261124
    pace_ms: tuple[float, float] = (2.0, 10.0)  # pause between two saves
    kill_after_ms: tuple[float, float] = (20.0, 300.0)  # from "watching" to SIGKILL
    write_while_down: float = 0.5  # chance that saves go on after a kill...
    down_ms: tuple[float, float] = (1.0, 30.0)  # ...and for how long
    ready_timeout: float = 30.0  # each start must log "watching" within this
    settle_timeout: float = 60.0  # the final run must bring every file right within this
    quiet_s: float = 0.5  # then no file may change for this long (no echo)


@dataclass
class Report:
    """What a run found. ``problems()`` must be all zeros."""

    config: Config
    kills: int = 0
    saves: int = 0
    saves_while_down: int = 0
    writes_journaled: int = 0
    entries: int = 0
    recovered: int = 0  # work.done entries with recovered: true
    statuses: dict[str, int] = field(default_factory=dict)  # work.done status of each write
    ready_s: list[float] = field(default_factory=list)  # start to "watching", each start
    elapsed_s: float = 0.0
    quiescent: bool = False
    final_exit: int | None = None
    verify_exit: int | None = None
    verify_output: str = ""
    lost: int = 0  # the user's last save is not in the file
    torn: int = 0  # not the workload's shape, or several frontmatter blocks or stamps
    unstamped: int = 0  # the user's last save, never stamped
    duplicated: int = 0  # the same write closed as written more than once
    unclosed: int = 0  # file.written without a work.done
    closed_twice: int = 0  # file.written with several work.done
    hash_mismatch: int = 0  # file on disk is not the journal's last written after_hash
    temp_files: int = 0
    tracebacks: int = 0  # scribe logs holding a traceback
    chain_problem: str = ""  # the first break in the hash chain, recomputed here
    examples: dict[str, list[str]] = field(default_factory=dict)
    scratch: str = ""

    def problems(self) -> dict[str, int]:
        return {
            "lost": self.lost,
            "torn": self.torn,
            "unstamped": self.unstamped,
            "duplicated": self.duplicated,
            "unclosed": self.unclosed,
            "closed twice": self.closed_twice,
            "hash mismatch": self.hash_mismatch,
            "temp files": self.temp_files,
            "tracebacks": self.tracebacks,
            "broken chain": int(bool(self.chain_problem)),
            "verify failed": int(self.verify_exit != 0),
            "final exit not 0": int(self.final_exit != 0),
            "not quiescent": int(not self.quiescent),
        }

    def example(self, kind: str, text: str) -> None:
        kept = self.examples.setdefault(kind, [])
        if len(kept) < EXAMPLES:
            kept.append(text)

    def ok(self) -> bool:
        return not any(self.problems().values())

    def summary(self) -> str:
        """Counts, every problem with its examples, and where the logs are."""
        lines = [
            f"{self.kills} kills, {self.saves} saves ({self.saves_while_down} while down), "
            f"{self.writes_journaled} writes journaled, {self.recovered} recovered, "
            f"statuses {self.statuses}, {self.elapsed_s:.1f} s",
        ]
        lines += [f"{name}: {count}" for name, count in self.problems().items() if count]
        if self.chain_problem:
            lines.append(f"chain: {self.chain_problem}")
        if self.verify_exit != 0:
            lines.append(f"scribe verify exited {self.verify_exit}:\n{self.verify_output}")
        for kind, texts in self.examples.items():
            lines.append(f"{kind}:")
            lines += [f"  {text}" for text in texts]
        lines.append(f"logs and repository: {self.scratch}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = self.problems()
        data["ok"] = self.ok()
        return data


# -- the user ---------------------------------------------------------------------


def title(rel: str) -> str:
    return Path(rel).stem


def user_text(rel: str, n: int) -> str:
    """What the user saves: their frontmatter (no ``modified``) and a unique body."""
    return f"---\ntitle: {title(rel)}\n---\nbody {n}\n"


def make_repo(root: Path, files: int) -> list[str]:
    """A repository with the stamp rule; the relative paths the user will save."""
    (root / ".scribe").mkdir(parents=True)
    (root / ".scribe" / "rules.yaml").write_text(RULES, encoding="utf-8")
    dirs = ["", "notes/", "notes/deep/"]
    paths = [f"{dirs[i % len(dirs)]}f{i}.md" for i in range(files)]
    for rel in paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    return paths


class User:
    """Saves random files (plain open/write/close) at a steady pace while resumed.

    Each save has a new body counter; ``last`` maps each path to the counter of its
    last save. ``pause`` returns only once no save is in progress.
    """

    def __init__(self, root: Path, paths: list[str], seed: int, pace_ms: tuple[float, float]):
        self.root = root
        self.paths = paths
        self.pace_ms = pace_ms
        self.last: dict[str, int] = {}
        self.saves = 0
        self.error: BaseException | None = None
        self._rng = random.Random(seed)
        self._counter = 0
        self._lock = threading.Lock()  # held for the whole of one save
        self._go = threading.Event()
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, name="torture-user", daemon=True)

    def save(self, rel: str) -> None:
        self._counter += 1
        with open(self.root / rel, "w", encoding="utf-8") as f:
            f.write(user_text(rel, self._counter))
        self.last[rel] = self._counter
        self.saves += 1

    def _run(self) -> None:
        try:
            while not self._quit.is_set():
                if not self._go.wait(0.05):
                    continue
                with self._lock:
                    if self._go.is_set():
                        self.save(self._rng.choice(self.paths))
                time.sleep(self._rng.uniform(*self.pace_ms) / 1000)  # the user's pace
        except BaseException as exc:  # surfaced by ``pause`` and ``stop``
            self.error = exc

    def start(self) -> None:
        self._thread.start()

    def resume(self) -> None:
        self._go.set()

    def pause(self) -> None:
        with self._lock:
            self._go.clear()
        self._check()

    def stop(self) -> None:
        self.pause()
        self._quit.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)
        self._check()

    def _check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"the user's saves failed: {self.error!r}") from self.error


# -- judging files ------------------------------------------------------------------


def read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def verdict(text: str | None, rel: str, last: int) -> str:
    """``ok``, or which problem the file has: ``lost``, ``torn`` or ``unstamped``."""
    match = SHAPE.fullmatch(text or "")
    if match is None or match["title"] != title(rel):
        return "torn"
    if int(match["n"]) != last:
        return "lost"
    stamps = match["stamps"].splitlines()
    if not stamps:
        return "unstamped"
    if len(stamps) > 1 or re.fullmatch(f"modified: {STAMP}", stamps[0]) is None:
        return "torn"
    return "ok"


def all_right(root: Path, last: Mapping[str, int]) -> bool:
    return all(verdict(read(root / rel), rel, n) == "ok" for rel, n in last.items())


def snapshot(root: Path, paths: Iterable[str]) -> dict[str, str | None]:
    return {rel: read(root / rel) for rel in paths}


def temp_files(root: Path) -> list[str]:
    """Scribe's temp files anywhere in the repository but its own ``.scribe/``."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob(".scribe-*.tmp")
        if p.relative_to(root).parts[0] != ".scribe"
    )


# -- the journal ------------------------------------------------------------------------


def canonical_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of every field but ``hash``, as documented."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_entries(db: Path) -> list[dict[str, Any]]:
    """Every entry, oldest first, read through a read-only connection."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM entries ORDER BY seq").fetchall()
    finally:
        con.close()
    entries = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    for entry in entries:
        entry["payload"] = json.loads(entry["payload"])
    return entries


def chain_problem(entries: list[dict[str, Any]], *, first_seq: int = 1) -> str:
    """The first break in the chain (empty if none): seqs from ``first_seq`` without
    gaps, each ``prev_hash`` the hash before it (GENESIS first), each hash right."""
    prev = GENESIS if first_seq == 1 else None
    for expected, entry in enumerate(entries, start=first_seq):
        if entry["seq"] != expected:
            return f"entry {expected} expected, found {entry['seq']}"
        if prev is not None and entry["prev_hash"] != prev:
            return f"entry {expected}: prev_hash {entry['prev_hash']} is not {prev}"
        if canonical_hash(entry) != entry["hash"]:
            return f"entry {expected}: hash {entry['hash']} does not match its fields"
        prev = entry["hash"]
    return ""


def judge_journal(report: Report, entries: list[dict[str, Any]], disk: Mapping[str, str]) -> None:
    """Fill ``report`` from the entries; ``disk`` maps each path to its sha256 now."""
    report.entries = len(entries)
    report.chain_problem = chain_problem(entries)
    writes = {e["seq"]: e for e in entries if e["kind"] == FILE_WRITTEN}
    closes: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        if entry["kind"] == WORK_DONE and entry["ref"] in writes:
            closes[entry["ref"]].append(entry)
            report.recovered += entry["payload"].get("recovered") is True
    report.writes_journaled = len(writes)
    statuses: Counter[str] = Counter()
    written: defaultdict[tuple[str, str, str], list[int]] = defaultdict(list)
    newest: dict[str, dict[str, Any]] = {}
    for seq, entry in writes.items():
        done = closes.get(seq, [])
        if not done:
            report.unclosed += 1
            report.example("unclosed", f"file.written {seq} ({entry['path']})")
            continue
        if len(done) > 1:
            report.closed_twice += 1
            report.example("closed twice", f"file.written {seq} by {[d['seq'] for d in done]}")
        status = str(done[0]["payload"].get("status"))
        statuses[status] += 1
        if status == "written":
            written[(entry["path"], entry["before_hash"], entry["after_hash"])].append(seq)
            newest[entry["path"]] = entry  # seqs ascend: the last one wins
    report.statuses = dict(statuses.most_common())
    for (path, before, after), seqs in written.items():
        if len(seqs) > 1:
            report.duplicated += len(seqs) - 1
            report.example("duplicated", f"{path} {before[:12]}->{after[:12]} in {seqs}")
    for path, sha in disk.items():
        last = newest.get(path)
        if last is None or last["after_hash"] != sha:
            report.hash_mismatch += 1
            seq = last["seq"] if last else None
            report.example("hash mismatch", f"{path}: disk {sha[:12]}, last written {seq}")


# -- the run ---------------------------------------------------------------------------


def verify(root: Path) -> tuple[int, str]:
    done = subprocess.run(
        [SCRIBE, "verify", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr)[-3000:]


def torture(cfg: Config, scratch: Path, progress: Callable[[Report], None] | None = None) -> Report:
    """Run ``cfg`` in ``scratch`` (repository and logs); the report says what broke."""
    started = time.monotonic()
    report = Report(cfg, scratch=str(scratch))
    root = scratch / "repo"
    paths = make_repo(root, cfg.files)
    rng = random.Random(cfg.seed)
    user = User(root, paths, cfg.seed + 1, cfg.pace_ms)
    procs: list[ScribeProcess] = []

    def start() -> ScribeProcess:
        began = time.monotonic()
        proc = ScribeProcess(root, log_path=scratch / f"scribe-{len(procs):04d}.log")
        procs.append(proc)
        proc.wait_ready(cfg.ready_timeout)
        report.ready_s.append(time.monotonic() - began)
        return proc

    try:
        proc = start()  # first, every file is created and stamped with nothing killed
        for rel in paths:
            user.save(rel)
        if not wait_until(lambda: all_right(root, user.last), cfg.settle_timeout, 0.02):
            raise AssertionError(f"the files were never stamped before the kills:\n{proc.log()}")
        user.start()
        for _ in range(cfg.kills):
            user.resume()
            time.sleep(rng.uniform(*cfg.kill_after_ms) / 1000)  # the random instant is the test
            proc.proc.kill()
            proc.proc.wait(timeout=10)
            report.kills += 1
            before = user.saves
            if rng.random() < cfg.write_while_down:
                time.sleep(rng.uniform(*cfg.down_ms) / 1000)  # saves go on while it is down
            user.pause()
            report.saves_while_down += user.saves - before
            proc = start()
            report.saves = user.saves
            if progress is not None:
                report.elapsed_s = time.monotonic() - started
                progress(report)
        user.stop()  # the start after the last kill is the final run: it must settle
        right = wait_until(lambda: all_right(root, user.last), cfg.settle_timeout, 0.02)
        settled = snapshot(root, paths)
        report.quiescent = right and holds_for(
            lambda: snapshot(root, paths) == settled, cfg.quiet_s
        )
        report.final_exit = proc.terminate(timeout=10)
    finally:
        user.stop()
        for each in procs:
            each.close()
    report.saves = user.saves
    judge(report, root, user.last, procs)
    report.elapsed_s = time.monotonic() - started
    return report


def judge(report: Report, root: Path, last: Mapping[str, int], procs: list[ScribeProcess]) -> None:
    """Check files, temp files, logs, ``scribe verify`` and the journal."""
    disk: dict[str, str] = {}
    verdicts: Counter[str] = Counter()
    for rel, n in sorted(last.items()):
        path = root / rel
        text = read(path)
        problem = verdict(text, rel, n)
        verdicts[problem] += 1
        if problem != "ok":
            report.example(problem, f"{rel}: expected body {n}, holds {text!r}")
        if path.exists():
            disk[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    report.lost, report.torn, report.unstamped = (
        verdicts[k] for k in ("lost", "torn", "unstamped")
    )
    temps = temp_files(root)
    report.temp_files = len(temps)
    for temp in temps:
        report.example("temp files", temp)
    for proc in procs:
        if "Traceback" in proc.log():
            report.tracebacks += 1
            report.example("tracebacks", f"{proc.log_path}:\n{proc.log()[-1500:]}")
    report.verify_exit, report.verify_output = verify(root)
    judge_journal(report, read_entries(root / ".scribe" / "journal.db"), disk)


def median_ms(values: list[float]) -> float | None:
    return statistics.median(values) * 1000 if values else None

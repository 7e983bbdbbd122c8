"""Crash torture: ``scribe watch`` SIGKILLed at random instants while a user saves.

The harness is in ``torture_helpers`` (shared with ``bench/torture.py``, the long
run). Here it is sized for CI: 50 kills over 30 files, about 45 s on two cores.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from live_helpers import SCRIBE, ScribeProcess, wait_until
from torture_helpers import (
    Config,
    User,
    all_right,
    chain_problem,
    make_repo,
    read_entries,
    torture,
    verify,
)

KILLS = 50  # what CI must survive at least; bench/torture.py runs 500
READ_FOR = 8.0  # seconds the readers read while the engine writes
MIN_READS = 3  # ... and each reads at least this often, however slow the machine


@pytest.mark.timeout(420)
def test_50_kills_lose_no_edit_and_journal_each_write_once(tmp_path: Path) -> None:
    report = torture(Config(kills=KILLS), tmp_path)
    assert report.kills == KILLS, report.summary()
    assert report.writes_journaled > 0, report.summary()
    assert report.saves_while_down > 0, report.summary()  # catch-up was exercised
    problems = report.problems()
    assert problems == dict.fromkeys(problems, 0), report.summary()


class LogReader:
    """Runs ``scribe log --json --limit 0`` again and again until ``deadline``, checking
    that each run succeeds and prints an intact chain from the first entry."""

    def __init__(self, root: Path, deadline: float) -> None:
        self.root = root
        self.deadline = deadline
        self.counts: list[int] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, name="log-reader", daemon=True)

    def _run(self) -> None:
        argv = [SCRIBE, "log", "--json", "--limit", "0", "--root", str(self.root)]
        while time.monotonic() < self.deadline or len(self.counts) < MIN_READS:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
            if done.returncode != 0 or done.stderr:
                self.failures.append(f"exit {done.returncode}: {done.stderr[-1000:]}")
                continue
            entries = [json.loads(line) for line in done.stdout.splitlines()]
            if problem := chain_problem(entries):
                self.failures.append(f"after {len(entries)} entries: {problem}")
            self.counts.append(len(entries))


class DbReader:
    """Reads the database directly (read-only connection) in a tight loop."""

    def __init__(self, db: Path, deadline: float) -> None:
        self.db = db
        self.deadline = deadline
        self.counts: list[int] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, name="db-reader", daemon=True)

    def _run(self) -> None:
        while time.monotonic() < self.deadline or len(self.counts) < MIN_READS:
            try:
                entries = read_entries(self.db)
            except (sqlite3.Error, ValueError) as exc:  # what this test looks for
                self.failures.append(repr(exc))
                continue
            if problem := chain_problem(entries):
                self.failures.append(f"after {len(entries)} entries: {problem}")
            self.counts.append(len(entries))


@pytest.mark.timeout(180)
def test_readers_never_fail_or_see_a_broken_chain_while_the_engine_writes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    paths = make_repo(root, 12)
    proc = ScribeProcess(root, log_path=tmp_path / "scribe.log")
    user = User(root, paths, seed=7, pace_ms=(1.0, 5.0))
    try:
        proc.wait_ready()
        db = root / ".scribe" / "journal.db"
        assert wait_until(db.exists, 10), proc.log()
        user.start()
        user.resume()
        deadline = time.monotonic() + READ_FOR
        readers: list[LogReader | DbReader] = [
            LogReader(root, deadline),
            LogReader(root, deadline),
            DbReader(db, deadline),
        ]
        for reader in readers:
            reader.thread.start()
        for reader in readers:
            reader.thread.join(timeout=READ_FOR + 90)
            assert not reader.thread.is_alive(), "a reader did not finish"
        user.stop()

        for reader in readers:
            name = reader.thread.name
            assert reader.failures == [], f"{name}: {reader.failures[:5]}"
            assert len(reader.counts) >= MIN_READS, f"{name} read only {len(reader.counts)} times"
            assert reader.counts[-1] > reader.counts[0], f"{name}: the journal did not grow"
        assert wait_until(lambda: all_right(root, user.last), 30, 0.02), proc.log()[-3000:]
        assert proc.terminate(timeout=10) == 0, proc.log()[-3000:]
    finally:
        user.stop()
        proc.close()
    assert "Traceback" not in proc.log(), proc.log()
    code, output = verify(root)
    assert code == 0, output

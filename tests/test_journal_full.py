"""A journal that cannot grow (a full disk, as far as Scribe can tell) must stop
Scribe from writing files: every file stays the user's or is a journaled write."""

from __future__ import annotations

import hashlib
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from live_helpers import SCRIBE, wait_until
from scribe.journal.entry import FILE_WRITTEN, Query
from scribe.journal.sqlite import SqliteJournal

RULES = """
rules:
  - id: stamp
    paths: ["*.md"]
    do: [{set: {field: modified, value: "{{ now('%Y-%m-%dT%H:%M:%S.%fZ') }}"}}]
"""
#: Every file Scribe's process writes may grow to this size, no more: the journal's
#: WAL reaches it after a few dozen commits, and from then on SQLite reports the
#: disk full, as it would on a full file system. Notes and logs stay far below.
LIMIT = 400_000


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def user_text(name: str, round_: int) -> str:
    return f"---\ntitle: {name}\n---\nbody {round_} {'x' * 200}\n"


@pytest.mark.timeout(120)
def test_no_file_is_written_once_the_journal_is_full(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / ".scribe").mkdir(parents=True)
    (root / ".scribe" / "rules.yaml").write_text(RULES)
    names = [f"n{i:02d}.md" for i in range(40)]
    log_path = tmp_path / "scribe.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [SCRIBE, "watch", str(root)],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_limit_file_size,
        )
    try:
        assert wait_until(lambda: "watching" in log_path.read_text(), 20), log_path.read_text()
        last: dict[str, str] = {}
        full = False
        for round_ in range(200):
            for name in names:
                text = user_text(name, round_)
                (root / name).write_text(text)
                last[name] = text
            time.sleep(0.05)
            if "journal cannot be written" in log_path.read_text():
                full = True
                break
        assert full, "the journal never filled up:\n" + log_path.read_text()[-2000:]
        for name in names:  # saves made while it is full must not be rewritten
            text = user_text(name, 10_000)
            (root / name).write_text(text)
            last[name] = text
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    with SqliteJournal.for_root(root) as journal:
        assert journal.verify().ok
        written = {e.after_hash for e in journal.query(Query(kinds=[FILE_WRITTEN]))}
    for name in names:
        # The user's last save, or a write the journal holds: SQLite may find room
        # again (a checkpoint resets its log), and a write journaled then is sound.
        data = (root / name).read_bytes()
        journaled = hashlib.sha256(data).hexdigest() in written
        assert data == last[name].encode() or journaled, f"{name} was written unjournaled"
    assert written, "it should have rewritten files before the journal filled up"
    log_text = log_path.read_text()
    assert "not written" in log_text  # it says why
    assert "Traceback" not in log_text

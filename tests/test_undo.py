"""``scribe undo``: a journaled write is reverted exactly, or refused."""

from __future__ import annotations

import difflib
import hashlib
import subprocess
from pathlib import Path

import pytest

from live_helpers import SCRIBE
from scribe.journal.entry import FILE_REVERTED, FILE_WRITTEN, Query
from scribe.journal.sqlite import SqliteJournal
from scribe.undo import UndoError, reverse, reverse_diff

CASES = [
    ("a\nb\nc\n", "a\nB\nc\n"),
    ("", "new\n"),
    ("x\n", ""),
    ("---\ntitle: t\n---\nbody\n", "---\ntitle: t\nmodified: now\n---\nbody\n"),
    ("".join(f"{i}\n" for i in range(40)), "".join(f"{i}\n" for i in range(40) if i % 9)),
    ("line\r\nother\r\n", "line\r\nchanged\r\nother\r\n"),
]


def diff(before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), "a/f", "b/f"
        )
    )


@pytest.mark.parametrize(("before", "after"), CASES)
def test_reverse_rebuilds_the_old_text(before: str, after: str) -> None:
    assert reverse(after, diff(before, after)) == before
    assert reverse(before, reverse_diff(diff(before, after))) == after


def test_reverse_refuses_a_diff_that_does_not_fit() -> None:
    with pytest.raises(UndoError, match="does not match"):
        reverse("a\nsomething else\nc\n", diff("a\nb\nc\n", "a\nB\nc\n"))


def scribe(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIBE, *args, "--root", str(root)], capture_output=True, text=True, timeout=60
    )


def test_undo_reverts_a_rule_write_and_journals_it(tmp_path: Path) -> None:
    (tmp_path / ".scribe").mkdir()
    (tmp_path / ".scribe" / "rules.yaml").write_text(
        "rules:\n  - id: stamp\n    paths: ['*.md']\n"
        "    do: [{set: {field: reviewed, value: 'no'}}]\n"
    )
    note = tmp_path / "a.md"
    note.write_text("---\ntitle: a\n---\nbody\n")
    original = note.read_bytes()
    assert scribe(tmp_path, "run").returncode == 0
    assert note.read_bytes() != original
    with SqliteJournal.for_root(tmp_path) as journal:
        (write,) = journal.query(Query(kinds=[FILE_WRITTEN]))
    result = scribe(tmp_path, "undo", str(write.seq))
    assert result.returncode == 0, result.stderr
    assert note.read_bytes() == original
    with SqliteJournal.for_root(tmp_path) as journal:
        (revert,) = journal.query(Query(kinds=[FILE_REVERTED]))
        assert revert.ref == write.seq
        assert revert.after_hash == hashlib.sha256(original).hexdigest()
        assert journal.verify().ok
    again = scribe(tmp_path, "undo", str(write.seq))  # the file no longer holds that write
    assert again.returncode == 1
    assert "has changed since" in again.stderr
    assert note.read_bytes() == original


def test_undo_of_an_entry_that_is_not_a_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".scribe").mkdir()
    (tmp_path / ".scribe" / "rules.yaml").write_text("rules: []\n")
    assert scribe(tmp_path, "run").returncode == 0  # journals the start
    result = scribe(tmp_path, "undo", "1")
    assert result.returncode == 1
    assert "not a write" in result.stderr
    missing = scribe(tmp_path, "undo", "999")
    assert "no journal entry 999" in missing.stderr

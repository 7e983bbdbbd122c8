"""Batches of writes made durable with ``syncfs`` (``scribe.durable``): what a user
sees when the flush works (every file right, no temp file left) and when it fails
(before the swaps nothing changes; after them, no write is reported done)."""

from __future__ import annotations

import ctypes
import errno
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scribe import durable
from scribe.engine import Engine, Status
from scribe.events import Event, EventKind
from scribe.files import TEMP_PREFIX
from scribe.journal.entry import WORK_DONE, Query
from scribe.journal.mirrors import Mirrors
from scribe.journal.sqlite import SqliteJournal
from scribe.journal.writer import JournalWriter
from scribe.rules.load import parse_rules
from scribe.state import State

RULES = """
rules:
  - id: stamp
    paths: ["**/*.md"]
    do: [{set: {field: reviewed, value: done}}]
"""

pytestmark = pytest.mark.skipif(not durable.SUPPORTED, reason="syncfs needs Linux 5.8 or later")

Syncfs = Callable[[int], int]


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[JournalWriter]:
    journal = JournalWriter(SqliteJournal.for_root(tmp_path), Mirrors(tmp_path))
    yield journal
    journal.close()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every syncfs call (the real one runs)."""
    real: Syncfs = durable._syncfs  # type: ignore[assignment]
    made: list[int] = []

    def counted(fd: int) -> int:
        made.append(fd)
        return real(fd)

    monkeypatch.setattr(durable, "_syncfs", counted)
    return made


def fail_syncfs(monkeypatch: pytest.MonkeyPatch, *, after: int) -> None:
    """Let the first ``after`` syncfs calls work; the later ones fail with EIO."""
    real: Syncfs = durable._syncfs  # type: ignore[assignment]
    made = 0

    def failing(fd: int) -> int:
        nonlocal made
        made += 1
        if made <= after:
            return real(fd)
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(durable, "_syncfs", failing)


def notes(root: Path, count: int, folders: int = 1) -> list[str]:
    paths = []
    for n in range(count):
        rel = f"f{n % folders}/n{n:03d}.md"
        (root / rel).parent.mkdir(exist_ok=True)
        (root / rel).write_text(f"---\ntitle: n{n}\n---\nbody {n}\n")
        paths.append(rel)
    return paths


def handle(
    root: Path, writer: JournalWriter, paths: list[str], *, batch_sync: bool = True
) -> list[Status]:
    rules = parse_rules(RULES, "rules.yaml")
    engine = Engine(root, rules, state=State(None), journal=writer, batch_sync=batch_sync)
    return [o.status for o in engine.handle_many([Event(EventKind.MODIFIED, p) for p in paths])]


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*") if ".scribe" not in p.relative_to(root).parts]


def closings(writer: JournalWriter) -> list[str]:
    writer.flush()
    return [e.payload["status"] for e in writer.store.query(Query(kinds=[WORK_DONE]))]


def test_a_large_batch_is_made_durable_with_two_flushes_and_every_file_is_right(
    tmp_path: Path, writer: JournalWriter, calls: list[int]
) -> None:
    paths = notes(tmp_path, 30, folders=3)
    assert handle(tmp_path, writer, paths) == [Status.WRITTEN] * 30
    assert len(calls) == 2  # one file system: after the temp files, after the swaps
    for n, rel in enumerate(paths):
        assert (tmp_path / rel).read_text() == f"---\ntitle: n{n}\nreviewed: done\n---\nbody {n}\n"
    assert temp_files(tmp_path) == []
    assert closings(writer) == ["written"] * 30


def test_small_batches_and_batch_sync_off_sync_each_file_instead(
    tmp_path: Path, writer: JournalWriter, calls: list[int]
) -> None:
    for folder in ("few", "off"):
        (tmp_path / folder).mkdir()
    few = notes(tmp_path / "few", durable.MIN_WRITES - 1)
    assert handle(tmp_path / "few", writer, few) == [Status.WRITTEN] * len(few)
    many = notes(tmp_path / "off", 20)
    assert handle(tmp_path / "off", writer, many, batch_sync=False) == [Status.WRITTEN] * 20
    assert calls == []
    assert all(b"reviewed: done" in (tmp_path / "off" / rel).read_bytes() for rel in many)


def test_a_failed_flush_before_the_swaps_leaves_every_file_as_it_was(
    tmp_path: Path, writer: JournalWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = notes(tmp_path, 12)
    before = {rel: (tmp_path / rel).read_bytes() for rel in paths}
    fail_syncfs(monkeypatch, after=0)
    engine = Engine(tmp_path, parse_rules(RULES, "rules.yaml"), state=State(None), journal=writer)
    outcomes = engine.handle_many([Event(EventKind.MODIFIED, p) for p in paths])
    assert {o.status for o in outcomes} == {Status.FAILED}
    assert all("syncfs failed: Input/output error" in (o.reason or "") for o in outcomes)
    assert {rel: (tmp_path / rel).read_bytes() for rel in paths} == before
    assert temp_files(tmp_path) == []
    assert closings(writer) == ["failed"] * 12


def test_a_failed_flush_after_the_swaps_reports_no_write_done(
    tmp_path: Path, writer: JournalWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = notes(tmp_path, 12)
    fail_syncfs(monkeypatch, after=1)
    assert handle(tmp_path, writer, paths) == [Status.FAILED] * 12
    # The new content is in place, but a crash could still undo it: not "written".
    assert all(b"reviewed: done" in (tmp_path / rel).read_bytes() for rel in paths)
    assert temp_files(tmp_path) == []
    assert closings(writer) == ["failed"] * 12


def test_the_next_run_after_a_failed_flush_writes_the_files(
    tmp_path: Path, writer: JournalWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = notes(tmp_path, 10)
    fail_syncfs(monkeypatch, after=0)
    handle(tmp_path, writer, paths)
    monkeypatch.undo()
    assert handle(tmp_path, writer, paths) == [Status.WRITTEN] * 10
    digests = {hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest() for rel in paths}
    assert len(digests) == 10


@pytest.mark.parametrize(
    ("release", "reports"),
    [("5.4.0-150-generic", False), ("5.7.19", False), ("5.8.0", True), ("6.18.44-fc", True)],
)
def test_syncfs_is_used_only_on_kernels_that_report_its_errors(release: str, reports: bool) -> None:
    assert durable._kernel_reports_errors(release) is reports

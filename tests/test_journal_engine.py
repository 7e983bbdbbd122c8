"""The engine and the journal together: what a rewrite records, journal-first
writes, and start-up recovery (interrupted writes, catch-up)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scribe import records
from scribe.engine import Engine, Status
from scribe.events import Event, EventKind
from scribe.journal.entry import (
    ACTION_FAILED,
    FILE_DELETED,
    FILE_REVERTED,
    FILE_WRITTEN,
    QUARANTINED,
    RULE_MATCHED,
    SCOPE_VIOLATION,
    WORK_DONE,
    Entry,
    NewEntry,
    Query,
)
from scribe.journal.mirrors import Mirrors
from scribe.journal.sqlite import SqliteJournal
from scribe.journal.writer import JournalWriter
from scribe.recovery import catch_up, finish_open_work
from scribe.rules.load import parse_rules
from scribe.state import State

RULES = """
rules:
  - id: stamp
    paths: ["**/*.md"]
    do: [{set: {field: modified, value: "{{ now('%Y-%m-%d') }}"}}]
"""
FAILING = """
rules:
  - id: bad-zone
    paths: ["**/*.md"]
    do: [{set: {field: local, value: "{{ now(tz='Mars/Olympus') }}"}}]
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[JournalWriter]:
    journal = JournalWriter(SqliteJournal.for_root(tmp_path), Mirrors(tmp_path))
    yield journal
    journal.close()


def make(root: Path, writer: JournalWriter, rules: str = RULES) -> Engine:
    return Engine(root, parse_rules(rules, "rules.yaml"), state=State(None), journal=writer)


def entries(writer: JournalWriter) -> list[Entry]:
    writer.flush()
    return writer.store.query(Query())


def test_a_rewrite_is_journaled_with_its_diff_and_closed_as_written(
    tmp_path: Path, writer: JournalWriter
) -> None:
    note = tmp_path / "a.md"
    note.write_text("---\ntitle: a\n---\nbody\n")
    before = note.read_bytes()
    outcome = make(tmp_path, writer).handle(Event(EventKind.MODIFIED, "a.md"))
    assert outcome.status is Status.WRITTEN
    log = entries(writer)
    assert [e.kind for e in log] == [FILE_WRITTEN, WORK_DONE]
    written, done = log
    assert written.payload["rules"] == ["stamp"]
    assert written.payload["event"]["event"] == "modified"  # the event rides with its write
    assert written.actor == "rule:stamp"
    assert (written.before_hash, written.after_hash) == (sha(before), sha(note.read_bytes()))
    assert written.diff is not None
    assert "+modified: " in written.diff
    assert done.ref == written.seq
    assert done.payload["status"] == "written"
    assert writer.store.verify().ok


def test_echoes_and_scans_of_unchanged_files_add_nothing(
    tmp_path: Path, writer: JournalWriter
) -> None:
    (tmp_path / "a.md").write_text("---\ntitle: a\n---\nbody\n")
    engine = make(tmp_path, writer)
    engine.handle(Event(EventKind.MODIFIED, "a.md"))
    count = len(entries(writer))
    assert engine.handle(Event(EventKind.MODIFIED, "a.md")).status is Status.ECHO
    assert engine.handle(engine.scan_event("a.md")).status is Status.UNCHANGED
    assert len(entries(writer)) == count


def test_failures_are_journaled_and_quarantine_is_recorded_once(
    tmp_path: Path, writer: JournalWriter
) -> None:
    (tmp_path / "a.md").write_text("---\ntitle: a\n---\nbody\n")
    engine = make(tmp_path, writer, FAILING)
    engine.handle(Event(EventKind.MODIFIED, "a.md"))
    engine.handle(Event(EventKind.MODIFIED, "a.md", source="scan"))
    kinds = [e.kind for e in entries(writer)]
    assert kinds.count(ACTION_FAILED) == 1  # the scan found it quarantined: not retried
    assert kinds.count(QUARANTINED) == 1
    (held,) = [e for e in entries(writer) if e.kind == QUARANTINED]
    assert "unknown time zone" in held.payload["reason"]
    assert held.payload["event"]["event"] == "modified"
    assert FILE_WRITTEN not in kinds


def test_deletes_and_moves_tell_the_journal_the_old_path_is_gone(
    tmp_path: Path, writer: JournalWriter
) -> None:
    (tmp_path / "a.md").write_text("---\ntitle: a\n---\nbody\n")
    engine = make(tmp_path, writer)
    engine.handle(Event(EventKind.MODIFIED, "a.md"))
    os.rename(tmp_path / "a.md", tmp_path / "b.md")
    engine.handle(Event(EventKind.MOVED, "a.md", dest="b.md"))
    (tmp_path / "b.md").unlink()
    engine.handle(Event(EventKind.DELETED, "b.md"))
    deleted = [e.path for e in entries(writer) if e.kind == FILE_DELETED]
    assert deleted == ["a.md", "b.md"]
    writer.flush()
    assert writer.store.last_hashes() == {}


def test_no_file_is_written_when_the_journal_cannot_record_it(tmp_path: Path) -> None:
    note = tmp_path / "a.md"
    note.write_text("---\ntitle: a\n---\nbody\n")
    before = note.read_bytes()
    store = SqliteJournal.for_root(tmp_path)
    writer = JournalWriter(store, Mirrors(tmp_path))
    try:
        store.close()  # any append now fails, as on a full or read-only disk
        outcome = make(tmp_path, writer).handle(Event(EventKind.MODIFIED, "a.md"))
        assert outcome.status is Status.FAILED
        assert "journal" in outcome.reason
        assert note.read_bytes() == before
        assert not writer.healthy
    finally:
        writer.close()


# -- batches ----------------------------------------------------------------------

STAMP_US = """
rules:
  - id: stamp
    paths: ["**/*.md"]
    do: [{set: {field: modified, value: "{{ now('%Y-%m-%dT%H:%M:%S.%fZ') }}"}}]
"""


def notes(root: Path, count: int) -> list[str]:
    """``count`` notes spread over two folders; their relative paths."""
    paths = [f"{'ab'[i % 2]}/n{i}.md" for i in range(count)]
    for rel in paths:
        (root / rel).parent.mkdir(exist_ok=True)
        (root / rel).write_text(f"---\ntitle: {rel}\n---\nbody\n")
    return paths


def test_a_batch_journals_every_write_before_the_first_swap(
    tmp_path: Path, writer: JournalWriter
) -> None:
    paths = notes(tmp_path, 20)
    engine = make(tmp_path, writer)
    outcomes = engine.handle_many([Event(EventKind.MODIFIED, rel) for rel in paths])
    assert [o.path for o in outcomes] == paths
    assert {o.status for o in outcomes} == {Status.WRITTEN}
    log = entries(writer)
    kinds = [e.kind for e in log]
    assert kinds == [FILE_WRITTEN] * 20 + [WORK_DONE] * 20  # all intents, then all closings
    intents = {e.seq: e for e in log if e.kind == FILE_WRITTEN}
    for done in log[20:]:
        assert done.payload["status"] == "written"
        written = intents.pop(done.ref or 0)
        assert written.after_hash == sha((tmp_path / written.path).read_bytes())  # type: ignore[operator]
    assert intents == {}
    assert writer.store.verify().ok


def test_the_files_of_a_batch_do_not_share_one_stamp(tmp_path: Path, writer: JournalWriter) -> None:
    paths = notes(tmp_path, 200)
    engine = make(tmp_path, writer, STAMP_US)
    engine.handle_many([Event(EventKind.MODIFIED, rel) for rel in paths])
    stamps = [(tmp_path / rel).read_text().split("modified: ")[1].split("\n")[0] for rel in paths]
    assert stamps == sorted(stamps)
    assert stamps[0] < stamps[-1]  # not one time for the whole batch


class SaveDuringCommit(JournalWriter):
    """A journal that lets a user save ``path`` right after the first commit: between
    the batch's plan and its swap."""

    def __init__(self, root: Path, path: str, text: str) -> None:
        super().__init__(SqliteJournal.for_root(root), Mirrors(root))
        self.target, self.text = root / path, text
        self.saved_at: datetime | None = None

    def append(self, entries: Sequence[NewEntry]) -> list[Entry]:
        sealed = super().append(entries)
        if self.saved_at is None:
            self.saved_at = datetime.now(UTC)
            self.target.write_text(self.text)
        return sealed


def test_a_file_saved_during_its_batch_is_re_planned_alone(tmp_path: Path) -> None:
    paths = notes(tmp_path, 10)
    user = "---\ntitle: saved meanwhile\n---\nnew body\n"
    writer = SaveDuringCommit(tmp_path, paths[3], user)
    try:
        outcomes = make(tmp_path, writer, STAMP_US).handle_many(
            [Event(EventKind.MODIFIED, rel) for rel in paths]
        )
        assert {o.status for o in outcomes} == {Status.WRITTEN}
        text = (tmp_path / paths[3]).read_text()
        assert text.startswith("---\ntitle: saved meanwhile\nmodified: ")  # the save, kept
        assert text.endswith("new body\n")
        stamp = text.split("modified: ")[1].split("\n")[0]
        assert writer.saved_at is not None
        assert stamp >= writer.saved_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # not older than it
        log = entries(writer)
    finally:
        writer.close()
    closings = [(e.path, e.payload["status"]) for e in log if e.kind == WORK_DONE]
    assert closings.count((paths[3], "conflict")) == 1
    assert sorted(closings).count((paths[3], "written")) == 1
    assert all(closings.count((rel, "written")) == 1 for rel in paths)


def test_a_batch_writes_nothing_when_the_journal_cannot_record_it(tmp_path: Path) -> None:
    paths = notes(tmp_path, 5)
    before = {rel: (tmp_path / rel).read_bytes() for rel in paths}
    store = SqliteJournal.for_root(tmp_path)
    writer = JournalWriter(store, Mirrors(tmp_path))
    try:
        store.close()
        outcomes = make(tmp_path, writer).handle_many(
            [Event(EventKind.MODIFIED, rel) for rel in paths]
        )
    finally:
        writer.close()
    assert {o.status for o in outcomes} == {Status.FAILED}
    assert {rel: (tmp_path / rel).read_bytes() for rel in paths} == before


# -- recovery ---------------------------------------------------------------------


def intent(writer: JournalWriter, path: str, before: bytes, after: bytes) -> int:
    entry = NewEntry(
        FILE_WRITTEN, "rule:stamp", path=path, before_hash=sha(before), after_hash=sha(after)
    )
    return writer.append([entry])[-1].seq


def test_interrupted_writes_are_closed_by_what_the_file_holds(
    tmp_path: Path, writer: JournalWriter
) -> None:
    (tmp_path / "done.md").write_bytes(b"after\n")
    (tmp_path / "never.md").write_bytes(b"before\n")
    (tmp_path / "user.md").write_bytes(b"a user's save\n")
    seqs = {
        name: intent(writer, name, b"before\n", b"after\n")
        for name in ("done.md", "never.md", "user.md")
    }
    revert = NewEntry(
        FILE_REVERTED, "user", path="done.md", before_hash=sha(b"x\n"), after_hash=sha(b"after\n")
    )
    seqs["revert"] = writer.append([revert])[-1].seq  # a killed `scribe undo`
    closing, redo = finish_open_work(writer.store, tmp_path)
    status = {entry.ref: entry.payload["status"] for entry in closing}
    assert status == {
        seqs["done.md"]: "written",
        seqs["never.md"]: "not written",
        seqs["user.md"]: "superseded",
        seqs["revert"]: "written",
    }
    assert sorted(p.path for p in redo) == ["never.md", "user.md"]
    writer.append(closing)
    assert finish_open_work(writer.store, tmp_path) == ([], [])  # closed once, for good


def test_catch_up_finds_edits_creations_and_deletions_made_while_stopped(
    tmp_path: Path, writer: JournalWriter
) -> None:
    for name in ("kept.md", "edited.md", "deleted.md", "sneaky.md"):
        (tmp_path / name).write_text(f"---\ntitle: {name}\n---\nbody\n")
    old = tmp_path / "old.txt"
    old.write_text("predates scribe\n")
    os.utime(old, (old.stat().st_atime - 3600, old.stat().st_mtime - 3600))
    state = State(None)
    engine = Engine(tmp_path, parse_rules(RULES, "r.yaml"), state=state, journal=writer)
    for name in ("kept.md", "edited.md", "deleted.md", "sneaky.md"):
        assert engine.handle(Event(EventKind.MODIFIED, name)).status is Status.WRITTEN
    head = writer.append([records.done(0, None, "stopped")])[-1]  # Scribe's last entry
    # While stopped:
    edited = tmp_path / "edited.md"
    edited.write_text(edited.read_text() + "more\n")
    (tmp_path / "deleted.md").unlink()
    (tmp_path / "new.md").write_text("---\ntitle: new\n---\n")
    sneaky = tmp_path / "sneaky.md"  # same size and mtime: trusted without reading
    st = sneaky.stat()
    sneaky.write_text(sneaky.read_text().replace("body", "BODY"))
    os.utime(sneaky, ns=(st.st_atime_ns, st.st_mtime_ns))
    files = ["kept.md", "edited.md", "new.md", "sneaky.md", "old.txt"]
    found = {
        (p.path, p.kind) for p in catch_up(writer.store, state, tmp_path, files, last_seen=head.ts)
    }
    assert found == {
        ("edited.md", EventKind.MODIFIED),
        ("new.md", EventKind.CREATED),
        ("deleted.md", EventKind.DELETED),
    }


def test_catch_up_on_a_first_start_does_nothing(tmp_path: Path, writer: JournalWriter) -> None:
    (tmp_path / "a.md").write_text("x\n")
    assert catch_up(writer.store, State(None), tmp_path, ["a.md"], last_seen=None) == []


def test_a_rule_that_matched_but_changed_nothing_is_journaled_as_matched(
    tmp_path: Path, writer: JournalWriter
) -> None:
    rules = (
        RULES
        + "  - id: steady\n    paths: ['**/*.md']\n    do: [{set: {field: title, value: a}}]\n"
    )
    (tmp_path / "a.md").write_text("---\ntitle: a\n---\nbody\n")
    make(tmp_path, writer, rules).handle(Event(EventKind.MODIFIED, "a.md"))
    log = entries(writer)
    assert [(e.kind, e.actor) for e in log if e.kind in (RULE_MATCHED, FILE_WRITTEN)] == [
        (RULE_MATCHED, "rule:steady"),
        (FILE_WRITTEN, "rule:stamp"),
    ]


def test_a_symlink_out_of_the_repository_is_journaled_as_a_scope_violation(
    tmp_path: Path, writer: JournalWriter
) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside.md"
    outside.write_text("---\ntitle: secret\n---\n")
    (tmp_path / "link.md").symlink_to(outside)
    engine = make(tmp_path, writer)
    assert engine.handle(engine.scan_event("link.md")).status is Status.SKIPPED
    (violation,) = [e for e in entries(writer) if e.kind == SCOPE_VIOLATION]
    assert violation.path == "link.md"
    assert "outside the repository" in violation.message
    assert outside.read_text() == "---\ntitle: secret\n---\n"


def test_each_start_journals_the_rules_added_and_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    scribe = str(Path(sys.executable).with_name("scribe"))
    rules = tmp_path / ".scribe" / "rules.yaml"
    rules.parent.mkdir()

    def run_with(*ids: str) -> None:
        body = "".join(
            f"  - id: {i}\n    paths: ['*.md']\n    do: [{{remove: {{field: x}}}}]\n" for i in ids
        )
        rules.write_text("rules:\n" + body)
        subprocess.run([scribe, "run", "--root", str(tmp_path)], check=True, capture_output=True)

    run_with("a", "b")
    run_with("b", "c")
    with SqliteJournal.for_root(tmp_path) as journal:
        loads = journal.query(Query(kinds=["rules.loaded"]))
        starts = journal.query(Query(kinds=["engine.started", "engine.stopped"]))
    assert [(e.payload["added"], e.payload["removed"]) for e in loads] == [
        (["a", "b"], []),
        (["c"], ["a"]),
    ]
    assert [e.kind for e in starts] == ["engine.started", "engine.stopped"] * 2


def test_a_write_still_under_way_in_another_process_is_left_open(
    tmp_path: Path, writer: JournalWriter
) -> None:
    """`scribe run` starting while a watcher writes must not close the watcher's write."""
    import subprocess

    (tmp_path / "a.md").write_bytes(b"before\n")
    other = subprocess.Popen(["sleep", "30"])
    try:
        entry = NewEntry(
            FILE_WRITTEN,
            "rule:stamp",
            path="a.md",
            before_hash=sha(b"before\n"),
            after_hash=sha(b"after\n"),
            payload={"pid": other.pid},
        )
        writer.append([entry])
        assert finish_open_work(writer.store, tmp_path) == ([], [])
    finally:
        other.kill()
        other.wait()
    closing, _ = finish_open_work(writer.store, tmp_path)  # its writer is gone now
    assert [e.payload["status"] for e in closing] == ["not written"]


def test_a_write_this_process_journaled_since_it_started_is_left_open(
    tmp_path: Path, writer: JournalWriter
) -> None:
    """``scribe watch`` recovers while its workers already write: recovery must not
    close its own write in flight (that write would then be closed twice)."""
    import os

    (tmp_path / "a.md").write_bytes(b"before\n")
    entry = NewEntry(
        FILE_WRITTEN,
        "rule:stamp",
        path="a.md",
        before_hash=sha(b"before\n"),
        after_hash=sha(b"after\n"),
        payload={"pid": os.getpid()},
    )
    writer.append([entry])
    assert finish_open_work(writer.store, tmp_path) == ([], [])

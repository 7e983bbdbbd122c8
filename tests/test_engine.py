"""The engine's own decisions: quarantine, busy files, the git lock, no-op runs."""

from __future__ import annotations

import threading
from pathlib import Path

from scribe.engine import Engine, Status
from scribe.events import Event, EventKind
from scribe.rules.load import parse_rules
from scribe.state import State

RULES = """
rules:
  - id: bad-zone
    paths: ["**/*.md"]
    do: [{set: {field: local, value: "{{ now(tz='Mars/Olympus') }}"}}]
  - id: good
    paths: ["**/*.md"]
    do: [{set: {field: checked, value: true}}]
"""


def make(root: Path) -> Engine:
    return Engine(root, parse_rules(RULES, "rules.yaml"), state=State(None))


def test_a_failing_rule_is_quarantined_until_the_file_changes(tmp_path: Path) -> None:
    note = tmp_path / "a.md"
    note.write_text("---\ntitle: a\n---\nbody\n")
    engine = make(tmp_path)
    first = engine.handle(Event(EventKind.MODIFIED, "a.md"))
    assert first.status is Status.WRITTEN
    assert [f.rule for f in first.failures] == ["bad-zone"]
    assert "checked: true" in note.read_text()  # the other rule still applied
    # The rule's write changed the file, so the next event retries bad-zone on it.
    again = engine.handle(Event(EventKind.MODIFIED, "a.md", source="scan"))
    assert [f.rule for f in again.failures] == ["bad-zone"]
    # Same content once more: quarantined, not retried (and not reported again).
    quiet = engine.handle(Event(EventKind.MODIFIED, "a.md", source="scan"))
    assert quiet.failures == ()
    assert set(engine.quarantine["a.md"]) == {"bad-zone"}
    note.write_text(note.read_text() + "more\n")
    retried = engine.handle(Event(EventKind.MODIFIED, "a.md", source="scan"))
    assert [f.rule for f in retried.failures] == ["bad-zone"]


def test_a_file_open_for_writing_is_left_alone(tmp_path: Path) -> None:
    note = tmp_path / "a.md"
    note.write_text("")
    engine = make(tmp_path)
    with open(note, "w", encoding="utf-8") as writer:
        outcome = engine.handle(Event(EventKind.MODIFIED, "a.md"))
        assert outcome.status is Status.BUSY
        writer.write("the user's text\n")
    assert note.read_text() == "the user's text\n"
    assert engine.handle(Event(EventKind.MODIFIED, "a.md")).status is Status.WRITTEN


def test_rewrites_wait_for_the_git_index_lock(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    lock = tmp_path / ".git" / "index.lock"
    lock.write_text("")
    note = tmp_path / "a.md"
    note.write_text("body\n")
    engine = make(tmp_path)
    done = threading.Event()

    def apply() -> None:
        engine.handle(Event(EventKind.MODIFIED, "a.md"))
        done.set()

    thread = threading.Thread(target=apply)
    thread.start()
    assert not done.wait(0.3)  # held while git works
    assert note.read_text() == "body\n"
    lock.unlink()
    assert done.wait(10)
    thread.join()
    assert "checked: true" in note.read_text()


def test_a_run_with_nothing_to_change_touches_nothing(tmp_path: Path) -> None:
    note = tmp_path / "a.md"
    note.write_text("---\nchecked: true\n---\nbody\n")
    before = note.stat()
    rules = parse_rules(
        "rules:\n  - id: good\n    do: [{set: {field: checked, value: true}}]\n", "r.yaml"
    )
    engine = Engine(tmp_path, rules, state=State(None))
    assert engine.handle(engine.scan_event("a.md")).status is Status.UNCHANGED
    after = note.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_state_describes_the_content_scribe_wrote(tmp_path: Path) -> None:
    """Size and mtime recorded after a write are those of Scribe's own file, so a
    later catch-up that trusts them never mistakes another save for Scribe's."""
    note = tmp_path / "a.md"
    note.write_text("---\ntitle: a\n---\nbody\n")
    engine = make(tmp_path)
    assert engine.handle(Event(EventKind.MODIFIED, "a.md")).status is Status.WRITTEN
    seen = engine.state.get("a.md")
    st = note.stat()
    assert seen is not None
    assert (seen.size, seen.mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert seen.size != len("---\ntitle: a\n---\nbody\n")


def test_a_rule_failing_on_file_after_file_trips_its_breaker(tmp_path: Path) -> None:
    """After 5 failures in a row the rule is set aside: the next file is not even
    tried (no failure reported), while the healthy rule keeps working."""
    engine = make(tmp_path)
    for i in range(6):
        (tmp_path / f"n{i}.md").write_text(f"---\ntitle: {i}\n---\n")
    failed = [
        [f.rule for f in engine.handle(Event(EventKind.MODIFIED, f"n{i}.md")).failures]
        for i in range(6)
    ]
    assert failed == [["bad-zone"]] * 5 + [[]]
    assert "checked: true" in (tmp_path / "n5.md").read_text()
    assert engine.breakers.states() == {"bad-zone": "open"}

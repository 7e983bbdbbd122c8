"""Scribe's memory of what it last saw survives restarts, in batches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from scribe.state import BATCH_SIZE, Seen, State


def rows(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT path, sha256 FROM files"))


def test_records_survive_a_restart_and_forgetting_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    state = State(db)
    state.put("a.md", Seen("sha-a", "masked-a", 1, 10))
    state.put("b.md", Seen("sha-b", "masked-b", 2, 20))
    state.forget("b.md")
    state.close()
    again = State(db)
    assert again.get("a.md") == Seen("sha-a", "masked-a", 1, 10)
    assert again.get("b.md") is None
    again.close()


def test_a_full_batch_is_written_without_waiting_for_close(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    state = State(db)
    for i in range(BATCH_SIZE):
        state.put(f"n{i}.md", Seen(f"sha{i}", "m", i, i))
    assert len(rows(db)) == BATCH_SIZE  # visible to another connection already
    state.put("late.md", Seen("sha-late", "m", 0, 0))
    assert "late.md" not in rows(db)
    state.flush()
    assert rows(db)["late.md"] == "sha-late"
    state.close()


def test_scribe_run_leaves_its_records_on_disk(tmp_path: Path) -> None:
    from scribe.engine import Engine
    from scribe.rules.load import parse_rules

    (tmp_path / "a.md").write_text("---\ntitle: a\n---\nbody\n")
    rules = parse_rules("rules:\n  - id: s\n    do: [{set: {field: x, value: 1}}]\n", "r.yaml")
    engine = Engine(tmp_path, rules, state=State(tmp_path / "state.db"))
    engine.handle(engine.scan_event("a.md"))
    engine.state.close()
    assert set(rows(tmp_path / "state.db")) == {"a.md"}


def test_more_changes_than_one_statement_holds_are_all_kept(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    state = State(db)
    count = 3 * BATCH_SIZE + 7
    for i in range(count):
        state.put(f"n{i}.md", Seen(f"sha{i}", "m", i, i))
    state.flush()
    for i in range(0, count, 2):
        state.forget(f"n{i}.md")
    for i in range(1, count, 4):
        state.put(f"n{i}.md", Seen(f"new{i}", "m", i, i))
    state.close()
    kept = rows(db)
    assert set(kept) == {f"n{i}.md" for i in range(1, count, 2)}
    assert all(
        kept[f"n{i}.md"] == (f"new{i}" if i % 4 == 1 else f"sha{i}") for i in range(1, count, 2)
    )

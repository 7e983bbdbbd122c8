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

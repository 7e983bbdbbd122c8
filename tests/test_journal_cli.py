"""The journal's commands, as a user runs them: filters, formats, exit codes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from scribe.journal import Entry, NewEntry, SqliteJournal
from scribe.journal.commands import register
from scribe.journal.entry import FILE_WRITTEN, QUARANTINED, RULE_MATCHED
from scribe.journal.mirrors import LOG_DIR, Mirrors
from scribe.journal.writer import JournalWriter

START = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
DIFF = (
    "--- a/notes/a.md\n+++ b/notes/a.md\n@@ -1,2 +1,3 @@\n ---\n+modified: 2026-11-23\n title: A\n"
)
APP = "import typer; from scribe.journal.commands import register; app = typer.Typer(); register(app); app()"


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(make_app(), [*args, "--root", str(root)], env={"COLUMNS": "300"})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A journal of 12 entries over two days, written the way the engine writes."""
    clock = [START]
    store = SqliteJournal(tmp_path / ".scribe" / "journal.db", clock=lambda: clock[0])
    with store, JournalWriter(store, Mirrors(tmp_path)) as writer:
        for i in range(12):
            clock[0] = START + timedelta(minutes=20 * i)  # 23:00 to 02:40 the next day
            if i % 4 == 0:
                new = NewEntry(FILE_WRITTEN, "rule:stamp", "notes/a.md", f"{i:064x}",
                               f"{i + 1:064x}", DIFF, "modified set", {"rule": "stamp"})  # fmt: skip
            elif i % 4 == 1:
                new = NewEntry(RULE_MATCHED, "rule:toc", f"docs/{i}.md", message='toc "a-b" ok')
            elif i % 4 == 2:
                new = NewEntry(QUARANTINED, "scribe", "notes/sub/b.md", message="rule bad failed")
            else:
                new = NewEntry("case.opened", "agent:claude/1234", message=f"case {i}")
            writer.append([new])
    return tmp_path


def test_register_adds_the_journal_commands() -> None:
    result = CliRunner().invoke(make_app(), ["--help"])
    for name in ("log", "history", "show", "verify", "journal"):
        assert name in result.stdout
    assert "export" in CliRunner().invoke(make_app(), ["journal", "--help"]).stdout


def test_log_prints_the_last_entries_like_the_markdown_mirror(repo: Path) -> None:
    code, out, _ = run(repo, "log")
    lines = out.splitlines()
    assert code == 0
    assert len(lines) == 12
    assert lines[0] == "[✅] [2026-11-22 23:00:00 UTC] [rule:stamp] notes/a.md: modified set"
    assert lines[2] == "[🚧] [2026-11-22 23:40:00 UTC] [scribe] notes/sub/b.md: rule bad failed"
    md = b"".join(p.read_bytes() for p in sorted((repo / LOG_DIR).glob("*/JOURNAL.md")))
    assert out.encode() == md
    code, out, err = run(repo, "log", "--limit", "3")
    assert [line.split("] [")[1] for line in out.splitlines()] == [
        "2026-11-23 02:00:00 UTC",
        "2026-11-23 02:20:00 UTC",
        "2026-11-23 02:40:00 UTC",
    ]
    assert "the last 3; --limit 0 shows all" in err


def test_log_filters(repo: Path) -> None:
    def seqs(*args: str) -> list[int]:
        code, out, err = run(repo, "log", "--json", *args)
        assert code == 0, err
        return [json.loads(line)["seq"] for line in out.splitlines()]

    assert seqs("--kind", "file.written", "--kind", "quarantined") == [1, 3, 5, 7, 9, 11]
    assert seqs("--path", "notes/**") == [1, 3, 5, 7, 9, 11]
    assert seqs("--path", "notes/*.md") == [1, 5, 9]
    assert seqs("--path", "docs/5.md") == [6]
    assert seqs("--actor", "agent:claude/1234") == [4, 8, 12]
    assert seqs("--grep", 'a-b "') == [2, 6, 10]
    assert seqs("--grep", "\"'") == []
    assert seqs("--since", "2026-11-23") == [4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert seqs("--since", "2026-11-23T01:00", "--until", "2026-11-23T02:00+00:00") == [7, 8, 9]
    assert seqs("--since", "2026-11-23T02:00+01:00") == [7, 8, 9, 10, 11, 12]
    assert seqs("--since", "1d") == []  # the fixture's clock is in the past
    assert seqs("--until", "30m") == list(range(1, 13))
    assert seqs("--kind", "file.written", "--since", "2026-11-23T00:30", "--limit", "1") == [9]


def test_log_refuses_bad_times_and_explains(repo: Path) -> None:
    code, _, err = run(repo, "log", "--since", "yesterday")
    assert code == 2
    assert "'yesterday' is not a time" in err
    assert "(30m, 2h, 3d, 1w)" in err
    code, _, err = run(repo, "log", "--until", "2026-13-01")
    assert code == 2


def test_commands_without_a_journal_say_so(tmp_path: Path) -> None:
    for args in (["log"], ["history", "a.md"], ["show", "1"], ["verify"], ["journal", "export"]):
        code, _, err = run(tmp_path, *args)
        assert code == 1
        assert f"no journal in {tmp_path}: .scribe/journal.db does not exist yet" in err
    assert not (tmp_path / ".scribe").exists()


def test_history_shows_each_write_with_its_diff(repo: Path) -> None:
    code, out, _ = run(repo, "history", "notes/a.md")
    assert code == 0
    assert out.count("[✅]") == 3
    assert out.count("+modified: 2026-11-23\n") == 3
    assert out.startswith(
        "[✅] [2026-11-22 23:00:00 UTC] [rule:stamp] notes/a.md: modified set\n--- a/notes/a.md\n"
    )
    code, _, err = run(repo, "history", "notes/nothing.md")
    assert code == 1
    assert "nothing journaled for notes/nothing.md" in err


def test_history_finds_the_root_and_takes_paths_relative_to_where_you_are(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "notes").mkdir()
    (repo / "notes" / "a.md").write_text("---\ntitle: A\n---\n")
    monkeypatch.chdir(repo / "notes")
    result = CliRunner().invoke(make_app(), ["history", "a.md"])
    assert result.exit_code == 0
    assert result.stdout.count("[✅]") == 3


def test_show_prints_one_entry_in_full(repo: Path) -> None:
    code, out, _ = run(repo, "show", "5")
    assert code == 0
    with SqliteJournal.for_root(repo) as store:
        entry = store.get(5)
    assert entry is not None
    assert f"hash        {entry.hash}\n" in out
    assert f"prev_hash   {entry.prev_hash}\n" in out
    assert "kind        file.written ✅\n" in out
    assert 'payload:\n{\n  "rule": "stamp"\n}\n' in out
    assert out.endswith("diff:\n" + DIFF)
    code, _, err = run(repo, "show", "99")
    assert code == 1
    assert "no entry 99: the last is 12" in err


def test_verify_exit_codes(repo: Path) -> None:
    with SqliteJournal.for_root(repo) as store:
        head = store.head()
    assert head is not None
    code, out, _ = run(repo, "verify")
    assert (code, out) == (0, f"ok: 12 entries, head 12 {head.hash[:12]}\n")
    conn = sqlite3.connect(repo / ".scribe" / "journal.db")
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET actor = 'user' WHERE seq = 3")
    conn.commit()
    conn.close()
    code, out, _ = run(repo, "verify")
    assert code == 1
    assert out == "broken at entry 3: entry 3 was changed: its hash does not match\n"


def test_export_rebuilds_the_mirrors_byte_for_byte(repo: Path) -> None:
    files = sorted((repo / LOG_DIR).glob("*/*"))
    assert [f"{p.parent.name}/{p.name}" for p in files] == [
        "2026-11-22/JOURNAL.md",
        "2026-11-22/journal.jsonl",
        "2026-11-23/JOURNAL.md",
        "2026-11-23/journal.jsonl",
    ]
    written = {p: p.read_bytes() for p in files}
    for p in files:
        p.write_bytes(b"lost\n")
    code, out, _ = run(repo, "journal", "export")
    assert (code, out) == (0, "exported 12 entries into 4 files under .scribe/log\n")
    assert {p: p.read_bytes() for p in files} == written
    code, out, _ = run(repo, "journal", "export", "--since", "2026-11-23")
    assert out.startswith("exported 9 entries into 2 files")
    code, _, err = run(repo, "journal", "export", "--since", "soon")
    assert code == 2
    assert "'soon' is not a day" in err


def test_log_follow_prints_new_entries_until_interrupted(repo: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", APP, "log", "-f", "--kind", "case.opened", "--root", str(repo)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        shown = [proc.stdout.readline() for _ in range(3)]  # the existing case entries
        assert [line.split("] ")[-1] for line in shown] == ["case 3\n", "case 7\n", "case 11\n"]
        with SqliteJournal.for_root(repo) as store:
            store.append([NewEntry(FILE_WRITTEN, "user", "x.md", message="not shown")])
            (new,) = store.append([NewEntry("case.opened", "user", message="fresh case")])
        line = read_line(proc, timeout=10)
        assert line == f"[🐞] [{new.ts[:10]} {new.ts[11:19]} UTC] [user] fresh case\n"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()
        proc.stderr.close()


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    got: list[str] = []
    reader = threading.Thread(
        target=lambda: got.append(proc.stdout.readline() if proc.stdout else "")
    )
    reader.start()
    reader.join(timeout)
    assert got, "no line in time"
    return got[0]


def test_json_lines_are_the_entries(repo: Path) -> None:
    _, out, _ = run(repo, "log", "--json", "--limit", "0")
    entries = [Entry.from_json(line) for line in out.splitlines()]
    with SqliteJournal.for_root(repo) as store:
        assert entries == [store.get(seq) for seq in range(1, 13)]


def test_log_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path: Path) -> None:
    """`scribe log | head -1`: the closed pipe ends the command, no traceback."""
    with SqliteJournal.for_root(tmp_path) as journal:
        journal.append(
            [NewEntry("note", "user", message=f"entry {i} " + "x" * 80) for i in range(3000)]
        )
    scribe = str(Path(sys.executable).with_name("scribe"))
    proc = subprocess.Popen(
        [scribe, "log", "--limit", "0", "--root", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=30)
    assert b"entry 0" in first
    assert "Traceback" not in stderr
    assert "Broken pipe" not in stderr

"""The daily JSONL and Markdown mirrors: readable, whole lines, whoever appends."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scribe.journal import Entry, NewEntry, Query, SqliteJournal
from scribe.journal.entry import FILE_WRITTEN, JOURNAL_FLAGGED, QUARANTINED
from scribe.journal.mirrors import JSONL, LOG_DIR, MARKDOWN, Mirrors, export, markdown_line
from scribe.journal.writer import JournalWriter

NOON = datetime(2026, 11, 23, 12, 0, 0, 987654, tzinfo=UTC)


def sealed(
    kind: str = FILE_WRITTEN,
    actor: str = "rule:touch-modified",
    path: str | None = None,
    message: str = "",
) -> Entry:
    new = NewEntry(kind, actor, path, message=message)
    return Entry.seal(new, seq=1, ts="2026-11-23T10:00:00.123456Z", prev_hash="0" * 64)


def test_markdown_lines_read_as_one_line_per_entry() -> None:
    assert (
        markdown_line(sealed(path="notes/a.md", message="modified set"))
        == "[✅] [2026-11-23 10:00:00 UTC] [rule:touch-modified] notes/a.md: modified set"
    )
    assert (
        markdown_line(sealed(kind=QUARANTINED, actor="scribe", message="rule bad failed 3 times"))
        == "[🚧] [2026-11-23 10:00:00 UTC] [scribe] rule bad failed 3 times"
    )
    assert (
        markdown_line(sealed(kind="case.opened", actor="agent:claude/1234", message="two\nlines"))
        == "[🐞] [2026-11-23 10:00:00 UTC] [agent:claude/1234] two lines"
    )
    assert markdown_line(sealed(kind="team.custom", actor="user")).startswith("[📝] ")  # unknown
    assert markdown_line(sealed(kind="engine.started", actor="scribe")).endswith("engine.started")
    assert markdown_line(sealed(path="x.md")).endswith("] x.md")


def journal_lines(root: Path) -> tuple[list[str], list[str]]:
    """Every JSONL and Markdown line of every day, oldest day first."""
    jsonl, md = [], []
    for day in sorted((root / LOG_DIR).iterdir()):
        jsonl += (day / JSONL).read_text(encoding="utf-8").splitlines()
        md += (day / MARKDOWN).read_text(encoding="utf-8").splitlines()
    return jsonl, md


def test_each_entry_lands_in_the_folder_of_its_utc_day(tmp_path: Path) -> None:
    moments = iter([NOON + timedelta(hours=11, minutes=59, seconds=59), NOON + timedelta(hours=12)])
    store = SqliteJournal(tmp_path / ".scribe" / "journal.db", clock=lambda: next(moments))
    with store, JournalWriter(store, Mirrors(tmp_path)) as writer:
        first = writer.append([NewEntry("test.step", "user", "a.md", message="late")])
        second = writer.append([NewEntry("test.step", "user", message="just after midnight")])
    for entry, day in ((first[0], "2026-11-23"), (second[0], "2026-11-24")):
        folder = tmp_path / LOG_DIR / day
        assert (folder / JSONL).read_text().splitlines() == [entry.to_json()]
        assert (folder / MARKDOWN).read_text().splitlines() == [markdown_line(entry)]
    assert "[2026-11-23 23:59:59 UTC] [user] a.md: late" in markdown_line(first[0])
    assert "[2026-11-24 00:00:00 UTC]" in markdown_line(second[0])


def _lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _wait_for_lines(path: Path, timeout: float = 10.0) -> None:
    """Until ``path`` holds a line (or ``timeout`` seconds pass: the caller's asserts say so)."""
    deadline = time.monotonic() + timeout
    while not _lines_of(path) and time.monotonic() < deadline:
        time.sleep(0.005)


def test_mirror_lines_follow_their_commits_while_appends_keep_coming(tmp_path: Path) -> None:
    # Mirror lines are written in batches after their commits, but never held back
    # until the journal is idle: an endless stream of appends still sees them.
    store = SqliteJournal(tmp_path / ".scribe" / "journal.db", clock=lambda: NOON)
    jsonl = tmp_path / LOG_DIR / "2026-11-23" / JSONL
    stop, appended = threading.Event(), []
    with store:
        with JournalWriter(store, Mirrors(tmp_path)) as writer:

            def keep_appending() -> None:
                for i in itertools.count():
                    if stop.is_set() or i == 100_000:
                        return
                    appended.extend(writer.append([NewEntry("test.step", "user", message=f"{i}")]))

            appender = threading.Thread(target=keep_appending)
            appender.start()
            _wait_for_lines(jsonl)
            busy = appender.is_alive()
            stop.set()
            appender.join()
        assert busy, "the appender ran out of entries before any mirror line was written"
        assert _lines_of(jsonl), "no mirror line while appends kept coming"
        # Closed, the writer has written every line, once, in the journal's order.
        everything = store.query(Query(limit=None))
    assert [entry.to_json() for entry in appended] == [entry.to_json() for entry in everything]
    assert _lines_of(jsonl) == [entry.to_json() for entry in everything]
    assert _lines_of(jsonl.with_name(MARKDOWN)) == [markdown_line(e) for e in everything]


def test_commits_by_callers_and_by_the_writer_thread_are_mirrored_once_in_order(
    tmp_path: Path,
) -> None:
    # A caller who finds the journal idle commits on its own thread (append_now); the
    # rest queue for the writer thread. The mirrors must hold every entry once, in the
    # journal's order, however the two kinds of commit interleave.
    store = SqliteJournal(tmp_path / ".scribe" / "journal.db", clock=lambda: NOON)
    jsonl = tmp_path / LOG_DIR / "2026-11-23" / JSONL

    def step(name: str) -> list[NewEntry]:
        return [NewEntry("test.step", "user", message=name)]

    def work(t: int) -> None:
        for i in range(60):
            new = step(f"{t}/{i}")
            if i % 3 == 0:
                writer.submit(new)
            elif i % 3 == 1:
                writer.append_now(new) or writer.append(new)
            else:
                writer.append(new)

    with store:
        with JournalWriter(store, Mirrors(tmp_path)) as writer:
            own = writer.append_now(step("own")) or []  # idle: this thread commits it
            writer.submit(step("queued"))
            writer.flush()
            own += writer.append_now(step("own again")) or []
            assert [e.message for e in own] == ["own", "own again"]
            threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            writer.flush()
            flushed = _lines_of(jsonl)
        everything = store.query(Query(limit=None))
        assert store.verify().ok
    assert len(everything) == 3 + 4 * 60
    assert flushed == [entry.to_json() for entry in everything]
    assert _lines_of(jsonl) == flushed  # closing wrote nothing twice
    assert _lines_of(jsonl.with_name(MARKDOWN)) == [markdown_line(e) for e in everything]


def test_an_idle_writer_writes_its_mirror_lines_without_being_closed(tmp_path: Path) -> None:
    store = SqliteJournal(tmp_path / ".scribe" / "journal.db", clock=lambda: NOON)
    jsonl = tmp_path / LOG_DIR / "2026-11-23" / JSONL
    with store, JournalWriter(store, Mirrors(tmp_path)) as writer:
        (entry,) = writer.append([NewEntry("test.step", "user", "a.md", message="alone")])
        _wait_for_lines(jsonl)
        assert _lines_of(jsonl) == [entry.to_json()]
        assert _lines_of(jsonl.with_name(MARKDOWN)) == [markdown_line(entry)]


def test_a_flush_returns_once_the_mirror_lines_are_written(tmp_path: Path) -> None:
    store = SqliteJournal(tmp_path / ".scribe" / "journal.db", clock=lambda: NOON)
    jsonl = tmp_path / LOG_DIR / "2026-11-23" / JSONL
    with store, JournalWriter(store, Mirrors(tmp_path)) as writer:
        writer.submit([NewEntry("test.step", "user", message=f"{i}") for i in range(3)])
        writer.flush()
        everything = store.query(Query(limit=None))
        assert len(everything) == 3
        assert _lines_of(jsonl) == [entry.to_json() for entry in everything]
        assert _lines_of(jsonl.with_name(MARKDOWN)) == [markdown_line(e) for e in everything]


def test_a_line_cut_short_by_a_crash_is_ended_and_reported(tmp_path: Path) -> None:
    store = SqliteJournal(tmp_path / ".scribe" / "journal.db", clock=lambda: NOON)
    folder = tmp_path / LOG_DIR / "2026-11-23"
    folder.mkdir(parents=True)
    whole = "[✅] [2026-11-23 11:00:00 UTC] [user] a.md: done\n".encode()
    cut = "[✅] [2026-11-23 11:00:01 UTC] [user] b.md: ok ✅".encode()[:-2]  # mid-character
    (folder / MARKDOWN).write_bytes(whole + cut)
    (folder / JSONL).write_bytes(b'{"seq": 1, "mess')
    with store:
        with JournalWriter(store, Mirrors(tmp_path)) as writer:
            (entry,) = writer.append([NewEntry("test.step", "user", "c.md", message="after")])
        # journaled by the writer in a batch of its own, which closing it waits for
        flagged = store.query(Query(kinds=(JOURNAL_FLAGGED,)))
    md = (folder / MARKDOWN).read_bytes()
    assert md.startswith(whole + cut + b"\n" + markdown_line(entry).encode() + b"\n")
    jsonl = (folder / JSONL).read_bytes().split(b"\n")
    assert jsonl[0] == b'{"seq": 1, "mess'
    assert Entry.from_json(jsonl[1].decode()) == entry
    assert sorted(e.payload["file"] for e in flagged) == [
        ".scribe/log/2026-11-23/JOURNAL.md",
        ".scribe/log/2026-11-23/journal.jsonl",
    ]
    assert all(e.actor == "scribe" and "cut short" in e.message for e in flagged)
    assert md.endswith(b"\n")


def test_mirrors_report_torn_files_to_their_caller(tmp_path: Path) -> None:
    folder = tmp_path / LOG_DIR / "2026-11-23"
    folder.mkdir(parents=True)
    (folder / JSONL).write_bytes(b"{")
    entry = sealed(message="x")
    assert Mirrors(tmp_path).append([entry]) == [folder / JSONL]
    assert Mirrors(tmp_path).append([entry]) == []
    assert (folder / JSONL).read_text().splitlines()[1:] == [entry.to_json(), entry.to_json()]


def test_mirrors_kept_open_still_see_a_line_another_writer_cut_short(tmp_path: Path) -> None:
    folder = tmp_path / LOG_DIR / "2026-11-23"
    mirrors = Mirrors(tmp_path)
    first, second = sealed(message="one"), sealed(message="two")
    assert mirrors.append([first]) == []
    with open(folder / JSONL, "ab") as other:  # a process killed in the middle of a line
        other.write(b'{"seq": 9, "mess')
    assert mirrors.append([second]) == [folder / JSONL]
    lines = (folder / JSONL).read_text().splitlines()
    assert lines == [first.to_json(), '{"seq": 9, "mess', second.to_json()]
    mirrors.close()


def test_mirrors_kept_open_follow_a_file_export_replaced(tmp_path: Path) -> None:
    folder = tmp_path / LOG_DIR / "2026-11-23"
    mirrors = Mirrors(tmp_path)
    first, second = sealed(message="one"), sealed(message="two")
    mirrors.append([first])
    (folder / "rebuilt").write_text(first.to_json() + "\n")
    os.replace(folder / "rebuilt", folder / JSONL)  # what export does
    assert mirrors.append([second]) == []
    assert (folder / JSONL).read_text().splitlines() == [first.to_json(), second.to_json()]
    mirrors.close()


APPENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from scribe.journal import NewEntry, SqliteJournal
    from scribe.journal.mirrors import Mirrors
    from scribe.journal.writer import JournalWriter

    root, name = Path(sys.argv[1]), sys.argv[2]
    with SqliteJournal.for_root(root) as store, JournalWriter(store, Mirrors(root)) as writer:
        for step, signal in ((range(250), "ready"), (range(250, 500), "half")):
            print(signal, flush=True)
            sys.stdin.readline()  # both go on at once, so their halves must interleave
            for i in step:
                writer.append([NewEntry("test.step", "process:" + name, f"{name}/{i % 7}.md",
                                        message=f"{name} step {i} ✅ ünïcode")])
    """
)


def test_two_processes_append_to_one_chain_and_whole_mirror_lines(tmp_path: Path) -> None:
    SqliteJournal.for_root(tmp_path).close()  # created once, so neither races to migrate
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(tmp_path), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("left", "right")
    ]
    for signal in (b"ready\n", b"half\n"):  # neither starts a half before both ended the last
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == signal
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode() if proc.stderr else ""
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    with SqliteJournal.for_root(tmp_path) as store:
        report = store.verify()
        assert (report.ok, report.checked) == (True, 1000)
        stored = {e.seq: e for e in store.query(Query())}
    jsonl, md = journal_lines(tmp_path)
    parsed = [Entry.from_json(line) for line in jsonl]
    assert sorted(e.seq for e in parsed) == list(range(1, 1001))
    assert all(stored[e.seq] == e for e in parsed)
    assert len(md) == 1000
    assert sorted(md) == sorted(markdown_line(e) for e in stored.values())
    actors = [stored[seq].actor for seq in sorted(stored)]
    assert sum(a != b for a, b in itertools.pairwise(actors)) > 1  # they did overlap
    for name in ("left", "right"):  # each process's own lines keep their order
        mine = [e.message for e in parsed if e.actor == f"process:{name}"]
        assert mine == [f"{name} step {i} ✅ ünïcode" for i in range(500)]


def test_export_rebuilds_days_from_a_given_day_on(tmp_path: Path) -> None:
    clock = [NOON]
    store = SqliteJournal(tmp_path / ".scribe" / "journal.db", clock=lambda: clock[0])
    with store, JournalWriter(store, Mirrors(tmp_path)) as writer:
        for day in range(3):
            clock[0] = NOON + timedelta(days=day)
            writer.append([NewEntry("test.step", "user", f"d{day}.md", message=f"day {day}")])
    days = sorted((tmp_path / LOG_DIR).iterdir())
    assert [d.name for d in days] == ["2026-11-23", "2026-11-24", "2026-11-25"]
    before = {p: p.read_bytes() for d in days for p in d.iterdir()}
    for d in days:
        (d / MARKDOWN).write_text("garbage\n")
    progress: list[tuple[int, int]] = []
    with SqliteJournal(tmp_path / ".scribe" / "journal.db") as again:
        since = NOON.date() + timedelta(days=1)
        done = export(again, tmp_path, since, lambda n, total: progress.append((n, total)))
    assert (done.entries, done.files) == (2, 4)
    assert progress[-1] == (2, 2)
    assert (days[0] / MARKDOWN).read_text() == "garbage\n"  # before --since: untouched
    for d in days[1:]:
        for p in d.iterdir():
            assert p.read_bytes() == before[p]
    assert not [p for d in days for p in d.iterdir() if p.name.endswith(".tmp")]


def test_mirrors_come_back_after_the_log_folder_is_removed(tmp_path: Path) -> None:
    import shutil

    from scribe.journal import NewEntry, SqliteJournal
    from scribe.journal.mirrors import LOG_DIR, Mirrors

    mirrors = Mirrors(tmp_path)
    with SqliteJournal.for_root(tmp_path) as store:
        mirrors.append(store.append([NewEntry("note", "user", message="one")]))
        shutil.rmtree(tmp_path / LOG_DIR)
        mirrors.append(store.append([NewEntry("note", "user", message="two")]))
    (day,) = (tmp_path / LOG_DIR).iterdir()
    assert "two" in (day / "JOURNAL.md").read_text()

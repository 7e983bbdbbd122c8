"""Sentinel logs: journal first, whole lines in the day folder, idempotent retries."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_helpers import make_call
from scribe.journal import JournalWriter, Mirrors, Query, SqliteJournal
from scribe.journal.entry import AGENT_EVENT, JOURNAL_FLAGGED
from scribe.journal.mirrors import JSONL, LOG_DIR
from scribe.mcp.context import Call
from scribe.mcp.failures import (
    BUSY,
    CONFLICT,
    INVALID_ARGUMENT,
    SCOPE_VIOLATION,
    WRONG_MODE,
    ToolFailure,
)
from scribe.mcp.lines import LineFile
from scribe.mcp.sentinel import SENTINEL_DIR, SentinelLog

#: A fixed moment in the past, so that tests do not depend on the day they run.
WHEN = datetime(2026, 11, 30, 10, 15, 30, tzinfo=UTC)
DAY = WHEN.date().isoformat()


def call_for(
    root: Path,
    *,
    when: datetime = WHEN,
    agent: str = "claude-code",
    instance: str = "inst-1",
    execution: str = "exec-1",
    intent: str = "audit the notes",
    mode: str = "sentinel",
    session: str = "session-1",
) -> Call:
    return make_call(
        root,
        session,
        mode=mode,
        execution_id=execution,
        agent_identity={"id": agent, "instance_id": instance},
        intent=intent,
        timestamp_utc=when.isoformat().replace("+00:00", "Z"),
        affected_dev_projects=["notes"],
    )


@dataclass
class Repo:
    """A repository with a real journal (SQLite, group-commit writer and mirrors)."""

    root: Path
    store: SqliteJournal
    journal: JournalWriter

    @classmethod
    def make(cls, root: Path, journal_home: Path | None = None) -> Repo:
        root.mkdir(parents=True, exist_ok=True)
        home = journal_home or root
        store = SqliteJournal.for_root(home)
        return cls(root, store, JournalWriter(store, Mirrors(home)))

    def close(self) -> None:
        self.journal.close()
        self.store.close()

    def entries(self, *kinds: str) -> list[Any]:
        self.journal.flush()
        return self.store.query(Query(kinds=kinds))

    def day_file(self, name: str, day: str = DAY) -> Path:
        return self.root / SENTINEL_DIR / day / name

    def lines(self, name: str, day: str = DAY) -> list[str]:
        path = self.day_file(name, day)
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    made = Repo.make(tmp_path / "repo")
    yield made
    made.close()


#: append_event's arguments but the message, as an agent leaving the optional ones out sends them.
EVENT: dict[str, Any] = {
    "event_type": "file.edit",
    "severity": None,
    "paths": [],
    "data": None,
    "idempotency_key": None,
}


def event(log: SentinelLog, call: Call, message: str = "Edited notes/a.md", **given: Any) -> Any:
    return log.append_event(call, **(EVENT | {"message": message} | given))


def test_an_event_is_journaled_then_written_as_one_line_in_each_file(repo: Repo) -> None:
    log = SentinelLog(repo.root, repo.journal)
    result = event(
        log,
        call_for(repo.root),
        message="Edited  notes/a.md\nand its index",
        severity="warning",
        paths=["notes/a.md", "./notes//b.md"],
        data={"lines": 3},
    )
    log.close()
    rel = f".scribe/sentinel/{DAY}"
    assert result == {
        "entry_id": result["entry_id"],
        "seq": 1,
        "sentinel_day": DAY,
        "files": [f"{rel}/sentinel.jsonl", f"{rel}/SENTINEL_LOG.md"],
    }
    [entry] = repo.entries(AGENT_EVENT)
    assert entry.actor == "agent:claude-code"
    assert entry.message == "Edited  notes/a.md\nand its index"
    payload = entry.payload
    assert payload["execution_id"] == "exec-1"
    assert payload["agent"] == {"id": "claude-code", "instance_id": "inst-1"}
    assert payload["intent"] == "audit the notes"
    assert payload["session_id"] == "session-1"
    assert payload["mode"] == "sentinel"
    assert payload["sentinel_day"] == DAY
    assert payload["affected_dev_projects"] == ["notes"]
    assert payload["event_type"] == "file.edit"
    assert payload["severity"] == "warning"
    assert payload["paths"] == ["notes/a.md", "notes/b.md"]
    assert payload["data"] == {"lines": 3}
    assert payload["entry_id"] == result["entry_id"]
    [line] = repo.lines("sentinel.jsonl")
    assert json.loads(line) == {
        "seq": 1,
        "ts": entry.ts,
        "kind": AGENT_EVENT,
        "actor": "agent:claude-code",
        "message": entry.message,
        **payload,
    }
    assert repo.lines("SENTINEL_LOG.md") == [
        "[⚠️] [2026-11-30 10:15:30 UTC] [Agent: claude-code/inst-1] [Exec: exec-1] Edited"
        " notes/a.md and its index | type=file.edit; severity=warning;"
        " paths=notes/a.md, notes/b.md; seq=1"
    ]


def test_the_markdown_line_leaves_out_what_the_event_does_not_have(repo: Repo) -> None:
    log = SentinelLog(repo.root, repo.journal)
    event(log, call_for(repo.root), message="Started")
    event(log, call_for(repo.root), message="Checked", severity="info", paths=["x.md"])
    log.close()
    assert repo.lines("SENTINEL_LOG.md") == [
        "[🛰️] [2026-11-30 10:15:30 UTC] [Agent: claude-code/inst-1] [Exec: exec-1] Started"
        " | type=file.edit; seq=1",
        "[🔹] [2026-11-30 10:15:30 UTC] [Agent: claude-code/inst-1] [Exec: exec-1] Checked"
        " | type=file.edit; severity=info; paths=x.md; seq=2",
    ]


@pytest.mark.parametrize(
    ("given", "field", "words"),
    [
        ({"message": "   "}, "message", "must not be empty"),
        ({"message": "x" * 4001}, "message", "at most 4000"),
        ({"event_type": ""}, "event_type", "must be 1 to 64"),
        ({"event_type": "two words"}, "event_type", "must be 1 to 64"),
        ({"severity": "fatal"}, "severity", "'fatal' is not one of debug, info, warning"),
        ({"paths": ["/etc/passwd"]}, "paths[0]", "must be relative to the repository root"),
        ({"paths": ["a.md", "notes/../../x"]}, "paths[1]", "must not contain '..'"),
        ({"paths": ["C:/x"]}, "paths[0]", "must be relative"),
        ({"paths": ["a\\b"]}, "paths[0]", "use / between folders"),
        ({"paths": "a.md"}, "paths", "must be a list"),
        ({"paths": ["x"] * 101}, "paths", "at most 100"),
        ({"data": {"x": {1, 2}}}, "data", "is not JSON"),
        ({"data": {"x": float("nan")}}, "data", "is not JSON"),
        ({"data": ["a"]}, "data", "must be a JSON object"),
        ({"data": {"x": "y" * 20_000}}, "data", "larger than 16384 bytes"),
        ({"idempotency_key": ""}, "idempotency_key", "must be 1 to 128"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_recorded(
    repo: Repo, given: dict[str, Any], field: str, words: str
) -> None:
    log = SentinelLog(repo.root, repo.journal)
    with pytest.raises(ToolFailure) as caught:
        event(log, call_for(repo.root), **given)
    log.close()
    assert caught.value.code == INVALID_ARGUMENT
    assert caught.value.details["field"] == field
    assert caught.value.message.startswith(f"{field}: ")
    assert words in caught.value.message
    assert repo.entries() == []
    assert not (repo.root / SENTINEL_DIR).exists()


def test_project_mode_calls_are_refused(repo: Repo) -> None:
    log = SentinelLog(repo.root, repo.journal)
    with pytest.raises(ToolFailure) as caught:
        event(log, call_for(repo.root, mode="project"))
    log.close()
    assert caught.value.code == WRONG_MODE
    assert "this call is in project mode" in caught.value.message
    assert not (repo.root / SENTINEL_DIR).exists()


def test_16_threads_x_500_events_leave_no_torn_or_lost_line(repo: Repo) -> None:
    # Two logs on one repository hold separate descriptors, as two processes would,
    # so their appends are kept apart by flock and not only by a thread lock.
    logs = [SentinelLog(repo.root, repo.journal), SentinelLog(repo.root, repo.journal)]
    failures: list[BaseException] = []

    def work(n: int) -> None:
        call = call_for(repo.root, instance=f"inst-{n}", execution=f"exec-{n % 4}")
        try:
            for i in range(500):
                event(logs[n % 2], call, message=f"event {n}/{i} " + "x" * (n * 37 % 300))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for log in logs:
        log.close()
    assert failures == []
    journaled = repo.entries(AGENT_EVENT)
    assert len(journaled) == 8000
    records = [json.loads(line) for line in repo.lines("sentinel.jsonl")]
    assert len(records) == 8000
    assert sorted(r["seq"] for r in records) == [e.seq for e in journaled]
    assert {(r["seq"], r["message"]) for r in records} == {(e.seq, e.message) for e in journaled}
    markdown = repo.lines("SENTINEL_LOG.md")
    assert len(markdown) == 8000
    shape = re.compile(r"\[🛰️\] \[2026-11-30 10:15:30 UTC\] \[Agent: claude-code/inst-\d+\] "
                       r"\[Exec: exec-\d\] event \d+/\d+( x+)? \| type=file.edit; seq=\d+")  # fmt: skip
    assert all(shape.fullmatch(line) for line in markdown)
    summaries = [
        json.loads((repo.day_file("executions") / f"exec-exec-{n}.json").read_text())
        for n in range(4)
    ]
    assert [s["counts"] for s in summaries] == [{"file.edit": 2000}] * 4
    assert [s["calls"] for s in summaries] == [2000] * 4
    assert max(s["last_seq"] for s in summaries) == 8000


def test_a_line_cut_short_by_a_crash_does_not_glue_onto_the_next(repo: Repo) -> None:
    log = SentinelLog(repo.root, repo.journal)
    event(log, call_for(repo.root), message="before the crash")
    for name, half in (("sentinel.jsonl", b'{"seq":2,"ts":"2026-'), ("SENTINEL_LOG.md", b"[\xf0")):
        with repo.day_file(name).open("ab") as file:  # what a crash mid-write leaves
            file.write(half)
    event(log, call_for(repo.root), message="after the crash")
    log.close()
    jsonl = repo.lines("sentinel.jsonl")
    assert len(jsonl) == 3
    assert jsonl[1] == '{"seq":2,"ts":"2026-'
    assert [json.loads(jsonl[i])["message"] for i in (0, 2)] == [
        "before the crash",
        "after the crash",
    ]
    markdown = repo.day_file("SENTINEL_LOG.md").read_bytes().split(b"\n")
    assert markdown[1] == b"[\xf0"
    assert markdown[2].startswith("[🛰️] [2026-11-30 10:15:30 UTC]".encode())
    flagged = repo.entries(JOURNAL_FLAGGED)
    assert sorted(e.payload["file"] for e in flagged) == [
        f".scribe/sentinel/{DAY}/SENTINEL_LOG.md",
        f".scribe/sentinel/{DAY}/sentinel.jsonl",
    ]


HOLD_LOCK = textwrap.dedent(
    """
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()
    """
)


@dataclass
class LockHolder:
    """Another process holding an exclusive flock on a file until it is let go."""

    process: subprocess.Popen[str]

    @classmethod
    def hold(cls, path: Path) -> LockHolder:
        path.parent.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        return cls(process)

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.mark.parametrize("name", ["sentinel.jsonl", "SENTINEL_LOG.md"])
def test_a_file_locked_by_another_process_gives_busy_fast(repo: Repo, name: str) -> None:
    log = SentinelLog(repo.root, repo.journal, lock_timeout=0.2)
    holder = LockHolder.hold(repo.day_file(name))
    try:
        started = time.monotonic()
        with pytest.raises(ToolFailure) as caught:
            event(log, call_for(repo.root))
        assert time.monotonic() - started < 10  # a hang guard, not a timing claim
        assert caught.value.code == BUSY
        assert caught.value.message == (
            f".scribe/sentinel/{DAY}/{name} is locked by another writer; gave up after 0.2 s,"
            " try again"
        )
        assert repo.entries(AGENT_EVENT) == []  # refused before anything was journaled
    finally:
        holder.release()
    result = event(log, call_for(repo.root))
    log.close()
    assert result["seq"] == 1
    assert len(repo.lines("sentinel.jsonl")) == len(repo.lines("SENTINEL_LOG.md")) == 1


def test_lines_that_waited_for_a_lock_go_first_in_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    lines = LineFile(path, "x.jsonl")
    lines.append(b"one\n", 1.0)
    holder = LockHolder.hold(path)
    try:
        with pytest.raises(ToolFailure) as caught:
            lines.append(b"two\n", 0.05)
        assert caught.value.code == BUSY
        assert path.read_bytes() == b"one\n"  # nothing written without the lock
        lines.hold(b"two\n")
    finally:
        holder.release()
    lines.append(b"three\n", 1.0)
    lines.retire(1.0)
    assert path.read_bytes() == b"one\ntwo\nthree\n"
    assert lines.held == 0


def test_a_line_file_kept_open_sees_a_line_another_writer_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    lines = LineFile(path, "x.jsonl")
    assert lines.append(b"one\n", 1.0) is False
    assert lines.append(b"two\n", 1.0) is False  # its own last line: no need to look
    with open(path, "ab") as other:  # a process killed in the middle of its line
        other.write(b'{"seq": 9, "mess')
    assert lines.append(b"three\n", 1.0) is True
    assert lines.append(b"four\n", 1.0) is False
    lines.retire(1.0)
    assert path.read_bytes() == b'one\ntwo\n{"seq": 9, "mess\nthree\nfour\n'


def test_a_removed_day_folder_is_made_again(repo: Repo) -> None:
    log = SentinelLog(repo.root, repo.journal)
    event(log, call_for(repo.root), message="first")
    for path in sorted(repo.day_file("").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    event(log, call_for(repo.root), message="second")
    log.close()
    assert [json.loads(line)["message"] for line in repo.lines("sentinel.jsonl")] == ["second"]


def test_a_repeated_idempotency_key_returns_the_first_result_and_appends_nothing(
    repo: Repo,
) -> None:
    log = SentinelLog(repo.root, repo.journal)
    first = event(log, call_for(repo.root), idempotency_key="k-1")
    again = event(log, call_for(repo.root, when=WHEN + timedelta(seconds=5)), idempotency_key="k-1")
    assert again == {**first, "replayed": True}
    with pytest.raises(ToolFailure) as caught:
        event(log, call_for(repo.root), message="something else", idempotency_key="k-1")
    assert caught.value.code == CONFLICT
    assert "already used by this agent instance for another event" in caught.value.message
    other = event(log, call_for(repo.root, instance="inst-2"), idempotency_key="k-1")
    log.close()
    assert other["seq"] == 2  # the key belongs to each agent instance
    assert len(repo.entries(AGENT_EVENT)) == 2
    assert len(repo.lines("sentinel.jsonl")) == len(repo.lines("SENTINEL_LOG.md")) == 2
    assert repo.entries(AGENT_EVENT)[0].payload["idempotency_key"] == "k-1"


def test_an_idempotency_key_is_recognised_after_a_restart(repo: Repo) -> None:
    today = datetime.now(UTC) - timedelta(seconds=1)
    first_log = SentinelLog(repo.root, repo.journal)
    first = event(first_log, call_for(repo.root), idempotency_key="old-day")
    recent = event(first_log, call_for(repo.root, when=today), idempotency_key="today")
    first_log.close()
    restarted = SentinelLog(repo.root, repo.journal)
    assert event(restarted, call_for(repo.root, when=today), idempotency_key="today") == {
        **recent,
        "replayed": True,
    }
    # WHEN's day is neither today nor yesterday: read back the first time a key comes for it
    assert event(restarted, call_for(repo.root), idempotency_key="old-day") == {
        **first,
        "replayed": True,
    }
    with pytest.raises(ToolFailure) as caught:
        event(restarted, call_for(repo.root), message="not the same", idempotency_key="old-day")
    restarted.close()
    assert caught.value.code == CONFLICT
    assert len(repo.entries(AGENT_EVENT)) == 2
    assert len(repo.lines("sentinel.jsonl")) == 1


def test_concurrent_calls_with_one_key_record_one_event(repo: Repo) -> None:
    log = SentinelLog(repo.root, repo.journal)
    results: list[Any] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(event(log, call_for(repo.root), idempotency_key="once"))
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    log.close()
    assert len(results) == 8
    assert len({r["entry_id"] for r in results}) == 1
    assert sum(not r.get("replayed") for r in results) == 1
    assert len(repo.entries(AGENT_EVENT)) == 1
    assert len(repo.lines("sentinel.jsonl")) == 1


def test_an_execution_summary_is_written_when_it_first_shows_up_and_at_close(repo: Repo) -> None:
    log = SentinelLog(repo.root, repo.journal, summary_interval=3600)
    summary = repo.day_file("executions") / "exec-exec-1.json"
    event(log, call_for(repo.root, when=WHEN), event_type="file.read")
    assert json.loads(summary.read_text())["calls"] == 1
    inode = summary.stat().st_ino
    for i in range(50):
        event(log, call_for(repo.root, when=WHEN + timedelta(seconds=i), intent=f"step {i % 3}"))
    assert summary.stat().st_ino == inode  # not rewritten per call
    log.close()
    assert json.loads(summary.read_text()) == {
        "execution_id": "exec-1",
        "sentinel_day": DAY,
        "agent": {"id": "claude-code", "instance_id": "inst-1"},
        "first_timestamp_utc": "2026-11-30T10:15:30Z",
        "last_timestamp_utc": "2026-11-30T10:16:19Z",
        "intents": ["audit the notes", "step 0", "step 1", "step 2"],
        "counts": {"file.edit": 50, "file.read": 1},
        "calls": 51,
        "last_seq": 51,
    }


def test_summaries_of_a_restarted_log_add_up(repo: Repo) -> None:
    for _ in range(2):
        log = SentinelLog(repo.root, repo.journal)
        for _ in range(3):
            event(log, call_for(repo.root))
        log.close()
    summary = json.loads((repo.day_file("executions") / "exec-exec-1.json").read_text())
    assert summary["counts"] == {"file.edit": 6}


def test_nothing_is_written_outside_the_day_folder(tmp_path: Path) -> None:
    repo = Repo.make(tmp_path / "repo", journal_home=tmp_path / "journal")
    (repo.root / "notes").mkdir()
    (repo.root / "notes" / "a.md").write_text("secret-marker-4711\n")
    log = SentinelLog(repo.root, repo.journal)
    for n, day in enumerate((WHEN, WHEN + timedelta(days=1))):
        event(log, call_for(repo.root, when=day), paths=["notes/a.md"], idempotency_key=f"k{n}")
    log.close()
    repo.close()
    written = sorted(p.relative_to(repo.root).as_posix() for p in repo.root.rglob("*"))
    days = [DAY, (WHEN + timedelta(days=1)).date().isoformat()]
    assert written == sorted(
        [".scribe", ".scribe/sentinel", "notes", "notes/a.md"]
        + [
            f".scribe/sentinel/{day}{name}"
            for day in days
            for name in (
                "",
                "/SENTINEL_LOG.md",
                "/sentinel.jsonl",
                "/executions",
                "/executions/exec-exec-1.json",
            )
        ]
    )
    evidence = repo.root / "notes" / "a.md"
    written_bytes = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p != evidence]
    assert not any(b"secret-marker-4711" in data for data in written_bytes)


def test_a_sentinel_folder_leading_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    repo = Repo.make(tmp_path / "repo")
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo.root / ".scribe" / "sentinel").symlink_to(outside)
    log = SentinelLog(repo.root, repo.journal)
    with pytest.raises(ToolFailure) as caught:
        event(log, call_for(repo.root))
    log.close()
    assert caught.value.code == SCOPE_VIOLATION
    assert "leads outside the repository" in caught.value.message
    assert list(outside.iterdir()) == []
    assert caught.value.details["path"] == f".scribe/sentinel/{DAY}"  # what the server journals
    assert repo.entries(AGENT_EVENT) == []
    repo.close()


def test_a_call_for_another_repository_is_refused(tmp_path: Path, repo: Repo) -> None:
    other = tmp_path / "other"
    other.mkdir()
    log = SentinelLog(repo.root, repo.journal)
    with pytest.raises(ToolFailure) as caught:
        event(log, call_for(other))
    log.close()
    assert caught.value.code == SCOPE_VIOLATION
    assert not (other / ".scribe").exists()


def open_sentinel_files(root: Path) -> int:
    folder = str(root / SENTINEL_DIR)
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the descriptor listdir itself used
            continue
    return sum(target.startswith(folder) for target in targets)


def test_many_days_keep_few_files_open(repo: Repo) -> None:
    log = SentinelLog(repo.root, repo.journal)
    for n in range(20):
        event(log, call_for(repo.root, when=WHEN - timedelta(days=n)))
    assert open_sentinel_files(repo.root) == 8 * 2  # the last 8 days' JSONL and Markdown files
    log.close()
    assert open_sentinel_files(repo.root) == 0
    folders = list((repo.root / SENTINEL_DIR).iterdir())
    assert len(folders) == 20
    assert [len(repo.lines("sentinel.jsonl", folder.name)) for folder in folders] == [1] * 20


# -- served on an event loop (how `scribe mcp` runs append_event) -------------------


def event_soon(log: SentinelLog, call: Call, message: str, **given: Any) -> Any:
    return log.append_event_soon(call, **(EVENT | {"message": message} | given))


@contextlib.contextmanager
def journal_stalled(repo: Repo) -> Iterator[Callable[[], None]]:
    """Another process in the middle of a journal commit; yields the function that
    ends it (at the latest, the block's end does)."""
    raw = sqlite3.connect(repo.store.path, isolation_level=None)
    raw.execute("BEGIN IMMEDIATE")

    def release() -> None:
        if raw.in_transaction:
            raw.execute("ROLLBACK")

    try:
        yield release
    finally:
        release()
        raw.close()


def test_many_calls_on_one_event_loop_each_get_their_entry_and_both_lines(repo: Repo) -> None:
    log = SentinelLog(repo.root, repo.journal)
    answers: list[Any] = []

    async def one(i: int) -> None:
        answers.append(await event_soon(log, call_for(repo.root), f"edit {i}", severity="info"))

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for i in range(50):
                group.start_soon(one, i)

    anyio.run(main)
    log.close()
    assert sorted(a["seq"] for a in answers) == list(range(1, 51))
    assert all("deferred" not in a and len(a["files"]) == 2 for a in answers)
    jsonl = [json.loads(line) for line in repo.lines("sentinel.jsonl")]
    assert sorted(record["seq"] for record in jsonl) == list(range(1, 51))
    assert {record["entry_id"] for record in jsonl} == {a["entry_id"] for a in answers}
    markdown = repo.lines("SENTINEL_LOG.md")
    assert sorted(int(line.rsplit("seq=", 1)[1]) for line in markdown) == list(range(1, 51))
    assert len(repo.entries(AGENT_EVENT)) == 50


def test_lone_calls_on_an_event_loop_commit_in_order_and_are_mirrored(repo: Repo) -> None:
    # A call alone on the loop commits on the loop's thread; the writer thread still
    # writes the journal's mirror lines for it.
    log = SentinelLog(repo.root, repo.journal)
    lone = replace(call_for(repo.root), alone=True)

    async def main() -> list[Any]:
        return [await event_soon(log, lone, f"edit {i}") for i in range(30)]

    answers = anyio.run(main)
    log.close()
    assert [a["seq"] for a in answers] == list(range(1, 31))
    assert [json.loads(line)["seq"] for line in repo.lines("sentinel.jsonl")] == list(range(1, 31))
    assert [int(line.rsplit("seq=", 1)[1]) for line in repo.lines("SENTINEL_LOG.md")] == list(
        range(1, 31)
    )
    repo.journal.flush()
    mirrored = [
        json.loads(line)["seq"]
        for path in sorted((repo.root / LOG_DIR).glob(f"*/{JSONL}"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    assert mirrored == list(range(1, 31))


def test_a_lone_call_waits_off_the_loop_while_another_process_holds_the_journal(
    repo: Repo,
) -> None:
    # Committing on the loop's thread must never mean waiting there for another
    # writer: the loop would stop for everyone until that writer is done.
    log = SentinelLog(repo.root, repo.journal)
    lone = replace(call_for(repo.root), alone=True)
    answers: list[Any] = []

    async def call() -> None:
        answers.append(await event_soon(log, lone, "waited"))

    async def main() -> None:
        with journal_stalled(repo) as release:
            async with anyio.create_task_group() as group:
                group.start_soon(call)
                while repo.journal.committing == 0:  # the loop runs: the writer thread waits
                    await anyio.sleep(0.005)
                assert answers == []
                release()

    anyio.run(main)
    log.close()
    assert [a["seq"] for a in answers] == [1]
    assert len(repo.lines("sentinel.jsonl")) == len(repo.lines("SENTINEL_LOG.md")) == 1


@pytest.mark.parametrize("name", ["sentinel.jsonl", "SENTINEL_LOG.md"])
def test_on_an_event_loop_a_file_locked_elsewhere_gives_busy_and_journals_nothing(
    repo: Repo, name: str
) -> None:
    log = SentinelLog(repo.root, repo.journal, lock_timeout=0.2)
    holder = LockHolder.hold(repo.day_file(name))
    try:
        with pytest.raises(ToolFailure) as caught:
            anyio.run(event_soon, log, call_for(repo.root), "refused")
        assert caught.value.code == BUSY
        assert repo.entries(AGENT_EVENT) == []
    finally:
        holder.release()
    answer = anyio.run(event_soon, log, call_for(repo.root), "kept")
    log.close()
    assert answer["seq"] == 1
    assert len(repo.lines("sentinel.jsonl")) == len(repo.lines("SENTINEL_LOG.md")) == 1


def test_a_call_cancelled_while_its_entry_commits_still_writes_its_lines(repo: Repo) -> None:
    log = SentinelLog(repo.root, repo.journal)
    answers: list[Any] = []

    async def call() -> None:
        answers.append(await event_soon(log, call_for(repo.root), "the client gave up"))

    async def main() -> None:
        with journal_stalled(repo) as release:
            async with anyio.create_task_group() as group:
                group.start_soon(call)
                while repo.journal.committing == 0:  # the commit is under way, and stuck
                    await anyio.sleep(0.005)
                group.cancel_scope.cancel()  # the client cancelled its request
                release()

    anyio.run(main)
    repo.journal.flush()
    log.close()
    assert [e.message for e in repo.entries(AGENT_EVENT)] == ["the client gave up"]
    assert [json.loads(line)["message"] for line in repo.lines("sentinel.jsonl")] == [
        "the client gave up"
    ]
    assert len(repo.lines("SENTINEL_LOG.md")) == 1


def test_on_an_event_loop_a_lock_taken_during_the_commit_defers_the_line(repo: Repo) -> None:
    log = SentinelLog(repo.root, repo.journal)
    anyio.run(event_soon, log, call_for(repo.root), "first")
    holders: list[LockHolder] = []

    async def main() -> Any:
        with journal_stalled(repo) as release:
            async with anyio.create_task_group() as group:
                answers: list[Any] = []

                async def call() -> None:
                    answers.append(await event_soon(log, call_for(repo.root), "second"))

                group.start_soon(call)
                while repo.journal.committing == 0:  # checked the locks, now committing
                    await anyio.sleep(0.005)
                holders.append(
                    await anyio.to_thread.run_sync(
                        LockHolder.hold, repo.day_file("SENTINEL_LOG.md")
                    )
                )
                release()  # the commit goes through; the Markdown file stays locked
        return answers[0]

    try:
        answer = anyio.run(main)
    finally:
        for holder in holders:
            holder.release()
    assert answer["files"] == [f".scribe/sentinel/{DAY}/sentinel.jsonl"]
    assert answer["deferred"] == [f".scribe/sentinel/{DAY}/SENTINEL_LOG.md"]
    anyio.run(event_soon, log, call_for(repo.root), "third")
    log.close()
    messages = [line.split("] ", 4)[-1].split(" |")[0] for line in repo.lines("SENTINEL_LOG.md")]
    assert messages == ["first", "second", "third"]  # the held line went first

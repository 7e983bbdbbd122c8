"""Bug and security cases: unique ids under concurrency, journal first, strict closing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from scribe.journal.entry import CASE_CLOSED, CASE_OPENED, CASE_UPDATED
from scribe.mcp.cases import CASES_DIR, Cases
from scribe.mcp.failures import (
    BUSY,
    CONFLICT,
    INVALID_ARGUMENT,
    NOT_FOUND,
    WRONG_MODE,
    ToolFailure,
)
from scribe.mcp.sentinel import SENTINEL_DIR, SentinelLog
from test_mcp_sentinel import DAY, WHEN, LockHolder, Repo, call_for

ID = "BUG-20261130"


class Desk:
    """A repository with its sentinel log and cases, closed together."""

    def __init__(self, repo: Repo, **options: Any) -> None:
        self.repo = repo
        self.sentinel = SentinelLog(repo.root, repo.journal)
        self.cases = Cases(repo.root, repo.journal, self.sentinel, **options)

    def close(self) -> None:
        self.sentinel.close()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    made = Repo.make(tmp_path / "repo")
    yield made
    made.close()


@pytest.fixture
def desk(repo: Repo) -> Iterator[Desk]:
    made = Desk(repo)
    yield made
    made.close()


def bug(desk: Desk, title: str = "Index lists a deleted note", **given: Any) -> Any:
    call = given.pop("call", None) or call_for(desk.repo.root)
    arguments = {"severity": "high", "evidence_paths": ["notes/index.md"]} | given
    return desk.cases.open_bug(call, title=title, **arguments)


def link(desk: Desk, case_id: str, **given: Any) -> Any:
    call = given.pop("call", None) or call_for(desk.repo.root)
    return desk.cases.link_fix(call, case_id=case_id, **given)


def refused(code: str, action: Any, *args: Any, **kwargs: Any) -> ToolFailure:
    with pytest.raises(ToolFailure) as caught:
        action(*args, **kwargs)
    assert caught.value.code == code, caught.value.to_json()
    return caught.value


def test_opening_a_bug_journals_it_stores_it_and_logs_it(desk: Desk) -> None:
    result = bug(desk, evidence_paths=["notes/index.md", "./notes//gone.md"], description="Seen")
    case = result["case"]
    assert case == {
        "case_id": f"{ID}-0001",
        "case_type": "bug",
        "title": "Index lists a deleted note",
        "severity": "high",
        "description": "Seen",
        "evidence_paths": ["notes/index.md", "notes/gone.md"],
        "reporter": {"id": "claude-code", "instance_id": "inst-1"},
        "execution_id": "exec-1",
        "status": "open",
        "created_at": "2026-11-30T10:15:30Z",
        "sentinel_day": DAY,
        "fix_link": None,
        "root_cause": None,
        "landing_status": None,
        "updated_at": "2026-11-30T10:15:30Z",
        "closed_at": None,
        "closed_by": None,
        "opened_seq": 1,
        "seq": 1,
    }
    rel = f".scribe/sentinel/{DAY}"
    assert result["files"] == [f"{rel}/bug.jsonl", f"{rel}/SENTINEL_LOG.md"]
    [entry] = desk.repo.entries(CASE_OPENED)
    assert entry.message == f"{ID}-0001 opened: Index lists a deleted note"
    assert entry.payload["case_id"] == f"{ID}-0001"
    assert entry.payload["case_type"] == "bug"
    assert entry.payload["execution_id"] == "exec-1"
    assert entry.payload["case"] == {k: v for k, v in case.items() if not k.endswith("seq")}
    [line] = desk.repo.lines("bug.jsonl")
    assert json.loads(line)["case"] == entry.payload["case"]
    assert desk.repo.lines("SENTINEL_LOG.md") == [
        "[🐞] [2026-11-30 10:15:30 UTC] [Agent: claude-code/inst-1] [Exec: exec-1]"
        f" {ID}-0001 opened: Index lists a deleted note | severity=high;"
        " evidence=notes/index.md, notes/gone.md; seq=1"
    ]
    assert desk.cases.get_case(f"{ID}-0001") == case


def test_security_cases_have_their_own_ids_and_file(desk: Desk) -> None:
    bug(desk)
    call = call_for(desk.repo.root)
    result = desk.cases.open_security(call, title="Token in a note", severity="critical",
                                      evidence_paths=["notes/a.md"])  # fmt: skip
    assert result["case"]["case_id"] == "SEC-20261130-0001"
    assert result["case"]["case_type"] == "security"
    assert [json.loads(x)["case_id"] for x in desk.repo.lines("security.jsonl")] == [
        "SEC-20261130-0001"
    ]
    assert len(desk.repo.lines("bug.jsonl")) == 1


@pytest.mark.parametrize(
    ("given", "field", "words"),
    [
        ({"title": "  "}, "title", "must not be empty"),
        ({"title": "x" * 201}, "title", "at most 200"),
        ({"severity": "urgent"}, "severity", "'urgent' is not one of low, medium, high, critical"),
        ({"evidence_paths": ["/etc/shadow"]}, "evidence_paths[0]", "must be relative"),
        ({"evidence_paths": ["../x.md"]}, "evidence_paths[0]", "must not contain '..'"),
        ({"evidence_paths": None}, "evidence_paths", "must be a list"),
        ({"description": ""}, "description", "must not be empty"),
    ],
)
def test_bad_case_arguments_are_refused_and_nothing_is_recorded(
    desk: Desk, given: dict[str, Any], field: str, words: str
) -> None:
    failure = refused(INVALID_ARGUMENT, bug, desk, **given)
    assert failure.details["field"] == field
    assert words in failure.message
    assert desk.repo.entries() == []
    assert not (desk.repo.root / CASES_DIR).exists()


def test_cases_are_opened_in_sentinel_mode_only(desk: Desk) -> None:
    refused(WRONG_MODE, bug, desk, call=call_for(desk.repo.root, mode="project"))


def test_100_concurrent_openings_give_100_unique_ids(desk: Desk) -> None:
    results: list[Any] = []
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            results.append(
                bug(desk, title=f"bug {n}", call=call_for(desk.repo.root, instance=f"i{n}"))
            )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    ids = sorted(r["case"]["case_id"] for r in results)
    assert ids == [f"{ID}-{n:04d}" for n in range(1, 101)]
    assert len(desk.repo.entries(CASE_OPENED)) == 100
    assert sorted(json.loads(x)["case_id"] for x in desk.repo.lines("bug.jsonl")) == ids
    listed = desk.cases.list_cases()
    assert listed["count"] == 100
    assert sorted(case["case_id"] for case in listed["cases"]) == ids
    titles = {r["case"]["case_id"]: r["case"]["title"] for r in results}
    assert all(desk.cases.get_case(i)["title"] == titles[i] for i in ids)


OPENER = textwrap.dedent(
    """
    import sys, threading
    from datetime import datetime
    from pathlib import Path
    from scribe.journal import JournalWriter, Mirrors, SqliteJournal
    from scribe.mcp.cases import Cases
    from scribe.mcp.context import Call, parse_context
    from scribe.mcp.sentinel import SentinelLog

    root, tag = Path(sys.argv[1]), sys.argv[2]
    store = SqliteJournal.for_root(root)
    writer = JournalWriter(store, Mirrors(root))
    sentinel = SentinelLog(root, writer)
    cases = Cases(root, writer, sentinel)
    raw = {
        "repo_root": str(root), "mode": "sentinel", "execution_id": tag,
        "agent_identity": {"id": "agent", "instance_id": tag}, "intent": "open cases",
        "timestamp_utc": sys.argv[3], "affected_dev_projects": [],
    }
    context, resolved = parse_context(raw, [root])
    call = Call(context, resolved, tag)
    print("ready", flush=True)
    sys.stdin.readline()

    def work(n):
        for i in range(10):
            cases.open_bug(call, title=f"{tag} {n}.{i}", severity="low", evidence_paths=[])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sentinel.close()
    writer.close()
    store.close()
    print("done", flush=True)
    """
)


def test_two_processes_opening_cases_at_once_never_collide(repo: Repo) -> None:
    stamp = WHEN.isoformat().replace("+00:00", "Z")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(repo.root), tag, stamp],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("left", "right")
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
    for process in processes:  # both start together
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert (process.returncode, out) == (0, "done\n")
    opened = repo.entries(CASE_OPENED)
    ids = sorted(entry.payload["case_id"] for entry in opened)
    assert ids == [f"{ID}-{n:04d}" for n in range(1, 61)]
    assert sorted(json.loads(x)["case_id"] for x in repo.lines("bug.jsonl")) == ids
    assert len(repo.lines("SENTINEL_LOG.md")) == 60
    cases = sorted((repo.root / CASES_DIR).glob("BUG-*.json"))
    assert [path.stem for path in cases] == ids
    assert {entry.payload["case"]["title"] for entry in opened} == {
        json.loads(path.read_text())["title"] for path in cases
    }


def test_a_case_closes_only_with_root_cause_fix_link_and_a_verified_fix(desk: Desk) -> None:
    case_id = bug(desk)["case"]["case_id"]
    failure = refused(CONFLICT, link, desk, case_id, close=True)
    assert failure.details["missing"] == ["root_cause", "fix_link", "landing_status"]
    assert failure.message == (
        f"{case_id} cannot be closed yet: missing root_cause, fix_link, landing_status (a case"
        " closes with a root cause, a fix link and landing_status verified; landing_status is"
        " not set)"
    )
    failure = refused(CONFLICT, link, desk, case_id, root_cause="stale cache", close=True)
    assert failure.details["missing"] == ["fix_link", "landing_status"]
    assert desk.cases.get_case(case_id)["root_cause"] is None  # a refused close changes nothing

    updated = link(desk, case_id, root_cause="stale cache", fix_link="https://git/x/pull/7",
                   landing_status="merged")  # fmt: skip
    assert updated["changed"] is True
    assert updated["case"]["landing_status"] == "merged"
    failure = refused(CONFLICT, link, desk, case_id, close=True)
    assert failure.details["missing"] == ["landing_status"]
    assert "landing_status is merged" in failure.message

    failure = refused(CONFLICT, link, desk, case_id, landing_status="proposed")
    assert failure.message == (
        f"{case_id}: landing_status cannot go back from merged to proposed"
        " (order: proposed < merged < verified)"
    )
    failure = refused(INVALID_ARGUMENT, link, desk, case_id, landing_status="shipped")
    assert failure.message == "landing_status: 'shipped' is not one of proposed, merged, verified"

    closed = link(desk, case_id, landing_status="verified", close=True)
    case = closed["case"]
    assert (case["status"], case["landing_status"], case["closed_at"]) == (
        "closed",
        "verified",
        "2026-11-30T10:15:30Z",
    )
    assert case["closed_by"] == {"id": "claude-code", "instance_id": "inst-1"}
    assert desk.cases.get_case(case_id) == case
    refused(CONFLICT, link, desk, case_id, root_cause="another")
    kinds = [e.kind for e in desk.repo.entries(CASE_OPENED, CASE_UPDATED, CASE_CLOSED)]
    assert kinds == [CASE_OPENED, CASE_UPDATED, CASE_CLOSED]
    [closing] = desk.repo.entries(CASE_CLOSED)
    assert closing.payload["case_id"] == case_id
    assert closing.payload["changes"] == {"landing_status": "verified"}
    assert closing.payload["case"]["status"] == "closed"
    markdown = desk.repo.lines("SENTINEL_LOG.md")
    assert markdown[1].endswith(
        f"{case_id} updated: fix_link, root_cause, landing_status | landing_status=merged;"
        " fix_link=https://git/x/pull/7; root_cause=stale cache; seq=2"
    )
    assert markdown[2].startswith("[✔️] [2026-11-30 10:15:30 UTC]")
    assert markdown[2].endswith(f"{case_id} closed | landing_status=verified; seq=3")
    assert len(desk.repo.lines("bug.jsonl")) == 3


def test_unknown_cases_and_empty_changes_are_refused(desk: Desk) -> None:
    failure = refused(NOT_FOUND, link, desk, f"{ID}-0042", root_cause="x")
    assert failure.message == f"there is no case {ID}-0042"
    refused(NOT_FOUND, desk.cases.get_case, f"{ID}-0042")
    failure = refused(INVALID_ARGUMENT, link, desk, "BUG-42", root_cause="x")
    assert "is not a case id" in failure.message
    case_id = bug(desk)["case"]["case_id"]
    failure = refused(INVALID_ARGUMENT, link, desk, case_id)
    assert "nothing to change" in failure.message
    refused(INVALID_ARGUMENT, link, desk, case_id, fix_link="  ")


def test_the_same_change_twice_journals_it_once(desk: Desk) -> None:
    case_id = bug(desk)["case"]["case_id"]
    first = link(desk, case_id, fix_link="https://git/x/pull/7")
    again = link(desk, case_id, fix_link="https://git/x/pull/7")
    assert again == {"case": first["case"], "changed": False, "seq": first["seq"],
                     "sentinel_day": DAY, "files": []}  # fmt: skip
    assert len(desk.repo.entries(CASE_UPDATED)) == 1
    assert len(desk.repo.lines("bug.jsonl")) == 2


def test_a_case_opened_one_day_is_closed_on_a_later_one(desk: Desk) -> None:
    case_id = bug(desk)["case"]["case_id"]
    later = call_for(desk.repo.root, when=WHEN + timedelta(days=1), execution="exec-2")
    result = link(desk, case_id, root_cause="r", fix_link="f", landing_status="verified",
                  close=True, call=later)  # fmt: skip
    next_day = (WHEN + timedelta(days=1)).date().isoformat()
    assert result["sentinel_day"] == next_day
    assert result["case"]["status"] == "closed"
    assert result["case"]["sentinel_day"] == DAY  # where it was opened
    assert [json.loads(x)["kind"] for x in desk.repo.lines("bug.jsonl")] == [CASE_OPENED]
    assert [json.loads(x)["kind"] for x in desk.repo.lines("bug.jsonl", next_day)] == [CASE_CLOSED]
    summary = desk.repo.day_file("executions", next_day) / "exec-exec-2.json"
    desk.sentinel.close()
    assert json.loads(summary.read_text())["counts"] == {CASE_CLOSED: 1}
    next_desk = Desk(desk.repo)
    assert bug(next_desk, call=later)["case"]["case_id"] == "BUG-20261201-0001"
    next_desk.close()


def test_a_lost_registry_is_rebuilt_from_the_journal_and_no_id_is_reused(desk: Desk) -> None:
    first = bug(desk)["case"]["case_id"]
    link(desk, first, landing_status="proposed")
    bug(desk, title="second")
    # as if every registry write after the commits had been lost
    shutil.rmtree(desk.repo.root / ".scribe" / "registry")
    assert desk.cases.get_case(first)["landing_status"] == "proposed"
    assert bug(desk, title="third")["case"]["case_id"] == f"{ID}-0003"
    link(desk, first, landing_status="merged")
    assert desk.cases.get_case(first)["landing_status"] == "merged"
    assert desk.cases.get_case(first)["opened_seq"] == 1
    assert [c["title"] for c in desk.cases.list_cases()["cases"]] == [
        "Index lists a deleted note",
        "second",
        "third",
    ]


def test_a_registry_behind_the_journal_catches_up_before_a_change(repo: Repo) -> None:
    left, right = Desk(repo), Desk(repo)  # as two processes would have
    case_id = bug(left)["case"]["case_id"]
    index = repo.root / ".scribe" / "registry" / "cases.json"
    case_file = repo.root / CASES_DIR / f"{case_id}.json"
    as_opened = index.read_bytes(), case_file.read_bytes()
    link(right, case_id, root_cause="found by the other process")
    index.write_bytes(as_opened[0])  # as if the process died after the update's commit
    case_file.write_bytes(as_opened[1])
    result = link(left, case_id, fix_link="https://git/x/pull/9")
    assert result["case"]["root_cause"] == "found by the other process"
    assert result["case"]["fix_link"] == "https://git/x/pull/9"
    assert result["seq"] == 3
    left.close()
    right.close()


def test_list_cases_filters_by_status_and_type(desk: Desk) -> None:
    open_bug = bug(desk)["case"]["case_id"]
    closed_bug = bug(desk, title="closed one")["case"]["case_id"]
    link(desk, closed_bug, root_cause="r", fix_link="f", landing_status="verified", close=True)
    call = call_for(desk.repo.root)
    security = desk.cases.open_security(call, title="leak", severity="medium",
                                        evidence_paths=[])["case"]["case_id"]  # fmt: skip

    def ids(**filters: Any) -> list[str]:
        return [case["case_id"] for case in desk.cases.list_cases(**filters)["cases"]]

    assert ids() == [open_bug, closed_bug, security]
    assert ids(status="open") == [open_bug, security]
    assert ids(status="closed") == [closed_bug]
    assert ids(case_type="security") == [security]
    assert ids(status="open", case_type="bug") == [open_bug]
    failure = refused(INVALID_ARGUMENT, desk.cases.list_cases, status="pending")
    assert failure.message == "status: 'pending' is not one of open, closed"


def test_a_registry_locked_by_another_process_gives_busy(repo: Repo) -> None:
    desk = Desk(repo, lock_timeout=0.2)
    holder = LockHolder.hold(repo.root / ".scribe" / "registry" / "cases.lock")
    try:
        failure = refused(BUSY, bug, desk)
        assert "cases.lock is locked by another writer" in failure.message
        assert repo.entries(CASE_OPENED) == []
    finally:
        holder.release()
    assert bug(desk)["case"]["case_id"] == f"{ID}-0001"
    desk.close()


def test_evidence_is_never_read_and_nothing_is_written_elsewhere(tmp_path: Path) -> None:
    repo = Repo.make(tmp_path / "repo", journal_home=tmp_path / "journal")
    (repo.root / "notes").mkdir()
    (repo.root / "notes" / "leak.md").write_text("TOKEN=evidence-secret-93\n")
    os.mkfifo(repo.root / "notes" / "pipe")  # opening it to read would block this test
    users = set(repo.root.rglob("*"))
    desk = Desk(repo)
    case_id = bug(desk, evidence_paths=["notes/leak.md", "notes/pipe"])["case"]["case_id"]
    later = call_for(repo.root, when=WHEN + timedelta(days=1))
    link(desk, case_id, root_cause="r", fix_link="f", landing_status="verified", close=True,
         call=later)  # fmt: skip
    desk.close()
    repo.close()
    days = [DAY, (WHEN + timedelta(days=1)).date().isoformat()]
    allowed = [repo.root / SENTINEL_DIR / day for day in days]
    allowed.append(repo.root / ".scribe" / "registry")
    for path in set(repo.root.rglob("*")) - users:
        if path.is_dir() and any(folder.is_relative_to(path) for folder in allowed):
            continue  # a folder on the way to an allowed one
        assert any(path.is_relative_to(folder) for folder in allowed), path
    for path in tmp_path.rglob("*"):
        if path.is_file() and path not in users:
            assert b"evidence-secret-93" not in path.read_bytes(), path

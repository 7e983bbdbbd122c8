"""Projects and progress logs: the registry, project roots, and one whole line per entry."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_helpers import make_call
from scribe.journal import JournalWriter, Query, SqliteJournal
from scribe.journal.entry import AGENT_ENTRY, DOC_CHANGED, PROJECT_SET
from scribe.journal.sqlite import JOURNAL_DB
from scribe.mcp.context import Call
from scribe.mcp.failures import (
    BUSY,
    INVALID_ARGUMENT,
    NOT_FOUND,
    SCOPE_VIOLATION,
    UNAVAILABLE,
    ToolFailure,
)
from scribe.mcp.progress_line import STATUS_EMOJI, format_line
from scribe.mcp.projects import REGISTRY, Projects, parse_line, slugify

LOG = ".scribe/docs/dev_plans/auth-rewrite/PROGRESS_LOG.md"


def project_call(root: Path, *, agent: str = "test-agent", session: str = "session-1") -> Call:
    return make_call(
        root,
        session,
        agent_identity={"id": agent, "instance_id": "inst-1"},
        intent="track the auth rewrite",
        affected_dev_projects=["Auth Rewrite"],
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = (tmp_path / "repo").resolve()
    (root / "src" / "auth").mkdir(parents=True)
    return root


@pytest.fixture
def store(repo: Path) -> Iterator[SqliteJournal]:
    with SqliteJournal(repo / JOURNAL_DB) as journal:
        yield journal


@pytest.fixture
def journal(store: SqliteJournal) -> Iterator[JournalWriter]:
    with JournalWriter(store) as writer:
        yield writer


@pytest.fixture
def projects(repo: Path, journal: JournalWriter) -> Projects:
    return Projects(repo, journal)


@pytest.fixture
def call(repo: Path) -> Call:
    return project_call(repo)


@pytest.fixture
def auth(projects: Projects, call: Call) -> dict[str, Any]:
    return projects.set_project(call, name="Auth Rewrite", root="src/auth")


def append(projects: Projects, call: Call, message: str, **extra: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"status": "info", "emoji": None, "agent": None, "meta": None}
    arguments.update(extra)
    return projects.append_entry(call, project="Auth Rewrite", message=message, **arguments)


def refused(code: str, run: Any) -> ToolFailure:
    with pytest.raises(ToolFailure) as caught:
        run()
    assert caught.value.code == code, caught.value.to_json()
    return caught.value


# -- the registry ---------------------------------------------------------------------


def test_set_project_registers_it_as_current_and_journals_first(
    repo: Path, projects: Projects, call: Call, store: SqliteJournal
) -> None:
    assert projects.current() is None
    result = projects.set_project(call, name="  Auth Rewrite  ", root="src/auth")

    assert result["name"] == "Auth Rewrite"
    assert result["slug"] == "auth-rewrite"
    assert result["root"] == "src/auth"
    assert result["docs_dir"] == ".scribe/docs/dev_plans/auth-rewrite/"
    assert result["created"] is True
    assert result["created_by"] == "test-agent"
    assert projects.current() == "Auth Rewrite"
    registry = json.loads((repo / REGISTRY).read_text(encoding="utf-8"))
    assert registry["current"] == "auth-rewrite"
    assert registry["projects"]["auth-rewrite"]["root"] == "src/auth"

    (entry,) = store.query(Query(kinds=[PROJECT_SET]))
    assert entry.seq == result["seq"]
    assert entry.actor == "agent:test-agent"
    assert entry.payload["project"] == "Auth Rewrite"
    assert entry.payload["slug"] == "auth-rewrite"
    assert entry.payload["project_root"] == "src/auth"
    assert entry.payload["execution_id"] == "exec-1"
    assert entry.payload["session_id"] == "session-1"
    assert entry.payload["affected_dev_projects"] == ["Auth Rewrite"]


def test_names_with_the_same_slug_are_the_same_project(
    repo: Path, projects: Projects, call: Call
) -> None:
    first = projects.set_project(call, name="Auth Rewrite", root="src/auth")
    other = project_call(repo, agent="other-agent")
    second = projects.set_project(other, name="auth-REWRITE!", root=".")

    assert second["created"] is False
    assert second["slug"] == first["slug"]
    assert second["name"] == "auth-REWRITE!"  # the last spelling set is shown
    assert second["root"] == "."
    assert second["created_by"] == "test-agent"
    assert second["created_at"] == first["created_at"]
    assert second["updated_by"] == "other-agent"
    assert [p["slug"] for p in projects.list_projects()] == ["auth-rewrite"]
    assert projects.get_project("Auth Rewrite")["root"] == "."
    assert projects.get_project("auth-rewrite")["name"] == "auth-REWRITE!"


def test_slugs() -> None:
    assert slugify("Auth Rewrite (v2)") == "auth-rewrite-v2"
    assert slugify("  Café  Münster ") == "cafe-munster"
    assert slugify("a__b--c") == "a-b-c"
    assert slugify("日本") == ""


def test_the_current_project_is_the_last_one_set(projects: Projects, call: Call) -> None:
    projects.set_project(call, name="Alpha", root=".")
    projects.set_project(call, name="Beta", root="src")
    assert projects.current() == "Beta"
    projects.set_project(call, name="alpha", root=".")
    assert projects.current() == "alpha"
    assert [p["name"] for p in projects.list_projects()] == ["alpha", "Beta"]


def test_an_unknown_project_lists_the_known_ones(projects: Projects, call: Call) -> None:
    failure = refused(NOT_FOUND, lambda: projects.get_project("nope"))
    assert failure.message == "no project 'nope'; known projects: none yet: call set_project first"
    projects.set_project(call, name="Beta", root=".")
    projects.set_project(call, name="Alpha", root=".")
    failure = refused(NOT_FOUND, lambda: projects.get_project("Gamma"))
    assert failure.message == "no project 'Gamma'; known projects: Alpha, Beta"
    assert failure.details["known"] == ["Alpha", "Beta"]


@pytest.mark.parametrize("name", ["", "   ", "***", "two\nlines"])
def test_unusable_names_are_refused(projects: Projects, call: Call, name: str) -> None:
    refused(INVALID_ARGUMENT, lambda: projects.set_project(call, name=name, root="."))


def test_project_roots_inside_the_repository(repo: Path, projects: Projects, call: Call) -> None:
    (repo / "inside").symlink_to(repo / "src")
    assert projects.set_project(call, name="A", root=".")["root"] == "."
    assert projects.set_project(call, name="B", root="src/auth/")["root"] == "src/auth"
    assert projects.set_project(call, name="C", root=str(repo / "src"))["root"] == "src"
    assert projects.set_project(call, name="D", root="src/../src/auth")["root"] == "src/auth"
    assert projects.set_project(call, name="E", root="inside/auth")["root"] == "src/auth"


def test_project_roots_outside_the_repository_are_refused(
    tmp_path: Path, repo: Path, projects: Projects, call: Call, store: SqliteJournal
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (repo / "escape").symlink_to(outside)
    (repo / ".git").mkdir()
    for root in ["..", "../elsewhere", "src/../../elsewhere", str(outside), "/", "escape", ".git"]:
        failure = refused(
            SCOPE_VIOLATION, lambda r=root: projects.set_project(call, name="X", root=r)
        )
        assert failure.details["path"] == root
        assert repr(root) in failure.message
    assert (
        "outside the repository"
        in refused(
            SCOPE_VIOLATION, lambda: projects.set_project(call, name="X", root="escape")
        ).message
    )
    assert not (repo / REGISTRY).exists()
    assert store.query(Query(kinds=[PROJECT_SET])) == []


def test_a_project_root_must_be_an_existing_folder(
    repo: Path, projects: Projects, call: Call
) -> None:
    (repo / "file.txt").write_text("x", encoding="utf-8")
    failure = refused(NOT_FOUND, lambda: projects.set_project(call, name="X", root="missing"))
    assert failure.message == "project root 'missing' does not exist"
    failure = refused(NOT_FOUND, lambda: projects.set_project(call, name="X", root="file.txt"))
    assert failure.message == "project root 'file.txt' is not a folder"
    refused(INVALID_ARGUMENT, lambda: projects.set_project(call, name="X", root="  "))


def test_a_damaged_registry_is_reported_and_left_alone(
    repo: Path, projects: Projects, call: Call
) -> None:
    path = repo / REGISTRY
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"projects": {')
    failure = refused(UNAVAILABLE, lambda: projects.set_project(call, name="X", root="."))
    assert ".scribe/registry/projects.json is unreadable" in failure.message
    assert path.read_bytes() == b'{"projects": {'


def test_threads_setting_projects_at_once_lose_none(projects: Projects, call: Call) -> None:
    names = [f"Project {n}" for n in range(24)]
    threads = [
        threading.Thread(target=projects.set_project, args=(call,), kwargs={"name": n, "root": "."})
        for n in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(p["name"] for p in projects.list_projects()) == sorted(names)


# -- progress log lines ---------------------------------------------------------------

LINE = re.compile(
    r"\[✅\] \[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\] \[Agent: test-agent\] "
    r"\[Project: Auth Rewrite\] tests pass \| files=3; suite=unit; warm=false"
)


def test_an_entry_is_one_line_in_the_documented_format(
    repo: Path, projects: Projects, call: Call, auth: dict[str, Any]
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    result = append(
        projects,
        call,
        "tests pass",
        status="success",
        meta={"suite": "unit", "files": 3, "warm": False},
    )
    after = datetime.now(UTC)

    match = LINE.fullmatch(result["line"])
    assert match is not None, result["line"]
    moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert before <= moment <= after
    assert result["path"] == LOG
    text = (repo / LOG).read_text(encoding="utf-8")
    assert text.startswith("# Progress log: Auth Rewrite\n")
    assert text.endswith("\n" + result["line"] + "\n")


def test_without_meta_there_is_no_meta_part(
    projects: Projects, call: Call, auth: dict[str, Any]
) -> None:
    line = append(projects, call, "planning", status="plan", meta={})["line"]
    assert line.endswith("] [Agent: test-agent] [Project: Auth Rewrite] planning")
    assert line.startswith(f"[{STATUS_EMOJI['plan']}] [")


def test_status_emoji_and_agent(projects: Projects, call: Call, auth: dict[str, Any]) -> None:
    assert append(projects, call, "x", status="bug")["line"].startswith("[🐞] ")
    assert append(projects, call, "x", status=" WARN ")["line"].startswith("[⚠️] ")
    assert append(projects, call, "x", status="error", emoji="🔥")["line"].startswith("[🔥] ")
    named = append(projects, call, "x", agent="Reviewer Bot")
    assert "[Agent: Reviewer Bot]" in named["line"]
    failure = refused(INVALID_ARGUMENT, lambda: append(projects, call, "x", status="fine"))
    assert failure.message == (
        "unknown status 'fine'; use one of info, success, warn, error, bug, plan"
    )
    refused(INVALID_ARGUMENT, lambda: append(projects, call, "x", emoji="  "))
    refused(INVALID_ARGUMENT, lambda: append(projects, call, "x", agent=""))


@pytest.mark.parametrize("message", ["", "   ", "\n\t \n"])
def test_an_empty_message_is_refused_and_nothing_is_written(
    repo: Path,
    projects: Projects,
    call: Call,
    auth: dict[str, Any],
    store: SqliteJournal,
    message: str,
) -> None:
    failure = refused(INVALID_ARGUMENT, lambda: append(projects, call, message))
    assert failure.message == "message is empty"
    assert not (repo / LOG).exists()
    assert store.query(Query(kinds=[AGENT_ENTRY])) == []


def test_meta_and_message_escapes_round_trip(
    repo: Path, projects: Projects, call: Call, auth: dict[str, Any]
) -> None:
    message = "split | here; and\nthere\r\n with \\ and ] [Agent: x]"
    meta: dict[str, Any] = {"path": "a;b|c\\d", "n": 3, "ok": True, "ratio": 1.5, "e": ""}
    result = append(projects, call, message, agent="Bot [beta]", emoji="]x", meta=meta)

    lines = (repo / LOG).read_text(encoding="utf-8").splitlines()
    assert lines[-1] == result["line"]  # still one line
    parsed = parse_line(result["line"])
    assert parsed["message"] == message
    assert parsed["agent"] == "Bot [beta]"
    assert parsed["emoji"] == "]x"
    assert parsed["project"] == "Auth Rewrite"
    assert parsed["meta"] == {"e": "", "n": "3", "ok": "true", "path": "a;b|c\\d", "ratio": "1.5"}
    assert list(parsed["meta"]) == sorted(meta)  # written sorted
    assert "path=a\\;b\\|c\\\\d" in result["line"]


@pytest.mark.parametrize(
    "meta",
    [{"bad key": 1}, {"": 1}, {"k": [1]}, {"k": None}, {"k": float("nan")}, {"k": "v" * 1001}],
)
def test_unwritable_meta_is_refused(
    projects: Projects, call: Call, auth: dict[str, Any], meta: dict[str, Any]
) -> None:
    refused(INVALID_ARGUMENT, lambda: append(projects, call, "x", meta=meta))


def test_other_lines_do_not_parse() -> None:
    for line in [
        "# Progress log: X",
        "",
        "[x] [2026-01-01 00:00:00] no UTC",
        "<!-- ID: entries -->",
    ]:
        with pytest.raises(ValueError, match="not a progress log entry"):
            parse_line(line)


text_without_surrogates = st.text(st.characters(exclude_categories=["Cs"]))


@settings(max_examples=300, deadline=None)
@given(
    message=text_without_surrogates.filter(str.strip),
    agent=text_without_surrogates.filter(str.strip),
    project=text_without_surrogates.filter(str.strip),
    meta=st.dictionaries(
        st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True), text_without_surrogates
    ),
)
def test_any_entry_reads_back_as_written(
    message: str, agent: str, project: str, meta: dict[str, str]
) -> None:
    line = format_line(
        emoji="✅",
        moment=datetime.now(UTC),
        agent=agent,
        project=project,
        message=message,
        meta=meta,
    )
    assert len(line.splitlines()) == 1
    parsed = parse_line(line)
    assert (parsed["message"], parsed["agent"], parsed["project"]) == (message, agent, project)
    assert parsed["meta"] == meta


def test_the_entry_is_journaled_with_its_line(
    projects: Projects, call: Call, auth: dict[str, Any], store: SqliteJournal
) -> None:
    result = append(projects, call, "started", status="plan", meta={"phase": 1})
    (entry,) = store.query(Query(kinds=[AGENT_ENTRY]))
    assert entry.seq == result["seq"]
    assert entry.message == result["line"]
    assert entry.path == LOG
    assert entry.actor == "agent:test-agent"
    assert entry.payload["project"] == "Auth Rewrite"
    assert entry.payload["status"] == "plan"
    assert entry.payload["meta"] == {"phase": 1}
    assert entry.payload["line"] == result["line"]
    assert entry.payload["execution_id"] == "exec-1"
    assert entry.payload["session_id"] == "session-1"
    assert entry.payload["agent"]["instance_id"] == "inst-1"


def test_a_missing_log_is_created_from_its_template_and_journaled(
    repo: Path, projects: Projects, call: Call, auth: dict[str, Any], store: SqliteJournal
) -> None:
    append(projects, call, "first")
    (created,) = store.query(Query(kinds=[DOC_CHANGED]))
    assert created.path == LOG
    assert created.before_hash is None
    assert created.payload["action"] == "create"
    assert created.payload["doc"] == "progress_log"
    assert "<!-- ID: entries -->" in (repo / LOG).read_text(encoding="utf-8")
    append(projects, call, "second")
    assert len(store.query(Query(kinds=[DOC_CHANGED]))) == 1


def test_a_cut_short_last_line_does_not_swallow_the_next_entry(
    repo: Path, projects: Projects, call: Call, auth: dict[str, Any]
) -> None:
    append(projects, call, "first")
    with open(repo / LOG, "ab") as handle:
        handle.write(b"[\xe2\x9c\x85] [2026-01-01 00:0")  # a crash mid-line
    line = append(projects, call, "after the crash")["line"]
    assert (repo / LOG).read_text(encoding="utf-8").splitlines()[-1] == line


def test_a_crlf_log_stays_crlf(
    repo: Path, projects: Projects, call: Call, auth: dict[str, Any]
) -> None:
    (repo / LOG).parent.mkdir(parents=True)
    (repo / LOG).write_bytes(b"# Log\r\n\r\n")
    line = append(projects, call, "windows")["line"]
    assert (repo / LOG).read_bytes() == b"# Log\r\n\r\n" + line.encode() + b"\r\n"


def test_a_log_locked_too_long_is_busy_and_says_the_entry_is_journaled(
    repo: Path, journal: JournalWriter, call: Call, auth: dict[str, Any], store: SqliteJournal
) -> None:
    impatient = Projects(repo, journal, lock_timeout=0.2)
    append(impatient, call, "first")
    fd = os.open(repo / LOG, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another holder: flock locks per open file
        failure = refused(BUSY, lambda: append(impatient, call, "blocked"))
    finally:
        os.close(fd)
    (_, blocked) = store.query(Query(kinds=[AGENT_ENTRY]))
    assert failure.details["seq"] == blocked.seq
    assert f"journaled (seq {blocked.seq})" in failure.message
    assert "do not send it again" in failure.message
    assert "blocked" not in (repo / LOG).read_text(encoding="utf-8")


def entry_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [parse_line(line) for line in lines if line.startswith("[")]


def test_sixteen_threads_append_whole_lines(
    repo: Path, projects: Projects, call: Call, auth: dict[str, Any], store: SqliteJournal
) -> None:
    def work(thread: int) -> None:
        for n in range(200):
            append(projects, call, f"thread {thread} entry {n}", meta={"t": thread, "n": n})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    entries = entry_lines(repo / LOG)  # every line parses: none torn or interleaved
    assert len(entries) == 3200
    assert {e["message"] for e in entries} == {
        f"thread {t} entry {n}" for t in range(16) for n in range(200)
    }
    assert all(
        e["meta"] == {"n": e["message"].split()[3], "t": e["message"].split()[1]} for e in entries
    )
    assert len(store.query(Query(kinds=[AGENT_ENTRY]))) == 3200


WORKER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from scribe.journal import JournalWriter, SqliteJournal
from scribe.journal.sqlite import JOURNAL_DB
from scribe.mcp.context import Call, parse_context
from scribe.mcp.projects import Projects

root, name = Path(sys.argv[1]), sys.argv[2]
context, resolved = parse_context({
    "repo_root": str(root), "mode": "project", "execution_id": name,
    "agent_identity": {"id": name, "instance_id": name}, "intent": "append at once",
    "timestamp_utc": datetime.now(UTC).isoformat(), "affected_dev_projects": [],
}, [root])
call = Call(context, resolved, name)
with SqliteJournal(root / JOURNAL_DB) as store, JournalWriter(store) as journal:
    projects = Projects(root, journal, lock_timeout=10)
    projects.set_project(call, name=f"Side {name}", root=".")
    print("ready", flush=True)
    sys.stdin.readline()
    for n in range(200):
        projects.append_entry(call, project="Auth Rewrite", message=f"{name} {n}",
                              status="info", emoji=None, agent=None, meta={"n": n})
print("done", flush=True)
"""


def test_two_processes_append_at_once(
    repo: Path,
    auth: dict[str, Any],
    store: SqliteJournal,
    journal: JournalWriter,
    projects: Projects,
) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(repo), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
    for worker in workers:  # both are waiting: start them together
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        worker.communicate(timeout=120)
        assert worker.returncode == 0
    entries = entry_lines(repo / LOG)
    assert sorted(e["message"] for e in entries) == sorted(
        f"{name} {n}" for name in ("one", "two") for n in range(200)
    )
    assert {e["agent"] for e in entries} == {"one", "two"}
    # both registered a project meanwhile, under the registry's lock
    assert {p["name"] for p in projects.list_projects()} == {"Auth Rewrite", "Side one", "Side two"}
    journal.flush()
    assert len(store.query(Query(kinds=[AGENT_ENTRY]))) == 400
    assert store.verify().ok

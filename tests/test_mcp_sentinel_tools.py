"""Sentinel mode through a real client: events and cases land in the day folder and the
journal, cases close only by the rules, and concurrent calls never share an id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession

from mcp_helpers import agent_context, call, make_repo, stdio_session
from scribe.journal import Query, SqliteJournal


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def sentinel(repo: Path, **overrides: Any) -> dict[str, Any]:
    return agent_context(repo, mode="sentinel", **overrides)


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_append_event_writes_the_day_folder_and_the_journal_and_nothing_else(repo: Path) -> None:
    before = files_under(repo)
    context = sentinel(repo, timestamp_utc="2026-11-30T23:59:59Z")

    async def body() -> dict[str, Any]:
        async with stdio_session(repo) as session:
            is_error, result = await call(
                session,
                "append_event",
                context=context,
                event_type="test.run",
                message="unit tests pass",
                severity="info",
                paths=["notes/a.md"],
                data={"passed": 12},
            )
            assert not is_error, result
            return result

    result = anyio.run(body)
    assert result["sentinel_day"] == "2026-11-30"  # the call's day, not the server's
    day = repo / ".scribe" / "sentinel" / "2026-11-30"
    [line] = (day / "sentinel.jsonl").read_text().splitlines()
    assert json.loads(line)["message"] == "unit tests pass"
    assert "unit tests pass" in (day / "SENTINEL_LOG.md").read_text()
    added = files_under(repo) - before
    outside = {
        p for p in added
        if not p.startswith((".scribe/sentinel/2026-11-30/", ".scribe/registry/", ".scribe/log/"))
        and not p.startswith(".scribe/journal")
    }  # fmt: skip
    assert outside == set()
    with SqliteJournal.for_root(repo) as journal:
        [entry] = journal.query(Query(kinds=["agent.event"]))
    assert entry.seq == result["seq"]
    assert entry.payload["sentinel_day"] == "2026-11-30"
    assert entry.payload["execution_id"] == "exec-1"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("append_event", {"event_type": "x", "message": "m"}),
        ("open_bug", {"title": "t", "severity": "low"}),
        ("open_security", {"title": "t", "severity": "low"}),
        ("link_fix", {"case_id": "BUG-20261201-0001"}),
    ],
)
def test_sentinel_tools_fail_in_project_mode(
    repo: Path, tool: str, arguments: dict[str, Any]
) -> None:
    async def body() -> tuple[bool, dict[str, Any]]:
        async with stdio_session(repo) as session:
            return await call(session, tool, context=agent_context(repo), **arguments)

    is_error, result = anyio.run(body)
    assert is_error
    assert result["error"] == "wrong_mode"
    assert "sentinel-mode tool" in result["message"]


def test_an_empty_message_is_an_error_not_an_entry(repo: Path) -> None:
    async def body() -> tuple[bool, dict[str, Any]]:
        async with stdio_session(repo) as session:
            return await call(
                session, "append_event", context=sentinel(repo), event_type="x", message="  "
            )

    is_error, result = anyio.run(body)
    assert is_error
    assert result["error"] == "invalid_argument"
    with SqliteJournal.for_root(repo) as journal:
        assert journal.query(Query(kinds=["agent.event"])) == []


def test_a_hundred_concurrent_open_bug_calls_get_a_hundred_ids(repo: Path) -> None:
    ids: list[str] = []

    async def one(session: ClientSession, n: int) -> None:
        is_error, result = await call(
            session, "open_bug", context=sentinel(repo), title=f"bug {n}", severity="medium"
        )
        assert not is_error, result
        ids.append(result["case"]["case_id"])

    async def body() -> None:
        async with stdio_session(repo) as session, anyio.create_task_group() as group:
            for n in range(100):
                group.start_soon(one, session, n)

    anyio.run(body)
    assert len(set(ids)) == 100
    with SqliteJournal.for_root(repo) as journal:
        opened = journal.query(Query(kinds=["case.opened"]))
    assert sorted(e.payload["case_id"] for e in opened) == sorted(ids)


def test_a_case_closes_only_with_root_cause_fix_link_and_a_verified_fix(repo: Path) -> None:
    async def body() -> list[tuple[bool, dict[str, Any]]]:
        async with stdio_session(repo) as session:
            context = sentinel(repo)
            _, opened = await call(
                session, "open_security", context=context, title="token in log", severity="high",
                evidence_paths=["notes/a.md"],
            )  # fmt: skip
            case = opened["case"]["case_id"]
            return [
                await call(
                    session,
                    "link_fix",
                    context=context,
                    case_id="SEC-20000101-0009",
                    landing_status="proposed",
                ),
                await call(
                    session, "link_fix", context=context, case_id=case, landing_status="shipped"
                ),
                await call(session, "link_fix", context=context, case_id=case, close=True),
                await call(
                    session,
                    "link_fix",
                    context=context,
                    case_id=case,
                    fix_link="https://example.org/pr/1",
                    root_cause="debug logging",
                    landing_status="merged",
                    close=True,
                ),
                await call(
                    session,
                    "link_fix",
                    context=context,
                    case_id=case,
                    fix_link="https://example.org/pr/1",
                    root_cause="debug logging",
                    landing_status="merged",
                ),
                await call(
                    session, "link_fix", context=context, case_id=case, landing_status="proposed"
                ),
                await call(
                    session,
                    "link_fix",
                    context=context,
                    case_id=case,
                    landing_status="verified",
                    close=True,
                ),
            ]

    unknown, bad_status, bare_close, unverified, merged, backwards, closed = anyio.run(body)
    assert unknown[0]
    assert unknown[1]["error"] == "not_found"
    assert bad_status[0]  # refused by the published schema: not a landing status
    assert bare_close[0]
    assert bare_close[1]["error"] == "conflict"
    assert set(bare_close[1]["missing"]) >= {"root_cause", "fix_link", "landing_status"}
    assert unverified[0]
    assert unverified[1]["error"] == "conflict"
    assert unverified[1]["missing"] == ["landing_status"]  # merged is not verified
    assert not merged[0], merged[1]
    assert backwards[0]
    assert backwards[1]["error"] == "conflict"
    assert not closed[0], closed[1]
    assert closed[1]["case"]["status"] == "closed"


def test_a_repeated_idempotency_key_appends_once(repo: Path) -> None:
    async def body() -> tuple[dict[str, Any], dict[str, Any]]:
        async with stdio_session(repo) as session:
            arguments = {
                "context": sentinel(repo),
                "event_type": "x",
                "message": "once",
                "idempotency_key": "k1",
            }
            _, first = await call(session, "append_event", **arguments)
            _, again = await call(session, "append_event", **arguments)
            return first, again

    first, again = anyio.run(body)
    assert again["seq"] == first["seq"]
    with SqliteJournal.for_root(repo) as journal:
        assert len(journal.query(Query(kinds=["agent.event"]))) == 1


def test_sentinel_mode_never_falls_back_to_the_global_project(repo: Path) -> None:
    (repo / "alpha").mkdir()

    async def body() -> tuple[bool, dict[str, Any]]:
        async with stdio_session(repo) as session:
            await call(
                session, "set_project", context=agent_context(repo), name="Alpha", root="alpha"
            )
        async with stdio_session(repo) as session:  # a new session: only the global is left
            return await call(session, "query_entries", context=sentinel(repo), scope="project")

    is_error, result = anyio.run(body)
    assert is_error
    assert result["error"] == "scope_violation"
    with SqliteJournal.for_root(repo) as journal:
        [violation] = journal.query(Query(kinds=["scope.violation"]))
    assert violation.payload["tool"] == "query_entries"
    assert violation.payload["mode"] == "sentinel"


def test_query_entries_finds_a_cases_history_and_pages_with_a_cursor(repo: Path) -> None:
    async def body() -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
        async with stdio_session(repo) as session:
            context = sentinel(repo)
            _, opened = await call(session, "open_bug", context=context, title="t", severity="low")
            case = opened["case"]["case_id"]
            await call(
                session, "link_fix", context=context, case_id=case, landing_status="proposed"
            )
            for i in range(5):
                await call(
                    session, "append_event", context=context, event_type="tick", message=f"t{i}"
                )
            _, history = await call(
                session, "query_entries", context=context, scope="sentinel", case_id=case
            )
            pages: list[dict[str, Any]] = []
            cursor = None
            while True:
                _, page = await call(
                    session, "query_entries", context=context, scope="sentinel",
                    event_type="tick", limit=2, cursor=cursor, summaries=True,
                )  # fmt: skip
                pages += page["entries"]
                cursor = page["next_cursor"]
                if cursor is None:
                    return history["entries"], pages, case

    history, ticks, case = anyio.run(body)
    assert [e["kind"] for e in history] == ["case.updated", "case.opened"]  # newest first
    assert all(e["payload"]["case_id"] == case for e in history)
    assert [e["message"] for e in ticks] == [f"t{i}" for i in reversed(range(5))]
    assert all(e["summary"] for e in ticks)

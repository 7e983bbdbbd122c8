"""Sessions through real clients: each connection's project is its own, an agent can
reconnect to its earlier project, and many sessions appending at once lose nothing."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp_types import jsonrpc_message_adapter

from mcp_helpers import agent_context, answer, http_server, http_session, make_repo, stdio_session
from scribe.journal import Query, SqliteJournal
from scribe.mcp.context import Call
from scribe.mcp.door import ONLY_SENTINEL, Door, Repository
from scribe.mcp.progress_line import parse_line
from scribe.mcp.sessions import Session
from scribe.mcp.stdio import Unanswered


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo")
    for name in ("alpha", "beta"):
        (root / name).mkdir()
    return root


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    is_error, result = answer(await session.call_tool(tool, arguments))
    assert not is_error, result
    return result


async def refused(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    is_error, result = answer(await session.call_tool(tool, arguments))
    assert is_error, result
    return result


def progress_lines(root: Path, slug: str) -> list[dict[str, Any]]:
    text = (root / ".scribe" / "docs" / "dev_plans" / slug / "PROGRESS_LOG.md").read_text()
    entries = []
    for line in text.splitlines():
        try:
            entries.append(parse_line(line))
        except ValueError:  # headings and the template's prose
            continue
    return entries


def test_each_session_keeps_its_own_project(repo: Path) -> None:
    with http_server(repo) as (url, _):

        async def body() -> tuple[str, str]:
            async with http_session(url) as first, http_session(url) as second:
                one = await call(
                    first, "set_project", context=agent_context(repo), name="Alpha", root="alpha"
                )
                two = await call(
                    second, "set_project", context=agent_context(repo), name="Beta", root="beta"
                )
                # The second set_project made Beta the repository's current project,
                # yet the first session still writes to its own.
                await call(
                    first, "append_entry", context=agent_context(repo), message="from the first"
                )
                await call(
                    second, "append_entry", context=agent_context(repo), message="from the second"
                )
                mine = await call(first, "get_project", context=agent_context(repo))
                assert mine["name"] == "Alpha"
                return one["session_id"], two["session_id"]

        first_id, second_id = anyio.run(body)
    assert first_id != second_id
    with SqliteJournal.for_root(repo) as journal:
        entries = journal.query(Query(kinds=["agent.entry"]))
    for entry in entries:  # the transport's session id is recorded, never used as ours
        assert entry.payload["session_id"] in (first_id, second_id)
        assert entry.payload["transport_session_id"] not in (first_id, second_id, None)
    assert len({e.payload["transport_session_id"] for e in entries}) == 2
    assert [e["message"] for e in progress_lines(repo, "alpha")] == ["from the first"]
    assert [e["message"] for e in progress_lines(repo, "beta")] == ["from the second"]


def test_a_new_session_falls_back_to_the_current_project_and_can_name_another(repo: Path) -> None:
    async def body() -> None:
        async with stdio_session(repo) as setter:
            await call(
                setter, "set_project", context=agent_context(repo), name="Alpha", root="alpha"
            )
            await call(setter, "set_project", context=agent_context(repo), name="Beta", root="beta")
        async with stdio_session(repo) as fresh:
            found = await call(fresh, "get_project", context=agent_context(repo))
            assert found["name"] == "Beta"  # the repository's current project, the last set
            await call(
                fresh, "append_entry", context=agent_context(repo, project="Alpha"), message="named"
            )

    anyio.run(body)
    assert [e["message"] for e in progress_lines(repo, "alpha")] == ["named"]


def test_without_any_project_append_entry_says_what_to_do(repo: Path) -> None:
    async def body() -> dict[str, Any]:
        async with stdio_session(repo) as session:
            return await refused(session, "append_entry", context=agent_context(repo), message="hi")

    result = anyio.run(body)
    assert result["error"] == "invalid_argument"
    assert "set_project" in result["message"]


def test_an_agent_reconnects_to_its_earlier_project_by_fingerprint(repo: Path) -> None:
    async def body() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with stdio_session(repo) as before:
            made = await call(
                before, "set_project", context=agent_context(repo), name="Alpha", root="alpha"
            )
        async with stdio_session(repo) as other:  # someone else moves the current project
            await call(other, "set_project", context=agent_context(repo), name="Beta", root="beta")
        async with stdio_session(repo) as after:
            back = await call(
                after,
                "reconnect",
                context=agent_context(repo),
                earlier_session_id=made["session_id"],
            )
            stranger = agent_context(
                repo, agent_identity={"id": "someone-else", "instance_id": "x"}
            )
            denied = await refused(
                after, "reconnect", context=stranger, earlier_session_id=made["session_id"]
            )
            await call(after, "append_entry", context=agent_context(repo), message="resumed")
        return made, back, denied

    made, back, denied = anyio.run(body)
    assert back["name"] == "Alpha"
    assert back["resumed_from"] == made["session_id"]
    assert back["session_id"] != made["session_id"]  # the server names every session anew
    assert denied["error"] == "not_found"  # another agent cannot take over the session
    assert [e["message"] for e in progress_lines(repo, "alpha")] == ["resumed"]


def test_an_idempotency_key_makes_a_retried_append_harmless(repo: Path) -> None:
    async def body() -> tuple[dict[str, Any], dict[str, Any]]:
        async with stdio_session(repo) as session:
            context = agent_context(repo)
            await call(session, "set_project", context=context, name="Alpha", root="alpha")
            first = await call(
                session, "append_entry", context=context, message="once", idempotency_key="k-1"
            )
            again = await call(
                session, "append_entry", context=context, message="once", idempotency_key="k-1"
            )
            return first, again

    first, again = anyio.run(body)
    assert again["seq"] == first["seq"]
    assert again["replayed"] is True
    assert [e["message"] for e in progress_lines(repo, "alpha")] == ["once"]


@pytest.mark.timeout(600)
def test_sixteen_sessions_appending_at_once_lose_and_tear_nothing(repo: Path) -> None:
    sessions, appends = 16, 500
    for n in range(sessions):
        (repo / f"p{n}").mkdir()

    async def one(url: str, n: int) -> None:
        async with http_session(url) as session:
            context = agent_context(
                repo,
                execution_id=f"exec-{n}",
                agent_identity={"id": f"agent-{n}", "instance_id": f"inst-{n}"},
            )
            await call(session, "set_project", context=context, name=f"P{n}", root=f"p{n}")
            for i in range(appends):
                result = await call(session, "append_entry", context=context, message=f"{n}:{i}")
                assert f"[Project: P{n}]" in result["line"]

    with http_server(repo) as (url, _):

        async def body() -> None:
            async with anyio.create_task_group() as group:
                for n in range(sessions):
                    group.start_soon(one, url, n)

        anyio.run(body)
    for n in range(sessions):
        entries = progress_lines(repo, f"p{n}")
        assert [e["message"] for e in entries] == [f"{n}:{i}" for i in range(appends)]
        assert {e["agent"] for e in entries} == {f"agent-{n}"}
    with SqliteJournal.for_root(repo) as journal:
        logged = journal.query(Query(kinds=["agent.entry"]))
        assert journal.verify().ok
    assert len(logged) == sessions * appends
    for entry in logged:  # every entry carries its own session's context, nobody else's
        n = int(entry.message.split("] ")[-1].split(":")[0])
        assert entry.payload["execution_id"] == f"exec-{n}"
        assert entry.payload["project"] == f"P{n}"


def test_read_recent_gives_the_projects_latest_entries_from_the_journal(repo: Path) -> None:
    async def body() -> dict[str, Any]:
        async with stdio_session(repo) as session:
            context = agent_context(repo)
            await call(session, "set_project", context=context, name="Alpha", root="alpha")
            await call(session, "set_project", context=context, name="Beta", root="beta")
            for i in range(4):
                await call(
                    session,
                    "append_entry",
                    context=agent_context(repo, project="Alpha"),
                    message=f"a{i}",
                    meta={"n": i},
                )
            await call(session, "append_entry", context=context, message="for beta")
            return await call(session, "read_recent", context=context, project="Alpha", limit=3)

    recent = anyio.run(body)
    assert recent["project"] == "Alpha"
    assert [e["message"] for e in recent["entries"]] == ["a3", "a2", "a1"]
    assert recent["entries"][0]["meta"] == {"n": "3"}
    assert recent["next_cursor"] is not None


def test_a_call_is_alone_only_while_no_other_call_is_being_served(tmp_path: Path) -> None:
    # A lone call may hold the event loop for its commit; that must never be a call
    # that others (on the loop or in a worker thread) are waiting behind.
    root = make_repo(tmp_path / "repo")
    door = Door([Repository.open(root)])
    context = agent_context(root, mode="sentinel")
    transport_idle = [True]
    door.transport_alone = lambda: transport_idle[0]
    seen: dict[str, bool] = {}
    first_in, let_go, thread_in, thread_go = (
        anyio.Event(),
        anyio.Event(),
        threading.Event(),
        threading.Event(),
    )

    def noting(name: str) -> Callable[[Call, Repository, Session], Awaitable[dict[str, Any]]]:
        async def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            seen[name] = call.alone
            return {}

        return work

    async def first(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
        seen["first"] = call.alone
        first_in.set()
        await let_go.wait()
        return {}

    def in_a_thread(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
        seen["thread"] = call.alone
        thread_in.set()
        thread_go.wait(10)
        return {}

    async def serve(work: Callable[[Call, Repository, Session], Awaitable[dict[str, Any]]]) -> bool:
        result = await door.serve_soon(None, context, "append_event", ONLY_SENTINEL, work)
        return not result.is_error

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(serve, first)
            await first_in.wait()
            assert await serve(noting("beside the first"))
            let_go.set()
        refused = await door.serve_soon(None, {}, "append_event", ONLY_SENTINEL, noting("never"))
        assert refused.is_error
        assert await serve(noting("after a refusal"))
        worker = threading.Thread(
            target=door.serve, args=(None, context, "append_event", ONLY_SENTINEL, in_a_thread)
        )
        worker.start()
        await anyio.to_thread.run_sync(thread_in.wait, 10)
        assert await serve(noting("beside a thread"))
        thread_go.set()
        await anyio.to_thread.run_sync(worker.join)
        assert await serve(noting("last"))
        transport_idle[0] = False  # the transport has another request for us
        assert await serve(noting("the transport is not idle"))

    try:
        anyio.run(main)
    finally:
        door.close()
    assert seen == {
        "first": True,
        "beside the first": False,
        "after a refusal": True,
        "thread": True,
        "beside a thread": False,
        "last": True,
        "the transport is not idle": False,
    }
    unseen = Door([])  # a transport that cannot tell (streamable HTTP): never alone
    assert unseen.transport_alone() is False


def test_the_stdio_transport_counts_requests_until_answered_or_cancelled() -> None:
    def parsed(**fields: Any) -> Any:
        return jsonrpc_message_adapter.validate_python({"jsonrpc": "2.0", **fields})

    unanswered = Unanswered()
    assert not unanswered.alone()  # not following a transport: it cannot tell
    unanswered.following = True
    assert unanswered.alone()
    unanswered.read(parsed(id=1, method="tools/call", params={"name": "x"}))
    assert unanswered.alone()  # the one being served
    unanswered.read(parsed(id="two", method="tools/list"))
    assert not unanswered.alone()
    unanswered.written(parsed(id=1, result={}))
    assert unanswered.alone()
    unanswered.read(parsed(id=3, method="tools/list"))
    unanswered.read(parsed(method="notifications/cancelled", params={"requestId": 3}))
    unanswered.read(parsed(method="notifications/initialized"))
    assert unanswered.alone()  # a cancelled request gets no answer to wait for
    unanswered.written(parsed(id="two", error={"code": -32601, "message": "no"}))
    unanswered.written(parsed(id=9, method="ping"))  # the server's own request
    assert unanswered.alone()

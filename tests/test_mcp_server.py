"""The MCP server through a real client: the door every call passes, sessions, the
engine tools, and both transports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp_types import Tool

from mcp_helpers import (
    SCRIBE,
    agent_context,
    answer,
    free_port,
    http_server,
    http_session,
    make_repo,
    stdio_session,
)
from scribe.journal import Query, SqliteJournal


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def run(body: Any) -> Any:
    return anyio.run(body)


def test_every_tool_publishes_a_real_input_schema(repo: Path) -> None:
    async def body() -> list[Tool]:
        async with stdio_session(repo) as session:
            return (await session.list_tools()).tools

    tools = run(body)
    assert {"list_rules", "plan_file", "run_rules"} <= {t.name for t in tools}
    for tool in tools:
        schema = tool.input_schema
        assert schema["type"] == "object"
        assert "context" in schema["required"], tool.name
        context = schema["properties"]["context"]
        assert context["additionalProperties"] is False
        assert {"repo_root", "mode", "execution_id", "agent_identity", "intent"} <= set(
            context["required"]
        )
        assert "$ref" not in json.dumps(context)  # self-contained: clients need not resolve
        assert tool.description


def test_a_bad_context_is_refused_field_by_field_before_the_tool_runs(repo: Path) -> None:
    context = agent_context(repo)
    del context["intent"]
    context["agent_identity"] = {"id": "a b"}  # bad id, no instance_id
    context["timestamp_utc"] = "2026-12-01T10:00:00+02:00"

    async def body() -> tuple[bool, dict[str, Any]]:
        async with stdio_session(repo) as session:
            return answer(
                await session.call_tool("run_rules", {"context": context, "path": "notes/a.md"})
            )

    is_error, result = run(body)
    assert is_error
    assert result["error"] == "invalid_context"
    fields = {f["field"] for f in result["fields"]}
    assert fields == {"intent", "agent_identity.id", "agent_identity.instance_id", "timestamp_utc"}
    assert "modified:" not in (repo / "notes" / "a.md").read_text()  # the tool never ran


@pytest.mark.parametrize(
    ("root", "problem"),
    [
        ("relative/path", "must be an absolute path"),
        ("/", "is not a repository this server serves"),
    ],
)
def test_repo_root_must_be_a_root_the_server_serves(repo: Path, root: str, problem: str) -> None:
    async def body() -> tuple[bool, dict[str, Any]]:
        async with stdio_session(repo) as session:
            context = agent_context(repo, repo_root=root)
            return answer(await session.call_tool("list_rules", {"context": context}))

    is_error, result = run(body)
    assert is_error
    [field] = result["fields"]
    assert field["field"] == "repo_root"
    assert problem in field["problem"]


def test_a_sibling_sharing_the_roots_prefix_is_not_the_root(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    evil = make_repo(tmp_path / "repo-evil")

    async def body() -> tuple[bool, dict[str, Any]]:
        async with stdio_session(repo) as session:
            context = agent_context(repo, repo_root=str(evil))
            return answer(await session.call_tool("list_rules", {"context": context}))

    is_error, result = run(body)
    assert is_error
    assert result["error"] == "invalid_context"


def test_project_tools_fail_in_sentinel_mode(repo: Path) -> None:
    async def body() -> tuple[bool, dict[str, Any]]:
        async with stdio_session(repo) as session:
            context = agent_context(repo, mode="sentinel")
            return answer(
                await session.call_tool("plan_file", {"context": context, "path": "notes/a.md"})
            )

    is_error, result = run(body)
    assert is_error
    assert result["error"] == "wrong_mode"
    assert "project-mode tool" in result["message"]


def test_plan_file_shows_the_diff_and_run_rules_writes_and_journals(repo: Path) -> None:
    note = repo / "notes" / "a.md"
    before = note.read_bytes()

    async def body() -> tuple[dict[str, Any], dict[str, Any], bytes]:
        async with stdio_session(repo) as session:
            context = agent_context(repo)
            _, planned = answer(
                await session.call_tool("plan_file", {"context": context, "path": "notes/a.md"})
            )
            untouched = note.read_bytes()
            _, ran = answer(
                await session.call_tool("run_rules", {"context": context, "path": "notes/a.md"})
            )
            return planned, ran, untouched

    planned, ran, untouched = run(body)
    assert planned["status"] == "planned"
    assert "+modified: " in planned["diff"]
    assert untouched == before  # planning wrote nothing
    assert ran["status"] == "written"
    assert "modified: " in note.read_text()
    with SqliteJournal.for_root(repo) as journal:
        written = journal.get(ran["seq"])
    assert written is not None
    assert written.kind == "file.written"
    assert written.path == "notes/a.md"


def test_engine_tools_tell_the_effects_and_findings_and_follow_raised_events(
    repo: Path,
) -> None:
    (repo / ".scribe" / "rules.yaml").write_text(
        "rules:\n"
        "  - id: check\n    paths: ['notes/*.md']\n"
        "    do:\n      - check_links: {}\n      - emit: {event: checked}\n"
        "  - id: mark\n    on: [{event: checked}]\n"
        "    do:\n      - set: {field: checked, value: 'true'}\n"
    )
    (repo / "notes" / "a.md").write_text("see [[Nowhere]]\n")

    async def body() -> tuple[dict[str, Any], dict[str, Any]]:
        async with stdio_session(repo) as session:
            context = agent_context(repo)
            arguments = {"context": context, "path": "notes/a.md"}
            _, planned = answer(await session.call_tool("plan_file", arguments))
            _, ran = answer(await session.call_tool("run_rules", arguments))
            return planned, ran

    planned, ran = run(body)
    assert planned["effects"] == ["check would emit checked on notes/a.md"]
    assert [(f["code"], f["line"]) for f in planned["findings"]] == [("broken_link", 1)]
    assert (repo / "notes" / "a.md").read_text() == "---\nchecked: true\n---\nsee [[Nowhere]]\n"
    assert [f["code"] for f in ran["findings"]] == ["broken_link"]
    (chained,) = ran["chained"]
    assert (chained["status"], chained["rules"]) == ("written", ["mark"])


def test_engine_tools_obey_the_read_confinement(repo: Path) -> None:
    (repo / ".env").write_text("TOKEN=secret\n")
    (repo / ".scribe" / "rules.yaml").write_text(
        "rules:\n  - id: all\n    on: [modified]\n    paths: ['**']\n"
        "    do:\n      - append: {text: 'x'}\n"
    )

    async def body() -> list[tuple[bool, dict[str, Any]]]:
        async with stdio_session(repo) as session:
            return [
                answer(
                    await session.call_tool(tool, {"context": agent_context(repo), "path": ".env"})
                )
                for tool in ("plan_file", "run_rules")
            ]

    for is_error, result in run(body):
        assert is_error
        assert result["error"] == "scope_violation"
        assert "secret" not in json.dumps(result)
    assert (repo / ".env").read_text() == "TOKEN=secret\n"


def test_list_rules_reports_an_invalid_rules_file_with_its_location(repo: Path) -> None:
    (repo / ".scribe" / "rules.yaml").write_text("rules:\n  - id: x\n    onn: [created]\n")

    async def body() -> tuple[bool, dict[str, Any]]:
        async with stdio_session(repo) as session:
            return answer(await session.call_tool("list_rules", {"context": agent_context(repo)}))

    is_error, result = run(body)
    assert is_error
    assert result["error"] == "invalid_argument"
    assert any(".scribe/rules.yaml:3" in problem for problem in result["problems"])


def test_stdout_carries_nothing_but_protocol_messages(repo: Path) -> None:
    """Raw JSON-RPC over the pipes: every stdout line is a protocol message, even
    when calls fail and the server logs."""
    context = agent_context(repo)
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_rules", "arguments": {"context": context, "path": "notes/a.md"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "run_rules", "arguments": {"context": {}, "path": "x"}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "no_such_tool", "arguments": {}}},
        "this is not json",
    ]  # fmt: skip
    process = subprocess.Popen(
        [SCRIBE, "mcp", str(repo), "--log-level", "debug"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        for request in requests:
            process.stdin.write(
                (request if isinstance(request, str) else json.dumps(request)) + "\n"
            )
        process.stdin.flush()
        messages: list[dict[str, Any]] = []
        replies: dict[int, dict[str, Any]] = {}
        while not {1, 2, 3, 4} <= set(replies):
            line = process.stdout.readline()
            assert line, "the server closed stdout before answering every request"
            message = json.loads(line)  # any stray output fails here
            messages.append(message)
            if message.get("id") is not None:
                replies[message["id"]] = message
        process.stdin.close()
        rest = process.stdout.read()
        process.wait(30)
    finally:
        process.kill()
        process.wait()
    messages += [json.loads(line) for line in rest.splitlines() if line.strip()]
    assert all(m.get("jsonrpc") == "2.0" for m in messages)
    assert process.stderr is not None
    logged = [json.loads(line) for line in process.stderr.read().splitlines()]
    calls = [line for line in logged if line["event"] == "tool call"]
    assert sorted(c["result"] for c in calls) == ["invalid_context", "ok"]  # on stderr
    assert replies[2]["result"]["isError"] is False
    assert replies[3]["result"]["isError"] is True


def test_http_needs_a_token_beyond_loopback(repo: Path) -> None:
    done = subprocess.run(
        [SCRIBE, "mcp", str(repo), "--http", f"0.0.0.0:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "SCRIBE_MCP_TOKEN"},
        check=False,
    )
    assert done.returncode == 1
    assert "SCRIBE_MCP_TOKEN" in done.stderr


def test_http_with_a_token_refuses_clients_without_it(repo: Path) -> None:
    token = "s3cret-token-for-tests"
    with http_server(repo, env={"SCRIBE_MCP_TOKEN": token}) as (url, _):
        refused = httpx2.post(
            url, json={}, headers={"Accept": "application/json, text/event-stream"}
        )
        wrong = httpx2.post(url, json={}, headers={"Authorization": "Bearer nope"})

        async def body() -> tuple[bool, dict[str, Any]]:
            async with http_session(url, token) as session:
                return answer(
                    await session.call_tool("list_rules", {"context": agent_context(repo)})
                )

        is_error, result = run(body)
    assert refused.status_code == 401
    assert wrong.status_code == 401
    assert not is_error
    assert [rule["id"] for rule in result["rules"]] == ["stamp"]


def test_http_without_a_token_on_loopback_serves_and_rejects_a_foreign_host(repo: Path) -> None:
    with http_server(repo, env={"SCRIBE_MCP_TOKEN": ""}) as (url, _):

        async def body() -> tuple[bool, dict[str, Any]]:
            async with http_session(url) as session:
                return answer(
                    await session.call_tool("list_rules", {"context": agent_context(repo)})
                )

        is_error, _ = run(body)
        rebound = httpx2.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Host": "evil.example:80", "Accept": "application/json, text/event-stream"},
        )
    assert not is_error
    assert rebound.status_code == 421  # DNS rebinding: a page's Host is not ours


def test_http_appends_accept_a_client_idempotency_id(repo: Path) -> None:
    with http_server(repo, env={"SCRIBE_MCP_TOKEN": ""}) as (url, _):

        async def body() -> list[tuple[bool, dict[str, Any]]]:
            async with http_session(url) as session:
                arguments = {
                    "context": agent_context(repo, mode="sentinel"),
                    "event_type": "deploy",
                    "message": "shipped",
                    "idempotency_key": "retry-me",
                }
                return [
                    answer(await session.call_tool("append_event", arguments)) for _ in range(2)
                ]

        (first_error, first), (again_error, again) = run(body)
    assert not first_error
    assert not again_error
    assert again["seq"] == first["seq"]
    assert again["replayed"] is True
    with SqliteJournal.for_root(repo) as journal:
        assert len(journal.query(Query(kinds=["agent.event"]))) == 1


def test_sigterm_closes_the_server_cleanly_and_flushes_what_it_holds(repo: Path) -> None:
    """A stopped server writes what it kept for later: execution summaries are written
    at most once a second while calls come, and at close."""
    import signal
    import time

    process = subprocess.Popen(
        [SCRIBE, "mcp", str(repo)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    context = agent_context(repo, mode="sentinel", execution_id="run-9")
    requests: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]  # fmt: skip
    requests += [
        {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {
            "name": "append_event",
            "arguments": {"context": context, "event_type": "tick", "message": f"t{n}"}}}
        for n in range(1, 6)
    ]  # fmt: skip
    try:
        for request in requests:
            process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        answered = 0
        while answered < 6:  # initialize and the five appends
            if "id" in json.loads(process.stdout.readline()):
                answered += 1
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert time.monotonic() - started < 10
    finally:
        process.kill()
        process.wait()
    [summary] = (repo / ".scribe" / "sentinel").glob("*/executions/exec-run-9.json")
    assert json.loads(summary.read_text())["calls"] == 5


def test_a_line_too_long_to_be_a_message_is_refused_and_the_server_goes_on(repo: Path) -> None:
    from scribe.mcp.stdio import LINE_LIMIT

    process = subprocess.Popen(
        [SCRIBE, "mcp", str(repo)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}}  # fmt: skip
    try:
        process.stdin.write(b"x" * (LINE_LIMIT + 1024) + b"\n")
        process.stdin.write(json.dumps(initialize).encode() + b"\n")
        process.stdin.flush()
        replies: list[dict[str, Any]] = []
        while not any(r.get("id") == 1 for r in replies):
            line = process.stdout.readline()
            assert line, "the server stopped"
            replies.append(json.loads(line))
    finally:
        process.kill()
        process.wait()
    assert replies[-1]["result"]["serverInfo"]["name"] == "scribe"


def test_http_on_every_interface_answers_clients_by_address_with_the_token(repo: Path) -> None:
    token = "wildcard-token"
    with http_server(repo, host="0.0.0.0", env={"SCRIBE_MCP_TOKEN": token}) as (url, _):
        local = url.replace("0.0.0.0", "127.0.0.1")

        async def body() -> tuple[bool, dict[str, Any]]:
            async with http_session(local, token) as session:
                return answer(
                    await session.call_tool("list_rules", {"context": agent_context(repo)})
                )

        is_error, result = run(body)
    assert not is_error, result  # the Host 127.0.0.1:PORT is not the bind address, yet fine


def test_http_allowed_hosts_refuse_every_other_name(repo: Path) -> None:
    token = "named-token"
    (repo / "scribe.yaml").write_text('mcp_allowed_hosts: ["scribe.test"]\n')
    with http_server(repo, host="0.0.0.0", env={"SCRIBE_MCP_TOKEN": token}) as (url, _):
        local = url.replace("0.0.0.0", "127.0.0.1")
        port = local.split(":")[2].split("/")[0]
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
        }
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        other = httpx2.post(local, json=ping, headers=headers)
        named = httpx2.post(local, json=ping, headers={**headers, "Host": f"scribe.test:{port}"})
    assert other.status_code == 421
    assert named.status_code != 421


_TRACED_SERVER = """
import json
import sys
from pathlib import Path

import anyio
from mcp import Client
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()  # as opentelemetry-instrument does, before the server is built
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from scribe.mcp.server import build_server

app, _ = build_server([Path(sys.argv[1])])


async def main() -> None:
    async with Client(app) as client:
        await client.list_tools()


anyio.run(main)
print(json.dumps(sorted({span.name for span in exporter.get_finished_spans()})))
"""


def test_the_sdks_request_spans_reach_a_tracer_provider_installed_before_the_server(
    repo: Path, tmp_path: Path
) -> None:
    """Scribe drops the SDK's tracing middleware only when no provider could receive it."""
    script = tmp_path / "traced_server.py"
    script.write_text(_TRACED_SERVER, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(repo)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "tools/list" in json.loads(done.stdout.strip().splitlines()[-1])


def test_the_server_loads_the_engine_only_for_the_rule_tools() -> None:
    # Memory is part of the server's budget (the benchmark holds it to 100 MB): the
    # engine, its actions and their template and regex engines stay out of a server
    # until an agent asks for the rules.
    probe = (
        "import sys\n"
        "import scribe.cli, scribe.mcp.server\n"
        "heavy = ['jinja2', 'scribe.actions', 'scribe.engine', 'scribe.plan', 'scribe.notes']\n"
        "print([name for name in heavy if name in sys.modules])\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"

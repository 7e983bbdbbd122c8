"""read_file through a real client, `scribe read`, and what each mode exposes."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession

from mcp_helpers import SCRIBE, agent_context, call, make_repo, stdio_session
from scribe.journal import Query, SqliteJournal
from test_mcp_paths import ESCAPES, make_escape_repo

SENTINEL_TOOLS = {
    "append_event",
    "open_bug",
    "open_security",
    "link_fix",
    "read_file",
    "query_entries",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo")
    (root / "scribe.yaml").write_text("mcp_chunk_bytes: 1024\n")
    return root


def test_read_file_answers_with_the_scan_and_journals_provenance_not_content(repo: Path) -> None:
    secret = "the body is private text"
    (repo / "notes" / "b.md").write_text(f"line one\r\n{secret}\r\n")

    async def body() -> dict[str, Any]:
        async with stdio_session(repo) as session:
            is_error, result = await call(
                session, "read_file", context=agent_context(repo), path="notes/b.md", mode="line_range",
                start_line=2, end_line=2,
            )  # fmt: skip
            assert not is_error, result
            return result

    result = anyio.run(body)
    assert result["file"]["newline"] == "CRLF"
    assert result["lines"] == [secret]
    with SqliteJournal.for_root(repo) as journal:
        [read] = journal.query(Query(kinds=["file.read"]))
    assert read.path == "notes/b.md"
    assert (
        read.payload["sha256"] == hashlib.sha256((repo / "notes" / "b.md").read_bytes()).hexdigest()
    )
    assert read.payload["execution_id"] == "exec-1"
    assert secret not in json.dumps(read.payload) + read.message
    logs = "".join(p.read_text() for p in (repo / ".scribe" / "log").rglob("*") if p.is_file())
    assert secret not in logs


DENIED = [
    ".env",
    ".ENV.local",
    "notes/../../outside.md",
    "/etc/passwd",
    ".git/config",
    ".scribe/registry/projects.json",
]


def test_denied_reads_are_refused_and_journaled_as_scope_violations(repo: Path) -> None:
    (repo / ".env").write_text("TOKEN=1\n")
    (repo / ".git").mkdir()
    (repo / ".git" / "config").write_text("[core]\n")

    async def body() -> list[tuple[bool, dict[str, Any]]]:
        async with stdio_session(repo) as session:
            return [
                await call(
                    session, "read_file", context=agent_context(repo), path=path, mode="scan_only"
                )
                for path in DENIED
            ]

    for path, (is_error, result) in zip(DENIED, anyio.run(body), strict=True):
        assert is_error, path
        assert result["error"] == "scope_violation", path
    with SqliteJournal.for_root(repo) as journal:
        violations = journal.query(Query(kinds=["scope.violation"], newest_first=False))
    assert [v.payload["tool"] for v in violations] == ["read_file"] * len(DENIED)
    assert [v.path for v in violations] == DENIED


def test_full_stream_pages_give_back_the_whole_file_exactly(repo: Path) -> None:
    data = "".join(f"line {i} ünïcode €\n" for i in range(60_000)).encode()
    (repo / "big.txt").write_bytes(data)

    async def body() -> tuple[bytes, int]:
        async with stdio_session(repo) as session:
            got, pages, cursor = b"", 0, None
            while True:
                arguments: dict[str, Any] = {
                    "context": agent_context(repo),
                    "path": "big.txt",
                    "mode": "full_stream",
                }
                if cursor is not None:
                    arguments["cursor"] = cursor
                is_error, page = await call(session, "read_file", **arguments)
                assert not is_error, page
                got += b"".join(chunk["text"].encode() for chunk in page["chunks"])
                pages += 1
                cursor = page["next_cursor"]
                if cursor is None:
                    return got, pages

    got, pages = anyio.run(body)
    assert got == data
    assert pages > 1  # the file is larger than one page: it came in pieces, none cut


def test_a_slow_search_does_not_hold_up_other_calls(repo: Path) -> None:
    (repo / "slow.txt").write_text("a" * 5000 + "!\n")
    order: list[str] = []

    async def slow(session: ClientSession) -> None:
        is_error, result = await call(
            session, "read_file", context=agent_context(repo), path="slow.txt", mode="search",
            pattern="(a+)+$", regex=True, timeout_s=3,
        )  # fmt: skip
        assert is_error
        assert result["error"] == "timeout"
        order.append("slow")

    async def quick(session: ClientSession) -> None:
        await anyio.sleep(0.3)
        is_error, _ = await call(
            session, "read_file", context=agent_context(repo), path="notes/a.md", mode="scan_only"
        )
        assert not is_error
        order.append("quick")

    async def body() -> None:
        async with stdio_session(repo) as session, anyio.create_task_group() as group:
            group.start_soon(slow, session)
            group.start_soon(quick, session)

    anyio.run(body)
    assert order == ["quick", "slow"]


def test_two_slow_calls_run_at_once(repo: Path) -> None:
    """The longer search started first and the shorter second: the shorter ends first
    only if both run at the same time (one after the other, it could not)."""
    (repo / "slow.txt").write_text("a" * 5000 + "!\n")
    order: list[float] = []

    async def slow(session: ClientSession, budget: float, delay: float) -> None:
        await anyio.sleep(delay)
        is_error, result = await call(
            session, "read_file", context=agent_context(repo), path="slow.txt", mode="search",
            pattern="(a+)+$", regex=True, timeout_s=budget,
        )  # fmt: skip
        assert is_error
        assert result["error"] == "timeout"
        order.append(budget)

    async def body() -> None:
        async with stdio_session(repo) as session, anyio.create_task_group() as group:
            group.start_soon(slow, session, 3.0, 0.0)
            group.start_soon(slow, session, 1.0, 0.3)

    anyio.run(body)
    assert order == [1.0, 3.0]


def placeholders(schema: dict[str, Any]) -> dict[str, Any]:
    """A value of the right type for each required argument, so that a call gets
    past the schema to the server's own checks."""
    values: dict[str, Any] = {}
    for name in schema.get("required", []):
        spec = schema["properties"][name]
        if "enum" in spec:
            values[name] = spec["enum"][0]
            continue
        kind = spec.get("type", "string")
        values[name] = {"integer": 1, "boolean": False, "array": [], "object": {}}.get(kind, "x")
    return values


def test_sentinel_mode_exposes_exactly_its_six_tools(repo: Path) -> None:
    async def body() -> set[str]:
        async with stdio_session(repo) as session:
            tools = (await session.list_tools()).tools
            allowed = set()
            for tool in tools:
                arguments = placeholders(tool.input_schema)
                arguments["context"] = agent_context(repo, mode="sentinel")
                _, result = await call(session, tool.name, **arguments)
                assert result.get("error") != "rejected by the schema", (tool.name, result)
                if result.get("error") != "wrong_mode":
                    allowed.add(tool.name)
            return allowed

    assert anyio.run(body) == SENTINEL_TOOLS


def test_scribe_read_prints_json_lines_and_refuses_denied_paths(repo: Path) -> None:
    done = subprocess.run(
        [SCRIBE, "read", "notes/a.md", "--mode", "search", "--pattern", "title", "--root", str(repo)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    result = json.loads(line)
    assert result["matches"][0]["text"] == "title: A"
    (repo / ".envrc").write_text("export X=1\n")
    denied = subprocess.run(
        [SCRIBE, "read", ".envrc", "--root", str(repo)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert denied.returncode == 1
    assert "scope_violation" in denied.stderr
    with SqliteJournal.for_root(repo) as journal:
        [read] = journal.query(Query(kinds=["file.read"]))
    assert read.actor == "user"


def test_the_whole_escape_suite_is_refused_through_the_server(tmp_path: Path) -> None:
    """Every case of the confinement suite, sent by a real client to a server whose
    repository adds its own denylist in scribe.yaml; each refusal is journaled."""
    root = make_escape_repo(tmp_path)
    (root / "scribe.yaml").write_text('mcp_deny: ["secrets/", "*.pem"]\n')
    cases = [(given.format(root=root, tmp=root.parent), reason) for given, reason in ESCAPES]

    async def body() -> list[tuple[bool, dict[str, Any]]]:
        async with stdio_session(root) as session:
            context = agent_context(root)
            return [
                await call(session, "read_file", context=context, path=given, mode="scan_only")
                for given, _ in cases
            ]

    results = anyio.run(body)
    for (given, reason), (is_error, result) in zip(cases, results, strict=True):
        assert is_error, given
        assert result["error"] == "scope_violation", (given, result)
        assert result["reason"] == reason, (given, result)
    with SqliteJournal.for_root(root) as journal:
        violations = journal.query(Query(kinds=["scope.violation"]))
    assert len(violations) == len(cases)

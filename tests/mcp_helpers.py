"""Helpers for the MCP tests: execution contexts, and a real ``scribe mcp`` process
driven by the SDK's own client over stdio or streamable HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from scribe.mcp.context import Call, parse_context

SCRIBE = str(Path(sys.executable).with_name("scribe"))

RULES = """\
rules:
  - id: stamp
    on: [created, modified]
    paths: ["**/*.md"]
    do:
      - set: {field: modified, value: "{{ now('%Y-%m-%d') }}"}
"""


def make_repo(root: Path) -> Path:
    (root / ".scribe").mkdir(parents=True, exist_ok=True)
    (root / ".scribe" / "rules.yaml").write_text(RULES, encoding="utf-8")
    (root / "notes").mkdir(exist_ok=True)
    (root / "notes" / "a.md").write_text("---\ntitle: A\n---\nbody\n", encoding="utf-8")
    return root


def agent_context(root: Path, mode: str = "project", **overrides: Any) -> dict[str, Any]:
    """A complete, valid execution context for ``root``; ``overrides`` replace fields."""
    context: dict[str, Any] = {
        "repo_root": str(root),
        "mode": mode,
        "execution_id": "exec-1",
        "agent_identity": {"id": "test-agent", "instance_id": "inst-1", "model": "m-1"},
        "intent": "exercise the server",
        "timestamp_utc": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "affected_dev_projects": [],
    }
    context.update(overrides)
    return context


def make_call(root: Path, session: str = "session-1", **overrides: Any) -> Call:
    """A validated ``Call`` for the tool logic modules, without a server: the
    context is ``agent_context(root, **overrides)``."""
    context, resolved = parse_context(agent_context(root, **overrides), [root])
    return Call(context, resolved, session)


def answer(result: CallToolResult) -> tuple[bool, dict[str, Any]]:
    """A tool result as (is_error, the JSON its text holds). Arguments the published
    schema refuses never reach Scribe: their plain-text error becomes
    ``{"error": "rejected by the schema"}``."""
    block = result.content[0]
    assert isinstance(block, TextContent)
    if result.is_error and not block.text.startswith("{"):
        return True, {"error": "rejected by the schema", "message": block.text}
    return bool(result.is_error), json.loads(block.text)


async def call(session: ClientSession, tool: str, **arguments: Any) -> tuple[bool, dict[str, Any]]:
    """Call ``tool``: (is_error, its JSON answer)."""
    return answer(await session.call_tool(tool, arguments))


@contextlib.asynccontextmanager
async def stdio_session(
    *roots: Path, env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """An initialised client session with ``scribe mcp ROOTS`` as a subprocess."""
    params = StdioServerParameters(
        command=SCRIBE, args=["mcp", *map(str, roots)], env=env, cwd=str(roots[0])
    )
    with open(os.devnull, "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def http_server(
    root: Path, host: str = "127.0.0.1", env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``scribe mcp --http`` on a free port: its URL once it answers, and the process."""
    port = free_port()
    process = subprocess.Popen(
        [SCRIBE, "mcp", str(root), "--http", f"{host}:{port}"],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://{host}:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"scribe mcp --http exited: {process.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                with socket.create_connection((host, port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("scribe mcp --http did not start listening") from None
                time.sleep(0.05)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def http_session(url: str, token: str | None = None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session

"""``scribe mcp --http`` over HTTPS with client certificates: a real server process,
driven by the SDK's client, answers agents holding a certificate our CA signed and
refuses every other connection."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from cli_helpers import scribe
from mcp_helpers import SCRIBE, agent_context, answer, free_port, make_repo
from scribe.certs import DevCerts
from test_tls import certs, client_context, mutual, stranger

__all__ = ["certs", "stranger"]  # the session fixtures, shared with test_tls

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "tls-test", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def served(certs: DevCerts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """``scribe mcp --http`` on a free port, with mutual TLS in its scribe.yaml: the
    repository and the https URL once the port accepts connections."""
    repo = make_repo(tmp_path_factory.mktemp("mcp-tls") / "repo")
    (repo / "scribe.yaml").write_text(json.dumps(mutual(certs).model_dump(exclude_unset=True)))
    port = free_port()
    process = subprocess.Popen(
        [SCRIBE, "mcp", str(repo), "--http", f"127.0.0.1:{port}"],
        env={**os.environ, "SCRIBE_MCP_TOKEN": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"scribe mcp --http exited: {process.stderr!r}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("scribe mcp --http did not start listening") from None
                time.sleep(0.05)
        yield repo, f"https://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def tls_session(url: str, verify: Any) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(verify=verify, timeout=30) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def test_an_agent_with_a_client_certificate_uses_the_tools(
    served: tuple[Path, str], certs: DevCerts
) -> None:
    repo, url = served

    async def body() -> tuple[bool, dict[str, Any]]:
        async with tls_session(url, client_context(certs.ca, certs)) as session:
            result = await session.call_tool("list_rules", {"context": agent_context(repo)})
            return answer(result)

    is_error, result = anyio.run(body)
    assert not is_error
    assert [rule["id"] for rule in result["rules"]] == ["stamp"]


def post(url: str, verify: Any) -> httpx2.Response:
    return httpx2.post(url, json=INITIALIZE, headers=ACCEPT, verify=verify, timeout=10)


def test_a_client_without_a_certificate_is_refused(
    served: tuple[Path, str], certs: DevCerts
) -> None:
    _, url = served
    with pytest.raises(httpx2.TransportError):
        post(url, client_context(certs.ca))
    assert post(url, client_context(certs.ca, certs)).status_code == 200


def test_a_certificate_from_another_ca_is_refused(
    served: tuple[Path, str], certs: DevCerts, stranger: DevCerts
) -> None:
    _, url = served
    with pytest.raises(httpx2.TransportError):
        post(url, client_context(certs.ca, stranger))
    assert post(url, client_context(certs.ca, certs)).status_code == 200


def test_plain_http_to_the_https_port_gets_no_answer(
    served: tuple[Path, str], certs: DevCerts
) -> None:
    _, url = served
    with pytest.raises(httpx2.TransportError):
        post(url.replace("https://", "http://"), False)
    assert post(url, client_context(certs.ca, certs)).status_code == 200


def test_a_key_that_does_not_match_stops_the_server_with_a_clear_error(
    certs: DevCerts, stranger: DevCerts, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    settings = {"tls_cert": str(certs.server_cert), "tls_key": str(stranger.server_key)}
    (repo / "scribe.yaml").write_text(json.dumps(settings))
    done = scribe("mcp", str(repo), "--http", f"127.0.0.1:{free_port()}", cwd=repo)
    assert done.returncode == 2, done.stderr
    assert f"tls_key: is not the key of the certificate {certs.server_cert}" in done.stderr
    assert "Traceback" not in done.stderr

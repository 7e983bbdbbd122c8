"""The operations endpoints, served for real on 127.0.0.1 and asked over HTTP."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scribe import __version__
from scribe.config import load_settings
from scribe.errors import ConfigError, ScribeError
from scribe.observe import metrics
from scribe.observe.server import OpsServer, parse_listen


def ready_always() -> list[str]:
    return []


def small_status() -> dict[str, Any]:
    return {"rules": 2, "queue": 0}


@pytest.fixture
def serve() -> Iterator[Callable[..., OpsServer]]:
    """Start servers on a free port of 127.0.0.1; all are closed after the test."""
    started: list[OpsServer] = []

    def start(
        ready: Callable[[], list[str]] = ready_always,
        status: Callable[[], dict[str, Any]] = small_status,
        token: str | None = None,
    ) -> OpsServer:
        server = OpsServer("127.0.0.1:0", ready=ready, status=status, token=token)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.close()


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    @property
    def text(self) -> str:
        return self.body.decode()


def request(
    server: OpsServer, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> Reply:
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        return Reply(connection.getresponse())
    finally:
        connection.close()


def test_healthz_says_ok(serve: Callable[..., OpsServer]) -> None:
    reply = request(serve(), "/healthz")
    assert (reply.status, reply.text) == (200, "ok\n")
    assert reply.headers["Content-Type"].startswith("text/plain")


def test_head_answers_without_a_body(serve: Callable[..., OpsServer]) -> None:
    reply = request(serve(), "/healthz", method="HEAD")
    assert (reply.status, reply.body) == (200, b"")


def test_readyz_when_ready(serve: Callable[..., OpsServer]) -> None:
    reply = request(serve(), "/readyz")
    assert (reply.status, reply.text) == (200, "ready\n")


def test_readyz_when_not_ready_lists_the_reasons(serve: Callable[..., OpsServer]) -> None:
    reasons = ["the watcher has not started", "recovery is running"]
    reply = request(serve(ready=lambda: reasons), "/readyz")
    assert reply.status == 503
    assert reply.text == "the watcher has not started\nrecovery is running\n"
    assert reply.headers["Content-Type"].startswith("text/plain")


def test_status_is_json(serve: Callable[..., OpsServer]) -> None:
    reply = request(serve(), "/status")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert json.loads(reply.body) == {"rules": 2, "queue": 0}


def test_status_with_a_token_needs_it(serve: Callable[..., OpsServer]) -> None:
    server = serve(token="s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        reply = request(server, "/status", headers=headers)
        assert reply.status == 401, headers
        assert reply.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in reply.text
        assert b"rules" not in reply.body

    reply = request(server, "/status", headers={"Authorization": "Bearer s3cret"})
    assert reply.status == 200
    assert json.loads(reply.body) == {"rules": 2, "queue": 0}


def test_a_token_leaves_probes_and_metrics_open(serve: Callable[..., OpsServer]) -> None:
    server = serve(token="s3cret")
    assert [request(server, path).status for path in ("/metrics", "/healthz", "/readyz")] == [
        200,
        200,
        200,
    ]


def test_metrics_show_scribe_and_process_metrics(serve: Callable[..., OpsServer]) -> None:
    metrics.REWRITES.labels(rule="ops-server-metrics").inc()
    reply = request(serve(), "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'scribe_rewrites_total{rule="ops-server-metrics"} 1.0\n' in reply.text
    assert "\nprocess_resident_memory_bytes " in reply.text
    assert f'scribe_build_info{{version="{__version__}"}} 1.0\n' in reply.text
    assert "# HELP scribe_breaker_state State of each rule's circuit breaker: 0 closed" in (
        reply.text
    )
    assert "# EOF" not in reply.text


def test_metrics_count_what_happens_between_scrapes(serve: Callable[..., OpsServer]) -> None:
    server = serve()
    metrics.REWRITES.labels(rule="ops-server-delta").inc()
    first = request(server, "/metrics").text
    metrics.REWRITES.labels(rule="ops-server-delta").inc(2)
    second = request(server, "/metrics").text
    assert 'scribe_rewrites_total{rule="ops-server-delta"} 1.0\n' in first
    assert 'scribe_rewrites_total{rule="ops-server-delta"} 3.0\n' in second


def test_metrics_in_openmetrics_when_asked(serve: Callable[..., OpsServer]) -> None:
    metrics.REWRITES.labels(rule="ops-server-openmetrics").inc()
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    reply = request(serve(), "/metrics", headers={"Accept": accept})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
    assert 'scribe_rewrites_total{rule="ops-server-openmetrics"} 1.0\n' in reply.text
    assert reply.text.endswith("# EOF\n")


def test_unknown_path_is_404_listing_the_endpoints(serve: Callable[..., OpsServer]) -> None:
    reply = request(serve(), "/nope")
    assert reply.status == 404
    assert reply.text == "not found; the endpoints are /metrics, /healthz, /readyz, /status\n"


def test_a_failing_callback_gives_500_and_the_server_goes_on(
    serve: Callable[..., OpsServer],
) -> None:
    def status() -> dict[str, Any]:
        raise RuntimeError("the journal is closed")

    def ready() -> list[str]:
        raise OSError("state database locked")

    server = serve(ready=ready, status=status)
    reply = request(server, "/status")
    assert (reply.status, reply.text) == (
        500,
        "internal error: RuntimeError: the journal is closed\n",
    )
    reply = request(server, "/readyz")
    assert (reply.status, reply.text) == (500, "internal error: OSError: state database locked\n")
    assert request(server, "/healthz").status == 200


def test_requests_are_not_logged_to_stderr(
    serve: Callable[..., OpsServer],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="scribe"):
        request(serve(), "/healthz")
        request(serve(), "/nope")
    assert capfd.readouterr().err == ""
    logged = [r.getMessage() for r in caplog.records if r.name == "scribe"]
    assert any('"GET /healthz HTTP/1.1" 200' in message for message in logged), logged


def test_binding_a_busy_address_says_how_to_choose_another() -> None:
    with OpsServer("127.0.0.1:0", ready=ready_always, status=small_status) as first:
        port = first.address[1]
        with pytest.raises(ScribeError) as raised:
            OpsServer(f"127.0.0.1:{port}", ready=ready_always, status=small_status)
    assert str(raised.value) == (
        f"cannot listen on 127.0.0.1:{port}: address already in use; "
        "choose another with --listen HOST:PORT, or --listen off"
    )


def test_close_releases_the_port_and_can_be_repeated() -> None:
    server = OpsServer("127.0.0.1:0", ready=ready_always, status=small_status)
    port = server.address[1]
    server.close()  # never started: must not wait for a serving loop
    server.close()
    with OpsServer(f"127.0.0.1:{port}", ready=ready_always, status=small_status) as again:
        assert request(again, "/healthz").status == 200
    again.close()
    with pytest.raises(ConnectionRefusedError):
        request(again, "/healthz")


def test_address_is_the_port_chosen() -> None:
    with OpsServer("127.0.0.1:0", ready=ready_always, status=small_status) as server:
        host, port = server.address
        assert host == "127.0.0.1"
        assert port > 0


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9469", ("127.0.0.1", 9469)),
        ("[::1]:9469", ("::1", 9469)),
        ("localhost:0", ("localhost", 0)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    "listen", ["9469", ":9469", "localhost:", "localhost:http", "127.0.0.1:65536", "::1:9469", ""]
)
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT") as raised:
        parse_listen(listen)
    assert str(raised.value) == (
        "expected HOST:PORT with a port from 0 to 65535, "
        f"like 127.0.0.1:9469 or [::1]:9469, or off; got {listen!r}"
    )


def test_a_bad_listen_setting_is_reported_where_it_was_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as flag:
        load_settings(tmp_path, listen="9469")
    assert str(flag.value).startswith("command line: --listen: expected HOST:PORT")
    (tmp_path / "scribe.yaml").write_text("workers: 2\nlisten: localhost\n")
    with pytest.raises(ConfigError) as file:
        load_settings(tmp_path)
    assert str(file.value).startswith("scribe.yaml:2:9: listen: expected HOST:PORT")
    (tmp_path / "scribe.yaml").write_text("listen: 'OFF'\n")
    assert load_settings(tmp_path).listen == "off"

"""The operations endpoints of ``scribe watch``: ``/metrics`` for Prometheus,
``/healthz`` and ``/readyz`` for probes, ``/status`` for people.

A stdlib ``ThreadingHTTPServer`` in a daemon thread: the endpoints are few and small,
and a framework would be a heavier dependency than everything they serve. Given a
TLS context (``scribe.tls``), it serves HTTPS, with client certificates if the
context asks for them.
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scribe.errors import ScribeError
from scribe.observe import metrics

if TYPE_CHECKING:
    from scribe.config import Settings

log = logging.getLogger("scribe")

ENDPOINTS = ("/metrics", "/healthz", "/readyz", "/status")
TEXT = "text/plain; charset=utf-8"


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets) as a host and a port; port 0 picks a
    free one. A value of another form raises ValueError saying what is expected (the
    settings validate ``listen`` with it, so the error names where it was set)."""
    host, sep, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:  # an IPv6 address without brackets: its port cannot be told apart
        host = ""
    if not (sep and host and port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueError(
            f"expected HOST:PORT with a port from 0 to 65535, like 127.0.0.1:9469 "
            f"or [::1]:9469, or off; got {listen!r}"
        )
    return host, int(port)


class OpsServer:
    """Serves the operations endpoints on ``listen`` (``HOST:PORT``).

    It binds at construction, so that a bad or busy address is reported before the
    watch begins; ``start`` serves in a daemon thread. ``ready`` returns why the
    process is not ready (nothing: ready) and ``status`` what ``/status`` shows;
    both are called from request threads. With a ``token``, ``/status`` needs
    ``Authorization: Bearer <token>``; the other endpoints stay open for Prometheus
    and probes. With ``tls``, every connection is TLS first.
    """

    def __init__(
        self,
        listen: str,
        *,
        ready: Callable[[], list[str]],
        status: Callable[[], dict[str, Any]],
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        host, port = parse_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._httpd = _HTTPServer((host, port), family, ready, status, token, tls)
        except OSError as exc:
            reason = _reason(exc)
            raise ScribeError(
                f"cannot listen on {listen}: {reason}; "
                "choose another with --listen HOST:PORT, or --listen off"
            ) from None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the port chosen, when ``listen`` asked for 0)."""
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in a daemon thread, until ``close``."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},  # how soon close() takes effect
                name="scribe-ops-server",
                daemon=True,
            )
            self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:  # shutdown() waits for serve_forever, so only if it runs
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> OpsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_endpoints(
    settings: Settings,
    root: Path,
    *,
    ready: Callable[[], list[str]],
    status: Callable[[], dict[str, Any]],
    given: bool,
    doing: str,
) -> OpsServer | None:
    """The operations endpoints of a long-running command, serving, unless ``listen:
    off``. A taken default port is a warning (another Scribe on this host): the
    command goes on ``doing`` without them; a port the user ``given`` is an error,
    and so is any TLS mistake."""
    if settings.listen.strip().lower() == "off":
        return None
    from scribe.tls import server_context

    tls = server_context(settings, root)
    try:
        server = OpsServer(
            settings.listen, ready=ready, status=status, token=settings.status_token, tls=tls
        )
    except ScribeError as exc:
        if given:
            raise
        log.warning("%s; %s without the operations endpoints", exc, doing)
        return None
    server.start()
    return server


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        ready: Callable[[], list[str]],
        status: Callable[[], dict[str, Any]],
        token: str | None,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.address_family = family
        self.ready = ready
        self.status = status
        self.token = token
        self.tls = tls
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, client = super().get_request()
        if self.tls is None:
            return connection, client
        # The handshake waits for the first read, in the request's own thread: done
        # here, one slow or silent client would hold up every other.
        secure = self.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return secure, client

    def server_bind(self) -> None:
        # HTTPServer.server_bind also looks up the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is not worth a traceback on stderr.
        log.debug("ops server: request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "scribe"

    def do_GET(self) -> None:
        self._route(send_body=True)

    def do_HEAD(self) -> None:
        self._route(send_body=False)

    def _route(self, *, send_body: bool) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            body, content_type = metrics.render(self.headers.get("Accept"))
            self._send(HTTPStatus.OK, body, content_type, send_body)
        elif path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", TEXT, send_body)
        elif path == "/readyz":
            self._call(self._readyz, send_body)
        elif path == "/status":
            if not self._authorized():
                body = b"unauthorized: /status needs the header Authorization: Bearer <token>\n"
                headers = {"WWW-Authenticate": "Bearer"}
                self._send(HTTPStatus.UNAUTHORIZED, body, TEXT, send_body, headers)
            else:
                self._call(self._status, send_body)
        else:
            body = f"not found; the endpoints are {', '.join(ENDPOINTS)}\n".encode()
            self._send(HTTPStatus.NOT_FOUND, body, TEXT, send_body)

    def _readyz(self) -> tuple[HTTPStatus, bytes, str]:
        reasons = self.server.ready()
        if not reasons:
            return HTTPStatus.OK, b"ready\n", TEXT
        return HTTPStatus.SERVICE_UNAVAILABLE, "".join(f"{r}\n" for r in reasons).encode(), TEXT

    def _status(self) -> tuple[HTTPStatus, bytes, str]:
        body = json.dumps(self.server.status(), indent=2) + "\n"
        return HTTPStatus.OK, body.encode(), "application/json"

    def _call(self, respond: Callable[[], tuple[HTTPStatus, bytes, str]], send_body: bool) -> None:
        """Answer with ``respond``; its failure is a 500 that says why, and the server
        goes on serving."""
        try:
            status, body, content_type = respond()
        except Exception as exc:  # the caller's callback; reported to the client, and logged
            log.warning("ops server: %s failed", self.path, exc_info=True)
            body = f"internal error: {type(exc).__name__}: {exc}\n".encode()
            status, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, TEXT
        self._send(status, body, content_type, send_body)

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        scheme, _, credentials = self.headers.get("Authorization", "").partition(" ")
        # Headers arrive decoded as Latin-1; encoding back gives the bytes sent.
        given = credentials.strip().encode("latin-1", "replace")
        return scheme.lower() == "bearer" and hmac.compare_digest(given, token.encode())

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        send_body: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("ops server: %s " + format, self.address_string(), *args)

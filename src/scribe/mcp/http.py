"""The streamable HTTP transport: Host and Origin checked against the address
served (no DNS rebinding), and a bearer token required whenever one is set, and
always beyond loopback. Over HTTPS, and with client certificates, when given the
TLS context the settings ask for (``scribe.tls``)."""

from __future__ import annotations

import hmac
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from scribe.errors import ScribeError

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class BearerGate:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer TOKEN``."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer realm="scribe"'),
                        ],
                    }
                )
                body = b'{"error": "unauthorized", "message": "a valid bearer token is required"}'
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


#: Addresses that listen on every interface: the names clients use are not known.
WILDCARD = frozenset({"0.0.0.0", "::"})


def _host_names(host: str, allowed: Sequence[str]) -> list[str] | None:
    """The Host names a request may carry, or None to accept any (a wildcard bind
    with no ``mcp_allowed_hosts``: the token, required there, is the guard)."""
    if host in LOOPBACK:
        return ["127.0.0.1", "localhost", "[::1]", *allowed]
    if host in WILDCARD:
        return list(allowed) or None
    return [f"[{host}]" if ":" in host else host, *allowed]


def http_app(
    app: MCPServer[Any], host: str, port: int, token: str | None, allowed: Sequence[str] = ()
) -> Any:
    """The streamable HTTP app: Host and Origin checked against the names the server
    answers to (the address served and ``allowed``), so a page elsewhere cannot reach
    it through DNS rebinding, and the token required whenever one is set. Refuses to
    serve beyond loopback without a token."""
    if host not in LOOPBACK and not token:
        raise ScribeError(
            f"scribe mcp --http {host}:{port} listens beyond loopback: set SCRIBE_MCP_TOKEN "
            "or mcp_token_file so that only clients with the token can connect"
        )
    names = _host_names(host, allowed)
    if names is None:
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    else:
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[f"{name}:{port}" for name in names],
            allowed_origins=[
                f"{scheme}://{name}:{port}" for name in names for scheme in ("http", "https")
            ],
        )
    served = app.streamable_http_app(transport_security=security, host=host)
    return BearerGate(served, token) if token else served


def run_http(
    app: MCPServer[Any],
    host: str,
    port: int,
    token: str | None,
    allowed: Sequence[str] = (),
    tls: ssl.SSLContext | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until stopped; HTTPS with ``tls``."""
    import uvicorn

    asgi = http_app(app, host, port, token, allowed)
    uvicorn.run(
        asgi,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ssl_context_factory=_given(tls) if tls is not None else None,
    )


def _given(tls: ssl.SSLContext) -> Callable[..., ssl.SSLContext]:
    """A uvicorn context factory that hands over the context already built."""
    return lambda _config, _default: tls

"""The MCP server: every tool call checked at the door, then handed to plain logic.

Each call goes through ``Door.serve``: the execution context is validated (field
by field, before any tool logic), the tool's mode is checked against the call's,
the connection's session is found or made, and only then does the tool run, in a
worker thread so that slow calls from different sessions overlap. Failures come
back as error results whose text is JSON (``{"error": code, "message": ...}``);
scope violations are also journaled.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, WithJsonSchema

from scribe import __version__
from scribe.config import Settings, load_settings
from scribe.errors import ScribeError
from scribe.files import enable_writer_probe
from scribe.journal.entry import SCOPE_VIOLATION, JournalUnavailable, NewEntry
from scribe.journal.writer import JournalWriter
from scribe.mcp.context import PROJECT, SENTINEL, Call, ExecutionContext, Mode, parse_context
from scribe.mcp.engine_tools import EngineTools
from scribe.mcp.failures import (
    INVALID_ARGUMENT,
    UNAVAILABLE,
    WRONG_MODE,
    ToolFailure,
)
from scribe.mcp.failures import (
    SCOPE_VIOLATION as SCOPE,
)
from scribe.mcp.sessions import Session, Sessions, recall, remember
from scribe.mcp.stdio import serve_stdio
from scribe.startup import required_journal

log = logging.getLogger("scribe")

BOTH: frozenset[Mode] = frozenset({PROJECT, SENTINEL})
ONLY_PROJECT: frozenset[Mode] = frozenset({PROJECT})
ONLY_SENTINEL: frozenset[Mode] = frozenset({SENTINEL})


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` substituted in place, so it can sit inside another."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return dict(walk(schema))


#: The ``context`` argument every tool takes. Its schema is the real one, but the
#: server validates it itself, so that every problem is reported field by field.
ContextArg = Annotated[
    dict[str, Any],
    WithJsonSchema(_inline_refs(ExecutionContext.model_json_schema())),
    Field(description="The execution context: who calls, for which work, where, in which mode."),
]
PathArg = Annotated[str, Field(description="Path relative to the repository root.")]


@dataclass
class Repository:
    """What the server keeps open for one served repository."""

    root: Path
    settings: Settings
    journal: JournalWriter
    engine: EngineTools
    closers: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def open(cls, root: Path) -> Repository:
        settings = load_settings(root)
        journal = required_journal(root, settings)
        return cls(root, settings, journal, EngineTools(root, settings, journal))

    def close(self) -> None:
        for close in reversed(self.closers):
            close()
        self.engine.close()
        self.journal.close()


def ok(answer: Mapping[str, Any]) -> CallToolResult:
    text = json.dumps(answer, ensure_ascii=False, default=str)
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=dict(answer)
    )


def failed(failure: ToolFailure) -> CallToolResult:
    text = json.dumps(failure.to_json(), ensure_ascii=False, default=str)
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


class Door:
    """Validates, gates and dispatches tool calls for the repositories served."""

    def __init__(self, repositories: Sequence[Repository]) -> None:
        self.repositories = {repo.root: repo for repo in repositories}
        self.roots = list(self.repositories)
        self.sessions = Sessions()

    def serve(
        self,
        ctx: Context | None,
        raw_context: object,
        tool: str,
        modes: frozenset[Mode],
        work: Callable[[Call, Repository, Session], Mapping[str, Any]],
    ) -> CallToolResult:
        started = time.perf_counter()
        call: Call | None = None
        try:
            context, root = parse_context(raw_context, self.roots)
            if context.mode not in modes:
                (only,) = modes
                raise ToolFailure(
                    WRONG_MODE,
                    f"{tool} is a {only}-mode tool; this call is in {context.mode} mode",
                    tool=tool,
                    mode=context.mode,
                )
            session = self._session(ctx)
            call = Call(context, root, session.id)
            result = ok(work(call, self.repositories[root], session))
            self._log(tool, call, started, "ok")
            return result
        except ToolFailure as failure:
            if failure.code == SCOPE and call is not None:
                self._journal_violation(call, tool, failure)
            self._log(tool, call, started, failure.code)
            return failed(failure)
        except JournalUnavailable as exc:
            self._log(tool, call, started, UNAVAILABLE)
            return failed(ToolFailure(UNAVAILABLE, f"the journal cannot take the entry: {exc}"))

    @staticmethod
    def _log(tool: str, call: Call | None, started: float, result: str) -> None:
        """One line per call, never its arguments' content; refusals at info."""
        level = logging.DEBUG if result == "ok" else logging.INFO
        if not log.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "tool": tool,
            "result": result,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if call is not None:
            fields |= {
                "session": call.session_id,
                "execution_id": call.context.execution_id,
                "agent": call.context.agent_identity.id,
                "mode": call.context.mode,
            }
        log.log(level, "tool call", extra=fields)

    def _session(self, ctx: Context | None) -> Session:
        try:
            connection = ctx.session if ctx is not None else None
        except ValueError:  # called directly, outside any request
            connection = None
        if ctx is None or connection is None:  # one shared session for direct calls
            return self.sessions.for_connection(self)
        headers = ctx.headers or {}
        return self.sessions.for_connection(connection, headers.get("mcp-session-id"))

    def _journal_violation(self, call: Call, tool: str, failure: ToolFailure) -> None:
        path = failure.details.get("path")
        entry = NewEntry(
            SCOPE_VIOLATION,
            call.context.actor,
            path=str(path) if path is not None else None,
            message=f"{tool} refused: {failure.message}",
            payload=call.payload(tool=tool, reason=failure.message),
        )
        self.repositories[call.root].journal.submit([entry])

    def project_of(self, call: Call, session: Session, explicit: str | None = None) -> str:
        """The project a call works on: the one it names, its session's, else the global
        current one (project mode only; in sentinel mode that is a scope violation)."""
        named = explicit or call.context.project or session.project(call.root)
        if named:
            return named
        if call.context.mode == SENTINEL:
            raise ToolFailure(
                SCOPE,
                "sentinel mode never falls back to the global current project; name the project",
            )
        current = self.global_project(call.root)
        if current is None:
            raise ToolFailure(
                INVALID_ARGUMENT,
                "no project: pass one, call set_project first, or set the context's project",
            )
        return current

    def global_project(self, root: Path) -> str | None:
        """Overridden once the project registry is wired: the repository's current project."""
        return None

    def close(self) -> None:
        for repo in self.repositories.values():
            repo.close()


def build_server(roots: Iterable[Path]) -> tuple[MCPServer[Any], Door]:
    """The MCP server for ``roots``, with every tool registered, and its door."""
    enable_writer_probe()  # from the main thread: engine writes can ask who else writes
    door = Door([Repository.open(root.resolve()) for root in roots])
    app: MCPServer[Any] = MCPServer(
        "scribe",
        version=__version__,
        instructions=(
            "Scribe keeps this repository's journal. Pass the execution context with every "
            "call; use sentinel mode to report events and cases, project mode for plans, "
            "progress logs and documents."
        ),
        log_level="WARNING",
    )
    _engine_tools(app, door)
    _session_tools(app, door)
    return app, door


def _engine_tools(app: MCPServer[Any], door: Door) -> None:
    read_only = ToolAnnotations(read_only_hint=True)

    @app.tool(annotations=read_only)
    def list_rules(context: ContextArg, ctx: Context) -> CallToolResult:
        """List the repository's rules: id, events, paths, steps, priority, enabled."""
        return door.serve(
            ctx, context, "list_rules", ONLY_PROJECT, lambda c, r, s: r.engine.list_rules()
        )

    @app.tool(annotations=read_only)
    def plan_file(context: ContextArg, path: PathArg, ctx: Context) -> CallToolResult:
        """The unified diff Scribe's rules would make to a file; writes nothing."""
        return door.serve(
            ctx, context, "plan_file", ONLY_PROJECT, lambda c, r, s: r.engine.plan_file(path)
        )

    @app.tool()
    def run_rules(context: ContextArg, path: PathArg, ctx: Context) -> CallToolResult:
        """Apply the rules to a file and write the result (journaled like any rewrite)."""
        return door.serve(
            ctx, context, "run_rules", ONLY_PROJECT, lambda c, r, s: r.engine.run_rules(path)
        )


def _session_tools(app: MCPServer[Any], door: Door) -> None:
    @app.tool()
    def reconnect(
        context: ContextArg,
        earlier_session_id: Annotated[
            str, Field(description="The session_id an earlier connection of yours was given.")
        ],
        ctx: Context,
    ) -> CallToolResult:
        """Take back the project an earlier session of this agent used in this repository."""

        def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            agent = call.context.agent_identity.id
            project = recall(call.root, agent, earlier_session_id)
            session.use(call.root, project)
            remember(call.root, agent, session, project)
            return {
                "project": project,
                "session_id": session.id,
                "resumed_from": earlier_session_id,
            }

        return door.serve(ctx, context, "reconnect", ONLY_PROJECT, work)


def run_stdio(app: MCPServer[Any]) -> None:
    """Serve one client over stdin/stdout; stdout carries protocol messages only (the
    SDK points the process's own stdout at stderr while it serves)."""
    anyio.run(serve_stdio, app)


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


def http_app(app: MCPServer[Any], host: str, port: int, token: str | None) -> Any:
    """The streamable HTTP app: Host and Origin checked against the address served
    (a page elsewhere cannot reach it through DNS rebinding), and the token required
    whenever one is set. Refuses to serve beyond loopback without a token."""
    if host not in LOOPBACK and not token:
        raise ScribeError(
            f"scribe mcp --http {host}:{port} listens beyond loopback: set SCRIBE_MCP_TOKEN "
            "or mcp_token_file so that only clients with the token can connect"
        )
    names = ["127.0.0.1", "localhost", "[::1]"] if host in LOOPBACK else [host]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{name}:{port}" for name in names],
        allowed_origins=[
            f"{scheme}://{name}:{port}" for name in names for scheme in ("http", "https")
        ],
    )
    served = app.streamable_http_app(transport_security=security, host=host)
    return BearerGate(served, token) if token else served


def run_http(app: MCPServer[Any], host: str, port: int, token: str | None) -> None:
    import uvicorn

    asgi = http_app(app, host, port, token)
    uvicorn.run(asgi, host=host, port=port, log_level="warning", lifespan="on")

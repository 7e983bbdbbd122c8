"""The door every tool call passes: the execution context validated field by field
before any tool logic, the tool's mode checked against the call's, the
connection's session found or made; then the tool runs, and a refusal comes back as
an error result whose text is JSON (``{"error": code, "message": ...}``). Scope
violations are also journaled. ``Repository`` is what the server keeps open for
each repository it serves; the ``*Arg`` annotations are the arguments many tools
share."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from pydantic import Field, WithJsonSchema

from scribe.config import Settings, load_settings
from scribe.journal.entry import SCOPE_VIOLATION, JournalUnavailable, NewEntry
from scribe.journal.writer import JournalWriter
from scribe.mcp.cases import Cases
from scribe.mcp.context import PROJECT, SENTINEL, Call, ExecutionContext, Mode, parse_context
from scribe.mcp.docs import Docs
from scribe.mcp.engine_tools import EngineTools
from scribe.mcp.failures import (
    INTERNAL,
    INVALID_ARGUMENT,
    UNAVAILABLE,
    WRONG_MODE,
    ToolFailure,
)
from scribe.mcp.failures import (
    SCOPE_VIOLATION as SCOPE,
)
from scribe.mcp.paths import ReadScope
from scribe.mcp.projects import Projects
from scribe.mcp.query import MAX_LIMIT, JournalQueries
from scribe.mcp.reader import INDEX_DIR, Reader
from scribe.mcp.sentinel import SentinelLog
from scribe.mcp.sessions import Session, Sessions
from scribe.startup import required_journal

log = logging.getLogger("scribe")

#: full_stream answers stop after the chunk that reaches this many bytes of text;
#: ``next_cursor`` continues (a chunk is never cut, and memory stays bounded).
STREAM_PAGE_BYTES = 1 << 20

#: Idempotency keys remembered per server (oldest forgotten first).
MAX_IDEMPOTENCY_KEYS = 100_000

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
    projects: Projects
    docs: Docs
    sentinel: SentinelLog
    cases: Cases
    queries: JournalQueries
    reader: Reader

    @classmethod
    def open(cls, root: Path) -> Repository:
        settings = load_settings(root)
        journal = required_journal(root, settings)
        projects = Projects(root, journal)
        sentinel = SentinelLog(root, journal)
        return cls(
            root,
            settings,
            journal,
            EngineTools(root, settings, journal),
            projects,
            Docs(root, journal, projects, aliases=settings.mcp_doc_aliases),
            sentinel,
            Cases(root, journal, sentinel),
            JournalQueries(root, journal),
            Reader(
                ReadScope(
                    root,
                    allow_absolute=[Path(p) for p in settings.mcp_allow_absolute],
                    extra_deny=settings.mcp_deny,
                ),
                chunk_bytes=settings.mcp_chunk_bytes,
                index_dir=root / INDEX_DIR,
            ),
        )

    def close(self) -> None:
        self.sentinel.close()  # its summaries and held lines, before the journal closes
        self.engine.close()
        self.journal.close()


def violation_entry(call: Call, tool: str, failure: ToolFailure) -> NewEntry:
    """The ``scope.violation`` entry of a refused call: what was asked for and why it
    was refused (the confinement's reason code when it gave one), never content."""
    requested = failure.details.get("path")
    where = {"requested": str(requested)} if requested is not None else {}
    return NewEntry(
        SCOPE_VIOLATION,
        call.context.actor,
        path=str(requested) if requested is not None else None,
        message=f"{tool} refused: {failure.message}",
        payload=call.payload(
            tool=tool,
            code=failure.code,
            reason=failure.details.get("reason", failure.message),
            **where,
        ),
    )


def ok(answer: Mapping[str, Any]) -> CallToolResult:
    """The answer as one JSON text block. Not also as ``structuredContent``: the tools
    declare no output schema, and a second copy would double every large answer (a
    read_file page) in memory and on the wire."""
    text = json.dumps(answer, ensure_ascii=False, default=str)
    return CallToolResult(content=[TextContent(type="text", text=text)])


def failed(failure: ToolFailure) -> CallToolResult:
    text = json.dumps(failure.to_json(), ensure_ascii=False, default=str)
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


class Door:
    """Validates, gates and dispatches tool calls for the repositories served."""

    def __init__(self, repositories: Sequence[Repository]) -> None:
        self.repositories = {repo.root: repo for repo in repositories}
        self.roots = list(self.repositories)
        self.sessions = Sessions()
        self._once: dict[tuple[Path, str, str, str], Mapping[str, Any]] = {}
        self._once_locks: dict[tuple[Path, str, str, str], threading.Lock] = {}
        self._once_lock = threading.Lock()
        self._serving = 0  # calls between admission and answer, on any thread
        self._serving_lock = threading.Lock()
        #: Whether the transport has no request waiting but the one being admitted.
        #: Only stdio can tell (``stdio.Unanswered``); streamable HTTP cannot see the
        #: requests still in its sockets, so there no call counts as alone.
        self.transport_alone: Callable[[], bool] = lambda: False

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
            with self._served() as alone:
                call, session = self._admit(ctx, raw_context, tool, modes, alone)
                answer = work(call, self.repositories[call.root], session)
        except Exception as exc:
            return self._refused(tool, call, started, exc)
        self._log(tool, call, started, "ok")
        return ok(answer)

    async def serve_soon(
        self,
        ctx: Context | None,
        raw_context: object,
        tool: str,
        modes: frozenset[Mode],
        work: Callable[[Call, Repository, Session], Awaitable[Mapping[str, Any]]],
    ) -> CallToolResult:
        """``serve`` for a tool whose work runs on the event loop."""
        started = time.perf_counter()
        call: Call | None = None
        try:
            with self._served() as alone:
                call, session = self._admit(ctx, raw_context, tool, modes, alone)
                answer = await work(call, self.repositories[call.root], session)
        except Exception as exc:
            return self._refused(tool, call, started, exc)
        self._log(tool, call, started, "ok")
        return ok(answer)

    @contextmanager
    def _served(self) -> Iterator[bool]:
        """Count a call as being served; yields whether it is the only one.

        On an event loop a call can run from admission to answer without yielding, so
        the count alone would call every one of many waiting requests alone; the
        transport's view of its requests decides with it."""
        with self._serving_lock:
            self._serving += 1
            alone = self._serving == 1 and self.transport_alone()
        try:
            yield alone
        finally:
            with self._serving_lock:
                self._serving -= 1

    def _admit(
        self,
        ctx: Context | None,
        raw_context: object,
        tool: str,
        modes: frozenset[Mode],
        alone: bool,
    ) -> tuple[Call, Session]:
        """The call's context validated and its mode checked, and its session."""
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
        return Call(context, root, session.id, session.transport_id, alone), session

    def _refused(
        self, tool: str, call: Call | None, started: float, exc: Exception
    ) -> CallToolResult:
        """The error result of a call that raised ``exc``."""
        if isinstance(exc, ToolFailure):
            if exc.code == SCOPE and call is not None:
                self._journal_violation(call, tool, exc)
            self._log(tool, call, started, exc.code)
            return failed(exc)
        if isinstance(exc, JournalUnavailable):
            self._log(tool, call, started, UNAVAILABLE)
            return failed(ToolFailure(UNAVAILABLE, f"the journal cannot take the entry: {exc}"))
        # A bug must not look like a refusal, nor end the session.
        log.exception("%s failed unexpectedly", tool, exc_info=exc)
        return failed(ToolFailure(INTERNAL, f"{tool} failed inside Scribe: {exc!r}; see its log"))

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
            request_session = ctx.session if ctx is not None else None
        except ValueError:  # called directly, outside any request
            request_session = None
        if ctx is None or request_session is None:  # one shared session for direct calls
            return self.sessions.for_connection(self)
        # The SDK makes a ServerSession per request; the connection behind it is what
        # lasts (one per stdio process, one per streamable HTTP session). It has no
        # public accessor, hence the guarded lookup; the session tests catch a change.
        connection = getattr(request_session, "_connection", None) or request_session
        headers = ctx.headers or {}
        return self.sessions.for_connection(connection, headers.get("mcp-session-id"))

    def _journal_violation(self, call: Call, tool: str, failure: ToolFailure) -> None:
        self.repositories[call.root].journal.submit([violation_entry(call, tool, failure)])

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
        """The repository's current project: the last one any session set."""
        return self.repositories[root].projects.current()

    def once(
        self, call: Call, tool: str, key: str | None, work: Callable[[], Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        """Run ``work`` unless this agent instance already ran ``tool`` with ``key``; a
        repeated key gets the first call's answer again, and nothing is appended twice."""
        if key is None:
            return work()
        slot = (call.root, call.context.agent_identity.instance_id, tool, key)
        with self._once_lock:
            lock = self._once_locks.setdefault(slot, threading.Lock())
        with lock:  # a retry that races the first call waits for its answer
            done = self._once.get(slot)
            if done is not None:
                return {**done, "replayed": True}
            answer = work()
            with self._once_lock:
                self._once[slot] = answer
                self._once_locks.pop(slot, None)
                while len(self._once) > MAX_IDEMPOTENCY_KEYS:
                    self._once.pop(next(iter(self._once)))
            return answer

    def close(self) -> None:
        for repo in self.repositories.values():
            repo.close()


ProjectArg = Annotated[
    str | None,
    Field(
        description="The project; default: the context's, then this session's, "
        "then the repository's current one."
    ),
]
IdempotencyArg = Annotated[
    str | None,
    Field(
        description="Your id for this append: sending the same id again (say, after a timeout) "
        "returns the first answer and appends nothing.",
        min_length=1,
        max_length=200,
    ),
]

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Entries per page.")]

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
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, WithJsonSchema

from scribe import __version__
from scribe.config import Settings, load_settings
from scribe.errors import ScribeError
from scribe.files import enable_writer_probe
from scribe.journal.entry import AGENT_ENTRY, SCOPE_VIOLATION, JournalUnavailable, NewEntry
from scribe.journal.writer import JournalWriter
from scribe.mcp.cases import LANDING_STATUSES, Cases
from scribe.mcp.cases import SEVERITIES as CASE_SEVERITIES
from scribe.mcp.context import PROJECT, SENTINEL, Call, ExecutionContext, Mode, parse_context
from scribe.mcp.docs import ACTIONS, Docs
from scribe.mcp.engine_tools import EngineTools
from scribe.mcp.failures import (
    CONFLICT,
    INVALID_ARGUMENT,
    UNAVAILABLE,
    WRONG_MODE,
    ToolFailure,
)
from scribe.mcp.failures import (
    SCOPE_VIOLATION as SCOPE,
)
from scribe.mcp.paths import ReadScope
from scribe.mcp.progress_line import STATUS_EMOJI, MetaValue, parse_line
from scribe.mcp.projects import Projects
from scribe.mcp.query import MAX_LIMIT, JournalQueries
from scribe.mcp.reader import INDEX_DIR, ReadAnswer, Reader, ReadMode, read_entry
from scribe.mcp.sentinel import SEVERITIES as EVENT_SEVERITIES
from scribe.mcp.sentinel import SentinelLog
from scribe.mcp.sessions import Session, Sessions, recall, remember
from scribe.mcp.stdio import serve_stdio
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
        self._once: dict[tuple[Path, str, str, str], Mapping[str, Any]] = {}
        self._once_locks: dict[tuple[Path, str, str, str], threading.Lock] = {}
        self._once_lock = threading.Lock()

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
    _project_tools(app, door)
    _sentinel_tools(app, door)
    _history_tools(app, door)
    _read_tools(app, door)
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


Status = Literal["info", "success", "warn", "error", "bug", "plan"]
DocAction = Literal["read", "replace_section", "append_section", "apply_patch"]
assert set(get_args(Status)) == set(STATUS_EMOJI), "Status must list every status"
assert set(get_args(DocAction)) == set(ACTIONS), "DocAction must list every action"
EventSeverity = Literal["debug", "info", "warning", "error", "critical"]
CaseSeverity = Literal["low", "medium", "high", "critical"]
Landing = Literal["proposed", "merged", "verified"]
assert get_args(EventSeverity) == EVENT_SEVERITIES
assert get_args(CaseSeverity) == CASE_SEVERITIES
assert get_args(Landing) == LANDING_STATUSES
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


def _project_tools(app: MCPServer[Any], door: Door) -> None:
    read_only = ToolAnnotations(read_only_hint=True)

    @app.tool()
    def set_project(
        context: ContextArg,
        name: Annotated[str, Field(description="The project's name; its slug names its folder.")],
        root: Annotated[
            str,
            Field(
                description="The project's folder, relative to the repository root ('.' for all)."
            ),
        ],
        ctx: Context,
    ) -> CallToolResult:
        """Create or update a project and make it this session's active project (and the
        repository's current one). Returns the session id to reconnect with later."""

        def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            project = repo.projects.set_project(call, name=name, root=root)
            session.use(call.root, project["name"])
            agent = call.context.agent_identity.id
            return {
                **project,
                "session_id": session.id,
                "fingerprint": remember(call.root, agent, session, project["name"]),
            }

        return door.serve(ctx, context, "set_project", ONLY_PROJECT, work)

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
                **repo.projects.get_project(project),
                "session_id": session.id,
                "resumed_from": earlier_session_id,
            }

        return door.serve(ctx, context, "reconnect", ONLY_PROJECT, work)

    @app.tool(annotations=read_only)
    def list_projects(context: ContextArg, ctx: Context) -> CallToolResult:
        """Every project of the repository, and which one is current."""

        def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            return {
                "projects": repo.projects.list_projects(),
                "current": repo.projects.current(),
                "session_project": session.project(call.root),
            }

        return door.serve(ctx, context, "list_projects", ONLY_PROJECT, work)

    @app.tool(annotations=read_only)
    def get_project(
        context: ContextArg, ctx: Context, project: ProjectArg = None
    ) -> CallToolResult:
        """One project: its name, slug, folder and documents folder."""

        def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            found = repo.projects.get_project(door.project_of(call, session, project))
            return {**found, "session_id": session.id}

        return door.serve(ctx, context, "get_project", ONLY_PROJECT, work)

    @app.tool()
    def append_entry(
        context: ContextArg,
        message: Annotated[str, Field(description="What happened, in one line.")],
        ctx: Context,
        status: Annotated[
            Status, Field(description="The kind of entry; sets the default emoji.")
        ] = "info",
        emoji: Annotated[str | None, Field(description="An emoji instead of the status's.")] = None,
        agent: Annotated[
            str | None, Field(description="The name to log; default: your agent id.")
        ] = None,
        meta: Annotated[
            dict[str, MetaValue] | None, Field(description="Extra key=value facts for the line.")
        ] = None,
        project: ProjectArg = None,
        idempotency_key: IdempotencyArg = None,
    ) -> CallToolResult:
        """Append a line to the project's PROGRESS_LOG.md (and an entry to the journal)."""

        def work(call: Call, repo: Repository, session: Session) -> Mapping[str, Any]:
            name = door.project_of(call, session, project)
            return door.once(
                call,
                "append_entry",
                idempotency_key,
                lambda: repo.projects.append_entry(
                    call,
                    project=name,
                    message=message,
                    status=status,
                    emoji=emoji,
                    agent=agent,
                    meta=meta,
                ),
            )

        return door.serve(ctx, context, "append_entry", ONLY_PROJECT, work)

    @app.tool()
    def generate_doc_templates(
        context: ContextArg, ctx: Context, project: ProjectArg = None
    ) -> CallToolResult:
        """Create ARCHITECTURE_GUIDE.md, PHASE_PLAN.md, CHECKLIST.md and PROGRESS_LOG.md for the
        project from templates; existing files are kept, never overwritten."""

        def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            return repo.docs.generate_doc_templates(
                call, project=door.project_of(call, session, project)
            )

        return door.serve(ctx, context, "generate_doc_templates", ONLY_PROJECT, work)

    @app.tool()
    def manage_docs(
        context: ContextArg,
        doc: Annotated[
            str,
            Field(description="architecture, phase_plan, checklist or progress_log (or an alias)."),
        ],
        action: Annotated[DocAction, Field(description="What to do with the document.")],
        ctx: Context,
        section: Annotated[
            str | None, Field(description="A heading's text or an <!-- ID: name --> anchor.")
        ] = None,
        content: Annotated[
            str | None, Field(description="The section's new or added text.")
        ] = None,
        patch: Annotated[
            str | None, Field(description="A unified diff against the document.")
        ] = None,
        expected_sha256: Annotated[
            str | None, Field(description="apply_patch: the sha256 the document must still have.")
        ] = None,
        project: ProjectArg = None,
    ) -> CallToolResult:
        """Read a project document, replace or append a section, or apply a unified patch
        (with a hash precondition). Every change is journaled with its diff."""

        def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            return repo.docs.manage_docs(
                call,
                project=door.project_of(call, session, project),
                doc=doc,
                action=action,
                section=section,
                content=content,
                patch=patch,
                expected_sha256=expected_sha256,
            )

        return door.serve(ctx, context, "manage_docs", ONLY_PROJECT, work)


def _sentinel_tools(app: MCPServer[Any], door: Door) -> None:
    @app.tool()
    def append_event(
        context: ContextArg,
        event_type: Annotated[str, Field(description="A short kind, e.g. file.edit or test.run.")],
        message: Annotated[str, Field(description="What happened, in one line.")],
        ctx: Context,
        severity: Annotated[EventSeverity | None, Field(description="How much it matters.")] = None,
        paths: Annotated[
            list[str] | None, Field(description="Repository paths the event is about (not read).")
        ] = None,
        data: Annotated[
            dict[str, Any] | None, Field(description="Extra JSON facts (at most 16 KiB).")
        ] = None,
        idempotency_key: IdempotencyArg = None,
    ) -> CallToolResult:
        """Record an event in today's sentinel log (sentinel.jsonl, SENTINEL_LOG.md) and
        the journal."""

        def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            return repo.sentinel.append_event(
                call,
                event_type=event_type,
                message=message,
                severity=severity,
                paths=paths or [],
                data=data,
                idempotency_key=idempotency_key,
            )

        return door.serve(ctx, context, "append_event", ONLY_SENTINEL, work)

    def opener(kind: str) -> Callable[..., CallToolResult]:
        def open_case(
            context: ContextArg,
            title: Annotated[str, Field(description="What is wrong, in one line.")],
            severity: Annotated[CaseSeverity, Field(description="How bad it is.")],
            ctx: Context,
            evidence_paths: Annotated[
                list[str] | None, Field(description="Repository paths that show it (not read).")
            ] = None,
            description: Annotated[str | None, Field(description="More detail.")] = None,
        ) -> CallToolResult:
            def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
                opening = repo.cases.open_bug if kind == "bug" else repo.cases.open_security
                return opening(
                    call,
                    title=title,
                    severity=severity,
                    evidence_paths=evidence_paths or [],
                    description=description,
                )

            return door.serve(ctx, context, f"open_{kind}", ONLY_SENTINEL, work)

        return open_case

    app.add_tool(
        opener("bug"),
        name="open_bug",
        description="Open a bug case (id, title, severity, evidence, reporter); journaled and "
        "logged in today's bug.jsonl.",
    )
    app.add_tool(
        opener("security"),
        name="open_security",
        description="Open a security case (id, title, severity, evidence, reporter); journaled "
        "and logged in today's security.jsonl.",
    )

    @app.tool()
    def link_fix(
        context: ContextArg,
        case_id: Annotated[str, Field(description="The case, e.g. BUG-20261201-0001.")],
        ctx: Context,
        fix_link: Annotated[str | None, Field(description="Where the fix is (PR, commit).")] = None,
        root_cause: Annotated[str | None, Field(description="Why it happened.")] = None,
        landing_status: Annotated[
            Landing | None, Field(description="How far the fix has landed; never goes back.")
        ] = None,
        close: Annotated[
            bool,
            Field(description="Close the case: needs root cause, fix link and a verified fix."),
        ] = False,
    ) -> CallToolResult:
        """Attach a fix to a case (link, root cause, landing status) and optionally close it."""

        def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            return repo.cases.link_fix(
                call,
                case_id=case_id,
                fix_link=fix_link,
                root_cause=root_cause,
                landing_status=landing_status,
                close=close,
            )

        return door.serve(ctx, context, "link_fix", ONLY_SENTINEL, work)


Scope = Literal["project", "sentinel", "all"]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Entries per page.")]
Text = Annotated[str | None, Field(description="Words (or word prefixes) to search for.")]


def _history_tools(app: MCPServer[Any], door: Door) -> None:
    read_only = ToolAnnotations(read_only_hint=True)

    @app.tool(annotations=read_only)
    def query_entries(
        context: ContextArg,
        scope: Annotated[
            Scope,
            Field(
                description="project: project-mode entries of one project; sentinel: "
                "sentinel-mode entries; all: everything, the engine's too."
            ),
        ],
        ctx: Context,
        day: Annotated[str | None, Field(description="A UTC day, YYYY-MM-DD.")] = None,
        since: Annotated[str | None, Field(description="RFC 3339 time, inclusive.")] = None,
        until: Annotated[str | None, Field(description="RFC 3339 time, exclusive.")] = None,
        execution_id: Annotated[str | None, Field(description="One execution's entries.")] = None,
        agent_instance_id: Annotated[str | None, Field(description="One agent instance's.")] = None,
        intent: Annotated[
            str | None, Field(description="Entries with exactly this intent.")
        ] = None,
        case_id: Annotated[str | None, Field(description="One case's entries.")] = None,
        project: Annotated[
            str | None,
            Field(
                description="Entries of or affecting this project (scope project: default "
                "the context's, then the session's, then the current one)."
            ),
        ] = None,
        path: Annotated[str | None, Field(description="A path or a glob (notes/**/*.md).")] = None,
        event_type: Annotated[
            str | list[str] | None,
            Field(description="Journal kinds (case.opened) or sentinel event types (test.run)."),
        ] = None,
        text: Text = None,
        limit: Limit = 50,
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous page of this query.")
        ] = None,
        order: Literal["newest", "oldest"] = "newest",
        summaries: Annotated[bool, Field(description="Add a one-line summary per entry.")] = False,
        include_diff: Annotated[bool, Field(description="Include each change's diff.")] = False,
    ) -> CallToolResult:
        """Search the journal: filter by time, execution, agent, intent, case, project, path,
        event type and text; paged with a cursor, newest first."""

        def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            named = project
            if scope == "project":
                named = door.project_of(call, session, project)
            return repo.queries.query_entries(
                call,
                scope=scope,
                day=day,
                since=since,
                until=until,
                execution_id=execution_id,
                agent_instance_id=agent_instance_id,
                intent=intent,
                case_id=case_id,
                project=named,
                path=path,
                event_type=event_type,
                text=text,
                limit=limit,
                cursor=cursor,
                order=order,
                summaries=summaries,
                include_diff=include_diff,
            )

        return door.serve(ctx, context, "query_entries", BOTH, work)

    @app.tool(annotations=read_only)
    def read_recent(
        context: ContextArg,
        ctx: Context,
        project: ProjectArg = None,
        limit: Limit = 20,
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous page.")
        ] = None,
    ) -> CallToolResult:
        """The project's latest progress log entries, newest first, read from the journal."""

        def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            name = door.project_of(call, session, project)
            found = repo.queries.query_entries(
                call,
                scope="project",
                project=name,
                event_type=AGENT_ENTRY,
                limit=limit,
                cursor=cursor,
            )
            entries = []
            for entry in found["entries"]:
                line = entry["payload"].get("line", entry["message"])
                try:
                    parsed = parse_line(line)
                except ValueError:
                    parsed = {}
                entries.append({"seq": entry["seq"], "ts": entry["ts"], "line": line, **parsed})
            return {"project": name, "entries": entries, "next_cursor": found["next_cursor"]}

        return door.serve(ctx, context, "read_recent", ONLY_PROJECT, work)


def _read_tools(app: MCPServer[Any], door: Door) -> None:
    @app.tool(annotations=ToolAnnotations(read_only_hint=True))
    def read_file(
        context: ContextArg,
        path: Annotated[
            str, Field(description="Repository-relative (or allow-listed absolute) path.")
        ],
        mode: Annotated[
            ReadMode,
            Field(
                description="scan_only: facts only; chunk; line_range; page; full_stream "
                "(every chunk, in pages: pass next_cursor back); search."
            ),
        ],
        ctx: Context,
        chunk_index: Annotated[
            int | None, Field(ge=0, description="chunk: which (0-based).")
        ] = None,
        start_line: Annotated[
            int | None, Field(ge=1, description="line_range: first line.")
        ] = None,
        end_line: Annotated[int | None, Field(ge=1, description="line_range: to.")] = None,
        page: Annotated[int | None, Field(ge=1, description="page: which (1-based).")] = None,
        page_size: Annotated[int | None, Field(ge=1, description="page: lines per page.")] = None,
        pattern: Annotated[str | None, Field(description="search: what to find.")] = None,
        regex: Annotated[bool | None, Field(description="search: pattern is a regex.")] = None,
        ignore_case: Annotated[bool | None, Field(description="search: ignore case.")] = None,
        context_lines: Annotated[
            int | None, Field(ge=0, le=50, description="search: lines shown around a match.")
        ] = None,
        max_matches: Annotated[int | None, Field(ge=1, description="search: most matches.")] = None,
        timeout_s: Annotated[
            float | None, Field(gt=0, le=30, description="search: time budget in seconds.")
        ] = None,
        cursor: Annotated[
            int | None, Field(ge=0, description="full_stream: the next_cursor of the last page.")
        ] = None,
    ) -> CallToolResult:
        """Read a file with provenance: every read scans it first (size, lines, sha256,
        newlines, encoding, chunks) and is journaled without its content."""

        def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            if mode == "full_stream":
                if cursor is not None and any(
                    v is not None
                    for v in (chunk_index, start_line, end_line, page, page_size, pattern)
                ):
                    raise ToolFailure(INVALID_ARGUMENT, "full_stream takes only cursor")
                return _stream_page(call, repo, path, cursor or 0)
            if cursor is not None:
                raise ToolFailure(INVALID_ARGUMENT, "cursor applies to mode full_stream only")
            answer = repo.reader.read(
                path,
                mode,
                chunk_index=chunk_index,
                start_line=start_line,
                end_line=end_line,
                page=page,
                page_size=page_size,
                pattern=pattern,
                regex=regex,
                ignore_case=ignore_case,
                context=context_lines,
                max_matches=max_matches,
                timeout_s=timeout_s,
            )
            assert isinstance(answer, ReadAnswer)
            repo.journal.append([read_entry(call, answer.provenance)])
            return answer.to_json()

        return door.serve(ctx, context, "read_file", BOTH, work)


def _stream_page(call: Call, repo: Repository, path: str, first: int) -> dict[str, Any]:
    """Whole chunks from ``first`` on, up to about ``STREAM_PAGE_BYTES`` of text; every
    chunk of one file, however large, is reached by following ``next_cursor``."""
    chunks: list[dict[str, Any]] = []
    size = 0
    index: int | None = first
    answer: ReadAnswer | None = None
    sha = None
    while index is not None and size < STREAM_PAGE_BYTES:
        answer = repo.reader.chunk(path, index)
        if sha is not None and answer.file["sha256"] != sha:
            raise ToolFailure(CONFLICT, f"{path} changed while it was streamed; start again")
        sha = answer.file["sha256"]
        chunks.append(answer.result)
        size += len(answer.result["text"])
        index = answer.result["next_cursor"]
    assert answer is not None
    provenance = {
        **answer.provenance,
        "read_mode": "full_stream",
        "range": {
            "chunk_start": first,
            "chunk_end": chunks[-1]["chunk_index"],
            "byte_start": chunks[0]["byte_start"],
            "byte_end": chunks[-1]["byte_end"],
        },
    }
    repo.journal.append([read_entry(call, provenance)])
    return {"mode": "full_stream", "file": answer.file, "chunks": chunks, "next_cursor": index}


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

"""Project-mode tools: projects and sessions, progress logs, project documents, and
the engine (list_rules, plan_file, run_rules)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from scribe.journal.entry import AGENT_ENTRY
from scribe.mcp.context import Call
from scribe.mcp.docs import ACTIONS
from scribe.mcp.door import (
    ONLY_PROJECT,
    ContextArg,
    Door,
    IdempotencyArg,
    Limit,
    PathArg,
    ProjectArg,
    Repository,
)
from scribe.mcp.failures import SCOPE_VIOLATION, ToolFailure
from scribe.mcp.progress_line import STATUS_EMOJI, MetaValue, parse_line
from scribe.mcp.sessions import Session, recall, remember

Status = Literal["info", "success", "warn", "error", "bug", "plan"]
DocAction = Literal["read", "replace_section", "append_section", "apply_patch"]
assert set(get_args(Status)) == set(STATUS_EMOJI), "Status must list every status"
assert set(get_args(DocAction)) == set(ACTIONS), "DocAction must list every action"


def _inside(repo: Repository, path: str) -> str:
    """``path`` relative to the root, if agents may read it: a diff would show the
    file's content, so the engine tools obey the same confinement as read_file."""
    resolved = repo.reader.scope.resolve(path)
    if resolved.rel is None:  # an allow-listed folder outside the repository
        raise ToolFailure(
            SCOPE_VIOLATION, f"{path} is outside the repository; rules apply inside it", path=path
        )
    return resolved.rel


def register_engine_tools(app: MCPServer[Any], door: Door) -> None:
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
            ctx,
            context,
            "plan_file",
            ONLY_PROJECT,
            lambda c, r, s: r.engine.plan_file(_inside(r, path)),
        )

    @app.tool()
    def run_rules(context: ContextArg, path: PathArg, ctx: Context) -> CallToolResult:
        """Apply the rules to a file and write the result (journaled like any rewrite)."""
        return door.serve(
            ctx,
            context,
            "run_rules",
            ONLY_PROJECT,
            lambda c, r, s: r.engine.run_rules(_inside(r, path)),
        )


def register(app: MCPServer[Any], door: Door) -> None:
    """Register every project-mode tool on ``app``."""
    register_engine_tools(app, door)
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

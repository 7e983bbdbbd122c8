"""Sentinel-mode tools: events in the day's sentinel log, bug and security cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult
from pydantic import Field

from scribe.mcp.cases import LANDING_STATUSES
from scribe.mcp.cases import SEVERITIES as CASE_SEVERITIES
from scribe.mcp.context import Call
from scribe.mcp.door import (
    ONLY_SENTINEL,
    ContextArg,
    Door,
    IdempotencyArg,
    Repository,
)
from scribe.mcp.sentinel import SEVERITIES as EVENT_SEVERITIES
from scribe.mcp.sessions import Session

EventSeverity = Literal["debug", "info", "warning", "error", "critical"]
CaseSeverity = Literal["low", "medium", "high", "critical"]
Landing = Literal["proposed", "merged", "verified"]
assert get_args(EventSeverity) == EVENT_SEVERITIES
assert get_args(CaseSeverity) == CASE_SEVERITIES
assert get_args(Landing) == LANDING_STATUSES


def register(app: MCPServer[Any], door: Door) -> None:
    """Register the sentinel-mode tools on ``app``."""

    @app.tool()
    async def append_event(
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

        async def work(call: Call, repo: Repository, session: Session) -> dict[str, Any]:
            return await repo.sentinel.append_event_soon(
                call,
                event_type=event_type,
                message=message,
                severity=severity,
                paths=paths or [],
                data=data,
                idempotency_key=idempotency_key,
            )

        return await door.serve_soon(ctx, context, "append_event", ONLY_SENTINEL, work)

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

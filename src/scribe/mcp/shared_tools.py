"""Tools of both modes: read_file (with provenance) and query_entries (the journal)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from scribe.mcp.context import Call
from scribe.mcp.door import (
    BOTH,
    ContextArg,
    Door,
    Limit,
    Repository,
)
from scribe.mcp.failures import (
    CONFLICT,
    INVALID_ARGUMENT,
    ToolFailure,
)
from scribe.mcp.reader import ReadAnswer, ReadMode, read_entry
from scribe.mcp.sessions import Session

#: full_stream answers stop after the chunk that reaches this many bytes of text;
#: ``next_cursor`` continues (a chunk is never cut, and memory stays bounded).
STREAM_PAGE_BYTES = 1 << 20

Scope = Literal["project", "sentinel", "all"]
Text = Annotated[str | None, Field(description="Words (or word prefixes) to search for.")]


def register(app: MCPServer[Any], door: Door) -> None:
    """Register read_file and query_entries on ``app``."""
    _register_read_file(app, door)
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


def _register_read_file(app: MCPServer[Any], door: Door) -> None:
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

"""The SDK's own floor for ``bench/mcp.py``'s stdio section.

An ``MCPServer`` with one tool, ``append_event``, that answers with a constant,
served by the SDK's stdio transport (``app.run("stdio")``), or with ``--pipes``
by the event-loop pipes ``scribe mcp`` serves on (``scribe.mcp.stdio``). It takes the same
arguments as Scribe's tool, so requests are the same size, and it is a plain
function, so the SDK runs it in a worker thread as it runs Scribe's tools. It
validates, journals and writes nothing: no MCP server answering over this SDK
can do less per call.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from scribe.mcp.server import loop_options
from scribe.mcp.stdio import serve_stdio

app: MCPServer[Any] = MCPServer("floor")

#: The shape of Scribe's answer, so answers are the same size too.
ANSWER = {
    "entry_id": "0" * 32,
    "seq": 0,
    "sentinel_day": "2026-01-01",
    "files": [
        ".scribe/sentinel/2026-01-01/sentinel.jsonl",
        ".scribe/sentinel/2026-01-01/SENTINEL_LOG.md",
    ],
}


@app.tool()
def append_event(context: dict[str, Any], event_type: str, message: str) -> dict[str, Any]:
    """Answer at once with a constant."""
    return ANSWER


if __name__ == "__main__":
    if "--pipes" in sys.argv:
        anyio.run(serve_stdio, app, backend_options=loop_options())
    else:
        app.run("stdio")

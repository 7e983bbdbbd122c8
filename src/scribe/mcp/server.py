"""The MCP server: the tools of both modes on one ``MCPServer``, behind the door
(``door.py``), served over stdio (``stdio.py``) or streamable HTTP (``http.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from scribe import __version__
from scribe.files import enable_writer_probe
from scribe.mcp import project_tools, sentinel_tools, shared_tools
from scribe.mcp.door import Door, Repository
from scribe.mcp.stdio import serve_stdio


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
    project_tools.register(app, door)
    sentinel_tools.register(app, door)
    shared_tools.register(app, door)
    return app, door


def run_stdio(app: MCPServer[Any]) -> None:
    """Serve one client over stdin/stdout; stdout carries protocol messages only (fd 1
    points at stderr while it serves)."""
    anyio.run(serve_stdio, app)

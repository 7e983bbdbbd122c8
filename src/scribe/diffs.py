"""The unified diff the journal records and ``scribe plan`` prints.

Its own module, so that what only writes diffs (the MCP document tools) need not
import the planner and every action behind it."""

from __future__ import annotations

import difflib


def unified_diff(path: str, old: str, new: str) -> str:
    """The unified diff (``a/PATH`` to ``b/PATH``) the journal and ``scribe plan`` show."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )

"""Helpers for the reader tests: files in every layout, aged files, and a read in a
child process whose peak memory is measured."""

from __future__ import annotations

import codecs
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scribe.mcp.context import AgentIdentity, Call, ExecutionContext, Mode

BOMS = {
    "utf-8": b"",
    "utf-8-sig": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
}
_BREAK = re.compile(r"\r\n|\r|\n")


def encode(text: str, encoding: str) -> bytes:
    """``text`` as a file in ``encoding``, BOM included."""
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    return BOMS[encoding] + text.encode(codec)


def reference_lines(text: str) -> list[str]:
    """The lines of ``text`` the way the reader counts them."""
    lines = _BREAK.split(text)
    if lines[-1] == "":
        lines.pop()
    return lines


def age(path: Path, seconds: float = 60) -> None:
    """Make ``path`` look modified ``seconds`` ago, so its scan may be kept."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def call_for(root: Path, mode: Mode = "project", project: str | None = None) -> Call:
    context = ExecutionContext(
        repo_root=str(root),
        mode=mode,
        execution_id="exec-7",
        agent_identity=AgentIdentity(id="test-agent", instance_id="inst-1"),
        intent="read a file for the tests",
        timestamp_utc=datetime.now(UTC),
        affected_dev_projects=["scribe"],
        project=project,
    )
    return Call(context, root, "session-3")


_CHILD = """
import json, resource, sys
from pathlib import Path
from scribe.mcp.paths import ReadScope
from scribe.mcp.reader import Reader

root, name, steps = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
reader = Reader(ReadScope(root))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {"file": reader.scan(name).file}
count = out["file"]["chunk_count"]
for step in steps:
    if step == "last_chunk":
        body = reader.chunk(name, count - 1).result
        out[step] = {k: v for k, v in body.items() if k != "text"} | {"chars": len(body["text"])}
    elif step == "middle_chunk":
        body = reader.chunk(name, count // 2).result
        out[step] = {k: v for k, v in body.items() if k != "text"} | {"chars": len(body["text"])}
    elif step == "first_line":
        body = reader.line_range(name, 1, 1).result
        out[step] = {k: v for k, v in body.items() if k != "lines"} | {"chars": len(body["lines"][0])}
    elif step == "search":
        out[step] = reader.search(name, "no such text", timeout_s=60).result
    elif step == "stream":
        size = 0
        for chunk in reader.stream(name):
            size += len(chunk["text"])
        out[step] = size
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["growth_kib"] = peak - base
print(json.dumps(out))
"""


def read_in_child(root: Path, name: str, steps: list[str]) -> dict[str, Any]:
    """Run ``steps`` on ``name`` in a fresh interpreter; its answers and how much its
    peak RSS grew (KiB) after the imports."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), name, ",".join(steps)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result

"""Skeletons of a project's documents, shipped with Scribe, and their creation.

Each template has ``<!-- ID: name -->`` anchors under its headings, so agents can
address a section by a name that survives a reworded heading. The placeholders
``{{project}}``, ``{{slug}}`` and ``{{date}}`` are replaced in one pass: a project
name that itself holds ``{{slug}}`` stays as written. A document is created only
where none exists: Scribe never overwrites one with a skeleton.
"""

from __future__ import annotations

import os
import re
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from scribe.diffs import unified_diff
from scribe.errors import OutsideRoot
from scribe.files import TEMP_PREFIX, TEMP_SUFFIX, fsync_dir, resolve_inside, sha256
from scribe.journal.entry import DOC_CHANGED, NewEntry
from scribe.journal.writer import JournalWriter
from scribe.mcp.context import Call
from scribe.mcp.failures import SCOPE_VIOLATION, ToolFailure
from scribe.records import done

#: The documents every project can have, in the order they are created.
FILES = ("ARCHITECTURE_GUIDE.md", "PHASE_PLAN.md", "CHECKLIST.md", "PROGRESS_LOG.md")

_PLACEHOLDER = re.compile(r"\{\{(project|slug|date)\}\}")


def render(filename: str, *, project: str, slug: str, day: date) -> str:
    """The template ``filename`` (one of ``FILES``) filled in for a project."""
    if filename not in FILES:
        raise ValueError(f"no template named {filename!r}; templates: {', '.join(FILES)}")
    source = resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")
    values = {"project": project, "slug": slug, "date": day.isoformat()}
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], source)


def create_doc(
    call: Call, journal: JournalWriter, root: Path, rel: str, text: str, **payload: Any
) -> int | None:
    """Create ``rel`` holding ``text`` unless something is already there; journal first.

    The content goes to a temp file, a ``DOC_CHANGED`` entry is committed, then the
    temp file is hard-linked into place, which fails rather than replace a file that
    appeared meanwhile. Returns the entry's seq, or None when the file existed (a
    race lost after journaling is closed as ``exists``).
    """
    path = root / rel
    if os.path.lexists(path):
        return None
    try:
        resolve_inside(root, rel)  # a .scribe/docs symlinked elsewhere is not written through
    except OutsideRoot as exc:
        raise ToolFailure(SCOPE_VIOLATION, f"{rel}: {exc}", path=rel) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    tmp = path.with_name(
        f"{TEMP_PREFIX}{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}"
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        intent = NewEntry(
            DOC_CHANGED,
            call.context.actor,
            path=rel,
            after_hash=sha256(data),
            diff=unified_diff(rel, "", text),
            message=f"created {rel}",
            payload=call.payload(action="create", **payload),
        )
        sealed = journal.append([intent])[0]
        try:
            os.link(tmp, path)
        except FileExistsError:
            journal.submit([done(sealed.seq, rel, "exists", written=False)])
            return None
        fsync_dir(path.parent)
        journal.submit([done(sealed.seq, rel, "written")])
        return sealed.seq
    finally:
        tmp.unlink(missing_ok=True)

"""``cascade_status``: mark a parent note done once all its children are."""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from scribe.actions import FileContext
from scribe.actions.content import FieldName
from scribe.actions.effects import Effect, Finding, WriteFile
from scribe.actions.knowledge.common import (
    Params,
    Scalar,
    deleted,
    equals,
    line_of,
    notes_of,
    own_fields,
)
from scribe.frontmatter import FrontmatterError, parse
from scribe.notes import Link, find_links

if TYPE_CHECKING:
    from scribe.notes import NoteIndex


class CascadeParams(Params):
    parent_field: FieldName = Field(
        "parent", description="the child's field naming its parent: [[Parent]] or a path"
    )
    status_field: FieldName = "status"
    done: Scalar = Field("done", description="the status that counts as done")
    reopen: bool = Field(False, description="set a done parent back when a child is not done")
    reopen_to: Scalar = Field("open", description="the status a reopened parent gets")


def cascade_status(ctx: FileContext, p: CascadeParams) -> Sequence[Effect]:
    """When a child changes, mark its parent done if every child of that parent is
    (and, with ``reopen``, set a done parent back when one is not); a parent marked
    done may finish its own parent in turn, all in this one event. The parent is
    written compare-and-swap, with only its status field changed. A parent link that
    is broken or ambiguous is a finding, and nothing is written::

        - id: cascade
          paths: ["tasks/**/*.md", "projects/**/*.md"]
          do:
            - cascade_status: {parent_field: parent, status_field: status, done: done}
    """
    notes = notes_of(ctx, "cascade_status")
    own = own_fields(ctx)
    if deleted(ctx) or p.parent_field not in own:
        return []
    family = _Family(ctx, notes, p.parent_field, own)
    is_done = equals(p.status_field, p.done)
    effects: list[Effect] = []
    node, seen = ctx.path, {ctx.path}
    while True:  # up the tree, as far as statuses change: a done task may finish a goal
        parent, problem = family.parent(node)
        if problem is not None:
            code, message = problem
            text = ctx.text if node == ctx.path else notes.text(node) or ""
            line = line_of(text, [p.parent_field])
            return [*effects, Finding(code, message, node, line=line)]
        if parent is None or parent in seen:
            return effects
        seen.add(parent)
        children_done = all(is_done(family.fields(c)) is None for c in family.children(parent))
        parent_done = is_done(family.fields(parent)) is None
        if children_done and not parent_done:
            status = p.done
        elif p.reopen and parent_done and not children_done:
            status = p.reopen_to
        else:
            return effects
        change = _set_status(notes, parent, p.status_field, status)
        effects.append(change)
        if isinstance(change, Finding):
            return effects
        family.overrides[parent] = parse(change.text).data
        node = parent


class _Family:
    """Which note is whose child: each note's parent link resolved once per event."""

    def __init__(
        self, ctx: FileContext, notes: NoteIndex, field: str, own: Mapping[str, Any]
    ) -> None:
        self.path, self.notes, self.field = ctx.path, notes, field
        #: Fields as they are about to be: the handled file's planned text, and
        #: parents whose status this event changes.
        self.overrides: dict[str, Mapping[str, Any]] = {ctx.path: own}
        self._children: dict[str, list[str]] | None = None

    def fields(self, path: str) -> Mapping[str, Any]:
        found = self.overrides.get(path)
        return found if found is not None else self.notes.frontmatter(path)

    def parent(self, path: str) -> tuple[str | None, tuple[str, str] | None]:
        """Where ``path``'s parent field leads, or the code and message of why it
        leads nowhere."""
        value = self.fields(path).get(self.field)
        if value is None:
            return None, None
        link, shown = _parent_link(value)
        where = f"{self.field} {shown}"
        if link is None:
            return None, ("broken_parent", f"{where} is not a link to a note")
        resolved = self.notes.resolve(link, path)
        if resolved.ambiguous:
            candidates = ", ".join(resolved.candidates)
            return None, ("ambiguous_parent", f"{where} could mean several notes: {candidates}")
        if resolved.path is None:
            return None, ("broken_parent", f"{where} names no note")
        if not self.notes.is_note(resolved.path):
            return None, ("broken_parent", f"{where} leads to {resolved.path}, not a note")
        return resolved.path, None

    def children(self, parent: str) -> list[str]:
        if self._children is None:
            self._children = {}
            for path in dict.fromkeys([*self.notes.paths(), self.path]):
                if self.field in self.fields(path):
                    found, _ = self.parent(path)
                    if found is not None:
                        self._children.setdefault(found, []).append(path)
        return self._children.get(parent, [])


def _parent_link(value: Any) -> tuple[Link | None, str]:
    """The one link a parent field holds, and the value as the messages show it."""
    if isinstance(value, list) and len(value) == 1:
        inner = value[0]
        if isinstance(inner, list) and len(inner) == 1 and isinstance(inner[0], str):
            value = f"[[{inner[0]}]]"  # ``parent: [[Note]]`` unquoted is a list in a list
        elif isinstance(inner, str):
            value = inner
    if not isinstance(value, str) or not value.strip():
        return None, repr(value)
    text = value.strip()
    links = find_links(text if "[" in text else f"[[{text}]]")  # a bare title or path
    return (links[0] if len(links) == 1 else None), repr(value)


def _set_status(notes: NoteIndex, path: str, field: str, status: Scalar) -> WriteFile | Finding:
    """The write that sets ``path``'s status, compare-and-swap on what it was read as."""
    read = _read_exactly(notes, path)
    if read is None:
        reason = notes.problem(path) or "it changed while it was read, or is not UTF-8"
        return Finding("parent_unreadable", f"{path} was left alone: {reason}", path)
    text, digest = read
    try:
        return WriteFile(path, parse(text).set(field, status), base_sha256=digest)
    except FrontmatterError as exc:
        return Finding("parent_unreadable", f"{path} was left alone: {exc}", path, line=1)


def _read_exactly(notes: NoteIndex, path: str) -> tuple[str, str] | None:
    """``path``'s text and the hash of the very bytes it was decoded from.

    The index hands out text and hash in two calls, and the file may change in
    between; a write based on one and checked against the other could replace an
    edit. So the hash must be that of the text itself (UTF-8, with or without BOM).
    """
    text, digest = notes.text(path), notes.sha256(path)
    if text is None or digest is None:
        return None
    raw = text.encode("utf-8")
    for data in (raw, codecs.BOM_UTF8 + raw):
        if hashlib.sha256(data).hexdigest() == digest:
            return text, digest
    return None

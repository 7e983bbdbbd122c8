"""``generate_index``: a markdown index of notes (a backlog grouped by status, a
tag page), written whole whenever one of them changes."""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import jinja2
from pydantic import Field, field_validator

from scribe.actions import FileContext
from scribe.actions.content import FieldName, TemplateText
from scribe.actions.effects import Effect, WriteFile
from scribe.actions.knowledge.common import (
    FieldCheck,
    FieldTestValue,
    Globs,
    Params,
    Scalar,
    deleted,
    field_checks,
    matcher,
    notes_of,
    own_fields,
    render,
    repo_path,
)
from scribe.notes import note_title, title_key
from scribe.rules.templates import Template, compile_template

if TYPE_CHECKING:
    from scribe.notes import NoteIndex


def _steady(value: Any) -> Any:
    for template in value if isinstance(value, list) else [value]:
        if isinstance(template, Template) and template.volatile:
            raise ValueError("must not call now(): the same notes must give the same index")
    return value


class IndexParams(Params):
    output: TemplateText = Field(description="the generated file, a repository path")
    paths: Globs = Field(
        default_factory=lambda: [compile_template("**/*.md")],
        min_length=1,
        description="globs of the notes to list (the output is never one of them)",
    )
    exclude: Globs = Field(default_factory=list, description="globs of notes to leave out")
    where: dict[FieldName, FieldTestValue] = Field(
        default_factory=dict, description="frontmatter tests a note must pass, as in when:"
    )
    group_by: FieldName | None = Field(None, description="a field: one section per value")
    group_order: list[Scalar] = Field(
        default_factory=list, description="these groups first, in this order; the others after"
    )
    ungrouped: str = Field("Other", description="the section of notes without the field")
    sort_by: FieldName = Field("title", description="title, path, or a frontmatter field")
    reverse: bool = False
    title: TemplateText | None = Field(None, description="the index's heading")
    item: TemplateText = Field(
        default_factory=lambda: compile_template("- [[{{ title }}]]"),
        description="one note's line; sees title, path, stem, parent and field(name)",
    )

    @field_validator("output", "paths", "exclude", "title", "item")
    @classmethod
    def _no_now(cls, value: Any) -> Any:
        return _steady(value)


@dataclass(frozen=True)
class _Note:
    path: str
    title: str
    fields: Mapping[str, Any]


def generate_index(ctx: FileContext, p: IndexParams) -> Sequence[Effect]:
    """The whole index file, from the notes as they are now: the handled file as
    planned, the others as the note index has them (a deleted one is gone from it
    already). The output is never listed; the same notes give the same text, and
    the engine skips a write that changes nothing::

        - id: backlog
          on: [created, modified, deleted, moved]
          paths: ["tasks/**/*.md"]
          do:
            - generate_index:
                output: backlog.md
                paths: ["tasks/**/*.md"]
                group_by: status
                group_order: [todo, doing, done]
                title: Backlog
    """
    notes = notes_of(ctx, "generate_index")
    output = repo_path(render(ctx, p.output), "output")
    include = tuple(render(ctx, t) for t in p.paths)
    exclude = tuple(render(ctx, t) for t in p.exclude)
    tests = field_checks(p.where)
    gone = ctx.path if deleted(ctx) else None
    own = own_fields(ctx)
    title = render(ctx, p.title) if p.title is not None else None
    key = (id(notes), id(p), output, include, exclude, title)
    revision = notes.revision  # read first: a change from now on makes what follows stale
    text = _kept_index(key, notes, p, revision, ctx.path, gone, own, tests, include, exclude)
    if text is None:
        listed = []
        wanted, unwanted = matcher(include), matcher(exclude) if exclude else None
        for path in notes.paths():
            if path in (output, gone) or not wanted(path) or (unwanted and unwanted(path)):
                continue
            fields = own if path == ctx.path else notes.frontmatter(path)
            if all(test(fields) is None for test in tests):
                listed.append(_Note(path, note_title(path), fields))
        text = _index_text(ctx, p, listed)
        with _KEPT_LOCK:
            _KEPT[key] = _Kept(notes, p, revision, text, {n.path: n.fields for n in listed})
    if text == notes.text(output):
        return []  # current already: ``scribe plan`` has nothing to announce
    return [WriteFile(output, text)]


@dataclass(frozen=True)
class _Kept:
    """An index as last generated, and what it was generated from."""

    notes: NoteIndex
    params: IndexParams
    revision: int
    text: str
    fields: Mapping[str, Mapping[str, Any]]  # the listed notes' fields


#: The last text of each index, so that a run over many unchanged notes regenerates
#: it once, not once per note (which would cost the whole index every time).
_KEPT: dict[tuple[Any, ...], _Kept] = {}
_KEPT_LOCK = threading.Lock()


def _kept_index(
    key: tuple[Any, ...],
    notes: NoteIndex,
    p: IndexParams,
    revision: int,
    path: str,
    gone: str | None,
    own: Mapping[str, Any],
    tests: Sequence[FieldCheck],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
) -> str | None:
    """The kept text of this index if it still holds: nothing in the note index
    changed since, and the handled file is listed (or not) with the same fields as
    then (its planned fields may differ from those on disk)."""
    with _KEPT_LOCK:
        kept = _KEPT.get(key)
    if kept is None or kept.notes is not notes or kept.params is not p:
        return None
    if kept.revision != revision:
        return None
    if gone is not None:
        return kept.text if gone not in kept.fields else None
    listed = (
        matcher(include)(path)
        and not (exclude and matcher(exclude)(path))
        and all(test(own) is None for test in tests)
    )
    if listed != (path in kept.fields) or (listed and kept.fields[path] != own):
        return None
    return kept.text


def _index_text(ctx: FileContext, p: IndexParams, listed: Sequence[_Note]) -> str:
    blocks = [f"# {_one_line(render(ctx, p.title))}"] if p.title is not None else []
    ordered = _sorted(listed, p.sort_by, p.reverse)
    if p.group_by is None:
        blocks.append(_items(p, ordered))
    else:
        blocks += [f"## {label}\n\n{_items(p, group)}" for label, group in _groups(ordered, p)]
    body = "\n\n".join(block for block in blocks if block)
    return body + "\n" if body else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _items(p: IndexParams, notes: Sequence[_Note]) -> str:
    return "\n".join(_item(p.item, note) for note in notes)


def _item(template: Template, note: _Note) -> str:
    """One note's line. Its context is built here rather than by ``template_context``:
    an index renders every note on every change, and ``now()``, ``capture()`` and
    ``event`` mean nothing for an item anyway."""
    if template.compiled is None:
        return template.source
    fields = note.fields

    def field(name: str, default: Any = None) -> Any:
        return fields.get(name, default)

    context = {
        "title": note.title,
        "path": note.path,
        "stem": note.title,
        "parent": posixpath.dirname(note.path) or ".",
        "field": field,
    }
    try:
        return template.compiled.render(context).rstrip("\r\n")
    except jinja2.UndefinedError as exc:
        raise ValueError(f"item: {exc.message} (a note's fields are field('name'))") from None


def _rank(value: Any) -> tuple[int, Any]:
    """A sort key that orders any two field values: numbers, then dates, then text."""
    if isinstance(value, bool):
        return (3, str(value))
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, date):
        return (1, value.isoformat())
    if isinstance(value, str):
        return (2, title_key(value))
    return (3, str(value))


def _sorted(notes: Sequence[_Note], sort_by: str, reverse: bool) -> list[_Note]:
    def value(note: _Note) -> Any:
        if sort_by == "title":
            return note.title
        return note.path if sort_by == "path" else note.fields.get(sort_by)

    by_title = sorted(notes, key=lambda n: (title_key(n.title), n.path))
    present = [n for n in by_title if value(n) is not None]
    present.sort(key=lambda n: _rank(value(n)), reverse=reverse)  # stable: ties by title
    return present + [n for n in by_title if value(n) is None]


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _one_line(value.isoformat() if isinstance(value, date) else str(value))


def _groups(notes: Sequence[_Note], p: IndexParams) -> list[tuple[str, list[_Note]]]:
    """Sections in order: ``group_order`` first, the other values sorted, then the
    notes without a value. A list field puts a note in the section of each item."""
    assert p.group_by is not None
    groups: dict[str, list[_Note]] = {}
    first_value: dict[str, Any] = {}
    ungrouped = []
    for note in notes:
        value = note.fields.get(p.group_by)
        labels: dict[str, Any] = {}
        for item in value if isinstance(value, list) else [value]:
            if item is not None and _label(item):
                labels.setdefault(_label(item), item)
        if not labels:
            ungrouped.append(note)
        for label, item in labels.items():
            groups.setdefault(label, []).append(note)
            first_value.setdefault(label, item)
    wanted = list(dict.fromkeys(_label(v) for v in p.group_order))
    rest = sorted((g for g in groups if g not in wanted), key=lambda g: _rank(first_value[g]))
    ordered = [(g, groups[g]) for g in wanted if g in groups] + [(g, groups[g]) for g in rest]
    return ordered + ([(_one_line(p.ungrouped), ungrouped)] if ungrouped else [])

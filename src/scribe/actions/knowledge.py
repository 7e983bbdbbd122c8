"""The knowledge actions: views and checks over a repository's notes.

* ``generate_index`` writes a markdown index of notes (a backlog grouped by status,
  a tag page), whole, whenever one of them changes;
* ``cascade_status`` marks a parent note done once all its children are;
* ``create_from_template`` creates a note from a template file when a pattern appears;
* ``validate_frontmatter`` checks a note's frontmatter against a JSON Schema file.

All four are effect actions: they read the file being handled and, through
``ctx.notes``, the other notes, and return the writes and findings the engine
then carries out. Each is deterministic, so running it again over unchanged notes
asks for nothing new (a write that changes nothing is skipped).
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import hashlib
import json
import posixpath
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import jinja2
import regex
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import core_schema
from wcmatch import glob

from scribe.actions import Effects, FileContext
from scribe.actions.content import FieldName, Pattern, TemplateText
from scribe.actions.effects import Effect, Finding, WriteFile
from scribe.events import EventKind
from scribe.frontmatter import FrontmatterError, find_block, parse
from scribe.notes import Link, find_links, note_title, title_key
from scribe.rules.templates import Template, compile_template
from scribe.yaml_scalars import Loader

if TYPE_CHECKING:
    from scribe.notes import NoteIndex

_GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.BRACE | glob.NEGATE
Scalar = str | bool | int | float


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Globs = Annotated[list[TemplateText], BeforeValidator(_one_or_many)]


class _FieldTest:
    """A test on one frontmatter field, exactly as a rule's ``when: frontmatter:``
    has it (``scribe.rules.model.FieldTest``). Imported when first used: the rules
    model imports the built-in actions, this module among them."""

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> Any:
        def validate(value: Any) -> Any:
            from scribe.rules.model import FieldTest

            return FieldTest.model_validate(value)

        return core_schema.no_info_plain_validator_function(validate)

    @classmethod
    def __get_pydantic_json_schema__(cls, _schema: Any, handler: Any) -> Any:
        from scribe.rules.model import FieldTest

        return handler(FieldTest.__pydantic_core_schema__)


FieldTestValue = Annotated[Any, _FieldTest]
#: ``(fields) -> None`` when they pass, else why not (``scribe.rules.match``).
FieldCheck = Callable[[Mapping[str, Any]], "str | None"]


def _field_checks(tests: Mapping[str, Any]) -> list[FieldCheck]:
    from scribe.rules.match import field_test  # imported late: the rules import the actions

    return [field_test(name, test) for name, test in tests.items()]


def _equals(field: str, value: Scalar) -> FieldCheck:
    """Whether ``field`` equals ``value``, by the rule of ``when: frontmatter:``."""
    from scribe.rules.model import FieldTest

    (check,) = _field_checks({field: FieldTest(equals=value)})
    return check


def _notes(ctx: FileContext, action: str) -> NoteIndex:
    if ctx.notes is None:
        raise ValueError(f"{action} needs the repository's notes")
    return ctx.notes


def _deleted(ctx: FileContext) -> bool:
    return ctx.event.get("kind") == EventKind.DELETED.value


def _own_fields(ctx: FileContext) -> Mapping[str, Any]:
    """The fields of the file being handled, as planned so far (none if unreadable,
    as the note index has them for other notes)."""
    try:
        return ctx.frontmatter.data
    except FrontmatterError:
        return {}


def _render(ctx: FileContext, template: Template) -> str:
    """``template`` for this file. Fixed text needs no fields, so a note whose
    frontmatter does not parse still gets it (``ctx.render`` would parse it)."""
    return template.source if template.compiled is None else str(ctx.render(template))


def _repo_path(value: str, what: str) -> str:
    """A rendered path, normalised; ValueError unless it stays inside the repository."""
    path = posixpath.normpath(value.strip()) if value.strip() else "."
    if path in (".", "..") or path.startswith(("/", "../")) or value.strip().endswith("/"):
        raise ValueError(f"{what} {value!r} is not a path inside the repository")
    return path


@functools.lru_cache(maxsize=256)
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    return glob.compile(list(patterns), flags=_GLOB_FLAGS).match


def _line_of(text: str, keys: Sequence[str | int]) -> int:
    """The file line of the frontmatter entry at ``keys`` (``["tags", 2]``): of its
    key in a mapping, of the item in a list; the nearest enclosing entry's when it
    is not written out, and the block's first line for the block itself."""
    try:
        block = find_block(text)
        node = (
            yaml.compose(text[block.yaml_start : block.yaml_end], Loader=Loader) if block else None
        )
    except (FrontmatterError, yaml.YAMLError):
        return 1
    if block is None:
        return 1
    first, line = text.count("\n", 0, block.yaml_start) + 1, 1
    for key in keys:
        found: tuple[Any, Any] | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:  # the last of duplicate keys is the one that counts
                if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                    found = (v, k.start_mark)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            found = (node.value[key], node.value[key].start_mark)
        if found is None:
            break
        node, mark = found
        line = first + mark.line
    return line


# -- generate_index ------------------------------------------------------------------


def _steady(value: Any) -> Any:
    for template in value if isinstance(value, list) else [value]:
        if isinstance(template, Template) and template.volatile:
            raise ValueError("must not call now(): the same notes must give the same index")
    return value


class IndexParams(_Params):
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
    notes = _notes(ctx, "generate_index")
    output = _repo_path(_render(ctx, p.output), "output")
    include = tuple(_render(ctx, t) for t in p.paths)
    exclude = tuple(_render(ctx, t) for t in p.exclude)
    tests = _field_checks(p.where)
    gone = ctx.path if _deleted(ctx) else None
    own = _own_fields(ctx)
    title = _render(ctx, p.title) if p.title is not None else None
    key = (id(notes), id(p), output, include, exclude, title)
    revision = notes.revision  # read first: a change from now on makes what follows stale
    text = _kept_index(key, notes, p, revision, ctx.path, gone, own, tests, include, exclude)
    if text is None:
        listed = []
        wanted, unwanted = _matcher(include), _matcher(exclude) if exclude else None
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
        _matcher(include)(path)
        and not (exclude and _matcher(exclude)(path))
        and all(test(own) is None for test in tests)
    )
    if listed != (path in kept.fields) or (listed and kept.fields[path] != own):
        return None
    return kept.text


def _index_text(ctx: FileContext, p: IndexParams, listed: Sequence[_Note]) -> str:
    blocks = [f"# {_one_line(_render(ctx, p.title))}"] if p.title is not None else []
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


# -- cascade_status ------------------------------------------------------------------


class CascadeParams(_Params):
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
    notes = _notes(ctx, "cascade_status")
    own = _own_fields(ctx)
    if _deleted(ctx) or p.parent_field not in own:
        return []
    family = _Family(ctx, notes, p.parent_field, own)
    is_done = _equals(p.status_field, p.done)
    effects: list[Effect] = []
    node, seen = ctx.path, {ctx.path}
    while True:  # up the tree, as far as statuses change: a done task may finish a goal
        parent, problem = family.parent(node)
        if problem is not None:
            code, message = problem
            text = ctx.text if node == ctx.path else notes.text(node) or ""
            line = _line_of(text, [p.parent_field])
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


# -- create_from_template ------------------------------------------------------------


class CreateParams(_Params):
    template: TemplateText = Field(description="the template file, a repository path")
    path: TemplateText = Field(
        description="the new note's path, e.g. incidents/{{ capture('id') }}.md"
    )
    each: Pattern | None = Field(
        None,
        description="one note per match of this regex in the text; its named groups "
        "become captures",
    )


def create_from_template(ctx: FileContext, p: CreateParams) -> Sequence[Effect]:
    """A new note from the template file, rendered like any template (``path``,
    ``stem``, ``field()``, ``capture()``, ``now()``...) plus the new note's ``title``
    and ``new_path``. A note already there is never overwritten::

        - id: open-incident
          paths: ["journal/**/*.md"]
          when:
            - content: '\\b(?P<id>INC-\\d+)\\b'
          do:
            - create_from_template:
                template: templates/incident.md
                path: "incidents/{{ capture('id') }}.md"
    """
    notes = _notes(ctx, "create_from_template")
    if _deleted(ctx):
        return []
    where = _repo_path(_render(ctx, p.template), "template")
    source = notes.text(where)
    if source is None:
        raise ValueError(f"template {where}: {notes.problem(where) or 'cannot be read'}")
    try:
        template = _compiled(source)
    except ValueError as exc:
        raise ValueError(f"template {where}: {exc}") from None
    effects: dict[str, Effect] = {}
    for captures in _occurrences(ctx, p.each):
        local = dataclasses.replace(ctx, captures={**ctx.captures, **captures})
        path = _new_note_path(_render(local, p.path))
        if path in effects or path in (ctx.path, where) or notes.exists(path):
            continue  # never overwritten: the engine would refuse, and plan says nothing
        context = local.template_context()
        context.update(title=note_title(path), new_path=path)
        try:
            text = template.render(context)
        except jinja2.TemplateError as exc:
            raise ValueError(f"template {where}: {exc}") from None
        effects[path] = WriteFile(path, text, create_only=True)
    return list(effects.values())


@functools.lru_cache(maxsize=64)
def _compiled(source: str) -> Template:
    """A template file compiled once per content (the text is the cache key)."""
    return compile_template(source)


def _occurrences(ctx: FileContext, each: str | None) -> list[dict[str, str]]:
    if each is None:
        return [{}]
    found = regex.compile(each, regex.MULTILINE).finditer(ctx.text, timeout=ctx.regex_timeout)
    return [{k: v for k, v in m.groupdict().items() if v is not None} for m in found]


def _new_note_path(value: str) -> str:
    path = _repo_path(value, "the new note's path")
    name = posixpath.basename(path)
    if not name.rpartition(".")[0] and "." in name:
        raise ValueError(f"the new note's path {value!r} has no name (is a capture empty?)")
    return path


# -- validate_frontmatter ------------------------------------------------------------


class ValidateParams(_Params):
    schema_: TemplateText = Field(
        alias="schema", description="the JSON Schema file (JSON, or YAML if it ends .yaml/.yml)"
    )
    fail: bool = Field(False, description="findings make scribe check and scribe run exit 1")


def validate_frontmatter(ctx: FileContext, p: ValidateParams) -> Sequence[Effect]:
    """One ``invalid_frontmatter`` finding per violation of the schema, at the line
    of the offending key (the frontmatter's first line for what concerns the block
    as a whole, such as a missing required field). Formats (``date``, ``email``...)
    are checked; YAML dates are validated as their ISO text (see ``_json_ready``)::

        - id: note-schema
          paths: ["notes/**/*.md"]
          do:
            - validate_frontmatter: {schema: schemas/note.json, fail: true}
    """
    notes = _notes(ctx, "validate_frontmatter")
    if _deleted(ctx):
        return []
    try:
        data = ctx.frontmatter.data
    except FrontmatterError as exc:  # no schema can pass it: that alone is the finding
        return [Finding("invalid_frontmatter", f"frontmatter: {exc}", ctx.path, 1, fail=p.fail)]
    where = _repo_path(_render(ctx, p.schema_), "schema")
    source = notes.text(where)
    if source is None:
        raise ValueError(f"schema {where}: {notes.problem(where) or 'cannot be read'}")
    import referencing.exceptions  # with jsonschema: only repositories that validate

    validator = _validator(source, where.endswith((".yaml", ".yml")), where)
    try:
        errors = list(validator.iter_errors(_json_ready(data)))
    except referencing.exceptions.Unresolvable as exc:
        raise ValueError(
            f"schema {where}: cannot resolve {getattr(exc, 'ref', str(exc))!r} "
            "(references to other documents are not followed)"
        ) from None
    found = []
    for error in errors:
        keys = list(error.absolute_path)
        field = _field_path(keys)
        found.append(
            Finding(
                "invalid_frontmatter",
                f"{field}: {error.message}",
                ctx.path,
                line=_line_of(ctx.text, keys),
                data={"field": field, "schema": where, "keyword": str(error.validator)},
                fail=p.fail,
            )
        )
    return sorted(found, key=lambda f: (f.line or 0, f.message))


@functools.lru_cache(maxsize=32)
def _validator(source: str, yaml_syntax: bool, where: str) -> Any:
    """The schema's validator, built once per content (the text is the cache key)."""
    import referencing
    from jsonschema import validators  # type: ignore[import-untyped]
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

    try:
        schema = yaml.load(source, Loader=Loader) if yaml_syntax else json.loads(source)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "YAML" if yaml_syntax else "JSON"
        raise ValueError(f"schema {where} is not valid {kind}: {exc}") from None
    if not isinstance(schema, dict | bool):
        raise ValueError(f"schema {where} must hold a JSON object, not {type(schema).__name__}")
    schema = _json_ready(schema)
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        at = _field_path(list(exc.absolute_path), whole="the top level")
        message = f"schema {where} is not a valid JSON Schema: {exc.message} (at {at})"
        raise ValueError(message) from None
    # An empty registry: a $ref to another document fails instead of being fetched.
    return cls(schema, registry=referencing.Registry(), format_checker=cls.FORMAT_CHECKER)


def _json_ready(value: Any) -> Any:
    """Frontmatter as JSON would hold it. YAML dates and timestamps become the ISO
    8601 text they were written as (``2026-03-01``, ``2026-03-01T10:00:00``), so
    ``type: string, format: date`` accepts a date and rejects a timestamp."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_json_ready(v) for v in value), key=str)
    return value


_PLAIN_KEY = re.compile(r"[\w-]+")


def _field_path(keys: Sequence[str | int], whole: str = "frontmatter") -> str:
    """``tags[2]``, ``owner.email``; ``whole`` for the document itself."""
    out = ""
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
        elif _PLAIN_KEY.fullmatch(key):
            out += f".{key}" if out else key
        else:
            out += f"[{json.dumps(key)}]"
    return out or whole


BUILTINS = (
    Effects(
        "generate_index",
        IndexParams,
        generate_index,
        "Write an index of notes (grouped, sorted, filtered) whenever one changes.",
    ),
    Effects(
        "cascade_status",
        CascadeParams,
        cascade_status,
        "Mark a parent note done once all its children are (and reopen it, if asked).",
    ),
    Effects(
        "create_from_template",
        CreateParams,
        create_from_template,
        "Create a new note from a template file; never overwrites one.",
    ),
    Effects(
        "validate_frontmatter",
        ValidateParams,
        validate_frontmatter,
        "Check the frontmatter against a JSON Schema file; each violation is a finding.",
    ),
)

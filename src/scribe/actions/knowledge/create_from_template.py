"""``create_from_template``: create a note from a template file when a pattern
appears; never overwrite one."""

from __future__ import annotations

import dataclasses
import functools
import posixpath
from collections.abc import Sequence
from typing import TYPE_CHECKING

import jinja2
import regex
from pydantic import Field

from scribe.actions import FileContext
from scribe.actions.content import Pattern, TemplateText
from scribe.actions.effects import Effect, WriteFile
from scribe.actions.knowledge.common import Params, deleted, notes_of, render, repo_path
from scribe.notes import note_title
from scribe.rules.templates import Template, compile_template

if TYPE_CHECKING:
    pass


class CreateParams(Params):
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
    notes = notes_of(ctx, "create_from_template")
    if deleted(ctx):
        return []
    where = repo_path(render(ctx, p.template), "template")
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
        path = _new_note_path(render(local, p.path))
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
    path = repo_path(value, "the new note's path")
    name = posixpath.basename(path)
    if not name.rpartition(".")[0] and "." in name:
        raise ValueError(f"the new note's path {value!r} has no name (is a capture empty?)")
    return path

"""Actions: what a rule's steps do. ``ACTIONS`` maps each name to its action.

A content action is pure: it takes a ``FileContext`` and its validated parameters
and returns the file's new text. Nothing here touches the disk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from scribe.frontmatter import Frontmatter, parse
from scribe.rules.templates import Template, template_context


@dataclass(frozen=True)
class FileContext:
    """What a step may look at: the text so far, the event time, the rule's captures."""

    path: str
    text: str
    time: datetime
    captures: Mapping[str, str] = field(default_factory=dict)
    #: False when the file has not changed apart from stamped fields since Scribe last
    #: saw it; volatile steps (``now()``) then leave fields that already exist alone.
    may_restamp: bool = True
    regex_timeout: float = 1.0

    @cached_property
    def frontmatter(self) -> Frontmatter:
        return parse(self.text)

    @property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"

    def with_text(self, text: str) -> FileContext:
        return dataclasses.replace(self, text=text)

    def template_context(self) -> dict[str, Any]:
        """The names a template sees for this file (see ``template_context``)."""
        return template_context(
            path=self.path, time=self.time, fields=self.frontmatter.data, captures=self.captures
        )

    def render(self, value: Any) -> Any:
        """Render templates (recursively inside lists and mappings); pass others through."""
        if isinstance(value, Template):
            return value.render(self.template_context())
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if isinstance(value, dict):
            return {k: self.render(v) for k, v in value.items()}
        return value


@dataclass(frozen=True)
class Action:
    """A named step: its parameter model and the pure function that plans it."""

    name: str
    params: type[BaseModel]
    plan: Callable[[FileContext, Any], str]
    summary: str
    #: Fields the step writes with a value that changes every run (``now()``).
    stamps: Callable[[Any], tuple[str, ...]] = lambda _params: ()


def _builtins() -> dict[str, Action]:
    from scribe.actions import content

    return {a.name: a for a in content.BUILTINS}


ACTIONS: dict[str, Action] = _builtins()

__all__ = ["ACTIONS", "Action", "FileContext"]

"""Actions: what a rule's steps do. ``ACTIONS`` maps each built-in name to its action.

An action is any object with a ``name``, a pydantic ``params`` model, a one-line
``summary`` and either ``plan`` or ``effects``:

- a *content* action's ``plan(file, params)`` returns the file's new text;
- an *effect* action's ``effects(file, params)`` returns effects (commands, events,
  writes to other files, findings) that the engine runs after the write.

Both are pure: they read the ``FileContext`` (and, through ``file.notes``, the
repository's notes) and never touch the disk. ``Content`` and ``Effects`` build
such objects from functions; plug-ins may use them or any class of their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, runtime_checkable

from pydantic import BaseModel

from scribe.actions.effects import Effect
from scribe.frontmatter import Frontmatter, parse
from scribe.rules.templates import Template, template_context

if TYPE_CHECKING:
    from scribe.notes.index import NoteIndex


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
    #: The repository's notes, for actions that look beyond this file (links,
    #: indexes); None where no repository is at hand (a bare ``plan_file``).
    notes: NoteIndex | None = None
    #: The event being handled: ``kind``, ``name`` and ``data`` (custom events),
    #: ``depth`` (how many emits led to it).
    event: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def frontmatter(self) -> Frontmatter:
        return parse(self.text)

    @property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"

    def with_text(self, text: str) -> FileContext:
        """This context with ``text``; itself (and its parsed frontmatter) if unchanged."""
        return self if text == self.text else dataclasses.replace(self, text=text)

    def template_context(self) -> dict[str, Any]:
        """The names a template sees for this file (see ``template_context``)."""
        return template_context(
            path=self.path,
            time=self.time,
            fields=self.frontmatter.data,
            captures=self.captures,
            event=self.event,
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


class _Step(Protocol):
    """What every action has: the name rules call it by, its parameters, a summary."""

    @property
    def name(self) -> str: ...
    @property
    def params(self) -> type[BaseModel]: ...
    @property
    def summary(self) -> str: ...


@runtime_checkable
class ContentAction(_Step, Protocol):
    """An action that rewrites the file: ``plan`` returns its new text."""

    def plan(self, file: FileContext, params: Any) -> str: ...


@runtime_checkable
class EffectAction(_Step, Protocol):
    """An action with effects beyond the file: ``effects`` says which."""

    def effects(self, file: FileContext, params: Any) -> Sequence[Effect]: ...


Action = ContentAction | EffectAction


def is_content(action: Action) -> TypeGuard[ContentAction]:
    return callable(getattr(action, "plan", None))


def stamps_of(action: Action, params: Any) -> tuple[str, ...]:
    """Fields ``action`` writes with a value that changes every run (``now()``)."""
    stamps = getattr(action, "stamps", None)
    return tuple(stamps(params)) if callable(stamps) else ()


def self_contained(action: Action) -> bool:
    """Whether ``action``'s result depends on its own file alone (text, path, time,
    captures), never on other files: then rewriting another file cannot change it.
    An action says so with ``self_contained = True``; one that does not is assumed
    to look around (through ``file.notes``, or at the disk)."""
    return getattr(action, "self_contained", False) is True


@dataclass(frozen=True)
class Content:
    """A content action made of a parameter model and a pure function."""

    name: str
    params: type[BaseModel]
    plan: Callable[[FileContext, Any], str]
    summary: str
    #: Fields the step writes with a value that changes every run (``now()``).
    stamps: Callable[[Any], tuple[str, ...]] = lambda _params: ()
    #: The result depends on the file alone (see ``self_contained``).
    self_contained: bool = False


@dataclass(frozen=True)
class Effects:
    """An effect action made of a parameter model and a pure function."""

    name: str
    params: type[BaseModel]
    effects: Callable[[FileContext, Any], Sequence[Effect]]
    summary: str


def _builtins() -> dict[str, Action]:
    from scribe.actions import content, engine_effects, knowledge, linking

    modules = (content, engine_effects, linking, knowledge)
    return {a.name: a for module in modules for a in module.BUILTINS}


ACTIONS: dict[str, Action] = _builtins()

__all__ = [
    "ACTIONS",
    "Action",
    "Content",
    "ContentAction",
    "EffectAction",
    "Effects",
    "FileContext",
    "is_content",
    "self_contained",
    "stamps_of",
]

"""Values in rules are Jinja2 templates rendered in a sandbox.

Templates are compiled once when the rules load, so a syntax error is reported with
the rule's file and line, not at the first event. A template that calls ``now()`` is
*volatile*: its output differs run to run, which the planner must know to keep
rewrites idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)


@dataclass(frozen=True)
class Template:
    """A compiled template; constant text skips Jinja entirely."""

    source: str
    compiled: jinja2.Template | None
    volatile: bool

    def render(self, context: Mapping[str, Any]) -> str:
        if self.compiled is None:
            return self.source
        return self.compiled.render(context)


def compile_template(source: str) -> Template:
    """Compile ``source``; raise ValueError (reported with its location) if invalid."""
    if "{{" not in source and "{%" not in source:
        return Template(source, None, volatile=False)
    try:
        names = meta.find_undeclared_variables(_ENV.parse(source))
        compiled = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error: {exc.message}") from None
    return Template(source, compiled, volatile="now" in names)


def template_context(
    *,
    path: str,
    time: datetime,
    fields: Mapping[str, Any],
    captures: Mapping[str, str],
    event: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The names a template can use: path, stem, parent, event, now(), field(), capture()."""
    pure = PurePosixPath(path)

    def now(format: str | None = None, tz: str | None = None) -> str:
        try:
            zone = ZoneInfo(tz) if tz else UTC
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"now(): unknown time zone {tz!r}") from None
        moment = time.astimezone(zone)
        return moment.strftime(format) if format else moment.isoformat(timespec="seconds")

    def field(name: str, default: Any = None) -> Any:
        return fields.get(name, default)

    def capture(name: str, default: str = "") -> str:
        return captures.get(name, default)

    functions: dict[str, Callable[..., Any]] = {"now": now, "field": field, "capture": capture}
    return {
        "path": path,
        "stem": pure.stem,
        "parent": pure.parent.as_posix(),
        "event": dict(event or {}),
        **functions,
    }

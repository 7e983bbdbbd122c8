"""Rules compiled once into plain functions of (event kind, path, file).

Every miss carries its reason, which is what ``scribe rules --explain`` prints.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import pathspec
import regex
from pydantic import BaseModel
from wcmatch import glob

from scribe.actions import Action, FileContext, stamps_of
from scribe.events import EventKind
from scribe.rules.model import Condition, FieldTest

_GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.BRACE | glob.NEGATE


@dataclass(frozen=True)
class Verdict:
    matched: bool
    reason: str
    captures: Mapping[str, str] = field(default_factory=dict)


_MATCHED = Verdict(True, "matched")
#: Paths whose glob verdict a rule keeps (the least recently asked go first).
_PATHS_REMEMBERED = 8192

#: A compiled condition: ``(context, size in bytes) -> verdict``.
Check = Callable[[FileContext, int], Verdict]


@dataclass(frozen=True)
class Step:
    action: Action
    params: BaseModel
    #: What a plug-in's manifest lets it write (gitignore-style globs) and run
    #: (absolute paths); None for built-ins, which only the engine's confinement binds.
    write: tuple[str, ...] | None = None
    commands: tuple[str, ...] | None = None

    @cached_property
    def _write_spec(self) -> pathspec.GitIgnoreSpec | None:
        return None if self.write is None else pathspec.GitIgnoreSpec.from_lines(self.write)

    def write_refusal(self, path: str) -> str | None:
        """Why this step's action may not change ``path`` (repository-relative), or
        None when its manifest lets it."""
        spec = self._write_spec
        if spec is None or spec.match_file(path):
            return None
        allowed = ", ".join(self.write or ()) or "no files"
        return f"action {self.action.name!r} may not write {path} (its manifest allows: {allowed})"


@dataclass(frozen=True)
class CompiledRule:
    id: str
    description: str
    enabled: bool
    priority: int
    on: frozenset[EventKind]
    #: Names of the custom events that trigger the rule (``on: {event: NAME}``).
    events: frozenset[str]
    paths: tuple[str, ...]
    exclude: tuple[str, ...]
    steps: tuple[Step, ...]
    checks: tuple[Check, ...]
    #: Frontmatter fields this rule writes with values that change every run.
    stamps: tuple[str, ...]
    #: Hash of the rule's definition: a changed rule gets quarantined files retried.
    fingerprint: str
    _include: Any
    _exclude: Any

    def wants(self, kind: EventKind, path: str, name: str | None = None) -> Verdict:
        """The cheap part of matching: enabled, event kind (and custom event name)
        and path globs."""
        if not self.enabled:
            return Verdict(False, "rule is disabled")
        if kind is EventKind.CUSTOM:
            if name not in self.events:
                return Verdict(False, f"event {name!r} is not in on: {self._triggers()}")
        elif kind not in self.on:
            return Verdict(False, f"event {kind.value!r} is not in on: {self._triggers()}")
        return self._path_verdicts(path)

    @cached_property
    def _path_verdicts(self) -> Callable[[str], Verdict]:
        """``_path_verdict``, remembered: every event and every planning pass asks
        again for the same few paths."""
        return functools.lru_cache(maxsize=_PATHS_REMEMBERED)(self._path_verdict)

    def _path_verdict(self, path: str) -> Verdict:
        """Whether ``path`` passes the rule's globs."""
        if not self._include.match(path):
            return Verdict(False, f"path does not match paths: {list(self.paths)}")
        if self._exclude is not None and self._exclude.match(path):
            return Verdict(False, f"path matches exclude: {list(self.exclude)}")
        return _MATCHED

    def triggers(self) -> list[str]:
        """What sets the rule off, as the rules file spells it."""
        return [*sorted(self.on), *(f"{{event: {name}}}" for name in sorted(self.events))]

    def _triggers(self) -> str:
        return f"[{', '.join(self.triggers())}]"

    def check(self, ctx: FileContext, size: int) -> Verdict:
        """The conditions in ``when``, in order; captures accumulate across them."""
        captures: dict[str, str] = {}
        for check in self.checks:
            verdict = check(ctx, size)
            if not verdict.matched:
                return verdict
            captures.update(verdict.captures)
        return Verdict(True, "matched", captures)


class Permits(Protocol):
    """What a plug-in's manifest allows it (``scribe.actions.manifest.Permissions``)."""

    @property
    def write(self) -> Sequence[str]: ...
    @property
    def commands(self) -> Sequence[str]: ...


def compile_rule(
    rule: Any,
    actions: Mapping[str, Action],
    permissions: Callable[[str], Permits | None] = lambda _name: None,
) -> CompiledRule:
    """Turn a validated rule model into a ``CompiledRule``; ``permissions`` gives a
    plug-in's declared permissions by action name (None: a built-in)."""
    steps = []
    for step_model in rule.do:
        name = next(iter(type(step_model).model_fields))
        granted = permissions(name)
        steps.append(
            Step(
                actions[name],
                getattr(step_model, name),
                write=None if granted is None else tuple(granted.write),
                commands=None if granted is None else tuple(granted.commands),
            )
        )
    stamps = tuple(dict.fromkeys(f for s in steps for f in stamps_of(s.action, s.params)))
    return CompiledRule(
        id=rule.id,
        description=rule.description,
        enabled=rule.enabled,
        priority=rule.priority,
        on=frozenset(EventKind(t) for t in rule.on if isinstance(t, str)),
        events=frozenset(t.event for t in rule.on if not isinstance(t, str)),
        paths=tuple(rule.paths),
        exclude=tuple(rule.exclude),
        steps=tuple(steps),
        checks=tuple(_compile_condition(i, c) for i, c in enumerate(rule.when, 1)),
        stamps=stamps,
        fingerprint=_fingerprint(rule),
        _include=glob.compile(list(rule.paths), flags=_GLOB_FLAGS),
        _exclude=glob.compile(list(rule.exclude), flags=_GLOB_FLAGS) if rule.exclude else None,
    )


def _fingerprint(rule: Any) -> str:
    # Only compiled objects (a template's jinja code) cannot be dumped; their
    # source text is dumped beside them, so dropping them loses nothing.
    dumped = rule.model_dump_json(fallback=lambda _compiled: None)
    return hashlib.sha256(dumped.encode()).hexdigest()[:16]


def _compile_condition(number: int, condition: Condition) -> Check:
    if condition.frontmatter is not None:
        tests = [(name, field_test(name, t)) for name, t in condition.frontmatter.items()]

        def frontmatter(ctx: FileContext, _size: int) -> Verdict:
            data = ctx.frontmatter.data
            for name, test in tests:
                failure = test(data)
                if failure:
                    return Verdict(False, f"when[{number}]: frontmatter {name!r} {failure}")
            return Verdict(True, "matched")

        return frontmatter
    if condition.content is not None:
        pattern = regex.compile(condition.content, regex.MULTILINE)

        def content(ctx: FileContext, _size: int) -> Verdict:
            found = pattern.search(ctx.text, timeout=ctx.regex_timeout)
            if found is None:
                return Verdict(False, f"when[{number}]: content does not match {pattern.pattern!r}")
            groups = {k: v for k, v in found.groupdict().items() if v is not None}
            return Verdict(True, "matched", groups)

        return content
    if condition.path is not None:
        path_pattern = regex.compile(condition.path)

        def path(ctx: FileContext, _size: int) -> Verdict:
            found = path_pattern.search(ctx.path, timeout=ctx.regex_timeout)
            if found is None:
                return Verdict(
                    False, f"when[{number}]: path does not match {path_pattern.pattern!r}"
                )
            return Verdict(
                True, "matched", {k: v for k, v in found.groupdict().items() if v is not None}
            )

        return path
    assert condition.size is not None  # the model guarantees exactly one condition
    low, high = condition.size.min, condition.size.max

    def size(_ctx: FileContext, nbytes: int) -> Verdict:
        if low is not None and nbytes < low:
            return Verdict(False, f"when[{number}]: size {nbytes} bytes is below min {low}")
        if high is not None and nbytes > high:
            return Verdict(False, f"when[{number}]: size {nbytes} bytes is above max {high}")
        return Verdict(True, "matched")

    return size


def _same(a: Any, b: Any) -> bool:
    return bool(a == b) or (isinstance(a, str) != isinstance(b, str) and str(a) == str(b))


def field_test(name: str, test: FieldTest) -> Callable[[Mapping[str, Any]], str | None]:
    """A function returning why ``name`` fails the test, or None when it passes."""
    given = test.model_fields_set
    pattern = regex.compile(test.matches) if test.matches is not None else None

    def run(data: Mapping[str, Any]) -> str | None:
        present = name in data
        value = data.get(name)
        if "equals" in given and not (present and _same(value, test.equals)):
            return f"is {value!r}, not {test.equals!r}" if present else "is missing"
        if "not_" in given and present and _same(value, test.not_):
            return f"is {value!r}"
        if pattern is not None and not (present and pattern.search(str(value), timeout=1.0)):
            return f"does not match {pattern.pattern!r}" if present else "is missing"
        if test.exists is not None and present != test.exists:
            return "is missing" if test.exists else "exists"
        if test.missing is not None and (not present) != test.missing:
            return "exists" if test.missing else "is missing"
        if test.in_ is not None and not (present and any(_same(value, v) for v in test.in_)):
            return f"is {value!r}, not one of {test.in_!r}" if present else "is missing"
        return None

    return run

"""Planning: a pure function from a file and the rules to the file's new text.

No I/O happens here. Each rule runs on the output of the rules before it; a rule
that raises fails alone (its partial edits are dropped, the others still apply).
A plan is only offered if running the rules again over it changes nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from scribe.actions import FileContext
from scribe.events import EventKind
from scribe.frontmatter import FrontmatterError, parse
from scribe.rules.match import CompiledRule


@dataclass(frozen=True)
class Failure:
    rule: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """What Scribe would do to one file, and the content it was planned from."""

    path: str
    base_sha256: str
    old_text: str
    new_text: str
    rules: tuple[str, ...] = ()  # ids of the rules whose steps changed the text
    matched: tuple[str, ...] = ()  # ids of every rule that matched
    failures: tuple[Failure, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return self.new_text != self.old_text

    def diff(self) -> str:
        """Unified diff from the planned-from text to the new text."""
        return unified_diff(self.path, self.old_text, self.new_text)


def unified_diff(path: str, old: str, new: str) -> str:
    """The unified diff (``a/PATH`` to ``b/PATH``) the journal and ``scribe plan`` show."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )


_MAX_REPLANS = 3
_UNSETTLED = "rules do not reach a fixpoint: their output changes again when re-run"


def _describe(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return "regular expression timed out on this file"
    return f"{type(exc).__name__}: {exc}"


def _keeps_frontmatter_readable(before: str, after: str) -> None:
    """Refuse an edit that turns readable frontmatter into something unreadable."""
    try:
        parse(before)
    except FrontmatterError:
        return  # it was unreadable already: not this rule's doing
    try:
        parse(after)
    except FrontmatterError as exc:
        raise FrontmatterError(f"its output would break the frontmatter ({exc})") from None


def _apply_rules(
    rules: Sequence[CompiledRule],
    kind: EventKind,
    ctx: FileContext,
    size: int,
    skip: Collection[str],
) -> tuple[str, list[str], list[str], list[Failure]]:
    text = ctx.text
    changed_by: list[str] = []
    matched: list[str] = []
    failures: list[Failure] = []
    for rule in rules:
        if rule.id in skip or not rule.wants(kind, ctx.path).matched:
            continue
        try:
            current = ctx.with_text(text)
            verdict = rule.check(current, size)
            if not verdict.matched:
                continue
            matched.append(rule.id)
            step_ctx = FileContext(
                path=ctx.path,
                text=text,
                time=ctx.time,
                captures=verdict.captures,
                may_restamp=ctx.may_restamp,
                regex_timeout=ctx.regex_timeout,
            )
            for step in rule.steps:
                step_ctx = step_ctx.with_text(step.action.plan(step_ctx, step.params))
            if step_ctx.text != text:
                _keeps_frontmatter_readable(text, step_ctx.text)
        except Exception as exc:  # one bad rule (or plug-in) fails alone
            failures.append(Failure(rule.id, _describe(exc)))
            continue
        if step_ctx.text != text:
            changed_by.append(rule.id)
            text = step_ctx.text
    return text, changed_by, matched, failures


def plan_file(
    path: str,
    text: str,
    base_sha256: str,
    rules: Sequence[CompiledRule],
    *,
    kind: EventKind,
    time: datetime,
    size: int,
    may_restamp: bool,
    regex_timeout: float = 1.0,
    skip: Collection[str] = (),
) -> Plan:
    """Plan the rules over one file's text. ``time`` is the frozen ``now()``."""
    ctx = FileContext(
        path=path, text=text, time=time, may_restamp=may_restamp, regex_timeout=regex_timeout
    )
    unsettled: list[Failure] = []
    for _ in range(_MAX_REPLANS):
        new_text, changed_by, matched, failures = _apply_rules(rules, kind, ctx, size, skip)
        if new_text == text:
            break
        rerun = FileContext(
            path=path, text=new_text, time=time, may_restamp=False, regex_timeout=regex_timeout
        )
        again, again_by, _, _ = _apply_rules(rules, kind, rerun, size, skip)
        if again == new_text:
            break
        # The rules that change their own output again fail alone; plan without them.
        unsettled.extend(Failure(r, _UNSETTLED) for r in again_by)
        skip = {*skip, *again_by}
    else:
        new_text, changed_by = text, []
    failures = [*unsettled, *failures]
    return Plan(
        path, base_sha256, text, new_text, tuple(changed_by), tuple(matched), tuple(failures)
    )

"""Planning: a pure function from a file and the rules to the file's new text and
the effects to run once it is written.

No I/O happens here. Each rule runs on the output of the rules before it; a rule
that raises fails alone (its partial edits and effects are dropped, the others
still apply). A plan is only offered if running the rules again over it changes
nothing. A plug-in step that changes a file its manifest does not let it write
fails its rule, as a scope violation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, cast

from scribe.actions import EffectAction, FileContext, is_content
from scribe.actions.effects import Effect, Finding
from scribe.diffs import unified_diff
from scribe.events import Event, EventKind
from scribe.frontmatter import FrontmatterError, parse
from scribe.rules.match import CompiledRule, Step

if TYPE_CHECKING:
    from scribe.files import TextFile
    from scribe.notes.index import NoteIndex


@dataclass(frozen=True)
class Failure:
    rule: str
    reason: str
    #: The rule tried to reach beyond what it may (a scope violation, journaled so).
    scope: bool = False


@dataclass(frozen=True)
class Planned:
    """An effect a rule's step asks for, with what the step may do."""

    rule: str
    step: Step
    effect: Effect


class OutOfScope(Exception):
    """A step tried to change a file its manifest does not let it write."""


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
    effects: tuple[Planned, ...] = ()
    #: The diff of exactly these two texts, when it was made with the plan in another
    #: process (``Ahead``); a copy with other texts must not keep it.
    known_diff: str | None = field(default=None, compare=False, repr=False)

    @property
    def changed(self) -> bool:
        return self.new_text != self.old_text

    @property
    def findings(self) -> list[tuple[str, Finding]]:
        """What the rules' checks found, each with the id of the rule that found it."""
        return [(p.rule, p.effect) for p in self.effects if isinstance(p.effect, Finding)]

    def diff(self) -> str:
        """Unified diff from the planned-from text to the new text."""
        if self.known_diff is not None:
            return self.known_diff
        return unified_diff(self.path, self.old_text, self.new_text)


@dataclass(frozen=True)
class Ahead:
    """A plan made in another process (``scribe.ahead``), in a form that crosses
    over: each effect names its step by rule id and position, not by the step object.
    What the engine would otherwise work out from the texts comes along (the diff,
    the masked hashes), so that the process writing does as little as it can."""

    sha256: str
    time: datetime  # the plan's frozen now()
    may_restamp: bool
    new_text: str | None  # None: the text stays as it is
    rules: tuple[str, ...]
    matched: tuple[str, ...]
    failures: tuple[Failure, ...]
    effects: tuple[tuple[str, int, Effect], ...]
    masked: str  # the engine's masked hash of the planned-from text
    new_masked: str | None  # and of the new text
    diff: str | None

    @classmethod
    def of(
        cls,
        plan: Plan,
        time: datetime,
        may_restamp: bool,
        rules: Sequence[CompiledRule],
        masked: tuple[str, str | None],
    ) -> Ahead:
        """``masked``: the engine's masked hashes of the old and (if changed) new text."""
        steps = {rule.id: rule.steps for rule in rules}
        return cls(
            sha256=plan.base_sha256,
            masked=masked[0],
            new_masked=masked[1],
            diff=plan.diff() if plan.changed else None,
            time=time,
            may_restamp=may_restamp,
            new_text=plan.new_text if plan.changed else None,
            rules=plan.rules,
            matched=plan.matched,
            failures=plan.failures,
            effects=tuple(
                (p.rule, next(i for i, s in enumerate(steps[p.rule]) if s is p.step), p.effect)
                for p in plan.effects
            ),
        )

    def fits(self, file: TextFile, may_restamp: bool, skip: Collection[str]) -> bool:
        """Whether this is the plan the engine would make of ``file`` now."""
        return self.sha256 == file.sha256 and self.may_restamp == may_restamp and not skip

    def plan(self, file: TextFile, rules: Sequence[CompiledRule]) -> Plan | None:
        """The plan, with the engine's own steps; None if one of its rules is not
        among ``rules``."""
        steps = {rule.id: rule.steps for rule in rules}
        if not steps.keys() >= {*self.matched, *self.rules}:
            return None
        try:
            effects = tuple(Planned(r, steps[r][i], effect) for r, i, effect in self.effects)
        except (KeyError, IndexError):
            return None
        return Plan(
            file.rel,
            file.sha256,
            file.text,
            file.text if self.new_text is None else self.new_text,
            self.rules,
            self.matched,
            self.failures,
            effects,
            known_diff=self.diff,
        )


_MAX_REPLANS = 3
_UNSETTLED = "rules do not reach a fixpoint: their output changes again when re-run"


def _describe(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return "regular expression timed out on this file"
    if isinstance(exc, OutOfScope):
        return str(exc)
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


@dataclass
class _Pass:
    """One pass of the rules over a file."""

    text: str
    changed_by: list[str] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    effects: list[Planned] = field(default_factory=list)


def _run_steps(rule: CompiledRule, ctx: FileContext) -> tuple[str, list[Planned]]:
    """The rule's steps in order: the text they leave and the effects they ask for."""
    effects: list[Planned] = []
    for step in rule.steps:
        if is_content(step.action):
            before = ctx.text
            ctx = ctx.with_text(step.action.plan(ctx, step.params))
            refusal = step.write_refusal(ctx.path) if ctx.text != before else None
            if refusal is not None:
                raise OutOfScope(refusal)
        else:
            found = cast(EffectAction, step.action).effects(ctx, step.params)
            effects.extend(Planned(rule.id, step, effect) for effect in found)
    return ctx.text, effects


def _apply_rules(
    rules: Sequence[CompiledRule],
    kind: EventKind,
    ctx: FileContext,
    size: int,
    skip: Collection[str],
    name: str | None,
) -> _Pass:
    result = _Pass(ctx.text)
    for rule in rules:
        if rule.id in skip or not rule.wants(kind, ctx.path, name).matched:
            continue
        text = result.text
        try:
            current = ctx.with_text(text)
            verdict = rule.check(current, size)
            if not verdict.matched:
                continue
            result.matched.append(rule.id)
            if verdict.captures != current.captures:
                current = dataclasses.replace(current, captures=verdict.captures)
            new_text, effects = _run_steps(rule, current)
            if new_text != text:
                _keeps_frontmatter_readable(text, new_text)
        except Exception as exc:  # one bad rule (or plug-in) fails alone
            result.failures.append(Failure(rule.id, _describe(exc), isinstance(exc, OutOfScope)))
            continue
        result.effects.extend(effects)
        if new_text != text:
            result.changed_by.append(rule.id)
            result.text = new_text
    return result


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
    notes: NoteIndex | None = None,
    event: Event | None = None,
) -> Plan:
    """Plan the rules over one file's text. ``time`` is the frozen ``now()``;
    ``event`` (when given) names a custom event and is what templates see."""
    name = event.name if event is not None else None
    ctx = FileContext(
        path=path,
        text=text,
        time=time,
        may_restamp=may_restamp,
        regex_timeout=regex_timeout,
        notes=notes,
        event=event.describe() if event is not None else {"kind": kind.value},
    )
    unsettled: list[Failure] = []
    for _ in range(_MAX_REPLANS):
        result = _apply_rules(rules, kind, ctx, size, skip, name)
        if result.text == text:
            break
        rerun = dataclasses.replace(ctx, text=result.text, may_restamp=False)
        again = _apply_rules(rules, kind, rerun, size, skip, name)
        if again.text == result.text:
            break
        # The rules that change their own output again fail alone; plan without them.
        unsettled.extend(Failure(r, _UNSETTLED) for r in again.changed_by)
        skip = {*skip, *again.changed_by}
    else:
        result = _Pass(text, matched=result.matched, failures=result.failures)
    return Plan(
        path,
        base_sha256,
        text,
        result.text,
        tuple(result.changed_by),
        tuple(result.matched),
        (*unsettled, *result.failures),
        tuple(result.effects),
    )

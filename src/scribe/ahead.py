"""Planning a one-shot run's files in worker processes, ahead of the engine.

``scribe run``, ``check`` and ``plan`` over a large repository spend most of their
time planning: reading each file and running the rules' actions over it, Python
code that threads cannot run side by side. Planning is pure, so a ``PlanPool``
forks worker processes that plan the run's batches while the engine works through
them, and the engine takes a plan made ahead only when it is the plan it would
have made itself (``Ahead.fits``); it plans anything else again. Where a plan was
made never changes what a run does.

A plan made ahead fits while

* the file has the content the worker read;
* the restamp decision is the same (it depends on what Scribe last saw there);
* no rule is held back for the file (quarantined, or its breaker open);
* nothing has been changed by the run since the workers started: a rewrite or an
  effect can change what other files' plans read (the note index, a template), so
  the pool stops at the first one and the engine plans the rest itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Collection, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from scribe.actions.effects import Effect
from scribe.plan import Failure, Plan, Planned

if TYPE_CHECKING:
    from scribe.engine import Engine
    from scribe.files import TextFile
    from scribe.rules.match import CompiledRule

log = logging.getLogger("scribe")

#: Runs over fewer files plan in the engine alone: starting workers costs more.
MIN_FILES = 500


def default_processes() -> int:
    """One worker per CPU, none on a single CPU. Not one fewer for the engine: it
    spends much of a run waiting for plans, the journal and the disk (a check of
    10,000 notes on two CPUs: 3.7-4.1 s with two workers, 4.1-4.5 s with one)."""
    cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 0


@dataclass(frozen=True)
class Ahead:
    """A plan made in another process, in a form that crosses over: each effect
    names its step by rule id and position, not by the step object."""

    sha256: str
    time: datetime  # the plan's frozen now()
    may_restamp: bool
    new_text: str | None  # None: the text stays as it is
    rules: tuple[str, ...]
    matched: tuple[str, ...]
    failures: tuple[Failure, ...]
    effects: tuple[tuple[str, int, Effect], ...]

    @classmethod
    def of(
        cls, plan: Plan, time: datetime, may_restamp: bool, rules: Sequence[CompiledRule]
    ) -> Ahead:
        steps = {rule.id: rule.steps for rule in rules}
        return cls(
            sha256=plan.base_sha256,
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
        )


class PlanPool:
    """Worker processes planning batches of files ahead of an engine, in order.

    The workers are forked from this process and plan with its engine as it was
    then; they never write, journal or run an effect.
    """

    def __init__(self, engine: Engine, batches: Sequence[Sequence[str]], processes: int) -> None:
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_adopt,
            initargs=(engine,),  # a fork copies it: nothing is pickled
        )
        self._futures: list[Future[dict[str, Ahead]]] = [
            self._pool.submit(_plan_batch, list(batch)) for batch in batches
        ]

    @classmethod
    def for_run(
        cls, engine: Engine, batches: Sequence[Sequence[str]], processes: int
    ) -> PlanPool | None:
        """A pool for a run over ``batches``, or None when it would not pay."""
        if processes < 1 or sum(map(len, batches)) < MIN_FILES:
            return None
        if "fork" not in multiprocessing.get_all_start_methods():
            return None
        return cls(engine, batches, processes)

    @property
    def running(self) -> bool:
        """Whether it still plans (not stopped, no worker lost)."""
        return self._pool is not None

    def take(self, index: int) -> dict[str, Ahead]:
        """The plans made for batch ``index`` (waits for them); empty once stopped."""
        if self._pool is None:
            return {}
        try:
            return self._futures[index].result()
        except Exception as exc:  # a worker died or could not send its plans back
            log.warning("planning ahead stopped (%s: %s); planning here", type(exc).__name__, exc)
            self.stop()
            return {}

    def stop(self) -> None:
        """Stop planning: batches not started are dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


_engine: Engine | None = None


def _adopt(engine: Engine) -> None:
    global _engine
    _engine = engine


def _plan_batch(paths: list[str]) -> dict[str, Ahead]:
    assert _engine is not None, "a planning worker without an engine"
    planned = {}
    for path in paths:
        made = _engine.plan_ahead(path)
        if made is not None:
            planned[path] = made
    return planned

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
* nothing the run did since the workers started can have changed what other
  files' plans read: an effect beyond a finding (a command, a write elsewhere, a
  rename) can change anything, and a rewrite can change what a rule that looks
  beyond its own file reads (the note index, a schema). The pool stops at the
  first such outcome and the engine plans the rest itself. Rules that are all
  ``self_contained`` (set, replace, ensure_frontmatter...) never stop it, so a
  run that rewrites many files is planned ahead while threads overlap the
  writes (``cli._apply_once``).

``scribe watch --scan`` plans its initial scan the same way, when every rule is
self-contained: its scheduler takes the files in its own order, and no order can
change what a self-contained rule reads (``PlanPool.ready``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor

from scribe.actions import self_contained
from scribe.engine import Engine, Outcome, Status
from scribe.plan import Ahead
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


def all_self_contained(rules: Sequence[CompiledRule]) -> bool:
    """Whether every step of ``rules`` is ``self_contained``: then what one file's
    rewrite does cannot change another file's plan, whatever order they run in."""
    return all(self_contained(step.action) for rule in rules for step in rule.steps)


class PlanPool:
    """Worker processes planning batches of files ahead of an engine, in order.

    The workers are forked from this process and plan with its engine as it was
    then; they never write, journal or run an effect. A fork copies only the
    calling thread: the engine's others (the journal writer) are not in the
    workers, and nothing a worker uses (rules, the note index, the state read)
    is held by them.
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
        self._batch_of = {path: index for index, batch in enumerate(batches) for path in batch}
        self._stopping = threading.Lock()
        self._engine = engine
        self._rules = engine.rules  # what the workers plan with
        self._dry_run = engine.dry_run
        # A rewrite changes what other files' plans read only through a rule whose
        # steps look beyond their own file (links, indexes, plug-ins).
        self._rewrites_matter = not all_self_contained(engine.rules)

    @classmethod
    def for_run(
        cls, engine: Engine, batches: Sequence[Sequence[str]], processes: int | None
    ) -> PlanPool | None:
        """A pool of ``processes`` workers (None: ``default_processes()``) for a run
        over ``batches``, or None when it would not pay."""
        if processes is None:
            processes = default_processes()
        if processes < 1 or sum(map(len, batches)) < MIN_FILES:
            return None
        if "fork" not in multiprocessing.get_all_start_methods():
            return None
        return cls(engine, batches, processes)

    @property
    def independent(self) -> bool:
        """Whether every rule's steps are ``self_contained``: then nothing a batch
        does changes what the plans of others read, whatever order they run in."""
        return not self._rewrites_matter

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
        except CancelledError:  # stopped by another thread meanwhile
            return {}
        except Exception as exc:  # a worker died or could not send its plans back
            if self._pool is not None:  # told once, not by every thread that waited
                log.warning(
                    "planning ahead stopped (%s: %s); planning here", type(exc).__name__, exc
                )
            self.stop()
            return {}

    def ready(self, paths: Iterable[str]) -> dict[str, Ahead]:
        """The plans made for those of ``paths`` given to the workers, waiting for
        the batches that hold them; for an engine that takes files in an order of
        its own, on several threads. Empty once stopped, and once the engine's
        rules are no longer the ones the workers plan with (a reload)."""
        wanted = [path for path in paths if path in self._batch_of]
        plans: dict[str, Ahead] = {}
        for index in sorted({self._batch_of[path] for path in wanted}):
            made = self.take(index)
            plans.update((path, made[path]) for path in wanted if path in made)
        return plans if self._engine.rules is self._rules else {}

    def outdated_by(self, outcomes: Sequence[Outcome]) -> bool:
        """Whether handling ``outcomes`` may have changed what plans made ahead read:
        effects beyond findings always may (a command, a write elsewhere, a
        rename); a rewrite only when some rule looks beyond its own file."""
        if self._dry_run:
            return False
        return any(
            o.ran_effects or (self._rewrites_matter and o.status is Status.WRITTEN)
            for o in outcomes
        )

    def stop(self) -> None:
        """Stop planning: batches not started are dropped. Any thread may call it."""
        with self._stopping:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


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

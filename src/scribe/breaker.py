"""Circuit breakers: a rule that keeps failing is set aside, then probed again.

Quarantine holds back one rule on one file's content; a breaker holds back a rule
everywhere, once it has failed ``threshold`` times in a row on any files (a broken
template, a plug-in whose service is down). While open the rule is skipped; after a
delay one event may probe it (half-open): success closes the breaker, failure opens
it again for twice as long, up to ``max_delay``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class _Breaker:
    failures: int = 0  # in a row
    state: BreakerState = BreakerState.CLOSED
    delay: float = 0.0
    retry_at: float = 0.0
    probing: bool = False


@dataclass(frozen=True)
class Transition:
    rule: str
    state: BreakerState
    failures: int
    delay: float  # seconds until the next probe, when opened


class Breakers:
    """One breaker per rule id; thread-safe."""

    def __init__(
        self,
        threshold: int = 5,
        *,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._lock = threading.Lock()
        self._rules: dict[str, _Breaker] = {}

    def blocked(self, rules: Iterable[str]) -> tuple[set[str], list[Transition]]:
        """Which of ``rules`` must be skipped now; breakers that turned half-open.

        A half-open breaker lets exactly one event through (the probe) until that
        event's result is recorded.
        """
        blocked: set[str] = set()
        moved: list[Transition] = []
        now = self._clock()
        with self._lock:
            for rule in rules:
                breaker = self._rules.get(rule)
                if breaker is None or breaker.state is BreakerState.CLOSED:
                    continue
                if breaker.state is BreakerState.OPEN and now >= breaker.retry_at:
                    breaker.state = BreakerState.HALF_OPEN
                    moved.append(Transition(rule, breaker.state, breaker.failures, 0.0))
                if breaker.state is BreakerState.HALF_OPEN and not breaker.probing:
                    breaker.probing = True
                    continue
                blocked.add(rule)
        return blocked, moved

    def record(
        self, succeeded: Iterable[str], failed: Iterable[str], idle: Iterable[str] = ()
    ) -> list[Transition]:
        """The results of one event's rules; the breakers that opened or closed.

        ``idle`` rules were let through but did not run (their conditions did not
        match): a probe they held goes to the next event.
        """
        moved: list[Transition] = []
        now = self._clock()
        with self._lock:
            for rule in idle:
                if (breaker := self._rules.get(rule)) is not None:
                    breaker.probing = False
            for rule in succeeded:
                breaker = self._rules.get(rule)
                if breaker is None:
                    continue
                was = breaker.state
                self._rules[rule] = _Breaker()
                if was is not BreakerState.CLOSED:
                    moved.append(Transition(rule, BreakerState.CLOSED, 0, 0.0))
            for rule in failed:
                breaker = self._rules.setdefault(rule, _Breaker())
                breaker.failures += 1
                breaker.probing = False
                reopen = breaker.state is BreakerState.HALF_OPEN
                if reopen or (
                    breaker.state is BreakerState.CLOSED and breaker.failures >= self.threshold
                ):
                    breaker.delay = (
                        min(breaker.delay * 2, self.max_delay) if reopen else self.base_delay
                    )
                    breaker.state = BreakerState.OPEN
                    breaker.retry_at = now + breaker.delay
                    moved.append(
                        Transition(rule, BreakerState.OPEN, breaker.failures, breaker.delay)
                    )
        return moved

    def states(self) -> dict[str, BreakerState]:
        """Every rule whose breaker is not closed, with its state."""
        with self._lock:
            return {
                rule: b.state
                for rule, b in self._rules.items()
                if b.state is not BreakerState.CLOSED
            }

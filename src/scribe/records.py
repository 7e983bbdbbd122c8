"""What the engine tells the journal: entries built from events, files and plans.

Pure functions, so the engine's control flow stays readable and the wording of the
history is decided in one place. Actors: ``rule:<id>`` (several ids joined by
``,`` when rules changed a file together), ``user`` for changes Scribe observed,
``scribe`` for its own bookkeeping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from scribe.breaker import BreakerState, Transition
from scribe.events import Event, EventKind
from scribe.journal.entry import (
    ACTION_FAILED,
    BREAKER_CLOSED,
    BREAKER_HALF_OPEN,
    BREAKER_OPENED,
    CHAIN_CUT,
    COMMAND_RAN,
    EVENT_EMITTED,
    EVENT_OBSERVED,
    FILE_DELETED,
    FILE_MOVED,
    FILE_SKIPPED,
    FILE_WRITTEN,
    QUARANTINED,
    RULE_FINDING,
    RULE_MATCHED,
    SCOPE_VIOLATION,
    WORK_DONE,
    WORK_PENDING,
    NewEntry,
)

if TYPE_CHECKING:  # the planner brings every action; these records only read plans
    from scribe.plan import Failure, Plan

SCRIBE = "scribe"
USER = "user"


def rule_actor(rules: Sequence[str]) -> str:
    return "rule:" + ",".join(rules)


def event_payload(event: Event) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event": event.kind.value,
        "id": event.id,
        "source": event.source,
        "time": event.time.isoformat() if event.time else None,
    }
    if event.dest:
        payload["dest"] = event.dest
    if event.kind is EventKind.CUSTOM:
        payload.update(name=event.name, depth=event.depth)
    return payload


def observed(event: Event, sha256: str | None, **extra: Any) -> NewEntry:
    """A change Scribe saw (after coalescing), with the hash of the content it read."""
    where = f" -> {event.dest}" if event.kind is EventKind.MOVED and event.dest else ""
    return NewEntry(
        EVENT_OBSERVED,
        USER,
        path=event.target if event.kind is EventKind.MOVED else event.path,
        after_hash=sha256,
        message=f"{event.kind.value}{where} ({event.source})",
        payload={**event_payload(event), **extra},
    )


def gone(event: Event) -> NewEntry:
    """The path no longer holds a file (deleted, or moved away)."""
    moved = event.kind is EventKind.MOVED and event.dest
    return NewEntry(
        FILE_DELETED,
        USER,
        path=event.path,
        message=f"moved to {event.dest}" if moved else "deleted",
        payload=event_payload(event),
    )


def matched(path: str, plan: Plan) -> list[NewEntry]:
    """Rules that matched but changed nothing: a write names those that did."""
    return [
        NewEntry(RULE_MATCHED, f"rule:{rule}", path=path, message=f"{rule} matched")
        for rule in plan.matched
        if rule not in plan.rules
    ]


def written(plan: Plan, after_sha256: str, event: Event) -> NewEntry:
    """Journaled *before* the swap; its ``work.done`` says how the swap ended.

    The payload carries the event that led to the write, which is therefore not
    journaled again as ``event.observed``.
    """
    diff = plan.diff()
    added = sum(1 for line in diff.splitlines() if line[:1] == "+" and line[:3] != "+++")
    removed = sum(1 for line in diff.splitlines() if line[:1] == "-" and line[:3] != "---")
    return NewEntry(
        FILE_WRITTEN,
        rule_actor(plan.rules),
        path=plan.path,
        before_hash=plan.base_sha256,
        after_hash=after_sha256,
        diff=diff,
        message=f"rewritten by {', '.join(plan.rules)} (+{added} -{removed})",
        # The pid tells a start-up elsewhere that this write may still be under way.
        payload={"rules": list(plan.rules), "event": event_payload(event), "pid": os.getpid()},
    )


def done(written_entry_seq: int, path: str | None, status: str, **extra: Any) -> NewEntry:
    return NewEntry(
        WORK_DONE,
        SCRIBE,
        path=path,
        message=status,
        payload={"status": status, **extra},
        ref=written_entry_seq,
    )


def left_pending(paths: Mapping[str, EventKind]) -> NewEntry:
    """Changes a stop left unprocessed: the next start hands them to the engine."""
    return NewEntry(
        WORK_PENDING,
        SCRIBE,
        message=f"{len(paths)} change(s) left for the next start",
        payload={"paths": {path: kind.value for path, kind in paths.items()}},
    )


def skipped(path: str, reason: str, event: Event) -> NewEntry:
    return NewEntry(FILE_SKIPPED, SCRIBE, path=path, message=reason, payload={"event": event.id})


def scope_violation(path: str, reason: str, event: Event, *, rule: str | None = None) -> NewEntry:
    """A read or write refused; ``rule`` when a rule's step or effect reached beyond
    what it may (it is then the actor)."""
    return NewEntry(
        SCOPE_VIOLATION,
        SCRIBE if rule is None else f"rule:{rule}",
        path=path,
        message=f"refused: {reason}",
        payload={"event": event.id} if rule is None else {"rule": rule, "event": event.id},
    )


def failed(
    path: str,
    sha256: str,
    failure: Failure,
    event: Event,
    *,
    quarantined: bool,
    fingerprint: str = "",
) -> list[NewEntry]:
    entries = [
        NewEntry(
            ACTION_FAILED,
            f"rule:{failure.rule}",
            path=path,
            after_hash=None,
            message=failure.reason,
            payload={"rule": failure.rule, "content": sha256},
        )
    ]
    if quarantined:
        entries.append(
            NewEntry(
                QUARANTINED,
                SCRIBE,
                path=path,
                message=f"{failure.rule} held back until the file or the rule changes",
                payload={
                    "rule": failure.rule,
                    "reason": failure.reason,
                    "content": sha256,
                    "fingerprint": fingerprint,
                    "event": event_payload(event),
                },
            )
        )
    return entries


_BREAKER_KINDS = {
    BreakerState.OPEN: BREAKER_OPENED,
    BreakerState.HALF_OPEN: BREAKER_HALF_OPEN,
    BreakerState.CLOSED: BREAKER_CLOSED,
}


def breaker(transition: Transition) -> NewEntry:
    rule = transition.rule
    message = {
        BreakerState.OPEN: f"breaker of {rule} opened after {transition.failures} failure(s) "
        f"in a row; skipped for {transition.delay:g} s",
        BreakerState.HALF_OPEN: f"breaker of {rule} half-open: the next event probes it",
        BreakerState.CLOSED: f"breaker of {rule} closed: it works again",
    }[transition.state]
    return NewEntry(
        _BREAKER_KINDS[transition.state],
        f"rule:{rule}",
        message=message,
        payload={"rule": rule, "failures": transition.failures, "delay": transition.delay},
    )


def command_ran(path: str, rule: str, summary: Mapping[str, Any], event: Event) -> NewEntry:
    """A rule's command ran: how it ended and the tail of what it printed."""
    how = (
        "timed out"
        if summary.get("timed_out")
        else f"exit {summary.get('exit_code')}"
        if summary.get("exit_code") is not None
        else f"signal {summary.get('signal')}"
    )
    argv = summary.get("argv") or []
    return NewEntry(
        COMMAND_RAN,
        f"rule:{rule}",
        path=path,
        message=f"ran {' '.join(str(a) for a in argv)[:200]}: {how}",
        payload={"rule": rule, **summary, "event": event_payload(event)},
    )


def emitted(path: str, rule: str, emitted_event: Event, cause: Event) -> NewEntry:
    return NewEntry(
        EVENT_EMITTED,
        f"rule:{rule}",
        path=path,
        message=f"emitted {emitted_event.name} (depth {emitted_event.depth})",
        payload={
            "rule": rule,
            "name": emitted_event.name,
            "data": dict(emitted_event.data),
            "id": emitted_event.id,
            "depth": emitted_event.depth,
            "cause": event_payload(cause),
        },
    )


def chain_cut(path: str, rule: str, name: str, depth: int, cause: Event) -> NewEntry:
    return NewEntry(
        CHAIN_CUT,
        f"rule:{rule}",
        path=path,
        message=f"event {name} not emitted: the chain of events is {depth} deep, the limit",
        payload={"rule": rule, "name": name, "depth": depth, "cause": event_payload(cause)},
    )


def finding(rule: str, code: str, message: str, path: str, **payload: Any) -> NewEntry:
    return NewEntry(
        RULE_FINDING,
        f"rule:{rule}",
        path=path,
        message=message,
        payload={"rule": rule, "code": code, **payload},
    )


def moved(rule: str, path: str, dest: str, sha256: str | None, event: Event) -> NewEntry:
    return NewEntry(
        FILE_MOVED,
        f"rule:{rule}",
        path=dest,
        after_hash=sha256,
        message=f"moved from {path} by {rule}",
        payload={"rule": rule, "from": path, "to": dest, "event": event_payload(event)},
    )

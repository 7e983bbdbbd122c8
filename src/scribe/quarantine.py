"""Quarantine as the journal tells it: which (file, rule) pairs are held back.

A rule that fails on a file is held back for that exact content (``quarantined``)
until the file changes, the rule's definition changes, or someone releases it
(``quarantine.released``). The journal is the record, so the quarantine survives
restarts and ``scribe quarantine list`` can read it while ``scribe watch`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from scribe import records
from scribe.journal.entry import QUARANTINE_RELEASED, QUARANTINED, Entry, Journal, NewEntry, Query


@dataclass(frozen=True)
class Held:
    """One (path, rule) held back, from its ``quarantined`` entry."""

    entry: Entry

    @property
    def path(self) -> str:
        assert self.entry.path is not None
        return self.entry.path

    @property
    def rule(self) -> str:
        return str(self.entry.payload.get("rule", ""))

    @property
    def content(self) -> str:
        return str(self.entry.payload.get("content", ""))

    @property
    def fingerprint(self) -> str:
        return str(self.entry.payload.get("fingerprint", ""))

    @property
    def reason(self) -> str:
        return str(self.entry.payload.get("reason", ""))


def held(journal: Journal) -> list[Held]:
    """Every (path, rule) quarantined and not released since, oldest first."""
    current: dict[tuple[str | None, str], Entry] = {}
    for entry in journal.query(Query(kinds=[QUARANTINED, QUARANTINE_RELEASED])):
        key = (entry.path, str(entry.payload.get("rule", "")))
        if entry.kind == QUARANTINED:
            current[key] = entry
        else:
            current.pop(key, None)
    return [Held(entry) for entry in sorted(current.values(), key=lambda e: e.seq)]


def release(item: Held, why: str, actor: str = records.SCRIBE) -> NewEntry:
    return released(item.path, item.rule, why, actor, ref=item.entry.seq)


def released(
    path: str, rule: str, why: str, actor: str = records.SCRIBE, ref: int | None = None
) -> NewEntry:
    return NewEntry(
        QUARANTINE_RELEASED,
        actor,
        path=path,
        message=f"{rule} released: {why}",
        payload={"rule": rule, "why": why},
        ref=ref,
    )

"""What every command that applies rules does first and last: open the journal,
journal the start and the rules in force, build the engine, journal the stop."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scribe import __version__, quarantine, records
from scribe.breaker import Breakers
from scribe.config import STATE_DIR, Settings
from scribe.engine import Engine
from scribe.errors import ScribeError
from scribe.journal.entry import (
    ENGINE_STARTED,
    ENGINE_STOPPED,
    RULES_LOADED,
    JournalUnavailable,
    NewEntry,
    Query,
)
from scribe.journal.mirrors import Mirrors
from scribe.journal.sqlite import SqliteJournal
from scribe.journal.writer import JournalWriter
from scribe.rules.match import CompiledRule
from scribe.state import State
from scribe.watch import Ignore

log = logging.getLogger("scribe")


def open_journal(root: Path, settings: Settings) -> JournalWriter | None:
    """The journal at ``.scribe/journal.db`` behind its group-commit writer."""
    if not settings.journal:
        return None
    return JournalWriter(SqliteJournal.for_root(root), Mirrors(root))


def required_journal(root: Path, settings: Settings) -> JournalWriter:
    """The journal, for commands that make no sense without it."""
    journal = open_journal(root, settings)
    if journal is None:
        raise ScribeError("the journal is turned off (journal: false in scribe.yaml)")
    return journal


def build_engine(
    root: Path,
    settings: Settings,
    rules: Sequence[CompiledRule],
    *,
    dry_run: bool,
    journal: JournalWriter | None = None,
) -> Engine:
    state = State(None if dry_run else root / STATE_DIR / "state.db")
    return Engine(
        root,
        rules,
        state=state,
        dry_run=dry_run,
        max_file_bytes=settings.max_file_bytes,
        regex_timeout=settings.regex_timeout,
        journal=journal,
        breakers=Breakers(settings.breaker_failures),
    )


@dataclass(frozen=True)
class RulesChange:
    """How one set of rules differs from the one before (by id and fingerprint)."""

    ids: list[str]
    added: list[str]
    removed: list[str]
    changed: list[str]

    @classmethod
    def between(cls, before: dict[str, str], after: Sequence[CompiledRule]) -> RulesChange:
        ids = [rule.id for rule in after]
        return cls(
            ids=ids,
            added=[i for i in ids if i not in before],
            removed=[i for i in before if i not in ids],
            changed=[r.id for r in after if r.id in before and before[r.id] != r.fingerprint],
        )

    def __str__(self) -> str:
        parts = [
            f"{label} {', '.join(ids)}"
            for label, ids in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
            )
            if ids
        ]
        return "; ".join(parts) or "no rule changed"


def rules_loaded(
    rules: Sequence[CompiledRule], before: dict[str, str], *, reason: str
) -> tuple[NewEntry, RulesChange]:
    """The journal entry for a set of rules taking effect, and how it differs."""
    change = RulesChange.between(before, rules)
    entry = NewEntry(
        RULES_LOADED,
        records.SCRIBE,
        message=f"{len(rules)} rule(s) loaded ({reason}): {change}",
        payload={
            "ids": change.ids,
            "added": change.added,
            "removed": change.removed,
            "changed": change.changed,
            "fingerprints": {rule.id: rule.fingerprint for rule in rules},
            "reason": reason,
        },
    )
    return entry, change


def start_journal(writer: JournalWriter, rules: Sequence[CompiledRule], command: str) -> None:
    """Journal the start and the rules in force (what changed since last time)."""
    previous = writer.store.query(Query(kinds=[RULES_LOADED], newest_first=True, limit=1))
    before: dict[str, str] = {}
    if previous:
        payload = previous[0].payload
        known = payload.get("fingerprints") or {}
        # Entries from before fingerprints were journaled: treat their rules as unchanged.
        fingerprints = {r.id: r.fingerprint for r in rules}
        before = {i: str(known.get(i, fingerprints.get(i, ""))) for i in payload.get("ids", [])}
    loaded, _ = rules_loaded(rules, before, reason="start")
    try:
        writer.append(
            [
                NewEntry(
                    ENGINE_STARTED,
                    records.SCRIBE,
                    message=f"scribe {__version__} {command} started (pid {os.getpid()})",
                    payload={"version": __version__, "command": command, "pid": os.getpid()},
                ),
                loaded,
            ]
        )
    except JournalUnavailable as exc:
        log.error("%s; no file will be written until it can be", exc)


def restore_quarantine(engine: Engine, journal: JournalWriter) -> None:
    journal.submit(engine.restore_quarantine(quarantine.held(journal.store)))


def stop_journal(writer: JournalWriter, command: str) -> None:
    try:
        writer.append(
            [NewEntry(ENGINE_STOPPED, records.SCRIBE, message=f"scribe {command} stopped")]
        )
    except JournalUnavailable as exc:
        log.error("could not journal the stop: %s", exc)
    finally:
        writer.close()


def ignore_for(root: Path, settings: Settings) -> Ignore:
    """What the watcher and scans leave alone under ``root``."""
    return Ignore(root, settings.ignore, gitignore=settings.gitignore)

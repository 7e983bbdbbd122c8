"""What every command that applies rules does first and last: open the journal,
journal the start and the rules in force, build the engine, journal the stop."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scribe import __version__, quarantine, records
from scribe.breaker import Breakers
from scribe.config import CONFIG_FILE, STATE_DIR, Settings
from scribe.confinement import Confinement
from scribe.errors import ConfigError, Problem, ScribeError
from scribe.journal.entry import (
    ENGINE_STARTED,
    ENGINE_STOPPED,
    RULES_LOADED,
    Journal,
    JournalUnavailable,
    NewEntry,
    Query,
)
from scribe.journal.mirrors import Mirrors
from scribe.journal.sqlite import SqliteJournal
from scribe.journal.writer import JournalWriter
from scribe.sandbox import Limits, Policy, bwrap_path, check_policy
from scribe.state import State
from scribe.watch import Ignore

if TYPE_CHECKING:
    from scribe.engine import Engine
    from scribe.rules.match import CompiledRule

log = logging.getLogger("scribe")


def open_store(root: Path, url: str | None) -> Journal:
    """The journal ``url`` names (``postgresql://...``), or the repository's
    ``.scribe/journal.db`` when it is unset; a URL Scribe cannot use, or a server it
    cannot reach, is a ``ScribeError`` that says what to correct."""
    if not url:
        return SqliteJournal.for_root(root)
    from scribe.journal.postgres import PostgresJournal  # psycopg loads only when used

    return PostgresJournal(url)


def open_journal(root: Path, settings: Settings) -> JournalWriter | None:
    """The journal (``journal_url``, else ``.scribe/journal.db``) behind its group-commit
    writer; the mirrors go to this repository's ``.scribe/log/`` either way."""
    if not settings.journal:
        return None
    return JournalWriter(open_store(root, settings.journal_url), Mirrors(root))


def required_journal(root: Path, settings: Settings) -> JournalWriter:
    """The journal, for commands that make no sense without it."""
    journal = open_journal(root, settings)
    if journal is None:
        raise ScribeError("the journal is turned off (journal: false in scribe.yaml)")
    return journal


def load_repository_rules(
    root: Path, settings: Settings, path: Path, *, display: str | None = None
) -> list[CompiledRule]:
    """The rules at ``path`` with every action the repository may use: built-ins,
    installed plug-ins and, when ``plugins_local`` allows, its own
    ``.scribe/actions``. A refused plug-in's name in the rules says why it was."""
    # The engine's modules load with the first rules: ``scribe mcp`` needs this
    # module for its journal, and most of its calls never touch a rule.
    from scribe.actions.registry import load_registry
    from scribe.rules.load import load_rules

    registry = load_registry(root, local=settings.plugins_local)
    return load_rules(
        path,
        actions=registry.actions,
        permissions=registry.permissions,
        refusals={r.name: r.reason for r in registry.refused},
        display=display,
    )


def command_policy(root: Path, settings: Settings) -> Policy | None:
    """The sandbox policy of run_command steps; None when no command is allowed.

    Raises ``ConfigError`` for an allow-list entry that is missing, not executable
    or inside the repository (where any edit would change what rules run).
    """
    if not settings.commands:
        return None
    problems = check_policy(settings.commands, root=root)
    if problems:
        raise ConfigError([Problem(CONFIG_FILE, 0, 0, "commands", p) for p in problems])
    if settings.command_isolation == "auto" and bwrap_path() is None:
        log.warning(
            "bwrap is not installed: rules' commands run without isolation; install "
            "bubblewrap for a read-only repository and no network"
        )
    limits = settings.command_limits
    return Policy(
        root=root.resolve(),
        allow=tuple(settings.commands),
        env_allow=tuple(settings.command_env),
        limits=Limits(
            cpu_seconds=limits.cpu_seconds,
            memory_bytes=limits.memory_mb << 20,
            open_files=limits.open_files,
            file_bytes=limits.file_mb << 20,
            processes=limits.processes,
        ),
        output_bytes=settings.command_output_bytes,
        isolation=settings.command_isolation,
    )


def build_engine(
    root: Path,
    settings: Settings,
    rules: Sequence[CompiledRule],
    *,
    dry_run: bool,
    journal: JournalWriter | None = None,
) -> Engine:
    from scribe.engine import Engine
    from scribe.notes.index import NoteIndex

    state = State(None if dry_run else root / STATE_DIR / "state.db")
    confinement = Confinement(settings.deny)
    return Engine(
        root,
        rules,
        state=state,
        dry_run=dry_run,
        max_file_bytes=settings.max_file_bytes,
        regex_timeout=settings.regex_timeout,
        journal=journal,
        breakers=Breakers(settings.breaker_failures),
        confinement=confinement,
        commands=command_policy(root, settings),
        max_chain_depth=settings.max_chain_depth,
        batch_sync=settings.batch_sync,
        notes=NoteIndex(
            root.resolve(),
            deny=lambda rel: confinement.refusal(rel) is not None,
            max_file_bytes=settings.max_file_bytes,
        ),
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

"""The engine: one path for plan, run and watch — read, match, plan, apply.

``Engine.handle`` takes one event and does everything for its file; callers decide
only whether to write (``dry_run``) and where events come from. ``handle_many``
does the same for a batch of events, sharing the journal commit and directory syncs
of their writes. Calls for different paths may run in parallel; the caller
guarantees one call per path at a time (the scheduler does, for ``scribe watch``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time as clock
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

from scribe import records
from scribe.actions.effects import Finding
from scribe.breaker import Breakers
from scribe.confinement import Confinement
from scribe.durable import BatchSync
from scribe.effect_runner import DEFAULT_MAX_DEPTH, EffectRunner
from scribe.errors import ContentChanged, FileBusy, OutsideRoot, Skipped
from scribe.events import Event, EventKind
from scribe.files import (
    DEFAULT_MAX_FILE_BYTES,
    Staged,
    TextFile,
    enable_writer_probe,
    hash_file,
    read_text,
    sha256,
    stage,
    swap_in,
)
from scribe.frontmatter import mask
from scribe.journal.entry import JournalUnavailable, NewEntry
from scribe.journal.writer import JournalWriter
from scribe.observe import tracing
from scribe.plan import Ahead, Failure, Plan, plan_file
from scribe.quarantine import Held, release, released
from scribe.rules.match import CompiledRule
from scribe.state import Seen, State

if TYPE_CHECKING:
    from scribe.notes.index import NoteIndex
    from scribe.sandbox import Policy

log = logging.getLogger("scribe")

#: How many times a write is re-planned when the file keeps changing under it.
MAX_ATTEMPTS = 5
GIT_LOCK = ".git/index.lock"
#: Existing files found by a run or a scan count as modified: ``created`` rules
#: (defaults such as a creation date) are for files that appear while Scribe watches.
SCAN_KIND = EventKind.MODIFIED


class Status(StrEnum):
    WRITTEN = "written"  # the file was rewritten
    PLANNED = "planned"  # dry run: the file would be rewritten
    UNCHANGED = "unchanged"  # the rules had nothing to change
    ECHO = "echo"  # content Scribe already processed (its own write, or a no-op save)
    SKIPPED = "skipped"  # not a file Scribe edits (binary, too large, outside the root...)
    GONE = "gone"  # deleted before it could be read
    DELETED = "deleted"
    CONFLICT = "conflict"  # kept changing while Scribe tried to write it; left alone
    BUSY = "busy"  # open for writing by another process; its close brings it back
    FAILED = "failed"  # the write itself failed (disk full, permissions...)


@dataclass(frozen=True)
class _Write:
    """A planned rewrite waiting for its journal entry and its swap."""

    event: Event
    file: TextFile
    plan: Plan
    data: bytes
    history: list[NewEntry]
    masked: str | None = None  # the new text's masked hash, when known already


@dataclass(frozen=True)
class Outcome:
    path: str
    status: Status
    plan: Plan | None = None
    reason: str = ""
    seq: int | None = None  # the journal entry of the write, when there is one
    #: Custom events the plan's effects raised: the caller handles them next.
    emitted: tuple[Event, ...] = ()
    findings: tuple[Finding, ...] = ()
    #: Rules whose effects failed or were refused (the plan's own failures aside).
    effect_failures: tuple[Failure, ...] = ()

    @property
    def failures(self) -> tuple[Failure, ...]:
        return (*(self.plan.failures if self.plan else ()), *self.effect_failures)

    @property
    def ran_effects(self) -> bool:
        """Whether its plan had effects beyond findings (which are only told): a
        command, a write to another file, a rename, an event."""
        effects = self.plan.effects if self.plan is not None else ()
        return any(not isinstance(p.effect, Finding) for p in effects)


class Engine:
    """Applies compiled rules to files under ``root``."""

    def __init__(
        self,
        root: Path,
        rules: Sequence[CompiledRule],
        *,
        state: State | None = None,
        dry_run: bool = False,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        regex_timeout: float = 1.0,
        journal: JournalWriter | None = None,
        breakers: Breakers | None = None,
        confinement: Confinement | None = None,
        commands: Policy | None = None,
        max_chain_depth: int = DEFAULT_MAX_DEPTH,
        notes: NoteIndex | None = None,
        batch_sync: bool = True,
    ) -> None:
        self.root = root.resolve()
        #: Whether large batches of writes are synced per file system (``scribe.durable``).
        self.batch_sync = batch_sync
        self.confinement = confinement or Confinement()
        #: The repository's notes, kept current from the events the engine handles.
        self.notes = notes
        #: Where every change is recorded; None in dry runs and bare tests.
        self.journal = None if dry_run else journal
        self.breakers = breakers or Breakers()
        enable_writer_probe()
        self.state = state or State(None)
        self.dry_run = dry_run
        self.max_file_bytes = max_file_bytes
        self.regex_timeout = regex_timeout
        self._lock = threading.Lock()
        #: path -> rule id -> (reason, sha256 of the content it failed on)
        self.quarantine: dict[str, dict[str, tuple[str, str]]] = {}
        self.rules = rules
        self.effects = EffectRunner(
            self.root,
            confinement=self.confinement,
            journal=self.journal,
            policy=commands,
            remember=self._remember_text,
            max_depth=max_chain_depth,
        )

    @property
    def rules(self) -> Sequence[CompiledRule]:
        return self._rules

    @rules.setter
    def rules(self, rules: Sequence[CompiledRule]) -> None:
        self._rules = tuple(rules)
        self._stamped = tuple(dict.fromkeys(f for r in self._rules for f in r.stamps))
        self._fingerprints = {r.id: r.fingerprint for r in self._rules}

    def handle(self, event: Event) -> Outcome:
        """Process one event end to end and say what happened."""
        return self.handle_many([event])[0]

    def handle_all(self, events: Sequence[Event]) -> list[Outcome]:
        """``handle_many``, then the custom events their effects raise, until none
        is left (chains are bounded by their depth limit). The outcomes of the
        given events come first, in order, then those of the raised ones."""
        outcomes: list[Outcome] = []
        waiting = list(events)
        while waiting:
            batch: dict[str, Event] = {}
            later: list[Event] = []
            for event in waiting:  # one event per path and batch
                if event.target in batch:
                    later.append(event)
                else:
                    batch[event.target] = event
            done = self.handle_many(list(batch.values()))
            outcomes += done
            waiting = later + [e for o in done for e in o.emitted]
        return outcomes

    def handle_many(
        self, events: Sequence[Event], ahead: Mapping[str, Ahead] | None = None
    ) -> list[Outcome]:
        """Process events for distinct paths together; one outcome per event, in order.

        Each file is read and planned on its own, but their writes share the costs a
        disk makes per call: one journal commit records every intent, and each
        directory is synced once after its files are swapped in, before any of them
        is reported done. A file that changes under its write is re-planned alone.
        ``ahead`` holds plans made in other processes (``scribe.ahead``), taken
        where they fit.
        """
        with tracing.events(events):
            return self._handle_many(events, ahead or {})

    def _handle_many(self, events: Sequence[Event], ahead: Mapping[str, Ahead]) -> list[Outcome]:
        self._note(events)
        outcomes: dict[int, Outcome] = {}
        todo: list[tuple[int, Event]] = []
        for index, event in enumerate(events):
            early = self._before_reading(event.at(datetime.now(UTC)))
            if early is None:
                todo.append((index, event))
            else:
                outcomes[index] = early
                tracing.settle(event, early.status)
        for _ in range(MAX_ATTEMPTS):
            writes: list[tuple[int, _Write]] = []
            for index, event in todo:
                prepared = self._prepare(event, ahead.get(event.target))
                if isinstance(prepared, _Write):
                    writes.append((index, prepared))
                else:
                    outcomes[index] = prepared
                    tracing.settle(event, prepared.status)
            todo, ahead = [], {}  # a file read again is planned again
            written = self._write([write for _, write in writes])
            for (index, _), outcome in zip(writes, written, strict=True):
                if outcome is None:  # changed under the write: read and plan it again
                    todo.append((index, events[index]))  # (with a new now() if it had none)
                else:
                    outcomes[index] = outcome
                    tracing.settle(events[index], outcome.status, outcome.reason)
            if not todo:
                break
        for index, event in todo:
            outcomes[index] = Outcome(
                event.target,
                Status.CONFLICT,
                reason=f"changed during each of {MAX_ATTEMPTS} write attempts",
            )
            tracing.settle(event, Status.CONFLICT)
        return [self._with_effects(events[i], outcomes[i]) for i in range(len(events))]

    def _note(self, events: Sequence[Event]) -> None:
        """Keep the note index current with what the events say changed."""
        if self.notes is None:
            return
        for event in events:
            if event.source == "scan":
                continue  # a file found by a scan has not changed: nothing to redo
            if event.kind is EventKind.DELETED:
                self.notes.removed(event.path)
            elif event.kind is EventKind.MOVED and event.dest:
                self.notes.moved(event.path, event.dest)
            elif event.kind is not EventKind.CUSTOM:
                self.notes.changed(event.path)

    def _with_effects(self, event: Event, outcome: Outcome) -> Outcome:
        """Run the effects of a plan that is now on disk (or had nothing to write)."""
        plan = outcome.plan
        if self.notes is not None and outcome.status is Status.WRITTEN:
            self.notes.changed(outcome.path)  # what was read of it before is stale now
        if plan is None or not plan.effects:
            return outcome
        if self.dry_run:  # nothing runs; what checks found is still worth telling
            found = tuple(finding for _, finding in plan.findings)
            return dataclasses.replace(outcome, findings=found)
        if outcome.status not in (Status.WRITTEN, Status.UNCHANGED, Status.DELETED):
            return outcome
        with tracing.step(event, "scribe.effects"):
            done = self.effects.run(event, plan)
        if self.notes is not None:
            for rel in done.touched:
                self.notes.changed(rel)
        for failure in done.failures:
            self._record(
                *records.failed(plan.path, plan.base_sha256, failure, event, quarantined=False)
            )
        return dataclasses.replace(
            outcome,
            emitted=tuple(done.emitted),
            findings=tuple(done.findings),
            effect_failures=tuple(done.failures),
        )

    @staticmethod
    def scan_event(path: str) -> Event:
        """The event a one-shot run or a scan gives an existing file (``SCAN_KIND``)."""
        return Event(SCAN_KIND, path, source="scan")

    def _before_reading(self, event: Event) -> Outcome | None:
        """What needs no read of the file: deletions, moves, paths no rule wants."""
        path = event.target
        if event.kind is EventKind.MOVED and event.dest:
            self.state.forget(event.path)
            self._record(records.gone(event))
        wanted = [r for r in self.rules if r.wants(event.kind, path, event.name).matched]
        if event.kind is EventKind.DELETED:
            self.state.forget(path)
            self._record(records.gone(event))
            return Outcome(path, Status.DELETED, self._plan_gone(event, wanted))
        if not wanted:
            if event.source != "scan":
                self._record(records.observed(event, None))
            return Outcome(path, Status.UNCHANGED, reason="no rule applies")
        refusal = self.confinement.refusal(path)
        if refusal is not None:  # journaled every time: confinement is audited
            self._record(records.scope_violation(path, refusal, event))
            return Outcome(path, Status.SKIPPED, reason=refusal)
        return None

    def _plan_gone(self, event: Event, wanted: Sequence[CompiledRule]) -> Plan | None:
        """The effects rules ask for when a file is deleted (an index to update...);
        there is no content left to rewrite."""
        if not wanted or self.confinement.refusal(event.path) is not None:
            return None
        plan = plan_file(
            event.path,
            "",
            "",
            wanted,
            kind=event.kind,
            time=event.time or datetime.now(UTC),
            size=0,
            may_restamp=False,
            regex_timeout=self.regex_timeout,
            notes=self.notes,
            event=event,
        )
        return dataclasses.replace(plan, new_text="") if plan.effects else None

    def _prepare(self, event: Event, ahead: Ahead | None = None) -> Outcome | _Write:
        """Read and plan the event's file: its outcome, or the write it needs."""
        path = event.target
        live = event.source != "scan"
        try:
            file = read_text(self.root, path, max_bytes=self.max_file_bytes)
        except FileNotFoundError:
            return Outcome(path, Status.GONE)
        except OutsideRoot as exc:  # journaled every time: confinement is audited
            event = event.at(datetime.now(UTC))
            self._record(records.scope_violation(path, str(exc), event))
            return Outcome(path, Status.SKIPPED, reason=str(exc))
        except (Skipped, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            if live:
                event = event.at(datetime.now(UTC))
                self._record(records.observed(event, None), records.skipped(path, str(exc), event))
            return Outcome(path, Status.SKIPPED, reason=str(exc))
        if ahead is not None and ahead.sha256 != file.sha256:
            ahead = None  # planned from other content
        # A plan made ahead has the now() of its reading: the same content was there.
        now = event.time or (ahead.time if ahead is not None else datetime.now(UTC))
        return self._plan(event.at(now), file, now, live=live, ahead=ahead)

    def plan_ahead(self, rel: str) -> Ahead | None:
        """Plan ``rel`` as a scan of it would, for the engine of the process that
        forked this one (``scribe.ahead``); None when there is nothing to plan."""
        event = self.scan_event(rel)
        wanted = any(r.wants(event.kind, rel).matched for r in self.rules)
        if not wanted or self.confinement.refusal(rel) is not None:
            return None
        try:
            file = read_text(self.root, rel, max_bytes=self.max_file_bytes)
        except (OSError, Skipped):
            return None  # the engine reads it again, and tells
        now = datetime.now(UTC)
        masked, may_restamp = self._masked_and_restamp(file, live=False)
        plan = self._plan_file(event.at(now), file, now, may_restamp, skip=set())
        new_masked = self._masked(plan.new_text) if plan.changed else None
        return Ahead.of(plan, now, may_restamp, self.rules, (masked, new_masked))

    def _masked_and_restamp(
        self, file: TextFile, *, live: bool, ahead: Ahead | None = None
    ) -> tuple[str, bool]:
        """The masked hash of ``file`` (from ``ahead``, made of the same content, if
        given), and whether stamp rules may restamp it: only when more than their
        own stamps changed since Scribe last saw it."""
        seen = self.state.get(file.rel)
        if ahead is not None and ahead.sha256 == file.sha256:
            masked = ahead.masked
        else:
            masked = self._masked(file.text)
        return masked, (seen.masked != masked) if seen is not None else live

    def _plan_file(
        self, event: Event, file: TextFile, now: datetime, may_restamp: bool, skip: set[str]
    ) -> Plan:
        return plan_file(
            file.rel,
            file.text,
            file.sha256,
            self.rules,
            kind=event.kind,
            time=now,
            size=len(file.raw),
            may_restamp=may_restamp,
            regex_timeout=self.regex_timeout,
            skip=skip,
            notes=self.notes,
            event=event,
        )

    def _plan(
        self, event: Event, file: TextFile, now: datetime, *, live: bool, ahead: Ahead | None
    ) -> Outcome | _Write:
        seen = self.state.get(file.rel)
        custom = event.kind is EventKind.CUSTOM  # not a change to the file: never an echo
        if live and not custom and seen is not None and seen.sha256 == file.sha256:
            return Outcome(file.rel, Status.ECHO)
        masked, may_restamp = self._masked_and_restamp(file, live=live, ahead=ahead)
        with tracing.step(event, "scribe.match") as span:
            candidates = [
                r.id for r in self.rules if r.wants(event.kind, file.rel, event.name).matched
            ]
            span.set_attribute("scribe.rules.matched", candidates)
            held, probes = self.breakers.blocked(candidates)
        with tracing.step(event, "scribe.plan") as span:
            skip = self._quarantined(file) | held
            fits = ahead is not None and ahead.fits(file, may_restamp, skip)
            made = ahead.plan(file, self.rules) if ahead is not None and fits else None
            plan = made or self._plan_file(event, file, now, may_restamp, skip)
            tracing.planned(span, plan, self.rules)
            news = self._note_failures(file, plan.failures)
        failed = {f.rule for f in plan.failures}
        moved = probes + self.breakers.record(
            [r for r in plan.matched if r not in failed],
            failed,
            idle=[r for r in candidates if r not in held and r not in plan.matched],
        )
        history = [
            # A write records its event itself; only events that change nothing
            # need an entry of their own.
            *([records.observed(event, file.sha256)] if live and not plan.changed else []),
            *(records.matched(file.rel, plan) if live else []),
            *(
                entry
                for failure in plan.failures
                for entry in records.failed(
                    file.rel,
                    file.sha256,
                    failure,
                    event,
                    quarantined=failure in news,
                    fingerprint=self._fingerprints.get(failure.rule, ""),
                )
            ),
            *(
                records.scope_violation(file.rel, failure.reason, event, rule=failure.rule)
                for failure in plan.failures
                if failure.scope
            ),
            *(records.breaker(t) for t in moved),
        ]
        for transition in moved:
            log.warning("%s", records.breaker(transition).message)
        if not plan.changed:
            if not self.dry_run:
                self._record(*history)
                self._remember(file.rel, file.raw, masked, len(file.raw), file.mtime_ns)
            return Outcome(file.rel, Status.UNCHANGED, plan)
        if self.dry_run:
            return Outcome(file.rel, Status.PLANNED, plan)
        new_masked = ahead.new_masked if made is not None and ahead is not None else None
        return _Write(event, file, plan, file.encode(plan.new_text), history, new_masked)

    def _write(self, batch: Sequence[_Write]) -> list[Outcome | None]:
        """Journal, then swap in, every write; None for a file that changed under us."""
        if not batch:
            return []
        self._wait_for_git()
        intents: list[int | None] = [None] * len(batch)
        if self.journal is not None:  # journal first: no write Scribe could not record
            entries: list[NewEntry] = []
            for w in batch:
                entries += [*w.history, records.written(w.plan, sha256(w.data), w.event)]
            try:
                with tracing.shared_step((w.event for w in batch), "scribe.journal") as spans:
                    sealed = self.journal.append(entries)
                    ends = accumulate(len(w.history) + 1 for w in batch)
                    intents = [sealed[end - 1].seq for end in ends]
                    tracing.journaled(spans, len(entries), intents)
            except JournalUnavailable as exc:
                return [
                    Outcome(w.file.rel, Status.FAILED, w.plan, f"not written: {exc}") for w in batch
                ]
        closing: list[NewEntry] = []
        results: list[Outcome | None] = [None] * len(batch)
        placed = self._swap_in(batch, intents, results, closing)
        for at, stat in placed.items():
            w, intent, rel = batch[at], intents[at], batch[at].file.rel
            closing += self._closing(intent, rel, "written")
            masked = w.masked or self._masked(w.plan.new_text)
            self._remember(rel, w.data, masked, stat.st_size, stat.st_mtime_ns)
        self._record(*closing)
        return results

    def _swap_in(
        self,
        batch: Sequence[_Write],
        intents: Sequence[int | None],
        results: list[Outcome | None],
        closing: list[NewEntry],
    ) -> dict[int, os.stat_result]:
        """Write every file of ``batch`` durably; the status of each one written, by
        position. ``results`` gets each file's outcome (None: changed under the
        write, to be planned again) and ``closing`` the entries ending its intent.
        """

        def fail(at: int, status: str, outcome: Outcome | None, error: str = "") -> None:
            extra = {"error": error} if error else {}
            closing.extend(
                self._closing(intents[at], batch[at].file.rel, status, written=False, **extra)
            )
            results[at] = outcome

        def failed(at: int, problem: str) -> None:
            w = batch[at]
            fail(
                at,
                "failed",
                Outcome(w.file.rel, Status.FAILED, w.plan, f"could not write: {problem}"),
                problem,
            )

        placed: dict[int, os.stat_result] = {}
        staged: dict[int, Staged] = {}
        directories = [w.file.path.parent for w in batch]
        with contextlib.closing(BatchSync(directories, allowed=self.batch_sync)) as syncs:
            try:
                for at, w in enumerate(batch):
                    try:
                        staged[at] = stage(w.file, w.data, sync=syncs.per_file)
                    except OSError as exc:  # the file is left as it was; say why
                        failed(at, str(exc))
                problem = syncs.before_swaps() if staged else None
                if problem is not None:  # nothing swapped in: every file stays as it was
                    for at in staged:
                        failed(at, problem)
                    return placed
                for at in list(staged):
                    w = batch[at]
                    try:
                        with tracing.apply(w.event):
                            placed[at] = swap_in(staged.pop(at))
                    except ContentChanged:
                        log.info("%s changed while planning; re-planning", w.file.rel)
                        fail(at, "conflict", None)
                    except FileBusy:
                        message = "open for writing by another process; left alone"
                        fail(at, "busy", Outcome(w.file.rel, Status.BUSY, w.plan, message))
                    except OSError as exc:
                        failed(at, str(exc))
                    else:
                        results[at] = Outcome(w.file.rel, Status.WRITTEN, w.plan, seq=intents[at])
            finally:  # temp files never swapped in
                for pending in staged.values():
                    pending.discard()
            unsynced = syncs.after_swaps(batch[at].file.path.parent for at in placed)
        for at in list(placed):
            problem = unsynced.get(batch[at].file.path.parent)
            if problem is not None:  # swapped in, but a crash could still undo it
                failed(at, problem)
                del placed[at]
        return placed

    def _record(self, *entries: NewEntry) -> None:
        """Journal entries that guard no write: they need not hold the worker up."""
        if self.journal is not None and entries:
            self.journal.submit(entries)

    @staticmethod
    def _closing(intent: int | None, path: str, status: str, **extra: object) -> list[NewEntry]:
        """The entry closing a journaled write with how it ended (recovery reads it)."""
        return [] if intent is None else [records.done(intent, path, status, **extra)]

    def _masked(self, text: str) -> str:
        """Hash of the text without the fields that rules stamp with ``now()``."""
        kept = mask(text, self._stamped) if self._stamped else text
        return sha256(kept.encode("utf-8", "surrogatepass"))

    def _remember_text(self, rel: str, data: bytes, text: str) -> None:
        """Record a file an effect wrote, so that its echo does not set rules off."""
        try:
            st = os.stat(self.root / rel)
        except OSError:
            return
        self._remember(rel, data, self._masked(text), st.st_size, st.st_mtime_ns)

    def _remember(self, rel: str, data: bytes, masked: str, size: int, mtime_ns: int) -> None:
        """Record what Scribe left at ``rel``: ``data``, its masked hash, size and mtime."""
        self.state.put(rel, Seen(sha256(data), masked, size, mtime_ns))

    def _quarantined(self, file: TextFile) -> set[str]:
        """Rules that failed on exactly this content: not retried until it changes."""
        with self._lock:
            failed = self.quarantine.get(file.rel, {})
            return {rule for rule, (_, sha) in failed.items() if sha == file.sha256}

    def _note_failures(self, file: TextFile, failures: Sequence[Failure]) -> set[Failure]:
        """Quarantine failing rules for this content; return the failures that are new.

        Rules held back for other content are released: the file changed, so they
        are tried again (and the journal says so).
        """
        news: set[Failure] = set()
        with self._lock:
            failed = self.quarantine.get(file.rel, {})
            kept = {rule: entry for rule, entry in failed.items() if entry[1] == file.sha256}
            for failure in failures:
                if failure.rule not in kept:
                    news.add(failure)
                    log.warning(
                        "rule %s failed on %s: %s (quarantined until the file changes)",
                        failure.rule,
                        file.rel,
                        failure.reason,
                    )
                kept[failure.rule] = (failure.reason, file.sha256)
            if kept:
                self.quarantine[file.rel] = kept
            else:
                self.quarantine.pop(file.rel, None)
        stale = [rule for rule in failed if rule not in kept]
        self._record(*(released(file.rel, rule, "the file changed") for rule in stale))
        return news

    def restore_quarantine(self, items: Sequence[Held]) -> list[NewEntry]:
        """Hold back again what the journal says is quarantined, unless the rule or
        the file changed since; the release entries for those."""
        releases = []
        for item in items:
            if self._fingerprints.get(item.rule) != item.fingerprint:
                releases.append(release(item, "the rule changed or is gone"))
                continue
            if hash_file(self.root / item.path) != item.content:
                releases.append(release(item, "the file changed"))
                continue
            with self._lock:
                self.quarantine.setdefault(item.path, {})[item.rule] = (item.reason, item.content)
        return releases

    def release_rules(self, rules: set[str]) -> list[NewEntry]:
        """Stop holding back files for ``rules`` (they changed or are gone); the
        release entries to journal."""
        releases = []
        with self._lock:
            for path, failed in list(self.quarantine.items()):
                for rule in rules & failed.keys():
                    del failed[rule]
                    releases.append(released(path, rule, "the rule changed or is gone"))
                if not failed:
                    del self.quarantine[path]
        return releases

    def _wait_for_git(self) -> None:
        """Hold rewrites while a git operation holds the index lock."""
        lock = os.path.join(self.root, GIT_LOCK)  # checked before every write: keep it cheap
        warned_at = clock.monotonic()
        while os.path.exists(lock):
            if clock.monotonic() - warned_at > 10:
                log.warning("waiting for git to finish (%s exists)", GIT_LOCK)
                warned_at = clock.monotonic()
            clock.sleep(0.02)

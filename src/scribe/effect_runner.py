"""Carrying out the effects of a plan, after its file's write is committed.

Each effect is checked before it runs: against the repository's confinement (no
path outside the root, none on the denylist, no rule writing Scribe's own
configuration) and against the step's manifest (a plug-in writes only its write
globs and runs only its commands). A refusal is journaled as a scope violation
and fails the rule on that file; the other effects still run.

Writes to other files are journal-first compare-and-swap writes like the
engine's own, so a crash in the middle is finished by recovery and a file that
changed since the effect was planned is left alone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scribe import records
from scribe.actions.effects import Emit, Finding, Rename, RunCommand, WriteFile
from scribe.confinement import Confinement
from scribe.errors import ContentChanged, FileBusy, OutsideRoot, Skipped
from scribe.events import Event, EventKind
from scribe.files import create_new, move_new, read_text, resolve_inside, sha256, write_cas
from scribe.journal.entry import NewEntry
from scribe.journal.writer import JournalWriter
from scribe.plan import Failure, Plan, Planned

if TYPE_CHECKING:
    from scribe.sandbox import Policy

log = logging.getLogger("scribe")

#: How many emits deep a chain of custom events may go before it is cut.
DEFAULT_MAX_DEPTH = 8


@dataclass
class Done:
    """What running a plan's effects gave: events to handle next, findings, failures."""

    emitted: list[Event] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    #: Paths of other files written, created or moved (for the note index).
    touched: list[str] = field(default_factory=list)


class EffectRunner:
    """Runs effects for one repository; shared by every worker (thread-safe)."""

    def __init__(
        self,
        root: Path,
        *,
        confinement: Confinement,
        journal: JournalWriter | None,
        policy: Policy | None,
        remember: Callable[[str, bytes, str], None],
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self.root = root
        self.confinement = confinement
        self.journal = journal
        #: None: no command may run (no allow-list configured).
        self.policy = policy
        self._remember = remember
        self.max_depth = max_depth
        self._locks = [threading.Lock() for _ in range(32)]

    def run(self, event: Event, plan: Plan) -> Done:
        done = Done()
        found = plan.findings
        if found:  # journaled together: a check can find many things in one file
            self._record(*(_finding_entry(rule, finding) for rule, finding in found))
            done.findings.extend(finding for _, finding in found)
        for planned in plan.effects:
            try:
                self._one(event, plan.path, planned, done)
            except Exception as exc:  # one effect's fault fails its rule on this file only
                log.exception("effect of %s on %s failed", planned.rule, plan.path)
                done.failures.append(Failure(planned.rule, f"{type(exc).__name__}: {exc}"))
        return done

    def _one(self, event: Event, path: str, planned: Planned, done: Done) -> None:
        effect = planned.effect
        if isinstance(effect, Emit):
            self._emit(event, path, planned.rule, effect, done)
        elif isinstance(effect, RunCommand):
            self._command(event, path, planned, effect, done)
        elif isinstance(effect, WriteFile):
            self._write(event, planned, effect, done)
        elif isinstance(effect, Rename):
            self._rename(event, planned, effect, done)

    # -- refusals ------------------------------------------------------------------

    def _refuse(self, event: Event, planned: Planned, path: str, reason: str, done: Done) -> None:
        log.warning("refused %s's effect on %s: %s", planned.rule, path, reason)
        self._record(records.scope_violation(path, reason, event, rule=planned.rule))
        done.failures.append(Failure(planned.rule, reason, scope=True))

    def _write_refusal(self, planned: Planned, rel: str) -> str | None:
        reason = self.confinement.refusal(rel, write=True) or planned.step.write_refusal(rel)
        if reason is None:
            try:
                resolve_inside(self.root, rel)
            except OutsideRoot as exc:
                reason = str(exc)
        return reason

    # -- events --------------------------------------------------------------------

    def _emit(self, cause: Event, path: str, rule: str, effect: Emit, done: Done) -> None:
        depth = cause.depth + 1 if cause.kind is EventKind.CUSTOM else 1
        if depth > self.max_depth:
            log.warning("chain of events cut at %s on %s (depth %d)", effect.name, path, depth)
            self._record(records.chain_cut(effect.path, rule, effect.name, self.max_depth, cause))
            return
        new = Event(
            EventKind.CUSTOM,
            effect.path,
            source="emit",
            name=effect.name,
            data=dict(effect.data),
            depth=depth,
        )
        self._record(records.emitted(effect.path, rule, new, cause))
        done.emitted.append(new)

    # -- commands ------------------------------------------------------------------

    def _command(
        self, event: Event, path: str, planned: Planned, effect: RunCommand, done: Done
    ) -> None:
        from scribe import sandbox  # only repositories whose rules run commands need it

        reason: str | None
        if self.policy is None:
            reason = "no command may run: the allow-list (setting `commands`) is empty"
            self._refuse(event, planned, path, reason, done)
            return
        refused_env = [name for name in effect.env if name not in self.policy.env_allow]
        if refused_env:
            reason = (
                f"environment variable(s) {', '.join(refused_env)} are not in the setting "
                "`command_env`, so no command may receive them"
            )
            self._refuse(event, planned, path, reason, done)
            return
        for rel in effect.writable:
            reason = self._write_refusal(planned, rel)
            if reason is not None:
                self._refuse(event, planned, rel, reason, done)
                return
        try:
            cwd = self.root / effect.cwd
            executable = sandbox.resolve_executable(effect.argv[0], self.policy, cwd=cwd)
            if planned.step.commands is not None:  # a plug-in: only what it declared
                declared = {os.path.realpath(c) for c in planned.step.commands}
                if str(executable) not in declared:
                    raise sandbox.CommandRefused(
                        "not_allowed",
                        f"action {planned.step.action.name!r} did not declare {executable} "
                        "in its manifest's commands",
                    )
            result = sandbox.run(
                effect.argv,
                self._policy_for(effect),
                cwd=effect.cwd,
                timeout=effect.timeout,
                writable=effect.writable,
            )
        except sandbox.CommandRefused as exc:
            self._refuse(event, planned, path, str(exc), done)
            return
        summary = result.summary()
        self._record(records.command_ran(path, planned.rule, summary, event))
        if not result.ok:
            how = "timed out" if result.timed_out else f"exited with {result.exit_code}"
            log.warning("command of %s on %s %s", planned.rule, path, how)
            if effect.fail_on_error:
                last = result.stderr.strip().splitlines()[-1:]
                reason = f"command {how}" + (f": {last[0]}" if last else "")
                done.failures.append(Failure(planned.rule, reason))

    def _policy_for(self, effect: RunCommand) -> Policy:
        """The policy for one step: it passes only the variables it names."""
        assert self.policy is not None
        return dataclasses.replace(self.policy, env_allow=effect.env)

    # -- other files ---------------------------------------------------------------

    def _write(self, event: Event, planned: Planned, effect: WriteFile, done: Done) -> None:
        rel = effect.path
        refusal = self._write_refusal(planned, rel)
        if refusal is not None:
            self._refuse(event, planned, rel, refusal, done)
            return
        # Several workers may write one index at once; in turn, the later ones find it
        # current and write nothing, instead of racing to a conflict.
        with self._locks[hash(rel) % len(self._locks)]:
            self._write_locked(event, planned, effect, done)

    def _write_locked(self, event: Event, planned: Planned, effect: WriteFile, done: Done) -> None:
        rel = effect.path
        try:
            file = read_text(self.root, rel)
        except FileNotFoundError:
            file = None
        except (Skipped, OSError) as exc:
            log.warning("%s not written by %s: %s", rel, planned.rule, exc)
            done.failures.append(Failure(planned.rule, f"cannot write {rel}: {exc}"))
            return
        if file is None and effect.base_sha256 is not None:
            return  # computed from a file that is gone since: nothing to update
        if file is not None and (
            effect.create_only
            or (effect.base_sha256 is not None and file.sha256 != effect.base_sha256)
        ):
            return  # there already, or changed since the effect was planned: leave it
        if file is not None and file.text == effect.text:
            return  # a run that changes nothing writes nothing
        old = file.text if file is not None else ""
        data = file.encode(effect.text) if file is not None else effect.text.encode("utf-8")
        plan = Plan(rel, file.sha256 if file else "", old, effect.text, rules=(planned.rule,))
        intent = self._intent(records.written(plan, sha256(data), event))
        try:
            if file is None:
                create_new(self.root, rel, data)
            else:
                write_cas(file, data)
        except (FileExistsError, ContentChanged, FileBusy) as exc:
            self._close(intent, rel, "conflict", written=False)
            log.info("%s changed while %s wrote it; left alone (%s)", rel, planned.rule, exc)
            return
        except OSError as exc:
            self._close(intent, rel, "failed", written=False, error=str(exc))
            done.failures.append(Failure(planned.rule, f"could not write {rel}: {exc}"))
            return
        self._close(intent, rel, "written")
        self._remember(rel, data, effect.text)
        done.touched.append(rel)
        log.info("wrote %s for %s", rel, planned.rule, extra={"path": rel, "rule": planned.rule})

    def _rename(self, event: Event, planned: Planned, effect: Rename, done: Done) -> None:
        for rel in (effect.path, effect.dest):
            reason = self._write_refusal(planned, rel)
            if reason is not None:
                self._refuse(event, planned, rel, reason, done)
                return
        try:
            move_new(self.root, effect.path, effect.dest)
        except FileExistsError:
            reason = f"{effect.dest} exists; {effect.path} was not renamed over it"
            done.failures.append(Failure(planned.rule, reason))
            return
        except FileNotFoundError:
            return  # gone meanwhile: nothing to rename
        self._record(records.moved(planned.rule, effect.path, effect.dest, None, event))
        done.touched.extend((effect.path, effect.dest))
        log.info("renamed %s to %s for %s", effect.path, effect.dest, planned.rule)

    # -- journal -------------------------------------------------------------------

    def _record(self, *entries: NewEntry) -> None:
        if self.journal is not None:
            self.journal.submit(entries)

    def _intent(self, entry: NewEntry) -> int | None:
        if self.journal is None:
            return None
        return self.journal.append([entry])[0].seq

    def _close(self, intent: int | None, rel: str, status: str, **extra: object) -> None:
        if intent is not None:
            self._record(records.done(intent, rel, status, **extra))


def _finding_entry(rule: str, found: Finding) -> NewEntry:
    return records.finding(
        rule,
        found.code,
        found.message,
        found.path,
        line=found.line,
        fail=found.fail,
        **dict(found.data),
    )


def describe(planned: Sequence[Planned]) -> list[str]:
    """One line per effect that would run, for ``scribe plan`` (which runs none;
    what checks found is reported as problems, not here)."""
    lines = []
    for p in planned:
        e = p.effect
        if isinstance(e, RunCommand):
            lines.append(f"{p.rule} would run {shlex.join(e.argv)}")
        elif isinstance(e, Emit):
            lines.append(f"{p.rule} would emit {e.name} on {e.path}")
        elif isinstance(e, WriteFile):
            lines.append(f"{p.rule} would write {e.path}")
        elif isinstance(e, Rename):
            lines.append(f"{p.rule} would rename it to {e.dest}")
    return lines

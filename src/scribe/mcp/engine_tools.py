"""The engine, for agents: list the rules, show the diff they would make, apply them.

The same ``Engine`` as ``scribe plan`` and ``scribe run``: a dry-run engine plans,
a journaled one writes (compare-and-swap, journal first), so a rewrite an agent
asks for is recorded exactly like one the watcher makes. The rules file is read
again whenever it changed, so an edit to it is in force at the next call.

The engine and its actions are imported at the first call that needs them: a
server whose agents never ask for the rules does not carry them in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scribe.config import Settings
from scribe.errors import ConfigError
from scribe.journal.writer import JournalWriter
from scribe.mcp.failures import INVALID_ARGUMENT, ToolFailure

if TYPE_CHECKING:
    from scribe.engine import Engine, Outcome
    from scribe.rules.match import CompiledRule


class EngineTools:
    """``list_rules``, ``plan_file`` and ``run_rules`` for one repository."""

    def __init__(self, root: Path, settings: Settings, journal: JournalWriter | None) -> None:
        self.root = root
        self.settings = settings
        self.journal = journal
        self.rules_file = root / settings.rules
        self._lock = threading.Lock()
        self._loaded: tuple[tuple[int, int] | None, list[CompiledRule]] | None = None
        self._engines: dict[bool, tuple[Sequence[CompiledRule], Engine]] = {}

    def rules(self) -> list[CompiledRule]:
        """The rules in force, read again when the file changed; INVALID_ARGUMENT if
        the file does not load (with every problem, as ``scribe rules`` prints them)."""
        try:
            st = self.rules_file.stat()
            key: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        with self._lock:
            if self._loaded is not None and self._loaded[0] == key:
                return self._loaded[1]
            from scribe.startup import load_repository_rules

            try:
                rules = (
                    load_repository_rules(
                        self.root, self.settings, self.rules_file, display=self._display()
                    )
                    if key
                    else []
                )
            except ConfigError as exc:
                raise ToolFailure(
                    INVALID_ARGUMENT,
                    f"the rules file does not load: {exc}",
                    problems=[str(p) for p in exc.problems],
                ) from None
            self._loaded = (key, rules)
            return rules

    def list_rules(self) -> dict[str, Any]:
        return {
            "rules_file": self._display(),
            "rules": [
                {
                    "id": rule.id,
                    "description": rule.description,
                    "enabled": rule.enabled,
                    "priority": rule.priority,
                    "on": rule.triggers(),
                    "paths": list(rule.paths),
                    "exclude": list(rule.exclude),
                    "steps": [step.action.name for step in rule.steps],
                }
                for rule in self.rules()
            ],
        }

    def plan_file(self, rel: str) -> dict[str, Any]:
        """The diff the rules would make to ``rel``, and the effects they would run;
        writes and runs nothing."""
        from scribe.engine import Engine

        return self._answer(self._engine(dry_run=True).handle(Engine.scan_event(rel)))

    def run_rules(self, rel: str) -> dict[str, Any]:
        """Apply the rules to ``rel``, write the result and run its effects
        (journaled by the engine), following the custom events they raise."""
        from scribe.engine import Engine

        first, *chained = self._engine(dry_run=False).handle_all([Engine.scan_event(rel)])
        answer = self._answer(first)
        if chained:
            answer["chained"] = [self._answer(outcome) for outcome in chained]
        return answer

    def close(self) -> None:
        with self._lock:
            for _, engine in self._engines.values():
                engine.state.close()
            self._engines.clear()

    def _engine(self, *, dry_run: bool) -> Engine:
        rules = self.rules()
        with self._lock:
            known = self._engines.get(dry_run)
            if known is not None and known[0] is rules:
                return known[1]
            if known is not None:
                known[1].state.close()
            from scribe.startup import build_engine

            journal = None if dry_run else self.journal
            engine = build_engine(self.root, self.settings, rules, dry_run=dry_run, journal=journal)
            self._engines[dry_run] = (rules, engine)
            return engine

    def _display(self) -> str:
        try:
            return self.rules_file.relative_to(self.root).as_posix()
        except ValueError:
            return str(self.rules_file)

    @staticmethod
    def _answer(outcome: Outcome) -> dict[str, Any]:
        from scribe.effect_runner import describe

        answer: dict[str, Any] = {"path": outcome.path, "status": outcome.status.value}
        if outcome.reason:
            answer["reason"] = outcome.reason
        plan = outcome.plan
        if plan is not None:
            answer["changed"] = plan.changed
            answer["rules"] = list(plan.rules)
            answer["matched"] = list(plan.matched)
            answer["diff"] = plan.diff() if plan.changed else ""
            answer["effects"] = describe(plan.effects)
        answer["failures"] = [{"rule": f.rule, "reason": f.reason} for f in outcome.failures]
        answer["findings"] = [
            {"code": f.code, "path": f.path, "line": f.line, "message": f.message, "fail": f.fail}
            for f in outcome.findings
        ]
        if outcome.seq is not None:
            answer["seq"] = outcome.seq
        return answer

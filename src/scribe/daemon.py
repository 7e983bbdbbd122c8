"""``scribe watch``: the engine behind the scheduler and the watcher, from start to a
graceful stop, with the operations endpoints and hot reload of rules and settings.

Everything here runs beside the hot path, not in it: metrics are counted from each
batch's outcomes, gauges are read when Prometheus scrapes, and the reload thread
looks at two files five times a second.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from scribe import __version__, records
from scribe.ahead import PlanPool, all_self_contained
from scribe.config import LIVE_SETTINGS, Settings, load_settings
from scribe.engine import SCAN_KIND, Engine, Outcome, Status
from scribe.errors import ConfigError, ScribeError
from scribe.events import Event, EventKind
from scribe.journal.entry import (
    CONFIG_LOADED,
    CONFIG_REJECTED,
    RULES_REJECTED,
    JournalUnavailable,
    NewEntry,
)
from scribe.journal.writer import JournalWriter
from scribe.observe import metrics
from scribe.progress import progress_bar
from scribe.recovery import catch_up, finish_open_work, left_at_stop
from scribe.reload import snapshot, watch_files
from scribe.rules.match import CompiledRule
from scribe.scheduler import Scheduler
from scribe.startup import (
    build_engine,
    ignore_for,
    load_repository_rules,
    open_journal,
    restore_quarantine,
    rules_loaded,
    start_journal,
    stop_journal,
)
from scribe.watch import POLL_INTERVAL, Change, Ignore, scan, watch

if TYPE_CHECKING:
    from scribe.bus import Bus, Consumer, Link
    from scribe.observe.server import OpsServer

log = logging.getLogger("scribe")

#: A polled file is ready once it has looked unchanged for this long: a change is
#: seen up to one interval late, and a writer's next change one more interval on.
POLL_QUIET = 2.5 * POLL_INTERVAL
#: After a stop signal, pending work goes on for this long; what is left then is
#: found by the next start's catch-up. Writes in flight always complete.
STOP_DRAIN = 2.5
#: The whole stop, signal to exit, stays within this.
STOP_BUDGET = 4.5
#: A rename held back for one planned before it (``rename_deferred``) is tried
#: again this many seconds later, then twice that, and so on, ``DEFERRED_TRIES``
#: times at most: the earlier rename usually lands within milliseconds.
DEFERRED_RETRY = 0.1
DEFERRED_TRIES = 8
_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class WatchService:
    """One ``scribe watch`` process: build with the loaded settings and rules, then
    ``run()`` until SIGTERM or SIGINT."""

    def __init__(
        self,
        root: Path,
        settings: Settings,
        rules: Sequence[CompiledRule],
        *,
        rules_file: Path,
        rules_display: str,
        rules_fixed: bool,
        flags: Mapping[str, Any],
        listen_given: bool,
        console: Console,
        consume: bool = True,
    ) -> None:
        """``consume``: with a bus set, also handle events from it here (else this
        process only publishes them, for ``scribe worker`` processes)."""
        self.root = root
        self.settings = settings
        self.rules_file = rules_file
        # First of all: an edit of the rules or settings from here on is reloaded,
        # even one made before the reloading thread starts.
        self._config_seen = snapshot(self._watched_files())
        self.rules_display = rules_display
        self._rules_fixed = rules_fixed  # --rules was given: scribe.yaml cannot move it
        self._flags = dict(flags)
        self._listen_given = listen_given
        self._console = console
        # Connected first: a bus that is not answering stops the start before anything
        # is journaled.
        self._link: Link | None = None
        if settings.bus:
            from scribe.bus import Link

            self._link = Link(settings)
        self.stop = threading.Event()
        self.journal: JournalWriter | None = open_journal(root, settings)
        self._previous = self.journal.store.head() if self.journal else None
        if self.journal is not None:
            start_journal(self.journal, rules, "watch")
        self.engine: Engine = build_engine(
            root, settings, rules, dry_run=False, journal=self.journal
        )
        if self.journal is not None:
            restore_quarantine(self.engine, self.journal)
        self.ignore: Ignore = ignore_for(root, settings)
        self.polling = settings.poll
        closes_known = sys.platform.startswith("linux") and not settings.poll
        self.scheduler: Bus
        self._consumer: Consumer | None = None
        if self._link is None:
            self.scheduler = Scheduler(
                self._handle,
                quiet=settings.quiet_ms / 1000,
                closes_known=closes_known,
                workers=settings.workers,
                max_batch=settings.max_batch,
                high_water=settings.queue_high_water,
            )
        else:
            self._publish_to(self._link, closes_known=closes_known, consume=consume)
        self._watch_ready = threading.Event()
        self._watcher: threading.Thread | None = None
        self._recovering = True
        self._started = time.monotonic()
        self._started_at = datetime.now(UTC)
        self._last_event_at: datetime | None = None
        self._deferred: dict[str, int] = {}  # path -> retries of a held-back rename so far
        self._deferred_lock = threading.Lock()
        self._breakers_shown: dict[str, str] = {}
        self._planner: PlanPool | None = None

    def _publish_to(self, link: Link, *, closes_known: bool, consume: bool) -> None:
        """Ready events go to the bus; with ``consume``, this process takes its share."""
        from scribe.bus import NEEDS_JOURNAL, Consumer, NatsBus

        settings = self.settings
        self.scheduler = NatsBus(
            link,
            quiet=settings.quiet_ms / 1000,
            closes_known=closes_known,
            workers=settings.workers,
            max_batch=settings.max_batch,
            high_water=settings.queue_high_water,
        )
        if consume:
            if self.journal is None:
                raise ScribeError(NEEDS_JOURNAL)
            self._consumer = Consumer(
                link,
                self._handle,
                root=self.root,
                journal=self.journal,
                max_deliveries=settings.max_deliveries,
                max_batch=settings.max_batch,
            )

    # -- running -------------------------------------------------------------------

    def run(self, *, scan_first: bool = False) -> int:
        """Watch until a stop signal; how many changes were left for the next start."""
        if scan_first:
            self._planner = self._plan_scan()  # before any thread of this service starts
        server = self._serve()
        self._install_signals()
        metrics.RULES_LOADED.set(len(self.engine.rules))
        metrics.QUEUE_DEPTH.set_function(lambda: self.scheduler.depth)
        metrics.QUARANTINED.set_function(self._quarantined)
        self.scheduler.start()
        if self._consumer is not None:
            self._consumer.start()
        self._watcher = threading.Thread(
            target=watch,
            args=(self.root, self.ignore, self.scheduler.submit, self.stop),
            kwargs={
                "poll": self.settings.poll,
                "ready": self._watch_ready,
                "on_rescan": self._on_rescan,
                "on_polling": self._on_polling,
            },
            name="scribe-watcher",
            daemon=True,
        )
        self._watcher.start()
        while not self._watch_ready.wait(0.1):
            if not self._watcher.is_alive():
                raise ScribeError("the watcher failed to start")
        log.info(
            "watching",
            extra={
                "root": str(self.root),
                "rules": len(self.engine.rules),
                "polling": self.polling,
                "listen": "{}:{}".format(*server.address) if server else "off",
            },
        )
        reloader = threading.Thread(
            target=watch_files,
            args=(self._watched_files, self._reload, self.stop),
            kwargs={"since": self._config_seen},
            name="scribe-reload",
            daemon=True,
        )
        reloader.start()
        if self.journal is not None:
            self._recover()
        self._recovering = False
        if scan_first:
            self._initial_scan()
        self.stop.wait()
        left = self._shutdown(reloader)
        if server is not None:
            server.close()
        return len(left)

    def _serve(self) -> OpsServer | None:
        from scribe.observe.server import serve_endpoints

        return serve_endpoints(
            self.settings,
            self.root,
            ready=self.not_ready,
            status=self.status,
            given=self._listen_given,
            doing="watching",
        )

    def _install_signals(self) -> None:
        signals = itertools.count()  # next() is one C call: safe when a handler is re-entered

        def on_signal(signum: int, _frame: object) -> None:
            name = signal.Signals(signum).name
            if next(signals) > 0:
                # A second signal: leave now. Writes are atomic swaps and the journal
                # is a WAL database, so an exit at any instant tears nothing.
                os.write(2, f"scribe: second {name}, exiting at once\n".encode())
                os._exit(128 + signum)
            self._stop_signal = time.monotonic()
            self.stop.set()
            log.info("stopping (%s): finishing in-flight work", name)

        self._stop_signal = 0.0
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _shutdown(self, reloader: threading.Thread) -> dict[str, EventKind]:
        began = self._stop_signal or time.monotonic()
        # The watcher first: it hands over what the kernel had queued before it stops,
        # so that every change seen is either handled or journaled as left.
        if self._watcher is not None:
            self._watcher.join(timeout=1.0)
        self._stop_planning()  # a worker waiting for plans goes on without them
        spent = time.monotonic() - began
        left = self.scheduler.stop(
            drain=max(0.0, STOP_DRAIN - spent), timeout=max(0.5, STOP_BUDGET - 1.0 - spent)
        )
        if self._consumer is not None:  # what it holds is handled and acknowledged
            self._consumer.stop()
        if self._link is not None:
            self._link.close()
        reloader.join(timeout=1.0)
        self.engine.state.close()
        if self.journal is not None:
            if left:
                self._record(records.left_pending(left))
            stop_journal(self.journal, "watch")
        # ``left``: changes journaled for the next start to finish.
        took = round((time.monotonic() - began) * 1000, 1)
        log.info("stopped", extra={"left": len(left), "duration_ms": took})
        return left

    # -- one batch ---------------------------------------------------------------------

    def _handle(self, events: list[Event]) -> list[Outcome]:
        started = time.perf_counter()
        planner = self._planner
        ahead = planner.ready(e.target for e in events if e.source == "scan") if planner else None
        outcomes = self.engine.handle_many(events, ahead)
        done = time.monotonic()
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        self._last_event_at = datetime.now(UTC)
        for event, outcome in zip(events, outcomes, strict=True):
            self._account(event, outcome, done, elapsed_ms, len(events))
            for raised in outcome.emitted:
                self.scheduler.submit_event(raised)
        self._retry_deferred(list(zip(events, outcomes, strict=True)))
        self._show_breakers()
        return outcomes

    def _retry_deferred(self, handled: Sequence[tuple[Event, Outcome]]) -> None:
        """Handle events again a little later whose file's rename was held back for
        one planned before it: ``scribe run`` says "run again", and in a watch nobody
        would. One timer per batch; retries back off and stop after ``DEFERRED_TRIES``."""
        again: list[Event] = []
        tries = 0
        with self._deferred_lock:
            for event, outcome in handled:
                path = outcome.path
                if not any(found.code == "rename_deferred" for found in outcome.findings):
                    self._deferred.pop(path, None)
                    continue
                made = self._deferred.get(path, 0)
                if made >= DEFERRED_TRIES:
                    del self._deferred[path]
                    continue
                self._deferred[path] = made + 1
                tries = max(tries, made)
                again.append(event)
        if not again:
            return

        def resubmit() -> None:
            if self.stop.is_set():
                return
            for event in again:
                if event.kind is EventKind.CUSTOM:
                    self.scheduler.submit_event(event)
                else:
                    # Not live: the note may hold Scribe's own write by now (the rename
                    # it waited for rewrote it), and a live event would be its echo.
                    change = Change(event.kind, event.path, event.dest, closed=True)
                    self.scheduler.submit(change, live=False)

        timer = threading.Timer(DEFERRED_RETRY * 2**tries, resubmit)
        timer.daemon = True
        timer.start()

    def _account(
        self, event: Event, outcome: Outcome, done: float, elapsed_ms: float, batch: int
    ) -> None:
        """Metrics and log lines for one outcome."""
        status = outcome.status
        for found in outcome.findings:
            log.warning(
                "%s%s: %s",
                found.path,
                f":{found.line}" if found.line else "",
                found.message,
                extra={"path": found.path, "result": found.code},
            )
        for failure in outcome.failures:
            metrics.RULE_FAILURES.labels(rule=failure.rule).inc()
            log.error(
                "rule %s failed on %s: %s",
                failure.rule,
                outcome.path,
                failure.reason,
                extra={"rule": failure.rule, "path": outcome.path, "result": "failed"},
            )
        if status is Status.WRITTEN and outcome.plan is not None:
            for rule in outcome.plan.rules:
                metrics.REWRITES.labels(rule=rule).inc()
            if event.received is not None:
                metrics.EVENT_TO_WRITE.observe(done - event.received)
            log.info(
                "rewrote",
                extra={
                    "path": outcome.path,
                    "rule": ", ".join(outcome.plan.rules),
                    "actions": self._actions(outcome.plan.rules),
                    "duration_ms": elapsed_ms,
                    "result": str(status),
                    "seq": outcome.seq,
                    "batch": batch,
                },
            )
        elif status is Status.BUSY:  # its writer's close brings it back
            log.debug("%s is open for writing; waiting for its close", outcome.path)
            metrics.WRITE_FAILURES.labels(reason="busy").inc()
        elif status in (Status.CONFLICT, Status.FAILED):
            metrics.WRITE_FAILURES.labels(reason=str(status)).inc()
            log.error(
                "not written %s: %s",
                outcome.path,
                outcome.reason,
                extra={"path": outcome.path, "result": str(status)},
            )
        elif status is Status.SKIPPED and outcome.reason:
            log.warning(
                "skipped %s: %s",
                outcome.path,
                outcome.reason,
                extra={"path": outcome.path, "result": str(status)},
            )

    def _actions(self, rule_ids: Sequence[str]) -> list[str]:
        wanted = set(rule_ids)
        return [
            step.action.name
            for rule in self.engine.rules
            if rule.id in wanted
            for step in rule.steps
        ]

    def _show_breakers(self) -> None:
        """Publish breaker states when they moved (cheap: a dict compare per batch)."""
        states = {rule: str(state) for rule, state in self.engine.breakers.states().items()}
        if states == self._breakers_shown:
            return
        for rule in self._breakers_shown.keys() - states.keys():
            metrics.BREAKER_STATE.labels(rule=rule).set(0)
        for rule, state in states.items():
            metrics.BREAKER_STATE.labels(rule=rule).set(_BREAKER_VALUE.get(state, 2))
        self._breakers_shown = states

    def _quarantined(self) -> int:
        return sum(len(rules) for rules in list(self.engine.quarantine.values()))

    def _on_rescan(self) -> None:
        metrics.RESCANS.inc()
        log.warning("event queue overflowed; rescanned")

    def _on_polling(self) -> None:
        self.polling = True
        self.scheduler.expect_no_closes(max(self.settings.quiet_ms / 1000, POLL_QUIET))

    # -- start-up work -----------------------------------------------------------------

    def _recover(self) -> None:
        """Finish interrupted writes, then hand the scheduler what changed while stopped."""
        assert self.journal is not None
        started = time.perf_counter()
        closing, redo = finish_open_work(self.journal.store, self.root)
        try:
            self.journal.append(closing)
        except JournalUnavailable as exc:  # logged; the watch goes on
            log.error("could not close interrupted writes: %s", exc)
        last_seen = self._previous.ts if self._previous else None
        changed = catch_up(
            self.journal.store,
            self.engine.state,
            self.root,
            scan(self.root, self.ignore),
            last_seen=last_seen,
        )
        left = left_at_stop(self.journal.store, self._previous)
        work = list({item.path: item for item in [*changed, *left, *redo]}.values())
        for item in work:
            self.scheduler.submit(Change(item.kind, item.path, closed=True))
        if closing or work:
            log.info(
                "recovered %d interrupted write(s) and %d change(s) left at the last stop; "
                "%d file(s) changed while stopped (%.2f s)",
                len(closing),
                len(left),
                len(changed),
                time.perf_counter() - started,
            )

    def _plan_scan(self) -> PlanPool | None:
        """Worker processes planning the files the initial scan will find, as
        ``scribe run`` does (``scribe.ahead``), when that is safe here: every rule
        is self-contained, so the order the scheduler's threads take the files in
        cannot change what their plans read; and no thread of this service runs yet,
        so none can hold a lock the fork would copy held. Files that appear or
        change before the scan reaches them are planned again by the engine."""
        if self._link is not None or not all_self_contained(self.engine.rules):
            return None
        files = list(scan(self.root, self.ignore))
        size = self.settings.max_batch
        batches = [files[at : at + size] for at in range(0, len(files), size)]
        return PlanPool.for_run(self.engine, batches, self.settings.plan_processes)

    def _stop_planning(self) -> None:
        planner, self._planner = self._planner, None
        if planner is not None:
            planner.stop()

    def _initial_scan(self) -> None:
        files = list(scan(self.root, self.ignore))
        started = time.perf_counter()
        before = self.scheduler.processed
        console = self._console
        with progress_bar(console, hidden=len(files) < 200) as progress:
            task = progress.add_task("scanning", total=len(files))
            for rel in files:
                self.scheduler.submit(Change(SCAN_KIND, rel, closed=True), live=False)
            while not self.stop.is_set() and not self.scheduler.wait_idle(0.1):
                progress.update(task, completed=self.scheduler.processed - before)
        self._stop_planning()
        seconds = time.perf_counter() - started
        log.info(
            "scanned %d file(s) in %.2f s",
            len(files),
            seconds,
            extra={"files": len(files), "duration_ms": round(seconds * 1000, 1)},
        )

    # -- hot reload ----------------------------------------------------------------------

    def _watched_files(self) -> list[Path]:
        return [self.rules_file, self.root / "scribe.yaml"]

    def _reload(self, path: Path) -> None:
        if path == self.rules_file:
            self.reload_rules()
        else:
            self.reload_settings()

    def reload_rules(self) -> None:
        """Load the rules file again; an invalid one is refused and the rules in force
        keep running."""
        try:
            rules = load_repository_rules(
                self.root, self.settings, self.rules_file, display=self.rules_display
            )
        except ConfigError as exc:
            self._refused("rules", RULES_REJECTED, self.rules_display, exc)
            return
        before = {rule.id: rule.fingerprint for rule in self.engine.rules}
        entry, change = rules_loaded(rules, before, reason="reload")
        released = self.engine.release_rules({*change.changed, *change.removed})
        self.engine.rules = rules
        self._stop_planning()  # its plans follow the old rules (``PlanPool.ready`` drops them)
        metrics.RELOADS.labels(file="rules", result="applied").inc()
        metrics.RULES_LOADED.set(len(rules))
        for rule in change.removed:  # a rule that is gone has no breaker to show
            if self._breakers_shown.pop(rule, None) is not None:
                metrics.BREAKER_STATE.remove(rule)
        self._record(entry, *released)
        log.info(
            "rules reloaded",
            extra={
                "path": self.rules_display,
                "result": "applied",
                "added": change.added,
                "removed": change.removed,
                "changed": change.changed,
            },
        )

    def reload_settings(self) -> None:
        """Load scribe.yaml again and apply what can change while running."""
        try:
            settings = load_settings(self.root, **self._flags)
        except ConfigError as exc:
            self._refused("config", CONFIG_REJECTED, "scribe.yaml", exc)
            return
        old = self.settings
        changed = [k for k in Settings.model_fields if getattr(old, k) != getattr(settings, k)]
        if not changed:
            return
        live = [k for k in changed if k in LIVE_SETTINGS]
        later = [k for k in changed if k not in LIVE_SETTINGS]
        self.settings = settings
        self._stop_planning()  # plans made ahead read files under the old limits
        self.engine.max_file_bytes = settings.max_file_bytes
        self.engine.regex_timeout = settings.regex_timeout
        self.engine.breakers.threshold = settings.breaker_failures
        self.scheduler.configure(quiet=settings.quiet_ms / 1000, max_batch=settings.max_batch)
        self.scheduler.high_water = settings.queue_high_water
        logging.getLogger("scribe").setLevel(settings.log_level.upper())
        metrics.RELOADS.labels(file="config", result="applied").inc()
        self._record(
            NewEntry(
                CONFIG_LOADED,
                records.SCRIBE,
                path="scribe.yaml",
                message=f"settings reloaded: {', '.join(live) or 'nothing applied now'}"
                + (f"; at the next start: {', '.join(later)}" if later else ""),
                payload={
                    "applied": {k: getattr(settings, k) for k in live if k != "status_token"},
                    "at_restart": later,
                },
            )
        )
        log.info(
            "settings reloaded",
            extra={
                "path": "scribe.yaml",
                "result": "applied",
                "applied": live,
                "at_restart": later,
            },
        )
        if later:
            log.warning(
                "scribe.yaml: %s take(s) effect at the next start of scribe watch",
                ", ".join(later),
            )
        if "rules" in live and not self._rules_fixed:
            self.rules_file = self.root / settings.rules
            self.rules_display = settings.rules
            self.reload_rules()

    def _refused(self, which: str, kind: str, display: str, exc: ConfigError) -> None:
        metrics.RELOADS.labels(file=which, result="rejected").inc()
        log.error(
            "%s not reloaded; the ones in force keep running:\n%s",
            "rules" if which == "rules" else "settings",
            exc,
            extra={"path": display, "result": "rejected"},
        )
        self._record(
            NewEntry(
                kind,
                records.SCRIBE,
                path=display,
                message=f"{display} refused: {exc.problems[0] if exc.problems else exc}",
                payload={"problems": [str(p) for p in exc.problems]},
            )
        )

    def _record(self, *entries: NewEntry) -> None:
        if self.journal is not None:
            try:
                self.journal.append(entries)
            except JournalUnavailable as exc:  # the watch goes on with the new rules
                log.error("could not journal the reload: %s", exc)

    # -- health ------------------------------------------------------------------------

    def not_ready(self) -> list[str]:
        """Why ``/readyz`` must say no (empty: ready)."""
        reasons = []
        if self._watcher is None or not self._watch_ready.is_set():
            reasons.append("the watcher is starting")
        elif not self._watcher.is_alive():
            reasons.append("the watcher is not running")
        if self._recovering:
            reasons.append("recovering interrupted work from the journal")
        if self.journal is not None and not self.journal.healthy:
            reasons.append(f"journal not writable: {self.journal.problem}")
        depth = self.scheduler.depth
        if depth > self.scheduler.high_water:
            reasons.append(
                f"queue depth {depth} is over the high-water mark of {self.scheduler.high_water}"
            )
        if self.stop.is_set():
            reasons.append("stopping")
        return reasons

    def status(self) -> dict[str, Any]:
        """What ``/status`` reports."""
        breakers = {rule: str(state) for rule, state in self.engine.breakers.states().items()}
        depth = self.scheduler.depth
        return {
            "version": __version__,
            "pid": os.getpid(),
            "root": str(self.root),
            "started_at": self._started_at.isoformat(),
            "uptime_s": round(time.monotonic() - self._started, 3),
            "last_event_at": self._last_event_at.isoformat() if self._last_event_at else None,
            "ready": not self.not_ready(),
            "queue_depth": depth,
            "high_water": self.scheduler.high_water,
            "pending": depth,
            "quarantined": self._quarantined(),
            "polling": self.polling,
            "rules_file": self.rules_display,
            "rules": [
                {
                    "id": rule.id,
                    "enabled": rule.enabled,
                    "priority": rule.priority,
                    "breaker": breakers.get(rule.id, "closed"),
                }
                for rule in self.engine.rules
            ],
            "journal": None
            if self.journal is None
            else {
                "healthy": self.journal.healthy,
                "problem": self.journal.problem or None,
                "backlog": self.journal.backlog,
            },
        }

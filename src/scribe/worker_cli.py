"""``scribe worker``: handle events from the bus until stopped.

A worker is an engine without a watcher: ``scribe watch --bus URL --no-workers``
publishes what changed, and any number of workers, on this host or others sharing
the repository and the journal, take the events through the shards' durable
consumers. SIGTERM or Ctrl-C stops it gracefully: it takes no new event, finishes
and acknowledges those in hand, and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from scribe import __version__
from scribe.cli_options import (
    ListenOption,
    LogFileOption,
    LogLevelOption,
    RootArgument,
    RulesOption,
)
from scribe.config import load_settings
from scribe.errors import ScribeError
from scribe.events import Event
from scribe.startup import (
    build_engine,
    load_repository_rules,
    open_journal,
    restore_quarantine,
    start_journal,
    stop_journal,
)

if TYPE_CHECKING:
    from scribe.bus import Consumer, Link
    from scribe.engine import Engine, Outcome
    from scribe.journal.writer import JournalWriter

log = logging.getLogger("scribe")


def worker_command(
    root: RootArgument = None,
    bus: Annotated[
        str | None,
        typer.Option("--bus", help="nats://HOST:PORT (tls:// for TLS); default: the bus setting."),
    ] = None,
    rules: RulesOption = None,
    log_level: LogLevelOption = None,
    log_file: LogFileOption = None,
    listen: ListenOption = None,
) -> None:
    """Handle the events scribe watch publishes to the bus, until stopped."""
    from scribe.bus import NEEDS_JOURNAL, Consumer, Link  # nats-py: only for a worker
    from scribe.cli import find_root
    from scribe.observe import logs
    from scribe.observe.server import serve_endpoints

    logs.configure("info")
    base = root.resolve() if root else find_root(Path.cwd())
    flags: dict[str, object] = {
        "bus": bus,
        "log_level": log_level.lower() if log_level else None,
        "log_file": str(log_file) if log_file else None,
        "listen": listen,
    }
    settings = load_settings(base, **flags)
    log_path = Path(settings.log_file) if settings.log_file else None
    logs.configure(settings.log_level, log_file=base / log_path if log_path is not None else None)
    if not settings.bus:
        raise typer.BadParameter(
            "give a bus: --bus nats://HOST:PORT, or set bus", param_hint="--bus"
        )
    rules_path = rules.resolve() if rules else base / settings.rules
    compiled = load_repository_rules(base, settings, rules_path)
    if not settings.journal:
        raise ScribeError(NEEDS_JOURNAL)
    link = Link(settings)  # before anything is journaled: a bus that is down stops here
    journal = open_journal(base, settings)
    if journal is not None:
        start_journal(journal, compiled, "worker")
    engine = build_engine(base, settings, compiled, dry_run=False, journal=journal)
    if journal is not None:
        restore_quarantine(engine, journal)
    stop = threading.Event()
    worker = _Worker(engine, link, stop)
    consumer = Consumer(
        link,
        worker.handle,
        root=base,
        journal=journal,
        max_deliveries=settings.max_deliveries,
        max_batch=settings.max_batch,
    )
    health = _Health(base, link, journal, consumer, stop)
    server = serve_endpoints(
        settings,
        base,
        ready=health.not_ready,
        status=health.status,
        given=listen is not None,
        doing="working",
    )
    _on_stop_signals(stop)
    consumer.start()
    log.info(
        "working",
        extra={
            "root": str(base),
            "bus": link.url,
            "shards": link.shards,
            "pid": os.getpid(),
            "listen": "{}:{}".format(*server.address) if server else "off",
        },
    )
    stop.wait()
    consumer.stop()
    if server is not None:
        server.close()
    link.close()
    engine.state.close()
    if journal is not None:
        stop_journal(journal, "worker")
    log.info("stopped", extra={"handled": consumer.handled, "quarantined": consumer.quarantined})


class _Health:
    """What the worker's ``/readyz`` and ``/status`` say."""

    def __init__(
        self,
        root: Path,
        link: Link,
        journal: JournalWriter | None,
        consumer: Consumer,
        stop: threading.Event,
    ) -> None:
        self.root, self.link, self.journal, self.consumer, self.stop = (
            root, link, journal, consumer, stop,
        )  # fmt: skip
        self.started = time.monotonic()

    def not_ready(self) -> list[str]:
        """Why ``/readyz`` must say no (empty: ready)."""
        reasons = []
        if not self.link.connected:
            reasons.append(f"not connected to the bus at {self.link.url} (reconnecting)")
        if self.journal is not None and not self.journal.healthy:
            reasons.append(f"journal not writable: {self.journal.problem}")
        if self.stop.is_set():
            reasons.append("stopping")
        return reasons

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "role": "worker",
            "pid": os.getpid(),
            "root": str(self.root),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "ready": not self.not_ready(),
            "bus": self.link.url,
            "shards": self.link.shards,
            "handled": self.consumer.handled,
            "quarantined": self.consumer.quarantined,
        }


class _Worker:
    """What a worker does with a batch: handle it, pass on the events its rules
    raised, and log what happened."""

    def __init__(self, engine: Engine, link: Link, stop: threading.Event) -> None:
        self.engine = engine
        self.link = link
        self.stop = stop

    def handle(self, events: list[Event]) -> Sequence[Outcome]:
        from scribe.engine import Status

        outcomes = self.engine.handle_many(events)
        raised = [event for outcome in outcomes for event in outcome.emitted]
        if raised:  # onto their own shards, behind what is queued for their files
            from scribe.bus import publish

            publish(self.link, raised, self.stop)
        for outcome in outcomes:
            if outcome.status is Status.WRITTEN and outcome.plan is not None:
                log.info(
                    "rewrote",
                    extra={
                        "path": outcome.path,
                        "rule": ", ".join(outcome.plan.rules),
                        "seq": outcome.seq,
                        "result": str(outcome.status),
                    },
                )
            elif outcome.status in (Status.CONFLICT, Status.FAILED):
                log.error("not written %s: %s", outcome.path, outcome.reason)
            for failure in outcome.failures:
                log.error("rule %s failed on %s: %s", failure.rule, outcome.path, failure.reason)
        return outcomes


def _on_stop_signals(stop: threading.Event) -> None:
    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():  # a second signal: leave now (unacknowledged work is redelivered)
            os._exit(128 + signum)
        log.info("stopping (%s): finishing the events in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

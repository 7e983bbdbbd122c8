"""Scribe's Prometheus metrics, served at ``/metrics`` by ``scribe.observe.server``.

They live on their own ``REGISTRY`` rather than prometheus_client's global one, so
that only Scribe's metrics and the process's are exposed, whatever else is imported.
Labels are bounded: kinds, reasons and rule ids (which come from the rules file),
never a path.
"""

from __future__ import annotations

from prometheus_client import (
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import Counter, Gauge, Histogram, Info
from prometheus_client.registry import CollectorRegistry

from scribe import __version__

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

EVENTS = Counter(
    "scribe_events_received_total",
    "File events received from the watcher, by kind (created, modified, deleted, moved).",
    ["kind"],
    registry=REGISTRY,
)
COALESCED = Counter(
    "scribe_events_coalesced_total",
    "Events folded into one already pending for the same path, by kind.",
    ["kind"],
    registry=REGISTRY,
)
REWRITES = Counter(
    "scribe_rewrites_total",
    "Files rewritten, counted once for each rule that changed them.",
    ["rule"],
    registry=REGISTRY,
)
RULE_FAILURES = Counter(
    "scribe_rule_failures_total",
    "Times a rule failed on a file.",
    ["rule"],
    registry=REGISTRY,
)
WRITE_FAILURES = Counter(
    "scribe_write_failures_total",
    "Rewrites not made: conflict (the file changed meanwhile), busy (open for writing) "
    "or failed (any other error).",
    ["reason"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "scribe_queue_depth",
    "Paths waiting to be processed or being processed now.",
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "scribe_batch_size",
    "Files a worker took at once; their writes share one journal commit.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    registry=REGISTRY,
)
EVENT_TO_WRITE = Histogram(
    "scribe_event_to_write_seconds",
    "Seconds from the last change of a file until its rewrite is on disk.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "scribe_breaker_state",
    "State of each rule's circuit breaker: 0 closed, 1 half-open, 2 open (set aside).",
    ["rule"],
    registry=REGISTRY,
)
QUARANTINED = Gauge(
    "scribe_quarantined",
    "File and rule pairs held back after repeated failures.",
    registry=REGISTRY,
)
JOURNAL_APPENDS = Counter(
    "scribe_journal_appends_total",
    "Entries appended to the journal.",
    registry=REGISTRY,
)
JOURNAL_APPEND_SECONDS = Histogram(
    "scribe_journal_append_seconds",
    "Seconds one journal commit took.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
    registry=REGISTRY,
)
RESCANS = Counter(
    "scribe_watcher_rescans_total",
    "Times the watcher's event queue overflowed and the repository was rescanned.",
    registry=REGISTRY,
)
RELOADS = Counter(
    "scribe_reloads_total",
    "Reloads of the rules or config file, by file (rules, config) and result "
    "(applied, rejected: the previous version kept running).",
    ["file", "result"],
    registry=REGISTRY,
)
RULES_LOADED = Gauge(
    "scribe_rules_loaded",
    "Rules currently loaded.",
    registry=REGISTRY,
)
BUILD = Info("scribe_build", "The running Scribe's version.", registry=REGISTRY)
BUILD.info({"version": __version__})


def render(accept: str | None) -> tuple[bytes, str]:
    """The exposition of ``REGISTRY`` and its content type: OpenMetrics when the
    ``Accept`` header asks for it (Prometheus does), else the classic text format."""
    encode, content_type = choose_encoder(accept or "")
    return encode(REGISTRY), content_type

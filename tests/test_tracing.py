"""Traces as an operator sees them: one trace per event, its steps as child spans,
resource attributes a collector can route on, and nothing at all when tracing is off."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

import scribe
from otlp_receiver import ReceivedSpan, running
from scribe.actions import ACTIONS, Content, FileContext
from scribe.engine import Engine, Status
from scribe.events import Event, EventKind
from scribe.journal.entry import FILE_WRITTEN, Query
from scribe.journal.mirrors import Mirrors
from scribe.journal.sqlite import SqliteJournal
from scribe.journal.writer import JournalWriter
from scribe.observe import logs, tracing
from scribe.rules.load import parse_rules
from scribe.state import State

SCRIBE = str(Path(sys.executable).with_name("scribe"))
STAMP = """
rules:
  - id: stamp
    paths: ["**/*.md"]
    do: [{set: {field: checked, value: true}}, {set: {field: by, value: scribe}}]
  - id: other
    paths: ["**/*.txt"]
    do: [{set: {field: never, value: true}}]
"""
FAILING = """
rules:
  - id: bad-zone
    paths: ["**/*.md"]
    do: [{set: {field: local, value: "{{ now(tz='Mars/Olympus') }}"}}]
  - id: good
    paths: ["**/*.md"]
    do: [{set: {field: checked, value: true}}]
"""
NOTE = "---\ntitle: a\n---\nbody\n"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    assert tracing.configure("engine", environ={}, exporter=spans)
    yield spans
    tracing.shutdown()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[JournalWriter]:
    journal = JournalWriter(SqliteJournal.for_root(tmp_path), Mirrors(tmp_path))
    yield journal
    journal.close()


def make(root: Path, writer: JournalWriter | None, rules: str = STAMP, **kw: Any) -> Engine:
    return Engine(root, parse_rules(rules, "rules.yaml", **kw), state=State(None), journal=writer)


def roots(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == "scribe.event"]


def stages(root: ReadableSpan) -> list[str]:
    """The stages recorded on an event's span, in order."""
    return [e.name for e in root.events if e.name != "exception"]


def stage(root: ReadableSpan, name: str) -> dict[str, Any]:
    """The attributes of the (last) stage ``name`` of an event's span."""
    found = [dict(e.attributes or {}) for e in root.events if e.name == name]
    assert found, f"no stage {name} in {stages(root)}"
    return found[-1]


def test_a_rewrite_is_one_span_through_match_plan_journal_and_apply(
    tmp_path: Path, writer: JournalWriter, exporter: InMemorySpanExporter
) -> None:
    (tmp_path / "a.md").write_text(NOTE)
    outcome = make(tmp_path, writer).handle(Event(EventKind.MODIFIED, "a.md"))
    assert outcome.status is Status.WRITTEN
    assert [s.name for s in exporter.get_finished_spans()] == ["scribe.event"]  # one span
    (root,) = roots(exporter)
    assert root.parent is None
    writer.flush()
    (written,) = [e for e in writer.store.query(Query()) if e.kind == FILE_WRITTEN]
    assert dict(root.attributes or {}) == {
        "scribe.event.kind": "modified",
        "scribe.event.source": "watcher",
        "scribe.path": "a.md",
        "scribe.batch_size": 1,
        "scribe.rules.matched": ("stamp",),
        "scribe.rules": ("stamp",),
        "scribe.actions": ("set",),
        "scribe.rules.failed": (),
        "scribe.journal.entries": 1,
        "scribe.journal.seq": written.seq,
        "scribe.write.result": "written",
        "scribe.outcome": "written",
    }
    assert stages(root) == ["scribe.match", "scribe.plan", "scribe.journal", "scribe.apply"]
    assert stage(root, "scribe.apply")["scribe.write.result"] == "written"
    times = [e.timestamp for e in root.events]
    assert times == sorted(times)  # each stage recorded as it ended, in order
    assert root.start_time is not None
    assert root.end_time is not None
    assert root.start_time <= times[0]
    assert times[-1] <= root.end_time
    durations = [stage(root, name)["duration_ms"] for name in stages(root)]
    assert all(0 <= d <= (root.end_time - root.start_time) / 1e6 for d in durations)
    assert root.status.status_code is StatusCode.UNSET


def test_an_unchanged_file_is_matched_and_planned_but_never_journaled_or_applied(
    tmp_path: Path, writer: JournalWriter, exporter: InMemorySpanExporter
) -> None:
    (tmp_path / "a.md").write_text("---\ntitle: a\nchecked: true\nby: scribe\n---\nbody\n")
    engine = make(tmp_path, writer)
    assert engine.handle(engine.scan_event("a.md")).status is Status.UNCHANGED
    (root,) = roots(exporter)
    assert root.attributes is not None
    assert root.attributes["scribe.outcome"] == "unchanged"
    assert root.attributes["scribe.event.source"] == "scan"
    assert stages(root) == ["scribe.match", "scribe.plan"]
    assert root.attributes["scribe.rules"] == ()


def test_an_event_no_rule_wants_is_a_span_with_no_stages(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    make(tmp_path, None).handle(Event(EventKind.CREATED, "a.png"))
    (root,) = roots(exporter)
    assert root.attributes is not None
    assert root.attributes["scribe.outcome"] == "unchanged"
    assert root.attributes["scribe.event.kind"] == "created"
    assert stages(root) == []


def test_each_event_of_a_batch_is_its_own_trace_and_their_journal_stages_share_the_commit(
    tmp_path: Path, writer: JournalWriter, exporter: InMemorySpanExporter
) -> None:
    names = ["a.md", "b.md", "c.md"]
    for name in names:
        (tmp_path / name).write_text(NOTE)
    outcomes = make(tmp_path, writer).handle_many([Event(EventKind.MODIFIED, n) for n in names])
    assert [o.status for o in outcomes] == [Status.WRITTEN] * 3
    events = roots(exporter)
    assert sorted(str((s.attributes or {})["scribe.path"]) for s in events) == names
    assert all((s.attributes or {})["scribe.batch_size"] == 3 for s in events)
    assert len({s.context.trace_id for s in events if s.context is not None}) == 3
    assert {(s.attributes or {})["scribe.journal.entries"] for s in events} == {3}
    writer.flush()
    seqs = sorted(e.seq for e in writer.store.query(Query()) if e.kind == FILE_WRITTEN)
    assert sorted(int(str((s.attributes or {})["scribe.journal.seq"])) for s in events) == seqs
    # One commit, timed once: the same stage time and duration on every event.
    commits = {
        (e.timestamp, (e.attributes or {})["duration_ms"])
        for s in events
        for e in s.events
        if e.name == "scribe.journal"
    }
    assert len(commits) == 1


def test_a_failing_rule_marks_the_event_as_an_error_and_names_the_rule(
    tmp_path: Path, writer: JournalWriter, exporter: InMemorySpanExporter
) -> None:
    (tmp_path / "a.md").write_text(NOTE)
    outcome = make(tmp_path, writer, FAILING).handle(Event(EventKind.MODIFIED, "a.md"))
    assert outcome.status is Status.WRITTEN  # the good rule still applied
    (root,) = roots(exporter)
    assert root.attributes is not None
    assert root.attributes["scribe.rules.failed"] == ("bad-zone",)
    assert root.attributes["scribe.rules"] == ("good",)
    assert root.attributes["scribe.outcome"] == "written"
    assert root.status.status_code is StatusCode.ERROR
    assert "bad-zone" in (root.status.description or "")


class _NoParams(BaseModel):
    pass


def _meddling(root: Path) -> Content:
    """An action whose first planning is overtaken by someone saving the file."""
    calls: list[str] = []

    def plan(ctx: FileContext, _params: _NoParams) -> str:
        if not calls:
            (root / ctx.path).write_text(NOTE + "a user's line\n")
        calls.append(ctx.path)
        return ctx.text if "meddled" in ctx.text else ctx.text + "meddled\n"

    return Content("meddle", _NoParams, plan, "appends a line; a save overtakes its first plan")


def test_a_file_changed_under_its_write_is_planned_and_applied_again_in_the_same_trace(
    tmp_path: Path, writer: JournalWriter, exporter: InMemorySpanExporter
) -> None:
    note = tmp_path / "a.md"
    note.write_text(NOTE)
    rules = 'rules:\n  - id: meddle\n    paths: ["*.md"]\n    do: [{meddle: {}}]\n'
    actions = {**ACTIONS, "meddle": _meddling(tmp_path)}
    outcome = make(tmp_path, writer, rules, actions=actions).handle(
        Event(EventKind.MODIFIED, "a.md")
    )
    assert outcome.status is Status.WRITTEN
    assert note.read_text() == NOTE + "a user's line\nmeddled\n"  # the user's save was kept
    (root,) = roots(exporter)
    assert stages(root) == [
        *("scribe.match", "scribe.plan", "scribe.journal", "scribe.apply"),
        *("scribe.match", "scribe.plan", "scribe.journal", "scribe.apply"),
    ]
    results = [
        (e.attributes or {})["scribe.write.result"] for e in root.events if e.name == "scribe.apply"
    ]
    assert results == ["conflict", "written"]
    assert (root.attributes or {})["scribe.outcome"] == "written"
    assert root.status.status_code is StatusCode.UNSET  # a conflict re-planned is no error


def test_a_journal_that_cannot_record_the_write_fails_its_spans_with_the_exception(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    (tmp_path / "a.md").write_text(NOTE)
    store = SqliteJournal.for_root(tmp_path)
    writer = JournalWriter(store, Mirrors(tmp_path))
    try:
        store.close()  # any append now fails, as on a full or read-only disk
        outcome = make(tmp_path, writer).handle(Event(EventKind.MODIFIED, "a.md"))
    finally:
        writer.close()
    assert outcome.status is Status.FAILED
    (root,) = roots(exporter)
    assert stages(root) == ["scribe.match", "scribe.plan", "scribe.journal"]
    (raised,) = [e for e in root.events if e.name == "exception"]
    assert str((raised.attributes or {})["exception.type"]).endswith("JournalUnavailable")
    assert root.status.status_code is StatusCode.ERROR
    assert "journal" in (root.status.description or "")
    assert (root.attributes or {})["scribe.outcome"] == "failed"


def test_a_warning_logged_while_planning_carries_the_events_trace_id(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    (tmp_path / "a.md").write_text(NOTE)
    stream = io.StringIO()
    logs.configure("info", stream=stream, json=True)
    make(tmp_path, None, FAILING).handle(Event(EventKind.MODIFIED, "a.md"))
    (root,) = roots(exporter)
    assert root.context is not None
    logs.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (warning,) = [line for line in lines if "bad-zone" in line["event"]]
    assert warning["trace_id"] == f"{root.context.trace_id:032x}"


def test_resource_names_the_service_its_version_component_and_hma_place() -> None:
    spans = InMemorySpanExporter()
    try:
        assert tracing.configure("engine", environ={}, exporter=spans)
        with tracing.tracer().start_as_current_span("probe"):
            pass
    finally:
        tracing.shutdown()
    (probe,) = spans.get_finished_spans()
    resource = dict(probe.resource.attributes)
    assert resource["service.name"] == "scribe"
    assert resource["service.version"] == scribe.__version__
    assert resource["scribe.component"] == "engine"
    assert resource["hma.component.type"] == "L2-Core"
    assert resource["hma.layer"] == "L2"
    assert resource["hma.version"] == "2.2"


def test_otel_resource_attributes_and_service_name_are_honoured() -> None:
    spans = InMemorySpanExporter()
    environ = {
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging,team=docs%20ops",
        "OTEL_SERVICE_NAME": "scribe-kb",
    }
    try:
        assert tracing.configure("mcp", environ=environ, exporter=spans)
        with tracing.tracer().start_as_current_span("probe"):
            pass
    finally:
        tracing.shutdown()
    resource = dict(spans.get_finished_spans()[0].resource.attributes)
    assert resource["deployment.environment"] == "staging"
    assert resource["team"] == "docs ops"
    assert resource["service.name"] == "scribe-kb"
    assert resource["scribe.component"] == "mcp"
    assert (resource["hma.component.type"], resource["hma.layer"]) == ("L3-Capability", "L3")


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://h"}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://h"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://h"}, False),
    ],
)
def test_the_standard_variables_decide_whether_tracing_is_on(
    environ: dict[str, str], on: bool
) -> None:
    try:
        assert tracing.configure("engine", environ=environ) is on
        assert tracing.enabled() is on
    finally:
        tracing.shutdown()
    assert not tracing.enabled()


@pytest.mark.parametrize(
    "switch", [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}]
)
def test_with_tracing_switched_off_no_span_is_produced_even_with_an_exporter(
    tmp_path: Path, switch: dict[str, str]
) -> None:
    spans = InMemorySpanExporter()
    assert not tracing.configure("engine", environ=switch, exporter=spans)
    (tmp_path / "a.md").write_text(NOTE)
    event = Event(EventKind.MODIFIED, "a.md")
    assert make(tmp_path, None).handle(event).status is Status.WRITTEN
    assert spans.get_finished_spans() == ()
    # What the engine is handed while off is shared: nothing is made per call.
    assert tracing.step(event, "scribe.plan") is tracing.step(event, "scribe.match")
    assert tracing.events([event]) is tracing.apply(event)
    assert tracing.current_trace_id() is None


def test_reconfiguring_starts_over_with_the_new_exporter(tmp_path: Path) -> None:
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    (tmp_path / "a.md").write_text(NOTE)
    try:
        assert tracing.configure("engine", environ={}, exporter=first)
        make(tmp_path, None).handle(Event(EventKind.MODIFIED, "a.md"))
        assert tracing.configure("engine", environ={}, exporter=second)
        make(tmp_path, None).handle(Event(EventKind.MODIFIED, "a.md"))
    finally:
        tracing.shutdown()
    assert [s.name for s in first.get_finished_spans()].count("scribe.event") == 1
    assert [s.name for s in second.get_finished_spans()].count("scribe.event") == 1


def _event_span(spans: list[ReceivedSpan], path: str) -> ReceivedSpan:
    return next(
        s for s in spans if s.name == "scribe.event" and s.attributes["scribe.path"] == path
    )


def test_spans_reach_a_collector_over_otlp_http(
    tmp_path: Path, writer: JournalWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")  # read by the exporter
    (tmp_path / "a.md").write_text(NOTE)
    with running() as receiver:
        environ = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.endpoint}/v1/traces"}
        try:
            assert tracing.configure("engine", environ=environ)
            make(tmp_path, writer).handle(Event(EventKind.MODIFIED, "a.md"))
        finally:
            tracing.shutdown()  # flushes the batch
        spans = receiver.wait_for(lambda got: any(s.name == "scribe.event" for s in got))
    root = _event_span(spans, "a.md")
    assert [s.name for s in spans] == ["scribe.event"]
    assert root.attributes["scribe.outcome"] == "written"
    assert root.events == ["scribe.match", "scribe.plan", "scribe.journal", "scribe.apply"]
    assert root.attributes["scribe.rules"] == ["stamp"]
    assert root.attributes["scribe.actions"] == ["set"]
    assert root.resource["service.name"] == "scribe"
    assert root.resource["scribe.component"] == "engine"
    assert root.resource["hma.component.type"] == "L2-Core"


def test_scribe_run_sends_its_spans_to_the_collector_the_environment_names(
    tmp_path: Path,
) -> None:
    (tmp_path / ".scribe").mkdir()
    (tmp_path / ".scribe" / "rules.yaml").write_text(STAMP)
    (tmp_path / "a.md").write_text(NOTE)
    with running() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "NO_COLOR": "1"})
        done = subprocess.run(
            [SCRIBE, "run", str(tmp_path)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        # The process has exited, so whatever it flushed has arrived: a short wait.
        spans = receiver.wait_for(lambda got: any(s.name == "scribe.event" for s in got), 5)
    root = _event_span(spans, "a.md")
    assert root.attributes["scribe.outcome"] == "written"
    assert root.attributes["scribe.event.source"] == "scan"
    assert root.events == ["scribe.match", "scribe.plan", "scribe.journal", "scribe.apply"]
    assert root.resource["scribe.component"] == "engine"
    assert root.resource["service.version"] == scribe.__version__

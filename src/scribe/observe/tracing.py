"""OpenTelemetry traces: a span per event through match, plan, journal and apply.

Off unless the standard ``OTEL_*`` variables ask for OTLP (or a test hands in an
exporter). Off, every helper here checks one flag and returns a shared no-op: no
span, no attributes, no context switch, so the engine calls them unconditionally.
The provider is this module's own, not OpenTelemetry's set-once global, so
``configure`` may run again after ``shutdown``.

Events in a batch are processed interleaved, so their root spans cannot be nested
``with`` blocks: ``events`` opens one per event and keeps them in a context
variable, ``step`` hangs a child under the right one, ``settle`` closes it.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING
from urllib.parse import unquote

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import INVALID_SPAN, Span, StatusCode, Tracer

from scribe import __version__
from scribe.errors import ContentChanged, FileBusy

if TYPE_CHECKING:
    from scribe.events import Event
    from scribe.plan import Plan
    from scribe.rules.match import CompiledRule

#: HMA v2.2 resource attributes per component (``hma.component.type``, ``hma.layer``).
#: The engine and its scaled-out workers are the core every change goes through; the
#: MCP server is the agents' capability (sessions, cases, provenance) built on it.
HMA = {
    "engine": ("L2-Core", "L2"),
    "worker": ("L2-Core", "L2"),
    "mcp": ("L3-Capability", "L3"),
}
HMA_VERSION = "2.2"

_enabled = False
_provider: TracerProvider | None = None
_tracer: Tracer = trace.NoOpTracer()
#: The open root span of each event of the batch this thread is processing, by id.
_roots: ContextVar[dict[str, Span] | None] = ContextVar("scribe_event_spans", default=None)
#: What the helpers return when tracing is off: shared, so being off allocates nothing.
_OFF = nullcontext(INVALID_SPAN)
_NO_SPANS: AbstractContextManager[Sequence[Span]] = nullcontext(())


def configure(
    component: str,
    *,
    environ: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
) -> bool:
    """Turn tracing on if ``exporter`` is given or the environment asks for OTLP.

    ``environ`` (default ``os.environ``) decides whether tracing is on, where spans
    go and the resource attributes; the OTLP exporter reads its other settings
    (headers, compression, certificates, timeout) from the process environment.
    Returns whether tracing is on. A previous configuration is shut down first.
    """
    if component not in HMA:
        raise ValueError(f"unknown component {component!r}: expected one of {', '.join(HMA)}")
    shutdown()
    env = os.environ if environ is None else environ
    if _forbidden(env) or (exporter is None and not _asks_for_otlp(env)):
        return False
    provider = TracerProvider(resource=_resource(component, env), shutdown_on_exit=False)
    if exporter is not None:  # tests read their spans as soon as they end
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=_endpoint(env))))
    global _enabled, _provider, _tracer
    _provider, _tracer, _enabled = provider, provider.get_tracer("scribe", __version__), True
    return True


def shutdown() -> None:
    """Flush the spans still buffered, stop exporting, and turn tracing off."""
    global _enabled, _provider, _tracer
    provider, _provider = _provider, None
    _enabled, _tracer = False, trace.NoOpTracer()
    if provider is not None:
        provider.shutdown()


atexit.register(shutdown)  # a command that forgets to flush still sends its spans


def enabled() -> bool:
    """Whether spans are being recorded (a flag: cheap enough for the hot path)."""
    return _enabled


def tracer() -> Tracer:
    """The configured tracer; a no-op tracer while tracing is off."""
    return _tracer


def current_trace_id() -> str | None:
    """The 32-hex trace id of the current span, or None outside any valid span."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _forbidden(env: Mapping[str, str]) -> bool:
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or exporters == "none"


def _asks_for_otlp(env: Mapping[str, str]) -> bool:
    if exporters := env.get("OTEL_TRACES_EXPORTER", "").strip():
        return "otlp" in exporters.lower()
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _endpoint(env: Mapping[str, str]) -> str | None:
    """The traces URL the variables name, resolved as the exporter itself would."""
    if traces := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return traces
    if base := env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return f"{base.removesuffix('/')}/v1/traces"
    return None  # the exporter's default (localhost:4318)


def _resource(component: str, env: Mapping[str, str]) -> Resource:
    """Scribe's attributes, then OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME."""
    kind, layer = HMA[component]
    ours = {
        "service.name": "scribe",
        "service.version": __version__,
        "scribe.component": component,
        "hma.component.type": kind,
        "hma.component.id": f"scribe-{component}",
        "hma.layer": layer,
        "hma.version": HMA_VERSION,
    }
    pairs = (item.split("=", 1) for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","))
    given = {k.strip(): unquote(v.strip()) for k, v in (p for p in pairs if len(p) == 2)}
    if name := env.get("OTEL_SERVICE_NAME"):
        given["service.name"] = name
    return Resource.create(ours).merge(Resource(given))


# The engine's spans.


def events(batch: Sequence[Event]) -> AbstractContextManager[object]:
    """Open a root span ``scribe.event`` for each event of a batch, for the block
    (each its own trace, unless a span is current: then they are its children).

    Roots still open when the block ends (an unexpected error) are ended there,
    marked as errors if the block raised.
    """
    if not _enabled:
        return _OFF
    return _event_spans(batch)


@contextmanager
def _event_spans(batch: Sequence[Event]) -> Iterator[None]:
    roots = {
        event.id: _tracer.start_span(
            "scribe.event",
            attributes={
                "scribe.event.kind": event.kind.value,
                "scribe.event.source": event.source,
                "scribe.path": event.target,
                "scribe.batch_size": len(batch),
            },
        )
        for event in batch
    }
    token = _roots.set(roots)
    try:
        yield
    except BaseException as exc:
        for span in roots.values():
            _failed(span, exc)
        raise
    finally:
        _roots.reset(token)
        for span in roots.values():
            span.end()


def settle(event: Event, status: str, reason: str = "") -> None:
    """End the event's root span with its outcome (an error if the write failed)."""
    if not _enabled:
        return
    roots = _roots.get()
    span = roots.pop(event.id, None) if roots is not None else None
    if span is None:
        return
    span.set_attribute("scribe.outcome", str(status))
    if status == "failed":
        span.set_status(StatusCode.ERROR, reason or None)
    span.end()


def step(event: Event, name: str) -> AbstractContextManager[Span]:
    """A child span of the event's root, current for the block (so logs carry its
    trace id); an exception escaping the block marks it as an error."""
    if not _enabled:
        return _OFF
    return _tracer.start_as_current_span(name, context=_parent(event))


def shared_step(batch: Iterable[Event], name: str) -> AbstractContextManager[Sequence[Span]]:
    """One child span per event, all covering the same block (a shared commit)."""
    if not _enabled:
        return _NO_SPANS
    return _shared(batch, name)


@contextmanager
def _shared(batch: Iterable[Event], name: str) -> Iterator[Sequence[Span]]:
    spans = [_tracer.start_span(name, context=_parent(event)) for event in batch]
    try:
        yield spans
    except BaseException as exc:
        for span in spans:
            _failed(span, exc)
        raise
    finally:
        for span in spans:
            span.end()


def apply(event: Event) -> AbstractContextManager[object]:
    """The ``scribe.apply`` span of a swap; ``scribe.write.result`` is read from how
    the block ends: normally (written), ContentChanged, FileBusy, or another error."""
    if not _enabled:
        return _OFF
    return _apply(event)


@contextmanager
def _apply(event: Event) -> Iterator[None]:
    span = _tracer.start_span("scribe.apply", context=_parent(event))
    with trace.use_span(
        span, end_on_exit=True, record_exception=False, set_status_on_exception=False
    ):
        try:
            yield
        except ContentChanged:
            span.set_attribute("scribe.write.result", "conflict")
            raise
        except FileBusy:
            span.set_attribute("scribe.write.result", "busy")
            raise
        except BaseException as exc:
            span.set_attribute("scribe.write.result", "failed")
            _failed(span, exc)
            raise
        span.set_attribute("scribe.write.result", "written")


def planned(span: Span, plan: Plan, rules: Sequence[CompiledRule]) -> None:
    """Say on a plan span which rules changed the file with which actions, and which
    failed (the span is then an error)."""
    if not _enabled or not span.is_recording():
        return
    changed = set(plan.rules)
    actions = (s.action.name for r in rules if r.id in changed for s in r.steps)
    span.set_attribute("scribe.rules", list(plan.rules))
    span.set_attribute("scribe.actions", list(dict.fromkeys(actions)))
    span.set_attribute("scribe.rules.failed", [f.rule for f in plan.failures])
    if plan.failures:
        why = "; ".join(f"{f.rule}: {f.reason}" for f in plan.failures)
        span.set_status(StatusCode.ERROR, f"rules failed: {why}")


def journaled(spans: Sequence[Span], entries: int, seqs: Sequence[int | None]) -> None:
    """Put on each event's journal span the commit's size and its own intent's seq."""
    if not _enabled:
        return
    for span, seq in zip(spans, seqs, strict=False):
        span.set_attribute("scribe.journal.entries", entries)
        if seq is not None:
            span.set_attribute("scribe.journal.seq", seq)


def _parent(event: Event) -> Context | None:
    roots = _roots.get()
    root = roots.get(event.id) if roots is not None else None
    return trace.set_span_in_context(root) if root is not None else None


def _failed(span: Span, exc: BaseException) -> None:
    span.record_exception(exc, escaped=True)
    span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")

"""OpenTelemetry traces: a span per event through match, plan, journal and apply
(each stage a timed span event on it).

Off unless the standard ``OTEL_*`` variables ask for OTLP (or a test hands in an
exporter). Off, every helper here checks one flag and returns a shared no-op: no
span, no attributes, no context switch, so the engine calls them unconditionally.
An event the sampler leaves out (``OTEL_TRACES_SAMPLER``) gets a non-recording root
span and its stages cost one more check each: they are neither timed nor made
current.
The provider is this module's own, not OpenTelemetry's set-once global, so
``configure`` may run again after ``shutdown``.

Events in a batch are processed interleaved, so their root spans cannot be nested
``with`` blocks: ``events`` opens one per event and keeps them in a context
variable, ``step`` records a stage on the right one, ``settle`` closes it.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
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
    """Time the block as stage ``name`` of the event: a span event on its root span
    (with ``duration_ms``), which is current for the block so logs carry its trace
    id. The block gets the root span, to put its findings on; an exception escaping
    the block marks the event as an error."""
    if not _enabled:
        return _OFF
    root = _root(event)
    if not root.is_recording():  # sampled out: nothing would be kept, so time nothing
        return nullcontext(root)
    return _Stage(name, [root], single=True)


def shared_step(batch: Iterable[Event], name: str) -> AbstractContextManager[Sequence[Span]]:
    """The same stage for every event of a batch, timed once (a shared commit)."""
    if not _enabled:
        return _NO_SPANS
    spans = [_root(event) for event in batch]
    if not any(span.is_recording() for span in spans):
        return nullcontext(spans)
    return _Stage(name, spans, single=False)


def apply(event: Event) -> AbstractContextManager[object]:
    """The ``scribe.apply`` stage of a swap; ``scribe.write.result`` is read from how
    the block ends: normally (written), ContentChanged, FileBusy, or another error."""
    if not _enabled:
        return _OFF
    root = _root(event)
    if not root.is_recording():
        return _OFF
    return _Stage("scribe.apply", [root], single=True, result=True)


class _Stage:
    """One stage of one or more events, recorded on their root spans.

    A stage is a span event rather than a child span: a child costs about as much as
    the whole event's root again (creating, ending, exporting), and four of them per
    event would make tracing the most expensive thing Scribe does. The event's time
    and ``duration_ms`` still place each stage on the root span's timeline.
    """

    __slots__ = ("_name", "_result", "_single", "_spans", "_started", "_token")

    def __init__(self, name: str, spans: list[Span], *, single: bool, result: bool = False):
        self._name = name
        self._spans = spans
        self._single = single
        self._result = result
        self._started = 0.0
        self._token: Token[Context] | None = None

    def __enter__(self) -> Any:
        self._started = time.perf_counter()
        self._token = attach(trace.set_span_in_context(self._spans[0]))
        return self._spans[0] if self._single else self._spans

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            detach(self._token)
        details: dict[str, Any] = {
            "duration_ms": round((time.perf_counter() - self._started) * 1000, 3)
        }
        if self._result:
            outcome = _WRITE_RESULTS.get(exc_type, "failed") if exc_type else "written"
            details["scribe.write.result"] = outcome
        ended = time.time_ns()  # one moment for all: a shared stage ended once
        for span in self._spans:
            if self._result:
                span.set_attribute("scribe.write.result", details["scribe.write.result"])
            span.add_event(self._name, details, timestamp=ended)
            if exc is not None and details.get("scribe.write.result") in (None, "failed"):
                _failed(span, exc)


_WRITE_RESULTS: dict[type[BaseException], str] = {ContentChanged: "conflict", FileBusy: "busy"}


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
        if not span.is_recording():
            continue
        span.set_attribute("scribe.journal.entries", entries)
        if seq is not None:
            span.set_attribute("scribe.journal.seq", seq)


def _root(event: Event) -> Span:
    """The event's open root span (a non-recording one if it has none)."""
    roots = _roots.get()
    root = roots.get(event.id) if roots is not None else None
    return root if root is not None else INVALID_SPAN


def _failed(span: Span, exc: BaseException) -> None:
    span.record_exception(exc, escaped=True)
    span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")

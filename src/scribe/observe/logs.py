"""Structured logs: the ``scribe`` logger's records as JSON lines or coloured text.

The code logs through the standard library (``logging.getLogger("scribe")``), with
``extra=`` for fields; structlog's ``ProcessorFormatter`` renders those records, so
no call site changes. JSON goes where a program reads it (a pipe, a file, a log
shipper); a terminal gets structlog's console renderer.

The handlers go on the root logger, and Scribe's level on the ``scribe`` logger:
libraries keep the root's level (their warnings still show, in the same format),
and records still propagate, so nothing else that listens to the root is cut off.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from scribe.errors import ScribeError
from scribe.observe import tracing

#: The fields Scribe's JSON lines use, beyond ``timestamp``, ``level`` and ``logger``.
FIELDS = ("event", "rule", "path", "duration_ms", "actions", "result", "seq", "trace_id")
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

#: The handler the last ``configure`` installed, removed by the next one.
_installed: list[logging.Handler] = []


def configure(
    level: str = "info",
    *,
    log_file: Path | None = None,
    json: bool | None = None,
    stream: TextIO | None = None,
) -> None:
    """Send Scribe's logs at ``level`` and above to ``stream`` (default stderr).

    ``json=None`` writes JSON lines unless ``stream`` is a terminal; ``log_file``
    also gets JSON lines, appended, whatever the terminal. Calling it again replaces
    what the previous call installed.
    """
    number = LEVELS.get(level.lower())
    if number is None:
        raise ScribeError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    stream = sys.stderr if stream is None else stream
    as_json = not stream.isatty() if json is None else json
    sinks = [(stream, _json_formatter() if as_json else _console_formatter(), False)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        sinks.append((open(log_file, "a", encoding="utf-8"), _json_formatter(), True))  # noqa: SIM115
    # What no field here uses, the records need not gather (the logging HOWTO's
    # "Optimization"): the caller's frame, thread, process and process names.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    _uninstall(root)
    handler = _Writer(sinks)
    _installed.append(handler)
    root.addHandler(handler)
    logging.getLogger("scribe").setLevel(number)


def flush() -> None:
    """Wait until every record logged so far is written."""
    for handler in _installed:
        handler.flush()


def _uninstall(root: logging.Logger) -> None:
    for handler in _installed:
        root.removeHandler(handler)
        handler.close()
    _installed.clear()


atexit.register(lambda: _uninstall(logging.getLogger()))


class _Writer(logging.Handler):
    """Renders and writes records on a thread of its own, in batches.

    A thread that logs only appends the record (with the trace id of the span current
    where it was logged); the writer renders whatever has gathered and writes it with
    one call per sink. A worker thus never renders JSON, never waits for another
    thread's write, and a burst of rewrites costs a few system calls, not one each.
    """

    def __init__(self, sinks: list[tuple[TextIO, logging.Formatter, bool]]) -> None:
        super().__init__()
        self._sinks = sinks  # stream, formatter, whether to close it at the end
        self._pending: list[logging.LogRecord] = []
        self._written = 0
        self._queued = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="scribe-logs", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if tracing.enabled() and (trace_id := tracing.current_trace_id()) is not None:
            record.trace_id = trace_id
        with self._cond:
            self._pending.append(record)
            self._queued += 1
            self._cond.notify_all()

    def flush(self) -> None:
        with self._cond:
            target = self._queued
            while self._written < target and self._thread.is_alive():
                self._cond.wait(0.1)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        for stream, _, owned in self._sinks:
            if owned:
                stream.close()
        super().close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closed:
                    return
            for stream, formatter, _ in self._sinks:
                lines = []
                for record in batch:
                    try:
                        lines.append(formatter.format(record) + "\n")
                    except Exception:  # one bad record must not silence the log
                        self.handleError(record)
                try:
                    stream.write("".join(lines))
                    stream.flush()
                except (OSError, ValueError):  # stderr closed, disk full: said as logging does
                    self.handleError(batch[-1])
            with self._cond:
                self._written += len(batch)
                self._cond.notify_all()


def _base_fields(_logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Timestamp (when the record was made, UTC), level, message, logger: first."""
    record: logging.LogRecord = event_dict["_record"]
    moment = datetime.fromtimestamp(record.created, UTC)
    return {
        "timestamp": moment.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "level": method,
        "event": event_dict.pop("event"),
        "logger": record.name,
        **event_dict,
    }


def _trace_id(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The current span's trace id, so a log line leads to its trace; and none of
    what another handler's formatter left on the record (``extra`` cannot set these)."""
    event_dict.pop("message", None)
    event_dict.pop("asctime", None)
    trace_id = tracing.current_trace_id()
    if trace_id is not None:
        event_dict["trace_id"] = trace_id
    return event_dict


_PRE_CHAIN: list[Processor] = [_base_fields, structlog.stdlib.ExtraAdder(), _trace_id]


def _json_formatter() -> logging.Formatter:
    def render(value: Any) -> str:  # a Path, a datetime: their text, not their repr
        return str(value)

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_PRE_CHAIN,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=render),
        ],
    )


def _console_formatter() -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_PRE_CHAIN,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.dev.ConsoleRenderer(colors=True),
        ],
    )

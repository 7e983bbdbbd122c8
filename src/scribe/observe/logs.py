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

import logging
import sys
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

#: The handlers the last ``configure`` installed, removed by the next one.
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
    handlers: list[logging.Handler] = [logging.StreamHandler(stream)]
    handlers[0].setFormatter(_json_formatter() if as_json else _console_formatter())
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a", encoding="utf-8"))
        handlers[1].setFormatter(_json_formatter())
    # What no field here uses, the records need not gather (the logging HOWTO's
    # "Optimization"): the caller's frame, thread, process and process names.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
        handler.close()
    _installed[:] = handlers
    for handler in handlers:
        root.addHandler(handler)
    logging.getLogger("scribe").setLevel(number)


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

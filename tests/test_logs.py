"""Logs as a reader or a log shipper gets them: JSON lines off a terminal, colour on
one, a JSON log file either way, and every existing ``logging`` call kept working."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from scribe.errors import ScribeError
from scribe.observe import logs, tracing

log = logging.getLogger("scribe")


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    level = log.level
    yield
    logs.configure("info", stream=io.StringIO())  # drop this test's handlers (and files)
    log.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    logs.flush()  # records are written by the log's own thread
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def text(stream: io.StringIO) -> str:
    logs.flush()
    return stream.getvalue()


def test_records_become_json_lines_with_the_documented_fields() -> None:
    stream = io.StringIO()
    logs.configure("info", stream=stream)  # a StringIO is no terminal: JSON
    log.info("rewrote %s", "a.md")
    log.info(
        "rewrote",
        extra={
            "rule": "stamp",
            "path": "a.md",
            "duration_ms": 2.1,
            "actions": ["set"],
            "result": "written",
            "seq": 12,
        },
    )
    plain, fielded = lines(stream)
    assert plain["event"] == "rewrote a.md"
    assert plain["level"] == "info"
    assert plain["logger"] == "scribe"
    assert datetime.fromisoformat(plain["timestamp"]).utcoffset() == timedelta(0)  # UTC
    assert fielded == {
        "timestamp": fielded["timestamp"],
        "level": "info",
        "event": "rewrote",
        "logger": "scribe",
        "rule": "stamp",
        "path": "a.md",
        "duration_ms": 2.1,
        "actions": ["set"],
        "result": "written",
        "seq": 12,
    }
    assert set(fielded) - {"timestamp", "level", "logger"} <= set(logs.FIELDS)


def test_a_value_json_cannot_hold_is_written_as_its_text() -> None:
    stream = io.StringIO()
    logs.configure("info", stream=stream)
    log.warning("skipped", extra={"path": Path("notes/a.md")})
    assert lines(stream)[0]["path"] == "notes/a.md"


def test_trace_id_is_added_inside_a_span_and_only_there() -> None:
    stream = io.StringIO()
    logs.configure("info", stream=stream)
    try:
        assert tracing.configure("engine", environ={}, exporter=InMemorySpanExporter())
        with tracing.tracer().start_as_current_span("work") as span:
            log.info("inside")
        log.info("outside")
    finally:
        tracing.shutdown()
    inside, outside = lines(stream)
    assert inside["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert "trace_id" not in outside


def test_an_exception_is_a_field_holding_the_traceback() -> None:
    stream = io.StringIO()
    logs.configure("info", stream=stream)
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError:
        log.exception("could not write %s", "a.md")
    (line,) = lines(stream)
    assert line["level"] == "error"
    assert line["event"] == "could not write a.md"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: disk on fire" in line["exception"]


def test_a_terminal_gets_coloured_text_not_json() -> None:
    terminal = Terminal()
    logs.configure("info", stream=terminal)
    log.warning("rewrote %s", "a.md", extra={"rule": "stamp"})
    shown = text(terminal)
    assert "\x1b[" in shown  # ANSI colour codes
    assert "rewrote a.md" in shown
    assert "rule" in shown
    assert "stamp" in shown
    with pytest.raises(json.JSONDecodeError):
        json.loads(shown)


def test_json_can_be_forced_on_a_terminal_and_refused_off_one() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    logs.configure("info", stream=terminal, json=True)
    log.info("one")
    assert lines(terminal)[0]["event"] == "one"
    logs.configure("info", stream=pipe, json=False)
    log.info("two")
    assert "two" in text(pipe)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text(pipe))


def test_the_log_file_gets_json_lines_even_when_the_stream_is_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "deep" / "scribe.jsonl"  # parents are created
    path.parent.mkdir(parents=True)
    path.write_text('{"event": "from before"}\n')
    terminal = Terminal()
    logs.configure("info", stream=terminal, log_file=path)
    log.info("rewrote", extra={"path": "a.md", "seq": 3})
    logs.configure("info", stream=io.StringIO())  # closes the file
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first == {"event": "from before"}  # appended, not truncated
    assert (second["event"], second["path"], second["seq"]) == ("rewrote", "a.md", 3)
    assert "\x1b[" in text(terminal)


def test_the_log_file_parent_folders_are_made(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "scribe.jsonl"
    logs.configure("info", stream=io.StringIO(), log_file=path)
    log.info("hello")
    logs.configure("info", stream=io.StringIO())
    assert json.loads(path.read_text())["event"] == "hello"


@pytest.mark.parametrize("name", ["DEBUG", "Info", "warning", "error"])
def test_level_names_are_case_insensitive_and_filter(name: str) -> None:
    stream = io.StringIO()
    logs.configure(name, stream=stream)
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    shown = [line["event"] for line in lines(stream)]
    expected = {"debug": "diwe", "info": "iwe", "warning": "we", "error": "e"}[name.lower()]
    assert shown == list(expected)


def test_an_unknown_level_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ScribeError) as raised:
        logs.configure("verbose", stream=io.StringIO())
    assert (
        str(raised.value) == "unknown log level 'verbose': use one of debug, info, warning, error"
    )


def test_reconfiguring_replaces_the_handlers_instead_of_adding_more() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure("info", stream=first)
    logs.configure("info", stream=first)
    logs.configure("info", stream=second)
    logs.configure("info", stream=second)
    log.info("once")
    assert text(first) == ""
    assert [line["event"] for line in lines(second)] == ["once"]


def test_other_libraries_warnings_come_through_in_the_same_format() -> None:
    stream = io.StringIO()
    logs.configure("debug", stream=stream)
    logging.getLogger("urllib3.connectionpool").debug("not at scribe's level")
    logging.getLogger("opentelemetry.exporter").warning("export failed")
    assert [(line["logger"], line["event"]) for line in lines(stream)] == [
        ("opentelemetry.exporter", "export failed")
    ]


def test_lines_logged_from_many_threads_at_once_are_all_written_whole() -> None:
    stream = io.StringIO()
    logs.configure("info", stream=stream)

    def burst(worker: int) -> None:
        for n in range(500):
            log.info("rewrote", extra={"path": f"w{worker}/n{n}.md", "seq": n})

    threads = [threading.Thread(target=burst, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written = lines(stream)  # each line parses: none was torn or interleaved
    assert sorted(line["path"] for line in written) == sorted(
        f"w{w}/n{n}.md" for w in range(8) for n in range(500)
    )


class Stuck(io.StringIO):
    """A reader of the log that stops reading (a full pipe) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        assert self.release.wait(10), "never released"
        return super().write(text)


def test_a_stalled_log_reader_does_not_hold_up_the_threads_that_log() -> None:
    stream = Stuck()
    logs.configure("info", stream=stream)
    done = threading.Event()

    def worker() -> None:
        for n in range(200):
            log.info("rewrote", extra={"path": f"n{n}.md"})
        done.set()

    threading.Thread(target=worker).start()
    assert done.wait(5)  # all 200 logged while nothing could be written
    stream.release.set()
    assert len(lines(stream)) == 200

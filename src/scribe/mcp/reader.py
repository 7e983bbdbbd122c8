"""``read_file``: what a file is, any part of it, and the provenance of every read.

Every read starts with a scan (``scribe.mcp.scan``): size, lines, SHA-256, newline
type, encoding and the chunk index, in one pass of constant memory. A scan is kept
per file identity (device, inode, size, mtime, ctime), in memory and optionally on
disk under ``index_dir``, so the next call on an unchanged file neither rehashes it
nor reads it from the start: chunk N is one ``pread``, line L is found from the
chunk that holds it.

Each answer carries a provenance dict (path, SHA-256, size, what was read, when)
for the caller to journal as ``file.read`` through ``read_entry``; the content
itself never goes into an entry. Lines are returned without their terminators, so
line ranges and searches answer alike on LF, CRLF and CR files.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from scribe.journal.entry import FILE_READ, NewEntry
from scribe.mcp.context import Call
from scribe.mcp.failures import INVALID_ARGUMENT, ToolFailure
from scribe.mcp.filesearch import Search
from scribe.mcp.parts import Opened, changed, line_batches, read_chunk, read_lines
from scribe.mcp.paths import ReadScope
from scribe.mcp.scan import MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, FileFacts, scan
from scribe.mcp.scan_cache import ScanCache

__all__ = [
    "INDEX_DIR",
    "MODES",
    "ReadAnswer",
    "ReadMode",
    "Reader",
    "Stream",
    "provenance_entry",
    "read_entry",
    "read_for_cli",
]

ReadMode = Literal["scan_only", "chunk", "line_range", "page", "full_stream", "search"]
MODES: tuple[str, ...] = get_args(ReadMode)

#: Where ``read_for_cli`` keeps scans between runs, under the repository root.
INDEX_DIR = Path(".scribe") / "cache" / "reader"
#: A scan of a file modified this recently is not kept: a write within the same
#: timestamp tick would leave size and mtime as they were.
_RACY_NS = 1_000_000_000

_OPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # mode: (required, optional)
    "scan_only": ((), ()),
    "chunk": (("chunk_index",), ()),
    "line_range": (("start_line", "end_line"), ()),
    "page": (("page",), ("page_size",)),
    "full_stream": ((), ()),
    "search": (("pattern",), ("regex", "ignore_case", "context", "max_matches", "timeout_s")),
}


@dataclass(frozen=True)
class ReadAnswer:
    """One read: the file's scan, what the mode returned, and its provenance."""

    mode: str
    file: dict[str, Any]
    result: dict[str, Any]
    provenance: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """What the agent receives (provenance goes to the journal)."""
        return {"mode": self.mode, "file": self.file, **self.result}


@dataclass(frozen=True)
class Stream:
    """A whole file, chunk by chunk: ``file`` and ``provenance`` are known before the
    first chunk is read, so the read can be journaled first. Iterating reopens the
    file, yields every chunk answer in order and raises CONFLICT if the file is not
    the one scanned (it changed, shrank or grew), so a stream is never cut short
    silently."""

    file: dict[str, Any]
    provenance: dict[str, Any]
    chunks: Iterator[dict[str, Any]]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.chunks


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToolFailure(INVALID_ARGUMENT, f"{name} must be an integer", argument=name)
    if not low <= value <= high:
        raise ToolFailure(
            INVALID_ARGUMENT, f"{name} must be between {low} and {high}, not {value}", argument=name
        )
    return value


class Reader:
    """Reads files within ``scope``; safe to share between threads.

    ``chunk_bytes`` caps a chunk and the text one line or page answer returns.
    ``bytes_read`` counts every byte read from disk, scans included.
    """

    def __init__(
        self,
        scope: ReadScope,
        *,
        chunk_bytes: int = 65536,
        index_dir: Path | None = None,
        cache_size: int = 64,
    ) -> None:
        if not MIN_CHUNK_BYTES <= chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be between {MIN_CHUNK_BYTES} and {MAX_CHUNK_BYTES}")
        self.scope = scope
        self.chunk_bytes = chunk_bytes
        self._scans = ScanCache(index_dir, cache_size)
        self._lock = threading.Lock()
        self._bytes_read = 0

    @property
    def bytes_read(self) -> int:
        with self._lock:
            return self._bytes_read

    # -- the modes ------------------------------------------------------------

    def read(self, path: str, mode: str, **options: Any) -> ReadAnswer | Stream:
        """One read in ``mode`` (see ``MODES``) with that mode's options; an option
        the mode does not take, or one it needs and lacks, is refused."""
        if mode not in _OPTIONS:
            raise ToolFailure(
                INVALID_ARGUMENT, f"unknown mode {mode!r}: use one of {', '.join(MODES)}"
            )
        required, optional = _OPTIONS[mode]
        given = {name: value for name, value in options.items() if value is not None}
        for name in given:
            if name not in required + optional:
                takes = ", ".join(required + optional) or "no options"
                raise ToolFailure(
                    INVALID_ARGUMENT,
                    f"{name} does not apply to mode {mode} (it takes {takes})",
                    argument=name,
                )
        missing = [name for name in required if name not in given]
        if missing:
            raise ToolFailure(
                INVALID_ARGUMENT, f"mode {mode} needs {', '.join(missing)}", missing=missing
            )
        if mode == "scan_only":
            return self.scan(path)
        if mode == "chunk":
            return self.chunk(path, given["chunk_index"])
        if mode == "line_range":
            return self.line_range(path, given["start_line"], given["end_line"])
        if mode == "page":
            return self.page(path, **given)
        if mode == "search":
            return self.search(path, **given)
        return self.stream(path)

    def scan(self, path: str) -> ReadAnswer:
        """The file's facts only (``scan_only``)."""
        with self._open(path) as f:
            return self._answer(f, "scan_only", {}, None)

    def chunk(self, path: str, chunk_index: int) -> ReadAnswer:
        """Chunk ``chunk_index`` (0-based): its bytes, lines, text and ``next_cursor``."""
        index = _int("chunk_index", chunk_index, 0, 2**62)
        with self._open(path) as f:
            count = f.facts.chunk_count
            if index >= count:
                raise ToolFailure(
                    INVALID_ARGUMENT,
                    f"chunk_index {index} is out of range: {path} has {count} "
                    f"chunk{'s' if count != 1 else ''} (0 to {count - 1})",
                    argument="chunk_index",
                    chunk_count=count,
                )
            _require_text(f)
            body, _ = read_chunk(f, index)
        return self._answer(f, "chunk", body, {k: v for k, v in body.items() if k != "text"})

    def line_range(self, path: str, start_line: int, end_line: int) -> ReadAnswer:
        """Lines ``start_line`` to ``end_line`` (1-based, inclusive; an end past the
        last line stops at the last line)."""
        start_line = _int("start_line", start_line, 1, 2**62)
        end_line = _int("end_line", end_line, start_line, 2**62)
        with self._open(path) as f:
            total = self._require_lines(f, start_line)
            body = read_lines(f, start_line, min(end_line, total), self.chunk_bytes)
        return self._answer(f, "line_range", body, _line_range(body))

    def page(self, path: str, page: int, page_size: int = 100) -> ReadAnswer:
        """Page ``page`` (1-based) of ``page_size`` lines, with ``page_count`` and
        ``next_page``."""
        page = _int("page", page, 1, 2**62)
        page_size = _int("page_size", page_size, 1, 10_000)
        first = (page - 1) * page_size + 1
        with self._open(path) as f:
            total = self._require_lines(f, first, page=page)
            body = read_lines(f, first, min(page * page_size, total), self.chunk_bytes)
        pages = -(-total // page_size)
        body = {
            "page": page,
            "page_size": page_size,
            "page_count": pages,
            "next_page": page + 1 if page < pages else None,
            **body,
        }
        return self._answer(
            f, "page", body, {"page": page, "page_size": page_size, **_line_range(body)}
        )

    def search(
        self,
        path: str,
        pattern: str,
        *,
        regex: bool = False,
        ignore_case: bool = False,
        context: int = 0,
        max_matches: int = 100,
        timeout_s: float = 5.0,
    ) -> ReadAnswer:
        """Lines matching ``pattern`` (literal, or a regex with ``regex=True``), each
        with ``context`` lines around it; see ``scribe.mcp.filesearch``."""
        search = Search(
            pattern,
            regex=regex,
            ignore_case=ignore_case,
            context=context,
            max_matches=max_matches,
            timeout_s=timeout_s,
        )
        with self._open(path) as f:
            _require_text(f)
            body = search.run(path, line_batches(f, 0, self.chunk_bytes))
        summary = {k: body[k] for k in ("pattern", "regex", "ignore_case", "match_count", "more")}
        return self._answer(
            f, "search", body, {**summary, "lines_searched": body["lines_searched"]}
        )

    def stream(self, path: str) -> Stream:
        """The whole file as chunk answers, delivered one at a time (``full_stream``)."""
        with self._open(path) as f:
            _require_text(f)
            answer = self._answer(
                f,
                "full_stream",
                {},
                {"byte_start": 0, "byte_end": f.facts.size, "chunk_count": f.facts.chunk_count},
            )
        return Stream(answer.file, answer.provenance, self._stream(path, f.identity, f.facts))

    # -- opening and scanning -------------------------------------------------

    @contextmanager
    def _open(self, given: str) -> Iterator[Opened]:
        resolved, fd = self.scope.open(given)
        try:
            identity = _identity(os.fstat(fd))
            opened = Opened(
                given, resolved, fd, identity, self._facts(fd, identity, given), self._count
            )
            yield opened
            if _identity(os.fstat(fd)) != identity:
                raise changed(given)
        finally:
            os.close(fd)

    def _facts(self, fd: int, identity: tuple[int, ...], given: str) -> FileFacts:
        key = (*identity, self.chunk_bytes)
        facts = self._scans.get(key)
        if facts is not None:
            return facts
        begun = time.time_ns()
        facts = scan(fd, identity[2], self.chunk_bytes, self._count)
        if _identity(os.fstat(fd)) != identity or facts.size != identity[2]:
            raise changed(given)
        if begun - identity[3] >= _RACY_NS:
            self._scans.put(key, facts)
        return facts

    def _count(self, size: int) -> None:
        with self._lock:
            self._bytes_read += size

    def _stream(
        self, given: str, identity: tuple[int, ...], facts: FileFacts
    ) -> Iterator[dict[str, Any]]:
        resolved, fd = self.scope.open(given)
        try:
            if _identity(os.fstat(fd)) != identity:
                raise changed(given)
            opened = Opened(given, resolved, fd, identity, facts, self._count)
            hasher = hashlib.sha256()
            for index in range(facts.chunk_count):
                body, raw = read_chunk(opened, index)
                hasher.update(raw)
                if _identity(os.fstat(fd)) != identity:
                    raise changed(given)
                yield body
            if hasher.hexdigest() != facts.sha256:
                raise changed(given)
        finally:
            os.close(fd)

    def _require_lines(self, f: Opened, first: int, page: int | None = None) -> int:
        _require_text(f)
        total = f.facts.line_count
        if first > total:
            what = f"page {page}" if page is not None else f"start_line {first}"
            raise ToolFailure(
                INVALID_ARGUMENT,
                f"{what} is past the end of {f.given}: it has {total} "
                f"line{'s' if total != 1 else ''}",
                argument="page" if page is not None else "start_line",
                line_count=total,
            )
        return total

    def _answer(
        self, f: Opened, mode: str, result: dict[str, Any], read_range: dict[str, Any] | None
    ) -> ReadAnswer:
        facts, resolved = f.facts, f.resolved
        file = {"path": resolved.rel, "absolute": resolved.absolute, **facts.summary()}
        provenance = {
            "path": resolved.rel,
            "absolute": resolved.absolute,
            "requested": f.given,
            "sha256": facts.sha256,
            "size": facts.size,
            "line_count": facts.line_count,
            "read_mode": mode,
            "range": read_range,
            "read_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        return ReadAnswer(mode, file, result, provenance)


def _require_text(f: Opened) -> None:
    if f.facts.not_text:
        raise ToolFailure(
            INVALID_ARGUMENT,
            f"{f.given} is not text ({f.facts.not_text}); only mode scan_only reads it",
            not_text=f.facts.not_text,
        )


def _line_range(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "line_start": body["line_start"],
        "line_end": body["line_end"],
        "truncated": body["truncated"],
    }


def read_entry(call: Call, provenance: dict[str, Any]) -> NewEntry:
    """The ``file.read`` entry for an agent's read: who read what, never the content."""
    project = {"project": call.context.project} if call.context.project else {}
    return provenance_entry(call.context.actor, provenance, call.payload(**project, **provenance))


def provenance_entry(
    actor: str, provenance: dict[str, Any], payload: dict[str, Any] | None = None
) -> NewEntry:
    """The ``file.read`` entry of one read by ``actor`` (``payload`` defaults to the
    provenance itself)."""
    where = provenance["path"] or provenance["absolute"]
    return NewEntry(
        FILE_READ,
        actor,
        path=where,
        message=f"read {where} ({provenance['read_mode']})",
        payload=provenance if payload is None else payload,
    )


def read_for_cli(
    root: Path,
    path: str,
    mode: str,
    *,
    deny: Sequence[str] = (),
    chunk_bytes: int = 65536,
    index_dir: Path | None = None,
    **options: Any,
) -> Iterator[dict[str, Any]]:
    """``scribe read PATH --mode ...``: the answer as JSON-ready dicts, each with its
    provenance. One dict for most modes; for ``full_stream`` a first dict with the
    file and provenance, then one per chunk as it is read. Scans are kept under
    ``root/.scribe/cache/reader`` unless ``index_dir`` says otherwise."""
    scope = ReadScope(root, extra_deny=deny)
    reader = Reader(scope, chunk_bytes=chunk_bytes, index_dir=index_dir or scope.root / INDEX_DIR)
    answer = reader.read(path, mode, **options)
    if isinstance(answer, Stream):
        yield {"mode": "full_stream", "file": answer.file, "provenance": answer.provenance}
        yield from answer
    else:
        yield {**answer.to_json(), "provenance": answer.provenance}

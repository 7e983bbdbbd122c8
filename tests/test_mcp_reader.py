"""read_file: scans, chunks, line ranges, pages, streams and searches, with provenance."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_reader_helpers import (
    BOMS,
    age,
    call_for,
    encode,
    read_in_child,
    reference_lines,
)
from scribe.journal.entry import FILE_READ, SCOPE_VIOLATION, Query
from scribe.journal.mirrors import Mirrors
from scribe.journal.sqlite import SqliteJournal
from scribe.journal.writer import JournalWriter
from scribe.mcp import failures
from scribe.mcp.door import violation_entry
from scribe.mcp.failures import CONFLICT, INVALID_ARGUMENT, NOT_FOUND, TIMEOUT, ToolFailure
from scribe.mcp.filesearch import MARK
from scribe.mcp.paths import ReadScope
from scribe.mcp.reader import (
    INDEX_DIR,
    ReadAnswer,
    Reader,
    Stream,
    read_entry,
    read_for_cli,
)

LINES = ["alpha", "beta", "", "gamma δ", "€uro 😀"]
TERMINATORS = {"LF": "\n", "CRLF": "\r\n", "CR": "\r"}
ZERO_GIB_SHA256 = "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    return repo.resolve()


def _reader(root: Path, chunk_bytes: int = 65536, **kwargs: Any) -> Reader:
    return Reader(ReadScope(root), chunk_bytes=chunk_bytes, **kwargs)


def _failure(code: str, fn: Any, *args: Any, **kwargs: Any) -> ToolFailure:
    with pytest.raises(ToolFailure) as caught:
        fn(*args, **kwargs)
    assert caught.value.code == code, caught.value.to_json()
    return caught.value


def _chunks(reader: Reader, name: str) -> list[dict[str, Any]]:
    count = reader.scan(name).file["chunk_count"]
    return [reader.chunk(name, index).result for index in range(count)]


def _raw(root: Path, name: str, chunk: dict[str, Any]) -> bytes:
    return (root / name).read_bytes()[chunk["byte_start"] : chunk["byte_end"]]


# -- every mode on every layout -----------------------------------------------

LAYOUTS = [
    (newline, encoding, trailing)
    for newline in ("LF", "CRLF", "CR", "mixed")
    for encoding in BOMS
    for trailing in (True, False)
]


def _write_layout(root: Path, newline: str, encoding: str, trailing: bool) -> tuple[str, str]:
    """``LINES`` with ``newline`` terminators (mixed: all three), ending with one
    if ``trailing``."""
    if newline == "mixed":
        text = "alpha\nbeta\r\n\rgamma δ\n€uro 😀" + ("\n" if trailing else "")
    else:
        text = TERMINATORS[newline].join(LINES) + (TERMINATORS[newline] if trailing else "")
    (root / "f.txt").write_bytes(encode(text, encoding))
    return "f.txt", text


@pytest.mark.parametrize(("newline", "encoding", "trailing"), LAYOUTS)
def test_scan_reports_the_file_as_it_is(
    root: Path, newline: str, encoding: str, trailing: bool
) -> None:
    name, _ = _write_layout(root, newline, encoding, trailing)
    data = (root / name).read_bytes()
    file = _reader(root).scan(name).file
    assert file == {
        "path": name,
        "absolute": str(root / name),
        "size": len(data),
        "line_count": 5,
        "sha256": hashlib.sha256(data).hexdigest(),
        "newline": newline,
        "encoding": encoding,
        "chunk_bytes": 65536,
        "chunk_count": 1,
    }


@pytest.mark.parametrize(("newline", "encoding", "trailing"), LAYOUTS)
def test_lines_pages_and_anchored_searches_ignore_the_line_terminators(
    root: Path, newline: str, encoding: str, trailing: bool
) -> None:
    name, _ = _write_layout(root, newline, encoding, trailing)
    reader = _reader(root, chunk_bytes=16)
    assert reader.line_range(name, 2, 4).result["lines"] == LINES[1:4]
    assert reader.line_range(name, 4, 99).result["lines"] == LINES[3:]
    page = reader.page(name, 2, page_size=2).result
    assert (page["lines"], page["page_count"], page["next_page"]) == (LINES[2:4], 3, 3)
    found = reader.search(name, "^beta$", regex=True, context=1).result["matches"]
    assert found == [
        {
            "line": 2,
            "column": 1,
            "text": "beta",
            "truncated": False,
            "before": ["alpha"],
            "after": [""],
        }
    ]
    assert [m["line"] for m in reader.search(name, "^$", regex=True).result["matches"]] == [3]
    assert [m["line"] for m in reader.search(name, "😀").result["matches"]] == [5]


@pytest.mark.parametrize(("newline", "encoding", "trailing"), LAYOUTS)
def test_chunks_and_streams_give_back_the_file_exactly(
    root: Path, newline: str, encoding: str, trailing: bool
) -> None:
    name, text = _write_layout(root, newline, encoding, trailing)
    reader = _reader(root, chunk_bytes=16)
    chunks = _chunks(reader, name)
    assert b"".join(_raw(root, name, c) for c in chunks) == (root / name).read_bytes()
    assert "".join(c["text"] for c in chunks) == text
    assert [c["next_cursor"] for c in chunks] == [*range(1, len(chunks)), None]
    assert all(c["byte_end"] - c["byte_start"] <= 16 for c in chunks)
    stream = reader.stream(name)
    assert isinstance(stream, Stream)
    assert list(stream) == chunks
    assert stream.provenance["range"] == {
        "byte_start": 0,
        "byte_end": len((root / name).read_bytes()),
        "chunk_count": len(chunks),
    }


def test_a_file_without_newlines_is_one_line(root: Path) -> None:
    (root / "one.txt").write_text("no newline here", encoding="utf-8")
    reader = _reader(root)
    assert reader.scan("one.txt").file["newline"] == "none"
    assert reader.line_range("one.txt", 1, 1).result["lines"] == ["no newline here"]
    chunk = reader.chunk("one.txt", 0).result
    assert (chunk["line_start"], chunk["line_end"], chunk["ends_mid_line"]) == (1, 1, False)


def test_an_empty_file_has_one_empty_chunk_and_no_lines(root: Path) -> None:
    (root / "empty.txt").write_bytes(b"")
    reader = _reader(root)
    file = reader.scan("empty.txt").file
    assert (file["size"], file["line_count"], file["newline"], file["chunk_count"]) == (
        0,
        0,
        "none",
        1,
    )
    chunk = reader.chunk("empty.txt", 0).result
    assert (chunk["text"], chunk["line_start"], chunk["next_cursor"]) == ("", None, None)
    failure = _failure(INVALID_ARGUMENT, reader.line_range, "empty.txt", 1, 1)
    assert failure.message == "start_line 1 is past the end of empty.txt: it has 0 lines"


def test_a_long_line_is_cut_into_chunks_that_say_so(root: Path) -> None:
    (root / "long.txt").write_text("x" * 40 + "\nshort\n", encoding="utf-8")
    chunks = _chunks(_reader(root, chunk_bytes=16), "long.txt")
    assert [(c["line_start"], c["line_end"], c["ends_mid_line"]) for c in chunks] == [
        (1, 1, True),
        (1, 1, True),
        (1, 2, False),
    ]


def test_a_crlf_is_never_split_between_chunks(root: Path) -> None:
    (root / "crlf.txt").write_bytes(b"x" * 15 + b"\r\n" + b"y" * 20)
    chunks = _chunks(_reader(root, chunk_bytes=16), "crlf.txt")
    assert [c["text"] for c in chunks] == ["x" * 15, "\r\n", "y" * 16, "y" * 4]


def test_a_binary_file_is_scanned_but_not_read_as_text(root: Path) -> None:
    (root / "blob.bin").write_bytes(b"PK\x03\x04\x00\x00binary")
    (root / "latin1.txt").write_bytes("café".encode("latin-1"))
    reader = _reader(root)
    file = reader.scan("blob.bin").file
    assert (file["encoding"], file["not_text"]) == ("binary", "NUL byte at offset 4")
    assert reader.scan("latin1.txt").file["not_text"] == "not valid UTF-8 (byte 3)"
    failure = _failure(INVALID_ARGUMENT, reader.chunk, "blob.bin", 0)
    assert failure.message == (
        "blob.bin is not text (NUL byte at offset 4); only mode scan_only reads it"
    )
    for call in (
        lambda: reader.line_range("latin1.txt", 1, 1),
        lambda: reader.search("blob.bin", "PK"),
        lambda: reader.stream("blob.bin"),
    ):
        _failure(INVALID_ARGUMENT, call)


# -- chunking, as a property ----------------------------------------------------

CHARACTERS = st.sampled_from(["a", "b", " ", "é", "€", "😀"])
LINE = st.tuples(
    st.lists(CHARACTERS, max_size=50).map("".join), st.sampled_from(["\n", "\r\n", "\r", ""])
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(LINE, max_size=12),
    encoding=st.sampled_from(list(BOMS)),
    chunk_bytes=st.integers(16, 40),
)
def test_chunks_never_split_a_character_and_lines_are_found_from_any_chunk(
    root: Path, lines: list[tuple[str, str]], encoding: str, chunk_bytes: int
) -> None:
    text = "".join(body + end for body, end in lines)
    data = encode(text, encoding)
    (root / "p.txt").write_bytes(data)
    reader = _reader(root, chunk_bytes=chunk_bytes)
    chunks = _chunks(reader, "p.txt")
    raws = [_raw(root, "p.txt", c) for c in chunks]
    assert b"".join(raws) == data
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    for index, (raw, chunk) in enumerate(zip(raws, chunks, strict=True)):
        assert len(raw) <= chunk_bytes
        body = raw[len(BOMS[encoding]) :] if index == 0 else raw
        assert body.decode(codec) == chunk["text"]  # each chunk decodes on its own
    texts = [c["text"] for c in chunks]
    assert "".join(texts) == text
    for before, after in itertools.pairwise(texts):
        assert not (before.endswith("\r") and after.startswith("\n"))
    expected = reference_lines(text)
    assert reader.scan("p.txt").file["line_count"] == len(expected)
    seen = 0
    for chunk in chunks:
        if chunk["text"]:
            assert chunk["line_start"] == len(reference_lines(text[:seen] + "x"))
        seen += len(chunk["text"])
    for number, line in enumerate(expected, start=1):
        got = reader.line_range("p.txt", number, number).result
        if len(line) <= chunk_bytes:
            assert (got["lines"], got["truncated"]) == ([line], False)
        else:
            assert (got["lines"], got["truncated"]) == ([line[:chunk_bytes]], True)
    assert [c["byte_start"] for c in _chunks(_reader(root, chunk_bytes), "p.txt")] == [
        c["byte_start"] for c in chunks
    ]


# -- the index: chunk N without reading the file again ----------------------------


def _numbered(root: Path, name: str, lines: int) -> Path:
    path = root / name
    path.write_text("".join(f"line {n:07d} of the file\n" for n in range(1, lines + 1)))
    age(path)
    return path


def test_chunk_n_comes_from_the_index_without_reading_the_file_again(root: Path) -> None:
    path = _numbered(root, "big.log", 100_000)
    size = path.stat().st_size
    reader = _reader(root, chunk_bytes=4096)
    last = reader.scan("big.log").file["chunk_count"] - 1
    assert reader.bytes_read == size
    before = reader.bytes_read
    chunk = reader.chunk("big.log", last).result
    assert reader.bytes_read - before == chunk["byte_end"] - chunk["byte_start"]
    assert chunk["text"].endswith("line 0100000 of the file\n")
    before = reader.bytes_read
    lines = reader.line_range("big.log", 77_777, 77_778).result["lines"]
    assert lines == ["line 0077777 of the file", "line 0077778 of the file"]
    assert reader.bytes_read - before <= 64 * 1024


def test_the_index_on_disk_spares_another_reader_the_scan(root: Path, tmp_path: Path) -> None:
    path = _numbered(root, "big.log", 50_000)
    index_dir = tmp_path / "index"
    first = _reader(root, chunk_bytes=4096, index_dir=index_dir)
    count = first.scan("big.log").file["chunk_count"]
    assert len(list(index_dir.glob("*.idx"))) == 1
    second = _reader(root, chunk_bytes=4096, index_dir=index_dir)
    chunk = second.chunk("big.log", count - 2).result
    assert second.bytes_read == chunk["byte_end"] - chunk["byte_start"]
    assert chunk == first.chunk("big.log", count - 2).result
    with path.open("a") as out:
        out.write("one more line\n")
    age(path)
    assert second.scan("big.log").file["line_count"] == 50_001  # a changed file is scanned again
    assert second.bytes_read > path.stat().st_size


def test_a_file_written_just_now_is_scanned_again_each_time(root: Path) -> None:
    (root / "fresh.txt").write_text("just written\n", encoding="utf-8")
    reader = _reader(root)
    reader.scan("fresh.txt")
    reader.scan("fresh.txt")
    assert reader.bytes_read == 2 * len("just written\n")


# -- large files, bounded memory ---------------------------------------------------


def test_a_200_mb_file_without_newlines_is_read_in_bounded_memory(root: Path) -> None:
    block = ("€" * 349_525 + "a").encode()  # 1 MiB; chunk cuts land inside characters
    with (root / "huge.txt").open("wb") as out:
        for _ in range(200):
            out.write(block)
    size = 200 * len(block)
    got = read_in_child(
        root, "huge.txt", ["last_chunk", "middle_chunk", "first_line", "search", "stream"]
    )
    assert got["growth_kib"] < 64 * 1024, got
    assert (got["file"]["line_count"], got["file"]["newline"], got["file"]["encoding"]) == (
        1,
        "none",
        "utf-8",
    )
    assert got["last_chunk"]["byte_end"] == size
    assert got["last_chunk"]["next_cursor"] is None
    assert got["middle_chunk"]["ends_mid_line"] is True
    assert (got["first_line"]["truncated"], got["first_line"]["chars"]) == (True, 65536)
    assert got["search"]["match_count"] == 0
    assert got["stream"] == 200 * (349_525 + 1)  # every character, once


def test_a_1_gb_sparse_file_is_scanned_in_bounded_memory(root: Path) -> None:
    with (root / "sparse.img").open("wb") as out:
        os.truncate(out.fileno(), 1 << 30)
    got = read_in_child(root, "sparse.img", [])
    assert got["growth_kib"] < 64 * 1024, got
    file = got["file"]
    assert (file["size"], file["sha256"], file["encoding"]) == (1 << 30, ZERO_GIB_SHA256, "binary")


# -- search ---------------------------------------------------------------------------


def test_search_stops_at_the_match_limit_and_says_whether_more_exist(root: Path) -> None:
    (root / "log.txt").write_text("".join(f"event {n}\n" for n in range(10)), encoding="utf-8")
    reader = _reader(root)
    three = reader.search("log.txt", "event", max_matches=3).result
    assert ([m["line"] for m in three["matches"]], three["more"]) == ([1, 2, 3], True)
    ten = reader.search("log.txt", "event", max_matches=10).result
    assert (ten["match_count"], ten["more"]) == (10, False)


def test_search_context_lines_surround_each_match(root: Path) -> None:
    (root / "ctx.txt").write_text("a\nb\nHIT\nc\nHIT\nd\n", encoding="utf-8")
    matches = _reader(root).search("ctx.txt", "HIT", context=2).result["matches"]
    assert [(m["line"], m["before"], m["after"]) for m in matches] == [
        (3, ["a", "b"], ["c", "HIT"]),
        (5, ["HIT", "c"], ["d"]),
    ]


def test_context_crosses_the_blocks_a_literal_search_skips(root: Path) -> None:
    def text(n: int) -> str:
        return f"line {n:07d} of " + ("needles" if n in (41_944, 41_945, 90_000) else "the file")

    # 25-byte lines: the first 1 MiB block ends inside line 41,944
    (root / "big.log").write_text("".join(text(n) + "\n" for n in range(1, 100_001)))
    reader = _reader(root)
    expected = [
        (n, [text(n - 2), text(n - 1)], [text(n + 1), text(n + 2)])
        for n in (41_944, 41_945, 90_000)
    ]
    for options in (
        {"pattern": "needle"},
        {"pattern": "NEEDLE", "ignore_case": True},
        {"pattern": "need+le", "regex": True},
    ):
        found = reader.search("big.log", context=2, timeout_s=60, **options).result
        assert [(m["line"], m["before"], m["after"]) for m in found["matches"]] == expected
        assert (found["more"], found["lines_searched"]) == (False, 100_000)


def test_search_shows_a_huge_line_around_its_match_and_marks_the_cuts(root: Path) -> None:
    (root / "wide.txt").write_text("x" * 5000 + "needle" + "y" * 5000 + "\n", encoding="utf-8")
    match = _reader(root).search("wide.txt", "needle").result["matches"][0]
    assert (match["column"], match["truncated"]) == (5001, True)
    assert match["text"].startswith(MARK)
    assert match["text"].endswith(MARK)
    assert "needle" in match["text"]
    assert len(match["text"]) <= 500 + 2 * len(MARK)


def test_literal_search_treats_regex_characters_literally(root: Path) -> None:
    (root / "lit.txt").write_text("axb\na.b\nA.B\n", encoding="utf-8")
    reader = _reader(root)
    assert [m["line"] for m in reader.search("lit.txt", "a.b").result["matches"]] == [2]
    found = reader.search("lit.txt", "a.b", ignore_case=True).result["matches"]
    assert [m["line"] for m in found] == [2, 3]
    found = reader.search("lit.txt", "a.b", regex=True).result["matches"]
    assert [m["line"] for m in found] == [1, 2]


def test_a_catastrophic_regex_times_out_and_the_next_search_still_works(root: Path) -> None:
    (root / "evil.txt").write_text("a" * 64 + "b\nfine\n", encoding="utf-8")
    reader = _reader(root)
    started = time.monotonic()
    failure = _failure(TIMEOUT, reader.search, "evil.txt", "(a|aa)+$", regex=True, timeout_s=0.5)
    assert time.monotonic() - started < 30  # a hang guard, not a speed test
    assert failure.message.startswith("searching evil.txt took longer than 0.5 s")
    assert reader.search("evil.txt", "fine").result["matches"][0]["line"] == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pattern": ""}, "pattern is empty"),
        ({"pattern": "(", "regex": True}, "invalid regex: missing )"),
        ({"pattern": "a", "context": 21}, "context must be between 0 and 20, not 21"),
        ({"pattern": "a", "max_matches": 0}, "max_matches must be between 1 and 1000, not 0"),
        ({"pattern": "a", "timeout_s": 0}, "timeout_s must be between 0.001 and 60, not 0"),
        ({"pattern": "a", "regex": "yes"}, "regex must be true or false"),
    ],
)
def test_bad_search_options_are_refused(root: Path, options: dict[str, Any], message: str) -> None:
    (root / "s.txt").write_text("a\n", encoding="utf-8")
    failure = _failure(INVALID_ARGUMENT, _reader(root).search, "s.txt", **options)
    assert failure.message.startswith(message)


# -- arguments, scope, changes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "options", "message"),
    [
        (
            "peek",
            {},
            "unknown mode 'peek': use one of scan_only, chunk, line_range, page, full_stream, search",
        ),
        ("chunk", {}, "mode chunk needs chunk_index"),
        ("line_range", {"start_line": 1}, "mode line_range needs end_line"),
        (
            "chunk",
            {"chunk_index": 0, "page": 2},
            "page does not apply to mode chunk (it takes chunk_index)",
        ),
        (
            "scan_only",
            {"pattern": "x"},
            "pattern does not apply to mode scan_only (it takes no options)",
        ),
        ("chunk", {"chunk_index": 5}, "chunk_index 5 is out of range: n.txt has 1 chunk (0 to 0)"),
        ("chunk", {"chunk_index": "0"}, "chunk_index must be an integer"),
        ("line_range", {"start_line": 0, "end_line": 1}, "start_line must be between 1 and"),
        ("line_range", {"start_line": 3, "end_line": 2}, "end_line must be between 3 and"),
        (
            "line_range",
            {"start_line": 9, "end_line": 9},
            "start_line 9 is past the end of n.txt: it has 2 lines",
        ),
        ("page", {"page": 3, "page_size": 1}, "page 3 is past the end of n.txt: it has 2 lines"),
        ("page", {"page": 1, "page_size": 0}, "page_size must be between 1 and 10000, not 0"),
    ],
)
def test_bad_arguments_say_what_is_wrong(
    root: Path, mode: str, options: dict[str, Any], message: str
) -> None:
    (root / "n.txt").write_text("one\ntwo\n", encoding="utf-8")
    failure = _failure(INVALID_ARGUMENT, _reader(root).read, "n.txt", mode, **options)
    assert failure.message.startswith(message)


def test_read_dispatches_every_mode(root: Path) -> None:
    (root / "n.txt").write_text("one\ntwo\n", encoding="utf-8")
    reader = _reader(root)
    calls: dict[str, dict[str, Any]] = {
        "scan_only": {},
        "chunk": {"chunk_index": 0, "start_line": None},  # None is "not given"
        "line_range": {"start_line": 2, "end_line": 2},
        "page": {"page": 1},
        "search": {"pattern": "two", "context": 1},
    }
    answers: dict[str, ReadAnswer] = {}
    for mode, options in calls.items():
        answer = reader.read("n.txt", mode, **options)
        assert isinstance(answer, ReadAnswer)
        assert (answer.mode, answer.provenance["read_mode"]) == (mode, mode)
        assert answer.to_json()["mode"] == mode
        answers[mode] = answer
    assert answers["line_range"].result["lines"] == ["two"]
    assert answers["page"].result["page_size"] == 100
    assert isinstance(reader.read("n.txt", "full_stream"), Stream)


def test_scope_refusals_and_missing_files_come_through_the_reader(root: Path) -> None:
    (root / ".env").write_text("TOKEN=secret\n", encoding="utf-8")
    reader = _reader(root)
    assert (
        _failure(failures.SCOPE_VIOLATION, reader.scan, ".env").details["reason"] == "denied_name"
    )
    assert (
        _failure(failures.SCOPE_VIOLATION, reader.chunk, "../outside", 0).details["reason"]
        == "parent_escape"
    )
    _failure(NOT_FOUND, reader.scan, "missing.txt")
    assert reader.bytes_read == 0


def test_a_stream_stops_with_a_conflict_when_the_file_changes(root: Path) -> None:
    path = root / "grow.txt"
    path.write_text("".join(f"{n}\n" for n in range(100)), encoding="utf-8")
    reader = _reader(root, chunk_bytes=64)
    chunks = iter(reader.stream("grow.txt"))
    next(chunks)
    with path.open("a") as out:
        out.write("appended\n")
    with pytest.raises(ToolFailure) as caught:
        list(chunks)
    assert caught.value.code == CONFLICT
    assert caught.value.message == "grow.txt changed while it was being read; try again"


def test_a_stream_of_a_file_replaced_before_it_starts_is_a_conflict(root: Path) -> None:
    path = root / "swap.txt"
    path.write_text("first\n", encoding="utf-8")
    stream = _reader(root).stream("swap.txt")
    path.write_text("second\n", encoding="utf-8")
    with pytest.raises(ToolFailure) as caught:
        next(iter(stream))
    assert caught.value.code == CONFLICT


# -- threads ----------------------------------------------------------------------------


def test_one_reader_serves_eight_threads_at_once(root: Path) -> None:
    _numbered(root, "a.log", 20_000)
    (root / "crlf.txt").write_bytes(b"".join(b"row %d\r\n" % n for n in range(5000)))
    (root / "wide.txt").write_bytes(encode("\n".join("😀" * n for n in range(300)), "utf-16-le"))
    reader = _reader(root, chunk_bytes=2048)

    def work(name: str) -> list[Any]:
        count = reader.scan(name).file["chunk_count"]
        return [
            reader.scan(name).file,
            [reader.chunk(name, i).result for i in range(0, count, 7)],
            reader.line_range(name, 100, 120).result,
            reader.page(name, 3, page_size=50).result,
            reader.search(name, "9", regex=True, max_matches=20, context=1).result,
            "".join(chunk["text"] for chunk in reader.stream(name)),
        ]

    names = ["a.log", "crlf.txt", "wide.txt"]
    expected = {name: work(name) for name in names}
    barrier = threading.Barrier(8)
    results: list[tuple[str, list[Any]]] = []
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            barrier.wait(timeout=10)
            for round_ in range(3):
                name = names[(number + round_) % len(names)]
                results.append((name, work(name)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert len(results) == 24
    for name, got in results:
        assert got == expected[name], name


# -- provenance and journal entries ------------------------------------------------------


def test_provenance_says_what_was_read_and_never_holds_the_content(root: Path) -> None:
    (root / "notes.md").write_text("the secret plan\nline two\n", encoding="utf-8")
    answer = _reader(root).line_range("notes.md", 2, 2)
    provenance = answer.provenance
    assert provenance.pop("read_at").endswith("Z")
    assert provenance == {
        "path": "notes.md",
        "absolute": str(root / "notes.md"),
        "requested": "notes.md",
        "sha256": hashlib.sha256(b"the secret plan\nline two\n").hexdigest(),
        "size": 25,
        "line_count": 2,
        "read_mode": "line_range",
        "range": {"line_start": 2, "line_end": 2, "truncated": False},
    }


def test_read_and_violation_entries_are_journaled_without_content(root: Path) -> None:
    (root / "notes.md").write_text("the secret plan\n", encoding="utf-8")
    reader = _reader(root)
    call = call_for(root, project="scribe")
    entries = [read_entry(call, reader.read("notes.md", "chunk", chunk_index=0).provenance)]
    try:
        reader.scan("../outside.txt")
    except ToolFailure as failure:
        entries.append(violation_entry(call, "read_file", failure))
    with JournalWriter(SqliteJournal.for_root(root), Mirrors(root)) as journal:
        journal.append(entries)
    with SqliteJournal.for_root(root) as store:
        read, refused = store.query(Query())
    assert (read.kind, read.actor, read.path) == (FILE_READ, "agent:test-agent", "notes.md")
    assert read.message == "read notes.md (chunk)"
    assert read.payload["execution_id"] == "exec-7"
    assert read.payload["session_id"] == "session-3"
    assert read.payload["mode"] == "project"  # the call's mode, not the read's
    assert read.payload["project"] == "scribe"
    assert read.payload["read_mode"] == "chunk"
    assert read.payload["range"]["byte_end"] == 16
    assert (refused.kind, refused.path) == (SCOPE_VIOLATION, "../outside.txt")
    assert refused.payload["reason"] == "parent_escape"
    assert refused.payload["tool"] == "read_file"
    logs = [p.read_text(encoding="utf-8") for p in (root / ".scribe" / "log").rglob("*.*")]
    assert len(logs) == 2
    for text in [*logs, json.dumps(read.payload), json.dumps(refused.payload)]:
        assert "secret plan" not in text


# -- the CLI's entry point -------------------------------------------------------------------


def test_read_for_cli_answers_with_provenance_and_keeps_its_index(root: Path) -> None:
    path = _numbered(root, "notes.md", 3)
    answers = list(read_for_cli(root, "notes.md", "line_range", start_line=2, end_line=3))
    assert len(answers) == 1
    assert answers[0]["lines"] == ["line 0000002 of the file", "line 0000003 of the file"]
    assert answers[0]["provenance"]["read_mode"] == "line_range"
    assert len(list((root / INDEX_DIR).glob("*.idx"))) == 1
    streamed = list(read_for_cli(root, "notes.md", "full_stream", chunk_bytes=32))
    assert streamed[0]["provenance"]["range"]["chunk_count"] == len(streamed) - 1
    assert "".join(chunk["text"] for chunk in streamed[1:]) == path.read_text()
    with pytest.raises(ToolFailure) as caught:
        list(read_for_cli(root, "notes.md", "scan_only", deny=["*.md"]))
    assert caught.value.details["reason"] == "denylist"


def test_the_public_surface_is_pinned() -> None:
    from scribe.mcp import filesearch, reader

    assert sorted(reader.__all__) == [
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
    assert reader.MODES == ("scan_only", "chunk", "line_range", "page", "full_stream", "search")
    assert sorted(filesearch.__all__) == ["MARK", "Search"]

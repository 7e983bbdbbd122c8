"""Reading parts of a scanned file back: one chunk, a run of lines, or all of its
text as line pieces, each from where the scan's chunk index says it starts.

Lines are yielded without their terminators (LF, CRLF or a lone CR), and a line
longer than the piece size comes in pieces, so memory stays bounded however long
a line is. Bytes that no longer decode, or a read that comes up short, mean the
file changed since its scan: CONFLICT, never a half answer.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from scribe.mcp.failures import CONFLICT, ToolFailure
from scribe.mcp.paths import Resolved
from scribe.mcp.scan import BLOCK, FileFacts

__all__ = ["Opened", "changed", "line_batches", "line_pieces", "read_chunk", "read_lines"]

_BREAK = re.compile(r"\r\n|\r|\n")
_FIRST_BLOCK = 64 * 1024  # a few lines rarely need more; later reads double up to BLOCK


def changed(given: str) -> ToolFailure:
    return ToolFailure(CONFLICT, f"{given} changed while it was being read; try again", path=given)


@dataclass(frozen=True)
class Opened:
    """An open, scanned file; ``counted(n)`` is told of every byte read."""

    given: str
    resolved: Resolved
    fd: int
    identity: tuple[int, ...]
    facts: FileFacts
    counted: Callable[[int], None]

    def pread(self, size: int, offset: int) -> bytes:
        data = os.pread(self.fd, size, offset)
        self.counted(len(data))
        return data


def read_chunk(f: Opened, index: int) -> tuple[dict[str, Any], bytes]:
    """Chunk ``index``'s answer and its raw bytes (``line_start`` and ``line_end``
    are None for the one empty chunk of an empty file)."""
    facts = f.facts
    start, end = facts.chunk_span(index)
    raw = f.pread(end - start, start)
    if len(raw) != end - start:
        raise changed(f.given)
    layout = facts.layout
    try:
        text = raw[len(layout.bom) if start == 0 else 0 :].decode(layout.codec)
    except UnicodeDecodeError:
        raise changed(f.given) from None
    first: int | None = None
    last: int | None = None
    ends_line = text.endswith(("\n", "\r"))
    if text:
        first = facts.lines[index]
        last = first + text.count("\n") + text.count("\r") - text.count("\r\n") - ends_line
    more = index + 1 < facts.chunk_count
    body = {
        "chunk_index": index,
        "chunk_count": facts.chunk_count,
        "byte_start": start,
        "byte_end": end,
        "line_start": first,
        "line_end": last,
        "ends_mid_line": bool(text) and not ends_line and more,
        "text": text,
        "next_cursor": index + 1 if more else None,
    }
    return body, raw


def read_lines(f: Opened, first: int, last: int, budget: int) -> dict[str, Any]:
    """Lines ``first`` to ``last`` (both exist), in at most ``budget`` characters.

    Past the budget the answer stops: ``truncated`` is set, and
    ``line_end_complete`` says whether the last line returned is whole.
    """
    offset, line = f.facts.line_start(first)
    lines: list[str] = []
    partial: list[str] = []
    complete, truncated = True, False
    for piece, ends in line_pieces(f, offset, budget, _FIRST_BLOCK):
        if line >= first:
            if len(piece) > budget:
                truncated = True
                if partial or budget:
                    lines.append("".join([*partial, piece[:budget]]))
                    complete = False
                break
            budget -= len(piece)
            partial.append(piece)
            if ends:
                lines.append("".join(partial))
                partial = []
                if line == last:
                    break
        line += ends
    return {
        "line_start": first,
        "line_end": first + len(lines) - 1,
        "line_count": f.facts.line_count,
        "lines": lines,
        "truncated": truncated,
        "line_end_complete": complete,
    }


def line_pieces(
    f: Opened, offset: int, piece: int, block: int = BLOCK
) -> Iterator[tuple[str, bool]]:
    """The text from byte ``offset`` (a chunk start) as ``(text, ends_line)``: each
    line once, and a line longer than ``piece`` characters in pieces of that size."""
    for texts, ends in line_batches(f, offset, piece, block):
        for text in texts:
            yield text, ends


def line_batches(
    f: Opened, offset: int, piece: int, block: int = BLOCK
) -> Iterator[tuple[list[str], bool]]:
    """``line_pieces`` a block at a time: ``(texts, ends_line)``, where every text
    of a batch ends its line or none does. Reads ``block`` bytes first, then twice
    as many each time up to ``BLOCK``."""
    layout, size = f.facts.layout, f.facts.size
    decoder = codecs.getincrementaldecoder(layout.codec)()
    pos = offset + (len(layout.bom) if offset == 0 else 0)
    pending = ""
    while True:
        data = f.pread(min(block, size - pos), pos) if pos < size else b""
        pos += len(data)
        block = min(block * 2, BLOCK)
        final = pos >= size or not data
        try:
            text = pending + decoder.decode(data, final)
        except UnicodeDecodeError:
            raise changed(f.given) from None
        keep_cr = not final and text.endswith("\r")  # it may be half of a CRLF
        parts = _BREAK.split(text[:-1] if keep_cr else text)
        pending = parts.pop() + ("\r" if keep_cr else "")
        if parts:
            yield parts, True
        if final:
            if pending:
                yield [pending], True
            return
        if len(pending) > piece:  # never the kept CR: it is the last character
            cut = len(pending) - len(pending) % piece
            if cut == len(pending):
                cut -= piece
            yield [pending[i : i + piece] for i in range(0, cut, piece)], False
            pending = pending[cut:]

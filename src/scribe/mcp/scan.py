"""One pass over a file, in constant memory: what it is, and where its chunks start.

The pass reads 1 MiB blocks and leaves the per-byte work to C (``hashlib``,
``bytes.count``, ``bytes.rfind``), so it runs at about the speed of hashing. While
it hashes it also cuts the file into chunks, so the chunk index comes for free and
chunk N is later one ``pread`` away instead of a re-read from the start.

A chunk is whole lines up to ``chunk_bytes``. A line longer than that is cut at the
cap, moved back so that no UTF-8 character, UTF-16 surrogate pair or CRLF is split.
Chunks depend only on the bytes and the cap, so every run cuts them the same way.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from array import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BLOCK",
    "LAYOUTS",
    "MAX_CHUNK_BYTES",
    "MIN_CHUNK_BYTES",
    "FileFacts",
    "Layout",
    "layout_of",
    "scan",
]

BLOCK = 1 << 20
#: Small enough for tests to cut lines, large enough that backing off a cut (at most
#: three bytes of a UTF-8 character, or a CR) always leaves a non-empty chunk.
MIN_CHUNK_BYTES = 16
MAX_CHUNK_BYTES = 16 << 20

_FORMAT = 1  # of FileFacts.to_bytes


@dataclass(frozen=True)
class Layout:
    """How a file's text is laid out: its codec, BOM and code unit."""

    encoding: str  # reported: utf-8, utf-8-sig, utf-16-le, utf-16-be
    codec: str  # what decodes the bytes after the BOM
    bom: bytes
    width: int  # bytes per code unit
    lf: bytes
    cr: bytes


UTF8 = Layout("utf-8", "utf-8", b"", 1, b"\n", b"\r")
UTF8_SIG = Layout("utf-8-sig", "utf-8", codecs.BOM_UTF8, 1, b"\n", b"\r")
UTF16_LE = Layout("utf-16-le", "utf-16-le", codecs.BOM_UTF16_LE, 2, b"\n\0", b"\r\0")
UTF16_BE = Layout("utf-16-be", "utf-16-be", codecs.BOM_UTF16_BE, 2, b"\0\n", b"\0\r")
LAYOUTS = {layout.encoding: layout for layout in (UTF8, UTF8_SIG, UTF16_LE, UTF16_BE)}


def layout_of(head: bytes) -> tuple[Layout, str | None]:
    """The layout the first bytes announce, and why it is not text if it cannot be."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return UTF8, "UTF-32 text is not supported"
    for layout in (UTF8_SIG, UTF16_LE, UTF16_BE):
        if head.startswith(layout.bom):
            return layout, None
    return UTF8, None


@dataclass(frozen=True, eq=False)
class FileFacts:
    """What one scan learned about a file's content (nothing about its path).

    ``starts[k]`` is the byte offset of chunk k and ``lines[k]`` the line its first
    byte is on (1-based). ``not_text`` says why the file is binary, if it is.
    """

    size: int
    sha256: str
    line_count: int
    newline: str  # LF, CRLF, CR, mixed or none
    encoding: str  # a LAYOUTS key, or "binary"
    not_text: str | None
    chunk_bytes: int
    starts: array[int]
    lines: array[int]

    @property
    def chunk_count(self) -> int:
        return len(self.starts)

    @property
    def layout(self) -> Layout:
        return LAYOUTS.get(self.encoding, UTF8)

    def chunk_span(self, index: int) -> tuple[int, int]:
        """Chunk ``index``'s bytes, ``[start, end)``."""
        end = self.starts[index + 1] if index + 1 < len(self.starts) else self.size
        return self.starts[index], end

    def line_start(self, line: int) -> tuple[int, int]:
        """Where to start reading to meet ``line``: a chunk's offset and the line
        its first byte is on. Line ``line`` starts in that chunk."""
        k = bisect_left(self.lines, line)
        if k < len(self.lines) and self.lines[k] == line:
            # A chunk starts mid-line only when the chunk before it lies wholly
            # within that line; so the first chunk on a line starts where it does.
            return self.starts[k], line
        return self.starts[k - 1], self.lines[k - 1]

    def summary(self) -> dict[str, Any]:
        """The JSON facts an answer reports about the file."""
        return {
            "size": self.size,
            "line_count": self.line_count,
            "sha256": self.sha256,
            "newline": self.newline,
            "encoding": self.encoding,
            **({"not_text": self.not_text} if self.not_text else {}),
            "chunk_bytes": self.chunk_bytes,
            "chunk_count": self.chunk_count,
        }

    def to_bytes(self, key: str) -> bytes:
        """A header line (JSON) and both arrays, for ``from_bytes``."""
        header = {**self.summary(), "format": _FORMAT, "key": key}
        head = json.dumps(header, sort_keys=True).encode() + b"\n"
        return head + self.starts.tobytes() + self.lines.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, key: str) -> FileFacts | None:
        """The facts ``to_bytes(key)`` wrote; None for anything else."""
        head, _, rest = data.partition(b"\n")
        try:
            header = json.loads(head)
            count = int(header["chunk_count"])
            if header.get("format") != _FORMAT or header.get("key") != key:
                return None
            starts, lines = array("q"), array("q")
            starts.frombytes(rest[: 8 * count])
            lines.frombytes(rest[8 * count :])
            if len(starts) != count or len(lines) != count:
                return None
            return cls(
                size=int(header["size"]),
                sha256=str(header["sha256"]),
                line_count=int(header["line_count"]),
                newline=str(header["newline"]),
                encoding=str(header["encoding"]),
                not_text=header.get("not_text"),
                chunk_bytes=int(header["chunk_bytes"]),
                starts=starts,
                lines=lines,
            )
        except (ValueError, KeyError, TypeError):
            return None


def scan(fd: int, size: int, chunk_bytes: int, on_read: Callable[[int], None]) -> FileFacts:
    """Scan the first ``size`` bytes of ``fd``; ``on_read(n)`` counts bytes read."""
    hasher = hashlib.sha256()
    block = os.pread(fd, min(BLOCK, size), 0)
    layout, not_text = layout_of(block)
    chunker = _Chunker(layout, chunk_bytes)
    utf8 = codecs.getincrementaldecoder("utf-8")() if layout.width == 1 else None
    pos = 0
    while True:
        on_read(len(block))
        final = not block or pos + len(block) >= size  # empty: it shrank, fstat will tell
        hasher.update(block)
        if utf8 is not None and not_text is None:
            skip = len(layout.bom) if pos == 0 else 0
            not_text = _check_utf8(utf8, block[skip:], pos + skip, final)
        chunker.feed(block, final)
        pos += len(block)
        if final:
            break
        block = os.pread(fd, min(BLOCK, size - pos), pos)
    not_text = not_text or chunker.not_text
    return FileFacts(
        size=pos,
        sha256=hasher.hexdigest(),
        line_count=chunker.line_count(pos),
        newline=chunker.newline(),
        encoding="binary" if not_text else layout.encoding,
        not_text=not_text,
        chunk_bytes=chunker.cap,
        starts=chunker.starts,
        lines=chunker.lines,
    )


def _check_utf8(
    decoder: codecs.IncrementalDecoder, data: bytes, pos: int, final: bool
) -> str | None:
    """Why ``data`` (at ``pos``) makes the file binary, if it does."""
    nul = data.find(b"\0")
    if nul >= 0:
        return f"NUL byte at offset {pos + nul}"
    pending = len(decoder.getstate()[0])
    if pending or not data.isascii():  # ASCII needs no decoding to be valid
        try:
            decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            return f"not valid UTF-8 (byte {pos - pending + exc.start})"
    return None


class _Chunker:
    """Cuts the stream it is fed into chunks and counts its line terminators."""

    def __init__(self, layout: Layout, chunk_bytes: int) -> None:
        self.layout = layout
        self.cap = chunk_bytes - chunk_bytes % layout.width
        self.starts: array[int] = array("q")
        self.lines: array[int] = array("q")
        self.not_text: str | None = None
        # Fed blocks are copied in after what is left of the last one: one buffer,
        # reused, because a fresh 1 MiB allocation per block costs more than the copy.
        self._buf = bytearray(self.cap + BLOCK + layout.width)
        self._kept = 0  # bytes of the last block not yet in a chunk, at _buf[0:_kept]
        self._base = 0  # file offset of _buf[0], which is where the current chunk starts
        self._line = 1
        self._lf = self._cr = self._crlf = 0
        self._ends_with_terminator = False

    def feed(self, block: bytes, final: bool) -> None:
        buf, w, i = self._buf, self.layout.width, 0
        n = self._kept + len(block)
        if n > len(buf):
            buf.extend(bytes(n - len(buf)))
        buf[self._kept : n] = block
        has_cr = buf.find(self.layout.cr, 0, n) != -1
        while True:
            window_end = i + self.cap
            if window_end >= n:
                if final and (i < n or not self.starts):
                    self._emit(buf, i, n, has_cr)
                    i = n
                break
            if not final and window_end + w > n:  # the unit after the window decides
                break
            end = self._boundary(buf, i, window_end, has_cr)
            if end > 0:
                self._emit(buf, i, end, has_cr)
            else:  # cut inside a line: no terminator in it, nothing to count
                end = -end
                self.starts.append(self._base + i)
                self.lines.append(self._line)
                self._ends_with_terminator = False
            i = end
        buf[0 : n - i] = buf[i:n]
        self._kept = n - i
        self._base += i

    def line_count(self, size: int) -> int:
        terminators = self._line - 1
        has_tail = size > len(self.layout.bom) and not self._ends_with_terminator
        return terminators + has_tail

    def newline(self) -> str:
        kinds = [
            name
            for name, count in (("LF", self._lf), ("CRLF", self._crlf), ("CR", self._cr))
            if count
        ]
        return kinds[0] if len(kinds) == 1 else ("mixed" if kinds else "none")

    def _rfind(self, buf: bytearray, unit: bytes, start: int, end: int) -> int:
        """The last ``unit`` in ``buf[start:end]`` that sits on a code unit boundary."""
        found = buf.rfind(unit, start, end)
        while found != -1 and (found - start) % self.layout.width:
            found = buf.rfind(unit, start, found + 1)
        return found

    def _boundary(self, buf: bytearray, start: int, window_end: int, has_cr: bool) -> int:
        """Where the chunk starting at ``start`` ends (the window is ``[start, window_end)``):
        after its last line terminator, or negated where a line too long is cut."""
        lf, cr, w = self.layout.lf, self.layout.cr, self.layout.width
        last = self._rfind(buf, lf, start, window_end)
        if has_cr:
            last_cr = self._rfind(buf, cr, start, window_end)
            if (
                last_cr > last
                and last_cr + w == window_end
                and buf[window_end : window_end + w] == lf
            ):
                last_cr = self._rfind(buf, cr, start, last_cr)  # that CRLF ends past the window
            last = max(last, last_cr)
        if last >= start:
            return last + w
        return -self._cut(buf, window_end, has_cr)

    def _cut(self, buf: bytearray, cut: int, has_cr: bool) -> int:
        """``cut`` moved back so that it splits no character and no CRLF."""
        lf, cr, w = self.layout.lf, self.layout.cr, self.layout.width
        if has_cr and buf[cut - w : cut] == cr and buf[cut : cut + w] == lf:
            return cut - w
        if w == 1:
            back = cut
            while back > cut - 3 and buf[back] & 0xC0 == 0x80:
                back -= 1
            return back if buf[back] & 0xC0 != 0x80 else cut
        unit = buf[cut : cut + 2]
        high = unit[-1] if self.layout is UTF16_LE else unit[0]
        return cut - 2 if len(unit) == 2 and 0xDC <= high <= 0xDF else cut  # keep pairs whole

    def _emit(self, buf: bytearray, start: int, end: int, has_cr: bool) -> None:
        self.starts.append(self._base + start)
        self.lines.append(self._line)
        lf, cr, crlf = self._count(buf, start, end, has_cr)
        self._lf += lf - crlf
        self._cr += cr - crlf
        self._crlf += crlf
        self._line += lf + cr - crlf
        if end > start:
            self._ends_with_terminator = buf[end - self.layout.width : end] in (
                self.layout.lf,
                self.layout.cr,
            )

    def _count(self, buf: bytearray, start: int, end: int, has_cr: bool) -> tuple[int, int, int]:
        """LF, CR and CRLF in ``buf[start:end]``."""
        if self.layout.width == 1:
            cr = buf.count(b"\r", start, end) if has_cr else 0
            crlf = buf.count(b"\r\n", start, end) if cr else 0
            return buf.count(b"\n", start, end), cr, crlf
        if self._base + start == 0:
            start += len(self.layout.bom)
        if self.not_text is None:
            try:
                text = buf[start:end].decode(self.layout.codec)
                return text.count("\n"), text.count("\r"), text.count("\r\n")
            except UnicodeDecodeError as exc:
                at = self._base + start + exc.start
                self.not_text = f"not valid {self.layout.encoding} (byte {at})"
        return buf.count(self.layout.lf, start, end), buf.count(self.layout.cr, start, end), 0

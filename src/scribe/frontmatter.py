"""Frontmatter edits that change only the bytes they must.

Nothing is re-serialised. The YAML block is composed once (libyaml, YAML 1.2 core
resolution) to learn where each top-level key and value sits, and an edit splices
new text into exactly that span. Key order, comments, quoting, blank lines, line
endings and every untouched value therefore stay byte for byte as they were.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from scribe.errors import ScribeError
from scribe.yaml_scalars import Loader, render_key, render_value, same

_OPEN = re.compile(r"---[ \t]*(\r?\n)")
_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.MULTILINE)


class FrontmatterError(ScribeError):
    """The frontmatter block exists but cannot be edited safely."""


@dataclass(frozen=True)
class Block:
    """Where the frontmatter sits in a document (character offsets)."""

    yaml_start: int  # first character of the YAML text
    yaml_end: int  # first character of the closing line
    body_start: int  # first character after the closing line
    newline: str


def find_block(text: str) -> Block | None:
    """Locate the frontmatter block; ``None`` when the document has none.

    A document that opens with ``---`` but never closes it is an error rather than
    "no frontmatter": adding a block in front of it would create a second one.
    """
    opening = _OPEN.match(text)
    if opening is None:
        return None
    closing = _CLOSE.search(text, opening.end())
    if closing is None:
        raise FrontmatterError("frontmatter opened with '---' is never closed")
    return Block(opening.end(), closing.start(), closing.end(), opening.group(1))


@dataclass(frozen=True)
class _Entry:
    key: str
    key_start: int
    key_end: int
    #: Where the value's own text sits (anchor and tag included). Taken from the
    #: event stream, not from composed nodes: an alias's node is the anchored one,
    #: elsewhere in the block, and a block collection's node ends at the next key,
    #: past any comment or blank line in between.
    start: int
    end: int  # after the value's last character; trailing blank lines excluded
    quote: str | None  # "'" or '"' for a quoted scalar
    inline: bool  # a one-line scalar, alias or [flow] collection: replaced in place


def _value_span(first: yaml.Event, events: Iterator[yaml.Event]) -> tuple[int, int]:
    """Consume the events of one node starting with ``first``; return its text span."""
    start = end = _index(first.start_mark)
    flow: list[bool] = []
    event = first
    while True:
        if isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
            end = _index(event.end_mark)
        elif isinstance(event, yaml.CollectionStartEvent):
            flow.append(bool(event.flow_style))
            if event.flow_style:
                end = _index(event.end_mark)
        elif isinstance(event, yaml.CollectionEndEvent) and flow.pop():
            end = _index(event.end_mark)  # a block end's mark is where the next token starts
        if not flow:
            return start, end
        event = next(events)


def _index(mark: Any) -> int:
    return int(mark.index)  # libyaml marks every event


def _entries(source: str, offset: int) -> Iterator[_Entry]:
    """The top-level entries of the mapping in ``source`` (already known to parse)."""
    events = iter(yaml.parse(source, Loader=Loader))
    if not any(isinstance(event, yaml.MappingStartEvent) for event in events):
        return
    for key in events:
        if isinstance(key, yaml.MappingEndEvent):
            return
        key_span = _value_span(key, events)
        value = next(events)
        start, end = _value_span(value, events)
        end = start + len(source[start:end].rstrip(" \t\r\n"))  # a block scalar takes blank lines
        if not isinstance(key, yaml.ScalarEvent):
            continue
        quote = None
        if isinstance(value, yaml.ScalarEvent) and value.style in ("'", '"'):
            quote = value.style
        inline = (
            isinstance(value, yaml.ScalarEvent | yaml.AliasEvent)
            or (isinstance(value, yaml.CollectionStartEvent) and bool(value.flow_style))
        ) and not any(ch in source[start:end] for ch in "\r\n")
        yield _Entry(
            str(key.value),
            offset + key_span[0],
            offset + key_span[1],
            offset + start,
            offset + end,
            quote,
            inline,
        )


class Frontmatter:
    """A parsed view of one document's frontmatter; edits return new document text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.block = find_block(text)
        self.data: dict[str, Any] = {}
        self._spans: dict[str, _Entry] | None = None
        self._indent = ""
        if self.block is not None:
            self._parse(self.block)

    def _parse(self, block: Block) -> None:
        source = self.text[block.yaml_start : block.yaml_end]
        loader = Loader(source)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (frontmatter line {mark.line + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise FrontmatterError(f"invalid YAML in frontmatter{where}: {problem}") from None
        except ValueError as exc:  # a value its tag cannot hold: ``!!int x``, a 13th month
            raise FrontmatterError(f"invalid value in frontmatter: {exc}") from None
        finally:
            loader.dispose()
        if node is None:
            return
        if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
            raise FrontmatterError("frontmatter is not a mapping of fields")
        if node.flow_style:
            raise FrontmatterError("frontmatter written as a {flow: mapping} cannot be edited")
        self.data = {str(k): v for k, v in data.items()}
        first = node.value[0][0] if node.value else None
        if first is not None:
            self._indent = " " * first.start_mark.column

    @property
    def _entries(self) -> dict[str, _Entry]:
        """Where each top-level entry sits; found on the first edit, since most
        parses (matching, checking an edit's result) only need the values."""
        if self._spans is None:
            block = self.block
            source = self.text[block.yaml_start : block.yaml_end] if block else ""
            offset = block.yaml_start if block else 0
            self._spans = {e.key: e for e in _entries(source, offset)} if self.data else {}
        return self._spans

    @property
    def body_start(self) -> int:
        return self.block.body_start if self.block else 0

    @property
    def body(self) -> str:
        return self.text[self.body_start :]

    def __contains__(self, key: str) -> bool:
        return key in self.data  # also a field a merge key (``<<``) brings in

    # -- edits -------------------------------------------------------------------

    def set(self, key: str, value: Any) -> str:
        """Document text with ``key`` set to ``value`` (added at the end if new)."""
        others = {k: v for k, v in self.data.items() if k != key}
        entry = self._entries.get(key)
        if entry is None:
            return self._checked(self._add(key, value), "set", key, others)
        start, end = entry.start, entry.end
        if start == end:  # empty value: libyaml places it right after the colon
            text = self.text[:start] + " " + render_value(value) + self.text[start:]
        elif entry.inline:
            # One line: replace exactly the value, keeping a trailing comment.
            text = self.text[:start] + render_value(value, quote=entry.quote) + self.text[end:]
        else:
            # Block-style or multi-line value: rewrite from the colon to its last line's end.
            colon = self.text.index(":", entry.key_end) + 1
            rest = self.text[_line_end(self.text, end) :]
            text = self.text[:colon] + " " + render_value(value) + rest
        return self._checked(text, "set", key, others)

    def remove(self, *keys: str) -> str:
        """Document text without the given keys (missing keys are ignored)."""
        spans = {self._line_span(self._entries[k]) for k in keys if k in self._entries}
        text = self.text
        for start, end in sorted(spans, reverse=True):
            text = text[:start] + text[end:]
        present = [k for k in keys if k in self.data]
        if not present:
            return text
        others = {k: v for k, v in self.data.items() if k not in keys}
        return self._checked(text, "remove", present[0], others)

    def rename(self, old: str, new: str) -> str:
        """Document text with key ``old`` renamed to ``new``, its value untouched."""
        entry = self._entries.get(old)
        if entry is None or old == new:
            return self.text
        if new in self.data:
            raise FrontmatterError(f"cannot rename {old!r} to {new!r}: {new!r} already exists")
        text = self.text[: entry.key_start] + render_key(new) + self.text[entry.key_end :]
        expect = {(new if k == old else k): v for k, v in self.data.items()}
        return self._checked(text, "rename", old, expect)

    def ensure(self, defaults: Mapping[str, Any]) -> str:
        """Document text with a frontmatter block holding every key of ``defaults``."""
        if self.block is None:
            newline = "\r\n" if "\r\n" in self.text else "\n"
            lines = "".join(
                f"{render_key(k)}: {render_value(v)}{newline}" for k, v in defaults.items()
            )
            return f"---{newline}{lines}---{newline}{self.text}"
        text = self.text
        for key, value in defaults.items():
            if key not in self.data:
                text = parse(text).set(key, value)
        return text

    # -- internals ---------------------------------------------------------------

    def _checked(self, text: str, action: str, key: str, others: Mapping[str, Any]) -> str:
        """``text``, once re-parsing it shows every field but ``key`` just as ``others``.

        Anchors, aliases, merge keys and duplicate keys tie fields together, so an
        edit of one could silently change (or break) another: refuse those instead.
        """
        try:
            after = parse(text).data
        except FrontmatterError as exc:
            raise FrontmatterError(
                f"cannot {action} {key!r}: the result would not parse ({exc})"
            ) from None
        if action == "set":
            if key not in after:
                raise FrontmatterError(f"cannot set {key!r}: it would not read back")
            after = {k: v for k, v in after.items() if k != key}
        if not same(after, others):
            raise FrontmatterError(
                f"cannot {action} {key!r} on its own: anchors, aliases, merge keys or "
                "duplicate keys tie it to other fields"
            )
        return text

    def _add(self, key: str, value: Any) -> str:
        if self.block is None:
            return self.ensure({key: value})
        nl = self.block.newline
        line = f"{self._indent}{render_key(key)}: {render_value(value)}{nl}"
        at = self.block.yaml_end
        return self.text[:at] + line + self.text[at:]

    def _line_span(self, entry: _Entry) -> tuple[int, int]:
        start = self.text.rfind("\n", 0, entry.key_start) + 1
        newline = self.text.find("\n", max(entry.end, entry.key_end))
        return start, (len(self.text) if newline < 0 else newline + 1)


def _line_end(text: str, at: int) -> int:
    """Where the line holding ``at`` ends (before its newline)."""
    newline = text.find("\n", at)
    if newline < 0:
        return len(text)
    return newline - 1 if newline > at and text[newline - 1] == "\r" else newline


def parse(text: str) -> Frontmatter:
    """Parse a document's frontmatter (raises ``FrontmatterError`` if it is unusable).

    One rewrite looks at the same few texts many times (matching, planning, the
    edit's own check, the fixpoint re-run, the stamp mask), so recent parses of
    ordinary-sized documents are kept.
    """
    if len(text) > _CACHED_TEXT_LIMIT:
        return Frontmatter(text)
    return _parse_cached(text)


_CACHED_TEXT_LIMIT = 256 * 1024


@functools.lru_cache(maxsize=64)
def _parse_cached(text: str) -> Frontmatter:
    return Frontmatter(text)


def mask(text: str, keys: Iterable[str]) -> str:
    """The document with the top-level lines of ``keys`` cut out of its frontmatter.

    For hashing only (did anything but these fields change?), so it works on lines,
    without parsing: a stamp is one plain line, which is all it must recognise.
    """
    names = "|".join(re.escape(k) for k in keys)
    if not names:
        return text
    try:
        block = find_block(text)
    except FrontmatterError:
        return text
    if block is None:
        return text
    pattern = re.compile(rf"^(?:{names})[ \t]*:[^\n]*(?:\n|\Z)", re.MULTILINE)
    head = pattern.sub("", text[block.yaml_start : block.yaml_end])
    return text[: block.yaml_start] + head + text[block.yaml_end :]

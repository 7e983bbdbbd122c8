"""Frontmatter edits that change only the bytes they must.

Nothing is re-serialised. The YAML block is composed once (libyaml, YAML 1.2 core
resolution) to learn where each top-level key and value sits, and an edit splices
new text into exactly that span. Key order, comments, quoting, blank lines, line
endings and every untouched value therefore stay byte for byte as they were.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import yaml

from scribe.errors import ScribeError

_OPEN = re.compile(r"---[ \t]*(\r?\n)")
_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.MULTILINE)
_INLINE_STYLES = (None, "", "'", '"')  # libyaml reports plain style as ""


class FrontmatterError(ScribeError):
    """The frontmatter block exists but cannot be edited safely."""


class _Loader(yaml.CSafeLoader):
    """libyaml with YAML 1.2 core resolution: ``no``/``on`` stay strings, ``1:20`` too."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


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
    value: yaml.Node


class Frontmatter:
    """A parsed view of one document's frontmatter; edits return new document text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.block = find_block(text)
        self.data: dict[str, Any] = {}
        self._entries: dict[str, _Entry] = {}
        self._indent = ""
        if self.block is not None:
            self._parse(self.block)

    def _parse(self, block: Block) -> None:
        source = self.text[block.yaml_start : block.yaml_end]
        loader = _Loader(source)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (frontmatter line {mark.line + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise FrontmatterError(f"invalid YAML in frontmatter{where}: {problem}") from None
        finally:
            loader.dispose()
        if node is None:
            return
        if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
            raise FrontmatterError("frontmatter is not a mapping of fields")
        if node.flow_style:
            raise FrontmatterError("frontmatter written as a {flow: mapping} cannot be edited")
        offset = block.yaml_start
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                self._entries[str(key_node.value)] = _Entry(
                    str(key_node.value),
                    offset + key_node.start_mark.index,
                    offset + key_node.end_mark.index,
                    value_node,
                )
        self.data = {str(k): v for k, v in data.items()}
        first = node.value[0][0] if node.value else None
        if first is not None:
            self._indent = " " * first.start_mark.column

    @property
    def body_start(self) -> int:
        return self.block.body_start if self.block else 0

    @property
    def body(self) -> str:
        return self.text[self.body_start :]

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    # -- edits -------------------------------------------------------------------

    def set(self, key: str, value: Any) -> str:
        """Document text with ``key`` set to ``value`` (added at the end if new)."""
        entry = self._entries.get(key)
        if entry is None:
            return self._add(key, value)
        node = entry.value
        start = node.start_mark.index + self._offset
        end = node.end_mark.index + self._offset
        if isinstance(node, yaml.ScalarNode) and node.style in _INLINE_STYLES and start < end:
            if "\n" not in self.text[start:end] and "\r" not in self.text[start:end]:
                rendered = render_value(value, quote=node.style or None)
                return self.text[:start] + rendered + self.text[end:]
        # Empty, block-style or multi-line value: rewrite everything after the colon.
        colon = self.text.index(":", entry.key_end) + 1
        if start == end:
            return self.text[:colon] + " " + render_value(value) + self.text[colon:]
        segment = self.text[colon:end]
        kept_tail = len(segment) - len(segment.rstrip("\r\n"))
        return self.text[:colon] + " " + render_value(value) + self.text[end - kept_tail :]

    def remove(self, *keys: str) -> str:
        """Document text without the given keys (missing keys are ignored)."""
        spans = sorted((self._line_span(self._entries[k]) for k in keys if k in self._entries), reverse=True)
        text = self.text
        for start, end in spans:
            text = text[:start] + text[end:]
        return text

    def rename(self, old: str, new: str) -> str:
        """Document text with key ``old`` renamed to ``new``, its value untouched."""
        entry = self._entries.get(old)
        if entry is None or old == new:
            return self.text
        if new in self._entries:
            raise FrontmatterError(f"cannot rename {old!r} to {new!r}: {new!r} already exists")
        return self.text[: entry.key_start] + render_value(new) + self.text[entry.key_end :]

    def ensure(self, defaults: Mapping[str, Any]) -> str:
        """Document text with a frontmatter block holding every key of ``defaults``."""
        if self.block is None:
            newline = "\r\n" if "\r\n" in self.text else "\n"
            lines = "".join(f"{render_value(k)}: {render_value(v)}{newline}" for k, v in defaults.items())
            return f"---{newline}{lines}---{newline}{self.text}"
        text = self.text
        for key, value in defaults.items():
            if key not in self._entries:
                text = Frontmatter(text).set(key, value)
        return text

    # -- internals ---------------------------------------------------------------

    @property
    def _offset(self) -> int:
        return self.block.yaml_start if self.block else 0

    def _add(self, key: str, value: Any) -> str:
        if self.block is None:
            return self.ensure({key: value})
        nl = self.block.newline
        line = f"{self._indent}{render_value(key)}: {render_value(value)}{nl}"
        at = self.block.yaml_end
        return self.text[:at] + line + self.text[at:]

    def _line_span(self, entry: _Entry) -> tuple[int, int]:
        start = self.text.rfind("\n", 0, entry.key_start) + 1
        end = entry.value.end_mark.index + self._offset
        if end > start and self.text[end - 1] == "\n":
            return start, end
        newline = self.text.find("\n", end)
        return start, (len(self.text) if newline < 0 else newline + 1)


def parse(text: str) -> Frontmatter:
    """Parse a document's frontmatter (raises ``FrontmatterError`` if it is unusable)."""
    return Frontmatter(text)


def render_value(value: Any, *, quote: str | None = None, flow: bool = False) -> str:
    """One-line YAML for ``value``, written the way a person would type it.

    A string stays plain when YAML reads it back as the same text, otherwise it is
    quoted (in ``quote`` style when the value it replaces was quoted).
    """
    if isinstance(value, str):
        if quote == '"' or _needs_double_quotes(value):
            return json.dumps(value, ensure_ascii=False)
        if quote == "'" or not _is_plain_safe(value, flow=flow):
            return "'" + value.replace("'", "''") + "'"
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        items = (f"{render_value(k, flow=True)}: {render_value(v, flow=True)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, Iterable):
        return "[" + ", ".join(render_value(v, flow=True) for v in value) + "]"
    return render_value(str(value))


def _needs_double_quotes(value: str) -> bool:
    return any(ch < " " or ch == "\x7f" for ch in value) or "\u2028" in value or "\u2029" in value


_FLOW_UNSAFE = re.compile(r"[\[\]{},]")


def _is_plain_safe(value: str, *, flow: bool) -> bool:
    """True when ``value`` written plain parses back as a plain scalar of that exact text."""
    if not value or value != value.strip() or (flow and _FLOW_UNSAFE.search(value)):
        return False
    try:
        node = yaml.compose(f"k: {value}\n", Loader=_Loader)
    except yaml.YAMLError:
        return False
    if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
        return False
    scalar = node.value[0][1]
    return isinstance(scalar, yaml.ScalarNode) and not scalar.style and scalar.value == value


def without(text: str, keys: Iterable[str]) -> str:
    """The document with ``keys`` removed from its frontmatter (best effort, for hashing)."""
    try:
        return Frontmatter(text).remove(*keys)
    except FrontmatterError:
        return text

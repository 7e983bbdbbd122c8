"""The line a progress log entry is written as, and how it is read back.

::

    [✅] [2026-03-01 14:05:09 UTC] [Agent: claude-code] [Project: Auth] tests pass | n=3; ok=true

Escapes keep every entry on exactly one line and let ``parse_line`` read it back:
a backslash is doubled everywhere; ``]`` is escaped in the bracketed fields, ``|``
in the message, ``|`` and ``;`` in meta values; line breaks and other control
characters become ``\\n``, ``\\r`` or ``\\uXXXX``. The `` | k=v; k=v`` part is
there only when meta is not empty. Meta keys are written sorted, so an entry reads
the same whatever order the client sent them in; values are written as text
(booleans as ``true``/``false``) and read back as text.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from scribe.mcp.failures import INVALID_ARGUMENT, ToolFailure

#: Each status and the emoji its entries get unless the call names another.
STATUS_EMOJI: Mapping[str, str] = {
    "info": "ℹ️",  # noqa: RUF001 (the information sign is meant)
    "success": "✅",
    "warn": "⚠️",
    "error": "❌",
    "bug": "🐞",
    "plan": "🗺️",
}

MetaValue = str | int | float | bool

MAX_MESSAGE = 10_000
MAX_META_KEYS = 50
MAX_META_VALUE = 1_000
_META_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_FIELD = r"((?:[^\]\\]|\\.)*)"
_LINE = re.compile(
    rf"\[{_FIELD}\] \[(\d{{4}}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC\] \[Agent: {_FIELD}\] "
    rf"\[Project: {_FIELD}\] ((?:[^|\\]|\\.)*?)(?: \| (.+))?",
    re.DOTALL,
)
_ESCAPED = re.compile(r"\\(u[0-9a-f]{4}|.)", re.DOTALL)


def breaks_line(char: str) -> bool:
    """Whether ``char`` ends a line for some reader (``str.splitlines`` included)."""
    return char != "\t" and (unicodedata.category(char) == "Cc" or char in "\u2028\u2029")


def escape(text: str, special: str) -> str:
    """``text`` on one line, with ``\\`` and the characters in ``special`` escaped."""
    out = []
    for char in text:
        if char == "\\" or char in special:
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif breaks_line(char):
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def _unescape_one(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) == 5:
        return chr(int(code[1:], 16))
    return {"n": "\n", "r": "\r"}.get(code, code)


def unescape(text: str) -> str:
    return _ESCAPED.sub(_unescape_one, text)


def clean(value: str, what: str, limit: int) -> str:
    """``value`` trimmed; ``INVALID_ARGUMENT`` when that leaves nothing or too much."""
    text = value.strip()
    if not text:
        raise ToolFailure(INVALID_ARGUMENT, f"{what} is empty", argument=what)
    if len(text) > limit:
        raise ToolFailure(
            INVALID_ARGUMENT, f"{what} is longer than {limit} characters", argument=what
        )
    return text


def pick_emoji(status: str, emoji: str | None) -> str:
    """The emoji an entry gets: ``emoji`` if given, else its status's."""
    key = status.strip().lower()
    if key not in STATUS_EMOJI:
        raise ToolFailure(
            INVALID_ARGUMENT,
            f"unknown status {status!r}; use one of {', '.join(STATUS_EMOJI)}",
            argument="status",
            allowed=list(STATUS_EMOJI),
        )
    return STATUS_EMOJI[key] if emoji is None else clean(emoji, "emoji", 16)


def meta_text(value: MetaValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolFailure(
            INVALID_ARGUMENT, f"meta value {value!r} is not a finite number", argument="meta"
        )
    return str(value)


def check_meta(meta: Mapping[str, Any]) -> dict[str, MetaValue]:
    """``meta`` as given, once every key and value is known to be writable."""
    if len(meta) > MAX_META_KEYS:
        raise ToolFailure(
            INVALID_ARGUMENT, f"meta has more than {MAX_META_KEYS} keys", argument="meta"
        )
    for key, value in meta.items():
        if not isinstance(key, str) or not _META_KEY.fullmatch(key):
            raise ToolFailure(
                INVALID_ARGUMENT,
                f"meta key {key!r} must be 1-64 letters, digits, '_', '.' or '-'",
                argument="meta",
            )
        if not isinstance(value, str | int | float):
            raise ToolFailure(
                INVALID_ARGUMENT,
                f"meta value of {key!r} must be a string, number or boolean",
                argument="meta",
            )
        if len(meta_text(value)) > MAX_META_VALUE:
            raise ToolFailure(
                INVALID_ARGUMENT,
                f"meta value of {key!r} is longer than {MAX_META_VALUE} characters",
                argument="meta",
            )
    return dict(meta)


def format_line(
    *,
    emoji: str,
    moment: datetime,
    agent: str,
    project: str,
    message: str,
    meta: Mapping[str, MetaValue],
) -> str:
    """One progress log entry, without its newline."""
    text = (
        f"[{escape(emoji, ']')}] [{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC] "
        f"[Agent: {escape(agent, ']')}] [Project: {escape(project, ']')}] "
        f"{escape(message, '|')}"
    )
    if meta:
        pairs = (f"{key}={escape(meta_text(meta[key]), '|;')}" for key in sorted(meta))
        text += " | " + "; ".join(pairs)
    return text


def _split_meta(text: str) -> list[str]:
    """``k=v; k=v`` split on the separators that are not escaped."""
    items: list[str] = []
    current: list[str] = []
    at = 0
    while at < len(text):
        if text[at] == "\\":
            current.append(text[at : at + 2])
            at += 2
        elif text.startswith("; ", at):
            items.append("".join(current))
            current, at = [], at + 2
        else:
            current.append(text[at])
            at += 1
    items.append("".join(current))
    return items


def parse_line(line: str) -> dict[str, Any]:
    """Read an entry back: ``emoji``, ``time`` (ISO, ``Z``), ``agent``, ``project``,
    ``message`` and ``meta`` (values as text). ValueError for any other line, such as
    the log's heading."""
    match = _LINE.fullmatch(line.rstrip("\r\n"))
    if match is None:
        raise ValueError(f"not a progress log entry: {line[:80]!r}")
    emoji, day, clock, agent, project, message, pairs = match.groups()
    meta: dict[str, str] = {}
    for item in _split_meta(pairs) if pairs else []:
        key, sep, value = item.partition("=")
        if not sep or not _META_KEY.fullmatch(key):
            raise ValueError(f"not a key=value pair in a progress log entry: {item!r}")
        meta[key] = unescape(value)
    return {
        "emoji": unescape(emoji),
        "time": f"{day}T{clock}Z",
        "agent": unescape(agent),
        "project": unescape(project),
        "message": unescape(message),
        "meta": meta,
    }

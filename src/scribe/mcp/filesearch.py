"""Searching one file line by line, in bounded memory and bounded time.

Patterns are literal or ``regex`` patterns, matched against each line's text
without its terminator (so ``^...$`` behaves alike on LF and CRLF files). A line
longer than the reader's piece size is searched piece by piece, so a match that
straddles two pieces of one huge line is not found. The time budget covers the
whole search, and each regex match gets what is left of it, so a catastrophic
pattern fails with TIMEOUT instead of holding a thread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import regex as regex_module

from scribe.mcp.failures import INVALID_ARGUMENT, TIMEOUT, ToolFailure

__all__ = ["MARK", "Search"]

#: Put where a shown line was cut.
MARK = "…"
MAX_PATTERN = 1000
MAX_CONTEXT = 20
MAX_MATCHES = 1000
MAX_TIMEOUT_S = 60.0


def _number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolFailure(INVALID_ARGUMENT, f"{name} must be a number", argument=name)
    if not low <= value <= high:
        raise ToolFailure(
            INVALID_ARGUMENT,
            f"{name} must be between {low:g} and {high:g}, not {value}",
            argument=name,
        )
    return value


def _count(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int):
        raise ToolFailure(INVALID_ARGUMENT, f"{name} must be an integer", argument=name)
    return int(_number(name, value, low, high))


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ToolFailure(INVALID_ARGUMENT, f"{name} must be true or false", argument=name)
    return value


class Search:
    """One search, validated when made; ``run`` applies it to a file's lines."""

    def __init__(
        self,
        pattern: str,
        *,
        regex: bool = False,
        ignore_case: bool = False,
        context: int = 0,
        max_matches: int = 100,
        timeout_s: float = 5.0,
        max_line_chars: int = 500,
    ) -> None:
        if not isinstance(pattern, str) or not pattern:
            raise ToolFailure(INVALID_ARGUMENT, "pattern is empty", argument="pattern")
        if len(pattern) > MAX_PATTERN:
            raise ToolFailure(
                INVALID_ARGUMENT,
                f"pattern is longer than {MAX_PATTERN} characters",
                argument="pattern",
            )
        self.pattern = pattern
        self.regex = _flag("regex", regex)
        self.ignore_case = _flag("ignore_case", ignore_case)
        self.context = _count("context", context, 0, MAX_CONTEXT)
        self.max_matches = _count("max_matches", max_matches, 1, MAX_MATCHES)
        self.timeout_s = _number("timeout_s", timeout_s, 0.001, MAX_TIMEOUT_S)
        self.max_line_chars = max_line_chars
        self._find = self._finder()

    def _finder(self) -> Callable[[str, float], int]:
        """``find(text, seconds_left)``: the first match's column, or -1."""
        if not self.regex and not self.ignore_case:
            return lambda text, _left: text.find(self.pattern)
        source = self.pattern if self.regex else regex_module.escape(self.pattern)
        try:
            compiled = regex_module.compile(
                source, regex_module.IGNORECASE if self.ignore_case else 0
            )
        except regex_module.error as exc:
            raise ToolFailure(
                INVALID_ARGUMENT, f"invalid regex: {exc}", argument="pattern"
            ) from None

        def find(text: str, left: float) -> int:
            match = compiled.search(text, timeout=left)
            return -1 if match is None else match.start()

        return find

    def run(self, path: str, pieces: Iterable[tuple[str, bool]]) -> dict[str, Any]:
        """Search ``pieces`` (``(text, ends_line)``, see ``Reader``) of ``path``."""
        deadline = time.monotonic() + self.timeout_s
        before: deque[str] = deque(maxlen=self.context)
        waiting: list[list[str]] = []  # the after-lines of matches still short of some
        matches: list[dict[str, Any]] = []
        more: bool | None = False
        line, column, shown, cut = 1, -1, "", False
        offset = 0  # characters of the current line before this piece
        for piece, ends in pieces:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                found = self._find(piece, left) if column < 0 and more is False else -1
            except TimeoutError:
                if len(matches) < self.max_matches:
                    raise ToolFailure(
                        TIMEOUT,
                        f"searching {path} took longer than {self.timeout_s:g} s "
                        f"(stopped at line {line}); narrow the pattern or raise timeout_s",
                        lines_searched=line - 1,
                        matches_found=len(matches),
                    ) from None
                return self._result(matches, None, line - 1)
            if found >= 0:
                column = offset + found
                shown, cut = self._window(piece, found, offset == 0, ends)
            elif offset == 0:
                shown, cut = self._window(piece, 0, True, ends)
            offset += len(piece)
            if not ends:
                continue
            for lines_after in waiting:
                lines_after.append(shown)
            waiting = [lines_after for lines_after in waiting if len(lines_after) < self.context]
            if column >= 0:
                if len(matches) < self.max_matches:
                    after: list[str] = []
                    match = {
                        "line": line,
                        "column": column + 1,
                        "text": shown,
                        "truncated": cut,
                        "before": list(before),
                        "after": after,
                    }
                    matches.append(match)
                    if self.context:
                        waiting.append(after)
                else:
                    more = True
            before.append(shown)
            line, column, offset = line + 1, -1, 0
            if more and not waiting:
                break
        return self._result(matches, more, line - 1)

    def _window(self, piece: str, at: int, starts: bool, ends: bool) -> tuple[str, bool]:
        """At most ``max_line_chars`` of ``piece`` around ``at``, marked where cut;
        ``starts`` and ``ends`` say whether the piece begins and ends its line."""
        limit = self.max_line_chars
        if starts and ends and len(piece) <= limit:
            return piece, False
        start = max(0, min(at - limit // 4, len(piece) - limit))
        text = piece[start : start + limit]
        head = MARK if start > 0 or not starts else ""
        tail = MARK if start + limit < len(piece) or not ends else ""
        return head + text + tail, True

    def _result(
        self, matches: list[dict[str, Any]], more: bool | None, searched: int
    ) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "regex": self.regex,
            "ignore_case": self.ignore_case,
            "matches": matches,
            "match_count": len(matches),
            "more": more,
            "lines_searched": searched,
        }

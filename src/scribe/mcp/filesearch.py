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
        self._find, self._joinable = self._finder()

    def _finder(self) -> tuple[Callable[[str, float], int], bool]:
        """``find(text, seconds_left)``, the first match's column or -1, and whether
        it may be run over many lines joined (it can if it cannot be anchored)."""
        if not self.regex and not self.ignore_case:
            return (lambda text, _left: text.find(self.pattern)), True
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

        return find, not self.regex

    def run(self, path: str, batches: Iterable[tuple[list[str], bool]]) -> dict[str, Any]:
        """Search ``batches`` of ``path`` (see ``scribe.mcp.parts.line_batches``).

        A literal pattern is first looked for in a whole batch of lines joined
        together; only a batch where it occurs is searched line by line.
        """
        deadline = time.monotonic() + self.timeout_s
        before: deque[str] = deque(maxlen=self.context)
        waiting: list[list[str]] = []  # the after-lines of matches still short of some
        matches: list[dict[str, Any]] = []
        more: bool | None = False
        line, column, shown, cut = 1, -1, "", False
        offset = 0  # characters of the current line before this piece
        try:
            for texts, ends in batches:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                skippable = ends and offset == 0 and more is False and not waiting
                if skippable and self._joinable and self._find("\n".join(texts), left) < 0:
                    line += len(texts)  # not in this batch: only its last lines matter
                    if self.context:
                        before.extend(
                            self._window(t, 0, True, True)[0] for t in texts[-self.context :]
                        )
                    continue
                for piece in texts:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    found = self._find(piece, left) if column < 0 and more is False else -1
                    if found >= 0:
                        column = offset + found
                        shown, cut = self._window(piece, found, offset == 0, ends)
                    elif offset == 0 and self.context:
                        shown, cut = self._window(piece, 0, True, ends)
                    offset += len(piece)
                    if not ends:
                        continue
                    if waiting:
                        for lines_after in waiting:
                            lines_after.append(shown)
                        waiting = [after for after in waiting if len(after) < self.context]
                    if column >= 0:
                        if len(matches) < self.max_matches:
                            matches.append(self._match(line, column, shown, cut, before, waiting))
                        else:
                            more = True
                    if self.context:
                        before.append(shown)
                    line, column, offset = line + 1, -1, 0
                    if more and not waiting:
                        return self._result(matches, more, line - 1)
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
        return self._result(matches, more, line - 1)

    def _match(
        self,
        line: int,
        column: int,
        shown: str,
        cut: bool,
        before: deque[str],
        waiting: list[list[str]],
    ) -> dict[str, Any]:
        after: list[str] = []
        if self.context:
            waiting.append(after)
        return {
            "line": line,
            "column": column + 1,
            "text": shown,
            "truncated": cut,
            "before": list(before),
            "after": after,
        }

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

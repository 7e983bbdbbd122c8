"""Where in a markdown note nothing may be linked or rewritten.

Every tool that edits note text asks one of two questions:

* ``code_spans``: where is code (fenced, indented, inline)? A link written there
  is an example, not a link.
* ``protected_spans``: where may a rewrite not touch? Code, and everything that is
  already markup with a meaning of its own: the frontmatter, HTML comments and
  tags, autolinks and bare URLs, wikilinks, markdown links and images, reference
  links and definitions.

Both return sorted, merged ``(start, end)`` character ranges. The scan follows
CommonMark where it matters for these questions and stays simple elsewhere:
indented code is recognised outside lists only, and block quotes are not parsed
as containers. A fence or an HTML comment that is never closed runs to the end,
as it does when rendered.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from scribe.frontmatter import FrontmatterError, find_block

Span = tuple[int, int]

#: The text of a link, ``[...]``: one level of nested brackets, escapes, single
#: line breaks (a blank line ends the paragraph, so the link).
LINK_TEXT = r"(?:[^\[\]\\\n]|\\(?:.|(?=\n))|\[[^\[\]\n]*\]|\n(?![ \t]*\r?\n))*"
#: A link destination written bare: no spaces, balanced parentheses, escapes.
RAW_DEST = r"(?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))+"
#: An optional link title and the closing parenthesis.
DEST_END = r"(?:[ \t]+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?[ \t]*\)"
#: A reference definition ``[id]: url`` (footnotes, ``[^1]:``, are text).
REFERENCE_DEFINITION = re.compile(
    r"^[ ]{0,3}\[(?P<label>[^\]\n^\\][^\]\n]*)\]:[ \t]*"
    r"(?:<(?P<angle>[^<>\n]*)>|(?P<raw>[^\s<]\S*))[^\r\n]*",
    re.MULTILINE,
)

# Every alternative starts with a literal character, so the regex engine skips
# straight to the next candidate (a named group first would disable that).
_INLINE = re.compile(
    r"\\(?P<esc>[!-/:-@\[-`{-~])"
    r"|`(?P<tick>`*)"
    r"|<(?:(?P<comment>!--)"
    r"|[A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\s<>]*>"  # autolink
    r"|[^\s@<>]+@[^\s@<>]+>"  # e-mail autolink
    r"|/?[A-Za-z][A-Za-z0-9\-]*(?:\s[^<>]*)?/?>)"  # HTML tag
    r"|\[(?:\[[^\[\]\n]*\]\]"  # [[wikilink]] (a leading ! is harmless text)
    rf"|{LINK_TEXT}\]\([ \t]*(?:<[^<>\n]*>|{RAW_DEST})?{DEST_END}"  # [text](dest)
    rf"|{LINK_TEXT}\]\[[^\[\]\n]*\]"  # [text][id], [text][]
    r"|(?P<short>[^\[\]\n`]+)\])"  # [id]: protected when defined
    r"|h(?<![^\W_]h)ttps?://[^\s<>]*"  # bare URL (not inside a word)
)
_BLANK_LINE = re.compile(r"\n[ \t]*(?:\r?\n|\Z)")
_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$", re.MULTILINE)
_FENCE_OPEN = re.compile(r"(`{3,}|~{3,})(.*)")
_LIST_ITEM = re.compile(r"(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_THEMATIC_BREAK = re.compile(r"([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_URL_TRAILING = ".,:;!?'\"*_~"


def protected_spans(text: str) -> list[Span]:
    """Sorted, merged character ranges of ``text`` that no rewrite may touch.

    A document whose frontmatter is opened with ``---`` but never closed is
    protected whole: its structure is unclear, so nothing in it is rewritten.
    """
    return code_and_protected_spans(text)[1]


def code_spans(text: str) -> list[Span]:
    """Sorted, merged character ranges of the code in ``text``'s body: fenced and
    indented code blocks and inline code spans."""
    code, _markup = _scan(text, _body_start(text) or 0)
    return _merge(code)


def code_and_protected_spans(text: str) -> tuple[list[Span], list[Span]]:
    """``code_spans`` and ``protected_spans`` from one scan, for callers that need both."""
    body = _body_start(text)
    code, markup = _scan(text, body or 0)
    if body is None:
        return _merge(code), [(0, len(text))] if text else []
    protected = [(0, body), *code, *markup] if body else [*code, *markup]
    return _merge(code), _merge(protected)


def body_start(text: str) -> int:
    """Where the body starts: after the frontmatter block, or 0 (also when the
    block is never closed)."""
    return _body_start(text) or 0


def _body_start(text: str) -> int | None:
    try:
        block = find_block(text)
    except FrontmatterError:
        return None
    return block.body_start if block else 0


def _merge(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _scan(text: str, start: int) -> tuple[list[Span], list[Span]]:
    """Code spans and other markup spans of the body from ``start`` (unmerged)."""
    code = _code_blocks(text, start)
    markup: list[Span] = []
    between = gaps(code, start, len(text))
    labels: set[str] = set()
    if "]:" in text:
        for gap_start, gap_end in between:
            for m in REFERENCE_DEFINITION.finditer(text, gap_start, gap_end):
                markup.append(m.span())
                labels.add(_label(m["label"]))
    reached = start
    for gap_start, gap_end in between:
        reached = _inline(text, max(gap_start, reached), gap_end, labels, code, markup)
    return code, markup


def _label(label: str) -> str:
    """A reference label as CommonMark matches it: case and runs of spaces ignored."""
    return " ".join(label.split()).casefold()


def gaps(spans: Iterable[Span], start: int, end: int) -> list[Span]:
    """The ranges of ``start..end`` outside the sorted ``spans``."""
    found = []
    for span_start, span_end in spans:
        if span_start > start:
            found.append((start, span_start))
        start = max(start, span_end)
    if start < end:
        found.append((start, end))
    return found


def _inline(
    text: str, pos: int, end: int, labels: set[str], code: list[Span], markup: list[Span]
) -> int:
    """Scan ``text[pos:end]`` for inline code and markup; return where it stopped
    (past ``end`` when an unclosed HTML comment ran on)."""
    search = _INLINE.search
    paragraph_end = -1
    while pos < end:
        m = search(text, pos, end)
        if m is None:
            return end
        start, stop = m.span()
        if m["esc"] is not None:
            pass
        elif m["tick"] is not None:
            run = stop - start
            if paragraph_end < start:
                blank = _BLANK_LINE.search(text, start, end)
                paragraph_end = blank.start() if blank else end
            closer = _closer(run).search(text, stop, paragraph_end)
            if closer is not None:
                stop = closer.end()
                code.append((start, stop))
        elif m["comment"] is not None:
            close = text.find("-->", stop)
            stop = len(text) if close < 0 else close + 3
            markup.append((start, stop))
        elif m["short"] is not None:
            if _label(m["short"]) in labels:
                markup.append((start, stop))
        elif text[start] == "h":
            stop = start + _url_length(m.group())
            markup.append((start, stop))
        else:
            markup.append((start, stop))
        pos = stop
    return pos


@functools.lru_cache(maxsize=32)
def _closer(run: int) -> re.Pattern[str]:
    return re.compile(rf"(?<!`)`{{{run}}}(?!`)")


def _url_length(url: str) -> int:
    """A bare URL's length without trailing punctuation or an unbalanced ``)``
    (``(see https://x.org/a).`` links ``https://x.org/a``)."""
    end = len(url)
    while end:
        last = url[end - 1]
        if last in _URL_TRAILING or (
            last == ")" and url.count("(", 0, end) < url.count(")", 0, end)
        ):
            end -= 1
        else:
            break
    return end


def _code_blocks(text: str, start: int) -> list[Span]:
    """Fenced and indented code blocks of the body from ``start``."""
    # A line indented by four columns makes every line matter (is it code, or a
    # list's continuation?). Plain searches tell, fast and on the safe side: a
    # tab anywhere sends the text to the line scan too.
    if (
        text.startswith(("    ", " \t", "  \t", "   \t"), start)
        or text.find("\n    ", start) >= 0
        or text.find("\t", start) >= 0
    ):
        return _blocks_by_line(text, start)
    if "```" in text or "~~~" in text:
        return _fences(text, start)
    return []


def _fences(text: str, start: int) -> list[Span]:
    """The fenced blocks of a body in which no line is indented four columns:
    there neither indented code nor list nesting can matter, so a regex finds
    each fence and its closing line (the same blocks ``_blocks_by_line`` finds,
    without a Python step per line)."""
    spans: list[Span] = []
    pos = start
    while (opening := _FENCE_LINE.search(text, pos)) is not None:
        run, info = opening[1], opening[2]
        if run[0] == "`" and "`" in info:
            pos = opening.end()
            continue
        closing = _fence_closer(run[0], len(run)).search(text, opening.end())
        if closing is None:
            spans.append((opening.start(), len(text)))
            break
        end = closing.end() + text.startswith("\n", closing.end())
        spans.append((opening.start(), end))
        pos = end
    return spans


@functools.lru_cache(maxsize=16)
def _fence_closer(char: str, length: int) -> re.Pattern[str]:
    return re.compile(rf"^ {{0,3}}{re.escape(char)}{{{length},}}[ \t]*\r?$", re.MULTILINE)


def _blocks_by_line(text: str, start: int) -> list[Span]:
    """Fenced and indented code blocks, line by line (lists and blank lines decide
    what an indented line is)."""
    spans: list[Span] = []
    fence: tuple[str, int] | None = None
    block_start = 0
    indented = False  # inside an indented code block
    indented_end = 0
    blank_before = True  # the body's first line may start an indented block
    in_list = False
    pos, size = start, len(text)
    while pos < size:
        newline = text.find("\n", pos)
        end = size if newline < 0 else newline + 1
        line = text[pos:end].rstrip("\r\n")
        body = line.lstrip(" \t")
        if fence is not None:
            if _closes(body, fence) and (in_list or _width(line, len(line) - len(body)) <= 3):
                spans.append((block_start, end))
                fence = None
            pos = end
            continue
        if not body:
            blank_before = True
            pos = end
            continue
        width = _width(line, len(line) - len(body))
        if width >= 4 and not in_list and (blank_before or indented):
            if not indented:
                indented, block_start = True, pos
            indented_end = end
            blank_before = False
            pos = end
            continue
        if indented:
            spans.append((block_start, indented_end))
            indented = False
        if width <= 3 and body[0] in "-*+_0123456789":
            if _LIST_ITEM.match(body) and not _THEMATIC_BREAK.match(body):
                in_list = True
            elif width == 0 and blank_before:
                in_list = False
        elif width == 0 and blank_before:
            in_list = False
        if width <= 3 or in_list:
            opening = _FENCE_OPEN.match(body)
            if opening and not (opening[1][0] == "`" and "`" in opening[2]):
                fence, block_start = (opening[1][0], len(opening[1])), pos
        blank_before = False
        pos = end
    if fence is not None:
        spans.append((block_start, size))
    if indented:
        spans.append((block_start, indented_end))
    return spans


def _width(line: str, count: int) -> int:
    """Columns taken by the first ``count`` (blank) characters; tabs stop every 4."""
    if count < 4 and "\t" not in line[:count]:
        return count
    width = 0
    for char in line[:count]:
        width = width + 4 - width % 4 if char == "\t" else width + 1
    return width


def _closes(body: str, fence: tuple[str, int]) -> bool:
    char, length = fence
    run = len(body) - len(body.lstrip(char))
    return run >= length and not body[run:].strip()

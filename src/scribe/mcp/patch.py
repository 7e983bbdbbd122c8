"""Edits of a document's text that leave every line they do not touch as it was.

A unified diff is applied exactly, or not at all. Each hunk must match the text at
the line its header names: its context and removed lines are compared with the
text's lines, with no search for an offset and no fuzz. A patch made against other
content than the text now holds is refused with ``CONFLICT``, naming the first hunk
that does not apply, and nothing is changed; a patch that cannot be read is
``INVALID_ARGUMENT``.

Line endings are not compared (a patch written with LF applies to a CRLF text).
Lines the patch keeps keep their own endings, added lines get the text's, so
CRLF stays CRLF; ``\\ No newline at end of file`` after an added line leaves it
without one.

A section is an ATX heading (``#`` to ``######``, outside code fences) and what
follows it up to the next heading of the same or a higher level. It is found by an
``<!-- ID: name -->`` anchor on the line after (or else before) its heading, or by
its heading text, case-insensitively; text matching several headings is refused
with the matches listed. An anchor just above the next heading belongs to that
heading's section. Its content can be replaced (the blank lines around it stay)
or added to (after its last line that is not blank).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scribe.mcp.failures import CONFLICT, INVALID_ARGUMENT, NOT_FOUND, ToolFailure

Line = tuple[str, str]  # its text and its ending ("\n", "\r\n" or "" for a last line)

_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_ANCHOR = re.compile(r"\s*<!--\s*ID:\s*(\S+?)\s*-->\s*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


_HEADER = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@.*")
_LINE = re.compile(r"([^\n]*?)(\r?\n|\Z)")


def split_lines(text: str) -> list[Line]:
    """``text`` as lines with their endings; joined back, they are ``text`` again."""
    lines: list[Line] = []
    at = 0
    while at < len(text):
        match = _LINE.match(text, at)
        assert match is not None  # the pattern matches everywhere
        lines.append((match.group(1), match.group(2)))
        at = match.end()
    return lines


def newline_of(lines: list[Line]) -> str:
    """The text's line ending: that of its first line, LF for a text without one."""
    return next((end for _, end in lines if end), "\n")


def join_lines(lines: list[Line], newline: str) -> str:
    """The lines as text; a line without an ending gets one unless it is the last."""
    last = len(lines) - 1
    return "".join(
        text + (end or (newline if i < last else "")) for i, (text, end) in enumerate(lines)
    )


@dataclass
class Hunk:
    number: int
    old_start: int
    old_count: int
    new_count: int
    lines: list[tuple[str, str, bool]] = field(default_factory=list)  # mark, text, has newline


def _bad(message: str, **details: object) -> ToolFailure:
    return ToolFailure(
        INVALID_ARGUMENT, f"unreadable patch: {message}", argument="patch", **details
    )


def parse(patch: str) -> list[Hunk]:
    """The hunks of a one-file unified diff; file headers before them are skipped."""
    raw = [text.removesuffix("\r") for text in patch.split("\n")]
    if raw and raw[-1] == "":
        raw.pop()
    hunks: list[Hunk] = []
    i = 0
    while i < len(raw) and not raw[i].startswith("@@"):
        i += 1
    while i < len(raw):
        header = _HEADER.fullmatch(raw[i])
        if header is None:
            if raw[i].startswith(("--- ", "+++ ", "diff ")):
                raise _bad("it changes more than one file; send one document's patch")
            raise _bad(f"line {i + 1} is not a hunk header: {raw[i][:80]!r}", line=i + 1)
        old_start, old_count, _, new_count = (
            int(group) if group is not None else 1 for group in header.groups()
        )
        hunk = Hunk(len(hunks) + 1, old_start, old_count, new_count)
        i += 1
        old = new = 0
        while old < hunk.old_count or new < hunk.new_count:
            text = raw[i] if i < len(raw) else None
            mark = " " if text == "" else (text or "?")[:1]  # an empty line: blank context
            if text is None or mark not in " -+":
                raise _bad(
                    f"hunk {hunk.number} has fewer lines than its header "
                    f"(-{old_start},{old_count} +{header.group(3)},{new_count}) says",
                    hunk=hunk.number,
                )
            hunk.lines.append((mark, text[1:], True))
            old += mark != "+"
            new += mark != "-"
            i += 1
            if i < len(raw) and raw[i].startswith("\\"):  # "\ No newline at end of file"
                hunk.lines[-1] = (mark, text[1:], False)
                i += 1
        if old != hunk.old_count or new != hunk.new_count:
            raise _bad(f"hunk {hunk.number} has more lines than its header says", hunk=hunk.number)
        hunks.append(hunk)
        while i < len(raw) and raw[i] == "":
            i += 1
    if not hunks:
        raise _bad("it has no hunks (lines starting with @@)")
    return hunks


def apply(text: str, patch: str) -> str:
    """``text`` with ``patch`` applied; ``CONFLICT`` if any hunk does not match."""
    lines = split_lines(text)
    newline = newline_of(lines)
    out: list[Line] = []
    at = 0  # the next line of ``lines`` not yet copied
    for hunk in parse(patch):
        start = hunk.old_start - 1 if hunk.old_count else hunk.old_start
        if start < at:
            raise _bad(f"hunk {hunk.number} overlaps the one before it", hunk=hunk.number)
        if start > len(lines):
            raise ToolFailure(
                CONFLICT,
                f"hunk {hunk.number} starts at line {hunk.old_start}, "
                f"but the document has {len(lines)} lines",
                hunk=hunk.number,
            )
        out.extend(lines[at:start])
        at = start
        for mark, content, has_newline in hunk.lines:
            if mark == "+":
                out.append((content, newline if has_newline else ""))
                continue
            found = lines[at][0] if at < len(lines) else None
            if found != content:
                raise ToolFailure(
                    CONFLICT,
                    f"hunk {hunk.number} does not apply at line {at + 1}: expected "
                    f"{content!r}, found "
                    + ("the end of the document" if found is None else repr(found)),
                    hunk=hunk.number,
                    line=at + 1,
                )
            if mark == " ":
                out.append(lines[at])
            at += 1
    out.extend(lines[at:])
    return join_lines(out, newline)


@dataclass(frozen=True)
class Section:
    heading: str
    level: int
    line: int  # index of the heading line
    anchor: str | None
    body: int  # index of the first line after the heading and an anchor below it
    end: int  # index of the first line after the section

    def describe(self) -> dict[str, Any]:
        return {
            "heading": self.heading,
            "level": self.level,
            "line": self.line + 1,
            "id": self.anchor,
        }


def sections(lines: list[str]) -> list[Section]:
    """Every section of a document given as its lines' text, in order."""
    headings: list[tuple[int, int, str]] = []  # line, level, text
    anchors: dict[int, str] = {}
    fence = ""
    for i, text in enumerate(lines):
        opening = _FENCE.match(text)
        if fence:
            if (
                opening
                and opening.group(1)[0] == fence[0]
                and len(opening.group(1)) >= len(fence)
                and not text[opening.end() :].strip()
            ):
                fence = ""
        elif opening:
            fence = opening.group(1)
        elif match := _HEADING.fullmatch(text):
            headings.append((i, len(match.group(1)), (match.group(2) or "").strip()))
        elif match := _ANCHOR.fullmatch(text):
            anchors[i] = match.group(1)
    # An anchor right under a heading is that heading's; one right above a heading
    # is that heading's unless it is already taken from above.
    under = {line + 1 for line, _, _ in headings if line + 1 in anchors}
    found = []
    for n, (line, level, title) in enumerate(headings):
        anchor = anchors.get(line + 1)
        if anchor is None and line - 1 not in under:
            anchor = anchors.get(line - 1)
        end = len(lines)
        for later, later_level, _ in headings[n + 1 :]:
            if later_level <= level:
                owns_above = later - 1 in anchors and later - 1 not in under
                end = later - 1 if owns_above else later
                break
        body = line + 2 if line + 1 in anchors else line + 1
        found.append(Section(title, level, line, anchor, body, end))
    return found


def find_section(found: list[Section], wanted: str) -> Section | None:
    """The one section ``wanted`` names (anchor first, then heading text), or None."""
    name = " ".join(wanted.strip().lstrip("#").split()).casefold()
    if not name:
        raise ToolFailure(INVALID_ARGUMENT, "section is empty", argument="section")
    for matches in (
        [s for s in found if s.anchor is not None and s.anchor.casefold() == name],
        [s for s in found if " ".join(s.heading.split()).casefold() == name],
    ):
        if len(matches) == 1:
            return matches[0]
        if matches:
            listed = "; ".join(f"line {s.line + 1}: {'#' * s.level} {s.heading}" for s in matches)
            raise ToolFailure(
                INVALID_ARGUMENT,
                f"section {wanted!r} is ambiguous ({listed}); name it by its ID anchor, "
                "or add one (<!-- ID: name --> under the heading)",
                argument="section",
                matches=[s.describe() for s in matches],
            )
    return None


def content_lines(content: str, *, keep_leading_blank: bool) -> list[str]:
    """An agent's content as lines, whatever its line endings, without trailing blank
    lines (and without leading ones unless ``keep_leading_blank``)."""
    lines = [text for text, _ in split_lines(content.replace("\r\n", "\n").replace("\r", "\n"))]
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not keep_leading_blank and not lines[0].strip():
        lines.pop(0)
    return lines


def replace_body(lines: list[Line], section: Section, new: list[str], newline: str) -> list[Line]:
    """``section``'s content replaced by ``new``; the blank lines around it are kept."""
    body = range(section.body, section.end)
    filled = [i for i in body if lines[i][0].strip()]
    follows = section.end < len(lines)
    added = [(text, newline) for text in new]
    if not new:  # cleared: the heading, then the blank lines that ended the section
        return [*lines[: section.body], *lines[filled[-1] + 1 if filled else section.body :]]
    if not filled:
        gap = [("", newline)] if follows else []
        return [*lines[: section.body], ("", newline), *added, *gap, *lines[section.end :]]
    return [*lines[: filled[0]], *added, *lines[filled[-1] + 1 :]]


def append_body(lines: list[Line], section: Section, new: list[str], newline: str) -> list[Line]:
    """``new`` after the last line of ``section`` that is not blank."""
    filled = [i for i in range(section.body, section.end) if lines[i][0].strip()]
    if not filled:
        return replace_body(lines, section, new, newline)
    at = filled[-1] + 1
    return [*lines[:at], *((text, newline) for text in new), *lines[at:]]


def add_section(lines: list[Line], wanted: str, new: list[str], newline: str) -> list[Line]:
    """A new section at the end: ``## wanted`` (or as many ``#`` as ``wanted`` starts
    with), a blank line, then ``new``."""
    level = len(wanted.strip()) - len(wanted.strip().lstrip("#")) or 2
    heading = f"{'#' * min(level, 6)} {wanted.strip().lstrip('#').strip()}"
    gap = [("", newline)] if lines and lines[-1][0].strip() else []
    return [*lines, *gap, (heading, newline), ("", newline), *((t, newline) for t in new)]


def no_section(wanted: str, found: list[Section]) -> ToolFailure:
    listed = ", ".join(s.anchor or s.heading for s in found) or "none"
    return ToolFailure(
        NOT_FOUND,
        f"no section {wanted!r}; sections: {listed}",
        argument="section",
        sections=[s.describe() for s in found],
    )


def edit_section(text: str, wanted: str, content: str, *, append: bool) -> tuple[str, str, Section]:
    """``text`` with the section ``wanted`` replaced by ``content``, or ``content``
    appended to it (to a new section at the end if there is none).

    Returns the new text, what happened (``replaced``, ``appended`` or
    ``created_section``) and the section as it stands in the new text.
    """
    lines = split_lines(text)
    newline = newline_of(lines)
    found = sections([line for line, _ in lines])
    where = find_section(found, wanted)
    if append:
        added = content_lines(content, keep_leading_blank=True)
        if not any(line.strip() for line in added):
            raise ToolFailure(INVALID_ARGUMENT, "content is empty", argument="content")
        if where is None:
            new, outcome = add_section(lines, wanted, added, newline), "created_section"
            heading = len(new) - len(added) - 2
        else:
            new, outcome, heading = (
                append_body(lines, where, added, newline),
                "appended",
                where.line,
            )
    else:
        if where is None:
            raise no_section(wanted, found)
        added = content_lines(content, keep_leading_blank=False)
        new, outcome, heading = replace_body(lines, where, added, newline), "replaced", where.line
    result = join_lines(new, newline)
    if text and not text.endswith("\n"):  # no final newline before: none after
        result = result.removesuffix(newline)
    after = sections([line for line, _ in split_lines(result)])
    return result, outcome, next(s for s in after if s.line == heading)

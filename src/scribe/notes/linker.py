"""Turning mentions of known note titles into ``[[wikilinks]]``.

All titles are compiled once into a single regular expression shaped like a trie
(``machine(?: learning)?|...``): the regex engine then finds every mention in one
pass in C, trying at each word start only the titles that begin with the letters
found there, whereas a loop of one search per title reads the text once per
title. The text is matched lower-cased (one cheap pass) so that the pattern can
stay free of case-insensitive matching, which Python's ``re`` runs about twice
as slowly; only when lower-casing changes the text's length (a rare ``İ``) is
the case-insensitive twin of the pattern compiled and used instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable

from scribe.notes.links import find_links, note_title, title_key
from scribe.notes.markdown import code_and_protected_spans, gaps

#: A mention must not be glued to a letter or digit, nor continue a word through
#: ``.-/_`` (``Node.js``, ``state-of-the-art``, ``file_name``, ``a/b``), nor be a
#: ``#tag`` or an ``@handle``. A bracket counts as a letter there: a neighbour
#: linked in one pass must not unblock a mention in the next.
_BEFORE = r"(?<![^\W_])(?<![^\W_][.\-/_])(?<!\][.\-/_])(?<![#@])"
_AFTER = r"(?![^\W_]|[.\-/_@](?:[^\W_]|\[))"
#: Characters a wikilink target cannot hold.
_UNLINKABLE = re.compile(r"[\[\]|#^\n\r]")
_WORD = re.compile(r"[^\W_]")
#: Longer titles are left out: no file name is longer, and the pattern nests a
#: group wherever one title ends inside another, which Python's ``re`` cannot
#: compile beyond a few hundred levels.
_LONGEST = 200
_ESCAPED_BAR = "\\|"  # a bare | would end the table cell
_ROW_START = re.compile(r"[ \t]*\|")


class Linker:
    """Links mentions of ``titles`` in note text; build once per set of titles.

    Titles shorter than ``min_length`` characters or longer than 200, titles a
    wikilink cannot hold (``[ ] | # ^``) and titles with no letter or digit are
    left out. A title that occurs more than once in ``titles`` (compared without
    case, as links resolve) is ambiguous, as two notes with one stem are, and is
    never linked: pass one title per note, as ``NoteIndex.titles()`` gives them.
    """

    def __init__(
        self, titles: Iterable[str], *, case_sensitive: bool = False, min_length: int = 3
    ) -> None:
        self.case_sensitive = case_sensitive
        by_key: dict[str, list[str]] = {}
        for title in titles:
            title = title.strip()
            if (
                min_length <= len(title) <= _LONGEST
                and _WORD.search(title)
                and not _UNLINKABLE.search(title)
            ):
                by_key.setdefault(title_key(title), []).append(title)
        #: What the pattern matches (the title, lower-cased unless case-sensitive)
        #: -> the title and its key.
        self._titles: dict[str, tuple[str, str]] = {}
        for key, found in by_key.items():
            if len(found) == 1:
                title = found[0]
                self._titles[title if case_sensitive else title.lower()] = (title, key)
        self._pattern = _compile(self._titles, 0) if self._titles else None
        self._ignore_case: re.Pattern[str] | None = None

    def __len__(self) -> int:
        """How many titles can be linked."""
        return len(self._titles)

    def link(self, text: str, *, exclude: Collection[str] = (), first_only: bool = True) -> str:
        """``text`` with whole-word mentions of the titles turned into links.

        A mention becomes ``[[Title]]``, or ``[[Title|mention]]`` when its case
        differs from the title's (``\\|`` in a table row). Nothing inside
        ``protected_spans`` changes; where titles overlap, the longest one at a
        position wins (``Machine Learning`` over ``Machine``). A mention touching a
        bracket, or right after ``!``, is left alone: linking it would make an
        embed or merge with the brackets, and a mention next to a link made in
        the same pass must look the same on the next pass. Titles in ``exclude``
        (such as the note's own) are never linked. With ``first_only``, only the
        first mention of each title is linked, and none when the text already
        links to it. Running it on its own output changes nothing.
        """
        if self._pattern is None:
            return text
        code, protected = code_and_protected_spans(text)
        skip = {title_key(title) for title in exclude}
        if first_only:
            skip.update(title_key(note_title(link.target)) for link in find_links(text, code=code))
        pattern, haystack, fold = self._pattern, text, False
        if not self.case_sensitive:
            haystack = text.lower()
            if len(haystack) != len(text):
                pattern, haystack, fold = self._case_insensitive(), text, True
        titles = self._titles
        pieces: list[str] = []
        last = 0
        rows = _TableRows(text)
        size = len(text)
        for start, end in gaps(protected, 0, size):
            # Two characters more, so that the lookahead sees what follows the gap
            # (as it will see it on the next pass); a match reaching past the gap
            # ends inside protected text and is no mention.
            for m in pattern.finditer(haystack, start, min(end + 2, size)):
                if m.end() > end:
                    break
                mention = m.group()
                entry = titles.get(mention.lower() if fold else mention)
                if entry is None:  # only the case-insensitive twin can miss
                    continue
                title, key = entry
                if key in skip:
                    continue
                at, stop = m.span()
                if (at and text[at - 1] in "![]") or text.startswith(("[", "]"), stop):
                    continue
                if first_only:
                    skip.add(key)
                mention = text[at:stop]
                if mention == title:
                    link = f"[[{title}]]"
                else:
                    bar = _ESCAPED_BAR if rows.holds(at) else "|"
                    link = f"[[{title}{bar}{mention}]]"
                pieces += (text[last:at], link)
                last = stop
        if not pieces:
            return text
        pieces.append(text[last:])
        return "".join(pieces)

    def _case_insensitive(self) -> re.Pattern[str]:
        if self._ignore_case is None:
            self._ignore_case = _compile(self._titles, re.IGNORECASE)
        return self._ignore_case


_Trie = dict[str, "_Trie"]


def _compile(titles: Iterable[str], flags: int) -> re.Pattern[str]:
    return _compiled(frozenset(titles), flags)


@functools.lru_cache(maxsize=4)
def _compiled(titles: frozenset[str], flags: int) -> re.Pattern[str]:
    """The pattern for a set of titles, kept for the next ``Linker`` of the same
    set: compiling 5,000 titles takes a good part of a link pass."""
    trie: _Trie = {}
    for title in sorted(titles):
        node = trie
        for char in title:
            node = node.setdefault(char, {})
        node[""] = {}
    return re.compile(f"{_BEFORE}{_alternatives(trie)}{_AFTER}", flags)


def _alternatives(node: _Trie) -> str:
    """The regex for the titles below ``node``. A run of characters with no title
    ending or branching inside stays a plain string, so groups nest only where
    titles branch or end (never once per character)."""
    branches = []
    for char, child in node.items():
        if not char:
            continue
        run = [char]
        while len(child) == 1 and "" not in child:
            ((char, child),) = child.items()
            run.append(char)
        branches.append(re.escape("".join(run)) + _alternatives(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
    return f"(?:{body})?" if "" in node else body


class _TableRows:
    """Whether a position is in a table row (a line starting with ``|``), asked for
    positions in increasing order: each line is looked at once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.searched = 0
        self.row = bool(_ROW_START.match(text))

    def holds(self, at: int) -> bool:
        newline = self.text.rfind("\n", self.searched, at)
        if newline >= 0:
            self.row = bool(_ROW_START.match(self.text, newline + 1))
        self.searched = at
        return self.row

"""Links between notes: finding them, resolving them, rewriting them after a rename.

Three kinds are found, never inside code:

* ``wiki``: ``[[Target]]``, ``[[Target#Heading]]``, ``[[Target|alias]]`` and
  ``[[Target#Heading|alias]]`` (``\\|`` as in a table cell); also in the
  frontmatter (``up: "[[Parent]]"``), where the other kinds are plain text;
* ``embed``: the same with a leading ``!``;
* ``markdown``: ``[text](path.md)``, ``[text](path.md#heading)``,
  ``[text](<path with spaces.md>)``, images and reference definitions
  (``[id]: path.md``), percent-encoding and backslash escapes decoded. Links with
  a scheme (``https:``, ``mailto:``), ``//host`` links and pure anchors (``#h``,
  ``[[#h]]``) do not lead to another file and are skipped.

Resolution (``resolve_link``), where ``source`` is the path of the note holding
the link, everything repository-relative:

* a markdown link's path is relative to the source's folder (a leading ``/``:
  to the root); ``Note`` also finds ``Note.md``;
* a wikilink target with a ``/`` is a path from the root, with or without
  ``.md``; ``./`` and ``../`` make it relative to the source's folder;
* any other wikilink target is a *title*, matched without regard to case (or
  Unicode normalisation) against the stems of notes (``notes/Old Title.md`` has
  the title ``Old Title``); if no note has it, against the names of other files
  (``![[diagram.png]]``); if none, against the notes' frontmatter ``aliases``.
  Two notes with the same stem make the title *ambiguous*: it resolves to
  neither, and nothing guesses which was meant.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from scribe.notes.markdown import (
    DEST_END,
    LINK_TEXT,
    RAW_DEST,
    REFERENCE_DEFINITION,
    body_start,
    code_spans,
    gaps,
)

LinkKind = Literal["wiki", "embed", "markdown"]

# Each alternative starts with a literal, so the scan skips to the next ``\`` or ``[``.
_LINK = re.compile(
    r"\\[!-/:-@\[-`{-~]"
    r"|\[(?:\[(?P<wiki>[^\[\]\n]*)\]\]"
    rf"|(?P<text>{LINK_TEXT})\]\([ \t]*(?:<(?P<angle>[^<>\n]*)>|(?P<raw>{RAW_DEST}))?{DEST_END})"
)
_WIKI = re.compile(r"\[\[(?P<wiki>[^\[\]\n]*)\]\]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
_ENCODED_NON_ASCII = re.compile(r"%[89A-Fa-f][0-9A-Fa-f]")
#: What a bare link destination cannot hold as it is (``%`` so that it decodes back).
_MUST_ENCODE = str.maketrans({c: f"%{ord(c):02X}" for c in "% \t()<>#\\"})


class Link(NamedTuple):
    """One link as written: ``start``/``end`` span the whole construct (the ``!`` of
    an embed included), ``line`` is 1-based. A markdown link's ``target`` is its
    decoded path, ``heading`` its fragment and ``alias`` its text.

    A named tuple rather than a dataclass: a check of a large knowledge base makes
    one per link, and a tuple is three times cheaper to build."""

    kind: LinkKind
    target: str
    heading: str | None
    alias: str | None
    start: int
    end: int
    line: int


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where a link leads: ``path`` when it leads to exactly one file; when an
    ambiguous title could mean several notes, ``candidates`` lists them; a broken
    link has neither."""

    path: str | None = None
    candidates: tuple[str, ...] = ()

    @property
    def broken(self) -> bool:
        return self.path is None and not self.candidates

    @property
    def ambiguous(self) -> bool:
        return bool(self.candidates)


_BROKEN = Resolution()


class _Found(NamedTuple):
    link: Link
    #: Where the target's text sits (a markdown link's path, without the fragment).
    target_start: int
    target_end: int
    angle: bool  # a markdown destination written ``<...>``


def find_links(text: str, *, code: Sequence[tuple[int, int]] | None = None) -> list[Link]:
    """Every link in ``text`` to another file, in order (see the module docstring).

    ``code`` is ``code_spans(text)`` for a caller that has it already.
    """
    return [found.link for found in _find(text, code)]


def note_title(path: str) -> str:
    """The title a path is linked by: its file name, without ``.md``."""
    name = posixpath.basename(path)
    return name[:-3] if name.lower().endswith(".md") else name


def title_key(title: str) -> str:
    """What two titles must share to be the same title: case and Unicode
    normalisation (an accent typed as one character or two) do not count."""
    return unicodedata.normalize("NFC", title).casefold()


def link_path(link: Link, source_path: str) -> str | None:
    """The repository path a markdown link, or a wikilink written as a path, names
    (normalised; not checked); None when it leads outside the repository."""
    target = link.target
    if target.startswith("/"):
        path = target.lstrip("/")
    elif link.kind == "markdown" or target.startswith(("./", "../")):
        path = posixpath.join(posixpath.dirname(source_path), target)
    else:
        path = target
    path = posixpath.normpath(path) if path else "."
    if path in (".", "..") or path.startswith("../"):
        return None
    return path


def resolve_link(
    link: Link,
    source_path: str,
    *,
    exists: Callable[[str], bool],
    named: Callable[[str], Sequence[str]],
    is_dir: Callable[[str], bool] | None = None,
) -> Resolution:
    """Resolve ``link`` found in ``source_path`` by the rule in the module docstring.

    ``exists(path)`` says whether a file is there; ``named(title)`` lists the
    files a title means, from the first of note stems, other files' names and
    aliases that has any; ``is_dir`` lets a markdown link lead to a folder.
    """
    target = link.target
    if link.kind == "markdown" or "/" in target:
        path = link_path(link, source_path)
        if path is None:
            return _BROKEN
        wiki = link.kind != "markdown"
        tries = (path + ".md", path) if wiki else (path, path + ".md")
        for candidate in tries:
            if candidate.lower().endswith(".md.md"):
                continue
            if exists(candidate):
                return Resolution(candidate)
        if not wiki and is_dir is not None and is_dir(path):
            return Resolution(path)
        return _BROKEN
    found = list(named(target[:-3] if target.lower().endswith(".md") else target))
    if len(found) == 1:
        return Resolution(found[0])
    return Resolution(None, tuple(sorted(found))) if found else _BROKEN


def rewrite_links(
    text: str,
    renames: Mapping[str, str],
    *,
    source_path: str,
    resolve: Callable[[Link], str | None] | None = None,
) -> str:
    """``text`` with its links to renamed files pointing at their new paths.

    ``renames`` maps old repository paths to new ones; ``source_path`` is where
    ``text`` lives before the renames (if it is among them, it moves too, and its
    relative links follow). A wikilink gets the new title (the stem), or the new
    path when it was written as one, keeping its ``#heading``, ``|alias`` and the
    ``!`` of an embed (one written with an alias still leads to the note and is
    left alone); a markdown link gets the new path relative to the note,
    keeping its ``#fragment``, ``<...>`` form or percent-encoding. Links in code,
    and everything else, stay byte for byte.

    ``resolve`` tells which file a wikilink leads to now (``NoteIndex.resolve``
    knows every note, so it can tell an ambiguous title); without it, titles are
    matched against the renamed paths alone. A link that does not resolve to
    exactly one file is left alone. The caller makes sure a new title is not
    already taken: a link written with it would become ambiguous.
    """
    if not renames:
        return text
    if resolve is None:
        resolve = _among(renames, source_path)
    folders = (
        posixpath.dirname(source_path),
        posixpath.dirname(renames.get(source_path, source_path)),
    )
    pieces: list[str] = []
    last = 0
    for found in _find(text):
        if found.link.kind == "markdown":
            new = _markdown_target(found, text, renames, source_path, folders)
        else:
            new = _wiki_target(found.link, renames, resolve, source_path, folders)
        if new is None:
            continue
        pieces += (text[last : found.target_start], new)
        last = found.target_end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _among(renames: Mapping[str, str], source_path: str) -> Callable[[Link], str | None]:
    titles: dict[str, list[str]] = {}
    for path in renames:
        titles.setdefault(title_key(note_title(path)), []).append(path)

    def resolve(link: Link) -> str | None:
        return resolve_link(
            link,
            source_path,
            exists=renames.__contains__,
            named=lambda title: titles.get(title_key(title), []),
        ).path

    return resolve


def _wiki_target(
    link: Link,
    renames: Mapping[str, str],
    resolve: Callable[[Link], str | None],
    source_path: str,
    folders: tuple[str, str],
) -> str | None:
    written = link.target
    relative = written.startswith(("./", "../"))
    old = resolve(link)
    by_alias = (
        old is not None
        and "/" not in written
        and title_key(written[:-3] if written.lower().endswith(".md") else written)
        != title_key(note_title(old))
    )
    if old is not None and old in renames and not by_alias:  # an alias survives renames
        path = renames[old]
    elif relative and folders[0] != folders[1]:
        # Only the note moved: the link names the same path from its new folder.
        path = link_path(link, source_path) or ""
        if not path:
            return None
    else:
        return None
    if relative:
        new = _relative(path, folders[1])
        if written.startswith("./") and not new.startswith("../"):
            new = "./" + new
    elif "/" in written:
        new = ("/" if written.startswith("/") else "") + path
    else:
        new = posixpath.basename(path)
    if new.lower().endswith(".md") and not written.lower().endswith(".md"):
        new = new[:-3]
    return None if new == written else new


def _markdown_target(
    found: _Found,
    text: str,
    renames: Mapping[str, str],
    source_path: str,
    folders: tuple[str, str],
) -> str | None:
    link = found.link
    path = link_path(link, source_path)
    if path is None:
        return None
    new_path = renames.get(path)
    if new_path is None and not path.lower().endswith(".md"):
        new_path = renames.get(path + ".md")
        if new_path is not None and new_path.lower().endswith(".md"):
            new_path = new_path[:-3]
    if new_path is None:
        if link.target.startswith("/") or folders[0] == folders[1]:
            return None
        new_path = path  # only the note itself moved
    if link.target.startswith("/"):
        new = "/" + new_path
    else:
        new = _relative(new_path, folders[1])
        if link.target.startswith("./") and not new.startswith("../"):
            new = "./" + new
    if posixpath.normpath(new) == posixpath.normpath(link.target):
        return None
    if found.angle:
        return new
    written = text[found.target_start : found.target_end]
    if _ENCODED_NON_ASCII.search(written):
        return urllib.parse.quote(new, safe="/")
    return new.translate(_MUST_ENCODE)


def _relative(path: str, folder: str) -> str:
    """``path`` relative to ``folder`` (both repository-relative, normalised)."""
    parts = path.split("/")
    base = folder.split("/") if folder else []
    common = 0
    while common < min(len(parts) - 1, len(base)) and parts[common] == base[common]:
        common += 1
    return "/".join([".."] * (len(base) - common) + parts[common:])


# -- finding -------------------------------------------------------------------------


class _Lines:
    """1-based line numbers of positions asked for mostly in increasing order."""

    def __init__(self, text: str) -> None:
        self.text, self.at, self.line = text, 0, 1

    def of(self, position: int) -> int:
        if position < self.at:  # a reference definition found after the links
            return self.text.count("\n", 0, position) + 1
        self.line += self.text.count("\n", self.at, position)
        self.at = position
        return self.line


def _find(text: str, code: Sequence[tuple[int, int]] | None = None) -> list[_Found]:
    body = body_start(text)
    definitions = "]:" in text
    found: list[_Found] = []
    lines = _Lines(text)
    for m in _WIKI.finditer(text, 0, body):
        _add_wiki(text, m, lines, found)
    for start, end in gaps(code_spans(text) if code is None else code, body, len(text)):
        for m in _LINK.finditer(text, start, end):
            if m["wiki"] is not None:
                _add_wiki(text, m, lines, found)
            elif m["text"] is not None:
                at = m.start()
                if at and text[at - 1] == "!" and not (at > 1 and text[at - 2] == "\\"):
                    at -= 1
                _add_markdown(m, at, m["text"], lines, found)
        if definitions:
            for m in REFERENCE_DEFINITION.finditer(text, start, end):
                _add_markdown(m, m.start(), None, lines, found)
    if definitions:
        found.sort(key=lambda f: f.link.start)
    return found


def _add_wiki(text: str, m: re.Match[str], lines: _Lines, found: list[_Found]) -> None:
    inner, inner_start = m["wiki"], m.start("wiki")
    bar = inner.find("|")
    part = inner if bar < 0 else inner[:bar]
    alias = None if bar < 0 else inner[bar + 1 :].strip()
    if part.endswith("\\"):  # [[Target\|alias]] inside a table
        part = part[:-1]
    hash_at = part.find("#")
    name = part if hash_at < 0 else part[:hash_at]
    heading = None if hash_at < 0 else part[hash_at + 1 :].strip()
    target = name.strip()
    if not target:
        return
    t_start = inner_start + len(name) - len(name.lstrip())
    start = m.start()
    embed = start > 0 and text[start - 1] == "!" and not (start > 1 and text[start - 2] == "\\")
    start -= embed
    link = Link("embed" if embed else "wiki", target, heading, alias, start, m.end(),
                lines.of(start))  # fmt: skip
    found.append(_Found(link, t_start, t_start + len(target), False))


def _add_markdown(
    m: re.Match[str], start: int, alias: str | None, lines: _Lines, found: list[_Found]
) -> None:
    angle = m["angle"] is not None
    group = "angle" if angle else "raw"
    written = m[group]
    if not written:
        return
    hash_at = written.find("#")
    path = written if hash_at < 0 else written[:hash_at]
    if not path or path.startswith("//") or _SCHEME.match(path):
        return
    heading = None if hash_at < 0 else _decode(written[hash_at + 1 :])
    t_start = m.start(group)
    link = Link("markdown", _decode(path), heading, alias, start, m.end(), lines.of(start))
    found.append(_Found(link, t_start, t_start + len(path), angle))


def _decode(written: str) -> str:
    if "%" not in written and "\\" not in written:
        return written
    return urllib.parse.unquote(_ESCAPED.sub(r"\1", written))

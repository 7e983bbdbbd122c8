"""The link actions: ``wikilink`` turns mentions of note titles into links,
``check_links`` reports links that lead nowhere (or to one of several notes), and
``enforce_naming`` reports file names that break a pattern, or renames the file and
updates every link to it.

They see the repository through ``FileContext.notes`` and never touch the disk
themselves: a rename and the rewritten notes are effects the engine carries out
(compare-and-swap, journal first).
"""

from __future__ import annotations

import codecs
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Literal, TypeVar

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from wcmatch import glob

from scribe.actions import Content, Effects, FileContext
from scribe.actions.content import Pattern, TemplateText
from scribe.actions.effects import Effect, Finding, Rename, WriteFile
from scribe.files import sha256
from scribe.notes import Linker, find_links, link_path, note_title, rewrite_links, title_key
from scribe.notes.links import Link, Resolution

if TYPE_CHECKING:
    from scribe.notes.index import NoteIndex

_GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.BRACE | glob.NEGATE
_K = TypeVar("_K")
_V = TypeVar("_V")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _notes(ctx: FileContext, action: str) -> NoteIndex:
    if ctx.notes is None:
        raise ValueError(f"{action} needs the repository's notes, and none are at hand here")
    return ctx.notes


# -- wikilink --------------------------------------------------------------------------


class WikilinkParams(_Params):
    first_only: bool = Field(
        True, description="link only the first mention of each title (none if already linked)"
    )
    case_sensitive: bool = Field(False, description="a mention must have the title's case")
    min_length: int = Field(3, ge=1, description="titles shorter than this are never linked")
    exclude: list[str] = Field(default_factory=list, description="titles never linked")
    paths: list[str] | None = Field(
        None, min_length=1, description="globs of the notes whose titles count (default: all)"
    )

    @field_validator("paths")
    @classmethod
    def _globs(cls, paths: list[str] | None) -> list[str] | None:
        if paths is not None:
            try:
                glob.compile(paths, flags=_GLOB_FLAGS)
            except ValueError as exc:
                raise ValueError(f"invalid glob: {exc}") from None
        return paths


class _Linkers:
    """Compiled ``Linker``s, kept because building one for thousands of titles costs
    far more than linking a note with it.

    Two bounded caches, safe across threads: the titles each ``paths`` setting
    took from the last listing of notes it saw (re-derived only when the listing
    changes, so an unchanged repository costs one comparison per file), and the
    linkers by title set, least recently used dropped first.
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._titles: OrderedDict[tuple[str, ...] | None, tuple[list[str], tuple[str, ...]]]
        self._titles = OrderedDict()
        self._linkers: OrderedDict[tuple[tuple[str, ...], bool, int], Linker] = OrderedDict()

    def get(self, notes: NoteIndex, p: WikilinkParams) -> Linker:
        listing = notes.paths()
        scope = None if p.paths is None else tuple(p.paths)
        with self._lock:
            known = self._titles.get(scope)
            if known is not None and known[0] == listing:
                titles = known[1]
            else:
                titles = _linkable(listing, p.paths)
            _keep(self._titles, scope, (listing, titles), self._size)
            key = (titles, p.case_sensitive, p.min_length)
            linker = self._linkers.get(key)
            if linker is None:  # built under the lock: other threads want the same one
                linker = Linker(titles, case_sensitive=p.case_sensitive, min_length=p.min_length)
            _keep(self._linkers, key, linker, self._size)
            return linker


def _keep(cache: OrderedDict[_K, _V], key: _K, value: _V, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def _linkable(listing: Sequence[str], paths: Sequence[str] | None) -> tuple[str, ...]:
    """The titles of the notes ``paths`` selects, less those two notes share (a link
    to one would resolve to neither, whichever folder ``paths`` looks in)."""
    holders: dict[str, int] = {}
    for path in listing:
        key = title_key(note_title(path))
        holders[key] = holders.get(key, 0) + 1
    wanted = glob.compile(list(paths), flags=_GLOB_FLAGS).match if paths else None
    titles = {
        note_title(path)
        for path in listing
        if (wanted is None or wanted(path)) and holders[title_key(note_title(path))] == 1
    }
    return tuple(sorted(titles))


_LINKERS = _Linkers()


def plan_wikilink(ctx: FileContext, p: WikilinkParams) -> str:
    """Link mentions of other notes' titles (their stems), never in the frontmatter,
    code, links or URLs, never the note's own title, never a title two notes share::

        - id: link-mentions
          paths: ["notes/**/*.md"]
          do:
            - wikilink: {exclude: [Index], paths: ["notes/**"]}
    """
    linker = _LINKERS.get(_notes(ctx, "wikilink"), p)
    return linker.link(
        ctx.text, exclude=[note_title(ctx.path), *p.exclude], first_only=p.first_only
    )


# -- check_links -----------------------------------------------------------------------


class CheckLinksParams(_Params):
    fail: bool = Field(False, description="a broken or ambiguous link fails scribe check / run")


def check_links(ctx: FileContext, p: CheckLinksParams) -> Sequence[Effect]:
    """A ``broken_link`` or ``ambiguous_link`` finding for each wikilink, embed and
    relative markdown link (none in code) that does not lead to exactly one file.
    External links are not checked: nothing is ever fetched::

        - id: links-resolve
          paths: ["**/*.md"]
          do:
            - check_links: {fail: true}
    """
    notes = _notes(ctx, "check_links")
    found: list[Effect] = []
    for link in find_links(ctx.text):
        result = notes.resolve(link, ctx.path)
        if result.path is not None:
            continue
        written = _written(ctx.text, link)
        data: dict[str, object] = {"target": link.target, "kind": link.kind}
        if result.ambiguous:
            data["candidates"] = list(result.candidates)
            message = (
                f"{written} is ambiguous: {len(result.candidates)} notes are titled "
                f"{link.target!r} ({', '.join(result.candidates)}); link one by its path"
            )
            found.append(Finding("ambiguous_link", message, ctx.path, link.line, data, p.fail))
        else:
            message = f"{written} leads nowhere: {_why_broken(link, ctx.path)}"
            found.append(Finding("broken_link", message, ctx.path, link.line, data, p.fail))
    return found


def _written(text: str, link: Link, limit: int = 80) -> str:
    shown = text[link.start : link.end].replace("\r", "").replace("\n", " ")
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _why_broken(link: Link, source: str) -> str:
    if link.kind != "markdown" and "/" not in link.target:
        return f"no note, alias or file is named {link.target!r}"
    path = link_path(link, source)
    if path is None:
        return "it points outside the repository"
    return f"there is no file at {path}"


# -- enforce_naming --------------------------------------------------------------------


class EnforceNamingParams(_Params):
    pattern: Pattern = Field(description="regular expression the whole stem must match")
    rename_to: TemplateText | None = Field(
        None,
        description="template of the new stem, e.g. \"{{ stem | lower | replace(' ', '-') }}\"; "
        "needed to rename, shown as a suggestion in reports",
    )
    mode: Literal["report", "rename"] = Field(
        "report", description="report a bad name, or rename the file and update links to it"
    )
    fail: bool = Field(False, description="a name left bad fails scribe check / run")

    @model_validator(mode="after")
    def _renames_to_something(self) -> EnforceNamingParams:
        if self.mode == "rename" and self.rename_to is None:
            raise ValueError("mode 'rename' needs rename_to, the template of the new stem")
        return self


def enforce_naming(ctx: FileContext, p: EnforceNamingParams) -> Sequence[Effect]:
    """Report a file whose stem does not match ``pattern`` (``bad_name``), or rename
    it to ``rename_to`` and point every link to it at the new name. Nothing is
    renamed when the new name is taken (``name_taken``), when another note shares
    the file's title (``ambiguous_name``), or while a rename planned before it in
    the same run still has to move or rewrite this file or a note linking to it
    (``rename_deferred``: the next run does it)::

        - id: kebab-case-names
          paths: ["notes/**/*.md"]
          do:
            - enforce_naming:
                pattern: "^[a-z0-9]+(-[a-z0-9]+)*$"
                rename_to: "{{ stem | lower | replace(' ', '-') }}"
                mode: rename
    """
    if ctx.event.get("kind") == "deleted":
        return []
    path = PurePosixPath(ctx.path)
    stem, suffix = path.stem, path.suffix
    if _fits(ctx, p, stem):
        return []

    def finding(code: str, message: str, **data: object) -> Finding:
        return Finding(code, message, ctx.path, None, {"stem": stem, **data}, p.fail)

    bad = f"{stem!r} does not match {p.pattern}"
    if p.rename_to is None:
        return [finding("bad_name", bad)]
    new = str(ctx.render(p.rename_to)).strip()
    problem = _unusable(ctx, p, new)
    if problem is not None:
        return [
            finding(
                "bad_name", f"{bad}; {problem}" + ("; not renamed" if p.mode == "rename" else "")
            )
        ]
    if p.mode == "report":
        return [finding("bad_name", f"{bad}; rename it to {new!r}", suggested=new)]
    dest = str(path.with_name(new + suffix))
    notes = _notes(ctx, "enforce_naming")
    shared = _title_holders(notes, note_title(ctx.path), ctx.path)
    if shared:
        message = (
            f"{bad}, but it is not renamed: {', '.join(shared)} share its title, so the "
            "links to it cannot be told apart"
        )
        return [finding("ambiguous_name", message, candidates=shared)]
    with _PENDING.lock:  # one rename planned at a time: each sees those before it
        plans = _PENDING.of(notes)
        taken = _taken(notes, dest, ctx.path, plans)
        if taken:
            message = f"{bad}, but it is not renamed to {dest}: {taken}"
            return [finding("name_taken", message, dest=dest)]
        linking = _linking_to(notes, ctx.path)
        # A file that has left its old path before the index hears of it is in no
        # listing, so whether it links here cannot be told yet.
        moving = {old for old in plans.moves if old != ctx.path and notes.sha256(old) is None}
        rewritten = {ctx.path} & plans.chains.keys()
        waiting = sorted(rewritten | moving | plans.moves.keys() & set(linking))
        if waiting:
            message = (
                f"{bad}; not renamed to {dest} yet: a rename planned before it still has "
                f"to move or rewrite {', '.join(waiting)}; run again to finish"
            )
            return [finding("rename_deferred", message, dest=dest, waiting=waiting)]
        writes = [w for note in linking for w in plans.rewrite(notes, note, ctx.path, dest)]
        writes += _own_links(notes, ctx, dest)
        plans.moves[ctx.path] = dest
    # The rewrites come first: once the file has moved they have all been tried, which
    # is how a later rename knows that they are done (see _Plans).
    return [*writes, Rename(ctx.path, dest)]


def _fits(ctx: FileContext, p: EnforceNamingParams, stem: str) -> bool:
    return regex.fullmatch(p.pattern, stem, timeout=ctx.regex_timeout) is not None


def _unusable(ctx: FileContext, p: EnforceNamingParams, new: str) -> str | None:
    """Why the rendered stem cannot be the new name (None: it can)."""
    if not new or new in (".", "..") or any(c in new for c in "/\\\0\n\r"):
        return f"rename_to gives {new!r}, which is not a file name"
    if new == PurePosixPath(ctx.path).stem:
        return "rename_to leaves it as it is"
    if not _fits(ctx, p, new):
        return f"rename_to gives {new!r}, which does not match either"
    return None


def _title_holders(notes: NoteIndex, title: str, path: str) -> list[str]:
    """Other notes whose stem is ``title`` (links by it cannot tell them apart)."""
    result = notes.resolve(_by_title(title), path)
    return [c for c in result.candidates if c != path]


def _taken(notes: NoteIndex, dest: str, path: str, plans: _Plans) -> str | None:
    """What already answers to ``dest``, its path or its title (None: nothing)."""
    if notes.exists(dest):
        return "a file is there"
    key = title_key(note_title(dest))
    if any(title_key(note_title(new)) == key for old, new in plans.moves.items() if old != path):
        return "another rename planned before it takes that name"
    result: Resolution = notes.resolve(_by_title(note_title(dest)), path)
    others = [c for c in (result.path, *result.candidates) if c is not None and c != path]
    if others:
        return f"links by the title {note_title(dest)!r} already lead to {', '.join(others)}"
    return None


def _by_title(title: str) -> Link:
    return Link("wiki", title, None, None, 0, 0, 1)


def _own_links(notes: NoteIndex, ctx: FileContext, dest: str) -> list[WriteFile]:
    """The file's links to itself pointed at its new name, written before it moves,
    if it then holds the text this step saw (in the spelling it has on disk)."""
    text = rewrite_links(ctx.text, {ctx.path: dest}, source_path=ctx.path)
    read = _read(notes, ctx.path) if text != ctx.text else None
    base = _hash(ctx.text, read[2]) if read is not None else None
    return [] if base is None else [WriteFile(ctx.path, text, base_sha256=base)]


def _linking_to(notes: NoteIndex, old: str) -> list[str]:
    """The other notes that may link to ``old`` (by its title or its path)."""
    leads = {f"title:{title_key(note_title(old))}", f"path:{old}"}
    return [n for n in notes.paths() if n != old and not leads.isdisjoint(_TARGETS.of(notes, n))]


class _Targets:
    """What each note's links could lead to (``title:KEY``, ``path:PATH``), kept per
    note while its hash holds, so that a rename reads only the notes that may link
    to it: a rename of each of a few thousand badly named notes must not read the
    whole repository each time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_index: weakref.WeakKeyDictionary[NoteIndex, dict[str, tuple[str, frozenset[str]]]]
        self._by_index = weakref.WeakKeyDictionary()

    def of(self, notes: NoteIndex, note: str) -> frozenset[str]:
        digest = notes.sha256(note)  # cached by the index while the file's stat holds
        with self._lock:
            known = self._by_index.setdefault(notes, {}).get(note)
        if known is not None and known[0] == digest:
            return known[1]
        text = notes.text(note)  # read after the hash: a change in between reads again
        targets = frozenset() if text is None else _targets(text, note)
        if digest is not None:
            with self._lock:
                self._by_index.setdefault(notes, {})[note] = (digest, targets)
        return targets


def _targets(text: str, source: str) -> frozenset[str]:
    found: set[str] = set()
    for link in find_links(text):
        if link.kind == "markdown" or "/" in link.target:
            path = link_path(link, source)
            if path is not None:
                found.update((f"path:{path}", f"path:{path}.md"))
        else:
            target = link.target[:-3] if link.target.lower().endswith(".md") else link.target
            found.add(f"title:{title_key(target)}")
    return frozenset(found)


_TARGETS = _Targets()


#: How a text file's bytes can be spelt (``scribe.files.decode`` reads the same).
_SPELLINGS: tuple[tuple[bytes, str], ...] = (
    (b"", "utf-8"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
)


def _read(notes: NoteIndex, path: str) -> tuple[str, str, tuple[bytes, str]] | None:
    """``path``'s text, the hash of the very bytes it was decoded from, and how they
    are spelt (BOM, encoding).

    The index hands out text and hash separately; the hash is taken only when it is
    the hash of that text in one of the spellings a file can have, so a rewrite is
    never based on a hash of some other content (it would then replace that).
    """
    for _ in range(2):  # a second try if the file changed between the two calls
        text, digest = notes.text(path), notes.sha256(path)
        if text is None or digest is None:
            return None
        for spelling in _SPELLINGS:
            if _hash(text, spelling) == digest:
                return text, digest, spelling
    return None


def _hash(text: str, spelling: tuple[bytes, str]) -> str | None:
    try:
        return sha256(spelling[0] + text.encode(spelling[1]))
    except UnicodeEncodeError:
        return None


@dataclass
class _Chain:
    """The rewrites of one note planned by renames that may not have run yet: all of
    them applied to the text it had when the first was planned."""

    text: str
    spelling: tuple[bytes, str]
    renames: dict[str, str]
    #: Hashes the note may hold meanwhile: where it started, then each planned text.
    states: list[str]


@dataclass
class _Plans:
    """Renames planned and not yet done, for one repository.

    The engine plans a batch of files before it runs their effects, and another
    note is written only if it still holds what the write was planned from. So the
    second of two renames that rewrite one note plans its text from the same start
    as the first, with both renames applied, once for each content the note may
    hold by the time it runs (before the first's write, or after it): whichever
    runs first, the note ends up with both links updated. A file that a pending
    rename moves must not be rewritten by another, nor moved while another still
    rewrites it: that rename waits for the next run. A rename is done once its file
    has moved (its rewrites come before the move); a chain lapses once its renames
    are done or its note holds something else.
    """

    moves: dict[str, str] = field(default_factory=dict)  # old path -> new, not done yet
    chains: dict[str, _Chain] = field(default_factory=dict)

    def prune(self, notes: NoteIndex) -> None:
        self.moves = {old: move for old, move in self.moves.items() if notes.exists(old)}
        self.chains = {
            note: chain
            for note, chain in self.chains.items()
            if self.moves.keys() & chain.renames.keys() and notes.sha256(note) in chain.states
        }

    def rewrite(self, notes: NoteIndex, note: str, old: str, new: str) -> list[WriteFile]:
        """The writes that point ``note``'s links to ``old`` at ``new``."""
        chain = self.chains.get(note)
        if chain is None:
            read = _read(notes, note)
            if read is None:
                return []
            chain = _Chain(read[0], read[2], {}, [read[1]])
        renames = {**chain.renames, old: new}
        # Titles are matched against the renamed paths alone: a file renamed earlier
        # in the chain may have moved already, and none of them has an ambiguous title.
        text = rewrite_links(chain.text, renames, source_path=note)
        digest = _hash(text, chain.spelling)
        if digest is None or digest == chain.states[0]:
            return []  # no link of its leads to ``old`` after all
        if digest not in chain.states:  # (it is when a rename is planned again)
            chain = _Chain(chain.text, chain.spelling, renames, [*chain.states, digest])
            self.chains[note] = chain
        return [
            WriteFile(note, text, base_sha256=state) for state in chain.states if state != digest
        ]


class _Pending:
    """The ``_Plans`` of each repository's notes, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._plans: weakref.WeakKeyDictionary[NoteIndex, _Plans] = weakref.WeakKeyDictionary()

    def of(self, notes: NoteIndex) -> _Plans:
        """The plans for ``notes``, without those done (call with ``lock`` held)."""
        plans = self._plans.setdefault(notes, _Plans())
        plans.prune(notes)
        return plans


_PENDING = _Pending()


BUILTINS = (
    Content(
        "wikilink",
        WikilinkParams,
        plan_wikilink,
        "Link mentions of other notes' titles as [[wikilinks]], never in code or links.",
    ),
    Effects(
        "check_links",
        CheckLinksParams,
        check_links,
        "Report wikilinks, embeds and relative links that lead nowhere or are ambiguous.",
    ),
    Effects(
        "enforce_naming",
        EnforceNamingParams,
        enforce_naming,
        "Report file names that break a pattern, or rename the file and update links to it.",
    ),
)

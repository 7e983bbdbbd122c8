"""The repository's notes: listed once, then kept current by the engine's events.

``NoteIndex`` answers what link tools ask about the whole repository (which
notes exist, which note a title means, what a note's frontmatter says) without
walking the tree or re-reading files for each question. The tree is walked on
first use; after that the engine reports each change (``changed``, ``moved``,
``removed``) and only that path is looked at again.

It is the only part of ``scribe.notes`` that touches the disk. Files are read
through ``scribe.files.read_text``, so the index sees exactly what the engine
sees, confined to the root; it never follows a directory symlink (that would
list the same notes twice, making their titles ambiguous, or loop) and lists a
file symlink only when it leads to a regular file inside the root.
"""

from __future__ import annotations

import os
import posixpath
import stat
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from wcmatch import glob

from scribe.errors import Skipped
from scribe.files import DEFAULT_MAX_FILE_BYTES, TextFile, is_temp_name, read_text
from scribe.frontmatter import FrontmatterError, find_block, parse
from scribe.notes.links import Link, Resolution, note_title, resolve_link, title_key
from scribe.watch import IGNORED_DIRS

_GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.BRACE
#: Resolutions kept at most (a few MB); the cache starts over when it is full.
_MAX_RESOLVED = 100_000
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class _Entry:
    """What is known of one file as of its last read."""

    stamp: tuple[int, int]  # (mtime_ns, size): the cache is valid while they hold
    sha256: str | None
    aliases: tuple[str, ...]  # title keys
    frontmatter: Mapping[str, Any] | None  # None: not parsed yet
    problem: str | None


class NoteIndex:
    """The markdown notes under ``root`` (those matching ``paths``) and the other
    files beside them, which links may lead to as well.

    ``deny`` is called with repository-relative POSIX paths (a folder's with a
    trailing ``/``); what it refuses is neither listed nor read, and neither are
    the folders the watcher leaves alone (``.git``, ``.scribe``, ``node_modules``...)
    or Scribe's temp files. Safe to use from several threads.
    """

    def __init__(
        self,
        root: Path,
        *,
        paths: Sequence[str] = ("**/*.md",),
        deny: Callable[[str], bool] | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        self.root = Path(os.path.realpath(root))
        self._is_note = glob.compile(list(paths), flags=_GLOB_FLAGS).match
        self._deny = deny
        self._max_file_bytes = max_file_bytes
        self._lock = threading.RLock()
        self._reading_aliases = threading.Lock()
        self._listed = False
        self._notes: set[str] = set()
        self._files: set[str] = set()  # everything else
        self._stems: dict[str, set[str]] = {}  # title key -> notes
        self._names: dict[str, set[str]] = {}  # file name key -> other files
        self._aliases: dict[str, set[str]] = {}  # alias key -> notes (of those read)
        self._alias_keys: dict[str, tuple[str, ...]] = {}  # note -> its keys in _aliases
        self._unread: set[str] = set()  # notes whose aliases are not known yet
        self._entries: dict[str, _Entry] = {}
        self._generation: dict[str, int] = {}  # bumped by every event on a path
        self._sorted: list[str] | None = None
        self._revision = 0
        # Where links lead, while the revision holds: a knowledge base links the same
        # few titles from thousands of notes.
        self._resolved: dict[tuple[str, str, str], Resolution] = {}
        self._resolved_at = 0

    @property
    def revision(self) -> int:
        """A number that changes whenever anything read from the index may have gone
        stale: a note or file listed or dropped, or a note read before has changed.
        What is computed from the index can be kept while it stays the same."""
        with self._lock:
            return self._revision

    # -- the listing ---------------------------------------------------------------

    def paths(self) -> list[str]:
        """Every note, sorted, as repository-relative POSIX paths."""
        self._list()
        with self._lock:
            if self._sorted is None:
                self._sorted = sorted(self._notes)
            return list(self._sorted)

    def is_note(self, path: str) -> bool:
        """Whether ``path`` is one of the notes."""
        self._list()
        with self._lock:
            if path in self._notes:
                return True
        rel = self._relative(path, check_deny=False)
        with self._lock:
            return rel in self._notes

    def exists(self, path: str) -> bool:
        """Whether ``path`` is a note or another (not denied) file of the repository."""
        self._list()
        with self._lock:
            if path in self._notes or path in self._files:
                return True
        rel = self._relative(path, check_deny=False)
        with self._lock:
            return rel in self._notes or rel in self._files

    def titles(self) -> list[str]:
        """One title per note (its stem), in the order of ``paths()``: a title given
        twice is one that two notes share, so links to it are ambiguous."""
        return [note_title(path) for path in self.paths()]

    def by_title(self, title: str) -> list[str]:
        """The notes ``title`` names, without regard to case: those with that stem,
        then those listing it among their frontmatter ``aliases``."""
        key = title_key(title)
        self._list()
        self._read_aliases()
        with self._lock:
            stems = sorted(self._stems.get(key, ()))
            return stems + sorted(self._aliases.get(key, set()).difference(stems))

    def resolve(self, link: Link, source_path: str) -> Resolution:
        """Where ``link``, found in ``source_path``, leads (the rule is in
        ``scribe.notes.links``): ``.path`` when it leads to one file, ``.ambiguous``
        with ``.candidates`` when its title names several notes, else ``.broken``."""
        self._list()
        key = _resolution_key(link, source_path)
        with self._lock:
            if self._resolved_at != self._revision:
                self._resolved.clear()
                self._resolved_at = self._revision
            known = self._resolved.get(key)
        if known is not None:
            return known
        revision = self._resolved_at
        result = resolve_link(
            link, source_path, exists=self.exists, named=self._named, is_dir=self._is_dir
        )
        # What a folder on disk decides (a markdown link to a directory, or its
        # absence) is not in the listing, so the revision cannot vouch for it.
        on_disk = link.kind == "markdown" and (result.path is None or not self.exists(result.path))
        with self._lock:
            if not on_disk and self._revision == revision == self._resolved_at:
                if len(self._resolved) >= _MAX_RESOLVED:
                    self._resolved.clear()
                self._resolved[key] = result
        return result

    def _named(self, title: str) -> list[str]:
        key = title_key(title)
        with self._lock:
            found = self._stems.get(key) or self._names.get(key)
            if found:
                return sorted(found) if len(found) > 1 else [*found]
        self._read_aliases()  # only now: it reads every note not read yet
        with self._lock:
            return sorted(self._aliases.get(key, ()))

    def _is_dir(self, path: str) -> bool:
        rel = self._relative(path)
        if rel is None or self._denied(rel + "/"):
            return False
        return self._kind(rel) == "dir"

    # -- reading -------------------------------------------------------------------

    def text(self, path: str) -> str | None:
        """The decoded text of ``path``; None when it cannot be read (``problem``
        says why)."""
        file = self._read(path)
        return file.text if file is not None else None

    def sha256(self, path: str) -> str | None:
        """The SHA-256 of ``path``'s bytes (cached while its mtime and size hold)."""
        rel = self._readable(path)
        if rel is None:
            return None
        entry = self._current(rel)
        if entry is not None and entry.sha256 is not None:
            return entry.sha256
        file = self._read(rel)  # what was read, even if an event made it too old to keep
        return file.sha256 if file is not None else None

    def frontmatter(self, path: str) -> Mapping[str, Any]:
        """``path``'s frontmatter fields, read-only (cached while its mtime and size
        hold). Empty when there is none and when it cannot be read or parsed:
        ``problem`` tells those apart."""
        rel = self._readable(path)
        if rel is None:
            return _EMPTY
        entry = self._current(rel)
        if entry is None or entry.frontmatter is None:
            file = self._read(rel, with_frontmatter=True)
            if file is None:
                return _EMPTY
            # Not the cache: an event during the read may have kept it from storing
            # the entry, and what was read is still the file as it was then.
            current = self._current(rel)
            if current is None or current.frontmatter is None:
                current = _entry_of(file, parsed=True)
            entry = current
        return entry.frontmatter if entry.frontmatter is not None else _EMPTY

    def problem(self, path: str) -> str | None:
        """Why the last ``text`` or ``frontmatter`` of ``path`` came back empty
        (missing, denied, binary, too large, invalid frontmatter); None if fine."""
        rel = self._readable(path)
        if rel is None:
            return self._refusal(path)
        with self._lock:
            entry = self._entries.get(rel)
        return entry.problem if entry is not None else None

    def _readable(self, path: str) -> str | None:
        """``path`` normalised, if the index may read it (a listed path was checked
        by the walk already)."""
        with self._lock:
            if path in self._notes or path in self._files:
                return path
        return self._relative(path)

    def _current(self, rel: str) -> _Entry | None:
        """The cached entry for ``rel`` if the file still has its mtime and size."""
        with self._lock:
            entry = self._entries.get(rel)
        if entry is None:
            return None
        try:
            st = os.stat(os.path.join(self.root, rel))
        except OSError:
            return None
        return entry if entry.stamp == (st.st_mtime_ns, st.st_size) else None

    def _read(self, path: str, *, with_frontmatter: bool = False) -> TextFile | None:
        rel = self._readable(path)
        if rel is None:
            return None
        with self._lock:
            generation = self._generation.get(rel, 0)
        file: TextFile | None = None
        try:
            file = read_text(self.root, rel, max_bytes=self._max_file_bytes)
        except FileNotFoundError:
            problem: str | None = "the file does not exist"
        except Skipped as exc:
            problem = str(exc)
        except OSError as exc:
            problem = f"cannot be read: {exc.strerror or exc}"
        if file is None:
            self._store(rel, generation, _Entry((0, 0), None, (), None, problem))
            return None
        with self._lock:
            known = self._entries.get(rel)
        stamp = (file.mtime_ns, len(file.raw))
        if (
            known is None
            or (known.stamp, known.sha256) != (stamp, file.sha256)
            or (with_frontmatter and known.frontmatter is None)
        ):
            known = _entry_of(file, parsed=with_frontmatter)
        self._store(rel, generation, known)  # the same bytes are not parsed again
        return file

    def _store(self, rel: str, generation: int, entry: _Entry) -> None:
        """Keep ``entry`` unless an event on ``rel`` came after the read began (then
        the reader had stale content: the revision says so)."""
        with self._lock:
            if self._generation.get(rel, 0) != generation:
                self._revision += 1
                return
            self._entries[rel] = entry
            if rel in self._notes:
                self._learn_aliases(rel, entry.aliases)
                self._unread.discard(rel)

    def _read_aliases(self) -> None:
        """Read every note whose aliases are not known yet (once; events keep it up).

        One thread reads them; the others wait for it rather than read every note
        again beside it."""
        with self._lock:
            if not self._unread:
                return
        with self._reading_aliases:
            with self._lock:
                unread = sorted(self._unread)
            for rel in unread:
                self._read(rel)  # stores the aliases, or none for an unreadable note

    def _learn_aliases(self, rel: str, keys: tuple[str, ...]) -> None:
        self._forget_aliases(rel)
        for key in keys:
            self._aliases.setdefault(key, set()).add(rel)
        if keys:
            self._alias_keys[rel] = keys

    def _forget_aliases(self, rel: str) -> None:
        for key in self._alias_keys.pop(rel, ()):
            holders = self._aliases.get(key)
            if holders is not None:
                holders.discard(rel)
                if not holders:
                    del self._aliases[key]

    # -- events ----------------------------------------------------------------------

    def changed(self, path: str) -> None:
        """``path`` was created or modified (a folder: everything below it is looked
        at again); a path that is gone is removed."""
        rel = self._relative(path)
        if rel is None:
            return
        with self._lock:
            known = rel in self._notes or rel in self._files or not self._listed
        if known and self._current(rel) is not None:
            return  # the same mtime and size as when it was read: nothing to redo
        self._invalidate(rel)
        if not self._listed:
            return
        kind = self._kind(rel)
        with self._lock:
            if kind == "file":
                self._add(rel)
                return
            self._discard(rel)
            if kind == "dir":  # what it holds now replaces what was listed below it
                self._discard_below(rel)
                for found in self._walk(rel):
                    self._add(found)

    def moved(self, path: str, dest: str) -> None:
        """``path`` (a file or a folder) was moved to ``dest``."""
        self.removed(path)
        self.changed(dest)

    def removed(self, path: str) -> None:
        """``path`` (a file or a folder) was deleted."""
        rel = self._relative(path, check_deny=False)
        if rel is None:
            return
        with self._lock:
            self._invalidate(rel)
            self._discard(rel)
            self._discard_below(rel)

    def _discard_below(self, folder: str) -> None:
        prefix = folder + "/"
        for rel in [p for p in (*self._notes, *self._files) if p.startswith(prefix)]:
            self._invalidate(rel)
            self._discard(rel)

    def _invalidate(self, rel: str) -> None:
        """Forget what was read of ``rel``; its aliases stay known until it is read
        again (dropping them would make a link by alias look broken meanwhile)."""
        with self._lock:
            self._generation[rel] = self._generation.get(rel, 0) + 1
            if rel in self._entries:
                self._revision += 1
            if rel in self._notes:
                self._unread.add(rel)
            self._entries.pop(rel, None)

    def _add(self, rel: str) -> None:
        if self._is_note(rel):
            if rel not in self._notes:
                self._revision += 1
                self._notes.add(rel)
                self._stems.setdefault(title_key(note_title(rel)), set()).add(rel)
                self._sorted = None
                entry = self._entries.get(rel)  # read before it was listed
                if entry is None:
                    self._unread.add(rel)
                if entry is not None:
                    self._learn_aliases(rel, entry.aliases)
        elif rel not in self._files:
            self._revision += 1
            self._files.add(rel)
            self._names.setdefault(title_key(posixpath.basename(rel)), set()).add(rel)

    def _discard(self, rel: str) -> None:
        if rel in self._notes or rel in self._files:
            self._revision += 1
        if rel in self._notes:
            self._forget_aliases(rel)
            self._notes.discard(rel)
            self._unread.discard(rel)
            _drop(self._stems, title_key(note_title(rel)), rel)
            self._sorted = None
        elif rel in self._files:
            self._files.discard(rel)
            _drop(self._names, title_key(posixpath.basename(rel)), rel)
        self._entries.pop(rel, None)

    # -- the walk ------------------------------------------------------------------

    def _list(self) -> None:
        if self._listed:
            return
        with self._lock:
            if self._listed:
                return
            for rel in self._walk(""):
                self._add(rel)
            self._listed = True

    def _walk(self, top: str) -> Iterator[str]:
        """Every listable file below ``top`` ("" for the root)."""
        root = str(self.root)
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                entries = os.scandir(os.path.join(root, folder) if folder else root)
            except OSError:
                continue
            with entries:
                for entry in entries:
                    rel = f"{folder}/{entry.name}" if folder else entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if entry.name not in IGNORED_DIRS and not self._denied(rel + "/"):
                                stack.append(rel)
                        elif is_temp_name(entry.name) or self._denied(rel):
                            continue
                        elif entry.is_file(follow_symlinks=False) or (
                            entry.is_symlink() and self._inside(entry.path)
                        ):
                            yield rel
                    except OSError:
                        continue

    def _inside(self, path: str) -> bool:
        """Whether a symlink leads to a regular file inside the root."""
        real = os.path.realpath(path)
        root = str(self.root)
        return real.startswith(root + os.sep) and os.path.isfile(real)

    def _kind(self, rel: str) -> Literal["file", "dir"] | None:
        """What ``rel`` is on disk, as the walk would see it: a directory on the way
        that is a symlink means it is not listed at all."""
        current = str(self.root)
        parts = rel.split("/")
        try:
            for part in parts[:-1]:
                current = os.path.join(current, part)
                if not stat.S_ISDIR(os.lstat(current).st_mode):
                    return None
            current = os.path.join(current, parts[-1])
            mode = os.lstat(current).st_mode
        except OSError:
            return None
        if stat.S_ISDIR(mode):
            return "dir"
        if is_temp_name(parts[-1]):
            return None
        if stat.S_ISREG(mode) or (stat.S_ISLNK(mode) and self._inside(current)):
            return "file"
        return None

    def _relative(self, path: str, *, check_deny: bool = True) -> str | None:
        """``path`` normalised; None if it leaves the root, lies in a folder the
        index skips, or (with ``check_deny``) is denied: ``_refusal`` says which."""
        return None if self._refusal(path, check_deny=check_deny) else _normal(path)

    def _refusal(self, path: str, *, check_deny: bool = True) -> str:
        """Why the index will not list or read ``path`` ("" when it will)."""
        rel = _normal(path)
        if rel in (".", "..") or rel.startswith(("/", "../")):
            return f"{path} is not a path inside the repository"
        parts = rel.split("/")
        skipped = next((part for part in parts if part in IGNORED_DIRS), None)
        if skipped is not None:
            return f"{rel} is inside {skipped}/, a folder Scribe leaves alone"
        if check_deny:
            folders = ("/".join(parts[: i + 1]) + "/" for i in range(len(parts) - 1))
            if self._denied(rel) or any(self._denied(folder) for folder in folders):
                return f"{rel} is on the denylist"
        return ""

    def _denied(self, rel: str) -> bool:
        return self._deny is not None and self._deny(rel)


def _resolution_key(link: Link, source_path: str) -> tuple[str, str, str]:
    """What a link's resolution depends on besides the index: its target, and the
    source's folder when the target is relative to it."""
    target = link.target
    if link.kind == "markdown":
        folder = "" if target.startswith("/") else posixpath.dirname(source_path)
        return ("markdown", target, folder)
    if target.startswith(("./", "../")):
        return ("wiki", target, posixpath.dirname(source_path))
    return ("wiki", target, "")


def _normal(path: str) -> str:
    return posixpath.normpath(path.replace(os.sep, "/")) if path else "."


def _entry_of(file: TextFile, *, parsed: bool) -> _Entry:
    """The cache entry for a file just read. Its frontmatter is parsed only when
    asked for, or when it mentions aliases: checking for those must stay cheap,
    since every note is read for them."""
    stamp = (file.mtime_ns, len(file.raw))
    try:
        block = find_block(file.text)
    except FrontmatterError as exc:
        return _Entry(stamp, file.sha256, (), _EMPTY, str(exc))
    if block is None:
        return _Entry(stamp, file.sha256, (), _EMPTY, None)
    if not parsed and "alias" not in file.text[block.yaml_start : block.yaml_end]:
        return _Entry(stamp, file.sha256, (), None, None)
    try:
        data = parse(file.text).data
    except FrontmatterError as exc:
        return _Entry(stamp, file.sha256, (), _EMPTY, str(exc))
    return _Entry(stamp, file.sha256, _alias_keys(data), MappingProxyType(dict(data)), None)


def _alias_keys(data: Mapping[str, Any]) -> tuple[str, ...]:
    value = data.get("aliases", data.get("alias"))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(title_key(v.strip()) for v in value if isinstance(v, str) and v.strip())


def _drop(keyed: dict[str, set[str]], key: str, rel: str) -> None:
    holders = keyed.get(key)
    if holders is not None:
        holders.discard(rel)
        if not holders:
            del keyed[key]

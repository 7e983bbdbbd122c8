"""A recursive inotify watcher for Linux (through inotify_simple).

inotify watches single directories, so this keeps one watch per directory and a
map from watch descriptor to path, adds watches as directories appear, rewrites the
map when a directory is moved, and pairs ``IN_MOVED_FROM``/``IN_MOVED_TO`` by cookie
so a rename is one move, an editor's "write temp then rename" is one modification,
and a move out of the tree is a deletion.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from inotify_simple import INotify
from inotify_simple import flags as F

from scribe.events import EventKind
from scribe.files import is_temp_name
from scribe.watch import Change, Emit, Ignore, WatchLimitReached, scan

_MASK = (
    F.CREATE
    | F.DELETE
    | F.MODIFY
    | F.CLOSE_WRITE
    | F.MOVED_FROM
    | F.MOVED_TO
    | F.DELETE_SELF
    | F.DONT_FOLLOW
    | F.EXCL_UNLINK
    | F.ONLYDIR
)


class InotifyTree:
    """Watches every directory below ``root``; ``read`` turns raw events into ``Change``s."""

    def __init__(self, root: Path, ignore: Ignore, emit: Emit) -> None:
        self.root = root
        self.ignore = ignore
        self.emit = emit
        self.inotify = INotify()
        self.dirs: dict[int, str] = {}  # watch descriptor -> relative dir ('' is the root)
        self.known: set[str] = set()  # files seen, to tell a replace from a create
        self._unpaired: dict[int, tuple[str, bool]] = {}  # cookie -> (path, is_dir) moved away
        self._own_swaps: set[int] = set()  # cookies of moves out of Scribe's temp files
        self._writing: set[str] = set()  # files modified and not yet closed
        self._add_tree("", initial=True)

    def __enter__(self) -> InotifyTree:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.inotify.close()

    # -- watches -----------------------------------------------------------------

    def _add_watch(self, rel_dir: str) -> bool:
        try:
            wd = self.inotify.add_watch(self.root / rel_dir if rel_dir else self.root, _MASK)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise WatchLimitReached(exc.errno, "inotify watch limit reached") from None
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ELOOP):
                return False
            raise
        self.dirs[wd] = rel_dir
        return True

    def _add_tree(self, rel_dir: str, *, initial: bool = False) -> list[str]:
        """Watch ``rel_dir`` and everything below; return the files found in it."""
        if not self._add_watch(rel_dir):
            return []
        files: list[str] = []
        stack = [rel_dir]
        while stack:
            current = stack.pop()
            try:
                entries = list(os.scandir(self.root / current if current else self.root))
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue
            for entry in entries:
                rel = f"{current}/{entry.name}" if current else entry.name
                is_dir = entry.is_dir(follow_symlinks=False)
                if self.ignore(rel, is_dir):
                    continue
                if is_dir:
                    if self._add_watch(rel):
                        stack.append(rel)
                else:
                    files.append(rel)
        self.known.update(files)
        if not initial:
            # Created before its directory's watch existed. Not ``closed``: its writer
            # may still be writing (``cp -r``, ``mkdir d && editor d/x``), and a rewrite
            # now would swap the file away under it and lose the rest of its writes.
            # Its close, if still to come, is reported by the new watch.
            for rel in files:
                self.emit(Change(EventKind.CREATED, rel))
        return files

    def _drop_tree(self, rel_dir: str) -> None:
        prefix = rel_dir + "/"
        for wd, path in list(self.dirs.items()):
            if path == rel_dir or path.startswith(prefix):
                del self.dirs[wd]
                with contextlib.suppress(OSError):  # already gone with its directory
                    self.inotify.rm_watch(wd)
        for rel in sorted(p for p in self.known if p.startswith(prefix)):
            self.known.discard(rel)
            self.emit(Change(EventKind.DELETED, rel, closed=True))

    def _move_tree(self, old: str, new: str) -> None:
        old_prefix, new_prefix = old + "/", new + "/"
        for wd, path in list(self.dirs.items()):
            if path == old:
                self.dirs[wd] = new
            elif path.startswith(old_prefix):
                self.dirs[wd] = new_prefix + path[len(old_prefix) :]
        for rel in sorted(p for p in self.known if p.startswith(old_prefix)):
            self.known.discard(rel)
            dest = new_prefix + rel[len(old_prefix) :]
            self.known.add(dest)
            self.emit(Change(EventKind.MOVED, rel, dest, closed=True))

    # -- events ------------------------------------------------------------------

    def read(self, timeout_ms: int) -> bool:
        """Handle one batch of events; True when the kernel queue overflowed."""
        events = self.inotify.read(timeout=timeout_ms if not self._unpaired else 10)
        if not events:
            self._flush_unpaired()
            return False
        overflow = False
        for event in events:
            if event.mask & F.Q_OVERFLOW:
                overflow = True
                continue
            self._handle(event)
        if overflow:
            self.rescan()
        return overflow

    def drain(self) -> None:
        """Handle every event the kernel has already queued (at a stop: so that what
        was saved just before it is handed over, not left unread)."""
        while events := self.inotify.read(timeout=0):
            if any(event.mask & F.Q_OVERFLOW for event in events):
                self.rescan()
                continue
            for event in events:
                self._handle(event)
        self._flush_unpaired()

    def rescan(self) -> None:
        """After an overflow: re-add watches and report every file, so none is missed."""
        self._unpaired.clear()
        self._own_swaps.clear()
        self._writing.clear()
        found = set(self._add_tree_quiet())
        for rel in sorted(self.known - found):
            self.emit(Change(EventKind.DELETED, rel, closed=True))
        for rel in sorted(found):
            # Not ``closed``: an overflow comes with a burst of writes (a checkout, a
            # copy), some perhaps still under way; their closes are reported as usual.
            self.emit(Change(EventKind.MODIFIED, rel))
        self.known = found

    def _add_tree_quiet(self) -> list[str]:
        found = list(scan(self.root, self.ignore))
        for wd in list(self.dirs):
            del self.dirs[wd]
        self._add_tree("", initial=True)
        return found

    def _flush_unpaired(self) -> None:
        for path, is_dir in self._unpaired.values():
            if path:
                self._gone(path, is_dir)
        self._unpaired.clear()

    def _settle_unpaired(self, rel: str) -> None:
        """A path moved away (not yet known to be out of the tree) is being reused:
        report it gone now, before the new arrival, not after it at the next flush
        (which would delete what was just created, or unwatch a new directory)."""
        for cookie, (path, is_dir) in list(self._unpaired.items()):
            if path == rel:
                del self._unpaired[cookie]
                self._gone(path, is_dir)

    def _gone(self, path: str, is_dir: bool) -> None:
        if is_dir:
            self._drop_tree(path)
        elif path in self.known:
            self.known.discard(path)
            self.emit(Change(EventKind.DELETED, path, closed=True))

    def _handle(self, event: Any) -> None:
        mask = event.mask
        if mask & F.IGNORED:
            self.dirs.pop(event.wd, None)
            return
        parent = self.dirs.get(event.wd)
        if parent is None or not event.name:
            return
        rel = f"{parent}/{event.name}" if parent else event.name
        is_dir = bool(mask & F.ISDIR)
        if not is_dir and is_temp_name(event.name):
            self._own_temp_event(mask, event.cookie)
            return
        if mask & F.MOVED_TO and event.cookie in self._own_swaps:
            # Scribe's own write landing (its temp file swapped or renamed in): already
            # recorded by the engine, so reporting it would only cost an echo check.
            self._own_swaps.discard(event.cookie)
            self.known.add(rel)
            return
        ignored = self.ignore(rel, is_dir)
        if mask & F.MOVED_FROM:
            self._unpaired[event.cookie] = (rel, is_dir) if not ignored else ("", is_dir)
            return
        if mask & F.MOVED_TO:
            source, _ = self._unpaired.pop(event.cookie, ("", is_dir))
            self._settle_unpaired(rel)
            if not ignored:
                self._moved_in(source, rel, is_dir)
            elif source and (is_dir or not os.path.lexists(self.root / source)):
                # Renamed to an ignored name (e.g. a backup~): gone. Unless something
                # already stands in its place, like an editor's backup-then-write,
                # whose new file reports itself.
                self._gone(source, is_dir)
            return
        if mask & F.CREATE:
            self._settle_unpaired(rel)
        if ignored:
            return
        if is_dir:
            if mask & F.CREATE:
                self._add_tree(rel)
            elif mask & F.DELETE:
                self._drop_tree(rel)
            return
        if mask & F.CREATE:
            kind = EventKind.MODIFIED if rel in self.known else EventKind.CREATED
            self.known.add(rel)
            self.emit(Change(kind, rel))
        elif mask & F.DELETE:
            self.known.discard(rel)
            self._writing.discard(rel)
            self.emit(Change(EventKind.DELETED, rel, closed=True))
        elif mask & F.CLOSE_WRITE:
            self.known.add(rel)
            self._writing.discard(rel)
            self.emit(Change(EventKind.MODIFIED, rel, closed=True))
        elif mask & F.MODIFY and rel not in self._writing:
            # Every write() is an IN_MODIFY; until the writer closes, the first says it all.
            self._writing.add(rel)
            self.emit(Change(EventKind.MODIFIED, rel))

    def _own_temp_event(self, mask: int, cookie: int) -> None:
        """Events of Scribe's temp files. A swap (``RENAME_EXCHANGE``) is two moves:
        temp -> target, whose cookie marks the arrival at the target as Scribe's own,
        and target -> temp, which must not leave the target looking moved away."""
        if mask & F.MOVED_FROM:
            self._own_swaps.add(cookie)
        elif mask & F.MOVED_TO:
            self._unpaired.pop(cookie, None)

    def _moved_in(self, source: str, rel: str, is_dir: bool) -> None:
        if is_dir:
            if source:
                self._move_tree(source, rel)
            else:
                self._add_tree(rel)
            return
        if source and rel in self.known:
            # Renamed over an existing file (an editor's "safe write" from a temp name
            # Scribe does not know): the file was replaced, so it was modified.
            self._gone(source, is_dir=False)
            self.emit(Change(EventKind.MODIFIED, rel, closed=True))
            return
        if source:
            self.known.discard(source)
            self.known.add(rel)
            self.emit(Change(EventKind.MOVED, source, rel, closed=True))
            return
        # Renamed in from outside the tree or from an ignored temp name: an editor's
        # atomic save replaces the file; otherwise it is new here.
        kind = EventKind.MODIFIED if rel in self.known else EventKind.CREATED
        self.known.add(rel)
        self.emit(Change(kind, rel, closed=True))

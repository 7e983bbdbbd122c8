"""Watching a repository: what to ignore, and two ways to hear about changes.

On Linux, inotify is read directly: it tells when a writer *closes* a file
(``IN_CLOSE_WRITE``), so Scribe can act the moment a save completes instead of
guessing with a timer, and it blocks while idle instead of ticking. Everywhere else
watchfiles reports changes; with ``--poll`` (network drives, WSL, bind mounts) or
when the inotify watch limit is reached, the tree is polled. Without closes, a short
quiet window stands in for them. All report ``Change`` records to the same callback.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec
from wcmatch import glob

from scribe.events import EventKind
from scribe.files import TEMP_PREFIX, TEMP_SUFFIX

log = logging.getLogger("scribe")

#: Directories never watched or scanned.
IGNORED_DIRS = frozenset(
    {".git", ".hg", ".svn", ".scribe", "node_modules", "__pycache__", ".venv", ".tox"}
)
#: Editor swap, backup and temp files, and Scribe's own temp files.
IGNORED_FILES = (
    "*.swp",
    "*.swx",
    "*.swo",
    "*~",
    ".#*",
    "#*#",
    "4913",
    "*.tmp",
    "*___jb_tmp___",
    "*___jb_old___",
    f"{TEMP_PREFIX}*{TEMP_SUFFIX}",
)


@dataclass(frozen=True)
class Change:
    """A raw change. ``closed`` means the writer is known to be done with the file."""

    kind: EventKind
    path: str
    dest: str | None = None
    closed: bool = False

    @property
    def target(self) -> str:
        return self.dest if self.kind is EventKind.MOVED and self.dest else self.path


Emit = Callable[[Change], None]


class Ignore:
    """Decides which repository-relative paths Scribe leaves alone."""

    def __init__(
        self, root: Path, globs: list[str] | tuple[str, ...] = (), *, gitignore: bool = False
    ) -> None:
        # One regex for the fixed names: this runs on every event the kernel reports.
        self._files = re.compile("|".join(fnmatch.translate(p) for p in IGNORED_FILES))
        self._globs = (
            glob.compile(list(globs), flags=glob.GLOBSTAR | glob.DOTGLOB | glob.BRACE)
            if globs
            else None
        )
        self._git: pathspec.GitIgnoreSpec | None = None
        gitignore_file = root / ".gitignore"
        if gitignore and gitignore_file.is_file():
            lines = gitignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
            self._git = pathspec.GitIgnoreSpec.from_lines(lines)

    def __call__(self, rel: str, is_dir: bool = False) -> bool:
        parts = rel.split("/")
        if any(part in IGNORED_DIRS for part in parts):
            return True
        if not is_dir and self._files.match(parts[-1]):
            return True
        if self._globs is not None and self._globs.match(rel):
            return True
        return self._git is not None and self._git.match_file(rel + "/" if is_dir else rel)


def scan(root: Path, ignore: Ignore, under: str = "") -> Iterator[str]:
    """Every file below ``under`` (relative paths); never follows directory symlinks,
    so a symlink loop cannot hang it."""
    stack = [under]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = list(os.scandir(root / rel_dir if rel_dir else root))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in sorted(entries, key=lambda e: e.name, reverse=True):
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if ignore(rel, is_dir):
                continue
            if is_dir:
                stack.append(rel)
            else:
                yield rel


class WatchLimitReached(OSError):
    """inotify's per-user watch limit is exhausted."""


def _watch_limit_help() -> str:
    try:
        current = Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip()
    except OSError:
        current = "?"
    return (
        f"inotify watch limit reached (fs.inotify.max_user_watches = {current}). Raise it with\n"
        "  sudo sysctl fs.inotify.max_user_watches=524288\n"
        "and make it permanent with\n"
        "  echo fs.inotify.max_user_watches=524288 | sudo tee /etc/sysctl.d/60-scribe.conf\n"
        "Falling back to polling until then."
    )


def watch(
    root: Path,
    ignore: Ignore,
    emit: Emit,
    stop: threading.Event,
    *,
    poll: bool = False,
    on_rescan: Callable[[], None] = lambda: None,
    on_polling: Callable[[], None] = lambda: None,
    ready: threading.Event | None = None,
) -> None:
    """Report changes under ``root`` to ``emit`` until ``stop`` is set.

    ``ready`` is set once every directory is being watched. Never returns early:
    if inotify cannot be used, it polls instead, and calls ``on_polling`` first
    (polling sees no closes, and sees changes up to ``POLL_INTERVAL`` late).
    """
    report_all = False
    if not poll and sys.platform.startswith("linux"):
        try:
            if not _watch_inotify(root, ignore, emit, stop, on_rescan=on_rescan, ready=ready):
                return
            # The limit was reached on a new directory while running: what changed since
            # (that directory's files included) is unknown, so report every file.
            report_all = True
        except WatchLimitReached:
            pass
        log.warning(_watch_limit_help())
        poll = True
    if poll:
        on_polling()
        _watch_polling(root, ignore, emit, stop, ready=ready, report_all=report_all)
    else:
        _watch_watchfiles(root, ignore, emit, stop, ready=ready)


#: Seconds between two looks at the tree when polling (longer if a look takes longer).
POLL_INTERVAL = 0.1


def _snapshot(root: Path, ignore: Ignore) -> dict[str, tuple[int, int, int]]:
    found: dict[str, tuple[int, int, int]] = {}
    for rel in scan(root, ignore):
        try:
            st = os.lstat(root / rel)
        except OSError:
            continue  # gone since the scan saw it
        found[rel] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return found


def _watch_polling(
    root: Path,
    ignore: Ignore,
    emit: Emit,
    stop: threading.Event,
    *,
    ready: threading.Event | None,
    report_all: bool,
) -> None:
    """Compare every file's ``lstat`` with the previous look.

    Not watchfiles' poller: it compares modification times in whole seconds, so a
    save in the same second as the change before it was never reported. This one
    also skips ignored directories instead of walking them.
    """
    before = _snapshot(root, ignore)
    if ready is not None:
        ready.set()
    for rel in sorted(before) if report_all else ():
        emit(Change(EventKind.MODIFIED, rel))
    pause = POLL_INTERVAL
    while True:
        stopping = stop.wait(pause)  # one more look after the stop: report what it saw
        started = time.monotonic()
        after = _snapshot(root, ignore)
        for rel in sorted(before.keys() - after.keys()):
            emit(Change(EventKind.DELETED, rel))
        for rel, signature in sorted(after.items()):
            if rel not in before:
                emit(Change(EventKind.CREATED, rel))
            elif before[rel] != signature:
                emit(Change(EventKind.MODIFIED, rel))
        before = after
        if stopping:
            return
        pause = max(POLL_INTERVAL, time.monotonic() - started)  # at most half the time looking


def _watch_watchfiles(
    root: Path,
    ignore: Ignore,
    emit: Emit,
    stop: threading.Event,
    *,
    ready: threading.Event | None,
) -> None:
    import watchfiles

    kinds = {
        watchfiles.Change.added: EventKind.CREATED,
        watchfiles.Change.modified: EventKind.MODIFIED,
        watchfiles.Change.deleted: EventKind.DELETED,
    }

    def relative(path: str) -> str:
        return (
            Path(path).resolve().relative_to(root).as_posix() if Path(path).is_absolute() else path
        )

    def keep(_change: watchfiles.Change, path: str) -> bool:
        try:
            return not ignore(relative(path))
        except ValueError:
            return False

    if ready is not None:
        ready.set()
    for changes in watchfiles.watch(
        root,
        watch_filter=keep,
        stop_event=stop,
        debounce=200,
        step=5,
        ignore_permission_denied=True,
        raise_interrupt=False,
    ):
        for change, path in sorted(changes, key=lambda c: c[1]):
            try:
                rel = relative(path)
            except ValueError:
                continue
            if change is not watchfiles.Change.deleted and (root / rel).is_dir():
                continue
            emit(Change(kinds[change], rel))


def _watch_inotify(
    root: Path,
    ignore: Ignore,
    emit: Emit,
    stop: threading.Event,
    *,
    on_rescan: Callable[[], None],
    ready: threading.Event | None,
) -> bool:
    """Watch until ``stop``; True if it gave up on reaching the watch limit while
    running (reaching it at the start raises ``WatchLimitReached``)."""
    from scribe.inotify import InotifyTree

    with InotifyTree(root, ignore, emit) as tree:
        if ready is not None:
            ready.set()
        while not stop.is_set():
            try:
                if tree.read(timeout_ms=250):
                    on_rescan()
            except WatchLimitReached:
                return True
        tree.drain()
    return False

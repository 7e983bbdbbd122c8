"""Hot reload: notice that the rules or settings file changed, once it holds still.

The files are polled (two ``stat`` calls every ``interval``) rather than watched:
the rules file may live outside the repository or inside ``.scribe/``, which the
watcher ignores, and polling sees editors' in-place writes and renames alike. A
change is reported once the file has looked the same for one interval, so a save
caught half-written is not reported as an invalid file.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger("scribe")

#: Seconds between two looks: a save takes effect within about two of them.
INTERVAL = 0.2

Signature = tuple[int, int, int, int] | None


def signature(path: Path) -> Signature:
    """What changes when a file is written or replaced (None: it does not exist)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def snapshot(paths: Sequence[Path]) -> dict[Path, Signature]:
    """How ``paths`` look now: the state a later change is measured against."""
    return {path: signature(path) for path in paths}


def watch_files(
    paths: Callable[[], Sequence[Path]],
    changed: Callable[[Path], None],
    stop: threading.Event,
    *,
    since: Mapping[Path, Signature],
    interval: float = INTERVAL,
) -> None:
    """Call ``changed(path)`` whenever one of ``paths()`` changes, until ``stop``.

    ``since`` is the :func:`snapshot` taken when the files were loaded, so that a
    save made before this thread's first look is reported too. ``paths`` is asked
    again on every look, so the set can change (the settings may name another rules
    file); a path seen for the first time is taken as it is. ``changed`` runs on
    this thread; an exception in it is logged, never fatal.
    """
    applied: dict[Path, Signature] = dict(since)
    last = dict(applied)
    while not stop.wait(interval):
        for path in paths():
            now = signature(path)
            if path not in applied:
                applied[path] = last[path] = now
                continue
            if now != applied[path] and now == last[path]:
                applied[path] = now
                try:
                    changed(path)
                except Exception:  # a reload must never stop the watch
                    log.exception("could not reload %s", path)
            last[path] = now

"""Start-up: finish what a crash interrupted, then catch up with what changed.

Three passes, before the watcher's first event is handled:

1. **Open work.** A write is journaled before its swap and closed by a
   ``work.done`` entry after it. A write with no ``work.done`` was interrupted:
   the file says how far it got (it holds the write's ``after_hash``: done; its
   ``before_hash``: never happened; anything else: a user saved over it). Each is
   closed in the journal, and the files that still need the rules are returned.
2. **Left at the stop.** A graceful stop that could not process everything in
   time journals the changes it left (``work.pending``); they are handed back.
3. **Catch-up.** Files that differ from the last hash the journal holds for them,
   files created since Scribe last ran, and journaled files that are gone. A file
   whose size and mtime match what Scribe last recorded is not read at all.

Replays are harmless: the engine re-plans every file and writes by compare-and-swap.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scribe import records
from scribe.events import EventKind
from scribe.files import clear_leftovers, hash_file, other_process_alive
from scribe.journal.entry import (
    ENGINE_STARTED,
    FILE_REVERTED,
    FILE_WRITTEN,
    WORK_DONE,
    WORK_PENDING,
    Entry,
    Journal,
    NewEntry,
    Query,
)
from scribe.state import State

log = logging.getLogger("scribe")


@dataclass(frozen=True)
class Pending:
    """A path to hand the engine at start-up, and why."""

    path: str
    kind: EventKind
    why: str


def finish_open_work(journal: Journal, root: Path) -> tuple[list[NewEntry], list[Pending]]:
    """Close every interrupted write; the entries to journal and the paths to redo."""
    closing: list[NewEntry] = []
    redo: list[Pending] = []
    intents = [
        *journal.open_work(pending_kind=FILE_WRITTEN, done_kind=WORK_DONE),
        *journal.open_work(pending_kind=FILE_REVERTED, done_kind=WORK_DONE),  # scribe undo
    ]
    for intent in sorted(intents, key=lambda entry: entry.seq):
        assert intent.path is not None  # every write entry names its file
        if _under_way(intent):
            continue  # another Scribe (a watcher, while `scribe run` starts) is writing it

        clear_leftovers(root / intent.path, intent.before_hash, intent.after_hash)
        current = hash_file(root / intent.path)
        if current is not None and current == intent.after_hash:
            closing.append(records.done(intent.seq, intent.path, "written", recovered=True))
            continue
        status = "not written" if current == intent.before_hash else "superseded"
        closing.append(records.done(intent.seq, intent.path, status, written=False, recovered=True))
        if current is not None:
            redo.append(Pending(intent.path, EventKind.MODIFIED, f"interrupted write ({status})"))
    return closing, redo


#: A write takes milliseconds once journaled; an older one whose pid runs belongs to
#: a process that reused the pid, not to a write still under way.
_WRITE_WINDOW = 60.0


def _under_way(intent: Entry) -> bool:
    pid = intent.payload.get("pid")
    if pid == os.getpid():
        return True  # this process's own write, journaled since it started: in flight
    if not isinstance(pid, int) or not other_process_alive(pid):
        return False
    written_at = datetime.fromisoformat(intent.ts.replace("Z", "+00:00"))
    return (datetime.now(UTC) - written_at).total_seconds() < _WRITE_WINDOW


def left_at_stop(journal: Journal, previous: Entry | None) -> list[Pending]:
    """The changes the last run's stop left unprocessed (``previous``: the newest
    entry before this start)."""
    if previous is None:
        return []
    newest = journal.query(Query(kinds=[WORK_PENDING], newest_first=True, limit=1))
    if not newest or newest[0].seq > previous.seq:
        return []
    starts = journal.query(Query(kinds=[ENGINE_STARTED], after_seq=newest[0].seq))
    if any(start.seq <= previous.seq for start in starts):
        return []  # an older run's: a later start has caught up with those already
    paths = newest[0].payload.get("paths", {})
    return [
        Pending(path, EventKind(kind), "left unprocessed at the last stop")
        for path, kind in paths.items()
        if kind in EventKind._value2member_map_
    ]


def catch_up(
    journal: Journal, state: State, root: Path, files: Iterable[str], *, last_seen: str | None
) -> list[Pending]:
    """What changed while Scribe was not running, judged against the journal.

    ``files`` is every path the watcher would see (ignore rules applied);
    ``last_seen`` the time of the newest entry before this start (None: the journal
    was empty, so there is nothing to catch up with). Files the journal never heard
    of count as created only if they are newer than that: older ones predate
    Scribe, and ``--scan`` is how to process those.
    """
    if last_seen is None:
        return []
    # A margin for coarse file-system clocks, and for a file created just as Scribe
    # died: redoing such a file is harmless, missing it is not.
    stopped_at = datetime.fromisoformat(last_seen.replace("Z", "+00:00")).timestamp() - 2.0
    known = journal.last_hashes()
    found: list[Pending] = []
    on_disk: set[str] = set()
    for rel in files:
        on_disk.add(rel)
        try:
            st = os.stat(root / rel)
        except OSError:
            continue
        expected = known.get(rel)
        if expected is None:
            if st.st_mtime > stopped_at:
                found.append(Pending(rel, EventKind.CREATED, "created while Scribe was stopped"))
            continue
        seen = state.get(rel)
        if (
            seen is not None
            and seen.sha256 == expected
            and (seen.size, seen.mtime_ns) == (st.st_size, st.st_mtime_ns)
        ):
            continue  # unchanged, known without reading it
        if hash_file(root / rel) != expected:
            found.append(Pending(rel, EventKind.MODIFIED, "changed while Scribe was stopped"))
    found.extend(
        Pending(rel, EventKind.DELETED, "deleted while Scribe was stopped")
        for rel in sorted(known.keys() - on_disk)
        if not (root / rel).exists()  # ignored now, or outside the scan: not deleted
    )
    return found

"""``scribe undo SEQ``: put back what a journaled write replaced.

The journal keeps each write's unified diff and both hashes, not the old content.
Undo applies the diff backwards to the file, and only when the file still holds
exactly the write's ``after_hash``; the result must hash to ``before_hash``, so a
diff that cannot be reversed faithfully is refused, never half-applied. The revert
is itself a compare-and-swap write, journaled before the swap.
"""

from __future__ import annotations

import re

from scribe import records
from scribe.errors import ContentChanged, FileBusy, ScribeError
from scribe.files import TextFile, sha256, write_cas
from scribe.journal.entry import FILE_REVERTED, FILE_WRITTEN, Entry, NewEntry
from scribe.journal.writer import JournalWriter

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class UndoError(ScribeError):
    exit_code = 1


def reverse(after: str, diff: str) -> str:
    """The text ``diff`` was made from, given the text it produced."""
    lines = after.splitlines(keepends=True)
    result: list[str] = []
    at = 0  # index into ``lines`` of the next line not yet copied
    body = diff.splitlines(keepends=True)
    i = 0
    while i < len(body) and not body[i].startswith("@@"):
        i += 1  # the ---/+++ header
    while i < len(body):
        match = _HUNK.match(body[i])
        if match is None:
            raise UndoError(f"unreadable diff line: {body[i]!r}")
        new_start = int(match.group(3))
        new_count = 1 if match.group(4) is None else int(match.group(4))
        start = new_start - 1 if new_count else new_start
        result.extend(lines[at:start])
        at = start
        i += 1
        while i < len(body) and not body[i].startswith("@@"):
            mark, text = body[i][:1], body[i][1:]
            if mark in (" ", "+"):
                if at >= len(lines) or lines[at] != text:
                    raise UndoError("the diff does not match the file")
                at += 1
            if mark in (" ", "-"):
                result.append(text)
            i += 1
    result.extend(lines[at:])
    return "".join(result)


def written_path(entry: Entry) -> str:
    """The file ``entry`` wrote; UndoError unless it is a write with a diff."""
    if entry.kind != FILE_WRITTEN or entry.diff is None or entry.path is None:
        raise UndoError(f"entry {entry.seq} is a {entry.kind} entry, not a write Scribe made")
    return entry.path


def undo(file: TextFile, entry: Entry, journal: JournalWriter, actor: str) -> Entry:
    """Revert ``entry`` (a ``file.written``) on ``file``; returns the journaled revert."""
    written_path(entry)
    assert entry.diff is not None
    if file.sha256 != entry.after_hash:
        raise UndoError(f"{entry.path} has changed since entry {entry.seq} wrote it; not reverting")
    before = reverse(file.text, entry.diff)
    data = file.encode(before)
    if sha256(data) != entry.before_hash:
        raise UndoError(f"entry {entry.seq}'s diff cannot rebuild the old content exactly")
    revert = NewEntry(
        FILE_REVERTED,
        actor,
        path=entry.path,
        before_hash=entry.after_hash,
        after_hash=entry.before_hash,
        diff=reverse_diff(entry.diff),
        message=f"reverted entry {entry.seq}",
        payload={"reverts": entry.seq},
        ref=entry.seq,
    )
    try:
        sealed = write_journaled(file, data, revert, journal)
    except ContentChanged:
        raise UndoError(f"{entry.path} changed while reverting; left as it was") from None
    assert sealed is not None  # there is a journal
    return sealed


def write_journaled(
    file: TextFile, data: bytes, intent: NewEntry, journal: JournalWriter | None
) -> Entry | None:
    """A write made for someone (not by a rule): ``intent`` is committed before the
    compare-and-swap, and closed with how it ended. Returns the sealed intent (None
    without a journal); raises what ``write_cas`` raises, once the intent is closed."""
    sealed = journal.append([intent])[-1] if journal is not None else None

    def close(status: str, **extra: object) -> None:
        if journal is not None and sealed is not None:
            journal.append([records.done(sealed.seq, intent.path, status, **extra)])

    try:
        write_cas(file, data)
    except ContentChanged:
        close("conflict", written=False)
        raise
    except FileBusy:
        close("busy", written=False)
        raise
    close("written")
    return sealed


def reverse_diff(diff: str) -> str:
    """The same diff read the other way round (``+`` and ``-`` swapped)."""
    out = []
    for line in diff.splitlines(keepends=True):
        if line.startswith("--- a/"):
            out.append("--- b/" + line[6:])
        elif line.startswith("+++ b/"):
            out.append("+++ a/" + line[6:])
        elif match := _HUNK.match(line):
            old = match.group(1) + ("" if match.group(2) is None else f",{match.group(2)}")
            new = match.group(3) + ("" if match.group(4) is None else f",{match.group(4)}")
            out.append(f"@@ -{new} +{old} @@" + line[match.end() :])
        elif line[:1] == "+":
            out.append("-" + line[1:])
        elif line[:1] == "-":
            out.append("+" + line[1:])
        else:
            out.append(line)
    return "".join(out)

"""``journal.head``: the chain's end, kept outside the database.

A database cut short, or rewritten with every hash recomputed, is still a valid
chain; only a copy of its end kept elsewhere shows what is missing. After each
commit the store records the last entry's seq and hash here, and ``verify`` checks
that the database still holds exactly that entry.

The file has two fixed-size slots, ``<seq> <hash> <crc32>`` padded to 128 bytes;
seq ``n`` goes to slot ``n % 2`` with one ``pwrite``. A write cut short by a crash
spoils at most the slot being written, whose checksum then fails, and the other
slot still holds the previous head. The head is not synced: it is written only
after the commit it describes is on disk, so it can lag behind the database (after
a power cut, or when several processes finish in another order) but never run
ahead, and a lagging head still proves a minimum. Syncing it would cost every
one-entry append a second disk flush for no stronger guarantee.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from pathlib import Path

from scribe.journal.entry import JournalError

log = logging.getLogger("scribe")

SLOT = 128
_LINE = re.compile(rb"(\d+) ([0-9a-f]{64}) ([0-9a-f]{8}) *\n")


def _checksum(seq: int, hash_: str) -> str:
    return f"{zlib.crc32(f'{seq} {hash_}'.encode()):08x}"


def read_head(path: Path) -> tuple[int, str] | None:
    """The (seq, hash) of the newest intact slot; None if the file does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc}") from None
    slots = []
    for start in range(0, len(data), SLOT):
        match = _LINE.fullmatch(data[start : start + SLOT])
        if match:
            seq, hash_ = int(match[1]), match[2].decode()
            if match[3].decode() == _checksum(seq, hash_):
                slots.append((seq, hash_))
    if not slots:
        if data.strip(b"\0"):
            raise JournalError(f"{path} is garbled: neither slot holds a valid head")
        return None
    return max(slots)


class HeadFile:
    """Writes the head; opened on first use, so read-only users never create it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def write(self, seq: int, hash_: str) -> None:
        """Record (seq, hash). A failure is logged: the commit stands regardless."""
        line = f"{seq} {hash_} {_checksum(seq, hash_)}".ljust(SLOT - 1).encode() + b"\n"
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            os.pwrite(self._fd, line, (seq % 2) * SLOT)
        except OSError as exc:
            log.warning("could not update %s (entry %d is committed): %s", self.path, seq, exc)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

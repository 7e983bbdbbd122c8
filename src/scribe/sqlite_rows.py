"""Writing many rows to SQLite in few statements.

Python's ``sqlite3`` lets go of the interpreter lock around every step of a
statement, and ``executemany`` steps once per row. While other threads are busy
each step then waits its turn to take the lock back: with three busy threads, 1,000
rows took 1.7 s through ``executemany`` and 0.09 s sent 200 rows to a statement.
The journal and the state store write from a busy process, so they send rows in
multi-row statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

#: Parameters one statement may hold (SQLite's limit: 32,766 from 3.32, 999 before).
MAX_PARAMETERS = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
#: Rows per statement: powers of two only, so that the connection's statement cache
#: holds a few statements per table instead of one per batch size seen (each of
#: hundreds of parameters), and large statements gain nothing past 256 rows.
SIZES = (256, 128, 64, 32, 16, 8, 4, 2, 1)


def _chunks(rows: Sequence[Sequence[object]]) -> list[Sequence[Sequence[object]]]:
    width = len(rows[0])
    chunks, at = [], 0
    while at < len(rows):
        left = len(rows) - at
        size = next(n for n in SIZES if (n <= left and n * width <= MAX_PARAMETERS) or n == 1)
        chunks.append(rows[at : at + size])
        at += size
    return chunks


def insert_rows(
    db: sqlite3.Connection, head: str, rows: Sequence[Sequence[object]], tail: str = ""
) -> None:
    """Run ``{head} VALUES (...), (...) {tail}`` over ``rows`` (all of one width),
    a statement per chunk of ``SIZES`` rows (fewer where the parameter limit says)."""
    if not rows:
        return
    for chunk in _chunks(rows):
        row = "(" + ", ".join("?" * len(chunk[0])) + ")"
        values = ", ".join([row] * len(chunk))
        db.execute(f"{head} VALUES {values} {tail}", [value for r in chunk for value in r])


def delete_in(db: sqlite3.Connection, table: str, column: str, keys: Sequence[object]) -> None:
    """Delete the rows of ``table`` whose ``column`` is one of ``keys``."""
    if not keys:
        return
    for chunk in _chunks([(key,) for key in keys]):
        marks = ", ".join("?" * len(chunk))
        db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", [k for (k,) in chunk])

"""How a ``Query`` becomes one SQLite statement that the indexes can serve.

* Time: the store turns ``since``/``until`` into seq bounds first (``ts`` never
  decreases along the chain), so every filter combines with the primary key.
* Path globs use the rules' syntax and are matched exactly by wcmatch, registered
  as the SQL function ``scribe_glob``. Two cheaper sieves run first: the glob's
  literal prefix as an index range, and (for plain ``*``/``**``/``?`` globs) a
  SQLite ``GLOB`` that matches every path the glob does and maybe a few more,
  evaluated in C.
* Text goes to the FTS5 index with each word quoted, so punctuation and quotes in
  user input are searched for, never parsed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from wcmatch import glob

from scribe.journal.entry import Query

GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.BRACE | glob.CASE
#: A path prefix with fewer entries than this is read from the path index.
NARROW = 10_000
_MAGIC = "*?[{\\"


@functools.lru_cache(maxsize=64)
def _matcher(pattern: str) -> Any:
    return glob.compile(pattern, flags=GLOB_FLAGS)


def glob_match(pattern: str, path: str | None) -> bool:
    """The exact test, registered in SQLite as ``scribe_glob(pattern, path)``."""
    return path is not None and bool(_matcher(pattern).match(path))


def glob_prefix(pattern: str) -> str:
    """The literal start that every path matching ``pattern`` shares."""
    cut = min((i for i, c in enumerate(pattern) if c in _MAGIC), default=len(pattern))
    return pattern[:cut]


def _after_prefix(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix``."""
    while prefix and prefix[-1] == "\U0010ffff":
        prefix = prefix[:-1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


def sql_glob(pattern: str) -> str | None:
    """A SQLite GLOB matching at least every path ``pattern`` matches, if the pattern
    is made of literals, ``?``, ``*`` and ``**`` only (None for anything fancier).

    A globstar with its slashes becomes ``*``, as it may stand for no directory at all.
    """
    if any(c in pattern for c in "[{\\"):
        return None
    out: list[str] = []
    i = 0
    while i < len(pattern):
        stars = len(pattern[i:]) - len(pattern[i:].lstrip("*"))
        if not stars:
            out.append(pattern[i])
            i += 1
            continue
        i += stars
        if stars > 1:
            if out and out[-1] == "/":
                out.pop()
            if pattern[i : i + 1] == "/":
                i += 1
        if not out or out[-1] != "*":
            out.append("*")
    return "".join(out)


def fts_query(text: str) -> str | None:
    """User text as an FTS5 query: each word a quoted prefix phrase, all required.

    Quoting makes every character literal, so ``a-b "c`` is a search, never a
    syntax error. None when the text holds no word at all.
    """
    terms = [t for t in text.split() if any(c.isalnum() for c in t)]
    if not terms:
        return None
    return " ".join('"' + t.replace('"', '""') + '"*' for t in terms)


def prefix_probe(prefix: str) -> tuple[str, list[Any]]:
    """SQL counting the entries under ``prefix``, up to ``NARROW`` (a cheap index walk)."""
    upper = _after_prefix(prefix)
    bound = " AND path < ?" if upper is not None else ""
    sql = f"SELECT count(*) FROM (SELECT 1 FROM entries WHERE path >= ?{bound} LIMIT ?)"
    return sql, [prefix, *([upper] if upper is not None else []), NARROW]


def compile_query(
    q: Query,
    columns: str,
    first_seq: int | None,
    end_seq: int | None,
    under: Callable[[str], int],
) -> tuple[str, list[Any]] | None:
    """SQL and parameters for ``q`` over ``entries AS e``, or None if nothing can match.

    ``first_seq``/``end_seq`` are the seq bounds the store found for ``since``/``until``;
    ``under(prefix)`` counts entries under a path prefix (up to ``NARROW``).
    Which index drives the scan is decided here, not left to SQLite's guesses (it
    has no statistics on how paths, kinds and words are spread):

    * A glob's literal prefix holding fewer than ``NARROW`` entries is sought in
      the path index and its entries sorted; a broader one is only a filter while
      walking back along seq, which stops at the limit with nothing to sort.
    * Equality on path, kind or actor may use their indexes, which keep seq order.
    * Text without an exact path: the full-text index drives, in seq order
      (``CROSS JOIN`` fixes the loop order), so "the last 100" and ``-f`` stop
      early. With an exact path, the text's matches are collected once (``IN``).
      Never probed row by row, which FTS5 does slowly.
    """
    match = fts_query(q.text) if q.text is not None else None
    if q.text is not None and match is None:
        return None
    exact = q.path is not None or (
        q.path_glob is not None and glob_prefix(q.path_glob) == q.path_glob
    )
    text_drives = match is not None and not exact
    seq = "t.rowid" if text_drives else "e.seq"
    where: list[str] = []
    params: list[Any] = []

    def add(condition: str, *values: Any) -> None:
        where.append(condition)
        params.extend(values)

    if text_drives:
        add("t.entries_text MATCH ?", match)
    elif match is not None:
        add("e.seq IN (SELECT rowid FROM entries_text WHERE entries_text MATCH ?)", match)
    if first_seq is not None:
        add(f"{seq} >= ?", first_seq)
    if end_seq is not None:
        add(f"{seq} < ?", end_seq)
    if q.after_seq is not None:
        add(f"{seq} > ?", q.after_seq)
    if q.kinds:
        add(f"e.kind IN ({', '.join('?' * len(q.kinds))})", *q.kinds)
    if q.path is not None:
        add("e.path = ?", q.path)
    if q.path_glob is not None:
        prefix = glob_prefix(q.path_glob)
        if prefix == q.path_glob:  # no wildcard: one path
            add("e.path = ?", prefix)
        else:
            seek = bool(prefix) and under(prefix) < NARROW
            column = "e.path" if seek else "+e.path"  # unary + keeps SQLite off the index
            if prefix:
                add(f"{column} >= ?", prefix)
                if (upper := _after_prefix(prefix)) is not None:
                    add(f"{column} < ?", upper)
            if (sieve := sql_glob(q.path_glob)) is not None:
                add("+e.path GLOB ?", sieve)
            add("scribe_glob(?, e.path)", q.path_glob)
    if q.actor is not None:
        add("e.actor = ?", q.actor)
    source = (
        "entries_text AS t CROSS JOIN entries AS e ON e.seq = t.rowid"
        if text_drives
        else "entries AS e"
    )
    sql = f"SELECT {columns} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {seq} DESC" if q.newest_first else f" ORDER BY {seq}"
    if q.limit is not None:
        sql += " LIMIT ?"
        params.append(q.limit)
    return sql, params

"""How a ``Query`` becomes a PostgreSQL statement, and the words text search matches.

SQLite's FTS5 index (``unicode61`` tokenizer, quoted prefix phrases) decides what a
text search finds; PostgreSQL's own full-text parser splits text differently (a
path such as ``notes/sub/b.md`` is one token to it), so the words are made here
instead: ``words`` splits and folds as ``unicode61`` does, each entry keeps its
words in one column, one space apart, with `` | `` between path, message and
payload, and a query word becomes a ``LIKE`` pattern over that column, which a
trigram index serves. A phrase cannot run from one field into the next.

Time bounds are plain ``ts`` ranges (``ts`` never decreases along the chain and is
kept in the ``C`` collation). A path glob's literal prefix and a ``LIKE`` sieve run
in SQL; the exact match (wcmatch) runs on the rows the store streams back.
PostgreSQL's planner has statistics, so unlike SQLite's it is left to choose the
index.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from scribe.journal.entry import Query, stamp
from scribe.journal.search import glob_prefix, sql_glob

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """``text``'s words as FTS5's ``unicode61`` tokenizer makes them: runs of letters
    and digits, lower-cased, with diacritics removed."""
    if text.isascii():  # nothing to fold: most paths, messages and payloads
        return _WORD.findall(text.lower())
    folded = unicodedata.normalize("NFKD", text.lower())
    bare = "".join(c for c in folded if not unicodedata.combining(c))
    return _WORD.findall(unicodedata.normalize("NFC", bare))


def word_patterns(text: str) -> list[str] | None:
    """User text as ``LIKE`` patterns over ``words``, one per word of the text, all
    required: each is its words in a row, the last one a prefix (FTS5's quoted
    phrase with ``*``). None when the text holds no word at all."""
    terms = [words(term) for term in text.split() if any(c.isalnum() for c in term)]
    patterns = ["% " + " ".join(found) + "%" for found in terms if found]
    return patterns or None


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def compile_query(q: Query, columns: str) -> tuple[str, list[Any], str | None] | None:
    """SQL selecting ``columns`` for ``q``, its parameters, and the glob the rows must
    still match (checked by the caller), or None when nothing can match."""
    where: list[str] = []
    params: list[Any] = []

    def add(condition: str, *values: Any) -> None:
        where.append(condition)
        params.extend(values)

    if q.since is not None:
        add("ts >= %s", stamp(q.since))
    if q.until is not None:
        add("ts < %s", stamp(q.until))
    if q.after_seq is not None:
        add("seq > %s", q.after_seq)
    if q.before_seq is not None:
        add("seq < %s", q.before_seq)
    if q.kinds:
        add("kind = ANY(%s)", list(q.kinds))
    if q.event_types:
        types = list(q.event_types)
        add("(kind = ANY(%s) OR (kind = 'agent.event' AND event_type = ANY(%s)))", types, types)
    if q.path is not None:
        add("path = %s", q.path)
    check = None
    if q.path_glob is not None:
        prefix = glob_prefix(q.path_glob)
        if prefix == q.path_glob:
            add("path = %s", prefix)
        else:
            if prefix:
                add("path LIKE %s", _like_literal(prefix) + "%")
            if (sieve := sql_glob(q.path_glob)) is not None:
                like = "".join({"*": "%", "?": "_"}.get(c) or _like_literal(c) for c in sieve)
                add("path LIKE %s", like)
            check = q.path_glob
    if q.actor is not None:
        add("actor = %s", q.actor)
    for name in ("case_id", "execution_id", "agent_instance_id", "intent", "mode"):
        if (value := getattr(q, name)) is not None:
            add(f"{name} = %s", value)
    if q.project is not None:
        add("EXISTS (SELECT 1 FROM entry_projects p WHERE p.project = %s AND p.seq = e.seq)",
            q.project)  # fmt: skip
    if q.text is not None:
        patterns = word_patterns(q.text)
        if patterns is None:
            return None
        for pattern in patterns:
            add("words LIKE %s", pattern)
    sql = f"SELECT {columns} FROM entries e"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq " + ("DESC" if q.newest_first else "ASC")
    if q.limit is not None and check is None:
        sql += " LIMIT %s"
        params.append(q.limit)
    return sql, params, check

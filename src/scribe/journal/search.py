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
* Agents' payload keys (execution, agent instance, case, intent, mode, event type)
  are filed in ``entry_facets`` (facet, value, seq); a project is found through
  ``entry_projects``, which lists each entry under every project it names. Either
  one drives a scan joined to ``entries`` by seq. A row a facet yields is still
  checked against its payload, so only a facet missing (one not filed yet: the
  store files what is pending first) could make an answer wrong.
* One filter's index drives the scan, chosen here (``_driver``); the others only
  check the rows it yields.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from wcmatch import glob

from scribe.journal.entry import Query
from scribe.journal.schema import FACETS

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


#: ``Query`` fields filed as facets (event types aside, which also match kinds), the
#: most selective first.
PAYLOAD_KEYS = ("case_id", "execution_id", "agent_instance_id", "intent", "mode")
EVENT_TYPE = "event_type"
AGENT_EVENT = "agent.event"
_FACETED = "entry_facets AS f CROSS JOIN entries AS e ON e.seq = f.seq"


def uses_facets(q: Query) -> bool:
    """Whether ``q`` may be driven by ``entry_facets`` (which must then be up to date)."""
    return bool(q.event_types) or any(getattr(q, name) is not None for name in PAYLOAD_KEYS)


def _payload(facet: str) -> str:
    """The payload value of ``facet`` in the row; the ``json_valid`` term keeps a
    tampered, non-JSON row from failing the query."""
    return f"json_valid(e.payload) AND json_extract(e.payload, '{FACETS[facet]}')"


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def prefix_probe(prefix: str) -> tuple[str, list[Any]]:
    """SQL counting the entries under ``prefix``, up to ``NARROW`` (a cheap index walk)."""
    upper = _after_prefix(prefix)
    bound = " AND path < ?" if upper is not None else ""
    sql = f"SELECT count(*) FROM (SELECT 1 FROM entries WHERE path >= ?{bound} LIMIT ?)"
    return sql, [prefix, *([upper] if upper is not None else []), NARROW]


def types_probe(types: Sequence[str]) -> tuple[str, list[Any]]:
    """SQL counting, up to ``NARROW`` each, the entries of kinds ``types`` and the
    agent events of those event types (two index walks)."""
    marks = _marks(types)
    sql = (
        f"SELECT (SELECT count(*) FROM (SELECT 1 FROM entries WHERE kind IN ({marks}) LIMIT ?))"
        " + (SELECT count(*) FROM (SELECT 1 FROM entry_facets "
        f"WHERE facet = '{EVENT_TYPE}' AND value IN ({marks}) LIMIT ?))"
    )
    return sql, [*types, NARROW, *types, NARROW]


Probe = Callable[[str, list[Any]], int]


def _driver(q: Query, match: str | None, probe: Probe) -> str | None:
    """Which filter's index the scan walks, in seq order; the others are checked on
    the rows it yields. Selective filters first; broad ones only when nothing
    narrower was asked for, and a glob or event type only if it holds few entries."""
    if q.path is not None or (q.path_glob is not None and glob_prefix(q.path_glob) == q.path_glob):
        return "path"
    for name in ("case_id", "execution_id", "agent_instance_id", "intent"):
        if getattr(q, name) is not None:
            return name
    if match is not None:
        return "text"
    if q.project is not None:
        return "project"
    prefix = glob_prefix(q.path_glob) if q.path_glob is not None else ""
    if prefix and probe(*prefix_probe(prefix)) < NARROW:
        return "glob"
    if q.event_types and probe(*types_probe(q.event_types)) < NARROW:
        return "event_types"
    for name in ("kinds", "actor", "mode"):
        if getattr(q, name):
            return name
    return None


def compile_query(
    q: Query,
    columns: str,
    first_seq: int | None,
    end_seq: int | None,
    probe: Probe,
) -> tuple[str, list[Any]] | None:
    """SQL and parameters for ``q`` over ``entries AS e``, or None if nothing can match.

    ``first_seq``/``end_seq`` are the seq bounds the store found for ``since``/``until``;
    ``probe(sql, params)`` runs a counting statement (``prefix_probe``, ``types_probe``).
    Which index drives the scan is decided here (see ``_driver``), not left to
    SQLite's guesses: it has no statistics on how paths, kinds, payload keys and
    words are spread. Every other filter is written so that SQLite cannot use its
    index (unary ``+``), only check it on the rows the driver yields:

    * Every index ends with seq, so the driver yields entries in seq order: "the
      last 50" stops early, with nothing to sort.
    * Text without a selective driver: the full-text index drives (``CROSS JOIN``
      fixes the loop order). After a selective one (a path, case, execution, agent
      instance or intent), the text's matches within that driver's seq span are
      collected once (``IN``). Never probed row by row, which FTS5 does slowly.
    * A project is looked up in ``entry_projects``, which drives or is probed.
    * Event types match kinds or agent events' ``payload.event_type``: when they
      drive, each value's index range is one arm of a ``UNION`` merged in seq order.
    """
    match = fts_query(q.text) if q.text is not None else None
    if q.text is not None and match is None:
        return None
    driver = _driver(q, match, probe)
    faceted = driver in PAYLOAD_KEYS
    seq = "f.seq" if faceted else {"text": "t.rowid", "project": "p.seq"}.get(driver or "", "e.seq")
    where: list[str] = []
    params: list[Any] = []

    def add(condition: str, *values: Any) -> None:
        where.append(condition)
        params.extend(values)

    bounds = [
        (op, value)
        for op, value in (
            (">=", first_seq),
            ("<", end_seq),
            (">", q.after_seq),
            ("<", q.before_seq),
        )
        if value is not None
    ]
    if driver == "text":
        add("t.entries_text MATCH ?", match)
    elif faceted:
        add("f.facet = ? AND f.value = ?", driver, getattr(q, str(driver)))
    if match is not None and driver != "text":
        sql, values = _text_within(match, bounds, _selection(q, driver))
        add(sql, *values)
    if driver != "event_types":  # each arm of the union bounds its own seq
        for op, value in bounds:
            add(f"{seq} {op} ?", value)
    if q.kinds:
        add(f"{'' if driver == 'kinds' else '+'}e.kind IN ({_marks(q.kinds)})", *q.kinds)
    if q.event_types and driver != "event_types":
        add(
            f"(+e.kind IN ({_marks(q.event_types)}) OR (+e.kind = ? AND "
            f"{_payload(EVENT_TYPE)} IN ({_marks(q.event_types)})))",
            *q.event_types, AGENT_EVENT, *q.event_types,
        )  # fmt: skip
    if q.path is not None:
        add("e.path = ?", q.path)
    if q.path_glob is not None:
        prefix = glob_prefix(q.path_glob)
        if prefix == q.path_glob:  # no wildcard: one path
            add("e.path = ?", prefix)
        else:
            path = "e.path" if driver == "glob" else "+e.path"
            if prefix:
                add(f"{path} >= ?", prefix)
                if (upper := _after_prefix(prefix)) is not None:
                    add(f"{path} < ?", upper)
            if (sieve := sql_glob(q.path_glob)) is not None:
                add("+e.path GLOB ?", sieve)
            add("scribe_glob(?, e.path)", q.path_glob)
    if q.actor is not None:
        add(f"{'' if driver == 'actor' else '+'}e.actor = ?", q.actor)
    for name in PAYLOAD_KEYS:  # the driving facet too: its rows are checked, not trusted
        if (value := getattr(q, name)) is not None:
            add(f"{_payload(name)} = ?", value)
    if q.project is not None:
        if driver == "project":
            add("p.project = ?", q.project)
        else:
            add("EXISTS (SELECT 1 FROM entry_projects AS p WHERE p.project = ? AND p.seq = e.seq)",
                q.project)  # fmt: skip
    order = "DESC" if q.newest_first else "ASC"
    limit = [q.limit] if q.limit is not None else []
    if driver == "event_types":
        return _merged(q.event_types, columns, bounds, where, params, order, limit)
    source = (
        _FACETED
        if faceted
        else {
            "text": "entries_text AS t CROSS JOIN entries AS e ON e.seq = t.rowid",
            "project": "entry_projects AS p CROSS JOIN entries AS e ON e.seq = p.seq",
        }.get(driver or "", "entries AS e")
    )
    sql = f"SELECT {columns} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {seq} {order}" + (" LIMIT ?" if limit else "")
    return sql, params + limit


def _selection(q: Query, driver: str | None) -> tuple[str, list[Any]]:
    """Where a selective driver (a path or a facet) keeps its seqs, for their span."""
    if driver == "path":
        return "entries WHERE path = ?", [q.path if q.path is not None else q.path_glob]
    assert driver in PAYLOAD_KEYS
    return "entry_facets WHERE facet = ? AND value = ?", [driver, getattr(q, driver)]


def _text_within(
    match: str, bounds: list[tuple[str, int]], selection: tuple[str, list[Any]]
) -> tuple[str, list[Any]]:
    """The text's matches, collected once, but only within the seq bounds and the span
    of the driver's own entries (its first and last seq, two index lookups): FTS5 then
    reads only that stretch of each word's list. An execution's or a case's entries
    lie close together, so this is most of the cost saved for a common word."""
    rows, values = selection
    span = [(op, f"(SELECT {fn}(seq) FROM {rows})") for op, fn in ((">=", "min"), ("<=", "max"))]
    within = "".join(f" AND rowid {op} ?" for op, _ in bounds)
    within += "".join(f" AND rowid {op} {sub}" for op, sub in span)
    params = [match, *(value for _, value in bounds), *values, *values]
    return f"e.seq IN (SELECT rowid FROM entries_text WHERE entries_text MATCH ?{within})", params


def _merged(
    types: Sequence[str],
    columns: str,
    bounds: list[tuple[str, int]],
    where: list[str],
    params: list[Any],
    order: str,
    limit: list[int],
) -> tuple[str, list[Any]]:
    """One ``UNION`` arm per kind and per agent event type, each an index range in seq
    order with every other filter; SQLite merges them and stops at the limit."""
    common = "".join(f" AND {condition}" for condition in where)
    arms: list[str] = []
    values: list[Any] = []
    for kind in types:
        within = "".join(f" AND e.seq {op} ?" for op, _ in bounds)
        arms.append(f"SELECT e.seq FROM entries AS e WHERE e.kind = ?{within}{common}")
        values += [kind, *(value for _, value in bounds), *params]
    for event_type in types:
        within = "".join(f" AND f.seq {op} ?" for op, _ in bounds)
        arms.append(
            f"SELECT f.seq FROM {_FACETED} WHERE f.facet = '{EVENT_TYPE}' AND f.value = ?"
            f"{within} AND +e.kind = ? AND {_payload(EVENT_TYPE)} = ?{common}"
        )
        values += [event_type, *(value for _, value in bounds), AGENT_EVENT, event_type, *params]
    inner = " UNION ".join(arms)
    if limit:
        inner += f" ORDER BY 1 {order} LIMIT ?"
    sql = f"SELECT {columns} FROM entries AS e WHERE e.seq IN ({inner}) ORDER BY e.seq {order}"
    return sql, values + limit

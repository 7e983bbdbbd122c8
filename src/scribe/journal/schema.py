"""The SQLite journal's schema: forward migrations, and how entries are filed by project.

A database's ``PRAGMA user_version`` counts the migrations applied to it; opening
it applies the rest in one transaction. Migrations are never edited once released:
a change is a new one, so every database, however old, upgrades in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scribe.journal.entry import FILE_DELETED

#: Agents' payload keys filed in ``entry_facets``: facet name (a ``Query`` field) to
#: JSON path. Only text values are filed, as only text is ever asked for.
FACETS = {
    "case_id": "$.case_id",
    "execution_id": "$.execution_id",
    "agent_instance_id": "$.agent.instance_id",
    "intent": "$.intent",
    "mode": "$.mode",
    "event_type": "$.event_type",
}
_TOP_LEVEL = [name for name, key in FACETS.items() if key == f"$.{name}"]


def file_facets(after: str) -> str:
    """SQL filing the facets of every entry after seq ``after`` (an SQL expression):
    one pass over each payload for the top-level keys, one lookup for the nested one.
    A payload that is not JSON (only tampering makes one) is skipped, not an error."""
    (nested,) = (name for name in FACETS if name not in _TOP_LEVEL)
    keys = ", ".join(f"'{name}'" for name in _TOP_LEVEL)
    return f"""INSERT OR IGNORE INTO entry_facets (facet, value, seq)
        SELECT j.key, j.value, e.seq FROM entries AS e, json_each(e.payload) AS j
        WHERE e.seq > {after} AND json_valid(e.payload) AND j.key IN ({keys})
        AND j.type = 'text'
        UNION ALL
        SELECT '{nested}', json_extract(payload, '{FACETS[nested]}'), seq FROM entries
        WHERE seq > {after} AND json_valid(payload)
        AND json_type(payload, '{FACETS[nested]}') = 'text'"""


#: Forward migrations; the database's ``PRAGMA user_version`` counts those applied.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE entries (
            seq INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            kind TEXT NOT NULL,
            actor TEXT NOT NULL,
            path TEXT,
            before_hash TEXT,
            after_hash TEXT,
            diff TEXT,
            message TEXT NOT NULL,
            payload TEXT NOT NULL,
            ref INTEGER,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        # Every SQLite index ends with the rowid, so these are (ts, seq), (path, seq)...
        "CREATE INDEX entries_ts ON entries(ts)",
        "CREATE INDEX entries_path ON entries(path)",
        "CREATE INDEX entries_kind ON entries(kind)",
        "CREATE INDEX entries_actor ON entries(actor)",
        "CREATE INDEX entries_ref ON entries(ref, kind) WHERE ref IS NOT NULL",
        # Covers last_hashes(): only the entries that say what a file now holds.
        f"""CREATE INDEX entries_outcome ON entries(path, after_hash)
            WHERE path IS NOT NULL AND (after_hash IS NOT NULL OR kind = '{FILE_DELETED}')""",
        """CREATE VIRTUAL TABLE entries_text USING fts5(
            path, message, payload, content='entries', content_rowid='seq', columnsize=0)""",
        """CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries BEGIN
            SELECT RAISE(ABORT, 'the journal is append-only: entries cannot be changed');
        END""",
        """CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries BEGIN
            SELECT RAISE(ABORT, 'the journal is append-only: entries cannot be deleted');
        END""",
    ),
    # 2: the text index is updated in batches; this is how far it has got. (The
    # external-content index cannot say: its rowids are read from ``entries``.)
    (
        "CREATE TABLE text_progress (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER)",
        "INSERT INTO text_progress VALUES (1, (SELECT coalesce(max(seq), 0) FROM entries))",
    ),
    # 3: agents' queries. Partial indexes on the payload keys they filter by: engine
    # entries have none of these keys and get no index entries (an engine append
    # only evaluates the conditions). ``json_valid`` first, so a row whose payload is
    # not JSON (only tampering makes one) stays out of them instead of failing the
    # upgrade; ``verify`` reports it. ``entry_projects`` lists each entry under every
    # project it names (``payload.project`` and ``payload.affected_dev_projects``),
    # written in the entry's own transaction; it is as append-only as the entries.
    # Every statement may run again on a database that already has its object.
    (
        *(
            f"""CREATE INDEX IF NOT EXISTS entries_{name} ON entries(json_extract(payload, '{key}'))
                WHERE json_valid(payload) AND json_extract(payload, '{key}') IS NOT NULL"""
            for name, key in (
                ("execution", "$.execution_id"),
                ("agent_instance", "$.agent.instance_id"),
                ("case", "$.case_id"),
                ("intent", "$.intent"),
                ("mode", "$.mode"),
                ("event_type", "$.event_type"),
            )
        ),
        """CREATE TABLE IF NOT EXISTS entry_projects (
            project TEXT NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (project, seq)
        ) WITHOUT ROWID""",
        """INSERT OR IGNORE INTO entry_projects (project, seq)
            SELECT json_extract(payload, '$.project'), seq FROM entries
            WHERE json_valid(payload) AND json_type(payload, '$.project') = 'text'""",
        """INSERT OR IGNORE INTO entry_projects (project, seq)
            SELECT j.value, e.seq
            FROM entries AS e, json_each(e.payload, '$.affected_dev_projects') AS j
            WHERE json_valid(e.payload)
            AND json_type(e.payload, '$.affected_dev_projects') = 'array' AND j.type = 'text'""",
        """CREATE TRIGGER IF NOT EXISTS entry_projects_no_update
            BEFORE UPDATE ON entry_projects BEGIN
            SELECT RAISE(ABORT, 'the journal is append-only: entries cannot be changed');
        END""",
        """CREATE TRIGGER IF NOT EXISTS entry_projects_no_delete
            BEFORE DELETE ON entry_projects BEGIN
            SELECT RAISE(ABORT, 'the journal is append-only: entries cannot be deleted');
        END""",
    ),
    # 4: the payload keys are filed in ``entry_facets`` in batches, with the text index
    # (``text_progress`` says how far both have got), not by six expression indexes in
    # every append: those were five of the eleven pages a sentinel event's commit
    # wrote, and a dozen JSON parses for every engine entry, which has none of the
    # keys. Entries without a path (an agent's event or case, say) leave the path index.
    (
        """CREATE TABLE IF NOT EXISTS entry_facets (
            facet TEXT NOT NULL,
            value TEXT NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (facet, value, seq)
        ) WITHOUT ROWID""",
        file_facets("0"),
        *(
            f"DROP INDEX IF EXISTS entries_{name}"
            for name in ("execution", "agent_instance", "case", "intent", "mode", "event_type")
        ),
        "DROP INDEX IF EXISTS entries_path",
        "CREATE INDEX entries_path ON entries(path) WHERE path IS NOT NULL",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def projects_named(payload: Mapping[str, Any]) -> set[str]:
    """The projects an entry is filed under: ``payload.project`` and every name in
    ``payload.affected_dev_projects`` (what migration 3 computes in SQL for old rows)."""
    named = payload.get("project")
    projects = {named} if isinstance(named, str) else set()
    affected = payload.get("affected_dev_projects")
    if isinstance(affected, list):
        projects.update(name for name in affected if isinstance(name, str))
    return projects

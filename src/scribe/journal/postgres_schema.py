"""The PostgreSQL journal's schema: forward migrations, and the row each entry becomes.

A database's ``scribe.version`` counts the migrations applied to it; opening it
applies the rest in one transaction, under an advisory lock so that two processes
opening a new database at once do not both build it. DDL is transactional in
PostgreSQL: a migration that fails leaves nothing half made. Migrations are never
edited once released: a change is a new one.

Besides the entry's own fields, a row holds what queries filter by, derived at
append: ``words`` (see ``postgres_search``) and the payload keys agents query, in
columns of their own. They are not covered by the hash; ``verify`` judges the
entry's own fields only, as it does the SQLite store's indexes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scribe.journal.entry import FILE_DELETED, GENESIS, Entry
from scribe.journal.postgres_search import words

COLUMNS = (
    "seq, ts, kind, actor, path, before_hash, after_hash, diff, message, payload, ref, "
    "prev_hash, hash"
)
#: Payload values copied into columns at append, by ``Query`` field: (column, key path).
PAYLOAD_COLUMNS = {
    "execution_id": ("execution_id",),
    "agent_instance_id": ("agent", "instance_id"),
    "case_id": ("case_id",),
    "intent": ("intent",),
    "mode": ("mode",),
    "event_type": ("event_type",),
}

_C = 'COLLATE "C"'
#: Forward migrations; ``scribe.version`` counts those applied.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE SCHEMA IF NOT EXISTS scribe",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        f"""CREATE TABLE entries (
            seq bigint PRIMARY KEY, ts text {_C} NOT NULL, kind text {_C} NOT NULL,
            actor text {_C} NOT NULL, path text {_C}, before_hash text, after_hash text,
            diff text, message text NOT NULL, payload text NOT NULL, ref bigint,
            prev_hash text NOT NULL, hash text NOT NULL,
            words text NOT NULL,
            {", ".join(f"{name} text {_C}" for name in PAYLOAD_COLUMNS)})""",
        "CREATE INDEX entries_ts ON entries (ts)",
        "CREATE INDEX entries_path ON entries (path, seq)",
        "CREATE INDEX entries_kind ON entries (kind, seq)",
        "CREATE INDEX entries_actor ON entries (actor, seq)",
        "CREATE INDEX entries_ref ON entries (ref, kind) WHERE ref IS NOT NULL",
        f"""CREATE INDEX entries_outcome ON entries (path, seq DESC) INCLUDE (after_hash)
            WHERE path IS NOT NULL AND (after_hash IS NOT NULL OR kind = '{FILE_DELETED}')""",
        *(
            f"CREATE INDEX entries_{name} ON entries ({name}, seq) WHERE {name} IS NOT NULL"
            for name in PAYLOAD_COLUMNS
        ),
        "CREATE INDEX entries_words ON entries USING gin (words gin_trgm_ops)",
        f"""CREATE TABLE entry_projects (
            project text {_C} NOT NULL, seq bigint NOT NULL, PRIMARY KEY (project, seq))""",
        f"""CREATE TABLE head (one boolean PRIMARY KEY DEFAULT true CHECK (one),
            seq bigint NOT NULL, ts text {_C} NOT NULL, hash text NOT NULL)""",
        f"INSERT INTO head VALUES (true, 0, '', '{GENESIS}')",
        """CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_TABLE_NAME = 'head' AND TG_OP = 'UPDATE' THEN
                    IF NEW.seq >= OLD.seq THEN
                        RETURN NEW;  -- the head only moves forward
                    END IF;
                END IF;
                RAISE EXCEPTION 'the journal is append-only: entries cannot be %',
                    CASE TG_OP WHEN 'UPDATE' THEN 'changed' ELSE 'deleted' END;
            END $$""",
        *(
            f"""CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}
                FOR EACH {"STATEMENT" if op == "TRUNCATE" else "ROW"}
                EXECUTE FUNCTION refuse_change()"""
            for table in ("entries", "entry_projects", "head")
            for op in ("UPDATE", "DELETE", "TRUNCATE")
        ),
        "CREATE TABLE version (one boolean PRIMARY KEY DEFAULT true CHECK (one), n integer)",
        "INSERT INTO version VALUES (true, 0)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _payload_value(payload: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    value: Any = payload
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None  # as SQLite compares json_extract


def table_row(entry: Entry, payload_json: str) -> tuple[Any, ...]:
    """``entry`` as a row of ``entries``: its fields (``payload_json`` is the payload's
    canonical text), then its words and the payload values queries filter by."""
    fields = (entry.path or "", entry.message, payload_json)
    text = " | ".join(" ".join(words(part)) for part in fields)
    return (
        entry.seq, entry.ts, entry.kind, entry.actor, entry.path, entry.before_hash,
        entry.after_hash, entry.diff, entry.message, payload_json, entry.ref, entry.prev_hash,
        entry.hash, f" {text} ",
        *(_payload_value(entry.payload, keys) for keys in PAYLOAD_COLUMNS.values()),
    )  # fmt: skip

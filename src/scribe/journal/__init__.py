"""The append-only, hash-chained journal: every change Scribe, a person or an agent makes.

The store is the truth: ``SqliteJournal`` (one repository's file, the default) or
``PostgresJournal`` (one database many processes share; imported on first use, so
psycopg loads only for it). ``Mirrors`` keeps readable daily copies;
``JournalWriter`` batches appends from the engine's threads into one transaction.

JournalError            (a ScribeError) an entry, database or line the journal cannot use
├── JournalUnavailable  entries could not be committed: disk full, read-only, locked
└── JournalUnreachable  journal_url leads to no journal: bad URL, server down, no database
"""

from typing import TYPE_CHECKING, Any

from scribe.journal.entry import (
    Entry,
    Journal,
    JournalError,
    JournalUnavailable,
    NewEntry,
    Query,
    VerifyReport,
)
from scribe.journal.mirrors import Mirrors
from scribe.journal.sqlite import SqliteJournal
from scribe.journal.writer import JournalWriter

if TYPE_CHECKING:
    from scribe.journal.postgres import PostgresJournal
    from scribe.journal.postgres_connection import JournalUnreachable

__all__ = [
    "Entry",
    "Journal",
    "JournalError",
    "JournalUnavailable",
    "JournalUnreachable",
    "JournalWriter",
    "Mirrors",
    "NewEntry",
    "PostgresJournal",
    "Query",
    "SqliteJournal",
    "VerifyReport",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresJournal":
        from scribe.journal.postgres import PostgresJournal

        return PostgresJournal
    if name == "JournalUnreachable":
        from scribe.journal.postgres_connection import JournalUnreachable

        return JournalUnreachable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The append-only, hash-chained journal: every change Scribe, a person or an agent makes.

The store (``SqliteJournal``) is the truth; ``Mirrors`` keeps readable daily copies;
``JournalWriter`` batches appends from the engine's threads into one transaction.

JournalError            (a ScribeError) an entry, database or line the journal cannot use
└── JournalUnavailable  entries could not be committed: disk full, read-only, locked
"""

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

__all__ = [
    "Entry",
    "Journal",
    "JournalError",
    "JournalUnavailable",
    "JournalWriter",
    "Mirrors",
    "NewEntry",
    "Query",
    "SqliteJournal",
    "VerifyReport",
]

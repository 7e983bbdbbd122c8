"""How the PostgreSQL journal talks to its server: sessions set up for it, and the
server's errors said in words a user can act on.

Every session runs with the journal's schema first on its ``search_path``,
``synchronous_commit = on`` (a commit returns once the server has flushed it, the
journal-first promise) and a ``lock_timeout`` (how long an append waits for other
writers). A URL that leads nowhere is ``JournalUnreachable`` (a setting to fix);
anything the server refuses later is ``JournalUnavailable``, as for SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import errors

from scribe.journal.entry import JournalError, JournalUnavailable

SCHEMES = ("postgresql://", "postgres://")


class JournalUnreachable(JournalError):
    """``journal_url`` leads to no journal: a malformed URL, a server that does not
    answer, a database that does not exist or refuses the user. A setting to fix,
    so the command exits 2, as for other configuration errors."""

    exit_code = 2


def display_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__  # libpq's lines and tabs


def check_url(url: str) -> None:
    """Refuse, before any connection, a URL that is not PostgreSQL's."""
    if not url.startswith(SCHEMES):
        raise JournalUnreachable(
            f"journal_url {display_url(url)!r} is not a PostgreSQL URL: give "
            "postgresql://USER@HOST:PORT/DATABASE, or leave it unset for .scribe/journal.db"
        )


def connect(url: str, *, busy_timeout: float, connect_timeout: float) -> psycopg.Connection[Any]:
    """A new autocommit session on the journal's database, set up as the module says."""
    try:
        return psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=max(1, round(connect_timeout)),
            options="-c search_path=scribe,public -c synchronous_commit=on "
            f"-c lock_timeout={round(busy_timeout * 1000)}",
        )
    except psycopg.Error as exc:
        reason = _one_line(exc)
        hint = (
            "create the database first (createdb), or correct journal_url"
            if "does not exist" in reason
            else "check journal_url (SCRIBE_JOURNAL_URL) and that the server is running"
        )
        raise JournalUnreachable(
            f"cannot open the PostgreSQL journal {display_url(url)}: {reason}; {hint}"
        ) from None


@contextmanager
def failures(doing: str, url: str, busy_timeout: float) -> Iterator[None]:
    """The server's errors inside as ``JournalUnavailable``: a lock held too long, a
    lost connection, a read-only database, each with what the journal was doing."""
    try:
        yield
    except errors.LockNotAvailable as exc:
        raise JournalUnavailable(
            f"cannot {doing} the journal {display_url(url)}: it is locked: another writer "
            f"held it for more than {busy_timeout:g} s"
        ) from exc
    except psycopg.Error as exc:
        raise JournalUnavailable(
            f"cannot {doing} the journal {display_url(url)}: {_one_line(exc)}"
        ) from exc

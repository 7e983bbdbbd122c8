"""The journal's commands: ``log``, ``history``, ``show``, ``verify``, and ``journal
export``, ``migrate`` and ``copy``.

They read the journal through its indexes, never the mirror files: the PostgreSQL
database named by ``--journal`` or the ``journal_url`` setting, else the
repository's ``.scribe/journal.db``. Exit codes: 0 success; 1 no journal, nothing
found, or a broken chain; 2 bad arguments (typer's usage errors) and a journal URL
that leads nowhere.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.syntax import Syntax

from scribe.config import load_settings
from scribe.journal.entry import Entry, Journal, JournalError, Query, emoji
from scribe.journal.mirrors import LOG_DIR, export, markdown_line
from scribe.journal.sqlite import JOURNAL_DB
from scribe.progress import progress_bar
from scribe.startup import open_store

#: How often ``scribe log -f`` looks for new entries.
FOLLOW_INTERVAL = 0.2
DEFAULT_LIMIT = 100

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

_AGE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str) -> datetime:
    """An ISO date or time (UTC unless it says otherwise), or an age: ``30m``, ``2h``, ``3d``."""
    if age := _AGE.fullmatch(text.strip()):
        return datetime.now(UTC) - timedelta(**{_UNITS[age[2]]: int(age[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time: give an ISO date or time (2026-11-24, "
            "2026-11-24T10:00, 2026-11-24T10:00+01:00) or an age (30m, 2h, 3d, 1w)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a day: give it as 2026-11-24") from None


def find_journal_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` with a journal (or else a ``.scribe``)."""
    here = start.resolve()
    for marker in (JOURNAL_DB, JOURNAL_DB.parent):
        for candidate in (here, *here.parents):
            if (candidate / marker).exists():
                return candidate
    return here


RootOption = Annotated[
    Path | None,
    typer.Option("--root", help="Repository root (default: found from the current directory)."),
]


JournalOption = Annotated[
    str | None,
    typer.Option(
        "--journal",
        metavar="URL",
        help="A PostgreSQL journal (postgresql://USER@HOST:PORT/DB); default: the "
        "journal_url setting, else .scribe/journal.db.",
    ),
]


def _journal_url(base: Path, given: str | None) -> str | None:
    return given if given is not None else load_settings(base).journal_url


@contextmanager
def _open(base: Path, url: str | None) -> Iterator[Journal]:
    """The journal ``url`` names (``.scribe/journal.db`` when empty); exit 1 with a
    message if it cannot be opened, 2 if the URL leads nowhere."""
    try:
        store = open_store(base, url)
    except (JournalError, sqlite3.DatabaseError) as exc:
        message = str(exc) if url else f"cannot open the journal in {base}: {exc}"
        err.print(message, markup=False)
        raise typer.Exit(getattr(exc, "exit_code", 1)) from None
    with store:
        yield store


@contextmanager
def _journal(root: Path | None, url: str | None = None) -> Iterator[tuple[Path, Journal]]:
    """The repository root and its journal (``url``, else the ``journal_url`` setting,
    else the SQLite file; an empty ``url`` means the SQLite file); exit 1 with a
    message if there is none."""
    base = root.resolve() if root else find_journal_root(Path.cwd())
    url = _journal_url(base, url)
    if not url and not (base / JOURNAL_DB).is_file():
        err.print(f"no journal in {base}: {JOURNAL_DB} does not exist yet", markup=False)
        raise typer.Exit(1)
    with _open(base, url) as store:
        yield base, store


def _print_entries(entries: list[Entry], as_json: bool) -> None:
    render = Entry.to_json if as_json else markdown_line
    if entries:
        typer.echo("\n".join(render(entry) for entry in entries))


def _print_diff(diff: str) -> None:
    if out.is_terminal:
        out.print(Syntax(diff.rstrip("\n"), "diff", theme="ansi_dark", background_color="default"))
    else:
        typer.echo(diff, nl=not diff.endswith("\n"))


def log_command(
    since: Annotated[
        datetime | None,
        typer.Option("--since", parser=parse_time, help="From this time: 2026-11-24, 2h, 3d."),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option("--until", parser=parse_time, help="Before this time (same forms)."),
    ] = None,
    kinds: Annotated[
        list[str] | None, typer.Option("--kind", help="Only this kind (repeatable).")
    ] = None,
    path: Annotated[
        str | None, typer.Option("--path", help="Only paths matching this glob: notes/**/*.md.")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this actor.")] = None,
    grep: Annotated[
        str | None, typer.Option("--grep", help="Only entries with these words (or prefixes).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Show the last N entries (0: all).")
    ] = DEFAULT_LIMIT,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSONL entries.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new entries until Ctrl-C.")
    ] = False,
    root: RootOption = None,
    journal: JournalOption = None,
) -> None:
    """Show journal entries, oldest first: the last --limit of those matching the filters."""
    query = Query(
        since=since, until=until, kinds=tuple(kinds or ()), path_glob=path, actor=actor,
        text=grep, limit=limit or None, newest_first=True,
    )  # fmt: skip
    with _journal(root, journal) as (_, store):
        head = store.head()  # before the query: following starts at or before its end
        entries = store.query(query)[::-1]
        _print_entries(entries, as_json)
        if limit and len(entries) == limit and not follow:
            err.print(f"(the last {limit}; --limit 0 shows all)", markup=False)
        if not follow:
            return
        after = max(entries[-1].seq if entries else 0, head.seq if head else 0)
        query = replace(query, since=None, limit=None, newest_first=False)
        try:
            while True:
                time.sleep(FOLLOW_INTERVAL)
                if new := store.query(replace(query, after_seq=after)):
                    _print_entries(new, as_json)
                    after = new[-1].seq
        except KeyboardInterrupt:
            return


def _relative(given: Path, root: Path) -> str:
    try:
        return given.resolve().relative_to(root).as_posix()
    except ValueError:
        return given.as_posix()


def history(
    path: Annotated[str, typer.Argument(help="A file, as a path relative to the root.")],
    root: RootOption = None,
    journal: JournalOption = None,
) -> None:
    """Every entry for PATH, oldest first, with the diff of each write."""
    with _journal(root, journal) as (base, store):
        given = Path(path)
        rel = _relative(given, base) if given.is_absolute() or given.exists() else given.as_posix()
        entries = store.query(Query(path=rel))
        if not entries:
            err.print(f"nothing journaled for {rel}", markup=False)
            raise typer.Exit(1)
        for entry in entries:
            typer.echo(markdown_line(entry))
            if entry.diff:
                _print_diff(entry.diff)


def show(
    seq: Annotated[int, typer.Argument(help="The entry's sequence number.")],
    root: RootOption = None,
    journal: JournalOption = None,
) -> None:
    """One entry in full: every field, the payload and the diff."""
    with _journal(root, journal) as (_, store):
        entry = store.get(seq)
        if entry is None:
            head = store.head()
            last = f"the last is {head.seq}" if head else "the journal is empty"
            err.print(f"no entry {seq}: {last}", markup=False)
            raise typer.Exit(1)
    fields = [
        ("seq", str(entry.seq)),
        ("ts", entry.ts),
        ("kind", f"{entry.kind} {emoji(entry.kind)}"),
        ("actor", entry.actor),
        ("path", entry.path),
        ("message", entry.message),
        ("ref", None if entry.ref is None else str(entry.ref)),
        ("before_hash", entry.before_hash),
        ("after_hash", entry.after_hash),
        ("prev_hash", entry.prev_hash),
        ("hash", entry.hash),
    ]
    for name, value in fields:
        if value is not None:
            typer.echo(f"{name:<12}{value}")
    typer.echo("payload:")
    typer.echo(json.dumps(entry.payload, indent=2, sort_keys=True, ensure_ascii=False))
    if entry.diff:
        typer.echo("diff:")
        _print_diff(entry.diff)


def verify(root: RootOption = None, journal: JournalOption = None) -> None:
    """Recompute the hash chain; exit 1 and name the first broken entry if it is broken."""
    with _journal(root, journal) as (_, store), progress_bar(err) as progress:
        task = progress.add_task("verifying", total=None)
        report = store.verify(
            lambda done, total: progress.update(task, completed=done, total=total)
        )
    if report.ok:
        head = f", head {report.last_seq} {(report.last_hash or '')[:12]}" if report.checked else ""
        typer.echo(f"ok: {report.checked} entries{head}")
        return
    typer.echo(f"broken at entry {report.first_bad_seq}: {report.problem}")
    raise typer.Exit(1)


def export_command(
    since: Annotated[
        date | None,
        typer.Option("--since", parser=parse_day, help="Rebuild from this day on (2026-11-24)."),
    ] = None,
    root: RootOption = None,
    journal: JournalOption = None,
) -> None:
    """Rebuild the daily JSONL and Markdown mirrors from the journal."""
    with _journal(root, journal) as (base, store), progress_bar(err) as progress:
        task = progress.add_task("exporting", total=None)
        done = export(
            store,
            base,
            since,
            lambda n, total: progress.update(task, completed=n, total=total),
        )
    typer.echo(f"exported {done.entries} entries into {done.files} files under {LOG_DIR}")


def migrate(root: RootOption = None, journal: JournalOption = None) -> None:
    """Create the journal's schema, or upgrade it to this version of Scribe (safe to repeat)."""
    base = root.resolve() if root else find_journal_root(Path.cwd())
    url = _journal_url(base, journal)
    if url:
        from scribe.journal.postgres import PostgresJournal
        from scribe.journal.postgres_connection import display_url
        from scribe.journal.postgres_schema import SCHEMA_VERSION as after

        with _open(base, url) as store:
            assert isinstance(store, PostgresJournal)
            before = store.migrated
        where = display_url(url)
    else:
        from scribe.journal.schema import SCHEMA_VERSION as after

        db = base / JOURNAL_DB
        before = _sqlite_version(db)
        with _journal(base, ""):  # only an existing one: scribe init or a run makes it
            pass
        where = str(db)
    change = "up to date" if before == after else f"upgraded from {before}"
    typer.echo(f"{where}: journal schema {after}, {change}")


def _sqlite_version(db: Path) -> int:
    if not db.is_file():
        return 0
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def copy_command(
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="URL", help="The PostgreSQL journal to fill (default: journal_url)."
        ),
    ] = None,
    root: RootOption = None,
) -> None:
    """Copy this repository's SQLite journal into an empty PostgreSQL journal.

    Entry for entry (same seq, time and hash), checking the chain on the way, all or
    nothing, then verifying the copy. Stop Scribe's processes on this repository
    first: entries they append meanwhile may be left behind.
    """
    from scribe.journal.postgres import PostgresJournal
    from scribe.journal.postgres_connection import display_url

    base = root.resolve() if root else find_journal_root(Path.cwd())
    url = to if to is not None else load_settings(base).journal_url
    if not url:
        raise typer.BadParameter("give the journal to copy into: --to postgresql://...")
    with _journal(base, "") as (_, source), _open(base, url) as target:
        assert isinstance(target, PostgresJournal)
        where = display_url(url)
        try:
            with progress_bar(err) as progress:
                task = progress.add_task("copying", total=None)
                copied = target.copy_from(
                    source, lambda n, total: progress.update(task, completed=n, total=total)
                )
                task = progress.add_task("verifying", total=None)
                report = target.verify(
                    lambda n, total: progress.update(task, completed=n, total=total)
                )
        except JournalError as exc:
            err.print(f"nothing was copied: {exc}", markup=False)
            raise typer.Exit(1) from None
        source_head = source.head()
    if not report.ok:
        typer.echo(f"copied {copied} entries, but {where} is broken at entry "
                   f"{report.first_bad_seq}: {report.problem}")  # fmt: skip
        raise typer.Exit(1)
    if source_head is not None and report.last_hash != source_head.hash:
        typer.echo(f"copied {copied} entries, but {where} does not end where the SQLite "
                   f"journal does (entry {source_head.seq})")  # fmt: skip
        raise typer.Exit(1)
    head = f", head {report.last_seq} {(report.last_hash or '')[:12]}" if copied else ""
    typer.echo(f"copied {copied} entries into {where} and verified them{head}")


def register(app: typer.Typer) -> None:
    """Add the journal commands to ``app`` (Scribe's command line)."""
    app.command("log")(log_command)
    app.command("history")(history)
    app.command("show")(show)
    app.command("verify")(verify)
    journal = typer.Typer(help="Maintain the journal.", no_args_is_help=True)
    journal.command("export")(export_command)
    journal.command("migrate")(migrate)
    journal.command("copy")(copy_command)
    app.add_typer(journal, name="journal")

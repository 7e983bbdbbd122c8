"""Projects: named pieces of work in a repository, each with its plans and progress log.

A project has a ``name`` (as given, trimmed) and a ``slug`` derived from it
(lowercase ``[a-z0-9-]``): names with the same slug are the same project, and the
last spelling set is the one shown. Its ``root`` is a folder inside the
repository; its documents live in ``.scribe/docs/dev_plans/<slug>/``.

The registry, ``.scribe/registry/projects.json``, holds every project by slug and
the repository's current project (the last one set). It is rewritten whole (temp
file, fsync, ``os.replace``, directory fsync) under an exclusive ``flock`` on
``projects.lock``, so threads and processes setting projects at once never lose
each other's changes.

Progress log lines (``progress_line`` has their format) are appended with one
``write()`` each under the log's ``flock``, after their ``AGENT_ENTRY`` is
committed. Entries appended at the same moment may land in the log in a different
order than their seqs; each line is whole.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scribe.errors import OutsideRoot
from scribe.files import resolve_inside
from scribe.journal.entry import AGENT_ENTRY, PROJECT_SET, NewEntry
from scribe.journal.writer import JournalWriter
from scribe.mcp import templates
from scribe.mcp.context import Call
from scribe.mcp.failures import INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, ToolFailure
from scribe.mcp.failures import SCOPE_VIOLATION as OUTSIDE
from scribe.mcp.progress_line import (
    MAX_MESSAGE,
    MetaValue,
    breaks_line,
    check_meta,
    clean,
    format_line,
    parse_line,
    pick_emoji,
)
from scribe.mcp.storage import atomic_write, busy, flock_by

__all__ = [
    "DOCS_ROOT",
    "PROGRESS_LOG",
    "REGISTRY",
    "Projects",
    "inside",
    "locked",
    "parse_line",
    "slugify",
]

REGISTRY = Path(".scribe") / "registry" / "projects.json"
DOCS_ROOT = Path(".scribe") / "docs" / "dev_plans"
PROGRESS_LOG = "PROGRESS_LOG.md"
MAX_NAME = 200

_SLUG_GAP = re.compile(r"[^a-z0-9]+")
# One gate per file for the threads of this process (they queue instead of polling);
# flock keeps other processes out.
_GATES: dict[str, threading.Lock] = {}
_GATES_GUARD = threading.Lock()


def slugify(name: str) -> str:
    """``Auth Rewrite (v2)`` -> ``auth-rewrite-v2``; accents are dropped, not the letters."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _SLUG_GAP.sub("-", folded.lower()).strip("-")


def _outside(root: str, reason: str) -> ToolFailure:
    return ToolFailure(OUTSIDE, f"project root {root!r} {reason}", path=root, reason=reason)


def inside(root: Path, rel: str) -> Path:
    """The real path of ``rel``; ``SCOPE_VIOLATION`` when a symlink leads out of ``root``."""
    try:
        return resolve_inside(root, rel)
    except OutsideRoot as exc:
        raise ToolFailure(OUTSIDE, f"{rel}: {exc}", path=rel) from None


@contextmanager
def locked(path: Path, rel: str, timeout: float) -> Iterator[None]:
    """Hold ``path`` exclusively, against this process's threads and other processes.

    The ``flock`` is on the file itself, and granted only on the file the path still
    names (one replaced while we waited is tried again), so while it is held nobody
    appends to or replaces that file. ``BUSY`` once ``timeout`` seconds have passed;
    FileNotFoundError when there is no file.
    """
    deadline = time.monotonic() + timeout
    with _GATES_GUARD:
        gate = _GATES.setdefault(str(path), threading.Lock())
    if not gate.acquire(timeout=timeout):  # threads queue here, not in a polling loop
        raise busy(rel, timeout)
    try:
        while True:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                flock_by(fd, deadline, rel, timeout)
                held, current = os.fstat(fd), os.stat(path)
                if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                    yield
                    return
            finally:
                os.close(fd)  # and with it, the lock
    finally:
        gate.release()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Projects:
    """The projects of the repository at ``root`` and their progress logs."""

    def __init__(self, root: Path, journal: JournalWriter, *, lock_timeout: float = 2.0) -> None:
        self.root = root.resolve()
        self.journal = journal
        self.lock_timeout = lock_timeout
        self._registry = self.root / REGISTRY

    # -- the registry ---------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            raw = self._registry.read_bytes()
        except FileNotFoundError:
            return {"version": 1, "current": None, "projects": {}}
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not isinstance(data.get("projects"), dict):
                raise ValueError("expected an object with a 'projects' object")
        except ValueError as exc:
            raise ToolFailure(
                UNAVAILABLE, f"{REGISTRY.as_posix()} is unreadable ({exc}); repair or remove it"
            ) from None
        return data

    def _write(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        atomic_write(self._registry, text.encode("utf-8"))

    def set_project(self, call: Call, *, name: str, root: str) -> dict[str, Any]:
        """Create or update the project ``name`` at ``root`` and make it current.

        ``PROJECT_SET`` is committed before the registry is written. Returns the
        project with ``created`` (new or updated), ``current`` and the entry's ``seq``.
        """
        name = clean(name, "name", MAX_NAME)
        if any(breaks_line(char) for char in name):
            raise ToolFailure(INVALID_ARGUMENT, "name must be one line of text", argument="name")
        slug = slugify(name)
        if not slug:
            raise ToolFailure(
                INVALID_ARGUMENT,
                f"name {name!r} has no letter or digit to make a slug from",
                argument="name",
            )
        where = self._project_root(root)
        self._registry.parent.mkdir(parents=True, exist_ok=True)
        lock = self._registry.with_name("projects.lock")
        os.close(os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        with locked(lock, REGISTRY.as_posix(), self.lock_timeout):
            data = self._read()
            old = data["projects"].get(slug)
            now, agent = _iso(_now()), call.context.agent_identity.id
            record = {
                "name": name,
                "slug": slug,
                "root": where,
                "docs_dir": (DOCS_ROOT / slug).as_posix() + "/",
                "created_at": old["created_at"] if old else now,
                "created_by": old["created_by"] if old else agent,
                "updated_at": now,
                "updated_by": agent,
            }
            entry = NewEntry(
                PROJECT_SET,
                call.context.actor,
                message=f"project {name} ({slug}) at {where}",
                payload=call.payload(
                    project=name, slug=slug, project_root=where, created=old is None
                ),
            )
            sealed = self.journal.append([entry])[0]
            data["projects"][slug] = record
            data["current"] = slug
            self._write(data)
        return {**record, "created": old is None, "current": True, "seq": sealed.seq}

    def _project_root(self, given: str) -> str:
        """``given`` as a repo-relative POSIX folder; refused when it leads outside
        (the server journals the refusal)."""
        text = clean(given, "root", 4096)
        candidate = Path(text) if Path(text).is_absolute() else self.root / text
        real = Path(os.path.realpath(candidate))
        if real != self.root and self.root not in real.parents:
            raise _outside(text, f"resolves to {real}, outside the repository")
        rel = real.relative_to(self.root)
        if ".git" in rel.parts:
            raise _outside(text, "is inside .git")
        if not real.is_dir():
            what = "is not a folder" if real.exists() else "does not exist"
            raise ToolFailure(NOT_FOUND, f"project root {text!r} {what}", root=text)
        return rel.as_posix()

    def get_project(self, name_or_slug: str) -> dict[str, Any]:
        """The project with this name or slug; ``NOT_FOUND`` lists the known ones."""
        projects = self._read()["projects"]
        found = projects.get(slugify(name_or_slug))
        if found is None:
            known = sorted(project["name"] for project in projects.values())
            listed = ", ".join(known) if known else "none yet: call set_project first"
            raise ToolFailure(
                NOT_FOUND, f"no project {name_or_slug!r}; known projects: {listed}", known=known
            )
        return dict(found)

    def list_projects(self) -> list[dict[str, Any]]:
        """Every project, by name."""
        projects = self._read()["projects"].values()
        return sorted((dict(p) for p in projects), key=lambda p: str(p["name"]).lower())

    def current(self) -> str | None:
        """The name of the repository's current project (the last one set), if any."""
        data = self._read()
        found = data["projects"].get(data.get("current"))
        return None if found is None else str(found["name"])

    # -- progress logs --------------------------------------------------------------

    def append_entry(
        self,
        call: Call,
        *,
        project: str,
        message: str,
        status: str,
        emoji: str | None,
        agent: str | None,
        meta: Mapping[str, MetaValue] | None,
    ) -> dict[str, Any]:
        """Append one entry to the project's ``PROGRESS_LOG.md``, journaled first.

        Returns ``seq`` (the ``AGENT_ENTRY``), ``line`` and ``path`` (repo-relative).
        """
        found = self.get_project(project)
        text = clean(message, "message", MAX_MESSAGE)
        mark = pick_emoji(status, emoji)
        who = call.context.agent_identity.id if agent is None else clean(agent, "agent", 128)
        fields = check_meta(meta or {})
        line = format_line(
            emoji=mark, moment=_now(), agent=who, project=found["name"], message=text, meta=fields
        )
        rel = f"{found['docs_dir']}{PROGRESS_LOG}"
        self._ensure_log(call, found, rel)
        path = inside(self.root, rel)
        entry = NewEntry(
            AGENT_ENTRY,
            call.context.actor,
            path=rel,
            message=line,
            payload=call.payload(
                project=found["name"], status=status.strip().lower(), meta=fields, line=line
            ),
        )
        sealed = self.journal.append([entry])[0]
        try:
            for _ in range(3):
                try:
                    _append(path, rel, line, self.lock_timeout)
                    return {"seq": sealed.seq, "line": line, "path": rel}
                except FileNotFoundError:  # removed meanwhile: start it again
                    self._ensure_log(call, found, rel)
            raise ToolFailure(UNAVAILABLE, f"{rel} keeps disappearing", path=rel)
        except ToolFailure as failure:
            raise ToolFailure(
                failure.code,
                f"{failure.message}; the entry is journaled (seq {sealed.seq}) but not in "
                f"{rel}: do not send it again",
                **{**failure.details, "seq": sealed.seq},
            ) from None

    def _ensure_log(self, call: Call, project: Mapping[str, Any], rel: str) -> None:
        if os.path.lexists(self.root / rel):
            return
        text = templates.render(
            PROGRESS_LOG, project=project["name"], slug=project["slug"], day=_now().date()
        )
        templates.create_doc(
            call, self.journal, self.root, rel, text, project=project["name"], doc="progress_log"
        )


def _append(path: Path, rel: str, line: str, timeout: float) -> None:
    """Append ``line`` in one ``write()`` under the file's lock, on a fresh line."""
    with locked(path, rel, timeout):
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            tail = os.pread(fd, 2, max(size - 2, 0)) if size else b""
            newline = b"\r\n" if tail.endswith(b"\r\n") else b"\n"
            fresh = newline if tail and not tail.endswith(b"\n") else b""
            data = fresh + line.encode("utf-8") + newline
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)

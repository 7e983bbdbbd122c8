"""Sessions: the server's own identity for each connection, and its active project.

The server, not the client, names a session: a UUIDv4 made when a connection
makes its first call. A transport's session id (the ``Mcp-Session-Id`` header of
streamable HTTP) is recorded beside it, never used in its place. Each session has
its own active project per repository, so what one agent selects can never change
what another works on. A session's project is also remembered under a
fingerprint (agent id, session id, repository root), so an agent that reconnects
can take its earlier project back by naming its earlier session.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scribe.mcp.failures import NOT_FOUND, ToolFailure
from scribe.mcp.storage import atomic_write, file_lock

#: Fingerprints live beside the project registry; agents may not read this folder.
FINGERPRINTS = Path(".scribe") / "registry" / "sessions.json"
#: Fingerprints kept per repository (oldest forgotten first).
MAX_FINGERPRINTS = 10_000


@dataclass
class Session:
    """One connection's state. ``projects`` maps a repository root to its project."""

    id: str
    transport_id: str | None
    started: str
    projects: dict[Path, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def project(self, root: Path) -> str | None:
        with self.lock:
            return self.projects.get(root)

    def use(self, root: Path, project: str) -> None:
        with self.lock:
            self.projects[root] = project


def fingerprint(agent_id: str, session_id: str, root: Path) -> str:
    """What identifies an agent's session in a repository across reconnects."""
    return hashlib.sha256(f"{agent_id}\0{session_id}\0{root}".encode()).hexdigest()


class Sessions:
    """Every live session, keyed by the transport's connection object (held weakly:
    a connection that is gone takes its session with it, and its id can never be
    handed to a new one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_connection: weakref.WeakKeyDictionary[Any, Session] = weakref.WeakKeyDictionary()

    def for_connection(self, connection: object, transport_id: str | None = None) -> Session:
        """The session of ``connection``, made on its first call."""
        with self._lock:
            session = self._by_connection.get(connection)
            if session is None:
                session = Session(
                    id=str(uuid.uuid4()),
                    transport_id=transport_id,
                    started=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                )
                self._by_connection[connection] = session
            return session


def remember(root: Path, agent_id: str, session: Session, project: str) -> str:
    """Record ``session``'s project under its fingerprint; return the fingerprint."""
    key = fingerprint(agent_id, session.id, root)
    path = root / FINGERPRINTS
    with file_lock(path.with_suffix(".lock")):
        known = _read(path)
        known.pop(key, None)  # re-inserted last: the newest are kept when trimming
        known[key] = {
            "project": project,
            "agent": agent_id,
            "session_id": session.id,
            "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        while len(known) > MAX_FINGERPRINTS:
            known.pop(next(iter(known)))
        atomic_write(path, json.dumps(known, indent=1, sort_keys=False).encode() + b"\n")
    return key


def recall(root: Path, agent_id: str, earlier_session: str) -> str:
    """The project an agent's earlier session used in ``root``; NOT_FOUND if none."""
    known = _read(root / FINGERPRINTS).get(fingerprint(agent_id, earlier_session, root))
    if known is None:
        raise ToolFailure(
            NOT_FOUND,
            f"no earlier session {earlier_session} of agent {agent_id} in {root} had a project",
            session_id=earlier_session,
        )
    return str(known["project"])


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}

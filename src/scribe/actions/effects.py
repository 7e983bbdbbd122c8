"""Effects: what an effect action asks for, run by the engine after the file's
write is committed (and only shown by ``scribe plan``).

An effect action's ``effects(file, params)`` is as pure as a content action's
``plan``: it may look at the file and at the repository's notes, but it only
*describes* what should happen. The engine checks each effect against the
action's permissions and the repository's confinement, journals it, and runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunCommand:
    """Run ``argv`` (never through a shell) in the command sandbox."""

    argv: tuple[str, ...]
    timeout: float = 30.0
    #: Working directory, relative to the repository root.
    cwd: str = "."
    #: Environment variable names passed through beyond PATH, HOME and LANG.
    env: tuple[str, ...] = ()
    #: Repository paths the command may change (bound writable under bwrap);
    #: the repository is otherwise read-only to it.
    writable: tuple[str, ...] = ()
    #: A non-zero exit (or a timeout) makes the rule fail on this file.
    fail_on_error: bool = False


@dataclass(frozen=True)
class Emit:
    """Raise the custom event ``name`` on ``path``; rules match it with
    ``on: {event: NAME}``."""

    name: str
    path: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteFile:
    """Write ``text`` to another file of the repository (compare-and-swap).

    ``base_sha256`` is the hash of the content the text was computed from: the
    write is made only if the file still holds it (None: the file must not exist
    when ``create_only``, or may hold anything otherwise, for a generated file).
    """

    path: str
    text: str
    base_sha256: str | None = None
    create_only: bool = False


@dataclass(frozen=True)
class Rename:
    """Move ``path`` to ``dest`` (both repository-relative); never replaces a file."""

    path: str
    dest: str


@dataclass(frozen=True)
class Finding:
    """Something a check found (a broken link, an invalid field): journaled as a
    ``rule.finding``; ``fail`` makes ``scribe check`` and ``run --check`` exit 1."""

    code: str
    message: str
    path: str
    line: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    fail: bool = False


Effect = RunCommand | Emit | WriteFile | Rename | Finding

"""Where the engine may read and write: under the root, never a denied path.

Symlinks leading out of the root are refused where files are opened
(``scribe.files``); this module holds the denylist. Built-in denials cannot be
lifted by configuration: version control internals, environment files, keys.
Rules also never write Scribe's own state and configuration, so that no rule can
widen what rules may do.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import pathspec

#: Never read or written by rules (gitignore-style, relative to the root).
DENIED = (".git/", ".env", ".env.*", "*.pem", "id_*")
#: Never written by rules: Scribe's state, rules and settings.
WRITE_DENIED = (".scribe/", "scribe.yaml")
#: Verdicts a confinement keeps (the least recently asked go first).
_REMEMBERED = 8192


class Confinement:
    """The denylist of one repository: the built-in one plus ``deny`` globs."""

    def __init__(self, deny: Sequence[str] = ()) -> None:
        self.deny = (*DENIED, *deny)
        self._read = pathspec.GitIgnoreSpec.from_lines(self.deny)
        self._write = pathspec.GitIgnoreSpec.from_lines((*self.deny, *WRITE_DENIED))
        # The engine asks again for the same path at every step of an event.
        self._remembered = functools.lru_cache(maxsize=_REMEMBERED)(self._refusal)

    def refusal(self, rel: str, *, write: bool = False) -> str | None:
        """Why ``rel`` (repository-relative, POSIX) may not be touched, or None."""
        return self._remembered(rel, write)

    def _refusal(self, rel: str, write: bool) -> str | None:
        if rel.startswith("/") or ".." in rel.split("/"):
            return f"{rel} is not a path inside the repository"
        if _matches(self._read, rel):
            return f"{rel} is on the denylist and is never touched"
        if write and _matches(self._write, rel):
            return f"{rel} is Scribe's own state or configuration, never written by rules"
        return None


def _matches(spec: pathspec.GitIgnoreSpec, rel: str) -> bool:
    # Case-folded too: on a case-insensitive volume .ENV is .env.
    return bool(spec.match_file(rel) or spec.match_file(rel.casefold()))

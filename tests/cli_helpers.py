"""Running the real ``scribe`` command on a repository, and reading back what it
journaled: for the tests that go through the command line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from live_helpers import SCRIBE
from scribe.journal.entry import Entry, Query
from scribe.journal.sqlite import SqliteJournal


def scribe(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``scribe ARGS`` in ``cwd``, with ``env`` added to this environment."""
    full = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [SCRIBE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        check=False,
    )


def make_repo(root: Path, rules: str, settings: dict[str, Any] | None = None) -> Path:
    """``root`` with ``rules`` as its rules file and ``settings`` as its scribe.yaml."""
    (root / ".scribe").mkdir(parents=True, exist_ok=True)
    (root / ".scribe" / "rules.yaml").write_text(rules)
    (root / "scribe.yaml").write_text(json.dumps(settings or {}))  # JSON is YAML
    return root


def journaled(root: Path, kind: str) -> list[Entry]:
    """The entries of ``kind`` in the repository's journal, oldest first."""
    store = SqliteJournal.for_root(root)
    try:
        return list(store.query(Query(kinds=[kind])))
    finally:
        store.close()

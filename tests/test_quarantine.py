"""Quarantine kept in the journal: survives restarts, listed, retried and dropped
from the command line; breakers reported by ``scribe breakers``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from live_helpers import SCRIBE
from scribe.journal.entry import QUARANTINE_RELEASED, QUARANTINED, Query
from scribe.journal.sqlite import SqliteJournal

BROKEN = """
rules:
  - id: zone
    paths: ["*.md"]
    do: [{set: {field: local, value: "{{ now(tz='Mars/Olympus') }}"}}]
"""
FIXED = """
rules:
  - id: zone
    paths: ["*.md"]
    do: [{set: {field: local, value: "{{ now('%Y', tz='UTC') }}"}}]
"""


def scribe(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIBE, *args, "--root", str(root)], capture_output=True, text=True, timeout=60
    )


def repo(tmp_path: Path, rules: str = BROKEN) -> Path:
    (tmp_path / ".scribe").mkdir()
    (tmp_path / ".scribe" / "rules.yaml").write_text(rules)
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text(f"---\ntitle: {name}\n---\n")
    return tmp_path


def kinds(root: Path, kind: str) -> int:
    with SqliteJournal.for_root(root) as journal:
        return len(journal.query(Query(kinds=[kind])))


def listed(root: Path) -> list[dict[str, str]]:
    result = scribe(root, "quarantine", "list", "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_quarantine_survives_a_restart_and_is_not_retried_on_the_same_content(
    tmp_path: Path,
) -> None:
    root = repo(tmp_path)
    assert scribe(root, "run").returncode == 1  # the rule failed on both files
    assert sorted(item["path"] for item in listed(root)) == ["a.md", "b.md"]
    again = scribe(root, "run")  # same content, same rule: held back, not retried
    assert again.returncode == 0, again.stderr
    assert kinds(root, QUARANTINED) == 2


def test_a_changed_file_or_rule_releases_its_quarantine(tmp_path: Path) -> None:
    root = repo(tmp_path)
    scribe(root, "run")
    (root / "a.md").write_text("---\ntitle: changed\n---\n")
    scribe(root, "run")  # a.md fails again on its new content: quarantined anew
    assert kinds(root, QUARANTINE_RELEASED) == 1
    (root / ".scribe" / "rules.yaml").write_text(FIXED)
    assert scribe(root, "run").returncode == 0
    assert listed(root) == []
    assert "local:" in (root / "b.md").read_text()


def test_retry_and_drop_on_demand(tmp_path: Path) -> None:
    root = repo(tmp_path)
    scribe(root, "run")
    retried = scribe(root, "quarantine", "retry", "a.md")
    assert retried.returncode == 1  # still broken: it fails again, and says so
    assert "a.md: failed again" in retried.stdout
    assert sorted(item["path"] for item in listed(root)) == ["a.md", "b.md"]
    dropped = scribe(root, "quarantine", "drop", "--rule", "zone")
    assert dropped.returncode == 0
    assert "released 2" in dropped.stderr
    assert listed(root) == []


def test_breakers_lists_rules_whose_breaker_opened(tmp_path: Path) -> None:
    root = repo(tmp_path)
    for i in range(6):
        (root / f"n{i}.md").write_text(f"---\ntitle: {i}\n---\n")
    (root / "scribe.yaml").write_text("workers: 1\nbreaker_failures: 3\n")
    scribe(root, "run")
    result = scribe(root, "breakers")
    assert result.returncode == 0, result.stderr
    assert "zone" in result.stdout
    assert "open" in result.stdout

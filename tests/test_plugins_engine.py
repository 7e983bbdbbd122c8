"""Plug-ins at work in a repository, through the real ``scribe`` command: a local
action loads only when allowed, writes only its manifest's globs, fails alone when
it raises, and a broken one is refused with its reason."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from cli_helpers import journaled as journal
from cli_helpers import scribe
from scribe.journal.entry import ACTION_FAILED, QUARANTINED, SCOPE_VIOLATION

SHOUT = """
from pydantic import BaseModel, ConfigDict
from scribe.actions import Content

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    times: int = 1

def plan(file, params):
    return file.text.upper()

action = Content("shout", Params, plan, "Upper-case the file.")
manifest = {"version": "1.0.0", "permissions": {"write": ["notes/**"]}}
"""

BROKEN = """
from pydantic import BaseModel
from scribe.actions import Content

class Params(BaseModel):
    pass

def plan(file, params):
    raise RuntimeError("the plug-in tripped over " + file.path)

action = Content("trip", Params, plan, "Always raises.")
manifest = {"version": "0.1", "permissions": {"write": ["**"]}}
"""

BAD_MANIFEST = """
from pydantic import BaseModel
from scribe.actions import Content

class Params(BaseModel):
    pass

action = Content("odd", Params, lambda file, params: file.text, "Does nothing.")
manifest = {"version": "1", "manifest_version": "2.2", "permissions": {"network": "any"}}
"""


def repo(root: Path, rules: str, settings: dict[str, Any], **actions: str) -> Path:
    (root / ".scribe" / "actions").mkdir(parents=True)
    (root / ".scribe" / "rules.yaml").write_text(textwrap.dedent(rules))
    (root / "scribe.yaml").write_text(json.dumps(settings))
    for name, source in actions.items():
        (root / ".scribe" / "actions" / f"{name}.py").write_text(source)
    (root / "notes").mkdir()
    (root / "docs").mkdir()
    (root / "notes" / "a.md").write_text("quiet words\n")
    (root / "docs" / "b.md").write_text("other words\n")
    return root


SHOUT_RULES = """
rules:
  - id: loud
    paths: ["**/*.md"]
    do: [{shout: {}}]
"""


def test_a_local_action_writes_only_what_its_manifest_allows(tmp_path: Path) -> None:
    root = repo(tmp_path, SHOUT_RULES, {"plugins_local": True}, shout=SHOUT)
    done = scribe("run", cwd=root)
    assert done.returncode == 1  # the refusal is a failure of the rule on docs/b.md
    assert (root / "notes" / "a.md").read_text() == "QUIET WORDS\n"
    assert (root / "docs" / "b.md").read_text() == "other words\n"
    assert "may not write docs/b.md (its manifest allows: notes/**)" in done.stderr
    (violation,) = journal(root, SCOPE_VIOLATION)
    assert (violation.actor, violation.path) == ("rule:loud", "docs/b.md")


def test_local_actions_are_not_loaded_unless_the_repository_allows_them(tmp_path: Path) -> None:
    root = repo(tmp_path, SHOUT_RULES, {}, shout=SHOUT)
    done = scribe("run", cwd=root)
    assert done.returncode == 2
    assert "unknown action 'shout'" in done.stderr
    assert (root / "notes" / "a.md").read_text() == "quiet words\n"


def test_a_plugin_that_raises_fails_alone_and_is_quarantined(tmp_path: Path) -> None:
    rules = """
    rules:
      - id: trips
        paths: ["notes/*.md"]
        do: [{trip: {}}]
      - id: stamp
        paths: ["notes/*.md"]
        do: [{set: {field: seen, value: "true"}}]
    """
    root = repo(tmp_path, rules, {"plugins_local": True}, trip=BROKEN)
    done = scribe("run", cwd=root)
    assert done.returncode == 1
    assert "rule trips failed on notes/a.md: RuntimeError: the plug-in tripped over" in done.stderr
    assert (root / "notes" / "a.md").read_text() == "---\nseen: true\n---\nquiet words\n"
    assert [e.actor for e in journal(root, ACTION_FAILED)] == ["rule:trips"]
    assert [e.payload["rule"] for e in journal(root, QUARANTINED)] == ["trips"]


def test_a_plugin_with_a_broken_manifest_is_refused_with_the_reason(tmp_path: Path) -> None:
    rules = """
    rules:
      - id: uses-odd
        do: [{odd: {}}]
    """
    root = repo(tmp_path, rules, {"plugins_local": True}, odd=BAD_MANIFEST)
    done = scribe("run", cwd=root)
    assert done.returncode == 2
    assert "action 'odd' is a plug-in that was refused" in done.stderr
    assert "hma_compliance" in done.stderr
    listed = scribe("plugins", "list", "--json", cwd=root)
    refused = json.loads(listed.stdout)["refused"]
    assert [r["name"] for r in refused] == ["odd"]

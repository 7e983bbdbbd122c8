"""`scribe rules enable|disable`: one line of the rules file changes, journal first."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cli_helpers import scribe as scribe_cmd
from scribe.rules.edit import RuleEditError, set_enabled
from scribe.rules.load import parse_rules

RULES = """\
# house rules
rules:
  - id: stamp   # keep this comment
    paths: ["**/*.md"]
    do:
      - set: {field: modified, value: "{{ now('%Y-%m-%d') }}"}

  - id: checked
    enabled: true   # on while we try it
    paths: ["**/*.md"]
    do: [{set: {field: checked, value: true}}]
"""


def changed_lines(old: str, new: str) -> list[str]:
    olds = old.splitlines(keepends=True)
    return [line for line in new.splitlines(keepends=True) if line not in olds]


def test_disabling_adds_one_line_under_the_id() -> None:
    edited = set_enabled(RULES, "stamp", False)
    assert changed_lines(RULES, edited) == ["    enabled: false\n"]
    assert edited.replace("    enabled: false\n", "", 1) == RULES
    assert [r.enabled for r in parse_rules(edited, "rules.yaml")] == [False, True]


def test_an_existing_value_is_replaced_and_its_comment_kept() -> None:
    edited = set_enabled(RULES, "checked", False)
    assert changed_lines(RULES, edited) == ["    enabled: false   # on while we try it\n"]
    assert len(edited.splitlines()) == len(RULES.splitlines())


def test_crlf_files_stay_crlf() -> None:
    crlf = RULES.replace("\n", "\r\n")
    edited = set_enabled(crlf, "stamp", False)
    assert "\n" not in edited.replace("\r\n", "")
    assert "    enabled: false\r\n" in edited


def test_nothing_changes_when_the_rule_is_already_so() -> None:
    assert set_enabled(RULES, "stamp", True) == RULES  # no key: enabled already
    assert set_enabled(RULES, "checked", True) == RULES


def test_an_unknown_id_suggests_the_closest_and_flow_style_is_refused() -> None:
    with pytest.raises(RuleEditError, match=r"no rule with id 'stmp'; did you mean 'stamp'\?"):
        set_enabled(RULES, "stmp", False)
    flow = "rules:\n  - {id: a, paths: ['*.md'], do: [{remove: {field: x}}]}\n"
    with pytest.raises(RuleEditError, match="flow style"):
        set_enabled(flow, "a", False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".scribe").mkdir()
    (tmp_path / ".scribe" / "rules.yaml").write_text(RULES)
    (tmp_path / "a.md").write_text("---\ntitle: a\n---\nbody\n")
    return tmp_path


def test_disable_and_enable_from_the_command_line(repo: Path) -> None:
    rules_file = repo / ".scribe" / "rules.yaml"
    result = scribe_cmd("rules", "disable", "checked", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "rule checked disabled in .scribe/rules.yaml" in result.stdout
    assert changed_lines(RULES, rules_file.read_text()) == [
        "    enabled: false   # on while we try it\n"
    ]
    assert scribe_cmd("run", cwd=repo).returncode == 0
    assert "checked:" not in (repo / "a.md").read_text()  # the disabled rule did not run
    assert "modified:" in (repo / "a.md").read_text()
    again = scribe_cmd("rules", "disable", "checked", cwd=repo)
    assert (again.returncode, again.stderr.strip()) == (0, "rule checked is already disabled")
    assert scribe_cmd("rules", "enable", "checked", cwd=repo).returncode == 0
    assert rules_file.read_text() == RULES
    with sqlite3.connect(repo / ".scribe" / "journal.db") as db:
        edits = db.execute(
            "SELECT e.actor, e.message, d.message FROM entries e JOIN entries d ON d.ref = e.seq"
            " WHERE e.kind = 'file.written' AND e.path = '.scribe/rules.yaml' ORDER BY e.seq"
        ).fetchall()
    assert edits == [
        ("user", "rule checked disabled (scribe rules disable)", "written"),
        ("user", "rule checked enabled (scribe rules enable)", "written"),
    ]


def test_a_misspelt_id_changes_nothing(repo: Path) -> None:
    result = scribe_cmd("rules", "disable", "chekced", cwd=repo)
    assert result.returncode == 1
    assert "no rule with id 'chekced'; did you mean 'checked'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert (repo / ".scribe" / "rules.yaml").read_text() == RULES


def test_explaining_an_ignored_file_says_so(repo: Path) -> None:
    result = scribe_cmd("rules", "--explain", ".scribe/rules.yaml", cwd=repo)
    assert result.returncode == 1
    assert "is ignored" in result.stderr
    assert "Traceback" not in result.stderr

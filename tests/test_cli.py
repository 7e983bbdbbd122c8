"""The scribe command as users run it: a real process on a real repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import scribe
from cli_helpers import scribe as scribe_cmd
from scribe.config import Settings

STAMP_RULES = """\
rules:
  - id: stamp
    paths: ["**/*.md"]
    exclude: ["templates/**"]
    do:
      - set: {field: modified, value: "{{ now('%Y-%m-%d') }}"}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".scribe").mkdir()
    (tmp_path / ".scribe" / "rules.yaml").write_text(STAMP_RULES)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("---\ntitle: A # kept\n---\nbody\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.md").write_text("---\ntitle: T\n---\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\0\0")
    return tmp_path


def test_public_surface_is_pinned() -> None:
    assert scribe.__all__ == [
        "ConfigError",
        "ContentChanged",
        "Event",
        "EventKind",
        "ScribeError",
        "Skipped",
        "__version__",
    ]


def test_init_writes_valid_commented_rules_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = scribe_cmd("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    rules = (tmp_path / ".scribe" / "rules.yaml").read_text()
    assert rules.startswith("# Scribe rules.")
    assert "id: stamp-modified" in rules
    assert (tmp_path / ".scribe" / ".gitignore").read_text().endswith("state.db*\n")
    listed = scribe_cmd("rules", cwd=tmp_path)
    assert listed.returncode == 0
    assert "stamp-modified" in listed.stdout
    again = scribe_cmd("init", cwd=tmp_path)
    assert again.returncode == 1
    assert "already exists; not overwriting it" in again.stderr
    assert (tmp_path / ".scribe" / "rules.yaml").read_text() == rules


def test_plan_prints_the_diff_and_writes_nothing(repo: Path) -> None:
    before = (repo / "notes" / "a.md").stat()
    result = scribe_cmd("plan", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "--- a/notes/a.md" in result.stdout
    assert "+modified: " in result.stdout
    assert "templates/t.md" not in result.stdout
    after = (repo / "notes" / "a.md").stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert not (repo / ".scribe" / "state.db").exists()


def test_check_fails_until_run_applies_then_passes(repo: Path) -> None:
    check = scribe_cmd("check", cwd=repo)
    assert check.returncode == 1
    assert "would change notes/a.md (stamp)" in check.stdout
    run = scribe_cmd("run", cwd=repo)
    assert run.returncode == 0, run.stderr
    assert "rewrote notes/a.md (stamp)" in run.stdout
    text = (repo / "notes" / "a.md").read_text()
    assert text.startswith("---\ntitle: A # kept\nmodified: ")
    assert (repo / "templates" / "t.md").read_text() == "---\ntitle: T\n---\n"
    assert scribe_cmd("check", cwd=repo).returncode == 0
    stat = (repo / "notes" / "a.md").stat()
    assert scribe_cmd("run", cwd=repo).returncode == 0  # a second run writes nothing
    again = (repo / "notes" / "a.md").stat()
    assert (again.st_mtime_ns, again.st_ino) == (stat.st_mtime_ns, stat.st_ino)


def test_run_on_given_paths_only_and_from_a_subdirectory(repo: Path) -> None:
    (repo / "other.md").write_text("x\n")
    result = scribe_cmd("run", "a.md", cwd=repo / "notes")
    assert result.returncode == 0, result.stderr
    assert "modified:" in (repo / "notes" / "a.md").read_text()
    assert (repo / "other.md").read_text() == "x\n"


def test_explain_says_which_rules_match_and_why_not(repo: Path) -> None:
    (repo / ".scribe" / "rules.yaml").write_text(
        STAMP_RULES
        + "  - id: drafts-only\n    when:\n      - frontmatter: {status: draft}\n    do: [{remove: {field: x}}]\n"
    )
    result = scribe_cmd("rules", "--explain", "templates/t.md", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "stamp: path matches exclude: ['templates/**']" in result.stdout
    assert "drafts-only: when[1]: frontmatter 'status' is missing" in result.stdout
    assert "would leave it unchanged" in result.stdout
    matched = scribe_cmd("rules", "--explain", "notes/a.md", cwd=repo)
    assert "✓ stamp: matched" in matched.stdout
    assert "would change it (stamp)" in matched.stdout


def test_invalid_rules_exit_2_with_location(repo: Path) -> None:
    (repo / ".scribe" / "rules.yaml").write_text(
        "rules:\n  - id: a\n    do:\n      - sett: {field: x}\n"
    )
    for command in ("run", "plan", "check", "rules"):
        result = scribe_cmd(command, cwd=repo)
        assert result.returncode == 2, command
        assert (
            ".scribe/rules.yaml:4:9: rules[0].do[0].sett: unknown action 'sett'; did you mean 'set'?"
            in result.stderr
        )
        assert "Traceback" not in result.stderr


def test_unknown_setting_in_scribe_yaml_is_an_error(repo: Path) -> None:
    (repo / "scribe.yaml").write_text("quiet_ms: 5\nmax_file_byte: 10\n")
    result = scribe_cmd("check", cwd=repo)
    assert result.returncode == 2
    assert (
        "scribe.yaml:2:1: max_file_byte: unknown setting 'max_file_byte'; did you mean 'max_file_bytes'?"
        in result.stderr
    )


def test_schema_prints_json_schema(repo: Path) -> None:
    result = scribe_cmd("schema", cwd=repo)
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "Scribe rules file"


def test_schema_config_describes_every_setting(repo: Path) -> None:
    result = scribe_cmd("schema", "config", cwd=repo)
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert set(schema["properties"]) == set(Settings.model_fields)
    assert schema["additionalProperties"] is False  # unknown keys are errors
    assert schema["properties"]["workers"]["description"].endswith(
        "default: one per CPU, at least 2 and at most 4"
    )


def test_config_shows_each_value_and_where_it_came_from(repo: Path) -> None:
    (repo / "scribe.yaml").write_text("# tuned\nquiet_ms: 5\nworkers: 2\n")
    env = {"SCRIBE_WORKERS": "3", "SCRIBE_IGNORE": '["drafts/**"]'}
    table = scribe_cmd("config", cwd=repo, env=env)
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line.split()[1:] for line in table.stdout.splitlines()[1:]}
    assert rows["quiet_ms"] == ["5", "scribe.yaml:2"]
    assert rows["workers"] == ["3", "environment", "SCRIBE_WORKERS"]  # the variable wins
    assert rows["poll"] == ["false", "default"]
    report = json.loads(scribe_cmd("config", "--json", cwd=repo, env=env).stdout)
    assert report["ignore"] == {"value": ["drafts/**"], "source": "environment SCRIBE_IGNORE"}
    assert report["max_batch"] == {"value": 64, "source": "default"}


def test_a_misspelt_or_invalid_environment_variable_is_an_error(repo: Path) -> None:
    misspelt = scribe_cmd("check", cwd=repo, env={"SCRIBE_WORKRS": "2"})
    assert misspelt.returncode == 2
    assert "SCRIBE_WORKRS: unknown setting; did you mean SCRIBE_WORKERS?" in misspelt.stderr
    invalid = scribe_cmd("config", cwd=repo, env={"SCRIBE_WORKERS": "many"})
    assert invalid.returncode == 2
    assert "environment: SCRIBE_WORKERS: Input should be a valid integer" in invalid.stderr
    not_json = scribe_cmd("config", cwd=repo, env={"SCRIBE_IGNORE": "drafts/**"})
    assert not_json.returncode == 2
    assert "environment: SCRIBE_IGNORE: not valid JSON" in not_json.stderr
    for result in (misspelt, invalid, not_json):
        assert "Traceback" not in result.stderr


def test_failing_rule_is_reported_and_others_still_apply(repo: Path) -> None:
    (repo / ".scribe" / "rules.yaml").write_text(
        STAMP_RULES
        + "  - id: bad-template\n    paths: ['**/*.md']\n    do:\n      - set: {field: x, value: \"{{ now(tz='Mars/Base') }}\"}\n"
    )
    result = scribe_cmd("run", cwd=repo)
    assert result.returncode == 1
    assert (
        "rule bad-template failed on notes/a.md: ValueError: now(): unknown time zone 'Mars/Base'"
        in result.stderr
    )
    assert "modified:" in (repo / "notes" / "a.md").read_text()

"""Rules files: valid ones load in priority order; every mistake is located and explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scribe.errors import ConfigError
from scribe.events import EventKind
from scribe.rules.load import load_rules, parse_rules
from scribe.rules.model import rules_schema


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "rules.yaml")
    return [str(p) for p in caught.value.problems]


def test_valid_rules_load_sorted_by_priority_then_file_order() -> None:
    rules = parse_rules(
        """
rules:
  - id: low
    do: [{remove: {field: a}}]
  - id: high
    priority: 10
    on: modified
    paths: "**/*.md"
    do: [{remove: {field: a}}]
  - id: low-too
    do: [{remove: {field: a}}]
""",
        "rules.yaml",
    )
    assert [r.id for r in rules] == ["high", "low", "low-too"]
    high = rules[0]
    assert high.on == frozenset({EventKind.MODIFIED})
    assert high.paths == ("**/*.md",)
    assert rules[1].on == frozenset({EventKind.CREATED, EventKind.MODIFIED})


def test_unknown_key_is_located_with_a_suggestion() -> None:
    assert problems("rules:\n  - id: a\n    pahts: ['*.md']\n    do: [{remove: {field: a}}]\n") == [
        "rules.yaml:3:5: rules[0].pahts: unknown key 'pahts'; did you mean 'paths'?"
    ]


def test_unknown_action_suggests_the_closest_and_lists_all() -> None:
    (message,) = problems("rules:\n  - id: a\n    do:\n      - sett: {field: x, value: 1}\n")
    assert message.startswith(
        "rules.yaml:4:9: rules[0].do[0].sett: unknown action 'sett'; did you mean 'set'?"
    )
    assert (
        "(actions: set, remove, rename_field, replace, append, prepend, ensure_frontmatter, "
        "run_command, emit" in message
    )


def test_action_parameters_are_checked_where_they_are_written() -> None:
    found = problems("rules:\n  - id: a\n    do:\n      - set: {fild: x, value: 1}\n")
    assert (
        "rules.yaml:4:15: rules[0].do[0].set.fild: unknown key 'fild'; did you mean 'field'? "
        "(rule 'a', step 1)" in found
    )
    assert (
        "rules.yaml:4:14: rules[0].do[0].set.field: missing required key 'field' (rule 'a', step 1)"
        in found
    )


def test_condition_operators_and_event_kinds_get_suggestions() -> None:
    found = problems(
        "rules:\n  - id: a\n    on: [modifed]\n    when:\n      - frontmatter: {status: {nto: x}}\n"
        "    do: [{remove: {field: a}}]\n"
    )
    assert found == [
        "rules.yaml:3:10: rules[0].on[0]: 'modifed' is not one of created, modified, deleted, moved; "
        "did you mean 'modified'?",
        "rules.yaml:5:32: rules[0].when[0].frontmatter.status.nto: unknown key 'nto'; did you mean 'not'?",
    ]


def test_bad_regex_and_bad_template_are_reported_at_load_time() -> None:
    found = problems(
        "rules:\n  - id: a\n    do:\n      - replace: {pattern: '(x', with: y}\n"
        "      - set: {field: f, value: '{{ now( }}'}\n"
    )
    assert found[0].startswith(
        "rules.yaml:4:28: rules[0].do[0].replace.pattern: invalid regular expression"
    )
    assert found[1].startswith("rules.yaml:5:32: rules[0].do[1].set.value: template syntax error")


def test_malformed_yaml_names_line_and_column() -> None:
    (message,) = problems("rules:\n  - id: a\n    do: [\n")
    assert message.startswith("rules.yaml:4:1: invalid YAML:")


def test_duplicate_ids_and_shapeless_steps() -> None:
    assert problems(
        "rules:\n  - id: a\n    do: [{remove: {field: x}}]\n  - id: a\n    do: [{remove: {field: x}}]\n"
    ) == ["rules.yaml:4:9: rules[1].id: duplicate rule id 'a' (first used by rules[0])"]
    assert problems("rules:\n  - id: a\n    do:\n      - just-a-string\n") == [
        "rules.yaml:4:9: rules[0].do[0]: a step is a mapping with one key, the action name: "
        "e.g. `- set: {field: x, value: y}`"
    ]


def test_a_condition_needs_exactly_one_kind() -> None:
    (message,) = problems(
        "rules:\n  - id: a\n    when:\n      - {path: x, content: y}\n    do: [{remove: {field: x}}]\n"
    )
    assert (
        message
        == "rules.yaml:4:9: rules[0].when[0]: a condition needs exactly one of frontmatter, content, path, size"
    )


def test_missing_rules_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"rules file not found \(create one with `scribe init`\)"
    ):
        load_rules(tmp_path / "rules.yaml")


def test_empty_rules_file_is_valid_and_has_no_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("# nothing yet\n")
    assert load_rules(path) == []


def test_schema_is_generated_from_the_models() -> None:
    schema = rules_schema()
    text = json.dumps(schema)
    assert schema["title"] == "Scribe rules file"
    for name in (
        "set",
        "remove",
        "rename_field",
        "replace",
        "append",
        "prepend",
        "ensure_frontmatter",
    ):
        assert f'"{name}"' in text
    rule = schema["$defs"]["Rule"]
    assert {"id", "enabled", "priority", "on", "paths", "exclude", "when", "do"} <= set(
        rule["properties"]
    )
    assert rule["additionalProperties"] is False


def test_a_rules_fingerprint_is_stable_across_processes_and_follows_its_definition() -> None:
    import subprocess
    import sys

    text = (
        "rules:\n  - id: r\n    paths: ['*.md']\n"
        "    do: [{set: {field: m, value: \"{{ now('%Y') }}\"}}]\n"
    )
    code = f"from scribe.rules.load import parse_rules; print(parse_rules({text!r}, 'r')[0].fingerprint)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = parse_rules(text, "r")[0].fingerprint
    assert other.stdout.strip() == here
    assert parse_rules(text.replace("%Y", "%m"), "r")[0].fingerprint != here

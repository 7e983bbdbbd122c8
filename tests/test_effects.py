"""Effects in the engine: custom events and their chains, writes and moves of other
files, findings, and every refusal journaled as a scope violation."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from scribe.actions import ACTIONS, Action, Content, Effects, FileContext
from scribe.actions.effects import Effect, Finding, Rename, WriteFile
from scribe.confinement import Confinement
from scribe.engine import Engine, Status
from scribe.errors import ConfigError
from scribe.events import Event, EventKind
from scribe.journal.entry import (
    CHAIN_CUT,
    EVENT_EMITTED,
    FILE_MOVED,
    FILE_WRITTEN,
    RULE_FINDING,
    SCOPE_VIOLATION,
    WORK_DONE,
    Entry,
    Query,
)
from scribe.journal.mirrors import Mirrors
from scribe.journal.sqlite import SqliteJournal
from scribe.journal.writer import JournalWriter
from scribe.rules.load import parse_rules
from scribe.rules.match import CompiledRule
from scribe.state import State


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    to: str = "index.md"
    text: str = "generated\n"


def _write_other(ctx: FileContext, p: _Target) -> Sequence[Effect]:
    return [WriteFile(p.to, p.text)]


def _rename(ctx: FileContext, p: _Target) -> Sequence[Effect]:
    return [Rename(ctx.path, p.to)]


def _find(ctx: FileContext, p: _Target) -> Sequence[Effect]:
    return (
        [Finding("todo", "a TODO is left", ctx.path, line=2, fail=True)]
        if "TODO" in ctx.text
        else []
    )


def _append(ctx: FileContext, p: _Target) -> str:
    return ctx.text if ctx.text.endswith(p.text) else ctx.text + p.text


TEST_ACTIONS: dict[str, Action] = {
    **ACTIONS,
    "write_other": Effects("write_other", _Target, _write_other, "writes another file"),
    "move_to": Effects("move_to", _Target, _rename, "renames the file"),
    "find_todo": Effects("find_todo", _Target, _find, "reports TODOs"),
    "append_text": Content("append_text", _Target, _append, "appends text"),
}


class _Granted:
    """A plug-in's permissions, as its manifest declares them."""

    def __init__(self, write: Sequence[str]) -> None:
        self.write = list(write)
        self.commands: list[str] = []


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[JournalWriter]:
    journal = JournalWriter(SqliteJournal.for_root(tmp_path), Mirrors(tmp_path))
    yield journal
    journal.close()


def rules(text: str, plugins: dict[str, Sequence[str]] | None = None) -> list[CompiledRule]:
    grants = {name: _Granted(globs) for name, globs in (plugins or {}).items()}
    return parse_rules(text, "rules.yaml", actions=TEST_ACTIONS, permissions=grants.get)


def engine(root: Path, writer: JournalWriter, text: str, **kw: Any) -> Engine:
    plugins = kw.pop("plugins", None)
    return Engine(root, rules(text, plugins), state=State(None), journal=writer, **kw)


def journal(writer: JournalWriter, kind: str | None = None) -> list[Entry]:
    writer.flush()
    found = writer.store.query(Query())
    return [e for e in found if kind is None or e.kind == kind]


def scan(path: str) -> Event:
    return Engine.scan_event(path)


CHAIN = """
rules:
  - id: announce
    paths: ["**/*.md"]
    do:
      - emit: {event: reviewed, data: {by: "{{ stem }}"}}
  - id: mark
    on: [{event: reviewed}]
    do:
      - set: {field: reviewed_by, value: "{{ event.data.by }}"}
"""


def test_an_emitted_event_sets_off_the_rules_that_listen_for_it(
    tmp_path: Path, writer: JournalWriter
) -> None:
    (tmp_path / "note.md").write_text("---\ntitle: n\n---\nbody\n")
    outcomes = engine(tmp_path, writer, CHAIN).handle_all([scan("note.md")])
    assert [o.status for o in outcomes] == [Status.UNCHANGED, Status.WRITTEN]
    assert (tmp_path / "note.md").read_text() == "---\ntitle: n\nreviewed_by: note\n---\nbody\n"
    (emitted,) = journal(writer, EVENT_EMITTED)
    assert emitted.actor == "rule:announce"
    assert emitted.payload["name"] == "reviewed"
    assert emitted.payload["data"] == {"by": "note"}
    written = journal(writer, FILE_WRITTEN)
    assert written[0].payload["event"]["name"] == "reviewed"


def test_a_chain_through_a_templated_name_is_cut_at_the_depth_limit_and_journaled(
    tmp_path: Path, writer: JournalWriter
) -> None:
    looping = """
rules:
  - id: start
    paths: ["*.md"]
    do: [{emit: {event: ping}}]
  - id: echo
    on: [{event: ping}]
    do: [{emit: {event: "{{ 'pi' ~ 'ng' }}"}}]
"""
    (tmp_path / "a.md").write_text("x\n")
    outcomes = engine(tmp_path, writer, looping, max_chain_depth=3).handle_all([scan("a.md")])
    assert len(outcomes) == 1 + 3  # the scan, then depths 1, 2 and 3
    (cut,) = journal(writer, CHAIN_CUT)
    assert cut.payload == {**cut.payload, "name": "ping", "depth": 3, "rule": "echo"}
    assert len(journal(writer, EVENT_EMITTED)) == 3


def test_rules_that_set_each_other_off_by_fixed_names_are_refused_at_load() -> None:
    with pytest.raises(ConfigError) as caught:
        rules(
            """
rules:
  - id: a
    on: [modified, {event: y}]
    do: [{emit: {event: x}}]
  - id: b
    on: [{event: x}]
    do: [{emit: {event: y}}]
"""
        )
    (problem,) = caught.value.problems
    assert (problem.line, problem.key_path) == (5, "rules[0].do[0].emit.event")
    assert "cycle: a (emits x) -> b (emits y) -> a" in problem.message


def test_an_unknown_trigger_kind_is_named_with_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        rules("rules:\n  - id: a\n    on: [{event: 'bad name'}]\n    do: [{emit: {event: x}}]\n")
    assert caught.value.problems[0].line == 3


def test_a_generated_file_is_written_journal_first_and_never_rewritten_unchanged(
    tmp_path: Path, writer: JournalWriter
) -> None:
    (tmp_path / "a.md").write_text("a\n")
    text = 'rules:\n  - id: gen\n    paths: ["a.md"]\n    do: [{write_other: {}}]\n'
    scribe = engine(tmp_path, writer, text)
    scribe.handle(scan("a.md"))
    assert (tmp_path / "index.md").read_text() == "generated\n"
    kinds = [(e.kind, e.path) for e in journal(writer) if e.path == "index.md"]
    assert kinds == [(FILE_WRITTEN, "index.md"), (WORK_DONE, "index.md")]
    inode = os.stat(tmp_path / "index.md").st_ino
    scribe.handle(Event(EventKind.MODIFIED, "a.md"))
    assert os.stat(tmp_path / "index.md").st_ino == inode
    assert len(journal(writer, FILE_WRITTEN)) == 1
    # Scribe's own write does not set rules off when its event comes back.
    assert scribe.handle(Event(EventKind.MODIFIED, "index.md")).status is not Status.WRITTEN


@pytest.mark.parametrize(
    "target",
    [".env", "keys/server.pem", ".git/config", ".scribe/rules.yaml", "scribe.yaml", "../out.md"],
)
def test_writes_to_denied_or_outside_paths_are_refused_and_journaled(
    tmp_path: Path, writer: JournalWriter, target: str
) -> None:
    (tmp_path / "a.md").write_text("a\n")
    text = (
        f'rules:\n  - id: gen\n    paths: ["a.md"]\n    do: [{{write_other: {{to: "{target}"}}}}]\n'
    )
    outcome = engine(tmp_path, writer, text).handle(scan("a.md"))
    assert not (tmp_path / target).exists()
    assert not (tmp_path.parent / "out.md").exists()
    (violation,) = journal(writer, SCOPE_VIOLATION)
    assert violation.actor == "rule:gen"
    assert violation.path == target
    assert [f.rule for f in outcome.failures] == ["gen"]


def test_a_write_through_a_symlinked_folder_leading_out_is_refused(
    tmp_path: Path, writer: JournalWriter
) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "out").symlink_to(outside)
    (root / "a.md").write_text("a\n")
    text = 'rules:\n  - id: gen\n    paths: ["a.md"]\n    do: [{write_other: {to: out/x.md}}]\n'
    engine(root, writer, text).handle(scan("a.md"))
    assert list(outside.iterdir()) == []
    assert [e.path for e in journal(writer, SCOPE_VIOLATION)] == ["out/x.md"]


def test_a_generated_file_someone_changed_meanwhile_is_left_alone(
    tmp_path: Path, writer: JournalWriter
) -> None:
    """``base_sha256`` is the compare-and-swap precondition of an effect's write."""
    (tmp_path / "a.md").write_text("a\n")
    (tmp_path / "index.md").write_text("the user's own words\n")

    def stale(ctx: FileContext, p: _Target) -> Sequence[Effect]:
        return [WriteFile("index.md", "generated\n", base_sha256="0" * 64)]

    actions = {**TEST_ACTIONS, "stale": Effects("stale", _Target, stale, "stale write")}
    compiled = parse_rules("rules:\n  - id: s\n    do: [{stale: {}}]\n", "r", actions=actions)
    Engine(tmp_path, compiled, state=State(None), journal=writer).handle(scan("a.md"))
    assert (tmp_path / "index.md").read_text() == "the user's own words\n"


def test_a_plugin_changing_a_file_outside_its_write_globs_fails_as_a_scope_violation(
    tmp_path: Path, writer: JournalWriter
) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("a\n")
    text = 'rules:\n  - id: plug\n    do: [{append_text: {text: "more\\n"}}]\n'
    scribe = engine(tmp_path, writer, text, plugins={"append_text": ["docs/**"]})
    outcome = scribe.handle(scan("notes/a.md"))
    assert (tmp_path / "notes" / "a.md").read_text() == "a\n"
    assert outcome.failures[0].scope
    assert "may not write notes/a.md (its manifest allows: docs/**)" in outcome.failures[0].reason
    assert [e.actor for e in journal(writer, SCOPE_VIOLATION)] == ["rule:plug"]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("b\n")
    assert scribe.handle(scan("docs/b.md")).status is Status.WRITTEN


def test_a_plugin_effect_writing_outside_its_globs_is_stopped(
    tmp_path: Path, writer: JournalWriter
) -> None:
    (tmp_path / "a.md").write_text("a\n")
    text = 'rules:\n  - id: plug\n    do: [{write_other: {to: "elsewhere.md"}}]\n'
    engine(tmp_path, writer, text, plugins={"write_other": ["generated/**"]}).handle(scan("a.md"))
    assert not (tmp_path / "elsewhere.md").exists()
    (violation,) = journal(writer, SCOPE_VIOLATION)
    assert "may not write elsewhere.md" in violation.message


def test_a_rename_never_replaces_an_existing_file(tmp_path: Path, writer: JournalWriter) -> None:
    (tmp_path / "Old Name.md").write_text("mine\n")
    (tmp_path / "taken.md").write_text("theirs\n")
    text = 'rules:\n  - id: mv\n    paths: ["Old Name.md"]\n    do: [{move_to: {to: "taken.md"}}]\n'
    outcome = engine(tmp_path, writer, text).handle(scan("Old Name.md"))
    assert (tmp_path / "taken.md").read_text() == "theirs\n"
    assert (tmp_path / "Old Name.md").read_text() == "mine\n"
    assert "taken.md exists" in outcome.failures[0].reason


def test_a_rename_moves_the_file_and_is_journaled(tmp_path: Path, writer: JournalWriter) -> None:
    (tmp_path / "Old Name.md").write_text("mine\n")
    text = 'rules:\n  - id: mv\n    paths: ["Old Name.md"]\n    do: [{move_to: {to: "new/old-name.md"}}]\n'
    engine(tmp_path, writer, text).handle(scan("Old Name.md"))
    assert (tmp_path / "new" / "old-name.md").read_text() == "mine\n"
    assert not (tmp_path / "Old Name.md").exists()
    (moved,) = journal(writer, FILE_MOVED)
    assert moved.payload["from"] == "Old Name.md"
    assert moved.path == "new/old-name.md"


def test_findings_are_journaled_and_told_without_failing_the_rule(
    tmp_path: Path, writer: JournalWriter
) -> None:
    (tmp_path / "a.md").write_text("one\nTODO two\n")
    text = "rules:\n  - id: todo\n    do: [{find_todo: {}}]\n"
    outcome = engine(tmp_path, writer, text).handle(scan("a.md"))
    assert [(f.code, f.line, f.fail) for f in outcome.findings] == [("todo", 2, True)]
    assert outcome.failures == ()
    (found,) = journal(writer, RULE_FINDING)
    assert found.payload["code"] == "todo"
    assert found.payload["line"] == 2


def test_a_dry_run_reports_findings_but_runs_no_effect(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("TODO\n")
    text = "rules:\n  - id: t\n    do: [{find_todo: {}}, {write_other: {}}]\n"
    outcome = Engine(tmp_path, rules(text), dry_run=True).handle(scan("a.md"))
    assert [f.code for f in outcome.findings] == ["todo"]
    assert not (tmp_path / "index.md").exists()
    assert outcome.plan is not None
    assert len(outcome.plan.effects) == 2


def test_deleting_a_file_runs_the_effects_of_rules_on_deleted(
    tmp_path: Path, writer: JournalWriter
) -> None:
    text = 'rules:\n  - id: gen\n    on: [deleted]\n    do: [{write_other: {text: "gone\\n"}}]\n'
    engine(tmp_path, writer, text).handle(Event(EventKind.DELETED, "a.md"))
    assert (tmp_path / "index.md").read_text() == "gone\n"


@pytest.mark.parametrize("name", [".env", "config/.env.local", "deploy/key.pem", "id_ed25519"])
def test_denied_files_are_never_read_and_each_refusal_is_journaled(
    tmp_path: Path, writer: JournalWriter, name: str
) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("SECRET=1\n")
    text = 'rules:\n  - id: all\n    paths: ["**/*"]\n    do: [{append: {text: "x"}}]\n'
    scribe = engine(tmp_path, writer, text)
    for _ in range(2):
        assert scribe.handle(Event(EventKind.MODIFIED, name)).status is Status.SKIPPED
    assert path.read_text() == "SECRET=1\n"
    assert [e.path for e in journal(writer, SCOPE_VIOLATION)] == [name, name]


def test_configured_deny_globs_add_to_the_built_in_ones(
    tmp_path: Path, writer: JournalWriter
) -> None:
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "diary.md").write_text("dear diary\n")
    text = 'rules:\n  - id: all\n    do: [{append: {text: "x"}}]\n'
    scribe = engine(tmp_path, writer, text, confinement=Confinement(["private/"]))
    assert scribe.handle(scan("private/diary.md")).status is Status.SKIPPED
    assert scribe.confinement.refusal(".env") is not None
    assert (tmp_path / "private" / "diary.md").read_text() == "dear diary\n"

"""The knowledge actions through real rules files, a real engine and journal over
real files: generate_index, cascade_status, create_from_template and
validate_frontmatter; then the real ``scribe run`` / ``scribe check`` / ``scribe
watch`` processes."""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli_helpers import journaled as stored
from cli_helpers import make_repo, scribe
from live_helpers import ScribeProcess, holds_for, wait_until
from scribe.actions import ACTIONS as BUILT_IN
from scribe.actions import FileContext
from scribe.actions.effects import Finding, WriteFile
from scribe.actions.knowledge import BUILTINS
from scribe.actions.registry import builtin_registry
from scribe.engine import Engine, Outcome
from scribe.errors import ConfigError
from scribe.events import Event, EventKind
from scribe.journal.entry import FILE_WRITTEN, RULE_FINDING, Entry, Query
from scribe.journal.mirrors import Mirrors
from scribe.journal.sqlite import SqliteJournal
from scribe.journal.writer import JournalWriter
from scribe.notes.index import NoteIndex
from scribe.plan import plan_file
from scribe.rules.load import parse_rules
from scribe.rules.match import CompiledRule
from scribe.state import State

ACTIONS = BUILT_IN
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# -- helpers -------------------------------------------------------------------------


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def rules(text: str) -> list[CompiledRule]:
    return parse_rules(text, "rules.yaml", actions=ACTIONS)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[JournalWriter]:
    journal = JournalWriter(SqliteJournal.for_root(tmp_path), Mirrors(tmp_path))
    yield journal
    journal.close()


def engine(root: Path, writer: JournalWriter, text: str) -> Engine:
    return Engine(root, rules(text), state=State(None), journal=writer, notes=NoteIndex(root))


def scan_all(eng: Engine, *paths: str) -> list[Outcome]:
    return eng.handle_all([Engine.scan_event(p) for p in paths])


def journal(writer: JournalWriter, kind: str) -> list[Entry]:
    writer.flush()
    return [e for e in writer.store.query(Query()) if e.kind == kind]


def writes_of(writer: JournalWriter, rel: str) -> int:
    return sum(e.path == rel for e in journal(writer, FILE_WRITTEN))


def findings(outcomes: list[Outcome]) -> list[Finding]:
    return [f for o in outcomes for f in o.findings]


def failures(outcomes: list[Outcome]) -> list[str]:
    return [f"{f.rule}: {f.reason}" for o in outcomes for f in o.failures]


def stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_the_module_exports_its_four_actions() -> None:
    assert [a.name for a in BUILTINS] == [
        "generate_index",
        "cascade_status",
        "create_from_template",
        "validate_frontmatter",
    ]


def test_the_registry_loads_them_as_trusted_built_in_effect_actions() -> None:
    for action in BUILTINS:
        plugin = builtin_registry().get(action.name)
        assert plugin is not None
        assert plugin.builtin
        assert plugin.kind == "effect"
        assert action.summary.endswith(".")


# -- generate_index ------------------------------------------------------------------

BACKLOG = """
rules:
  - id: backlog
    on: [created, modified, deleted, moved]
    paths: ["tasks/**/*.md"]
    do:
      - generate_index:
          output: backlog.md
          paths: ["tasks/**/*.md"]
          group_by: status
          group_order: [todo, doing, done]
          title: Backlog
"""

TASKS = {
    "tasks/alpha.md": "---\nstatus: todo\n---\nA\n",
    "tasks/bravo.md": "---\nstatus: done\n---\nB\n",
    "tasks/charlie.md": "---\nstatus: doing\n---\nC\n",
    "tasks/delta.md": "no frontmatter\n",
    "tasks/sub/Echo.md": "---\nstatus: todo\n---\nE\n",
}

BACKLOG_TEXT = """\
# Backlog

## todo

- [[alpha]]
- [[Echo]]

## doing

- [[charlie]]

## done

- [[bravo]]

## Other

- [[delta]]
"""


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for rel, text in TASKS.items():
        write(root, rel, text)
    return root


def test_an_index_groups_the_notes_in_the_given_order_sorted_by_title(
    tasks: Path, writer: JournalWriter
) -> None:
    outcomes = scan_all(engine(tasks, writer, BACKLOG), *TASKS)
    assert failures(outcomes) == []
    assert (tasks / "backlog.md").read_text() == BACKLOG_TEXT
    (first, *_) = journal(writer, FILE_WRITTEN)
    assert first.path == "backlog.md"
    assert first.actor == "rule:backlog"


def test_an_unchanged_set_of_notes_gives_the_same_text_and_no_write(
    tasks: Path, writer: JournalWriter
) -> None:
    eng = engine(tasks, writer, BACKLOG)
    scan_all(eng, *TASKS)
    before = stamp(tasks / "backlog.md")
    writes = writes_of(writer, "backlog.md")
    scan_all(eng, *TASKS)
    scan_all(engine(tasks, writer, BACKLOG), *TASKS)  # a fresh engine and index too
    assert stamp(tasks / "backlog.md") == before
    assert writes_of(writer, "backlog.md") == writes == 1
    dry = Engine(tasks, rules(BACKLOG), dry_run=True, notes=NoteIndex(tasks))
    planned = dry.handle(Engine.scan_event("tasks/alpha.md")).plan
    assert planned is not None
    assert planned.effects == ()  # so scribe plan announces no write


def test_a_changed_status_moves_the_note_and_a_deleted_or_moved_one_follows(
    tasks: Path, writer: JournalWriter
) -> None:
    eng = engine(tasks, writer, BACKLOG)
    scan_all(eng, *TASKS)
    write(tasks, "tasks/charlie.md", "---\nstatus: done\n---\nC\n")
    eng.handle(Event(EventKind.MODIFIED, "tasks/charlie.md"))
    text = (tasks / "backlog.md").read_text()
    assert "## doing" not in text
    assert "## done\n\n- [[bravo]]\n- [[charlie]]\n" in text

    (tasks / "tasks/alpha.md").unlink()
    eng.handle(Event(EventKind.DELETED, "tasks/alpha.md"))
    assert "## todo\n\n- [[Echo]]\n\n" in (tasks / "backlog.md").read_text()

    os.rename(tasks / "tasks/sub/Echo.md", tasks / "tasks/Foxtrot.md")
    eng.handle(Event(EventKind.MOVED, "tasks/sub/Echo.md", dest="tasks/Foxtrot.md"))
    text = (tasks / "backlog.md").read_text()
    assert "Echo" not in text
    assert "## todo\n\n- [[Foxtrot]]\n\n" in text


def test_the_index_sees_the_text_earlier_steps_planned_not_the_old_file(
    tasks: Path, writer: JournalWriter
) -> None:
    text = """
rules:
  - id: default-status
    paths: ["tasks/**/*.md"]
    do:
      - ensure_frontmatter: {defaults: {status: todo}}
""" + BACKLOG.replace("rules:\n", "")
    scan_all(engine(tasks, writer, text), "tasks/delta.md")
    index = (tasks / "backlog.md").read_text()
    assert "## todo\n\n- [[alpha]]\n- [[delta]]\n- [[Echo]]\n" in index
    assert "Other" not in index


def test_where_item_sort_and_reverse_make_a_custom_list(
    tmp_path: Path, writer: JournalWriter
) -> None:
    write(tmp_path, "p/a.md", "---\npriority: 2\nowner: sam\nstatus: open\n---\n")
    write(tmp_path, "p/b.md", "---\npriority: 10\nstatus: open\n---\n")
    write(tmp_path, "p/c.md", "---\npriority: 2\nowner: kim\nstatus: closed\n---\n")
    write(tmp_path, "p/d.md", "---\nstatus: open\n---\n")
    write(tmp_path, "p/e.md", "---\npriority: 7\nowner: lee\nstatus: open\n---\n")
    text = """
rules:
  - id: open-list
    on: [created, modified, deleted, moved]
    paths: ["p/*.md"]
    do:
      - generate_index:
          output: "views/open.md"
          paths: "p/*.md"
          where: {status: open, owner: {exists: true}}
          sort_by: priority
          reverse: true
          item: "1. {{ title }} ({{ field('owner') }}, {{ path }} in {{ parent }})"
"""
    scan_all(engine(tmp_path, writer, text), "p/a.md")
    expected = "1. e (lee, p/e.md in p)\n1. a (sam, p/a.md in p)\n"
    assert (tmp_path / "views/open.md").read_text() == expected
    outcomes = scan_all(engine(tmp_path, writer, text.replace("field('owner')", "owner")), "p/a.md")
    assert failures(outcomes) == [
        "open-list: ValueError: item: 'owner' is undefined (a note's fields are field('name'))"
    ]


def test_a_list_field_puts_the_note_in_each_group_and_the_output_is_never_a_source(
    tmp_path: Path, writer: JournalWriter
) -> None:
    write(tmp_path, "a.md", "---\ntags: [plants, soil]\n---\n")
    write(tmp_path, "b.md", "---\ntags: soil\n---\n")
    write(tmp_path, "c.md", "---\ntags: []\n---\n")
    text = """
rules:
  - id: tags
    on: [created, modified, deleted, moved]
    paths: ["**/*.md"]
    do:
      - generate_index: {output: tags.md, group_by: tags, ungrouped: Untagged}
"""
    eng = engine(tmp_path, writer, text)
    scan_all(eng, "a.md", "b.md", "c.md")
    expected = "## plants\n\n- [[a]]\n\n## soil\n\n- [[a]]\n- [[b]]\n\n## Untagged\n\n- [[c]]\n"
    assert (tmp_path / "tags.md").read_text() == expected
    outcomes = scan_all(eng, "tags.md", "a.md")  # the index itself matches the rule's paths
    assert failures(outcomes) == []
    assert (tmp_path / "tags.md").read_text() == expected
    assert writes_of(writer, "tags.md") == 1


def test_a_hand_edited_or_deleted_index_is_generated_again(
    tasks: Path, writer: JournalWriter
) -> None:
    text = BACKLOG.replace('paths: ["tasks/**/*.md"]\n    do', 'paths: ["**/*.md"]\n    do')
    eng = engine(tasks, writer, text)
    scan_all(eng, *TASKS)
    write(tasks, "backlog.md", "scribbled over\n")
    eng.handle(Event(EventKind.MODIFIED, "backlog.md"))
    assert (tasks / "backlog.md").read_text() == BACKLOG_TEXT
    (tasks / "backlog.md").unlink()
    eng.handle(Event(EventKind.DELETED, "backlog.md"))
    assert (tasks / "backlog.md").read_text() == BACKLOG_TEXT


def test_a_templated_output_gives_one_index_per_folder(
    tmp_path: Path, writer: JournalWriter
) -> None:
    write(tmp_path, "garden/rose.md", "x\n")
    write(tmp_path, "garden/fern.md", "x\n")
    write(tmp_path, "kitchen/basil.md", "x\n")
    text = """
rules:
  - id: folder-index
    on: [created, modified, deleted, moved]
    paths: ["*/*.md"]
    exclude: ["*/index.md"]
    do:
      - generate_index:
          output: "{{ parent }}/index.md"
          paths: ["{{ parent }}/*.md"]
          title: "{{ parent | title }}"
"""
    scan_all(engine(tmp_path, writer, text), "garden/rose.md", "kitchen/basil.md")
    assert (tmp_path / "garden/index.md").read_text() == "# Garden\n\n- [[fern]]\n- [[rose]]\n"
    assert (tmp_path / "kitchen/index.md").read_text() == "# Kitchen\n\n- [[basil]]\n"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ('{output: i.md, item: "{{ now() }}"}', "must not call now()"),
        ("{output: i.md, colour: red}", "colour"),
        ("{paths: ['*.md']}", "output"),
        ("{output: i.md, where: {status: {matches: '('}}}", "invalid regular expression"),
        ("{output: i.md, sort_by: ''}", "sort_by"),
    ],
)
def test_index_params_are_checked_when_the_rules_load(params: str, message: str) -> None:
    text = f"rules:\n  - id: r\n    do:\n      - generate_index: {params}\n"
    with pytest.raises(ConfigError) as caught:
        rules(text)
    assert message in str(caught.value)


def test_an_output_outside_the_repository_fails_the_rule_alone(
    tmp_path: Path, writer: JournalWriter
) -> None:
    write(tmp_path, "a.md", "---\nx: 1\n---\n")
    text = """
rules:
  - id: escape
    do:
      - generate_index: {output: "../outside.md"}
  - id: fine
    do:
      - set: {field: y, value: 2}
"""
    outcomes = scan_all(engine(tmp_path, writer, text), "a.md")
    assert failures(outcomes) == [
        "escape: ValueError: output '../outside.md' is not a path inside the repository"
    ]
    assert (tmp_path / "a.md").read_text() == "---\nx: 1\ny: 2\n---\n"
    assert not (tmp_path.parent / "outside.md").exists()


@pytest.mark.parametrize("action", ["generate_index", "cascade_status", "create_from_template",
                                    "validate_frontmatter"])  # fmt: skip
def test_without_the_repository_s_notes_each_action_fails_with_that_reason(action: str) -> None:
    params = {
        "generate_index": "{output: i.md}",
        "cascade_status": "{}",
        "create_from_template": "{template: t.md, path: n.md}",
        "validate_frontmatter": "{schema: s.json}",
    }[action]
    compiled = rules(f"rules:\n  - id: r\n    do:\n      - {action}: {params}\n")
    text = "---\nparent: '[[P]]'\n---\n"
    plan = plan_file(
        "n.md", text, "", compiled, kind=EventKind.MODIFIED, time=T0, size=1, may_restamp=True
    )
    assert [f.reason for f in plan.failures] == [
        f"ValueError: {action} needs the repository's notes"
    ]


# -- cascade_status ------------------------------------------------------------------

CASCADE = """
rules:
  - id: cascade
    paths: ["**/*.md"]
    do:
      - cascade_status: {}
"""

PARENT = """\
---
title: "Launch"   # the big one
status: doing
owner: sam
tags: [q3, launch]
---
Body of the parent stays as it is.
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, "projects/Launch.md", PARENT)
    write(root, "tasks/one.md", "---\nparent: '[[Launch]]'\nstatus: done\n---\n")
    write(root, "tasks/two.md", "---\nparent: projects/Launch.md\nstatus: doing\n---\n")
    write(root, "tasks/three.md", "---\nparent: [[Launch]]\nstatus: done\n---\n")  # YAML: a list
    write(root, "tasks/other.md", "---\nparent: '[[Elsewhere]]'\nstatus: doing\n---\n")
    write(root, "projects/Elsewhere.md", "---\nstatus: doing\n---\n")
    return root


def test_a_parent_is_marked_done_once_every_child_is_and_nothing_else_changes(
    project: Path, writer: JournalWriter
) -> None:
    eng = engine(project, writer, CASCADE)
    scan_all(eng, "tasks/one.md", "tasks/two.md", "tasks/three.md")
    assert (project / "projects/Launch.md").read_text() == PARENT  # two is not done yet
    write(project, "tasks/two.md", "---\nparent: projects/Launch.md\nstatus: done\n---\n")
    outcomes = eng.handle_all([Event(EventKind.MODIFIED, "tasks/two.md")])
    assert failures(outcomes) == []
    assert (project / "projects/Launch.md").read_bytes() == PARENT.replace(
        "status: doing", "status: done"
    ).encode()
    assert (project / "projects/Elsewhere.md").read_text() == "---\nstatus: doing\n---\n"
    (written,) = [e for e in journal(writer, FILE_WRITTEN) if e.path == "projects/Launch.md"]
    assert written.actor == "rule:cascade"


def test_a_crlf_parent_keeps_its_line_endings_and_a_done_parent_is_left_alone(
    tmp_path: Path, writer: JournalWriter
) -> None:
    parent = "---\r\nstatus: open # set by hand\r\n---\r\nbody\r\n"
    write(tmp_path, "Parent.md", parent)
    write(tmp_path, "kid.md", "---\nparent: '[[parent]]'\nstatus: done\n---\n")
    eng = engine(tmp_path, writer, CASCADE)
    scan_all(eng, "kid.md")
    done = "---\r\nstatus: done # set by hand\r\n---\r\nbody\r\n"
    assert (tmp_path / "Parent.md").read_bytes() == done.encode()
    before = stamp(tmp_path / "Parent.md")
    scan_all(eng, "kid.md")
    assert stamp(tmp_path / "Parent.md") == before
    assert writes_of(writer, "Parent.md") == 1


def test_a_parent_with_a_bom_keeps_it_and_one_in_utf16_is_left_alone_with_a_finding(
    tmp_path: Path, writer: JournalWriter
) -> None:
    (tmp_path / "Bom.md").write_bytes(codecs.BOM_UTF8 + b"---\nstatus: open\n---\n")
    (tmp_path / "Wide.md").write_bytes("---\nstatus: open\n---\n".encode("utf-16"))
    write(tmp_path, "a.md", "---\nparent: '[[Bom]]'\nstatus: done\n---\n")
    write(tmp_path, "b.md", "---\nparent: '[[Wide]]'\nstatus: done\n---\n")
    outcomes = scan_all(engine(tmp_path, writer, CASCADE), "a.md", "b.md")
    assert (tmp_path / "Bom.md").read_bytes() == codecs.BOM_UTF8 + b"---\nstatus: done\n---\n"
    assert (tmp_path / "Wide.md").read_bytes() == "---\nstatus: open\n---\n".encode("utf-16")
    assert [(f.code, f.path) for f in findings(outcomes)] == [("parent_unreadable", "Wide.md")]


def test_reopen_sets_the_parent_back_when_a_child_is_not_done(
    tmp_path: Path, writer: JournalWriter
) -> None:
    write(tmp_path, "P.md", "---\nstatus: done\n---\n")
    write(tmp_path, "a.md", "---\nparent: '[[P]]'\nstatus: done\n---\n")
    write(tmp_path, "b.md", "---\nparent: '[[P]]'\nstatus: todo\n---\n")
    scan_all(engine(tmp_path, writer, CASCADE), "b.md")
    assert (tmp_path / "P.md").read_text() == "---\nstatus: done\n---\n"  # reopen is off
    reopening = """
rules:
  - id: cascade
    paths: ["**/*.md"]
    do:
      - cascade_status: {reopen: true, reopen_to: active, status_field: status}
"""
    scan_all(engine(tmp_path, writer, reopening), "b.md")
    assert (tmp_path / "P.md").read_text() == "---\nstatus: active\n---\n"


def test_the_cascade_climbs_to_the_grandparent_in_one_event(
    tmp_path: Path, writer: JournalWriter
) -> None:
    write(tmp_path, "Goal.md", "---\nstate: open\n---\n")
    write(tmp_path, "Epic.md", "---\nup: '[[Goal]]'\nstate: open\n---\n")
    write(tmp_path, "Other Epic.md", "---\nup: '[[Goal]]'\nstate: closed\n---\n")
    write(tmp_path, "story.md", "---\nup: '[[Epic]]'\nstate: closed\n---\n")
    text = """
rules:
  - id: cascade
    paths: ["**/*.md"]
    do:
      - cascade_status: {parent_field: up, status_field: state, done: closed}
"""
    scan_all(engine(tmp_path, writer, text), "story.md")
    assert (tmp_path / "Epic.md").read_text() == "---\nup: '[[Goal]]'\nstate: closed\n---\n"
    assert (tmp_path / "Goal.md").read_text() == "---\nstate: closed\n---\n"


def test_broken_and_ambiguous_parents_are_findings_and_nothing_is_written(
    tmp_path: Path, writer: JournalWriter
) -> None:
    write(tmp_path, "a/Dup.md", "---\nstatus: open\n---\n")
    write(tmp_path, "b/dup.md", "---\nstatus: open\n---\n")
    write(tmp_path, "kid.md", "---\ntitle: kid\nparent: '[[Dup]]'\nstatus: done\n---\n")
    write(tmp_path, "lost.md", "---\nstatus: done\nparent: '[[Nowhere]]'\n---\n")
    outcomes = scan_all(engine(tmp_path, writer, CASCADE), "kid.md", "lost.md")
    assert [(f.code, f.path, f.line, f.message) for f in findings(outcomes)] == [
        (
            "ambiguous_parent",
            "kid.md",
            3,
            "parent '[[Dup]]' could mean several notes: a/Dup.md, b/dup.md",
        ),
        ("broken_parent", "lost.md", 3, "parent '[[Nowhere]]' names no note"),
    ]
    assert (tmp_path / "a/Dup.md").read_text() == "---\nstatus: open\n---\n"
    assert (tmp_path / "b/dup.md").read_text() == "---\nstatus: open\n---\n"
    assert [e.payload["code"] for e in journal(writer, RULE_FINDING)] == [
        "ambiguous_parent",
        "broken_parent",
    ]
    assert journal(writer, FILE_WRITTEN) == []


def test_the_parent_write_is_a_compare_and_swap_on_the_hash_it_was_read_with(
    project: Path,
) -> None:
    (action,) = [a for a in BUILTINS if a.name == "cascade_status"]
    params = action.params.model_validate({})
    write(project, "tasks/two.md", "---\nparent: projects/Launch.md\nstatus: done\n---\n")
    ctx = FileContext(
        path="tasks/two.md",
        text=(project / "tasks/two.md").read_text(),
        time=T0,
        notes=NoteIndex(project),
    )
    (effect,) = action.effects(ctx, params)
    digest = hashlib.sha256((project / "projects/Launch.md").read_bytes()).hexdigest()
    assert effect == WriteFile(
        "projects/Launch.md", PARENT.replace("status: doing", "status: done"), base_sha256=digest
    )


# -- create_from_template ------------------------------------------------------------

INCIDENT_RULES = """
rules:
  - id: open-incident
    paths: ["journal/**/*.md"]
    when:
      - content: '\\b(?P<id>INC-\\d+)\\b'
    do:
      - create_from_template:
          template: templates/incident.md
          path: "incidents/{{ capture('id') }}.md"
"""

INCIDENT_TEMPLATE = """\
---
id: {{ capture('id') }}
status: open
opened: {{ now('%Y-%m-%d') }}
---
# {{ title }}

Reported in [[{{ stem }}]].
"""


@pytest.fixture
def incidents(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, "templates/incident.md", INCIDENT_TEMPLATE)
    write(root, "journal/monday.md", "The pump failed: INC-42, see above.\n")
    return root


def test_a_new_note_is_created_from_the_template_with_the_capture(
    incidents: Path, writer: JournalWriter
) -> None:
    eng = engine(incidents, writer, INCIDENT_RULES)
    outcomes = eng.handle_all([Event(EventKind.MODIFIED, "journal/monday.md", time=T0)])
    assert failures(outcomes) == []
    assert (incidents / "incidents/INC-42.md").read_text() == (
        "---\nid: INC-42\nstatus: open\nopened: 2026-03-01\n---\n# INC-42\n\n"
        "Reported in [[monday]].\n"
    )


def test_an_existing_note_is_never_overwritten(incidents: Path, writer: JournalWriter) -> None:
    mine = write(incidents, "incidents/INC-42.md", "my own notes on it\n")
    before = stamp(mine)
    eng = engine(incidents, writer, INCIDENT_RULES)
    outcomes = scan_all(eng, "journal/monday.md")
    assert failures(outcomes) == []
    assert mine.read_text() == "my own notes on it\n"
    assert stamp(mine) == before
    assert [o.plan.effects for o in outcomes if o.plan] == [()]  # nothing even planned
    assert journal(writer, FILE_WRITTEN) == []


def test_each_creates_one_note_per_match_and_a_changed_template_is_used_at_once(
    incidents: Path, writer: JournalWriter
) -> None:
    text = INCIDENT_RULES.replace(
        "path: \"incidents/{{ capture('id') }}.md\"",
        "path: \"incidents/{{ capture('id') }}.md\"\n          each: '\\b(?P<id>INC-\\d+)\\b'",
    )
    write(incidents, "journal/monday.md", "INC-1 and INC-2, then INC-1 again\n")
    eng = engine(incidents, writer, text)
    scan_all(eng, "journal/monday.md")
    assert sorted(p.name for p in (incidents / "incidents").iterdir()) == ["INC-1.md", "INC-2.md"]
    write(incidents, "templates/incident.md", "new template for {{ capture('id') }}\n")
    write(incidents, "journal/monday.md", "INC-1 and INC-2 and INC-3\n")
    eng.handle(Event(EventKind.MODIFIED, "journal/monday.md"))
    assert (incidents / "incidents/INC-3.md").read_text() == "new template for INC-3\n"
    assert (incidents / "incidents/INC-1.md").read_text().startswith("---\nid: INC-1\n")


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (None, "template templates/incident.md: the file does not exist"),
        ("{{ oops(", "template templates/incident.md: template syntax error"),
        (
            "{{ nothing_like_this }}",
            "template templates/incident.md: 'nothing_like_this' is undefined",
        ),
    ],
)
def test_a_missing_or_broken_template_fails_the_rule_with_a_clear_reason(
    incidents: Path, writer: JournalWriter, template: str | None, reason: str
) -> None:
    if template is None:
        (incidents / "templates/incident.md").unlink()
    else:
        write(incidents, "templates/incident.md", template)
    outcomes = scan_all(engine(incidents, writer, INCIDENT_RULES), "journal/monday.md")
    (failure,) = failures(outcomes)
    assert failure.startswith(f"open-incident: ValueError: {reason}")
    assert not (incidents / "incidents").exists()


def test_an_empty_capture_is_refused_rather_than_creating_a_nameless_note(
    incidents: Path, writer: JournalWriter
) -> None:
    text = INCIDENT_RULES.replace("capture('id')", "capture('missing')")
    outcomes = scan_all(engine(incidents, writer, text), "journal/monday.md")
    assert failures(outcomes) == [
        "open-incident: ValueError: the new note's path 'incidents/.md' has no name "
        "(is a capture empty?)"
    ]


# -- validate_frontmatter ------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["status", "title"],
    "properties": {
        "title": {"type": "string"},
        "status": {"enum": ["todo", "doing", "done"]},
        "due": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "owner": {
            "type": "object",
            "properties": {"email": {"type": "string", "pattern": "@"}},
        },
    },
}

VALIDATE = """
rules:
  - id: schema
    paths: ["notes/**/*.md"]
    do:
      - validate_frontmatter: {schema: schemas/note.json, fail: true}
"""

BAD_NOTE = """\
---
status: waiting
due: 2026-02-30x
tags:
  - garden
  - 7
owner:
  email: nobody
---
body
"""


@pytest.fixture
def schema_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, "schemas/note.json", json.dumps(SCHEMA, indent=2))
    write(root, "notes/good.md", "---\ntitle: Good\nstatus: done\ndue: 2026-03-01\n---\n")
    write(root, "notes/bad.md", BAD_NOTE)
    return root


def test_each_violation_is_a_finding_at_the_line_of_the_offending_key(
    schema_repo: Path, writer: JournalWriter
) -> None:
    outcomes = scan_all(engine(schema_repo, writer, VALIDATE), "notes/good.md", "notes/bad.md")
    assert failures(outcomes) == []
    assert [(f.code, f.path, f.line, f.message, f.fail) for f in findings(outcomes)] == [
        ("invalid_frontmatter", "notes/bad.md", 1, "frontmatter: 'title' is a required property", True),
        ("invalid_frontmatter", "notes/bad.md", 2, "status: 'waiting' is not one of ['todo', 'doing', 'done']", True),
        ("invalid_frontmatter", "notes/bad.md", 3, "due: '2026-02-30x' is not a 'date'", True),
        ("invalid_frontmatter", "notes/bad.md", 6, "tags[1]: 7 is not of type 'string'", True),
        ("invalid_frontmatter", "notes/bad.md", 8, "owner.email: 'nobody' does not match '@'", True),
    ]  # fmt: skip
    (first, *_) = journal(writer, RULE_FINDING)
    assert first.payload["field"] == "frontmatter"
    assert first.payload["schema"] == "schemas/note.json"
    assert first.payload["fail"] is True


def test_yaml_dates_validate_as_the_date_strings_they_were_written_as(
    schema_repo: Path, writer: JournalWriter
) -> None:
    write(schema_repo, "notes/dates.md", "---\ntitle: D\nstatus: todo\ndue: 2026-03-01\n---\n")
    write(schema_repo, "notes/quoted.md", "---\ntitle: Q\nstatus: todo\ndue: '2026-02-30'\n---\n")
    write(
        schema_repo,
        "notes/stamp.md",
        "---\ntitle: S\nstatus: todo\ndue: 2026-03-01 10:00:00\n---\n",
    )
    outcomes = scan_all(
        engine(schema_repo, writer, VALIDATE), "notes/dates.md", "notes/quoted.md", "notes/stamp.md"
    )
    assert [(f.path, f.message) for f in findings(outcomes)] == [
        ("notes/quoted.md", "due: '2026-02-30' is not a 'date'"),
        ("notes/stamp.md", "due: '2026-03-01T10:00:00' is not a 'date'"),
    ]


def test_unreadable_frontmatter_is_a_finding_on_the_first_line(
    schema_repo: Path, writer: JournalWriter
) -> None:
    write(schema_repo, "notes/broken.md", "---\ntitle: [unclosed\n---\n")
    outcomes = scan_all(engine(schema_repo, writer, VALIDATE), "notes/broken.md")
    (found,) = findings(outcomes)
    assert (found.code, found.line, found.fail) == ("invalid_frontmatter", 1, True)
    assert found.message.startswith("frontmatter: invalid YAML in frontmatter")


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (None, "schema schemas/note.json: the file does not exist"),
        ("{not json", "schema schemas/note.json is not valid JSON: Expecting property name"),
        ('{"type": 5}', "schema schemas/note.json is not a valid JSON Schema: 5 is not valid"),
        ("[1, 2]", "schema schemas/note.json must hold a JSON object"),
        (
            '{"$ref": "https://example.invalid/s.json"}',
            "schema schemas/note.json: cannot resolve 'https://example.invalid/s.json' "
            "(references to other documents are not followed)",
        ),
    ],
)
def test_a_missing_or_invalid_schema_fails_the_rule(
    schema_repo: Path, writer: JournalWriter, schema: str | None, reason: str
) -> None:
    if schema is None:
        (schema_repo / "schemas/note.json").unlink()
    else:
        write(schema_repo, "schemas/note.json", schema)
    outcomes = scan_all(engine(schema_repo, writer, VALIDATE), "notes/good.md")
    (failure,) = failures(outcomes)
    assert failure.startswith(f"schema: ValueError: {reason}"), failure
    assert findings(outcomes) == []


def test_a_changed_schema_is_used_at_once_and_yaml_schemas_work(
    schema_repo: Path, writer: JournalWriter
) -> None:
    eng = engine(schema_repo, writer, VALIDATE)
    assert findings(scan_all(eng, "notes/good.md")) == []
    write(schema_repo, "schemas/note.json", json.dumps({"properties": {"title": {"maxLength": 2}}}))
    (found,) = findings(scan_all(eng, "notes/good.md"))
    assert (found.line, found.message) == (2, "title: 'Good' is too long")
    write(schema_repo, "schemas/note.yaml", "properties:\n  status: {const: todo}\n")
    yaml_rules = VALIDATE.replace("note.json, fail: true", "note.yaml")
    (found,) = findings(scan_all(engine(schema_repo, writer, yaml_rules), "notes/good.md"))
    assert (found.line, found.message, found.fail) == (3, "status: 'todo' was expected", False)


# -- the scribe command --------------------------------------------------------------


def test_scribe_run_builds_the_backlog_cascades_and_creates_notes_once(tmp_path: Path) -> None:
    text = BACKLOG + CASCADE.replace("rules:\n", "") + INCIDENT_RULES.replace("rules:\n", "")
    root = make_repo(tmp_path / "repo", text)
    for rel, body in TASKS.items():
        write(root, rel, body)
    write(root, "projects/Launch.md", PARENT)
    write(root, "projects/step.md", "---\nparent: '[[Launch]]'\nstatus: done\n---\n")
    write(root, "templates/incident.md", "incident {{ capture('id') }}\n")
    write(root, "journal/monday.md", "INC-7 happened\n")
    done = scribe("run", cwd=root)
    assert done.returncode == 0, done.stderr
    assert (root / "backlog.md").read_text() == BACKLOG_TEXT
    assert "status: done" in (root / "projects/Launch.md").read_text()
    assert (root / "incidents/INC-7.md").read_text() == "incident INC-7\n"
    writes = len(stored(root, FILE_WRITTEN))
    assert writes == 3  # the backlog once, whichever task came first; the parent; the incident
    again = scribe("run", cwd=root)
    assert again.returncode == 0, again.stderr
    assert len(stored(root, FILE_WRITTEN)) == writes
    assert (root / "incidents/INC-7.md").read_text() == "incident INC-7\n"


def test_scribe_check_exits_1_on_invalid_frontmatter_only_when_fail_is_set(
    schema_repo: Path, tmp_path: Path
) -> None:
    root = make_repo(schema_repo, VALIDATE)
    done = scribe("check", cwd=root)
    assert done.returncode == 1, done.stderr
    assert "invalid_frontmatter notes/bad.md:2: status: 'waiting' is not one of" in done.stderr
    assert "notes/good.md" not in done.stderr
    make_repo(root, VALIDATE.replace(", fail: true", ""))
    warned = scribe("check", cwd=root)
    assert warned.returncode == 0, warned.stderr
    assert "invalid_frontmatter notes/bad.md:6: tags[1]: 7 is not of type 'string'" in warned.stderr


def test_scribe_watch_keeps_the_backlog_current_without_looping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(tmp_path / "repo", BACKLOG, {"listen": "off"})
    (root / "tasks").mkdir()
    backlog = root / "backlog.md"

    def shows(text: str) -> bool:
        return backlog.exists() and backlog.read_text() == text

    def index_writes() -> int:
        return sum(e.path == "backlog.md" for e in stored(root, FILE_WRITTEN))

    proc = ScribeProcess(root, log_path=tmp_path / "scribe.log")
    try:
        proc.wait_ready()
        write(root, "tasks/alpha.md", "---\nstatus: todo\n---\n")
        assert wait_until(lambda: shows("# Backlog\n\n## todo\n\n- [[alpha]]\n"), 20), proc.log()
        write(root, "tasks/bravo.md", "---\nstatus: doing\n---\n")
        two = "# Backlog\n\n## todo\n\n- [[alpha]]\n\n## doing\n\n- [[bravo]]\n"
        assert wait_until(lambda: shows(two), 20), proc.log()
        write(root, "tasks/alpha.md", "---\nstatus: done\n---\n")
        moved = "# Backlog\n\n## doing\n\n- [[bravo]]\n\n## done\n\n- [[alpha]]\n"
        assert wait_until(lambda: shows(moved), 20), proc.log()
        (root / "tasks/bravo.md").unlink()
        assert wait_until(lambda: shows("# Backlog\n\n## done\n\n- [[alpha]]\n"), 20), proc.log()
        assert wait_until(lambda: index_writes() == 4, 10), proc.log()
        assert holds_for(lambda: index_writes() == 4, 1.5), proc.log()  # its own write: no loop
    finally:
        proc.close()


# -- the example ---------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "backlog"


def test_the_backlog_example_does_what_its_rules_file_says(
    tmp_path: Path, writer: JournalWriter
) -> None:
    root = tmp_path / "backlog"
    shutil.copytree(EXAMPLE, root)
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".scribe" not in p.parts
    )
    eng = Engine(
        root,
        parse_rules((root / ".scribe/rules.yaml").read_text(), "rules.yaml", actions=ACTIONS),
        state=State(None),
        journal=writer,
        notes=NoteIndex(root),
    )
    outcomes = scan_all(eng, *files)
    assert failures(outcomes) == []
    assert (root / "backlog.md").read_text() == (
        "# Backlog\n\n## todo\n\n- [[insulate-walls]]\n\n## doing\n\n- [[order-heater]] (sam)\n\n"
        "## done\n\n- [[pick-theme]]\n- [[write-copy]] (kim)\n\n## someday\n\n- [[water-plants]]\n"
    )
    website = (EXAMPLE / "projects/website.md").read_text()
    assert (root / "projects/website.md").read_text() == website.replace("doing", "done")
    greenhouse = root / "projects/greenhouse.md"
    assert greenhouse.read_text() == (EXAMPLE / "projects/greenhouse.md").read_text()
    assert (root / "incidents/INC-101.md").read_text().startswith("---\nstatus: open\nopened: ")
    assert [(f.path, f.line, f.fail) for f in findings(outcomes)] == [
        ("tasks/water-plants.md", 2, False),
        ("tasks/water-plants.md", 3, False),
    ]

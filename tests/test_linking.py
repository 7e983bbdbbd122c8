"""The link actions over real files: wikilink, check_links and enforce_naming, through
real rules files and a real engine with the repository's notes, and through the real
``scribe`` command."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from cli_helpers import scribe
from live_helpers import ScribeProcess, wait_until
from scribe.actions import ACTIONS, Action, FileContext
from scribe.actions.effects import Effect, Finding
from scribe.actions.linking import BUILTINS
from scribe.config import load_settings
from scribe.confinement import Confinement
from scribe.daemon import WatchService
from scribe.effect_runner import EffectRunner
from scribe.engine import Engine, Outcome, Status
from scribe.errors import ConfigError
from scribe.events import Event, EventKind
from scribe.journal.entry import FILE_MOVED, FILE_WRITTEN, RULE_FINDING, Entry, Query
from scribe.journal.mirrors import Mirrors
from scribe.journal.sqlite import SqliteJournal
from scribe.journal.writer import JournalWriter
from scribe.notes import NoteIndex
from scribe.plan import Plan, Planned, plan_file
from scribe.rules.load import parse_rules
from scribe.rules.match import CompiledRule
from scribe.state import State
from scribe.watch import Change

LINK_ACTIONS: dict[str, Action] = {**ACTIONS, **{action.name: action for action in BUILTINS}}


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[JournalWriter]:
    journal = JournalWriter(SqliteJournal.for_root(tmp_path), Mirrors(tmp_path))
    yield journal
    journal.close()


def rules(text: str) -> list[CompiledRule]:
    return parse_rules(textwrap.dedent(text), "rules.yaml", actions=LINK_ACTIONS)


def engine(root: Path, writer: JournalWriter | None, text: str) -> Engine:
    return Engine(root, rules(text), state=State(None), journal=writer, notes=NoteIndex(root))


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))


def read(root: Path, rel: str) -> str:
    return (root / rel).read_bytes().decode("utf-8")


def handle(eng: Engine, *paths: str) -> list[Outcome]:
    return eng.handle_many([Engine.scan_event(path) for path in paths])


def journal(writer: JournalWriter, kind: str) -> list[Entry]:
    writer.flush()
    return [e for e in writer.store.query(Query()) if e.kind == kind]


def findings(outcome: Outcome) -> list[tuple[str, int | None, str]]:
    return [(f.code, f.line, f.data.get("target", "")) for f in outcome.findings]


# -- wikilink --------------------------------------------------------------------------

WIKILINK = """
rules:
  - id: link
    paths: ["journal/**"]
    do:
      - wikilink: {}
"""

KNOWN = {
    "topics/Machine Learning.md": "# ML\n",
    "topics/Python.md": "# Python\n",
    "topics/Graph Theory.md": "# Graphs\n",
    "topics/AI.md": "# short title\n",
}


def test_wikilink_links_first_mentions_but_never_in_frontmatter_code_links_or_urls(
    tmp_path: Path, writer: JournalWriter
) -> None:
    write(tmp_path, KNOWN)
    write(
        tmp_path,
        {
            "journal/today.md": (
                "---\n"
                "title: Python and Machine Learning\n"
                "---\n"
                "Today: machine learning with Python, then machine learning again.\n"
                "`Python` in code, and https://example.org/Python stay.\n"
                "```\n"
                "Graph Theory in a fence\n"
                "```\n"
                "See [the graph theory notes](../topics/Graph%20Theory.md); AI is short.\n"
            )
        },
    )
    (outcome,) = handle(engine(tmp_path, writer, WIKILINK), "journal/today.md")
    assert outcome.status is Status.WRITTEN
    assert read(tmp_path, "journal/today.md") == (
        "---\n"
        "title: Python and Machine Learning\n"
        "---\n"
        "Today: [[Machine Learning|machine learning]] with [[Python]], then machine learning "
        "again.\n"
        "`Python` in code, and https://example.org/Python stay.\n"
        "```\n"
        "Graph Theory in a fence\n"
        "```\n"
        "See [the graph theory notes](../topics/Graph%20Theory.md); AI is short.\n"
    )


def test_wikilink_is_idempotent_and_leaves_titles_already_linked(
    tmp_path: Path, writer: JournalWriter
) -> None:
    write(tmp_path, KNOWN)
    write(tmp_path, {"journal/day.md": "[[Python]] first, then Python and Graph Theory.\r\n"})
    eng = engine(tmp_path, writer, WIKILINK)
    (first,) = handle(eng, "journal/day.md")
    linked = (tmp_path / "journal/day.md").read_bytes()
    assert linked == b"[[Python]] first, then Python and [[Graph Theory]].\r\n"
    (second,) = handle(eng, "journal/day.md")
    assert (first.status, second.status) == (Status.WRITTEN, Status.UNCHANGED)
    assert (tmp_path / "journal/day.md").read_bytes() == linked
    assert len(journal(writer, FILE_WRITTEN)) == 1


def test_wikilink_every_mention_when_first_only_is_off(tmp_path: Path) -> None:
    write(tmp_path, KNOWN)
    write(tmp_path, {"journal/day.md": "Python, python and PYTHON.\n"})
    eng = engine(tmp_path, None, WIKILINK.replace("{}", "{first_only: false}"))
    handle(eng, "journal/day.md")
    assert read(tmp_path, "journal/day.md") == (
        "[[Python]], [[Python|python]] and [[Python|PYTHON]].\n"
    )


def test_wikilink_never_links_a_title_two_notes_share_nor_the_notes_own(tmp_path: Path) -> None:
    write(tmp_path, KNOWN)
    write(
        tmp_path,
        {
            "a/Topic.md": "one\n",
            "b/Topic.md": "two\n",
            "journal/Diary.md": "The Topic of my Diary is Python.\n",
        },
    )
    handle(engine(tmp_path, None, WIKILINK), "journal/Diary.md")
    assert read(tmp_path, "journal/Diary.md") == "The Topic of my Diary is [[Python]].\n"


def test_wikilink_titles_from_some_folders_excluded_short_or_in_another_case(
    tmp_path: Path,
) -> None:
    write(tmp_path, KNOWN)
    write(tmp_path, {"people/Ada.md": "x\n", "a/Topic.md": "1\n", "b/Topic.md": "2\n"})
    text = "Ada, Python, machine learning, Graph Theory, AI and Topic.\n"
    write(tmp_path, {"journal/day.md": text})
    params = (
        '{paths: ["topics/**", "a/**"], exclude: ["graph theory"], case_sensitive: true, '
        "min_length: 2}"
    )
    handle(engine(tmp_path, None, WIKILINK.replace("{}", params)), "journal/day.md")
    # Ada is not under paths; "Topic" has a twin in b/ even though only a/ counts.
    assert read(tmp_path, "journal/day.md") == (
        "Ada, [[Python]], machine learning, Graph Theory, [[AI]] and Topic.\n"
    )


def test_wikilink_sees_a_note_created_after_it_first_ran(tmp_path: Path) -> None:
    write(tmp_path, KNOWN)
    write(tmp_path, {"journal/a.md": "Zebras and Python.\n", "journal/b.md": "Zebras.\n"})
    eng = engine(tmp_path, None, WIKILINK)
    handle(eng, "journal/a.md")
    assert read(tmp_path, "journal/a.md") == "Zebras and [[Python]].\n"
    write(tmp_path, {"topics/Zebras.md": "stripes\n"})
    eng.handle(Event(EventKind.CREATED, "topics/Zebras.md"))  # what the watcher would say
    handle(eng, "journal/a.md", "journal/b.md")
    assert read(tmp_path, "journal/a.md") == "[[Zebras]] and [[Python]].\n"
    assert read(tmp_path, "journal/b.md") == "[[Zebras]].\n"


def test_wikilink_rules_with_many_title_sets_from_many_threads_each_link_their_own(
    tmp_path: Path,
) -> None:
    """More title sets than the linker cache keeps, planned from several threads at
    once: each file gets the links of its own rule's titles."""
    folders = [f"set{n}" for n in range(12)]
    for n, folder in enumerate(folders):
        write(tmp_path, {f"{folder}/Word{n}.md": "x\n", f"in{n}/note.md": f"Word{n} Word{n + 1}\n"})
    text = "rules:\n" + "".join(
        f"  - id: r{n}\n    paths: ['in{n}/**']\n    do:\n"
        f"      - wikilink: {{paths: ['{folder}/**']}}\n"
        for n, folder in enumerate(folders)
    )
    eng = Engine(tmp_path, rules(text), state=State(None), notes=NoteIndex(tmp_path))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: handle(eng, f"in{n % 12}/note.md"), range(48)))
    for n in range(12):
        assert read(tmp_path, f"in{n}/note.md") == f"[[Word{n}]] Word{n + 1}\n"


def test_a_link_action_without_the_repositorys_notes_fails_its_rule_alone() -> None:
    for action in ("wikilink: {}", "check_links: {}"):
        text = f"rules:\n  - id: r\n    do:\n      - {action}\n"
        plan = plan_file(
            "a.md",
            "Python\n",
            "",
            rules(text),
            kind=EventKind.MODIFIED,
            time=datetime.now(UTC),
            size=7,
            may_restamp=True,
        )
        (failure,) = plan.failures
        assert "needs the repository's notes" in failure.reason


def test_wikilink_params_are_checked_when_the_rules_load() -> None:
    with pytest.raises(ConfigError) as caught:
        rules("rules:\n  - id: r\n    do:\n      - wikilink: {min_length: 0, first: true}\n")
    message = str(caught.value)
    assert "min_length" in message
    assert "first" in message


# -- check_links -----------------------------------------------------------------------

CHECK = """
rules:
  - id: links
    paths: ["**/*.md"]
    do:
      - check_links: {}
"""

LINKED = {
    "topics/Python.md": "---\naliases: [Py]\n---\n# Python\n",
    "topics/deep/Graph Theory.md": "# Graphs\n",
    "a/Topic.md": "one\n",
    "b/Topic.md": "two\n",
    "assets/diagram.png": "png\n",
}


def test_check_links_finds_broken_and_ambiguous_links_with_their_lines(
    tmp_path: Path, writer: JournalWriter
) -> None:
    lines = [
        "---",
        'up: "[[Nowhere]]"',
        "---",
        "Fine: [[Python]], [[Py]], [[Python|snake]], [[Python#Usage]], ![[diagram.png]],",
        "[graphs](../topics/deep/Graph%20Theory.md), [[topics/deep/Graph Theory]],",
        "[graphs](<../topics/deep/Graph Theory.md#Trees>), [web](https://example.org/x.md).",
        "Broken: [[No Such Note]] and ![[missing.png]]",
        "and [gone](../nowhere/gone.md) and [[topics/Pythons]] and [up](../../out.md).",
        "Ambiguous: [[Topic]], [[topic#part|it]].",
        "`[[Not In Code]]`",
        "```",
        "[[Not In A Fence]] [x](fence.md)",
        "```",
    ]
    for newline in ("\n", "\r\n"):
        write(tmp_path, LINKED)
        write(tmp_path, {"journal/day.md": newline.join(lines) + newline})
        (outcome,) = handle(engine(tmp_path, writer, CHECK), "journal/day.md")
        assert findings(outcome) == [
            ("broken_link", 2, "Nowhere"),
            ("broken_link", 7, "No Such Note"),
            ("broken_link", 7, "missing.png"),
            ("broken_link", 8, "../nowhere/gone.md"),
            ("broken_link", 8, "topics/Pythons"),
            ("broken_link", 8, "../../out.md"),
            ("ambiguous_link", 9, "Topic"),
            ("ambiguous_link", 9, "topic"),
        ]
        assert not any(f.fail for f in outcome.findings)
    ambiguous = next(f for f in outcome.findings if f.code == "ambiguous_link")
    assert ambiguous.data == {
        "target": "Topic",
        "kind": "wiki",
        "candidates": ["a/Topic.md", "b/Topic.md"],
    }
    assert ambiguous.message == (
        "[[Topic]] is ambiguous: 2 notes are titled 'Topic' (a/Topic.md, b/Topic.md); "
        "link one by its path"
    )
    messages = [f.message for f in outcome.findings if f.code == "broken_link"]
    assert messages[0] == "[[Nowhere]] leads nowhere: no note, alias or file is named 'Nowhere'"
    assert messages[3] == (
        "[gone](../nowhere/gone.md) leads nowhere: there is no file at nowhere/gone.md"
    )
    assert messages[5].endswith("leads nowhere: it points outside the repository")
    recorded = [(e.path, e.payload["code"]) for e in journal(writer, RULE_FINDING)]
    assert recorded.count(("journal/day.md", "broken_link")) == 12  # six, twice


def test_check_links_follows_the_notes_as_they_change(tmp_path: Path) -> None:
    write(tmp_path, {"day.md": "See [[Later]].\n"})
    eng = engine(tmp_path, None, CHECK)
    (before,) = handle(eng, "day.md")
    write(tmp_path, {"Later.md": "here now\n"})
    eng.handle(Event(EventKind.CREATED, "Later.md"))
    (after,) = handle(eng, "day.md")
    assert (findings(before), findings(after)) == ([("broken_link", 1, "Later")], [])


# -- the real command --------------------------------------------------------------------


def repository(root: Path, rules_text: str, files: dict[str, str]) -> None:
    write(root, {".scribe/rules.yaml": textwrap.dedent(rules_text), **files})


def test_scribe_check_fails_on_a_broken_link_only_when_the_rule_says_fail(
    tmp_path: Path,
) -> None:
    files = {**LINKED, "day.md": "# Day\n\nSee [[Python]] and\n[[No Such Note]].\n"}
    repository(tmp_path, CHECK, files)
    lenient = scribe("check", cwd=tmp_path)
    assert lenient.returncode == 0, lenient.stderr
    assert "broken_link day.md:4: [[No Such Note]] leads nowhere" in lenient.stderr
    repository(tmp_path, CHECK.replace("{}", "{fail: true}"), {})
    strict = scribe("check", cwd=tmp_path)
    assert strict.returncode == 1, strict.stderr
    assert "broken_link day.md:4: [[No Such Note]] leads nowhere" in strict.stderr
    assert "ambiguous_link" not in strict.stderr
    ran = scribe("run", cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr
    write(tmp_path, {"day.md": "# Day\n\nSee [[Python]].\n"})
    fixed = scribe("check", cwd=tmp_path)
    assert (fixed.returncode, "broken_link" in fixed.stderr) == (0, False), fixed.stderr


def test_scribe_run_links_mentions_once(tmp_path: Path) -> None:
    repository(tmp_path, WIKILINK, {**KNOWN, "journal/day.md": "Python and graph theory.\n"})
    first = scribe("run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "rewrote journal/day.md (link)" in first.stdout
    assert read(tmp_path, "journal/day.md") == ("[[Python]] and [[Graph Theory|graph theory]].\n")
    second = scribe("run", cwd=tmp_path)
    assert (second.returncode, "rewrote" in second.stdout) == (0, False), second.stdout


# -- enforce_naming ----------------------------------------------------------------------

NAMING = """
rules:
  - id: names
    paths: ["notes/**/*.md"]
    do:
      - enforce_naming:
          pattern: "^[a-z0-9]+(-[a-z0-9]+)*$"
          rename_to: "{{ stem | lower | replace(' ', '-') }}"
          mode: rename
"""

#: Notes linking to notes/My Note.md in every way a link can, and in code.
LINKING = {
    "notes/My Note.md": (
        "---\naliases: [Mine]\n---\n# My Note\n\n## Heading\n"
        "Up: [[#Heading]], [[My Note#Heading]]\n"
    ),
    "notes/other.md": (
        "[[My Note]], [[my note|the note]], [[My Note#Heading]], ![[My Note]],\n"
        "[[notes/My Note|by path]], [md](My%20Note.md#heading), [md](<My Note.md>),\n"
        "[[Mine]] by alias, `[[My Note]]` in code.\n"
        "```\n[[My Note]] [x](My%20Note.md)\n```\n"
    ),
    "journal/day.md": "See [it](<../notes/My Note.md>) and [[./My Note]].\r\n",
    "journal/bom.md": "\ufeffAlso [[My Note]].\n",
}


def test_rename_mode_renames_and_updates_every_link_but_not_in_code(
    tmp_path: Path, writer: JournalWriter
) -> None:
    write(tmp_path, LINKING)
    (outcome,) = handle(engine(tmp_path, writer, NAMING), "notes/My Note.md")
    assert (outcome.status, outcome.failures, outcome.findings) == (Status.UNCHANGED, (), ())
    assert not (tmp_path / "notes/My Note.md").exists()
    assert read(tmp_path, "notes/my-note.md") == LINKING["notes/My Note.md"].replace(
        "[[My Note#", "[[my-note#"
    )
    assert read(tmp_path, "notes/other.md") == (
        "[[my-note]], [[my-note|the note]], [[my-note#Heading]], ![[my-note]],\n"
        "[[notes/my-note|by path]], [md](my-note.md#heading), [md](<my-note.md>),\n"
        "[[Mine]] by alias, `[[My Note]]` in code.\n"
        "```\n[[My Note]] [x](My%20Note.md)\n```\n"
    )
    # Not a note's title: the relative wikilink names no file, and stays as it was.
    assert (tmp_path / "journal/day.md").read_bytes() == (
        b"See [it](<../notes/my-note.md>) and [[./My Note]].\r\n"
    )
    assert (tmp_path / "journal/bom.md").read_bytes() == (
        "\ufeffAlso [[my-note]].\n".encode("utf-8")
    )
    (moved,) = journal(writer, FILE_MOVED)
    assert (moved.payload["from"], moved.payload["to"]) == ("notes/My Note.md", "notes/my-note.md")
    written = sorted(str(e.path) for e in journal(writer, FILE_WRITTEN))
    assert written == ["journal/bom.md", "journal/day.md", "notes/My Note.md", "notes/other.md"]


def test_a_rename_and_its_echoes_reach_a_fixpoint(tmp_path: Path, writer: JournalWriter) -> None:
    """What the watcher reports after a rename (the move, the rewritten notes) sets
    nothing off again, nor does the next run over every file."""
    write(tmp_path, LINKING)
    eng = engine(tmp_path, writer, NAMING.replace("do:", "on: [created, modified, moved]\n    do:"))
    handle(eng, "notes/My Note.md")
    after = {rel: (tmp_path / rel).read_bytes() for rel in ("notes/my-note.md", "notes/other.md")}
    echoes = eng.handle_many(
        [
            Event(EventKind.MOVED, "notes/My Note.md", dest="notes/my-note.md"),
            Event(EventKind.MODIFIED, "notes/other.md"),
            Event(EventKind.MODIFIED, "journal/day.md"),
        ]
    )
    assert [o.status for o in echoes] == [Status.UNCHANGED, Status.ECHO, Status.UNCHANGED]
    again = handle(eng, "notes/my-note.md", "notes/other.md", "journal/day.md")
    assert all(o.status is Status.UNCHANGED and not o.findings for o in again)
    assert {rel: (tmp_path / rel).read_bytes() for rel in after} == after
    assert len(journal(writer, FILE_MOVED)) == 1


def test_renaming_an_attachment_updates_the_embeds_of_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "assets/Big Diagram.svg": "<svg/>\n",
            "notes/a.md": "![[Big Diagram.svg]] and ![fig](../assets/Big%20Diagram.svg)\n",
        },
    )
    text = NAMING.replace('"notes/**/*.md"', '"assets/*.svg"')
    (outcome,) = handle(engine(tmp_path, None, text), "assets/Big Diagram.svg")
    assert (outcome.findings, outcome.failures) == ((), ())
    assert read(tmp_path, "assets/big-diagram.svg") == "<svg/>\n"
    assert read(tmp_path, "notes/a.md") == (
        "![[big-diagram.svg]] and ![fig](../assets/big-diagram.svg)\n"
    )


def test_an_ambiguous_title_is_reported_and_nothing_renamed(
    tmp_path: Path, writer: JournalWriter
) -> None:
    write(tmp_path, {**LINKING, "notes/deep/My Note.md": "twin\n"})
    before = {p: (tmp_path / p).read_bytes() for p in LINKING}
    (outcome,) = handle(engine(tmp_path, writer, NAMING), "notes/My Note.md")
    (found,) = outcome.findings
    assert found.code == "ambiguous_name"
    assert found.message == (
        "'My Note' does not match ^[a-z0-9]+(-[a-z0-9]+)*$, but it is not renamed: "
        "notes/deep/My Note.md share its title, so the links to it cannot be told apart"
    )
    assert found.data["candidates"] == ["notes/deep/My Note.md"]
    assert {p: (tmp_path / p).read_bytes() for p in LINKING} == before
    assert journal(writer, FILE_MOVED) == journal(writer, FILE_WRITTEN) == []


@pytest.mark.parametrize(
    ("taker", "why"),
    [
        ("notes/my-note.md", "a file is there"),
        (
            "elsewhere/my-note.md",
            "links by the title 'my-note' already lead to elsewhere/my-note.md",
        ),
        ("elsewhere/x.md", "links by the title 'my-note' already lead to elsewhere/x.md"),
    ],
)
def test_a_taken_name_is_reported_and_nothing_renamed(
    tmp_path: Path, writer: JournalWriter, taker: str, why: str
) -> None:
    write(tmp_path, LINKING)
    write(tmp_path, {taker: "---\naliases: [my-note]\n---\n"})
    (outcome,) = handle(engine(tmp_path, writer, NAMING), "notes/My Note.md")
    (found,) = outcome.findings
    assert (found.code, found.data["dest"]) == ("name_taken", "notes/my-note.md")
    assert found.message.endswith(f"but it is not renamed to notes/my-note.md: {why}")
    assert read(tmp_path, "notes/My Note.md") == LINKING["notes/My Note.md"]
    assert read(tmp_path, "notes/other.md") == LINKING["notes/other.md"]


def test_two_renames_planned_together_both_update_the_note_linking_to_them(
    tmp_path: Path, writer: JournalWriter
) -> None:
    """Both renames rewrite hub.md, planned from the same content before either runs:
    neither update is lost."""
    write(tmp_path, {"notes/First One.md": "1\n", "notes/Second One.md": "2\n"})
    write(tmp_path, {"notes/hub.md": "[[First One]] and [Second](Second%20One.md)\n"})
    first = handle(engine(tmp_path, writer, NAMING), "notes/First One.md", "notes/Second One.md")
    assert [(o.findings, o.failures) for o in first] == [((), ()), ((), ())]
    assert read(tmp_path, "notes/hub.md") == "[[first-one]] and [Second](second-one.md)\n"
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == [
        "first-one.md",
        "hub.md",
        "second-one.md",
    ]
    assert [e.path for e in journal(writer, FILE_WRITTEN)] == ["notes/hub.md"] * 2


def run_effects(root: Path, path: str, effects: Sequence[Effect]) -> None:
    """Carry out ``effects`` as the engine does once ``path`` is written."""
    step = rules(NAMING)[0].steps[0]
    plan = Plan(path, "", "", "", effects=tuple(Planned("names", step, e) for e in effects))
    runner = EffectRunner(
        root, confinement=Confinement(), journal=None, policy=None, remember=lambda *_: None
    )
    assert runner.run(Engine.scan_event(path), plan).failures == []


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_renames_planned_together_update_a_note_whichever_runs_first(
    tmp_path: Path, order: tuple[int, int, int]
) -> None:
    """Renames planned on several workers run their effects in any order."""
    names = ["Alpha One", "Beta One", "Gamma One"]
    write(tmp_path, {f"notes/{name}.md": f"{name}\n" for name in names})
    write(tmp_path, {"notes/hub.md": "".join(f"- [[{name}]]\n" for name in names)})
    notes = NoteIndex(tmp_path)
    (step,) = rules(NAMING)[0].steps
    planned = []
    for name in names:
        path = f"notes/{name}.md"
        ctx = FileContext(path, read(tmp_path, path), datetime.now(UTC), notes=notes)
        planned.append((path, step.action.effects(ctx, step.params)))  # type: ignore[union-attr]
    for at in order:
        run_effects(tmp_path, *planned[at])
        notes.moved(planned[at][0], planned[at][0].replace(" ", "-").lower())
    assert read(tmp_path, "notes/hub.md") == "- [[alpha-one]]\n- [[beta-one]]\n- [[gamma-one]]\n"


def test_a_rename_planned_again_plans_from_what_the_notes_hold_now(tmp_path: Path) -> None:
    """A plan whose effects never ran (its file's write failed, say) is planned again
    later: its rewrites start from the notes as they are then."""
    write(tmp_path, {"notes/Old One.md": "x\n", "notes/hub.md": "[[Old One]]\n"})
    notes = NoteIndex(tmp_path)
    (step,) = rules(NAMING)[0].steps

    def planned() -> Sequence[Effect]:
        ctx = FileContext("notes/Old One.md", "x\n", datetime.now(UTC), notes=notes)
        return step.action.effects(ctx, step.params)  # type: ignore[union-attr]

    planned()  # its effects are dropped
    write(tmp_path, {"notes/hub.md": "edited: [[Old One]]\n"})
    again = planned()
    assert planned() == again  # and the same once more, with nothing run in between
    run_effects(tmp_path, "notes/Old One.md", again)
    assert read(tmp_path, "notes/hub.md") == "edited: [[old-one]]\n"
    assert read(tmp_path, "notes/old-one.md") == "x\n"


def test_two_notes_renamed_to_one_name_together_the_second_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"notes/My Note.md": "1\n", "notes/My_Note.md": "2\n", "x.md": "[[My_Note]]\n"})
    text = NAMING.replace("replace(' ', '-')", "replace(' ', '-') | replace('_', '-')")
    outcomes = handle(engine(tmp_path, None, text), "notes/My Note.md", "notes/My_Note.md")
    assert outcomes[0].findings == ()
    (taken,) = outcomes[1].findings
    assert taken.code == "name_taken"
    assert taken.message.endswith("another rename planned before it takes that name")
    assert read(tmp_path, "notes/my-note.md") == "1\n"
    assert read(tmp_path, "notes/My_Note.md") == "2\n"
    assert read(tmp_path, "x.md") == "[[My_Note]]\n"


def test_notes_whose_titles_differ_only_in_case_are_not_renamed(tmp_path: Path) -> None:
    write(tmp_path, {"notes/My Note.md": "1\n", "notes/my note.md": "2\n"})
    outcomes = handle(engine(tmp_path, None, NAMING), "notes/My Note.md", "notes/my note.md")
    assert [[f.code for f in o.findings] for o in outcomes] == [["ambiguous_name"]] * 2


def test_renaming_a_note_another_rename_rewrites_waits_for_it(tmp_path: Path) -> None:
    """B Note links to A Note: renaming B before A's rewrite of it has run would
    leave that rewrite with nowhere to go."""
    write(tmp_path, {"notes/A Note.md": "a\n", "notes/B Note.md": "see [[A Note]]\n"})
    eng = engine(tmp_path, None, NAMING)
    first = handle(eng, "notes/A Note.md", "notes/B Note.md")
    assert [f.code for f in first[1].findings] == ["rename_deferred"]
    handle(eng, "notes/B Note.md")
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["a-note.md", "b-note.md"]
    assert read(tmp_path, "notes/b-note.md") == "see [[a-note]]\n"


def test_a_rename_finds_links_written_since_an_earlier_rename(tmp_path: Path) -> None:
    """What each note links to is kept between renames; a note edited since is read again."""
    write(
        tmp_path, {"notes/A Note.md": "a\n", "notes/B Note.md": "b\n", "notes/x.md": "[[A Note]]\n"}
    )
    eng = engine(tmp_path, None, NAMING)
    handle(eng, "notes/A Note.md")
    write(tmp_path, {"notes/x.md": "[[a-note]], now [[B Note]] too\n"})
    eng.handle(Event(EventKind.MODIFIED, "notes/x.md"))
    handle(eng, "notes/B Note.md")
    assert read(tmp_path, "notes/x.md") == "[[a-note]], now [[b-note]] too\n"


def test_report_mode_reports_with_a_suggestion_and_renames_nothing(tmp_path: Path) -> None:
    write(tmp_path, LINKING)
    text = NAMING.replace("mode: rename", "mode: report")
    (outcome,) = handle(engine(tmp_path, None, text), "notes/My Note.md")
    (found,) = outcome.findings
    assert found == Finding(
        "bad_name",
        "'My Note' does not match ^[a-z0-9]+(-[a-z0-9]+)*$; rename it to 'my-note'",
        "notes/My Note.md",
        None,
        {"stem": "My Note", "suggested": "my-note"},
        False,
    )
    assert (tmp_path / "notes/My Note.md").exists()
    (fine,) = handle(engine(tmp_path, None, text), "notes/other.md")
    assert fine.findings == ()


@pytest.mark.parametrize(
    ("rename_to", "problem"),
    [
        ("{{ stem }}", "rename_to leaves it as it is"),
        ("{{ stem | lower }}", "rename_to gives 'my note', which does not match either"),
        ("{{ parent }}/x", "rename_to gives 'notes/x', which is not a file name"),
        ("{{ field('missing', '') }}", "rename_to gives '', which is not a file name"),
    ],
)
def test_a_name_rename_to_cannot_fix_is_reported_and_left(
    tmp_path: Path, rename_to: str, problem: str
) -> None:
    write(tmp_path, LINKING)
    text = NAMING.replace("\"{{ stem | lower | replace(' ', '-') }}\"", f'"{rename_to}"')
    (outcome,) = handle(engine(tmp_path, None, text), "notes/My Note.md")
    (found,) = outcome.findings
    assert found.code == "bad_name"
    assert found.message.endswith(f"; {problem}; not renamed")
    assert (tmp_path / "notes/My Note.md").exists()


def test_enforce_naming_does_nothing_for_a_deleted_file(tmp_path: Path) -> None:
    write(tmp_path, LINKING)
    eng = engine(tmp_path, None, NAMING.replace("do:", "on: [deleted]\n    do:"))
    (tmp_path / "notes/My Note.md").unlink()
    (outcome,) = eng.handle_many([Event(EventKind.DELETED, "notes/My Note.md")])
    assert (outcome.status, outcome.findings, outcome.failures) == (Status.DELETED, (), ())
    assert read(tmp_path, "notes/other.md") == LINKING["notes/other.md"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("{pattern: '^[a-z]+$', mode: rename}", "mode 'rename' needs rename_to"),
        ("{pattern: '([a-z'}", "invalid regular expression"),
        ("{pattern: '^x$', mode: move}", "mode"),
        ("{pattern: '^x$', rename_to: '{{ stem'}", "template syntax error"),
    ],
)
def test_enforce_naming_params_are_checked_when_the_rules_load(params: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        rules(f"rules:\n  - id: r\n    do:\n      - enforce_naming: {params}\n")
    assert message in str(caught.value)


def test_scribe_run_renames_once_and_the_next_run_changes_nothing(tmp_path: Path) -> None:
    notes = {
        "notes/First One.md": "1\n",
        "notes/Second One.md": "2\n",
        "notes/hub.md": "[[First One]], [[Second One#Part]] and [x](First%20One.md).\n",
    }
    repository(tmp_path, NAMING, notes)
    runs = []
    for _ in range(3):  # a rename that had to wait for another is done by the next run
        runs.append(scribe("run", cwd=tmp_path))
        assert runs[-1].returncode == 0, runs[-1].stderr
        if "rename_deferred" not in runs[-1].stderr:
            break
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == [
        "first-one.md",
        "hub.md",
        "second-one.md",
    ]
    assert read(tmp_path, "notes/hub.md") == (
        "[[first-one]], [[second-one#Part]] and [x](first-one.md).\n"
    )
    settled = {p: (tmp_path / p).stat().st_mtime_ns for p in ("notes/hub.md",)}
    final = scribe("run", cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    assert (final.stdout, "rename" in final.stderr) == ("", False), final.stderr
    assert {p: (tmp_path / p).stat().st_mtime_ns for p in settled} == settled
    checked = scribe("check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_scribe_run_renames_notes_that_link_to_each_other_and_loses_no_link(
    tmp_path: Path,
) -> None:
    """Forty badly named notes, each linking to three others, and a hub linking to all:
    renames planned on several workers at once, over a few runs; not one link breaks."""
    names = [f"Note {n}" for n in range(40)]
    files = {
        f"notes/{name}.md": f"# {name}\n[[{names[n - 1]}]] [[{names[n - 7]}#x]] "
        f"[y]({names[n - 13].replace(' ', '%20')}.md)\n"
        for n, name in enumerate(names)
    }
    files["notes/hub.md"] = "".join(f"- [[{name}]]\n" for name in names)
    checked = NAMING + CHECK.replace("rules:\n", "").replace("{}", "{fail: true}")
    repository(tmp_path, checked, files)
    for _ in range(10):
        done = scribe("run", cwd=tmp_path)
        if "rename_deferred" not in done.stderr:
            break
    assert "rename_deferred" not in done.stderr, done.stderr
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == sorted(
        [f"note-{n}.md" for n in range(40)] + ["hub.md"]
    )
    assert (
        read(tmp_path, "notes/note-8.md") == "# Note 8\n[[note-7]] [[note-1#x]] [y](note-35.md)\n"
    )
    assert read(tmp_path, "notes/hub.md") == "".join(f"- [[note-{n}]]\n" for n in range(40))
    final = scribe("check", cwd=tmp_path)
    assert final.returncode == 0, final.stderr


def test_scribe_check_fails_on_a_bad_name_in_report_mode_with_fail(tmp_path: Path) -> None:
    text = NAMING.replace("mode: rename", "mode: report\n          fail: true")
    repository(tmp_path, text, {"notes/Bad Name.md": "x\n", "notes/good-name.md": "y\n"})
    result = scribe("check", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad_name notes/Bad Name.md: 'Bad Name' does not match " in result.stderr
    assert "; rename it to 'bad-name'" in result.stderr
    assert "good-name" not in result.stderr
    assert (tmp_path / "notes/Bad Name.md").exists()


def test_scribe_watch_renames_a_new_note_once_and_updates_its_links_once(
    tmp_path: Path,
) -> None:
    """The watcher sees the move and the rewritten note come back: neither is renamed
    or rewritten again."""
    root = tmp_path / "repo"
    repository(root, NAMING, {"notes/hub.md": "[[Fresh Idea]] soon.\n"})
    proc = ScribeProcess(root, log_path=tmp_path / "watch.log")
    try:
        proc.wait_ready()
        write(root, {"notes/Fresh Idea.md": "an idea\n"})
        assert wait_until(lambda: (root / "notes/fresh-idea.md").exists(), 20), proc.log()
        assert wait_until(lambda: read(root, "notes/hub.md") == "[[fresh-idea]] soon.\n", 20)
        rewritten = (root / "notes/hub.md").stat().st_mtime_ns
        # A second new note: once it is renamed, the echoes of the first are behind us.
        write(root, {"notes/Later One.md": "later\n"})
        assert wait_until(lambda: "renamed notes/Later One.md" in proc.log(), 20), proc.log()
        assert sorted(p.name for p in (root / "notes").iterdir()) == [
            "fresh-idea.md",
            "hub.md",
            "later-one.md",
        ]
        assert (root / "notes/hub.md").stat().st_mtime_ns == rewritten
        assert proc.log().count("renamed notes/Fresh Idea.md to notes/fresh-idea.md") == 1
        assert proc.log().count("wrote notes/hub.md for names") == 1
    finally:
        proc.close()


def test_a_watch_retries_a_held_back_rename_although_the_note_came_back_as_its_own_echo(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One worker takes both saves in one batch: the first rename rewrites the second
    note, whose rename waits. The note now holds Scribe's own write, so the retry must
    not be taken for that write's echo."""
    files = {"notes/Fresh Idea.md": "an idea\n", "notes/Later One.md": "see [[Fresh Idea]]\n"}
    repository(tmp_path, NAMING, files)
    settings = load_settings(tmp_path).model_copy(update={"workers": 1})
    service = WatchService(
        tmp_path,
        settings,
        rules(NAMING),
        rules_file=tmp_path / ".scribe/rules.yaml",
        rules_display="rules.yaml",
        rules_fixed=False,
        flags={},
        listen_given=False,
        console=Console(stderr=True),
    )
    for name in files:  # saved by a user: the watcher's kind of change
        service.scheduler.submit(Change(EventKind.CREATED, name, closed=True))
    service.scheduler.start()
    try:
        done = ["fresh-idea.md", "later-one.md"]
        assert wait_until(
            lambda: sorted(p.name for p in (tmp_path / "notes").iterdir()) == done, 10
        )
        assert read(tmp_path, "notes/later-one.md") == "see [[fresh-idea]]\n"
        # It was held back once: the rename came from the retry, not the first batch.
        assert caplog.text.count("not renamed to notes/later-one.md yet") == 1
    finally:
        service.scheduler.stop(drain=0.0, timeout=2.0)
        service.engine.state.close()
        if service.journal is not None:
            service.journal.close()


def test_scribe_watch_scan_renames_two_notes_that_link_to_each_other(
    tmp_path: Path,
) -> None:
    """Whichever the scan plans first rewrites the other; planned in one batch, the
    second rename waits for the first, and a watch retries it itself where a run would
    say "run again" (the retry alone is pinned down by the in-process test above)."""
    root = tmp_path / "repo"
    files = {
        "notes/Fresh Idea.md": "see [[Later One]]\n",
        "notes/Later One.md": "see [[Fresh Idea]]\n",
    }
    repository(root, NAMING, files)
    proc = ScribeProcess(root, "--scan", log_path=tmp_path / "watch.log")
    try:
        proc.wait_ready()
        done = ["fresh-idea.md", "later-one.md"]
        assert wait_until(lambda: sorted(p.name for p in (root / "notes").iterdir()) == done, 20), (
            proc.log()
        )
        assert wait_until(lambda: read(root, "notes/later-one.md") == "see [[fresh-idea]]\n", 20)
        assert wait_until(lambda: read(root, "notes/fresh-idea.md") == "see [[later-one]]\n", 20)
    finally:
        proc.close()

"""The built-in actions and templates, run through the engine on real files."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from scribe.actions import FileContext
from scribe.actions.content import ReplaceParams, plan_replace
from scribe.engine import Engine, Outcome, Status
from scribe.events import Event, EventKind
from scribe.rules.load import parse_rules
from scribe.state import State

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def rule(do: str, *, when: str = "", rule_id: str = "r", extra: str = "") -> str:
    """One rule as YAML; ``do`` and ``when`` are lists of flow-style items."""
    text = f"  - id: {rule_id}\n    paths: ['**/*.md']\n{extra}"
    if when:
        text += "    when:\n" + "".join(f"      - {w}\n" for w in when.splitlines())
    return text + "    do:\n" + "".join(f"      - {d}\n" for d in do.splitlines())


def engine(
    root: Path, *rules: str, state: State | None = None, regex_timeout: float = 1.0
) -> Engine:
    compiled = parse_rules("rules:\n" + "".join(rules), "rules.yaml")
    return Engine(root, compiled, state=state, regex_timeout=regex_timeout)


def run(
    root: Path,
    rules: str | Engine,
    text: str,
    *,
    path: str = "note.md",
    when: datetime = T0,
    source: str = "watcher",
) -> tuple[Outcome, str]:
    """Write ``text`` (unless None) to ``path``, handle one event, return the outcome
    and the file's text afterwards."""
    file = root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(text.encode())
    eng = rules if isinstance(rules, Engine) else engine(root, rules)
    outcome = eng.handle(Event(EventKind.MODIFIED, path, time=when, source=source))
    return outcome, file.read_bytes().decode()


def rerun(root: Path, rules: str, path: str = "note.md") -> Outcome:
    """A fresh engine over the file as it is: must find nothing more to do."""
    return engine(root, rules).handle(Event(EventKind.MODIFIED, path, time=T0 + timedelta(hours=1)))


def fingerprint(path: Path) -> tuple[bytes, int, int]:
    st = path.stat()
    return path.read_bytes(), st.st_mtime_ns, st.st_ino


# -- set ----------------------------------------------------------------------------


def test_set_overwrites_an_existing_field_and_adds_a_new_one_last(tmp_path: Path) -> None:
    rules = rule("set: {field: title, value: New}\nset: {field: status, value: draft}")
    outcome, text = run(tmp_path, rules, "---\ntitle: Old # c\nn: 1\n---\nbody\n")
    assert outcome.status is Status.WRITTEN
    assert text == "---\ntitle: New # c\nn: 1\nstatus: draft\n---\nbody\n"
    assert rerun(tmp_path, rules).status is Status.UNCHANGED


def test_set_if_missing_leaves_an_existing_value_alone(tmp_path: Path) -> None:
    rules = rule("set: {field: status, value: draft, if_missing: true}")
    outcome, text = run(tmp_path, rules, "---\nstatus: published\n---\n")
    assert (outcome.status, text) == (Status.UNCHANGED, "---\nstatus: published\n---\n")
    outcome, text = run(tmp_path, rules, "---\ntitle: T\n---\n")
    assert (outcome.status, text) == (Status.WRITTEN, "---\ntitle: T\nstatus: draft\n---\n")


def test_set_writes_values_the_way_a_person_types_them(tmp_path: Path) -> None:
    rules = rule(
        "set: {field: day, value: \"{{ now('%Y-%m-%d') }}\"}\n"
        "set: {field: answer, value: 'no'}\n"
        "set: {field: count, value: 3}\n"
        "set: {field: tags, value: [a, 'b c', '{{ stem }}']}\n"
        'set: {field: said, value: "it\'s: fine"}'
    )
    _, text = run(tmp_path, rules, "body\n")
    assert text == (
        "---\nday: 2024-05-01\nanswer: 'no'\ncount: 3\ntags: [a, b c, note]\nsaid: 'it''s: fine'\n"
        "---\nbody\n"
    )


# -- remove / rename_field ----------------------------------------------------------


def test_remove_one_field(tmp_path: Path) -> None:
    _, text = run(
        tmp_path, rule("remove: {field: draft}"), "---\na: 1\ndraft: true\nb: 2\n---\nx\n"
    )
    assert text == "---\na: 1\nb: 2\n---\nx\n"


def test_remove_a_list_of_fields_ignoring_missing_ones(tmp_path: Path) -> None:
    rules = rule("remove: {field: [a, missing, c]}")
    _, text = run(tmp_path, rules, "---\na: 1\nb: 2\nc:\n  - x\n---\nx\n")
    assert text == "---\nb: 2\n---\nx\n"
    outcome, _ = run(tmp_path, rules, "---\nb: 2\n---\nx\n")
    assert outcome.status is Status.UNCHANGED


def test_rename_field_keeps_value_and_position(tmp_path: Path) -> None:
    rules = rule("rename_field: {from: Tags, to: tags}")
    _, text = run(tmp_path, rules, "---\na: 1\nTags: [x, y]  # c\nb: 2\n---\n")
    assert text == "---\na: 1\ntags: [x, y]  # c\nb: 2\n---\n"


def test_rename_field_refuses_when_the_new_name_exists(tmp_path: Path) -> None:
    (tmp_path / "note.md").write_bytes(b"---\nTags: [x]\ntags: [y]\n---\n")
    before = fingerprint(tmp_path / "note.md")
    outcome = engine(tmp_path, rule("rename_field: {from: Tags, to: tags}")).handle(
        Event(EventKind.MODIFIED, "note.md", time=T0)
    )
    assert outcome.status is Status.UNCHANGED
    assert [(f.rule, f.reason) for f in outcome.failures] == [
        ("r", "FrontmatterError: cannot rename 'Tags' to 'tags': 'tags' already exists")
    ]
    assert fingerprint(tmp_path / "note.md") == before


# -- replace ------------------------------------------------------------------------


def test_replace_uses_named_captures_from_a_content_condition(tmp_path: Path) -> None:
    rules = rule(
        "replace: {pattern: 'TICKET', with: \"[{{ capture('t') }}](https://t.example/{{ capture('t') }})\"}",
        when=r"content: 'ref: (?P<t>[A-Z]+-\d+)'",
    )
    _, text = run(tmp_path, rules, "---\nref: OPS-12\n---\nSee TICKET.\n")
    assert text == "---\nref: OPS-12\n---\nSee [OPS-12](https://t.example/OPS-12).\n"


def test_replace_takes_captured_backslashes_literally_but_keeps_group_references(
    tmp_path: Path,
) -> None:
    rules = rule(
        "replace: {pattern: '^(DIR)$', with: \"\\\\1={{ capture('p') }}\"}",
        when=r"content: 'path: (?P<p>\S+)'",
    )
    _, text = run(tmp_path, rules, "path: C:\\new\\Users\nDIR\n")
    assert text == "path: C:\\new\\Users\nDIR=C:\\new\\Users\n"


def test_replace_in_body_never_touches_the_frontmatter(tmp_path: Path) -> None:
    rules = rule("replace: {pattern: '^title', with: Title}\nreplace: {pattern: 'foo', with: bar}")
    _, text = run(tmp_path, rules, "---\ntitle: foo\n---\ntitle foo\n")
    assert text == "---\ntitle: foo\n---\nTitle bar\n"


def test_replace_in_all_covers_the_frontmatter_too(tmp_path: Path) -> None:
    _, text = run(
        tmp_path, rule("replace: {pattern: foo, with: bar, in: all}"), "---\nt: foo\n---\nfoo\n"
    )
    assert text == "---\nt: bar\n---\nbar\n"


def test_replace_count_limits_the_replacements() -> None:
    params = ReplaceParams.model_validate({"pattern": "x", "with": "y", "count": 2})
    ctx = FileContext(path="n.md", text="---\nx: 1\n---\nx x x\n", time=T0)
    assert plan_replace(ctx, params) == "---\nx: 1\n---\ny y x\n"


def test_replace_count_on_a_file_with_exactly_that_many_matches(tmp_path: Path) -> None:
    rules = rule("replace: {pattern: '\\bTODO\\b', with: DONE, count: 1}")
    outcome, text = run(tmp_path, rules, "one TODO here\n")
    assert (outcome.status, text) == (Status.WRITTEN, "one DONE here\n")


# -- append / prepend ---------------------------------------------------------------


def test_append_adds_once(tmp_path: Path) -> None:
    rules = rule('append: {text: "\\n-- {{ stem }}\\n"}')
    outcome, text = run(tmp_path, rules, "---\na: 1\n---\nbody\n")
    assert (outcome.status, text) == (Status.WRITTEN, "---\na: 1\n---\nbody\n\n-- note\n")
    assert rerun(tmp_path, rules).status is Status.UNCHANGED
    assert (tmp_path / "note.md").read_text() == text


def test_append_starts_a_line_and_follows_crlf(tmp_path: Path) -> None:
    rules = rule('append: {text: "footer\\n"}')
    _, text = run(tmp_path, rules, "a\r\nlast line")
    assert text == "a\r\nlast line\r\nfooter\r\n"


def test_append_after_a_closing_line_at_end_of_file_keeps_it_closing(tmp_path: Path) -> None:
    rules = rule('append: {text: "footer\\n"}')
    _, text = run(tmp_path, rules, "---\na: 1\n---")
    assert text == "---\na: 1\n---\nfooter\n"
    assert rerun(tmp_path, rules).status is Status.UNCHANGED


def test_prepend_goes_after_the_frontmatter_once(tmp_path: Path) -> None:
    rules = rule('prepend: {text: "> draft\\n\\n"}')
    _, text = run(tmp_path, rules, "---\na: 1\n---\n# Title\n")
    assert text == "---\na: 1\n---\n> draft\n\n# Title\n"
    assert rerun(tmp_path, rules).status is Status.UNCHANGED


def test_prepend_after_a_closing_line_at_end_of_file_keeps_it_closing(tmp_path: Path) -> None:
    rules = rule('prepend: {text: "> draft\\n"}')
    _, text = run(tmp_path, rules, "---\na: 1\n---")
    assert text == "---\na: 1\n---\n> draft\n"
    assert rerun(tmp_path, rules).status is Status.UNCHANGED


def test_prepend_without_frontmatter_goes_first(tmp_path: Path) -> None:
    _, text = run(tmp_path, rule('prepend: {text: "top\\n"}'), "body\n")
    assert text == "top\nbody\n"


# -- ensure_frontmatter -------------------------------------------------------------


def test_ensure_frontmatter_creates_a_block_in_the_files_newline_style(tmp_path: Path) -> None:
    rules = rule(
        "ensure_frontmatter: {defaults: {title: '{{ stem }}', created: \"{{ now('%Y-%m-%d') }}\"}}"
    )
    _, text = run(tmp_path, rules, "body\r\nmore\r\n", path="notes/my-note.md")
    assert text == "---\r\ntitle: my-note\r\ncreated: 2024-05-01\r\n---\r\nbody\r\nmore\r\n"
    assert rerun(tmp_path, rules, "notes/my-note.md").status is Status.UNCHANGED


def test_ensure_frontmatter_adds_only_missing_defaults(tmp_path: Path) -> None:
    rules = rule("ensure_frontmatter: {defaults: {title: Untitled, status: draft}}")
    _, text = run(tmp_path, rules, "---\ntitle: Mine\n---\nbody\n")
    assert text == "---\ntitle: Mine\nstatus: draft\n---\nbody\n"


def test_ensure_frontmatter_without_defaults_adds_an_empty_block_once(tmp_path: Path) -> None:
    rules = rule("ensure_frontmatter: {}")
    _, text = run(tmp_path, rules, "body\n")
    assert text == "---\n---\nbody\n"
    assert rerun(tmp_path, rules).status is Status.UNCHANGED


# -- templates ----------------------------------------------------------------------


def test_now_defaults_to_utc_with_an_explicit_offset(tmp_path: Path) -> None:
    in_paris = T0.astimezone(timezone(timedelta(hours=2)))  # the same instant, other zone
    _, text = run(tmp_path, rule("set: {field: t, value: '{{ now() }}'}"), "x\n", when=in_paris)
    assert text == "---\nt: 2024-05-01T12:00:00+00:00\n---\nx\n"


def test_now_with_format_and_time_zone(tmp_path: Path) -> None:
    rules = rule(
        "set: {field: local, value: \"{{ now('%Y-%m-%d %H:%M %Z', 'Asia/Tokyo') }}\"}\n"
        "set: {field: ny, value: \"{{ now(tz='America/New_York') }}\"}"
    )
    _, text = run(tmp_path, rules, "x\n")
    assert text == "---\nlocal: 2024-05-01 21:00 JST\nny: 2024-05-01T08:00:00-04:00\n---\nx\n"


def test_now_with_an_unknown_time_zone_fails_the_rule(tmp_path: Path) -> None:
    outcome, text = run(
        tmp_path, rule("set: {field: t, value: \"{{ now(tz='Mars/Base') }}\"}"), "x\n"
    )
    assert text == "x\n"
    assert [f.reason for f in outcome.failures] == [
        "ValueError: now(): unknown time zone 'Mars/Base'"
    ]


def test_field_capture_path_stem_and_parent(tmp_path: Path) -> None:
    rules = rule(
        "set: {field: copy, value: \"{{ field('title') }}|{{ field('nope', 'dflt') }}\"}\n"
        "set: {field: cap, value: \"{{ capture('word') }}|{{ capture('none', 'c') }}\"}\n"
        "set: {field: where, value: '{{ path }}|{{ stem }}|{{ parent }}'}",
        when=r"content: 'magic (?P<word>\w+)'",
    )
    _, text = run(
        tmp_path, rules, "---\ntitle: Hello\n---\nmagic words\n", path="notes/sub/my-note.md"
    )
    assert text == (
        "---\ntitle: Hello\ncopy: Hello|dflt\ncap: words|c\n"
        "where: notes/sub/my-note.md|my-note|notes/sub\n---\nmagic words\n"
    )


# -- stamps, state and fixpoints ----------------------------------------------------

STAMP = rule("set: {field: modified, value: '{{ now() }}'}", rule_id="stamp")


def test_a_stamp_is_renewed_only_when_something_else_changed(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    eng = engine(tmp_path, STAMP, state=State(None))

    def event(hour: int, source: str = "watcher") -> Outcome:
        return eng.handle(
            Event(EventKind.MODIFIED, "note.md", time=T0 + timedelta(hours=hour), source=source)
        )

    path.write_bytes(b"---\ntitle: A\n---\nbody\n")
    assert event(0).status is Status.WRITTEN
    stamped = "---\ntitle: A\nmodified: 2024-05-01T12:00:00+00:00\n---\nbody\n"
    assert path.read_text() == stamped

    assert event(1).status is Status.ECHO  # Scribe's own write
    assert event(2, source="scan").status is Status.UNCHANGED  # nothing new: no restamp
    assert path.read_text() == stamped

    # Only the stamp changed (a user fixed it by hand): not a reason to restamp.
    by_hand = stamped.replace("12:00:00", "09:30:00")
    path.write_text(by_hand)
    assert event(3).status is Status.UNCHANGED
    assert path.read_text() == by_hand

    # A real change: restamped with the new event's time.
    path.write_text(by_hand.replace("body", "new body"))
    assert event(4).status is Status.WRITTEN
    assert path.read_text() == "---\ntitle: A\nmodified: 2024-05-01T16:00:00+00:00\n---\nnew body\n"


def test_dates_the_rule_does_not_touch_stay_as_written(tmp_path: Path) -> None:
    rules = STAMP + rule(
        "set: {field: created, value: '{{ now() }}', if_missing: true}", rule_id="c"
    )
    text = "---\ncreated: 2024-1-5\nreviewed: 2024-01-05\nquoted: '2024-01-05'\n---\nbody\n"
    _, result = run(tmp_path, rules, text)
    assert result == text.replace("---\nbody", "modified: 2024-05-01T12:00:00+00:00\n---\nbody")


def test_a_rule_that_is_not_a_fixpoint_is_refused(tmp_path: Path) -> None:
    rules = rule("replace: {pattern: a, with: aa}", rule_id="grow")
    path = tmp_path / "note.md"
    path.write_bytes(b"banana\n")
    before = fingerprint(path)
    outcome = engine(tmp_path, rules).handle(Event(EventKind.MODIFIED, "note.md", time=T0))
    assert outcome.status is Status.UNCHANGED
    assert [(f.rule, f.reason) for f in outcome.failures] == [
        ("grow", "rules do not reach a fixpoint: their output changes again when re-run")
    ]
    assert fingerprint(path) == before


def test_replace_count_leaving_matches_is_not_a_fixpoint_and_is_refused(tmp_path: Path) -> None:
    rules = rule("replace: {pattern: TODO, with: DONE, count: 1}")
    outcome, text = run(tmp_path, rules, "TODO a\nTODO b\n")
    assert text == "TODO a\nTODO b\n"
    assert [f.rule for f in outcome.failures] == ["r"]


@pytest.mark.parametrize(
    "runaway",
    [
        rule("replace: {pattern: '(a+)+$', with: x}", rule_id="runaway"),
        rule("set: {field: never, value: 1}", when="content: '(a+)+$'", rule_id="runaway"),
    ],
    ids=["in-replace", "in-condition"],
)
def test_a_runaway_regex_is_cut_off_and_the_other_rules_still_apply(
    tmp_path: Path, runaway: str
) -> None:
    rules = runaway + rule("set: {field: ok, value: done}", rule_id="fine")
    body = "a" * 5000 + "b\n"
    started = time.monotonic()
    outcome, text = run(
        tmp_path, engine(tmp_path, rules, regex_timeout=0.2), "---\nt: 1\n---\n" + body
    )
    assert time.monotonic() - started < 10
    assert outcome.status is Status.WRITTEN
    assert text == "---\nt: 1\nok: done\n---\n" + body
    assert [(f.rule, f.reason) for f in outcome.failures] == [
        ("runaway", "regular expression timed out on this file")
    ]


def test_a_rule_that_never_settles_or_breaks_the_frontmatter_fails_alone() -> None:
    """Other rules' edits still apply; the culprits are named with their reasons."""
    from datetime import UTC, datetime

    from scribe.events import EventKind
    from scribe.plan import plan_file
    from scribe.rules.load import parse_rules

    rules = parse_rules(
        """
rules:
  - id: grow
    do: [{replace: {pattern: body, with: bodybody}}]
  - id: fine
    do: [{set: {field: ok, value: done}}]
  - id: breaker
    do: [{replace: {pattern: '^title: a$', with: 'title: [a', in: all}}]
""",
        "rules.yaml",
    )
    plan = plan_file(
        "a.md",
        "---\ntitle: a\n---\nbody\n",
        "sha",
        rules,
        kind=EventKind.MODIFIED,
        time=datetime.now(UTC),
        size=20,
        may_restamp=True,
    )
    assert plan.new_text == "---\ntitle: a\nok: done\n---\nbody\n"
    assert plan.rules == ("fine",)
    reasons = {f.rule: f.reason for f in plan.failures}
    assert (
        reasons["grow"] == "rules do not reach a fixpoint: their output changes again when re-run"
    )
    assert reasons["breaker"].startswith("FrontmatterError: its output would break the frontmatter")

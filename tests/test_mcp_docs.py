"""Project documents: templates, document keys, sections, patches, and journaled CAS writes."""

from __future__ import annotations

import difflib
import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from mcp_helpers import make_call
from scribe.diffs import unified_diff
from scribe.errors import ScribeError
from scribe.journal import JournalWriter, Query, SqliteJournal
from scribe.journal.entry import DOC_CHANGED, FILE_READ
from scribe.journal.sqlite import JOURNAL_DB
from scribe.mcp import templates
from scribe.mcp.context import Call
from scribe.mcp.docs import Docs
from scribe.mcp.failures import CONFLICT, INVALID_ARGUMENT, NOT_FOUND, SCOPE_VIOLATION, ToolFailure
from scribe.mcp.patch import sections, split_lines
from scribe.mcp.projects import Projects, parse_line

DIR = ".scribe/docs/dev_plans/auth-rewrite/"
NAMES = ["ARCHITECTURE_GUIDE.md", "PHASE_PLAN.md", "CHECKLIST.md", "PROGRESS_LOG.md"]

PLAN = """\
# Plan

Intro line.

## Phase 1
<!-- ID: phase_1 -->

- build it

### Notes

phase one notes

## Phase 2

- ship it

<!-- ID: notes_two -->
## Notes

closing notes
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = (tmp_path / "repo").resolve()
    root.mkdir()
    return root


@pytest.fixture
def store(repo: Path) -> Iterator[SqliteJournal]:
    with SqliteJournal(repo / JOURNAL_DB) as journal:
        yield journal


@pytest.fixture
def journal(store: SqliteJournal) -> Iterator[JournalWriter]:
    with JournalWriter(store) as writer:
        yield writer


@pytest.fixture
def call(repo: Path) -> Call:
    return make_call(
        repo,
        "session-7",
        execution_id="exec-7",
        agent_identity={"id": "doc-agent", "instance_id": "inst-7"},
        intent="keep the plans true",
        affected_dev_projects=["Auth Rewrite"],
    )


@pytest.fixture
def projects(repo: Path, journal: JournalWriter, call: Call) -> Projects:
    projects = Projects(repo, journal)
    projects.set_project(call, name="Auth Rewrite", root=".")
    return projects


@pytest.fixture
def docs(repo: Path, journal: JournalWriter, projects: Projects) -> Docs:
    return Docs(repo, journal, projects, aliases={"design": "architecture", "Road-Map": "plan"})


def put(repo: Path, name: str, data: bytes) -> Path:
    path = repo / DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def manage(docs: Docs, call: Call, doc: str, action: str, **arguments: Any) -> dict[str, Any]:
    return docs.manage_docs(call, project="Auth Rewrite", doc=doc, action=action, **arguments)


def refused(code: str, run: Any) -> ToolFailure:
    with pytest.raises(ToolFailure) as caught:
        run()
    assert caught.value.code == code, caught.value.to_json()
    return caught.value


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- templates ------------------------------------------------------------------------


def test_the_templates_are_package_data() -> None:
    folder = resources.files("scribe.mcp.templates")
    for name in NAMES:
        text = folder.joinpath(name).read_text(encoding="utf-8")
        assert "{{project}}" in text
        assert "<!-- ID: " in text


def test_templates_are_rendered_for_the_project(
    repo: Path, docs: Docs, call: Call, store: SqliteJournal
) -> None:
    result = docs.generate_doc_templates(call, project="auth-rewrite")

    assert result["created"] == [DIR + name for name in NAMES]
    assert result["kept"] == []
    today = datetime.now(UTC).date().isoformat()
    for name in NAMES:
        text = (repo / DIR / name).read_text(encoding="utf-8")
        assert "Auth Rewrite" in text
        assert "`auth-rewrite`" in text
        assert today in text
        assert "{{" not in text
        found = sections([line for line, _ in split_lines(text)])
        assert found
        assert all(s.anchor for s in found)  # every section can be named by its anchor
    created = store.query(Query(kinds=[DOC_CHANGED]))
    assert [e.path for e in created] == result["created"]
    for entry in created:
        assert entry.path is not None
        data = (repo / entry.path).read_bytes()
        assert entry.after_hash == sha(data)
        assert entry.before_hash is None
        assert entry.diff == unified_diff(entry.path, "", data.decode())
        assert entry.payload["doc"] in {"architecture", "phase_plan", "checklist", "progress_log"}
        assert entry.payload["action"] == "create"
        assert entry.payload["project"] == "Auth Rewrite"
        assert result["seqs"][entry.path] == entry.seq


def test_templates_never_overwrite(
    repo: Path, docs: Docs, call: Call, store: SqliteJournal
) -> None:
    mine = put(repo, "CHECKLIST.md", b"# My own checklist\r\n")
    inode = mine.stat().st_ino
    first = docs.generate_doc_templates(call, project="Auth Rewrite")
    assert first["kept"] == [DIR + "CHECKLIST.md"]
    assert DIR + "CHECKLIST.md" not in first["created"]
    assert mine.read_bytes() == b"# My own checklist\r\n"
    assert mine.stat().st_ino == inode

    before = {name: (repo / DIR / name).read_bytes() for name in NAMES}
    again = docs.generate_doc_templates(call, project="Auth Rewrite")
    assert again["created"] == []
    assert again["kept"] == [DIR + name for name in NAMES]
    assert {name: (repo / DIR / name).read_bytes() for name in NAMES} == before
    assert len(store.query(Query(kinds=[DOC_CHANGED]))) == 3


def test_render_fills_placeholders_once() -> None:
    text = templates.render(
        "PHASE_PLAN.md", project="{{slug}} odd", slug="odd", day=datetime(2026, 1, 2).date()
    )
    assert text.startswith("# Phase plan: {{slug}} odd\n")
    assert "2026-01-02" in text


# -- document keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("architecture", "architecture"),
        ("ARCH", "architecture"),
        ("Architecture_Guide", "architecture"),
        ("architecture_guide.MD", "architecture"),
        ("Design", "architecture"),
        ("phases", "phase_plan"),
        ("PLAN", "phase_plan"),
        ("road-map", "phase_plan"),
        ("PHASE_PLAN.md", "phase_plan"),
        (" ToDo ", "checklist"),
        ("checklist.md", "checklist"),
        ("Progress", "progress_log"),
        ("log", "progress_log"),
        ("progress_log.md", "progress_log"),
    ],
)
def test_document_keys_and_aliases(docs: Docs, name: str, key: str) -> None:
    assert docs.doc_key(name) == key


def test_an_unknown_document_lists_the_known_keys(docs: Docs, call: Call) -> None:
    failure = refused(NOT_FOUND, lambda: manage(docs, call, "roadmap", "read"))
    assert failure.message.startswith(
        "no document 'roadmap'; documents: architecture, phase_plan, checklist, progress_log"
    )
    assert failure.details["known"] == ["architecture", "phase_plan", "checklist", "progress_log"]
    assert "design" in failure.details["aliases"]


def test_configured_aliases_must_name_a_document(
    repo: Path, journal: JournalWriter, projects: Projects
) -> None:
    with pytest.raises(ScribeError, match="'spec' names 'specification', which is not a document"):
        Docs(repo, journal, projects, aliases={"spec": "specification"})
    with pytest.raises(ScribeError, match="doc alias 'plan' already names 'phase_plan'"):
        Docs(repo, journal, projects, aliases={"plan": "checklist"})


# -- reading --------------------------------------------------------------------------


def test_read_gives_text_hash_and_sections(
    repo: Path, docs: Docs, call: Call, store: SqliteJournal
) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    result = manage(docs, call, "plan", "read")
    assert result["text"] == PLAN
    assert result["sha256"] == sha(path.read_bytes())
    assert result["path"] == DIR + "PHASE_PLAN.md"
    assert result["doc"] == "phase_plan"
    assert result["sections"] == [
        {"heading": "Plan", "level": 1, "line": 1, "id": None},
        {"heading": "Phase 1", "level": 2, "line": 5, "id": "phase_1"},
        {"heading": "Notes", "level": 3, "line": 10, "id": None},
        {"heading": "Phase 2", "level": 2, "line": 14, "id": None},
        {"heading": "Notes", "level": 2, "line": 19, "id": "notes_two"},
    ]
    docs.journal.flush()  # a read's provenance is journaled without waiting for the sync
    (entry,) = store.query(Query(kinds=[FILE_READ]))
    assert entry.path == DIR + "PHASE_PLAN.md"
    assert entry.payload["sha256"] == result["sha256"]
    assert PLAN not in str(entry.payload)  # provenance, never the content


def test_read_one_section(repo: Path, docs: Docs, call: Call) -> None:
    put(repo, "PHASE_PLAN.md", PLAN.encode())
    result = manage(docs, call, "plan", "read", section="phase 1")
    assert result["section_text"] == (
        "## Phase 1\n<!-- ID: phase_1 -->\n\n- build it\n\n### Notes\n\nphase one notes\n\n"
    )
    # the anchor above "## Notes" belongs to Notes, not to Phase 2
    phase_two = manage(docs, call, "plan", "read", section="Phase 2")["section_text"]
    assert phase_two == "## Phase 2\n\n- ship it\n\n"


def test_a_missing_document_says_how_to_create_it(docs: Docs, call: Call) -> None:
    failure = refused(NOT_FOUND, lambda: manage(docs, call, "checklist", "read"))
    assert failure.message == f"{DIR}CHECKLIST.md does not exist; call generate_doc_templates first"
    refused(
        NOT_FOUND,
        lambda: manage(docs, call, "checklist", "append_section", section="x", content="y"),
    )


def test_headings_in_code_fences_are_not_sections() -> None:
    text = "# A\n\n```md\n# not a heading\n```\n~~~\n## nor this\n~~~\n## B\n"
    found = sections([line for line, _ in split_lines(text)])
    assert [(s.heading, s.line) for s in found] == [("A", 0), ("B", 8)]


# -- section edits --------------------------------------------------------------------


def test_replace_section_by_heading_keeps_every_other_byte(
    repo: Path, docs: Docs, call: Call
) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    result = manage(
        docs,
        call,
        "plan",
        "replace_section",
        section="PHASE 2",
        content="- ship it twice\n- celebrate\n",
    )
    after = path.read_text(encoding="utf-8")
    assert after == PLAN.replace("- ship it\n", "- ship it twice\n- celebrate\n")
    assert result["outcome"] == "replaced"
    assert result["changed"] is True
    assert result["section"] == {"heading": "Phase 2", "level": 2, "line": 14, "id": None}
    assert result["sha256"] == sha(path.read_bytes())


def test_replace_section_by_anchor_covers_its_subsections(
    repo: Path, docs: Docs, call: Call
) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    manage(docs, call, "plan", "replace_section", section="phase_1", content="- rebuilt")
    assert path.read_text(encoding="utf-8") == PLAN.replace(
        "- build it\n\n### Notes\n\nphase one notes\n", "- rebuilt\n"
    )


def test_an_ambiguous_heading_lists_the_matches(repo: Path, docs: Docs, call: Call) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    failure = refused(
        INVALID_ARGUMENT,
        lambda: manage(docs, call, "plan", "replace_section", section="notes", content="x"),
    )
    assert failure.message == (
        "section 'notes' is ambiguous (line 10: ### Notes; line 19: ## Notes); name it by its "
        "ID anchor, or add one (<!-- ID: name --> under the heading)"
    )
    assert [m["line"] for m in failure.details["matches"]] == [10, 19]
    assert path.read_text(encoding="utf-8") == PLAN
    manage(docs, call, "plan", "replace_section", section="notes_two", content="new closing")
    assert path.read_text(encoding="utf-8").endswith("## Notes\n\nnew closing\n")


def test_replace_an_unknown_section_lists_the_sections(repo: Path, docs: Docs, call: Call) -> None:
    put(repo, "PHASE_PLAN.md", PLAN.encode())
    failure = refused(
        NOT_FOUND,
        lambda: manage(docs, call, "plan", "replace_section", section="Phase 9", content="x"),
    )
    assert (
        failure.message
        == "no section 'Phase 9'; sections: Plan, phase_1, Notes, Phase 2, notes_two"
    )


def test_append_to_an_existing_section(repo: Path, docs: Docs, call: Call) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    result = manage(
        docs, call, "plan", "append_section", section="phase 2", content="- and test it"
    )
    assert result["outcome"] == "appended"
    assert path.read_text(encoding="utf-8") == PLAN.replace(
        "- ship it\n", "- ship it\n- and test it\n"
    )


def test_append_to_a_missing_section_adds_it_at_the_end(repo: Path, docs: Docs, call: Call) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    result = manage(docs, call, "plan", "append_section", section="Risks", content="- none yet")
    assert result["outcome"] == "created_section"
    assert result["section"] == {"heading": "Risks", "level": 2, "line": 23, "id": None}
    assert path.read_text(encoding="utf-8") == PLAN + "\n## Risks\n\n- none yet\n"
    manage(docs, call, "plan", "append_section", section="### Deep", content="x")
    assert path.read_text(encoding="utf-8").endswith("- none yet\n\n### Deep\n\nx\n")


def test_empty_content_cannot_be_appended(repo: Path, docs: Docs, call: Call) -> None:
    put(repo, "PHASE_PLAN.md", PLAN.encode())
    refused(
        INVALID_ARGUMENT,
        lambda: manage(docs, call, "plan", "append_section", section="Phase 2", content=" \n"),
    )
    refused(
        INVALID_ARGUMENT,
        lambda: manage(docs, call, "plan", "append_section", section="  ", content="x"),
    )


def test_an_edit_that_changes_nothing_writes_nothing(
    repo: Path, docs: Docs, call: Call, store: SqliteJournal
) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    stat = path.stat()
    result = manage(docs, call, "plan", "replace_section", section="Phase 2", content="- ship it")
    assert result["changed"] is False
    assert result["outcome"] == "unchanged"
    assert result["seq"] is None
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert store.query(Query(kinds=[DOC_CHANGED])) == []


def test_crlf_documents_stay_crlf(repo: Path, docs: Docs, call: Call) -> None:
    crlf = PLAN.replace("\n", "\r\n").encode()
    path = put(repo, "PHASE_PLAN.md", crlf)
    manage(docs, call, "plan", "append_section", section="Phase 2", content="- one\n- two\n")
    manage(docs, call, "plan", "replace_section", section="phase_1", content="- rebuilt")
    manage(docs, call, "plan", "append_section", section="End", content="bye")
    data = path.read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert data.startswith(
        b"# Plan\r\n\r\nIntro line.\r\n\r\n## Phase 1\r\n<!-- ID: phase_1 -->\r\n\r\n- rebuilt\r\n\r\n## Phase 2"
    )
    assert b"- ship it\r\n- one\r\n- two\r\n\r\n<!-- ID: notes_two -->" in data
    assert data.endswith(b"closing notes\r\n\r\n## End\r\n\r\nbye\r\n")


def test_a_document_without_a_final_newline_keeps_it_so(repo: Path, docs: Docs, call: Call) -> None:
    path = put(repo, "CHECKLIST.md", b"# List\n\n- a")
    manage(docs, call, "todo", "append_section", section="list", content="- b")
    assert path.read_bytes() == b"# List\n\n- a\n- b"


def test_a_bom_is_kept(repo: Path, docs: Docs, call: Call) -> None:
    path = put(repo, "CHECKLIST.md", b"\xef\xbb\xbf# List\n\n- a\n")
    manage(docs, call, "todo", "append_section", section="List", content="- b")
    assert path.read_bytes() == b"\xef\xbb\xbf# List\n\n- a\n- b\n"


def test_each_change_is_journaled_with_its_diff(
    repo: Path, docs: Docs, call: Call, store: SqliteJournal
) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    result = manage(docs, call, "plan", "append_section", section="phase_1", content="- and more")
    (entry,) = store.query(Query(kinds=[DOC_CHANGED]))
    assert entry.seq == result["seq"]
    assert entry.path == DIR + "PHASE_PLAN.md"
    assert entry.actor == "agent:doc-agent"
    assert entry.before_hash == sha(PLAN.encode()) == result["before_sha256"]
    assert entry.after_hash == sha(path.read_bytes()) == result["sha256"]
    assert entry.diff == unified_diff(entry.path, PLAN, path.read_text(encoding="utf-8"))
    assert "+- and more" in entry.diff
    assert entry.payload["project"] == "Auth Rewrite"
    assert entry.payload["doc"] == "phase_plan"
    assert entry.payload["action"] == "append_section"
    assert entry.payload["section"] == "phase_1"
    assert entry.payload["execution_id"] == "exec-7"
    assert entry.payload["session_id"] == "session-7"


def test_arguments_that_do_not_fit_the_action_are_refused(
    repo: Path, docs: Docs, call: Call
) -> None:
    put(repo, "PHASE_PLAN.md", PLAN.encode())
    failure = refused(INVALID_ARGUMENT, lambda: manage(docs, call, "plan", "rewrite"))
    assert failure.message == (
        "unknown action 'rewrite'; use one of read, replace_section, append_section, apply_patch"
    )
    failure = refused(
        INVALID_ARGUMENT, lambda: manage(docs, call, "plan", "replace_section", section="x")
    )
    assert failure.message == "replace_section needs content"
    failure = refused(
        INVALID_ARGUMENT, lambda: manage(docs, call, "plan", "apply_patch", patch="@@")
    )
    assert failure.message == "apply_patch needs expected_sha256"
    failure = refused(INVALID_ARGUMENT, lambda: manage(docs, call, "plan", "read", content="x"))
    assert failure.message == "read does not take content"


# -- patches --------------------------------------------------------------------------


def make_patch(old: str, new: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), "a/PLAN", "b/PLAN"
        )
    )


def test_a_unified_patch_applies_when_the_hash_is_current(
    repo: Path, docs: Docs, call: Call, store: SqliteJournal
) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    current = manage(docs, call, "plan", "read")["sha256"]
    wanted = PLAN.replace("Intro line.", "A better intro.").replace("- ship it\n", "- ship\n- it\n")
    result = manage(
        docs, call, "plan", "apply_patch", patch=make_patch(PLAN, wanted), expected_sha256=current
    )
    assert path.read_text(encoding="utf-8") == wanted
    assert result["outcome"] == "patched"
    (entry,) = store.query(Query(kinds=[DOC_CHANGED]))
    assert entry.payload["action"] == "apply_patch"
    assert entry.before_hash == current


def test_a_stale_hash_is_refused(repo: Path, docs: Docs, call: Call) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    stale = sha(b"what it held before")
    failure = refused(
        CONFLICT,
        lambda: manage(
            docs,
            call,
            "plan",
            "apply_patch",
            patch=make_patch(PLAN, PLAN + "x\n"),
            expected_sha256=stale,
        ),
    )
    assert failure.details["current_sha256"] == sha(PLAN.encode())
    assert path.read_text(encoding="utf-8") == PLAN


def test_a_hunk_that_does_not_apply_is_refused_and_the_doc_unchanged(
    repo: Path, docs: Docs, call: Call, store: SqliteJournal
) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    stat = path.stat()
    other = PLAN.replace("<!-- ID: notes_two -->", "<!-- ID: notes_2 -->")
    wanted = other.replace("Intro line.", "Intro.").replace("closing notes", "the end")
    patch = make_patch(other, wanted)  # made against other content: its second hunk differs
    failure = refused(
        CONFLICT,
        lambda: manage(
            docs, call, "plan", "apply_patch", patch=patch, expected_sha256=sha(PLAN.encode())
        ),
    )
    assert failure.details["hunk"] == 2
    assert failure.message == (
        "hunk 2 does not apply at line 18: expected '<!-- ID: notes_2 -->', "
        "found '<!-- ID: notes_two -->'"
    )
    assert path.read_bytes() == PLAN.encode()
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert store.query(Query(kinds=[DOC_CHANGED])) == []


def test_a_hunk_is_never_moved_to_where_it_would_fit(repo: Path, docs: Docs, call: Call) -> None:
    put(repo, "PHASE_PLAN.md", PLAN.encode())
    patch = "@@ -3,1 +3,1 @@\n-- ship it\n+- shipped\n"  # "- ship it" is line 16, not 3
    failure = refused(
        CONFLICT,
        lambda: manage(
            docs, call, "plan", "apply_patch", patch=patch, expected_sha256=sha(PLAN.encode())
        ),
    )
    assert failure.details["hunk"] == 1


@pytest.mark.parametrize(
    "patch",
    [
        "",
        "just words\n",
        "@@ -1,2 +1,2 @@\n-# Plan\n",
        "@@ -1 +1 @@\n-# Plan\n+# P\n more\n context\n",
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-# Plan\n+# P\n--- a/y\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n",
    ],
)
def test_an_unreadable_patch_is_refused(repo: Path, docs: Docs, call: Call, patch: str) -> None:
    put(repo, "PHASE_PLAN.md", PLAN.encode())
    failure = refused(
        INVALID_ARGUMENT,
        lambda: manage(
            docs, call, "plan", "apply_patch", patch=patch, expected_sha256=sha(PLAN.encode())
        ),
    )
    assert failure.message.startswith("unreadable patch: ")


def test_an_lf_patch_applies_to_a_crlf_document(repo: Path, docs: Docs, call: Call) -> None:
    crlf = PLAN.replace("\n", "\r\n")
    path = put(repo, "PHASE_PLAN.md", crlf.encode())
    patch = make_patch(PLAN, PLAN.replace("- build it\n", "- build it\n- test it\n"))
    manage(docs, call, "plan", "apply_patch", patch=patch, expected_sha256=sha(crlf.encode()))
    assert (
        path.read_bytes() == crlf.replace("- build it\r\n", "- build it\r\n- test it\r\n").encode()
    )


def test_patches_at_the_edges_of_a_document(repo: Path, docs: Docs, call: Call) -> None:
    path = put(repo, "CHECKLIST.md", b"one\ntwo")
    patch = (
        "@@ -0,0 +1 @@\n+zero\n@@ -2 +3,2 @@\n-two\n\\ No newline at end of file\n+two\n+three\n"
    )
    manage(docs, call, "todo", "apply_patch", patch=patch, expected_sha256=sha(b"one\ntwo"))
    assert path.read_bytes() == b"zero\none\ntwo\nthree\n"
    patch = "@@ -4 +4 @@\n-three\n+THREE\n\\ No newline at end of file\n"
    manage(docs, call, "todo", "apply_patch", patch=patch, expected_sha256=sha(path.read_bytes()))
    assert path.read_bytes() == b"zero\none\ntwo\nTHREE"


# -- concurrency ----------------------------------------------------------------------


def test_two_patches_from_one_hash_one_wins(repo: Path, docs: Docs, call: Call) -> None:
    path = put(repo, "PHASE_PLAN.md", PLAN.encode())
    current = sha(PLAN.encode())
    outcomes: list[str] = []

    def edit(n: int) -> None:
        patch = make_patch(PLAN, PLAN.replace("Intro line.", f"Intro {n}."))
        try:
            manage(docs, call, "plan", "apply_patch", patch=patch, expected_sha256=current)
            outcomes.append(f"won {n}")
        except ToolFailure as failure:
            outcomes.append(failure.code)

    threads = [threading.Thread(target=edit, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1
    assert outcomes.count(CONFLICT) == 5
    assert path.read_text(encoding="utf-8") == PLAN.replace(
        "Intro line.", f"Intro {winners[0][4:]}."
    )


def test_edits_of_the_progress_log_never_lose_an_appended_line(
    repo: Path, docs: Docs, projects: Projects, call: Call
) -> None:
    log = put(
        repo,
        "PROGRESS_LOG.md",
        b"# Log\n\n## Summary\n<!-- ID: summary -->\n\nv0\n\n## Entries\n\n",
    )

    def appender(t: int) -> None:
        for n in range(50):
            projects.append_entry(
                call,
                project="Auth Rewrite",
                message=f"{t}-{n}",
                status="info",
                emoji=None,
                agent=None,
                meta=None,
            )

    def editor() -> None:
        for n in range(1, 31):
            manage(docs, call, "log", "replace_section", section="summary", content=f"v{n}")

    threads = [threading.Thread(target=appender, args=(t,)) for t in range(4)]
    threads.append(threading.Thread(target=editor))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    text = log.read_text(encoding="utf-8")
    messages = sorted(
        parse_line(line)["message"] for line in text.splitlines() if line.startswith("[")
    )
    assert messages == sorted(f"{t}-{n}" for t in range(4) for n in range(50))
    assert "\n\nv30\n\n## Entries\n" in text


def test_documents_behind_a_symlink_out_of_the_repository_are_refused(
    tmp_path: Path, repo: Path, docs: Docs, projects: Projects, call: Call
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / ".scribe" / "docs").symlink_to(outside)
    failure = refused(
        SCOPE_VIOLATION, lambda: docs.generate_doc_templates(call, project="Auth Rewrite")
    )
    assert failure.details["path"] == DIR + "ARCHITECTURE_GUIDE.md"
    assert list(outside.iterdir()) == []

    put(repo, "CHECKLIST.md", b"# List\n")  # lands outside, through the symlink
    refused(SCOPE_VIOLATION, lambda: manage(docs, call, "todo", "read"))
    refused(
        SCOPE_VIOLATION,
        lambda: manage(docs, call, "todo", "append_section", section="List", content="- x"),
    )
    put(repo, "PROGRESS_LOG.md", b"# Log\n")
    refused(
        SCOPE_VIOLATION,
        lambda: projects.append_entry(
            call,
            project="Auth Rewrite",
            message="m",
            status="info",
            emoji=None,
            agent=None,
            meta=None,
        ),
    )
    assert (outside / "dev_plans/auth-rewrite/CHECKLIST.md").read_bytes() == b"# List\n"
    assert (outside / "dev_plans/auth-rewrite/PROGRESS_LOG.md").read_bytes() == b"# Log\n"

"""Byte fidelity through the whole engine: an edit changes the bytes it was asked to
change and nothing else, in every encoding and line-ending style, and a second run
changes nothing at all."""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from scribe.engine import Engine, Outcome, Status
from scribe.events import Event, EventKind
from scribe.files import DEFAULT_MAX_FILE_BYTES
from scribe.frontmatter import Frontmatter
from scribe.rules.load import parse_rules
from scribe.rules.match import CompiledRule


@dataclass(frozen=True)
class Doc:
    """A document (written with LF; variants change that) and the exact lines the
    edits below touch in it: ``title`` is set to "New title" and renamed to ``name``,
    ``draft`` is removed. None: the document has no such field."""

    text: str
    title: str | None = "title: Old title"
    new_title: str | None = "title: New title"
    draft: str | None = "draft: true\n"


CORPUS = {
    "plain": Doc(
        "---\ntitle: Old title\ndraft: true\ntags: [a, b]\n---\n# Heading\n\nBody text.\n"
    ),
    "comments": Doc(
        "---\n# full-line comment\ntitle: Old title  # trailing comment\n# between\n"
        "draft: true # soon gone\ntags: [a, b] # flow list\n---\nBody\n",
        title="title: Old title  # trailing comment",
        new_title="title: New title  # trailing comment",
        draft="draft: true # soon gone\n",
    ),
    "anchors": Doc(
        "---\nbase: &b shared value\ntitle: Old title\ncopy: *b\ndraft: true\n---\nBody\n"
    ),
    "dates": Doc(
        "---\ncreated: 2024-01-05\nquoted: '2024-01-05'\nshort: 2024-1-5\ntitle: Old title\n"
        'updated: 2024-01-05T10:00:00Z\ndouble: "2024-01-05"\ndraft: true\n---\nBody\n'
    ),
    "numbers": Doc(
        "---\nmonth: 08\ncount: 010\nhex: 0x1F\ntitle: Old title\ndraft: true\n---\nBody\n"
    ),
    "quotes": Doc(
        "---\ntitle: 'Old ''title'''\nsubtitle: \"Old \\\"sub\\\"\"\ndraft: true\n---\nBody\n",
        title="title: 'Old ''title'''",
        new_title="title: 'New title'",  # the quote style of the value it replaces
    ),
    "block-list": Doc(
        "---\ntitle: Old title\ntags:\n  - a\n  - b\ndraft: true\naliases:\n- x\n---\nBody\n"
    ),
    "block-list-removed": Doc(
        "---\ntitle: Old title\ndraft:\n  - a\n  - b\n\nnext: 1\n---\nBody\n",
        draft="draft:\n  - a\n  - b\n",
    ),
    "empty-frontmatter": Doc("---\n---\nBody\n", title=None, new_title=None, draft=None),
    "no-frontmatter": Doc("# Just a note\n\nBody\n", title=None, new_title=None, draft=None),
    "no-frontmatter-no-newline": Doc("Body only", title=None, new_title=None, draft=None),
    "horizontal-rules": Doc(
        "---\ntitle: Old title\ndraft: true\n---\nIntro\n\n---\n\nMore\n\n---\n"
    ),
    "closing-at-eof": Doc("---\ntitle: Old title\ndraft: true\n---"),
    "body-without-newline": Doc("---\ntitle: Old title\ndraft: true\n---\nLast line"),
    "tabs": Doc("---\ntitle: Old title\ndraft: true\n---\n\tcode\twith tabs\n\t\n"),
    "non-ascii": Doc(
        "---\ntitle: Caf\u00e9 \u65e5\u672c \U0001f642\ndraft: true\nauthor: Zo\u00eb \u738b\n---\n"
        "na\u00efve \u4e2d\u6587 \U0001f389\n",
        title="title: Caf\u00e9 \u65e5\u672c \U0001f642",
    ),
    "dots-closing": Doc("---\ntitle: Old title\ndraft: true\n...\nBody\n"),
    "blank-lines": Doc("---\ntitle: Old title\n\n\ndraft: true\n\ntags: [a]\n\n---\nBody\n"),
    "block-scalar": Doc(
        "---\ntitle: Old title\nsummary: |\n  line one\n    indented\n\n  after blank\n\n"
        "draft: true\n---\nBody\n"
    ),
}


@dataclass(frozen=True)
class Variant:
    newline: str
    encoding: str
    bom: bytes

    def encode(self, text: str, newline: str | None = None) -> bytes:
        return self.bom + text.replace("\n", newline or self.newline).encode(self.encoding)

    def decode(self, raw: bytes) -> str:
        assert raw.startswith(self.bom), "the BOM was lost"
        return raw[len(self.bom) :].decode(self.encoding)


VARIANTS = {
    "lf": Variant("\n", "utf-8", b""),
    "crlf": Variant("\r\n", "utf-8", b""),
    "utf8-bom": Variant("\n", "utf-8", codecs.BOM_UTF8),
    "utf16-crlf": Variant("\r\n", "utf-16-le", codecs.BOM_UTF16_LE),
    "utf16be": Variant("\n", "utf-16-be", codecs.BOM_UTF16_BE),
}

_CLOSING = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)


def _with_field(text: str, line: str) -> str:
    """``text`` with ``line`` added as the last field (a new block if it has none)."""
    if not text.startswith("---\n"):
        return f"---\n{line}\n---\n{text}"
    closing = _CLOSING.search(text, 4)
    assert closing is not None
    return text[: closing.start()] + line + "\n" + text[closing.start() :]


def expect_set_new(doc: Doc) -> str:
    return _with_field(doc.text, "status: draft")


def expect_set_existing(doc: Doc) -> str:
    if doc.title is None or doc.new_title is None:
        return _with_field(doc.text, "title: New title")
    assert doc.text.count(doc.title) == 1
    return doc.text.replace(doc.title, doc.new_title)


def expect_remove(doc: Doc) -> str:
    if doc.draft is None:
        return doc.text
    assert doc.text.count(doc.draft) == 1
    return doc.text.replace(doc.draft, "")


def expect_rename(doc: Doc) -> str:
    if doc.title is None:
        return doc.text
    return doc.text.replace(doc.title, "name" + doc.title.removeprefix("title"))


OPS = {
    "set-new": ("set: {field: status, value: draft}", expect_set_new),
    "set-existing": ("set: {field: title, value: New title}", expect_set_existing),
    "remove": ("remove: {field: draft}", expect_remove),
    "rename": ("rename_field: {from: title, to: name}", expect_rename),
}


@cache
def rules_for(step: str) -> list[CompiledRule]:
    return parse_rules(
        f"rules:\n  - id: op\n    paths: ['**/*.md']\n    do:\n      - {step}\n", "rules.yaml"
    )


def handle(
    root: Path, rules: list[CompiledRule], *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Outcome:
    engine = Engine(root, rules, max_file_bytes=max_file_bytes)
    return engine.handle(Event(EventKind.MODIFIED, "note.md"))


def _fingerprint(path: Path) -> tuple[bytes, int, int]:
    st = path.stat()
    return path.read_bytes(), st.st_mtime_ns, st.st_ino


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", CORPUS)
def test_edit_changes_only_what_was_asked(tmp_path: Path, name: str, variant: str, op: str) -> None:
    doc, var = CORPUS[name], VARIANTS[variant]
    step, expect = OPS[op]
    rules = rules_for(step)
    original = var.encode(doc.text)
    # A file without a single line break has no style to follow: new lines get LF.
    newline = var.newline if "\n" in doc.text else "\n"
    expected = var.encode(expect(doc), newline)
    path = tmp_path / "note.md"
    path.write_bytes(original)
    before = _fingerprint(path)

    outcome = handle(tmp_path, rules)

    assert outcome.failures == ()
    result = path.read_bytes()
    assert result == expected
    if expected == original:
        assert outcome.status is Status.UNCHANGED
        assert _fingerprint(path) == before  # not even rewritten with the same bytes
    else:
        assert outcome.status is Status.WRITTEN
    # What the exact comparison above implies, spelled out:
    text, old_text = var.decode(result), var.decode(original)
    assert text.count("\n") == text.count(newline)  # new lines use the file's newline
    assert text.endswith(newline) == old_text.endswith(newline)
    assert Frontmatter(text).body == Frontmatter(old_text).body  # no second block either

    # A fixpoint: a fresh engine (no memory of the write) plans nothing more.
    settled = _fingerprint(path)
    again = handle(tmp_path, rules)
    assert (again.status, again.failures) == (Status.UNCHANGED, ())
    assert _fingerprint(path) == settled


# -- files Scribe must not touch -----------------------------------------------------

SET_RULES = "set: {field: status, value: draft}"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"---\ntitle: x\n---\n\x00\x01binary", "binary file (contains NUL bytes)"),
        (b"---\ntitle: caf\xe9\n---\n", "not valid UTF-8 text"),
        (codecs.BOM_UTF16_LE + b"\x00\xd8", "not valid utf-16-le text"),  # lone surrogate
    ],
)
def test_files_that_are_not_text_are_skipped_untouched(
    tmp_path: Path, raw: bytes, reason: str
) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(raw)
    before = _fingerprint(path)
    outcome = handle(tmp_path, rules_for(SET_RULES))
    assert outcome.status is Status.SKIPPED
    assert reason in outcome.reason
    assert _fingerprint(path) == before


def test_a_file_over_max_file_bytes_is_skipped_untouched(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(b"---\ntitle: x\n---\n" + b"y" * 200)
    before = _fingerprint(path)
    outcome = handle(tmp_path, rules_for(SET_RULES), max_file_bytes=100)
    assert outcome.status is Status.SKIPPED
    assert "larger than max_file_bytes" in outcome.reason
    assert _fingerprint(path) == before


def test_a_symlink_leading_outside_the_root_is_skipped_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    outside = tmp_path / "elsewhere.md"
    outside.write_bytes(b"---\ntitle: x\n---\n")
    (root / "note.md").symlink_to(outside)
    before = _fingerprint(outside)
    outcome = handle(root, rules_for(SET_RULES))
    assert outcome.status is Status.SKIPPED
    assert "symlink leads outside the repository" in outcome.reason
    assert _fingerprint(outside) == before
    assert os.readlink(root / "note.md") == str(outside)


@pytest.mark.parametrize(
    "step",
    [SET_RULES, "ensure_frontmatter: {defaults: {status: draft}}", "remove: {field: title}"],
)
def test_an_unclosed_block_is_never_given_a_second_one(tmp_path: Path, step: str) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(b"---\ntitle: x\nThe closing line never comes.\n")
    before = _fingerprint(path)
    outcome = handle(tmp_path, rules_for(step))
    assert outcome.status is Status.UNCHANGED
    assert [(f.rule, f.reason) for f in outcome.failures] == [
        ("op", "FrontmatterError: frontmatter opened with '---' is never closed")
    ]
    assert _fingerprint(path) == before


def test_invalid_yaml_in_the_block_fails_the_rule_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(b"---\ntitle: x\ntags: [a, b\n---\nbody\n")
    before = _fingerprint(path)
    outcome = handle(tmp_path, rules_for(SET_RULES))
    assert len(outcome.failures) == 1
    assert outcome.failures[0].reason.startswith(
        "FrontmatterError: invalid YAML in frontmatter (frontmatter line"
    )
    assert _fingerprint(path) == before


def test_an_anchor_other_fields_use_is_left_alone_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(b"---\nbase: &b shared\ncopy: *b\n---\nbody\n")
    before = _fingerprint(path)
    outcome = handle(tmp_path, rules_for("set: {field: base, value: changed}"))
    assert outcome.status is Status.UNCHANGED
    assert len(outcome.failures) == 1
    assert "cannot set 'base'" in outcome.failures[0].reason
    assert _fingerprint(path) == before

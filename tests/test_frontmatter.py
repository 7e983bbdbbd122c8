"""Frontmatter edits: exact results on known documents, and properties on generated ones."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scribe.frontmatter import Frontmatter, FrontmatterError, find_block
from scribe.yaml_scalars import YamlText, render_value

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read(text: str) -> dict[str, Any]:
    return Frontmatter(text).data


# -- exact edits -------------------------------------------------------------------


def test_set_replaces_only_the_value_keeping_a_trailing_comment() -> None:
    text = "---\ntitle: Old  # why\ndraft: true\n---\nbody\n"
    assert (
        Frontmatter(text).set("title", "New") == "---\ntitle: New  # why\ndraft: true\n---\nbody\n"
    )


def test_set_keeps_the_quote_style_of_the_value_it_replaces() -> None:
    text = "---\na: 'single'\nb: \"double\"\n---\n"
    assert Frontmatter(text).set("a", "it's") == "---\na: 'it''s'\nb: \"double\"\n---\n"
    assert Frontmatter(text).set("b", 'say "hi"') == '---\na: \'single\'\nb: "say \\"hi\\""\n---\n'


def test_set_adds_a_new_field_last_with_the_block_newline_and_indentation() -> None:
    text = "---\r\n  a: 1\r\n---\r\nbody\n"
    assert Frontmatter(text).set("b", 2) == "---\r\n  a: 1\r\n  b: 2\r\n---\r\nbody\n"


def test_set_on_a_document_without_frontmatter_creates_one() -> None:
    assert Frontmatter("body\r\n").set("a", "x") == "---\r\na: x\r\n---\r\nbody\r\n"
    assert Frontmatter("").set("a", "x") == "---\na: x\n---\n"


def test_set_replaces_a_block_list_up_to_its_last_item_only() -> None:
    text = "---\ntags:\n  - a\n  - b\n# about next\n\nnext: 1\n---\n"
    assert Frontmatter(text).set("tags", ["x"]) == "---\ntags: [x]\n# about next\n\nnext: 1\n---\n"


def test_set_replaces_a_block_scalar_keeping_the_blank_line_after_it() -> None:
    text = "---\ndesc: |\n  one\n  two\n\nnext: 1\n---\n"
    assert Frontmatter(text).set("desc", "short") == "---\ndesc: short\n\nnext: 1\n---\n"


def test_set_fills_an_empty_value() -> None:
    assert Frontmatter("---\na:\nb: 1\n---\n").set("a", 5) == "---\na: 5\nb: 1\n---\n"
    assert Frontmatter("---\na:   # c\n---\n").set("a", 5) == "---\na: 5   # c\n---\n"


def test_remove_takes_the_whole_entry_and_nothing_around_it() -> None:
    text = "---\na: 1 # c\n\ntags:\n  - x\n  - y\n# kept comment\nb: 2\n---\n"
    assert Frontmatter(text).remove("tags") == "---\na: 1 # c\n\n# kept comment\nb: 2\n---\n"
    assert Frontmatter(text).remove("a", "b") == "---\n\ntags:\n  - x\n  - y\n# kept comment\n---\n"
    assert Frontmatter(text).remove("missing") == text


def test_remove_of_a_block_scalar_keeps_the_blank_line_after_it() -> None:
    text = "---\ndesc: |\n  one\n\nnext: 1\n---\n"
    assert Frontmatter(text).remove("desc") == "---\n\nnext: 1\n---\n"


def test_rename_changes_only_the_key() -> None:
    text = "---\nTags: [a, b]  # c\nx: 1\n---\n"
    assert Frontmatter(text).rename("Tags", "tags") == "---\ntags: [a, b]  # c\nx: 1\n---\n"


def test_rename_refuses_to_overwrite_an_existing_field() -> None:
    with pytest.raises(FrontmatterError, match="'b' already exists"):
        Frontmatter("---\na: 1\nb: 2\n---\n").rename("a", "b")


def test_an_alias_is_edited_on_its_own_line_not_at_its_anchor() -> None:
    text = "---\nbase: &b shared\ncopy: *b\nother: 1\n---\n"
    assert (
        Frontmatter(text).set("copy", "own") == "---\nbase: &b shared\ncopy: own\nother: 1\n---\n"
    )
    assert Frontmatter(text).remove("copy") == "---\nbase: &b shared\nother: 1\n---\n"


def test_an_anchor_used_elsewhere_is_not_changed_or_removed() -> None:
    text = "---\nbase: &b shared\ncopy: *b\n---\n"
    with pytest.raises(FrontmatterError, match="cannot set 'base'"):
        Frontmatter(text).set("base", "changed")
    with pytest.raises(FrontmatterError, match="cannot remove 'base'"):
        Frontmatter(text).remove("base")


def test_a_field_from_a_merge_key_is_present_and_not_silently_kept_on_remove() -> None:
    text = "---\ndefaults: &d {lang: en}\n<<: *d\ntitle: T\n---\n"
    fm = Frontmatter(text)
    assert "lang" in fm
    with pytest.raises(FrontmatterError, match="cannot remove 'lang'"):
        fm.remove("lang")


def test_duplicate_keys_are_not_half_removed() -> None:
    with pytest.raises(FrontmatterError, match="cannot remove 'a'"):
        Frontmatter("---\na: 1\na: 2\n---\n").remove("a")


def test_numbers_with_leading_zeros_read_as_yaml_1_2_decimals() -> None:
    text = "---\nmonth: 08\nday: 09\nn: 010\nhex: 0x1F\n---\n"
    assert read(text) == {"month": 8, "day": 9, "n": 10, "hex": 31}
    assert Frontmatter(text).set("n", 11) == "---\nmonth: 08\nday: 09\nn: 11\nhex: 0x1F\n---\n"
    # A template's "08" (say, now('%m') in August) is not a number to YAML 1.1 readers.
    assert render_value(YamlText("08")) == "'08'"


@pytest.mark.parametrize("value", ["!!int x", "2024-13-45", "!!float abc"])
def test_a_value_its_type_cannot_hold_is_a_frontmatter_error(value: str) -> None:
    with pytest.raises(FrontmatterError, match="invalid value in frontmatter"):
        Frontmatter(f"---\na: {value}\n---\n")


def test_unclosed_block_is_an_error_not_a_missing_block() -> None:
    with pytest.raises(FrontmatterError, match="never closed"):
        Frontmatter("---\ntitle: x\nno closing line\n")


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("---\na: 1\n---\nbody\n", "body\n"),
        ("---\na: 1\n...\nbody\n", "body\n"),
        ("---\na: 1\n---", ""),
        ("---\n---\n", ""),
        ("---\r\na: 1\r\n--- \r\nbody", "body"),
        ("no block\n---\nrule\n", "no block\n---\nrule\n"),
    ],
)
def test_find_block_and_body(text: str, body: str) -> None:
    assert Frontmatter(text).body == body


def test_an_opening_line_with_text_after_it_is_not_frontmatter() -> None:
    assert find_block("--- title\nbody\n") is None


def test_template_text_is_written_as_typed_yaml_but_plain_strings_stay_strings() -> None:
    text = "---\n---\n"
    assert Frontmatter(text).set("d", YamlText("2024-05-01")) == "---\nd: 2024-05-01\n---\n"
    assert Frontmatter(text).set("d", "2024-05-01") == "---\nd: '2024-05-01'\n---\n"
    assert Frontmatter(text).set("n", YamlText("3")) == "---\nn: 3\n---\n"
    # YAML 1.1 readers take `no` for false: quoted even as template text.
    assert Frontmatter(text).set("s", YamlText("no")) == "---\ns: 'no'\n---\n"
    assert read(Frontmatter(text).set("t", YamlText("2024-05-01T12:00:00Z")))["t"] == datetime(
        2024, 5, 1, 12, tzinfo=UTC
    )


# -- properties --------------------------------------------------------------------

TRICKY = [
    "yes", "no", "No", "on", "off", "y", "n", "true", "False", "null", "Null", "~", "",
    "#x", "a #b", "a: b", "a:b", "it's", '"q"', "'q'", " lead", "trail ", " ", "\t",
    "123", "-1", "0x1F", "017", "08", "a?b", "x:y", "1_000", "1e3", ".5", "1:20", ".inf", ".nan", "NaN",
    "2024-01-05", "2024-01-05T10:00:00Z", "2024-1-5", "- x", "-", "--- x", "---", "...",
    "[x", "{x", "x]", "*x", "&x", "!x", "|", ">", "%x", "@x", "`x", "?", "? x", ": x",
    "a,b", "caf\u00e9", "\u65e5\u672c\u8a9e", "\U0001f642", "a\nb", "a\r\nb", "\x85",
    "\u2028", "\ufeff", "\x7f", "\x80", "line\\n", "C:\\new",
]  # fmt: skip

strings = st.one_of(st.sampled_from(TRICKY), st.text(max_size=20))
scalars = st.one_of(
    strings,
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.dates(min_value=date(1000, 1, 1)),
    st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.sampled_from([UTC, None])),
    st.datetimes(min_value=datetime(1000, 1, 1)).map(
        lambda d: d.replace(tzinfo=timezone(timedelta(hours=5, minutes=30)))
    ),
)
values = st.one_of(scalars, st.lists(st.one_of(strings, st.integers(), st.booleans()), max_size=4))
keys = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_-]{0,7}", fullmatch=True),
    st.sampled_from(["no", "123", "a b", "caf\u00e9", "2024-01-05", "x.y", "null"]),
)


def _dump(data: Any, style: str | None, *, flow: bool) -> str:
    return yaml.safe_dump(
        data, default_style=style, default_flow_style=flow, allow_unicode=True, width=10**9
    )


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """A document and its entries as (key, the entry's exact text); comments, blank
    lines, quoting styles, flow and block lists, CRLF vary."""
    entries = draw(st.dictionaries(keys, values, max_size=5))
    chunks: list[tuple[str, str]] = []
    pieces = ["---\n"]
    gaps = st.sampled_from(["", "\n", "# a comment\n", "\n# two\n\n", "  # indented\n"])
    for key, value in entries.items():
        pieces.append(draw(gaps))
        style = draw(st.sampled_from([None, None, "'", '"']))
        dumped = _dump({key: value}, style, flow=False)
        if isinstance(value, list) and draw(st.booleans()):  # [flow, list]
            dumped = _dump({key: 0}, style, flow=False).rpartition(":")[0]
            dumped += ": " + _dump(value, style, flow=True)
        if "\n" not in dumped[:-1] and draw(st.booleans()):
            dumped = dumped[:-1] + "  # trailing\n"
        chunks.append((key, dumped))
        pieces.append(dumped)
    pieces.append(draw(gaps))
    pieces.append(draw(st.sampled_from(["---\n", "...\n", "---"])))
    body = draw(st.sampled_from(["", "body\n", "# Title\n\n---\n\ntext"]))
    text = "".join(pieces) + (body if pieces[-1].endswith("\n") else "")
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
        chunks = [(k, c.replace("\n", "\r\n")) for k, c in chunks]
    return text, chunks


def same(a: Any, b: Any) -> bool:
    """Equal, types included, NaN equal to itself."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def entry_span(text: str, chunks: list[tuple[str, str]], key: str) -> tuple[int, int]:
    """Where ``key``'s entry sits in ``text`` (the chunks appear in order)."""
    at = 0
    for k, chunk in chunks:
        at = text.index(chunk, at)
        if k == key:
            return at, at + len(chunk)
        at += len(chunk)
    raise KeyError(key)


@PROPERTY
@given(documents(), st.data())
def test_set_reads_back_and_leaves_everything_else_byte_identical(
    doc: tuple[str, list[tuple[str, str]]], data: st.DataObject
) -> None:
    text, chunks = doc
    original = read(text)
    existing = [k for k, _ in chunks]
    pick_existing = bool(existing) and data.draw(st.booleans())
    key = data.draw(st.sampled_from(existing)) if pick_existing else data.draw(keys)
    value = data.draw(values)
    result = Frontmatter(text).set(key, value)

    assert same(read(result), {**original, key: value})
    block = find_block(result)
    assert block is not None
    assert result[block.body_start :] == Frontmatter(text).body  # the body is untouched
    if key in existing:
        start, end = entry_span(text, chunks, key)
        assert result.startswith(text[:start])
        assert result.endswith(text[end:])
        changed = result[start : len(result) - (len(text) - end)]
        assert changed.startswith(chunks[existing.index(key)][1].split(":")[0])
        if "# trailing" in text[start:end]:
            assert changed.endswith("  # trailing" + ("\r\n" if "\r\n" in text else "\n"))
    else:
        old = find_block(text)
        assert old is not None
        added = result[old.yaml_end : len(result) - (len(text) - old.yaml_end)]
        assert result == text[: old.yaml_end] + added + text[old.yaml_end :]
        assert added.endswith(old.newline)
        assert added.count("\n") == 1
    # A fixpoint: setting the same value again changes nothing.
    assert Frontmatter(result).set(key, value) == result


@PROPERTY
@given(documents(), st.data())
def test_remove_takes_out_exactly_that_entry(
    doc: tuple[str, list[tuple[str, str]]], data: st.DataObject
) -> None:
    text, chunks = doc
    if not chunks:
        assert Frontmatter(text).remove("anything") == text
        return
    key = data.draw(st.sampled_from([k for k, _ in chunks]))
    result = Frontmatter(text).remove(key)
    start, end = entry_span(text, chunks, key)
    assert result == text[:start] + text[end:]
    assert same(read(result), {k: v for k, v in read(text).items() if k != key})
    assert Frontmatter(result).remove(key) == result


@PROPERTY
@given(documents(), keys, st.data())
def test_rename_keeps_the_value_and_every_other_byte(
    doc: tuple[str, list[tuple[str, str]]], new: str, data: st.DataObject
) -> None:
    text, chunks = doc
    original = read(text)
    if not chunks or new in original:
        return
    old = data.draw(st.sampled_from([k for k, _ in chunks]))
    result = Frontmatter(text).rename(old, new)
    assert same(read(result), {(new if k == old else k): v for k, v in original.items()})
    start, end = entry_span(text, chunks, old)
    assert result.startswith(text[:start])
    assert result.endswith(text[end:])
    changed = result[start : len(result) - (len(text) - end)]
    assert changed.partition(":")[2] == text[start:end].partition(":")[2]


@PROPERTY
@given(strings)
def test_render_value_of_any_string_reads_back_as_that_string(s: str) -> None:
    rendered = render_value(s)
    assert "\n" not in rendered
    assert "\r" not in rendered
    assert yaml.safe_load(f"k: {rendered}") == {"k": s}  # YAML 1.1 (PyYAML, many tools)
    assert read(f"---\nk: {rendered}\n---\n") == {"k": s}  # YAML 1.2, as Scribe reads
    listed = render_value([s, s])
    assert yaml.safe_load(f"k: {listed}") == {"k": [s, s]}


@PROPERTY
@given(strings)
def test_a_string_key_reads_back_as_that_key(key: str) -> None:
    assert read(Frontmatter("---\n---\n").set(key, 1)) == {key: 1}
    assert read(Frontmatter("---\nold: 1\n---\n").rename("old", key)) == {key: 1}


@PROPERTY
@given(scalars)
def test_render_value_of_scalars_reads_back_typed(value: Any) -> None:
    assert same(read(f"---\nk: {render_value(value)}\n---\n")["k"], value)


def test_text_that_looks_like_an_impossible_date_is_quoted_not_a_crash() -> None:
    assert render_value("2026-13-01") == "'2026-13-01'"
    assert render_value(YamlText("2026-13-01")) == "'2026-13-01'"
    assert render_value(YamlText("2026-11-24T10:00:00.5Z")) == "2026-11-24T10:00:00.5Z"
    assert render_value("2026-11-24") == "'2026-11-24'"  # plain text must read back as text

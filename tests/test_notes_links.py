"""Finding, resolving and rewriting links, on real note text."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from scribe.notes.links import (
    Link,
    Resolution,
    find_links,
    link_path,
    note_title,
    resolve_link,
    rewrite_links,
    title_key,
)

# -- finding -------------------------------------------------------------------------


def test_every_form_of_wikilink_and_embed() -> None:
    text = "[[A]] [[B#Intro]] [[C|see c]] [[D#Part two|the part]] ![[E]] ![[F.png|200]]\n"
    links = find_links(text)
    assert [(link.kind, link.target, link.heading, link.alias) for link in links] == [
        ("wiki", "A", None, None),
        ("wiki", "B", "Intro", None),
        ("wiki", "C", None, "see c"),
        ("wiki", "D", "Part two", "the part"),
        ("embed", "E", None, None),
        ("embed", "F.png", None, "200"),
    ]
    assert [text[link.start : link.end] for link in links] == [
        "[[A]]",
        "[[B#Intro]]",
        "[[C|see c]]",
        "[[D#Part two|the part]]",
        "![[E]]",
        "![[F.png|200]]",
    ]


def test_a_wikilink_in_a_table_row_escapes_its_bar() -> None:
    (link,) = find_links("| a | [[Note\\|alias]] |\n")
    assert (link.target, link.alias) == ("Note", "alias")


def test_same_note_anchors_and_empty_links_are_skipped() -> None:
    assert find_links("[[#Heading]] [[]] [[ |x]] [a](#top) [b]()") == []


def test_markdown_links_images_and_definitions() -> None:
    text = (
        "[the text](notes/a.md) [h](b.md#Some%20Heading) [sp](<My Note.md>) [enc](My%20Note.md)\n"
        '![alt](img/pic.png "title") [esc](a\\(1\\).md)\n\n[ref]: ../up.md\n'
    )
    links = find_links(text)
    assert [(link.kind, link.target, link.heading, link.alias) for link in links] == [
        ("markdown", "notes/a.md", None, "the text"),
        ("markdown", "b.md", "Some Heading", "h"),
        ("markdown", "My Note.md", None, "sp"),
        ("markdown", "My Note.md", None, "enc"),
        ("markdown", "img/pic.png", None, "alt"),
        ("markdown", "a(1).md", None, "esc"),
        ("markdown", "../up.md", None, None),
    ]
    assert text[links[4].start : links[4].end] == '![alt](img/pic.png "title")'
    assert text[links[6].start : links[6].end] == "[ref]: ../up.md"


def test_external_links_mail_and_network_paths_are_not_links_between_notes() -> None:
    text = "[a](https://x.org/a.md) [b](mailto:me@x.org) [c](//host/a.md) <https://x.org> [d](ftp:x)\n[r]: https://x.org\n"
    assert find_links(text) == []


def test_links_inside_code_are_left_out() -> None:
    text = (
        "[[Real]]\n\n```\n[[In Fence]]\n```\n\n~~~\n[x](fence.md)\n~~~\n\n"
        "    [[Indented]]\n\nand `[[Inline]]` and ``[y](inline.md)`` and [[Real Too]]\n"
    )
    assert [link.target for link in find_links(text)] == ["Real", "Real Too"]


def test_wikilinks_in_the_frontmatter_count_markdown_links_there_do_not() -> None:
    text = '---\nup: "[[Parent]]"\nsee: "[x](x.md)"\n---\n[[Body]]\n'
    assert [(link.target, link.line) for link in find_links(text)] == [("Parent", 2), ("Body", 5)]


def test_line_numbers_are_one_based_with_lf_and_crlf() -> None:
    for newline in ("\n", "\r\n"):
        text = newline.join(["[[One]]", "", "text [[Three]]", "[a](four.md) [[Four]]"])
        assert [(link.target, link.line) for link in find_links(text)] == [
            ("One", 1),
            ("Three", 3),
            ("four.md", 4),
            ("Four", 4),
        ]


def test_an_escaped_bracket_starts_no_link() -> None:
    assert find_links(r"\[[Not]] and \[a](b.md)") == []


def test_unicode_titles_and_paths() -> None:
    text = "[[Café Crème]] [x](notes/%C3%A9t%C3%A9.md) [[日本語のノート]]"
    assert [link.target for link in find_links(text)] == [
        "Café Crème",
        "notes/été.md",
        "日本語のノート",
    ]


# -- resolving -----------------------------------------------------------------------

NOTES = (
    "index.md",
    "notes/Machine Learning.md",
    "notes/Old Title.md",
    "notes/sub/deep.md",
    "projects/Café.md",
    "a/Dup.md",
    "b/dup.md",
    "img/diagram.png",
)
ALIASES = {"ml": ["notes/Machine Learning.md"], "both": ["a/Dup.md", "index.md"]}


def named(title: str) -> Sequence[str]:
    key = title_key(title)
    stems = [p for p in NOTES if p.endswith(".md") and title_key(note_title(p)) == key]
    if stems:
        return stems
    aliases = [p for alias, paths in ALIASES.items() if title_key(alias) == key for p in paths]
    return aliases or [p for p in NOTES if title_key(p.rsplit("/", 1)[-1]) == key]


def resolve(text: str, source: str = "notes/here.md") -> Resolution:
    (link,) = find_links(text)
    return resolve_link(link, source, exists=NOTES.__contains__, named=named)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("[[Machine Learning]]", "notes/Machine Learning.md"),
        ("[[machine learning]]", "notes/Machine Learning.md"),
        ("[[MACHINE LEARNING#Intro|x]]", "notes/Machine Learning.md"),
        ("[[Machine Learning.md]]", "notes/Machine Learning.md"),
        ("[[ml]]", "notes/Machine Learning.md"),
        ("[[Cafe\u0301]]", "projects/Café.md"),  # the accent typed as two characters
        ("[[café]]", "projects/Café.md"),
        ("![[diagram.png]]", "img/diagram.png"),
        ("[[notes/sub/deep]]", "notes/sub/deep.md"),
        ("[[notes/sub/deep.md]]", "notes/sub/deep.md"),
        ("[[/notes/sub/deep]]", "notes/sub/deep.md"),
        ("[[./sub/deep]]", "notes/sub/deep.md"),
        ("[[../index]]", "index.md"),
        ("[d](sub/deep.md)", "notes/sub/deep.md"),
        ("[d](./sub/deep.md#h)", "notes/sub/deep.md"),
        ("[d](../index.md)", "index.md"),
        ("[d](/index.md)", "index.md"),
        ("[d](Old%20Title.md)", "notes/Old Title.md"),
        ("[d](<Old Title>)", "notes/Old Title.md"),
        ("![d](../img/diagram.png)", "img/diagram.png"),
    ],
)
def test_links_that_resolve(text: str, path: str) -> None:
    assert resolve(text) == Resolution(path)


@pytest.mark.parametrize(
    "text",
    [
        "[[Nothing]]",
        "[[sub/deep]]",
        "[d](deep.md)",
        "[d](../../outside.md)",
        "[[../../x]]",
        "[[both x]]",
    ],
)
def test_links_that_are_broken(text: str) -> None:
    result = resolve(text)
    assert result.broken
    assert not result.ambiguous
    assert result.path is None


def test_two_notes_with_one_stem_make_the_title_ambiguous() -> None:
    result = resolve("[[DUP]]")
    assert result.ambiguous
    assert not result.broken
    assert result.path is None
    assert result.candidates == ("a/Dup.md", "b/dup.md")


def test_an_alias_shared_by_two_notes_is_ambiguous_too() -> None:
    assert resolve("[[both]]").candidates == ("a/Dup.md", "index.md")


def test_a_folder_is_a_markdown_link_target_only_when_is_dir_says_so() -> None:
    (link,) = find_links("[all notes](sub/)")
    assert link_path(link, "notes/here.md") == "notes/sub"
    found = resolve_link(
        link,
        "notes/here.md",
        exists=NOTES.__contains__,
        named=named,
        is_dir={"notes/sub"}.__contains__,
    )
    assert found == Resolution("notes/sub")
    assert resolve_link(link, "notes/here.md", exists=NOTES.__contains__, named=named).broken


# -- rewriting -----------------------------------------------------------------------

RENAME = {"notes/Old Title.md": "notes/old-title.md"}


def test_wikilinks_get_the_new_title_keeping_heading_alias_and_embed() -> None:
    text = "[[Old Title]] [[old title#Part|the part]] ![[Old Title]] [[Old Title.md]] [[Old Title#h]]\n"
    assert rewrite_links(text, RENAME, source_path="index.md") == (
        "[[old-title]] [[old-title#Part|the part]] ![[old-title]] [[old-title.md]] [[old-title#h]]\n"
    )


def test_a_wikilink_written_with_a_folder_gets_the_new_path() -> None:
    text = "[[notes/Old Title]] [[notes/Old Title.md|x]] [[/notes/Old Title]] [[./Old Title]]"
    renamed = rewrite_links(text, RENAME, source_path="notes/src.md")
    assert (
        renamed
        == "[[notes/old-title]] [[notes/old-title.md|x]] [[/notes/old-title]] [[./old-title]]"
    )


def test_a_wikilink_in_a_table_keeps_its_escaped_bar() -> None:
    text = "| [[Old Title\\|x]] | y |\n"
    assert rewrite_links(text, RENAME, source_path="index.md") == "| [[old-title\\|x]] | y |\n"


def test_markdown_links_are_recomputed_relative_to_the_source_folder() -> None:
    renames = {"notes/Old Title.md": "archive/2024/old-title.md"}
    text = "[a](notes/Old%20Title.md#Part) [b](<notes/Old Title.md>) [c](/notes/Old%20Title.md)\n"
    assert rewrite_links(text, renames, source_path="index.md") == (
        "[a](archive/2024/old-title.md#Part) [b](<archive/2024/old-title.md>) "
        "[c](/archive/2024/old-title.md)\n"
    )
    inside = "[a](../notes/Old%20Title.md) [b](./Old%20Title.md)"
    assert rewrite_links("[a](Old%20Title.md)", renames, source_path="notes/x.md") == (
        "[a](../archive/2024/old-title.md)"
    )
    assert rewrite_links(inside, renames, source_path="projects/x.md") == (
        "[a](../archive/2024/old-title.md) [b](./Old%20Title.md)"
    )


def test_spaces_in_a_new_name_are_encoded_unless_the_link_uses_angle_brackets() -> None:
    renames = {"notes/a.md": "notes/A new (draft).md"}
    text = "[x](a.md) [y](<a.md>) [z](a)"
    assert rewrite_links(text, renames, source_path="notes/i.md") == (
        "[x](A%20new%20%28draft%29.md) [y](<A new (draft).md>) [z](A%20new%20%28draft%29)"
    )


def test_percent_encoded_non_ascii_stays_encoded() -> None:
    renames = {"notes/été.md": "notes/hiver été.md"}
    assert rewrite_links("[x](%C3%A9t%C3%A9.md)", renames, source_path="notes/i.md") == (
        "[x](hiver%20%C3%A9t%C3%A9.md)"
    )
    assert rewrite_links("[x](été.md)", renames, source_path="notes/i.md") == "[x](hiver%20été.md)"


def test_links_in_code_and_other_links_stay_byte_for_byte() -> None:
    text = (
        "Keep [[Other]] and [o](other.md) and `[[Old Title]]` and\r\n```\r\n[[Old Title]]\r\n```\r\n"
        "but [[Old Title]]\r\n"
    )
    assert rewrite_links(text, RENAME, source_path="notes/src.md") == text.replace(
        "but [[Old Title]]", "but [[old-title]]"
    )


def test_nothing_to_rename_returns_the_same_text() -> None:
    text = "[[Old Title]] [a](b.md)"
    assert rewrite_links(text, {}, source_path="x.md") is text
    assert rewrite_links(text, {"other.md": "new.md"}, source_path="x.md") is text


def test_a_moved_note_keeps_its_relative_links_pointing_at_the_same_files() -> None:
    renames = {"notes/src.md": "archive/src.md"}
    text = "[a](sub/deep.md#h) [b](../index.md) [c](/index.md) [[./sub/deep]] [[Title]] [d](https://x.org)"
    assert rewrite_links(text, renames, source_path="notes/src.md") == (
        "[a](../notes/sub/deep.md#h) [b](../index.md) [c](/index.md) [[../notes/sub/deep]] "
        "[[Title]] [d](https://x.org)"
    )


def test_a_note_renamed_in_its_folder_leaves_its_relative_links_alone() -> None:
    text = "[a](sub/deep.md) [b](./x.md)"
    renames = {"notes/src.md": "notes/renamed.md"}
    assert rewrite_links(text, renames, source_path="notes/src.md") is text


def test_a_title_two_renamed_notes_share_is_not_guessed() -> None:
    renames = {"a/Dup.md": "a/dup-a.md", "b/Dup.md": "b/dup-b.md"}
    text = "[[Dup]] [[a/Dup]] [x](b/Dup.md)"
    assert rewrite_links(text, renames, source_path="index.md") == (
        "[[Dup]] [[a/dup-a]] [x](b/dup-b.md)"
    )


def test_a_resolver_that_knows_every_note_keeps_ambiguous_titles_alone() -> None:
    def resolver(link: Link) -> str | None:
        return resolve_link(link, "index.md", exists=NOTES.__contains__, named=named).path

    renames = {"a/Dup.md": "a/dup-a.md", "notes/Old Title.md": "notes/old-title.md"}
    text = "[[Dup]] [[a/Dup]] [[Old Title]]"
    assert rewrite_links(text, renames, source_path="index.md", resolve=resolver) == (
        "[[Dup]] [[a/dup-a]] [[old-title]]"
    )


def test_an_attachment_rename_updates_embeds_by_name() -> None:
    renames = {"img/diagram.png": "img/architecture.png"}
    text = "![[diagram.png]] ![[img/diagram.png|300]] ![d](../img/diagram.png)"
    assert rewrite_links(text, renames, source_path="notes/x.md") == (
        "![[architecture.png]] ![[img/architecture.png|300]] ![d](../img/architecture.png)"
    )

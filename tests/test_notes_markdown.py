"""Where nothing may be linked or rewritten: exact spans on real markdown, and
properties on generated text."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scribe.notes.markdown import (
    _blocks_by_line,
    _fences,
    code_and_protected_spans,
    code_spans,
    protected_spans,
)

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def protected(text: str) -> list[str]:
    return [text[start:end] for start, end in protected_spans(text)]


def code(text: str) -> list[str]:
    return [text[start:end] for start, end in code_spans(text)]


# -- frontmatter ---------------------------------------------------------------------


def test_the_frontmatter_block_is_protected_whole() -> None:
    text = "---\ntitle: Machine Learning\n---\nMachine Learning is fun.\n"
    assert protected(text) == ["---\ntitle: Machine Learning\n---\n"]
    assert code(text) == []


def test_frontmatter_with_crlf_is_protected_up_to_its_closing_line() -> None:
    text = "---\r\ntitle: X\r\n---\r\nbody `x`\r\n"
    assert protected(text) == ["---\r\ntitle: X\r\n---\r\n", "`x`"]


def test_a_frontmatter_that_is_never_closed_protects_the_whole_document() -> None:
    text = "---\ntitle: Machine Learning\nMachine Learning\n"
    assert protected_spans(text) == [(0, len(text))]


def test_invalid_yaml_in_a_closed_block_is_still_frontmatter() -> None:
    text = "---\ntitle: [unclosed\n---\nbody\n"
    assert protected(text) == ["---\ntitle: [unclosed\n---\n"]


def test_fences_inside_the_frontmatter_are_not_code() -> None:
    text = "---\nnote: ```\n---\nbody and `code`\n"
    assert code(text) == ["`code`"]


# -- code blocks ---------------------------------------------------------------------


def test_backtick_and_tilde_fences_are_code_through_their_closing_line() -> None:
    text = "a\n```python\nx = 1\n```\nb\n~~~\ny\n~~~\nc\n"
    assert code(text) == ["```python\nx = 1\n```\n", "~~~\ny\n~~~\n"]


def test_a_longer_fence_is_closed_only_by_a_fence_at_least_as_long() -> None:
    text = "````md\n```\ninner\n```\n````\nafter\n"
    assert code(text) == ["````md\n```\ninner\n```\n````\n"]


def test_a_tilde_fence_is_not_closed_by_backticks() -> None:
    text = "~~~\n```\nstill code\n~~~\nafter\n"
    assert code(text) == ["~~~\n```\nstill code\n~~~\n"]


def test_an_unclosed_fence_runs_to_the_end() -> None:
    text = "intro\n```\nnever closed\n\nMachine Learning\n"
    assert code(text) == ["```\nnever closed\n\nMachine Learning\n"]


def test_backticks_with_a_backtick_in_the_info_string_are_not_a_fence() -> None:
    text = "``` a`b\nplain text\n"
    assert code(text) == []


def test_a_fence_indented_four_spaces_is_indented_code_not_a_fence() -> None:
    text = "para\n\n    ```\n    x\n\nafter ```\n"
    assert code(text) == ["    ```\n    x\n"]


def test_fences_with_crlf_line_endings() -> None:
    text = "a\r\n```\r\ncode\r\n```\r\nb\r\n"
    assert code(text) == ["```\r\ncode\r\n```\r\n"]


def test_indented_code_after_a_blank_line_including_blank_lines_inside_it() -> None:
    text = "para\n\n    code one\n\n    code two\n\nafter\n"
    assert code(text) == ["    code one\n\n    code two\n"]


def test_indented_code_with_a_tab_and_at_the_start_of_the_body() -> None:
    assert code("\tcode\n\ntext\n") == ["\tcode\n"]
    assert code("---\na: 1\n---\n    code\ntext\n") == ["    code\n"]


def test_an_indented_line_continuing_a_paragraph_is_not_code() -> None:
    assert code("para\n    continued\n") == []


def test_indented_paragraphs_inside_a_list_are_not_code() -> None:
    text = "- item\n\n    more of the item\n\n1. next\n\n    also the item\n"
    assert code(text) == []


def test_a_paragraph_at_the_margin_ends_the_list() -> None:
    text = "- item\n\nparagraph\n\n    code\n"
    assert code(text) == ["    code\n"]


def test_a_thematic_break_does_not_start_a_list() -> None:
    assert code("* * *\n\n    code\n") == ["    code\n"]


def test_a_fence_inside_a_list_item_may_be_indented() -> None:
    text = "- item\n\n      ```\n      [[x]]\n      ```\n"
    assert code(text) == ["      ```\n      [[x]]\n      ```\n"]


# -- inline code ---------------------------------------------------------------------


def test_inline_code_spans_pair_backtick_runs_of_equal_length() -> None:
    text = "a `one` b ``two ` still`` c ```x``` d"
    assert code(text) == ["`one`", "``two ` still``", "```x```"]


def test_a_backtick_run_without_its_match_is_literal() -> None:
    text = "a `` b ` c"
    assert code(text) == []


def test_inline_code_does_not_cross_a_blank_line() -> None:
    text = "a `open\n\nclose` b\n"
    assert code(text) == []
    assert code("a `one\nline` b\n") == ["`one\nline`"]
    assert code("a `open\r\n\r\nclose` b\r\n") == []


def test_an_escaped_backtick_opens_nothing() -> None:
    text = r"a \`not code\` and `code`"
    assert code(text) == ["`code`"]


# -- markup --------------------------------------------------------------------------


def test_html_comments_tags_and_autolinks_are_protected() -> None:
    text = "a <!-- one\ntwo --> b <span class=x>c</span> <https://x.org/Machine> <me@x.org>"
    assert protected(text) == [
        "<!-- one\ntwo -->",
        "<span class=x>",
        "</span>",
        "<https://x.org/Machine>",
        "<me@x.org>",
    ]
    assert code(text) == []


def test_an_unclosed_html_comment_runs_to_the_end() -> None:
    text = "a <!-- never closed\n\nMachine Learning `x`\n"
    assert protected(text) == ["<!-- never closed\n\nMachine Learning `x`\n"]


def test_a_comparison_is_not_a_tag() -> None:
    assert protected("if a < b and c > d") == []


def test_bare_urls_are_protected_without_trailing_punctuation() -> None:
    text = "See https://x.org/Machine_Learning. Also (http://x.org/a_(b)) and https://x.org/q?a=1!"
    assert protected(text) == [
        "https://x.org/Machine_Learning",
        "http://x.org/a_(b)",
        "https://x.org/q?a=1",
    ]


def test_a_scheme_glued_to_a_word_is_not_a_url() -> None:
    assert protected("xhttps://x.org") == []


def test_wikilinks_embeds_and_markdown_links_are_protected_whole() -> None:
    text = (
        "[[Machine Learning]] ![[Diagram.png]] [[A#h|alias]] "
        '[the [nested] text](notes/a.md#h "title") ![alt](img/a.png) [x](<my note.md>)'
    )
    assert protected(text) == [
        "[[Machine Learning]]",
        "[[Diagram.png]]",
        "[[A#h|alias]]",
        '[the [nested] text](notes/a.md#h "title")',
        "[alt](img/a.png)",
        "[x](<my note.md>)",
    ]


def test_link_text_may_span_lines_but_not_paragraphs() -> None:
    assert protected("[one\ntwo](a.md)") == ["[one\ntwo](a.md)"]
    assert protected("[one\n\ntwo](a.md)") == []


def test_reference_links_and_definitions() -> None:
    text = '[text][ref] and [ref] and [undefined] and [^1]\n\n[ref]: https://x.org "T"\n[^1]: a footnote\n'
    assert protected(text) == ["[text][ref]", "[ref]", '[ref]: https://x.org "T"']


def test_reference_definitions_inside_code_define_nothing() -> None:
    text = "[ref] here\n\n```\n[ref]: https://x.org\n```\n"
    assert protected(text) == ["```\n[ref]: https://x.org\n```\n"]


def test_code_inside_brackets_that_are_not_a_link_is_still_code() -> None:
    assert code("[see `x` here]") == ["`x`"]


def test_code_and_protected_spans_agree_with_the_separate_functions() -> None:
    text = "---\na: 1\n---\n`c` [[w]] <!-- x -->\n\n    code\n"
    assert code_and_protected_spans(text) == (code_spans(text), protected_spans(text))


# -- properties ----------------------------------------------------------------------

PIECES = [*"ab `~[]()<>!-:#|\\\n\t\r", "```", "[[", "]]", "<!--", "-->", "http://", "    ", "---\n",
          "- ", "\n\n", "é"]  # fmt: skip


@PROPERTY
@given(st.lists(st.sampled_from(PIECES), max_size=60).map("".join))
def test_spans_are_sorted_disjoint_within_the_text_and_code_is_protected(text: str) -> None:
    code_part, protected_part = code_and_protected_spans(text)
    for spans in (code_part, protected_part):
        assert all(0 <= start < end <= len(text) for start, end in spans)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
    for start, end in code_part:
        assert any(p <= start and end <= q for p, q in protected_part)


FENCED = ["```", "~~~", "````", "``` x`y", "~~~ `", "   ```", "text", "- item", "", "\r"]


@PROPERTY
@given(st.lists(st.sampled_from(FENCED), max_size=20).map("\n".join))
def test_the_fence_regex_finds_what_the_line_scan_finds(text: str) -> None:
    """Without indented lines, fences are found by a regex; it must agree with the
    line-by-line scan used otherwise."""
    assert _fences(text, 0) == _blocks_by_line(text, 0)

"""Linking mentions of note titles: exact results on real text, idempotence on
generated text, and a whole megabyte as a hang guard."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scribe.notes.linker import Linker
from scribe.notes.links import find_links

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TITLES = ["Machine Learning", "Machine", "Python", "Café", "Neural Networks", "C++", "日本語"]


@pytest.fixture(scope="module")
def linker() -> Linker:
    return Linker(TITLES)


def test_a_mention_becomes_a_link_and_a_differently_cased_one_an_alias(linker: Linker) -> None:
    assert linker.link("I like Python.") == "I like [[Python]]."
    assert linker.link("python is fine") == "[[Python|python]] is fine"


def test_case_sensitive_links_only_exact_mentions() -> None:
    linker = Linker(["Python"], case_sensitive=True)
    assert linker.link("python and Python") == "python and [[Python]]"


def test_the_longest_title_wins_at_a_position(linker: Linker) -> None:
    assert linker.link("Machine Learning beats a Machine.") == (
        "[[Machine Learning]] beats a [[Machine]]."
    )


def test_whole_words_only_with_unicode_letters_and_digits(linker: Linker) -> None:
    text = "Pythonic Python3 MyPython Cafés ÉCafé 日本語です Café"
    assert linker.link(text) == "Pythonic Python3 MyPython Cafés ÉCafé 日本語です [[Café]]"


def test_punctuation_around_a_mention_is_a_boundary(linker: Linker) -> None:
    text = "(Python), 'Machine'; Neural Networks' weights"
    assert linker.link(text, first_only=False) == (
        "([[Python]]), '[[Machine]]'; [[Neural Networks]]' weights"
    )


def test_mentions_glued_into_names_paths_tags_and_handles_are_not_links(linker: Linker) -> None:
    text = "Python.org python-dev src/python py_python python_x #Python @Python state-of-Machine"
    assert linker.link(text, first_only=False) == text


def test_emphasis_around_a_mention_does_not_stop_it(linker: Linker) -> None:
    assert linker.link("_Python_ and **Machine**", first_only=False) == (
        "_[[Python]]_ and **[[Machine]]**"
    )


def test_a_title_of_symbols_and_letters_is_matched_as_written(linker: Linker) -> None:
    assert linker.link("I write C++ daily.") == "I write [[C++]] daily."


def test_nothing_protected_is_touched(linker: Linker) -> None:
    text = (
        "---\ntitle: Python\ntags: [Machine]\n---\n"
        "`Python` and\n\n```\nPython\n```\n\n    Python indented\n\n"
        "[[Machine Learning]] [Python docs](https://python.org/Python) https://x.org/Python "
        "<!-- Python --> <span title=Python> [Café]: https://cafe.org\n"
        "and finally Python\n"
    )
    assert linker.link(text) == text.replace("finally Python", "finally [[Python]]")


def test_a_note_whose_frontmatter_is_never_closed_is_left_alone(linker: Linker) -> None:
    text = "---\ntitle: Python\nPython and Machine\n"
    assert linker.link(text) == text


def test_a_reference_definition_protects_its_label_where_it_is_used() -> None:
    text = "See [Python] here.\n\n[Python]: https://python.org\n"
    assert Linker(["Python"]).link(text) == text


def test_the_notes_own_title_is_never_linked(linker: Linker) -> None:
    text = "Machine Learning is about Python."
    assert (
        linker.link(text, exclude=["machine learning"]) == "Machine Learning is about [[Python]]."
    )


def test_an_excluded_long_title_does_not_leave_its_shorter_part_to_be_linked(
    linker: Linker,
) -> None:
    assert linker.link("Machine Learning", exclude=["Machine Learning"]) == "Machine Learning"


def test_first_only_links_the_first_mention_of_each_title(linker: Linker) -> None:
    text = "Python here, Python there, Machine and Machine."
    assert linker.link(text) == "[[Python]] here, Python there, [[Machine]] and Machine."
    assert linker.link(text, first_only=False) == (
        "[[Python]] here, [[Python]] there, [[Machine]] and [[Machine]]."
    )


def test_first_only_adds_no_link_to_a_title_the_text_links_already(linker: Linker) -> None:
    text = "See [[python|the language]] and ![[notes/Machine]]. Python, Machine, Café.\n[c](../Café.md)"
    assert linker.link(text) == text


def test_mentions_next_to_brackets_or_after_a_bang_are_left_alone(linker: Linker) -> None:
    text = "[Python and Machine] !Python"
    assert linker.link(text, first_only=False) == text


def test_an_alias_in_a_table_row_escapes_its_bar(linker: Linker) -> None:
    text = "| lang | use |\n| --- | --- |\n| python | scripts |\npython outside\n"
    assert linker.link(text, first_only=False) == (
        "| lang | use |\n| --- | --- |\n| [[Python\\|python]] | scripts |\n"
        "[[Python|python]] outside\n"
    )


def test_crlf_text_keeps_its_line_endings(linker: Linker) -> None:
    text = "---\r\ntitle: Python\r\n---\r\nPython\r\n```\r\nPython\r\n```\r\n"
    assert linker.link(text) == text.replace("---\r\nPython", "---\r\n[[Python]]")


def test_short_unlinkable_and_duplicated_titles_are_left_out() -> None:
    linker = Linker(["AI", "a|b", "x#y", "[x]", "---", "Dup", "dup", "Only"], min_length=2)
    assert len(linker) == 2
    assert linker.link("AI, Dup, dup, Only", first_only=False) == "[[AI]], Dup, dup, [[Only]]"
    assert Linker(["AI"]).link("AI") == "AI"  # min_length 3


def test_titles_nested_in_each_other_hundreds_deep_still_compile() -> None:
    titles = ["x" * n for n in range(3, 600)]
    assert len(Linker(titles)) == 198  # 3..200 characters
    assert Linker(titles).link("xxxx yyy") == "[[xxxx]] yyy"


def test_no_titles_links_nothing() -> None:
    assert Linker([]).link("anything at all") == "anything at all"


def test_text_whose_lowercase_is_longer_still_links_in_the_right_place() -> None:
    text = "İstanbul and Python and python"  # "İ".lower() is two characters
    assert Linker(["Python"]).link(text, first_only=False) == (
        "İstanbul and [[Python]] and [[Python|python]]"
    )


def test_linking_twice_changes_nothing_more(linker: Linker) -> None:
    text = "Machine Learning, machine learning, Machine, PYTHON, C++ and Café.\n| python |\n"
    for first_only in (True, False):
        once = linker.link(text, first_only=first_only)
        assert once != text
        assert linker.link(once, first_only=first_only) == once


@PROPERTY
@given(
    st.lists(
        st.sampled_from(
            [*TITLES, "machine", "PYTHON", "learning", " ", " ", "\n", "\n\n", "`", "[", "]", "!",
             "|", "-", ".", "_", "#", "http://", "```\n", "<!--", "-->", "[[", "]]", "(", ")", "é"]
        ),
        max_size=40,
    ).map("".join),
    st.booleans(),
)  # fmt: skip
def test_linking_is_idempotent_on_generated_text(text: str, first_only: bool) -> None:
    linker = Linker(TITLES)
    once = linker.link(text, first_only=first_only)
    assert linker.link(once, first_only=first_only) == once


@PROPERTY
@given(
    st.lists(st.sampled_from([*TITLES, "word", " ", "\n", ", ", "`x`"]), max_size=30).map("".join)
)
def test_linking_only_inserts_brackets_and_aliases(text: str) -> None:
    once = Linker(TITLES).link(text, first_only=False)
    stripped = once
    for link in reversed(find_links(once)):
        shown = link.alias if link.alias is not None else link.target
        stripped = stripped[: link.start] + shown + stripped[link.end :]
    assert stripped == text


@pytest.mark.timeout(60)
def test_a_megabyte_and_five_thousand_titles() -> None:
    rng = random.Random(7)
    words = [f"w{n}x" for n in range(20_000)]
    titles = [" ".join(rng.sample(words, rng.randint(1, 3))).title() for _ in range(5_000)]
    parts: list[str] = []
    size = 0
    while size < 1_000_000:
        parts.append(rng.choice(titles) if rng.random() < 0.02 else rng.choice(words))
        size += len(parts[-1]) + 1
    text = " ".join(parts)
    linker = Linker(titles)
    linked = linker.link(text)
    assert 0 < len(find_links(linked)) <= len(titles)
    assert linker.link(linked) == linked

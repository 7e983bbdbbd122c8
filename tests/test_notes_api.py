"""The notes library's public surface is pinned: the knowledge actions import it."""

from __future__ import annotations

import scribe.notes


def test_the_public_names_are_exactly_these() -> None:
    assert scribe.notes.__all__ == [
        "Link",
        "LinkKind",
        "Linker",
        "NoteIndex",
        "Resolution",
        "code_and_protected_spans",
        "code_spans",
        "find_links",
        "link_path",
        "note_title",
        "protected_spans",
        "resolve_link",
        "rewrite_links",
        "title_key",
    ]
    assert all(hasattr(scribe.notes, name) for name in scribe.notes.__all__)

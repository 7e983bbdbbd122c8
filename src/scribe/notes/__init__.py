"""The notes library: the pure, fast core of the knowledge actions.

* ``markdown``: where in a note nothing may be linked or rewritten (code,
  frontmatter, existing links, URLs...);
* ``links``: finding ``[[wikilinks]]``, embeds and markdown links, resolving
  them, rewriting them after a rename;
* ``linker``: turning mentions of known titles into wikilinks;
* ``index``: the repository's notes, the only part that reads the disk.
"""

from __future__ import annotations

from scribe.notes.index import NoteIndex
from scribe.notes.linker import Linker
from scribe.notes.links import (
    Link,
    LinkKind,
    Resolution,
    find_links,
    link_path,
    note_title,
    resolve_link,
    rewrite_links,
    title_key,
)
from scribe.notes.markdown import code_and_protected_spans, code_spans, protected_spans

__all__ = [
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

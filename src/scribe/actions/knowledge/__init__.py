"""The knowledge actions: views and checks over a repository's notes.

* ``generate_index`` writes a markdown index of notes (a backlog grouped by status,
  a tag page), whole, whenever one of them changes;
* ``cascade_status`` marks a parent note done once all its children are;
* ``create_from_template`` creates a note from a template file when a pattern appears;
* ``validate_frontmatter`` checks a note's frontmatter against a JSON Schema file.

All four are effect actions: they read the file being handled and, through
``ctx.notes``, the other notes, and return the writes and findings the engine
then carries out. Each is deterministic, so running it again over unchanged notes
asks for nothing new (a write that changes nothing is skipped).
"""

from __future__ import annotations

from scribe.actions import Effects
from scribe.actions.knowledge.cascade_status import CascadeParams, cascade_status
from scribe.actions.knowledge.create_from_template import CreateParams, create_from_template
from scribe.actions.knowledge.generate_index import IndexParams, generate_index
from scribe.actions.knowledge.validate_frontmatter import ValidateParams, validate_frontmatter

BUILTINS = (
    Effects(
        "generate_index",
        IndexParams,
        generate_index,
        "Write an index of notes (grouped, sorted, filtered) whenever one changes.",
    ),
    Effects(
        "cascade_status",
        CascadeParams,
        cascade_status,
        "Mark a parent note done once all its children are (and reopen it, if asked).",
    ),
    Effects(
        "create_from_template",
        CreateParams,
        create_from_template,
        "Create a new note from a template file; never overwrites one.",
    ),
    Effects(
        "validate_frontmatter",
        ValidateParams,
        validate_frontmatter,
        "Check the frontmatter against a JSON Schema file; each violation is a finding.",
    ),
)

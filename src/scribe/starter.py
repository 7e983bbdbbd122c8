"""The rules file ``scribe init`` writes: valid, commented, and useful on day one."""

from __future__ import annotations

from pathlib import Path

from scribe.config import STATE_DIR
from scribe.errors import ScribeError

STARTER_RULES = """\
# Scribe rules. Each rule says which events (on) on which files (paths, exclude),
# under which conditions (when), trigger which ordered steps (do).
#
#   scribe rules                 list and validate these rules
#   scribe rules --explain FILE  which rules match FILE, and why the others do not
#   scribe plan                  the diff the rules would make, without writing
#   scribe watch                 apply them on every save
#   scribe schema                JSON Schema of this file, for editor completion
#
# Values are Jinja2 templates with now(format, tz), field(name), capture(name),
# path, stem and parent. now() is UTC unless you name a time zone.
rules:
  # Stamp `modified` whenever a note is saved with a real change. Scribe's own
  # writes never re-trigger it, and a save that changes nothing (or only this
  # field) does not restamp.
  - id: stamp-modified
    on: [created, modified]
    paths: ["**/*.md"]
    exclude: ["templates/**"]
    when:
      - frontmatter: {status: {not: archived}}
    do:
      - set: {field: modified, value: "{{ now('%Y-%m-%dT%H:%M:%SZ') }}"}

  # Give every new note a frontmatter block with a title and a creation date.
  # - id: new-note-defaults
  #   on: [created]
  #   paths: ["**/*.md"]
  #   do:
  #     - ensure_frontmatter:
  #         defaults: {title: "{{ stem }}", created: "{{ now('%Y-%m-%d') }}"}
"""

STATE_GITIGNORE = "# Scribe's local state: not for version control\nstate.db*\n"


def write_starter(root: Path) -> Path:
    """Write ``.scribe/rules.yaml`` under ``root``; refuse to overwrite one."""
    rules = root / STATE_DIR / "rules.yaml"
    if rules.exists():
        raise ScribeError(f"{rules} already exists; not overwriting it")
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(STARTER_RULES, encoding="utf-8")
    gitignore = rules.parent / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(STATE_GITIGNORE, encoding="utf-8")
    return rules

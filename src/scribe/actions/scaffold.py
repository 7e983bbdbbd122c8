"""``scribe plugins new``: a ready plug-in package to start an action from.

The package holds a working content action (a parameter model, a pure ``plan``
and an in-code manifest), its entry point, a README and tests that run the action
through a real rules file, so a new plug-in starts out tested.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from string import Template

from scribe import __version__
from scribe.actions.manifest import NAME_MAX, NAME_PATTERN
from scribe.actions.registry import builtin_registry
from scribe.errors import ScribeError

SUMMARY = "Add a tag to the note's tags field."

#: Template file -> where it goes in the package, both with ``NAME`` to fill.
_LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "package_init.py.tmpl": "src/scribe_NAME/__init__.py",
    "test_action.py.tmpl": "tests/test_NAME.py",
}


def scaffold_plugin(name: str, dest: Path) -> list[Path]:
    """Create the plug-in package ``dest/scribe-NAME/`` and return the files made.

    Refuses (``ScribeError``) a name rules could not call, a built-in's name, and
    a package directory that already exists.
    """
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > NAME_MAX:
        raise ScribeError(
            f"{name!r} is not a valid action name: use lower-case letters, digits and '_', "
            f"starting with a letter, at most {NAME_MAX} characters"
        )
    if name in builtin_registry().plugins:
        raise ScribeError(f"{name!r} is the name of a built-in action; choose another")
    package = dest / f"scribe-{name}"
    dest.mkdir(parents=True, exist_ok=True)
    try:
        package.mkdir()
    except FileExistsError:
        raise ScribeError(f"{package} already exists; choose another name or destination") from None
    values = {"name": name, "summary": SUMMARY, "scribe_version": __version__}
    templates = files("scribe.actions") / "scaffold_templates"
    made = []
    for template, target in _LAYOUT.items():
        text = Template((templates / template).read_text(encoding="utf-8")).substitute(values)
        path = package / target.replace("NAME", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        made.append(path)
    return made


__all__ = ["scaffold_plugin"]

"""What the knowledge actions share: parameter models, frontmatter tests as rules
write them, the note index, paths and globs, and frontmatter line numbers."""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import core_schema
from wcmatch import glob

from scribe.actions import FileContext
from scribe.actions.content import TemplateText
from scribe.events import EventKind
from scribe.frontmatter import FrontmatterError, find_block
from scribe.rules.templates import Template
from scribe.yaml_scalars import Loader

if TYPE_CHECKING:
    from scribe.notes import NoteIndex

_GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.BRACE | glob.NEGATE
Scalar = str | bool | int | float


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Globs = Annotated[list[TemplateText], BeforeValidator(_one_or_many)]


class _FieldTest:
    """A test on one frontmatter field, exactly as a rule's ``when: frontmatter:``
    has it (``scribe.rules.model.FieldTest``). Imported when first used: the rules
    model imports the built-in actions, this module among them."""

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> Any:
        def validate(value: Any) -> Any:
            from scribe.rules.model import FieldTest

            return FieldTest.model_validate(value)

        return core_schema.no_info_plain_validator_function(validate)

    @classmethod
    def __get_pydantic_json_schema__(cls, _schema: Any, handler: Any) -> Any:
        from scribe.rules.model import FieldTest

        return handler(FieldTest.__pydantic_core_schema__)


FieldTestValue = Annotated[Any, _FieldTest]
#: ``(fields) -> None`` when they pass, else why not (``scribe.rules.match``).
FieldCheck = Callable[[Mapping[str, Any]], "str | None"]


def field_checks(tests: Mapping[str, Any]) -> list[FieldCheck]:
    from scribe.rules.match import field_test  # imported late: the rules import the actions

    return [field_test(name, test) for name, test in tests.items()]


def equals(field: str, value: Scalar) -> FieldCheck:
    """Whether ``field`` equals ``value``, by the rule of ``when: frontmatter:``."""
    from scribe.rules.model import FieldTest

    (check,) = field_checks({field: FieldTest(equals=value)})
    return check


def notes_of(ctx: FileContext, action: str) -> NoteIndex:
    if ctx.notes is None:
        raise ValueError(f"{action} needs the repository's notes")
    return ctx.notes


def deleted(ctx: FileContext) -> bool:
    return ctx.event.get("kind") == EventKind.DELETED.value


def own_fields(ctx: FileContext) -> Mapping[str, Any]:
    """The fields of the file being handled, as planned so far (none if unreadable,
    as the note index has them for other notes)."""
    try:
        return ctx.frontmatter.data
    except FrontmatterError:
        return {}


def render(ctx: FileContext, template: Template) -> str:
    """``template`` for this file. Fixed text needs no fields, so a note whose
    frontmatter does not parse still gets it (``ctx.render`` would parse it)."""
    return template.source if template.compiled is None else str(ctx.render(template))


def repo_path(value: str, what: str) -> str:
    """A rendered path, normalised; ValueError unless it stays inside the repository."""
    path = posixpath.normpath(value.strip()) if value.strip() else "."
    if path in (".", "..") or path.startswith(("/", "../")) or value.strip().endswith("/"):
        raise ValueError(f"{what} {value!r} is not a path inside the repository")
    return path


@functools.lru_cache(maxsize=256)
def matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    return glob.compile(list(patterns), flags=_GLOB_FLAGS).match


def line_of(text: str, keys: Sequence[str | int]) -> int:
    """The file line of the frontmatter entry at ``keys`` (``["tags", 2]``): of its
    key in a mapping, of the item in a list; the nearest enclosing entry's when it
    is not written out, and the block's first line for the block itself."""
    try:
        block = find_block(text)
        node = (
            yaml.compose(text[block.yaml_start : block.yaml_end], Loader=Loader) if block else None
        )
    except (FrontmatterError, yaml.YAMLError):
        return 1
    if block is None:
        return 1
    first, line = text.count("\n", 0, block.yaml_start) + 1, 1
    for key in keys:
        found: tuple[Any, Any] | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:  # the last of duplicate keys is the one that counts
                if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                    found = (v, k.start_mark)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            found = (node.value[key], node.value[key].start_mark)
        if found is None:
            break
        node, mark = found
        line = first + mark.line
    return line

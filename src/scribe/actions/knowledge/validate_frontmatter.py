"""``validate_frontmatter``: check a note's frontmatter against a JSON Schema
file; each violation is a finding."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import Field

from scribe.actions import FileContext
from scribe.actions.content import TemplateText
from scribe.actions.effects import Effect, Finding
from scribe.actions.knowledge.common import Params, deleted, line_of, notes_of, render, repo_path
from scribe.frontmatter import FrontmatterError
from scribe.yaml_scalars import Loader

if TYPE_CHECKING:
    pass


class ValidateParams(Params):
    schema_: TemplateText = Field(
        alias="schema", description="the JSON Schema file (JSON, or YAML if it ends .yaml/.yml)"
    )
    fail: bool = Field(False, description="findings make scribe check and scribe run exit 1")


def validate_frontmatter(ctx: FileContext, p: ValidateParams) -> Sequence[Effect]:
    """One ``invalid_frontmatter`` finding per violation of the schema, at the line
    of the offending key (the frontmatter's first line for what concerns the block
    as a whole, such as a missing required field). Formats (``date``, ``email``...)
    are checked; YAML dates are validated as their ISO text (see ``_json_ready``)::

        - id: note-schema
          paths: ["notes/**/*.md"]
          do:
            - validate_frontmatter: {schema: schemas/note.json, fail: true}
    """
    notes = notes_of(ctx, "validate_frontmatter")
    if deleted(ctx):
        return []
    try:
        data = ctx.frontmatter.data
    except FrontmatterError as exc:  # no schema can pass it: that alone is the finding
        return [Finding("invalid_frontmatter", f"frontmatter: {exc}", ctx.path, 1, fail=p.fail)]
    where = repo_path(render(ctx, p.schema_), "schema")
    source = notes.text(where)
    if source is None:
        raise ValueError(f"schema {where}: {notes.problem(where) or 'cannot be read'}")
    import referencing.exceptions  # with jsonschema: only repositories that validate

    validator = _validator(source, where.endswith((".yaml", ".yml")), where)
    try:
        errors = list(validator.iter_errors(_json_ready(data)))
    except referencing.exceptions.Unresolvable as exc:
        raise ValueError(
            f"schema {where}: cannot resolve {getattr(exc, 'ref', str(exc))!r} "
            "(references to other documents are not followed)"
        ) from None
    found = []
    for error in errors:
        keys = list(error.absolute_path)
        field = _field_path(keys)
        found.append(
            Finding(
                "invalid_frontmatter",
                f"{field}: {error.message}",
                ctx.path,
                line=line_of(ctx.text, keys),
                data={"field": field, "schema": where, "keyword": str(error.validator)},
                fail=p.fail,
            )
        )
    return sorted(found, key=lambda f: (f.line or 0, f.message))


@functools.lru_cache(maxsize=32)
def _validator(source: str, yaml_syntax: bool, where: str) -> Any:
    """The schema's validator, built once per content (the text is the cache key)."""
    import referencing
    from jsonschema import validators  # type: ignore[import-untyped]
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

    try:
        schema = yaml.load(source, Loader=Loader) if yaml_syntax else json.loads(source)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "YAML" if yaml_syntax else "JSON"
        raise ValueError(f"schema {where} is not valid {kind}: {exc}") from None
    if not isinstance(schema, dict | bool):
        raise ValueError(f"schema {where} must hold a JSON object, not {type(schema).__name__}")
    schema = _json_ready(schema)
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        at = _field_path(list(exc.absolute_path), whole="the top level")
        message = f"schema {where} is not a valid JSON Schema: {exc.message} (at {at})"
        raise ValueError(message) from None
    # An empty registry: a $ref to another document fails instead of being fetched.
    return cls(schema, registry=referencing.Registry(), format_checker=cls.FORMAT_CHECKER)


def _json_ready(value: Any) -> Any:
    """Frontmatter as JSON would hold it. YAML dates and timestamps become the ISO
    8601 text they were written as (``2026-03-01``, ``2026-03-01T10:00:00``), so
    ``type: string, format: date`` accepts a date and rejects a timestamp."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_json_ready(v) for v in value), key=str)
    return value


_PLAIN_KEY = re.compile(r"[\w-]+")


def _field_path(keys: Sequence[str | int], whole: str = "frontmatter") -> str:
    """``tags[2]``, ``owner.email``; ``whole`` for the document itself."""
    out = ""
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
        elif _PLAIN_KEY.fullmatch(key):
            out += f".{key}" if out else key
        else:
            out += f"[{json.dumps(key)}]"
    return out or whole

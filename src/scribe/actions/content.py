"""The built-in content actions. Each is idempotent: applied to its own output it
changes nothing, which is what lets a rule run on every save without looping."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import regex
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, WithJsonSchema

from scribe.actions import Content, FileContext
from scribe.rules.templates import Template, compile_template
from scribe.yaml_scalars import YamlText


def _maybe_template(value: Any) -> Any:
    if isinstance(value, str):
        return compile_template(value)
    if isinstance(value, list):
        return [_maybe_template(v) for v in value]
    if isinstance(value, dict):
        return {k: _maybe_template(v) for k, v in value.items()}
    return value


def _template(value: Any) -> Template:
    if not isinstance(value, str):
        raise ValueError("expected text")  # pydantic reports ValueError
    return compile_template(value)


def _pattern(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a regular expression")
    try:
        regex.compile(value)
    except regex.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


TemplateText = Annotated[Template, PlainValidator(_template), WithJsonSchema({"type": "string"})]
Value = Annotated[Any, BeforeValidator(_maybe_template)]
Pattern = Annotated[str, BeforeValidator(_pattern)]
FieldName = Annotated[str, Field(min_length=1)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SetParams(_Params):
    field: FieldName
    value: Value
    if_missing: bool = False


def plan_set(ctx: FileContext, p: SetParams) -> str:
    fm = ctx.frontmatter
    if p.field in fm and (p.if_missing or (_is_volatile(p.value) and not ctx.may_restamp)):
        return ctx.text
    return fm.set(p.field, _field_value(ctx, p.value))


def _field_value(ctx: FileContext, value: Any) -> Any:
    """Render ``value`` for a field. What a template renders is YAML text, as if typed
    after ``field: `` (``{{ now('%Y-%m-%d') }}`` stays a date, not a quoted string)."""
    if isinstance(value, Template):
        return YamlText(ctx.render(value))
    if isinstance(value, list):
        return [_field_value(ctx, v) for v in value]
    if isinstance(value, dict):
        return {k: _field_value(ctx, v) for k, v in value.items()}
    return value


def _is_volatile(value: Any) -> bool:
    return isinstance(value, Template) and value.volatile


class RemoveParams(_Params):
    field: FieldName | list[FieldName]


def plan_remove(ctx: FileContext, p: RemoveParams) -> str:
    fields = [p.field] if isinstance(p.field, str) else p.field
    return ctx.frontmatter.remove(*fields)


class RenameParams(_Params):
    from_: FieldName = Field(alias="from")
    to: FieldName


def plan_rename(ctx: FileContext, p: RenameParams) -> str:
    return ctx.frontmatter.rename(p.from_, p.to)


class ReplaceParams(_Params):
    pattern: Pattern
    with_: TemplateText = Field(alias="with")
    count: int = Field(0, ge=0, description="replace at most this many matches; 0 means all")
    in_: Literal["body", "all"] = Field("body", alias="in")
    ignore_case: bool = False
    multiline: bool = True


def plan_replace(ctx: FileContext, p: ReplaceParams) -> str:
    flags = (regex.IGNORECASE if p.ignore_case else 0) | (regex.MULTILINE if p.multiline else 0)
    start = ctx.frontmatter.body_start if p.in_ == "body" else 0
    head, tail = ctx.text[:start], ctx.text[start:]
    replacement = _replacement(ctx, p.with_)
    new_tail = regex.compile(p.pattern, flags).sub(
        replacement, tail, count=p.count, timeout=ctx.regex_timeout
    )
    return head + new_tail


def _replacement(ctx: FileContext, template: Template) -> str:
    """``with`` rendered for ``regex.sub``: its own text keeps ``\\1`` and ``\\g<name>``,
    but what it inserts (captures, fields, path) is literal: a captured ``C:\\new``
    must not become an escape."""
    if template.compiled is None:
        return template.source
    context = ctx.template_context()
    field, capture = context["field"], context["capture"]
    context.update(
        {name: _literal(context[name]) for name in ("path", "stem", "parent")},
        field=lambda name, default=None: _literal(field(name, default)),
        capture=lambda name, default="": _literal(capture(name, default)),
    )
    return template.render(context)


def _literal(value: Any) -> Any:
    return value.replace("\\", "\\\\") if isinstance(value, str) else value


class TextParams(_Params):
    text: TemplateText


def _with_newlines(ctx: FileContext, text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", ctx.newline) if ctx.newline != "\n" else text


def plan_append(ctx: FileContext, p: TextParams) -> str:
    addition = _with_newlines(ctx, ctx.render(p.text))
    body = ctx.frontmatter.body
    if not addition.strip() or body.rstrip().endswith(addition.strip()):
        return ctx.text
    # Start a new line unless the file ends one; also after a closing '---' that ends
    # the file without a newline, which text glued to it would no longer close.
    separator = "" if not ctx.text or ctx.text.endswith(("\n", "\r")) else ctx.newline
    return ctx.text + separator + addition


def plan_prepend(ctx: FileContext, p: TextParams) -> str:
    addition = _with_newlines(ctx, ctx.render(p.text))
    fm = ctx.frontmatter
    if not addition.strip() or fm.body.lstrip().startswith(addition.strip()):
        return ctx.text
    at = fm.body_start
    if at and not ctx.text[:at].endswith("\n"):  # closing '---' ends the file, no newline
        addition = ctx.newline + addition
    return ctx.text[:at] + addition + ctx.text[at:]


class EnsureParams(_Params):
    defaults: dict[FieldName, Value] = Field(default_factory=dict)


def plan_ensure(ctx: FileContext, p: EnsureParams) -> str:
    fm = ctx.frontmatter
    missing = {k: v for k, v in p.defaults.items() if k not in fm}
    if fm.block is not None and not missing:
        return ctx.text
    return fm.ensure({k: _field_value(ctx, v) for k, v in missing.items()})


#: Each depends on its own file alone: rewriting another file never changes them.
BUILTINS = (
    Content(
        "set",
        SetParams,
        plan_set,
        "Set a frontmatter field (creating the block if needed).",
        stamps=lambda p: (p.field,) if _is_volatile(p.value) else (),
        self_contained=True,
    ),
    Content("remove", RemoveParams, plan_remove, "Remove frontmatter fields.", self_contained=True),
    Content(
        "rename_field",
        RenameParams,
        plan_rename,
        "Rename a frontmatter field, keeping its value.",
        self_contained=True,
    ),
    Content(
        "replace",
        ReplaceParams,
        plan_replace,
        "Regex search and replace in the body (or all).",
        self_contained=True,
    ),
    Content(
        "append",
        TextParams,
        plan_append,
        "Append text to the body unless it already ends so.",
        self_contained=True,
    ),
    Content(
        "prepend",
        TextParams,
        plan_prepend,
        "Prepend text to the body unless it already starts so.",
        self_contained=True,
    ),
    Content(
        "ensure_frontmatter",
        EnsureParams,
        plan_ensure,
        "Create the frontmatter block if missing; add missing default fields.",
        self_contained=True,
    ),
)

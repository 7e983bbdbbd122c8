"""The rules file schema: one set of pydantic models for validation and JSON Schema.

The shape of a step depends on which actions exist, so the step union (and the
models that contain it) are built from an action registry by ``rules_model``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from scribe.actions import ACTIONS, Action
from scribe.actions.content import Pattern as Regex
from scribe.actions.engine_effects import EVENT_NAME
from scribe.events import FILE_KINDS, EventKind

RULE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
CONDITION_KEYS = ("frontmatter", "content", "path", "size")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldTest(_Strict):
    """A test on one frontmatter field. A bare value in the rules file means ``equals``."""

    equals: Any = Field(None, description="the field equals this value")
    not_: Any = Field(None, alias="not", description="the field is missing or differs from this")
    matches: Regex | None = Field(None, description="the field's text matches this regex")
    exists: bool | None = Field(None, description="true: the field is present; false: absent")
    missing: bool | None = Field(None, description="true: the field is absent")
    in_: list[Any] | None = Field(None, alias="in", description="the field equals one of these")

    @model_validator(mode="before")
    @classmethod
    def _bare_value_means_equals(cls, data: Any) -> Any:
        return data if isinstance(data, Mapping) else {"equals": data}


class SizeRange(_Strict):
    min: int | None = Field(None, ge=0, description="at least this many bytes")
    max: int | None = Field(None, ge=0, description="at most this many bytes")


class Condition(_Strict):
    """One condition; a rule's ``when`` list holds when every condition holds."""

    frontmatter: dict[str, FieldTest] | None = None
    content: Regex | None = Field(
        None, description="regex searched in the text; named groups become captures"
    )
    path: Regex | None = Field(None, description="regex searched in the repository-relative path")
    size: SizeRange | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        given = [k for k in CONDITION_KEYS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a condition needs exactly one of {', '.join(CONDITION_KEYS)}")
        return self


class OnEvent(_Strict):
    """A custom event, raised by an ``emit`` step of some rule."""

    event: str = Field(pattern=EVENT_NAME, description="the name given to emit")


def _trigger(value: Any) -> str | OnEvent:
    """One item of ``on``: a file event kind, or ``{event: NAME}``."""
    if isinstance(value, str):
        kinds = [k.value for k in FILE_KINDS]
        if value not in kinds:
            close = difflib.get_close_matches(value, kinds, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else " (or {event: NAME})"
            raise ValueError(f"{value!r} is not one of {', '.join(kinds)}{hint}")
        return value
    if isinstance(value, OnEvent):
        return value
    if isinstance(value, Mapping):
        return OnEvent.model_validate(value)
    raise ValueError("expected an event kind (created, modified, deleted, moved) or {event: NAME}")


Trigger = Annotated[
    str | OnEvent,
    PlainValidator(_trigger),
    PlainSerializer(lambda t: t if isinstance(t, str) else {"event": t.event}),
    WithJsonSchema(
        {
            "anyOf": [
                {"enum": [k.value for k in FILE_KINDS]},
                {
                    "type": "object",
                    "properties": {"event": {"type": "string", "pattern": EVENT_NAME}},
                    "required": ["event"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]


class RuleBase(_Strict):
    id: str = Field(pattern=RULE_ID, description="unique name, used in logs and the journal")
    description: str = ""
    enabled: bool = True
    priority: int = Field(0, description="higher runs first; equal priorities keep file order")
    on: list[Trigger] = Field(
        default_factory=lambda: [EventKind.CREATED.value, EventKind.MODIFIED.value],  # type: ignore[arg-type]
        description="what triggers the rule: file event kinds, or {event: NAME} for a custom event",
    )
    paths: list[str] = Field(default_factory=lambda: ["**/*"], min_length=1)
    exclude: list[str] = Field(default_factory=list)
    when: list[Condition] = Field(default_factory=list)

    @field_validator("on", "paths", "exclude", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def _step_tag(value: Any) -> str | None:
    if isinstance(value, Mapping) and len(value) == 1:
        return str(next(iter(value)))
    if isinstance(value, BaseModel):  # already validated
        return str(next(iter(type(value).model_fields)))
    return None


@cache
def _models(actions: tuple[Action, ...]) -> tuple[type[BaseModel], type[BaseModel]]:
    steps = [
        Annotated[
            create_model(  # type: ignore[call-overload]
                f"{a.name.title().replace('_', '')}Step",
                __config__=ConfigDict(extra="forbid", frozen=True),
                __doc__=a.summary,
                **{a.name: (a.params, ...)},
            ),
            Tag(a.name),
        ]
        for a in actions
    ]
    # Built at run time from the registry, hence invisible to the type checker.
    step = Annotated[Union[tuple(steps)], Discriminator(_step_tag)]  # type: ignore[valid-type]  # noqa: UP007
    rule = create_model(
        "Rule",
        __base__=RuleBase,
        do=(
            list[step],  # type: ignore[valid-type]
            Field(min_length=1, description="ordered steps: action name -> parameters"),
        ),
    )
    rules_file = create_model(
        "RulesFile",
        __config__=ConfigDict(extra="forbid", frozen=True),
        rules=(list[rule], Field(default_factory=list)),
    )
    return rule, rules_file


def rules_model(actions: Mapping[str, Action] = ACTIONS) -> type[BaseModel]:
    """The model of a whole rules file for the given action registry."""
    return _models(tuple(actions.values()))[1]


def rules_schema(actions: Mapping[str, Action] = ACTIONS) -> dict[str, Any]:
    """JSON Schema for editors, generated from the same models that validate."""
    schema = rules_model(actions).model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Scribe rules file"
    return schema

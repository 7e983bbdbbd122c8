"""The built-in effect actions the engine carries out itself: ``run_command`` and
``emit``. Their parameters are checked when the rules load; rendering happens per
file, and each rendered argv item stays one argument whatever it contains."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scribe.actions import Effects, FileContext
from scribe.actions.content import TemplateText, Value
from scribe.actions.effects import Effect, Emit, RunCommand
from scribe.rules.templates import Template, compile_template

#: What an event name may look like (the same as a rule id).
EVENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RunCommandParams(_Params):
    argv: list[TemplateText] = Field(
        min_length=1,
        description="the command and its arguments; each item is rendered into exactly "
        "one argument, never split or given to a shell",
    )
    timeout: float = Field(30.0, gt=0, le=3600, description="seconds before it is killed")
    cwd: TemplateText = Field(
        default_factory=lambda: compile_template("."),
        description="working folder, relative to the root",
    )
    env: list[EnvName] = Field(
        default_factory=list,
        description="environment variables to pass (each must be in the setting command_env)",
    )
    writable: list[TemplateText] = Field(
        default_factory=list,
        description="repository paths the command may change, e.g. '{{ path }}'; "
        "the repository is otherwise read-only to it",
    )
    fail_on_error: bool = Field(
        False, description="a non-zero exit or a timeout fails the rule on this file"
    )

    @field_validator("argv")
    @classmethod
    def _fixed_program(cls, argv: list[Template]) -> list[Template]:
        if argv[0].compiled is not None:
            raise ValueError(
                "the program (argv[0]) must be fixed text, not a template: "
                "a file's content must never choose what runs"
            )
        if not argv[0].source.strip():
            raise ValueError("the program (argv[0]) is empty")
        return argv


def run_command(ctx: FileContext, p: RunCommandParams) -> Sequence[Effect]:
    return [
        RunCommand(
            argv=tuple(str(ctx.render(item)) for item in p.argv),
            timeout=p.timeout,
            cwd=str(ctx.render(p.cwd)) or ".",
            env=tuple(p.env),
            writable=tuple(str(ctx.render(w)) for w in p.writable),
            fail_on_error=p.fail_on_error,
        )
    ]


class EmitParams(_Params):
    event: TemplateText = Field(
        description="the event's name; rules match it with on: {event: NAME}"
    )
    data: dict[str, Value] = Field(default_factory=dict, description="values the event carries")
    path: TemplateText = Field(
        default_factory=lambda: compile_template("{{ path }}"),
        description="the file the event is about (default: this one)",
    )

    @field_validator("event")
    @classmethod
    def _name(cls, event: Template) -> Template:
        if event.compiled is None and not re.match(EVENT_NAME, event.source):
            raise ValueError(f"{event.source!r} is not a valid event name ({EVENT_NAME})")
        return event


def emit(ctx: FileContext, p: EmitParams) -> Sequence[Effect]:
    data: Any = ctx.render(p.data)
    return [Emit(str(ctx.render(p.event)), str(ctx.render(p.path)), data)]


BUILTINS = (
    Effects(
        "run_command",
        RunCommandParams,
        run_command,
        "Run an allow-listed command in the sandbox after the file is written.",
    ),
    Effects("emit", EmitParams, emit, "Raise a custom event that rules match with on: {event}."),
)

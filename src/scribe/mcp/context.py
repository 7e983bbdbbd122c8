"""The execution context every tool call carries, checked before any tool logic.

An agent says who it is (``agent_identity``), which run of its work this is
(``execution_id``), why (``intent``), when (``timestamp_utc``), where
(``repo_root``, one of the roots the server was started with) and how
(``mode``). Whatever is missing or wrong is reported field by field; nothing is
filled in on the agent's behalf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from scribe.mcp.failures import INVALID_CONTEXT, ToolFailure

Mode = Literal["project", "sentinel"]
PROJECT: Mode = "project"
SENTINEL: Mode = "sentinel"

#: Identifiers end up in file names (``exec-<id>.json``) and journal actors, so they
#: are kept to characters that are safe in both.
Token = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"),
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
ProjectName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

#: A client clock this far ahead of the server's is refused: it would file
#: sentinel entries under a day that has not begun.
MAX_CLOCK_SKEW = timedelta(minutes=10)


class AgentIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Token = Field(description="The agent's name, e.g. claude-code.")
    instance_id: Token = Field(description="This running instance of the agent.")
    model: Text | None = Field(default=None, description="The model behind it, if known.")


class ExecutionContext(BaseModel):
    """Who calls, for which run of work, in which repository and mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo_root: str = Field(description="Absolute path of a repository this server serves.")
    mode: Mode = Field(description="project: plans and progress logs; sentinel: audit logs.")
    execution_id: Token = Field(description="One run of the agent's work; groups its calls.")
    agent_identity: AgentIdentity
    intent: Text = Field(description="Why the agent makes this call, in a sentence.")
    timestamp_utc: AwareDatetime = Field(description="When the agent made the call, in UTC.")
    affected_dev_projects: list[ProjectName] = Field(
        description="Projects this work touches (may be empty, must be given)."
    )
    project: ProjectName | None = Field(
        default=None, description="Project mode: the project to use for this call."
    )

    @field_validator("timestamp_utc")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.utcoffset() != timedelta(0):
            raise ValueError("must be in UTC (end with Z or +00:00)")
        if value - datetime.now(UTC) > MAX_CLOCK_SKEW:
            raise ValueError("is in the future; check the agent's clock")
        return value.astimezone(UTC)

    @property
    def sentinel_day(self) -> str | None:
        """The day folder sentinel entries of this call go to (sentinel mode only)."""
        return self.timestamp_utc.date().isoformat() if self.mode == SENTINEL else None

    @property
    def actor(self) -> str:
        """The journal actor: ``agent:<id>``."""
        return f"agent:{self.agent_identity.id}"

    def provenance(self) -> dict[str, Any]:
        """What every journal entry of this call records about it."""
        return {
            "execution_id": self.execution_id,
            "agent": self.agent_identity.model_dump(exclude_none=True),
            "intent": self.intent,
            "mode": self.mode,
            "timestamp_utc": self.timestamp_utc.isoformat().replace("+00:00", "Z"),
            "affected_dev_projects": list(self.affected_dev_projects),
            **({"sentinel_day": self.sentinel_day} if self.sentinel_day else {}),
        }


def _where(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "context"


def parse_context(raw: object, roots: Sequence[Path]) -> tuple[ExecutionContext, Path]:
    """Validate ``raw`` and return it with its repository root, resolved.

    Raises ``ToolFailure(INVALID_CONTEXT)`` listing every field that is missing or
    wrong, including a ``repo_root`` that is not one of ``roots``.
    """
    if not isinstance(raw, Mapping):
        required = [n for n, f in ExecutionContext.model_fields.items() if f.is_required()]
        raise ToolFailure(
            INVALID_CONTEXT,
            "the execution context is missing: pass an object with " + ", ".join(required),
            fields=[{"field": "context", "problem": "required"}],
        )
    problems: list[dict[str, str]] = []
    if "sentinel_day" in raw:
        problems.append(
            {"field": "sentinel_day", "problem": "is derived from timestamp_utc; do not send it"}
        )
        raw = {k: v for k, v in raw.items() if k != "sentinel_day"}
    context: ExecutionContext | None = None
    try:
        context = ExecutionContext.model_validate(raw)
    except ValidationError as exc:
        problems += [
            {"field": _where(error["loc"]), "problem": error["msg"]} for error in exc.errors()
        ]
    root: Path | None = None
    if context is not None:
        root = _known_root(context.repo_root, roots, problems)
    if problems or context is None or root is None:
        listed = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise ToolFailure(INVALID_CONTEXT, f"invalid execution context: {listed}", fields=problems)
    return context, root


def _known_root(given: str, roots: Sequence[Path], problems: list[dict[str, str]]) -> Path | None:
    """The served root ``given`` names; a problem when it names none of them."""
    for root in roots:  # the usual case, a served root as given: no file system calls
        if given == str(root) and root.is_absolute():
            return root
    path = Path(given)
    if not path.is_absolute():
        problems.append({"field": "repo_root", "problem": "must be an absolute path"})
        return None
    resolved = path.resolve()
    for root in roots:
        if resolved == root.resolve():
            return root.resolve()
    problems.append(
        {
            "field": "repo_root",
            "problem": "is not a repository this server serves ("
            + ", ".join(str(r) for r in roots)
            + ")",
        }
    )
    return None


@dataclass(frozen=True)
class Call:
    """One validated tool call: its context, its repository and its session."""

    context: ExecutionContext
    root: Path
    session_id: str
    #: The transport's own session id (streamable HTTP), recorded beside ours.
    transport_session_id: str | None = None
    #: When this call was admitted, no other call was being served and the transport
    #: had no other request waiting: nobody waits while its commit holds the loop.
    alone: bool = False

    def payload(self, **extra: Any) -> dict[str, Any]:
        """A journal payload: the call's provenance, its session, then ``extra``."""
        session: dict[str, Any] = {"session_id": self.session_id}
        if self.transport_session_id:
            session["transport_session_id"] = self.transport_session_id
        return {**self.context.provenance(), **session, **extra}

"""Plug-in manifests: what an action says about itself and what it may touch.

A manifest names the action, gives its version (PEP 440, as Python packages are
versioned), describes it, carries the JSON Schema of its parameters (always
generated from the action's ``params`` model, never written by hand) and lists its
permissions: the files it may write, the executables it may run, and no network.

``manifest_for`` builds one from what a plug-in ships (a ``manifest`` dict or
``Manifest``, or a ``manifest.json``): it fills the name, version, description and
parameters the plug-in left out, and refuses a name or parameters that disagree
with the action itself, so a stale manifest cannot describe some other code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

import pathspec
from packaging.version import InvalidVersion, Version
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from scribe.errors import ScribeError
from scribe.rules.load import suggest

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
NAME_MAX = 64
SCHEMA_ID = "urn:scribe:schema:plugin-manifest"
REGENERATE = "regenerate with `scribe plugins show {name} --json`"


class ManifestError(ScribeError):
    """A plug-in's manifest cannot be used; ``problems`` lists each as ``path: message``.

    ``regenerated`` is the manifest as it would be with freshly generated
    parameters, when stale parameters were the only problem (``scribe plugins show
    NAME --json`` prints it, so the fix is one command away).
    """

    exit_code = 2

    def __init__(self, problems: Sequence[str], *, regenerated: Manifest | None = None) -> None:
        self.problems = tuple(problems)
        self.regenerated = regenerated
        super().__init__("\n".join(self.problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _glob(glob: str) -> str:
    if not glob.strip():
        raise ValueError("a glob cannot be empty")
    if ".." in PurePosixPath(glob.lstrip("!")).parts:
        raise ValueError(f"{glob!r} climbs out with '..'; globs stay inside the root")
    try:
        pathspec.GitIgnoreSpec.from_lines([glob])
    except (ValueError, re.error) as exc:
        detail = exc.msg if isinstance(exc, re.error) else str(exc)
        raise ValueError(f"{glob!r} is not a valid glob: {detail}") from None
    return glob


def _executable(path: str) -> str:
    if not (PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute()):
        raise ValueError(f"{path!r} is not an absolute path (such as /usr/bin/{path})")
    if ".." in PurePosixPath(path).parts or ".." in PureWindowsPath(path).parts:
        raise ValueError(f"{path!r} contains '..'; give the executable's own path")
    return path


def _named(name: str) -> str:
    if not name.strip():
        raise ValueError("a name cannot be empty")
    return name


Glob = Annotated[str, AfterValidator(_glob)]
Executable = Annotated[str, AfterValidator(_executable)]
InterfaceName = Annotated[str, AfterValidator(_named)]


class Permissions(_Strict):
    """What a plug-in may do beyond computing; the engine enforces it on every step."""

    write: list[Glob] = Field(
        default_factory=list,
        description="gitignore-style globs, relative to the repository root, of the files "
        "the action may write: its own file for a content action, other files for "
        "WriteFile and Rename effects; empty: none",
    )
    commands: list[Executable] = Field(
        default_factory=list,
        description="absolute paths of the executables the action may run; empty: none",
    )
    network: Literal["none"] = Field(
        "none", description="plug-ins get no network access; 'none' is the only value"
    )


class HmaCompliance(_Strict):
    """What a ``manifest_version: "2.2"`` manifest claims about the HMA v2.2
    architecture. Scribe checks the shape of these claims, not their values."""

    hma_version: str = Field(min_length=1, pattern=r"\S", description="such as '2.2'")
    tier_classification: str = Field(min_length=1, pattern=r"\S")
    boundary_interfaces: list[InterfaceName] = Field(
        min_length=1, description="names of the ports the plug-in uses; at least one"
    )


class Manifest(_Strict):
    """Everything Scribe knows about a plug-in action before running it."""

    manifest_version: Literal["1", "2.2"] = Field(
        "1", description="'2.2' adds the hma_compliance block, required there"
    )
    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=NAME_MAX,
        description="the action's name, as rules call it (filled from the action)",
    )
    version: str = Field(
        description="PEP 440 version, such as 1.0 or 2.1.0rc1 (filled from the distribution)"
    )
    description: str = Field(
        min_length=1, pattern=r"\S", description="what the action does (filled from its summary)"
    )
    parameters: dict[str, Any] = Field(
        description="JSON Schema of the action's parameters, generated from its params model"
    )
    permissions: Permissions = Field(default_factory=Permissions)
    hma_compliance: HmaCompliance | None = Field(None, validate_default=True)

    @field_validator("version")
    @classmethod
    def _pep440(cls, value: str) -> str:
        try:
            Version(value)
        except InvalidVersion:
            raise ValueError(
                f"{value!r} is not a PEP 440 version (such as 1.0, 2.1.3 or 2.1.0rc1)"
            ) from None
        return value

    @field_validator("hma_compliance")
    @classmethod
    def _only_for_hma(cls, value: HmaCompliance | None, info: Any) -> HmaCompliance | None:
        version = info.data.get("manifest_version")
        if version == "2.2" and value is None:
            raise ValueError("required when manifest_version is '2.2'")
        if version != "2.2" and value is not None:
            raise ValueError("only allowed when manifest_version is '2.2'")
        return value

    def to_json(self) -> dict[str, Any]:
        """The manifest as a ``manifest.json`` holds it (no empty hma_compliance)."""
        data = self.model_dump(mode="json")
        if data["hma_compliance"] is None:
            del data["hma_compliance"]
        return data


def manifest_schema() -> dict[str, Any]:
    """JSON Schema of a ``manifest.json`` (2020-12), for editors and other tools.

    Name, version, description and parameters are not required there: Scribe fills
    them from the action (and refuses values that disagree with it).
    """
    schema = Manifest.model_json_schema()
    schema.pop("required", None)
    schema["allOf"] = [
        {
            "if": {
                "properties": {"manifest_version": {"const": "2.2"}},
                "required": ["manifest_version"],
            },
            "then": {
                "required": ["hma_compliance"],
                "properties": {"hma_compliance": {"$ref": "#/$defs/HmaCompliance"}},
            },
            "else": {"properties": {"hma_compliance": {"type": "null"}}},
        }
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "Scribe plug-in manifest",
        "description": "What a plug-in action declares: name, version, parameters and "
        "permissions. Scribe fills name, version, description and parameters from the "
        "action when they are left out.",
    }


def manifest_for(
    action: Any, data: Mapping[str, Any] | Manifest | None, *, version: str
) -> Manifest:
    """The manifest of ``action`` from what its plug-in ships (``data``).

    ``version`` is used when ``data`` gives none (the distribution's version, or
    Scribe's for a built-in); the description defaults to the action's summary.
    ``action.params`` must be a pydantic model. Raises ``ManifestError``.
    """
    if data is None:
        raise ManifestError(
            [
                "no manifest: give the action (or its module) a `manifest` dict, "
                "or ship a manifest.json beside it"
            ]
        )
    if isinstance(data, Manifest):
        data = data.model_dump()
    elif not isinstance(data, Mapping):
        raise ManifestError([f"manifest: expected a mapping, got {type(data).__name__}"])
    name = action.name
    generated = json.loads(json.dumps(action.params.model_json_schema()))
    problems: list[str] = []
    if "name" in data and data["name"] != name:
        problems.append(f"name: {data['name']!r} differs from the action's name {name!r}")
    stale = "parameters" in data and data["parameters"] != generated
    if stale:
        problems.append(
            "parameters: differ from the action's params model; "
            + REGENERATE.format(name=name if isinstance(name, str) else "NAME")
        )
    filled = {
        "version": version,
        "description": getattr(action, "summary", None),
        **data,
        "name": name,
        "parameters": generated,
    }
    try:
        manifest = Manifest.model_validate(filled)
    except ValidationError as exc:
        raise ManifestError([*problems, *(_problem(e) for e in exc.errors())]) from None
    if problems:
        only_stale = stale and len(problems) == 1
        raise ManifestError(problems, regenerated=manifest if only_stale else None)
    return manifest


def read_manifest(path: Traversable) -> dict[str, Any]:
    """The JSON object in a ``manifest.json`` (a ``Path`` or a resources ``Traversable``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError([f"{path.name}: cannot read: {exc}"]) from None
    except json.JSONDecodeError as exc:
        raise ManifestError(
            [f"{path.name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"]
        ) from None
    if not isinstance(data, dict):
        raise ManifestError([f"{path.name}: expected a JSON object, got {type(data).__name__}"])
    return data


_MODELS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Manifest,
    ("permissions",): Permissions,
    ("hma_compliance",): HmaCompliance,
}


def _problem(error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    path = path.lstrip(".") or "manifest"
    if error["type"] == "extra_forbidden":
        model = _MODELS.get(tuple(str(p) for p in loc[:-1]))
        known = list(model.model_fields) if model else []
        return f"{path}: unknown key{suggest(str(loc[-1]), known)}"
    return f"{path}: {error['msg'].removeprefix('Value error, ')}"


__all__ = [
    "HmaCompliance",
    "Manifest",
    "ManifestError",
    "Permissions",
    "manifest_for",
    "manifest_schema",
    "read_manifest",
]

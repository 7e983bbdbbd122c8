"""Settings: ``scribe.yaml`` at the repository root, then command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from scribe.errors import ConfigError, Problem
from scribe.files import DEFAULT_MAX_FILE_BYTES

CONFIG_FILE = "scribe.yaml"
STATE_DIR = ".scribe"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: str = Field(".scribe/rules.yaml", description="rules file, relative to the root")
    quiet_ms: int = Field(
        20,
        ge=0,
        le=10_000,
        description="how long a file must be quiet before it is read, "
        "when the platform cannot tell that its writer closed it",
    )
    max_file_bytes: int = Field(
        DEFAULT_MAX_FILE_BYTES, ge=1, description="larger files are skipped"
    )
    regex_timeout: float = Field(
        1.0, gt=0, description="seconds a rule's regex may run on one file"
    )
    ignore: list[str] = Field(default_factory=list, description="extra globs the watcher ignores")
    gitignore: bool = Field(False, description="also ignore what .gitignore ignores")
    poll: bool = Field(False, description="poll instead of using OS events (network drives, WSL)")
    workers: int = Field(
        4, ge=1, le=64, description="files processed in parallel (one at a time per file)"
    )
    max_batch: int = Field(
        64,
        ge=1,
        le=1024,
        description="most files one worker takes at once when changes queue up; "
        "their writes share one journal commit and one sync per directory",
    )
    journal: bool = Field(
        True,
        description="record every change in .scribe/journal.db; off also means no crash "
        "recovery or catch-up at start",
    )
    breaker_failures: int = Field(
        5, ge=1, description="failures in a row after which a rule is set aside for a while"
    )


def load_settings(root: Path, **overrides: Any) -> Settings:
    """Settings from ``root/scribe.yaml`` (if any) with non-None ``overrides`` on top."""
    path = root / CONFIG_FILE
    data: dict[str, Any] = {}
    document: Any = None
    if path.exists():
        try:
            document = YAML(typ="rt").load(path.read_text(encoding="utf-8-sig"))
        except MarkedYAMLError as exc:
            mark = exc.problem_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise ConfigError(
                [Problem(CONFIG_FILE, line, col, "", f"invalid YAML: {exc.problem}")]
            ) from None
        data = dict(document or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        from scribe.rules.load import position, suggest

        problems = []
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = f"unknown setting {key!r}" + suggest(key, list(Settings.model_fields))
            line, col = position(document, err["loc"], at_key=err["type"] == "extra_forbidden")
            problems.append(Problem(CONFIG_FILE, line, col, key, message))
        raise ConfigError(problems) from None

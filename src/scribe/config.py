"""Settings, in layers: defaults, ``scribe.yaml`` at the repository root,
``SCRIBE_*`` environment variables, then command-line flags (each over the last).

``load_settings`` also says where each value came from (``scribe config`` shows it),
and every error names its place: the file's line and column, the variable, or the
flag.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from scribe.errors import ConfigError, Problem
from scribe.files import DEFAULT_MAX_FILE_BYTES

CONFIG_FILE = "scribe.yaml"
STATE_DIR = ".scribe"
ENV_PREFIX = "SCRIBE_"


class CommandLimits(BaseModel):
    """Resource limits of one command run by a rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_seconds: int = Field(60, ge=1, description="CPU time")
    memory_mb: int = Field(1024, ge=16, description="address space")
    open_files: int = Field(256, ge=16, description="open file descriptors")
    file_mb: int = Field(64, ge=1, description="largest file it may write")
    processes: int = Field(64, ge=1, description="processes at once")


def default_workers() -> int:
    """Threads handling files: one per CPU, at least two (a slow file does not hold
    up the rest) and at most four. More threads than CPUs only take turns with the
    interpreter lock and split the queue into smaller batches, each made durable
    with flushes of its own. 5,000 saves over 1,000 files on two CPUs, in three sets
    of interleaved runs: median drains of 2.84, 3.92 and 4.27 s with two threads,
    3.42, 4.52 and 4.63 s with four."""
    return min(4, max(2, os.cpu_count() or 1))


class Settings(BaseSettings):
    """Scribe's settings.

    ``load_layers`` stacks the sources itself, so that it knows where each value
    came from; built directly, a ``Settings`` holds its defaults and what it is given.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

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
        default_factory=default_workers,
        ge=1,
        le=64,
        description="files processed in parallel (one at a time per file); "
        "default: one per CPU, at least 2 and at most 4",
    )
    plan_processes: int | None = Field(
        None,
        ge=0,
        le=64,
        description="processes planning ahead in scribe run, check and plan over 500 files "
        "or more, and in the scan of scribe watch --scan when every rule is self-contained; "
        "default: one per CPU (none on one CPU); 0: plan in one process",
    )
    max_batch: int = Field(
        64,
        ge=1,
        le=1024,
        description="most files one worker takes at once when changes queue up; "
        "their writes share one journal commit and one sync per directory",
    )
    batch_sync: bool = Field(
        True,
        description="make a batch of 8 or more writes durable with two syncfs calls per "
        "file system instead of an fsync per file (Linux 5.8 or later); much faster, "
        "but it also flushes what other programs wrote to that file system",
    )
    journal: bool = Field(
        True,
        description="record every change in .scribe/journal.db; off also means no crash "
        "recovery or catch-up at start",
    )
    journal_url: str | None = Field(
        None,
        description="where the journal lives: unset for .scribe/journal.db (SQLite), or "
        "postgresql://USER@HOST:PORT/DB for one PostgreSQL journal that many processes share",
    )
    bus: str | None = Field(
        None,
        description="unset: events stay in this process; nats://HOST:PORT (tls:// for TLS) "
        "carries them through NATS JetStream to scribe worker processes",
    )
    bus_shards: int = Field(
        16,
        ge=1,
        le=1024,
        description="subjects the bus spreads events over, by a hash of the path: one "
        "file's events always share one, so they stay in order",
    )
    max_deliveries: int = Field(
        5, ge=1, le=100, description="deliveries of one bus event before it is quarantined"
    )
    bus_ack_wait: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="seconds the bus waits for a worker's acknowledgement before it delivers "
        "the event again (a worker that died); workers busy longer tell it they are alive",
    )
    bus_cert: str | None = Field(
        None, description="client certificate (PEM) presented to the bus (mutual TLS)"
    )
    bus_key: str | None = Field(None, description="private key (PEM) of bus_cert")
    bus_ca: str | None = Field(
        None, description="CA certificate (PEM) the bus server's certificate must chain to"
    )
    tls_cert: str | None = Field(
        None,
        description="certificate (PEM) of the HTTP endpoints and of scribe mcp --http; "
        "set with tls_key, they serve HTTPS",
    )
    tls_key: str | None = Field(None, description="private key (PEM) of tls_cert")
    tls_client_ca: str | None = Field(
        None,
        description="CA certificate (PEM): HTTPS clients must present a certificate it "
        "signed (mutual TLS)",
    )
    breaker_failures: int = Field(
        5, ge=1, description="failures in a row after which a rule is set aside for a while"
    )
    queue_high_water: int = Field(
        10_000,
        ge=1,
        description="paths waiting past which scribe watch reports itself saturated "
        "(/readyz answers 503); changes are still coalesced per path, never dropped",
    )
    listen: str = Field(
        "127.0.0.1:9469",
        description="HOST:PORT of the /metrics, /healthz, /readyz and /status endpoints "
        "of scribe watch, or 'off'",
    )
    status_token: str | None = Field(
        None,
        description="bearer token that /status requires when set "
        "(better given as SCRIBE_STATUS_TOKEN than written in the file)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="least severe log level written"
    )
    log_file: str | None = Field(
        None, description="also append JSON log lines to this file (relative to the root)"
    )

    deny: list[str] = Field(
        default_factory=list,
        description="more paths rules never read or write (gitignore-style, relative to the "
        "root); added to the built-in denylist (.git/, .env, *.pem, id_*), never replacing it",
    )
    commands: list[str] = Field(
        default_factory=list,
        description="executables run_command may run, by absolute path (symlinks resolved); "
        "empty: rules run no command",
    )
    command_env: list[str] = Field(
        default_factory=list,
        description="environment variables a run_command step may pass on (beyond PATH, "
        "HOME and LANG, which every command gets)",
    )
    command_isolation: Literal["auto", "bwrap", "none"] = Field(
        "auto",
        description="run commands inside bwrap (read-only repository, no network): auto "
        "uses it when installed, bwrap requires it",
    )
    command_limits: CommandLimits = Field(
        default_factory=lambda: CommandLimits(), description="resource limits of each command"
    )
    command_output_bytes: int = Field(
        65_536, ge=1024, description="bytes of each output stream kept per command"
    )
    plugins_local: bool = Field(
        False, description="load actions from .scribe/actions/*.py (code from the repository)"
    )
    max_chain_depth: int = Field(
        8, ge=1, le=100, description="how many emits deep a chain of custom events may go"
    )

    mcp_deny: list[str] = Field(
        default_factory=list,
        description="more paths the MCP server never lets agents read (gitignore-style, "
        "relative to the root); added to the built-in denylist, never replacing it",
    )
    mcp_allow_absolute: list[str] = Field(
        default_factory=list,
        description="absolute folders outside the repository that agents may read",
    )
    mcp_chunk_bytes: int = Field(
        65_536, ge=1024, le=16 * 1024 * 1024, description="most bytes in one read_file chunk"
    )
    mcp_doc_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="more names for project documents, alias -> canonical key "
        "(architecture, phase_plan, checklist, progress_log)",
    )
    mcp_token: str | None = Field(
        None,
        description="bearer token of scribe mcp --http (better given as SCRIBE_MCP_TOKEN); "
        "required when it listens beyond loopback",
    )
    mcp_token_file: str | None = Field(
        None, description="file holding the bearer token of scribe mcp --http"
    )
    mcp_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="more Host names scribe mcp --http answers to (the name clients use "
        "when it listens on 0.0.0.0 or a specific address); others get 421",
    )

    @field_validator("commands")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        relative = [c for c in value if not os.path.isabs(c)]
        if relative:
            raise ValueError(
                f"commands are allowed by absolute path only, not {', '.join(relative)} "
                "(a name alone would trust whatever PATH finds first)"
            )
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        from scribe.observe.server import parse_listen

        if value.strip().lower() == "off":
            return "off"
        parse_listen(value)
        return value


#: Settings a running ``scribe watch`` applies when scribe.yaml changes; the others
#: take effect at the next start.
LIVE_SETTINGS = frozenset(
    {
        "rules",
        "quiet_ms",
        "max_file_bytes",
        "regex_timeout",
        "max_batch",
        "breaker_failures",
        "queue_high_water",
        "log_level",
    }
)


def settings_schema() -> dict[str, Any]:
    """JSON Schema of ``scribe.yaml``, from the model that validates it."""
    schema = Settings.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Scribe settings file (scribe.yaml)"
    schema["description"] = (
        "Settings of a Scribe repository. Each key can also be set by the environment "
        "variable SCRIBE_<KEY> (lists as JSON), and some by command-line flags."
    )
    return schema


@dataclass(frozen=True)
class Source:
    """Where a setting's value came from."""

    kind: str  # "default", "file", "env" or "flag"
    name: str = ""  # the file, variable or flag
    line: int = 0  # in the file

    def __str__(self) -> str:
        if self.kind == "file":
            return f"{self.name}:{self.line}"
        if self.kind == "env":
            return f"environment {self.name}"
        if self.kind == "flag":
            return f"command line {self.name}"
        return "default"


@dataclass(frozen=True)
class Loaded:
    settings: Settings
    sources: dict[str, Source]


def load_settings(root: Path, **overrides: Any) -> Settings:
    """Settings for the repository at ``root``; non-None ``overrides`` (the flags) win."""
    return load_layers(root, **overrides).settings


def load_layers(
    root: Path, *, environ: Mapping[str, str] | None = None, **overrides: Any
) -> Loaded:
    """Settings with the source of every value (see the module docstring)."""
    environ = os.environ if environ is None else environ
    document = _read_file(root / CONFIG_FILE)
    from_file = dict(document or {})
    from_env = _read_environment(environ)
    flags = {key: value for key, value in overrides.items() if value is not None}
    sources = {key: Source("default") for key in Settings.model_fields}
    for key in from_file:
        line = _line_of(document, key)
        sources[key] = Source("file", CONFIG_FILE, line)
    for key in from_env:
        sources[key] = Source("env", ENV_PREFIX + key.upper())
    for key in flags:
        sources[key] = Source("flag", "--" + key.replace("_", "-"))
    try:
        # Only what the layers hold, validated once: every error is told by its source.
        settings = Settings.model_validate({**from_file, **from_env, **flags})
    except ValidationError as exc:
        raise ConfigError([_problem(err, document, sources) for err in exc.errors()]) from None
    return Loaded(settings, sources)


def _read_file(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        return YAML(typ="rt").load(path.read_text(encoding="utf-8-sig"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError(
            [Problem(CONFIG_FILE, line, col, "", f"invalid YAML: {exc.problem}")]
        ) from None


def _read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``SCRIBE_*`` variables, decoded as pydantic-settings does (JSON for lists);
    a variable naming no setting is an error, with the closest name."""
    names = {ENV_PREFIX + key.upper(): key for key in Settings.model_fields}
    problems = [
        Problem(
            "environment",
            0,
            0,
            variable,
            "unknown setting" + _closest(variable.upper(), list(names)),
        )
        for variable in environ
        if variable.upper().startswith(ENV_PREFIX) and variable.upper() not in names
    ]
    if problems:
        raise ConfigError(problems)
    source = EnvSettingsSource(Settings, env_prefix=ENV_PREFIX)
    source.env_vars = {k.lower(): v for k, v in environ.items()}
    try:
        return {k: v for k, v in source().items() if k in Settings.model_fields}
    except SettingsError as exc:  # a list or mapping that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        variable = ENV_PREFIX + field[1].upper() if field else ""
        message = 'not valid JSON; a list is written like \'["drafts/**", "*.tmp"]\''
        raise ConfigError([Problem("environment", 0, 0, variable, message)]) from None


def _closest(name: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def _line_of(document: Any, key: str) -> int:
    from scribe.rules.load import position

    return position(document, (key,), at_key=True)[0]


def _problem(err: Any, document: Any, sources: dict[str, Source]) -> Problem:
    from scribe.rules.load import position, suggest

    loc = tuple(err["loc"])
    key = str(loc[0]) if loc else ""
    message = err["msg"]
    if err["type"] == "value_error":  # our own validators' words, without pydantic's prefix
        message = str(err.get("ctx", {}).get("error", message))
    if err["type"] == "extra_forbidden":
        message = f"unknown setting {key!r}" + suggest(key, list(Settings.model_fields))
    source = sources.get(key, Source("file", CONFIG_FILE))
    if source.kind == "env":
        value = json.dumps(err.get("input"), default=str)
        return Problem("environment", 0, 0, source.name, f"{message} (got {value})")
    if source.kind == "flag":
        return Problem("command line", 0, 0, source.name, message)
    line, col = position(document, loc, at_key=err["type"] == "extra_forbidden")
    return Problem(CONFIG_FILE, line, col, key, message)

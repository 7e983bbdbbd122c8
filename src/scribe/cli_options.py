"""Command-line options that several commands take, declared once so that each
reads and behaves the same everywhere (``scribe watch``, ``scribe worker``...)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RootArgument = Annotated[
    Path | None,
    typer.Argument(help="Repository root (default: found from the current directory)."),
]
RulesOption = Annotated[
    Path | None, typer.Option("--rules", help="Rules file (default: .scribe/rules.yaml).")
]
LogLevelOption = Annotated[
    str | None, typer.Option("--log-level", help="debug, info, warning or error.")
]
LogFileOption = Annotated[
    Path | None, typer.Option("--log-file", help="Also append JSON log lines to this file.")
]
ListenOption = Annotated[
    str | None,
    typer.Option(
        "--listen",
        help="HOST:PORT for /metrics, /healthz, /readyz and /status (default: the listen "
        "setting, 127.0.0.1:9469), or off.",
    ),
]

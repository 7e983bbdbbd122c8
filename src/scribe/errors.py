"""Scribe's exceptions.

ScribeError            root; the CLI maps it to an exit code
├── ConfigError        a rules or settings file is invalid (exit 2)
├── Skipped            a file Scribe will not touch, with the reason
└── ContentChanged     a compare-and-swap write lost the race; re-plan
"""

from __future__ import annotations

from dataclasses import dataclass


class ScribeError(Exception):
    """Root of every error Scribe raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config file, located as precisely as the file allows."""

    file: str
    line: int
    column: int
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return (
            f"{where}: {self.key_path}: {self.message}"
            if self.key_path
            else f"{where}: {self.message}"
        )


class ConfigError(ScribeError):
    """A rules or settings file cannot be used; carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Skipped(ScribeError):
    """A file Scribe refuses to read or rewrite (binary, too large, outside the root...)."""


class OutsideRoot(Skipped):
    """The path leads outside the repository (a symlink): a scope violation."""


class ContentChanged(ScribeError):
    """The file changed between planning and writing; the write was not made."""


class FileBusy(ScribeError):
    """Another process holds the file open for writing; replacing it now would send
    the rest of that writer's bytes to a deleted file."""

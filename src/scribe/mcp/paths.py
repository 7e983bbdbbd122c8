"""Which paths an agent may read: confinement to the repository, and the denylist.

Every check is made twice, on the path as given (normalised, symlinks not followed)
and on the real path the kernel would open (every symlink resolved), because each
one alone can be fooled: ``..`` is judged on the first, a symlink on the second.
Containment compares path components, never string prefixes, so ``/repo-evil`` is
not inside ``/repo``.

Denied names are compared after folding them (NFKC, case, accents, invisible
characters and a few common look-alike letters): a name that merely *looks* like
``.env`` or ``.git`` is treated as one, whatever the file system would make of it.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

from scribe.mcp.failures import CONFLICT, INVALID_ARGUMENT, NOT_FOUND, SCOPE_VIOLATION, ToolFailure

__all__ = ["DENIED_LOCATIONS", "ReadScope", "Resolved", "fold"]

#: Absolute places never read, whatever is allow-listed or a symlink leads to.
DENIED_LOCATIONS: tuple[Path, ...] = (
    Path.home() / ".ssh",
    Path("/etc"),
    Path("/proc"),
    Path("/sys"),
)

# Letters from other scripts that pass for the Latin ones in the denied names
# (.env, .git, .scribe/registry, .ssh); NFKC leaves them alone.
_LOOK_ALIKES = str.maketrans(
    {
        # Cyrillic
        "\u0430": "a",
        "\u0441": "c",
        "\u0501": "d",
        "\u0435": "e",
        "\u0451": "e",
        "\u04bb": "h",
        "\u0456": "i",
        "\u0457": "i",
        "\u0458": "j",
        "\u04cf": "l",
        "\u043e": "o",
        "\u0440": "p",
        "\u0455": "s",
        "\u0442": "t",
        "\u0443": "y",
        "\u0445": "x",
        # Greek
        "\u03bd": "v",
        "\u03b9": "i",
        "\u03bf": "o",
        "\u03c1": "p",
        "\u03c4": "t",
        "\u03b5": "e",
        # Latin dotless i, script g, iota
        "\u0131": "i",
        "\u0261": "g",
        "\u0269": "i",
        # full stops NFKC keeps: ideographic, katakana middle dot
        "\u3002": ".",
        "\u30fb": ".",
    }
)
_DROPPED = frozenset({"Mn", "Me", "Cf", "Cc"})  # marks, invisible formatting, controls


def fold(name: str) -> str:
    """``name`` as the denylist compares it: ``.ENV``, fullwidth ``.\\uff45nv``,
    ``.e\\u200bnv`` (a zero-width space) and ``.\\u0435nv`` (Cyrillic e) all fold
    to ``.env``."""
    if name.isascii() and name.isprintable():
        return name.casefold().strip()
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", name).casefold())
    text = "".join(c for c in text if unicodedata.category(c) not in _DROPPED)
    return unicodedata.normalize("NFC", text.translate(_LOOK_ALIKES)).strip()


def _denied_name(parts: Sequence[str]) -> str | None:
    """The denied name among ``parts`` (components below a base), if any."""
    folded = [fold(part) for part in parts]
    for i, name in enumerate(folded):
        if name.startswith(".env"):
            return ".env*"
        if name == ".git":
            return ".git/"
        if name == ".scribe" and i + 1 < len(folded) and folded[i + 1] == "registry":
            return ".scribe/registry/"
    return None


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def _folded_parts(path: Path) -> tuple[str, ...]:
    return tuple(fold(part) for part in path.parts)


def _normalised(path: str) -> Path:
    """``path`` with ``.``/``..`` and repeated slashes removed, symlinks not followed."""
    text = os.path.normpath(path)
    if text.startswith("//"):  # POSIX keeps a leading "//"; Linux treats it as "/"
        text = "/" + text.lstrip("/")
    return Path(text)


@dataclass(frozen=True)
class Resolved:
    """A path that may be read: ``real`` has every symlink resolved, ``rel`` is the
    POSIX path below the repository root (None for an allow-listed absolute path)
    and ``absolute`` is ``real`` as a string."""

    real: Path
    rel: str | None
    absolute: str


class ReadScope:
    """The paths under ``root`` (and under ``allow_absolute``) an agent may read.

    ``extra_deny`` holds the repository's own denylist, gitignore-style patterns
    relative to the root; it adds to the built-in denials and cannot lift them.
    """

    def __init__(
        self,
        root: Path,
        *,
        allow_absolute: Sequence[Path] = (),
        extra_deny: Sequence[str] = (),
    ) -> None:
        self.root = Path(os.path.realpath(root))
        # The root as configured, when a symlink makes it differ from the real one:
        # absolute paths may be spelled either way.
        self._root_spellings = tuple(dict.fromkeys((self.root, _normalised(os.path.abspath(root)))))
        self.allow_absolute = tuple(Path(os.path.realpath(p)) for p in allow_absolute)
        self.extra_deny = tuple(extra_deny)
        self._deny = pathspec.GitIgnoreSpec.from_lines(self.extra_deny)
        self._deny_folded = pathspec.GitIgnoreSpec.from_lines(fold(p) for p in self.extra_deny)
        self._locations = tuple(
            (_folded_parts(loc), _folded_parts(Path(os.path.realpath(loc))))
            for loc in DENIED_LOCATIONS
        )

    def resolve(self, given: str) -> Resolved:
        """Where ``given`` really leads, if it may be read.

        Raises ``ToolFailure``: SCOPE_VIOLATION (with ``reason``) for a path out of
        bounds or denied, NOT_FOUND for a missing file, INVALID_ARGUMENT for a
        directory, a device or a path that is not a path at all.
        """
        if not isinstance(given, str) or not given.strip():
            raise ToolFailure(INVALID_ARGUMENT, "path is empty: give a file's path", path=given)
        if "\0" in given:
            raise ToolFailure(INVALID_ARGUMENT, "path contains a NUL byte", path=given)
        if given == "~" or given.startswith("~/"):
            raise _refusal(
                given,
                "home_path",
                "~ is not expanded: give a path relative to the repository root",
            )
        absolute = os.path.isabs(given)
        lexical = _normalised(given if absolute else os.path.join(self.root, given))
        self._check_location(given, lexical)
        base = self._lexical_base(given, lexical, absolute)
        self._check_names(given, lexical, base)
        real = Path(os.path.realpath(lexical))
        self._check_location(given, real)
        real_base = self._real_base(real, base)
        if real_base is None:
            raise _refusal(given, "symlink_escape", "a symlink leads out of the permitted folders")
        self._check_names(given, real, real_base)
        rel = real.relative_to(self.root).as_posix() if real_base == self.root else None
        _require_regular_file(given, real)
        return Resolved(real=real, rel=rel, absolute=str(real))

    def open(self, given: str) -> tuple[Resolved, int]:
        """``resolve(given)`` and a read-only descriptor of exactly that file.

        The descriptor is checked against the resolved path after opening, so a
        symlink swapped in between cannot redirect the read. The caller closes it.
        """
        resolved = self.resolve(given)
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            fd = os.open(resolved.real, flags)
        except FileNotFoundError:
            raise ToolFailure(NOT_FOUND, f"no such file: {given}", path=given) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _changed(given) from None
            raise ToolFailure(
                INVALID_ARGUMENT, f"cannot open {given}: {exc.strerror}", path=given
            ) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or _opened_path(fd) not in (
                None,
                resolved.absolute,
            ):
                raise _changed(given)
        except BaseException:
            os.close(fd)
            raise
        return resolved, fd

    def _lexical_base(self, given: str, lexical: Path, absolute: bool) -> Path:
        for spelling in self._root_spellings:
            if _inside(lexical, spelling):
                return spelling
        if not absolute:
            raise _refusal(given, "parent_escape", "the path climbs out of the repository with ..")
        for allowed in self.allow_absolute:
            if _inside(lexical, allowed):
                return allowed
        raise _refusal(
            given, "absolute_outside", "absolute paths outside the repository are not allowed"
        )

    def _real_base(self, real: Path, base: Path) -> Path | None:
        if _inside(real, self.root):
            return self.root
        return base if base in self.allow_absolute and _inside(real, base) else None

    def _check_location(self, given: str, path: Path) -> None:
        folded = _folded_parts(path)
        for (plain, real), location in zip(self._locations, DENIED_LOCATIONS, strict=True):
            if folded[: len(plain)] == plain or folded[: len(real)] == real:
                raise _refusal(given, "denied_location", f"{location} is never read")

    def _check_names(self, given: str, path: Path, base: Path) -> None:
        below = path.relative_to(base).parts
        name = _denied_name(below)
        if name is not None:
            raise _refusal(given, "denied_name", f"{name} paths are never read")
        if base in self._root_spellings and below:
            rel = "/".join(below)
            if self._deny.match_file(rel) or self._deny_folded.match_file(fold(rel)):
                raise _refusal(given, "denylist", "the repository's denylist excludes this path")


def _refusal(given: str, reason: str, why: str) -> ToolFailure:
    return ToolFailure(
        SCOPE_VIOLATION, f"refused to read {given}: {why}", path=given, reason=reason
    )


def _require_regular_file(given: str, real: Path) -> None:
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        raise ToolFailure(NOT_FOUND, f"no such file: {given}", path=given) from None
    except OSError as exc:
        raise ToolFailure(
            INVALID_ARGUMENT, f"cannot read {given}: {exc.strerror}", path=given
        ) from None
    if stat.S_ISDIR(mode):
        raise ToolFailure(INVALID_ARGUMENT, f"{given} is a directory, not a file", path=given)
    if not stat.S_ISREG(mode):
        raise ToolFailure(
            INVALID_ARGUMENT,
            f"{given} is not a regular file (a device, FIFO or socket)",
            path=given,
        )


def _opened_path(fd: int) -> str | None:
    """The path the kernel has for ``fd`` (None where /proc does not say)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _changed(given: str) -> ToolFailure:
    return ToolFailure(
        CONFLICT, f"{given} changed while it was being opened; try again", path=given
    )

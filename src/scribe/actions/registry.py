"""The action registry: every action rules may name, with its manifest and origin.

Actions come from three places, in this order: Scribe's built-ins, the entry points
of group ``scribe.actions`` of the installed distributions, and, only when the
repository opts in, its own ``.scribe/actions/*.py`` files. A plug-in is taken
whole or not at all: if its import raises, it is not an action, its ``params`` is
not a pydantic model, its manifest is missing or invalid, or its name is taken,
it is refused with the reason (logged and kept in ``Registry.refused``) and the
others load as if it were not there.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, partial
from importlib.machinery import SourceFileLoader
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Literal

from pydantic import BaseModel

from scribe import __version__
from scribe.actions import ACTIONS, Action, is_content
from scribe.actions.manifest import (
    Manifest,
    ManifestError,
    Permissions,
    manifest_for,
    read_manifest,
)
from scribe.config import STATE_DIR

BUILTIN = "built-in"
ENTRY_POINT_GROUP = "scribe.actions"
#: Modules holding a ``BUILTINS`` tuple of actions, tried in this order.
LOCAL_DIR = Path(STATE_DIR) / "actions"
#: The version a local action's manifest gets when it gives none: it is versioned
#: with the repository, not released on its own.
LOCAL_VERSION = "0"
#: What a plug-in's own code may raise without taking the registry down with it
#: (a module written as a script may call ``sys.exit`` when imported).
PLUGIN_FAULTS = (Exception, SystemExit)

log = logging.getLogger("scribe")


@dataclass(frozen=True)
class Plugin:
    """An action that loaded, its manifest, and where it came from."""

    action: Action
    manifest: Manifest
    #: ``"built-in"``, ``"entry point DIST==VERSION"`` or ``".scribe/actions/FILE.py"``.
    origin: str

    @property
    def builtin(self) -> bool:
        return self.origin == BUILTIN

    @property
    def kind(self) -> Literal["content", "effect"]:
        return "content" if is_content(self.action) else "effect"


@dataclass(frozen=True)
class Refused:
    """A plug-in that was not loaded, and why."""

    name: str
    origin: str
    reason: str
    #: The manifest with freshly generated parameters, when stale parameters were
    #: its only problem (what ``scribe plugins show NAME --json`` prints).
    regenerated: Manifest | None = None


@dataclass(frozen=True)
class Registry:
    """The loaded actions by name, and the refused plug-ins."""

    plugins: Mapping[str, Plugin]
    refused: tuple[Refused, ...] = ()

    @property
    def actions(self) -> dict[str, Action]:
        """Name to action, for the rules model (``parse_rules(..., actions=...)``)."""
        return {name: plugin.action for name, plugin in self.plugins.items()}

    def get(self, name: str) -> Plugin | None:
        return self.plugins.get(name)

    def permissions(self, name: str) -> Permissions | None:
        """What the plug-in ``name`` may do; None for a built-in (trusted, and
        confined by the engine) and for a name that is not loaded."""
        plugin = self.plugins.get(name)
        return None if plugin is None or plugin.builtin else plugin.manifest.permissions

    def refusal(self, name: str) -> Refused | None:
        """Why a plug-in called ``name`` was refused, if one was."""
        return next((r for r in self.refused if r.name == name), None)


def load_registry(root: Path | None, *, local: bool = False) -> Registry:
    """Built-ins, then entry-point plug-ins, then (``local``) ``root/.scribe/actions/*.py``.

    Local actions run the repository's own code, so they load only when asked;
    files whose name starts with ``_`` are skipped (helpers, drafts).
    """
    if local and root is None:
        raise ValueError("local actions need the repository root")
    loading = _Loading(builtin_registry())
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        loading.admit(ep.name, _ep_origin(ep), partial(_from_entry_point, ep))
    if local and root is not None:
        for path in _local_files(root):
            origin = (LOCAL_DIR / path.name).as_posix()
            loading.admit(path.stem, origin, partial(_from_local, root, path))
    return loading.registry()


@cache
def builtin_registry() -> Registry:
    """Scribe's built-in actions alone: no entry points, no repository code."""
    loading = _Loading(Registry({}))
    for action in _builtin_actions():
        loading.admit(_name_of(action), BUILTIN, partial(_builtin, action))
    return loading.registry()


class _Refusal(Exception):
    def __init__(self, reason: str, regenerated: Manifest | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.regenerated = regenerated


class _Loading:
    """The registry being filled, one plug-in at a time."""

    def __init__(self, start: Registry) -> None:
        self.plugins: dict[str, Plugin] = dict(start.plugins)
        self.refused: list[Refused] = list(start.refused)

    def registry(self) -> Registry:
        return Registry(MappingProxyType(self.plugins), tuple(self.refused))

    def admit(self, name: str, origin: str, load: Callable[[], tuple[Action, Manifest]]) -> None:
        try:
            action, manifest = load()
        except _Refusal as refusal:
            self._refuse(Refused(name, origin, refusal.reason, refusal.regenerated))
            return
        except PLUGIN_FAULTS as exc:  # plug-in code raised: it fails alone, the rest load
            self._refuse(Refused(name, origin, f"failed: {_last_line(exc)}"))
            return
        taken = self.plugins.get(manifest.name)
        if taken is not None:
            by = "a built-in action" if taken.builtin else f"the plug-in from {taken.origin}"
            self._refuse(Refused(name, origin, f"the name {manifest.name!r} is taken by {by}"))
            return
        self.plugins[manifest.name] = Plugin(action, manifest, origin)

    def _refuse(self, refused: Refused) -> None:
        log.warning("plug-in %r (%s) refused: %s", refused.name, refused.origin, refused.reason)
        self.refused.append(refused)


def _builtin_actions() -> Iterator[Any]:
    yield from ACTIONS.values()


def _builtin(action: Any) -> tuple[Action, Manifest]:
    _check_action(action, _name_of(action))
    return action, _manifest(action, {"permissions": {"write": ["**"]}}, __version__)


def _ep_origin(ep: importlib.metadata.EntryPoint) -> str:
    dist = ep.dist
    return f"entry point {dist.name}=={dist.version}" if dist else f"entry point {ep.value}"


def _from_entry_point(ep: importlib.metadata.EntryPoint) -> tuple[Action, Manifest]:
    try:
        loaded = ep.load()
    except PLUGIN_FAULTS as exc:  # importing runs the plug-in's code
        raise _Refusal(f"import failed: {_last_line(exc)}") from None
    action = _make(loaded, f"{ep.value} ")
    _check_action(action, ep.name)
    module = sys.modules.get(ep.module)
    places = _package_places(ep.module, ep.name)
    version = ep.dist.version if ep.dist else LOCAL_VERSION
    return action, _manifest(action, _shipped(action, module, places), version)


def _local_files(root: Path) -> list[Path]:
    folder = root / LOCAL_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith(("_", ".")))


def _from_local(root: Path, path: Path) -> tuple[Action, Manifest]:
    if not path.resolve().is_relative_to(root.resolve()):
        raise _Refusal("the file leads outside the repository (a symlink); not loaded")
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    module_name = f"_scribe_local_{digest}_{path.stem}"
    try:
        module = _exec_file(module_name, path)
        if not hasattr(module, "action"):
            raise _Refusal("the module defines no `action`")
        action = _make(module.action, "")
        _check_action(action, path.stem)
        places = [path.with_name(f"{path.stem}.manifest.json"), path.with_name("manifest.json")]
        return action, _manifest(action, _shipped(action, module, places), LOCAL_VERSION)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise


class _NoBytecodeLoader(SourceFileLoader):
    """Loads a repository's own action without writing ``__pycache__`` into it."""

    def set_data(self, path: str, data: object, *, _mode: int = 0o666) -> None:
        pass


def _exec_file(module_name: str, path: Path) -> ModuleType:
    """Import ``path`` under a private name (kept in ``sys.modules`` while it is
    in use, as dataclasses and pydantic look a module up there)."""
    loader = _NoBytecodeLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, path, loader=loader)
    if spec is None:
        raise _Refusal("cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        loader.exec_module(module)
    except PLUGIN_FAULTS as exc:  # importing runs the plug-in's code
        raise _Refusal(f"import failed: {_last_line(exc)}") from None
    return module


def _make(loaded: Any, what: str) -> Any:
    """The action itself, or the one a class or zero-argument factory makes."""
    if isinstance(loaded, type) or (not _looks_like_action(loaded) and callable(loaded)):
        try:
            return loaded()
        except PLUGIN_FAULTS as exc:  # the plug-in's own constructor
            raise _Refusal(f"calling {what or 'action '}failed: {_last_line(exc)}") from None
    return loaded


def _looks_like_action(obj: Any) -> bool:
    return all(hasattr(obj, m) for m in ("name", "params", "summary")) and (
        callable(getattr(obj, "plan", None)) or callable(getattr(obj, "effects", None))
    )


def _check_action(action: Any, expected: str) -> None:
    """Refuse what is not an action, or is one under another name than it was found by."""
    missing = [m for m in ("name", "params", "summary") if not hasattr(action, m)]
    if not (callable(getattr(action, "plan", None)) or callable(getattr(action, "effects", None))):
        missing.append("plan or effects method")
    if missing:
        raise _Refusal(
            f"not an action (neither a ContentAction nor an EffectAction): "
            f"{type(action).__name__} has no {', '.join(missing)}"
        )
    params = action.params
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise _Refusal(f"params is not a pydantic model class (got {_short(params)})")
    if action.name != expected:
        raise _Refusal(
            f"the action is named {action.name!r} but was found as {expected!r}; "
            "give both the same name"
        )


def _package_places(module_name: str, name: str) -> list[Traversable]:
    """Where a manifest file of an entry point's package would be."""
    module = sys.modules.get(module_name)
    is_package = module is not None and hasattr(module, "__path__")
    package = module_name if is_package else module_name.rpartition(".")[0]
    if not package:
        return []  # a top-level single-file module has no package to hold a manifest
    folder = importlib.resources.files(package)
    return [folder / f"{name}.manifest.json", folder / "manifest.json"]


def _shipped(
    action: Any, module: ModuleType | None, places: list[Traversable] | list[Path]
) -> Mapping[str, Any] | Manifest | None:
    """The manifest a plug-in ships: the action's ``manifest`` attribute, its
    module's, or the first manifest file found."""
    for owner in (action, module):
        data = getattr(owner, "manifest", None)
        if data is not None and not isinstance(data, ModuleType):
            return data  # type: ignore[no-any-return]
    for place in places:
        if place.is_file():
            try:
                return read_manifest(place)
            except ManifestError as exc:
                raise _Refusal(f"invalid manifest: {'; '.join(exc.problems)}") from None
    return None


def _manifest(action: Any, data: Any, version: str) -> Manifest:
    try:
        return manifest_for(action, data, version=version)
    except ManifestError as exc:
        reason = "; ".join(exc.problems)
        if data is not None:
            reason = f"invalid manifest: {reason}"
        raise _Refusal(reason, exc.regenerated) from None


def _name_of(action: Any) -> str:
    name = getattr(action, "name", None)
    return name if isinstance(name, str) else repr(action)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _last_line(exc: BaseException) -> str:
    """The last line of the traceback, and where the plug-in's code raised it."""
    last = traceback.format_exception_only(exc)[-1].strip()
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{last} ({Path(exc.filename).name}:{exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    if frames:
        return f"{last} ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return last


__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Plugin",
    "Refused",
    "Registry",
    "builtin_registry",
    "load_registry",
]

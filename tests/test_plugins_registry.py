"""The action registry over real distributions (a hand-written ``.dist-info`` on
``sys.path``, which is all ``importlib.metadata`` needs) and real local files."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import textwrap
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

import scribe.actions.registry
from scribe import __version__
from scribe.actions import ACTIONS
from scribe.actions.registry import BUILTIN, Registry, builtin_registry, load_registry
from scribe.events import EventKind
from scribe.plan import plan_file
from scribe.rules.load import parse_rules

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def install(
    site: Path,
    dist: str,
    version: str,
    entry_points: Mapping[str, str],
    files: Mapping[str, str],
) -> None:
    """Install ``dist`` into ``site`` as pip would leave it, minus the installer."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[scribe.actions]\n{lines}")
    for relative, text in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def action_source(
    name: str = "shout",
    *,
    manifest: str | None = '{"permissions": {"write": ["**/*.md"]}}',
    before: str = "",
    params: str = "Params",
) -> str:
    """A module defining a content action ``name`` (upper-cases the body)."""
    lines = [
        "from pydantic import BaseModel",
        "from scribe.actions import Content",
        before,
        "class Params(BaseModel):",
        "    times: int = 1",
        "def plan(file, params):",
        "    return file.text.upper()",
        f"action = Content({name!r}, {params}, plan, 'Upper-case the file.')",
    ]
    if manifest is not None:
        lines.append(f"manifest = {manifest}")
    return "\n".join(lines) + "\n"


def install_plugin(site: Path, dist: str, source: str, *, name: str = "shout") -> None:
    module = dist.replace("-", "_")
    install(site, dist, "1.0", {name: f"{module}:action"}, {f"{module}.py": source})


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh directory on ``sys.path``; what the test imports from it is forgotten after."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    forget_modules_under(tmp_path)


def forget_modules_under(folder: Path) -> None:
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).is_relative_to(folder):
            del sys.modules[name]
    importlib.invalidate_caches()


def local_repo(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "repo"
    folder = root / ".scribe" / "actions"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return root


def refusal_reason(registry: Registry, name: str) -> str:
    refused = registry.refusal(name)
    assert refused is not None, f"{name} was not refused: {registry.refused}"
    assert registry.get(name) is None
    return refused.reason


# -- built-ins ---------------------------------------------------------------------


def test_builtins_come_first_with_generated_manifests() -> None:
    registry = builtin_registry()
    assert set(ACTIONS) <= set(registry.plugins)
    assert registry.refused == ()
    plugin = registry.plugins["set"]
    assert plugin.origin == BUILTIN == "built-in"
    assert plugin.builtin
    assert plugin.kind == "content"
    assert plugin.action is ACTIONS["set"]
    assert plugin.manifest.version == __version__
    assert plugin.manifest.permissions.write == ["**"]
    assert plugin.manifest.description == ACTIONS["set"].summary
    assert plugin.manifest.parameters == ACTIONS["set"].params.model_json_schema()
    # Built-ins are trusted; the engine's confinement binds them, not a manifest.
    assert registry.permissions("set") is None


def test_builtin_registry_is_built_once() -> None:
    assert builtin_registry() is builtin_registry()


def test_load_registry_without_plugins_holds_the_builtins(site: Path) -> None:
    registry = load_registry(None)
    assert registry.plugins.keys() == builtin_registry().plugins.keys()


# -- entry points ------------------------------------------------------------------


def test_an_entry_point_plugin_loads_and_runs_in_a_rule(site: Path) -> None:
    install_plugin(site, "scribe-shout", action_source())
    registry = load_registry(None)
    plugin = registry.get("shout")
    assert plugin is not None, registry.refused
    assert plugin.origin == "entry point scribe-shout==1.0"
    assert not plugin.builtin
    assert plugin.kind == "content"
    assert plugin.manifest.version == "1.0"  # the distribution's
    assert plugin.manifest.description == "Upper-case the file."
    assert registry.permissions("shout") == plugin.manifest.permissions
    assert registry.permissions("shout").write == ["**/*.md"]  # type: ignore[union-attr]
    assert registry.actions["shout"] is plugin.action
    assert registry.actions["set"] is ACTIONS["set"]

    rules = parse_rules(
        "rules:\n  - id: loud\n    do:\n      - shout: {times: 2}\n",
        "rules.yaml",
        actions=registry.actions,
    )
    planned = plan_file(
        "a.md",
        "quiet\n",
        "0" * 64,
        rules,
        kind=EventKind.MODIFIED,
        time=T0,
        size=6,
        may_restamp=True,
    )
    assert planned.new_text == "QUIET\n"


def test_an_entry_point_may_name_a_class_or_a_factory(site: Path) -> None:
    source = action_source(manifest="{}") + textwrap.dedent(
        """
        class Loud:
            name = "loud"
            params = Params
            summary = "Shout, as a class."
            def plan(self, file, params):
                return file.text.upper()
        def make():
            return Content("maker", Params, plan, "Made by a factory.")
        """
    )
    install(
        site,
        "scribe-kinds",
        "2.0",
        {"loud": "scribe_kinds:Loud", "maker": "scribe_kinds:make"},
        {"scribe_kinds.py": source},
    )
    registry = load_registry(None)
    assert registry.refused == ()
    assert type(registry.plugins["loud"].action).__name__ == "Loud"  # an instance
    assert registry.plugins["maker"].manifest.description == "Made by a factory."


def test_a_factory_plugin_with_a_module_manifest_loads(site: Path) -> None:
    source = action_source(manifest="{}") + "def make():\n    return action\n"
    install(site, "scribe-made", "3.1", {"shout": "scribe_made:make"}, {"scribe_made.py": source})
    plugin = load_registry(None).get("shout")
    assert plugin is not None
    assert plugin.manifest.version == "3.1"


def test_an_effect_action_plugin_is_listed_as_effect(site: Path) -> None:
    source = textwrap.dedent(
        """
        from pydantic import BaseModel
        from scribe.actions import Effects
        from scribe.actions.effects import Emit
        class Params(BaseModel):
            event: str
        def effects(file, params):
            return [Emit(params.event, file.path)]
        action = Effects("announce", Params, effects, "Raise an event.")
        manifest = {}
        """
    )
    install_plugin(site, "scribe-announce", source, name="announce")
    plugin = load_registry(None).get("announce")
    assert plugin is not None
    assert plugin.kind == "effect"


def test_a_manifest_json_in_the_package_is_used(site: Path) -> None:
    install(
        site,
        "scribe-pkg",
        "1.0",
        {"shout": "scribe_pkg.actions:action", "hush": "scribe_pkg.hush:action"},
        {
            "scribe_pkg/__init__.py": "",
            "scribe_pkg/actions.py": action_source(manifest=None),
            "scribe_pkg/hush.py": action_source("hush", manifest=None),
            "scribe_pkg/manifest.json": json.dumps({"description": "From manifest.json."}),
            "scribe_pkg/hush.manifest.json": json.dumps({"description": "From its own file."}),
        },
    )
    registry = load_registry(None)
    assert registry.refused == ()
    assert registry.plugins["shout"].manifest.description == "From manifest.json."
    assert registry.plugins["hush"].manifest.description == "From its own file."


def test_an_action_attribute_manifest_wins_over_the_module_and_the_file(site: Path) -> None:
    source = action_source(manifest='{"description": "module"}') + textwrap.dedent(
        """
        class Own:
            name = "own"
            params = Params
            summary = "s"
            manifest = {"description": "attribute"}
            def plan(self, file, params):
                return file.text
        own = Own()
        """
    )
    install(
        site,
        "scribe-own",
        "1.0",
        {"own": "scribe_own:own"},
        {"scribe_own/__init__.py": source, "scribe_own/manifest.json": '{"description": "f"}'},
    )
    assert load_registry(None).plugins["own"].manifest.description == "attribute"


BROKEN_MANIFESTS = {
    "bad name": (
        action_source("Shout", manifest="{}"),
        "Shout",
        "invalid manifest: name: String should match pattern '^[a-z][a-z0-9_]*$'",
    ),
    "2.2 without hma_compliance": (
        action_source(manifest='{"manifest_version": "2.2"}'),
        "shout",
        "invalid manifest: hma_compliance: required when manifest_version is '2.2'",
    ),
    "network": (
        action_source(manifest='{"permissions": {"network": "lan"}}'),
        "shout",
        "invalid manifest: permissions.network: Input should be 'none'",
    ),
    "stale parameters": (
        action_source(manifest='{"parameters": {"type": "object"}}'),
        "shout",
        "invalid manifest: parameters: differ from the action's params model; "
        "regenerate with `scribe plugins show shout --json`",
    ),
    "missing": (
        action_source(manifest=None),
        "shout",
        "no manifest: give the action (or its module) a `manifest` dict, "
        "or ship a manifest.json beside it",
    ),
    "not a mapping": (
        action_source(manifest="['write']"),
        "shout",
        "invalid manifest: manifest: expected a mapping, got list",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_MANIFESTS))
def test_a_plugin_with_a_broken_manifest_is_refused_with_the_reason(
    site: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    source, name, reason = BROKEN_MANIFESTS[case]
    install_plugin(site, "scribe-broken", source, name=name)
    install_plugin(site, "scribe-fine", action_source("fine", manifest="{}"), name="fine")
    with caplog.at_level(logging.WARNING, logger="scribe"):
        registry = load_registry(None)
    assert refusal_reason(registry, name) == reason
    assert registry.refusal(name).origin == "entry point scribe-broken==1.0"  # type: ignore[union-attr]
    assert registry.get("fine") is not None
    assert name not in registry.actions
    assert f"plug-in {name!r} (entry point scribe-broken==1.0) refused: {reason}" in caplog.text


def test_stale_parameters_keep_the_regenerated_manifest(site: Path) -> None:
    install_plugin(site, "scribe-stale", action_source(manifest='{"parameters": {}}'))
    refused = load_registry(None).refusal("shout")
    assert refused is not None
    assert refused.regenerated is not None
    assert refused.regenerated.parameters["properties"] == {
        "times": {"default": 1, "title": "Times", "type": "integer"}
    }


def test_an_unreadable_manifest_json_is_refused_with_where(site: Path) -> None:
    install(
        site,
        "scribe-json",
        "1.0",
        {"shout": "scribe_json:action"},
        {
            "scribe_json/__init__.py": action_source(manifest=None),
            "scribe_json/manifest.json": '{"description": "x",}',
        },
    )
    reason = refusal_reason(load_registry(None), "shout")
    assert reason.startswith(
        "invalid manifest: manifest.json:1:21: invalid JSON: Expecting property name"
    )


def test_a_plugin_whose_import_raises_fails_alone(site: Path) -> None:
    install_plugin(site, "scribe-boom", "import os\nraise RuntimeError('boom')\n", name="boom")
    install_plugin(site, "scribe-typo", "def broken(:\n    pass\n", name="typo")
    install_plugin(site, "scribe-exit", "import sys\nsys.exit(3)\n", name="exit")
    install_plugin(site, "scribe-shout", action_source())
    registry = load_registry(None)
    assert (
        refusal_reason(registry, "boom") == "import failed: RuntimeError: boom (scribe_boom.py:2)"
    )
    assert refusal_reason(registry, "typo").startswith("import failed: SyntaxError: ")
    assert refusal_reason(registry, "typo").endswith("(scribe_typo.py:1)")
    assert refusal_reason(registry, "exit") == "import failed: SystemExit: 3 (scribe_exit.py:2)"
    assert registry.get("shout") is not None


def test_a_factory_that_raises_is_refused(site: Path) -> None:
    source = action_source() + "def make():\n    raise ValueError('no config')\n"
    install(site, "scribe-f", "1.0", {"shout": "scribe_f:make"}, {"scribe_f.py": source})
    assert refusal_reason(load_registry(None), "shout") == (
        "calling scribe_f:make failed: ValueError: no config (scribe_f.py:11)"
    )


def test_an_object_that_is_no_action_is_refused(site: Path) -> None:
    install(
        site,
        "scribe-odd",
        "1.0",
        {"odd": "scribe_odd:odd", "half": "scribe_odd:half"},
        {
            "scribe_odd.py": """
                odd = {"name": "odd"}
                class Half:
                    name = "half"
                    params = None
                    plan = "not callable"
                half = Half()
            """
        },
    )
    registry = load_registry(None)
    assert refusal_reason(registry, "odd") == (
        "not an action (neither a ContentAction nor an EffectAction): "
        "dict has no name, params, summary, plan or effects method"
    )
    assert refusal_reason(registry, "half") == (
        "not an action (neither a ContentAction nor an EffectAction): "
        "Half has no summary, plan or effects method"
    )


def test_params_that_are_not_a_pydantic_model_are_refused(site: Path) -> None:
    install_plugin(site, "scribe-dict", action_source(params="dict"))
    assert refusal_reason(load_registry(None), "shout") == (
        "params is not a pydantic model class (got <class 'dict'>)"
    )


def test_a_name_taken_by_a_builtin_is_refused(site: Path) -> None:
    install_plugin(site, "scribe-set", action_source("set", manifest="{}"), name="set")
    registry = load_registry(None)
    assert registry.refusal("set") is not None
    assert registry.refusal("set").reason == "the name 'set' is taken by a built-in action"  # type: ignore[union-attr]
    assert registry.get("set").builtin  # type: ignore[union-attr]
    assert registry.actions["set"] is ACTIONS["set"]


def test_a_name_taken_by_an_earlier_plugin_is_refused(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = tmp_path / "later"
    later.mkdir()
    install_plugin(later, "scribe-second", action_source(manifest='{"description": "second"}'))
    monkeypatch.syspath_prepend(str(later))
    monkeypatch.syspath_prepend(str(site))  # first on sys.path, so found first
    install_plugin(site, "scribe-first", action_source(manifest='{"description": "first"}'))
    registry = load_registry(None)
    assert registry.plugins["shout"].manifest.description == "first"
    refused = registry.refusal("shout")
    assert refused is not None
    assert refused.origin == "entry point scribe-second==1.0"
    assert (
        refused.reason
        == "the name 'shout' is taken by the plug-in from entry point scribe-first==1.0"
    )


def test_an_entry_point_named_unlike_its_action_is_refused(site: Path) -> None:
    install_plugin(site, "scribe-alias", action_source(), name="yell")
    assert refusal_reason(load_registry(None), "yell") == (
        "the action is named 'shout' but was found as 'yell'; give both the same name"
    )


# -- local actions -----------------------------------------------------------------


def test_local_actions_are_ignored_unless_asked_for(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    root = local_repo(
        tmp_path,
        {"shout.py": action_source(before=f"open({str(marker)!r}, 'w').close()")},
    )
    try:
        assert "shout" not in load_registry(root).plugins
        assert not marker.exists()  # not even imported
        registry = load_registry(root, local=True)
    finally:
        forget_modules_under(tmp_path)
    plugin = registry.get("shout")
    assert plugin is not None, registry.refused
    assert plugin.origin == ".scribe/actions/shout.py"
    assert plugin.manifest.version == "0"
    assert registry.permissions("shout").write == ["**/*.md"]  # type: ignore[union-attr]
    assert marker.exists()
    # Loading the repository's code leaves no bytecode behind in the repository.
    assert not (root / ".scribe" / "actions" / "__pycache__").exists()


def test_local_manifests_may_sit_beside_the_file(tmp_path: Path) -> None:
    root = local_repo(
        tmp_path,
        {
            "shout.py": action_source(manifest=None),
            "hush.py": action_source("hush", manifest=None),
            "hush.manifest.json": '{"description": "own file", "version": "2.0"}',
            "manifest.json": '{"description": "shared file"}',
        },
    )
    try:
        registry = load_registry(root, local=True)
    finally:
        forget_modules_under(tmp_path)
    assert registry.plugins["shout"].manifest.description == "shared file"
    assert registry.plugins["hush"].manifest.description == "own file"
    assert registry.plugins["hush"].manifest.version == "2.0"


def test_a_broken_local_action_fails_alone_and_is_not_kept(tmp_path: Path) -> None:
    root = local_repo(
        tmp_path,
        {
            "boom.py": "x = 1\nraise KeyError('missing')\n",
            "empty.py": "value = 1\n",
            "named.py": action_source(manifest="{}"),
            "shout.py": action_source(manifest="{}"),
            "_helper.py": "raise SystemExit('never imported')\n",
        },
    )
    try:
        registry = load_registry(root, local=True)
        assert not [m for m in sys.modules if m.startswith("_scribe_local_") and "boom" in m]
    finally:
        forget_modules_under(tmp_path)
    assert refusal_reason(registry, "boom") == "import failed: KeyError: 'missing' (boom.py:2)"
    assert refusal_reason(registry, "empty") == "the module defines no `action`"
    assert refusal_reason(registry, "named") == (
        "the action is named 'shout' but was found as 'named'; give both the same name"
    )
    assert registry.get("shout") is not None
    assert [r.name for r in registry.refused] == ["boom", "empty", "named"]


def test_a_local_action_leading_outside_the_repository_is_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    outside = tmp_path / "outside.py"
    outside.write_text(action_source(before=f"open({str(marker)!r}, 'w').close()"))
    root = local_repo(tmp_path, {})
    (root / ".scribe" / "actions" / "shout.py").symlink_to(outside)
    registry = load_registry(root, local=True)
    assert refusal_reason(registry, "shout") == (
        "the file leads outside the repository (a symlink); not loaded"
    )
    assert not marker.exists()


def test_a_changed_local_action_is_loaded_afresh(tmp_path: Path) -> None:
    root = local_repo(tmp_path, {"shout.py": action_source(manifest='{"description": "one"}')})
    try:
        first = load_registry(root, local=True)
        (root / ".scribe" / "actions" / "shout.py").write_text(
            action_source(manifest='{"description": "two, a longer text"}')
        )
        second = load_registry(root, local=True)
    finally:
        forget_modules_under(tmp_path)
    assert first.plugins["shout"].manifest.description == "one"
    assert second.plugins["shout"].manifest.description == "two, a longer text"


def test_local_actions_need_a_root() -> None:
    with pytest.raises(ValueError, match="local actions need the repository root"):
        load_registry(None, local=True)


def test_a_missing_local_folder_is_no_error(tmp_path: Path) -> None:
    assert load_registry(tmp_path, local=True).refused == ()


def test_public_surface_is_pinned() -> None:
    assert scribe.actions.registry.__all__ == [
        "BUILTIN",
        "ENTRY_POINT_GROUP",
        "Plugin",
        "Refused",
        "Registry",
        "builtin_registry",
        "load_registry",
    ]

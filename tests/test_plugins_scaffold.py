"""``scaffold_plugin``: the package it makes passes its own tests and loads as a plug-in."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import scribe.actions.scaffold
from scribe.actions.registry import load_registry
from scribe.actions.scaffold import scaffold_plugin
from scribe.errors import ScribeError
from test_plugins_registry import forget_modules_under, install


def test_scaffold_makes_a_package_with_its_entry_point(tmp_path: Path) -> None:
    made = scaffold_plugin("tagger", tmp_path / "work")
    package = tmp_path / "work" / "scribe-tagger"
    assert made == [
        package / "pyproject.toml",
        package / "README.md",
        package / "src" / "scribe_tagger" / "__init__.py",
        package / "tests" / "test_tagger.py",
    ]
    project = tomllib.loads((package / "pyproject.toml").read_text())
    assert project["build-system"]["build-backend"] == "hatchling.build"
    assert project["project"]["name"] == "scribe-tagger"
    assert project["project"]["dependencies"] == [f"scribe>={scribe.__version__}"]
    assert project["project"]["entry-points"]["scribe.actions"] == {
        "tagger": "scribe_tagger:action"
    }
    assert "tagger: {tag: draft}" in (package / "README.md").read_text()


def test_the_scaffolded_tests_pass(tmp_path: Path) -> None:
    scaffold_plugin("tagger", tmp_path)
    package = tmp_path / "scribe-tagger"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=package,
        env={**os.environ, "PYTHONPATH": str(package / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


def test_the_scaffolded_plugin_loads_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scaffold_plugin("tagger", tmp_path)
    package = tmp_path / "scribe-tagger"
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    # What pip would leave behind: the package's source on sys.path, and its
    # metadata (with the entry points the generated pyproject declares) beside it.
    site = tmp_path / "site"
    site.mkdir()
    install(
        site, project["name"], project["version"], project["entry-points"]["scribe.actions"], {}
    )
    monkeypatch.syspath_prepend(str(package / "src"))
    monkeypatch.syspath_prepend(str(site))
    try:
        registry = load_registry(None)
    finally:
        forget_modules_under(tmp_path)
    assert registry.refused == ()
    plugin = registry.get("tagger")
    assert plugin is not None
    assert plugin.origin == "entry point scribe-tagger==0.1.0"
    assert plugin.kind == "content"
    assert plugin.manifest.version == "0.1.0"
    assert plugin.manifest.description == "Add a tag to the note's tags field."
    assert registry.permissions("tagger").write == ["**/*.md"]  # type: ignore[union-attr]
    assert plugin.manifest.parameters["required"] == ["tag"]


@pytest.mark.parametrize("name", ["Tagger", "tag-er", "1tag", "", "t" * 65])
def test_a_name_rules_cannot_call_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ScribeError, match=r"is not a valid action name: use lower-case letters"):
        scaffold_plugin(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_builtin_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScribeError, match=r"^'replace' is the name of a built-in action"):
        scaffold_plugin("replace", tmp_path)


def test_an_existing_package_is_left_alone(tmp_path: Path) -> None:
    existing = tmp_path / "scribe-tagger"
    existing.mkdir()
    (existing / "pyproject.toml").write_text("# mine\n")
    with pytest.raises(ScribeError, match=r"scribe-tagger already exists; choose another name"):
        scaffold_plugin("tagger", tmp_path)
    assert (existing / "pyproject.toml").read_text() == "# mine\n"
    assert [p.name for p in existing.iterdir()] == ["pyproject.toml"]


def test_public_surface_is_pinned() -> None:
    assert scribe.actions.scaffold.__all__ == ["scaffold_plugin"]

"""``scribe plugins`` through typer's runner, over a real repository with local actions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from scribe import plugins_cli
from scribe.actions.manifest import manifest_schema
from scribe.actions.registry import load_registry
from scribe.plugins_cli import app
from test_plugins_registry import action_source, forget_modules_under

SCHEMA_FILE = Path(__file__).parent.parent / "docs" / "plugin-manifest.schema.json"


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    """A repository with one good and one broken local action."""
    root = tmp_path / "repo"
    actions = root / ".scribe" / "actions"
    actions.mkdir(parents=True)
    (actions / "shout.py").write_text(action_source())
    (actions / "broken.py").write_text("raise ImportError('no such thing')\n")
    yield root
    forget_modules_under(tmp_path)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tables here are read back whole. The command's console is made when its
    module is imported, and takes its width from COLUMNS then: under pytest-xdist
    that is the worker's 80, not the 200 the runner's environment gives."""
    monkeypatch.setattr(plugins_cli.out, "width", 200)


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_list_shows_builtins_and_leaves_local_actions_alone_by_default(repo: Path) -> None:
    result = invoke("list", "--root", repo)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:] if line}
    assert rows["replace"] == ["replace", "content", "0.1.0", "built-in", "engine-confined"]
    assert rows["emit"][1] == "effect"
    assert "shout" not in rows
    assert "refused" not in result.stdout


def test_list_with_local_shows_local_actions_and_the_refused(repo: Path) -> None:
    result = invoke("list", "--root", repo, "--local")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    shout = next(line for line in lines if line.lstrip().startswith("shout "))
    assert shout.split() == [
        "shout",
        "content",
        "0",
        ".scribe/actions/shout.py",
        "write",
        "**/*.md",
    ]
    refused_at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("refused"))
    assert lines.index(shout) < refused_at
    assert lines[refused_at + 1].strip().split(maxsplit=2) == [
        "broken",
        ".scribe/actions/broken.py",
        "import failed: ImportError: no such thing (broken.py:1)",
    ]


def test_list_follows_the_plugins_local_setting_and_the_flag_overrides_it(repo: Path) -> None:
    (repo / "scribe.yaml").write_text("plugins_local: true\n")
    assert " shout " in invoke("list", "--root", repo).stdout
    assert " shout " not in invoke("list", "--root", repo, "--no-local").stdout


def test_invalid_settings_exit_2_with_the_problem(repo: Path) -> None:
    (repo / "scribe.yaml").write_text("plugins_local: maybe\n")
    result = invoke("list", "--root", repo)
    assert result.exit_code == 2
    assert "scribe.yaml:1" in result.stderr
    assert "plugins_local" in result.stderr


def test_list_json(repo: Path) -> None:
    result = invoke("list", "--root", repo, "--local", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    by_name = {p["name"]: p for p in report["plugins"]}
    assert by_name["set"]["builtin"] is True
    assert by_name["set"]["permissions"] is None
    assert by_name["shout"] == {
        "name": "shout",
        "kind": "content",
        "version": "0",
        "origin": ".scribe/actions/shout.py",
        "builtin": False,
        "description": "Upper-case the file.",
        "permissions": {"write": ["**/*.md"], "commands": [], "network": "none"},
    }
    assert report["refused"] == [
        {
            "name": "broken",
            "origin": ".scribe/actions/broken.py",
            "reason": "import failed: ImportError: no such thing (broken.py:1)",
        }
    ]


def test_show_prints_the_manifest(repo: Path) -> None:
    result = invoke("show", "shout", "--root", repo, "--local")
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines[0] == ["shout", "0"]
    assert "content action, .scribe/actions/shout.py" in result.stdout
    assert "Upper-case the file." in result.stdout
    assert ["times", "integer", "1"] in lines
    assert ["write", "**/*.md"] in lines
    assert ["commands", "none"] in lines
    assert ["network", "none"] in lines


def test_show_json_prints_exactly_the_manifest_and_it_loads_as_manifest_json(repo: Path) -> None:
    result = invoke("show", "shout", "--root", repo, "--local", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    loaded = load_registry(repo, local=True).plugins["shout"].manifest
    assert printed == loaded.to_json()
    assert printed["parameters"]["properties"]["times"]["default"] == 1
    # The printed manifest is a manifest.json Scribe accepts for the same action.
    actions = repo / ".scribe" / "actions"
    (actions / "shout.py").write_text(action_source(manifest=None))
    (actions / "shout.manifest.json").write_text(result.stdout)
    assert load_registry(repo, local=True).plugins["shout"].manifest == loaded


def test_stale_parameters_are_fixed_by_what_show_json_prints(repo: Path) -> None:
    actions = repo / ".scribe" / "actions"
    (actions / "shout.py").write_text(action_source(manifest=None))
    stale = {"permissions": {"write": ["*.md"]}, "parameters": {"type": "object"}}
    (actions / "shout.manifest.json").write_text(json.dumps(stale))
    result = invoke("show", "shout", "--root", repo, "--local", "--json")
    assert result.exit_code == 1
    assert "regenerate with `scribe plugins show shout --json`" in result.stderr
    (actions / "shout.manifest.json").write_text(result.stdout)
    fixed = load_registry(repo, local=True).get("shout")
    assert fixed is not None
    assert fixed.manifest.permissions.write == ["*.md"]  # the rest of the manifest is kept


def test_show_a_refused_plugin_says_why(repo: Path) -> None:
    result = invoke("show", "broken", "--root", repo, "--local")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "broken (.scribe/actions/broken.py) was refused: "
        "import failed: ImportError: no such thing (broken.py:1)"
    )


def test_show_an_unknown_name_exits_2_with_the_closest_name(repo: Path) -> None:
    result = invoke("show", "shuot", "--root", repo, "--local")
    assert result.exit_code == 2
    assert result.stderr.strip() == "no action named 'shuot'; did you mean 'shout'?"
    assert invoke("show", "zzz", "--root", repo).stderr.strip() == "no action named 'zzz'"


def test_new_scaffolds_and_says_what_next(repo: Path, tmp_path: Path) -> None:
    result = invoke("new", "tagger", "--dest", tmp_path / "work", "--root", repo)
    assert result.exit_code == 0, result.output
    package = tmp_path / "work" / "scribe-tagger"
    assert (package / "src" / "scribe_tagger" / "__init__.py").is_file()
    assert result.stdout.splitlines() == [
        f"Created {package}:",
        "  pyproject.toml",
        "  README.md",
        "  src/scribe_tagger/__init__.py",
        "  tests/test_tagger.py",
        "Next steps:",
        f"  cd {package}",
        "  pip install -e '.[test]'   # into the environment Scribe runs in",
        "  python -m pytest",
        "  scribe plugins show tagger",
    ]
    again = invoke("new", "tagger", "--dest", tmp_path / "work", "--root", repo)
    assert again.exit_code == 1
    assert "scribe-tagger already exists; choose another name or destination" in again.stderr


def test_new_refuses_a_bad_name_and_an_installed_one(repo: Path, tmp_path: Path) -> None:
    bad = invoke("new", "Tagger", "--dest", tmp_path, "--root", repo)
    assert bad.exit_code == 1
    assert "'Tagger' is not a valid action name" in bad.stderr
    taken = invoke("new", "shout", "--dest", tmp_path, "--root", repo, "--local")
    assert taken.exit_code == 1
    assert taken.stderr.strip() == (
        "an action named 'shout' is already installed (.scribe/actions/shout.py)"
    )
    assert not (tmp_path / "scribe-shout").exists()


def test_schema_prints_the_published_schema() -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == manifest_schema()
    assert result.stdout == SCHEMA_FILE.read_text(encoding="utf-8")


def test_a_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("list", "--root", tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr

"""Settings in layers: defaults, scribe.yaml, SCRIBE_* variables, flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scribe.config import Settings, default_workers, load_layers
from scribe.errors import ConfigError


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    (tmp_path / "scribe.yaml").write_text("quiet_ms: 5\nworkers: 2\npoll: false\n")
    env = {"SCRIBE_WORKERS": "3", "SCRIBE_POLL": "true", "HOME": "/elsewhere"}
    loaded = load_layers(tmp_path, environ=env, poll=False, quiet_ms=None)
    s = loaded.settings
    assert (s.quiet_ms, s.workers, s.poll, s.max_batch) == (5, 3, False, 64)
    assert str(loaded.sources["quiet_ms"]) == "scribe.yaml:1"  # None is no flag
    assert str(loaded.sources["workers"]) == "environment SCRIBE_WORKERS"
    assert str(loaded.sources["poll"]) == "command line --poll"
    assert str(loaded.sources["max_batch"]) == "default"


def test_variables_are_case_insensitive_and_lists_are_json(tmp_path: Path) -> None:
    env = {"scribe_ignore": '["drafts/**", "*.bak"]', "SCRIBE_GITIGNORE": "1"}
    s = load_layers(tmp_path, environ=env).settings
    assert s.ignore == ["drafts/**", "*.bak"]
    assert s.gitignore is True


def test_an_invalid_value_in_the_file_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "scribe.yaml").write_text("workers: 2\nmax_batch: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_layers(tmp_path, environ={})
    assert str(caught.value).startswith("scribe.yaml:2:12: max_batch: Input should be")


def test_a_variable_fixes_nothing_it_does_not_name(tmp_path: Path) -> None:
    """A bad value in the file is reported even when another variable is set."""
    (tmp_path / "scribe.yaml").write_text("workers: lots\n")
    with pytest.raises(ConfigError, match=r"scribe.yaml:1:10: workers"):
        load_layers(tmp_path, environ={"SCRIBE_POLL": "1"})
    assert load_layers(tmp_path, environ={"SCRIBE_WORKERS": "2"}).settings.workers == 2


def test_settings_built_directly_ignore_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCRIBE_WORKERS", "9")
    assert Settings().workers == default_workers()


@pytest.mark.parametrize(("cpus", "workers"), [(None, 2), (1, 2), (2, 2), (3, 3), (4, 4), (64, 4)])
def test_workers_follow_the_cpus_from_two_to_four(
    monkeypatch: pytest.MonkeyPatch, cpus: int | None, workers: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert Settings().workers == workers

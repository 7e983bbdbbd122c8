"""Which paths an agent may read: every escape is refused, the ordinary reads work."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from scribe.mcp.failures import INVALID_ARGUMENT, NOT_FOUND, SCOPE_VIOLATION, ToolFailure
from scribe.mcp.paths import ReadScope, fold

FULLWIDTH_ENV = ".\uff45\uff4e\uff56"  # fullwidth letters
CYRILLIC_ENV = ".\u0435nv"  # a Cyrillic e
ZERO_WIDTH_ENV = ".e\u200bnv"
ZERO_WIDTH_GIT = ".g\u200dit"
FULLWIDTH_DOT_ENV = "\uff0eenv"  # a fullwidth full stop
COMBINING_GIT = ".gi\u0308t"  # i with a combining diaeresis


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_escape_repo(tmp_path)


def make_escape_repo(tmp_path: Path) -> Path:
    """A repository beside an ``outside`` folder and a ``repo-evil`` sibling, with
    every kind of file and link the escape suite tries."""
    root = tmp_path / "repo"
    outside = tmp_path / "outside"
    evil = tmp_path / "repo-evil"
    for folder in (root / "notes", root / ".git", root / "secrets", outside, evil):
        folder.mkdir(parents=True)
    (root / ".scribe" / "registry").mkdir(parents=True)
    files = {
        "README.md": "# repo\n",
        "notes/a.md": "a\n",
        ".env": "TOKEN=1\n",
        ".git/config": "[core]\n",
        "secrets/key.pem": "KEY\n",
        ".scribe/registry/agents.json": "{}\n",
        ".scribe/rules.yaml": "rules: []\n",
        "environment.md": "fine\n",
        ".gitignore": "*.tmp\n",
        "notes/NOTES.PEM.txt": "not a pem\n",
    }
    for name in (FULLWIDTH_ENV, CYRILLIC_ENV, ZERO_WIDTH_ENV, FULLWIDTH_DOT_ENV, ".ENV", ".envrc"):
        files[name] = "X=1\n"
    for rel, text in files.items():
        (root / rel).write_text(text, encoding="utf-8")
    (root / ".Git").mkdir()
    (root / ".Git" / "config").write_text("[core]\n", encoding="utf-8")
    (root / ZERO_WIDTH_GIT).mkdir()
    (root / ZERO_WIDTH_GIT / "config").write_text("[core]\n", encoding="utf-8")
    (outside / "secret.txt").write_text("outside\n", encoding="utf-8")
    (evil / "x.txt").write_text("evil\n", encoding="utf-8")
    links = {
        "link_out": outside / "secret.txt",
        "linkdir_out": outside,
        "link_evil": evil / "x.txt",
        "link_etc": Path("/etc/passwd"),
        "link_proc": Path("/proc/self/root/etc/passwd"),
        "link_proc_env": Path(f"/proc/self/root{root}/.env"),
        "link_env": root / ".env",
        "link_git": root / ".git",
        "link_registry": root / ".scribe" / "registry",
        "link_in": Path("notes/a.md"),
        "notes_link": Path("notes"),
        "link_relative_out": Path("../outside/secret.txt"),
    }
    for name, target in links.items():
        (root / name).symlink_to(target)
    (root / "notes" / "up").symlink_to(Path("../../outside"))
    return root


def _scope(root: Path, allow_absolute: Sequence[Path] = ()) -> ReadScope:
    return ReadScope(root, allow_absolute=allow_absolute, extra_deny=["secrets/", "*.pem"])


def _refused(scope: ReadScope, given: str) -> ToolFailure:
    with pytest.raises(ToolFailure) as caught:
        scope.resolve(given)
    failure = caught.value
    assert failure.code == SCOPE_VIOLATION, failure.to_json()
    assert failure.details["path"] == given
    return failure


# (path relative to the repository, or "{root}"/"{tmp}" for absolute ones; reason)
ESCAPES = [
    ("../outside/secret.txt", "parent_escape"),
    ("notes/../../outside/secret.txt", "parent_escape"),
    ("../../../../../../etc/passwd", "denied_location"),
    ("./../repo/../outside/secret.txt", "parent_escape"),
    ("..", "parent_escape"),
    ("../repo-evil/x.txt", "parent_escape"),
    ("{tmp}/repo-evil/x.txt", "absolute_outside"),
    ("{tmp}/outside/secret.txt", "absolute_outside"),
    ("/etc/passwd", "denied_location"),
    ("//etc/passwd", "denied_location"),
    ("/proc/self/root/etc/passwd", "denied_location"),
    ("/proc/self/root{root}/README.md", "denied_location"),
    ("/proc/self/cwd/README.md", "denied_location"),
    ("/sys/kernel/hostname", "denied_location"),
    ("~/.ssh/id_rsa", "home_path"),
    ("~", "home_path"),
    ("link_out", "symlink_escape"),
    ("linkdir_out/secret.txt", "symlink_escape"),
    ("linkdir_out/not-yet-there.txt", "symlink_escape"),
    ("link_evil", "symlink_escape"),
    ("link_relative_out", "symlink_escape"),
    ("notes/up/secret.txt", "symlink_escape"),
    ("notes_link/up/secret.txt", "symlink_escape"),
    ("link_etc", "denied_location"),
    ("link_proc", "denied_location"),
    ("link_proc_env", "denied_name"),
    (".env", "denied_name"),
    (".env.local", "denied_name"),
    (".envrc", "denied_name"),
    ("notes/.env", "denied_name"),
    ("notes/../.env", "denied_name"),
    ("{root}/.env", "denied_name"),
    (".ENV", "denied_name"),
    (".Env.Production", "denied_name"),
    (FULLWIDTH_ENV, "denied_name"),
    (FULLWIDTH_DOT_ENV, "denied_name"),
    (CYRILLIC_ENV, "denied_name"),
    (ZERO_WIDTH_ENV, "denied_name"),
    (".git/config", "denied_name"),
    (".git/HEAD", "denied_name"),
    ("sub/.git/config", "denied_name"),
    (".Git/config", "denied_name"),
    (".GIT/objects/pack", "denied_name"),
    (f"{ZERO_WIDTH_GIT}/config", "denied_name"),
    (f"{COMBINING_GIT}/config", "denied_name"),
    (".git", "denied_name"),
    (".scribe/registry/agents.json", "denied_name"),
    (".Scribe/Registry/agents.json", "denied_name"),
    ("link_env", "denied_name"),
    ("link_git/config", "denied_name"),
    ("link_registry/agents.json", "denied_name"),
    ("secrets/key.pem", "denylist"),
    ("secrets/missing.txt", "denylist"),
    ("SECRETS/key.pem", "denylist"),
    ("notes/deep/cert.pem", "denylist"),
]


@pytest.mark.parametrize(("given", "reason"), ESCAPES)
def test_escapes_are_refused_as_scope_violations(repo: Path, given: str, reason: str) -> None:
    given = given.format(root=repo, tmp=repo.parent)
    failure = _refused(_scope(repo), given)
    assert failure.details["reason"] == reason
    assert failure.message.startswith(f"refused to read {given}: ")


def test_the_escape_suite_is_large_enough() -> None:
    assert len(ESCAPES) >= 40


def test_a_file_created_under_a_symlinked_folder_is_judged_where_it_really_is(
    repo: Path,
) -> None:
    scope = _scope(repo)
    (repo.parent / "outside" / "new.txt").write_text("made later\n", encoding="utf-8")
    assert _refused(scope, "linkdir_out/new.txt").details["reason"] == "symlink_escape"


def test_allow_listed_absolute_folders_still_keep_the_built_in_denials(repo: Path) -> None:
    outside = repo.parent / "outside"
    (outside / ".env").write_text("X=1\n", encoding="utf-8")
    (outside / ".git").mkdir()
    (outside / ".git" / "config").write_text("[core]\n", encoding="utf-8")
    scope = _scope(repo, allow_absolute=[outside, Path("/"), Path.home()])
    assert scope.resolve(str(outside / "secret.txt")).rel is None
    for given, reason in [
        (str(outside / ".env"), "denied_name"),
        (str(outside / ".git" / "config"), "denied_name"),
        ("/etc/passwd", "denied_location"),
        ("/etc/../etc/hostname", "denied_location"),
        ("/proc/self/root/etc/passwd", "denied_location"),
        (f"/proc/self/root{outside}/secret.txt", "denied_location"),
        (str(Path.home() / ".ssh" / "id_rsa"), "denied_location"),
        (str(Path.home() / ".SSH" / "config"), "denied_location"),
        ("/sys/kernel/hostname", "denied_location"),
    ]:
        assert _refused(scope, given).details["reason"] == reason, given


def test_allow_listing_does_not_open_symlinks_out_of_the_root(repo: Path) -> None:
    scope = _scope(repo, allow_absolute=[repo.parent / "outside"])
    assert _refused(scope, "link_out").details["reason"] == "symlink_escape"


def test_an_allow_listed_folder_cannot_be_left_through_its_own_symlinks(repo: Path) -> None:
    shared = repo.parent / "shared"
    shared.mkdir()
    (shared / "to_evil").symlink_to(repo.parent / "repo-evil" / "x.txt")
    scope = _scope(repo, allow_absolute=[shared])
    assert _refused(scope, str(shared / "to_evil")).details["reason"] == "symlink_escape"


def test_extra_deny_adds_to_the_defaults_and_cannot_lift_them(repo: Path) -> None:
    scope = ReadScope(repo, extra_deny=["!.env", "!.git/", "notes/"])
    assert _refused(scope, ".env").details["reason"] == "denied_name"
    assert _refused(scope, ".git/config").details["reason"] == "denied_name"
    assert _refused(scope, "notes/a.md").details["reason"] == "denylist"
    assert _refused(scope, "link_in").details["reason"] == "denylist"  # judged by its target


@pytest.mark.parametrize(
    ("given", "rel"),
    [
        ("README.md", "README.md"),
        ("./README.md", "README.md"),
        ("notes/a.md", "notes/a.md"),
        ("notes//a.md", "notes/a.md"),
        ("notes/../README.md", "README.md"),
        ("{root}/notes/a.md", "notes/a.md"),
        ("link_in", "notes/a.md"),
        ("notes_link/a.md", "notes/a.md"),
        ("environment.md", "environment.md"),
        (".gitignore", ".gitignore"),
        (".scribe/rules.yaml", ".scribe/rules.yaml"),
        ("notes/NOTES.PEM.txt", "notes/NOTES.PEM.txt"),
    ],
)
def test_ordinary_paths_are_allowed(repo: Path, given: str, rel: str) -> None:
    resolved = _scope(repo).resolve(given.format(root=repo))
    assert resolved.rel == rel
    assert resolved.real == repo / rel
    assert resolved.absolute == str(repo / rel)


def test_a_root_reached_through_a_symlink_accepts_both_spellings(repo: Path) -> None:
    alias = repo.parent / "alias"
    alias.symlink_to(repo)
    scope = _scope(alias)
    assert scope.resolve(f"{alias}/notes/a.md").rel == "notes/a.md"
    assert scope.resolve(f"{repo}/notes/a.md").rel == "notes/a.md"
    assert _refused(scope, f"{alias}/.env").details["reason"] == "denied_name"
    assert _refused(scope, f"{alias}-evil/x").details["reason"] == "absolute_outside"


def test_denied_paths_are_refused_before_anyone_learns_whether_they_exist(repo: Path) -> None:
    scope = _scope(repo)
    assert _refused(scope, ".env.missing").details["reason"] == "denied_name"
    assert _refused(scope, "../no/such/file").details["reason"] == "parent_escape"


@pytest.mark.parametrize(
    ("given", "code", "message"),
    [
        ("missing.md", NOT_FOUND, "no such file: missing.md"),
        ("notes/missing/deeper.md", NOT_FOUND, "no such file: notes/missing/deeper.md"),
        ("notes", INVALID_ARGUMENT, "notes is a directory, not a file"),
        (".", INVALID_ARGUMENT, ". is a directory, not a file"),
        ("", INVALID_ARGUMENT, "path is empty: give a file's path"),
        ("   ", INVALID_ARGUMENT, "path is empty: give a file's path"),
        ("a\0b", INVALID_ARGUMENT, "path contains a NUL byte"),
    ],
)
def test_missing_files_and_non_files_say_what_is_wrong(
    repo: Path, given: str, code: str, message: str
) -> None:
    with pytest.raises(ToolFailure) as caught:
        _scope(repo).resolve(given)
    assert (caught.value.code, caught.value.message) == (code, message)


def test_a_fifo_is_not_a_regular_file(repo: Path) -> None:
    os.mkfifo(repo / "pipe")
    with pytest.raises(ToolFailure) as caught:
        _scope(repo).resolve("pipe")
    assert caught.value.code == INVALID_ARGUMENT
    assert "not a regular file" in caught.value.message


def test_a_symlink_loop_is_an_invalid_argument(repo: Path) -> None:
    (repo / "loop_a").symlink_to("loop_b")
    (repo / "loop_b").symlink_to("loop_a")
    with pytest.raises(ToolFailure) as caught:
        _scope(repo).resolve("loop_a/x")
    assert caught.value.code == INVALID_ARGUMENT


def test_open_gives_a_descriptor_of_the_resolved_file(repo: Path) -> None:
    resolved, fd = _scope(repo).open("link_in")
    try:
        assert resolved.rel == "notes/a.md"
        assert os.read(fd, 100) == b"a\n"
    finally:
        os.close(fd)


def test_open_refuses_what_resolve_refuses(repo: Path) -> None:
    with pytest.raises(ToolFailure) as caught:
        _scope(repo).open("link_out")
    assert caught.value.code == SCOPE_VIOLATION


@pytest.mark.parametrize(
    "name",
    [".ENV", FULLWIDTH_ENV, FULLWIDTH_DOT_ENV, CYRILLIC_ENV, ZERO_WIDTH_ENV, " .env", ".env\t"],
)
def test_look_alikes_fold_to_the_name_they_imitate(name: str) -> None:
    assert fold(name).startswith(".env")


def test_folding_leaves_ordinary_names_alone() -> None:
    assert fold("Notes.md") == "notes.md"
    assert fold("café.md") == "cafe.md"
    assert not fold("environment.md").startswith(".env")


def test_the_public_surface_is_pinned() -> None:
    from scribe.mcp import paths

    assert sorted(paths.__all__) == ["DENIED_LOCATIONS", "ReadScope", "Resolved", "fold"]

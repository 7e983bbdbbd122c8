"""run_command in a repository, as users run it: the real ``scribe`` process, real
executables in the sandbox, the journal read back. The sandbox's own escape suite
is ``test_sandbox.py``; these tests try the same escapes through a rules file."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import journaled as journal
from cli_helpers import make_repo, scribe
from live_helpers import ScribeProcess, wait_until
from sandbox_helpers import bwrap_binary, processes_with
from scribe.journal.entry import COMMAND_RAN, SCOPE_VIOLATION

ECHO, SLEEP, SHA256SUM, FALSE, ENV = (
    "/usr/bin/echo",
    "/usr/bin/sleep",
    "/usr/bin/sha256sum",
    "/usr/bin/false",
    "/usr/bin/env",
)


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    bwrap_binary()  # installed when missing: commands run isolated in these tests


def test_a_rule_runs_an_allowed_command_and_journals_its_result(tmp_path: Path) -> None:
    rules = """
rules:
  - id: hash
    paths: ["**/*.md"]
    do:
      - run_command: {argv: [sha256sum, "--", "{{ path }}"], timeout: 10}
"""
    root = make_repo(tmp_path, rules, {"commands": [SHA256SUM]})
    (root / "note.md").write_text("hello\n")
    done = scribe("run", cwd=root)
    assert done.returncode == 0, done.stderr
    (ran,) = journal(root, COMMAND_RAN)
    assert ran.actor == "rule:hash"
    assert ran.payload["exit_code"] == 0
    assert ran.payload["isolation"] == "bwrap"
    assert hashlib.sha256(b"hello\n").hexdigest() in ran.payload["stdout_tail"]


def test_template_values_stay_single_arguments_whatever_they_hold(tmp_path: Path) -> None:
    rules = """
rules:
  - id: say
    paths: ["**/*.md"]
    do:
      - run_command: {argv: [echo, "{{ field('title') }}", "{{ path }}"]}
"""
    root = make_repo(tmp_path, rules, {"commands": [ECHO]})
    pwned = tmp_path.parent / f"pwned-{tmp_path.name}"
    title = f"x; touch {pwned} $(touch {pwned}) `touch {pwned}` && touch {pwned}"
    (root / "-n --help.md").write_text(f"---\ntitle: '{title}'\n---\n")
    assert scribe("run", cwd=root).returncode == 0
    (ran,) = journal(root, COMMAND_RAN)
    assert ran.payload["argv"][1:] == [title, "-n --help.md"]
    assert ran.payload["stdout_tail"].strip() == f"{title} -n --help.md"
    assert not pwned.exists()


def test_a_command_not_on_the_allow_list_is_refused_and_journaled(tmp_path: Path) -> None:
    rules = 'rules:\n  - id: who\n    paths: ["*.md"]\n    do: [{run_command: {argv: ["id"]}}]\n'
    root = make_repo(tmp_path, rules, {"commands": [ECHO]})
    (root / "a.md").write_text("a\n")
    done = scribe("run", cwd=root)
    assert done.returncode == 1
    assert "resolves to /usr/bin/id, which is not an allowed executable" in done.stderr
    assert journal(root, COMMAND_RAN) == []
    (violation,) = journal(root, SCOPE_VIOLATION)
    assert violation.actor == "rule:who"


def test_a_symlink_in_the_repository_to_another_program_is_refused(tmp_path: Path) -> None:
    rules = 'rules:\n  - id: sneaky\n    paths: ["*.md"]\n    do: [{run_command: {argv: ["./bin/echo", "hi"]}}]\n'
    root = make_repo(tmp_path, rules, {"commands": [ECHO]})
    (root / "bin").mkdir()
    (root / "bin" / "echo").symlink_to("/usr/bin/id")
    (root / "a.md").write_text("a\n")
    assert scribe("run", cwd=root).returncode == 1
    assert journal(root, COMMAND_RAN) == []
    assert len(journal(root, SCOPE_VIOLATION)) == 1


def test_no_command_runs_without_an_allow_list(tmp_path: Path) -> None:
    rules = 'rules:\n  - id: say\n    paths: ["*.md"]\n    do: [{run_command: {argv: ["/usr/bin/echo", "hi"]}}]\n'
    root = make_repo(tmp_path, rules, {})
    (root / "a.md").write_text("a\n")
    done = scribe("run", cwd=root)
    assert done.returncode == 1
    assert "allow-list" in done.stderr
    assert journal(root, COMMAND_RAN) == []


def test_a_templated_program_is_refused_when_the_rules_load(tmp_path: Path) -> None:
    rules = "rules:\n  - id: x\n    do: [{run_command: {argv: [\"{{ field('tool') }}\"]}}]\n"
    root = make_repo(tmp_path, rules, {"commands": [ECHO]})
    done = scribe("rules", cwd=root)
    assert done.returncode == 2
    assert "rules.yaml:3" in done.stderr
    assert "must be fixed text" in done.stderr


def test_an_allow_list_entry_inside_the_repository_is_a_config_error(tmp_path: Path) -> None:
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    root = make_repo(
        tmp_path, 'rules:\n  - id: t\n    do: [{append: {text: "x"}}]\n', {"commands": [str(tool)]}
    )
    done = scribe("run", cwd=root)
    assert done.returncode == 2
    assert "inside the repository" in done.stderr


def test_secrets_in_scribes_environment_reach_no_command(tmp_path: Path) -> None:
    rules = """
rules:
  - id: show
    paths: ["a.md"]
    do: [{run_command: {argv: [env], env: [SHARED]}}]
  - id: greedy
    paths: ["b.md"]
    do: [{run_command: {argv: [env], env: [API_TOKEN]}}]
"""
    root = make_repo(tmp_path, rules, {"commands": [ENV], "command_env": ["SHARED"]})
    (root / "a.md").write_text("a\n")
    (root / "b.md").write_text("b\n")
    done = scribe("run", cwd=root, env={"API_TOKEN": "s3cret", "SHARED": "ok"})
    assert done.returncode == 1  # greedy asks for a variable no command may have
    (ran,) = journal(root, COMMAND_RAN)
    names = {line.split("=", 1)[0] for line in ran.payload["stdout_tail"].splitlines()}
    assert "SHARED" in names
    assert "API_TOKEN" not in names
    assert "s3cret" not in ran.payload["stdout_tail"]
    (violation,) = journal(root, SCOPE_VIOLATION)
    assert "API_TOKEN" in violation.message


def test_a_failing_or_slow_command_fails_its_rule_when_asked(tmp_path: Path) -> None:
    rules = """
rules:
  - id: fails
    paths: ["a.md"]
    do: [{run_command: {argv: ["false"], fail_on_error: true}}]
  - id: slow
    paths: ["b.md"]
    do: [{run_command: {argv: [sleep, "30"], timeout: 0.5, fail_on_error: true}}]
  - id: tolerated
    paths: ["c.md"]
    do: [{run_command: {argv: ["false"]}}]
"""
    root = make_repo(tmp_path, rules, {"commands": [FALSE, SLEEP]})
    for name in "abc":
        (root / f"{name}.md").write_text(f"{name}\n")
    started = time.monotonic()
    done = scribe("run", cwd=root)
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    assert "rule fails failed" in done.stderr
    assert "rule slow failed" in done.stderr
    assert "rule tolerated failed" not in done.stderr
    by_rule = {e.actor: e.payload for e in journal(root, COMMAND_RAN)}
    assert by_rule["rule:slow"]["timed_out"] is True
    assert by_rule["rule:tolerated"]["exit_code"] == 1


def test_plan_shows_the_command_it_would_run_and_runs_none(tmp_path: Path) -> None:
    rules = 'rules:\n  - id: say\n    paths: ["*.md"]\n    do: [{run_command: {argv: [echo, "{{ path }}"]}}]\n'
    root = make_repo(tmp_path, rules, {"commands": [ECHO]})
    (root / "a b.md").write_text("a\n")
    done = scribe("plan", cwd=root)
    assert done.returncode == 0, done.stderr
    assert "a b.md: say would run echo 'a b.md'" in done.stdout
    assert not (root / ".scribe" / "journal.db").exists() or journal(root, COMMAND_RAN) == []


@pytest.fixture
def watching(tmp_path: Path) -> Iterator[tuple[Path, ScribeProcess]]:
    rules = """
rules:
  - id: slow-check
    paths: ["**/*.md"]
    do:
      - run_command: {argv: [sleep, "1.537"], timeout: 10}
      - run_command: {argv: [sha256sum, "--", "{{ path }}"], timeout: 10}
"""
    root = make_repo(tmp_path / "repo", rules, {"commands": [SLEEP, SHA256SUM], "listen": "off"})
    proc = ScribeProcess(root, log_path=tmp_path / "scribe.log")
    try:
        proc.wait_ready()
        yield root, proc
    finally:
        proc.close()


def test_edits_while_a_command_runs_cause_exactly_one_follow_up_run_on_the_final_content(
    watching: tuple[Path, ScribeProcess],
) -> None:
    root, proc = watching
    note = root / "note.md"
    note.write_text("first\n")

    def hashes() -> list[str]:
        return [
            e.payload["stdout_tail"].split()[0]
            for e in journal(root, COMMAND_RAN)
            if e.payload["argv"][0].endswith("sha256sum")
        ]

    def sleeps() -> int:
        return sum(e.payload["argv"][0].endswith("sleep") for e in journal(root, COMMAND_RAN))

    assert wait_until(lambda: _running("sleep", "1.537"), 10), proc.log()
    for number in range(5):  # saves while the first run's command is still going
        note.write_text(f"edit {number}\n")
        time.sleep(0.05)
    final = hashlib.sha256(note.read_bytes()).hexdigest()
    assert wait_until(lambda: len(hashes()) >= 2, 20), proc.log()
    time.sleep(2.5)  # time enough for a third run, were there one
    assert sleeps() == 2
    assert len(hashes()) == 2
    assert hashes()[-1] == final


def _running(name: str, argument: str) -> bool:
    """Whether a process called ``name`` runs with ``argument`` (the watcher's
    sandboxed command: an argument of its own, since other tests run ``sleep`` too)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[0].endswith(name.encode()) and argv[1] == argument.encode():
            return True
    return False


def test_a_fork_bomb_from_a_rule_is_bounded_killed_and_journaled(tmp_path: Path) -> None:
    # The shell ends in `exec sleep`: with every process slot taken by the bomb, a
    # plain `sleep` could not be forked and the shell would exit before its timeout.
    # Its function has a name of its own, so that no other test's processes (another
    # bomb, on the other worker) can pass for survivors of this one.
    b = f"bomb_{uuid.uuid4().hex}"
    rules = f"""
rules:
  - id: bomb
    paths: ["*.md"]
    do:
      - run_command: {{argv: [sh, "-c", "{b}() {{ {b} | {b} & }}; {b}; exec sleep 20"], timeout: 2}}
"""
    settings = {"commands": ["/usr/bin/sh"], "command_limits": {"processes": 16}}
    root = make_repo(tmp_path, rules, settings)
    (root / "a.md").write_text("a\n")
    started = time.monotonic()
    done = scribe("run", cwd=root)
    assert time.monotonic() - started < 30, done.stderr
    (ran,) = journal(root, COMMAND_RAN)
    assert ran.payload["timed_out"] is True
    assert ran.payload["process_bound"] in ("cgroup", "rlimit")
    assert processes_with(f"{b} | {b}") == []


def test_endless_output_from_a_rule_is_cut_and_the_command_stopped(tmp_path: Path) -> None:
    rules = """
rules:
  - id: chatty
    paths: ["*.md"]
    do: [{run_command: {argv: ["yes", "spam"], timeout: 1}}]
"""
    root = make_repo(tmp_path, rules, {"commands": ["/usr/bin/yes"], "command_output_bytes": 4096})
    (root / "a.md").write_text("a\n")
    scribe("run", cwd=root)
    (ran,) = journal(root, COMMAND_RAN)
    assert ran.payload["timed_out"] is True
    assert ran.payload["stdout_bytes"] > 4096
    assert len(ran.payload["stdout_tail"]) <= 2048 + 100
    assert "more bytes not kept" in ran.payload["stdout_tail"]


def test_a_grandchild_that_outlives_its_command_is_killed(tmp_path: Path) -> None:
    tag = f"scribe-orphan-{tmp_path.name}"
    rules = f"""
rules:
  - id: orphan
    paths: ["*.md"]
    do: [{{run_command: {{argv: [sh, "-c", "(exec -a {tag} sleep 60) & echo started"], timeout: 5}}}}]
"""
    root = make_repo(tmp_path, rules, {"commands": ["/usr/bin/sh"]})
    (root / "a.md").write_text("a\n")
    scribe("run", cwd=root)
    (ran,) = journal(root, COMMAND_RAN)
    assert "started" in ran.payload["stdout_tail"]
    assert processes_with(tag) == []


def test_a_fake_program_first_on_path_is_refused_not_run(tmp_path: Path) -> None:
    rules = (
        'rules:\n  - id: h\n    paths: ["*.md"]\n    do: [{run_command: {argv: [sha256sum, x]}}]\n'
    )
    root = make_repo(tmp_path, rules, {"commands": [SHA256SUM]})
    fake = tmp_path / "evil-bin"
    fake.mkdir()
    witness = tmp_path / "ran-the-fake"
    (fake / "sha256sum").write_text(f"#!/bin/sh\ntouch {witness}\n")
    (fake / "sha256sum").chmod(0o755)
    (root / "a.md").write_text("a\n")
    done = scribe("run", cwd=root, env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert done.returncode == 1
    assert not witness.exists()
    assert journal(root, COMMAND_RAN) == []
    (violation,) = journal(root, SCOPE_VIOLATION)
    assert "not an allowed executable" in violation.message

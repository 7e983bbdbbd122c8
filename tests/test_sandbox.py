"""The command sandbox, tried the way a hostile rule or file name would try it:
shell syntax in arguments, symlinks and PATH tricks, leaked secrets, escapes from
the working directory, processes that refuse to die or multiply, endless output,
writes to the repository and the network."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from live_helpers import wait_until
from sandbox_helpers import (
    ARGV_PRINTER,
    bwrap_binary,
    leftover_cgroups,
    marker,
    pids_hierarchy,
    processes_with,
    python_script,
    shell_script,
)
from scribe import sandbox
from scribe.errors import ScribeError
from scribe.sandbox import CommandRefused, CommandResult, Limits, Policy, check_policy, run

SH = os.path.realpath("/bin/sh")
CAT = os.path.realpath("/usr/bin/cat")
ENV = os.path.realpath("/usr/bin/env")
YES = os.path.realpath("/usr/bin/yes")
PYTHON = os.path.realpath(sys.executable)
BOTH = pytest.mark.parametrize("isolation", ["none", "bwrap"])


@pytest.fixture(scope="module", autouse=True)
def _bwrap_installed() -> None:
    bwrap_binary()
    assert sandbox.bwrap_path() is not None, sandbox._bwrap_probe()[1]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "notes").mkdir(parents=True)
    (root / "a.md").write_text("original\n")
    return root.resolve()


@pytest.fixture
def printer(tmp_path: Path) -> str:
    return str(python_script(tmp_path / "bin" / "printer", ARGV_PRINTER))


def policy(root: Path, *allow: str, **changes: object) -> Policy:
    return replace(Policy(root=root, allow=allow), **changes)  # type: ignore[arg-type]


def refusal(argv: list[str], pol: Policy, **kwargs: object) -> CommandRefused:
    with pytest.raises(CommandRefused) as caught:
        run(argv, pol, timeout=10, **kwargs)  # type: ignore[arg-type]
    return caught.value


def printed(result: CommandResult) -> dict[str, object]:
    assert result.ok, result
    data: dict[str, object] = json.loads(result.stdout)
    return data


@pytest.fixture
def no_survivors() -> Iterator[str]:
    """A marker for the test's processes; none of them may be alive at the end."""
    mark = marker()
    yield mark
    assert processes_with(mark) == [], "a process the command started outlived run()"
    assert leftover_cgroups() == []


# -- argv, never a shell ------------------------------------------------------------


@BOTH
def test_each_item_reaches_the_program_as_one_literal_argument(
    repo: Path, printer: str, isolation: str
) -> None:
    hostile = ["; rm -rf /", "$(id)", "`id`", "a | b", "x && y", "one\ntwo", "*", "~", " $HOME "]
    result = run([printer, *hostile], policy(repo, printer, isolation=isolation), timeout=10)
    assert printed(result)["argv"] == [printer, *hostile]


def test_an_option_looking_value_is_just_an_argument(repo: Path, printer: str) -> None:
    result = run([printer, "--output=/etc/passwd"], policy(repo, printer), timeout=10)
    assert printed(result)["argv"] == [printer, "--output=/etc/passwd"]


@BOTH
def test_a_path_starting_with_a_dash_stays_a_path_after_double_dash(
    repo: Path, isolation: str
) -> None:
    (repo / "-n").write_text("hello\n")
    pol = policy(repo, CAT, isolation=isolation)
    assert run([CAT, "--", "-n"], pol, timeout=10).stdout == "hello\n"
    # Without "--" the same value is cat's option -n, and the file is never read.
    assert run([CAT, "-n"], pol, timeout=10).stdout == ""


def test_a_nul_byte_is_refused_in_any_item(repo: Path, printer: str) -> None:
    pol = policy(repo, printer)
    assert refusal([printer, "a\0b"], pol).code == "bad_argument"
    assert refusal([printer + "\0x"], pol).code == "bad_argument"
    assert refusal([printer, 3], pol).code == "bad_argument"  # type: ignore[list-item]


def test_an_empty_command_is_refused(repo: Path, printer: str) -> None:
    assert refusal([], policy(repo, printer)).code == "empty"
    assert refusal(["", "x"], policy(repo, printer)).code == "empty"


# -- the executable, by its real path -----------------------------------------------------


def test_a_relative_executable_not_on_the_list_is_refused(repo: Path, printer: str) -> None:
    python_script(repo / "tool", ARGV_PRINTER)
    error = refusal(["./tool"], policy(repo, printer))
    assert error.code == "not_allowed"
    assert str(error) == (
        f"refused to run './tool': it resolves to {repo / 'tool'}, which is not an allowed executable"
    )


def test_a_symlink_to_a_binary_not_allowed_is_refused(repo: Path, printer: str) -> None:
    (repo / "innocent").symlink_to("/usr/bin/id")
    error = refusal(["./innocent"], policy(repo, printer))
    assert error.code == "not_allowed"
    assert os.path.realpath("/usr/bin/id") in str(error)


def test_a_symlink_to_an_allowed_binary_runs_the_resolved_path(repo: Path, printer: str) -> None:
    (repo / "link").symlink_to(printer)
    result = run(["./link", "x"], policy(repo, printer, isolation="none"), timeout=10)
    assert result.executable == printer
    # The interpreter is handed the path that was executed: the target, not the link.
    assert printed(result)["argv"] == [printer, "x"]


def test_a_fake_first_on_path_is_refused_not_run(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = tmp_path / "fake-ran"
    fake = shell_script(tmp_path / "fakebin" / "cat", f"touch {ran}\n")
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    error = refusal(["cat", "a.md"], policy(repo, CAT))
    assert error.code == "not_allowed"
    assert f"it resolves to {fake}" in str(error)
    assert not ran.exists()
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert run(["cat", "a.md"], policy(repo, CAT), timeout=10).stdout == "original\n"


def test_a_relative_entry_on_path_is_not_searched(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell_script(repo / "cat", "echo fake\n")
    monkeypatch.setenv("PATH", f".:{os.pathsep}/usr/bin")
    result = run(["cat", "a.md"], policy(repo, CAT), timeout=10)
    assert (result.executable, result.stdout) == (CAT, "original\n")


def test_the_same_basename_elsewhere_is_refused(repo: Path, printer: str, tmp_path: Path) -> None:
    twin = python_script(tmp_path / "other" / "printer", ARGV_PRINTER)
    assert refusal([str(twin)], policy(repo, printer)).code == "not_allowed"


def test_allow_list_entries_are_compared_resolved(repo: Path, printer: str, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(printer)
    assert printed(run([printer], policy(repo, str(alias)), timeout=10))["argv"] == [printer]


def test_a_relative_allow_list_entry_never_matches(repo: Path) -> None:
    python_script(repo / "bin" / "tool", ARGV_PRINTER)
    assert refusal(["bin/tool"], policy(repo, "bin/tool")).code == "not_allowed"


def test_a_missing_executable_is_not_found(repo: Path, printer: str) -> None:
    error = refusal(["no-such-tool-here"], policy(repo, printer))
    assert error.code == "not_found"
    assert "no executable of that name on PATH" in str(error)
    assert refusal(["./absent"], policy(repo, printer)).code == "not_found"


def test_check_policy_names_each_problem(repo: Path, printer: str, tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("")
    inside = python_script(repo / "tool", ARGV_PRINTER)
    problems = check_policy(
        [printer, "cat", "bin/tool", "/no/such/tool", str(plain), str(inside)], root=repo
    )
    assert problems == [
        "allowed executable 'cat' is not an absolute path; bare names and relative paths are refused",
        "allowed executable 'bin/tool' is not an absolute path; bare names and relative paths are refused",
        "allowed executable '/no/such/tool' does not exist (/no/such/tool)",
        f"allowed executable '{plain}' is not an executable file ({plain})",
        f"allowed executable '{inside}' ({inside}) lies inside the repository, where any edit to it changes what rules run",
    ]
    assert check_policy([printer, CAT]) == []


# -- environment ------------------------------------------------------------------------


@BOTH
def test_the_environment_is_scrubbed(
    repo: Path, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("LINT_CONFIG", "strict")
    monkeypatch.delenv("LINT_THEME", raising=False)
    pol = policy(repo, ENV, env_allow=("LINT_CONFIG", "LINT_THEME"), isolation=isolation)
    names = {line.split("=", 1)[0] for line in run([ENV], pol, timeout=10).stdout.splitlines()}
    assert "SECRET_TOKEN" not in names
    assert "LINT_CONFIG" in names
    assert names - {"PWD"} <= {"PATH", "HOME", "LANG", "LINT_CONFIG"}


# -- working directory ---------------------------------------------------------------------


def test_the_working_directory_is_confined(repo: Path, printer: str, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (repo / "out").symlink_to(tmp_path / "elsewhere")
    pol = policy(repo, printer)
    assert printed(run([printer], pol, cwd="notes", timeout=10))["cwd"] == str(repo / "notes")
    for cwd in ("..", "notes/../..", "out", "/etc"):
        error = refusal([printer], pol, cwd=cwd)
        assert error.code == "cwd_outside", cwd
    assert str(refusal([printer], pol, cwd="out")) == (
        f"the working directory 'out' leads outside the repository {repo} (to {tmp_path / 'elsewhere'})"
    )
    assert refusal([printer], pol, cwd="missing").code == "cwd_missing"
    assert refusal([printer], pol, cwd="a.md").code == "cwd_missing"


def test_a_refusal_is_a_scribe_error() -> None:
    assert issubclass(CommandRefused, ScribeError)


# -- deadlines and leftovers -----------------------------------------------------------------


@BOTH
def test_a_command_ignoring_sigterm_is_killed(
    repo: Path, isolation: str, no_survivors: str
) -> None:
    pol = policy(repo, SH, isolation=isolation, grace=0.3)
    result = run([SH, "-c", f"trap '' TERM; sleep 100.{no_survivors}"], pol, timeout=0.5)
    assert result.timed_out
    assert not result.ok
    assert (result.exit_code, result.signal) == (None, signal.SIGKILL)


@BOTH
def test_sigterm_at_the_deadline_gives_the_command_its_grace(
    repo: Path, isolation: str, no_survivors: str
) -> None:
    pol = policy(repo, SH, isolation=isolation, grace=5)
    script = f"trap 'echo cleaned up; exit 3' TERM; sleep 100.{no_survivors} & wait"
    result = run([SH, "-c", script], pol, timeout=0.5)
    assert result.timed_out
    assert (result.exit_code, result.stdout) == (3, "cleaned up\n")


@BOTH
@pytest.mark.parametrize(
    "script",
    [
        "sleep 100.{m} >/dev/null 2>&1 & echo started",  # detached from the pipes
        "sleep 100.{m} & echo started",  # keeps stdout open
        "setsid sleep 100.{m} & echo started",  # leaves the session, keeps stdout
    ],
    ids=["detached", "holding-stdout", "setsid"],
)
def test_what_the_main_process_leaves_behind_is_killed_when_it_exits(
    repo: Path, isolation: str, script: str, no_survivors: str
) -> None:
    pol = policy(repo, SH, isolation=isolation, grace=30)
    result = run([SH, "-c", script.format(m=no_survivors)], pol, timeout=60)
    # Returned when sh exited: neither at the deadline nor after a grace period.
    assert not result.timed_out
    assert result.duration < 20
    assert (result.exit_code, result.stdout) == (0, "started\n")


@BOTH
def test_scribe_dying_takes_the_command_along(repo: Path, isolation: str) -> None:
    mark = marker()
    # Only the sleeps carry the whole marker on their command line (sh and bwrap have
    # its halves): once they run, the sandbox is set up. Under bwrap the whole sandbox
    # goes with Scribe; without it, the process Scribe started.
    if isolation == "bwrap":
        halves = f"a={mark[:6]}; b={mark[6:]}"
        argv, sleeps = [SH, "-c", f"{halves}; sleep 100.$a$b & sleep 100.$a$b"], 2
    else:
        argv, sleeps = ["/bin/sleep", f"100.{mark}"], 1
    # The command travels in the environment: Scribe's own command line must not
    # carry the marker.
    code = (
        "import json, os; from pathlib import Path; from scribe.sandbox import Policy, run; "
        "argv = json.loads(os.environ['SANDBOX_ARGV']); "
        "run(argv, Policy(root=Path(os.environ['SANDBOX_ROOT']), allow=(argv[0],), "
        "isolation=os.environ['SANDBOX_ISOLATION']), timeout=60)"
    )
    env = {
        **os.environ,
        "SANDBOX_ARGV": json.dumps(argv),
        "SANDBOX_ROOT": str(repo),
        "SANDBOX_ISOLATION": isolation,
    }
    scribe = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        assert wait_until(lambda: len(processes_with(mark)) == sleeps, 10)
        # Looked for while Scribe lives: once it is dead, a command run by any other
        # test at the same moment may already sweep its cgroup away.
        assert list(pids_hierarchy().glob(f"scribe-{scribe.pid}-*")) != []
    finally:
        scribe.kill()
        scribe.wait()
    assert wait_until(lambda: processes_with(mark) == [], 10), processes_with(mark)
    assert wait_until(lambda: processes_with(str(repo)) == [], 10), processes_with(str(repo))
    # The cgroup the dead Scribe left behind goes with the next command run.
    run([SH, "-c", ":"], policy(repo, SH), timeout=10)
    assert list(pids_hierarchy().glob(f"scribe-{scribe.pid}-*")) == []


# -- resource limits ---------------------------------------------------------------------------

LIMITS_REPORT = """
import json, resource
print(json.dumps({name: resource.getrlimit(getattr(resource, name))[0]
                  for name in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NOFILE", "RLIMIT_FSIZE")}))
"""


@BOTH
def test_limits_are_set_before_exec(repo: Path, tmp_path: Path, isolation: str) -> None:
    report = str(python_script(tmp_path / "limits", LIMITS_REPORT))
    limits = Limits(cpu_seconds=7, memory_bytes=900 << 20, open_files=99, file_bytes=5 << 20)
    result = run([report], policy(repo, report, limits=limits, isolation=isolation), timeout=10)
    assert json.loads(result.stdout) == {
        "RLIMIT_CPU": 7,
        "RLIMIT_AS": 900 << 20,
        "RLIMIT_NOFILE": 99,
        "RLIMIT_FSIZE": 5 << 20,
    }


def test_the_memory_limit_holds(repo: Path) -> None:
    pol = policy(repo, PYTHON, limits=Limits(memory_bytes=256 << 20))
    result = run([PYTHON, "-c", "bytearray(512 << 20)"], pol, timeout=10)
    assert result.exit_code == 1
    assert "MemoryError" in result.stderr


@BOTH
def test_the_file_size_limit_holds(repo: Path, isolation: str) -> None:
    pol = policy(repo, SH, limits=Limits(file_bytes=1 << 20), isolation=isolation)
    script = "head -c 3000000 /dev/zero > notes/big"
    result = run([SH, "-c", script], pol, timeout=10, writable=["notes"])
    assert not result.ok
    assert (repo / "notes" / "big").stat().st_size == 1 << 20


@BOTH
def test_the_cpu_limit_holds(repo: Path, isolation: str) -> None:
    pol = policy(repo, SH, limits=Limits(cpu_seconds=1), isolation=isolation)
    result = run([SH, "-c", "while :; do :; done"], pol, timeout=20)
    assert not result.timed_out
    if isolation == "none":
        assert (result.exit_code, result.signal) == (None, signal.SIGXCPU)
    else:  # bwrap reports a signal as 128 + its number
        assert (result.exit_code, result.signal) == (128 + signal.SIGXCPU, None)


FORKER = """
import os, sys, time
count = 0
while count < 200:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(100)
        os._exit(0)
    count += 1
print(count)
"""


@BOTH
def test_the_process_count_is_bounded(repo: Path, tmp_path: Path, isolation: str) -> None:
    forker = str(python_script(tmp_path / f"forker-{marker()}", FORKER))
    pol = policy(repo, forker, limits=Limits(processes=8), isolation=isolation)
    result = run([forker], pol, timeout=20)
    assert result.process_bound == "cgroup"
    # The forker itself is one of the eight.
    assert (result.exit_code, result.stdout) == (0, "7\n")
    assert processes_with(forker) == []
    assert leftover_cgroups() == []


@BOTH
def test_a_fork_bomb_ends_and_leaves_nothing(repo: Path, isolation: str, no_survivors: str) -> None:
    pol = policy(repo, SH, limits=Limits(processes=32), isolation=isolation, grace=0.5)
    bomb = f"bomb() {{ bomb | bomb & }}; bomb; sleep 100.{no_survivors}"
    result = run([SH, "-c", bomb], pol, timeout=3)
    assert result.timed_out or not result.ok
    assert result.duration < 20


# -- output ---------------------------------------------------------------------------------------


def test_endless_output_is_kept_bounded_until_the_deadline(repo: Path) -> None:
    tracemalloc.start()
    try:
        result = run([YES], policy(repo, YES, output_bytes=1000, grace=0.2), timeout=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.timed_out
    dropped = result.stdout_bytes - 1000
    assert result.stdout == "y\n" * 500 + f"\n[... {dropped} more bytes not kept]"
    assert result.stdout_bytes > 8 << 20
    assert peak < 1 << 20


FLOOD = """
import sys
sys.stderr.write("e" * (1 << 20)); sys.stderr.flush()
sys.stdout.write("o" * (1 << 20))
"""


@BOTH
def test_both_pipes_are_read_at_once(repo: Path, tmp_path: Path, isolation: str) -> None:
    flood = str(python_script(tmp_path / "flood", FLOOD))
    result = run([flood], policy(repo, flood, isolation=isolation), timeout=20)
    assert result.ok
    assert (result.stdout_bytes, result.stderr_bytes) == (1 << 20, 1 << 20)
    marker_text = f"\n[... {(1 << 20) - 64 * 1024} more bytes not kept]"
    assert result.stderr == "e" * 64 * 1024 + marker_text
    assert result.stdout == "o" * 64 * 1024 + marker_text


def test_undecodable_output_is_replaced(repo: Path) -> None:
    result = run([SH, "-c", r"printf 'caf\351\n'"], policy(repo, SH), timeout=10)
    assert result.stdout == "caf\ufffd\n"


def test_the_summary_is_json_with_short_tails(repo: Path) -> None:
    script = "seq 1 500; seq 1 30 >&2; exit 4"
    summary = run([SH, "-c", script], policy(repo, SH), timeout=10).summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["stdout_tail"] == "\n".join(str(n) for n in range(481, 501))
    assert summary["stderr_tail"] == "\n".join(str(n) for n in range(11, 31))
    assert {k: summary[k] for k in ("ok", "exit_code", "signal", "timed_out")} == {
        "ok": False,
        "exit_code": 4,
        "signal": None,
        "timed_out": False,
    }
    assert summary["stdout_bytes"] == len("".join(f"{n}\n" for n in range(1, 501)))
    assert summary["isolation"] == "bwrap"


def test_long_lines_are_cut_to_two_kilobytes_in_the_summary(repo: Path) -> None:
    summary = run([SH, "-c", "head -c 5000 /dev/zero | tr '\\0' x"], policy(repo, SH), timeout=10)
    assert summary.summary()["stdout_tail"] == "x" * 2048


# -- bwrap: the repository read-only, no network ----------------------------------------------------


def test_the_repository_is_read_only_unless_writable(repo: Path) -> None:
    pol = policy(repo, SH, isolation="bwrap")
    result = run([SH, "-c", "echo changed > a.md; echo new > new.md"], pol, timeout=10)
    assert not result.ok
    assert "Read-only file system" in result.stderr
    assert (repo / "a.md").read_text() == "original\n"
    assert not (repo / "new.md").exists()
    result = run([SH, "-c", "echo new > notes/n.md"], pol, timeout=10, writable=["notes"])
    assert result.ok, result
    assert (repo / "notes" / "n.md").read_text() == "new\n"
    assert (repo / "a.md").read_text() == "original\n"


def test_a_writable_path_must_stay_inside_and_exist(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (repo / "out").symlink_to(tmp_path / "elsewhere")
    pol = policy(repo, SH)
    for path in ("..", "out", "notes/../../elsewhere", "/etc"):
        assert refusal([SH, "-c", ":"], pol, writable=[path]).code == "writable_outside", path
    assert refusal([SH, "-c", ":"], pol, writable=["absent"]).code == "writable_missing"


def test_outside_the_repository_nothing_is_writable(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("kept\n")
    pol = policy(repo, SH, isolation="bwrap")
    script = f"cat {outside}; echo x > {outside}; echo x > /etc/scribe-sandbox-test"
    result = run([SH, "-c", script], pol, timeout=10)
    assert not result.ok
    assert "kept" not in result.stdout  # the real /tmp is not even visible
    assert outside.read_text() == "kept\n"
    assert not Path("/etc/scribe-sandbox-test").exists()


CONNECT = """
import socket, sys
family, address = (socket.AF_UNIX, sys.argv[2]) if sys.argv[1] == "unix" else (socket.AF_INET, ("127.0.0.1", int(sys.argv[2])))
try:
    socket.socket(family).connect(address)
    print("connected")
except OSError as exc:
    print("refused:", exc)
"""


@pytest.mark.parametrize(("isolation", "outcome"), [("none", "connected"), ("bwrap", "refused")])
def test_the_network_is_out_of_reach(
    repo: Path, tmp_path: Path, isolation: str, outcome: str
) -> None:
    connect = str(python_script(tmp_path / "connect", CONNECT))
    pol = policy(repo, connect, isolation=isolation)
    with socket.socket() as tcp, socket.socket(socket.AF_UNIX) as unix:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        unix.bind(str(tmp_path / "socket"))
        unix.listen()
        port = str(tcp.getsockname()[1])
        for kind, address in (("tcp", port), ("unix", str(tmp_path / "socket"))):
            result = run([connect, kind, address], pol, timeout=10)
            assert result.stdout.startswith(outcome), (kind, result)


def test_the_command_cannot_leave_its_cgroup(repo: Path) -> None:
    procs = pids_hierarchy() / "cgroup.procs"
    pol = policy(repo, SH, isolation="bwrap")
    result = run([SH, "-c", f"echo 0 > {procs}"], pol, timeout=10)
    assert not result.ok
    assert "Read-only file system" in result.stderr


def test_isolation_follows_what_the_machine_has(
    repo: Path, printer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run([printer], policy(repo, printer), timeout=10).isolation == "bwrap"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    sandbox._bwrap_probe.cache_clear()
    try:
        assert run([printer], policy(repo, printer), timeout=10).isolation == "none"
        error = refusal([printer], policy(repo, printer, isolation="bwrap"))
        assert error.code == "no_bwrap"
        assert "bwrap is not installed" in str(error)
    finally:
        sandbox._bwrap_probe.cache_clear()


def test_an_unstartable_program_is_refused(repo: Path, tmp_path: Path) -> None:
    headless = tmp_path / "headless"
    headless.write_text("no interpreter line\n")
    headless.chmod(0o755)
    error = refusal([str(headless)], policy(repo, str(headless), isolation="none"))
    assert error.code == "cannot_start"
    assert str(headless) in str(error)


def test_commands_run_side_by_side_from_threads(repo: Path, printer: str) -> None:
    results: list[CommandResult] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        result = run([printer, str(n)], policy(repo, printer), timeout=20)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(printed(r)["argv"][1] for r in results) == ["0", "1", "2", "3"]  # type: ignore[index]
    assert leftover_cgroups() == []


def test_the_public_surface_is_pinned() -> None:
    assert sorted(sandbox.__all__) == [
        "CommandRefused",
        "CommandResult",
        "Limits",
        "Policy",
        "bwrap_path",
        "check_policy",
        "resolve_executable",
        "run",
    ]

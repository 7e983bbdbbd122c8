"""The command sandbox: how a rule runs a program without that becoming a way to run
anything else, or to change anything outside the repository.

Each layer holds on its own:

- **argv, never a shell.** Every item reaches the program as one literal argument.
  A template value that starts with ``-`` is still an argument the program may read
  as an option: rules should put ``--`` before paths (``[tool, "--fix", "--",
  "{{ path }}"]``).
- **An allow-list of real paths.** The executable is looked up (on the PATH the
  command gets, or relative to its working directory), resolved with
  ``os.path.realpath`` and compared by full path with the realpath'd allow-list;
  the resolved path is what is executed, so a symlink swapped after the check
  cannot redirect it. Only the first program is checked: an allowed shell or
  interpreter can run anything, so such programs do not belong on the list.
- **A scrubbed environment**: PATH, HOME, LANG and the names the policy lets through.
- **A working directory inside the repository**, resolved before use.
- **Limits** set in the child before exec: CPU seconds, address space, open files,
  file size (``setrlimit``), and the number of processes (below).
- **bwrap** when present: the system and the repository read-only, only the
  ``writable`` paths writable, private ``/tmp``, ``/var/tmp`` and ``/run`` (a unix
  socket stays reachable through a read-only mount, so those are hidden), no
  network, its own pid namespace, no capabilities. Without bwrap the command can
  read and write whatever Scribe's user can.
- **Nothing outlives the call.** The command gets a session of its own; at the
  deadline everything it started gets SIGTERM, ``grace`` seconds later SIGKILL.
  When the main process exits, whatever it left behind is killed at once. The
  child gets PR_SET_PDEATHSIG, so Scribe dying takes it along (under bwrap, the
  whole sandbox).

The process count. Scribe often runs as root, and the kernel does not enforce
RLIMIT_NPROC for the root user, even with its capabilities dropped as under bwrap.
Running the command as ``nobody`` would make RLIMIT_NPROC bind, but the command
could no longer write the files it is given (they belong to Scribe's user) and
the limit would count every process ``nobody`` has on the machine. bwrap's pid
namespace ends every process with the sandbox but does not bound how many there
are. So each command gets a pids cgroup of its own (cgroup v1 ``pids`` hierarchy,
or v2 with the ``pids`` controller): ``pids.max`` binds every user, counts only
this command's tasks (threads included), and lists them all, including those that
left the session with ``setsid``; freezing forks (``pids.max`` = 0) and sweeping
that list is how a fork bomb is ended. Inside bwrap the cgroup file system is
read-only, so the command cannot leave its cgroup. The cgroup of a Scribe that
was killed outright is removed, with what still runs in it, by the next command
started on the machine. Where no pids cgroup can be made (not root, no writable
hierarchy), RLIMIT_NPROC is set instead: it binds a non-root user, but counts all
that user's processes, and does nothing for root. ``CommandResult.process_bound``
says what held (``cgroup``, ``rlimit`` or ``none``).

Output: both pipes are read in one loop (no deadlock when a command fills
stderr); the first ``output_bytes`` of each are kept, the rest is read, counted
and discarded, so memory stays bounded however much a command writes, and it is
stopped only by its deadline. Under bwrap a command killed by a signal exits
with 128 + the signal number (bwrap's convention).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import resource
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scribe.errors import ScribeError

__all__ = [
    "CommandRefused",
    "CommandResult",
    "Limits",
    "Policy",
    "bwrap_path",
    "check_policy",
    "resolve_executable",
    "run",
]

BASE_ENV = ("PATH", "HOME", "LANG")
# Directories that get an empty tmpfs under bwrap: scratch space and system sockets.
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/run")
NAMESPACES = (
    "--unshare-pid",
    "--unshare-net",
    "--unshare-ipc",
    "--unshare-uts",
    "--die-with-parent",
    "--new-session",
)
# bwrap itself and the init of its pid namespace are tasks of the cgroup too.
BWRAP_TASKS = 2
TAIL_LINES = 20
TAIL_CHARS = 2048
_CHUNK = 64 * 1024
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
_serial = itertools.count(1)


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 60  # RLIMIT_CPU: SIGXCPU, then SIGKILL a second later
    memory_bytes: int = 1 << 30  # RLIMIT_AS
    open_files: int = 256  # RLIMIT_NOFILE
    file_bytes: int = 64 << 20  # RLIMIT_FSIZE
    processes: int = 64  # tasks (threads count) the command may have at once


@dataclass(frozen=True)
class Policy:
    root: Path  # the repository root
    allow: tuple[str, ...]  # allowed executables: absolute paths (others never match)
    env_allow: tuple[str, ...] = ()  # environment names passed through beyond BASE_ENV
    limits: Limits = field(default_factory=Limits)
    output_bytes: int = 64 * 1024  # kept per stream
    isolation: Literal["auto", "bwrap", "none"] = "auto"  # auto: bwrap when usable
    grace: float = 2.0  # seconds between SIGTERM and SIGKILL


class CommandRefused(ScribeError):
    """A command the sandbox will not start. ``code`` is one of ``empty``,
    ``bad_argument``, ``not_found``, ``not_allowed``, ``cwd_outside``,
    ``cwd_missing``, ``writable_outside``, ``writable_missing``, ``no_bwrap`` or
    ``cannot_start``."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    executable: str  # the resolved real path that was executed
    exit_code: int | None  # None when ended by a signal
    signal: int | None
    timed_out: bool
    stdout: str  # decoded with errors="replace", truncated with a marker
    stderr: str
    stdout_bytes: int  # everything the command wrote there
    stderr_bytes: int
    duration: float  # seconds
    isolation: str  # "bwrap" or "none"
    process_bound: str  # what held the process count: "cgroup", "rlimit" or "none"

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def summary(self) -> dict[str, Any]:
        """What the journal keeps of a run: the outcome and the last lines of output."""
        return {
            "argv": list(self.argv),
            "executable": self.executable,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "timed_out": self.timed_out,
            "duration": round(self.duration, 3),
            "isolation": self.isolation,
            "process_bound": self.process_bound,
            "stdout_bytes": self.stdout_bytes,
            "stderr_bytes": self.stderr_bytes,
            "stdout_tail": _tail(self.stdout),
            "stderr_tail": _tail(self.stderr),
        }


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-TAIL_LINES:])[-TAIL_CHARS:]


# -- checks made before anything starts --------------------------------------------


def check_policy(allow: Sequence[str], *, root: Path | None = None) -> list[str]:
    """The problems of an allow-list, one sentence each (empty when it is sound).

    Entries must be absolute: a bare name or a relative path would mean whatever
    PATH or the working directory makes of it. With ``root``, an entry inside the
    repository is a problem too: whoever can edit the repository could change
    what rules run."""
    problems = []
    for entry in allow:
        if not os.path.isabs(entry):
            problems.append(
                f"allowed executable {entry!r} is not an absolute path; "
                "bare names and relative paths are refused"
            )
            continue
        real = os.path.realpath(entry)
        if not os.path.exists(real):
            problems.append(f"allowed executable {entry!r} does not exist ({real})")
        elif not _is_executable(real):
            problems.append(f"allowed executable {entry!r} is not an executable file ({real})")
        elif root is not None and _inside(real, os.path.realpath(root)):
            problems.append(
                f"allowed executable {entry!r} ({real}) lies inside the repository, "
                "where any edit to it changes what rules run"
            )
    return problems


def resolve_executable(name: str, policy: Policy, *, cwd: Path) -> Path:
    """The real path ``name`` would execute, if the allow-list holds it.

    A bare name is looked up on the PATH the command gets (absolute entries only);
    a name with ``/`` is taken relative to ``cwd``."""
    if not name:
        raise CommandRefused("empty", "the command has no executable (its first item is empty)")
    _check_text(name, "the executable name")
    if "/" in name:
        candidate = os.path.join(cwd, name)
    else:
        search = _environment(policy)["PATH"]
        found = _search_path(name, search)
        if found is None:
            raise CommandRefused(
                "not_found", f"cannot run {name!r}: no executable of that name on PATH ({search})"
            )
        candidate = found
    real = os.path.realpath(candidate)
    if not os.path.exists(real):
        raise CommandRefused("not_found", f"cannot run {name!r}: {real} does not exist")
    if real not in _allowed(policy.allow):
        raise CommandRefused(
            "not_allowed",
            f"refused to run {name!r}: it resolves to {real}, which is not an allowed executable",
        )
    if not _is_executable(real):
        raise CommandRefused("not_found", f"cannot run {name!r}: {real} is not an executable file")
    return Path(real)


def _allowed(allow: Sequence[str]) -> set[str]:
    return {os.path.realpath(entry) for entry in allow if os.path.isabs(entry)}


def _search_path(name: str, search: str) -> str | None:
    # Relative PATH entries (including the empty one) would mean the working
    # directory, which the repository controls: they are skipped.
    for directory in search.split(os.pathsep):
        if os.path.isabs(directory):
            candidate = os.path.join(directory, name)
            if _is_executable(candidate):
                return candidate
    return None


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise CommandRefused("bad_argument", f"{what} must be text, not {type(value).__name__}")
    if "\0" in value:
        raise CommandRefused("bad_argument", f"{what} contains a NUL byte: {value!r}")
    return value


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _confine(root: str, rel: str, what: str, code: str) -> str:
    """The real path of ``rel`` (repository-relative), refused when it leads out."""
    _check_text(rel, what)
    real = os.path.realpath(os.path.join(root, rel))
    if not _inside(real, root):
        raise CommandRefused(
            f"{code}_outside",
            f"{what} {rel!r} leads outside the repository {root} (to {real})",
        )
    if not os.path.exists(real):
        raise CommandRefused(f"{code}_missing", f"{what} {rel!r} does not exist ({real})")
    return real


def _environment(policy: Policy) -> dict[str, str]:
    env = {name: os.environ[name] for name in (*BASE_ENV, *policy.env_allow) if name in os.environ}
    env.setdefault("PATH", os.defpath)
    return env


# -- bwrap ---------------------------------------------------------------------------


@functools.cache
def _bwrap_probe() -> tuple[str | None, str]:
    """Where bwrap is and whether it can make a sandbox here (a container may forbid
    namespaces): it runs itself inside the same kind of sandbox ``run`` asks for."""
    found = shutil.which("bwrap")
    if found is None:
        return None, "bwrap is not installed (Debian and Ubuntu: apt-get install bubblewrap)"
    exe = os.path.realpath(found)
    probe = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *NAMESPACES]
    try:
        done = subprocess.run(
            [*probe, "--", exe, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{exe} cannot be run here: {exc}"
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip()
        return None, f"{exe} cannot make a sandbox here: {reason}"
    return exe, ""


def bwrap_path() -> str | None:
    """The real path of a bwrap that works on this machine, or None (probed once)."""
    return _bwrap_probe()[0]


def _bwrap_argv(
    bwrap: str,
    root: str,
    writable: Sequence[tuple[int, str]],
    exe: str,
    argv: Sequence[str],
    cwd: str,
) -> list[str]:
    # Order matters: later mounts cover earlier ones, so the repository comes back
    # (read-only) even when it lives under a private directory, and the writable
    # paths (bound from descriptors bwrap inherits) and the executable come last.
    view = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for private in PRIVATE_DIRS:
        if os.path.isdir(private):
            view += ["--tmpfs", private]
    view += ["--ro-bind", root, root]
    for fd, path in writable:
        view += ["--bind", f"/proc/self/fd/{fd}", path]
    view += ["--ro-bind", exe, exe]
    return [bwrap, *view, *NAMESPACES, "--chdir", cwd, "--", exe, *argv[1:]]


# -- the process count: a pids cgroup per command --------------------------------------


@functools.cache
def _pids_hierarchy() -> Path | None:
    """The cgroup directory under which this process can make pids cgroups, or None."""
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
        own = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    memberships = [line.split(":", 2) for line in own if line.count(":") >= 2]
    for line in mounts:
        fields = line.split()
        if len(fields) < 4:
            continue
        where, fstype, options = fields[1], fields[2], fields[3].split(",")
        if fstype == "cgroup" and "pids" in options:
            rel = next((p for _, names, p in memberships if "pids" in names.split(",")), None)
        elif fstype == "cgroup2":
            rel = next((p for h, names, p in memberships if h == "0" and not names), None)
        else:
            continue
        if rel is not None and _can_limit_pids(Path(where + rel.rstrip("/")), fstype):
            return Path(where + rel.rstrip("/"))
    return None


def _can_limit_pids(parent: Path, fstype: str) -> bool:
    if not os.access(parent, os.W_OK):
        return False
    if fstype == "cgroup":
        return True
    try:
        if "pids" not in (parent / "cgroup.controllers").read_text().split():
            return False
        if "pids" not in (parent / "cgroup.subtree_control").read_text().split():
            (parent / "cgroup.subtree_control").write_text("+pids")
    except OSError:  # not delegated to us, or processes in the way (EBUSY)
        return False
    return True


class _PidsCgroup:
    """One command's pids cgroup: bounds its task count and finds every task it has."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Opened here so that the child only has to write to it before exec.
        self.procs_fd = os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)

    @classmethod
    def create(cls, limit: int) -> _PidsCgroup | None:
        parent = _pids_hierarchy()
        if parent is None:
            return None
        _sweep(parent)
        path = parent / f"scribe-{os.getpid()}-{next(_serial)}"
        try:
            path.mkdir()
        except OSError:
            return None
        try:
            (path / "pids.max").write_text(str(limit))
            return cls(path)
        except OSError:
            path.rmdir()
            return None

    def tasks(self) -> list[int]:
        with suppress(OSError):
            return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]
        return []

    def signal(self, sig: int, spare: Collection[int] = ()) -> None:
        for pid in self.tasks():
            if pid not in spare:
                with suppress(ProcessLookupError):
                    os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL every task; forks are frozen first so that one sweep reaches all."""
        with suppress(OSError):
            (self.path / "pids.max").write_text("0")
        self.signal(signal.SIGKILL)

    def remove(self, patience: float = 5.0) -> None:
        """Kill what is left and remove the cgroup once its tasks are gone."""
        os.close(self.procs_fd)
        deadline = time.monotonic() + patience
        while True:
            self.kill()
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() >= deadline:
                    return  # a task stuck in the kernel; the empty cgroup stays behind
                time.sleep(0.01)  # killed tasks leave asynchronously; v1 cannot notify


def _sweep(parent: Path) -> None:
    """Remove the cgroups of Scribe processes that died without removing their own
    (``kill -9``), killing whatever still runs in them."""
    for path in parent.glob("scribe-*-*"):
        owner = path.name.split("-")[1]
        if owner.isdigit() and not _alive(int(owner)):
            with suppress(OSError):  # another Scribe may be sweeping it too
                _PidsCgroup(path).remove(patience=1.0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _bwrap_own(bwrap_pid: int, tasks: list[int]) -> set[int]:
    """bwrap and the init of its pid namespace (bwrap's child), which must not get
    the polite SIGTERM: bwrap does not forward it, and its death would SIGKILL the
    whole sandbox at once, leaving the command no grace."""
    own = {bwrap_pid}
    for pid in tasks:
        with suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == bwrap_pid:
                own.add(pid)
    return own


# -- the child and its output -----------------------------------------------------------


def _child_setup(limits: Limits, cgroup_fd: int | None, parent: int) -> Callable[[], None]:
    """What the child does between fork and exec. It runs in a forked copy of a
    threaded process, so it only makes system calls: no imports, no locks."""
    rlimits = [
        (resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1)),
        (resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes)),
        (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
        (resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes)),
    ]
    if cgroup_fd is None:
        rlimits.append((resource.RLIMIT_NPROC, (limits.processes, limits.processes)))
    prctl = _libc.prctl

    def setup() -> None:
        if cgroup_fd is not None:
            os.write(cgroup_fd, b"0")  # "0": the writing process itself
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # Scribe died before the line above
            os.kill(os.getpid(), signal.SIGKILL)
        for which, pair in rlimits:
            resource.setrlimit(which, pair)

    return setup


class _Stream:
    """One output pipe: the first ``keep`` bytes, and a count of all of them."""

    def __init__(self, fd: int, keep: int) -> None:
        self.fd = fd
        self.keep = keep
        self.kept = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        room = self.keep - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]
        self.total += len(chunk)

    def text(self) -> str:
        text = self.kept.decode("utf-8", errors="replace")
        dropped = self.total - len(self.kept)
        return f"{text}\n[... {dropped} more bytes not kept]" if dropped else text


class _Supervisor:
    """Signals for one running command: to its cgroup when there is one, else to its
    process group (which a task that called setsid has left)."""

    def __init__(
        self, proc: subprocess.Popen[bytes], cgroup: _PidsCgroup | None, bwrap: bool
    ) -> None:
        self.proc = proc
        self.cgroup = cgroup
        self.bwrap = bwrap

    def terminate(self) -> None:
        if self.cgroup is None:
            self._group(signal.SIGTERM)
        elif self.bwrap:
            tasks = self.cgroup.tasks()
            self.cgroup.signal(signal.SIGTERM, spare=_bwrap_own(self.proc.pid, tasks))
        else:
            self.cgroup.signal(signal.SIGTERM)

    def kill(self) -> None:
        self._group(signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill()

    def _group(self, sig: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


def _supervise(
    proc: subprocess.Popen[bytes],
    streams: list[_Stream],
    supervisor: _Supervisor,
    timeout: float,
    grace: float,
) -> bool:
    """Read both pipes until they close, enforcing the deadline; True if it passed.

    Steps: running until the deadline (SIGTERM), then ``grace`` (SIGKILL). When the
    main process exits, its leftovers are killed; a pipe still open ``grace`` after
    the last kill is held by something out of reach, and is no longer waited for."""
    pidfd = os.pidfd_open(proc.pid)
    step = "running"
    deadline = time.monotonic() + timeout
    timed_out = exited = False
    with selectors.DefaultSelector() as selector:
        for stream in streams:
            selector.register(stream.fd, selectors.EVENT_READ, stream)
        selector.register(pidfd, selectors.EVENT_READ, None)
        try:
            while not exited or any(key.data is not None for key in selector.get_map().values()):
                for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                    if key.data is None:
                        selector.unregister(pidfd)
                        exited = True
                        supervisor.kill()
                        step, deadline = "exited", time.monotonic() + grace
                    elif chunk := os.read(key.fd, _CHUNK):
                        key.data.add(chunk)
                    else:
                        selector.unregister(key.fd)
                if time.monotonic() < deadline:
                    continue
                if step == "running":
                    timed_out = True
                    supervisor.terminate()
                    step, deadline = "terminated", time.monotonic() + grace
                elif step == "terminated":
                    supervisor.kill()
                    step, deadline = "killed", time.monotonic() + grace
                else:
                    break
        finally:
            os.close(pidfd)
    return timed_out


# -- run ---------------------------------------------------------------------------------


def run(
    argv: Sequence[str],
    policy: Policy,
    *,
    cwd: str = ".",
    timeout: float,
    writable: Sequence[str] = (),
) -> CommandResult:
    """Run ``argv`` in the sandbox and wait for it (and everything it started) to end.

    ``cwd`` and ``writable`` are relative to the repository root. Everything is
    checked before the command starts; a refusal raises ``CommandRefused``. A
    command that fails, times out or is killed is a result, not an error."""
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, not {timeout}")
    argv = tuple(argv)
    if not argv:
        raise CommandRefused("empty", "the command is empty (no executable, no arguments)")
    for item in argv:
        _check_text(item, "an argument")
    root = os.path.realpath(policy.root)
    workdir = _confine(root, cwd, "the working directory", "cwd")
    if not os.path.isdir(workdir):
        raise CommandRefused("cwd_missing", f"the working directory {cwd!r} is not a directory")
    exe = str(resolve_executable(argv[0], policy, cwd=Path(workdir)))
    paths = [_confine(root, path, "the writable path", "writable") for path in writable]
    bwrap = _isolation(policy.isolation)

    with ExitStack() as cleanup:
        command, program, processes, fds = list(argv), exe, policy.limits.processes, []
        if bwrap is not None:
            fds = [_open_writable(root, path, cleanup) for path in paths]
            command = _bwrap_argv(
                bwrap, root, list(zip(fds, paths, strict=True)), exe, argv, workdir
            )
            program, processes = bwrap, processes + BWRAP_TASKS
        cgroup = _PidsCgroup.create(processes)
        if cgroup is not None:
            cleanup.callback(cgroup.remove)
        setup = _child_setup(policy.limits, cgroup.procs_fd if cgroup else None, os.getpid())
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                command,
                executable=program,
                cwd=workdir,
                env=_environment(policy),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=setup,
                pass_fds=fds,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise CommandRefused("cannot_start", f"cannot start {exe}: {exc}") from None
        out, err, timed_out = _wait(
            proc, _Supervisor(proc, cgroup, bwrap is not None), policy, timeout
        )
    returncode = proc.returncode
    return CommandResult(
        argv=argv,
        executable=exe,
        exit_code=returncode if returncode >= 0 else None,
        signal=-returncode if returncode < 0 else None,
        timed_out=timed_out,
        stdout=out.text(),
        stderr=err.text(),
        stdout_bytes=out.total,
        stderr_bytes=err.total,
        duration=time.monotonic() - started,
        isolation="bwrap" if bwrap is not None else "none",
        process_bound=_process_bound(cgroup),
    )


def _wait(
    proc: subprocess.Popen[bytes], supervisor: _Supervisor, policy: Policy, timeout: float
) -> tuple[_Stream, _Stream, bool]:
    """Collect the output of a started command and reap it, whatever happens."""
    assert proc.stdout is not None
    assert proc.stderr is not None
    out = _Stream(proc.stdout.fileno(), policy.output_bytes)
    err = _Stream(proc.stderr.fileno(), policy.output_bytes)
    try:
        timed_out = _supervise(proc, [out, err], supervisor, timeout, policy.grace)
    finally:
        if proc.poll() is None:
            supervisor.kill()
        proc.stdout.close()
        proc.stderr.close()
        proc.wait()
    return out, err, timed_out


def _open_writable(root: str, path: str, cleanup: ExitStack) -> int:
    """An O_PATH descriptor of a writable path, for bwrap to bind: the directory
    checked is the one bound, even if the path is swapped for a symlink meanwhile."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    cleanup.callback(os.close, fd)
    opened = os.readlink(f"/proc/self/fd/{fd}")
    if opened != path or not _inside(opened, root):
        raise CommandRefused(
            "writable_outside", f"the writable path {path} changed to {opened} while checked"
        )
    return fd


def _process_bound(cgroup: _PidsCgroup | None) -> str:
    if cgroup is not None:
        return "cgroup"
    return "none" if os.geteuid() == 0 else "rlimit"  # root is exempt from RLIMIT_NPROC


def _isolation(isolation: str) -> str | None:
    """The bwrap to run under, or None for no isolation."""
    if isolation == "none":
        return None
    found, reason = _bwrap_probe()
    if found is None and isolation == "bwrap":
        raise CommandRefused("no_bwrap", f"the sandbox requires bwrap, but {reason}")
    return found

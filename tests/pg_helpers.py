"""A real PostgreSQL server for the journal tests: Debian's postgresql 15, installed
with apt-get when it is missing, started once a session in a temporary directory.

It listens on 127.0.0.1 on a free port (and on a unix socket in its directory),
with fsync on, as the ``postgres`` user when the tests run as root (initdb refuses
root). Each test gets a database of its own, made from ``template0`` in one cheap
``CREATE DATABASE``.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from apt_helpers import apt_install, can_install

BIN = Path("/usr/lib/postgresql/15/bin")
SERVER_USER = "postgres"


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binaries() -> Path:
    if not (BIN / "initdb").exists():
        if not can_install():
            pytest.fail("PostgreSQL 15 is not installed, and cannot be (needs root and apt-get)")
        status, output = apt_install("postgresql")
        if not (BIN / "initdb").exists():
            pytest.fail(f"apt-get install postgresql failed (exit {status}):\n{output[-3000:]}")
    return BIN


def _as_server_user(argv: list[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", SERVER_USER, "--", *argv]


@dataclass
class PostgresServer:
    """A running server: URLs of fresh databases on it, and a way to stop it."""

    directory: Path
    port: int
    user: str
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a database made for the caller alone (empty: no schema yet)."""
        name = f"journal_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            _as_server_user([str(BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-m",
                             "fast", "-w", "stop"]),
            capture_output=True,
            check=False,
            timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb in a new temporary directory, then start the server and wait for it."""
    binaries = _binaries()
    # Not under pytest's tmp_path: its parents are private to root, and the server
    # runs as another user.
    directory = Path(tempfile.mkdtemp(prefix="scribe-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        user = SERVER_USER
    else:
        user = pwd.getpwuid(os.geteuid()).pw_name
    data = directory / "data"
    subprocess.run(
        _as_server_user([str(binaries / "initdb"), "-D", str(data), "-U", user,
                         "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"]),
        capture_output=True,
        check=True,
        timeout=120,
    )  # fmt: skip
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} "
        "-c fsync=on -c synchronous_commit=on -c max_connections=100"
    )
    started = subprocess.run(
        _as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-l",
                         str(directory / "server.log"), "-o", options, "-w", "-t", "60", "start"]),
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )  # fmt: skip
    server = PostgresServer(directory, port, user)
    if started.returncode != 0:
        log = (directory / "server.log").read_text(errors="replace")
        server.stop()
        pytest.fail(f"PostgreSQL did not start:\n{started.stderr}\n{log[-3000:]}")
    return server


_shared: list[PostgresServer] = []


def shared_postgres(request: pytest.FixtureRequest) -> PostgresServer:
    """The session's one server: started by the first session fixture that asks,
    stopped when that fixture is torn down (at the end of the session)."""
    if not _shared:
        _shared.append(start_postgres())
        request.addfinalizer(_stop_shared)
    return _shared[0]


def _stop_shared() -> None:
    _shared.pop().stop()

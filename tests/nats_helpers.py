"""A real ``nats-server`` with JetStream for the bus tests, and real ``scribe watch``
and ``scribe worker`` processes around it.

The server is Debian's ``nats-server``, installed by ``apt_install`` when missing,
listening on 127.0.0.1 on a free port with its store in a temporary directory. It
can be restarted on the same port and store, as an operator's restart would.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.js.errors
import pytest

from apt_helpers import apt_install, can_install
from live_helpers import SCRIBE, ScribeProcess, wait_until
from scribe.bus import STREAM


def nats_server_binary() -> str:
    found = shutil.which("nats-server")
    if found is None and can_install():
        apt_install("nats-server")
        found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError(
            "nats-server is not installed and cannot be (apt-get install nats-server)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NatsServer:
    """``nats-server`` with JetStream, from a configuration file it writes itself."""

    def __init__(self, directory: Path, *, tls: str = "", jetstream: bool = True) -> None:
        self.directory = directory
        self.store = directory / "store"
        self.port = free_port()
        self.log_path = directory / "nats.log"
        self.config = directory / "nats.conf"
        directory.mkdir(parents=True, exist_ok=True)
        stream = f'jetstream {{ store_dir: "{self.store}" }}' if jetstream else ""
        self.config.write_text(f'listen: "127.0.0.1:{self.port}"\n{stream}\n{tls}\n')
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [nats_server_binary(), "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if not wait_until(self._listening, 15, interval=0.02):
            raise AssertionError(f"nats-server did not start:\n{self.log()}")

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"nats-server exited:\n{self.log()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port and store."""
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def reset_stream(url: str) -> None:
    """Remove ``SCRIBE_EVENTS`` (and its consumers): each test starts on an empty bus."""

    async def reset() -> None:
        client = await nats.connect(url, allow_reconnect=False)
        try:
            await client.jetstream().delete_stream(STREAM)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await client.close()

    asyncio.run(reset())


def pending_messages(url: str) -> int:
    """Messages of the stream not yet acknowledged, over every shard's consumer."""

    async def count() -> int:
        client = await nats.connect(url, allow_reconnect=False)
        try:
            js = client.jetstream()
            total = 0
            for info in await js.consumers_info(STREAM):
                total += (info.num_pending or 0) + (info.num_ack_pending or 0)
            return total
        finally:
            await client.close()

    return asyncio.run(count())


def stored_messages(url: str) -> int:
    """Messages the stream holds."""

    async def count() -> int:
        client = await nats.connect(url, allow_reconnect=False)
        try:
            info = await client.jetstream().stream_info(STREAM)
            return info.state.messages
        except nats.js.errors.NotFoundError:
            return 0
        finally:
            await client.close()

    return asyncio.run(count())


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bus(nats_server: NatsServer) -> NatsServer:
    """The session's server, running, with an empty stream."""
    if nats_server.proc is None or nats_server.proc.poll() is not None:
        nats_server.start()
    reset_stream(nats_server.url)
    return nats_server


class WorkerProcess(ScribeProcess):
    """A real ``scribe worker ROOT --bus URL`` process."""

    def __init__(self, root: Path, url: str, *args: str, log_path: Path) -> None:
        self.root = root
        self.log_path = log_path
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [SCRIBE, "worker", str(root), "--bus", url, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    def wait_ready(self, timeout: float = 20.0) -> None:
        if not wait_until(
            lambda: bool(self.records("working")) or self.proc.poll() is not None, timeout
        ):
            raise AssertionError(f"scribe worker not ready after {timeout} s:\n{self.log()}")
        if self.proc.poll() is not None:
            raise AssertionError(f"scribe worker exited with {self.proc.returncode}:\n{self.log()}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)

"""A real Prometheus for end-to-end tests: found on PATH, or installed from Debian's
package when the tests run as root (CI starts from a fresh machine).

Without it the test is skipped, except under CI (``CI`` set), where it fails: a
green run must mean Prometheus really scraped Scribe.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from apt_helpers import apt_install, can_install
from live_helpers import wait_until

DEBIAN_BINARY = "/usr/bin/prometheus"


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"Prometheus is required under CI: {reason}")
    pytest.skip(reason)


def _found() -> str | None:
    return shutil.which("prometheus") or (
        DEBIAN_BINARY if os.access(DEBIAN_BINARY, os.X_OK) else None
    )


@functools.cache
def prometheus_binary() -> str:
    """The Prometheus executable, installed with apt-get if need be (once a session)."""
    found = _found()
    if found:
        return found
    if not can_install():
        _unavailable("prometheus is not on PATH, and cannot be installed (needs root and apt-get)")
    try:
        status, output = apt_install("prometheus")
    except subprocess.TimeoutExpired as exc:
        _unavailable(f"apt-get timed out after {exc.timeout} s")
    # Without an init system the package's postinst cannot start its service; dpkg may
    # report that as an error although the binary is in place, so the binary decides.
    found = _found()
    if not found:
        _unavailable(f"apt-get install prometheus failed (exit {status}):\n{output[-3000:]}")
    return found


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus: its base URL, its log, and instant queries."""

    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result of an instant query (``data.result`` of ``/api/v1/query``)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                reply = json.load(response)
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            raise AssertionError(
                f"query {promql!r} failed: {exc.code} {body}\nPrometheus log:\n{self.log()}"
            ) from None
        assert reply["status"] == "success", f"{reply}\nPrometheus log:\n{self.log()}"
        result: list[dict[str, Any]] = reply["data"]["result"]
        return result


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_prometheus(
    tmp_path: Path, targets: list[str], scrape_interval: str = "1s"
) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` (``HOST:PORT``) as job ``scribe``, ready to be
    queried; it is stopped on exit, whatever happened."""
    binary = prometheus_binary()
    home = tmp_path / "prometheus"
    home.mkdir()
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": "1s",
        },
        "scrape_configs": [{"job_name": "scribe", "static_configs": [{"targets": targets}]}],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"
    prometheus = Prometheus(f"http://{address}", home / "prometheus.log")
    with open(prometheus.log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address={address}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        ready = f"{prometheus.url}/-/ready"
        if not wait_until(lambda: proc.poll() is not None or _answers(ready), 60, interval=0.1):
            raise AssertionError(f"Prometheus not ready after 60 s:\n{prometheus.log()}")
        if proc.poll() is not None:
            raise AssertionError(f"Prometheus exited with {proc.returncode}:\n{prometheus.log()}")
        yield prometheus
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

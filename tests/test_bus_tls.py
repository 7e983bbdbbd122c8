"""Mutual TLS to the bus: a nats-server that verifies client certificates lets in
a worker presenting one its CA signed, and refuses the others with a clear error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import make_repo, scribe
from live_helpers import ScribeProcess, wait_until
from nats_helpers import NatsServer
from scribe.certs import DevCerts, write_dev_certs

RULES = """\
rules:
  - id: mark
    on: [created, modified]
    paths: ["**/*.md"]
    do:
      - set: {field: checked, value: "yes"}
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, certs: DevCerts) -> Iterator[NatsServer]:
    tls = (
        f'tls {{ cert_file: "{certs.server_cert}", key_file: "{certs.server_key}", '
        f'ca_file: "{certs.ca}", verify: true, timeout: 2 }}'
    )
    server = NatsServer(tmp_path_factory.mktemp("nats-tls"), tls=tls)
    try:
        yield server
    finally:
        server.stop()


def tls_url(server: NatsServer) -> str:
    return f"tls://127.0.0.1:{server.port}"


def client_env(cert: Path | None, key: Path | None, ca: Path) -> dict[str, str]:
    env = {"SCRIBE_BUS_CA": str(ca)}
    if cert is not None and key is not None:
        env |= {"SCRIBE_BUS_CERT": str(cert), "SCRIBE_BUS_KEY": str(key)}
    return env


def test_a_certified_watcher_handles_changes_over_mutual_tls(
    tmp_path: Path, certs: DevCerts, tls_server: NatsServer
) -> None:
    root = make_repo(
        tmp_path / "repo",
        RULES,
        {
            "bus": tls_url(tls_server),
            "bus_cert": str(certs.client_cert),
            "bus_key": str(certs.client_key),
            "bus_ca": str(certs.ca),
            "listen": "off",
        },
    )
    watcher = ScribeProcess(root, log_path=tmp_path / "watch.log")  # publishes and consumes
    try:
        watcher.wait_ready()
        (root / "a.md").write_text("---\nn: 1\n---\nbody\n")
        expected = "---\nn: 1\nchecked: 'yes'\n---\nbody\n"
        assert wait_until(lambda: (root / "a.md").read_text() == expected, 20, interval=0.05)
        assert watcher.terminate(timeout=10) == 0
    finally:
        watcher.close()


def test_a_worker_without_a_client_certificate_is_refused(
    tmp_path: Path, certs: DevCerts, tls_server: NatsServer
) -> None:
    root = make_repo(tmp_path / "repo", RULES)
    refused = scribe(
        "worker",
        str(root),
        "--bus",
        tls_url(tls_server),
        cwd=root,
        env=client_env(None, None, certs.ca),
        timeout=30,
    )
    assert refused.returncode == 1, refused.stderr
    assert "refused the TLS connection" in refused.stderr
    assert "none is set (bus_cert, bus_key)" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_certificate_from_another_ca_is_refused(
    tmp_path: Path, certs: DevCerts, tls_server: NatsServer
) -> None:
    other = write_dev_certs(tmp_path / "other")
    root = make_repo(tmp_path / "repo", RULES)
    refused = scribe(
        "worker",
        str(root),
        "--bus",
        tls_url(tls_server),
        cwd=root,
        env=client_env(other.client_cert, other.client_key, certs.ca),
        timeout=30,
    )
    assert refused.returncode == 1, refused.stderr
    assert "the one in bus_cert is not signed by its CA" in refused.stderr
    # Nor does a worker trust a server its own CA did not sign.
    untrusting = scribe(
        "worker",
        str(root),
        "--bus",
        tls_url(tls_server),
        cwd=root,
        env=client_env(certs.client_cert, certs.client_key, other.ca),
        timeout=30,
    )
    assert untrusting.returncode == 1, untrusting.stderr
    assert "presented a certificate that bus_ca does not vouch for" in untrusting.stderr
    assert "Traceback" not in refused.stderr + untrusting.stderr

"""HTTPS and mutual TLS on the operations endpoints: the settings checked at start
with errors that name the setting, and real servers on 127.0.0.1 that answer
clients holding a certificate the CA signed and refuse every other."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from cli_helpers import make_repo, scribe
from live_helpers import ScribeProcess, wait_until
from mcp_helpers import RULES, free_port
from scribe.certs import DevCerts, write_dev_certs
from scribe.config import Settings
from scribe.errors import ConfigError
from scribe.observe.server import OpsServer
from scribe.tls import server_context

#: What a client sees when the server refuses it: a TLS alert, or the connection cut.
REFUSED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("tls") / "ours")


@pytest.fixture(scope="session")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    """Certificates from another CA: valid, but not signed by ours."""
    return write_dev_certs(tmp_path_factory.mktemp("tls") / "theirs")


def mutual(certs: DevCerts) -> Settings:
    return Settings(
        tls_cert=str(certs.server_cert),
        tls_key=str(certs.server_key),
        tls_client_ca=str(certs.ca),
    )


def client_context(ca: Path, identity: DevCerts | None = None) -> ssl.SSLContext:
    """A client that checks the server against ``ca`` and presents ``identity``'s
    client certificate, if given."""
    context = ssl.create_default_context(cafile=ca)
    if identity is not None:
        context.load_cert_chain(identity.client_cert, identity.client_key)
    return context


def get(address: tuple[str, int], path: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection(*address, context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def plain_get(address: tuple[str, int], path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# -- the settings --------------------------------------------------------------------


def test_no_tls_settings_mean_plain_http(tmp_path: Path) -> None:
    assert server_context(Settings(), tmp_path) is None


def test_mutual_tls_settings_give_a_context_that_requires_client_certificates(
    certs: DevCerts, tmp_path: Path
) -> None:
    context = server_context(mutual(certs), tmp_path)
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED
    one_way = server_context(
        Settings(tls_cert=str(certs.server_cert), tls_key=str(certs.server_key)), tmp_path
    )
    assert one_way is not None
    assert one_way.verify_mode is ssl.CERT_NONE


def test_relative_paths_are_taken_from_the_repository_root(certs: DevCerts) -> None:
    root = certs.ca.parent.parent
    relative = Settings(
        tls_cert=str(certs.server_cert.relative_to(root)),
        tls_key=str(certs.server_key.relative_to(root)),
    )
    assert server_context(relative, root) is not None
    with pytest.raises(ConfigError, match="tls_cert: cannot be read: no such file"):
        server_context(relative, root / "elsewhere")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"tls_client_ca": "ca.pem"}, "tls_client_ca: client certificates need HTTPS"),
        ({"tls_cert": "server.pem"}, "tls_cert: set tls_key too"),
        ({"tls_key": "server-key.pem"}, "tls_key: set tls_cert too"),
        ({"tls_cert": "nowhere.pem", "tls_key": "server-key.pem"}, "tls_cert: cannot be read"),
        ({"tls_cert": "server.pem", "tls_key": "nowhere.pem"}, "tls_key: cannot be read"),
        (
            {"tls_cert": "server.pem", "tls_key": "server-key.pem", "tls_client_ca": "no.pem"},
            "tls_client_ca: cannot be read",
        ),
        ({"tls_cert": "server-key.pem", "tls_key": "server-key.pem"}, "holds no PEM certificate"),
        ({"tls_cert": "server.pem", "tls_key": "server.pem"}, "holds no PEM private key"),
        (
            {"tls_cert": "server.pem", "tls_key": "server-key.pem", "tls_client_ca": "junk"},
            "tls_client_ca: holds no PEM certificate",
        ),
    ],
)
def test_a_wrong_setting_is_named_with_its_file(
    certs: DevCerts, given: dict[str, str], message: str
) -> None:
    (certs.ca.parent / "junk").write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=message):
        server_context(Settings.model_validate(given), certs.ca.parent)


def test_a_key_of_another_certificate_is_refused(certs: DevCerts, stranger: DevCerts) -> None:
    settings = Settings(tls_cert=str(certs.server_cert), tls_key=str(stranger.server_key))
    with pytest.raises(ConfigError, match="is not the key of the certificate"):
        server_context(settings, Path("/"))


def test_an_encrypted_key_is_refused_rather_than_prompted_for(
    certs: DevCerts, tmp_path: Path
) -> None:
    key = serialization.load_pem_private_key(certs.server_key.read_bytes(), None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    settings = Settings(tls_cert=str(certs.server_cert), tls_key=str(locked))
    with pytest.raises(ConfigError, match="tls_key: is encrypted"):
        server_context(settings, tmp_path)


# -- the operations endpoints, in process ----------------------------------------------


@pytest.fixture(scope="module")
def ops(certs: DevCerts) -> Iterator[OpsServer]:
    """The operations endpoints over mutual TLS, on a free port of 127.0.0.1."""
    context = server_context(mutual(certs), Path("/"))
    with OpsServer("127.0.0.1:0", ready=list, status=dict, tls=context) as server:
        yield server


def test_a_client_with_a_certificate_from_the_ca_gets_answers(
    ops: OpsServer, certs: DevCerts
) -> None:
    context = client_context(certs.ca, certs)
    assert get(ops.address, "/healthz", context) == (200, b"ok\n")
    assert get(ops.address, "/readyz", context) == (200, b"ready\n")


def test_a_client_without_a_certificate_is_refused(ops: OpsServer, certs: DevCerts) -> None:
    with pytest.raises(REFUSED):
        get(ops.address, "/healthz", client_context(certs.ca))
    assert get(ops.address, "/healthz", client_context(certs.ca, certs))[0] == 200


def test_a_certificate_from_another_ca_is_refused(
    ops: OpsServer, certs: DevCerts, stranger: DevCerts
) -> None:
    with pytest.raises(REFUSED):
        get(ops.address, "/metrics", client_context(certs.ca, stranger))
    assert get(ops.address, "/healthz", client_context(certs.ca, certs))[0] == 200


def test_plain_http_to_the_https_port_gets_no_answer(ops: OpsServer, certs: DevCerts) -> None:
    with pytest.raises(REFUSED):
        plain_get(ops.address, "/healthz")
    assert get(ops.address, "/healthz", client_context(certs.ca, certs))[0] == 200


def test_a_silent_client_does_not_hold_up_the_others(ops: OpsServer, certs: DevCerts) -> None:
    with socket.create_connection(ops.address, timeout=10):  # connects, never says hello
        assert get(ops.address, "/healthz", client_context(certs.ca, certs))[0] == 200


def test_without_a_client_ca_any_client_gets_answers_over_https(certs: DevCerts) -> None:
    settings = Settings(tls_cert=str(certs.server_cert), tls_key=str(certs.server_key))
    context = server_context(settings, Path("/"))
    with OpsServer("127.0.0.1:0", ready=list, status=dict, tls=context) as server:
        assert get(server.address, "/healthz", client_context(certs.ca)) == (200, b"ok\n")
        with pytest.raises(ssl.SSLCertVerificationError):  # the client checks the server
            get(server.address, "/healthz", ssl.create_default_context())


# -- scribe watch ---------------------------------------------------------------------


def test_scribe_watch_serves_its_endpoints_over_mutual_tls(
    certs: DevCerts, stranger: DevCerts, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", RULES, mutual(certs).model_dump(exclude_unset=True))
    port = free_port()
    address = ("127.0.0.1", port)
    watch = ScribeProcess(repo, "--listen", f"127.0.0.1:{port}", log_path=tmp_path / "log")
    ours = client_context(certs.ca, certs)
    try:

        def answers() -> bool:
            try:
                return get(address, "/healthz", ours)[0] == 200
            except OSError:
                return watch.proc.poll() is not None  # stop waiting on a dead process

        assert wait_until(answers, 30, interval=0.1), watch.log()
        assert watch.proc.poll() is None, watch.log()
        assert get(address, "/readyz", ours)[0] in (200, 503)
        with pytest.raises(REFUSED):
            get(address, "/healthz", client_context(certs.ca, stranger))
    finally:
        watch.close()


def test_scribe_watch_with_a_missing_certificate_stops_and_says_which(
    certs: DevCerts, tmp_path: Path
) -> None:
    settings = {"tls_cert": str(tmp_path / "gone.pem"), "tls_key": str(certs.server_key)}
    repo = make_repo(tmp_path / "repo", RULES, settings)
    done = scribe("watch", str(repo), "--listen", f"127.0.0.1:{free_port()}", cwd=repo)
    assert done.returncode == 2, done.stderr
    assert f"{tmp_path / 'gone.pem'}: tls_cert: cannot be read: no such file" in done.stderr
    assert "Traceback" not in done.stderr

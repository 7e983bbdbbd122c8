"""Development certificates: they chain to their CA, name the hosts, say what they
are for, keep their keys private, and never replace files silently."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store
from typer.testing import CliRunner

from scribe.certs import DevCerts, write_dev_certs
from scribe.certs_cli import app
from scribe.errors import ScribeError


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("certs") / "dev", ("127.0.0.1", "scribe.test"))


def test_the_server_certificate_verifies_for_its_hosts_against_the_ca(certs: DevCerts) -> None:
    store = Store([load(certs.ca)])
    for host in (x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("scribe.test")):
        chain = (
            PolicyBuilder()
            .store(store)
            .build_server_verifier(host)
            .verify(load(certs.server_cert), [])
        )
        assert chain[-1] == load(certs.ca)
    with pytest.raises(x509.verification.VerificationError):
        PolicyBuilder().store(store).build_server_verifier(x509.DNSName("other.test")).verify(
            load(certs.server_cert), []
        )


def test_the_server_certificate_names_ip_addresses_and_dns_names(certs: DevCerts) -> None:
    names = (
        load(certs.server_cert)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["scribe.test"]


def test_the_client_certificate_is_for_client_authentication(certs: DevCerts) -> None:
    store = Store([load(certs.ca)])
    verified = (
        PolicyBuilder().store(store).build_client_verifier().verify(load(certs.client_cert), [])
    )
    assert verified.chain[-1] == load(certs.ca)
    usage = load(certs.client_cert).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(usage.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_python_ssl_accepts_the_files_as_a_mutual_tls_pair(certs: DevCerts) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs.ca)
    server.load_cert_chain(certs.server_cert, certs.server_key)
    client = ssl.create_default_context(cafile=certs.ca)
    client.load_cert_chain(certs.client_cert, certs.client_key)


def test_keys_are_readable_by_their_owner_only(certs: DevCerts) -> None:
    for key in (certs.server_key, certs.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert isinstance(_private_key(key), ec.EllipticCurvePrivateKey)
    assert stat.S_IMODE(certs.ca.stat().st_mode) == 0o644
    assert not [p for p in certs.ca.parent.iterdir() if p not in certs.files()]  # no CA key


def _private_key(path: Path) -> object:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(path.read_bytes(), None)


def test_existing_certificates_are_not_overwritten_unless_asked(tmp_path: Path) -> None:
    first = write_dev_certs(tmp_path)
    before = first.ca.read_bytes()
    with pytest.raises(ScribeError, match=r"already holds ca.pem.*--force"):
        write_dev_certs(tmp_path)
    assert first.ca.read_bytes() == before
    first.server_key.chmod(0o644)
    again = write_dev_certs(tmp_path, overwrite=True)
    assert again.ca.read_bytes() != before
    assert stat.S_IMODE(again.server_key.stat().st_mode) == 0o600


def test_no_hosts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScribeError, match="at least one host"):
        write_dev_certs(tmp_path, ("", " "))
    assert not list(tmp_path.iterdir())


def test_the_command_writes_the_files_and_says_which_settings_to_set(tmp_path: Path) -> None:
    runner = CliRunner()
    where = tmp_path / "certs"
    result = runner.invoke(app, ["dev", str(where), "--host", "scribe.test"])
    assert result.exit_code == 0, result.output
    certs = DevCerts.under(where)
    assert f"tls_cert: {certs.server_cert}" in result.stdout
    assert f"tls_client_ca: {certs.ca}" in result.stdout
    assert f"bus_key: {certs.client_key}" in result.stdout
    sans = load(certs.server_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.DNSName) == ["scribe.test"]

    refused = runner.invoke(app, ["dev", str(where)])
    assert refused.exit_code == 2
    assert "already holds" in refused.stderr
    assert runner.invoke(app, ["dev", str(where), "--force"]).exit_code == 0

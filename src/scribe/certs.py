"""Development certificates: a throwaway CA, a server and a client certificate.

Mutual TLS needs three things before anything can be tried: a CA both sides
trust, a certificate the server presents for the names clients dial, and one a
client presents that the CA signed for client use. ``write_dev_certs`` makes
all three in one directory, for tests and local trials. The CA's private key
is never written: nothing more can be signed with it, so a leaked directory
is only worth as much as the certificates in it, and only for a month.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scribe.errors import ScribeError

__all__ = ["CLIENT_NAME", "VALIDITY", "DevCerts", "write_dev_certs"]

#: How long the development certificates are valid: long enough for a trial,
#: short enough that a forgotten one stops working on its own.
VALIDITY = timedelta(days=30)

#: Who the client certificate says it is.
CLIENT_NAME = "scribe-client"

_Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class DevCerts:
    """Where ``write_dev_certs`` put each PEM file."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def under(cls, directory: Path) -> DevCerts:
        return cls(
            ca=directory / "ca.pem",
            server_cert=directory / "server.pem",
            server_key=directory / "server-key.pem",
            client_cert=directory / "client.pem",
            client_key=directory / "client-key.pem",
        )

    def files(self) -> tuple[Path, ...]:
        return (self.ca, self.server_cert, self.server_key, self.client_cert, self.client_key)


def write_dev_certs(
    directory: Path,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
    *,
    overwrite: bool = False,
) -> DevCerts:
    """Write a development CA, a server certificate for ``hosts`` (IP addresses
    and DNS names, as subjectAltNames) and a client certificate into
    ``directory``, which is created if needed.

    Existing files are left alone unless ``overwrite``: replacing a CA silently
    would lock out every client that trusts the old one.
    """
    names = [host.strip() for host in hosts if host.strip()]
    if not names:
        raise ScribeError("give at least one host name or IP address for the server certificate")
    certs = DevCerts.under(directory)
    if not overwrite:
        present = [path.name for path in certs.files() if path.exists()]
        if present:
            raise ScribeError(
                f"{directory} already holds {', '.join(present)}; choose another "
                "directory or ask to overwrite them (--force)"
            )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScribeError(f"cannot create {directory}: {exc.strerror}") from None

    now = datetime.now(UTC) - timedelta(minutes=5)  # tolerate a little clock skew
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Scribe development CA")
    ca = (
        _builder(ca_name, ca_name, ca_key, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        _leaf(_name(names[0]), server_key, ca, ca_key, now, ExtendedKeyUsageOID.SERVER_AUTH)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        _leaf(_name(CLIENT_NAME), client_key, ca, ca_key, now, ExtendedKeyUsageOID.CLIENT_AUTH)
        # strict verifiers (RFC 5280 profiles) want a subjectAltName on every leaf
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(CLIENT_NAME)]), False)
        .sign(ca_key, hashes.SHA256())
    )

    _write(certs.ca, _pem(ca), secret=False)
    _write(certs.server_cert, _pem(server), secret=False)
    _write(certs.server_key, _key_pem(server_key), secret=True)
    _write(certs.client_cert, _pem(client), secret=False)
    _write(certs.client_key, _key_pem(client_key), secret=True)
    return certs


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Scribe development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: _Key, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
    )


def _leaf(
    subject: x509.Name,
    key: _Key,
    ca: x509.Certificate,
    ca_key: _Key,
    now: datetime,
    purpose: x509.ObjectIdentifier,
) -> x509.CertificateBuilder:
    return (
        _builder(subject, ca.subject, key, now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: _Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    """Write ``data``; a key is readable by its owner only from the first byte on."""
    mode = 0o600 if secret else 0o644
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)  # an overwritten file keeps its old mode otherwise
            file.write(data)
    except OSError as exc:
        raise ScribeError(f"cannot write {path}: {exc.strerror}") from None

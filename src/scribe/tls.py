"""The TLS context of Scribe's HTTP servers, built once from the settings.

``scribe watch`` (its operations endpoints) and ``scribe mcp --http`` serve HTTPS
when ``tls_cert`` and ``tls_key`` are set, and ask every client for a certificate
signed by ``tls_client_ca`` when that is set too. Both take the context built
here, so they fail the same way, at start and with the setting to fix, when a
file is missing, unreadable, not PEM, or a key that does not match its
certificate.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

from scribe.config import Settings
from scribe.errors import ConfigError, Problem

__all__ = ["server_context"]


def server_context(settings: Settings, root: Path) -> ssl.SSLContext | None:
    """The server-side TLS context the settings ask for, or None for plain HTTP.

    Relative paths are taken from ``root``, as for the other files in the
    settings. Raises ConfigError (exit 2) naming the setting and the file.
    """
    cert, key, client_ca = settings.tls_cert, settings.tls_key, settings.tls_client_ca
    if not cert and not key:
        if client_ca:
            raise _problem(
                "tls_client_ca",
                client_ca,
                "client certificates need HTTPS: set tls_cert and "
                "tls_key too (scribe certs dev DIR writes a set to try)",
            )
        return None
    if not cert or not key:
        missing, given = ("tls_key", "tls_cert") if cert else ("tls_cert", "tls_key")
        raise _problem(given, cert or key or "", f"set {missing} too: HTTPS needs both")
    cert_path, key_path = root / cert, root / key
    _check_certificates("tls_cert", cert_path)
    _check_key(key_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise _problem(
                "tls_key", str(key_path), f"is not the key of the certificate {cert_path}"
            ) from None
        raise _problem(
            "tls_cert", str(cert_path), f"cannot be used with {key_path}: {exc}"
        ) from None
    if client_ca:
        ca_path = root / client_ca
        _check_certificates("tls_client_ca", ca_path)
        context.load_verify_locations(cafile=ca_path)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise _problem(setting, str(path), f"cannot be read: {reason}") from None


def _check_certificates(setting: str, path: Path) -> None:
    """The file holds PEM certificates, none of them expired."""
    # cryptography (about 9 MB) is loaded only when certificates are configured.
    from cryptography import x509

    try:
        found = x509.load_pem_x509_certificates(_read(setting, path))
    except ValueError:
        raise _problem(setting, str(path), "holds no PEM certificate") from None
    now = datetime.now(UTC)
    for certificate in found:
        if certificate.not_valid_after_utc < now:
            ended = certificate.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
            raise _problem(
                setting, str(path), f"holds a certificate that expired on {ended}; renew it"
            )


def _check_key(path: Path) -> None:
    """The file holds a private key in PEM, readable without a passphrase (a service
    has no terminal to ask on)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_pem_private_key(_read("tls_key", path), password=None)
    except TypeError:
        raise _problem(
            "tls_key", str(path), "is encrypted; give the key without a passphrase"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise _problem("tls_key", str(path), "holds no PEM private key") from None


def _problem(setting: str, file: str, message: str) -> ConfigError:
    return ConfigError([Problem(file, 0, 0, setting, message)])

"""Probe a running ``scribe watch``: GET one of its endpoints the way its settings
serve them; exit 0 on 200, 1 otherwise.

For the image's HEALTHCHECK and Kubernetes exec probes: HTTP probes cannot present
a client certificate, which the endpoints ask for when ``tls_client_ca`` is set.
The server's certificate is not checked: the probe asks its own process over
loopback, whatever names the certificate was made for.
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import sys
from pathlib import Path

from scribe.config import load_settings
from scribe.errors import ScribeError
from scribe.observe.server import parse_listen

#: Where a wildcard address is asked from inside the container.
LOCAL = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", nargs="?", default="/healthz", help="/healthz or /readyz")
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository root")
    parser.add_argument("--cert", default=os.environ.get("HEALTHCHECK_CERT"))
    parser.add_argument("--key", default=os.environ.get("HEALTHCHECK_KEY"))
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.root)
        if settings.listen.strip().lower() == "off":
            raise ScribeError("listen is off: there is no endpoint to ask")
        host, port = parse_listen(settings.listen)
        host = LOCAL.get(host, host)
        connection: http.client.HTTPConnection
        if settings.tls_cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            if args.cert:
                context.load_cert_chain(args.cert, args.key)
            connection = http.client.HTTPSConnection(
                host, port, context=context, timeout=args.timeout
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=args.timeout)
        try:
            connection.request("GET", args.path)
            status = connection.getresponse().status
        finally:
            connection.close()
    except (ScribeError, OSError, ValueError, http.client.HTTPException) as exc:
        print(f"{args.path}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.path}: {status}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())

"""``scribe certs``: certificates for trying TLS and mutual TLS locally.

Exit codes: 0 written; 2 nothing written (files already there, or a directory
that cannot be written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from scribe.errors import ScribeError

app = typer.Typer(
    name="certs",
    help="Create certificates for TLS and mutual TLS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


@app.callback()
def _certs() -> None:
    """Create certificates for TLS and mutual TLS."""


@app.command("dev")
def dev(
    directory: Annotated[Path, typer.Argument(help="Where to write the PEM files.")],
    hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            help="Name or IP address clients dial, for the server certificate; repeat "
            "for several (default: 127.0.0.1 and localhost).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite certificates already there.")
    ] = False,
) -> None:
    """Write a development CA, a server and a client certificate into DIRECTORY."""
    from scribe.certs import VALIDITY, write_dev_certs  # cryptography: only when asked for

    try:
        certs = write_dev_certs(
            directory, tuple(hosts) if hosts else ("127.0.0.1", "localhost"), overwrite=force
        )
    except ScribeError as exc:
        err.print(Text(str(exc), style="red"), soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(f"wrote development certificates, valid {VALIDITY.days} days, into {directory}:")
    out.print(f"  CA certificate      {certs.ca}")
    out.print(f"  server certificate  {certs.server_cert}  (key {certs.server_key})")
    out.print(f"  client certificate  {certs.client_cert}  (key {certs.client_key})")
    out.print("HTTPS and client certificates for scribe watch and mcp --http (scribe.yaml):")
    out.print(f"  tls_cert: {certs.server_cert}")
    out.print(f"  tls_key: {certs.server_key}")
    out.print(f"  tls_client_ca: {certs.ca}")
    out.print("mutual TLS to the bus (a NATS server started with the server certificate):")
    out.print(f"  bus_cert: {certs.client_cert}")
    out.print(f"  bus_key: {certs.client_key}")
    out.print(f"  bus_ca: {certs.ca}")
    out.print("a client, for example:")
    out.print(
        f"  curl --cacert {certs.ca} --cert {certs.client_cert} --key {certs.client_key} "
        "https://127.0.0.1:9469/healthz"
    )
    out.print(
        "[dim]for development only; the CA key was not kept, so nothing more can be signed[/]"
    )

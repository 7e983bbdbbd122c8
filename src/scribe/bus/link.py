"""The connection to NATS JetStream, on an asyncio loop in a thread of its own.

nats-py is asyncio-only while the engine, the watcher and the scheduler are
threads: ``Link.call`` runs a coroutine on the link's loop and waits for it, so a
thread can publish or acknowledge without an event loop of its own.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from scribe.bus.wire import STREAM, SUBJECT_PREFIX, durable, subject
from scribe.config import Settings
from scribe.errors import ConfigError, Problem, ScribeError

log = logging.getLogger("scribe")

T = TypeVar("T")

#: Seconds the first connection may take before the server counts as not answering.
CONNECT_TIMEOUT = 3.0
#: Publishes with the same event id within this window are stored once.
DUPLICATE_WINDOW = 120.0


def check_url(url: str) -> str:
    """``url`` if it names a NATS server (``nats://HOST:PORT`` or ``tls://HOST:PORT``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        port, parts = None, None
    if parts is None or parts.scheme not in ("nats", "tls") or not parts.hostname or not port:
        raise ConfigError(
            [
                Problem(
                    "settings",
                    0,
                    0,
                    "bus",
                    f"{url!r} is not a bus URL; give nats://HOST:PORT, or tls://HOST:PORT for TLS",
                )
            ]
        )
    return url


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The context for mutual TLS from ``bus_cert``, ``bus_key`` and ``bus_ca``; None
    when none is set (a ``tls://`` URL then trusts the system's CAs)."""
    given = {"bus_cert": settings.bus_cert, "bus_key": settings.bus_key, "bus_ca": settings.bus_ca}
    if not any(given.values()):
        return None
    problems = []
    if bool(settings.bus_cert) != bool(settings.bus_key):
        problems.append("bus_cert and bus_key go together: set both, or neither")
    for key, value in given.items():
        if value and not Path(value).is_file():
            problems.append(f"{key}: {value} is not a file")
    if problems:
        raise ConfigError([Problem("settings", 0, 0, "bus", p) for p in problems])
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.bus_ca)
    if settings.bus_cert and settings.bus_key:
        try:
            context.load_cert_chain(settings.bus_cert, settings.bus_key)
        except ssl.SSLError as exc:
            raise ConfigError(
                [Problem("settings", 0, 0, "bus_cert", f"cannot use it with bus_key: {exc}")]
            ) from None
    return context


class Link:
    """One connection to the bus, with the stream and the shards' consumers in place.

    The connection reconnects by itself (a restarted server, a network blip) for as
    long as the link is open; only the first connection must succeed at once.
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.bus:
            raise ScribeError("no bus is set: give --bus nats://HOST:PORT or set bus")
        self.url = check_url(settings.bus)
        self.shards = settings.bus_shards
        self.ack_wait = settings.bus_ack_wait
        self._tls = tls_context(settings)
        self._certified = bool(settings.bus_cert)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="scribe-bus", daemon=True
        )
        self._thread.start()
        self._client: Client | None = None
        self.js: JetStreamContext
        try:
            self._client, self.js = self.call(self._connect(), timeout=CONNECT_TIMEOUT * 4)
        except BaseException:
            self._stop_loop()
            raise

    @property
    def connected(self) -> bool:
        """Whether the connection is up now (it reconnects by itself when lost)."""
        return self._client is not None and self._client.is_connected

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the link's loop from any other thread; its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    async def _connect(self) -> tuple[Client, JetStreamContext]:
        connected = False
        failures: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            if connected:
                log.warning("bus %s: %s", self.url, _why(exc))
            else:  # told once, as the reason the start failed
                failures.append(exc)

        async def on_disconnected() -> None:
            if self._client is not None:  # else closed on purpose
                log.warning("bus %s: disconnected; reconnecting", self.url)

        async def on_reconnected() -> None:
            log.info("bus %s: reconnected", self.url)

        try:
            client = await nats.connect(
                self.url,
                tls=self._tls,
                connect_timeout=int(CONNECT_TIMEOUT),
                # The first connection gets two attempts, so that its failure is told
                # at once, and as it is (refused, timed out, a certificate rejected)...
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.5,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise ScribeError(self._refusal(_telling(exc, failures))) from None
        # ...and from then on, a lost server is waited for, however long it takes.
        client.options["allow_reconnect"] = True
        client.options["max_reconnect_attempts"] = -1
        connected = True
        js = client.jetstream(timeout=5)
        try:
            await self._prepare(js)
        except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
            await client.close()
            raise ScribeError(
                f"the NATS server at {self.url} has JetStream disabled; start it with -js "
                "(or a jetstream {} block in its configuration)"
            ) from None
        except BaseException:
            await client.close()
            raise
        return client, js

    async def _prepare(self, js: JetStreamContext) -> None:
        """Create the stream and the shards' durable consumers, unless they exist."""
        try:
            await js.stream_info(STREAM)
        except nats.js.errors.NotFoundError:
            config = StreamConfig(
                name=STREAM,
                subjects=[f"{SUBJECT_PREFIX}.*"],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW,
            )
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await js.stream_info(STREAM)  # another process created it first
        for shard in range(self.shards):
            await self._consumer(js, shard)

    async def _consumer(self, js: JetStreamContext, shard: int) -> None:
        # One message of a shard out at a time, across every worker: a file's events
        # are handled in order, and never by two workers at once.
        config = ConsumerConfig(
            durable_name=durable(shard),
            filter_subject=subject(shard),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=1,
            ack_wait=self.ack_wait,
            max_deliver=-1,  # counted by the workers, which quarantine the event
        )
        try:
            await js.consumer_info(STREAM, durable(shard))
        except nats.js.errors.NotFoundError:
            try:
                await js.add_consumer(STREAM, config)
            except nats.js.errors.BadRequestError:
                await js.consumer_info(STREAM, durable(shard))

    def _refusal(self, exc: BaseException) -> str:
        """What to tell when the first connection fails with ``exc``."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (
                f"the bus at {self.url} presented a certificate that bus_ca does not "
                f"vouch for ({exc.verify_message}); set bus_ca to the CA that signed it"
            )
        secure = self._tls is not None or self.url.startswith("tls://")
        # A server that checks client certificates may close the connection before
        # its alert arrives: on TLS, a connection cut during the start is a refusal.
        cut = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, EOFError)
        if isinstance(exc, ssl.SSLError) or (secure and isinstance(exc, cut)):
            given = (
                "the one in bus_cert is not signed by its CA"
                if self._certified
                else "none is set (bus_cert, bus_key)"
            )
            return (
                f"the bus at {self.url} refused the TLS connection ({_why(exc)}): it wants "
                f"a client certificate signed by its CA, and {given}"
            )
        if isinstance(exc, nats.errors.SecureConnRequiredError):
            return (
                f"the bus at {self.url} requires TLS: give tls://HOST:PORT, and bus_cert, "
                "bus_key and bus_ca if it checks client certificates"
            )
        return (
            f"the bus at {self.url} is not answering ({_why(exc)}); start nats-server with "
            "JetStream (nats-server -js) or give the right --bus URL"
        )

    def close(self) -> None:
        """Close the connection; safe to call twice. Every publish and acknowledgement
        was confirmed by the server already, so there is nothing to drain."""
        client, self._client = self._client, None
        if client is not None:
            try:
                self.call(client.close(), timeout=5)
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("bus %s: closing: %s", self.url, _why(exc))
        self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=2)


def _telling(raised: BaseException, failures: list[Exception]) -> BaseException:
    """The failure that says most of why the first connection failed: a TLS error
    if there was one, else the last attempt's own error rather than the client's
    summary (no servers available)."""
    seen = [*failures, raised]
    tls = [exc for exc in seen if isinstance(exc, ssl.SSLError)]
    if tls:
        return tls[-1]
    if isinstance(raised, nats.errors.NoServersError) and failures:
        return failures[-1]
    return raised


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__

"""The stdio transport, read and written by the event loop itself.

The SDK's stdio transport hands every line read and every line written to a
worker thread, which costs more than a small tool call. Here stdin and stdout
are pipes registered with the event loop, so a round trip costs no thread hop.
As in the SDK, the process's own fd 0 and fd 1 are pointed at ``/dev/null``
and stderr while serving: a stray ``print`` (or a child process) can never
write into the protocol stream. Anything that is not a pipe (a file, a
terminal) is served by the SDK's own transport instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage

Incoming = MemoryObjectReceiveStream[SessionMessage | Exception]
Outgoing = MemoryObjectSendStream[SessionMessage]
#: The longest message line accepted (a read_file answer can be large).
LINE_LIMIT = 64 * 1024 * 1024


class Unanswered:
    """The client's requests read and not yet answered (nor cancelled by the client).

    A tool call that is the only one may commit on the event loop's own thread;
    this is how it learns that no other request of the client waits behind it."""

    def __init__(self) -> None:
        self._ids: set[types.RequestId] = set()
        self.following = False  # set by the pipes; the SDK's own transport tells nothing

    def alone(self) -> bool:
        return self.following and len(self._ids) <= 1

    def read(self, message: types.JSONRPCMessage) -> None:
        if isinstance(message, types.JSONRPCRequest):
            self._ids.add(message.id)
        elif isinstance(message, types.JSONRPCNotification) and (
            message.method == "notifications/cancelled" and isinstance(message.params, dict)
        ):
            self._ids.discard(message.params.get("requestId"))

    def written(self, message: types.JSONRPCMessage) -> None:
        if isinstance(message, types.JSONRPCResponse | types.JSONRPCError):
            self._ids.discard(message.id)


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextlib.contextmanager
def _claim_std_fds() -> Iterator[tuple[int, int]]:
    """Private copies of fd 0 and fd 1 for the protocol; the originals point away."""
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
        yield wire_in, wire_out
    finally:
        os.close(null)
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)


@contextlib.asynccontextmanager
async def pipe_streams(
    in_fd: int, out_fd: int, unanswered: Unanswered | None = None
) -> AsyncIterator[
    tuple[
        MemoryObjectReceiveStream[SessionMessage | Exception],
        MemoryObjectSendStream[SessionMessage],
    ]
]:
    """Message streams over two pipe descriptors (which this takes over and closes);
    ``unanswered`` keeps count of the requests between them."""
    counts = unanswered or Unanswered()
    counts.following = True
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(in_fd, "rb", buffering=0)
    )
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(out_fd, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
    incoming_send, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing, outgoing_receive = anyio.create_memory_object_stream[SessionMessage](0)

    async def read_lines() -> None:
        async with incoming_send:
            while True:
                try:
                    line = await reader.readline()
                except ValueError as exc:  # longer than LINE_LIMIT: dropped, reported, go on
                    await incoming_send.send(exc)
                    continue
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except Exception as exc:  # the server answers it with a parse error
                    await incoming_send.send(exc)
                    continue
                counts.read(message)
                await incoming_send.send(SessionMessage(message))

    async def write_lines() -> None:
        async with outgoing_receive:
            async for item in outgoing_receive:
                data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                writer.write(data.encode() + b"\n")
                counts.written(item.message)
                await writer.drain()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(read_lines)
            group.start_soon(write_lines)
            yield incoming, outgoing
            group.cancel_scope.cancel()
    finally:
        read_transport.close()
        write_transport.close()


async def serve_stdio(app: MCPServer[Any], unanswered: Unanswered | None = None) -> None:
    """Serve one client over this process's stdin and stdout; ``unanswered`` follows
    its requests (not when the SDK's own transport serves it)."""
    # The SDK's run loop, fed by our streams; if a later SDK moves it, its own transport.
    lowlevel = getattr(app, "_lowlevel_server", None)
    if lowlevel is None or not (_is_pipe(0) and _is_pipe(1)):
        await app.run_stdio_async()
        return
    with _claim_std_fds() as (wire_in, wire_out):
        async with pipe_streams(wire_in, wire_out, unanswered) as (incoming, outgoing):
            await lowlevel.run(incoming, outgoing, lowlevel.create_initialization_options())

"""Reading the client's messages: framing, and the limits on a message's size."""

from __future__ import annotations

import asyncio

from meshgov.pgwire import messages as m

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
READ_CHUNK_BYTES = 256 * 1024
# Before login (a password, a SCRAM message) a client is not trusted with more (PostgreSQL's own
# PG_MAX_AUTH_TOKEN_LENGTH), so an unauthenticated connection cannot make the server buffer 64 MB.
MAX_AUTH_MESSAGE_BYTES = 65_535


async def read_message(
    reader: asyncio.StreamReader, max_size: int = MAX_MESSAGE_BYTES
) -> tuple[bytes, bytes]:
    header = await reader.readexactly(5)
    kind = header[:1]
    size = int.from_bytes(header[1:], "big")
    if size < 4 or size > max_size:
        raise m.ProtocolViolation(f"invalid message length {size}")
    return kind, await reader.readexactly(size - 4)


async def next_message(
    reader: asyncio.StreamReader, buffer: bytearray, idle: float
) -> tuple[bytes, bytes]:
    """The next message: taken from what was received already (the extended protocol's
    messages of a query arrive together), else read (under the idle timeout) in chunks."""
    while True:
        if len(buffer) >= 5:
            size = int.from_bytes(buffer[1:5], "big")
            if size < 4 or size > MAX_MESSAGE_BYTES:
                raise m.ProtocolViolation(f"invalid message length {size}")
            if len(buffer) > size:
                kind, payload = bytes(buffer[:1]), bytes(buffer[5 : size + 1])
                del buffer[: size + 1]
                return kind, payload
        # asyncio.timeout, not wait_for: no task per read.
        async with asyncio.timeout(idle):
            chunk = await reader.read(READ_CHUNK_BYTES)
        if not chunk:
            raise asyncio.IncompleteReadError(bytes(buffer), None)
        buffer += chunk

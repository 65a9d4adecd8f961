"""The NATS protocol on nats-py's own connection, in bulk: the relay's hot path.

nats-py parses what the server sends one message at a time, awaiting a coroutine for each and
building a ``Msg`` for each; for a relay moving tens of thousands of events a second on two cores
that is most of its CPU. ``BulkParser`` replaces the connection's parser: every ``MSG``/``HMSG``
of a subscription registered here (the broker's pull inboxes and publish-acknowledgement inbox)
is cut out of the read buffer and handed to its handler as one list per socket read, with no
coroutine, queue or object per message. Everything else (other subscriptions, ``PING``, ``INFO``,
``-ERR``) goes to nats-py's own handlers exactly as its parser would send it, so connecting,
authentication, TLS, reconnects and every other subscription stay nats-py's.

``Writer`` is the other direction: whole protocol commands handed to nats-py's write buffer in one
piece, so a batch of publishes or acknowledgements leaves in one or a few socket writes.

Both use nats-py internals (``Client._ps``, ``_process_*``, ``_send_command``); each is installed
only when they have the expected shape, otherwise the broker uses nats-py's public API, which does
the same more slowly.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.errors import ProtocolError
from nats.protocol.parser import ERR_RE, MAX_CONTROL_LINE_SIZE, Parser

from meshgov.brokers.base import BrokerError

log = logging.getLogger("meshgov.brokers.nats")
# (subject, reply, payload, header block or None) of one message, as bytes off the wire.
Delivery = tuple[bytes, bytes, bytes, "bytes | None"]
BulkHandler = Callable[[list[Delivery]], None]

_CALLBACKS = ("_process_msg", "_process_ping", "_process_pong", "_process_err", "_process_info")


def header_lines(block: bytes) -> dict[str, str]:
    """The headers of a message (``NATS/1.0[ status]\\r\\nKey: value\\r\\n...``; a repeated key
    keeps its last value). A status line (``NATS/1.0 404 No Messages``) gives ``Status`` and
    ``Description`` as nats-py names them."""
    headers: dict[str, str] = {}
    lines = block.decode(errors="replace").split("\r\n")
    status = lines[0][len("NATS/1.0") :].strip() if lines[0].startswith("NATS/1.0") else ""
    if status:
        code, _, description = status.partition(" ")
        headers["Status"] = code
        if description:
            headers["Description"] = description.strip()
    for line in lines[1:]:
        key, colon, value = line.partition(":")
        if colon and key.strip():
            headers[key.strip()] = value.strip()
    return headers


class BulkParser(Parser):
    """nats-py's ``Parser`` with the messages of registered subscriptions taken in bulk.

    State across reads is the unparsed tail of the buffer only (a partial line or a message
    whose payload has not fully arrived; ``_needed`` says how many buffered bytes complete it,
    so a large payload arriving over many reads is not rescanned each time).
    """

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.handlers: dict[int, BulkHandler] = {}
        self._needed = 0

    def reset(self) -> None:
        super().reset()
        self._needed = 0

    async def parse(self, data: bytes = b"") -> None:
        buf = self.buf
        buf.extend(data)
        if len(buf) < self._needed:
            return
        self._needed = 0
        view = bytes(buf)
        size = len(view)
        pos = committed = 0
        handlers = self.handlers
        bulk: dict[int, list[Delivery]] = {}
        # Bytes the one-pass splitting may copy in this call (it copies the rest of the buffer
        # each time it starts): twice the buffer, so a read mixing kinds of messages stays linear.
        budget = 2 * size
        try:
            while pos < size:
                if budget > 0 and handlers and view.startswith((b"MSG ", b"HMSG "), pos):
                    budget -= size - pos
                    after = _split_run(view, pos, handlers, bulk)
                    if after > pos:
                        pos = after
                        continue
                end = view.find(b"\r\n", pos)
                if end < 0:
                    if size - pos > MAX_CONTROL_LINE_SIZE:
                        raise ProtocolError("nats: control line too long")
                    break
                if view.startswith((b"MSG ", b"HMSG "), pos):
                    sid, subject, reply, header_size, total = _message_line(view[pos:end])
                else:
                    line = view[pos:end].strip()
                    pos = end + 2
                    del buf[: pos - committed]
                    committed = pos
                    await self._control(line)
                    if self.buf is not buf:
                        return  # the connection was reset while nats-py handled it
                    continue
                start = end + 2
                stop = start + total
                if stop + 2 > size:
                    self._needed = stop + 2 - pos
                    break
                headers = view[start : start + header_size] if header_size else None
                payload = view[start + header_size : stop]
                pos = stop + 2
                if sid in handlers:
                    bulk.setdefault(sid, []).append((subject, reply, payload, headers))
                    continue
                del buf[: pos - committed]
                committed = pos
                await self.nc._process_msg(sid, subject, reply, payload, headers)
                if self.buf is not buf:
                    return  # the connection was reset while nats-py handled that: start over
        finally:
            if self.buf is buf:
                del buf[: pos - committed]
            for sid, messages in bulk.items():
                self._dispatch(sid, messages)

    def _dispatch(self, sid: int, messages: list[Delivery]) -> None:
        handler = self.handlers.get(sid)
        if handler is None:
            return  # unsubscribed since: nobody waits for these
        stats = self.nc.stats
        stats["in_msgs"] += len(messages)
        stats["in_bytes"] += sum(len(m[2]) for m in messages)
        try:
            handler(messages)
        except Exception:
            # Never into nats-py's read loop (it would stop reading): what was not taken is not
            # acknowledged, so a delivery comes again and a publish times out and is retried.
            log.exception("NATS messages of subscription %d could not be handled", sid)

    async def _control(self, line: bytes) -> None:
        """Any other operation, handled by nats-py as its parser would."""
        client = self.nc
        if line == b"PING":
            await client._process_ping()
        elif line == b"PONG":
            await client._process_pong()
        elif line == b"+OK":
            return
        elif line.startswith(b"-ERR"):
            match = ERR_RE.match(line + b"\r\n")
            text = match.group(1) if match and match.group(1) else line[4:].strip()
            await client._process_err(text.decode(errors="replace").lower())
        elif line.startswith(b"INFO"):
            try:
                info = json.loads(line[4:])
            except ValueError:
                raise ProtocolError("nats: malformed INFO") from None
            await client._process_info(info)
        else:
            raise ProtocolError("nats: unknown protocol")


def _split_run(view: bytes, pos: int, handlers: dict[int, Any], bulk: dict[int, list[Any]]) -> int:
    """The run of whole messages of ``handlers``' subscriptions from ``pos``, cut out of the rest
    of the buffer with one split on CRLF, into ``bulk``; returns where the run ends (``pos``
    when it is empty). It ends at the first thing it cannot frame with certainty from the parts
    (a payload or header block holding CRLF, another subscription, a control line, an incomplete
    message): the message-by-message loop goes on from there. A payload part whose length is the
    declared size is the whole payload (a payload cut at a CRLF inside would be shorter)."""
    parts = view[pos:].split(b"\r\n")
    last = len(parts) - 1  # parts[last] follows the last CRLF: incomplete, or empty
    index = 0
    while index + 1 < last:
        fields = parts[index].split(b" ")
        headed = fields[0] == b"HMSG"
        if not headed and fields[0] != b"MSG":
            break
        count = len(fields) - headed  # HMSG has one number more than MSG
        if count not in (4, 5):
            break
        try:
            sid, total = int(fields[2]), int(fields[-1])
            header_size = int(fields[-2]) if headed else 0
        except ValueError:
            break
        headers: bytes | None = None
        body = index + 1
        if headed:
            while body < last and parts[body]:  # the header block ends with an empty line
                body += 1
            headers = b"\r\n".join(parts[index + 1 : body + 1]) + b"\r\n"
            body += 1
            if len(headers) != header_size:
                break
        if body >= last or sid not in handlers:
            break
        payload = parts[body]
        if len(payload) != total - header_size:
            break
        reply = fields[3] if count == 5 else b""
        bulk.setdefault(sid, []).append((fields[1], reply, payload, headers))
        pos += len(parts[index]) + 2 + total + 2
        index = body + 1
    return pos


def _message_line(line: bytes) -> tuple[int, bytes, bytes, int, int]:
    """(sid, subject, reply, header bytes, total bytes) of ``MSG subject sid [reply] size`` or
    ``HMSG subject sid [reply] header_size total_size``."""
    parts = line.split()
    try:
        if parts[0] == b"MSG" and len(parts) in (4, 5):
            total = int(parts[-1])
            if total < 0:  # would move the parser back over what it read: for ever
                raise ValueError
            return int(parts[2]), parts[1], parts[3] if len(parts) == 5 else b"", 0, total
        elif parts[0] == b"HMSG":
            if len(parts) == 5:
                header_size, total = int(parts[3]), int(parts[4])
                reply = b""
            elif len(parts) == 6:
                header_size, total, reply = int(parts[4]), int(parts[5]), parts[3]
            else:
                raise ValueError
            if not 0 <= header_size <= total:
                raise ValueError
            return int(parts[2]), parts[1], reply, header_size, total
    except ValueError:
        pass
    raise ProtocolError("nats: malformed MSG")


def install_bulk_parser(client: Client) -> BulkParser | None:
    """Replace ``client``'s protocol parser with a ``BulkParser`` (None: this nats-py is not
    shaped as expected, leave it alone). Only before any data is buffered."""
    parser = getattr(client, "_ps", None)
    if type(parser) is not Parser or parser.buf:
        return None
    for name in _CALLBACKS:
        if not inspect.iscoroutinefunction(getattr(client, name, None)):
            return None
    shape = tuple(inspect.signature(client._process_msg).parameters)
    if shape != ("sid", "subject", "reply", "data", "headers"):
        return None
    bulk = BulkParser(client)
    client._ps = bulk
    return bulk


class Writer:
    """Whole NATS protocol commands handed to nats-py's write buffer in one piece. Uses nats-py's
    buffer (``_send_command``/``_flush_pending``), so buffering across a reconnect is the
    client's own; ``fast`` is False when a nats-py version lacks them (the broker then goes
    through the public ``publish``)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        send = getattr(client, "_send_command", None)
        flush = getattr(client, "_flush_pending", None)
        self._send: Any = send if callable(send) and callable(flush) else None
        self._flush: Any = flush
        # Waiting until the flusher task has written (nats-py's ``force_flush``).
        self._can_wait = callable(flush) and "force_flush" in inspect.signature(flush).parameters

    @property
    def fast(self) -> bool:
        return self._send is not None

    async def write(self, commands: list[bytes], *, sent: bool = False) -> None:
        """Queue ``commands`` in one piece; with ``sent``, return once they were written to the
        socket (the caller's next work then overlaps with the server's)."""
        if self._client.is_closed:
            raise BrokerError("the NATS connection is closed")
        await self._send(b"".join(commands))
        if sent and self._can_wait:
            await self._flush(force_flush=True)
        else:
            await self._flush()

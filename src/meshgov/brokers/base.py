"""What meshgov needs of an event broker: durable streams, pull consumers, acknowledged publishes.

Everything is async (brokers are network clients). A message is acknowledged only by the code
that processed it (``BrokerMessage.ack``, or ``Subscription.ack_many`` for a batch); ``nak`` asks
for a redelivery. Publishing returns only
once the broker has persisted the message (``publish_many`` fails if any one failed), and a
message id lets the broker drop a republished duplicate (``OutgoingMessage.msg_id``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple, Protocol

from meshgov.errors import BackendUnavailable


class BrokerError(BackendUnavailable):
    """The broker refused or did not confirm an operation (unreachable, timeout, limit)."""

    code = "broker_unavailable"


class Settler(Protocol):
    """How a broker settles one of its messages (``BrokerMessage.ack``/``nak``)."""

    async def ack(self, message: BrokerMessage) -> None: ...

    async def nak(self, message: BrokerMessage, delay: float) -> None: ...


# Slots and a settler shared by a subscription's messages rather than two bound callables each:
# a relay builds one of these per event, tens of thousands a second.
@dataclass(slots=True)
class BrokerMessage:
    """One message read from a stream, with its position and how to settle it."""

    subject: str
    data: bytes
    headers: Mapping[str, str]
    sequence: int  # position in its stream (durable: a reader resumes from here)
    settler: Settler
    handle: object = None  # the broker's own reference (its acknowledgement subject...)

    async def ack(self) -> None:
        await self.settler.ack(self)

    async def nak(self, delay: float = 0.0) -> None:
        """Ask for a redelivery after ``delay`` seconds."""
        await self.settler.nak(self, delay)


NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class OutgoingMessage(NamedTuple):
    """A message to publish (a tuple: built once per governed event, cheaply)."""

    subject: str
    data: bytes
    msg_id: str  # the broker drops a second message with this id within its dedup window
    headers: Mapping[str, str] = NO_HEADERS


class PublishReceipt(NamedTuple):
    sequence: int
    duplicate: bool  # the broker had this msg_id already (a redelivery's republish)


class PendingPublish(Protocol):
    async def receipts(self) -> list[PublishReceipt]:
        """Once the broker persisted every message (``BrokerError`` if any one was not)."""
        ...


class Subscription(Protocol):
    async def fetch(self, batch: int, timeout: float) -> list[BrokerMessage]:
        """Up to ``batch`` messages, waiting at most ``timeout`` seconds ([] when none came)."""
        ...

    async def ack_many(self, messages: list[BrokerMessage]) -> None:
        """Acknowledge each of ``messages`` (in one write where the broker allows it); raise
        ``BrokerError`` if the acknowledgements could not be sent (they are then redelivered)."""
        ...

    async def close(self) -> None: ...


class Broker(Protocol):
    @property
    def max_payload(self) -> int:
        """The largest message the broker accepts, in bytes."""
        ...

    async def ensure_stream(
        self, name: str, subjects: list[str], *, duplicate_window: float = 120.0
    ) -> None:
        """Create the stream (or leave an existing one as it is)."""
        ...

    async def delete_stream(self, name: str) -> None: ...

    async def stream_of(self, subject: str) -> str | None:
        """The stream that captures ``subject`` (None: none does)."""
        ...

    async def durable(
        self,
        stream: str,
        subject: str,
        name: str,
        *,
        ack_wait: float = 30.0,
        ack_all: bool = False,
    ) -> Subscription:
        """A durable pull consumer: acknowledged messages are not delivered again; the rest are
        (after ``nak`` or the ack wait), across restarts of the consumer. With ``ack_all``,
        acknowledging one message acknowledges every earlier one too."""
        ...

    async def reader(self, stream: str, subject: str, start: int) -> Subscription:
        """An ephemeral reader from stream position ``start`` (no acknowledgements needed)."""
        ...

    async def publish_many(self, messages: list[OutgoingMessage]) -> list[PublishReceipt]:
        """Publish all, concurrently; raise ``BrokerError`` unless every one was persisted."""
        ...

    async def start_publish(self, messages: list[OutgoingMessage]) -> PendingPublish:
        """Send all (in order) and return at once; their receipts are awaited on the result
        (``publish_many`` is both). Lets a caller prepare its next batch meanwhile."""
        ...

    async def close(self) -> None: ...

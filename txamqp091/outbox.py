"""The service's outbox: confirmed publishes kept across an outage, within bounds.

When :class:`~txamqp091.service.AMQPClientService` is given an outbox, a
publish on a confirm-mode channel that cannot be confirmed because the
connection went down is kept here (as is a publish made while the service is
reconnecting) and published again, in order, once the connection and its
topology are back.  The caller's Deferred settles once, when the republished
message is confirmed (or nacked, or returned).

The outbox is bounded by a number of messages and of body bytes: a message
that does not fit is refused with :class:`~txamqp091.exceptions.OutboxFull`
(or, for a publish already in flight, its
:class:`~txamqp091.exceptions.UnconfirmedPublishError`), never kept beyond the
bounds.  Republishing may duplicate a message the broker had already taken
before the connection dropped: consumers must tolerate duplicates
(at-least-once delivery).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from txamqp091.exceptions import OutboxFull
from txamqp091.message import PublishedMessage

if TYPE_CHECKING:
    from txamqp091.recovering_channel import RecoveringChannel

__all__ = ["Outbox", "OutboxEntry"]


@dataclass
class OutboxEntry:
    """One kept message: where it goes, what it is, and whom to tell."""

    #: The channel it was published on (it is published there again).
    channel: RecoveringChannel
    #: The message as given to ``basic_publish``.
    message: PublishedMessage
    #: The caller's Deferred, settled once the message is confirmed or refused.
    deferred: Deferred[Any]

    @property
    def size(self) -> int:
        """The body's length in bytes."""
        body = self.message.body
        return body.nbytes if isinstance(body, memoryview) else len(body)


class Outbox:
    """A bounded first-in, first-out store of unconfirmed publishes.

    :param max_messages: at most this many messages (``>= 1``).
    :param max_bytes: at most this many body bytes in all (``>= 1``).
    """

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        for name, value in (("max_messages", max_messages), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, not {value!r}")
        #: The bound on the number of messages.
        self.max_messages = max_messages
        #: The bound on the body bytes held.
        self.max_bytes = max_bytes
        self._entries: deque[OutboxEntry] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """Body bytes held now."""
        return self._bytes

    def fits(self, entry: OutboxEntry) -> bool:
        """Whether *entry* can be added without passing a bound."""
        return (
            len(self._entries) < self.max_messages and self._bytes + entry.size <= self.max_bytes
        )

    def add(self, entry: OutboxEntry) -> None:
        """Keep *entry*, after those already held.

        :raises OutboxFull: if it does not fit; nothing is kept then.
        """
        if not self.fits(entry):
            raise OutboxFull(
                f"the outbox is full ({len(self._entries)}/{self.max_messages} messages, "
                f"{self._bytes}/{self.max_bytes} bytes); the message was not kept"
            )
        self._entries.append(entry)
        self._bytes += entry.size

    def take_all(self) -> Iterator[OutboxEntry]:
        """Remove and give every entry, oldest first (to publish them again)."""
        entries, self._entries = self._entries, deque()
        self._bytes = 0
        return iter(entries)

    def fail_all(self, reason: BaseException) -> None:
        """Fail every held entry's Deferred with *reason* and empty the outbox."""
        for entry in list(self.take_all()):
            entry.deferred.errback(reason)

    def fail_channel(self, channel: RecoveringChannel, reason: BaseException) -> None:
        """Fail and drop the entries of one channel (closed for good)."""
        dropped = [entry for entry in self._entries if entry.channel is channel]
        if not dropped:
            return
        self._entries = deque(entry for entry in self._entries if entry.channel is not channel)
        self._bytes = sum(entry.size for entry in self._entries)
        for entry in dropped:
            entry.deferred.errback(reason)

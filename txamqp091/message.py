"""Messages as the core hands them out, and the consumer queue.

* :class:`ReceivedMessage` — a delivery or a ``basic_get`` result;
* :class:`ReturnedMessage` — a message the broker returned with ``Basic.Return``;
* :class:`PublishedMessage` — what was published, carried by errors such as
  :class:`~txamqp091.exceptions.NackError` so the caller can republish;
* :class:`ConsumerQueue` — what ``basic_consume`` without a callback gives:
  ``get()`` returns a Deferred, and ``async for`` works.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any, NamedTuple

from twisted.internet.defer import Deferred, fail, succeed

from txamqp091 import spec

if TYPE_CHECKING:
    from txamqp091.channel import Channel
    from txamqp091.recovering_channel import RecoveringChannel

__all__ = [
    "ConsumerQueue",
    "PublishedMessage",
    "ReceivedMessage",
    "ReturnedMessage",
]


class ReceivedMessage(NamedTuple):
    """A message delivered to a consumer or fetched with ``basic_get``.

    Unpacks like pika's ``(channel, method, properties, body)``.
    """

    #: The channel the message arrived on (ack it there).
    channel: Channel | RecoveringChannel
    #: ``Basic.Deliver`` or ``Basic.GetOk`` (``delivery_tag``, ``redelivered``…).
    method: spec.Method
    #: The message's properties.
    properties: spec.BasicProperties
    #: The body.
    body: bytes


class ReturnedMessage(NamedTuple):
    """A message the broker could not route and returned (``Basic.Return``)."""

    #: ``Basic.Return`` (``reply_code``, ``reply_text``, ``exchange``, ``routing_key``).
    method: spec.Method
    #: The message's properties.
    properties: spec.BasicProperties
    #: The body.
    body: bytes


class PublishedMessage(NamedTuple):
    """A message as it was given to ``basic_publish``."""

    exchange: str
    routing_key: str
    body: bytes | bytearray | memoryview
    properties: spec.BasicProperties | None
    mandatory: bool


class _Closed(NamedTuple):
    reason: BaseException | None


class ConsumerQueue:
    """Messages for one consumer, taken with :meth:`get` or ``async for``.

    Buffering is bounded by the channel's ``basic_qos`` prefetch; without a
    prefetch limit the broker sends as fast as it can and the queue grows
    with whatever the application has not taken yet.

    When the consumer ends, messages already buffered can still be taken;
    after them :meth:`get` fails with the reason (e.g.
    :class:`~txamqp091.exceptions.ConsumerCancelled` when the broker cancelled
    the consumer), and ``async for`` stops — quietly when the application
    cancelled the consumer or closed the channel or connection itself,
    raising the reason otherwise.
    """

    def __init__(self, consumer_tag: str = "") -> None:
        #: The consumer tag this queue receives for.
        self.consumer_tag = consumer_tag
        self._messages: deque[ReceivedMessage] = deque()
        self._waiters: deque[Deferred[ReceivedMessage]] = deque()
        self._closed: _Closed | None = None

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def closed(self) -> bool:
        """``True`` once the consumer has ended."""
        return self._closed is not None

    def get_nowait(self) -> ReceivedMessage:
        """The next message already received, without waiting.

        :raises IndexError: if none is waiting.
        """
        if not self._messages:
            raise IndexError("no message waiting")
        return self._messages.popleft()

    def get(self) -> Deferred[ReceivedMessage]:
        """The next message.

        :returns: a Deferred firing with a :class:`ReceivedMessage`, or failing
            with the reason the consumer ended once no message is left.
            Cancelling it gives up the wait without losing a message.
        """
        if self._messages:
            return succeed(self._messages.popleft())
        if self._closed is not None:
            return fail(self._end_error())
        d: Deferred[ReceivedMessage] = Deferred(self._waiters.remove)
        self._waiters.append(d)
        return d

    def _end_error(self) -> BaseException:
        assert self._closed is not None
        if self._closed.reason is None:
            from txamqp091.exceptions import ConsumerCancelled

            return ConsumerCancelled(f"consumer {self.consumer_tag!r} was cancelled")
        return self._closed.reason

    def put(self, message: ReceivedMessage) -> None:
        """Hand *message* to the oldest waiter, or buffer it (used by the channel)."""
        if self._waiters:
            self._waiters.popleft().callback(message)
        else:
            self._messages.append(message)

    def close(self, reason: BaseException | None = None) -> None:
        """End the queue (used by the channel); ``None`` means a normal cancel."""
        if self._closed is not None:
            return
        self._closed = _Closed(reason)
        waiters, self._waiters = self._waiters, deque()
        for d in waiters:
            d.errback(self._end_error())

    def __aiter__(self) -> AsyncIterator[ReceivedMessage]:
        return self

    def _ended_normally(self) -> bool:
        """Closed by the application itself: a cancel, or its own connection close."""
        if self._closed is None:
            return False
        from txamqp091.exceptions import ConnectionClosedByClient

        reason = self._closed.reason
        return reason is None or isinstance(reason, ConnectionClosedByClient)

    async def __anext__(self) -> ReceivedMessage:
        if self._messages:
            return self._messages.popleft()
        if self._ended_normally():
            raise StopAsyncIteration
        try:
            return await self.get()
        except BaseException:
            if self._ended_normally() and not self._messages:
                raise StopAsyncIteration from None
            raise


class _AlreadyFired(Deferred[None]):
    """A shared, already-fired ``Deferred[None]`` that callbacks cannot change.

    Returned by ``basic_publish`` outside confirm mode so the fast path
    allocates nothing.  Adding callbacks runs them on a fresh fired Deferred
    and returns that one, so the shared instance always holds ``None``.
    """

    def __init__(self) -> None:
        super().__init__()
        super().callback(None)

    def addCallbacks(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return succeed(None).addCallbacks(*args, **kwargs)

    def addCallback(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return succeed(None).addCallback(*args, **kwargs)

    def addErrback(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return succeed(None).addErrback(*args, **kwargs)

    def addBoth(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return succeed(None).addBoth(*args, **kwargs)

    def __iter__(self) -> Generator[Deferred[None], None, None]:
        return None
        yield  # pragma: no cover - makes this a generator

    __await__ = __iter__


#: The value ``basic_publish`` returns outside confirm mode.
PUBLISHED: Deferred[None] = _AlreadyFired()

"""The native asyncio API: the core's Deferreds as asyncio futures.

.. code-block:: python

   async with await txamqp091.aio.connect("amqp://guest:guest@localhost/%2F") as conn:
       ch = await conn.channel()
       await ch.queue_declare("jobs")
       await ch.confirm_delivery()
       await ch.basic_publish("", "jobs", b"hello")  # returns once the broker confirmed
       async for message in ch.consume("jobs", prefetch=10):
           message.ack()
           break

Every protocol decision is the core's (:class:`~txamqp091.protocol.AMQPProtocol`,
:class:`~txamqp091.channel.Channel`), run on the asyncio loop by
:mod:`txamqp091.asyncio_bridge`. This module only converts: each awaitable method
calls the core method of the same name at once (so requests go out in call order,
awaited or not) and returns ``Deferred.asFuture(loop)`` of its result; errors are the
core's (:mod:`txamqp091.exceptions`).

Cancelling a future (or a task awaiting one) cancels the core's Deferred, which the
core makes safe: a request still waiting its turn is never sent; one already sent has
its reply dropped when it comes (a consumer started meanwhile is cancelled on the
broker, a message fetched meanwhile is requeued); a publish, a close or a channel
being opened goes on regardless (a channel nobody waits for any more is closed).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from txamqp091 import spec
from txamqp091.asyncio_bridge import open_protocol
from txamqp091.channel import Channel as _CoreChannel
from txamqp091.message import PUBLISHED, ConsumerQueue, ReceivedMessage
from txamqp091.parameters import ConnectionParameters, Parameters, URLParameters
from txamqp091.protocol import DEFAULT_RPC_TIMEOUT, AMQPProtocol

__all__ = ["Channel", "Connection", "Consumer", "Message", "connect"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: What :func:`connect` accepts.
Target = str | Parameters | Sequence[str | Parameters] | None

#: ``callback(channel, method, properties, body)`` for a returned message.
ReturnCallback = Callable[["Channel", spec.Method, spec.BasicProperties, bytes], object]


async def connect(
    url_or_parameters: Target = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
) -> Connection:
    """Connect to a broker and complete the AMQP handshake.

    :param url_or_parameters: an ``amqp://`` or ``amqps://`` URL, a
        :class:`~txamqp091.ConnectionParameters` or :class:`~txamqp091.URLParameters`,
        a non-empty sequence of those (tried in pika's order, see
        :func:`~txamqp091.asyncio_bridge.open_protocol`), or ``None`` for the defaults
        (``localhost``).
    :param loop: the running event loop (found when ``None``).
    :param rpc_timeout: seconds a synchronous request may take before it fails with
        :class:`~txamqp091.exceptions.AMQPTimeoutError`; ``None`` waits forever.
    :returns: the open connection.
    :raises AMQPConnectionError: (or a subclass) when no attempt succeeded.
    :raises TypeError, ValueError: for a malformed target, before connecting.
    """
    candidates = _candidates(url_or_parameters)
    if loop is None:
        loop = asyncio.get_running_loop()
    core = await open_protocol(candidates, loop, rpc_timeout=rpc_timeout)
    return Connection(core, loop)


def _candidates(target: Target) -> list[Parameters]:
    """The parameters *target* names, in order."""
    if target is None:
        return [ConnectionParameters()]
    if isinstance(target, str | Parameters):
        target = [target]
    if not isinstance(target, Sequence) or not target:
        raise TypeError(
            "expected a URL, Parameters, a non-empty sequence of them, or None, not "
            f"{type(target).__name__}"
        )
    candidates: list[Parameters] = []
    for item in target:
        if isinstance(item, str):
            candidates.append(URLParameters(item))
        elif isinstance(item, Parameters):
            candidates.append(item)
        else:
            raise TypeError(f"expected a URL or Parameters, not {type(item).__name__}")
    return candidates


async def _next_message(
    messages: ConsumerQueue, loop: asyncio.AbstractEventLoop
) -> ReceivedMessage:
    """The consumer's next message, awaited without asFuture's extra loop turn; a
    cancelled wait gives up its place in the queue (no message is taken)."""
    waiting = messages.get()
    future: asyncio.Future[ReceivedMessage] = loop.create_future()

    def got(message: ReceivedMessage) -> None:
        if not future.done():
            future.set_result(message)

    def ended(failure: Failure) -> None:
        if not future.done():
            assert failure.value is not None
            future.set_exception(failure.value)

    waiting.addCallbacks(got, ended)
    try:
        return await future
    except asyncio.CancelledError:
        waiting.cancel()  # no effect once a message was handed over
        raise


def _done(loop: asyncio.AbstractEventLoop, result: _R) -> asyncio.Future[_R]:
    future: asyncio.Future[_R] = loop.create_future()
    future.set_result(result)
    return future


class Connection:
    """An open AMQP connection on an asyncio loop; see :func:`connect`.

    An async context manager: leaving the ``async with`` block closes it.

    :param core: the open core connection.
    :param loop: the event loop it runs on.
    """

    def __init__(self, core: AMQPProtocol, loop: asyncio.AbstractEventLoop) -> None:
        self._core = core
        self._loop = loop

    def __repr__(self) -> str:
        return f"<aio.Connection {self._core!r}>"

    @property
    def core(self) -> AMQPProtocol:
        """The core connection (Deferred-based), for what this API does not cover."""
        return self._core

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the connection runs on."""
        return self._loop

    @property
    def is_open(self) -> bool:
        """``True`` while the connection is open."""
        return self._core.is_open

    @property
    def is_closing(self) -> bool:
        """``True`` while the close handshake is in progress."""
        return self._core.is_closing

    @property
    def is_closed(self) -> bool:
        """``True`` once the connection is closed."""
        return self._core.is_closed

    @property
    def close_reason(self) -> Exception | None:
        """Why the connection closed (a :mod:`txamqp091.exceptions` instance), or
        ``None`` while it is not closed."""
        return self._core.close_reason

    @property
    def closed(self) -> asyncio.Future[Exception]:
        """A future of the reason the connection closed; it never fails.

        A new future on each access: cancelling it changes nothing else.
        """
        return self._core.when_closed().asFuture(self._loop)

    @property
    def is_blocked(self) -> bool:
        """``True`` while the broker blocks publishers (``Connection.Blocked``)."""
        return self._core.blocked

    def when_writable(self) -> asyncio.Future[None]:
        """A future that resolves when publishing may go on: the connection is not
        blocked by the broker and the socket's write buffer has drained (a fast
        publisher awaits it between batches to keep memory bounded)."""
        return self._core.when_writable().asFuture(self._loop)

    def channel(self, channel_number: int | None = None) -> asyncio.Future[Channel]:
        """Open a channel.

        :param channel_number: a specific number, or ``None`` for the lowest free one.
        :returns: a future of the open :class:`Channel`. Cancelling it does not stop
            the opening; the channel is closed as soon as it is open.
        """
        future: asyncio.Future[Channel] = self._loop.create_future()

        def opened(core: _CoreChannel) -> None:
            if future.cancelled():
                if core.is_open:  # nobody waits for it any more
                    core.close()
                return
            future.set_result(Channel(core, self))

        def failed(failure: Failure) -> None:
            if not future.cancelled():
                assert failure.value is not None
                future.set_exception(failure.value)

        self._core.channel(channel_number).addCallbacks(opened, failed)
        return future

    def close(
        self, reply_code: int = 200, reply_text: str = "Normal shutdown"
    ) -> asyncio.Future[None]:
        """Close the connection and its channels (consumers end quietly).

        Idempotent: when closing or closed already, the future resolves once it is
        gone.

        :param reply_code: the code sent in ``Connection.Close``.
        :param reply_text: the text sent in ``Connection.Close``.
        :returns: a future resolved once the close handshake is over and the socket
            closed. Cancelling it does not stop the close.
        """
        return self._core.close(reply_code, reply_text).asFuture(self._loop)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _awaitable(
    method: Callable[Concatenate[_CoreChannel, _P], Deferred[_R]],
) -> Callable[Concatenate[Channel, _P], asyncio.Future[_R]]:
    """The :class:`Channel` method that calls the core method of the same name and
    returns its Deferred as a future."""
    name = method.__name__

    def call(self: Channel, /, *args: _P.args, **kwargs: _P.kwargs) -> asyncio.Future[_R]:
        deferred: Deferred[_R] = getattr(self._core, name)(*args, **kwargs)
        return deferred.asFuture(self._loop)

    summary = (method.__doc__ or "").strip().split("\n\n")[0]
    call.__name__ = name
    call.__qualname__ = f"Channel.{name}"
    call.__module__ = __name__
    call.__doc__ = (
        f"{summary}\n\n:returns: a future of what the core's "
        f":meth:`~txamqp091.channel.Channel.{name}` fires with (usually the broker's "
        "reply frame); cancelling it cancels that request (see the module docstring)."
    )
    signature = inspect.signature(method)
    returns = str(signature.return_annotation).removeprefix("Deferred[")
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        return_annotation=f"asyncio.Future[{returns}"
    )
    call.__annotations__ = {}  # documentation tools read the signature instead
    return call


def _direct(
    method: Callable[Concatenate[_CoreChannel, _P], None],
) -> Callable[Concatenate[Channel, _P], None]:
    """The :class:`Channel` method that calls the core method of the same name (one that
    only writes a frame: nothing to wait for)."""
    name = method.__name__

    def call(self: Channel, /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        getattr(self._core, name)(*args, **kwargs)

    call.__name__ = name
    call.__qualname__ = f"Channel.{name}"
    call.__module__ = __name__
    call.__doc__ = f"{(method.__doc__ or '').strip()}\n\nSent at once; nothing to await."
    call.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    call.__annotations__ = {}
    return call


class Channel:
    """An AMQP channel on an asyncio loop; obtain one with :meth:`Connection.channel`.

    Methods keep pika's names and arguments. The request methods return futures (the
    request is sent when the method is called); ``basic_ack``, ``basic_nack`` and
    ``basic_reject`` send at once and return ``None``. An async context manager:
    leaving the block closes the channel if it is still open.

    :param core: the open core channel.
    :param connection: the connection it belongs to.
    """

    def __init__(self, core: _CoreChannel, connection: Connection) -> None:
        self._core = core
        self._connection = connection
        self._loop = connection.loop
        self._published: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<aio.Channel {self._core!r}>"

    # -- state -----------------------------------------------------------------------

    @property
    def core(self) -> _CoreChannel:
        """The core channel (Deferred-based), for what this API does not cover."""
        return self._core

    @property
    def connection(self) -> Connection:
        """The connection this channel belongs to."""
        return self._connection

    @property
    def channel_number(self) -> int:
        """This channel's number."""
        return self._core.channel_number

    @property
    def is_open(self) -> bool:
        """``True`` while the channel is open."""
        return self._core.is_open

    @property
    def is_closing(self) -> bool:
        """``True`` while the close handshake is in progress."""
        return self._core.is_closing

    @property
    def is_closed(self) -> bool:
        """``True`` once the channel is closed."""
        return self._core.is_closed

    @property
    def close_reason(self) -> Exception | None:
        """Why the channel closed (e.g. :class:`~txamqp091.exceptions.ChannelClosedByBroker`
        with its ``reply_code``), or ``None`` while it is not closed."""
        return self._core.close_reason

    @property
    def closed(self) -> asyncio.Future[Exception]:
        """A future of the reason the channel closed; it never fails (a new one per
        access)."""
        return self._core.when_closed().asFuture(self._loop)

    @property
    def consumer_tags(self) -> list[str]:
        """Tags of the consumers active on this channel."""
        return self._core.consumer_tags

    @property
    def confirming(self) -> bool:
        """Whether the channel is in publisher-confirm mode."""
        return self._core.confirming

    def add_on_return_callback(self, callback: ReturnCallback) -> None:
        """Call ``callback(channel, method, properties, body)`` for each message the
        broker returns (``Basic.Return``); *channel* is this object."""

        def returned(
            _: _CoreChannel, method: spec.Method, properties: spec.BasicProperties, body: bytes
        ) -> None:
            callback(self, method, properties, body)

        self._core.add_on_return_callback(returned)

    # -- requests: the core's methods, their Deferreds as futures -------------------------

    basic_qos = _awaitable(_CoreChannel.basic_qos)
    basic_recover = _awaitable(_CoreChannel.basic_recover)
    basic_cancel = _awaitable(_CoreChannel.basic_cancel)
    confirm_delivery = _awaitable(_CoreChannel.confirm_delivery)
    exchange_declare = _awaitable(_CoreChannel.exchange_declare)
    exchange_delete = _awaitable(_CoreChannel.exchange_delete)
    exchange_bind = _awaitable(_CoreChannel.exchange_bind)
    exchange_unbind = _awaitable(_CoreChannel.exchange_unbind)
    queue_declare = _awaitable(_CoreChannel.queue_declare)
    queue_bind = _awaitable(_CoreChannel.queue_bind)
    queue_unbind = _awaitable(_CoreChannel.queue_unbind)
    queue_purge = _awaitable(_CoreChannel.queue_purge)
    queue_delete = _awaitable(_CoreChannel.queue_delete)
    tx_select = _awaitable(_CoreChannel.tx_select)
    tx_commit = _awaitable(_CoreChannel.tx_commit)
    tx_rollback = _awaitable(_CoreChannel.tx_rollback)
    flow = _awaitable(_CoreChannel.flow)

    basic_ack = _direct(_CoreChannel.basic_ack)
    basic_nack = _direct(_CoreChannel.basic_nack)
    basic_reject = _direct(_CoreChannel.basic_reject)

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | bytearray | memoryview | str,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> asyncio.Future[None]:
        """Publish a message (sent when called).

        :param body: ``bytes``, ``bytearray``, ``memoryview`` or ``str`` (UTF-8).
        :returns: outside confirm mode, a resolved future; in confirm mode (see
            :meth:`confirm_delivery`), a future resolved when the broker acks, failing
            with :class:`~txamqp091.exceptions.NackError`,
            :class:`~txamqp091.exceptions.UnroutableError` (a *mandatory* message
            nobody took) or the error that closed the channel. Cancelling it only
            stops waiting.
        :raises TypeError, ValueError: for bad arguments, before anything is sent.
        :raises ChannelWrongStateError: if the channel is not open.
        """
        confirmed = self._core.basic_publish(exchange, routing_key, body, properties, mandatory)
        if confirmed is PUBLISHED:
            # One resolved future serves every publish outside confirm mode.
            published = self._published
            if published is None:
                published = self._published = _done(self._loop, None)
            return published
        # Not asFuture(): cancelling only stops waiting, so no done-callback (which
        # would cost a loop turn per publish) is needed to pass a cancel back.
        future: asyncio.Future[None] = self._loop.create_future()

        def acked(_: object) -> None:
            if not future.done():
                future.set_result(None)

        def refused(failure: Failure) -> None:
            if not future.done():
                assert failure.value is not None
                future.set_exception(failure.value)

        confirmed.addCallbacks(acked, refused)
        return future

    def basic_get(self, queue: str, auto_ack: bool = False) -> asyncio.Future[Message | None]:
        """Fetch one message.

        :returns: a future of a :class:`Message`, or of ``None`` when the queue is
            empty. Cancelling it after the request went out requeues the message
            that comes (unless *auto_ack*).
        """
        fetched: Deferred[ReceivedMessage | None] = self._core.basic_get(queue, auto_ack)
        return fetched.addCallback(self._message).asFuture(self._loop)

    def _message(self, received: ReceivedMessage | None) -> Message | None:
        return None if received is None else Message(self, received)

    def consume(
        self,
        queue: str,
        *,
        auto_ack: bool = False,
        exclusive: bool = False,
        arguments: dict[str, Any] | None = None,
        prefetch: int | None = None,
        consumer_tag: str | None = None,
    ) -> Consumer:
        """A consumer of *queue*, started when first iterated (or entered, or
        :meth:`Consumer.start` ed): ``async for message in channel.consume(queue)``.

        :param auto_ack: the broker considers messages acknowledged once sent.
        :param exclusive: no other consumer may consume from the queue.
        :param arguments: ``Basic.Consume`` arguments (e.g. ``x-priority``).
        :param prefetch: if given, ``basic_qos(prefetch_count=prefetch)`` is sent first
            (it applies to the consumers this channel starts from then on).
        :param consumer_tag: a tag of your choice; a unique one when ``None``.
        """
        return Consumer(
            self,
            queue,
            auto_ack=auto_ack,
            exclusive=exclusive,
            arguments=arguments,
            prefetch=prefetch,
            consumer_tag=consumer_tag,
        )

    def close(
        self, reply_code: int = 0, reply_text: str = "Normal shutdown"
    ) -> asyncio.Future[None]:
        """Close the channel: pending requests and unconfirmed publishes fail with
        :class:`~txamqp091.exceptions.ChannelClosedByClient`; consumers end quietly.

        :returns: a future resolved when ``Channel.CloseOk`` arrives.
        :raises ChannelWrongStateError: if the channel is closing or closed.
        """
        return self._core.close(reply_code, reply_text).asFuture(self._loop)

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._core.is_open:
            await self.close()


def _nothing(_: object) -> None:
    return None


class Message:
    """A message delivered to a consumer or fetched with :meth:`Channel.basic_get`.

    :param channel: the channel it arrived on (where it is acknowledged).
    :param received: the core's message.
    """

    __slots__ = ("body", "channel", "method", "properties")

    def __init__(self, channel: Channel, received: ReceivedMessage) -> None:
        #: The channel the message arrived on.
        self.channel = channel
        #: ``Basic.Deliver`` or ``Basic.GetOk`` (``delivery_tag``, ``redelivered``…).
        self.method = cast(spec.Basic.Deliver | spec.Basic.GetOk, received.method)
        #: The message's properties.
        self.properties = received.properties
        #: The body.
        self.body = received.body

    def __repr__(self) -> str:
        return f"<aio.Message {self.method!r} {len(self.body)} bytes>"

    @property
    def delivery_tag(self) -> int:
        """The delivery tag, which acknowledges it on its channel."""
        return self.method.delivery_tag

    @property
    def redelivered(self) -> bool:
        """Whether it was delivered before (and not acknowledged)."""
        return self.method.redelivered

    @property
    def exchange(self) -> str:
        """The exchange it was published to."""
        return self.method.exchange

    @property
    def routing_key(self) -> str:
        """The routing key it was published with."""
        return self.method.routing_key

    def ack(self, multiple: bool = False) -> None:
        """Acknowledge it (with *multiple*, all unacknowledged ones up to it)."""
        self.channel.basic_ack(self.delivery_tag, multiple)

    def nack(self, requeue: bool = True, multiple: bool = False) -> None:
        """Reject it, requeued by default (with *multiple*, all up to it)."""
        self.channel.basic_nack(self.delivery_tag, multiple, requeue)

    def reject(self, requeue: bool = True) -> None:
        """Reject it, requeued by default."""
        self.channel.basic_reject(self.delivery_tag, requeue)


class Consumer:
    """A consumer of one queue, as an async iterable of :class:`Message`.

    Iterating starts it (so do :meth:`start` and ``async with``). The iteration ends
    quietly once the consumer is cancelled (:meth:`cancel`) or the application closes
    the channel or connection, after the messages received before; it raises the
    reason when the broker ends it: :class:`~txamqp091.exceptions.ChannelClosedByBroker`,
    :class:`~txamqp091.exceptions.ConsumerCancelled` (e.g. the queue was deleted), a
    connection error.

    Leaving an ``async for`` early (``break``, an exception, a cancelled task) cancels
    the consumer on the broker and requeues the messages it received but never handed
    out (unless *auto_ack*): at once when the task is cancelled, when the iterator is
    finalized otherwise (at once in CPython; ``async with`` or :meth:`aclose` make it
    deterministic everywhere).

    Use :meth:`Channel.consume` to make one.
    """

    def __init__(
        self,
        channel: Channel,
        queue: str,
        *,
        auto_ack: bool,
        exclusive: bool,
        arguments: dict[str, Any] | None,
        prefetch: int | None,
        consumer_tag: str | None,
    ) -> None:
        self._channel = channel
        self._loop = channel.connection.loop
        self._queue = queue
        self._auto_ack = auto_ack
        self._exclusive = exclusive
        self._arguments = arguments
        self._prefetch = prefetch
        self._tag = consumer_tag
        self._messages: ConsumerQueue | None = None
        self._starting: asyncio.Future[str] | None = None
        self._cancelling: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<aio.Consumer {self._queue!r} tag={self._tag!r}>"

    @property
    def queue(self) -> str:
        """The queue consumed from."""
        return self._queue

    @property
    def consumer_tag(self) -> str | None:
        """The consumer tag (``None`` until started, unless one was given)."""
        return self._tag

    @property
    def is_active(self) -> bool:
        """``True`` from the broker's ``Basic.ConsumeOk`` until the consumer ends."""
        return self._messages is not None and not self._messages.closed

    def start(self) -> asyncio.Future[str]:
        """Start consuming (once; later calls return the same future).

        :returns: a future of the consumer tag. Cancelling it while the consumer is
            starting cancels it on the broker; :meth:`start` may then be called again.
        """
        if self._starting is None or self._starting.cancelled():
            core = self._channel.core
            if self._prefetch is not None:
                # Should it fail, the channel closes and basic_consume fails with why.
                core.basic_qos(prefetch_count=self._prefetch).addErrback(_nothing)
            consuming = core.basic_consume(
                self._queue, None, self._auto_ack, self._exclusive, self._tag, self._arguments
            )
            self._starting = consuming.addCallback(self._started).asFuture(self._loop)
        return self._starting

    def _started(self, result: tuple[ConsumerQueue, str]) -> str:
        self._messages, self._tag = result
        return self._tag

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        ended = False
        try:
            await self.start()
            messages = self._messages
            assert messages is not None
            while True:
                if len(messages):
                    # Already received: no future, no loop turn.
                    yield Message(self._channel, messages.get_nowait())
                    continue
                if messages._ended_normally():
                    ended = True
                    return
                try:
                    received = await _next_message(messages, self._loop)
                except Exception:
                    ended = True
                    if messages._ended_normally() and not len(messages):
                        return
                    raise
                yield Message(self._channel, received)
        finally:
            if not ended:
                self._abandon()

    async def cancel(self) -> None:
        """Cancel the consumer on the broker (``Basic.Cancel``) and wait for it.

        Messages received before can still be iterated; then the iteration ends.
        Nothing happens if it is not running (never started, or already ended).
        """
        starting = self._starting
        if starting is not None and not starting.done():
            try:
                await asyncio.shield(starting)
            except asyncio.CancelledError:
                if not starting.cancelled():
                    raise  # this task was cancelled
                return
            except Exception:
                return  # it never started
        await asyncio.shield(self._cancel())

    async def aclose(self) -> None:
        """Cancel the consumer and requeue the messages it received but did not hand
        out yet (unless *auto_ack*)."""
        await self.cancel()
        self._give_back()

    async def __aenter__(self) -> Consumer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _cancel(self) -> asyncio.Future[None]:
        """Send ``Basic.Cancel`` once; a future that never fails, resolved when the
        consumer is gone."""
        if self._cancelling is None:
            core = self._channel.core
            if not self.is_active or not core.is_open or self._tag not in core.consumer_tags:
                return _done(self._loop, None)
            assert self._tag is not None
            # Whatever goes wrong (the channel closing meanwhile) ends the consumer too.
            cancelled = core.basic_cancel(self._tag).addBoth(_nothing)
            self._cancelling = cancelled.asFuture(self._loop)
        return self._cancelling

    def _abandon(self) -> None:
        """The iteration ended early: cancel, then give back what was never handed out."""
        self._cancel().add_done_callback(lambda _: self._give_back())

    def _give_back(self) -> None:
        """Requeue the messages received but not handed out (impossible with auto-ack:
        the broker already forgot them)."""
        messages, core = self._messages, self._channel.core
        if messages is None or self._auto_ack:
            return
        while len(messages):
            received = messages.get().result
            if core.is_open:
                core.basic_reject(received.method.delivery_tag, True)  # type: ignore[attr-defined]

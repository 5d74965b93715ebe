"""RecoveringChannel: a channel of :class:`~txamqp091.service.AMQPClientService` that
outlives its connection.

It has the methods of :class:`~txamqp091.channel.Channel` and forwards them
to the core channel of the current connection, recording what the broker
confirmed (exchanges, queues, bindings, consumers in the service's
:class:`~txamqp091.topology.Topology`; QoS, confirm and tx mode here) so that
the service can recover it after a reconnection.  Between a disconnection and
the end of recovery:

* calls that would send something raise
  :class:`~txamqp091.exceptions.ConnectionRecovering` at once (fail fast);
  with the service's outbox, a confirmed publish is kept and sent after
  recovery instead;
* acks, nacks and rejects of deliveries received on an earlier connection
  send nothing and return ``False`` (they are *stale*: the broker has
  requeued those deliveries and will deliver them again); delivery tags keep
  growing across connections, so a stale tag is never mistaken for a new one;
* consumers keep their callbacks and queue objects: a queue object does not
  end, it gets the deliveries of the new connection.

A channel closed by the application, or by the broker while the connection
stays up (a channel error), is closed for good and forgotten by the service,
as the core channel is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txamqp091 import codec, spec
from txamqp091.channel_rpcs import check_bool, check_str
from txamqp091.exceptions import (
    AMQPConnectionError,
    AMQPTimeoutError,
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConnectionClosedByClient,
    ConnectionRecovering,
    ConsumerCancelled,
    DuplicateConsumerTag,
    StreamLostError,
    TransactionRolledBack,
    UnconfirmedPublishError,
)
from txamqp091.lifecycle import CLOSED, OPEN, Lifecycle
from txamqp091.message import PUBLISHED, ConsumerQueue, PublishedMessage, ReceivedMessage
from txamqp091.outbox import OutboxEntry
from txamqp091.recovering_topology import RecordingTopology, with_effect
from txamqp091.recovery import ConsumerCancelledByBroker, RecoveryFailed, declare
from txamqp091.topology import ConsumerRecord

if TYPE_CHECKING:
    from txamqp091.channel import Channel
    from txamqp091.protocol import AMQPProtocol
    from txamqp091.service import AMQPClientService

__all__ = ["RecoveringChannel"]

_T = TypeVar("_T")

_log = Logger()
_AnyFrame = codec.MethodFrame[spec.Method]
_MethodFrame = codec.MethodFrame

#: ``on_message_callback(channel, method, properties, body)``; a Deferred or a
#: coroutine it returns is waited for by the service's ``stopService``.
RecoveringCallback = Callable[
    ["RecoveringChannel", spec.Method, spec.BasicProperties, bytes], object
]


class RecoveringChannel(Lifecycle, RecordingTopology):
    """A channel recovered with its connection; made by
    :meth:`AMQPClientService.channel() <txamqp091.service.AMQPClientService.channel>`."""

    def __init__(self, service: AMQPClientService, channel: Channel) -> None:
        self._service = service
        #: The channel's number, kept across connections.
        self.channel_number: int = channel.channel_number
        self._channel: Channel | None = None
        self._live = False
        self._init_lifecycle(OPEN)  # OPEN until closed for good
        self._qos: tuple[int, int] | None = None
        self._global_qos: tuple[int, int] | None = None
        self._confirming = False
        self._transactional = False
        # Publishes or acks made in the current transaction (lost with the
        # connection, as the broker rolls it back).
        self._tx_dirty = False
        self._tx_lost: Exception | None = None
        # consumer tag -> the application's callback or queue object
        self._consumers: dict[str, RecoveringCallback | ConsumerQueue] = {}
        self._return_callbacks: list[
            Callable[[RecoveringChannel, spec.Method, spec.BasicProperties, bytes], object]
        ] = []
        self._cancel_callbacks: list[Callable[[_AnyFrame], object]] = []
        self._handlers: set[Deferred[Any]] = set()
        # Delivery tags handed out are the connection's own plus _offset, the
        # highest tag handed out on earlier connections.
        self._offset = 0
        self._last_tag = 0
        #: How many stale acks, nacks and rejects were dropped.
        self.stale_acks = 0
        self._attach(channel)
        self._live = True

    def __repr__(self) -> str:
        self._sync()
        closed = self._state is CLOSED
        state = "closed" if closed else ("open" if self.is_open else "recovering")
        return f"<RecoveringChannel number={self.channel_number} {state}>"

    # -- state ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """``True`` while usable: connected and recovered."""
        self._sync()
        return self._live and self._channel is not None and self._channel.is_open

    @property
    def is_recovering(self) -> bool:
        """``True`` between a disconnection and the end of recovery."""
        self._sync()
        return self._state is not CLOSED and not self.is_open

    @property
    def is_closed(self) -> bool:
        """``True`` once closed for good (by the application or a channel error)."""
        self._sync()
        return self._state is CLOSED

    @property
    def close_reason(self) -> Exception | None:
        """Why the channel closed for good, or ``None``."""
        self._sync()
        return self._reason if self._state is CLOSED else None

    @property
    def unconfirmed_count(self) -> int:
        """Confirmed-mode publishes awaiting the broker on the current connection."""
        channel = self._channel
        return channel.unconfirmed_count if channel is not None else 0

    def _sync(self) -> None:
        """Catch up with a core channel that has closed but not yet told us.

        The core fails pending calls before it runs close callbacks: code in
        an errback must already see this channel closed (or recovering).
        """
        channel = self._channel
        if channel is not None and channel.is_closed:
            reason = channel.close_reason
            assert reason is not None
            self._core_closed(channel, reason)

    @property
    def channel(self) -> Channel | None:
        """The core channel of the current connection (``None`` while recovering)."""
        return self._channel

    @property
    def consumer_tags(self) -> list[str]:
        """Tags of the consumers of this channel (kept across connections)."""
        return list(self._consumers)

    @property
    def confirming(self) -> bool:
        """Whether the channel is in publisher-confirm mode."""
        return self._confirming

    def add_on_return_callback(
        self,
        callback: Callable[[RecoveringChannel, spec.Method, spec.BasicProperties, bytes], object],
    ) -> None:
        """Call ``callback(channel, method, properties, body)`` for each ``Basic.Return``."""
        self._return_callbacks.append(callback)

    def add_on_cancel_callback(self, callback: Callable[[_AnyFrame], object]) -> None:
        """Call ``callback(method_frame)`` when the broker cancels a consumer."""
        self._cancel_callbacks.append(callback)

    def _current(self) -> Channel:
        """The core channel to send on, or the reason there is none."""
        channel = self._channel
        if self._live and channel is not None and channel.is_open:
            return channel
        self._sync()
        if self._state is CLOSED:
            raise ChannelWrongStateError(f"channel {self.channel_number} is closed") from (
                self._reason
            )
        raise ConnectionRecovering(
            f"channel {self.channel_number} is being recovered; nothing was sent"
        )

    # -- attaching to a connection ----------------------------------------------------

    def _attach(self, channel: Channel) -> None:
        self._channel = channel
        self._offset = self._last_tag
        channel.add_on_close_callback(self._core_closed)
        channel.add_on_return_callback(self._on_return)
        channel.add_on_cancel_callback(self._on_cancel)

    async def _restore(self, channel: Channel) -> None:
        """Attach to a new connection's channel; restore QoS, confirm and tx mode."""
        self._attach(channel)
        if self._qos is not None:
            await channel.basic_qos(*self._qos, False)
        if self._global_qos is not None:
            await channel.basic_qos(*self._global_qos, True)
        if self._confirming:
            await channel.confirm_delivery()
        if self._transactional:
            await channel.tx_select()

    def _go_live(self) -> None:
        """Recovery finished: accept the application's calls again."""
        if self._state is not CLOSED and self._channel is not None:
            self._live = True

    def _core_closed(self, channel: Channel, reason: Exception) -> None:
        if channel is not self._channel:
            return
        self._channel = None
        was_live, self._live = self._live, False
        if self._state is CLOSED:
            return
        service = self._service
        if service._stopping:
            # The service is stopping: consumers end quietly, as on a close.
            self._close_for_good(ConnectionClosedByClient(200, "the service stopped"))
            return
        if isinstance(reason, AMQPTimeoutError):
            # No reply in time: the link is presumed dead.  Drop the connection
            # so that everything is recovered, this channel included.
            connection = channel.connection
            reason = StreamLostError(
                f"no reply on channel {self.channel_number} in time ({reason}); "
                "the connection is presumed dead"
            )
            if connection.is_open:
                connection.fail(reason)
        if was_live and _consumer_timed_out(reason) and channel.connection.is_open:
            # RabbitMQ (before 3.12's notify_consumer) closes the channel of a
            # consumer that held a delivery too long: a broker-side consumer
            # cancel in effect.  Reopen the channel and consume again.
            self._end_unrecorded_consumers(reason)
            ensureDeferred(self._reopen(channel.connection, reason))
            return
        if isinstance(reason, AMQPConnectionError) or not was_live:
            if self._transactional and self._tx_dirty:
                self._tx_lost = reason
            # The connection went, or the channel failed while being restored
            # (recovery fails and is tried again): recovered later.
            self._end_unrecorded_consumers(reason)
            return
        self._close_for_good(reason)

    def _end_unrecorded_consumers(self, reason: Exception) -> None:
        """End now the consumers the filter kept out of the topology (not recovered)."""
        for tag in list(self._consumers):
            if self._service.topology.consumer(tag, self.channel_number) is None:
                self._end_consumer(tag, reason)

    async def _reopen(self, connection: AMQPProtocol, reason: Exception) -> None:
        """Open this channel again on the same connection, as recovery would, after a
        consumer timeout closed it; report each consumer as cancelled by the broker."""
        service = self._service
        try:
            channel = await connection.channel(self.channel_number)
            await self._restore(channel)
            resumed: list[ConsumerRecord] = []
            for record in service.topology.consumers:
                if record.channel_number == self.channel_number:
                    if await self._resume_consumer(record):
                        resumed.append(record)
        except Exception as e:
            if isinstance(e, AMQPConnectionError) or self._state is CLOSED:
                return  # the connection went: its recovery reopens the channel
            service._emit(RecoveryFailed(f"channel {self.channel_number}", e))
            self._close_for_good(reason)
            return
        self._go_live()
        for record in resumed:
            service._emit(
                ConsumerCancelledByBroker(
                    self.channel_number, record.consumer_tag, record.queue, True
                )
            )

    def _close_for_good(self, reason: Exception) -> None:
        if self._state is CLOSED:
            return
        self._state = CLOSED
        self._reason = reason
        self._live = False
        service = self._service
        quiet = isinstance(reason, ChannelClosedByClient | ConnectionClosedByClient)
        for tag in list(self._consumers):
            self._end_consumer(tag, None if quiet else reason)
        service.topology.forget_channel(self.channel_number)
        service._forget_channel(self, reason)
        self._announce_closed(reason)

    def _end_consumer(self, tag: str, reason: BaseException | None) -> None:
        target = self._consumers.pop(tag, None)
        if isinstance(target, ConsumerQueue):
            target.close(reason)

    # -- deliveries ------------------------------------------------------------------

    def _deliverer(
        self, target: RecoveringCallback | ConsumerQueue
    ) -> Callable[[Channel, spec.Method, spec.BasicProperties, bytes], None]:
        """The callback given to the core channel for one consumer."""
        if isinstance(target, ConsumerQueue):
            put = target.put

            def to_queue(
                _: Channel, method: Any, properties: spec.BasicProperties, body: bytes
            ) -> None:
                tag = self._last_tag = method.delivery_tag + self._offset
                method.delivery_tag = tag
                put(ReceivedMessage(self, method, properties, body))

            return to_queue

        def to_callback(
            _: Channel, method: Any, properties: spec.BasicProperties, body: bytes
        ) -> None:
            tag = self._last_tag = method.delivery_tag + self._offset
            method.delivery_tag = tag
            result = target(self, method, properties, body)
            if result is not None:
                self._track(result)

        return to_callback

    def _track(self, result: object) -> None:
        """Remember a handler still running (a Deferred or coroutine it returned)."""
        if isinstance(result, Deferred):
            running: Deferred[Any] = result
        elif inspect.iscoroutine(result):
            running = ensureDeferred(result)
        else:
            return
        if running.called and not isinstance(getattr(running, "result", None), Failure):
            return
        self._handlers.add(running)

        def done(outcome: object) -> object:
            self._handlers.discard(running)
            if isinstance(outcome, Failure):
                _log.failure(
                    "message handler on channel {number} failed",
                    outcome,
                    number=self.channel_number,
                )
                return None  # logged: handled
            return outcome

        running.addBoth(done)

    def _handler_waits(self) -> list[Deferred[None]]:
        """One Deferred per handler running now, each firing when it ends."""
        waits: list[Deferred[None]] = []
        for running in list(self._handlers):
            wait: Deferred[None] = Deferred()
            running.addBoth(_passing_to, wait)
            waits.append(wait)
        return waits

    def _on_return(
        self, _: Channel, method: spec.Method, properties: spec.BasicProperties, body: bytes
    ) -> None:
        for callback in list(self._return_callbacks):
            try:
                callback(self, method, properties, body)
            except Exception:
                _log.failure("on-return callback {cb!r} failed", cb=callback)

    def _on_cancel(self, frame: _AnyFrame) -> None:
        tag: str = frame.method.consumer_tag  # type: ignore[attr-defined]
        if tag not in self._consumers:
            return
        for callback in list(self._cancel_callbacks):
            try:
                callback(frame)
            except Exception:
                _log.failure("on-cancel callback {cb!r} failed", cb=callback)
        topology = self._service.topology
        record = topology.consumer(tag, self.channel_number)
        if record is not None and topology.queue(record.queue) is not None:
            ensureDeferred(self._redeclare_and_resume(record))
        else:
            self._consumer_gone(tag, record, None)

    def _consumer_gone(
        self, tag: str, record: ConsumerRecord | None, error: BaseException | None
    ) -> None:
        """A broker-cancelled consumer is not resumed: forget it, end it, report it."""
        service = self._service
        service.topology.consumer_cancelled(tag, self.channel_number)
        self._end_consumer(
            tag, error or ConsumerCancelled(f"the broker cancelled consumer {tag!r}")
        )
        queue = record.queue if record is not None else None
        service._emit(ConsumerCancelledByBroker(self.channel_number, tag, queue, False))

    async def _redeclare_and_resume(self, record: ConsumerRecord) -> None:
        """Declare a cancelled consumer's queue (and its bindings) again, then
        consume again with the same tag."""
        service = self._service
        topology = service.topology
        tag = record.consumer_tag
        channel = self._channel
        try:
            if channel is None:
                return  # the connection went: its recovery re-consumes
            work = await channel.connection.channel()
            # The application may have deleted the queue or cancelled the
            # consumer meanwhile (a queue deleted from another channel cancels
            # its consumers before the DeleteOk arrives): then it ends.
            queue = topology.queue(record.queue)
            current = topology.consumer(tag, self.channel_number)
            if queue is None or current is None or tag not in self._consumers:
                await work.close()
                if tag in self._consumers:
                    self._consumer_gone(tag, record, None)
                return
            await declare(work, queue, topology, service._emit)
            record = topology.consumer(tag, self.channel_number) or current
            for binding in topology.bindings_of(record.queue):
                await declare(work, binding, topology, service._emit)
            await work.close()
            resumed = await self._resume_consumer(record)
        except Exception as e:
            if isinstance(e, AMQPConnectionError) and self._state is not CLOSED:
                return  # the connection went meanwhile; its recovery takes over
            service._emit(RecoveryFailed(record, e))
            if tag in self._consumers:
                self._consumer_gone(tag, record, e)
            return
        if resumed:
            service._emit(ConsumerCancelledByBroker(self.channel_number, tag, record.queue, True))

    async def _resume_consumer(self, record: ConsumerRecord) -> bool:
        """Start a recorded consumer again on the current core channel.

        :returns: ``False`` if the application cancelled it meanwhile.
        :raises ConnectionRecovering: if the channel went meanwhile.
        """
        tag = record.consumer_tag
        target = self._consumers.get(tag)
        if target is None:
            return False
        channel = self._channel
        if channel is None or not channel.is_open:
            raise ConnectionRecovering(f"channel {self.channel_number} closed during recovery")
        await channel.basic_consume(
            record.queue,
            self._deliverer(target),
            record.auto_ack,
            record.exclusive,
            tag,
            record.arguments or None,
        )
        if self._consumers.get(tag) is not target:
            # Cancelled by the application while the Consume was in flight: the
            # broker has the consumer now; cancel it there too.
            # What reaches it before the CancelOk is requeued (the core's rule
            # for a consumer given up on).
            channel._abandon_consumer(tag, record.auto_ack)
            return False
        return True

    # -- consumers -----------------------------------------------------------------

    def basic_consume(
        self,
        queue: str,
        on_message_callback: RecoveringCallback | None = None,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Deferred[Any]:
        """Start a consumer, recorded so that it is started again after a reconnection.

        As :meth:`Channel.basic_consume <txamqp091.channel.Channel.basic_consume>`,
        except that the callback receives this channel, and that a Deferred or
        coroutine it returns is a handler still running (``stopService`` waits
        for it).  The queue object (without a callback) lasts across reconnections.
        """
        channel = self._current()
        if consumer_tag is not None and consumer_tag in self._consumers:
            raise DuplicateConsumerTag(consumer_tag)
        if on_message_callback is not None and not callable(on_message_callback):
            raise TypeError("on_message_callback must be callable or None")
        target: RecoveringCallback | ConsumerQueue
        target = on_message_callback if on_message_callback is not None else ConsumerQueue()
        d = channel.basic_consume(
            queue, self._deliverer(target), auto_ack, exclusive, consumer_tag, arguments
        )

        def started(tag: str) -> Any:
            self._consumers[tag] = target
            self._service.topology.consumer_started(
                ConsumerRecord(
                    tag,
                    queue,
                    target,
                    auto_ack,
                    exclusive,
                    dict(arguments or {}),
                    self.channel_number,
                )
            )
            if isinstance(target, ConsumerQueue):
                target.consumer_tag = tag
                return (target, tag)
            return tag

        return d.addCallback(started)

    def basic_cancel(self, consumer_tag: str = "") -> Deferred[_MethodFrame[spec.Basic.CancelOk]]:
        """Cancel a consumer and forget it; its queue object ends quietly.

        While the channel is being recovered the consumer does not exist on the
        broker: it is forgotten at once (nothing is sent) and the Deferred has
        already fired.
        """
        check_str(consumer_tag, "consumer_tag")

        def cancelled(frame: Any) -> None:
            self._service.topology.consumer_cancelled(consumer_tag, self.channel_number)
            self._end_consumer(consumer_tag, None)

        channel = self._channel
        if channel is not None and channel.is_open:  # also while being restored
            return with_effect(channel.basic_cancel(consumer_tag), cancelled)
        if self._state is CLOSED:
            self._current()  # raises ChannelWrongStateError
        frame = codec.MethodFrame(self.channel_number, spec.Basic.CancelOk(consumer_tag))
        cancelled(frame)
        return succeed(frame)

    def basic_get(self, queue: str, auto_ack: bool = False) -> Deferred[ReceivedMessage | None]:
        """Fetch one message (as the core channel; the message names this channel)."""
        channel = self._current()

        def got(message: ReceivedMessage | None) -> ReceivedMessage | None:
            if message is None:
                return None
            method: Any = message.method
            tag = self._last_tag = method.delivery_tag + self._offset
            method.delivery_tag = tag
            return ReceivedMessage(self, method, message.properties, message.body)

        return channel.basic_get(queue, auto_ack).addCallback(got)

    def _settle_target(self, delivery_tag: object, multiple: bool) -> tuple[Channel, int] | None:
        """The core channel and its own tag for an ack, or ``None`` if it is stale."""
        if type(delivery_tag) is not int:
            raise TypeError(f"delivery_tag must be an int, not {type(delivery_tag).__name__}")
        if delivery_tag < 0:
            raise ValueError(f"delivery_tag must be >= 0, not {delivery_tag}")
        channel = self._channel
        if channel is None or not channel.is_open:
            if self.is_closed:
                raise ChannelWrongStateError(f"channel {self.channel_number} is closed")
        elif delivery_tag > self._offset:
            return channel, delivery_tag - self._offset
        elif delivery_tag == 0:
            return channel, 0  # "all so far" with multiple; the broker judges it alone
        self.stale_acks += 1
        _log.debug(
            "stale acknowledgement of delivery {tag} on channel {number} dropped: it was "
            "received on an earlier connection",
            tag=delivery_tag,
            number=self.channel_number,
        )
        return None

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> bool:
        """Acknowledge a delivery.

        :returns: ``True`` if sent; ``False`` if the delivery came on an earlier
            connection (stale: nothing is sent, the broker redelivers it).
        """
        check_bool(multiple, "multiple")
        target = self._settle_target(delivery_tag, multiple)
        if target is None:
            return False
        target[0].basic_ack(target[1], multiple)
        if self._transactional:
            self._tx_dirty = True
        return True

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> bool:
        """Reject deliveries; returns ``False`` for a stale one (see :meth:`basic_ack`)."""
        check_bool(multiple, "multiple")
        check_bool(requeue, "requeue")
        target = self._settle_target(delivery_tag, multiple)
        if target is None:
            return False
        target[0].basic_nack(target[1], multiple, requeue)
        if self._transactional:
            self._tx_dirty = True
        return True

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> bool:
        """Reject a delivery; returns ``False`` for a stale one (see :meth:`basic_ack`)."""
        check_bool(requeue, "requeue")
        target = self._settle_target(delivery_tag, False)
        if target is None:
            return False
        target[0].basic_reject(target[1], requeue)
        if self._transactional:
            self._tx_dirty = True
        return True

    # -- publishing ------------------------------------------------------------------

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | bytearray | memoryview | str,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> Deferred[Any]:
        """Publish a message (as the core channel).

        While the service reconnects, raises
        :class:`~txamqp091.exceptions.ConnectionRecovering`; with the service's
        outbox and confirm mode, the message is kept instead and published
        after recovery, and the returned Deferred settles with its confirm.
        A confirmed publish cut off by a disconnection goes to the outbox too
        (if it fits); without one it fails with
        :class:`~txamqp091.exceptions.UnconfirmedPublishError`.
        """
        channel = self._channel
        if self._live and channel is not None and channel.is_open:
            d = channel.basic_publish(exchange, routing_key, body, properties, mandatory)
            if self._transactional:
                self._tx_dirty = True
            if d is PUBLISHED or self._service.outbox is None:
                return d
            return self._guard(d)
        if self._state is CLOSED or self._service.outbox is None or not self._confirming:
            self._current()  # raises the reason
        message = _checked_message(exchange, routing_key, body, properties, mandatory)
        entry = OutboxEntry(self, message, Deferred())
        assert self._service.outbox is not None
        self._service.outbox.add(entry)
        return entry.deferred

    def _guard(self, d: Deferred[Any]) -> Deferred[Any]:
        """Move a confirmed publish cut off by a disconnection into the outbox."""

        def cut_off(failure: Failure) -> Any:
            error = failure.value
            outbox = self._service.outbox
            if (
                outbox is None
                or not isinstance(error, UnconfirmedPublishError)
                or not isinstance(error.reason, AMQPConnectionError)
                or isinstance(error.reason, ConnectionClosedByClient)
                or self._service._stopping
                or self._state is CLOSED
            ):
                return failure
            entry = OutboxEntry(self, error.message, Deferred())
            if not outbox.fits(entry):
                return failure
            outbox.add(entry)
            return entry.deferred

        return d.addErrback(cut_off)

    def _republish(self, entry: OutboxEntry) -> None:
        """Publish an outbox entry again after recovery."""
        try:
            d = self.basic_publish(*entry.message)
        except Exception as e:
            entry.deferred.errback(e)
            return
        d.chainDeferred(entry.deferred)

    def confirm_delivery(self) -> Deferred[_MethodFrame[spec.Confirm.SelectOk]]:
        """Turn on publisher confirms; restored after a reconnection."""

        d = self._current().confirm_delivery()
        # Publishes made from now on are confirmed (as on the core channel), so
        # a reconnection before the SelectOk restores confirm mode too.
        self._confirming = True
        return d

    # -- QoS, transactions -------------------------------------------------------------

    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False
    ) -> Deferred[_MethodFrame[spec.Basic.QosOk]]:
        """Set the prefetch window; the last per-consumer and global settings are
        restored after a reconnection."""

        def set_(frame: Any) -> None:
            if global_qos:
                self._global_qos = (prefetch_size, prefetch_count)
            else:
                self._qos = (prefetch_size, prefetch_count)

        return with_effect(
            self._current().basic_qos(prefetch_size, prefetch_count, global_qos), set_
        )

    def basic_recover(self, requeue: bool = False) -> Deferred[_MethodFrame[spec.Basic.RecoverOk]]:
        """Redeliver unacknowledged messages (``Basic.Recover``)."""
        return self._current().basic_recover(requeue)

    def tx_select(self) -> Deferred[_MethodFrame[spec.Tx.SelectOk]]:
        """Turn on transactions; restored after a reconnection (an open transaction
        is lost with its connection: the broker rolls it back)."""

        def on(frame: Any) -> None:
            self._transactional = True

        return with_effect(self._current().tx_select(), on)

    def tx_commit(self) -> Deferred[_MethodFrame[spec.Tx.CommitOk]]:
        """Commit the transaction.

        If the connection dropped while the transaction held publishes or
        acks, the broker rolled them back: the commit then rolls back what was
        done since recovery too (the application's transaction is all or
        nothing) and fails with
        :class:`~txamqp091.exceptions.TransactionRolledBack`, to be redone.
        """
        channel = self._current()
        lost = self._tx_lost
        # The commit's own Deferred reports its outcome, even a connection
        # lost before its CommitOk: what came before it is no longer "open".
        self._tx_dirty = False
        if lost is not None:
            self._tx_lost = None
            self._tx_dirty = False

            def rolled_back(_: object) -> Any:
                raise TransactionRolledBack(
                    f"the connection closed during the transaction ({lost!r}); the broker "
                    "rolled it back and nothing of it was committed"
                ) from lost

            return channel.tx_rollback().addCallback(rolled_back)

        return channel.tx_commit()

    def tx_rollback(self) -> Deferred[_MethodFrame[spec.Tx.RollbackOk]]:
        """Roll the transaction back (also one lost with an earlier connection)."""

        channel = self._current()
        self._tx_dirty = False
        self._tx_lost = None
        return channel.tx_rollback()

    def flow(self, active: bool) -> Deferred[_MethodFrame[spec.Channel.FlowOk]]:
        """``Channel.Flow`` (see :meth:`Channel.flow <txamqp091.channel.Channel.flow>`:
        RabbitMQ refuses ``flow(False)``); not recorded."""
        return self._current().flow(active)

    # -- closing ---------------------------------------------------------------------

    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> Deferred[None]:
        """Close the channel for good: it is not recovered; its consumers and
        outbox messages are forgotten."""
        if self.is_closed:
            raise ChannelWrongStateError(f"channel {self.channel_number} is closed")
        channel = self._channel
        self._close_for_good(ChannelClosedByClient(reply_code, reply_text))
        if channel is not None and channel.is_open:
            return channel.close(reply_code, reply_text)
        return succeed(None)


def _consumer_timed_out(reason: Exception) -> bool:
    """Whether RabbitMQ closed a channel for a delivery not acknowledged in time."""
    return (
        isinstance(reason, ChannelClosedByBroker)
        and reason.reply_code == 406
        and "delivery acknowledgement" in reason.reply_text
    )


def _passing_to(outcome: object, wait: Deferred[None]) -> object:
    """Fire *wait* and pass *outcome* on (a handler's end, for ``stopService``)."""
    wait.callback(None)
    return outcome


def _checked_message(
    exchange: object,
    routing_key: object,
    body: object,
    properties: object,
    mandatory: object,
) -> PublishedMessage:
    """Check publish arguments as the core channel does, for a message kept unsent."""
    exchange = check_str(exchange, "exchange")
    routing_key = check_str(routing_key, "routing_key")
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(
            f"body must be bytes, bytearray, memoryview or str, not {type(body).__name__}"
        )
    if properties is not None and not isinstance(properties, spec.BasicProperties):
        raise TypeError(
            f"properties must be BasicProperties or None, not {type(properties).__name__}"
        )
    mandatory = check_bool(mandatory, "mandatory")
    method = spec.Basic.Publish(0, exchange, routing_key, mandatory, False)
    # Encoding the method and header now raises what the core channel would
    # raise (a name over 255 bytes, a bad property value), before keeping it.
    codec.encode_message(1, method, properties, b"")
    # A copy: the caller may reuse its buffer before the message is sent.
    kept = body if isinstance(body, bytes) else bytes(body)
    return PublishedMessage(exchange, routing_key, kept, properties, mandatory)

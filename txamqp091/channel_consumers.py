"""Consumers and acknowledgements: the channel methods that start, stop and feed consumers.

:class:`ChannelConsumers` is a mixin of :class:`~txamqp091.channel.Channel`
(``basic_consume``, ``basic_cancel``, ``basic_get``, ``basic_ack``,
``basic_nack``, ``basic_reject``); the channel's RPC queue, state and
consumer table are the channel's own.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred

from txamqp091 import codec, spec
from txamqp091.channel_rpcs import check_bool, check_str, check_table
from txamqp091.exceptions import DuplicateConsumerTag
from txamqp091.lifecycle import OPEN
from txamqp091.message import ConsumerQueue, ReceivedMessage

if TYPE_CHECKING:
    from txamqp091.channel import Channel, _Rpc
    from txamqp091.protocol import AMQPProtocol

__all__ = ["ChannelConsumers", "MessageCallback"]

#: ``on_message_callback(channel, method, properties, body)``.
MessageCallback = Callable[["Channel", spec.Method, spec.BasicProperties, bytes], object]

_OPEN = OPEN
_AnyFrame = codec.MethodFrame[spec.Method]
_MethodFrame = codec.MethodFrame
_Ack = spec.Basic.Ack
_encode_method_frame = codec.encode_method_frame
# Basic.Ack as a whole frame: type 1, channel, size 13, class 60, method 80,
# delivery tag, the "multiple" bit, frame end.
_ACK_FRAME = struct.Struct(">BHIHHQ?B")
_TAG_LIMIT = 1 << 64


class ChannelConsumers:
    """Consumer and acknowledgement methods of a channel."""

    # Provided by Channel.
    connection: AMQPProtocol
    channel_number: int
    _state: str
    _consumers: dict[str, MessageCallback | ConsumerQueue]

    def _check_open(self) -> None:
        raise NotImplementedError  # pragma: no cover - provided by Channel

    def _make_rpc(
        self,
        method: spec.Method,
        on_reply: Callable[[_AnyFrame], Any] | None,
        *,
        check: bool = True,
    ) -> _Rpc:
        raise NotImplementedError  # pragma: no cover - provided by Channel

    def _submit(self, rpc: _Rpc) -> None:
        raise NotImplementedError  # pragma: no cover - provided by Channel

    def _rpc(
        self,
        method: spec.Method,
        on_reply: Callable[[_AnyFrame], Any] | None = None,
        *,
        check: bool = True,
    ) -> Deferred[Any]:
        raise NotImplementedError  # pragma: no cover - provided by Channel

    def basic_consume(
        self,
        queue: str,
        on_message_callback: MessageCallback | None = None,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Deferred[Any]:
        """Start a consumer.

        :param on_message_callback: called as ``(channel, method, properties,
            body)`` for each delivery; without one, deliveries go to a
            :class:`~txamqp091.message.ConsumerQueue`.
        :returns: a Deferred firing with the consumer tag when a callback is
            given, else with ``(queue_object, consumer_tag)``.
        :raises DuplicateConsumerTag: if *consumer_tag* is in use on this channel.
        """
        self._check_open()
        check_str(queue, "queue")
        if on_message_callback is not None and not callable(on_message_callback):
            raise TypeError("on_message_callback must be callable or None")
        check_bool(auto_ack, "auto_ack")
        check_bool(exclusive, "exclusive")
        check_table(arguments, "arguments")
        if consumer_tag is None or consumer_tag == "":
            # As pika: no tag (or an empty one, which RabbitMQ would replace with its
            # own) gets one made up here, so that deliveries find their consumer.
            consumer_tag = f"ctag{self.channel_number}.{uuid.uuid4().hex}"
        check_str(consumer_tag, "consumer_tag")
        if consumer_tag in self._consumers:
            raise DuplicateConsumerTag(consumer_tag)
        method = spec.Basic.Consume(
            0, queue, consumer_tag, False, auto_ack, exclusive, False, arguments or {}
        )
        target: MessageCallback | ConsumerQueue = (
            on_message_callback if on_message_callback is not None else ConsumerQueue(consumer_tag)
        )
        tag = consumer_tag

        def consuming(frame: _AnyFrame) -> Any:
            if isinstance(target, ConsumerQueue):
                return (target, tag)
            return tag

        rpc = self._make_rpc(method, consuming)  # encodes: raises before registering
        self._consumers[consumer_tag] = target
        self._submit(rpc)
        d = rpc.deferred
        assert d is not None

        def failed(failure: Any) -> Any:
            if self._consumers.get(tag) is target:
                if failure.check(CancelledError) and rpc.abandoned:
                    # Sent already: the broker will start it; cancel it there.
                    self._abandon_consumer(tag, auto_ack)
                else:
                    del self._consumers[tag]
            return failure

        d.addErrback(failed)
        return d

    def _abandon_consumer(self, tag: str, auto_ack: bool) -> None:
        """Cancel a consumer the application gave up on; requeue what reaches it meanwhile."""

        def cancelled(_: object) -> None:
            self._consumers.pop(tag, None)

        def requeue(
            channel: Channel, method: Any, properties: spec.BasicProperties, body: bytes
        ) -> None:
            if not auto_ack and channel.is_open:
                channel.basic_reject(method.delivery_tag, True)

        if self._state is _OPEN:
            self._consumers[tag] = requeue
            self._rpc(spec.Basic.Cancel(tag, False)).addBoth(cancelled)
        else:
            self._consumers.pop(tag, None)

    def basic_cancel(self, consumer_tag: str = "") -> Deferred[_MethodFrame[spec.Basic.CancelOk]]:
        """Cancel a consumer; its queue object (if any) ends quietly.

        :returns: a Deferred firing with the ``Basic.CancelOk`` frame.
        """
        self._check_open()
        check_str(consumer_tag, "consumer_tag")

        def cancelled(frame: _AnyFrame) -> _AnyFrame:
            consumer = self._consumers.pop(consumer_tag, None)
            if isinstance(consumer, ConsumerQueue):
                consumer.close(None)
            return frame

        return self._rpc(spec.Basic.Cancel(consumer_tag, False), cancelled)

    def basic_get(self, queue: str, auto_ack: bool = False) -> Deferred[ReceivedMessage | None]:
        """Fetch one message.

        :returns: a Deferred firing with a
            :class:`~txamqp091.message.ReceivedMessage`, or ``None`` when the
            queue is empty.
        """
        self._check_open()
        check_str(queue, "queue")
        check_bool(auto_ack, "auto_ack")

        def got(frame: _AnyFrame) -> None:
            return None  # Basic.GetEmpty; GetOk is answered with its content

        rpc = self._make_rpc(spec.Basic.Get(0, queue, auto_ack), got)
        rpc.requeue_if_abandoned = not auto_ack
        self._submit(rpc)
        assert rpc.deferred is not None
        return rpc.deferred

    def _send_ack(self, method: spec.Method) -> None:
        self._check_open()
        self.connection._write(_encode_method_frame(self.channel_number, method))

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Acknowledge one delivery, or all up to *delivery_tag* with *multiple*."""
        if type(multiple) is not bool:
            check_bool(multiple, "multiple")
        if self._state is not _OPEN:
            self._check_open()
        if type(delivery_tag) is int and 0 <= delivery_tag < _TAG_LIMIT:
            # The hottest write of a consumer: one struct.pack, no method object.
            self.connection._write(
                _ACK_FRAME.pack(1, self.channel_number, 13, 60, 80, delivery_tag, multiple, 0xCE)
            )
        else:
            self._send_ack(_Ack(delivery_tag, multiple))  # validates and explains

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Reject one or several deliveries, requeueing them by default."""
        check_bool(multiple, "multiple")
        check_bool(requeue, "requeue")
        self._send_ack(spec.Basic.Nack(delivery_tag, multiple, requeue))

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        """Reject one delivery, requeueing it by default."""
        check_bool(requeue, "requeue")
        self._send_ack(spec.Basic.Reject(delivery_tag, requeue))

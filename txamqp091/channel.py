"""Channel: AMQP channel operations as Deferreds.

Rules:

* Every synchronous method (``queue_declare``, ``basic_qos``…) is an RPC.
  RPCs are serialised per channel: one is on the wire at a time, the others
  wait in order.  Each RPC fires with the broker's reply frame (a
  :class:`~txamqp091.codec.MethodFrame`: ``result.method.queue``…).
* Arguments are encoded when the method is called, so a bad argument raises
  :class:`TypeError` / :class:`ValueError` before anything is written, even
  for an RPC that waits its turn.
* Each RPC has a timeout (the connection's ``rpc_timeout``).  When it
  expires the Deferred fails with
  :class:`~txamqp091.exceptions.AMQPTimeoutError`; the channel can no longer
  tell which reply belongs to which request, so it is closed.
* Cancelling an RPC's Deferred that is still waiting its turn removes it
  without a trace; cancelling one already sent fails it with
  :class:`~twisted.internet.defer.CancelledError` and drops the reply when it
  comes (a cancelled ``basic_consume`` is cancelled on the broker too).
* In confirm mode each ``basic_publish`` returns a Deferred that settles
  exactly once: ``Basic.Ack`` → the ack method; ``Basic.Nack`` →
  :class:`~txamqp091.exceptions.NackError`; ``Basic.Return`` then ack →
  :class:`~txamqp091.exceptions.UnroutableError`; channel or connection
  closing → that error.  A return is matched to the oldest unconfirmed
  mandatory publish with the same exchange and routing key (RabbitMQ routes
  a channel's messages in order and sends the return before the ack).
* Whatever closes the channel fails every pending Deferred once and closes
  consumer queues; later calls raise
  :class:`~txamqp091.exceptions.ChannelWrongStateError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from txamqp091 import codec, spec
from txamqp091.channel_consumers import ChannelConsumers, MessageCallback
from txamqp091.channel_rpcs import ChannelRPCs, check_bool, check_str
from txamqp091.exceptions import (
    AMQPTimeoutError,
    BodyTooLongError,
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConsumerCancelled,
    NackError,
    UnconfirmedPublishError,
    UnexpectedFrameError,
    UnroutableError,
)
from txamqp091.lifecycle import CLOSED, CLOSING, OPEN, Lifecycle
from txamqp091.message import (
    PUBLISHED,
    ConsumerQueue,
    PublishedMessage,
    ReceivedMessage,
    ReturnedMessage,
)

if TYPE_CHECKING:
    from txamqp091.protocol import AMQPProtocol

__all__ = ["Channel", "MessageCallback"]

_log = Logger()


_OPENING: Final = "opening"
_OPEN: Final = OPEN
_CLOSING: Final = CLOSING
_CLOSED: Final = CLOSED

_MethodFrame = codec.MethodFrame
_AnyFrame = codec.MethodFrame[spec.Method]
_HeaderFrame = codec.HeaderFrame
_BodyFrame = codec.BodyFrame
_Publish = spec.Basic.Publish
_encode_message = codec.encode_message
_encode_method_frame = codec.encode_method_frame
_Deliver = spec.Basic.Deliver
_Ack = spec.Basic.Ack
_EMPTY = b""


def _same_content(
    body: bytes | bytearray | memoryview,
    properties: spec.BasicProperties | None,
    returned: ReturnedMessage,
) -> bool:
    """Whether a returned message is this published one (same body and properties).

    A Return carries no sequence number, and a routed message can be confirmed
    after a later unroutable one, so the exchange and routing key alone do not
    tell which publish came back; the broker returns body and properties as
    they were published, which does.
    """
    if bytes(body) != returned.body:
        return False
    sent = b"\x00\x00" if properties is None else properties.encode()
    return sent == returned.properties.encode()


class _Rpc:
    """One synchronous request: its encoded frame, expected replies and Deferred."""

    __slots__ = (
        "abandoned",
        "data",
        "deferred",
        "frames",
        "on_reply",
        "on_send",
        "replies",
        "requeue_if_abandoned",
        "timer",
    )

    def __init__(
        self,
        data: bytes,
        replies: tuple[type[spec.Method], ...],
        deferred: Deferred[Any] | None,
        on_reply: Callable[[_AnyFrame], Any] | None,
    ) -> None:
        self.data = data
        self.replies = replies
        self.deferred = deferred  # None for a queued plain write (publish behind a select)
        self.on_reply = on_reply
        self.on_send: Callable[[], None] | None = None
        self.frames = 1
        self.requeue_if_abandoned = False
        self.abandoned = False
        self.timer: IDelayedCall | None = None


class Channel(Lifecycle, ChannelConsumers, ChannelRPCs):
    """An AMQP channel; every operation returns a Deferred.

    Obtain one with :meth:`AMQPProtocol.channel() <txamqp091.protocol.AMQPProtocol.channel>`.
    Names and arguments follow pika's ``Channel`` without the ``callback``
    arguments.
    """

    def __init__(self, connection: AMQPProtocol, channel_number: int) -> None:
        #: The connection this channel belongs to.
        self.connection = connection
        #: This channel's number.
        self.channel_number = channel_number
        self._init_lifecycle(_OPENING)
        self._queue: deque[_Rpc] = deque()
        self._current: _Rpc | None = None
        self._consumers: dict[str, MessageCallback | ConsumerQueue] = {}
        self._return_callbacks: list[
            Callable[[Channel, spec.Method, spec.BasicProperties, bytes], object]
        ] = []
        self._cancel_callbacks: list[Callable[[_AnyFrame], object]] = []
        self._flow_callbacks: list[Callable[[bool], object]] = []
        self._confirm_callbacks: list[Callable[[_AnyFrame], object]] = []
        self._close_timer: IDelayedCall | None = None
        # Content being assembled: method, properties, remaining size, parts.
        self._content_method: spec.Method | None = None
        self._content_props: spec.BasicProperties | None = None
        self._remaining = 0
        self._body_size = 0
        self._parts: list[bytes] = []
        # Publisher confirms.
        self._confirming = False
        self._select_queued = False
        self._queued_writes = 0
        self._last_publish: Any = None
        self._publish_seq = 0
        self._per_publish = True
        #: close(drain=True) waiting for the requests made before it.
        self._drain_reason: ChannelClosedByClient | None = None
        # Unconfirmed publishes in sequence order, the first one numbered
        # _first_seq; an entry is (deferred, exchange, routing_key, body,
        # properties, mandatory) -- a plain tuple is cheaper than a
        # PublishedMessage, built only when needed -- or None once settled out
        # of order.  Acks settle from the front, so this stays O(1) per message.
        self._unconfirmed: deque[tuple[Any, ...] | None] = deque()
        self._first_seq = 1
        self._unconfirmed_n = 0
        self._returned: dict[int, ReturnedMessage] = {}
        #: Whether the broker asked us to stop publishing (``Channel.Flow``).
        self.flow_active = True

    def __repr__(self) -> str:
        return f"<Channel {self.channel_number} {self._state}>"

    # ------------------------------------------------------------------
    # State
    # ------------------------------------------------------------------

    @property
    def consumer_tags(self) -> list[str]:
        """Tags of the consumers active on this channel."""
        return list(self._consumers)

    @property
    def confirming(self) -> bool:
        """Whether the channel is in publisher-confirm mode."""
        return self._confirming or self._select_queued

    @property
    def unconfirmed_count(self) -> int:
        """How many confirmed-mode publishes await the broker's ack or nack."""
        return self._unconfirmed_n

    def add_on_return_callback(
        self, callback: Callable[[Channel, spec.Method, spec.BasicProperties, bytes], object]
    ) -> None:
        """Call ``callback(channel, method, properties, body)`` for each ``Basic.Return``."""
        self._return_callbacks.append(callback)

    def add_on_cancel_callback(self, callback: Callable[[_AnyFrame], object]) -> None:
        """Call ``callback(method_frame)`` when the broker cancels a consumer."""
        self._cancel_callbacks.append(callback)

    def add_on_confirm_callback(self, callback: Callable[[_AnyFrame], object]) -> None:
        """Call ``callback(frame)`` with each ``Basic.Ack`` or ``Basic.Nack`` frame the
        broker sends in confirm mode, as it came (``delivery_tag``, ``multiple``), after
        the publishes it covers are settled. For faces that hand confirms to the
        application as frames (pika's ``confirm_delivery(ack_nack_callback)``)."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._confirm_callbacks.append(callback)

    def _confirmed(self, frame: _AnyFrame) -> None:
        for cb in list(self._confirm_callbacks):
            try:
                cb(frame)
            except Exception:
                _log.failure("on-confirm callback {cb!r} failed", cb=cb)

    def add_on_flow_callback(self, callback: Callable[[bool], object]) -> None:
        """Call ``callback(active)`` when the broker sends ``Channel.Flow``."""
        self._flow_callbacks.append(callback)

    def _check_open(self) -> None:
        if self._state is not _OPEN:
            if self._reason is not None:
                raise ChannelWrongStateError(f"channel {self.channel_number} is closed") from (
                    self._reason
                )
            raise ChannelWrongStateError(f"channel {self.channel_number} is {self._state}")

    # ------------------------------------------------------------------
    # RPC machinery
    # ------------------------------------------------------------------

    def _make_rpc(
        self,
        method: spec.Method,
        on_reply: Callable[[_AnyFrame], Any] | None,
        *,
        check: bool = True,
    ) -> _Rpc:
        if check:
            self._check_open()
        data = _encode_method_frame(self.channel_number, method)
        rpc = _Rpc(data, tuple(method.valid_responses), None, on_reply)
        rpc.deferred = Deferred(lambda _: self._cancel_rpc(rpc))
        return rpc

    def _submit(self, rpc: _Rpc) -> None:
        if self._current is None and not self._queue:
            self._send_rpc(rpc)
        else:
            self._queue.append(rpc)

    def _rpc(
        self,
        method: spec.Method,
        on_reply: Callable[[_AnyFrame], Any] | None = None,
        *,
        check: bool = True,
    ) -> Deferred[Any]:
        rpc = self._make_rpc(method, on_reply, check=check)
        self._submit(rpc)
        assert rpc.deferred is not None
        return rpc.deferred

    def _send_nowait(self, method: spec.Method) -> Deferred[Any]:
        """Send a synchronous method whose ``nowait`` bit is set: no reply will come.

        It keeps its place: behind the RPC in flight and those queued (and the
        publishes queued behind them follow it). Fires with ``None`` at once.
        """
        self._check_open()
        data = _encode_method_frame(self.channel_number, method)
        if self._current is None and not self._queue:
            self.connection._write(data)
        else:
            self._queue.append(_Rpc(data, (), None, None))
            self._queued_writes += 1
        return succeed(None)

    def _send_rpc(self, rpc: _Rpc) -> None:
        self._current = rpc
        if rpc.on_send is not None:
            rpc.on_send()
        self.connection._write(rpc.data)
        timeout = self.connection.rpc_timeout
        if timeout is not None and timeout > 0:
            rpc.timer = self.connection.clock.callLater(timeout, self._rpc_timed_out, rpc)

    def _next_rpc(self) -> None:
        self._current = None
        queue = self._queue
        while queue and self._state is not _CLOSED:
            rpc = queue.popleft()
            if rpc.deferred is None:  # a publish queued behind Confirm.Select
                self._queued_writes -= 1
                self.connection._write(rpc.data, rpc.frames)
                continue
            self._send_rpc(rpc)
            return
        if self._drain_reason is not None and self._state is _CLOSING:
            # close(drain=True): everything asked before has gone out; now the Close.
            self._begin_close(self._drain_reason, send_close=True)

    def _cancel_rpc(self, rpc: _Rpc) -> None:
        if rpc is self._current or rpc.on_send is not None:
            rpc.abandoned = True
        elif rpc in self._queue:
            self._queue.remove(rpc)

    def _rpc_timed_out(self, rpc: _Rpc) -> None:
        rpc.timer = None
        timeout = self.connection.rpc_timeout
        exc = AMQPTimeoutError(f"no reply to {self._rpc_name(rpc)} within {timeout} s")
        if not rpc.abandoned and rpc.deferred is not None and not rpc.deferred.called:
            rpc.abandoned = True
            rpc.deferred.errback(exc)
        # Replies can no longer be matched to requests: close the channel.
        self._local_close(exc, send_close=True)

    @staticmethod
    def _rpc_name(rpc: _Rpc) -> str:
        class_id, method_id = (
            int.from_bytes(rpc.data[7:9], "big"),
            int.from_bytes(rpc.data[9:11], "big"),
        )
        cls = spec.methods.get((class_id << 16) | method_id)
        return cls.NAME if cls is not None else "RPC"

    def _on_reply(self, frame: _AnyFrame, result: Any = None) -> None:
        rpc = self._current
        assert rpc is not None
        if rpc.timer is not None:
            rpc.timer.cancel()
            rpc.timer = None
        if rpc.on_reply is not None:
            try:
                value = rpc.on_reply(frame) if result is None else result
            except Exception as exc:
                value = exc
        else:
            value = frame if result is None else result
        self._next_rpc()
        d = rpc.deferred
        if rpc.abandoned or d is None or d.called:
            return
        if isinstance(value, Exception):
            d.errback(value)
        else:
            d.callback(value)

    # ------------------------------------------------------------------
    # Opening and closing
    # ------------------------------------------------------------------

    def _open(self) -> Deferred[Channel]:
        def opened(_: _AnyFrame) -> Channel:
            self._state = _OPEN
            return self

        return self._rpc(spec.Channel.Open(), opened, check=False)

    def close(
        self, reply_code: int = 0, reply_text: str = "Normal shutdown", *, drain: bool = False
    ) -> Deferred[None]:
        """Close the channel.

        Pending RPCs and unconfirmed publishes fail with
        :class:`~txamqp091.exceptions.ChannelClosedByClient`; consumer queues end.

        :param reply_code: the code sent in ``Channel.Close``.
        :param reply_text: the text sent in ``Channel.Close``.
        :param drain: first send what was asked before, in turn (requests waiting
            behind one in flight, with their replies; queued publishes and nowait
            requests), then ``Channel.Close`` -- pika's order. New calls are refused
            meanwhile (the channel is closing).
        :returns: a Deferred firing when ``Channel.CloseOk`` arrives.
        :raises ChannelWrongStateError: if the channel is closing or closed.
        """
        if isinstance(reply_code, bool) or not isinstance(reply_code, int):
            raise TypeError(f"reply_code must be an int, not {reply_code!r}")
        check_str(reply_text, "reply_text")
        check_bool(drain, "drain")
        if self._state in (_CLOSING, _CLOSED):
            raise ChannelWrongStateError(f"channel {self.channel_number} is {self._state}")
        done = self.when_closed().addCallback(lambda _: None)
        reason = ChannelClosedByClient(reply_code, reply_text)
        if drain and (self._current is not None or self._queue):
            self._state = _CLOSING  # frames are still handled: see _on_frame
            self._drain_reason = reason
        else:
            self._local_close(reason, send_close=True)
        return done

    def _local_close(self, reason: Exception, *, send_close: bool) -> None:
        """Start closing from our side: fail everything, send Channel.Close (also when
        a draining close was waiting: an error ends the wait)."""
        if self._state is _CLOSED or (self._state is _CLOSING and self._drain_reason is None):
            return
        self._begin_close(reason, send_close=send_close)

    def _begin_close(self, reason: Exception, *, send_close: bool) -> None:
        self._drain_reason = None
        self._state = _CLOSING
        self._reason = reason
        self._fail_pending(reason)
        if send_close:
            code, text = (
                (reason.reply_code, reason.reply_text)
                if isinstance(reason, ChannelClosedByClient)
                else (200, f"closing after error: {reason}"[:255])
            )
            self.connection._write(
                _encode_method_frame(self.channel_number, spec.Channel.Close(code, text, 0, 0))
            )
            timeout = self.connection.rpc_timeout
            if timeout is not None and timeout > 0:
                self._close_timer = self.connection.clock.callLater(timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        """No CloseOk in time: close anyway, keeping the number until the broker answers."""
        self._close_timer = None
        self.connection._retire_channel_number(self.channel_number)
        self._finish_close()

    def _fail_pending(self, reason: Exception) -> None:
        current, self._current = self._current, None
        pending = [current, *self._queue] if current is not None else list(self._queue)
        self._queue = deque()
        self._queued_writes = 0
        for rpc in pending:
            if rpc.timer is not None:
                rpc.timer.cancel()
                rpc.timer = None
            # Cancelled or timed-out requests have failed already.
            if rpc.deferred is not None and not rpc.deferred.called:
                rpc.deferred.errback(reason)
        unconfirmed, self._unconfirmed = self._unconfirmed, deque()
        self._first_seq = self._publish_seq + 1
        self._unconfirmed_n = 0
        self._returned.clear()
        for entry in unconfirmed:
            if entry is not None:
                # Each gets its own error, carrying its message to publish again.
                entry[0].errback(
                    UnconfirmedPublishError.wrap(reason, PublishedMessage(*entry[1:]))
                )
        consumers, self._consumers = self._consumers, {}
        for consumer in consumers.values():
            if isinstance(consumer, ConsumerQueue):
                consumer.close(None if isinstance(reason, ChannelClosedByClient) else reason)
        self._content_method = self._content_props = None
        self._parts = []

    def _finish_close(self, reason: Exception | None = None) -> None:
        """The channel is closed: fail what is pending, then tell the listeners."""
        if self._state is _CLOSED:
            return
        if reason is not None:
            self._reason = reason
        assert self._reason is not None
        self._state = _CLOSED
        self._drain_reason = None
        if self._close_timer is not None:
            if self._close_timer.active():
                self._close_timer.cancel()
            self._close_timer = None
        self.connection._forget_channel(self.channel_number)
        reason = self._reason
        self._fail_pending(reason)
        self._announce_closed(reason)

    def _on_connection_closed(self, reason: Exception) -> None:
        """The connection is gone: fail everything with its reason."""
        keep = self._state is _CLOSING and self._reason is not None
        self._finish_close(None if keep else reason)

    # ------------------------------------------------------------------
    # Incoming frames
    # ------------------------------------------------------------------

    def _on_frame(self, frame: codec.Frame) -> None:
        kind = type(frame)
        if self._state is _CLOSING and self._drain_reason is None:
            if kind is _MethodFrame:
                method = frame.method  # type: ignore[union-attr]
                if type(method) is spec.Channel.CloseOk:
                    self._finish_close()
                elif type(method) is spec.Channel.Close:
                    # Both sides closed at once: answer, and keep waiting for the
                    # CloseOk to our Close so the channel number is not reused early.
                    self.connection._write(
                        _encode_method_frame(self.channel_number, spec.Channel.CloseOk())
                    )
            return
        if kind is _MethodFrame:
            if self._content_method is not None:
                raise UnexpectedFrameError(
                    f"method frame on channel {self.channel_number} while content was expected"
                )
            method = frame.method  # type: ignore[union-attr]
            if method.has_content:
                self._content_method = method
                return
            self._on_method(frame)  # type: ignore[arg-type]
        elif kind is _HeaderFrame:
            if self._content_method is None or self._content_props is not None:
                raise UnexpectedFrameError(
                    f"content header on channel {self.channel_number} without a method"
                )
            size = frame.body_size  # type: ignore[union-attr]
            if size == 0:
                method = self._content_method
                self._content_method = None
                self._on_content(method, frame.properties, _EMPTY)  # type: ignore[union-attr]
                return
            self._content_props = frame.properties  # type: ignore[union-attr]
            self._remaining = self._body_size = size
        elif kind is _BodyFrame:
            props = self._content_props
            if props is None:
                raise UnexpectedFrameError(
                    f"content body on channel {self.channel_number} without a header"
                )
            fragment = frame.fragment  # type: ignore[union-attr]
            remaining = self._remaining - len(fragment)
            if remaining > 0:
                self._remaining = remaining
                self._parts.append(fragment)
                return
            if remaining < 0:
                size = self._body_size
                raise BodyTooLongError(size - self._remaining + len(fragment), size)
            if self._parts:
                self._parts.append(fragment)
                body = _EMPTY.join(self._parts)
                self._parts = []
            else:
                body = fragment
            content_method = self._content_method
            assert content_method is not None
            self._content_method = self._content_props = None
            self._on_content(content_method, props, body)
        else:
            raise UnexpectedFrameError(f"{frame!r} on channel {self.channel_number}")

    def _on_content(self, method: spec.Method, props: spec.BasicProperties, body: bytes) -> None:
        if type(method) is _Deliver:
            consumer = self._consumers.get(method.consumer_tag)
            if consumer is None:
                _log.warn(
                    "Delivery for unknown consumer {tag!r} on channel {n}; dropped",
                    tag=method.consumer_tag,
                    n=self.channel_number,
                )
            elif type(consumer) is ConsumerQueue:
                consumer.put(ReceivedMessage(self, method, props, body))
            else:
                try:
                    consumer(self, method, props, body)  # type: ignore[operator]
                except Exception:
                    _log.failure("on_message_callback {cb!r} failed", cb=consumer)
        elif type(method) is spec.Basic.GetOk:
            rpc = self._current
            if rpc is None or spec.Basic.GetOk not in rpc.replies:
                raise UnexpectedFrameError("Basic.GetOk without Basic.Get")
            if rpc.abandoned and rpc.requeue_if_abandoned:
                # Nobody waits for this message any more: give it back.
                self.connection._write(
                    _encode_method_frame(
                        self.channel_number,
                        spec.Basic.Reject(method.delivery_tag, True),
                    )
                )
            self._on_reply(
                _MethodFrame(self.channel_number, method),
                ReceivedMessage(self, method, props, body),
            )
        elif type(method) is spec.Basic.Return:
            self._on_return(ReturnedMessage(method, props, body))
        else:  # pragma: no cover - the codec only gives content to these three
            raise UnexpectedFrameError(f"unexpected content for {method.NAME}")

    def _on_method(self, frame: _AnyFrame) -> None:
        method = frame.method
        kind = type(method)
        if kind is _Ack:
            self._on_confirm(method.delivery_tag, method.multiple, method)  # type: ignore[attr-defined]
            if self._confirm_callbacks:
                self._confirmed(frame)
            return
        rpc = self._current
        if rpc is not None and kind in rpc.replies:
            self._on_reply(frame)
            return
        handler = _BROKER_METHODS.get(kind)
        if handler is None:
            raise UnexpectedFrameError(
                f"unexpected {method.NAME} on channel {self.channel_number}"
            )
        handler(self, frame)

    def _on_broker_close(self, frame: _AnyFrame) -> None:
        method: Any = frame.method
        reason = ChannelClosedByBroker(method.reply_code, method.reply_text)
        self.connection._write(_encode_method_frame(self.channel_number, spec.Channel.CloseOk()))
        self._finish_close(reason)

    def _on_broker_cancel(self, frame: _AnyFrame) -> None:
        method: Any = frame.method
        tag = method.consumer_tag
        consumer = self._consumers.pop(tag, None)
        if not method.nowait:
            self.connection._write(
                _encode_method_frame(self.channel_number, spec.Basic.CancelOk(tag))
            )
        if isinstance(consumer, ConsumerQueue):
            consumer.close(ConsumerCancelled(f"the broker cancelled consumer {tag!r}"))
        for cb in list(self._cancel_callbacks):
            try:
                cb(frame)
            except Exception:
                _log.failure("on-cancel callback {cb!r} failed", cb=cb)

    def _on_broker_flow(self, frame: _AnyFrame) -> None:
        active = bool(frame.method.active)  # type: ignore[attr-defined]
        self.flow_active = active
        self.connection._write(
            _encode_method_frame(self.channel_number, spec.Channel.FlowOk(active))
        )
        for cb in list(self._flow_callbacks):
            try:
                cb(active)
            except Exception:
                _log.failure("on-flow callback {cb!r} failed", cb=cb)

    def _on_nack(self, frame: _AnyFrame) -> None:
        method: Any = frame.method
        self._on_confirm(method.delivery_tag, method.multiple, method)
        if self._confirm_callbacks:
            self._confirmed(frame)

    def _on_return(self, message: ReturnedMessage) -> None:
        if self._unconfirmed_n:
            method: Any = message.method
            # Body and properties tell which publish came back; a broker that edits
            # the properties on the way in (message interceptors adding a header)
            # must not make an unroutable publish look confirmed, so failing that,
            # the oldest publish with the same exchange, routing key and body.
            loose = None
            for seq, entry in enumerate(self._unconfirmed, self._first_seq):
                if (
                    entry is None
                    or not entry[5]
                    or seq in self._returned
                    or entry[1] != method.exchange
                    or entry[2] != method.routing_key
                ):
                    continue
                if _same_content(entry[3], entry[4], message):
                    loose = seq
                    break
                if loose is None and bytes(entry[3]) == message.body:
                    loose = seq
            if loose is not None:
                self._returned[loose] = message
        for cb in list(self._return_callbacks):
            try:
                cb(self, message.method, message.properties, message.body)
            except Exception:
                _log.failure("on-return callback {cb!r} failed", cb=cb)

    def _on_confirm(self, tag: int, multiple: bool, method: spec.Method) -> None:
        """Settle the publishes a ``Basic.Ack`` or ``Basic.Nack`` covers."""
        unconfirmed = self._unconfirmed
        first = self._first_seq
        if multiple:
            count = min(tag - first + 1, len(unconfirmed))
            if count <= 0:
                return
            popleft = unconfirmed.popleft
            settled = [popleft() for _ in range(count)]
            self._first_seq = first + count
        else:
            index = tag - first
            if not 0 <= index < len(unconfirmed) or unconfirmed[index] is None:
                return
            settled = [unconfirmed[index]]
            unconfirmed[index] = None
            first = tag  # the sequence number of settled[0]
        while unconfirmed and unconfirmed[0] is None:
            unconfirmed.popleft()
            self._first_seq += 1
        if type(method) is _Ack and not self._returned:
            # The common case: acks, no returns pending.
            live = [entry for entry in settled if entry is not None]
            self._unconfirmed_n -= len(live)  # before callbacks, which may look at it
            for done in live:
                done[0].callback(method)
            return
        nack = type(method) is not _Ack
        returned = self._returned
        self._unconfirmed_n -= sum(entry is not None for entry in settled)
        for seq, entry in enumerate(settled, first):
            if entry is None:
                continue
            if nack:
                returned.pop(seq, None)
                entry[0].errback(NackError([PublishedMessage(*entry[1:])]))
            elif returned and seq in returned:
                entry[0].errback(UnroutableError([returned.pop(seq)]))
            else:
                entry[0].callback(method)

    # ------------------------------------------------------------------
    # Publishing
    # ------------------------------------------------------------------

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | bytearray | memoryview | str,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> Deferred[Any]:
        """Publish a message.

        :param body: ``bytes``, ``bytearray``, ``memoryview`` or ``str`` (sent as UTF-8).
        :returns: outside confirm mode, a shared already-fired Deferred (nothing
            to wait for); in confirm mode, a Deferred that fires with the
            ``Basic.Ack`` or fails with
            :class:`~txamqp091.exceptions.NackError`,
            :class:`~txamqp091.exceptions.UnroutableError` or the error that
            closed the channel or connection.
        :raises TypeError, ValueError: for bad arguments, before anything is sent.
        :raises ChannelWrongStateError: if the channel is not open.
        """
        if self._state is not _OPEN:
            self._check_open()
        if type(body) is not bytes:
            if isinstance(body, str):
                body = body.encode("utf-8")
            elif not isinstance(body, bytearray | memoryview):
                raise TypeError(
                    f"body must be bytes, bytearray, memoryview or str, not {type(body).__name__}"
                )
        if properties is not None and not isinstance(properties, spec.BasicProperties):
            raise TypeError(
                f"properties must be BasicProperties or None, not {type(properties).__name__}"
            )
        if type(mandatory) is not bool:
            check_bool(mandatory, "mandatory")
        method = self._last_publish
        if (
            method is None
            or method.routing_key != routing_key
            or method.exchange != exchange
            or method.mandatory is not mandatory
        ):
            # Publishing to the same place again reuses the encoded-once method.
            method = self._last_publish = _Publish(0, exchange, routing_key, mandatory, False)
        connection = self.connection
        data = _encode_message(self.channel_number, method, properties, body, connection.frame_max)
        size = len(body) if type(body) is not memoryview else body.nbytes
        room = connection.frame_max - 8
        frames = 3 if 0 < size <= room else 2 + -(-size // room)
        if self._select_queued or self._queued_writes:
            # Behind a Confirm.Select not yet sent, and behind publishes queued
            # there: the broker numbers confirms in wire order.
            queued = _Rpc(data, (), None, None)
            queued.frames = frames
            self._queue.append(queued)
            self._queued_writes += 1
        else:
            connection._write(data, frames)
        if not self._confirming and not self._select_queued:
            return PUBLISHED
        self._publish_seq += 1
        if not self._per_publish:
            return PUBLISHED
        self._unconfirmed_n += 1
        d: Deferred[spec.Method] = Deferred()
        self._unconfirmed.append((d, exchange, routing_key, body, properties, mandatory))
        return d

    def confirm_delivery(
        self, *, per_publish: bool = True
    ) -> Deferred[_MethodFrame[spec.Confirm.SelectOk]]:
        """Turn on publisher confirms (``Confirm.Select``).

        Publishes made after this call, even before the reply, are confirmed.
        Cancelling the returned Deferred does not undo the request.

        :param per_publish: ``False`` for a face that hands the broker's Ack/Nack
            frames to the application itself (:meth:`add_on_confirm_callback`):
            ``basic_publish`` then returns the already-fired ``PUBLISHED`` and keeps
            nothing per message (no ``NackError``/``UnroutableError`` either).
        :returns: a Deferred firing with the ``Confirm.SelectOk`` frame.
        """
        check_bool(per_publish, "per_publish")
        self._check_open()
        if per_publish is not self._per_publish and (self._confirming or self._select_queued):
            raise ValueError("per_publish cannot change once confirms are on")
        self._per_publish = per_publish

        def now_confirming() -> None:
            self._confirming = True
            self._select_queued = False

        rpc = self._make_rpc(spec.Confirm.Select(False), None)
        rpc.on_send = now_confirming
        self._select_queued = True
        self._submit(rpc)
        assert rpc.deferred is not None
        return rpc.deferred


_BROKER_METHODS: Final[dict[type[spec.Method], Callable[[Channel, _AnyFrame], None]]] = {
    spec.Channel.Close: Channel._on_broker_close,
    spec.Basic.Cancel: Channel._on_broker_cancel,
    spec.Channel.Flow: Channel._on_broker_flow,
    spec.Basic.Nack: Channel._on_nack,
}

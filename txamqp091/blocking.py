"""The Blocking face: pika's ``BlockingConnection`` and ``BlockingChannel`` over the core.

``import txamqp091 as pika`` gives these classes under pika's names. They own only a
loop (:mod:`txamqp091.blocking_loop`: a socket, a clock, ``selectors``) and the
conversion of the core's Deferreds into return values and raised exceptions; every
protocol decision is the core's (:class:`~txamqp091.protocol.AMQPProtocol`,
:class:`~txamqp091.channel.Channel`).

As in pika, message and event callbacks run only inside
:meth:`BlockingConnection.process_data_events`, :meth:`BlockingConnection.sleep`,
:meth:`BlockingChannel.start_consuming` and :meth:`BlockingChannel.consume`.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from txamqp091 import spec
from txamqp091.blocking_loop import SelectorLoop, Timer
from txamqp091.channel import Channel
from txamqp091.codec import MethodFrame
from txamqp091.connect import try_in_turn
from txamqp091.exceptions import (
    AMQPConnectionError,
    ChannelClosedByBroker,
    ChannelWrongStateError,
    ConnectionClosedByClient,
    ConnectionWrongStateError,
    DuplicateConsumerTag,
    ReentrancyError,
)
from txamqp091.exchange_type import ExchangeType
from txamqp091.parameters import ConnectionParameters, Parameters
from txamqp091.protocol import AMQPProtocol
from txamqp091.socket_connect import attach, connect_socket, tls_context

__all__ = ["BlockingChannel", "BlockingConnection"]

_log = Logger(namespace="txamqp091.blocking")

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(method: Callable[Concatenate[Any, _P], _R]) -> Callable[Concatenate[Any, _P], _R]:
    """Run *method* holding the connection's lock: one thread at a time drives the
    core, so several threads may share a connection."""

    def locked(self: Any, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        lock = self._lock
        if not lock.acquire(blocking=False):
            # Another thread drives the loop, perhaps waiting in process_data_events:
            # wake it, and it lets us in between two turns.
            connection = self if isinstance(self, BlockingConnection) else self._connection
            with connection._handoff:
                connection._lock_waiters += 1
            try:
                connection._loop.call_threadsafe(_nothing)
                lock.acquire()
            finally:
                with connection._handoff:
                    connection._lock_waiters -= 1
                    connection._handoff.notify_all()
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release()

    return cast(Callable[Concatenate[Any, _P], _R], functools.wraps(method)(locked))


_Delivery = tuple[spec.Method, spec.BasicProperties, bytes]
#: ``(method, properties, body)``, or ``(None, None, None)``; typed loosely (as pika
#: programs use it: ``method.delivery_tag`` after a ``None`` check).
_Maybe = tuple[Any, Any, Any]
OnMessage = Callable[["BlockingChannel", spec.Method, spec.BasicProperties, bytes], object]


class BlockingConnection:
    """A connection whose every call blocks until the broker has answered.

    :param parameters: a :class:`~txamqp091.ConnectionParameters` or
        :class:`~txamqp091.URLParameters`, or a sequence of them;
        ``None`` for the defaults (``localhost``). pika's order: the whole list per
        round, up to ``connection_attempts`` rounds ``retry_delay`` seconds apart (both
        from the last parameters object); a refused login or vhost ends it.
    :raises AMQPConnectionError: (or a subclass) when no attempt succeeded.
    """

    def __init__(
        self, parameters: Parameters | Sequence[Parameters] | None = None, _impl_class: Any = None
    ) -> None:
        if parameters is None:
            candidates: list[Parameters] = [ConnectionParameters()]
        elif isinstance(parameters, Parameters):
            candidates = [parameters]
        elif isinstance(parameters, Sequence) and parameters and not isinstance(parameters, str):
            candidates = list(parameters)
            for item in candidates:
                if not isinstance(item, Parameters):
                    raise TypeError(f"expected Parameters, not {type(item).__name__}")
        else:
            raise TypeError(
                "parameters must be Parameters, a non-empty sequence of them, or None, not "
                f"{type(parameters).__name__}"
            )
        self._loop = SelectorLoop()
        self._lock = self._loop.lock
        # Threads waiting for the lock while another waits in process_data_events.
        self._handoff = threading.Condition(threading.Lock())
        self._lock_waiters = 0
        self._close_reported = False
        self._pending: deque[Callable[[], object]] = deque()
        # call_later timers due, their callbacks waiting in _pending.
        self._queued_timers: set[Timer] = set()
        self._dispatch_state = threading.local()
        self._channels: dict[int, BlockingChannel] = {}
        try:
            self._impl: AMQPProtocol = self._connect_any(candidates)
        except BaseException:
            self._loop.close()
            raise
        self._impl.add_on_connection_blocked_callback(self._on_blocked)
        self._impl.add_on_connection_unblocked_callback(self._on_unblocked)
        self._blocked_callbacks: list[Callable[[BlockingConnection, Any], object]] = []
        self._unblocked_callbacks: list[Callable[[BlockingConnection, Any], object]] = []
        self._keeper: _HeartbeatKeeper | None = None
        if self._impl.heartbeat > 0:
            self._keeper = _HeartbeatKeeper(self._loop, self._impl.heartbeat / 2)
        self._impl.add_on_close_callback(self._on_closed)

    def _on_closed(self, connection: AMQPProtocol, reason: Exception) -> None:
        """However the connection ended, release the thread, the selector and the
        wake-up sockets now (the application may never call ``close()``)."""
        self._stop_keeper()
        self._loop.close()

    def _stop_keeper(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.stop()

    # -- connecting ------------------------------------------------------------------

    def _connect_any(self, candidates: list[Parameters]) -> AMQPProtocol:
        # TLS settings this face cannot use raise TypeError now, before any attempt.
        tls = [tls_context(p) for p in candidates]

        def attempt(index: int) -> Deferred[AMQPProtocol]:
            params = candidates[index]
            protocol = AMQPProtocol(params, self._loop)

            def connected(sock: Any) -> Deferred[AMQPProtocol]:
                self._transport = attach(self._loop, sock, params, protocol, tls[index])
                return protocol.ready

            connecting = connect_socket(
                self._loop, params.host, params.port, params.socket_timeout
            )
            return connecting.addCallback(connected)

        # pika's order, driven as by every face (try_in_turn), on this loop's clock.
        attempts = Deferred.fromCoroutine(try_in_turn(self._loop, candidates, attempt))
        with self._loop.lock:
            try:
                result: AMQPProtocol = self._loop.run_until(attempts)
            except AMQPConnectionError:
                raise
            except Exception as e:
                raise AMQPConnectionError(repr(e)) from e
        return result

    # -- waiting ---------------------------------------------------------------------

    def _wait(self, d: Deferred[Any]) -> Any:
        """Run the loop until *d* fires; its result, or its error raised."""
        with self._loop.lock:
            try:
                return self._loop.run_until(d)
            except BaseException:
                if not self._impl.is_open:
                    self._close_reported = True  # this error told the application
                raise

    def _drain(self) -> None:
        """Run the loop until the socket has taken everything written."""
        transport = self._transport
        while transport.buffered and not transport.disconnected:
            self._loop.poll(None)

    def _check_open(self) -> None:
        """Raise if the connection is not open: the first time after it closed
        unexpectedly, its closing error itself (``ConnectionClosedByBroker``,
        ``StreamLostError``, ``AMQPHeartbeatTimeout``…), as pika does; after that
        ``ConnectionWrongStateError``."""
        if not self._impl.is_open:
            reason = self._impl.close_reason
            if (
                reason is not None
                and not isinstance(reason, ConnectionClosedByClient)
                and not self._close_reported
            ):
                self._close_reported = True
                raise reason
            raise ConnectionWrongStateError("the connection is not open") from reason

    @property
    def _dispatching(self) -> int:
        """How deep this thread is in callback dispatch (0: not in a callback)."""
        return getattr(self._dispatch_state, "depth", 0)

    def _dispatch(self) -> bool:
        """Run the callbacks that are due; ``True`` if any ran.

        Not from inside a callback (as in pika): a callback that calls
        ``process_data_events`` or ``sleep`` processes I/O, but the next callbacks
        wait until it has returned, so they run in order and never nest.
        """
        state = self._dispatch_state
        if getattr(state, "depth", 0):
            return False
        ran = False
        state.depth = 1
        try:
            while self._pending:
                self._pending.popleft()()
                ran = True
        finally:
            state.depth = 0
        return ran

    # -- pika's API ------------------------------------------------------------------

    @_locked
    def channel(self, channel_number: int | None = None) -> BlockingChannel:
        """Open a channel (the lowest free number, or *channel_number*)."""
        self._check_open()
        impl: Channel = self._wait(self._impl.channel(channel_number))
        channel = BlockingChannel(impl, self)
        self._channels[impl.channel_number] = channel
        return channel

    @_locked
    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close the connection (and its channels) with the AMQP close handshake.

        :raises ConnectionWrongStateError: if it is already closed.
        """
        if not self._impl.is_open:
            raise ConnectionWrongStateError("the connection is already closed")
        for channel in list(self._channels.values()):
            if channel.is_open:
                channel._cancel_consumers_quietly()
        try:
            self._wait(self._impl.close(reply_code, reply_text))
        finally:
            self._stop_keeper()
            self._loop.close()

    def process_data_events(self, time_limit: float | None = 0) -> None:
        """Process I/O and run due callbacks.

        :param time_limit: return after this many seconds at most, earlier once
            something was processed; ``0`` returns as soon as possible; ``None`` blocks
            until something happens.
        """
        self._check_open()
        deadline = None if time_limit is None else time.monotonic() + time_limit
        lock = self._loop.lock
        nested = self._dispatching > 0  # from a callback: I/O only, no dispatch
        while nested or not self._pending:
            # One turn at a time under the lock: a thread waiting for the lock (to ack,
            # publish or close) wakes this one and gets the lock between two turns.
            with lock:
                if not self._impl.is_open:
                    break
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._loop.poll(left)
                if nested or (deadline is not None and time.monotonic() >= deadline):
                    break
            self._let_waiters_in()
        self._dispatch()
        if not isinstance(self._impl.close_reason, ConnectionClosedByClient):
            self._check_open()  # closed by the application from a callback: no error

    def _let_waiters_in(self) -> None:
        """Wait until the threads that asked for the lock (see ``_locked``) have it."""
        if not self._lock_waiters:
            # Read without the condition's lock: a waiter counts itself before it wakes
            # the loop, so one that woke this turn is seen here.
            return
        with self._handoff:
            while self._lock_waiters:
                self._handoff.wait(1.0)

    def sleep(self, duration: float) -> None:
        """Wait *duration* seconds while processing I/O and callbacks."""
        deadline = time.monotonic() + duration
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.process_data_events(left)

    @_locked
    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback()`` after *delay* seconds, from the loop (inside
        ``process_data_events`` and friends)."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        queued = self._queued_timers

        def due() -> None:
            queued.add(timer)
            self._pending.append(run)

        def run() -> None:
            if timer in queued:  # not removed since it fell due
                queued.discard(timer)
                callback()

        timer = self._loop.callLater(delay, due)
        return timer

    @_locked
    def remove_timeout(self, timeout_id: Timer) -> None:
        """Cancel a :meth:`call_later` timer, also one due whose callback has not run."""
        if timeout_id.active():
            timeout_id.cancel()
        self._queued_timers.discard(timeout_id)

    def add_callback_threadsafe(self, callback: Callable[[], object]) -> None:
        """Have ``callback()`` run by the connection's thread at its next loop turn; safe
        from any thread."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        if not self._impl.is_open:
            raise ConnectionWrongStateError("the connection is closed")
        self._loop.call_threadsafe(lambda: self._pending.append(callback))

    def add_on_connection_blocked_callback(
        self, callback: Callable[[BlockingConnection, Any], object]
    ) -> None:
        """Call ``callback(connection, method_frame)`` when the broker blocks publishers."""
        self._blocked_callbacks.append(callback)

    def add_on_connection_unblocked_callback(
        self, callback: Callable[[BlockingConnection, Any], object]
    ) -> None:
        """Call ``callback(connection, method_frame)`` when the broker unblocks them."""
        self._unblocked_callbacks.append(callback)

    def _on_blocked(self, _: AMQPProtocol, method: spec.Method) -> None:
        frame = MethodFrame(0, method)
        for cb in list(self._blocked_callbacks):
            self._pending.append(lambda cb=cb: cb(self, frame))  # type: ignore[misc]

    def _on_unblocked(self, _: AMQPProtocol, method: spec.Method) -> None:
        frame = MethodFrame(0, method)
        for cb in list(self._unblocked_callbacks):
            self._pending.append(lambda cb=cb: cb(self, frame))  # type: ignore[misc]

    @_locked
    def update_secret(self, new_secret: str, reason: str) -> None:
        """Replace the credentials' secret (``Connection.UpdateSecret``)."""
        self._check_open()
        self._wait(self._impl.update_secret(new_secret, reason))

    @property
    def is_open(self) -> bool:
        """``True`` while the connection is open."""
        return self._impl.is_open

    @property
    def is_closed(self) -> bool:
        """``True`` once it is closed."""
        return self._impl.is_closed

    @property
    def basic_nack_supported(self) -> bool:
        """Whether the broker supports ``Basic.Nack``."""
        return self._impl.basic_nack_supported

    @property
    def consumer_cancel_notify_supported(self) -> bool:
        """Whether the broker sends ``Basic.Cancel`` to consumers."""
        return self._impl.consumer_cancel_notify_supported

    @property
    def exchange_exchange_bindings_supported(self) -> bool:
        """Whether the broker supports exchange-to-exchange bindings."""
        return self._impl.exchange_exchange_bindings_supported

    @property
    def publisher_confirms_supported(self) -> bool:
        """Whether the broker supports publisher confirms."""
        return self._impl.publisher_confirms_supported

    # pika's older names.
    basic_nack = basic_nack_supported
    consumer_cancel_notify = consumer_cancel_notify_supported
    exchange_exchange_bindings = exchange_exchange_bindings_supported
    publisher_confirms = publisher_confirms_supported

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, exc_type: Any, value: Any, traceback: Any) -> None:
        if self.is_open:
            self.close()

    def __repr__(self) -> str:
        return f"<BlockingConnection {self._impl!r}>"


class _HeartbeatKeeper:
    """Keeps the connection alive while the application is away from the library.

    pika sends heartbeats only while the application is inside one of its calls, so a
    long message callback or a long pause between publishes loses the connection.
    This daemon thread wakes every half heartbeat interval and, when no other thread
    is driving the connection (the lock is free), runs one non-blocking turn of the
    loop: it reads what arrived (the broker's heartbeats), sends ours when due, and
    queues deliveries for the application's next call. It never runs application
    callbacks.
    """

    def __init__(self, loop: SelectorLoop, interval: float) -> None:
        # Weakly: a connection the application drops without close() must not be
        # kept alive (with its socket and the broker's connection) by this thread.
        self._loop = weakref.ref(loop)
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="txamqp091-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            loop = self._loop()
            if loop is None:
                return  # the connection was dropped and collected
            if not loop.lock.acquire(blocking=False):
                continue  # another thread is driving the loop: it keeps us alive
            try:
                if not self._stopped.is_set():
                    loop.poll(0)
            except Exception:  # pragma: no cover - the next call reports the state
                pass
            finally:
                loop.lock.release()
            del loop

    def stop(self) -> None:
        """Stop the thread (waits for it unless called from it)."""
        self._stopped.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()


def _nothing() -> None:
    """A callback that does nothing (wakes ``process_data_events``)."""


class _Consumer:
    """A :meth:`BlockingChannel.basic_consume` consumer: its callback, and the
    deliveries received but not yet handed to it (dispatch happens only inside
    ``process_data_events`` and friends)."""

    __slots__ = ("auto_ack", "callback", "drain", "waiting")

    def __init__(self, callback: OnMessage, auto_ack: bool) -> None:
        self.callback = callback
        self.auto_ack = auto_ack
        self.waiting: deque[_Maybe] = deque()
        #: Set by ``stop_consuming`` on an auto-ack consumer: what it received is
        #: still given to its callback (the broker forgot those messages).
        self.drain = False


class _ConsumeGenerator:
    """The state of one :meth:`BlockingChannel.consume` generator."""

    def __init__(self, tag: str, auto_ack: bool, params: tuple[Any, ...]) -> None:
        self.tag = tag
        self.auto_ack = auto_ack
        self.params = params
        self.messages: deque[_Delivery] = deque()


class BlockingChannel:
    """A channel whose every call blocks until done; made by
    :meth:`BlockingConnection.channel`."""

    def __init__(self, channel_impl: Channel, connection: BlockingConnection) -> None:
        self._impl = channel_impl
        self._connection = connection
        self._lock = connection._lock
        self._close_reported = False
        channel_impl.add_on_cancel_callback(self._on_broker_cancel)
        # A close wakes a process_data_events waiting for deliveries of this channel.
        channel_impl.add_on_close_callback(lambda *_: connection._pending.append(_nothing))
        self._consumers: dict[str, _Consumer] = {}
        self._generator: _ConsumeGenerator | None = None
        self._consuming = False
        self._stop_requested = False

    def __repr__(self) -> str:
        return f"<BlockingChannel number={self.channel_number} {self._impl!r}>"

    # -- state ---------------------------------------------------------------------

    @property
    def channel_number(self) -> int:
        """The channel's number."""
        return self._impl.channel_number

    @property
    def connection(self) -> BlockingConnection:
        """The connection."""
        return self._connection

    @property
    def is_open(self) -> bool:
        """``True`` while open."""
        return self._impl.is_open

    @property
    def is_closed(self) -> bool:
        """``True`` once closed."""
        return self._impl.is_closed

    @property
    def consumer_tags(self) -> list[str]:
        """Tags of the active consumers."""
        return list(self._consumers)

    def _wait(self, d: Deferred[Any]) -> Any:
        try:
            return self._connection._wait(d)
        except BaseException:
            if not self._impl.is_open:
                self._close_reported = True  # this error told the application
            raise

    def _check(self) -> None:
        """Raise if the channel is not open: the first time after the broker closed it,
        its ``ChannelClosedByBroker``, as pika does; after that
        ``ChannelWrongStateError``. The connection is checked first."""
        self._connection._check_open()
        if not self._impl.is_open:
            reason = self._impl.close_reason
            if isinstance(reason, ChannelClosedByBroker) and not self._close_reported:
                self._close_reported = True
                raise reason
            raise ChannelWrongStateError(f"channel {self.channel_number} is closed") from reason

    def __enter__(self) -> BlockingChannel:
        return self

    def __exit__(self, exc_type: Any, value: Any, traceback: Any) -> None:
        if self.is_open:
            self.close()

    @_locked
    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Close the channel."""
        self._check()
        self._cancel_consumers_quietly()
        self._connection._wait(self._impl.close(reply_code, reply_text))
        self._connection._channels.pop(self.channel_number, None)

    def add_on_return_callback(
        self,
        callback: Callable[[BlockingChannel, spec.Method, spec.BasicProperties, bytes], object],
    ) -> None:
        """Call ``callback(channel, method, properties, body)`` for each message the broker
        returns (``Basic.Return``), inside ``process_data_events`` and friends."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        pending = self._connection._pending

        def returned(_: Channel, method: spec.Method, properties: Any, body: bytes) -> None:
            pending.append(lambda: callback(self, method, properties, body))

        self._impl.add_on_return_callback(returned)

    def add_on_cancel_callback(self, callback: Callable[[Any], object]) -> None:
        """Call ``callback(method_frame)`` when the broker cancels a consumer (its
        queue was deleted, for instance), inside ``process_data_events`` and friends."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        pending = self._connection._pending
        self._impl.add_on_cancel_callback(lambda frame: pending.append(lambda: callback(frame)))

    def _on_broker_cancel(self, frame: Any) -> None:
        tag = frame.method.consumer_tag
        self._consumers.pop(tag, None)
        generator = self._generator
        if generator is not None and generator.tag == tag:
            self._generator = None

    @_locked
    def flow(self, active: bool) -> bool:
        """``Channel.Flow`` (RabbitMQ refuses ``flow(False)`` by closing the connection).

        :returns: the broker's ``active`` answer.
        """
        self._check()
        frame = self._wait(self._impl.flow(active))
        return bool(frame.method.active)

    def _cancel_consumers_quietly(self) -> None:
        self._consumers.clear()
        self._generator = None

    # -- consuming -------------------------------------------------------------------

    @_locked
    def basic_consume(
        self,
        queue: str,
        on_message_callback: OnMessage,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> str:
        """Start a consumer; ``on_message_callback(channel, method, properties, body)``
        runs inside ``start_consuming`` / ``process_data_events``.

        :returns: the consumer tag.
        """
        self._check()
        if not callable(on_message_callback):
            raise TypeError("on_message_callback must be callable")
        if consumer_tag is not None and consumer_tag in self._consumers:
            raise DuplicateConsumerTag(consumer_tag)
        pending = self._connection._pending
        consumer = _Consumer(on_message_callback, auto_ack)

        def run() -> None:
            if consumer.waiting and (consumer.drain or self._consumers.get(tag) is consumer):
                method, properties, body = consumer.waiting.popleft()
                consumer.callback(self, method, properties, body)

        def delivered(_: Channel, method: Any, properties: Any, body: bytes) -> None:
            consumer.waiting.append((method, properties, body))
            pending.append(run)

        tag: str = self._wait(
            self._impl.basic_consume(
                queue, delivered, auto_ack, exclusive, consumer_tag, arguments
            )
        )
        self._consumers[tag] = consumer
        return tag

    @_locked
    def basic_cancel(self, consumer_tag: str) -> list[tuple[BlockingChannel, Any, Any, bytes]]:
        """Cancel a consumer. As in pika, deliveries received for it but not yet given
        to its callback are not given to it: for a consumer with ``auto_ack=False``
        they are rejected with requeue (the broker delivers them again); for an
        ``auto_ack=True`` consumer (whose messages the broker already forgot) they
        are returned.

        An unknown tag (already cancelled, by the application or the broker) is
        ignored with a warning, as in pika; the ``consume()`` generator's tag ends the
        generator as :meth:`cancel` does.

        :returns: ``[(channel, method, properties, body), ...]`` for an ``auto_ack``
            consumer, else ``[]``.
        """
        self._check()
        generator = self._generator
        if generator is not None and generator.tag == consumer_tag:
            self.cancel()
            return []
        if consumer_tag not in self._consumers:
            _log.warn(
                "basic_cancel of an unknown consumer {tag!r} (already cancelled?)",
                tag=consumer_tag,
            )
            return []
        consumer = self._cancel(consumer_tag)
        return self._hand_back(consumer) if consumer is not None else []

    def _cancel(self, consumer_tag: str) -> _Consumer | None:
        self._check()
        self._wait(self._impl.basic_cancel(consumer_tag))
        return self._consumers.pop(consumer_tag, None)

    def _hand_back(self, consumer: _Consumer) -> list[tuple[BlockingChannel, Any, Any, bytes]]:
        """Take the deliveries *consumer* has not seen: returned when auto-acked,
        else rejected with requeue, so none stays unacknowledged and unseen."""
        waiting = list(consumer.waiting)
        consumer.waiting.clear()
        if consumer.auto_ack:
            return [(self, method, properties, body) for method, properties, body in waiting]
        if self._impl.is_open:
            for method, _, _ in waiting:
                self._impl.basic_reject(method.delivery_tag, True)
        return []

    def start_consuming(self) -> None:
        """Run consumer callbacks until :meth:`stop_consuming` or no consumer is left.

        :raises ReentrancyError: when called from a callback.
        """
        if self._connection._dispatching:
            raise ReentrancyError("start_consuming may not be called from a callback")
        self._stop_requested = False
        self._connection._dispatch()  # callbacks already due (a cancel, deliveries)
        while self._consumers and not self._stop_requested:
            self._check()
            self._connection.process_data_events(time_limit=None)

    @_locked
    def stop_consuming(self, consumer_tag: str | None = None) -> None:
        """Cancel one consumer, or all, and make ``start_consuming`` return.

        Deliveries received but not yet dispatched are rejected with requeue for
        ``auto_ack=False`` consumers (as pika); for ``auto_ack=True`` consumers they
        are still given to the callback before ``start_consuming`` returns (pika drops
        them: the broker already forgot them, so they would be lost)."""
        tags = [consumer_tag] if consumer_tag is not None else list(self._consumers)
        for tag in tags:
            if tag in self._consumers and self.is_open:
                consumer = self._cancel(tag)
                if consumer is not None:
                    if consumer.auto_ack:
                        consumer.drain = True
                    else:
                        self._hand_back(consumer)
        self._stop_requested = True
        # From another thread, start_consuming may be waiting in the loop: wake it.
        self._connection._pending.append(_nothing)
        if self._connection.is_open:
            self._connection._loop.call_threadsafe(_nothing)

    def consume(
        self,
        queue: str,
        auto_ack: bool = False,
        exclusive: bool = False,
        arguments: dict[str, Any] | None = None,
        inactivity_timeout: float | None = None,
    ) -> Generator[_Maybe, None, None]:
        """Yield ``(method, properties, body)`` for each message of *queue*; with
        *inactivity_timeout*, ``(None, None, None)`` after that many seconds without
        one. :meth:`cancel` ends it."""
        if inactivity_timeout is not None and (
            isinstance(inactivity_timeout, bool)
            or not isinstance(inactivity_timeout, (int, float))
            or inactivity_timeout < 0
        ):
            raise ValueError(
                f"inactivity_timeout must be None or >= 0, not {inactivity_timeout!r}"
            )
        params = (queue, auto_ack, exclusive)
        with self._lock:
            self._check()
            if self._generator is not None and self._generator.params != params:
                raise ValueError(
                    "consume() with other parameters while a consume generator is active: "
                    f"was {self._generator.params!r}, now {params!r}; cancel() it first"
                )
            if self._generator is None:
                generator = _ConsumeGenerator("", auto_ack, params)

                def delivered(_: Channel, method: Any, properties: Any, body: bytes) -> None:
                    generator.messages.append((method, properties, body))
                    # Something to process: ends the wait in process_data_events.
                    self._connection._pending.append(_nothing)

                tag = self._wait(
                    self._impl.basic_consume(
                        queue, delivered, auto_ack, exclusive, None, arguments
                    )
                )
                generator.tag = tag
                self._generator = generator
            generator = self._generator
        while self._generator is generator:
            if generator.messages:
                yield generator.messages.popleft()
                continue
            self._check()  # a channel or connection closed meanwhile: raised here
            deadline = (
                None if inactivity_timeout is None else time.monotonic() + inactivity_timeout
            )
            while not generator.messages and self._generator is generator:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._connection.process_data_events(time_limit=left)
                self._check()
            if not generator.messages and self._generator is generator:
                yield (None, None, None)

    def get_waiting_message_count(self) -> int:
        """How many messages the consume generator holds, not yet yielded."""
        return len(self._generator.messages) if self._generator is not None else 0

    @_locked
    def cancel(self) -> int:
        """End the consume generator, requeueing the messages it holds.

        :returns: how many messages were requeued.
        """
        generator = self._generator
        if generator is None:
            return 0
        self._generator = None
        if self.is_open:
            self._wait(self._impl.basic_cancel(generator.tag))
        count = 0
        if not generator.auto_ack and generator.messages and self.is_open:
            for method, _, _ in generator.messages:
                self._impl.basic_nack(method.delivery_tag, False, True)  # type: ignore[attr-defined]
                count += 1
        generator.messages.clear()
        return count

    @_locked
    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Acknowledge a delivery."""
        self._check()
        self._impl.basic_ack(delivery_tag, multiple)

    @_locked
    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Reject deliveries."""
        self._check()
        self._impl.basic_nack(delivery_tag, multiple, requeue)

    @_locked
    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        """Reject a delivery."""
        self._check()
        self._impl.basic_reject(delivery_tag, requeue)

    @_locked
    def basic_get(self, queue: str, auto_ack: bool = False) -> _Maybe:
        """Fetch one message: ``(method, properties, body)``, or ``(None, None, None)``."""
        self._check()
        message = self._wait(self._impl.basic_get(queue, auto_ack))
        if message is None:
            return (None, None, None)
        return (message.method, message.properties, message.body)

    # -- publishing ------------------------------------------------------------------

    @_locked
    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish; in confirm mode, wait for the confirm.

        :raises UnroutableError: (confirm mode) the mandatory message was returned.
        :raises NackError: (confirm mode) the broker refused it.
        """
        self._check()
        d = self._impl.basic_publish(exchange, routing_key, body, properties, mandatory)
        if self._impl.confirming:
            self._wait(d)
        elif self._connection._transport.buffered:
            # As pika, return once the socket has taken the message (bounded memory).
            self._connection._drain()

    @_locked
    def confirm_delivery(self) -> None:
        """Turn on publisher confirms: ``basic_publish`` then waits for each."""
        self._check()
        self._wait(self._impl.confirm_delivery())

    @_locked
    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False
    ) -> None:
        """Set the prefetch window."""
        self._check()
        self._wait(self._impl.basic_qos(prefetch_size, prefetch_count, global_qos))

    @_locked
    def basic_recover(self, requeue: bool = False) -> None:
        """Redeliver unacknowledged messages."""
        self._check()
        self._wait(self._impl.basic_recover(requeue))

    # -- topology (the reply method frame is returned, as in pika) -------------------

    @_locked
    def exchange_declare(
        self,
        exchange: str,
        exchange_type: str | ExchangeType = "direct",
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Any:
        """Declare an exchange; returns the ``Exchange.DeclareOk`` frame."""
        self._check()
        return self._wait(
            self._impl.exchange_declare(
                exchange, exchange_type, passive, durable, auto_delete, internal, arguments
            )
        )

    @_locked
    def exchange_delete(self, exchange: str | None = None, if_unused: bool = False) -> Any:
        """Delete an exchange."""
        self._check()
        return self._wait(self._impl.exchange_delete(exchange, if_unused))

    @_locked
    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> Any:
        """Bind an exchange to another."""
        self._check()
        return self._wait(self._impl.exchange_bind(destination, source, routing_key, arguments))

    @_locked
    def exchange_unbind(
        self,
        destination: str | None = None,
        source: str | None = None,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> Any:
        """Remove an exchange-to-exchange binding."""
        self._check()
        return self._wait(self._impl.exchange_unbind(destination, source, routing_key, arguments))

    @_locked
    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Any:
        """Declare a queue; returns the ``Queue.DeclareOk`` frame (``.method.queue``)."""
        self._check()
        return self._wait(
            self._impl.queue_declare(queue, passive, durable, exclusive, auto_delete, arguments)
        )

    @_locked
    def queue_delete(self, queue: str, if_unused: bool = False, if_empty: bool = False) -> Any:
        """Delete a queue."""
        self._check()
        return self._wait(self._impl.queue_delete(queue, if_unused, if_empty))

    @_locked
    def queue_purge(self, queue: str) -> Any:
        """Purge a queue."""
        self._check()
        return self._wait(self._impl.queue_purge(queue))

    @_locked
    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Any:
        """Bind a queue."""
        self._check()
        return self._wait(self._impl.queue_bind(queue, exchange, routing_key, arguments))

    @_locked
    def queue_unbind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Any:
        """Unbind a queue."""
        self._check()
        return self._wait(self._impl.queue_unbind(queue, exchange, routing_key, arguments))

    @_locked
    def tx_select(self) -> Any:
        """Turn on transactions."""
        self._check()
        return self._wait(self._impl.tx_select())

    @_locked
    def tx_commit(self) -> Any:
        """Commit."""
        self._check()
        return self._wait(self._impl.tx_commit())

    @_locked
    def tx_rollback(self) -> Any:
        """Roll back."""
        self._check()
        return self._wait(self._impl.tx_rollback())

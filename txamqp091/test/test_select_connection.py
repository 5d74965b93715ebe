"""Tests of the Select face (:mod:`txamqp091.select_connection`) against the real broker.

These are plain :class:`unittest.TestCase` tests (trial runs them too): the
:class:`~txamqp091.select_connection.IOLoop` runs in the test's thread, no reactor is
involved. Every run of the loop is guarded by a timer that stops it after :data:`WAIT`
seconds and fails the test, so a hang becomes a failure, never a sleep; the tests assert
on the events their callbacks recorded once the loop has returned.

The tests of the callback API itself are face-independent mixins (``*Checks``, on
:class:`CallbackFaceTestCase`, which a face completes with a few hooks: make the loop,
run it, stop it, timers, thread-safe calls); the Select test cases below combine them
with :class:`SelectFace`, and :mod:`txamqp091.test.test_asyncio_connection` runs the same
mixins on the asyncio and Tornado faces.
"""

from __future__ import annotations

import subprocess
import threading
import time
import unittest
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import txamqp091 as pika
from txamqp091 import spec
from txamqp091.callback_connection import CallbackChannel, CallbackConnection
from txamqp091.exceptions import (
    AMQPConnectionError,
    AMQPConnectionWorkflowAborted,
    AMQPConnectionWorkflowFailed,
    AuthenticationError,
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionOpenAborted,
    ConnectionWrongStateError,
    ProbableAuthenticationError,
)
from txamqp091.select_connection import IOLoop, SelectConnection
from txamqp091.test.broker import amqp_url, ensure_broker
from txamqp091.test.integration import unique_name

#: Upper bound for one run of the IOLoop (only reached when something is broken).
WAIT = 10.0

#: A local port nothing listens on.
DEAD_PORT = 1

Done = Callable[..., None]


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl`` and return its output."""
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, check=True)
    return done.stdout


def force_close(connection_name: str) -> None:
    """Have the broker close the connection whose client-provided name is
    *connection_name* (retried until it is listed, at most 20 s of ``rabbitmqctl``)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in rabbitmqctl("list_connections", "pid", "client_properties", "-q").splitlines():
            if connection_name in line:
                rabbitmqctl("close_connection", line.split("\t")[0], "test: forced close")
                return
    raise AssertionError(f"connection {connection_name!r} never listed")


if TYPE_CHECKING:  # the mixins are test cases to the type checker only
    _TestCaseBase = unittest.TestCase
else:
    _TestCaseBase = object


class CallbackFaceTestCase(_TestCaseBase):
    """The tests of the callback API, for any face (a mixin: not a test case itself).

    A face's test case gives the hooks -- :meth:`set_up_loop` (making ``self.ioloop``,
    the loop object passed as ``custom_ioloop``), :meth:`start_loop`, :meth:`stop_loop`,
    :meth:`call_later`, :meth:`cancel_timer`, :meth:`call_threadsafe` -- and
    :attr:`connection_class`; everything else here is face-independent: guarded runs
    of the loop, connections closed at cleanup, and the queues and exchanges a test
    declares deleted at cleanup.
    """

    #: The face's connection class.
    connection_class: type[CallbackConnection]
    #: The face's loop, as given to the connection as ``custom_ioloop``.
    ioloop: Any

    def setUp(self) -> None:
        self.host, self.port = ensure_broker()
        self.set_up_loop()

    # -- what a face provides -----------------------------------------------------------

    def set_up_loop(self) -> None:
        """Make ``self.ioloop`` (closed at cleanup)."""
        raise NotImplementedError

    def start_loop(self) -> None:
        """Run the loop until :meth:`stop_loop` is called."""
        raise NotImplementedError

    def stop_loop(self) -> None:
        """Make :meth:`start_loop` return (from a callback of the loop)."""
        raise NotImplementedError

    def call_later(self, delay: float, fn: Callable[[], object]) -> Any:
        """Have the loop call ``fn()`` after *delay* seconds; return a timer handle."""
        raise NotImplementedError

    def cancel_timer(self, timer: Any) -> None:
        """Cancel a :meth:`call_later` timer (nothing if it ran)."""
        raise NotImplementedError

    def call_threadsafe(self, fn: Callable[[], object]) -> None:
        """Have the loop call ``fn()`` soon; callable from any thread."""
        raise NotImplementedError

    # -- the loop -------------------------------------------------------------------

    def run_loop(self, wait: float = WAIT) -> None:
        """Run the loop until a callback stops it; fail if the guard timer had to."""
        timed_out: list[bool] = []

        def guard() -> None:
            timed_out.append(True)
            self.stop_loop()

        timer = self.call_later(wait, guard)
        try:
            self.start_loop()
        finally:
            self.cancel_timer(timer)
        if timed_out:
            self.fail(f"the awaited event did not happen within {wait} s")

    def stop(self, *args: Any) -> None:
        """A callback that stops the loop."""
        self.stop_loop()

    def then_stop(self, fn: Callable[..., object]) -> Callable[..., None]:
        """A callback that calls ``fn(*args)``, then stops the loop."""

        def callback(*args: Any) -> None:
            fn(*args)
            self.stop_loop()

        return callback

    def call(self, start: Callable[[Done], object]) -> tuple[Any, ...]:
        """Call ``start(done)``, run the loop until ``done(*args)`` was called once, and
        return those ``args``."""
        got: list[tuple[Any, ...]] = []

        def done(*args: Any) -> None:
            got.append(args)
            self.stop_loop()

        start(done)
        self.run_loop()
        self.assertEqual(len(got), 1, got)
        return got[0]

    # -- connections ------------------------------------------------------------------

    def params(self, **kw: Any) -> pika.ConnectionParameters:
        """Parameters for the test broker (guest/guest)."""
        kw.setdefault("host", self.host)
        kw.setdefault("port", self.port)
        return pika.ConnectionParameters(**kw)

    def new_connection(self, params: Any, **kw: Any) -> Any:
        """A connection of the face on ``self.ioloop`` (callbacks in *kw*), closed at
        cleanup; ``connection.ioloop`` is ``self.ioloop``."""
        conn = self.connection_class(params, custom_ioloop=self.ioloop, **kw)  # type: ignore[call-arg]
        self.addCleanup(self.close_connection, conn)
        self.assertIs(conn.ioloop, self.ioloop)  # type: ignore[attr-defined]
        return conn

    def connect(self, **kw: Any) -> Any:
        """An open connection with ``self.params(**kw)``, closed at cleanup."""
        errors: list[BaseException] = []

        def open_error(conn: Any, error: BaseException) -> None:
            errors.append(error)
            self.stop_loop()

        conn = self.new_connection(
            self.params(**kw), on_open_callback=self.stop, on_open_error_callback=open_error
        )
        self.run_loop()
        self.assertEqual(errors, [])
        self.assertTrue(conn.is_open)
        return conn

    def close_connection(self, conn: CallbackConnection) -> None:
        """Close *conn* if it is open, running the loop until it is closed."""
        if conn.is_open:
            conn.add_on_close_callback(self.stop)
            conn.close()
            self.run_loop()

    def channel(self, conn: CallbackConnection) -> CallbackChannel:
        """An open channel on *conn*."""
        (ch,) = self.call(lambda done: conn.channel(on_open_callback=done))
        self.assertTrue(ch.is_open)
        return ch  # type: ignore[no-any-return]

    def open_channel(self, **kw: Any) -> tuple[Any, CallbackChannel]:
        """A new connection and a channel on it."""
        conn = self.connect(**kw)
        return conn, self.channel(conn)

    # -- topology -----------------------------------------------------------------------

    def queue_name(self) -> str:
        """A unique queue name, the queue deleted at cleanup."""
        name = unique_name("txamqp091-callback-q")
        self.addCleanup(self._delete, "queue", name)
        return name

    def exchange_name(self) -> str:
        """A unique exchange name, the exchange deleted at cleanup."""
        name = unique_name("txamqp091-callback-x")
        self.addCleanup(self._delete, "exchange", name)
        return name

    def declare_queue(self, ch: CallbackChannel, **kw: Any) -> str:
        """Declare a uniquely named queue (deleted at cleanup)."""
        name = self.queue_name()
        (frame,) = self.call(lambda done: ch.queue_declare(name, callback=done, **kw))
        self.assertIsInstance(frame.method, spec.Queue.DeclareOk)
        return name

    def message_count(self, ch: CallbackChannel, queue: str) -> int:
        """The number of ready messages in *queue* (a passive declare)."""
        (frame,) = self.call(lambda done: ch.queue_declare(queue, passive=True, callback=done))
        self.assertIsInstance(frame.method, spec.Queue.DeclareOk)
        return frame.method.message_count  # type: ignore[no-any-return]

    @staticmethod
    def _delete(kind: str, name: str) -> None:
        with pika.BlockingConnection(pika.URLParameters(amqp_url())) as conn:
            ch = conn.channel()
            if kind == "queue":
                ch.queue_delete(name)
            else:
                ch.exchange_delete(name)


class FlowChecks(CallbackFaceTestCase):
    """A whole asynchronous application, written as pika's examples are."""

    def test_consumer_and_confirmed_publisher(self) -> None:
        """connect → exchange_declare → queue_declare → queue_bind → basic_qos →
        basic_consume (acking in the message callback) → confirm_delivery →
        basic_publish: every message arrives in order and is confirmed (the
        ack_nack_callback frames cover every delivery tag once, honouring
        ``multiple``); then close(): the channel's close callback gets
        ChannelClosedByClient and on_close_callback ConnectionClosedByClient."""
        exchange = self.exchange_name()
        queue = self.queue_name()
        count = 5
        bodies = [f"message {i}".encode() for i in range(count)]
        frames: dict[str, Any] = {}
        received: list[bytes] = []
        confirmed: list[int] = []
        closes: list[tuple[str, Any, BaseException]] = []
        state: dict[str, Any] = {}

        def done_if_finished() -> None:
            if len(received) == count and len(confirmed) == count and "closing" not in state:
                state["closing"] = True
                state["connection"].close()

        def on_open(conn: CallbackConnection) -> None:
            state["connection"] = conn
            conn.channel(on_open_callback=on_channel)

        def on_channel(ch: CallbackChannel) -> None:
            state["channel"] = ch
            ch.add_on_close_callback(lambda c, reason: closes.append(("channel", c, reason)))
            ch.exchange_declare(exchange, "direct", callback=on_exchange)

        def on_exchange(frame: Any) -> None:
            frames["exchange_declare"] = frame
            state["channel"].queue_declare(queue, callback=on_queue)

        def on_queue(frame: Any) -> None:
            frames["queue_declare"] = frame
            state["channel"].queue_bind(queue, exchange, "rk", callback=on_bind)

        def on_bind(frame: Any) -> None:
            frames["queue_bind"] = frame
            state["channel"].basic_qos(prefetch_count=2, callback=on_qos)

        def on_qos(frame: Any) -> None:
            frames["basic_qos"] = frame
            state["tag"] = state["channel"].basic_consume(queue, on_message, callback=on_consume)

        def on_consume(frame: Any) -> None:
            frames["basic_consume"] = frame
            state["channel"].confirm_delivery(on_confirm, callback=on_select)

        def on_select(frame: Any) -> None:
            frames["confirm_delivery"] = frame
            for body in bodies:
                state["channel"].basic_publish(exchange, "rk", body)

        def on_message(ch: CallbackChannel, method: Any, props: Any, body: bytes) -> None:
            self.assertIs(ch, state["channel"])
            self.assertIsInstance(method, spec.Basic.Deliver)
            received.append(body)
            ch.basic_ack(method.delivery_tag)
            done_if_finished()

        def on_confirm(frame: Any) -> None:
            self.assertIsInstance(frame.method, spec.Basic.Ack)
            tag = frame.method.delivery_tag
            if frame.method.multiple:
                confirmed.extend(t for t in range(1, tag + 1) if t not in confirmed)
            else:
                self.assertNotIn(tag, confirmed)
                confirmed.append(tag)
            done_if_finished()

        def on_close(conn: CallbackConnection, reason: BaseException) -> None:
            closes.append(("connection", conn, reason))
            self.stop_loop()

        conn = self.new_connection(
            self.params(),
            on_open_callback=on_open,
            on_open_error_callback=self.stop,
            on_close_callback=on_close,
        )
        self.run_loop()

        self.assertEqual(received, bodies)
        self.assertEqual(sorted(confirmed), list(range(1, count + 1)))
        expected = {
            "exchange_declare": spec.Exchange.DeclareOk,
            "queue_declare": spec.Queue.DeclareOk,
            "queue_bind": spec.Queue.BindOk,
            "basic_qos": spec.Basic.QosOk,
            "basic_consume": spec.Basic.ConsumeOk,
            "confirm_delivery": spec.Confirm.SelectOk,
        }
        self.assertEqual({k: type(f.method) for k, f in frames.items()}, expected)
        self.assertEqual(frames["queue_declare"].method.queue, queue)
        self.assertEqual(frames["basic_consume"].method.consumer_tag, state["tag"])
        self.assertEqual(
            [(kind, c) for kind, c, _ in closes],
            [
                ("channel", state["channel"]),
                ("connection", conn),
            ],
        )
        self.assertIsInstance(closes[0][2], ChannelClosedByClient)
        reason = closes[1][2]
        self.assertIsInstance(reason, ConnectionClosedByClient)
        assert isinstance(reason, ConnectionClosedByClient)
        self.assertEqual(reason.reply_code, 200)
        self.assertTrue(conn.is_closed)
        self.assertTrue(state["channel"].is_closed)


class OpeningChecks(CallbackFaceTestCase):
    """Opening a connection: failures, retries, aborting."""

    def open_failure(
        self, params: pika.ConnectionParameters
    ) -> tuple[CallbackConnection, list[Any]]:
        """Open a connection that should fail; return it and every event recorded."""
        events: list[Any] = []

        def open_error(conn: Any, error: BaseException) -> None:
            events.append(("error", conn, error))
            self.stop_loop()

        conn = self.new_connection(
            params,
            on_open_callback=lambda c: events.append(("open", c)),
            on_open_error_callback=open_error,
            on_close_callback=lambda c, e: events.append(("close", c, e)),
        )
        self.run_loop()
        return conn, events

    def test_closed_port_retried_then_error(self) -> None:
        """A port nothing listens on, connection_attempts=2: two attempts, then one
        on_open_error_callback(connection, AMQPConnectionError); no open or close
        callback; ``attempt_errors`` has both attempts' errors."""
        params = self.params(port=DEAD_PORT, connection_attempts=2, retry_delay=0.1)
        conn, events = self.open_failure(params)
        self.assertEqual([e[0] for e in events], ["error"])
        self.assertIs(events[0][1], conn)
        self.assertIsInstance(events[0][2], AMQPConnectionError)
        self.assertEqual(len(conn.attempt_errors), 2)
        self.assertTrue(conn.is_closed)
        self.assertFalse(conn.is_open)

    def test_wrong_password(self) -> None:
        """Bad credentials: on_open_error_callback gets a ProbableAuthenticationError
        or AuthenticationError (an AMQPConnectionError), after one attempt (a refused
        login is not retried, although connection_attempts=3)."""
        creds = pika.PlainCredentials("guest", "not-the-password")
        params = self.params(credentials=creds, connection_attempts=3, retry_delay=0.1)
        conn, events = self.open_failure(params)
        self.assertEqual([e[0] for e in events], ["error"])
        self.assertIsInstance(events[0][2], (ProbableAuthenticationError, AuthenticationError))
        self.assertEqual(len(conn.attempt_errors), 1)

    def test_close_before_the_loop_runs(self) -> None:
        """close() before the loop ran (the attempt not started): the open error
        callback gets ConnectionOpenAborted; the connection is closed, a second
        close() raises ConnectionWrongStateError, and running the loop opens nothing."""
        events: list[Any] = []
        conn = self.new_connection(
            self.params(),
            on_open_callback=lambda c: events.append(("open", c)),
            on_open_error_callback=lambda c, e: events.append(("error", c, e)),
            on_close_callback=lambda c, e: events.append(("close", c, e)),
        )
        conn.close()
        # A round trip on another connection in this loop: the aborted one had every
        # chance to (wrongly) open meanwhile.
        other = self.connect()
        self.assertTrue(other.is_open)
        self.assertEqual([e[0] for e in events], ["error"])
        self.assertIsInstance(events[0][2], ConnectionOpenAborted)
        self.assertTrue(conn.is_closed)
        self.assertRaises(ConnectionWrongStateError, conn.close)
        self.assertRaises(ConnectionWrongStateError, conn.channel)

    def test_close_while_opening(self) -> None:
        """close() once the attempt started (TCP connect or handshake under way): the
        open error callback gets ConnectionOpenAborted, the open callback never runs."""
        events: list[Any] = []

        def open_error(conn: Any, error: BaseException) -> None:
            events.append(("error", conn, error))
            self.stop_loop()

        conn = self.new_connection(
            self.params(),
            on_open_callback=lambda c: events.append(("open", c)),
            on_open_error_callback=open_error,
        )

        # Due after the connection's own first-turn timer: the attempt has started.
        def close() -> None:
            events.append(("closing",))
            conn.close()

        self.call_later(0, close)
        self.run_loop()
        other = self.connect()  # give the aborted attempt a chance to (wrongly) open
        self.assertTrue(other.is_open)
        self.assertEqual([e[0] for e in events], ["closing", "error"])
        self.assertIsInstance(events[1][2], ConnectionOpenAborted)
        self.assertTrue(conn.is_closed)

    def test_close_during_handshake_leaves_no_connection(self) -> None:
        """close() once the TCP connection is up (the AMQP handshake under way):
        ConnectionOpenAborted, and the broker soon lists no connection of that name
        (the half-open connection is not left to finish its handshake)."""
        name = unique_name("txamqp091-callback-aborted")
        events: list[Any] = []

        def open_error(conn: Any, error: BaseException) -> None:
            events.append(("error", error))
            self.stop_loop()

        conn = self.new_connection(
            self.params(client_properties={"connection_name": name}),
            on_open_callback=lambda c: events.append(("open", c)),
            on_open_error_callback=open_error,
        )
        # The attempt starts at the loop's first turn: wrap the face's transport opening
        # (on the instance) so that close() is called once the TCP connection is up.
        open_transport = conn._open_transport

        def close_on_connect(params: Any, protocol: Any) -> Any:
            def connected(result: Any) -> Any:
                self.call_later(0, conn.close)
                return result

            return open_transport(params, protocol).addCallback(connected)

        conn._open_transport = close_on_connect
        self.run_loop()
        self.assertEqual([e[0] for e in events], ["error"])
        self.assertIsInstance(events[0][1], ConnectionOpenAborted)
        self.connect()  # the loop runs on: an orphaned handshake would go on meanwhile
        deadline = time.monotonic() + WAIT
        listed = True
        while listed and time.monotonic() < deadline:
            listed = name in rabbitmqctl("list_connections", "client_properties", "-q")
        self.assertFalse(listed, "the aborted connection is still open on the broker")
        self.assertEqual([e[0] for e in events], ["error"])


class ClosingChecks(CallbackFaceTestCase):
    """Connections and channels closed by the client or by the broker."""

    def test_broker_forced_close(self) -> None:
        """``rabbitmqctl close_connection``: the channel's close callback and then
        on_close_callback get ConnectionClosedByBroker (320), as pika reports the
        connection's error to its channels."""
        name = unique_name("txamqp091-callback-conn")
        events: list[tuple[str, Any, BaseException]] = []
        conn = self.connect(client_properties={"connection_name": name})
        ch = self.channel(conn)
        ch.add_on_close_callback(lambda c, e: events.append(("channel", c, e)))

        def on_close(c: Any, e: BaseException) -> None:
            events.append(("connection", c, e))
            self.stop_loop()

        conn.add_on_close_callback(on_close)
        force_close(name)
        self.run_loop()
        self.assertEqual(
            [(kind, c) for kind, c, _ in events], [("channel", ch), ("connection", conn)]
        )
        for _, _, error in events:
            self.assertIsInstance(error, ConnectionClosedByBroker)
            assert isinstance(error, ConnectionClosedByBroker)
            self.assertEqual(error.reply_code, 320)
        self.assertTrue(conn.is_closed)
        self.assertTrue(ch.is_closed)
        self.assertRaises(ConnectionWrongStateError, conn.close)

    def test_channel_closed_by_broker(self) -> None:
        """A passive declare of a missing queue: the broker closes the channel; its
        close callback gets ChannelClosedByBroker (404), the completion callback is
        not called; the connection stays open and a new channel works."""
        conn, ch = self.open_channel()
        events: list[Any] = []

        def on_close(c: Any, error: BaseException) -> None:
            events.append(("closed", c, error))
            self.stop_loop()

        ch.add_on_close_callback(on_close)
        ch.queue_declare(
            unique_name("txamqp091-missing"),
            passive=True,
            callback=lambda frame: events.append(("declared", frame)),
        )
        self.run_loop()
        self.assertEqual([e[0] for e in events], ["closed"])
        error = events[0][2]
        self.assertIsInstance(error, ChannelClosedByBroker)
        self.assertEqual(error.reply_code, 404)
        self.assertTrue(ch.is_closed)
        self.assertTrue(conn.is_open)
        other = self.channel(conn)
        queue = self.declare_queue(other)
        self.assertEqual(self.message_count(other, queue), 0)

    def test_closed_channel_raises(self) -> None:
        """Calls on a channel that is opening or closed raise ChannelWrongStateError;
        the close callback of a client close gets ChannelClosedByClient."""
        conn = self.connect()
        opening = conn.channel(on_open_callback=self.stop)
        self.assertTrue(opening.is_opening)
        self.assertRaises(ChannelWrongStateError, opening.queue_declare, "q")
        self.run_loop()
        ch = opening
        reasons: list[BaseException] = []
        ch.add_on_close_callback(self.then_stop(lambda c, e: reasons.append(e)))
        ch.close()
        self.assertTrue(ch.is_closing)
        self.run_loop()
        self.assertEqual(len(reasons), 1)
        self.assertIsInstance(reasons[0], ChannelClosedByClient)
        self.assertTrue(ch.is_closed)
        calls: list[Callable[[], object]] = [
            lambda: ch.queue_declare("q"),
            lambda: ch.basic_publish("", "q", b"x"),
            lambda: ch.basic_consume("q", lambda *a: None),
            lambda: ch.basic_get("q", lambda *a: None),
            lambda: ch.basic_ack(1),
            lambda: ch.basic_qos(prefetch_count=1),
            lambda: ch.confirm_delivery(lambda frame: None),
            lambda: ch.close(),
        ]
        for call in calls:
            with self.subTest(call=call):
                self.assertRaises(ChannelWrongStateError, call)

    def test_close_opening_channel(self) -> None:
        """close() on a channel still opening is allowed (as pika): it is closing at
        once, its open callback never runs, and its close callback gets
        ChannelClosedByClient."""
        conn = self.connect()
        events: list[Any] = []
        ch = conn.channel(on_open_callback=lambda c: events.append(("opened", c)))
        ch.add_on_close_callback(self.then_stop(lambda c, e: events.append(("closed", e))))
        ch.close()
        self.assertTrue(ch.is_closing)
        self.run_loop()
        self.assertEqual([e[0] for e in events], ["closed"])
        self.assertIsInstance(events[0][1], ChannelClosedByClient)
        self.assertTrue(conn.is_open)

    def test_connection_close_twice(self) -> None:
        """close() while closing, and after closed, raises ConnectionWrongStateError;
        channel() on a closed connection too; on_close_callback runs once."""
        conn = self.connect()
        reasons: list[BaseException] = []
        conn.add_on_close_callback(self.then_stop(lambda c, e: reasons.append(e)))
        conn.close()
        self.assertTrue(conn.is_closing)
        self.assertRaises(ConnectionWrongStateError, conn.close)
        self.run_loop()
        self.assertRaises(ConnectionWrongStateError, conn.close)
        self.assertRaises(ConnectionWrongStateError, conn.channel)
        self.assertEqual(len(reasons), 1)
        self.assertIsInstance(reasons[0], ConnectionClosedByClient)


class ThreadChecks(CallbackFaceTestCase):
    """Work handed to the loop from another thread."""

    def test_add_callback_threadsafe_ack(self) -> None:
        """A worker thread acks, through add_callback_threadsafe, a message delivered to
        the loop's thread: the ack runs in the loop's thread, and the message is gone
        (not requeued when the channel closes)."""
        conn, ch = self.open_channel()
        queue = self.declare_queue(ch)
        events: list[Any] = []
        workers: list[threading.Thread] = []
        loop_thread = threading.current_thread()

        def ack(tag: int) -> None:
            events.append(("ack", threading.current_thread()))
            ch.basic_ack(tag)
            ch.close()

        def on_message(c: Any, method: Any, props: Any, body: bytes) -> None:
            events.append(("message", body))
            tag = method.delivery_tag
            worker = threading.Thread(target=lambda: self.call_threadsafe(lambda: ack(tag)))
            workers.append(worker)
            worker.start()

        ch.add_on_close_callback(self.then_stop(lambda c, e: events.append(("closed", e))))
        ch.basic_consume(queue, on_message)
        ch.basic_publish("", queue, b"acked by a worker")
        self.run_loop()
        for worker in workers:
            worker.join(WAIT)
            self.assertFalse(worker.is_alive())
        self.assertEqual([e[0] for e in events], ["message", "ack", "closed"], events)
        self.assertEqual(events[0][1], b"acked by a worker")
        self.assertIs(events[1][1], loop_thread)
        self.assertEqual(self.message_count(self.channel(conn), queue), 0)


class ConsumingChecks(CallbackFaceTestCase):
    """basic_get, basic_cancel, broker cancels, returns, nacks."""

    def test_basic_get_message(self) -> None:
        """basic_get of a ready message: callback(channel, Basic.GetOk, properties,
        body)."""
        _conn, ch = self.open_channel()
        queue = self.declare_queue(ch)
        props = pika.BasicProperties(content_type="text/plain", headers={"k": "v"})
        ch.basic_publish("", queue, b"got", props)
        channel, method, properties, body = self.call(
            lambda done: ch.basic_get(queue, done, auto_ack=True)
        )
        self.assertIs(channel, ch)
        self.assertIsInstance(method, spec.Basic.GetOk)
        self.assertEqual(method.routing_key, queue)
        self.assertEqual(properties.content_type, "text/plain")
        self.assertEqual(properties.headers, {"k": "v"})
        self.assertEqual(body, b"got")

    def test_basic_get_empty(self) -> None:
        """basic_get on an empty queue does not call its callback (as pika): a later
        request's completion arrives and the callback still has not run."""
        _conn, ch = self.open_channel()
        queue = self.declare_queue(ch)
        got: list[Any] = []
        ch.basic_get(queue, lambda *args: got.append(args))
        self.assertEqual(self.message_count(ch, queue), 0)
        self.assertEqual(got, [])
        self.assertTrue(ch.is_open)

    def test_basic_cancel(self) -> None:
        """basic_cancel: its callback gets the Basic.CancelOk frame and the tag leaves
        consumer_tags."""
        _conn, ch = self.open_channel()
        queue = self.declare_queue(ch)
        (consume_ok,) = self.call(
            lambda done: ch.basic_consume(queue, lambda *a: None, callback=done)
        )
        tag = consume_ok.method.consumer_tag
        self.assertEqual(ch.consumer_tags, [tag])
        (cancel_ok,) = self.call(lambda done: ch.basic_cancel(tag, callback=done))
        self.assertIsInstance(cancel_ok.method, spec.Basic.CancelOk)
        self.assertEqual(cancel_ok.method.consumer_tag, tag)
        self.assertEqual(ch.consumer_tags, [])

    def test_basic_cancel_unknown_tag(self) -> None:
        """basic_cancel of a tag that is not a consumer of the channel does nothing (as
        pika): its callback is not called, even once a later request has completed."""
        _conn, ch = self.open_channel()
        queue = self.declare_queue(ch)
        cancelled: list[Any] = []
        ch.basic_cancel("no-such-consumer", callback=cancelled.append)
        self.assertEqual(self.message_count(ch, queue), 0)
        self.assertEqual(cancelled, [])
        self.assertTrue(ch.is_open)

    def test_broker_cancels_consumer(self) -> None:
        """Deleting a consumed queue from another channel: the broker cancels the
        consumer; add_on_cancel_callback gets the Basic.Cancel frame; the tag leaves
        consumer_tags; the channel stays open."""
        conn, ch = self.open_channel()
        other = self.channel(conn)
        queue = self.declare_queue(ch)
        cancels: list[Any] = []
        ch.add_on_cancel_callback(self.then_stop(lambda frame: cancels.append(frame)))
        # Delete once the consumer is registered (ConsumeOk), not racing it.
        tag = ch.basic_consume(
            queue, lambda *a: None, callback=lambda _: other.queue_delete(queue)
        )
        self.run_loop()
        self.assertEqual(len(cancels), 1)
        self.assertIsInstance(cancels[0].method, spec.Basic.Cancel)
        self.assertEqual(cancels[0].method.consumer_tag, tag)
        self.assertEqual(ch.consumer_tags, [])
        self.assertTrue(ch.is_open)

    def test_return_callback(self) -> None:
        """A mandatory unroutable publish comes back to add_on_return_callback as
        (channel, Basic.Return, properties, body)."""
        _conn, ch = self.open_channel()
        returned: list[Any] = []
        ch.add_on_return_callback(self.then_stop(lambda *args: returned.append(args)))
        props = pika.BasicProperties(message_id="m1")
        ch.basic_publish("amq.direct", unique_name("nowhere"), b"back", props, mandatory=True)
        self.run_loop()
        self.assertEqual(len(returned), 1)
        channel, method, properties, body = returned[0]
        self.assertIs(channel, ch)
        self.assertIsInstance(method, spec.Basic.Return)
        self.assertEqual((method.reply_code, method.exchange), (312, "amq.direct"))
        self.assertEqual(properties.message_id, "m1")
        self.assertEqual(body, b"back")

    def test_nack_from_reject_publish_queue(self) -> None:
        """Confirm mode, publishing to a queue of max length 1 that rejects overflow:
        ack_nack_callback gets a Basic.Ack for the first message and a Basic.Nack for
        the second."""
        conn, ch = self.open_channel()
        queue = self.declare_queue(
            ch, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
        )
        self.call(lambda done: ch.confirm_delivery(lambda frame: None, callback=done))
        # confirm_delivery again on the same channel only adds an ack_nack_callback.
        outcomes: dict[int, type] = {}

        def on_confirm(frame: Any) -> None:
            tag = frame.method.delivery_tag
            tags = range(1, tag + 1) if frame.method.multiple else [tag]
            for t in tags:
                outcomes.setdefault(t, type(frame.method))
            if len(outcomes) == 2:
                self.stop_loop()

        ch2 = self.channel(conn)
        self.call(lambda done: ch2.confirm_delivery(on_confirm, callback=done))
        ch2.basic_publish("", queue, b"fits")
        ch2.basic_publish("", queue, b"overflows")
        self.run_loop()
        self.assertEqual(outcomes, {1: spec.Basic.Ack, 2: spec.Basic.Nack})
        self.assertEqual(self.message_count(ch, queue), 1)


class CompletionChecks(CallbackFaceTestCase):
    """Every completion callback gets the reply method frame of its request."""

    def test_exchange_bind_unbind_delete(self) -> None:
        """exchange_declare → Exchange.DeclareOk, exchange_bind → Exchange.BindOk,
        exchange_unbind → Exchange.UnbindOk, exchange_delete → Exchange.DeleteOk,
        each frame on the channel's number."""
        _conn, ch = self.open_channel()
        source, destination = self.exchange_name(), self.exchange_name()
        steps: list[tuple[Callable[[Done], object], type]] = [
            (lambda d: ch.exchange_declare(source, "fanout", callback=d), spec.Exchange.DeclareOk),
            (
                lambda d: ch.exchange_declare(destination, "topic", callback=d),
                spec.Exchange.DeclareOk,
            ),
            (
                lambda d: ch.exchange_bind(destination, source, "k", callback=d),
                spec.Exchange.BindOk,
            ),
            (
                lambda d: ch.exchange_unbind(destination, source, "k", callback=d),
                spec.Exchange.UnbindOk,
            ),
            (lambda d: ch.exchange_delete(destination, callback=d), spec.Exchange.DeleteOk),
            (lambda d: ch.exchange_delete(source, callback=d), spec.Exchange.DeleteOk),
        ]
        for start, reply in steps:
            (frame,) = self.call(start)
            self.assertIsInstance(frame.method, reply)
            self.assertEqual(frame.channel_number, ch.channel_number)

    def test_queue_bind_unbind_purge_delete(self) -> None:
        """queue_bind → Queue.BindOk, queue_unbind → Queue.UnbindOk, queue_purge →
        Queue.PurgeOk with the number of messages purged, queue_delete →
        Queue.DeleteOk."""
        _conn, ch = self.open_channel()
        queue = self.declare_queue(ch)
        (bind,) = self.call(lambda d: ch.queue_bind(queue, "amq.direct", "k", callback=d))
        self.assertIsInstance(bind.method, spec.Queue.BindOk)
        (unbind,) = self.call(lambda d: ch.queue_unbind(queue, "amq.direct", "k", callback=d))
        self.assertIsInstance(unbind.method, spec.Queue.UnbindOk)
        for i in range(3):
            ch.basic_publish("", queue, b"%d" % i)
        (purge,) = self.call(lambda d: ch.queue_purge(queue, callback=d))
        self.assertIsInstance(purge.method, spec.Queue.PurgeOk)
        self.assertEqual(purge.method.message_count, 3)
        ch.basic_publish("", queue, b"left")
        (delete,) = self.call(lambda d: ch.queue_delete(queue, callback=d))
        self.assertIsInstance(delete.method, spec.Queue.DeleteOk)
        self.assertEqual(delete.method.message_count, 1)

    def test_other_completions(self) -> None:
        """basic_qos → Basic.QosOk, basic_recover → Basic.RecoverOk, basic_consume →
        Basic.ConsumeOk (with the returned tag), confirm_delivery → Confirm.SelectOk,
        queue_declare of a server-named queue → Queue.DeclareOk with its name."""
        _conn, ch = self.open_channel()
        (declare,) = self.call(lambda d: ch.queue_declare("", exclusive=True, callback=d))
        self.assertIsInstance(declare.method, spec.Queue.DeclareOk)
        queue = declare.method.queue
        self.assertTrue(queue.startswith("amq.gen-"))
        (qos,) = self.call(lambda d: ch.basic_qos(prefetch_count=3, callback=d))
        self.assertIsInstance(qos.method, spec.Basic.QosOk)
        (recover,) = self.call(lambda d: ch.basic_recover(requeue=True, callback=d))
        self.assertIsInstance(recover.method, spec.Basic.RecoverOk)
        tags: list[str] = []
        (consume,) = self.call(
            lambda d: tags.append(ch.basic_consume(queue, lambda *a: None, callback=d))
        )
        self.assertIsInstance(consume.method, spec.Basic.ConsumeOk)
        self.assertEqual(consume.method.consumer_tag, tags[0])
        self.assertTrue(tags[0].startswith(f"ctag{ch.channel_number}."))
        (select,) = self.call(lambda d: ch.confirm_delivery(lambda f: None, callback=d))
        self.assertIsInstance(select.method, spec.Confirm.SelectOk)

    def test_transactions(self) -> None:
        """tx_select → Tx.SelectOk; a publish then tx_rollback → Tx.RollbackOk and the
        message is not queued; a publish then tx_commit → Tx.CommitOk and it is."""
        _conn, ch = self.open_channel()
        queue = self.declare_queue(ch)
        (select,) = self.call(lambda d: ch.tx_select(callback=d))
        self.assertIsInstance(select.method, spec.Tx.SelectOk)
        ch.basic_publish("", queue, b"rolled back")
        (rollback,) = self.call(lambda d: ch.tx_rollback(callback=d))
        self.assertIsInstance(rollback.method, spec.Tx.RollbackOk)
        self.assertEqual(self.message_count(ch, queue), 0)
        ch.basic_publish("", queue, b"committed")
        (commit,) = self.call(lambda d: ch.tx_commit(callback=d))
        self.assertIsInstance(commit.method, spec.Tx.CommitOk)
        self.assertEqual(self.message_count(ch, queue), 1)


class BlockedChecks(CallbackFaceTestCase):
    """Connection.Blocked / Unblocked reach the blocked and unblocked callbacks."""

    def test_blocked_and_unblocked_callbacks(self) -> None:
        """A memory alarm (watermark 0) makes the broker block the publishing
        connection: the blocked callback gets (connection, Connection.Blocked frame);
        restoring the watermark runs the unblocked one with Connection.Unblocked."""
        original = rabbitmqctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").strip()
        self.assertNotIn(original, ("0", "0.0"), "another run holds a memory alarm")

        def restore() -> None:
            if original.startswith("{absolute,"):
                rabbitmqctl("set_vm_memory_high_watermark", "absolute", original[10:-1].strip())
            else:
                rabbitmqctl("set_vm_memory_high_watermark", original)

        conn, ch = self.open_channel()
        queue = self.declare_queue(ch)
        events: list[tuple[str, Any, Any]] = []
        conn.add_on_connection_blocked_callback(
            self.then_stop(lambda c, frame: events.append(("blocked", c, frame)))
        )
        conn.add_on_connection_unblocked_callback(
            self.then_stop(lambda c, frame: events.append(("unblocked", c, frame)))
        )
        self.addCleanup(restore)
        rabbitmqctl("set_vm_memory_high_watermark", "0")
        ch.basic_publish("", queue, b"while blocked")
        self.run_loop(30)
        self.assertEqual([e[0] for e in events], ["blocked"])
        self.assertIs(events[0][1], conn)
        self.assertIsInstance(events[0][2].method, spec.Connection.Blocked)
        restore()
        self.run_loop(30)
        self.assertEqual([e[0] for e in events], ["blocked", "unblocked"])
        self.assertIsInstance(events[1][2].method, spec.Connection.Unblocked)
        self.assertTrue(conn.is_open)


class CreateConnectionChecks(CallbackFaceTestCase):
    """create_connection: several parameters, abort()."""

    def create(self, configs: list[pika.ConnectionParameters]) -> tuple[Any, list[Any]]:
        """Start create_connection on the test's loop; return the workflow and the list
        ``on_done`` appends its argument to (it also stops the loop)."""
        results: list[Any] = []

        def on_done(result: Any) -> None:
            results.append(result)
            self.stop_loop()

        workflow = self.connection_class.create_connection(
            configs, on_done, custom_ioloop=self.ioloop
        )
        self.addCleanup(self.close_connection, workflow.connection)
        return workflow, results

    def test_dead_first_host(self) -> None:
        """A dead first host and a good second one: on_done(connection), open, with the
        good host's parameters."""
        good = self.params()
        _workflow, results = self.create([self.params(port=DEAD_PORT), good])
        self.run_loop()
        self.assertEqual(len(results), 1)
        conn = results[0]
        self.assertIsInstance(conn, self.connection_class)
        self.assertIs(conn.ioloop, self.ioloop)
        self.assertTrue(conn.is_open)
        self.assertIs(conn.params, good)
        ch = self.channel(conn)
        self.assertTrue(ch.is_open)

    def test_abort(self) -> None:
        """abort() before the loop ran: on_done(AMQPConnectionWorkflowAborted), once;
        the connection never opens."""
        workflow, results = self.create([self.params()])
        workflow.abort()
        self.run_loop()
        other = self.connect()  # the aborted workflow had every chance to open meanwhile
        self.assertTrue(other.is_open)
        self.assertEqual(len(results), 1)
        self.assertIsInstance(results[0], AMQPConnectionWorkflowAborted)
        self.assertFalse(workflow.connection.is_open)

    def test_abort_while_connecting(self) -> None:
        """abort() once the attempt started: on_done(AMQPConnectionWorkflowAborted)."""
        workflow, results = self.create([self.params()])
        self.call_later(0, workflow.abort)
        self.run_loop()
        other = self.connect()
        self.assertTrue(other.is_open)
        self.assertEqual(len(results), 1)
        self.assertIsInstance(results[0], AMQPConnectionWorkflowAborted)
        self.assertFalse(workflow.connection.is_open)

    def test_all_dead(self) -> None:
        """Every host dead: on_done(AMQPConnectionWorkflowFailed) whose ``exceptions``
        holds each attempt's error (two hosts, two rounds)."""
        dead = [
            self.params(port=DEAD_PORT),
            self.params(port=DEAD_PORT, connection_attempts=2, retry_delay=0.1),
        ]
        _workflow, results = self.create(dead)
        self.run_loop()
        self.assertEqual(len(results), 1)
        error = results[0]
        self.assertIsInstance(error, AMQPConnectionWorkflowFailed)
        self.assertEqual(len(error.exceptions), 4)
        for exc in error.exceptions:
            self.assertIsInstance(exc, Exception)


# -- the Select face ---------------------------------------------------------------------


class SelectFace(CallbackFaceTestCase):
    """The hooks for the Select face: an :class:`IOLoop` per test, run in the test's
    thread (no reactor involved)."""

    connection_class = SelectConnection
    ioloop: IOLoop

    def set_up_loop(self) -> None:
        self.ioloop = IOLoop()
        self.addCleanup(self.ioloop.close)

    def start_loop(self) -> None:
        self.ioloop.start()

    def stop_loop(self) -> None:
        self.ioloop.stop()

    def call_later(self, delay: float, fn: Callable[[], object]) -> Any:
        return self.ioloop.call_later(delay, fn)

    def cancel_timer(self, timer: Any) -> None:
        self.ioloop.remove_timeout(timer)

    def call_threadsafe(self, fn: Callable[[], object]) -> None:
        self.ioloop.add_callback_threadsafe(fn)


class SelectTestCase(SelectFace, unittest.TestCase):
    """A Select-face test case (for the Select-only tests)."""


class FlowTests(FlowChecks, SelectTestCase):
    """The whole-application flow on the Select face."""


class OpeningTests(OpeningChecks, SelectTestCase):
    """Opening a Select connection."""


class ClosingTests(ClosingChecks, SelectTestCase):
    """Closing Select connections and channels."""


class ConsumingTests(ConsumingChecks, SelectTestCase):
    """Consuming on the Select face."""


class CompletionTests(CompletionChecks, SelectTestCase):
    """Completion callbacks on the Select face."""


class BlockedTests(BlockedChecks, SelectTestCase):
    """Blocked/unblocked callbacks on the Select face."""


class CreateConnectionTests(CreateConnectionChecks, SelectTestCase):
    """SelectConnection.create_connection."""


class IOLoopTests(ThreadChecks, SelectTestCase):
    """The IOLoop: timers, thread-safe callbacks, stopping, errors."""

    def test_call_later_and_remove_timeout(self) -> None:
        """A removed timer never runs (removing it twice is harmless); the others run
        in the order of their delays."""
        ran: list[str] = []
        removed = self.ioloop.call_later(0.01, lambda: ran.append("removed"))
        self.ioloop.call_later(0.05, lambda: ran.append("second"))
        self.ioloop.call_later(0.02, lambda: ran.append("first"))
        self.ioloop.call_later(0.1, self.then_stop(lambda: ran.append("last")))
        self.ioloop.remove_timeout(removed)
        self.ioloop.remove_timeout(removed)
        self.run_loop()
        self.assertEqual(ran, ["first", "second", "last"])

    def test_call_later_argument_errors(self) -> None:
        """call_later refuses a non-callable and a negative delay;
        add_callback_threadsafe a non-callable."""
        self.assertRaises(TypeError, self.ioloop.call_later, 1, "nope")
        self.assertRaises(ValueError, self.ioloop.call_later, -1, lambda: None)
        self.assertRaises(TypeError, self.ioloop.add_callback_threadsafe, "nope")

    def test_stop_from_another_thread(self) -> None:
        """stop() from another thread wakes the waiting loop: start() returns (before
        the guard timer)."""
        threads: list[threading.Thread] = []

        def start_stopper() -> None:
            thread = threading.Thread(target=self.ioloop.stop)
            threads.append(thread)
            thread.start()

        self.ioloop.call_later(0, start_stopper)
        self.run_loop()
        threads[0].join(WAIT)
        self.assertFalse(threads[0].is_alive())

    def test_exception_in_open_callback_propagates(self) -> None:
        """An exception raised by on_open_callback stops the loop: start() raises it."""

        class Boom(Exception):
            pass

        def on_open(conn: Any) -> None:
            raise Boom("from on_open_callback")

        conn = SelectConnection(self.params(), on_open_callback=on_open, custom_ioloop=self.ioloop)
        self.addCleanup(self.close_connection, conn)
        guard = self.ioloop.call_later(WAIT, self.ioloop.stop)
        with self.assertRaises(Boom):
            self.ioloop.start()
        self.ioloop.remove_timeout(guard)
        self.assertTrue(conn.is_open)

    def test_exception_in_message_callback_propagates(self) -> None:
        """An exception raised by a consumer's message callback makes start() raise it;
        the loop can be started again afterwards."""

        class Boom(Exception):
            pass

        _conn, ch = self.open_channel()
        queue = self.declare_queue(ch)

        def on_message(*args: Any) -> None:
            raise Boom("from on_message_callback")

        ch.basic_consume(queue, on_message, auto_ack=True)
        ch.basic_publish("", queue, b"boom")
        guard = self.ioloop.call_later(WAIT, self.ioloop.stop)
        with self.assertRaises(Boom):
            self.ioloop.start()
        self.ioloop.remove_timeout(guard)
        self.assertEqual(self.message_count(ch, queue), 0)

    def test_exception_in_timer_propagates(self) -> None:
        """An exception raised by a call_later callback makes start() raise it."""

        class Boom(Exception):
            pass

        def explode() -> None:
            raise Boom("from call_later")

        self.ioloop.call_later(0, explode)
        guard = self.ioloop.call_later(WAIT, self.ioloop.stop)
        with self.assertRaises(Boom):
            self.ioloop.start()
        self.ioloop.remove_timeout(guard)


if __name__ == "__main__":  # pragma: no cover
    unittest.main()

"""Unit tests of :mod:`txamqp091.callback_connection`, with no broker.

:class:`ClockConnection` is a :class:`~txamqp091.callback_connection.CallbackConnection`
whose clock is a :class:`~twisted.internet.task.Clock` and whose transports are
:class:`~twisted.internet.testing.StringTransport` objects, each played by a
:class:`~txamqp091.test.fakebroker.FakeBroker`; an attempt can also be made to fail.
This covers what is awkward against a real broker: the timing of retries, aborting
during the retry wait or the handshake, argument checks, and frames a real broker
rarely sends. Every test ends with no delayed call left on the clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import spec
from txamqp091.callback_connection import CallbackChannel, CallbackConnection
from txamqp091.codec import MethodFrame
from txamqp091.exceptions import (
    AccessRefused,
    AMQPConnectionError,
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ConnectionClosedByClient,
    ConnectionOpenAborted,
    ConnectionWrongStateError,
)
from txamqp091.parameters import ConnectionParameters, Parameters
from txamqp091.protocol import AMQPProtocol
from txamqp091.test.fakebroker import FakeBroker


class Boom(Exception):
    """Raised by application callbacks in these tests."""


class ClockConnection(CallbackConnection):
    """A :class:`CallbackConnection` on a :class:`Clock` and fake transports.

    :param outcomes: per attempt, in order: an exception the transport fails with, or
        ``None`` to connect it (to a new :class:`FakeBroker`); attempts beyond the
        list connect.
    """

    def __init__(
        self,
        clock: Clock,
        parameters: Parameters | None = None,
        *args: Any,
        outcomes: list[BaseException | None] | None = None,
        **kw: Any,
    ) -> None:
        self._clock = clock
        self.outcomes = list(outcomes or [])
        #: ``(host, port, clock time)`` of each attempt.
        self.attempts: list[tuple[str, int, float]] = []
        #: The broker of each attempt that connected.
        self.brokers: list[FakeBroker] = []
        #: What application callbacks raised.
        self.callback_errors: list[BaseException] = []
        #: With ``late``, each connect's Deferred, fired by the test.
        self.late = bool(kw.pop("late", False))
        self.late_connects: list[Deferred[Any]] = []
        super().__init__(parameters, *args, **kw)

    def _open_transport(self, params: Parameters, protocol: AMQPProtocol) -> Deferred[Any]:
        self.attempts.append((params.host, params.port, self._clock.seconds()))
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            return fail(outcome)
        broker = FakeBroker(protocol, self._clock)  # type: ignore[arg-type]
        broker.connect()
        self.brokers.append(broker)
        if self.late:
            # As asyncio: the protocol has its transport a few turns before the
            # connect's Deferred fires.
            late: Deferred[Any] = Deferred()
            self.late_connects.append(late)
            return late
        return succeed(None)

    def _callback_failed(self, error: BaseException) -> None:
        self.callback_errors.append(error)


class CallbackTestCase(SynchronousTestCase):
    """A :class:`Clock` per test; helpers to open a connection and a channel."""

    def setUp(self) -> None:
        self.clock = Clock()

    def make(self, *args: Any, **kw: Any) -> ClockConnection:
        """A :class:`ClockConnection` on the test's clock (nothing attempted yet)."""
        return ClockConnection(self.clock, *args, **kw)

    def open(self, **kw: Any) -> tuple[ClockConnection, FakeBroker]:
        """An open connection (its first attempt connects and the handshake runs)."""
        opened: list[Any] = []
        conn = self.make(ConnectionParameters(), on_open_callback=opened.append, **kw)
        self.clock.advance(0)
        broker = conn.brokers[-1]
        broker.handshake()
        self.assertEqual(opened, [conn])
        self.assertTrue(conn.is_open)
        return conn, broker

    def open_channel(self, **kw: Any) -> tuple[ClockConnection, FakeBroker, CallbackChannel]:
        """An open connection and channel 1; the frames written so far are read."""
        conn, broker = self.open(**kw)
        opened: list[CallbackChannel] = []
        ch = conn.channel(on_open_callback=opened.append)
        broker.expect(spec.Channel.Open, 1)
        broker.send_method(1, spec.Channel.OpenOk())
        self.assertEqual(opened, [ch])
        broker.read()
        return conn, broker, ch

    def finish(self, conn: ClockConnection, broker: FakeBroker | None = None) -> None:
        """End the test: close the connection if open, and check no timer is left."""
        if conn.is_open:
            conn.close()
        if broker is not None:
            broker.shutdown()
        self.assertFalse(conn.is_open)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class OpeningTests(CallbackTestCase):
    """Attempts, retry timing, aborting."""

    def test_first_attempt_on_first_turn(self) -> None:
        """Nothing is attempted in the constructor: the first attempt starts on the
        clock's first turn (as pika's, once the loop runs)."""
        conn = self.make(ConnectionParameters())
        self.assertEqual(conn.attempts, [])
        self.clock.advance(0)
        self.assertEqual(len(conn.attempts), 1)
        broker = conn.brokers[0]
        broker.handshake()
        self.assertTrue(conn.is_open)
        self.finish(conn, broker)

    def test_retry_delay_between_rounds(self) -> None:
        """connection_attempts=3, retry_delay=5: attempts at 0, 5 and 10 s, none
        between; then one open error callback with an AMQPConnectionError, and
        ``attempt_errors`` holds the three errors in order."""
        errors: list[Any] = []
        refusals = [ConnectionRefusedError(str(i)) for i in range(3)]
        params = ConnectionParameters(connection_attempts=3, retry_delay=5)
        conn = self.make(
            params,
            on_open_error_callback=lambda c, e: errors.append((c, e)),
            outcomes=list(refusals),
        )
        self.clock.advance(0)
        self.assertEqual([t for _, _, t in conn.attempts], [0])
        self.clock.advance(4.9)
        self.assertEqual([t for _, _, t in conn.attempts], [0])
        self.clock.advance(0.1)
        self.assertEqual([t for _, _, t in conn.attempts], [0, 5])
        self.assertEqual(errors, [])
        self.clock.advance(5)
        self.assertEqual([t for _, _, t in conn.attempts], [0, 5, 10])
        self.assertEqual(len(errors), 1)
        self.assertIs(errors[0][0], conn)
        self.assertIsInstance(errors[0][1], AMQPConnectionError)
        self.assertEqual(conn.attempt_errors, refusals)
        self.assertTrue(conn.is_closed)
        self.finish(conn)

    def test_attempt_plan_over_candidates(self) -> None:
        """Several parameters (create_connection's candidates): each round tries them
        all in order, rounds retry_delay apart (both from the last parameters); the
        connection opens with the parameters that answered."""
        first = ConnectionParameters(host="first", connection_attempts=9, retry_delay=7)
        second = ConnectionParameters(host="second", connection_attempts=2, retry_delay=3)
        opened: list[Any] = []
        conn = self.make(
            first,
            on_open_callback=opened.append,
            candidates=[first, second],
            outcomes=[
                ConnectionRefusedError(),
                ConnectionRefusedError(),
                ConnectionRefusedError(),
            ],
        )
        self.clock.advance(0)
        self.assertEqual([(h, t) for h, _, t in conn.attempts], [("first", 0), ("second", 0)])
        self.clock.advance(3)
        self.assertEqual(
            [(h, t) for h, _, t in conn.attempts],
            [("first", 0), ("second", 0), ("first", 3), ("second", 3)],
        )
        conn.brokers[0].handshake()
        self.assertEqual(opened, [conn])
        self.assertIs(conn.params, second)
        self.finish(conn, conn.brokers[0])

    def test_permanent_error_not_retried(self) -> None:
        """An attempt refused for its credentials (the broker's 403 ACCESS_REFUSED)
        ends the opening at once: no retry is scheduled, the open error callback gets
        that error."""
        errors: list[BaseException] = []
        refused = AccessRefused(403, "ACCESS_REFUSED")
        conn = self.make(
            ConnectionParameters(connection_attempts=5, retry_delay=1),
            on_open_error_callback=lambda c, e: errors.append(e),
            outcomes=[refused],
        )
        self.clock.advance(0)
        self.assertEqual(errors, [refused])
        self.assertEqual(len(conn.attempts), 1)
        self.finish(conn)

    def test_close_during_retry_wait(self) -> None:
        """close() while waiting to retry: the open error callback gets
        ConnectionOpenAborted, no timer is left, and no attempt is made later."""
        errors: list[BaseException] = []
        conn = self.make(
            ConnectionParameters(connection_attempts=3, retry_delay=5),
            on_open_error_callback=lambda c, e: errors.append(e),
            outcomes=[ConnectionRefusedError()],
        )
        self.clock.advance(0)
        self.assertEqual(len(conn.attempts), 1)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        conn.close()
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], ConnectionOpenAborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertEqual(len(conn.attempts), 1)
        self.assertTrue(conn.is_closed)
        self.assertRaises(ConnectionWrongStateError, conn.close)
        self.finish(conn)

    def test_close_before_first_turn(self) -> None:
        """close() before the clock's first turn: ConnectionOpenAborted, and nothing is
        ever attempted."""
        errors: list[BaseException] = []
        conn = self.make(
            ConnectionParameters(), on_open_error_callback=lambda c, e: errors.append(e)
        )
        conn.close()
        self.clock.advance(10)
        self.assertEqual(conn.attempts, [])
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], ConnectionOpenAborted)
        self.finish(conn)

    def test_close_during_handshake_drops_transport(self) -> None:
        """close() while the handshake is under way: ConnectionOpenAborted, the
        attempt's transport is dropped (the half-open connection is not left behind),
        and no timer (the handshake's stack timeout) is left."""
        errors: list[BaseException] = []
        opened: list[Any] = []
        conn = self.make(
            ConnectionParameters(),
            on_open_callback=opened.append,
            on_open_error_callback=lambda c, e: errors.append(e),
        )
        self.clock.advance(0)
        broker = conn.brokers[0]
        broker.start()
        broker.expect(spec.Connection.StartOk)
        conn.close()
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], ConnectionOpenAborted)
        self.assertTrue(broker.transport.disconnecting, "the attempt's transport is still open")
        self.assertEqual(opened, [])
        broker.shutdown()  # the transport reports the connection lost
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_open_error_default_removed(self) -> None:
        """add_on_open_error_callback(cb) replaces the default (logging) callback:
        only cb runs, with (connection, error)."""
        errors: list[Any] = []
        conn = self.make(ConnectionParameters(), outcomes=[ConnectionRefusedError()])
        conn.add_on_open_error_callback(lambda c, e: errors.append((c, e)))
        self.clock.advance(0)
        self.assertEqual(len(errors), 1)
        self.assertIs(errors[0][0], conn)
        self.finish(conn)


class ArgumentTests(CallbackTestCase):
    """Wrong argument types raise before anything is written."""

    def test_constructor_callbacks(self) -> None:
        """Non-callable connection callbacks raise TypeError; no attempt is scheduled."""
        for name in ("on_open_callback", "on_open_error_callback", "on_close_callback"):
            with self.subTest(name=name):
                self.assertRaises(
                    TypeError, self.make, ConnectionParameters(), **{name: "not callable"}
                )
        self.assertRaises(TypeError, self.make, "amqp://localhost")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_connection_methods(self) -> None:
        """Non-callable callbacks given to the connection's methods raise TypeError
        and write nothing."""
        conn, broker = self.open()
        broker.read()
        calls: list[Any] = [
            lambda: conn.channel(on_open_callback="nope"),  # type: ignore[arg-type]
            lambda: conn.add_on_open_callback(None),  # type: ignore[arg-type]
            lambda: conn.add_on_open_error_callback(1),  # type: ignore[arg-type]
            lambda: conn.add_on_close_callback("nope"),  # type: ignore[arg-type]
            lambda: conn.add_on_connection_blocked_callback(None),  # type: ignore[arg-type]
            lambda: conn.add_on_connection_unblocked_callback(None),  # type: ignore[arg-type]
            lambda: conn.update_secret("s", "r", callback="nope"),  # type: ignore[arg-type]
        ]
        for call in calls:
            with self.subTest(call=call):
                self.assertRaises(TypeError, call)
        broker.expect_nothing()
        self.assertEqual(conn._channels, {})
        self.finish(conn, broker)

    def test_channel_methods(self) -> None:
        """Non-callable callbacks (and a non-string queue) given to the channel's
        methods raise TypeError and write nothing; the channel stays open."""
        conn, broker, ch = self.open_channel()
        nope: Any = "not callable"
        calls: list[Any] = [
            lambda: ch.queue_declare("q", callback=nope),
            lambda: ch.queue_declare(123),  # type: ignore[arg-type]
            lambda: ch.queue_bind("q", "x", callback=nope),
            lambda: ch.queue_unbind("q", "x", callback=nope),
            lambda: ch.queue_purge("q", callback=nope),
            lambda: ch.queue_delete("q", callback=nope),
            lambda: ch.exchange_declare("x", callback=nope),
            lambda: ch.exchange_delete("x", callback=nope),
            lambda: ch.exchange_bind("a", "b", callback=nope),
            lambda: ch.exchange_unbind("a", "b", callback=nope),
            lambda: ch.basic_consume("q", nope),
            lambda: ch.basic_consume("q", lambda *a: None, callback=nope),
            lambda: ch.basic_cancel("t", callback=nope),
            lambda: ch.basic_get("q", nope),
            lambda: ch.basic_qos(prefetch_count=1, callback=nope),
            lambda: ch.basic_recover(callback=nope),
            lambda: ch.confirm_delivery(nope),
            lambda: ch.confirm_delivery(lambda f: None, callback=nope),
            lambda: ch.tx_select(callback=nope),
            lambda: ch.tx_commit(callback=nope),
            lambda: ch.tx_rollback(callback=nope),
            lambda: ch.flow(True, callback=nope),
            lambda: ch.add_on_close_callback(nope),
            lambda: ch.add_on_cancel_callback(nope),
            lambda: ch.add_on_return_callback(nope),
            lambda: ch.add_on_flow_callback(nope),
        ]
        for call in calls:
            with self.subTest(call=call):
                self.assertRaises(TypeError, call)
        broker.expect_nothing()
        self.assertEqual(ch.consumer_tags, [])
        self.assertTrue(ch.is_open)
        self.finish(conn, broker)


class ChannelTests(CallbackTestCase):
    """Consumers, confirms, flow, failures, as pika reports them."""

    def test_consumer_tag_made_synchronously(self) -> None:
        """basic_consume without a tag returns ``ctag<channel>.<hex>`` at once (before
        ConsumeOk), lists it in consumer_tags, sends it in Basic.Consume; the
        completion callback gets the Basic.ConsumeOk frame with that tag."""
        conn, broker, ch = self.open_channel()
        frames: list[Any] = []
        tag = ch.basic_consume("q", lambda *a: None, callback=frames.append)
        self.assertRegex(tag, r"\Actag1\.[0-9a-f]{32}\Z")
        self.assertEqual(ch.consumer_tags, [tag])
        consume = broker.expect(spec.Basic.Consume, 1)
        self.assertEqual(consume.consumer_tag, tag)
        self.assertEqual(frames, [])
        broker.send_method(1, spec.Basic.ConsumeOk(tag))
        self.assertEqual(len(frames), 1)
        self.assertIsInstance(frames[0], MethodFrame)
        self.assertEqual(frames[0].channel_number, 1)
        self.assertEqual(frames[0].method.consumer_tag, tag)
        other = ch.basic_consume("q", lambda *a: None)
        self.assertNotEqual(other, tag)
        self.assertTrue(re.fullmatch(r"ctag1\.[0-9a-f]{32}", other))
        self.finish(conn, broker)

    def test_deliveries_reach_message_callback(self) -> None:
        """A delivery calls on_message_callback(channel, Basic.Deliver, properties,
        body)."""
        conn, broker, ch = self.open_channel()
        got: list[Any] = []
        tag = ch.basic_consume("q", lambda *args: got.append(args), consumer_tag="c1")
        broker.expect(spec.Basic.Consume, 1)
        broker.send_method(1, spec.Basic.ConsumeOk(tag))
        props = spec.BasicProperties(content_type="text/plain")
        broker.send_message(1, spec.Basic.Deliver("c1", 7, False, "ex", "rk"), b"hi", props)
        self.assertEqual(len(got), 1)
        channel, method, properties, body = got[0]
        self.assertIs(channel, ch)
        self.assertIsInstance(method, spec.Basic.Deliver)
        self.assertEqual(
            (method.delivery_tag, properties.content_type, body), (7, "text/plain", b"hi")
        )
        self.finish(conn, broker)

    def test_multiple_ack_reported_once(self) -> None:
        """In confirm mode one Basic.Ack with multiple=True covering three publishes
        reaches ack_nack_callback once, as that frame; a Basic.Nack likewise."""
        conn, broker, ch = self.open_channel()
        confirms: list[Any] = []
        selected: list[Any] = []
        ch.confirm_delivery(confirms.append, callback=selected.append)
        broker.expect(spec.Confirm.Select, 1)
        broker.send_method(1, spec.Confirm.SelectOk())
        self.assertEqual(len(selected), 1)
        self.assertIsInstance(selected[0].method, spec.Confirm.SelectOk)
        for i in range(4):
            ch.basic_publish("", "q", b"%d" % i)
        broker.send_method(1, spec.Basic.Ack(3, True))
        self.assertEqual(len(confirms), 1)
        self.assertIsInstance(confirms[0], MethodFrame)
        self.assertEqual(confirms[0].channel_number, 1)
        self.assertIsInstance(confirms[0].method, spec.Basic.Ack)
        self.assertEqual((confirms[0].method.delivery_tag, confirms[0].method.multiple), (3, True))
        broker.send_method(1, spec.Basic.Nack(4, False, False))
        self.assertEqual(len(confirms), 2)
        self.assertIsInstance(confirms[1].method, spec.Basic.Nack)
        self.assertEqual(confirms[1].method.delivery_tag, 4)
        self.assertTrue(ch.is_open)
        self.finish(conn, broker)

    def test_flow_callback(self) -> None:
        """A Channel.Flow from the broker reaches add_on_flow_callback as a
        Channel.Flow frame (active False, then True)."""
        conn, broker, ch = self.open_channel()
        flows: list[Any] = []
        ch.add_on_flow_callback(flows.append)
        broker.send_method(1, spec.Channel.Flow(False))
        broker.send_method(1, spec.Channel.Flow(True))
        self.assertEqual(len(flows), 2)
        for frame, active in zip(flows, (False, True), strict=True):
            self.assertIsInstance(frame, MethodFrame)
            self.assertEqual(frame.channel_number, 1)
            self.assertIsInstance(frame.method, spec.Channel.Flow)
            self.assertEqual(frame.method.active, active)
        self.finish(conn, broker)

    def test_no_callback_means_nowait(self) -> None:
        """As pika: without a completion callback, the declare/delete/bind/purge
        requests carry the nowait bit (no reply is awaited); with one, they do not, and
        the callback gets the reply frame. Queue.Unbind has no nowait bit: it waits."""
        conn, broker, ch = self.open_channel()
        calls: list[tuple[Callable[..., None], type[spec.Method], tuple[Any, ...]]] = [
            (ch.exchange_declare, spec.Exchange.Declare, ("ex",)),
            (ch.exchange_delete, spec.Exchange.Delete, ("ex",)),
            (ch.exchange_bind, spec.Exchange.Bind, ("a", "b")),
            (ch.exchange_unbind, spec.Exchange.Unbind, ("a", "b")),
            (ch.queue_declare, spec.Queue.Declare, ("q",)),
            (ch.queue_bind, spec.Queue.Bind, ("q", "ex")),
            (ch.queue_purge, spec.Queue.Purge, ("q",)),
            (ch.queue_delete, spec.Queue.Delete, ("q",)),
        ]
        for call, kind, args in calls:
            with self.subTest(kind=kind.NAME):
                call(*args)
                method: Any = broker.expect(kind, 1)
                self.assertIs(method.nowait, True)
        broker.expect_nothing()
        replies: list[Any] = []
        ch.queue_declare("q", callback=replies.append)
        self.assertIs(broker.expect(spec.Queue.Declare, 1).nowait, False)
        broker.send_method(1, spec.Queue.DeclareOk("q", 0, 0))
        self.assertIsInstance(replies[0].method, spec.Queue.DeclareOk)
        self.finish(conn, broker)

    def test_flow_request_gives_bool(self) -> None:
        """flow(active, callback): the callback gets the broker's answer as a bool (as
        pika), not a frame."""
        conn, broker, ch = self.open_channel()
        answers: list[Any] = []
        ch.flow(True, callback=answers.append)
        broker.expect(spec.Channel.Flow, 1)
        broker.send_method(1, spec.Channel.FlowOk(True))
        self.assertEqual(answers, [True])
        self.finish(conn, broker)

    def test_failed_request_goes_to_close_callback(self) -> None:
        """A request the broker answers with Channel.Close: the completion callback
        is not called; the channel's close callback gets ChannelClosedByBroker with
        the broker's code; the client answers CloseOk; the connection stays open."""
        conn, broker, ch = self.open_channel()
        declared: list[Any] = []
        closed: list[Any] = []
        ch.add_on_close_callback(lambda c, e: closed.append((c, e)))
        ch.queue_declare("q", passive=True, callback=declared.append)
        broker.expect(spec.Queue.Declare, 1)
        broker.send_method(1, spec.Channel.Close(404, "NOT_FOUND - no queue 'q'", 50, 10))
        broker.expect(spec.Channel.CloseOk, 1)
        self.assertEqual(declared, [])
        self.assertEqual(len(closed), 1)
        self.assertIs(closed[0][0], ch)
        self.assertIsInstance(closed[0][1], ChannelClosedByBroker)
        self.assertEqual(closed[0][1].reply_code, 404)
        self.assertTrue(ch.is_closed)
        self.assertTrue(conn.is_open)
        self.assertEqual(conn.callback_errors, [])
        self.finish(conn, broker)

    def test_blocked_callbacks(self) -> None:
        """Connection.Blocked and Unblocked reach their callbacks as (connection,
        frame on channel 0)."""
        conn, broker = self.open()
        events: list[Any] = []
        conn.add_on_connection_blocked_callback(lambda c, f: events.append((c, f)))
        conn.add_on_connection_unblocked_callback(lambda c, f: events.append((c, f)))
        broker.send_method(0, spec.Connection.Blocked("low on memory"))
        broker.send_method(0, spec.Connection.Unblocked())
        self.assertEqual(
            [type(f.method) for _, f in events],
            [
                spec.Connection.Blocked,
                spec.Connection.Unblocked,
            ],
        )
        self.assertEqual([c for c, _ in events], [conn, conn])
        self.assertEqual(events[0][1].channel_number, 0)
        self.assertEqual(events[0][1].method.reason, "low on memory")
        self.finish(conn, broker)

    def test_client_close(self) -> None:
        """close(): Connection.Close is written; once CloseOk arrives on_close_callback
        gets ConnectionClosedByClient (200)."""
        reasons: list[BaseException] = []
        conn, broker = self.open(on_close_callback=lambda c, e: reasons.append(e))
        conn.close()
        self.assertTrue(conn.is_closing)
        close = broker.expect(spec.Connection.Close)
        self.assertEqual(close.reply_code, 200)
        self.assertEqual(reasons, [])
        broker.send_method(0, spec.Connection.CloseOk())
        self.assertEqual(len(reasons), 1)
        self.assertIsInstance(reasons[0], ConnectionClosedByClient)
        self.assertTrue(conn.is_closed)
        self.finish(conn, broker)


class CallbackErrorTests(CallbackTestCase):
    """Exceptions raised by application callbacks reach ``_callback_failed``."""

    def test_open_callback_raises(self) -> None:
        """on_open_callback raising: the error reaches _callback_failed; the connection
        is open all the same."""
        boom = Boom("open")

        def on_open(conn: Any) -> None:
            raise boom

        conn = self.make(ConnectionParameters(), on_open_callback=on_open)
        self.clock.advance(0)
        broker = conn.brokers[0]
        broker.handshake()
        self.assertEqual(conn.callback_errors, [boom])
        self.assertTrue(conn.is_open)
        self.finish(conn, broker)

    def test_open_error_callback_raises(self) -> None:
        """on_open_error_callback raising reaches _callback_failed."""
        boom = Boom("open error")

        def on_open_error(conn: Any, error: BaseException) -> None:
            raise boom

        conn = self.make(
            ConnectionParameters(),
            on_open_error_callback=on_open_error,
            outcomes=[ConnectionRefusedError()],
        )
        self.clock.advance(0)
        self.assertEqual(conn.callback_errors, [boom])
        self.finish(conn)

    def test_channel_callbacks_raise(self) -> None:
        """Raising completion, message, confirm and close callbacks each reach
        _callback_failed, in order; the channel keeps working in between."""
        conn, broker, ch = self.open_channel()
        errors = [Boom(name) for name in ("declare", "message", "confirm", "close")]

        def raiser(error: Boom) -> Any:
            def callback(*args: Any) -> None:
                raise error

            return callback

        ch.queue_declare("q", callback=raiser(errors[0]))
        broker.expect(spec.Queue.Declare, 1)
        broker.send_method(1, spec.Queue.DeclareOk("q", 0, 0))
        ch.basic_consume("q", raiser(errors[1]), consumer_tag="c1")
        broker.expect(spec.Basic.Consume, 1)
        broker.send_method(1, spec.Basic.ConsumeOk("c1"))
        broker.send_message(1, spec.Basic.Deliver("c1", 1, False, "", "q"), b"x")
        ch.confirm_delivery(raiser(errors[2]))
        broker.expect(spec.Confirm.Select, 1)
        broker.send_method(1, spec.Confirm.SelectOk())
        ch.basic_publish("", "q", b"y")
        broker.send_method(1, spec.Basic.Ack(1, False))
        ch.add_on_close_callback(raiser(errors[3]))
        broker.read()
        ch.close()
        broker.expect(spec.Channel.Close, 1)
        broker.send_method(1, spec.Channel.CloseOk())
        self.assertEqual(conn.callback_errors, errors)
        self.assertTrue(conn.is_open)
        self.finish(conn, broker)


class ReviewFixTests(CallbackTestCase):
    """Behaviour fixed after a review: argument checks before state changes, draining
    channel close, cancel stopping deliveries, confirm callbacks once, the close of an
    attempt whose transport is up before its Deferred fires."""

    def test_bad_close_arguments_change_nothing(self) -> None:
        """close() with a bad reply code raises TypeError and leaves the connection and
        the channel (open or opening) as they were; a good close() then works."""
        conn, broker, ch = self.open_channel()
        self.assertRaises(TypeError, ch.close, reply_code="oops")
        self.assertRaises(TypeError, ch.close, 0, 5)
        self.assertTrue(ch.is_open)
        self.assertRaises(TypeError, conn.close, reply_code="oops")
        self.assertTrue(conn.is_open)
        opening = conn.channel()
        self.assertRaises(TypeError, opening.close, "bad")
        self.assertTrue(opening.is_opening)
        broker.expect(spec.Channel.Open, 2)
        broker.send_method(2, spec.Channel.OpenOk())
        self.assertTrue(opening.is_open)
        ch.close()
        broker.expect(spec.Channel.Close, 1)
        broker.send_method(1, spec.Channel.CloseOk())
        self.assertTrue(ch.is_closed)
        self.finish(conn, broker)

    def test_channel_close_sends_what_was_asked_first(self) -> None:
        """As pika: close() after a declare awaiting its reply, a nowait bind and a
        publish sends them first (the declare's callback runs), then Channel.Close."""
        conn, broker, ch = self.open_channel()
        replies: list[Any] = []
        ch.queue_declare("a", callback=replies.append)
        ch.queue_declare("b", callback=replies.append)
        broker.expect(spec.Queue.Declare, 1)
        ch.queue_bind("b", "ex", "k")
        ch.basic_publish("ex", "k", b"last")
        closed: list[BaseException] = []
        ch.add_on_close_callback(lambda c, e: closed.append(e))
        ch.close()
        self.assertTrue(ch.is_closing)
        broker.send_method(1, spec.Queue.DeclareOk("a", 0, 0))
        broker.expect(spec.Queue.Declare, 1)
        broker.send_method(1, spec.Queue.DeclareOk("b", 0, 0))
        self.assertEqual([r.method.queue for r in replies], ["a", "b"])
        self.assertTrue(broker.expect(spec.Queue.Bind, 1).nowait)
        _, _, body = broker.expect_message(1)
        self.assertEqual(body, b"last")
        broker.expect(spec.Channel.Close, 1)
        broker.send_method(1, spec.Channel.CloseOk())
        self.assertEqual(len(closed), 1)
        self.assertIsInstance(closed[0], ChannelClosedByClient)
        self.finish(conn, broker)

    def test_cancel_stops_deliveries_at_once(self) -> None:
        """After basic_cancel, deliveries still on their way are not given to the
        callback but rejected with requeue (as pika); a second cancel of the same tag
        sends nothing; an auto-ack consumer still gets what the broker has forgotten."""
        conn, broker, ch = self.open_channel()
        seen: list[bytes] = []
        tag = ch.basic_consume("q", lambda c, m, p, body: seen.append(body))
        broker.expect(spec.Basic.Consume, 1)
        broker.send_method(1, spec.Basic.ConsumeOk(tag))
        oks: list[Any] = []
        ch.basic_cancel(tag, callback=oks.append)
        broker.expect(spec.Basic.Cancel, 1)
        ch.basic_cancel(tag)
        broker.expect_nothing()
        broker.send_message(1, spec.Basic.Deliver(tag, 7, False, "", "q"), b"late")
        self.assertEqual(seen, [])
        reject = broker.expect(spec.Basic.Reject, 1)
        self.assertEqual((reject.delivery_tag, reject.requeue), (7, True))
        self.assertEqual(ch.consumer_tags, [tag])
        broker.send_method(1, spec.Basic.CancelOk(tag))
        self.assertEqual(len(oks), 1)
        self.assertEqual(ch.consumer_tags, [])
        auto = ch.basic_consume("q", lambda c, m, p, body: seen.append(body), auto_ack=True)
        broker.expect(spec.Basic.Consume, 1)
        broker.send_method(1, spec.Basic.ConsumeOk(auto))
        ch.basic_cancel(auto)
        broker.expect(spec.Basic.Cancel, 1)
        broker.send_message(1, spec.Basic.Deliver(auto, 8, False, "", "q"), b"kept")
        self.assertEqual(seen, [b"kept"])
        broker.expect_nothing()
        broker.send_method(1, spec.Basic.CancelOk(auto))
        self.finish(conn, broker)

    def test_same_ack_nack_callback_once(self) -> None:
        """confirm_delivery twice with the same callback: each frame reaches it once."""
        conn, broker, ch = self.open_channel()
        frames: list[Any] = []
        ch.confirm_delivery(frames.append)
        ch.confirm_delivery(frames.append)
        broker.expect(spec.Confirm.Select, 1)
        broker.send_method(1, spec.Confirm.SelectOk())
        broker.expect(spec.Confirm.Select, 1)
        broker.send_method(1, spec.Confirm.SelectOk())
        ch.basic_publish("", "q", b"x")
        broker.expect_message(1)
        broker.send_method(1, spec.Basic.Ack(1, False))
        self.assertEqual(len(frames), 1)
        self.finish(conn, broker)

    def test_opening_channel_closed_with_the_connection(self) -> None:
        """A channel still opening when the connection is closed gets
        ChannelClosedByClient, as the open ones do (and as pika's do)."""
        conn, broker = self.open()
        opening = conn.channel()
        errors: list[BaseException] = []
        opening.add_on_close_callback(lambda c, e: errors.append(e))
        conn.close()
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], ChannelClosedByClient)
        self.finish(conn, broker)

    def test_close_while_the_connect_deferred_is_late(self) -> None:
        """As on asyncio, the protocol has its transport before the attempt's Deferred
        fires: close() then closes that protocol (its transport is dropped), the open
        error callbacks get ConnectionOpenAborted, and no timer is left."""
        errors: list[BaseException] = []
        conn = self.make(
            ConnectionParameters(), on_open_error_callback=lambda c, e: errors.append(e), late=True
        )
        self.clock.advance(0)
        broker = conn.brokers[0]
        conn.close()
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], ConnectionOpenAborted)
        self.assertTrue(broker.transport.disconnecting)
        conn.late_connects[0].callback(None)
        broker.shutdown()
        self.assertEqual(self.clock.getDelayedCalls(), [])

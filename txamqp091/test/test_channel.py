"""Unit tests of :class:`txamqp091.channel.Channel`.

The channel runs on an :class:`~txamqp091.protocol.AMQPProtocol` connected to a
:class:`~txamqp091.test.fakebroker.FakeBroker` through a
:class:`~twisted.internet.testing.StringTransport`; time is a
:class:`~twisted.internet.task.Clock`.  Every test ends with
:meth:`~txamqp091.test.fakebroker.AMQPTestCase.finish`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred

from txamqp091 import codec, spec
from txamqp091.channel import Channel
from txamqp091.exceptions import (
    AMQPTimeoutError,
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConsumerCancelled,
    DuplicateConsumerTag,
    NackError,
    StreamLostError,
    UnconfirmedPublishError,
    UnroutableError,
)
from txamqp091.message import (
    PUBLISHED,
    ConsumerQueue,
    PublishedMessage,
    ReceivedMessage,
    ReturnedMessage,
)
from txamqp091.test.fakebroker import AMQPTestCase, FakeBroker, raw_frame

Frame = codec.MethodFrame


class ChannelTestCase(AMQPTestCase):
    """Tests that start with an open connection and channel 1."""

    def open_channel(
        self, *, tune: dict[str, Any] | None = None, **parameters: Any
    ) -> tuple[FakeBroker, Channel]:
        """An open connection and channel; the frames written so far are read."""
        broker = self.open_connection(tune=tune, **parameters)
        ch = broker.open_channel()
        broker.read()
        return broker, ch

    def consume(
        self,
        broker: FakeBroker,
        ch: Channel,
        tag: str = "ctag",
        callback: Callable[..., object] | None = None,
    ) -> ConsumerQueue | None:
        """Start a consumer with *tag* (a queue object unless *callback* is given)."""
        d = ch.basic_consume("q", callback, consumer_tag=tag)
        consume = broker.expect(spec.Basic.Consume, ch.channel_number)
        self.assertEqual((consume.queue, consume.consumer_tag), ("q", tag))
        broker.send_method(ch.channel_number, spec.Basic.ConsumeOk(tag))
        result = self.successResultOf(d)
        if callback is not None:
            self.assertEqual(result, tag)
            return None
        queue, got_tag = result
        self.assertEqual(got_tag, tag)
        self.assertIsInstance(queue, ConsumerQueue)
        return queue  # type: ignore[no-any-return]

    def deliver(
        self,
        broker: FakeBroker,
        body: bytes,
        tag: str = "ctag",
        delivery_tag: int = 1,
        properties: spec.BasicProperties | None = None,
        channel: int = 1,
    ) -> None:
        """The broker delivers a message to consumer *tag*."""
        method = spec.Basic.Deliver(tag, delivery_tag, False, "ex", "rk")
        broker.send_message(channel, method, body, properties)


# ----------------------------------------------------------------------
# RPCs


class RpcTests(ChannelTestCase):
    """Synchronous methods: requests, replies, serialisation, timeouts, cancellation."""

    def test_queue_declare(self) -> None:
        """queue_declare writes Queue.Declare and fires with the DeclareOk frame."""
        broker, ch = self.open_channel()
        d = ch.queue_declare("jobs", durable=True, arguments={"x-max-length": 10})
        declare = broker.expect(spec.Queue.Declare, 1)
        self.assertEqual(declare.queue, "jobs")
        self.assertTrue(declare.durable)
        self.assertFalse(declare.exclusive)
        self.assertEqual(declare.arguments, {"x-max-length": 10})
        self.assertNoResult(d)
        broker.send_method(1, spec.Queue.DeclareOk("jobs", 3, 1))
        frame = self.successResultOf(d)
        self.assertIsInstance(frame, Frame)
        declare_ok = frame.method
        assert isinstance(declare_ok, spec.Queue.DeclareOk)
        self.assertEqual((declare_ok.queue, declare_ok.message_count), ("jobs", 3))
        self.finish(broker)

    def test_nowait_requests(self) -> None:
        """With ``nowait=True`` each request goes out with its nowait bit, fires with
        None at once and expects no reply; ``nowait`` must be a bool."""
        broker, ch = self.open_channel()
        table: list[tuple[Callable[[Channel], Deferred[Any]], type[spec.Method]]] = [
            (lambda ch: ch.exchange_declare("ex", "topic", nowait=True), spec.Exchange.Declare),
            (lambda ch: ch.exchange_delete("ex", nowait=True), spec.Exchange.Delete),
            (lambda ch: ch.exchange_bind("a", "b", "k", nowait=True), spec.Exchange.Bind),
            (lambda ch: ch.exchange_unbind("a", "b", "k", nowait=True), spec.Exchange.Unbind),
            (lambda ch: ch.queue_declare("q", nowait=True), spec.Queue.Declare),
            (lambda ch: ch.queue_bind("q", "ex", nowait=True), spec.Queue.Bind),
            (lambda ch: ch.queue_purge("q", nowait=True), spec.Queue.Purge),
            (lambda ch: ch.queue_delete("q", nowait=True), spec.Queue.Delete),
        ]
        for call, kind in table:
            with self.subTest(kind=kind.NAME):
                self.assertIsNone(self.successResultOf(call(ch)))
                method: Any = broker.expect(kind, 1)
                self.assertIs(method.nowait, True)
        broker.expect_nothing()
        self.assertRaises(TypeError, ch.queue_declare, "q", nowait=1)
        broker.expect_nothing()
        self.finish(broker)

    def test_nowait_keeps_its_place(self) -> None:
        """A nowait request made while an RPC waits for its reply goes out after that
        reply, and a publish made after it follows it: the wire keeps call order."""
        broker, ch = self.open_channel()
        first = ch.queue_declare("first")
        broker.expect(spec.Queue.Declare, 1)
        self.assertIsNone(self.successResultOf(ch.queue_bind("first", "ex", nowait=True)))
        ch.basic_publish("ex", "first", b"after")
        broker.expect_nothing()
        broker.send_method(1, spec.Queue.DeclareOk("first", 0, 0))
        self.successResultOf(first)
        self.assertTrue(broker.expect(spec.Queue.Bind, 1).nowait)
        method, _, body = broker.expect_message(1)
        self.assertIsInstance(method, spec.Basic.Publish)
        self.assertEqual(body, b"after")
        self.finish(broker)

    def test_rpc_table(self) -> None:
        """Each synchronous method writes its request and fires with its reply frame."""
        table: list[tuple[Callable[[Channel], Deferred[Any]], spec.Method, spec.Method]] = [
            (
                lambda ch: ch.exchange_declare("ex", "topic", durable=True),
                spec.Exchange.Declare(0, "ex", "topic", False, True, False, False, False, {}),
                spec.Exchange.DeclareOk(),
            ),
            (
                lambda ch: ch.exchange_delete("ex", if_unused=True),
                spec.Exchange.Delete(0, "ex", True, False),
                spec.Exchange.DeleteOk(),
            ),
            (
                lambda ch: ch.exchange_bind("dst", "src", "rk"),
                spec.Exchange.Bind(0, "dst", "src", "rk", False, {}),
                spec.Exchange.BindOk(),
            ),
            (
                lambda ch: ch.exchange_unbind("dst", "src", "rk"),
                spec.Exchange.Unbind(0, "dst", "src", "rk", False, {}),
                spec.Exchange.UnbindOk(),
            ),
            (
                lambda ch: ch.queue_bind("q", "ex"),
                spec.Queue.Bind(0, "q", "ex", "q", False, {}),
                spec.Queue.BindOk(),
            ),
            (
                lambda ch: ch.queue_unbind("q", "ex", "rk"),
                spec.Queue.Unbind(0, "q", "ex", "rk", {}),
                spec.Queue.UnbindOk(),
            ),
            (
                lambda ch: ch.queue_purge("q"),
                spec.Queue.Purge(0, "q", False),
                spec.Queue.PurgeOk(4),
            ),
            (
                lambda ch: ch.queue_delete("q", if_empty=True),
                spec.Queue.Delete(0, "q", False, True, False),
                spec.Queue.DeleteOk(2),
            ),
            (
                lambda ch: ch.basic_qos(prefetch_count=10, global_qos=True),
                spec.Basic.Qos(0, 10, True),
                spec.Basic.QosOk(),
            ),
            (
                lambda ch: ch.basic_recover(requeue=True),
                spec.Basic.Recover(True),
                spec.Basic.RecoverOk(),
            ),
            (lambda ch: ch.tx_select(), spec.Tx.Select(), spec.Tx.SelectOk()),
            (lambda ch: ch.tx_commit(), spec.Tx.Commit(), spec.Tx.CommitOk()),
            (lambda ch: ch.tx_rollback(), spec.Tx.Rollback(), spec.Tx.RollbackOk()),
            (lambda ch: ch.flow(False), spec.Channel.Flow(False), spec.Channel.FlowOk(False)),
        ]
        broker, ch = self.open_channel()
        for call, request, reply in table:
            with self.subTest(request=request.NAME):
                d = call(ch)
                frame = broker.next_frame()
                self.assertEqual(frame, Frame(1, request))
                self.assertNoResult(d)
                broker.send_method(1, reply)
                self.assertEqual(self.successResultOf(d), Frame(1, reply))
        self.finish(broker)

    def test_serialised(self) -> None:
        """A second RPC is not written until the first one's reply arrives."""
        broker, ch = self.open_channel()
        d1 = ch.queue_declare("a")
        d2 = ch.queue_bind("a", "ex", "rk")
        d3 = ch.queue_purge("a")
        self.assertEqual(broker.expect(spec.Queue.Declare, 1).queue, "a")
        broker.expect_nothing()
        broker.send_method(1, spec.Queue.DeclareOk("a", 0, 0))
        self.successResultOf(d1)
        self.assertEqual(broker.expect(spec.Queue.Bind, 1).routing_key, "rk")
        broker.expect_nothing()
        self.assertNoResult(d2)
        broker.send_method(1, spec.Queue.BindOk())
        self.successResultOf(d2)
        broker.expect(spec.Queue.Purge, 1)
        broker.send_method(1, spec.Queue.PurgeOk(0))
        self.successResultOf(d3)
        broker.expect_nothing()
        self.finish(broker)

    def test_rpc_timeout(self) -> None:
        """No reply within rpc_timeout → AMQPTimeoutError, and the channel closes."""
        broker, ch = self.open_channel(rpc_timeout=10)
        d1 = ch.queue_declare("a")
        d2 = ch.queue_purge("a")
        broker.read()
        self.clock.advance(9.9)
        self.assertNoResult(d1)
        self.clock.advance(0.1)
        error = self.failureResultOf(d1, AMQPTimeoutError).value
        self.assertIn("Queue.Declare", str(error))
        self.failureResultOf(d2, AMQPTimeoutError)
        broker.expect(spec.Channel.Close, 1)
        broker.expect_nothing()  # Queue.Purge was never written
        self.assertTrue(ch.is_closing)
        self.assertRaises(ChannelWrongStateError, ch.queue_declare, "b")
        broker.send_method(1, spec.Queue.DeclareOk("a", 0, 0))  # the late reply is dropped
        broker.send_method(1, spec.Channel.CloseOk())
        self.assertTrue(ch.is_closed)
        self.assertIs(ch.close_reason, error)
        self.assertTrue(broker.protocol.is_open)
        self.finish(broker)

    def test_no_rpc_timeout(self) -> None:
        """With rpc_timeout=None an RPC waits forever and leaves no timer."""
        broker, ch = self.open_channel(rpc_timeout=None)
        d = ch.queue_declare("a")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10_000)
        self.assertNoResult(d)
        broker.send_method(1, spec.Queue.DeclareOk("a", 0, 0))
        self.successResultOf(d)
        self.finish(broker)

    def test_cancel_queued(self) -> None:
        """Cancelling an RPC still waiting its turn removes it: it is never written."""
        broker, ch = self.open_channel()
        d1 = ch.queue_declare("a")
        d2 = ch.queue_delete("a")
        d3 = ch.queue_purge("b")
        d2.cancel()
        self.failureResultOf(d2, CancelledError)
        broker.expect(spec.Queue.Declare, 1)
        broker.send_method(1, spec.Queue.DeclareOk("a", 0, 0))
        self.successResultOf(d1)
        self.assertEqual(broker.expect(spec.Queue.Purge, 1).queue, "b")
        broker.send_method(1, spec.Queue.PurgeOk(0))
        self.successResultOf(d3)
        self.assertFalse(
            any(
                isinstance(f, Frame) and isinstance(f.method, spec.Queue.Delete)
                for f in broker.written
            )
        )
        self.finish(broker)

    def test_cancel_in_flight(self) -> None:
        """Cancelling an RPC already sent fails it at once; its reply is dropped when it comes."""
        broker, ch = self.open_channel()
        d1 = ch.queue_declare("a")
        d2 = ch.queue_purge("a")
        broker.expect(spec.Queue.Declare, 1)
        d1.cancel()
        self.failureResultOf(d1, CancelledError)
        broker.expect_nothing()  # the next RPC still waits for the reply
        broker.send_method(1, spec.Queue.DeclareOk("a", 0, 0))
        broker.expect(spec.Queue.Purge, 1)
        broker.send_method(1, spec.Queue.PurgeOk(7))
        self.assertEqual(self.successResultOf(d2), Frame(1, spec.Queue.PurgeOk(7)))
        self.assertTrue(ch.is_open)
        self.finish(broker)

    def test_cancel_in_flight_consume(self) -> None:
        """A cancelled basic_consume already sent is cancelled on the broker once it starts."""
        broker, ch = self.open_channel()
        d = ch.basic_consume("q", consumer_tag="t1")
        broker.expect(spec.Basic.Consume, 1)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        broker.send_method(1, spec.Basic.ConsumeOk("t1"))
        self.assertEqual(broker.expect(spec.Basic.Cancel, 1).consumer_tag, "t1")
        broker.send_method(1, spec.Basic.CancelOk("t1"))
        self.assertEqual(ch.consumer_tags, [])
        self.finish(broker)

    def test_bad_arguments_raise_before_writing(self) -> None:
        """Bad argument types raise TypeError/ValueError synchronously; nothing is written."""
        broker, ch = self.open_channel()
        busy = ch.queue_declare("busy")  # the others would wait their turn behind it
        before = broker.transport.value()
        calls: list[tuple[type[Exception], Callable[[], object]]] = [
            (TypeError, lambda: ch.queue_declare(5)),  # type: ignore[arg-type]
            (TypeError, lambda: ch.queue_declare("q", durable="yes")),  # type: ignore[arg-type]
            (TypeError, lambda: ch.queue_declare("q", arguments=[1])),  # type: ignore[arg-type]
            (TypeError, lambda: ch.queue_bind("q", 5)),  # type: ignore[arg-type]
            (TypeError, lambda: ch.exchange_declare(5)),  # type: ignore[arg-type]
            (TypeError, lambda: ch.exchange_declare("x", 5)),  # type: ignore[arg-type]
            (TypeError, lambda: ch.basic_qos(prefetch_count="3")),  # type: ignore[arg-type]
            (ValueError, lambda: ch.basic_qos(prefetch_count=-1)),
            (ValueError, lambda: ch.basic_qos(prefetch_count=70000)),
            (TypeError, lambda: ch.basic_publish("", "q", 123)),  # type: ignore[arg-type]
            (TypeError, lambda: ch.basic_publish(5, "q", b"")),  # type: ignore[arg-type]
            (TypeError, lambda: ch.basic_publish("", "q", b"", properties={})),  # type: ignore[arg-type]
            (TypeError, lambda: ch.basic_publish("", "q", b"", mandatory=1)),  # type: ignore[arg-type]
            (TypeError, lambda: ch.basic_consume(5)),  # type: ignore[arg-type]
            (TypeError, lambda: ch.basic_consume("q", 5)),  # type: ignore[arg-type]
            (TypeError, lambda: ch.basic_consume("q", consumer_tag=5)),  # type: ignore[arg-type]
            (TypeError, lambda: ch.basic_get(5)),  # type: ignore[arg-type]
            (TypeError, lambda: ch.basic_ack("1")),  # type: ignore[arg-type]
            (TypeError, lambda: ch.basic_cancel(5)),  # type: ignore[arg-type]
            (TypeError, lambda: ch.flow("on")),  # type: ignore[arg-type]
            (TypeError, lambda: ch.close("200")),  # type: ignore[arg-type]
            (TypeError, lambda: ch.close(200, 5)),  # type: ignore[arg-type]
        ]
        for error, call in calls:
            with self.subTest(error=error):
                self.assertRaises(error, call)
                self.assertEqual(broker.transport.value(), before)
        self.assertEqual(ch.consumer_tags, [])
        self.assertTrue(ch.is_open)
        broker.expect(spec.Queue.Declare, 1)
        broker.send_method(1, spec.Queue.DeclareOk("busy", 0, 0))
        self.successResultOf(busy)
        broker.expect_nothing()  # nothing was queued by the failed calls
        self.finish(broker)

    def test_ack_flags_must_be_bool(self) -> None:
        """basic_ack/nack/reject flags that are not bools raise TypeError; nothing is written.

        ``requeue="no"`` must not silently requeue (a non-empty str is truthy).
        """
        broker, ch = self.open_channel()
        before = broker.transport.value()
        calls: list[Callable[[], object]] = [
            lambda: ch.basic_ack(1, multiple="yes"),  # type: ignore[arg-type]
            lambda: ch.basic_nack(1, requeue="no"),  # type: ignore[arg-type]
            lambda: ch.basic_nack(1, multiple=1),  # type: ignore[arg-type]
            lambda: ch.basic_reject(1, requeue="no"),  # type: ignore[arg-type]
        ]
        for i, call in enumerate(calls):
            with self.subTest(call=i):
                self.assertRaises(TypeError, call)
                self.assertEqual(broker.transport.value(), before)
        self.finish(broker)


# ----------------------------------------------------------------------
# Closing


class ChannelCloseTests(ChannelTestCase):
    """Closing a channel, by either side or with its connection."""

    def test_draining_close(self) -> None:
        """close(drain=True) first sends what was asked before, in order -- the queued
        request (its reply awaited), the nowait request and the publish queued behind
        them -- then Channel.Close; new calls are refused meanwhile; every Deferred
        fires once."""
        broker, ch = self.open_channel()
        declared = ch.queue_declare("a")
        broker.expect(spec.Queue.Declare, 1)
        purged = ch.queue_purge("a")
        ch.queue_bind("a", "ex", nowait=True)
        ch.basic_publish("ex", "a", b"last")
        closed = ch.close(drain=True)
        broker.expect_nothing()
        self.assertTrue(ch.is_closing)
        self.assertRaises(ChannelWrongStateError, ch.queue_declare, "b")
        self.assertRaises(TypeError, ch.close, drain="yes")
        broker.send_method(1, spec.Queue.DeclareOk("a", 0, 0))
        self.successResultOf(declared)
        broker.expect(spec.Queue.Purge, 1)
        broker.send_method(1, spec.Queue.PurgeOk(0))
        self.successResultOf(purged)
        self.assertTrue(broker.expect(spec.Queue.Bind, 1).nowait)
        method, _, body = broker.expect_message(1)
        self.assertEqual((type(method), body), (spec.Basic.Publish, b"last"))
        close = broker.expect(spec.Channel.Close, 1)
        self.assertEqual(close.reply_code, 0)
        self.assertNoResult(closed)
        broker.send_method(1, spec.Channel.CloseOk())
        self.assertIsNone(self.successResultOf(closed))
        self.assertIsInstance(ch.close_reason, ChannelClosedByClient)
        self.finish(broker)

    def test_draining_close_with_nothing_pending(self) -> None:
        """close(drain=True) with nothing queued sends Channel.Close at once."""
        broker, ch = self.open_channel()
        closed = ch.close(drain=True)
        broker.expect(spec.Channel.Close, 1)
        broker.send_method(1, spec.Channel.CloseOk())
        self.successResultOf(closed)
        self.finish(broker)

    def test_draining_close_ended_by_the_broker(self) -> None:
        """A broker's Channel.Close while draining ends it: the waiting request fails
        with the broker's error, nothing more is sent but the CloseOk."""
        broker, ch = self.open_channel()
        declared = ch.queue_declare("a", passive=True)
        broker.expect(spec.Queue.Declare, 1)
        queued = ch.queue_purge("a")
        closed = ch.close(drain=True)
        broker.send_method(1, spec.Channel.Close(404, "NOT_FOUND", 50, 10))
        broker.expect(spec.Channel.CloseOk, 1)
        self.failureResultOf(declared, ChannelClosedByBroker)
        self.failureResultOf(queued, ChannelClosedByBroker)
        self.successResultOf(closed)
        broker.expect_nothing()
        self.finish(broker)

    def pending(self, broker: FakeBroker, ch: Channel) -> dict[str, Deferred[Any]]:
        """An in-flight RPC, a queued RPC, two unconfirmed publishes, a waiting get()."""
        broker.read()
        ch.confirm_delivery()
        broker.expect(spec.Confirm.Select, ch.channel_number)
        broker.send_method(ch.channel_number, spec.Confirm.SelectOk())
        queue = self.consume(broker, ch, "ctag")
        assert queue is not None
        pending = {
            "publish1": ch.basic_publish("", "q", b"1"),
            "publish2": ch.basic_publish("", "q", b"2"),
            "get": queue.get(),
            "in-flight": ch.queue_declare("a"),
            "queued": ch.queue_purge("a"),
        }
        for d in pending.values():
            self.assertNoResult(d)
        return pending

    def assertFailedWith(
        self, name: str, d: Deferred[Any], reason: Exception, kind: type[Exception]
    ) -> None:
        """*d* failed with *reason* itself, or, for a publish, with an
        UnconfirmedPublishError of the same kind that carries its message."""
        error = self.failureResultOf(d, kind).value
        if name.startswith("publish"):
            self.assertIsInstance(error, UnconfirmedPublishError)
            assert isinstance(error, UnconfirmedPublishError)
            self.assertIs(error.reason, reason)
            self.assertEqual(error.message.body, name[-1].encode())
        else:
            self.assertIs(error, reason)

    def test_broker_close_fans_out(self) -> None:
        """Broker Channel.Close fails every pending Deferred with ChannelClosedByBroker."""
        broker, ch = self.open_channel()
        pending = self.pending(broker, ch)
        seen: list[tuple[Channel, Exception]] = []
        ch.add_on_close_callback(lambda c, e: seen.append((c, e)))
        closed = ch.when_closed()
        broker.read()
        broker.send_method(1, spec.Channel.Close(406, "PRECONDITION_FAILED - x", 50, 10))
        broker.expect(spec.Channel.CloseOk, 1)
        reason = self.successResultOf(closed)
        self.assertIsInstance(reason, ChannelClosedByBroker)
        self.assertEqual(reason.args, (406, "PRECONDITION_FAILED - x"))
        for name, d in pending.items():
            with self.subTest(pending=name):
                self.assertFailedWith(name, d, reason, ChannelClosedByBroker)
        self.assertEqual(seen, [(ch, reason)])
        self.assertTrue(ch.is_closed)
        self.assertIs(ch.close_reason, reason)
        self.assertEqual(ch.unconfirmed_count, 0)
        self.assertEqual(ch.consumer_tags, [])
        self.assertNotIn(1, broker.protocol.channels)
        self.assertTrue(broker.protocol.is_open)
        broker.expect_nothing()  # the queued Queue.Purge was never written
        self.finish(broker)

    def test_later_calls_raise(self) -> None:
        """After the broker closed the channel, operations raise ChannelWrongStateError."""
        broker, ch = self.open_channel()
        broker.send_method(1, spec.Channel.Close(404, "NOT_FOUND"))
        broker.read()
        before = broker.transport.value()
        calls: list[Callable[[], object]] = [
            lambda: ch.queue_declare("q"),
            lambda: ch.basic_publish("", "q", b""),
            lambda: ch.basic_consume("q"),
            lambda: ch.basic_get("q"),
            lambda: ch.basic_ack(1),
            lambda: ch.basic_cancel("t"),
            lambda: ch.confirm_delivery(),
            lambda: ch.close(),
        ]
        for call in calls:
            self.assertRaises(ChannelWrongStateError, call)
        self.assertEqual(broker.transport.value(), before)
        self.finish(broker)

    def test_broker_close_during_open(self) -> None:
        """Channel.Close answering Channel.Open fails channel() with ChannelClosedByBroker."""
        broker = self.open_connection()
        d = broker.protocol.channel()
        broker.expect(spec.Channel.Open, 1)
        broker.send_method(1, spec.Channel.Close(504, "CHANNEL_ERROR"))
        broker.expect(spec.Channel.CloseOk, 1)
        self.assertEqual(self.failureResultOf(d, ChannelClosedByBroker).value.args[0], 504)
        self.assertEqual(broker.protocol.channels, {})
        self.finish(broker)

    def test_client_close(self) -> None:
        """close() fails pending work with ChannelClosedByClient and fires on CloseOk."""
        broker, ch = self.open_channel()
        pending = self.pending(broker, ch)
        broker.read()
        d = ch.close()
        close = broker.expect(spec.Channel.Close, 1)
        self.assertEqual((close.reply_code, close.reply_text), (0, "Normal shutdown"))
        self.assertTrue(ch.is_closing)
        for name in ("publish1", "publish2", "in-flight", "queued"):
            with self.subTest(pending=name):
                self.failureResultOf(pending[name], ChannelClosedByClient)
        # A consumer queue ends quietly: get() says the consumer was cancelled.
        self.failureResultOf(pending["get"], ConsumerCancelled)
        self.assertNoResult(d)
        self.assertRaises(ChannelWrongStateError, ch.close)
        broker.send_method(1, spec.Channel.CloseOk())
        self.assertIsNone(self.successResultOf(d))
        self.assertTrue(ch.is_closed)
        self.assertIsInstance(ch.close_reason, ChannelClosedByClient)
        self.assertNotIn(1, broker.protocol.channels)
        self.finish(broker)

    def test_close_crossing_broker_close(self) -> None:
        """Both sides close at once: the broker's Close is answered, then CloseOk ends it.

        The channel number stays taken until the CloseOk to our Close arrives.
        """
        broker, ch = self.open_channel()
        d = ch.close(200, "bye")
        broker.expect(spec.Channel.Close, 1)
        broker.send_method(1, spec.Channel.Close(406, "PRECONDITION_FAILED"))
        broker.expect(spec.Channel.CloseOk, 1)
        self.assertNoResult(d)
        self.assertIn(1, broker.protocol.channels)
        broker.send_method(1, spec.Channel.CloseOk())
        self.assertIsNone(self.successResultOf(d))
        self.assertTrue(ch.is_closed)
        self.assertNotIn(1, broker.protocol.channels)
        self.finish(broker)

    def test_close_ok_never_comes(self) -> None:
        """Without Channel.CloseOk the channel closes anyway after rpc_timeout."""
        broker, ch = self.open_channel(rpc_timeout=10)
        d = ch.close()
        self.clock.advance(9.9)
        self.assertNoResult(d)
        self.assertTrue(ch.is_closing)
        self.clock.advance(0.1)
        self.assertIsNone(self.successResultOf(d))
        self.assertTrue(ch.is_closed)
        self.assertIsInstance(ch.close_reason, ChannelClosedByClient)
        self.assertNotIn(1, broker.protocol.channels)
        self.finish(broker)

    def test_frames_while_closing_ignored(self) -> None:
        """Deliveries and replies racing our Channel.Close are dropped quietly."""
        broker, ch = self.open_channel()
        received: list[bytes] = []
        self.consume(broker, ch, "ctag", lambda c, m, p, b: received.append(b))
        d = ch.close()
        broker.read()
        self.deliver(broker, b"late")
        broker.send_method(1, spec.Queue.DeclareOk("q", 0, 0))
        broker.send_method(1, spec.Channel.CloseOk())
        self.assertEqual(received, [])
        self.successResultOf(d)
        self.assertTrue(broker.protocol.is_open)
        self.finish(broker)

    def test_connection_loss_fans_out(self) -> None:
        """Connection loss fails everything on every channel with the connection's reason."""
        broker = self.open_connection()
        channels = [broker.open_channel(), broker.open_channel()]
        pendings = [self.pending(broker, ch) for ch in channels]
        broker.lose()
        reason = broker.protocol.close_reason
        self.assertIsInstance(reason, StreamLostError)
        assert reason is not None
        for ch, pending in zip(channels, pendings, strict=True):
            for name, d in pending.items():
                with self.subTest(channel=ch.channel_number, pending=name):
                    self.assertFailedWith(name, d, reason, StreamLostError)
            self.assertTrue(ch.is_closed)
            self.assertIs(ch.close_reason, reason)
            self.assertIs(self.successResultOf(ch.when_closed()), reason)
        self.assertEqual(broker.protocol.channels, {})
        self.finish(broker)

    def test_connection_closed_by_broker_fans_out(self) -> None:
        """A broker Connection.Close fails channel work with ConnectionClosedByBroker."""
        broker, ch = self.open_channel()
        pending = self.pending(broker, ch)
        broker.send_method(0, spec.Connection.Close(320, "CONNECTION_FORCED"))
        for d in pending.values():
            self.failureResultOf(d, ConnectionClosedByBroker)
        self.assertIsInstance(ch.close_reason, ConnectionClosedByBroker)
        self.finish(broker)

    def test_connection_closed_by_client_fans_out(self) -> None:
        """Closing the connection fails channel work with ConnectionClosedByClient at once."""
        broker, ch = self.open_channel()
        pending = self.pending(broker, ch)
        broker.protocol.close()
        for d in pending.values():
            self.failureResultOf(d, ConnectionClosedByClient)
        self.assertTrue(ch.is_closed)
        self.finish(broker)


# ----------------------------------------------------------------------
# Publishing and confirms


class PublishTests(ChannelTestCase):
    """basic_publish, in and out of confirm mode."""

    def test_publish_frames(self) -> None:
        """basic_publish writes Basic.Publish, the content header and the body."""
        broker, ch = self.open_channel()
        props = spec.BasicProperties(content_type="text/plain", delivery_mode=2)
        ch.basic_publish("ex", "rk", b"hello", props, mandatory=True)
        method, got_props, body = broker.expect_message(1)
        self.assertEqual(method, spec.Basic.Publish(0, "ex", "rk", True, False))
        self.assertEqual(got_props, props)
        self.assertEqual(body, b"hello")
        broker.expect_nothing()
        self.finish(broker)

    def test_publish_body_types(self) -> None:
        """bytearray, memoryview and str (UTF-8) bodies are sent as their bytes."""
        broker, ch = self.open_channel()
        for body, expected in (
            (bytearray(b"ba"), b"ba"),
            (memoryview(b"mv"), b"mv"),
            ("héllo", "héllo".encode()),
            (b"", b""),
        ):
            with self.subTest(body=body):
                ch.basic_publish("", "q", body)
                self.assertEqual(broker.expect_message(1)[2], expected)
        self.finish(broker)

    def test_publish_split_by_frame_max(self) -> None:
        """A body longer than frame_max - 8 is split into body frames of at most that size."""
        broker, ch = self.open_channel(tune={"frame_max": 4096})
        body = bytes(range(256)) * 40  # 10240 bytes
        ch.basic_publish("", "q", body)
        got = broker.expect_message(1)[2]
        self.assertEqual(got, body)
        bodies = [f for f in broker.written if isinstance(f, codec.BodyFrame)]
        self.assertEqual([len(f.fragment) for f in bodies], [4088, 4088, 2064])
        self.finish(broker)

    def test_outside_confirm_mode_returns_published(self) -> None:
        """Outside confirm mode basic_publish returns the shared PUBLISHED, fired with None."""
        broker, ch = self.open_channel()
        d = ch.basic_publish("", "q", b"x")
        self.assertIs(d, PUBLISHED)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(ch.unconfirmed_count, 0)
        self.finish(broker)

    def test_published_result_stays_none(self) -> None:
        """Callbacks added to PUBLISHED run, but PUBLISHED keeps the result None."""
        broker, ch = self.open_channel()
        d = ch.basic_publish("", "q", b"x")
        chained = d.addCallback(lambda _: 42)
        self.assertEqual(self.successResultOf(chained), 42)
        failing = d.addCallback(lambda _: 1 / 0)
        self.failureResultOf(failing, ZeroDivisionError)
        d.addBoth(lambda _: "both")
        d.addErrback(lambda _: "err")
        self.assertIsNone(d.result)
        self.assertIsNone(PUBLISHED.result)
        self.assertIsNone(self.successResultOf(ch.basic_publish("", "q", b"y")))
        self.assertEqual(self.successResultOf(defer.gatherResults([d, d])), [None, None])

        async def awaits() -> object:
            return await ch.basic_publish("", "q", b"z")

        self.assertIsNone(self.successResultOf(defer.ensureDeferred(awaits())))
        self.assertIsNone(PUBLISHED.result)
        self.finish(broker)

    def test_publish_on_closing_channel_raises(self) -> None:
        """basic_publish on a closing channel raises ChannelWrongStateError and writes nothing."""
        broker, ch = self.open_channel()
        ch.close()
        before = broker.transport.value()
        self.assertRaises(ChannelWrongStateError, ch.basic_publish, "", "q", b"x")
        self.assertEqual(broker.transport.value(), before)
        self.finish(broker)


class ConfirmTests(ChannelTestCase):
    """Publisher confirms."""

    def confirming(self) -> tuple[FakeBroker, Channel]:
        broker, ch = self.open_channel()
        d = ch.confirm_delivery()
        broker.expect(spec.Confirm.Select, 1)
        self.assertTrue(ch.confirming)
        broker.send_method(1, spec.Confirm.SelectOk())
        self.assertEqual(self.successResultOf(d), Frame(1, spec.Confirm.SelectOk()))
        return broker, ch

    def test_ack(self) -> None:
        """A publish in confirm mode fires with the Basic.Ack."""
        broker, ch = self.confirming()
        d = ch.basic_publish("", "q", b"x")
        self.assertIsNot(d, PUBLISHED)
        self.assertEqual(ch.unconfirmed_count, 1)
        self.assertNoResult(d)
        broker.send_method(1, spec.Basic.Ack(1, False))
        ack = self.successResultOf(d)
        self.assertIsInstance(ack, spec.Basic.Ack)
        self.assertEqual(ack.delivery_tag, 1)
        self.assertEqual(ch.unconfirmed_count, 0)
        self.finish(broker)

    def test_multiple_ack(self) -> None:
        """Ack(n, multiple) settles every publish up to n, and no further."""
        broker, ch = self.confirming()
        ds = [ch.basic_publish("", "q", b"%d" % i) for i in range(4)]
        broker.send_method(1, spec.Basic.Ack(3, True))
        for d in ds[:3]:
            self.successResultOf(d)
        self.assertNoResult(ds[3])
        broker.send_method(1, spec.Basic.Ack(4, False))
        self.assertEqual(self.successResultOf(ds[3]).delivery_tag, 4)
        self.finish(broker)

    def test_confirm_callback_gets_frames_as_sent(self) -> None:
        """``add_on_confirm_callback`` receives each Ack/Nack frame as the broker sent
        it (a multiple ack once, not per publish), after the publishes are settled;
        a failing callback is logged and does not stop the others."""
        broker, ch = self.confirming()
        seen: list[tuple[type, int, bool, int]] = []

        def failing(frame: Any) -> None:
            raise RuntimeError("boom")

        ch.add_on_confirm_callback(failing)

        def record(frame: Any) -> None:
            method: Any = frame.method
            seen.append((type(method), method.delivery_tag, method.multiple, ch.unconfirmed_count))

        ch.add_on_confirm_callback(record)
        self.assertRaises(TypeError, ch.add_on_confirm_callback, "not callable")
        ds = [ch.basic_publish("", "q", b"%d" % i) for i in range(3)]
        for d in ds:
            d.addErrback(lambda f: None)
        broker.send_method(1, spec.Basic.Ack(2, True))
        broker.send_method(1, spec.Basic.Nack(3, False, False))
        self.assertEqual(seen, [(spec.Basic.Ack, 2, True, 1), (spec.Basic.Nack, 3, False, 0)])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        self.finish(broker)

    def test_confirms_without_per_publish_tracking(self) -> None:
        """``confirm_delivery(per_publish=False)``: publishes return the fired
        ``PUBLISHED`` and keep nothing; the frames still reach the confirm callbacks."""
        broker, ch = self.open_channel()
        self.assertRaises(TypeError, ch.confirm_delivery, per_publish="no")
        d = ch.confirm_delivery(per_publish=False)
        broker.expect(spec.Confirm.Select, 1)
        broker.send_method(1, spec.Confirm.SelectOk())
        self.successResultOf(d)
        tags: list[tuple[int, bool]] = []

        def record(frame: Any) -> None:
            method: Any = frame.method
            tags.append((method.delivery_tag, method.multiple))

        ch.add_on_confirm_callback(record)
        self.assertIs(ch.basic_publish("", "q", b"a"), PUBLISHED)
        self.assertIs(ch.basic_publish("", "q", b"b"), PUBLISHED)
        self.assertEqual(ch.unconfirmed_count, 0)
        broker.send_method(1, spec.Basic.Ack(1, False))
        broker.send_method(1, spec.Basic.Nack(2, False, False))
        self.assertEqual(tags, [(1, False), (2, False)])
        self.finish(broker)

    def test_per_publish_cannot_change_once_confirming(self) -> None:
        """Switching per_publish once confirms are on raises ValueError and changes
        nothing; on a closed channel confirm_delivery raises before changing anything."""
        broker, ch = self.confirming()
        self.assertRaises(ValueError, ch.confirm_delivery, per_publish=False)
        d = ch.basic_publish("", "q", b"x")
        self.assertIsNot(d, PUBLISHED)
        broker.send_method(1, spec.Basic.Ack(1, False))
        self.successResultOf(d)
        self.finish(broker)

    def test_nack(self) -> None:
        """Basic.Nack fails the publish with NackError carrying the published message."""
        broker, ch = self.confirming()
        props = spec.BasicProperties(message_id="m1")
        d1 = ch.basic_publish("ex", "rk", b"body", props, mandatory=True)
        d2 = ch.basic_publish("ex", "rk", b"other")
        broker.send_method(1, spec.Basic.Nack(1, False, False))
        error = self.failureResultOf(d1, NackError).value
        self.assertEqual(error.messages, [PublishedMessage("ex", "rk", b"body", props, True)])
        self.assertNoResult(d2)
        broker.send_method(1, spec.Basic.Nack(2, True, False))
        self.failureResultOf(d2, NackError)
        self.finish(broker)

    def test_return_then_ack(self) -> None:
        """Basic.Return then Ack fails a mandatory publish with UnroutableError."""
        broker, ch = self.confirming()
        returns: list[tuple[Channel, spec.Method, spec.BasicProperties, bytes]] = []
        ch.add_on_return_callback(lambda c, m, p, b: returns.append((c, m, p, b)))
        d1 = ch.basic_publish("ex", "nowhere", b"lost", mandatory=True)
        d2 = ch.basic_publish("ex", "somewhere", b"fine", mandatory=True)
        ret = spec.Basic.Return(312, "NO_ROUTE", "ex", "nowhere")
        broker.send_message(1, ret, b"lost")
        self.assertNoResult(d1)
        broker.send_method(1, spec.Basic.Ack(2, True))
        error = self.failureResultOf(d1, UnroutableError).value
        self.assertEqual(len(error.messages), 1)
        returned = error.messages[0]
        self.assertIsInstance(returned, ReturnedMessage)
        self.assertEqual((returned.method, returned.body), (ret, b"lost"))
        self.assertEqual(self.successResultOf(d2).delivery_tag, 2)
        self.assertEqual(len(returns), 1)
        self.assertEqual((returns[0][0], returns[0][1], returns[0][3]), (ch, ret, b"lost"))
        self.finish(broker)

    def test_return_with_edited_properties_still_fails_the_publish(self) -> None:
        """A broker that adds a header before routing returns other properties than
        those published: the publish with the same exchange, routing key and body
        still fails (it is never reported confirmed); an exact match wins over it."""
        broker, ch = self.confirming()
        plain = ch.basic_publish("ex", "nowhere", b"lost", mandatory=True)
        tagged = spec.BasicProperties(headers={"n": 1})
        exact = ch.basic_publish("ex", "nowhere", b"lost", tagged, mandatory=True)
        edited = spec.BasicProperties(headers={"timestamp_in_ms": 1700000000000})
        ret = spec.Basic.Return(312, "NO_ROUTE", "ex", "nowhere")
        broker.send_message(1, ret, b"lost", edited)  # matches none exactly
        broker.send_message(1, ret, b"lost", tagged)  # matches the second exactly
        broker.send_method(1, spec.Basic.Ack(2, True))
        self.failureResultOf(plain, UnroutableError)
        self.failureResultOf(exact, UnroutableError)
        self.finish(broker)

    def test_each_deferred_fires_once(self) -> None:
        """Repeated or overlapping acks, nacks and a later close settle each publish once."""
        broker, ch = self.confirming()
        fired: list[tuple[int, object]] = []

        def record(i: int) -> Callable[[object], None]:
            return lambda result: fired.append((i, result))

        ds = [ch.basic_publish("", "q", b"x") for _ in range(3)]
        for i, d in enumerate(ds):
            d.addBoth(record(i))
        broker.send_method(1, spec.Basic.Ack(1, False))
        broker.send_method(1, spec.Basic.Ack(1, False))
        broker.send_method(1, spec.Basic.Nack(1, False, False))
        broker.send_method(1, spec.Basic.Ack(2, True))
        broker.send_method(1, spec.Basic.Nack(2, True, False))
        self.assertEqual([i for i, _ in fired], [0, 1])
        broker.send_method(1, spec.Channel.Close(406, "x"))
        self.assertEqual([i for i, _ in fired], [0, 1, 2])
        self.assertIsInstance(fired[2][1].value, ChannelClosedByBroker)  # type: ignore[attr-defined]
        self.finish(broker)

    def test_publish_before_select_ok(self) -> None:
        """Publishes made after confirm_delivery(), before Select is even sent, are confirmed."""
        broker, ch = self.open_channel()
        declare = ch.queue_declare("q")
        select = ch.confirm_delivery()
        self.assertTrue(ch.confirming)
        d = ch.basic_publish("", "q", b"early")
        broker.expect(spec.Queue.Declare, 1)
        broker.expect_nothing()  # Select and the publish wait their turn
        broker.send_method(1, spec.Queue.DeclareOk("q", 0, 0))
        broker.expect(spec.Confirm.Select, 1)
        broker.send_method(1, spec.Confirm.SelectOk())
        self.assertEqual(broker.expect_message(1)[2], b"early")
        self.successResultOf(declare)
        self.successResultOf(select)
        broker.send_method(1, spec.Basic.Ack(1, False))
        self.assertEqual(self.successResultOf(d).delivery_tag, 1)
        self.finish(broker)


# ----------------------------------------------------------------------
# Receiving content


class ContentTests(ChannelTestCase):
    """Deliveries, basic_get, consumer queues, cancellation."""

    def test_consumer_callback(self) -> None:
        """The consumer callback gets (channel, method, properties, body)."""
        broker, ch = self.open_channel()
        seen: list[tuple[Channel, spec.Method, spec.BasicProperties, bytes]] = []
        self.consume(broker, ch, "ctag", lambda c, m, p, b: seen.append((c, m, p, b)))
        props = spec.BasicProperties(content_type="application/json", headers={"k": 1})
        self.deliver(broker, b'{"a": 1}', delivery_tag=7, properties=props)
        self.assertEqual(len(seen), 1)
        c, m, p, b = seen[0]
        self.assertIs(c, ch)
        self.assertEqual(m, spec.Basic.Deliver("ctag", 7, False, "ex", "rk"))
        self.assertEqual(p, props)
        self.assertEqual(b, b'{"a": 1}')
        self.finish(broker)

    def test_many_body_frames(self) -> None:
        """A body split over many body frames is reassembled exactly."""
        broker, ch = self.open_channel(tune={"frame_max": 4096})
        bodies: list[bytes] = []
        self.consume(broker, ch, "ctag", lambda c, m, p, b: bodies.append(b))
        body = bytes(i % 251 for i in range(50_000))  # 13 body frames
        self.deliver(broker, body)
        self.deliver(broker, b"next", delivery_tag=2)
        self.assertEqual(bodies, [body, b"next"])
        self.finish(broker)

    def test_body_of_exactly_frame_max(self) -> None:
        """A body frame of exactly frame_max bytes (header and end included) is accepted."""
        broker, ch = self.open_channel(tune={"frame_max": 4096})
        bodies: list[bytes] = []
        self.consume(broker, ch, "ctag", lambda c, m, p, b: bodies.append(b))
        self.deliver(broker, b"y" * 4088)
        self.assertEqual(bodies, [b"y" * 4088])
        self.finish(broker)

    def test_empty_body(self) -> None:
        """A delivery with an empty body (no body frame) is delivered with b''."""
        broker, ch = self.open_channel()
        bodies: list[bytes] = []
        self.consume(broker, ch, "ctag", lambda c, m, p, b: bodies.append(b))
        self.deliver(broker, b"")
        self.deliver(broker, b"after", delivery_tag=2)
        self.assertEqual(bodies, [b"", b"after"])
        self.finish(broker)

    def test_empty_body_frame_after_zero_size_header(self) -> None:
        """A body frame after a zero-size header is a 505 violation however the bytes arrive.

        A zero-size header completes the message; a body frame after it has
        no header of its own.
        """
        broker, ch = self.open_channel()
        bodies: list[bytes] = []
        self.consume(broker, ch, "ctag", lambda c, m, p, b: bodies.append(b))
        deliver = codec.encode_method_frame(1, spec.Basic.Deliver("ctag", 1, False, "", "q"))
        header = codec.encode_header_frame(1, 0, None)
        broker.send(deliver + header + raw_frame(3, 1, b""))
        self.assertEqual(broker.expect(spec.Connection.Close).reply_code, 505)
        self.assertEqual(bodies, [b""])
        self.finish(broker)

    def test_deliveries_in_one_read(self) -> None:
        """Several messages and methods arriving in one read are dispatched in order."""
        broker, ch = self.open_channel(tune={"frame_max": 4096})
        bodies: list[bytes] = []
        self.consume(broker, ch, "ctag", lambda c, m, p, b: bodies.append(b))
        d = ch.queue_declare("q")
        broker.read()
        data = b"".join(
            codec.encode_message(
                1, spec.Basic.Deliver("ctag", i, False, "", "q"), None, body, 4096
            )
            for i, body in enumerate([b"a", b"b" * 9000, b""], 1)
        ) + codec.encode_method_frame(1, spec.Queue.DeclareOk("q", 0, 0))
        broker.send(data)
        self.assertEqual(bodies, [b"a", b"b" * 9000, b""])
        self.successResultOf(d)
        self.finish(broker)

    def test_interleaved_channels(self) -> None:
        """Content on two channels, frames interleaved, is assembled per channel."""
        broker = self.open_connection(tune={"frame_max": 4096})
        ch1, ch2 = broker.open_channel(), broker.open_channel()
        broker.read()
        got: list[tuple[int, bytes]] = []
        self.consume(broker, ch1, "t", lambda c, m, p, b: got.append((c.channel_number, b)))
        self.consume(broker, ch2, "t", lambda c, m, p, b: got.append((c.channel_number, b)))
        one = codec.encode_message(1, spec.Basic.Deliver("t", 1), None, b"1" * 5000, 4096)
        two = codec.encode_message(2, spec.Basic.Deliver("t", 1), None, b"2" * 5000, 4096)
        frames1 = codec.FrameDecoder(4096).feed(one)
        frames2 = codec.FrameDecoder(4096).feed(two)
        interleaved = [f for pair in zip(frames1, frames2, strict=True) for f in pair]
        broker.send(codec.encode_frames(interleaved))
        self.assertEqual(sorted(got), [(1, b"1" * 5000), (2, b"2" * 5000)])
        self.finish(broker)

    def test_basic_get_ok(self) -> None:
        """basic_get fires with a ReceivedMessage for Basic.GetOk and its content."""
        broker, ch = self.open_channel(tune={"frame_max": 4096})
        d = ch.basic_get("q", auto_ack=True)
        get = broker.expect(spec.Basic.Get, 1)
        self.assertEqual((get.queue, get.no_ack), ("q", True))
        get_ok = spec.Basic.GetOk(5, False, "ex", "rk", 2)
        props = spec.BasicProperties(priority=3)
        broker.send_message(1, get_ok, b"z" * 6000, props)
        msg = self.successResultOf(d)
        self.assertIsInstance(msg, ReceivedMessage)
        assert msg is not None
        self.assertEqual(msg, ReceivedMessage(ch, get_ok, props, b"z" * 6000))
        self.finish(broker)

    def test_basic_get_empty(self) -> None:
        """basic_get fires with None for Basic.GetEmpty."""
        broker, ch = self.open_channel()
        d = ch.basic_get("q")
        broker.expect(spec.Basic.Get, 1)
        broker.send_method(1, spec.Basic.GetEmpty())
        self.assertIsNone(self.successResultOf(d))
        self.finish(broker)

    def test_get_ok_without_get(self) -> None:
        """Basic.GetOk with no basic_get pending is a peer violation (505)."""
        broker, _ch = self.open_channel()
        broker.send_message(1, spec.Basic.GetOk(1, False, "", "q", 0), b"x")
        self.assertEqual(broker.expect(spec.Connection.Close).reply_code, 505)
        self.finish(broker)

    def test_reply_without_request(self) -> None:
        """A reply method with no RPC waiting for it is a peer violation (505)."""
        broker, ch = self.open_channel()
        broker.send_method(1, spec.Queue.DeclareOk("q", 0, 0))
        self.assertEqual(broker.expect(spec.Connection.Close).reply_code, 505)
        self.assertTrue(ch.is_closed)
        self.finish(broker)

    def test_delivery_for_unknown_consumer(self) -> None:
        """A delivery for a consumer tag not on the channel is dropped; the channel stays open."""
        broker, ch = self.open_channel()
        bodies: list[bytes] = []
        self.consume(broker, ch, "known", lambda c, m, p, b: bodies.append(b))
        self.deliver(broker, b"stray", tag="unknown")
        self.deliver(broker, b"mine", tag="known")
        self.assertEqual(bodies, [b"mine"])
        self.assertTrue(ch.is_open)
        broker.expect_nothing()
        self.finish(broker)

    def test_consumer_queue_get(self) -> None:
        """ConsumerQueue.get() returns buffered messages in order, then waits for the next."""
        broker, ch = self.open_channel()
        queue = self.consume(broker, ch)
        assert queue is not None
        self.deliver(broker, b"one", delivery_tag=1)
        self.deliver(broker, b"two", delivery_tag=2)
        self.assertEqual(len(queue), 2)
        first = self.successResultOf(queue.get())
        self.assertEqual((first.body, first.method.delivery_tag), (b"one", 1))  # type: ignore[attr-defined]
        self.assertIs(first.channel, ch)
        self.assertEqual(self.successResultOf(queue.get()).body, b"two")
        waiting = queue.get()
        self.assertNoResult(waiting)
        self.deliver(broker, b"three", delivery_tag=3)
        self.assertEqual(self.successResultOf(waiting).body, b"three")
        self.finish(broker)

    def test_empty_consumer_tag_is_made_up(self) -> None:
        """consumer_tag="" is treated as none, as pika does: a tag is made up and sent
        (RabbitMQ would otherwise pick one the client does not know)."""
        broker, ch = self.open_channel()
        seen: list[bytes] = []
        d = ch.basic_consume("q", lambda c, m, p, body: seen.append(body), consumer_tag="")
        consume = broker.expect(spec.Basic.Consume, 1)
        self.assertRegex(consume.consumer_tag, r"^ctag1\.[0-9a-f]{32}$")
        broker.send_method(1, spec.Basic.ConsumeOk(consume.consumer_tag))
        self.assertEqual(self.successResultOf(d), consume.consumer_tag)
        self.deliver(broker, b"found", tag=consume.consumer_tag)
        self.assertEqual(seen, [b"found"])
        self.finish(broker)

    def test_consumer_queue_get_nowait(self) -> None:
        """ConsumerQueue.get_nowait() takes a received message at once, in order, and
        raises IndexError when none is waiting."""
        broker, ch = self.open_channel()
        queue = self.consume(broker, ch)
        assert queue is not None
        self.assertRaises(IndexError, queue.get_nowait)
        self.deliver(broker, b"one", delivery_tag=1)
        self.deliver(broker, b"two", delivery_tag=2)
        self.assertEqual(queue.get_nowait().body, b"one")
        self.assertEqual(len(queue), 1)
        self.assertEqual(queue.get_nowait().body, b"two")
        self.assertRaises(IndexError, queue.get_nowait)
        self.finish(broker)

    def test_async_iteration(self) -> None:
        """``async for`` over a ConsumerQueue yields deliveries, ends quietly on basic_cancel."""
        broker, ch = self.open_channel()
        queue = self.consume(broker, ch, "ctag")
        assert queue is not None
        self.deliver(broker, b"buffered", delivery_tag=1)

        async def collect() -> list[bytes]:
            bodies = []
            async for msg in queue:
                bodies.append(msg.body)
                ch.basic_ack(msg.method.delivery_tag)  # type: ignore[attr-defined]
            return bodies

        d = defer.ensureDeferred(collect())
        self.assertNoResult(d)
        self.deliver(broker, b"live", delivery_tag=2)
        self.assertNoResult(d)
        broker.read()
        cancel = ch.basic_cancel("ctag")
        self.assertEqual(broker.expect(spec.Basic.Cancel, 1).consumer_tag, "ctag")
        broker.send_method(1, spec.Basic.CancelOk("ctag"))
        self.assertEqual(self.successResultOf(cancel), Frame(1, spec.Basic.CancelOk("ctag")))
        self.assertEqual(self.successResultOf(d), [b"buffered", b"live"])
        self.assertEqual(ch.consumer_tags, [])
        acks = [
            f.method
            for f in broker.written
            if isinstance(f, Frame) and isinstance(f.method, spec.Basic.Ack)
        ]
        self.assertEqual(acks, [spec.Basic.Ack(1, False), spec.Basic.Ack(2, False)])
        self.finish(broker)

    def test_broker_cancel(self) -> None:
        """Broker Basic.Cancel: CancelOk written, get() fails ConsumerCancelled, callbacks run."""
        broker, ch = self.open_channel()
        queue = self.consume(broker, ch, "ctag")
        assert queue is not None
        cancels: list[codec.MethodFrame[spec.Method]] = []
        ch.add_on_cancel_callback(cancels.append)
        self.deliver(broker, b"kept")
        waiting_after = None

        async def iterate() -> list[bytes]:
            bodies = []
            async for msg in queue:
                bodies.append(msg.body)
            return bodies

        iteration = defer.ensureDeferred(iterate())
        broker.read()
        broker.send_method(1, spec.Basic.Cancel("ctag", False))
        self.assertEqual(broker.expect(spec.Basic.CancelOk, 1).consumer_tag, "ctag")
        self.assertEqual(cancels, [Frame(1, spec.Basic.Cancel("ctag", False))])
        self.assertEqual(ch.consumer_tags, [])
        self.assertTrue(queue.closed)
        waiting_after = queue.get()
        self.failureResultOf(waiting_after, ConsumerCancelled)
        self.failureResultOf(iteration, ConsumerCancelled)
        self.assertTrue(ch.is_open)
        self.finish(broker)

    def test_broker_cancel_nowait(self) -> None:
        """Broker Basic.Cancel with nowait: no CancelOk, the waiting get() fails."""
        broker, ch = self.open_channel()
        queue = self.consume(broker, ch, "ctag")
        assert queue is not None
        waiting = queue.get()
        broker.read()
        broker.send_method(1, spec.Basic.Cancel("ctag", True))
        broker.expect_nothing()
        self.failureResultOf(waiting, ConsumerCancelled)
        self.finish(broker)

    def test_duplicate_consumer_tag(self) -> None:
        """A consumer tag already in use raises DuplicateConsumerTag before anything is written."""
        broker, ch = self.open_channel()
        self.consume(broker, ch, "ctag")
        before = broker.transport.value()
        self.assertRaises(DuplicateConsumerTag, ch.basic_consume, "q", None, consumer_tag="ctag")
        self.assertEqual(broker.transport.value(), before)
        self.finish(broker)

    def test_generated_consumer_tag(self) -> None:
        """Without a consumer_tag one is generated, sent and returned."""
        broker, ch = self.open_channel()
        d = ch.basic_consume("q", lambda c, m, p, b: None)
        tag = broker.expect(spec.Basic.Consume, 1).consumer_tag
        self.assertTrue(tag)
        broker.send_method(1, spec.Basic.ConsumeOk(tag))
        self.assertEqual(self.successResultOf(d), tag)
        self.assertEqual(ch.consumer_tags, [tag])
        self.finish(broker)

    def test_acks_written(self) -> None:
        """basic_ack, basic_nack and basic_reject write their methods on the channel."""
        broker, ch = self.open_channel()
        ch.basic_ack(1)
        ch.basic_ack(5, multiple=True)
        ch.basic_nack(6, requeue=False)
        ch.basic_reject(7)
        self.assertEqual(
            broker.read(),
            [
                Frame(1, spec.Basic.Ack(1, False)),
                Frame(1, spec.Basic.Ack(5, True)),
                Frame(1, spec.Basic.Nack(6, False, False)),
                Frame(1, spec.Basic.Reject(7, True)),
            ],
        )
        self.finish(broker)

    def test_return_callback_outside_confirm(self) -> None:
        """Basic.Return outside confirm mode reaches the return callbacks."""
        broker, ch = self.open_channel()
        returns: list[tuple[spec.Method, bytes]] = []
        ch.add_on_return_callback(lambda c, m, p, b: returns.append((m, b)))
        ret = spec.Basic.Return(312, "NO_ROUTE", "ex", "rk")
        broker.send_message(1, ret, b"r" * 10)
        self.assertEqual(returns, [(ret, b"r" * 10)])
        self.finish(broker)

    def test_broker_flow(self) -> None:
        """Broker Channel.Flow is answered with FlowOk and reaches the flow callbacks."""
        broker, ch = self.open_channel()
        flows: list[bool] = []
        ch.add_on_flow_callback(flows.append)
        broker.send_method(1, spec.Channel.Flow(False))
        self.assertEqual(broker.expect(spec.Channel.FlowOk, 1).active, False)
        self.assertFalse(ch.flow_active)
        self.assertEqual(flows, [False])
        self.finish(broker)


class ContentByteAtATimeTests(ContentTests):
    """The content tests, with the broker's bytes fed one at a time."""

    chunk_size = 1


class ContentSmallChunkTests(ContentTests):
    """The content tests, with the broker's bytes fed seven at a time (a frame header)."""

    chunk_size = 7

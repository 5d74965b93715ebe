"""Edge cases of the core found by review: confirms, late frames, cancellation, TLS drops.

Unit tests on StringTransport and Clock through the fake broker.
"""

from __future__ import annotations

import ssl
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp091 import ConnectionParameters, spec
from txamqp091.connect import connect
from txamqp091.exceptions import (
    AMQPTimeoutError,
    AMQPTLSError,
    ChannelWrongStateError,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionOpenAborted,
    NackError,
    UnconfirmedPublishError,
    UnroutableError,
)
from txamqp091.protocol import AMQPProtocol
from txamqp091.test.fakebroker import AMQPTestCase, FakeBroker
from txamqp091.tls import _TLSProtocol


class ConfirmEdgeTests(AMQPTestCase):
    """Publisher confirms when returns and acks come out of publish order."""

    def test_return_matched_by_content(self) -> None:
        """A Return is matched to the publish with the same body and properties, not to
        the oldest unconfirmed mandatory publish with the same exchange and key."""
        broker = self.open_connection()
        ch = broker.open_channel()
        ch.confirm_delivery()
        broker.expect(spec.Confirm.Select, 1)
        broker.send_method(1, spec.Confirm.SelectOk())
        routed = ch.basic_publish("hx", "", b"routed", mandatory=True)
        unroutable = ch.basic_publish("hx", "", b"unroutable", mandatory=True)
        broker.send_message(1, spec.Basic.Return(312, "NO_ROUTE", "hx", ""), body=b"unroutable")
        broker.send_method(1, spec.Basic.Ack(2, False))
        failure = self.failureResultOf(unroutable, UnroutableError)
        self.assertEqual(failure.value.messages[0].body, b"unroutable")
        self.assertNoResult(routed)
        broker.send_method(1, spec.Basic.Ack(1, False))
        self.assertIsInstance(self.successResultOf(routed), spec.Basic.Ack)
        self.finish(broker)

    def test_publishes_behind_select_keep_wire_order(self) -> None:
        """Publishes made while a Confirm.Select waits behind an RPC, and those made after
        the Select went out but before the earlier ones did, reach the wire in call
        order, so the broker's sequence numbers match ours."""
        broker = self.open_connection()
        ch = broker.open_channel()
        ch.queue_declare("q")
        broker.expect(spec.Queue.Declare, 1)
        ch.confirm_delivery()
        first = ch.basic_publish("", "q", b"first")
        broker.send_method(1, spec.Queue.DeclareOk("q", 0, 0))
        broker.expect(spec.Confirm.Select, 1)
        second = ch.basic_publish("", "q", b"second")
        broker.expect_nothing()
        broker.send_method(1, spec.Confirm.SelectOk())
        self.assertEqual(broker.expect_message(1)[2], b"first")
        self.assertEqual(broker.expect_message(1)[2], b"second")
        broker.send_method(1, spec.Basic.Nack(1, False, False))
        self.assertEqual(self.failureResultOf(first, NackError).value.messages[0].body, b"first")
        self.assertNoResult(second)
        broker.send_method(1, spec.Basic.Ack(2, False))
        self.successResultOf(second)
        self.finish(broker)


class UnconfirmedTests(AMQPTestCase):
    """Publishes the broker never confirmed come back to the caller, to publish again."""

    def test_broker_close_gives_each_publish_its_message(self) -> None:
        """A broker Connection.Close fails each unconfirmed publish with an error that is
        both a ConnectionClosedByBroker (same reply code and text) and an
        UnconfirmedPublishError carrying that publish's own message."""
        broker = self.open_connection()
        ch = broker.open_channel()
        ch.confirm_delivery()
        broker.expect(spec.Confirm.Select, 1)
        broker.send_method(1, spec.Confirm.SelectOk())
        first = ch.basic_publish("ex", "a", b"one", mandatory=True)
        second = ch.basic_publish("ex", "b", b"two")
        broker.send_method(0, spec.Connection.Close(320, "CONNECTION_FORCED", 0, 0))
        reason = broker.protocol.close_reason
        for d, key, body, mandatory in ((first, "a", b"one", True), (second, "b", b"two", False)):
            error = self.failureResultOf(d, ConnectionClosedByBroker).value
            self.assertIsInstance(error, UnconfirmedPublishError)
            assert isinstance(error, UnconfirmedPublishError)
            assert isinstance(error, ConnectionClosedByBroker)
            self.assertEqual((error.reply_code, error.reply_text), (320, "CONNECTION_FORCED"))
            self.assertIs(error.reason, reason)
            self.assertEqual(
                (error.message.exchange, error.message.routing_key, error.message.body),
                ("ex", key, body),
            )
            self.assertIs(error.message.mandatory, mandatory)
            self.assertIn("CONNECTION_FORCED", repr(error))
        self.finish(broker)


class LateFrameTests(AMQPTestCase):
    """Frames that arrive after we stopped waiting for them."""

    def test_channel_close_timeout_retires_number(self) -> None:
        """A channel closed without the broker's CloseOk keeps its number out of use; late
        frames for it are dropped (the connection stays open) until the CloseOk comes."""
        broker = self.open_connection(rpc_timeout=5.0)
        ch = broker.open_channel()
        declare = ch.queue_declare("q")
        broker.expect(spec.Queue.Declare, 1)
        self.clock.advance(5)  # the RPC times out; the channel sends Close
        self.failureResultOf(declare, AMQPTimeoutError)
        broker.expect(spec.Channel.Close, 1)
        self.clock.advance(5)  # no CloseOk: the channel is closed anyway
        self.assertTrue(ch.is_closed)
        broker.send_method(1, spec.Queue.DeclareOk("q", 0, 0))  # the late reply
        self.assertTrue(broker.protocol.is_open)
        d = broker.protocol.channel()
        self.assertEqual(broker.expect(spec.Channel.Open, 2).__class__, spec.Channel.Open)
        broker.send_method(2, spec.Channel.OpenOk())
        self.assertEqual(self.successResultOf(d).channel_number, 2)
        broker.send_method(1, spec.Channel.CloseOk())  # now number 1 is free again
        d = broker.protocol.channel()
        broker.expect(spec.Channel.Open, 1)
        broker.send_method(1, spec.Channel.OpenOk())
        self.assertEqual(self.successResultOf(d).channel_number, 1)
        self.finish(broker)

    def test_crossed_connection_close_keeps_one_reason(self) -> None:
        """When the broker's Connection.Close crosses ours, the connection answers with
        CloseOk and reports the same reason its channels failed with (ours)."""
        broker = self.open_connection()
        ch = broker.open_channel()
        declare = ch.queue_declare("q")
        closing = broker.protocol.close()
        failed = self.failureResultOf(declare, ConnectionClosedByClient).value
        broker.expect(spec.Queue.Declare, 1)
        broker.expect(spec.Connection.Close)
        broker.send_method(0, spec.Connection.Close(320, "CONNECTION_FORCED", 0, 0))
        broker.expect(spec.Connection.CloseOk)
        self.successResultOf(closing)
        self.assertIs(broker.protocol.close_reason, failed)
        self.finish(broker)

    def test_update_secret_timeout(self) -> None:
        """update_secret fails with AMQPTimeoutError after rpc_timeout; a late
        UpdateSecretOk is then ignored and the connection stays open."""
        broker = self.open_connection(rpc_timeout=5.0)
        d = broker.protocol.update_secret("new", "rotation")
        broker.expect(spec.Connection.UpdateSecret)
        self.clock.advance(5)
        self.failureResultOf(d, AMQPTimeoutError)
        broker.send_method(0, spec.Connection.UpdateSecretOk())
        self.assertTrue(broker.protocol.is_open)
        self.finish(broker)

    def test_abandoned_get_is_requeued(self) -> None:
        """A basic_get cancelled after it was sent gives the message back (Basic.Reject
        with requeue) when its GetOk arrives."""
        broker = self.open_connection()
        ch = broker.open_channel()
        d = ch.basic_get("q")
        broker.expect(spec.Basic.Get, 1)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        broker.send_message(1, spec.Basic.GetOk(7, False, "", "q", 0), body=b"m")
        reject = broker.expect(spec.Basic.Reject, 1)
        self.assertEqual((reject.delivery_tag, reject.requeue), (7, True))
        self.finish(broker)

    def test_abandoned_consumer_requeues_deliveries(self) -> None:
        """Deliveries reaching a consumer whose basic_consume was cancelled in flight go
        back to the queue (Basic.Reject, requeue) instead of to the callback."""
        broker = self.open_connection()
        ch = broker.open_channel()
        seen: list[bytes] = []
        d = ch.basic_consume("q", lambda c, m, p, body: seen.append(body), consumer_tag="t1")
        broker.expect(spec.Basic.Consume, 1)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        broker.send_method(1, spec.Basic.ConsumeOk("t1"))
        broker.expect(spec.Basic.Cancel, 1)
        broker.send_message(1, spec.Basic.Deliver("t1", 3, False, "", "q"), body=b"m")
        reject = broker.expect(spec.Basic.Reject, 1)
        self.assertEqual((reject.delivery_tag, reject.requeue), (3, True))
        self.assertEqual(seen, [])
        broker.send_method(1, spec.Basic.CancelOk("t1"))
        self.assertEqual(ch.consumer_tags, [])
        self.finish(broker)

    def test_no_channel_writes_after_broker_close(self) -> None:
        """Once the broker closed the connection, channels are closed at once: a publish
        raises instead of writing after our CloseOk."""
        broker = self.open_connection()
        ch = broker.open_channel()
        broker.send_method(
            0, spec.Connection.Close(320, "CONNECTION_FORCED", 0, 0), deliver_loss=False
        )
        broker.expect(spec.Connection.CloseOk)
        self.assertTrue(ch.is_closed)
        before = broker.transport.value()
        with self.assertRaises(ChannelWrongStateError):
            ch.basic_publish("", "q", b"late")
        self.assertEqual(broker.transport.value(), before)
        self.finish(broker)


@implementer(IStreamClientEndpoint)
class _Endpoint:
    """Connects the factory's protocol to a StringTransport at once."""

    def __init__(self) -> None:
        self.protocol: AMQPProtocol | None = None
        self.transport = StringTransport()

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        proto = factory.buildProtocol(None)  # type: ignore[arg-type]
        assert isinstance(proto, AMQPProtocol)
        self.protocol = proto
        proto.makeConnection(self.transport)
        return succeed(proto)


class _Reactor:
    """Just time, from a Clock."""

    def __init__(self, clock: Clock) -> None:
        self.callLater = clock.callLater
        self.seconds = clock.seconds


class ConnectCancelTests(AMQPTestCase):
    """Cancelling connect() leaves nothing running."""

    def test_cancel_during_handshake(self) -> None:
        """Cancelling connect() during the AMQP handshake fails it with CancelledError and
        aborts the half-open connection: no timer, no further attempt."""
        endpoint = _Endpoint()
        d = connect(_Reactor(self.clock), endpoint, parameters=ConnectionParameters())
        assert endpoint.protocol is not None
        broker = FakeBroker(endpoint.protocol, self.clock, endpoint.transport)
        broker.connected = True
        broker.start()
        broker.expect(spec.Connection.StartOk)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(endpoint.transport.disconnecting)
        broker.deliver_loss()
        self.assertIsInstance(endpoint.protocol.close_reason, ConnectionOpenAborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class TLSDropTests(AMQPTestCase):
    """The stdlib TLS layer types a drop during its handshake as a TLS failure."""

    def test_lost_during_tls_handshake(self) -> None:
        """A connection lost before the TLS handshake ends fails with AMQPTLSError."""
        proto = AMQPProtocol(ConnectionParameters(), self.clock)
        context = ssl.create_default_context()
        tls = _TLSProtocol(proto, context, "localhost")
        transport = StringTransport()
        tls.makeConnection(transport)
        self.assertTrue(transport.value())  # the ClientHello
        tls.connectionLost(Failure(ConnectionResetError("reset by peer")))
        self.failureResultOf(proto.ready, AMQPTLSError)
        self.assertIsInstance(proto.close_reason, AMQPTLSError)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LargeBodyMemoryTests(AMQPTestCase):
    """Large bodies cost memory in proportion to their size, sending and receiving."""

    SIZE = 16 * 1024 * 1024

    def test_publish_memory_proportional(self) -> None:
        """Publishing a 16 MiB body allocates about one encoded copy of it, not more."""
        import tracemalloc

        broker = self.open_connection()
        ch = broker.open_channel()
        body = b"x" * self.SIZE
        broker.read()
        written: list[bytes] = []
        real_write = broker.transport.write
        # Keep what is written as a reactor transport does (a reference, no copy).
        broker.transport.write = written.append  # type: ignore[method-assign]
        tracemalloc.start()
        try:
            ch.basic_publish("", "q", body)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            broker.transport.write = real_write  # type: ignore[method-assign]
        # One encoded copy of the message, split into frames.
        self.assertLess(peak, 1.1 * self.SIZE)
        body_frames = -(-self.SIZE // (broker.protocol.frame_max - 8))
        # Basic.Publish frame (18 bytes here), content header frame (22), body frames.
        self.assertEqual(sum(map(len, written)), 18 + 22 + self.SIZE + 8 * body_frames)
        self.finish(broker)

    def test_receive_memory_proportional(self) -> None:
        """Receiving a 16 MiB body in 64 KiB reads holds a small multiple of it at most."""
        import tracemalloc

        broker = self.open_connection()
        ch = broker.open_channel()
        got: list[int] = []
        ch.basic_consume("q", lambda c, m, p, body: got.append(len(body)), consumer_tag="t")
        broker.expect(spec.Basic.Consume, 1)
        broker.send_method(1, spec.Basic.ConsumeOk("t"))
        from txamqp091 import codec

        data = codec.encode_message(
            1,
            spec.Basic.Deliver("t", 1, False, "", "q"),
            None,
            b"y" * self.SIZE,
            broker.protocol.frame_max,
        )
        tracemalloc.start()
        try:
            for start in range(0, len(data), 65536):
                broker.protocol.dataReceived(data[start : start + 65536])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertEqual(got, [self.SIZE])
        # The body fragments, the joined body and one read's worth of buffering.
        self.assertLess(peak, 2.5 * self.SIZE)
        del data
        self.finish(broker)

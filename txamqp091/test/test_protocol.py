"""Unit tests of :class:`txamqp091.protocol.AMQPProtocol`.

No sockets: the protocol talks to a :class:`~txamqp091.test.fakebroker.FakeBroker`
through a :class:`~twisted.internet.testing.StringTransport`, and time is a
:class:`~twisted.internet.task.Clock`.  Every test ends with
:meth:`~txamqp091.test.fakebroker.AMQPTestCase.finish`, which closes the
connection and checks that no timer is left.
"""

from __future__ import annotations

import platform
import struct
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.python.failure import Failure

import txamqp091
from txamqp091 import codec, spec
from txamqp091.credentials import ExternalCredentials, PlainCredentials
from txamqp091.exceptions import (
    AccessRefused,
    AMQPHeartbeatTimeout,
    AMQPTimeoutError,
    AuthenticationError,
    BodyTooLongError,
    ConnectionBlockedTimeout,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionOpenAborted,
    ConnectionWrongStateError,
    IncompatibleProtocolError,
    InvalidChannelNumber,
    InvalidFrameError,
    MethodNotImplemented,
    NoFreeChannels,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    StreamLostError,
    UnexpectedFrameError,
    VirtualHostAccessRefused,
)
from txamqp091.handshake import CLIENT_CAPABILITIES, client_properties, negotiate
from txamqp091.protocol import AMQPProtocol
from txamqp091.test.fakebroker import AMQPTestCase, FakeBroker, raw_frame

#: The capabilities the issue requires the client to announce.
REQUIRED_CAPABILITIES = (
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
)


def _capture(d: Deferred[Any]) -> list[Any]:
    """Results of *d*, passed through unchanged (for Deferreds a test consumes later)."""
    seen: list[Any] = []

    def record(result: Any) -> Any:
        seen.append(result)
        return result

    d.addBoth(record)
    return seen


# ----------------------------------------------------------------------
# Handshake


class HandshakeTests(AMQPTestCase):
    """Start → StartOk → Tune → TuneOk/Open → OpenOk and its failures."""

    def test_protocol_header_first(self) -> None:
        """On connection the client writes the AMQP 0-9-1 protocol header and nothing else."""
        broker = self.make_broker()
        self.assertEqual(broker.transport.value(), codec.PROTOCOL_HEADER)
        self.assertTrue(broker.protocol.is_closed is False)
        self.assertNoResult(broker.protocol.ready)
        self.finish(broker)

    def test_ready_fires_after_open_ok(self) -> None:
        """``ready`` fires with the protocol only once ``Connection.OpenOk`` arrives."""
        broker = self.make_broker(virtual_host="/orders")
        proto = broker.protocol
        broker.start()
        broker.expect(spec.Connection.StartOk)
        self.assertNoResult(proto.ready)
        broker.send_method(0, spec.Connection.Tune(2047, 131072, 0))
        broker.expect(spec.Connection.TuneOk)
        opened = broker.expect(spec.Connection.Open)
        self.assertEqual(opened.virtual_host, "/orders")
        self.assertNoResult(proto.ready)
        self.assertFalse(proto.is_open)
        broker.send_method(0, spec.Connection.OpenOk())
        self.assertIs(self.successResultOf(proto.ready), proto)
        self.assertTrue(proto.is_open)
        broker.expect_nothing()
        self.finish(broker)

    def test_plain_response(self) -> None:
        """PLAIN credentials answer with mechanism PLAIN and the response ``\\0user\\0pass``."""
        broker = self.make_broker(credentials=PlainCredentials("user", "pass"), locale="fr_FR")
        broker.start(mechanisms=b"AMQPLAIN PLAIN")
        start_ok = broker.expect(spec.Connection.StartOk)
        self.assertEqual(start_ok.mechanism, "PLAIN")
        self.assertEqual(start_ok.response, b"\0user\0pass")
        self.assertEqual(start_ok.locale, "fr_FR")
        self.finish(broker)

    def test_external(self) -> None:
        """EXTERNAL credentials answer with mechanism EXTERNAL and an empty response."""
        broker = self.make_broker(credentials=ExternalCredentials())
        broker.start(mechanisms=b"PLAIN EXTERNAL")
        start_ok = broker.expect(spec.Connection.StartOk)
        self.assertEqual(start_ok.mechanism, "EXTERNAL")
        self.assertEqual(start_ok.response, b"")
        self.finish(broker)

    def test_no_common_mechanism(self) -> None:
        """No mechanism in common: AuthenticationError, nothing written, connection dropped."""
        broker = self.make_broker(credentials=PlainCredentials("user", "pass"))
        broker.start(mechanisms=b"AMQPLAIN EXTERNAL")
        failure = self.failureResultOf(broker.protocol.ready, AuthenticationError)
        self.assertIn("PLAIN", str(failure.value))
        self.assertEqual(broker.transport.value(), codec.PROTOCOL_HEADER)
        self.assertTrue(broker.lost)
        self.assertTrue(broker.protocol.is_closed)
        self.assertIs(broker.protocol.close_reason, failure.value)
        self.finish(broker)

    def test_secure_secure_ok(self) -> None:
        """Each ``Connection.Secure`` is answered by ``SecureOk`` with the credentials' reply."""
        broker = self.make_broker(credentials=PlainCredentials("user", "pass"))
        broker.start()
        broker.expect(spec.Connection.StartOk)
        broker.send_method(0, spec.Connection.Secure(b"challenge"))
        secure_ok = broker.expect(spec.Connection.SecureOk)
        self.assertEqual(secure_ok.response, b"\0user\0pass")
        broker.send_method(0, spec.Connection.Tune(2047, 131072, 0))
        broker.expect(spec.Connection.TuneOk)
        broker.expect(spec.Connection.Open)
        broker.send_method(0, spec.Connection.OpenOk())
        self.assertIs(self.successResultOf(broker.protocol.ready), broker.protocol)
        self.finish(broker)

    def test_handshake_helper_with_secure(self) -> None:
        """The helper's handshake with two Secure rounds opens the connection."""
        broker = self.make_broker()
        broker.handshake(secure_challenges=(b"one", b"two"))
        self.assertTrue(broker.protocol.is_open)
        self.assertEqual(len(broker.written), 5)  # StartOk, SecureOk x2, TuneOk, Open
        self.finish(broker)

    def test_server_answers_with_protocol_header(self) -> None:
        """A server answering with its own protocol header → IncompatibleProtocolError."""
        broker = self.make_broker()
        broker.send(b"AMQP\x00\x00\x09\x01")
        self.failureResultOf(broker.protocol.ready, IncompatibleProtocolError)
        self.assertTrue(broker.protocol.is_closed)
        self.assertIsInstance(broker.protocol.close_reason, IncompatibleProtocolError)
        self.finish(broker)

    def test_server_answers_with_amqp_1_0_header(self) -> None:
        """An AMQP 1.0 protocol header in reply → IncompatibleProtocolError naming the version."""
        broker = self.make_broker()
        broker.send(b"AMQP\x00\x01\x00\x00")
        failure = self.failureResultOf(broker.protocol.ready, IncompatibleProtocolError)
        self.assertIn("version 1.0", str(failure.value))
        self.finish(broker)

    def test_wrong_version_in_start(self) -> None:
        """``Connection.Start`` announcing AMQP 0-8 → IncompatibleProtocolError, no StartOk."""
        broker = self.make_broker()
        broker.send_method(0, spec.Connection.Start(8, 0, {}, b"PLAIN", b"en_US"))
        self.failureResultOf(broker.protocol.ready, IncompatibleProtocolError)
        self.assertEqual(broker.read(), [])
        self.assertTrue(broker.protocol.is_closed)
        self.finish(broker)

    def test_server_properties_and_capabilities(self) -> None:
        """``server_properties`` and the capability flags come from ``Connection.Start``."""
        broker = self.make_broker()
        props = {
            "product": "RabbitMQ",
            "capabilities": {
                "basic.nack": True,
                "consumer_cancel_notify": False,
                "exchange_exchange_bindings": True,
                "publisher_confirms": True,
            },
        }
        proto = broker.handshake(server_properties=props)
        self.assertEqual(proto.server_properties, props)
        self.assertEqual(proto.server_capabilities, props["capabilities"])
        self.assertTrue(proto.basic_nack_supported)
        self.assertFalse(proto.consumer_cancel_notify_supported)
        self.assertTrue(proto.exchange_exchange_bindings_supported)
        self.assertTrue(proto.publisher_confirms_supported)
        self.finish(broker)

    def test_no_capabilities(self) -> None:
        """A broker without a capabilities table supports none of the extensions."""
        broker = self.make_broker()
        proto = broker.handshake(server_properties={"product": "old"})
        self.assertEqual(proto.server_capabilities, {})
        self.assertFalse(proto.basic_nack_supported)
        self.assertFalse(proto.publisher_confirms_supported)
        self.finish(broker)

    def test_erase_credentials_on_open(self) -> None:
        """Credentials with ``erase_on_connect`` are erased once the connection is open."""
        credentials = PlainCredentials("user", "pass", erase_on_connect=True)
        broker = self.make_broker(credentials=credentials)
        broker.handshake()
        self.assertIsNone(broker.protocol.parameters.credentials.username)  # type: ignore[union-attr]
        self.finish(broker)

    def test_stack_timeout(self) -> None:
        """Handshake not finished within ``stack_timeout`` → AMQPTimeoutError, ready fails."""
        broker = self.make_broker(stack_timeout=5)
        broker.start()
        broker.expect(spec.Connection.StartOk)
        closed = broker.protocol.when_closed()
        broker.advance(4.9)
        self.assertNoResult(broker.protocol.ready)
        self.assertFalse(broker.transport.disconnecting)
        broker.advance(0.1)
        failure = self.failureResultOf(broker.protocol.ready, AMQPTimeoutError)
        self.assertIs(self.successResultOf(closed), failure.value)
        self.assertTrue(broker.protocol.is_closed)
        self.finish(broker)

    def test_stack_timeout_stops_after_open(self) -> None:
        """Once open, the ``stack_timeout`` timer is gone: no timer is left at all."""
        broker = self.make_broker(stack_timeout=5)
        broker.handshake()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        broker.advance(100)
        self.assertTrue(broker.protocol.is_open)
        self.finish(broker)

    def test_close_during_handshake(self) -> None:
        """``close()`` before OpenOk aborts: ready fails with ConnectionOpenAborted."""
        broker = self.make_broker()
        broker.start()
        d = broker.protocol.close()
        broker.deliver_loss()
        self.failureResultOf(broker.protocol.ready, ConnectionOpenAborted)
        self.assertIsNone(self.successResultOf(d))
        self.finish(broker)

    def test_loss_before_start(self) -> None:
        """Transport lost before ``Connection.Start`` → StreamLostError."""
        broker = self.make_broker()
        broker.lose()
        self.failureResultOf(broker.protocol.ready, StreamLostError)
        self.finish(broker)

    def test_loss_during_auth(self) -> None:
        """Transport lost after StartOk (e.g. bad credentials) → ProbableAuthenticationError."""
        broker = self.make_broker()
        broker.start()
        broker.expect(spec.Connection.StartOk)
        broker.lose()
        self.failureResultOf(broker.protocol.ready, ProbableAuthenticationError)
        self.finish(broker)

    def test_loss_during_open(self) -> None:
        """Transport lost after Connection.Open → ProbableAccessDeniedError."""
        broker = self.make_broker()
        broker.start()
        broker.send_method(0, spec.Connection.Tune(0, 0, 0))
        broker.lose()
        self.failureResultOf(broker.protocol.ready, ProbableAccessDeniedError)
        self.finish(broker)

    def test_close_403_during_auth(self) -> None:
        """Connection.Close 403 during authentication → AccessRefused, CloseOk written."""
        broker = self.make_broker()
        broker.start()
        broker.expect(spec.Connection.StartOk)
        broker.send_method(0, spec.Connection.Close(403, "ACCESS_REFUSED - Login was refused"))
        broker.expect(spec.Connection.CloseOk)
        failure = self.failureResultOf(broker.protocol.ready, AccessRefused)
        self.assertIsInstance(failure.value, ConnectionClosedByBroker)
        self.assertIsInstance(failure.value, ProbableAuthenticationError)
        self.assertEqual(failure.value.reply_code, 403)
        self.finish(broker)

    def test_close_530_during_open(self) -> None:
        """Connection.Close 530 answering Connection.Open → VirtualHostAccessRefused."""
        broker = self.make_broker(virtual_host="nope")
        broker.start()
        broker.send_method(0, spec.Connection.Tune(0, 0, 0))
        broker.read()
        broker.send_method(0, spec.Connection.Close(530, "NOT_ALLOWED - vhost nope not found"))
        broker.expect(spec.Connection.CloseOk)
        failure = self.failureResultOf(broker.protocol.ready, VirtualHostAccessRefused)
        self.assertIsInstance(failure.value, ProbableAccessDeniedError)
        self.assertEqual(failure.value.reply_code, 530)
        self.finish(broker)

    def test_close_403_during_open(self) -> None:
        """Connection.Close 403 answering Connection.Open → VirtualHostAccessRefused."""
        broker = self.make_broker()
        broker.start()
        broker.send_method(0, spec.Connection.Tune(0, 0, 0))
        broker.send_method(0, spec.Connection.Close(403, "ACCESS_REFUSED - no access to vhost"))
        self.failureResultOf(broker.protocol.ready, VirtualHostAccessRefused)
        self.finish(broker)

    def test_open_ok_out_of_order(self) -> None:
        """OpenOk before Tune is a peer violation: Connection.Close 505, ready fails."""
        broker = self.make_broker()
        broker.start()
        broker.expect(spec.Connection.StartOk)
        broker.send_method(0, spec.Connection.OpenOk())
        close = broker.expect(spec.Connection.Close)
        self.assertEqual(close.reply_code, 505)
        self.failureResultOf(broker.protocol.ready, UnexpectedFrameError)
        self.finish(broker)


class HandshakeByteAtATimeTests(HandshakeTests):
    """The handshake tests, with the broker's bytes fed one at a time."""

    chunk_size = 1


# ----------------------------------------------------------------------
# client_properties


class ClientPropertiesTests(AMQPTestCase):
    """The ``client_properties`` table sent in ``Connection.StartOk``."""

    def start_ok(self, **parameters: Any) -> spec.Connection.StartOk:
        broker = self.make_broker(**parameters)
        broker.start()
        method = broker.expect(spec.Connection.StartOk)
        self.finish(broker)
        return method

    def test_product_version_platform(self) -> None:
        """product, version and platform identify txamqp091, its version and Python."""
        props = self.start_ok().client_properties
        self.assertEqual(props["product"], "txamqp091")
        self.assertEqual(props["version"], txamqp091.__version__)
        self.assertIn(platform.python_version(), props["platform"])
        self.assertTrue(props["platform"].startswith("Python"))

    def test_all_capabilities(self) -> None:
        """All eight capabilities are announced as true, and nothing else."""
        caps = self.start_ok().client_properties["capabilities"]
        self.assertEqual(caps, dict.fromkeys(REQUIRED_CAPABILITIES, True))

    def test_user_properties_merged(self) -> None:
        """User client_properties are added; user capabilities merge into the built-in ones."""
        user = {
            "connection_name": "orders-worker",
            "information": "custom",
            "capabilities": {"my.extension": True, "basic.nack": False},
        }
        props = self.start_ok(client_properties=user).client_properties
        self.assertEqual(props["connection_name"], "orders-worker")
        self.assertEqual(props["information"], "custom")
        self.assertEqual(props["product"], "txamqp091")
        expected = dict.fromkeys(REQUIRED_CAPABILITIES, True)
        expected.update({"my.extension": True, "basic.nack": False})
        self.assertEqual(props["capabilities"], expected)

    def test_merge_leaves_defaults_alone(self) -> None:
        """Merging user capabilities does not change CLIENT_CAPABILITIES."""
        params = txamqp091.ConnectionParameters(client_properties={"capabilities": {"x": False}})
        client_properties(params)
        self.assertEqual(CLIENT_CAPABILITIES, dict.fromkeys(REQUIRED_CAPABILITIES, True))
        self.assertNotIn("x", client_properties(txamqp091.ConnectionParameters())["capabilities"])
        broker = self.make_broker()
        self.finish(broker)


# ----------------------------------------------------------------------
# Negotiation


class NegotiationTests(AMQPTestCase):
    """channel_max, frame_max and heartbeat negotiation (pika's rules)."""

    def test_negotiate_table(self) -> None:
        """0 (or None) on either side → the other side's value; otherwise the smaller."""
        table = [
            (0, 0, 0),
            (None, None, 0),
            (0, 2047, 2047),
            (2047, 0, 2047),
            (None, 100, 100),
            (100, None, 100),
            (100, 2047, 100),
            (2047, 100, 100),
            (131072, 4096, 4096),
            (7, 7, 7),
        ]
        for client, server, expected in table:
            with self.subTest(client=client, server=server):
                self.assertEqual(negotiate(client, server), expected)
        self.finish(self.make_broker())

    def tuned(self, tune: tuple[int, int, int], **parameters: Any) -> tuple[FakeBroker, Any]:
        """Handshake with Tune(*tune); returns the broker and the TuneOk written."""
        broker = self.make_broker(**parameters)
        broker.start()
        broker.expect(spec.Connection.StartOk)
        broker.send_method(0, spec.Connection.Tune(*tune))
        tune_ok = broker.expect(spec.Connection.TuneOk)
        broker.expect(spec.Connection.Open)
        broker.send_method(0, spec.Connection.OpenOk())
        return broker, tune_ok

    def test_channel_max_and_frame_max_through_tune(self) -> None:
        """TuneOk carries the negotiated channel_max and frame_max, and the protocol keeps them."""
        table = [
            # client channel_max, client frame_max, server channel_max, server frame_max,
            # expected channel_max, expected frame_max
            (65535, 131072, 0, 0, 65535, 131072),
            (100, 8192, 0, 0, 100, 8192),
            (100, 131072, 2047, 4096, 100, 4096),
            (65535, 8192, 2047, 131072, 2047, 8192),
            (2047, 131072, 2047, 131072, 2047, 131072),
        ]
        for c_chan, c_frame, s_chan, s_frame, e_chan, e_frame in table:
            with self.subTest(client=(c_chan, c_frame), server=(s_chan, s_frame)):
                broker, tune_ok = self.tuned(
                    (s_chan, s_frame, 0), channel_max=c_chan, frame_max=c_frame
                )
                self.assertEqual((tune_ok.channel_max, tune_ok.frame_max), (e_chan, e_frame))
                self.assertEqual(
                    (broker.protocol.channel_max, broker.protocol.frame_max), (e_chan, e_frame)
                )
                self.finish(broker)

    def test_heartbeat_table(self) -> None:
        """None → the broker's value; an int wins, 0 included."""
        table: list[tuple[int | None, int, int]] = [
            (None, 60, 60),
            (None, 0, 0),
            (0, 60, 0),
            (30, 60, 30),
            (120, 60, 120),
            (10, 0, 10),
        ]
        for client, server, expected in table:
            with self.subTest(client=client, server=server):
                broker, tune_ok = self.tuned((0, 0, server), heartbeat=client)
                self.assertEqual(tune_ok.heartbeat, expected)
                self.assertEqual(broker.protocol.heartbeat, expected)
                self.finish(broker)

    def test_heartbeat_callable(self) -> None:
        """A callable receives (connection, server_value) and its int is used."""
        calls: list[tuple[object, int]] = []

        def choose(connection: object, server: int) -> int:
            calls.append((connection, server))
            return 15

        broker, tune_ok = self.tuned((0, 0, 60), heartbeat=choose)
        self.assertEqual(calls, [(broker.protocol, 60)])
        self.assertEqual(tune_ok.heartbeat, 15)
        self.assertEqual(broker.protocol.heartbeat, 15)
        self.finish(broker)

    def test_heartbeat_callable_none(self) -> None:
        """A callable returning None accepts the broker's value."""
        broker, tune_ok = self.tuned((0, 0, 45), heartbeat=lambda conn, server: None)
        self.assertEqual(tune_ok.heartbeat, 45)
        self.finish(broker)

    def test_heartbeat_callable_bad_return(self) -> None:
        """A callable returning a non-int fails ready with TypeError; no TuneOk is written."""
        for bad, error in (("10", TypeError), (1.5, TypeError), (True, TypeError)):
            with self.subTest(value=bad):
                broker = self.make_broker(heartbeat=lambda conn, server, v=bad: v)
                broker.start()
                broker.expect(spec.Connection.StartOk)
                broker.send_method(0, spec.Connection.Tune(0, 0, 60))
                self.failureResultOf(broker.protocol.ready, error)
                broker.expect_nothing()
                self.assertTrue(broker.protocol.is_closed)
                self.finish(broker)

    def test_heartbeat_callable_out_of_range(self) -> None:
        """A callable returning an int outside 0..65535 fails ready with ValueError."""
        broker = self.make_broker(heartbeat=lambda conn, server: -1)
        broker.start()
        broker.send_method(0, spec.Connection.Tune(0, 0, 60))
        self.failureResultOf(broker.protocol.ready, ValueError)
        self.finish(broker)


# ----------------------------------------------------------------------
# Heartbeats


class HeartbeatTests(AMQPTestCase):
    """Heartbeat sending (H/2) and dead-peer detection (2H)."""

    def open(self, heartbeat: int = 10) -> FakeBroker:
        return self.open_connection(tune={"heartbeat": heartbeat})

    def test_heartbeat_sent_when_idle(self) -> None:
        """A heartbeat interval (H/2) in which nothing was sent ends with a heartbeat frame."""
        broker = self.open()
        broker.advance(5)  # the first interval held Connection.Open
        broker.send_heartbeat()
        broker.read()
        before = broker.transport.value()
        broker.advance(4.9)
        self.assertEqual(broker.transport.value(), before)
        broker.advance(0.1)
        self.assertEqual(broker.read(), [codec.HeartbeatFrame()])
        self.assertEqual(broker.transport.value(), before + codec.HEARTBEAT_FRAME)
        self.finish(broker)

    def test_no_heartbeat_after_recent_traffic(self) -> None:
        """Traffic during an interval → no heartbeat at its end; the next idle one has one."""
        broker = self.open()
        broker.advance(5)
        broker.send_heartbeat()
        broker.advance(4)
        broker.open_channel()  # traffic at t=9
        broker.read()
        broker.advance(1)  # t=10: the interval saw traffic
        broker.expect_nothing()
        broker.advance(5)  # t=15: an idle interval
        self.assertEqual(broker.read(), [codec.HeartbeatFrame()])
        self.finish(broker)

    def test_heartbeat_timeout(self) -> None:
        """Nothing received for 2H → AMQPHeartbeatTimeout, connection dropped, all fails."""
        broker = self.open()
        proto = broker.protocol
        ch = broker.open_channel()
        declare = ch.queue_declare("q")
        closed = proto.when_closed()
        broker.advance(19.9)
        self.assertTrue(proto.is_open)
        self.assertNoResult(closed)
        broker.advance(0.1)
        reason = self.successResultOf(closed)
        self.assertIsInstance(reason, AMQPHeartbeatTimeout)
        self.assertTrue(proto.is_closed)
        self.assertTrue(broker.lost)
        self.assertIs(self.failureResultOf(declare, AMQPHeartbeatTimeout).value, reason)
        self.finish(broker)

    def test_heartbeat_timeout_aborts_transport(self) -> None:
        """A dead peer is dropped with abortConnection, not by waiting for the write buffer.

        ``loseConnection`` only closes once the write buffer drains, which a
        dead peer never lets happen.
        """
        broker = self.open()
        broker.protocol.pauseProducing()  # the transport's buffer is full
        broker.advance(20, deliver_loss=False)
        self.assertTrue(broker.transport.disconnecting)
        self.assertTrue(broker.transport.disconnected, "abortConnection was not used")
        self.finish(broker)

    def test_traffic_resets_timeout(self) -> None:
        """Any received bytes push the deadline to 2H after them."""
        broker = self.open()
        proto = broker.protocol
        broker.advance(7)
        broker.send_heartbeat()  # t=7
        broker.advance(19.9)  # t=26.9
        self.assertTrue(proto.is_open)
        ch = broker.open_channel()  # a method frame at t=26.9
        broker.advance(19.9)  # t=46.8
        self.assertTrue(proto.is_open)
        self.assertTrue(ch.is_open)
        broker.advance(0.1)  # t=46.9
        self.assertIsInstance(proto.close_reason, AMQPHeartbeatTimeout)
        self.finish(broker)

    def test_heartbeat_zero_no_timers(self) -> None:
        """Heartbeat negotiated to 0: no timer at all, nothing sent when idle."""
        broker = self.open(heartbeat=0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        broker.read()
        broker.advance(1000)
        broker.expect_nothing()
        self.assertTrue(broker.protocol.is_open)
        self.finish(broker)

    def test_heartbeat_from_broker_is_ignored(self) -> None:
        """A heartbeat from the broker on channel 0 is accepted silently."""
        broker = self.open()
        broker.read()
        broker.send_heartbeat()
        broker.expect_nothing()
        self.assertTrue(broker.protocol.is_open)
        self.finish(broker)


# ----------------------------------------------------------------------
# Connection.Blocked / Unblocked


class BlockedTests(AMQPTestCase):
    """Connection.Blocked / Unblocked and ``blocked_connection_timeout``."""

    def test_callbacks(self) -> None:
        """Blocked/Unblocked call their callbacks with (connection, method), set ``blocked``."""
        broker = self.open_connection()
        proto = broker.protocol
        events: list[tuple[str, object, spec.Method]] = []
        proto.add_on_connection_blocked_callback(lambda c, m: events.append(("b", c, m)))
        proto.add_on_connection_unblocked_callback(lambda c, m: events.append(("u", c, m)))
        self.assertFalse(proto.blocked)
        broker.send_method(0, spec.Connection.Blocked("low on memory"))
        self.assertTrue(proto.blocked)
        self.assertEqual(events, [("b", proto, spec.Connection.Blocked("low on memory"))])
        broker.send_method(0, spec.Connection.Unblocked())
        self.assertFalse(proto.blocked)
        self.assertEqual(events[1], ("u", proto, spec.Connection.Unblocked()))
        self.assertEqual(len(events), 2)
        self.finish(broker)

    def test_blocked_timeout(self) -> None:
        """Blocked for longer than blocked_connection_timeout → ConnectionBlockedTimeout."""
        broker = self.open_connection(blocked_connection_timeout=30)
        proto = broker.protocol
        broker.send_method(0, spec.Connection.Blocked("disk"))
        broker.advance(29.9)
        self.assertTrue(proto.is_open)
        broker.advance(0.1)
        self.assertIsInstance(proto.close_reason, ConnectionBlockedTimeout)
        self.assertTrue(broker.lost)
        self.finish(broker)

    def test_blocked_timeout_aborts_transport(self) -> None:
        """The blocked timeout aborts the transport: a blocking broker stops reading our bytes."""
        broker = self.open_connection(blocked_connection_timeout=30)
        broker.send_method(0, spec.Connection.Blocked("disk"))
        broker.protocol.pauseProducing()  # the broker stopped reading: our buffer filled up
        broker.advance(30, deliver_loss=False)
        self.assertTrue(broker.transport.disconnecting)
        self.assertTrue(broker.transport.disconnected, "abortConnection was not used")
        self.finish(broker)

    def test_unblocked_stops_timer(self) -> None:
        """Unblocked before the timeout cancels it."""
        broker = self.open_connection(blocked_connection_timeout=30)
        broker.send_method(0, spec.Connection.Blocked("disk"))
        broker.advance(20)
        broker.send_method(0, spec.Connection.Unblocked())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        broker.advance(100)
        self.assertTrue(broker.protocol.is_open)
        self.finish(broker)

    def test_no_timeout_configured(self) -> None:
        """Without blocked_connection_timeout a blocked connection stays open."""
        broker = self.open_connection()
        broker.send_method(0, spec.Connection.Blocked(""))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(broker.protocol.is_open)
        self.finish(broker)


# ----------------------------------------------------------------------
# update_secret


class UpdateSecretTests(AMQPTestCase):
    """``update_secret`` round trip."""

    def test_round_trip(self) -> None:
        """update_secret writes UpdateSecret and fires with UpdateSecretOk."""
        broker = self.open_connection()
        broker.read()
        d = broker.protocol.update_secret("new-token", "token refreshed")
        method = broker.expect(spec.Connection.UpdateSecret)
        self.assertEqual(method.new_secret, b"new-token")
        self.assertEqual(method.reason, "token refreshed")
        self.assertNoResult(d)
        broker.send_method(0, spec.Connection.UpdateSecretOk())
        self.assertEqual(self.successResultOf(d), spec.Connection.UpdateSecretOk())
        self.finish(broker)

    def test_bad_arguments(self) -> None:
        """Bad argument types raise TypeError before anything is written."""
        broker = self.open_connection()
        before = broker.transport.value()
        self.assertRaises(TypeError, broker.protocol.update_secret, 5, "r")
        self.assertRaises(TypeError, broker.protocol.update_secret, "s", None)
        self.assertEqual(broker.transport.value(), before)
        self.finish(broker)

    def test_unsolicited_ok(self) -> None:
        """UpdateSecretOk without a request is a peer violation (505)."""
        broker = self.open_connection()
        broker.read()
        broker.send_method(0, spec.Connection.UpdateSecretOk())
        self.assertEqual(broker.expect(spec.Connection.Close).reply_code, 505)
        self.assertIsInstance(broker.protocol.close_reason, UnexpectedFrameError)
        self.finish(broker)

    def test_connection_loss_fails_it(self) -> None:
        """A pending update_secret fails with the reason the connection was lost."""
        broker = self.open_connection()
        d = broker.protocol.update_secret("s", "r")
        broker.lose()
        self.failureResultOf(d, StreamLostError)
        self.finish(broker)


# ----------------------------------------------------------------------
# Closing


class CloseTests(AMQPTestCase):
    """Closing by the client and by the broker."""

    def test_client_close(self) -> None:
        """close() writes Close(200), waits for CloseOk, then fires once the transport is lost."""
        broker = self.open_connection()
        proto = broker.protocol
        broker.read()
        d = proto.close()
        close = broker.expect(spec.Connection.Close)
        self.assertEqual((close.reply_code, close.reply_text), (200, "Normal shutdown"))
        self.assertTrue(proto.is_closing)
        self.assertFalse(broker.transport.disconnecting)
        self.assertNoResult(d)
        broker.send_method(0, spec.Connection.CloseOk(), deliver_loss=False)
        self.assertTrue(broker.transport.disconnecting)
        self.assertNoResult(d)
        broker.deliver_loss()
        self.assertIsNone(self.successResultOf(d))
        self.assertTrue(proto.is_closed)
        reason = proto.close_reason
        self.assertIsInstance(reason, ConnectionClosedByClient)
        self.assertEqual(reason.args, (200, "Normal shutdown"))  # type: ignore[union-attr]
        self.finish(broker)

    def test_close_with_a_transport_that_ends_at_once(self) -> None:
        """A transport whose loseConnection reports the loss at once (as the Select
        face's, with nothing buffered): no close timer is left behind."""
        broker = self.open_connection()
        proto = broker.protocol
        broker.read()
        transport = broker.transport

        def lose_now() -> None:
            transport.disconnecting = True
            proto.connectionLost(Failure(ConnectionDone("closed")))

        transport.loseConnection = lose_now  # type: ignore[method-assign]
        d = proto.close()
        broker.expect(spec.Connection.Close)
        broker.send_method(0, spec.Connection.CloseOk(), deliver_loss=False)
        self.assertIsNone(self.successResultOf(d))
        self.assertTrue(proto.is_closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_is_idempotent(self) -> None:
        """A second close() writes nothing more; both Deferreds fire."""
        broker = self.open_connection()
        broker.read()
        d1 = broker.protocol.close(320, "bye")
        d2 = broker.protocol.close()
        close = broker.expect(spec.Connection.Close)
        self.assertEqual((close.reply_code, close.reply_text), (320, "bye"))
        broker.expect_nothing()
        broker.send_method(0, spec.Connection.CloseOk())
        self.assertIsNone(self.successResultOf(d1))
        self.assertIsNone(self.successResultOf(d2))
        self.assertIsNone(self.successResultOf(broker.protocol.close()))
        self.finish(broker)

    def test_close_bad_arguments(self) -> None:
        """close() with a bad reply_code or reply_text raises before writing."""
        broker = self.open_connection()
        before = broker.transport.value()
        self.assertRaises(TypeError, broker.protocol.close, "200")
        self.assertRaises(TypeError, broker.protocol.close, 200, 5)
        self.assertEqual(broker.transport.value(), before)
        self.assertTrue(broker.protocol.is_open)
        self.finish(broker)

    def test_close_ok_never_comes(self) -> None:
        """Without CloseOk, the transport is dropped after rpc_timeout and close() fires."""
        broker = self.open_connection(rpc_timeout=10)
        d = broker.protocol.close()
        broker.advance(9.9)
        self.assertNoResult(d)
        broker.advance(0.1, deliver_loss=False)
        self.assertTrue(broker.transport.disconnected, "abortConnection was not used")
        broker.deliver_loss()
        self.assertIsNone(self.successResultOf(d))
        self.assertIsInstance(broker.protocol.close_reason, ConnectionClosedByClient)
        self.finish(broker)

    def test_graceful_close_bounded(self) -> None:
        """After a broker Close, a transport that does not go away is aborted after rpc_timeout."""
        broker = self.open_connection(rpc_timeout=10)
        transport = broker.transport
        broker.read()
        broker.send_method(0, spec.Connection.Close(320, "CONNECTION_FORCED"), deliver_loss=False)
        broker.expect(spec.Connection.CloseOk)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        broker.advance(9.9, deliver_loss=False)
        self.assertFalse(transport.disconnected)
        broker.advance(0.1, deliver_loss=False)
        self.assertTrue(transport.disconnected, "abortConnection was not used")
        broker.deliver_loss()
        self.assertIsInstance(broker.protocol.close_reason, ConnectionClosedByBroker)
        self.finish(broker)

    def test_close_fails_channel_rpcs_at_once(self) -> None:
        """close() fails pending channel RPCs with ConnectionClosedByClient before CloseOk."""
        broker = self.open_connection()
        ch = broker.open_channel()
        declare = ch.queue_declare("q")
        broker.protocol.close()
        self.failureResultOf(declare, ConnectionClosedByClient)
        self.assertTrue(ch.is_closed)
        self.finish(broker)

    def test_broker_close(self) -> None:
        """Broker Connection.Close → CloseOk written, ConnectionClosedByBroker everywhere."""
        broker = self.open_connection()
        proto = broker.protocol
        ch = broker.open_channel()
        declare = ch.queue_declare("q")
        seen: list[tuple[AMQPProtocol, Exception]] = []
        proto.add_on_close_callback(lambda c, e: seen.append((c, e)))
        closed = proto.when_closed()
        broker.read()
        broker.send_method(0, spec.Connection.Close(320, "CONNECTION_FORCED - shutdown"))
        broker.expect(spec.Connection.CloseOk)
        reason = self.successResultOf(closed)
        self.assertIsInstance(reason, ConnectionClosedByBroker)
        self.assertEqual(reason.args, (320, "CONNECTION_FORCED - shutdown"))
        self.assertEqual(seen, [(proto, reason)])
        self.assertIs(proto.close_reason, reason)
        self.assertIs(self.failureResultOf(declare).value, reason)
        self.assertTrue(broker.lost)
        self.finish(broker)

    def test_when_closed_after_close(self) -> None:
        """when_closed() on a closed connection fires at once with the reason."""
        broker = self.open_connection()
        broker.lose()
        reason = self.successResultOf(broker.protocol.when_closed())
        self.assertIsInstance(reason, StreamLostError)
        self.finish(broker)

    def test_loss_when_open(self) -> None:
        """Transport lost while open → StreamLostError; on-close callbacks run once."""
        broker = self.open_connection()
        seen: list[Exception] = []
        broker.protocol.add_on_close_callback(lambda c, e: seen.append(e))
        broker.lose(ConnectionLost("reset"))
        self.assertEqual(len(seen), 1)
        self.assertIsInstance(seen[0], StreamLostError)
        broker.protocol.connectionLost()  # a second notification changes nothing
        self.assertEqual(len(seen), 1)
        self.finish(broker)

    def test_fail(self) -> None:
        """fail(exc) drops the connection with exc as the reason of everything pending."""
        broker = self.open_connection()
        ch = broker.open_channel()
        declare = ch.queue_declare("q")
        error = RuntimeError("socket trouble")
        broker.protocol.fail(error)
        broker.deliver_loss()
        self.assertIs(self.failureResultOf(declare).value, error)
        self.assertIs(broker.protocol.close_reason, error)
        self.finish(broker)


# ----------------------------------------------------------------------
# Peer violations


class ViolationTests(AMQPTestCase):
    """A peer violating the protocol gets Connection.Close with the error's reply code."""

    def violate(
        self, data: bytes, code: int, error: type[Exception], *, frame_max: int = 131072
    ) -> None:
        """Open a connection and channel 1, send *data*, check the close and the reason."""
        broker = self.open_connection(tune={"frame_max": frame_max})
        ch = broker.open_channel()
        declare = ch.queue_declare("q")
        broker.read()
        broker.send(data)
        close = broker.expect(spec.Connection.Close)
        self.assertEqual(close.reply_code, code)
        self.assertTrue(broker.lost)
        reason = broker.protocol.close_reason
        self.assertIsInstance(reason, error)
        self.assertIs(self.failureResultOf(declare).value, reason)
        self.assertIs(ch.close_reason, reason)
        self.finish(broker)

    def test_bad_frame_end(self) -> None:
        """A frame-end byte other than 0xCE → 501 InvalidFrameError."""
        payload = spec.Connection.Blocked("x").encode()
        self.violate(raw_frame(1, 0, payload, end=0x00), 501, InvalidFrameError)

    def test_unknown_frame_type(self) -> None:
        """An unknown frame type → 501 InvalidFrameError."""
        self.violate(raw_frame(5, 0, b""), 501, InvalidFrameError)

    def test_oversize_frame(self) -> None:
        """A frame larger than the negotiated frame_max → 501 InvalidFrameError."""
        self.violate(raw_frame(3, 1, b"x" * 4089), 501, InvalidFrameError, frame_max=4096)

    def test_heartbeat_on_channel(self) -> None:
        """A heartbeat frame on channel 1 → 505 UnexpectedFrameError."""
        self.violate(raw_frame(8, 1, b""), 505, UnexpectedFrameError)

    def test_unknown_method(self) -> None:
        """An unknown method → 540 MethodNotImplemented."""
        self.violate(raw_frame(1, 0, struct.pack(">HH", 10, 99)), 540, MethodNotImplemented)

    def test_frame_for_unopened_channel(self) -> None:
        """A frame for a channel that is not open → 505 UnexpectedFrameError."""
        data = codec.encode_method_frame(7, spec.Basic.Ack(1, False))
        self.violate(data, 505, UnexpectedFrameError)

    def test_header_without_method(self) -> None:
        """A content header without its method → 505 UnexpectedFrameError."""
        data = codec.encode_header_frame(1, 10, None)
        self.violate(data, 505, UnexpectedFrameError)

    def test_body_without_header(self) -> None:
        """A body frame without a header → 505 UnexpectedFrameError."""
        self.violate(raw_frame(3, 1, b"abc"), 505, UnexpectedFrameError)

    def test_body_after_method_without_header(self) -> None:
        """A content method then a body frame (no header) → 505 UnexpectedFrameError."""
        data = codec.encode_method_frame(1, spec.Basic.Deliver("t", 1, False, "", "q"))
        self.violate(data + raw_frame(3, 1, b"abc"), 505, UnexpectedFrameError)

    def test_method_while_content_expected(self) -> None:
        """A method frame while a content header was expected → 505 UnexpectedFrameError."""
        deliver = codec.encode_method_frame(1, spec.Basic.Deliver("t", 1, False, "", "q"))
        self.violate(deliver + deliver, 505, UnexpectedFrameError)

    def test_method_while_body_expected(self) -> None:
        """A method frame while body bytes were still due → 505 UnexpectedFrameError."""
        deliver = codec.encode_method_frame(1, spec.Basic.Deliver("t", 1, False, "", "q"))
        header = codec.encode_header_frame(1, 10, None)
        self.violate(
            deliver + header + raw_frame(3, 1, b"abc") + deliver, 505, UnexpectedFrameError
        )

    def test_body_longer_than_announced(self) -> None:
        """More body bytes than the header announced → 501 BodyTooLongError."""
        deliver = codec.encode_method_frame(1, spec.Basic.Deliver("t", 1, False, "", "q"))
        header = codec.encode_header_frame(1, 3, None)
        self.violate(deliver + header + raw_frame(3, 1, b"abcde"), 501, BodyTooLongError)

    def test_unexpected_connection_method(self) -> None:
        """Connection.Tune on an open connection → 505 UnexpectedFrameError."""
        self.violate(
            codec.encode_method_frame(0, spec.Connection.Tune(0, 0, 0)), 505, UnexpectedFrameError
        )

    def test_content_on_channel_zero(self) -> None:
        """A content header on channel 0 → 505 UnexpectedFrameError."""
        self.violate(codec.encode_header_frame(0, 3, None), 505, UnexpectedFrameError)

    def test_body_too_long_reports_sizes(self) -> None:
        """BodyTooLongError carries the received and the announced sizes, as pika's does."""
        broker = self.open_connection()
        broker.open_channel()
        deliver = codec.encode_method_frame(1, spec.Basic.Deliver("t", 1, False, "", "q"))
        header = codec.encode_header_frame(1, 10, None)
        broker.send(deliver + header + raw_frame(3, 1, b"abcd") + raw_frame(3, 1, b"x" * 11))
        reason = broker.protocol.close_reason
        self.assertIsInstance(reason, BodyTooLongError)
        self.assertEqual(reason.args, (15, 10))  # type: ignore[union-attr]
        self.finish(broker)

    def test_frames_after_violation_in_same_chunk_ignored(self) -> None:
        """Frames after the offending one in the same read are not dispatched."""
        broker = self.open_connection()
        events: list[object] = []
        broker.protocol.add_on_connection_blocked_callback(lambda c, m: events.append(m))
        broker.read()
        broker.send(raw_frame(5, 0, b"") + codec.encode_method_frame(0, spec.Connection.Blocked()))
        self.assertEqual(events, [])
        self.assertEqual(broker.expect(spec.Connection.Close).reply_code, 501)
        broker.expect_nothing()
        self.finish(broker)


class ViolationByteAtATimeTests(ViolationTests):
    """The violation tests, with the broker's bytes fed one at a time."""

    chunk_size = 1


# ----------------------------------------------------------------------
# Channel numbers


class ChannelNumberTests(AMQPTestCase):
    """Allocating channel numbers."""

    def test_sequential(self) -> None:
        """Channels get 1, 2, 3 in turn."""
        broker = self.open_connection()
        numbers = [broker.open_channel().channel_number for _ in range(3)]
        self.assertEqual(numbers, [1, 2, 3])
        self.assertEqual(sorted(broker.protocol.channels), [1, 2, 3])
        self.finish(broker)

    def test_lowest_free_after_close(self) -> None:
        """A closed channel's number is given out again, the lowest free first."""
        broker = self.open_connection()
        channels = [broker.open_channel() for _ in range(3)]
        channels[1].close()
        broker.expect(spec.Channel.Close, 2)
        broker.send_method(2, spec.Channel.CloseOk())
        self.assertEqual(sorted(broker.protocol.channels), [1, 3])
        self.assertEqual(broker.open_channel().channel_number, 2)
        self.assertEqual(broker.open_channel().channel_number, 4)
        self.finish(broker)

    def test_lowest_free_with_explicit_numbers(self) -> None:
        """After an explicit channel 5, channel() still gives the lowest free numbers 1, 2, 3."""
        broker = self.open_connection()
        broker.open_channel(5)
        numbers = [broker.open_channel().channel_number for _ in range(3)]
        self.assertEqual(numbers, [1, 2, 3])
        self.finish(broker)

    def test_explicit_number_in_use(self) -> None:
        """An explicit number already in use → InvalidChannelNumber, nothing written."""
        broker = self.open_connection()
        broker.open_channel(3)
        before = broker.transport.value()
        self.assertRaises(InvalidChannelNumber, broker.protocol.channel, 3)
        self.assertEqual(broker.transport.value(), before)
        self.finish(broker)

    def test_out_of_range(self) -> None:
        """0, channel_max + 1 and 65536 → InvalidChannelNumber; a non-int → TypeError."""
        broker = self.open_connection(tune={"channel_max": 10})
        before = broker.transport.value()
        for number in (0, 11, 65536, -1):
            with self.subTest(number=number):
                self.assertRaises(InvalidChannelNumber, broker.protocol.channel, number)
        self.assertRaises(TypeError, broker.protocol.channel, "1")
        self.assertRaises(TypeError, broker.protocol.channel, True)
        self.assertEqual(broker.transport.value(), before)
        self.assertEqual(broker.open_channel(10).channel_number, 10)
        self.finish(broker)

    def test_no_free_channels(self) -> None:
        """With channel_max=2, a third channel() fails with NoFreeChannels, nothing written."""
        broker = self.open_connection(channel_max=2)
        self.assertEqual(broker.protocol.channel_max, 2)
        broker.open_channel()
        broker.open_channel()
        before = broker.transport.value()
        self.failureResultOf(broker.protocol.channel(), NoFreeChannels)
        self.assertEqual(broker.transport.value(), before)
        self.finish(broker)

    def test_channel_before_open(self) -> None:
        """channel() before the connection is open fails with ConnectionWrongStateError."""
        broker = self.make_broker()
        self.failureResultOf(broker.protocol.channel(), ConnectionWrongStateError)
        self.finish(broker)

    def test_channel_after_close(self) -> None:
        """channel() on a closed connection fails with the close reason."""
        broker = self.open_connection()
        broker.lose()
        self.failureResultOf(broker.protocol.channel(), StreamLostError)
        self.finish(broker)


# ----------------------------------------------------------------------
# Counters


class CounterTests(AMQPTestCase):
    """bytes_sent / bytes_received / frames_sent / frames_received."""

    def check(self, broker: FakeBroker) -> None:
        proto = broker.protocol
        broker.read()
        self.assertEqual(proto.bytes_sent, len(broker.transport.value()))
        self.assertEqual(proto.frames_sent, len(broker.written))
        self.assertEqual(proto.bytes_received, broker.bytes_fed)

    def test_handshake(self) -> None:
        """After the handshake: 3 frames each way, and the bytes written and read."""
        broker = self.open_connection()
        self.check(broker)
        self.assertEqual(broker.protocol.frames_sent, 3)
        self.assertEqual(broker.protocol.frames_received, 3)
        self.finish(broker)

    def test_heartbeats_counted(self) -> None:
        """Heartbeat frames count in both directions."""
        broker = self.open_connection(tune={"heartbeat": 10})
        broker.advance(5)
        broker.send_heartbeat()
        broker.advance(5)
        self.check(broker)
        self.assertEqual(broker.protocol.frames_received, 4)
        self.assertEqual(broker.protocol.frames_sent, 4)
        self.finish(broker)

    def test_publish_frames_counted(self) -> None:
        """A publish counts each of its frames: 2 for an empty body, more for a long one."""
        broker = self.open_connection(tune={"frame_max": 4096})
        ch = broker.open_channel()
        ch.basic_publish("", "q", b"")
        self.check(broker)
        ch.basic_publish("", "q", b"x" * 10000)  # 3 body frames
        self.check(broker)
        ch.basic_publish("", "q", b"small")
        self.check(broker)
        self.finish(broker)

    def test_publish_queued_behind_select_counted(self) -> None:
        """Publishes held back until Confirm.SelectOk count all their frames when written."""
        broker = self.open_connection()
        ch = broker.open_channel()
        declare = ch.queue_declare("q")
        ch.confirm_delivery()
        published = ch.basic_publish("", "q", b"body")
        broker.send_method(1, spec.Queue.DeclareOk("q", 0, 0))
        broker.send_method(1, spec.Confirm.SelectOk())
        self.successResultOf(declare)
        self.check(broker)
        broker.send_method(1, spec.Basic.Ack(1, False))
        self.successResultOf(published)
        self.finish(broker)

    def test_delivery_frames_counted(self) -> None:
        """A delivery arriving whole counts its method, header and body frames."""
        broker = self.open_connection(tune={"frame_max": 4096})
        ch = broker.open_channel()
        d = ch.basic_consume("q", lambda c, m, p, b: None, consumer_tag="t")
        broker.send_method(1, spec.Basic.ConsumeOk("t"))
        self.successResultOf(d)
        received = broker.protocol.frames_received
        deliver = spec.Basic.Deliver("t", 1, False, "", "q")
        broker.send_message(1, deliver, b"small")
        self.assertEqual(broker.protocol.frames_received, received + 3)
        broker.send_message(1, deliver, b"x" * 5000)
        self.assertEqual(broker.protocol.frames_received, received + 3 + 4)
        self.check(broker)
        self.finish(broker)

    def test_received_counted_byte_by_byte(self) -> None:
        """Bytes fed one at a time are all counted, and frames once each."""
        broker = self.open_connection()
        broker.chunk_size = 1
        broker.send_heartbeat()
        broker.send_method(0, spec.Connection.Blocked("x"))
        self.check(broker)
        self.assertEqual(broker.protocol.frames_received, 5)
        self.finish(broker)


# ----------------------------------------------------------------------
# Flow control of writes


class WhenWritableTests(AMQPTestCase):
    """``when_writable`` with the transport's producer calls and Blocked/Unblocked."""

    def test_registered_as_streaming_producer(self) -> None:
        """The protocol registers itself with the transport as a streaming producer."""
        broker = self.make_broker()
        self.assertIs(broker.transport.producer, broker.protocol)
        self.assertTrue(broker.transport.streaming)
        self.finish(broker)

    def test_writable_at_once(self) -> None:
        """Neither paused nor blocked: when_writable has already fired."""
        broker = self.open_connection()
        self.assertIsNone(self.successResultOf(broker.protocol.when_writable()))
        self.finish(broker)

    def test_paused_then_resumed(self) -> None:
        """pauseProducing holds when_writable back; resumeProducing fires it."""
        broker = self.open_connection()
        proto = broker.protocol
        proto.pauseProducing()
        d1 = proto.when_writable()
        d2 = proto.when_writable()
        self.assertNoResult(d1)
        proto.resumeProducing()
        self.assertIsNone(self.successResultOf(d1))
        self.assertIsNone(self.successResultOf(d2))
        self.finish(broker)

    def test_blocked_then_unblocked(self) -> None:
        """Connection.Blocked holds when_writable back; Unblocked fires it."""
        broker = self.open_connection()
        proto = broker.protocol
        broker.send_method(0, spec.Connection.Blocked("mem"))
        d = proto.when_writable()
        self.assertNoResult(d)
        broker.send_method(0, spec.Connection.Unblocked())
        self.assertIsNone(self.successResultOf(d))
        self.finish(broker)

    def test_paused_and_blocked(self) -> None:
        """Paused and blocked: it fires only when both are over, in either order."""
        broker = self.open_connection()
        proto = broker.protocol
        broker.send_method(0, spec.Connection.Blocked("mem"))
        proto.pauseProducing()
        d = proto.when_writable()
        proto.resumeProducing()
        self.assertNoResult(d)
        proto.pauseProducing()
        broker.send_method(0, spec.Connection.Unblocked())
        self.assertNoResult(d)
        proto.resumeProducing()
        self.assertIsNone(self.successResultOf(d))
        self.finish(broker)

    def test_hands_held_writes_to_transport(self) -> None:
        """Called from a consumer callback, when_writable first hands what was written so far
        to the transport, so that the transport's buffer accounts for it."""
        broker = self.open_connection()
        proto = broker.protocol
        ch = broker.open_channel()
        seen: list[tuple[bytes, Deferred[None]]] = []

        def on_message(c: Any, m: Any, p: Any, b: bytes) -> None:
            c.basic_publish("", "replies", b"answer to " + b)
            writable = proto.when_writable()
            seen.append((broker.transport.value(), writable))

        d = ch.basic_consume("q", on_message, consumer_tag="t")
        broker.send_method(1, spec.Basic.ConsumeOk("t"))
        self.successResultOf(d)
        broker.read()
        broker.send_message(1, spec.Basic.Deliver("t", 1, False, "", "q"), b"question")
        [(written, writable)] = seen
        self.assertIsNone(self.successResultOf(writable))
        self.assertEqual(written, broker.transport.value())
        self.assertEqual(broker.expect_message(1)[2], b"answer to question")
        self.finish(broker)

    def test_connection_lost(self) -> None:
        """A pending when_writable fails with the close reason; later calls fail at once."""
        broker = self.open_connection()
        proto = broker.protocol
        proto.pauseProducing()
        d = proto.when_writable()
        broker.lose()
        reason = self.failureResultOf(d, StreamLostError).value
        self.assertIs(self.failureResultOf(proto.when_writable()).value, reason)
        self.finish(broker)

"""AMQPClientService: reconnection with backoff, on fake endpoints and a Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txamqp091 import ConnectionParameters, spec
from txamqp091.exceptions import AccessRefused
from txamqp091.protocol import AMQPProtocol
from txamqp091.service import AMQPClientService
from txamqp091.test.fakebroker import FakeBroker


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """Refuses the first ``refuse`` attempts, then connects to a StringTransport."""

    def __init__(self, clock: Clock, name: str, log: list[str], refuse: int = 0) -> None:
        self.clock = clock
        self.name = name
        self.log = log
        self.refuse = refuse
        self.brokers: list[FakeBroker] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        self.log.append(self.name)
        if self.refuse:
            self.refuse -= 1
            return fail(ConnectionRefusedError(self.name))
        proto: Any = factory.buildProtocol(None)  # type: ignore[arg-type]
        transport = StringTransport()
        proto.makeConnection(transport)
        broker = FakeBroker(proto, self.clock, transport)
        broker.connected = True
        self.brokers.append(broker)
        return succeed(proto)


class ServiceTests(SynchronousTestCase):
    """The service connects, retries with backoff, reconnects and stops cleanly."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.log: list[str] = []

    def service(self, target: Any, **kw: Any) -> AMQPClientService:
        return AMQPClientService(
            self.clock,
            target,
            parameters=ConnectionParameters(heartbeat=0),
            retry_policy=lambda failures: 2.0**failures,
            **kw,
        )

    def stop(self, service: AMQPClientService, broker: FakeBroker | None = None) -> None:
        stopped = service.stopService()
        if broker is not None and broker.protocol.is_closing:
            broker.expect(spec.Connection.Close)
            broker.send_method(0, spec.Connection.CloseOk())
            broker.deliver_loss()
        self.successResultOf(stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_first_connection_retried_with_backoff(self) -> None:
        """Refused first attempts are retried after the policy's delays; whenConnected
        fires only once the AMQP handshake is done, with the open connection."""
        endpoint = FakeEndpoint(self.clock, "a", self.log, refuse=2)
        service = self.service(endpoint)
        service.startService()
        connected = service.whenConnected()
        self.assertEqual(self.log, ["a"])
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [2.0])
        self.clock.advance(2.0)
        self.assertEqual(self.log, ["a", "a"])
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [2.0 + 4.0])
        self.clock.advance(4.0)
        self.assertEqual(self.log, ["a", "a", "a"])
        self.assertNoResult(connected)  # TCP is up, the AMQP handshake is not
        broker = endpoint.brokers[0]
        broker.handshake()
        connection = self.successResultOf(connected)
        self.assertIsInstance(connection, AMQPProtocol)
        self.assertTrue(connection.is_open)
        self.assertIs(service.connection, connection)
        self.stop(service, broker)

    def test_targets_tried_in_turn(self) -> None:
        """Several targets are tried one per attempt, in order, round and round."""
        first = FakeEndpoint(self.clock, "a", self.log, refuse=5)
        second = FakeEndpoint(self.clock, "b", self.log, refuse=1)
        service = AMQPClientService(
            self.clock,
            [first, second],
            parameters=ConnectionParameters(heartbeat=0),
            retry_policy=lambda failures: 1.0,
        )
        service.startService()
        connected = service.whenConnected()
        self.clock.advance(1.0)
        self.clock.advance(1.0)
        self.clock.advance(1.0)
        self.assertEqual(self.log, ["a", "b", "a", "b"])
        second.brokers[0].handshake()
        self.successResultOf(connected)
        self.stop(service, second.brokers[0])

    def test_reconnects_after_loss(self) -> None:
        """A lost connection is replaced: a new attempt, and whenConnected gives the new
        open connection; the old one is forgotten."""
        endpoint = FakeEndpoint(self.clock, "a", self.log)
        service = self.service(endpoint)
        service.startService()
        first_broker = endpoint.brokers[0]
        first_broker.handshake()
        first = self.successResultOf(service.whenConnected())
        first_broker.lose()
        self.assertIsNone(service.connection)
        self.assertTrue(first.is_closed)
        self.clock.advance(2.0)  # ClientService's first retry delay: policy(1)
        self.assertEqual(self.log, ["a", "a"])
        second_broker = endpoint.brokers[1]
        second_broker.handshake()
        second = self.successResultOf(service.whenConnected())
        self.assertIsNot(second, first)
        self.assertIs(service.connection, second)
        self.stop(service, second_broker)

    def test_when_connected_asked_as_the_connection_closes(self) -> None:
        """whenConnected() asked from the old connection's close notification (before
        ClientService hears of the loss) never gives the closed connection."""
        endpoint = FakeEndpoint(self.clock, "a", self.log)
        service = self.service(endpoint)
        service.startService()
        first_broker = endpoint.brokers[0]
        first_broker.handshake()
        first = self.successResultOf(service.whenConnected())
        asked: list[Deferred[AMQPProtocol]] = []
        first.add_on_close_callback(lambda conn, reason: asked.append(service.whenConnected()))
        first_broker.lose()
        self.assertNoResult(asked[0])
        self.clock.advance(0)
        self.clock.advance(2.0)  # the retry
        second_broker = endpoint.brokers[1]
        second_broker.handshake()
        second = self.successResultOf(asked[0])
        self.assertIsNot(second, first)
        self.assertTrue(second.is_open)
        self.stop(service, second_broker)

    def test_stop_closes_with_handshake(self) -> None:
        """stopService sends Connection.Close and fires once the broker's CloseOk ended
        the connection; no timer is left."""
        endpoint = FakeEndpoint(self.clock, "a", self.log)
        service = self.service(endpoint)
        service.startService()
        broker = endpoint.brokers[0]
        broker.handshake()
        connection = self.successResultOf(service.whenConnected())
        stopped = service.stopService()
        self.assertNoResult(stopped)
        close = broker.expect(spec.Connection.Close)
        self.assertEqual(close.reply_code, 200)
        broker.send_method(0, spec.Connection.CloseOk())
        broker.deliver_loss()
        self.successResultOf(stopped)
        self.assertTrue(connection.is_closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_while_retrying(self) -> None:
        """Stopping while waiting to retry cancels the retry: no timer is left."""
        endpoint = FakeEndpoint(self.clock, "a", self.log, refuse=100)
        service = self.service(endpoint)
        service.startService()
        pending = service.whenConnected()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.stop(service)
        self.failureResultOf(pending)
        self.assertEqual(self.log, ["a"])

    def test_refused_login_retried_without_logged_errors(self) -> None:
        """A broker refusing the login closes a connection the service never accepted:
        whenConnected(failAfterFailures=1) fails with AccessRefused, the service retries
        after its backoff, and nothing is logged as an error (Twisted's ClientService
        would log NoTransition for the loss of such a connection)."""
        endpoint = FakeEndpoint(self.clock, "a", self.log)
        service = self.service(endpoint)
        service.startService()
        failing = service.whenConnected(failAfterFailures=1)
        broker = endpoint.brokers[0]
        broker.start()
        broker.expect(spec.Connection.StartOk)
        broker.send_method(0, spec.Connection.Close(403, "ACCESS_REFUSED", 0, 0))
        broker.expect(spec.Connection.CloseOk)
        broker.deliver_loss()
        self.failureResultOf(failing, AccessRefused)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # the retry
        self.clock.advance(2.0)
        second = endpoint.brokers[1]
        second.handshake()
        self.successResultOf(service.whenConnected())
        self.stop(service, second)

    def test_stop_during_handshake_aborts(self) -> None:
        """Stopping while the AMQP handshake is under way aborts that connection and
        stops the service; the protocol's own ``ready`` fails once, with the abort."""
        endpoint = FakeEndpoint(self.clock, "a", self.log)
        service = self.service(endpoint)
        service.startService()
        broker = endpoint.brokers[0]
        broker.start()
        stopped = service.stopService()
        self.assertTrue(broker.transport.disconnecting)
        broker.deliver_loss()
        self.successResultOf(stopped)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_bad_backoff_arguments(self) -> None:
        """Backoff settings are checked when the service is made."""
        endpoint = FakeEndpoint(self.clock, "a", self.log)
        for kw in ({"initial_delay": -1}, {"factor": 0.5}, {"jitter": "x"}, {"max_delay": True}):
            with self.assertRaises(ValueError, msg=str(kw)):
                AMQPClientService(self.clock, endpoint, **kw)

    def test_when_connected_while_closing_does_not_spin(self) -> None:
        """whenConnected() asked while the connection's close handshake is pending
        waits for the close without polling the clock: the close timer stays the one
        delayed call, however often the clock turns, until the broker's CloseOk;
        after the loss, the retry and the new handshake it fires with the new
        connection."""
        endpoint = FakeEndpoint(self.clock, "a", self.log)
        service = self.service(endpoint)
        service.startService()
        first_broker = endpoint.brokers[0]
        first_broker.handshake()
        first = self.successResultOf(service.whenConnected())
        closing = first.close()
        first_broker.expect(spec.Connection.Close)
        asked = service.whenConnected()
        for _ in range(5):
            # Checked before the clock turns: a call due now would run for ever.
            calls = self.clock.getDelayedCalls()
            self.assertEqual(len(calls), 1, calls)  # the close timer, nothing due now
            self.assertGreater(calls[0].getTime(), self.clock.seconds())
            self.clock.advance(0)
        self.clock.advance(1.0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertNoResult(asked)
        first_broker.send_method(0, spec.Connection.CloseOk())
        self.assertTrue(first_broker.lost)
        self.successResultOf(closing)
        self.assertNoResult(asked)
        self.clock.advance(0)
        (retry,) = self.clock.getDelayedCalls()
        self.clock.advance(retry.getTime() - self.clock.seconds())
        self.assertEqual(self.log, ["a", "a"])
        self.assertNoResult(asked)
        second_broker = endpoint.brokers[1]
        second_broker.handshake()
        second = self.successResultOf(asked)
        self.assertIsNot(second, first)
        self.assertTrue(second.is_open)
        self.assertIs(service.connection, second)
        self.stop(service, second_broker)

    def test_default_backoff_and_argument_checks(self) -> None:
        """Without retry_policy, with jitter=0, initial_delay=1, factor=2 and
        max_delay=5, the delays before the retries are 1, 2, 4, 5, 5 s.  Bad outbox
        bounds and a retry_policy that is not callable are refused when the service
        is made; a channel number that is not an int (TypeError) or out of range
        (ValueError) is refused at once by channel()."""
        endpoint = FakeEndpoint(self.clock, "a", self.log, refuse=5)
        service = AMQPClientService(
            self.clock,
            endpoint,
            parameters=ConnectionParameters(heartbeat=0),
            initial_delay=1,
            factor=2,
            max_delay=5,
            jitter=0,
        )
        service.startService()
        delays = []
        for _ in range(5):
            (call,) = self.clock.getDelayedCalls()
            delays.append(call.getTime() - self.clock.seconds())
            self.clock.advance(delays[-1])
        self.assertEqual(delays, [1, 2, 4, 5, 5])
        self.assertEqual(self.log, ["a"] * 6)
        broker = endpoint.brokers[0]
        broker.handshake()
        self.successResultOf(service.whenConnected())
        self.stop(service, broker)
        bad: list[dict[str, Any]] = [{"outbox_bytes": 0}, {"outbox_messages": -1}]
        for kw in bad:
            with self.assertRaises(ValueError, msg=str(kw)):
                AMQPClientService(self.clock, endpoint, **kw)
        with self.assertRaises(TypeError):
            AMQPClientService(self.clock, endpoint, retry_policy="x")  # type: ignore[arg-type]
        idle = self.service(endpoint)
        self.assertRaises(TypeError, idle.channel, "1")
        self.assertRaises(TypeError, idle.channel, True)
        self.assertRaises(ValueError, idle.channel, 0)
        self.assertRaises(ValueError, idle.channel, 65536)
        self.assertEqual(self.clock.getDelayedCalls(), [])

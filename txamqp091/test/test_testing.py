"""Tests for :mod:`txamqp091.testing`: the fault-injecting TCP proxy.

Most tests relay to a small echo server on 127.0.0.1; one goes through RabbitMQ. The
``"delay"`` and ``"throttle"`` tests drive the proxy's timers with a
:class:`~twisted.internet.task.Clock`, so they are deterministic; everything else waits for
events (with a timeout), never for time to pass.
"""

# trial's assertion methods carry no annotations.
# mypy: allow-untyped-calls

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IDelayedCall, IListeningPort, ITCPTransport
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial import unittest

from txamqp091.connect import connect
from txamqp091.exceptions import StreamLostError
from txamqp091.protocol import AMQPProtocol
from txamqp091.test.broker import broker_address, ensure_broker
from txamqp091.testing import MODES, FaultProxy, ProxyConnection

#: The global reactor, typed loosely (its interfaces are provided dynamically).
reactor: Any = _reactor

#: Seconds allowed for one awaited event.
WAIT = 10.0

#: A port on 127.0.0.1 where nothing listens (binding it needs privileges nobody uses).
REFUSED_PORT = 1

_Gen = Generator[defer.Deferred[Any], Any, None]


def wait(d: defer.Deferred[Any], timeout: float = WAIT) -> defer.Deferred[Any]:
    """``d``, failing with :class:`~twisted.internet.defer.TimeoutError` after ``timeout``."""
    return d.addTimeout(timeout, reactor)


class _Bytes:
    """Bytes received so far, with Deferreds waiting for a total length."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._waiters: list[tuple[int, defer.Deferred[bytes]]] = []

    def add(self, data: bytes) -> None:
        self.data += data
        ready = [(n, d) for n, d in self._waiters if len(self.data) >= n]
        for item in ready:
            self._waiters.remove(item)
            item[1].callback(bytes(self.data))

    def when_length(self, n: int) -> defer.Deferred[bytes]:
        """Fire with every byte received once there are at least ``n`` of them."""
        d: defer.Deferred[bytes] = defer.Deferred()
        self._waiters.append((n, d))
        self.add(b"")
        return wait(d)


class _Peer(Protocol):
    """Either end of a test connection: records what it reads and how it was lost."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.received = _Bytes()
        self.reason: Failure | None = None
        self._lost_waiters: list[defer.Deferred[list[Failure]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received.add(data)
        if self.echo:
            assert self.transport is not None
            self.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback([reason])

    @property
    def is_lost(self) -> bool:
        """``True`` once the connection is lost."""
        return self.reason is not None

    @property
    def lost_reason(self) -> Failure:
        """Why the connection was lost (only once it is)."""
        assert self.reason is not None
        return self.reason

    def when_lost(self) -> defer.Deferred[None]:
        """Fire (never fail) once the connection is lost; see :attr:`lost_reason`."""
        d: defer.Deferred[list[Failure]] = defer.Deferred()
        if self.reason is not None:
            d.callback([self.reason])
        else:
            self._lost_waiters.append(d)
        return wait(d).addCallback(lambda _: None)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


class _EchoServer(Factory):
    """A TCP echo server; remembers its connections so that a test can close them all."""

    noisy = False

    def __init__(self) -> None:
        self.peers: list[_Peer] = []
        self.connected = _Bytes()  # one byte per accepted connection
        self.port: IListeningPort | None = None

    def buildProtocol(self, addr: Any) -> _Peer:
        peer = _Peer(echo=True)
        self.peers.append(peer)
        self.connected.add(b"+")
        return peer

    def start(self) -> int:
        self.port = reactor.listenTCP(0, self, interface="127.0.0.1")
        port: int = self.port.getHost().port  # type: ignore[union-attr]
        return port

    @defer.inlineCallbacks
    def stop(self) -> _Gen:
        if self.port is not None:
            yield defer.maybeDeferred(self.port.stopListening)
        for peer in self.peers:
            if not peer.is_lost and peer.transport is not None:
                ITCPTransport(peer.transport).abortConnection()
            yield peer.when_lost()


class ProxyTestCase(unittest.TestCase):
    """Base class: an echo server as the target, and helpers that clean up after
    themselves (the proxy is always stopped, every socket closed)."""

    timeout = 30

    def setUp(self) -> None:
        self.echo = _EchoServer()
        self.echo_port = self.echo.start()
        self.addCleanup(self.echo.stop)

    @defer.inlineCallbacks
    def start_proxy(self, **kw: Any) -> Generator[defer.Deferred[Any], Any, FaultProxy]:
        """Start a proxy to the echo server (stopped at cleanup)."""
        kw.setdefault("target_port", self.echo_port)
        proxy = FaultProxy(reactor, "127.0.0.1", **kw)
        port = yield proxy.start()
        self.addCleanup(proxy.stop)
        self.assertEqual(port, proxy.port)
        return proxy

    @defer.inlineCallbacks
    def connect_client(self, port: int) -> Generator[defer.Deferred[Any], Any, _Peer]:
        """Connect a client to ``port`` (aborted at cleanup if still connected)."""
        client = _Peer()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        yield wait(connectProtocol(endpoint, client))
        self.addCleanup(self._abort, client)
        return client

    @staticmethod
    def _abort(peer: _Peer) -> defer.Deferred[None]:
        if not peer.is_lost and peer.transport is not None:
            ITCPTransport(peer.transport).abortConnection()
        return peer.when_lost()

    @defer.inlineCallbacks
    def round_trip(self, client: _Peer, data: bytes) -> Generator[defer.Deferred[Any], Any, None]:
        """Write ``data`` and wait until the client has read back everything it wrote."""
        expected = len(client.received.data) + len(data)
        client.write(data)
        yield client.received.when_length(expected)

    @defer.inlineCallbacks
    def connected_pair(
        self, **kw: Any
    ) -> Generator[defer.Deferred[Any], Any, tuple[FaultProxy, _Peer, ProxyConnection]]:
        """A started proxy and one client whose connection relays (checked by a round
        trip), with its :class:`ProxyConnection`."""
        proxy = yield self.start_proxy(**kw)
        client = yield self.connect_client(proxy.port)
        yield self.round_trip(client, b"hello")
        self.assertEqual(len(proxy.connections), 1)
        return proxy, client, proxy.connections[0]


class ForwardTests(ProxyTestCase):
    """The default mode relays bytes, and the proxy keeps count of its connections."""

    @defer.inlineCallbacks
    def test_forward_both_ways(self) -> _Gen:
        """Bytes written by the client reach the target, and the target's reply reaches
        the client, in order."""
        _proxy, client, conn = yield self.connected_pair()
        self.assertEqual(bytes(self.echo.peers[0].received.data), b"hello")
        yield self.round_trip(client, b" world")
        self.assertEqual(bytes(client.received.data), b"hello world")
        self.assertEqual(conn.mode, "forward")
        self.assertTrue(conn.upstream_connected)
        self.assertEqual((conn.bytes_from_client, conn.bytes_from_upstream), (11, 11))
        self.assertEqual(conn.pending, 0)

    @defer.inlineCallbacks
    def test_accepted_counts_connections(self) -> _Gen:
        """:attr:`FaultProxy.accepted` counts every accepted connection, closed ones
        included, while :attr:`FaultProxy.connections` lists only the live ones, in accept
        order."""
        proxy = yield self.start_proxy()
        self.assertEqual(proxy.accepted, 0)
        clients = []
        for i in range(3):
            client = yield self.connect_client(proxy.port)
            yield self.round_trip(client, b"x%d" % i)
            clients.append(client)
        self.assertEqual(proxy.accepted, 3)
        self.assertEqual(len(proxy.connections), 3)
        first = proxy.connections[0]
        self.assertEqual(first.bytes_from_client, 2)
        assert clients[0].transport is not None
        clients[0].transport.loseConnection()
        yield wait(first.when_closed())
        self.assertEqual(proxy.accepted, 3)
        self.assertEqual(len(proxy.connections), 2)
        self.assertNotIn(first, proxy.connections)

    @defer.inlineCallbacks
    def test_client_close_closes_upstream(self) -> _Gen:
        """When the client closes its connection, the proxy closes the upstream one
        cleanly."""
        proxy, client, conn = yield self.connected_pair()
        assert client.transport is not None
        client.transport.loseConnection()
        yield self.echo.peers[0].when_lost()
        reason = self.echo.peers[0].lost_reason
        self.assertIsNotNone(reason.check(ConnectionDone))
        yield wait(conn.when_closed())
        self.assertTrue(conn.closed)
        self.assertEqual(proxy.connections, [])

    @defer.inlineCallbacks
    def test_unreachable_target_closes_client(self) -> _Gen:
        """If the target refuses the connection, the proxy closes the client's connection
        and records why in :attr:`FaultProxy.failures`."""
        proxy = yield self.start_proxy(target_port=REFUSED_PORT)
        client = yield self.connect_client(proxy.port)
        yield client.when_lost()
        self.assertEqual(proxy.accepted, 1)
        self.assertEqual(proxy.connections, [])
        self.assertEqual(len(proxy.failures), 1)


class ModeTests(ProxyTestCase):
    """``"blackhole"``, ``"delay"`` and ``"throttle"``, and how modes are set."""

    @defer.inlineCallbacks
    def test_blackhole_drops_bytes_and_keeps_connection(self) -> _Gen:
        """In ``"blackhole"`` the bytes the client writes are dropped (they never reach the
        target) but both sockets stay open; back in ``"forward"``, later bytes flow
        again."""
        proxy, client, conn = yield self.connected_pair()
        proxy.set_mode("blackhole")
        self.assertEqual(conn.mode, "blackhole")
        client.write(b"lost")
        yield wait(conn.when_bytes(from_client=len(b"hello") + len(b"lost")))
        proxy.mode = "forward"
        yield self.round_trip(client, b"again")
        # TCP keeps order: had "lost" been relayed, it would have come before "again".
        self.assertEqual(bytes(client.received.data), b"helloagain")
        self.assertEqual(bytes(self.echo.peers[0].received.data), b"helloagain")
        self.assertFalse(client.is_lost)
        self.assertFalse(self.echo.peers[0].is_lost)
        self.assertEqual(len(self.echo.peers), 1)

    @defer.inlineCallbacks
    def test_blackhole_drops_target_bytes(self) -> _Gen:
        """In ``"blackhole"`` the bytes the target writes are dropped too."""
        _proxy, client, conn = yield self.connected_pair()
        conn.set_mode("blackhole")
        self.echo.peers[0].write(b"unseen")
        yield wait(conn.when_bytes(from_upstream=len(b"hello") + len(b"unseen")))
        conn.set_mode("forward")
        yield self.round_trip(client, b"!")
        self.assertEqual(bytes(client.received.data), b"hello!")

    @defer.inlineCallbacks
    def test_blackhole_holds_a_close_until_the_mode_changes(self) -> _Gen:
        """A dead link carries no close either: when the target closes a blackholed
        connection, the client is not told until the mode changes; then it is."""
        proxy, client, conn = yield self.connected_pair()
        conn.set_mode("blackhole")
        target = self.echo.peers[0]
        assert target.transport is not None
        target.transport.loseConnection()
        yield target.when_lost()
        for _ in range(200):  # the proxy reads the close: bounded wait for that event
            if not conn.upstream_connected:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertFalse(conn.upstream_connected)
        # A round trip on another connection: by then a relayed close would have
        # reached the client.
        other = yield self.connect_client(proxy.port)
        yield self.round_trip(other, b"barrier")
        self.assertFalse(client.is_lost)
        conn.set_mode("forward")
        yield wait(client.when_lost())
        yield wait(conn.when_closed())

    @defer.inlineCallbacks
    def test_delay_holds_bytes_for_the_delay(self) -> _Gen:
        """In ``"delay"`` each direction holds bytes for ``delay`` seconds of the proxy's
        clock: nothing reaches the target, or comes back, before the clock moves on."""
        clock = Clock()
        proxy, client, conn = yield self.connected_pair(clock=clock)
        proxy.set_mode("delay", delay=0.2)
        self.assertEqual(conn.delay, 0.2)
        echo_peer = self.echo.peers[0]
        client.write(b"ping")
        yield wait(conn.when_bytes(from_client=9))
        self.assertEqual(bytes(echo_peer.received.data), b"hello")
        self.assertEqual(conn.pending, 4)
        clock.advance(0.1)
        self.assertEqual(bytes(echo_peer.received.data), b"hello")
        clock.advance(0.1)
        yield echo_peer.received.when_length(9)
        yield wait(conn.when_bytes(from_upstream=9))
        self.assertEqual(bytes(client.received.data), b"hello")
        clock.advance(0.2)
        received = yield client.received.when_length(9)
        self.assertEqual(received, b"helloping")
        self.assertEqual(clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_delay_preserves_order(self) -> _Gen:
        """Bytes held by ``"delay"`` are delivered in the order they arrived, and switching
        back to ``"forward"`` releases what is still held at once."""
        clock = Clock()
        proxy, client, conn = yield self.connected_pair(clock=clock, delay=1.0)
        proxy.mode = "delay"
        client.write(b"a")
        yield wait(conn.when_bytes(from_client=6))
        clock.advance(0.5)
        client.write(b"b")
        yield wait(conn.when_bytes(from_client=7))
        clock.advance(0.5)  # "a" is due, "b" is not
        yield self.echo.peers[0].received.when_length(6)
        proxy.mode = "forward"  # "b" goes now, and "a"'s echo comes back
        received = yield client.received.when_length(7)
        self.assertEqual(received, b"helloab")
        self.assertEqual(clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_throttle_spreads_bytes_over_ticks(self) -> _Gen:
        """In ``"throttle"`` a large write is relayed in chunks of ``rate *
        throttle_interval`` bytes, one per tick of the clock."""
        clock = Clock()
        proxy, client, conn = yield self.connected_pair(clock=clock)
        proxy.set_mode("throttle", rate=100)  # chunks of 10 bytes, one per 0.1 s
        self.assertEqual(conn.rate, 100)
        payload = bytes(range(65, 100))  # 35 bytes
        echo_peer = self.echo.peers[0]
        client.write(payload)
        # The first chunk goes at once, each way.
        yield client.received.when_length(5 + 10)
        self.assertEqual(len(echo_peer.received.data), 5 + 10)
        ticks, previous = 0, 10
        for total in (20, 30, 35):
            self.assertEqual(len(client.received.data), 5 + previous)
            self.assertEqual(conn.pending, 35 - previous)
            clock.advance(0.1)
            previous = total
            ticks += 1
            yield client.received.when_length(5 + total)
            self.assertEqual(len(echo_peer.received.data), 5 + total)
        self.assertEqual(ticks, 3)
        self.assertEqual(bytes(client.received.data), b"hello" + payload)
        self.assertEqual(clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_connection_mode_is_per_connection(self) -> _Gen:
        """:meth:`ProxyConnection.set_mode` changes one connection only, while the proxy's
        mode is what new connections start with."""
        proxy, _client, conn = yield self.connected_pair()
        other = yield self.connect_client(proxy.port)
        yield self.round_trip(other, b"hi")
        conn.set_mode("blackhole")
        self.assertEqual(proxy.connections[1].mode, "forward")
        yield self.round_trip(other, b"still")
        proxy.mode = "blackhole"
        third = yield self.connect_client(proxy.port)
        third.write(b"x")
        yield wait(self.echo.connected.when_length(3))
        self.assertEqual([c.mode for c in proxy.connections], ["blackhole"] * 3)
        yield wait(proxy.connections[2].when_bytes(from_client=1))
        self.assertEqual(bytes(self.echo.peers[2].received.data), b"")

    def test_invalid_modes_and_options(self) -> None:
        """Unknown modes and out-of-range options are refused with :class:`ValueError`,
        and the port is unknown before the proxy listens."""
        proxy = FaultProxy(reactor, "127.0.0.1", self.echo_port)
        self.assertEqual(MODES, ("forward", "blackhole", "delay", "throttle"))
        self.assertRaises(ValueError, proxy.set_mode, "drop")
        self.assertRaises(ValueError, proxy.set_mode, "delay", delay=-1)
        self.assertRaises(ValueError, proxy.set_mode, "throttle", rate=0)
        self.assertRaises(ValueError, FaultProxy, reactor, "127.0.0.1", 1, mode="slow")
        self.assertEqual(proxy.mode, "forward")
        self.assertRaises(RuntimeError, lambda: proxy.port)
        self.assertFalse(proxy.listening)


class CloseTests(ProxyTestCase):
    """Closing (FIN), resetting (RST) and stopping."""

    @defer.inlineCallbacks
    def test_close_is_graceful(self) -> _Gen:
        """:meth:`ProxyConnection.close` closes both sides cleanly: the client and the
        target each see :class:`~twisted.internet.error.ConnectionDone`."""
        proxy, client, conn = yield self.connected_pair()
        conn.close()
        yield client.when_lost()
        reason = client.lost_reason
        self.assertIsNotNone(reason.check(ConnectionDone), reason)
        yield self.echo.peers[0].when_lost()
        reason = self.echo.peers[0].lost_reason
        self.assertIsNotNone(reason.check(ConnectionDone), reason)
        yield wait(conn.when_closed())
        self.assertEqual(proxy.connections, [])
        self.assertTrue(proxy.listening)

    @defer.inlineCallbacks
    def test_reset_is_abortive(self) -> _Gen:
        """:meth:`ProxyConnection.reset` sends an RST: the client and the target see the
        connection lost, not closed cleanly."""
        proxy, client, conn = yield self.connected_pair()
        conn.reset()
        for peer in (client, self.echo.peers[0]):
            yield peer.when_lost()
            reason = peer.lost_reason
            self.assertIsNone(reason.check(ConnectionDone), reason)
            self.assertIsNotNone(reason.check(ConnectionLost), reason)
        yield wait(conn.when_closed())
        self.assertEqual(proxy.connections, [])

    @defer.inlineCallbacks
    def test_close_all_and_reset_all(self) -> _Gen:
        """:meth:`FaultProxy.close_all` closes every live connection cleanly and
        :meth:`FaultProxy.reset_all` resets them; the proxy keeps accepting."""
        proxy = yield self.start_proxy()
        first = yield self.connect_client(proxy.port)
        yield self.round_trip(first, b"1")
        yield wait(proxy.close_all())
        yield first.when_lost()
        reason = first.lost_reason
        self.assertIsNotNone(reason.check(ConnectionDone), reason)
        second = yield self.connect_client(proxy.port)
        yield self.round_trip(second, b"2")
        yield wait(proxy.reset_all())
        yield second.when_lost()
        reason = second.lost_reason
        self.assertIsNone(reason.check(ConnectionDone), reason)
        self.assertEqual(proxy.accepted, 2)

    @defer.inlineCallbacks
    def test_stop_leaves_nothing_behind(self) -> _Gen:
        """:meth:`FaultProxy.stop` stops listening, resets every connection and cancels the
        proxy's pending timers on the reactor."""
        before = set(reactor.getDelayedCalls())
        proxy, client, conn = yield self.connected_pair()
        proxy.set_mode("delay", delay=60.0)
        client.write(b"held")
        yield wait(conn.when_bytes(from_client=9))
        timers: list[IDelayedCall] = [
            call for call in reactor.getDelayedCalls() if call not in before
        ]
        held = [call for call in timers if call.getTime() - reactor.seconds() > 30]
        self.assertEqual(len(held), 1)
        yield wait(proxy.stop())
        self.assertFalse(held[0].active())
        self.assertFalse(proxy.listening)
        self.assertEqual(proxy.connections, [])
        yield client.when_lost()
        reason = client.lost_reason
        self.assertIsNone(reason.check(ConnectionDone), reason)
        yield wait(proxy.stop())  # harmless a second time


class BrokerTests(ProxyTestCase):
    """The proxy in front of RabbitMQ."""

    @defer.inlineCallbacks
    def test_reset_through_rabbitmq(self) -> _Gen:
        """An AMQP connection through the proxy works (a channel opens, a server-named
        exclusive queue is declared), and resetting the proxy's connections makes the
        client report :class:`~txamqp091.exceptions.StreamLostError`."""
        ensure_broker()
        host, port = broker_address()
        proxy = FaultProxy(reactor, host, port)
        yield proxy.start()
        self.addCleanup(proxy.stop)
        conn: AMQPProtocol = yield wait(
            connect(reactor, f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
        )
        self.addCleanup(lambda: conn.close().addErrback(lambda _: None))
        channel = yield wait(conn.channel())
        frame = yield wait(channel.queue_declare("", exclusive=True))
        self.assertTrue(frame.method.queue.startswith("amq.gen-"), frame.method.queue)
        self.assertEqual(proxy.accepted, 1)
        closed = conn.when_closed()
        yield wait(proxy.reset_all())
        reason = yield wait(closed)
        self.assertIsInstance(reason, StreamLostError)

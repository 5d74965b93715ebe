"""Unit tests for :mod:`txamqp091.asyncio_bridge` (no broker, no reactor).

Each test runs on its own asyncio loop (:class:`unittest.IsolatedAsyncioTestCase`, which
trial runs too). Waits are bounded with :func:`asyncio.wait_for`; the peers are a
socketpair, or a local TCP server the test plays itself.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
import unittest
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import AlreadyCalled, AlreadyCancelled, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime, ITransport
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txamqp091 import codec
from txamqp091.asyncio_bridge import (
    AsyncioClock,
    AsyncioDelayedCall,
    AsyncioTransport,
    BridgeProtocol,
    open_protocol,
)
from txamqp091.connect import ConnectionRefused
from txamqp091.exceptions import (
    AMQPConnectionError,
    AMQPTimeoutError,
    AMQPTLSError,
    IncompatibleProtocolError,
)
from txamqp091.parameters import ConnectionParameters, SSLOptions
from txamqp091.test.tls_broker import _make_certificates

#: Upper bound for any single wait (never reached when the code works).
WAIT = 5.0


def live_handles(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    """The timer handles still scheduled (not cancelled) on *loop*."""
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
    return [handle for handle in scheduled if not handle.cancelled()]


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class ClockTests(unittest.IsolatedAsyncioTestCase):
    """:class:`AsyncioClock` and :class:`AsyncioDelayedCall`."""

    async def asyncSetUp(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.clock = AsyncioClock(self.loop)

    def test_interfaces(self) -> None:
        """The clock provides ``IReactorTime`` and its calls ``IDelayedCall``."""
        self.assertTrue(verifyObject(IReactorTime, self.clock))
        call = self.clock.callLater(10, lambda: None)
        self.assertTrue(verifyObject(IDelayedCall, call))
        call.cancel()

    def test_seconds_is_the_loop_time(self) -> None:
        """``seconds()`` reads the loop's clock, which due times are measured on."""
        before = self.loop.time()
        now = self.clock.seconds()
        self.assertGreaterEqual(now, before)
        self.assertLessEqual(now, self.loop.time())
        call = self.clock.callLater(3, lambda: None)
        self.assertGreaterEqual(call.getTime(), now + 3)
        call.cancel()

    async def test_calls_run_in_time_order(self) -> None:
        """Due calls run in the order of their due time, with their arguments."""
        done = self.loop.create_future()
        ran: list[str] = []

        def record(name: str, *, last: bool = False) -> None:
            ran.append(name)
            if last:
                done.set_result(None)

        self.clock.callLater(0.02, record, "b")
        self.clock.callLater(0, record, "a")
        third = self.clock.callLater(0.04, record, "c", last=True)
        await asyncio.wait_for(done, WAIT)
        self.assertEqual(ran, ["a", "b", "c"])
        self.assertTrue(third.called)
        self.assertFalse(third.active())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    async def test_cancel(self) -> None:
        """A cancelled call never runs and leaves no live handle on the loop; cancelling
        again raises ``AlreadyCancelled``, and so do ``reset`` and ``delay``."""
        ran: list[int] = []
        call = self.clock.callLater(0, ran.append, 1)
        call.cancel()
        self.assertFalse(call.active())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(live_handles(self.loop), [])
        self.assertRaises(AlreadyCancelled, call.cancel)
        self.assertRaises(AlreadyCancelled, call.reset, 1)
        self.assertRaises(AlreadyCancelled, call.delay, 1)
        marker = self.loop.create_future()
        self.clock.callLater(0.01, marker.set_result, None)
        await asyncio.wait_for(marker, WAIT)
        self.assertEqual(ran, [])

    async def test_called_call_cannot_be_cancelled(self) -> None:
        """Once run, cancel, reset and delay raise ``AlreadyCalled``."""
        done = self.loop.create_future()
        call = self.clock.callLater(0, done.set_result, None)
        await asyncio.wait_for(done, WAIT)
        self.assertRaises(AlreadyCalled, call.cancel)
        self.assertRaises(AlreadyCalled, call.reset, 1)
        self.assertRaises(AlreadyCalled, call.delay, 1)

    async def test_reset_moves_the_call(self) -> None:
        """``reset`` reschedules relative to now: a far call reset to 0 runs first, and
        its old handle is gone from the loop."""
        done = self.loop.create_future()
        ran: list[str] = []
        late = self.clock.callLater(3600, ran.append, "late")
        self.clock.callLater(0.02, lambda: done.set_result(None))
        late.reset(0)
        self.assertLess(late.getTime(), self.clock.seconds() + 1)
        self.assertEqual(len(live_handles(self.loop)), 2)
        await asyncio.wait_for(done, WAIT)
        self.assertEqual(ran, ["late"])
        self.assertEqual(live_handles(self.loop), [])

    async def test_delay_postpones_the_call(self) -> None:
        """``delay`` adds to the due time: a call due now, delayed by an hour, has not
        run when a later call has."""
        done = self.loop.create_future()
        ran: list[str] = []
        call = self.clock.callLater(0, ran.append, "delayed")
        due = call.getTime()
        call.delay(3600)
        self.assertEqual(call.getTime(), due + 3600)
        self.clock.callLater(0.02, done.set_result, None)
        await asyncio.wait_for(done, WAIT)
        self.assertEqual(ran, [])
        self.assertTrue(call.active())
        self.assertEqual(self.clock.getDelayedCalls(), [call])
        call.cancel()

    def test_cancel_all(self) -> None:
        """``cancel_all`` cancels every active call and leaves the loop without live
        handles."""
        calls = [self.clock.callLater(60 + n, lambda: None) for n in range(5)]
        calls[0].cancel()
        self.assertEqual(len(self.clock.getDelayedCalls()), 4)
        self.clock.cancel_all()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(all(call.cancelled for call in calls))
        self.assertEqual(live_handles(self.loop), [])

    def test_repr(self) -> None:
        """A call's repr says its state."""
        call: AsyncioDelayedCall = self.clock.callLater(1, lambda: None)
        self.assertIn("active", repr(call))
        call.cancel()
        self.assertIn("cancelled", repr(call))


class Recorder(Protocol):
    """A Twisted protocol that records what happens to it."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[Failure] = asyncio.get_running_loop().create_future()
        self.received = asyncio.Event()

    def connectionMade(self) -> None:
        self.made.set_result(None)

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        self.received.set()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        self.lost.set_result(reason)


@implementer(IPushProducer)
class Producer:
    """Records pause and resume calls."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.resumed = asyncio.Event()

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")
        self.resumed.set()

    def stopProducing(self) -> None:
        self.events.append("stop")


class TransportTests(unittest.IsolatedAsyncioTestCase):
    """:class:`BridgeProtocol` and :class:`AsyncioTransport` over a socketpair."""

    async def asyncSetUp(self) -> None:
        self.loop = asyncio.get_running_loop()
        ours, self.peer = socket.socketpair()
        self.peer_of_handle = ours.fileno()
        self.peer.setblocking(False)
        self.addCleanup(self.peer.close)
        self.clock = AsyncioClock(self.loop)
        self.protocol = Recorder()
        self.bridge = BridgeProtocol(self.protocol, self.clock)
        asyncio_transport, _ = await self.loop.create_connection(lambda: self.bridge, sock=ours)
        self.addCleanup(asyncio_transport.abort)
        await asyncio.wait_for(self.protocol.made, WAIT)
        transport = self.bridge.transport
        assert transport is not None
        self.transport: AsyncioTransport = transport

    async def read_peer(self, size: int) -> bytes:
        """Read exactly *size* bytes on the peer's side."""
        data = bytearray()
        while len(data) < size:
            chunk = await asyncio.wait_for(self.loop.sock_recv(self.peer, 65536), WAIT)
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def test_interface(self) -> None:
        """The Twisted protocol was given an ``ITransport``: this one."""
        self.assertIs(self.protocol.transport, self.transport)
        self.assertTrue(verifyObject(ITransport, self.transport))
        self.assertEqual(self.transport.getHandle().fileno(), self.peer_of_handle)

    async def test_write_and_write_sequence(self) -> None:
        """``write`` and ``writeSequence`` reach the peer in order."""
        self.transport.write(b"one ")
        self.transport.writeSequence([b"two ", b"three"])
        self.assertEqual(await self.read_peer(13), b"one two three")

    async def test_writes_of_a_turn_go_together(self) -> None:
        """Small writes of one loop turn are held (``pending``) and handed to asyncio
        together at the end of the turn; a write of 64 KiB or more goes at once (so
        asyncio's back-pressure applies); ``abortConnection`` drops what is held."""
        self.transport.write(b"a" * 10)
        self.transport.write(b"b" * 20)
        self.assertEqual(self.transport.pending, 30)
        self.assertEqual(self.transport.asyncio_transport.get_write_buffer_size(), 0)
        await asyncio.sleep(0)  # the end of the turn
        self.assertEqual(self.transport.pending, 0)
        self.assertEqual(await self.read_peer(30), b"a" * 10 + b"b" * 20)
        big = b"c" * (64 * 1024)
        self.transport.write(big)
        self.assertEqual(self.transport.pending, 0)
        self.assertEqual(await self.read_peer(len(big)), big)
        self.transport.write(b"dropped")
        self.transport.abortConnection()
        self.assertEqual(self.transport.pending, 0)

    async def test_writes_while_receiving_go_when_it_returns(self) -> None:
        """What the protocol writes while handling received bytes (an ack, the next
        request) is handed to asyncio as soon as data_received returns, in one piece,
        without waiting for the end of the loop turn."""
        transport = self.transport

        def answer(data: bytes) -> None:
            transport.write(b"ack:")
            transport.write(data)

        self.protocol.dataReceived = answer  # type: ignore[method-assign]
        self.bridge.data_received(b"ping")
        self.assertEqual(transport.pending, 0)
        self.assertEqual(await self.read_peer(8), b"ack:ping")

    async def test_data_received(self) -> None:
        """Bytes the peer sends reach ``dataReceived``."""
        await self.loop.sock_sendall(self.peer, b"hello")
        await asyncio.wait_for(self.protocol.received.wait(), WAIT)
        self.assertEqual(bytes(self.protocol.data), b"hello")

    async def test_peer_closes(self) -> None:
        """The peer closing its end is ``ConnectionDone``, and the clock's calls are
        cancelled."""
        call = self.clock.callLater(60, lambda: None)
        self.peer.close()
        reason = await asyncio.wait_for(self.protocol.lost, WAIT)
        self.assertTrue(reason.check(ConnectionDone))
        self.assertFalse(call.active())
        self.assertEqual(live_handles(self.loop), [])

    async def test_lose_connection_flushes(self) -> None:
        """``loseConnection`` sends what was written, then closes: ``ConnectionDone``;
        writes after it are dropped."""
        self.transport.write(b"last words")
        self.transport.loseConnection()
        self.transport.write(b" dropped")
        self.transport.writeSequence([b" dropped"])
        self.assertEqual(await self.read_peer(64), b"last words")
        reason = await asyncio.wait_for(self.protocol.lost, WAIT)
        self.assertTrue(reason.check(ConnectionDone))

    async def test_abort_connection(self) -> None:
        """``abortConnection`` closes at once: ``ConnectionLost``."""
        self.transport.abortConnection()
        reason = await asyncio.wait_for(self.protocol.lost, WAIT)
        self.assertTrue(reason.check(ConnectionLost))
        self.assertEqual(await self.read_peer(1), b"")

    async def test_producer_paused_and_resumed(self) -> None:
        """While asyncio's write buffer is above its high-water mark the registered
        producer is paused; it is resumed once the peer has read enough."""
        producer = Producer()
        self.transport.registerProducer(producer, True)
        self.assertRaises(RuntimeError, self.transport.registerProducer, Producer(), True)
        self.transport.asyncio_transport.set_write_buffer_limits(high=64 * 1024)
        chunk = b"x" * (1024 * 1024)
        for _ in range(8):  # far more than the socket buffers take
            self.transport.write(chunk)
        self.assertEqual(producer.events, ["pause"])
        received = len(await self.read_peer(8 * len(chunk)))
        await asyncio.wait_for(producer.resumed.wait(), WAIT)
        self.assertEqual(received, 8 * len(chunk))
        self.assertEqual(producer.events, ["pause", "resume"])
        self.transport.unregisterProducer()

    def test_paused_before_registration(self) -> None:
        """A producer registered while writing is paused starts paused."""
        self.bridge.pause_writing()
        producer = Producer()
        self.transport.registerProducer(producer, True)
        self.assertEqual(producer.events, ["pause"])
        self.bridge.resume_writing()
        self.assertEqual(producer.events, ["pause", "resume"])


class AddressTests(unittest.IsolatedAsyncioTestCase):
    """``getPeer``/``getHost`` over TCP."""

    async def test_addresses(self) -> None:
        """Both ends are ``IPv4Address`` objects with the right ports."""
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        self.addAsyncCleanup(server.wait_closed)
        self.addCleanup(server.close)
        port = server.sockets[0].getsockname()[1]
        protocol = Recorder()
        transport, bridge = await loop.create_connection(
            lambda: BridgeProtocol(protocol), "127.0.0.1", port
        )
        self.addCleanup(transport.abort)
        assert bridge.transport is not None
        peer = bridge.transport.getPeer()
        host = bridge.transport.getHost()
        self.assertEqual(peer, IPv4Address("TCP", "127.0.0.1", port))
        self.assertIsInstance(host, IPv4Address)
        self.assertEqual(host.port, transport.get_extra_info("sockname")[1])


class OpenProtocolTests(unittest.IsolatedAsyncioTestCase):
    """:func:`open_protocol` against peers that are not brokers."""

    async def serve(self, handler: Any) -> int:
        """A local TCP server running *handler*; its port."""
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        self.addAsyncCleanup(server.wait_closed)
        self.addCleanup(server.close)
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def test_refused(self) -> None:
        """A port nobody listens on: ``ConnectionRefused`` (an ``AMQPConnectionError``)
        after ``connection_attempts`` attempts."""
        params = ConnectionParameters(
            host="127.0.0.1", port=closed_port(), connection_attempts=2, retry_delay=0.01
        )
        with self.assertRaises(ConnectionRefused) as caught:
            await asyncio.wait_for(open_protocol([params]), WAIT)
        self.assertIsInstance(caught.exception, AMQPConnectionError)
        self.assertEqual(live_handles(asyncio.get_running_loop()), [])

    async def test_not_amqp_is_permanent(self) -> None:
        """A server that answers with HTTP fails with ``IncompatibleProtocolError`` at
        once: the next parameters are not tried."""
        connections: list[int] = []

        async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(1)
            await reader.readexactly(len(codec.PROTOCOL_HEADER))
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await writer.drain()
            await reader.read()
            writer.close()

        port = await self.serve(http)
        params = ConnectionParameters(host="127.0.0.1", port=port)
        with self.assertRaises(IncompatibleProtocolError):
            await asyncio.wait_for(open_protocol([params, params]), WAIT)
        self.assertEqual(connections, [1])

    async def test_handshake_timeout_leaves_no_timer(self) -> None:
        """A peer that never answers the protocol header: ``AMQPTimeoutError`` after
        ``stack_timeout``, and no timer is left on the loop."""
        silent = asyncio.Event()

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()
            silent.set()

        port = await self.serve(mute)
        params = ConnectionParameters(host="127.0.0.1", port=port, stack_timeout=0.2)
        with self.assertRaises(AMQPTimeoutError):
            await asyncio.wait_for(open_protocol([params]), WAIT)
        await asyncio.wait_for(silent.wait(), WAIT)
        self.assertEqual(live_handles(asyncio.get_running_loop()), [])

    async def test_cancelled_while_opening(self) -> None:
        """Cancelling ``open_protocol`` during the handshake drops the connection and
        leaves no timer."""
        header = asyncio.Event()
        gone = asyncio.Event()

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(len(codec.PROTOCOL_HEADER))
            header.set()
            await reader.read()
            gone.set()
            writer.close()

        port = await self.serve(mute)
        opening = asyncio.ensure_future(open_protocol([ConnectionParameters(port=port)]))
        await asyncio.wait_for(header.wait(), WAIT)
        opening.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await opening
        await asyncio.wait_for(gone.wait(), WAIT)
        self.assertEqual(live_handles(asyncio.get_running_loop()), [])

    async def test_empty_parameters(self) -> None:
        """An empty list is a ``ValueError``."""
        with self.assertRaises(ValueError):
            await open_protocol([])


class TLSTests(unittest.IsolatedAsyncioTestCase):
    """:func:`open_protocol` over asyncio's TLS, against a local TLS server that is not a
    broker (its certificates made for the test)."""

    async def asyncSetUp(self) -> None:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.certs = Path(directory.name)
        _make_certificates(self.certs)
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(self.certs / "server.pem", self.certs / "server_key.pem")
        self.headers: asyncio.Queue[bytes] = asyncio.Queue()
        server = await asyncio.start_server(self.http, "127.0.0.1", 0, ssl=server_context)
        self.addAsyncCleanup(server.wait_closed)
        self.addCleanup(server.close)
        self.port: int = server.sockets[0].getsockname()[1]

    async def http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the protocol header, answer like an HTTP server, wait for the close."""
        try:
            self.headers.put_nowait(await reader.readexactly(len(codec.PROTOCOL_HEADER)))
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await writer.drain()
            await reader.read()
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client refused our certificate
        finally:
            writer.close()

    def params(self, ca: str) -> ConnectionParameters:
        """Parameters trusting the CA in file *ca*, checking the name ``localhost``."""
        context = ssl.create_default_context(cafile=str(self.certs / ca))
        return ConnectionParameters(
            host="127.0.0.1", port=self.port, ssl_options=SSLOptions(context, "localhost")
        )

    async def test_bytes_go_through_tls(self) -> None:
        """With the server's CA trusted, the AMQP header reaches the server over TLS and
        its (non-AMQP) answer comes back: ``IncompatibleProtocolError``."""
        with self.assertRaises(IncompatibleProtocolError):
            await asyncio.wait_for(open_protocol([self.params("ca.pem")]), WAIT)
        header = await asyncio.wait_for(self.headers.get(), WAIT)
        self.assertEqual(header, codec.PROTOCOL_HEADER)
        self.assertEqual(live_handles(asyncio.get_running_loop()), [])

    async def test_unknown_ca(self) -> None:
        """A server certificate from a CA the context does not trust: ``AMQPTLSError``."""
        with self.assertRaises(AMQPTLSError):
            await asyncio.wait_for(open_protocol([self.params("other_ca.pem")]), WAIT)
        self.assertTrue(self.headers.empty())

    async def test_twisted_creator_refused(self) -> None:
        """TLS settings given as a Twisted connection creator are a ``TypeError``."""
        params = ConnectionParameters(
            host="127.0.0.1",
            port=self.port,
            ssl_options=SSLOptions(optionsForClientTLS("localhost")),
        )
        with self.assertRaises(TypeError):
            await open_protocol([params])

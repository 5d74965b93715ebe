"""Integration tests for the connection level of txamqp091, against a real RabbitMQ.

They cover :func:`txamqp091.connect.connect` and its target forms, the timeouts that bound
connecting and the handshake, authentication and virtual host refusals, a close forced by
the broker, ``connection.blocked``, ``update_secret``, heartbeats (with a local proxy that
can freeze a connection), server properties and counters, closing, and back-pressure.

Every test needs the broker (:func:`txamqp091.test.broker.ensure_broker`): an unreachable
broker fails the tests, never skips them. Broker settings a test changes (virtual hosts,
the memory high watermark) are restored by cleanups registered before the change.
"""

# trial's assertion methods carry no annotations.
# mypy: allow-untyped-calls

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote, urlsplit

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure

from txamqp091 import ConnectionParameters, PlainCredentials, URLParameters, spec
from txamqp091.codec import HEARTBEAT_FRAME, PROTOCOL_HEADER
from txamqp091.connect import ConnectionRefused, connect
from txamqp091.exceptions import (
    AccessRefused,
    AMQPHeartbeatTimeout,
    AMQPTimeoutError,
    ConnectionBlockedTimeout,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionWrongStateError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    StreamLostError,
    UnconfirmedPublishError,
    VirtualHostAccessRefused,
)
from txamqp091.protocol import AMQPProtocol
from txamqp091.test.broker import amqp_url, broker_address, ensure_broker
from txamqp091.test.integration import (
    IntegrationTestCase,
    async_test,
    reactor,
    unique_name,
    wait_for,
)

#: Seconds allowed for one awaited event (a callback, a close) unless a test says otherwise.
WAIT = 10.0

#: A port on 127.0.0.1 where nothing listens (binding it needs privileges nobody uses).
REFUSED_PORT = 1

MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------
# Parameters for the broker under test
# ---------------------------------------------------------------------------------------


def _url_parts() -> tuple[str, int, str, str, str]:
    """``(host, port, username, password, virtual_host)`` of :func:`amqp_url`."""
    url = amqp_url()
    parts = urlsplit(url)
    host, port = broker_address(url)
    vhost = unquote(parts.path.split("/")[1]) if len(parts.path) > 1 else "/"
    return (
        host,
        port,
        unquote(parts.username or "guest"),
        unquote(parts.password or "guest"),
        vhost,
    )


def broker_parameters(**kw: Any) -> ConnectionParameters:
    """:class:`ConnectionParameters` naming the broker under test; ``kw`` overrides."""
    host, port, username, password, vhost = _url_parts()
    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "virtual_host": vhost,
        "credentials": PlainCredentials(username, password),
    }
    settings.update(kw)
    return ConnectionParameters(**settings)


# ---------------------------------------------------------------------------------------
# rabbitmqctl
# ---------------------------------------------------------------------------------------


async def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl -q args`` without blocking the reactor; return its stdout.

    :raises AssertionError: if it exits with a non-zero status.
    """
    path = shutil.which("rabbitmqctl")
    assert path is not None, "rabbitmqctl is not on PATH"
    out, err, code = await getProcessOutputAndValue(path, ("-q", *args), env=dict(os.environ))
    if code != 0:
        raise AssertionError(
            f"rabbitmqctl {' '.join(args)} exited with {code}: {err.decode(errors='replace')}"
        )
    text: str = out.decode()
    return text


async def broker_connection(connection_name: str, *columns: str) -> dict[str, str]:
    """Wait until the broker lists a connection whose ``connection_name`` client property
    is ``connection_name``; return its ``pid`` and the other ``columns`` (as text).

    Each ``rabbitmqctl`` round trip takes a while, so the loop does not spin; it gives up
    after :data:`WAIT` seconds.
    """
    wanted = ("pid", *columns)
    needle = "{" + json.dumps("connection_name") + "," + json.dumps(connection_name) + "}"
    deadline = reactor.seconds() + WAIT
    while True:
        out = await rabbitmqctl(
            "list_connections", *wanted, "client_properties", "--no-table-headers"
        )
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) > len(wanted) and needle in fields[len(wanted)]:
                return dict(zip(wanted, fields, strict=False))
        if reactor.seconds() > deadline:
            raise AssertionError(f"the broker never listed connection {connection_name!r}")


async def memory_watermark() -> str:
    """The broker's current ``vm_memory_high_watermark`` as an Erlang term (``0.4`` or
    ``{absolute,1073741824}``)."""
    out = await rabbitmqctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().")
    return out.strip()


async def set_memory_watermark(term: str) -> None:
    """Set the broker's memory high watermark to ``term`` (as :func:`memory_watermark`
    renders it) with ``rabbitmqctl set_vm_memory_high_watermark``."""
    if term.startswith("{absolute,"):
        await rabbitmqctl("set_vm_memory_high_watermark", "absolute", term[10:-1].strip())
    else:
        await rabbitmqctl("set_vm_memory_high_watermark", term)


async def memory_alarm_raised() -> bool:
    """Whether the broker has a memory alarm in effect."""
    return "memory" in await rabbitmqctl("eval", "rabbit_alarm:get_alarms().")


# ---------------------------------------------------------------------------------------
# Local TCP servers and a freezable proxy
# ---------------------------------------------------------------------------------------


class _ServerConnection(Protocol):
    """A server-side connection of a :class:`_LocalServer`: records what it receives,
    and drops the connection at once if the server says so."""

    def __init__(self, server: _LocalServer) -> None:
        self.server = server
        self.received = b""
        self.lost: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.server.connections.append(self)
        self.server.log.append(self.server.name)
        if self.server.drop:
            assert self.transport is not None
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self.lost.callback(None)


class _LocalServer(Factory):
    """A TCP server on 127.0.0.1 that either drops each connection (``drop=True``) or
    accepts it and never answers."""

    def __init__(self, name: str, log: list[str], *, drop: bool) -> None:
        self.name = name
        self.log = log
        self.drop = drop
        self.connections: list[_ServerConnection] = []
        self.port: Any = None  # an IListeningPort once listening

    def buildProtocol(self, addr: Any) -> _ServerConnection:
        return _ServerConnection(self)

    @property
    def port_number(self) -> int:
        assert self.port is not None
        number: int = self.port.getHost().port
        return number

    async def stop(self) -> None:
        """Stop listening, end every connection, and wait until all are gone."""
        if self.port is not None:
            await self.port.stopListening()
        for conn in self.connections:
            if not conn.lost.called and conn.transport is not None:
                conn.transport.abortConnection()  # type: ignore[attr-defined]
        await defer.gatherResults([c.lost for c in self.connections])


class _ProxyFront(Protocol):
    """The client-facing side of a :class:`_Proxy` connection."""

    def __init__(self, proxy: _Proxy) -> None:
        self.proxy = proxy
        self.back: _ProxyBack | None = None
        self.gone = False
        self.lost: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.proxy.fronts.append(self)
        self.proxy.lost.append(self.lost)
        assert self.transport is not None
        self.transport.pauseProducing()  # type: ignore[attr-defined]
        endpoint = TCP4ClientEndpoint(reactor, self.proxy.host, self.proxy.port, timeout=5)
        d = connectProtocol(endpoint, _ProxyBack(self))
        d.addCallbacks(self._connected, self._not_connected)

    def _connected(self, back: _ProxyBack) -> None:
        self.back = back
        assert back.transport is not None and self.transport is not None
        if self.gone:
            back.transport.loseConnection()
        else:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def _not_connected(self, failure: Failure) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        assert self.back is not None and self.back.transport is not None
        self.back.transport.write(data)

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self.gone = True
        if self.back is not None and self.back.transport is not None:
            self.back.transport.loseConnection()
        self.lost.callback(None)


class _ProxyBack(Protocol):
    """The broker-facing side of a :class:`_Proxy` connection."""

    def __init__(self, front: _ProxyFront) -> None:
        self.front = front
        self.lost: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.front.proxy.backs.append(self)
        self.front.proxy.lost.append(self.lost)

    def dataReceived(self, data: bytes) -> None:
        if self.front.proxy.frozen:
            return  # the client hears nothing more from the broker
        assert self.front.transport is not None
        self.front.transport.write(data)

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        # A frozen peer is dead: it does not even say goodbye to the client.
        if not self.front.proxy.frozen and not self.front.gone:
            assert self.front.transport is not None
            self.front.transport.loseConnection()
        self.lost.callback(None)


class _Proxy(Factory):
    """A TCP proxy on 127.0.0.1 to the broker that forwards both ways until frozen.

    :meth:`freeze` drops everything the broker sends from then on (the client sees a dead
    peer); with ``reads=True`` the proxy also stops reading from the client, so that what
    the client writes piles up in its own buffers.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.frozen = False
        self.fronts: list[_ProxyFront] = []
        self.backs: list[_ProxyBack] = []
        self.lost: list[defer.Deferred[None]] = []
        self.listening: Any = None  # an IListeningPort once listening

    def buildProtocol(self, addr: Any) -> _ProxyFront:
        return _ProxyFront(self)

    @property
    def port_number(self) -> int:
        assert self.listening is not None
        number: int = self.listening.getHost().port
        return number

    def freeze(self, *, reads: bool = False) -> None:
        """Stop forwarding broker data to the client (and reading the client's data)."""
        self.frozen = True
        if reads:
            for front in self.fronts:
                assert front.transport is not None
                front.transport.pauseProducing()  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop listening, abort every proxied connection, and wait until all are gone."""
        if self.listening is not None:
            await self.listening.stopListening()
        sides: list[_ProxyFront | _ProxyBack] = [*self.fronts, *self.backs]
        for side in sides:
            if not side.lost.called and side.transport is not None:
                side.transport.abortConnection()  # type: ignore[attr-defined]
        await defer.gatherResults(list(self.lost))


def _buffered(transport: Any) -> int:
    """Bytes a reactor TCP transport holds that the kernel has not yet taken."""
    return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)


# ---------------------------------------------------------------------------------------
# Test case base
# ---------------------------------------------------------------------------------------


class ConnectionTestCase(IntegrationTestCase):
    """:class:`IntegrationTestCase` with helpers to connect to any target, local servers
    and proxies, and temporary broker settings."""

    async def connected(self, target: Any = None, **kw: Any) -> AMQPProtocol:
        """``connect(reactor, target, **kw)`` (the broker URL by default); the connection is
        closed at cleanup (aborted if a close cannot finish)."""
        ensure_broker()
        conn = await connect(reactor, amqp_url() if target is None else target, **kw)
        self.addCleanup(self.shut_d, conn)
        return conn

    @staticmethod
    async def _shut(conn: AMQPProtocol) -> None:
        if conn.is_closed:
            return
        closed = conn.when_closed()
        conn.close().addErrback(lambda _: None)
        try:
            await wait_for(closed, 5)
        except defer.TimeoutError:
            assert conn.transport is not None
            conn.transport.abortConnection()  # type: ignore[attr-defined]
            await wait_for(conn.when_closed(), 5)

    def shut_d(self, conn: AMQPProtocol) -> defer.Deferred[None]:
        """:meth:`_shut` as a Deferred (for ``addCleanup``)."""
        return defer.ensureDeferred(self._shut(conn))

    async def _closed_despite_backlog(self, conn: AMQPProtocol, timeout: float) -> Exception:
        """Wait for ``conn`` to close although its transport holds unsent data; fail with
        the transport's state if it does not close within ``timeout`` seconds."""
        try:
            return await wait_for(conn.when_closed(), timeout)
        except defer.TimeoutError:
            transport: Any = conn.transport
            self.fail(
                f"the connection did not close within {timeout} s: {conn!r}, transport "
                f"disconnecting={transport.disconnecting}, "
                f"producer={transport.producer!r}, "
                f"{_buffered(transport)} bytes still buffered"
            )

    def local_server(self, name: str, log: list[str], *, drop: bool) -> _LocalServer:
        """A listening :class:`_LocalServer`, stopped at cleanup."""
        server = _LocalServer(name, log, drop=drop)
        server.port = reactor.listenTCP(0, server, interface="127.0.0.1")
        self.addCleanup(lambda: defer.ensureDeferred(server.stop()))
        return server

    def proxy(self) -> _Proxy:
        """A listening :class:`_Proxy` to the broker, stopped at cleanup."""
        host, port, *_ = _url_parts()
        proxy = _Proxy(host, port)
        proxy.listening = reactor.listenTCP(0, proxy, interface="127.0.0.1")
        self.addCleanup(lambda: defer.ensureDeferred(proxy.stop()))
        return proxy

    async def memory_alarm(self) -> Callable[[], Coroutine[Any, Any, None]]:
        """Raise a memory alarm on the broker (watermark 0), which blocks publishing
        connections.

        The original watermark is read first and its restoration registered as a cleanup
        before anything changes. Returns a coroutine function that restores it early.
        """
        original = await memory_watermark()
        deadline = reactor.seconds() + 60
        while original in ("0", "0.0"):
            # Another test run holds the alarm; wait for it to restore the watermark
            # rather than taking 0 for the original value.
            if reactor.seconds() > deadline:
                raise AssertionError("the memory watermark stayed 0; refusing to use it")
            original = await memory_watermark()

        async def restore() -> None:
            await set_memory_watermark(original)

        self.addCleanup(lambda: defer.ensureDeferred(restore()))
        await set_memory_watermark("0")
        deadline = reactor.seconds() + WAIT
        while not await memory_alarm_raised():
            if reactor.seconds() > deadline:
                raise AssertionError("the broker raised no memory alarm at watermark 0")
        return restore


def _callback_deferred() -> tuple[defer.Deferred[Any], Callable[..., None]]:
    """A Deferred and a callback that fires it with its arguments (once)."""
    d: defer.Deferred[Any] = defer.Deferred()

    def callback(*args: Any) -> None:
        if not d.called:
            d.callback(args)

    return d, callback


async def _expect_failure(d: defer.Deferred[Any], *types: type[BaseException]) -> Any:
    """Wait (at most :data:`WAIT` s) for ``d`` to fail with one of ``types``; return the
    exception."""
    try:
        result = await wait_for(d, WAIT)
    except types as exc:
        return exc
    raise AssertionError(f"expected {types}, got the result {result!r}")


# ---------------------------------------------------------------------------------------
# connect() targets
# ---------------------------------------------------------------------------------------


class ConnectTargetTests(ConnectionTestCase):
    """Every form of target :func:`connect` accepts reaches the broker."""

    async def _usable(self, conn: AMQPProtocol) -> None:
        """Check ``conn`` is open and can open a channel and declare a queue."""
        self.assertTrue(conn.is_open)
        channel = await conn.channel()
        await self.declare_queue(channel, exclusive=True)

    @async_test
    async def test_url_string(self) -> None:
        """An ``amqp://`` URL string connects, with the URL's settings."""
        conn = await self.connected(amqp_url() + "?heartbeat=7")
        self.assertIsInstance(conn.parameters, URLParameters)
        self.assertEqual(conn.heartbeat, 7)
        await self._usable(conn)

    @async_test
    async def test_connection_parameters(self) -> None:
        """A :class:`ConnectionParameters` connects, and the connection keeps it."""
        params = broker_parameters(heartbeat=9)
        conn = await self.connected(params)
        self.assertIs(conn.parameters, params)
        self.assertEqual(conn.heartbeat, 9)
        await self._usable(conn)

    @async_test
    async def test_url_parameters(self) -> None:
        """A :class:`URLParameters` connects, and the connection keeps it."""
        params = URLParameters(amqp_url())
        conn = await self.connected(params)
        self.assertIs(conn.parameters, params)
        await self._usable(conn)

    @async_test
    async def test_sequence_first_unreachable(self) -> None:
        """In a sequence, an unreachable first target (connection refused) is skipped and
        the next one is used, as pika does."""
        dead = broker_parameters(host="127.0.0.1", port=REFUSED_PORT)
        good = URLParameters(amqp_url())
        conn = await self.connected([dead, good])
        self.assertIs(conn.parameters, good)
        await self._usable(conn)

    @async_test
    async def test_sequence_of_urls(self) -> None:
        """A sequence may hold URL strings; the first that works is used."""
        dead = f"amqp://guest:guest@127.0.0.1:{REFUSED_PORT}/%2F"
        conn = await self.connected([dead, amqp_url()])
        self.assertEqual(conn.parameters.port, broker_address()[1])
        await self._usable(conn)

    @async_test
    async def test_sequence_all_refused(self) -> None:
        """When every target refuses, all rounds fail and :func:`connect` fails with
        :class:`ConnectionRefused` (``connection_attempts``/``retry_delay`` come from the
        last parameter set)."""
        first = broker_parameters(host="127.0.0.1", port=REFUSED_PORT)
        last = broker_parameters(
            host="127.0.0.1", port=REFUSED_PORT, connection_attempts=2, retry_delay=0.1
        )
        ensure_broker()
        exc = await _expect_failure(connect(reactor, [first, last]), ConnectionRefused)
        self.assertIn(f"127.0.0.1:{REFUSED_PORT}", str(exc))

    @async_test
    async def test_sequence_attempts_in_order(self) -> None:
        """With ``connection_attempts=2`` on the last of two targets whose servers drop
        every connection, :func:`connect` makes two rounds, each trying the targets in
        order (A, B, A, B), then fails with the last error: the stream was lost before
        the handshake began (:class:`StreamLostError`)."""
        log: list[str] = []
        a = self.local_server("A", log, drop=True)
        b = self.local_server("B", log, drop=True)
        targets = [
            broker_parameters(host="127.0.0.1", port=a.port_number, connection_attempts=5),
            broker_parameters(
                host="127.0.0.1", port=b.port_number, connection_attempts=2, retry_delay=0.1
            ),
        ]
        exc = await _expect_failure(connect(reactor, targets), StreamLostError)
        self.assertNotIsInstance(exc, ProbableAuthenticationError)
        self.assertEqual(log, ["A", "B", "A", "B"])

    @async_test
    async def test_permanent_error_not_retried(self) -> None:
        """A refused login ends the attempts at once: with ``connection_attempts=3`` the
        broker (seen through a counting proxy) gets one connection, and :func:`connect`
        fails with :class:`AccessRefused`."""
        proxy = self.proxy()
        params = broker_parameters(
            host="127.0.0.1",
            port=proxy.port_number,
            credentials=PlainCredentials("guest", unique_name("wrong")),
            connection_attempts=3,
            retry_delay=0.1,
        )
        ensure_broker()
        await _expect_failure(connect(reactor, params), AccessRefused)
        self.assertEqual(len(proxy.fronts), 1)

    @async_test
    async def test_endpoint_with_parameters(self) -> None:
        """An :class:`IStreamClientEndpoint` connects, with the AMQP settings of
        ``parameters=``."""
        host, port, *_ = _url_parts()
        params = broker_parameters(heartbeat=11)
        conn = await self.connected(TCP4ClientEndpoint(reactor, host, port), parameters=params)
        self.assertIs(conn.parameters, params)
        self.assertEqual(conn.heartbeat, 11)
        await self._usable(conn)

    @async_test
    async def test_endpoint_description(self) -> None:
        """An endpoint description string (``tcp:host=...:port=...``) connects, with the
        AMQP settings of ``parameters=``."""
        host, port, *_ = _url_parts()
        params = broker_parameters(heartbeat=13)
        conn = await self.connected(f"tcp:host={host}:port={port}", parameters=params)
        self.assertIs(conn.parameters, params)
        self.assertEqual(conn.heartbeat, 13)
        await self._usable(conn)

    @async_test
    async def test_tcp_connect_timeout(self) -> None:
        """A TCP connect that gets no answer fails after ``socket_timeout`` with
        :class:`AMQPTimeoutError` (not :class:`ConnectionRefused`).

        The unanswered connect is made to a local socket whose accept queue is full
        (``listen(0)`` plus one connection never accepted): Linux then drops the SYNs.
        A "non-routable" address such as 10.255.255.1 cannot serve here: in this sandbox
        every outbound TCP connect is answered at once by an intercepting proxy (which
        replies ``HTTP/1.1 400``, so the client fails with ``InvalidFrameError``).
        """
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(filler.close)
        params = broker_parameters(host="127.0.0.1", port=port, socket_timeout=0.5)
        ensure_broker()
        exc = await _expect_failure(connect(reactor, params), AMQPTimeoutError)
        self.assertNotIsInstance(exc, ConnectionRefused)
        self.assertIn("timed out", str(exc))

    @async_test
    async def test_stack_timeout(self) -> None:
        """A server that accepts the TCP connection but never answers the protocol header
        makes :func:`connect` fail with :class:`AMQPTimeoutError` after
        ``stack_timeout``; the connection is closed (the server sees it go) and the
        reactor is left clean."""
        log: list[str] = []
        server = self.local_server("silent", log, drop=False)
        params = broker_parameters(host="127.0.0.1", port=server.port_number, stack_timeout=0.5)
        ensure_broker()
        exc = await _expect_failure(connect(reactor, params), AMQPTimeoutError)
        self.assertIn("handshake", str(exc))
        self.assertEqual(log, ["silent"])
        await wait_for(server.connections[0].lost)
        self.assertEqual(server.connections[0].received, PROTOCOL_HEADER)


# ---------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------


class RefusalTests(ConnectionTestCase):
    """The broker's refusals come back as typed errors."""

    @async_test
    async def test_wrong_password(self) -> None:
        """A wrong password fails with :class:`AccessRefused`, which is also a
        :class:`ConnectionClosedByBroker` and a :class:`ProbableAuthenticationError`
        with reply code 403."""
        params = broker_parameters(credentials=PlainCredentials("guest", unique_name("bad")))
        ensure_broker()
        exc = await _expect_failure(connect(reactor, params), AccessRefused)
        self.assertIsInstance(exc, ConnectionClosedByBroker)
        self.assertIsInstance(exc, ProbableAuthenticationError)
        self.assertEqual(exc.reply_code, 403)
        self.assertIn("ACCESS_REFUSED", exc.reply_text)

    @async_test
    async def test_missing_vhost(self) -> None:
        """A virtual host that does not exist fails with
        :class:`VirtualHostAccessRefused`, reply code 530."""
        vhost = unique_name("txamqp091-missing")
        ensure_broker()
        exc = await _expect_failure(
            connect(reactor, broker_parameters(virtual_host=vhost)), VirtualHostAccessRefused
        )
        self.assertIsInstance(exc, ConnectionClosedByBroker)
        self.assertIsInstance(exc, ProbableAccessDeniedError)
        self.assertEqual(exc.reply_code, 530)
        self.assertIn(vhost, exc.reply_text)

    @async_test
    async def test_vhost_without_permissions(self) -> None:
        """A virtual host that exists but where the user has no permissions fails with
        :class:`VirtualHostAccessRefused`, reply code 530."""
        vhost = unique_name("txamqp091-noperm")
        await rabbitmqctl("add_vhost", vhost)
        self.addCleanup(lambda: defer.ensureDeferred(rabbitmqctl("delete_vhost", vhost)))
        ensure_broker()
        exc = await _expect_failure(
            connect(reactor, broker_parameters(virtual_host=vhost)), VirtualHostAccessRefused
        )
        self.assertEqual(exc.reply_code, 530)
        self.assertIn(vhost, exc.reply_text)


# ---------------------------------------------------------------------------------------
# A close forced by the broker
# ---------------------------------------------------------------------------------------


class BrokerCloseTests(ConnectionTestCase):
    """``rabbitmqctl close_connection`` ends the connection with a typed reason."""

    @async_test
    async def test_close_connection(self) -> None:
        """When the broker closes the connection (``rabbitmqctl close_connection``),
        :meth:`when_closed` fires with :class:`ConnectionClosedByBroker` (320, the text
        given), close callbacks get the same reason, a pending consumer ``get()`` and the
        channel fail with it, and later operations fail with it too."""
        name = unique_name("txamqp091-forced")
        conn = await self.connected(broker_parameters(client_properties={"connection_name": name}))
        calls, on_close = _callback_deferred()
        conn.add_on_close_callback(on_close)
        channel = await conn.channel()
        queue = await self.declare_queue(channel)
        consumer, _tag = await channel.basic_consume(queue)
        pending = consumer.get()
        channel_closed = channel.when_closed()
        closed = conn.when_closed()

        row = await broker_connection(name)
        reason = unique_name("forced by the test")
        await rabbitmqctl("close_connection", row["pid"], reason)

        exc = await wait_for(closed)
        self.assertIsInstance(exc, ConnectionClosedByBroker)
        assert isinstance(exc, ConnectionClosedByBroker)
        self.assertEqual(exc.reply_code, 320)
        self.assertIn(reason, exc.reply_text)
        self.assertIs((await wait_for(calls))[1], exc)
        self.assertIs(await _expect_failure(pending, ConnectionClosedByBroker), exc)
        self.assertIs(await wait_for(channel_closed), exc)
        self.assertTrue(conn.is_closed)
        self.assertIs(conn.close_reason, exc)
        self.assertTrue(channel.is_closed)
        self.assertIs(await _expect_failure(conn.channel(), ConnectionClosedByBroker), exc)
        await wait_for(conn.close())


# ---------------------------------------------------------------------------------------
# Blocked connections (memory alarm)
# ---------------------------------------------------------------------------------------


class BlockedTests(ConnectionTestCase):
    """``connection.blocked`` / ``unblocked`` with a real memory alarm.

    The alarm is global to the broker: while one of these tests runs, every publishing
    connection to it is blocked.
    """

    timeout = 60

    @async_test
    async def test_blocked_then_unblocked(self) -> None:
        """A memory alarm blocks the connection once it publishes: the blocked callback
        gets ``Connection.Blocked``, :attr:`blocked` is true and :meth:`when_writable`
        stays pending; clearing the alarm calls the unblocked callback, fires
        :meth:`when_writable`, and the message published while blocked arrives."""
        conn = await self.connected(broker_parameters())
        blocked, on_blocked = _callback_deferred()
        unblocked, on_unblocked = _callback_deferred()
        conn.add_on_connection_blocked_callback(on_blocked)
        conn.add_on_connection_unblocked_callback(on_unblocked)
        channel = await conn.channel()
        queue = await self.declare_queue(channel)

        restore = await self.memory_alarm()
        channel.basic_publish("", queue, b"while blocked")
        args = await wait_for(blocked)
        self.assertIs(args[0], conn)
        self.assertIsInstance(args[1], spec.Connection.Blocked)
        self.assertTrue(conn.blocked)
        writable = conn.when_writable()
        self.assertFalse(unblocked.called)

        await restore()
        args = await wait_for(unblocked)
        self.assertIs(args[0], conn)
        self.assertIsInstance(args[1], spec.Connection.Unblocked)
        self.assertFalse(conn.blocked)
        await wait_for(writable)
        self.assertTrue(conn.is_open)
        message = await channel.basic_get(queue, auto_ack=True)
        assert message is not None
        self.assertEqual(message.body, b"while blocked")

    @async_test
    async def test_blocked_connection_timeout(self) -> None:
        """With ``blocked_connection_timeout=1`` a connection blocked for longer fails
        with :class:`ConnectionBlockedTimeout`: :meth:`when_closed`, close callbacks, a
        pending confirm and a pending :meth:`when_writable` all get it."""
        conn = await self.connected(broker_parameters(blocked_connection_timeout=1))
        blocked, on_blocked = _callback_deferred()
        conn.add_on_connection_blocked_callback(on_blocked)
        calls, on_close = _callback_deferred()
        conn.add_on_close_callback(on_close)
        channel = await conn.channel()
        queue = await self.declare_queue(channel)
        await channel.confirm_delivery()
        await self.memory_alarm()
        confirm = channel.basic_publish("", queue, b"never confirmed")
        await wait_for(blocked)
        writable = conn.when_writable()
        exc = await wait_for(conn.when_closed())
        self.assertIsInstance(exc, ConnectionBlockedTimeout)
        self.assertIs((await wait_for(calls))[1], exc)
        unconfirmed = await _expect_failure(confirm, ConnectionBlockedTimeout)
        self.assertIsInstance(unconfirmed, UnconfirmedPublishError)
        self.assertIs(unconfirmed.reason, exc)
        self.assertEqual(unconfirmed.message.body, b"never confirmed")
        self.assertIs(await _expect_failure(writable, ConnectionBlockedTimeout), exc)
        self.assertIs(conn.close_reason, exc)

    @async_test
    async def test_blocked_connection_timeout_with_unsent_data(self) -> None:
        """A blocked connection times out even when its transport holds data the broker
        will not read (a blocked broker stops reading): the connection is dropped, not
        left waiting for its write buffer to drain, and :meth:`when_closed` fires with
        :class:`ConnectionBlockedTimeout`."""
        conn = await self.connected(broker_parameters(blocked_connection_timeout=1))
        blocked, on_blocked = _callback_deferred()
        conn.add_on_connection_blocked_callback(on_blocked)
        channel = await conn.channel()
        queue = await self.declare_queue(channel)
        await self.memory_alarm()
        channel.basic_publish("", queue, b"x")
        await wait_for(blocked)
        body = b"\0" * MiB
        for _ in range(32):  # more than the kernel's socket buffers take
            channel.basic_publish("", queue, body)
        exc = await self._closed_despite_backlog(conn, WAIT)
        self.assertIsInstance(exc, ConnectionBlockedTimeout)


# ---------------------------------------------------------------------------------------
# update_secret
# ---------------------------------------------------------------------------------------


class UpdateSecretTests(ConnectionTestCase):
    """``Connection.UpdateSecret`` on a PLAIN (internal database) login."""

    @async_test
    async def test_update_secret_same_password(self) -> None:
        """RabbitMQ 3.10 answers ``UpdateSecret`` with the same password on a PLAIN
        connection with ``UpdateSecretOk`` (its internal backend accepts any new secret),
        and the connection stays open and usable."""
        conn = await self.connected(broker_parameters())
        password = _url_parts()[3]
        reply = await wait_for(conn.update_secret(password, "integration test"))
        self.assertIsInstance(reply, spec.Connection.UpdateSecretOk)
        self.assertTrue(conn.is_open)
        channel = await conn.channel()
        await self.declare_queue(channel, exclusive=True)

    @async_test
    async def test_update_secret_one_at_a_time(self) -> None:
        """A second :meth:`update_secret` while one is in flight fails at once with
        :class:`ConnectionWrongStateError`; the first still completes."""
        conn = await self.connected(broker_parameters())
        password = _url_parts()[3]
        first = conn.update_secret(password, "first")
        await _expect_failure(conn.update_secret(password, "second"), ConnectionWrongStateError)
        self.assertIsInstance(await wait_for(first), spec.Connection.UpdateSecretOk)
        self.assertIsInstance(
            await wait_for(conn.update_secret(password, "third")), spec.Connection.UpdateSecretOk
        )


# ---------------------------------------------------------------------------------------
# Heartbeats
# ---------------------------------------------------------------------------------------


class HeartbeatTests(ConnectionTestCase):
    """Heartbeats with the real broker, and a dead peer behind a freezable proxy."""

    @async_test
    async def test_idle_connection_kept_alive(self) -> None:
        """With ``heartbeat=1`` (the broker agrees: it lists timeout 1) an idle connection
        stays open across 2.5 s, more than the two intervals after which RabbitMQ drops a
        silent client; meanwhile heartbeat frames (8 bytes each) flow both ways."""
        name = unique_name("txamqp091-heartbeat")
        conn = await self.connected(
            broker_parameters(heartbeat=1, client_properties={"connection_name": name})
        )
        self.assertEqual(conn.heartbeat, 1)
        row = await broker_connection(name, "timeout")
        self.assertEqual(row["timeout"], "1")
        sent, received = conn.frames_sent, conn.frames_received
        bytes_sent, bytes_received = conn.bytes_sent, conn.bytes_received
        await deferLater(reactor, 2.5, lambda: None)  # time passing is what is tested
        self.assertTrue(conn.is_open)
        self.assertGreaterEqual(conn.frames_sent - sent, 2)
        self.assertGreaterEqual(conn.frames_received - received, 2)
        self.assertGreaterEqual(conn.bytes_sent - bytes_sent, 2 * len(HEARTBEAT_FRAME))
        self.assertGreaterEqual(conn.bytes_received - bytes_received, 2 * len(HEARTBEAT_FRAME))
        channel = await conn.channel()
        await self.declare_queue(channel, exclusive=True)

    @async_test
    async def test_dead_peer_detected(self) -> None:
        """When the broker's data stops arriving (a proxy stops forwarding it), a
        connection with ``heartbeat=1`` fails with :class:`AMQPHeartbeatTimeout` within a
        few seconds; close callbacks and the channel get the same reason."""
        proxy = self.proxy()
        conn = await self.connected(
            broker_parameters(host="127.0.0.1", port=proxy.port_number, heartbeat=1)
        )
        self.assertEqual(conn.heartbeat, 1)
        calls, on_close = _callback_deferred()
        conn.add_on_close_callback(on_close)
        channel = await conn.channel()
        proxy.freeze()
        exc = await wait_for(conn.when_closed(), 5)
        self.assertIsInstance(exc, AMQPHeartbeatTimeout)
        self.assertIs((await wait_for(calls))[1], exc)
        self.assertIs(await wait_for(channel.when_closed()), exc)

    @async_test
    async def test_dead_peer_with_unsent_data(self) -> None:
        """A peer that neither sends nor reads (the proxy freezes both ways) is declared
        dead with :class:`AMQPHeartbeatTimeout` even though the client's transport still
        holds unsent data: the connection is dropped, not left waiting for its write
        buffer to drain."""
        proxy = self.proxy()
        conn = await self.connected(
            broker_parameters(host="127.0.0.1", port=proxy.port_number, heartbeat=1)
        )
        channel = await conn.channel()
        proxy.freeze(reads=True)
        body = b"\0" * MiB
        for _ in range(32):  # more than the kernel's socket buffers take
            channel.basic_publish("", unique_name("nowhere"), body)
        exc = await self._closed_despite_backlog(conn, 5)
        self.assertIsInstance(exc, AMQPHeartbeatTimeout)


# ---------------------------------------------------------------------------------------
# Server properties, counters, close
# ---------------------------------------------------------------------------------------


class PropertiesAndCloseTests(ConnectionTestCase):
    """What the broker announces, traffic counters, and closing."""

    @async_test
    async def test_server_properties(self) -> None:
        """RabbitMQ's ``server_properties`` name the product and version and announce the
        capabilities txamqp091 exposes as booleans (all true on RabbitMQ 3.10); the
        limits are negotiated from RabbitMQ's defaults."""
        conn = await self.connected(broker_parameters())
        props = conn.server_properties

        def text(value: Any) -> str:
            return value.decode() if isinstance(value, bytes) else str(value)

        self.assertEqual(text(props["product"]), "RabbitMQ")
        self.assertTrue(text(props["version"]).startswith("3."))
        caps = conn.server_capabilities
        for name in (
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "authentication_failure_close",
        ):
            self.assertIs(caps[name], True, name)
        self.assertIs(conn.basic_nack_supported, True)
        self.assertIs(conn.consumer_cancel_notify_supported, True)
        self.assertIs(conn.exchange_exchange_bindings_supported, True)
        self.assertIs(conn.publisher_confirms_supported, True)
        self.assertEqual(conn.channel_max, 2047)
        self.assertEqual(conn.frame_max, 131072)
        self.assertEqual(conn.heartbeat, 60)
        self.assertFalse(conn.blocked)

    @async_test
    async def test_counters_increase(self) -> None:
        """``bytes_sent``, ``bytes_received``, ``frames_sent`` and ``frames_received`` are
        positive after the handshake and grow with every round trip."""
        conn = await self.connected(broker_parameters())
        before = (conn.bytes_sent, conn.bytes_received, conn.frames_sent, conn.frames_received)
        for value in before:
            self.assertGreater(value, 0)
        channel = await conn.channel()
        await self.declare_queue(channel, exclusive=True)
        after = (conn.bytes_sent, conn.bytes_received, conn.frames_sent, conn.frames_received)
        for old, new in zip(before, after, strict=True):
            self.assertGreater(new, old)
        # Channel.Open + Queue.Declare went out; OpenOk + DeclareOk came back.
        self.assertGreaterEqual(after[2] - before[2], 2)
        self.assertGreaterEqual(after[3] - before[3], 2)

    @async_test
    async def test_close(self) -> None:
        """:meth:`close` fires once the transport is gone, with the connection closed by
        the client (:class:`ConnectionClosedByClient`, 200); open channels are closed with
        the same reason; calling :meth:`close` again, while closing or after, returns a
        Deferred that fires as well."""
        conn = await self.connected(broker_parameters())
        channel = await conn.channel()
        transport: Any = conn.transport
        first = conn.close()
        second = conn.close()
        self.assertTrue(conn.is_closing)
        await wait_for(first)
        self.assertFalse(transport.connected)
        self.assertTrue(conn.is_closed)
        await wait_for(second)
        await wait_for(conn.close())
        reason = conn.close_reason
        self.assertIsInstance(reason, ConnectionClosedByClient)
        assert isinstance(reason, ConnectionClosedByClient)
        self.assertEqual((reason.reply_code, reason.reply_text), (200, "Normal shutdown"))
        self.assertTrue(channel.is_closed)
        self.assertIs(await wait_for(channel.when_closed()), reason)

    @async_test
    async def test_channel_after_close(self) -> None:
        """:meth:`channel` fails with :class:`ConnectionWrongStateError` while the
        connection is closing, and with the close reason once it is closed."""
        conn = await self.connected(broker_parameters())
        done = conn.close(reply_text="bye")
        await _expect_failure(conn.channel(), ConnectionWrongStateError)
        await wait_for(done)
        exc = await _expect_failure(conn.channel(), ConnectionClosedByClient)
        self.assertIs(exc, conn.close_reason)
        self.assertEqual(exc.reply_text, "bye")


# ---------------------------------------------------------------------------------------
# Back-pressure
# ---------------------------------------------------------------------------------------


class BackPressureTests(ConnectionTestCase):
    """:meth:`when_writable` bounds what a fast publisher buffers."""

    timeout = 180

    async def _publish(self, total: int, *, from_dispatch: bool) -> None:
        """Publish ``total`` messages of 1 MiB in batches of 10, waiting on
        :meth:`when_writable` after each batch, and check the buffering and delivery."""
        conn = await self.connected(broker_parameters())
        channel = await conn.channel()
        queue = await self.declare_queue(channel)
        await channel.confirm_delivery()
        if not from_dispatch:
            # Start from a reactor turn of its own, not from inside the dispatch of the
            # reply that resumed this coroutine.
            await deferLater(reactor, 0, lambda: None)
        transport: Any = conn.transport
        self.assertTrue(hasattr(transport, "_tempDataLen"), "not a reactor TCP transport")
        bufsize = int(transport.bufferSize)
        body = b"\xa5" * MiB
        batch = 10
        confirms: list[defer.Deferred[Any]] = []
        peak = waits = 0
        try:
            for i in range(total):
                confirms.append(channel.basic_publish("", queue, body))
                if (i + 1) % batch == 0:
                    peak = max(peak, _buffered(transport))
                    writable = conn.when_writable()
                    peak = max(peak, _buffered(transport))
                    if not writable.called:
                        waits += 1
                    await wait_for(writable, 60)
                    self.assertLessEqual(_buffered(transport), bufsize)
            await wait_for(defer.gatherResults(confirms), 120)
            declared = (await channel.queue_declare(queue, passive=True)).method
            assert isinstance(declared, spec.Queue.DeclareOk)
            self.assertEqual(declared.message_count, total)
        finally:
            if channel.is_open:
                await channel.queue_purge(queue)
        self.assertGreater(waits, 0, "when_writable() never made the publisher wait")
        self.assertLessEqual(peak, batch * (MiB + 64 * 1024) + bufsize)

    @async_test
    async def test_publish_200_mib(self) -> None:
        """Publishing 200 messages of 1 MiB from a reactor turn of its own, waiting on
        :meth:`when_writable` after every 10: the wait really happens (the transport
        pauses the protocol), the transport never buffers more than one batch (10 MiB
        plus framing), its buffer has drained each time the wait ends, and every message
        reaches the queue (all confirmed; the queue counts 200)."""
        await self._publish(200, from_dispatch=False)

    @async_test
    async def test_publish_from_reply_callback(self) -> None:
        """The same holds for the usual way of writing a publisher: the loop runs right
        after awaiting an RPC (``confirm_delivery()``), i.e. from inside the dispatch of
        the broker's reply. :meth:`when_writable` must still make it wait once a batch
        of 10 MiB is pending (50 messages of 1 MiB are published), instead of letting
        everything pile up unwritten until the dispatch ends."""
        await self._publish(50, from_dispatch=True)

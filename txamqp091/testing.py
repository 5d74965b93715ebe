"""A fault-injecting TCP proxy for tests.

:class:`FaultProxy` listens on a local port and relays every accepted connection to a
target (a RabbitMQ broker, or any TCP server). A test points its client at the proxy and
then, while the client runs, makes the link misbehave: drop every byte, and hold any
close, while keeping the sockets open (``"blackhole"``), delay bytes (``"delay"``), limit
the byte rate (``"throttle"``), close the connections gracefully (FIN) or reset them
(RST).

It runs on the Twisted reactor, without threads, so it works in trial tests and in pytest
tests that run on the reactor (``pytest-twisted``). See :doc:`fault_proxy` for a guide.
"""

from __future__ import annotations

import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, get_args

from twisted.internet.abstract import isIPAddress
from twisted.internet.defer import CancelledError, Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectingCancelledError, ConnectionDone
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
    ISystemHandle,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.python.failure import Failure

__all__ = ["MODES", "FaultProxy", "Mode", "ProxyConnection"]

#: The ways a connection can treat the bytes it relays.
Mode = Literal["forward", "blackhole", "delay", "throttle"]

#: Every valid :data:`Mode`, in a tuple.
MODES: tuple[Mode, ...] = get_args(Mode)

# Below this many seconds, a throttle or delay timer is considered due (float rounding).
_EPSILON = 1e-9


def _validate(mode: str, delay: float | None, rate: float | None) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if delay is not None and not delay >= 0:
        raise ValueError(f"delay must be >= 0 seconds, not {delay!r}")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be > 0 bytes per second, not {rate!r}")


def _reset(transport: ITCPTransport) -> None:
    """Abort ``transport`` so that the peer sees a TCP RST rather than a FIN."""
    handle = ISystemHandle(transport, None)
    try:
        sock = handle.getHandle() if handle is not None else None
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (AttributeError, OSError):
        pass  # The socket is already closed (or closing): there is nothing left to reset.
    transport.abortConnection()


class _Pipe:
    """One direction of a :class:`ProxyConnection`: applies the mode to the bytes read
    from one side and writes them to the other."""

    def __init__(self, conn: ProxyConnection, clock: IReactorTime) -> None:
        self._conn = conn
        self._clock = clock
        self._dest: ITCPTransport | None = None
        # Bytes delivered before the destination exists (the upstream is connecting).
        self._early: list[bytes] = []
        # Bytes held by "delay" (with the time they are due) or "throttle" (time unused).
        self._queue: deque[tuple[float, bytes]] = deque()
        self._timer: IDelayedCall | None = None
        self._next_send = float("-inf")
        self._on_drained: Callable[[], None] | None = None
        self._shut = False
        #: Bytes read from the source side so far.
        self.received = 0

    @property
    def pending(self) -> int:
        """Bytes held by the pipe and not yet written to the destination."""
        return sum(len(data) for _, data in self._queue) + sum(map(len, self._early))

    def attach(self, dest: ITCPTransport) -> None:
        """Start writing to ``dest``, first the bytes that were waiting for it."""
        self._dest = dest
        early, self._early = self._early, []
        for data in early:
            dest.write(data)

    def receive(self, data: bytes) -> None:
        """Take bytes read from the source side."""
        self.received += len(data)
        self._route(data)

    def _route(self, data: bytes) -> None:
        if self._shut:
            return
        mode = self._conn.mode
        if mode == "forward":
            self._write(data)
        elif mode == "delay":
            self._queue.append((self._clock.seconds() + self._conn.delay, data))
            if self._timer is None:
                self._schedule(self._conn.delay, self._release_due)
        elif mode == "throttle":
            self._queue.append((0.0, data))
            if self._timer is None:
                self._pump()
        # "blackhole": the bytes are dropped.

    def retune(self) -> None:
        """Re-apply the connection's (new) mode to the bytes still held."""
        if self._shut:
            return
        self._cancel_timer()
        held = [data for _, data in self._queue]
        self._queue.clear()
        self._next_send = float("-inf")
        for data in held:
            self._route(data)
        self._check_drained()

    def finish(self, then: Callable[[], None]) -> None:
        """Call ``then`` once every held byte has been written (at once if none is).

        While the connection is blackholed, ``then`` waits for the mode to change:
        a dead link carries no close either.
        """
        if not self._shut and self._conn.mode == "blackhole":
            self._on_drained = then
        elif self._shut or not self._queue:
            then()
        else:
            self._on_drained = then

    def shutdown(self) -> None:
        """Drop the held bytes, cancel the timer and ignore any later bytes."""
        self._shut = True
        self._cancel_timer()
        self._queue.clear()
        self._early = []
        self._on_drained = None

    def _write(self, data: bytes) -> None:
        if self._dest is None:
            self._early.append(data)
        else:
            self._dest.write(data)

    def _schedule(self, seconds: float, call: Callable[[], None]) -> None:
        self._timer = self._clock.callLater(max(0.0, seconds), call)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _release_due(self) -> None:
        self._timer = None
        now = self._clock.seconds()
        while self._queue and self._queue[0][0] <= now + _EPSILON:
            self._write(self._queue.popleft()[1])
        if self._queue:
            self._schedule(self._queue[0][0] - now, self._release_due)
        else:
            self._check_drained()

    def _pump(self) -> None:
        self._timer = None
        rate = self._conn.rate
        chunk_size = max(1, int(rate * self._conn._proxy.throttle_interval))
        while self._queue:
            now = self._clock.seconds()
            wait = self._next_send - now
            if wait > _EPSILON:
                self._schedule(wait, self._pump)
                return
            _, data = self._queue.popleft()
            chunk, rest = data[:chunk_size], data[chunk_size:]
            if rest:
                self._queue.appendleft((0.0, rest))
            self._write(chunk)
            self._next_send = now + len(chunk) / rate
        self._check_drained()

    def _check_drained(self) -> None:
        if self._conn.mode == "blackhole":
            return
        if not self._queue and self._on_drained is not None:
            then, self._on_drained = self._on_drained, None
            then()


class _Waiter:
    """A Deferred waiting for the byte counters of a connection to reach some values."""

    def __init__(self, from_client: int, from_upstream: int) -> None:
        self.from_client = from_client
        self.from_upstream = from_upstream
        self.deferred: Deferred[None] = Deferred()


class ProxyConnection:
    """One client connection accepted by a :class:`FaultProxy`, and its upstream connection
    to the target.

    Instances are made by the proxy; find them in :attr:`FaultProxy.connections`. A
    connection starts in the proxy's current mode (see :meth:`FaultProxy.set_mode`).
    """

    def __init__(self, proxy: FaultProxy, client: ITCPTransport) -> None:
        self._proxy = proxy
        self._client: ITCPTransport | None = client
        self._upstream: ITCPTransport | None = None
        self._connecting: Deferred[Protocol] | None = None
        self._client_gone = False
        self._upstream_gone = False
        self._closed = False
        self._closed_waiters: list[Deferred[None]] = []
        self._byte_waiters: list[_Waiter] = []
        self._mode: Mode = proxy.mode
        self._delay = proxy.delay
        self._rate = proxy.rate
        self._to_upstream = _Pipe(self, proxy.clock)
        self._to_client = _Pipe(self, proxy.clock)

    # -- state ----------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """The current :data:`Mode` of this connection."""
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        self.set_mode(mode)

    @property
    def delay(self) -> float:
        """Seconds the ``"delay"`` mode holds each chunk of bytes."""
        return self._delay

    @property
    def rate(self) -> float:
        """Bytes per second, per direction, the ``"throttle"`` mode lets through."""
        return self._rate

    @property
    def upstream_connected(self) -> bool:
        """``True`` while the connection to the target is established."""
        return self._upstream is not None and not self._upstream_gone

    @property
    def closed(self) -> bool:
        """``True`` once both sides are gone (see :meth:`when_closed`)."""
        return self._closed

    @property
    def bytes_from_client(self) -> int:
        """Bytes the proxy has read from the client so far, whatever the mode."""
        return self._to_upstream.received

    @property
    def bytes_from_upstream(self) -> int:
        """Bytes the proxy has read from the target so far, whatever the mode."""
        return self._to_client.received

    @property
    def pending(self) -> int:
        """Bytes held by ``"delay"`` or ``"throttle"`` (or waiting for the upstream to
        connect), both directions together."""
        return self._to_upstream.pending + self._to_client.pending

    # -- control --------------------------------------------------------------------------

    def set_mode(
        self, mode: Mode, *, delay: float | None = None, rate: float | None = None
    ) -> None:
        """Change how this connection relays bytes.

        Bytes already held by ``"delay"`` or ``"throttle"`` are re-timed under the new
        mode: ``"forward"`` writes them at once, ``"blackhole"`` drops them.

        :param mode: one of :data:`MODES`.
        :param delay: seconds for ``"delay"``; ``None`` keeps the current value.
        :param rate: bytes per second for ``"throttle"``; ``None`` keeps the current value.
        :raises ValueError: for an unknown mode, a negative delay or a rate that is not
            positive.
        """
        _validate(mode, delay, rate)
        self._mode = mode
        if delay is not None:
            self._delay = float(delay)
        if rate is not None:
            self._rate = float(rate)
        self._to_upstream.retune()
        self._to_client.retune()

    def close(self) -> None:
        """Close both sides gracefully (a FIN each way, after the bytes already written).

        Bytes still held by ``"delay"`` or ``"throttle"`` are dropped. Does nothing once
        closed.
        """
        self._stop_pipes()
        self._cancel_connecting()
        for transport in (self._client, self._upstream):
            if transport is not None:
                transport.loseConnection()

    def reset(self) -> None:
        """Reset both sides: abort them with ``SO_LINGER`` set to zero, so that each peer
        sees a TCP RST. Held and unsent bytes are dropped. Does nothing once closed."""
        self._stop_pipes()
        self._cancel_connecting()
        for transport in (self._client, self._upstream):
            if transport is not None:
                _reset(transport)

    def when_closed(self) -> Deferred[None]:
        """A Deferred that fires (never fails) once both sides are gone.

        :returns: a new Deferred; already fired if the connection is closed.
        """
        if self._closed:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._closed_waiters.append(d)
        return d

    def when_bytes(self, from_client: int = 0, from_upstream: int = 0) -> Deferred[None]:
        """A Deferred that fires once the proxy has read at least ``from_client`` bytes from
        the client and ``from_upstream`` bytes from the target (counting bytes it dropped
        or holds).

        Tests use it to know that bytes have reached the proxy, for instance before
        changing the mode. It never fires if the connection closes first; add a timeout.

        :param from_client: the least :attr:`bytes_from_client` to wait for.
        :param from_upstream: the least :attr:`bytes_from_upstream` to wait for.
        :returns: a new Deferred firing with ``None``.
        """
        waiter = _Waiter(from_client, from_upstream)
        self._byte_waiters.append(waiter)
        self._check_byte_waiters()
        return waiter.deferred

    def __repr__(self) -> str:
        state = "closed" if self._closed else self._mode
        return (
            f"<ProxyConnection {state} client={self.bytes_from_client}B "
            f"upstream={self.bytes_from_upstream}B>"
        )

    # -- events from the two sides ---------------------------------------------------------

    def _start(self, endpoint: IStreamClientEndpoint) -> None:
        assert self._client is not None
        IPushProducer(self._client).pauseProducing()
        self._connecting = connectProtocol(endpoint, _UpstreamSide(self))  # type: ignore[no-untyped-call]
        self._connecting.addErrback(self._upstream_failed)

    def _upstream_made(self, upstream: ITCPTransport) -> None:
        self._connecting = None
        self._upstream = upstream
        self._to_upstream.attach(upstream)
        if self._client is not None:
            self._to_client.attach(self._client)
            IPushProducer(self._client).resumeProducing()

    def _upstream_failed(self, failure: Failure) -> None:
        self._connecting = None
        self._upstream_gone = True
        if not isinstance(failure.value, CancelledError | ConnectingCancelledError):
            self._proxy._log_failure(failure)
        self._stop_pipes()
        if self._client is not None and not self._client_gone:
            self._client.loseConnection()
        self._check_closed()

    def _from_client(self, data: bytes) -> None:
        self._to_upstream.receive(data)
        self._check_byte_waiters()

    def _from_upstream(self, data: bytes) -> None:
        self._to_client.receive(data)
        self._check_byte_waiters()

    def _client_lost(self, reason: Failure) -> None:
        self._client_gone = True
        self._to_client.shutdown()
        self._cancel_connecting()
        upstream = self._upstream
        if upstream is not None and not self._upstream_gone:
            if isinstance(reason.value, ConnectionDone):
                self._to_upstream.finish(upstream.loseConnection)
            elif self.mode == "blackhole":
                self._to_upstream.finish(lambda: _reset(upstream))
            else:
                self._to_upstream.shutdown()
                _reset(upstream)
        else:
            self._to_upstream.shutdown()
        self._check_closed()

    def _upstream_lost(self, reason: Failure) -> None:
        self._upstream_gone = True
        self._to_upstream.shutdown()
        client = self._client
        if client is not None and not self._client_gone:
            if isinstance(reason.value, ConnectionDone):
                self._to_client.finish(client.loseConnection)
            elif self.mode == "blackhole":
                self._to_client.finish(lambda: _reset(client))
            else:
                self._to_client.shutdown()
                _reset(client)
        else:
            self._to_client.shutdown()
        self._check_closed()

    # -- helpers --------------------------------------------------------------------------

    def _stop_pipes(self) -> None:
        self._to_upstream.shutdown()
        self._to_client.shutdown()

    def _cancel_connecting(self) -> None:
        if self._connecting is not None:
            connecting, self._connecting = self._connecting, None
            connecting.cancel()

    def _check_byte_waiters(self) -> None:
        ready = [
            w
            for w in self._byte_waiters
            if self.bytes_from_client >= w.from_client
            and self.bytes_from_upstream >= w.from_upstream
        ]
        for waiter in ready:
            self._byte_waiters.remove(waiter)
            waiter.deferred.callback(None)

    def _check_closed(self) -> None:
        if self._closed or not self._client_gone:
            return
        if not self._upstream_gone and (
            self._upstream is not None or self._connecting is not None
        ):
            return
        self._closed = True
        self._client = self._upstream = None
        self._stop_pipes()
        self._proxy._forget(self)
        waiters, self._closed_waiters = self._closed_waiters, []
        for d in waiters:
            d.callback(None)


class _ClientSide(Protocol):
    """The proxy's end of a connection from a client."""

    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy
        self._conn: ProxyConnection | None = None

    def connectionMade(self) -> None:
        transport = ITCPTransport(self.transport)
        self._conn = self._proxy._accept(transport)

    def dataReceived(self, data: bytes) -> None:
        if self._conn is not None:
            self._conn._from_client(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._conn is not None:
            self._conn._client_lost(reason)


class _UpstreamSide(Protocol):
    """The proxy's end of a connection to the target."""

    def __init__(self, conn: ProxyConnection) -> None:
        self._conn = conn

    def connectionMade(self) -> None:
        self._conn._upstream_made(ITCPTransport(self.transport))

    def dataReceived(self, data: bytes) -> None:
        self._conn._from_upstream(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._conn._upstream_lost(reason)


class _ProxyFactory(ServerFactory):
    """Builds a :class:`_ClientSide` for each accepted connection."""

    noisy = False

    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy

    def buildProtocol(self, addr: Any) -> _ClientSide:
        return _ClientSide(self._proxy)


class FaultProxy:
    """A TCP proxy whose connections a test can slow down, stall, close or reset.

    Each client connection the proxy accepts is relayed to ``target_host:target_port``
    over a new connection of its own (a :class:`ProxyConnection`). The proxy stops reading
    from the client until the upstream connection is established; if it cannot be
    established, the client's connection is closed.

    :param reactor: the reactor to listen and connect with (it must provide
        :class:`~twisted.internet.interfaces.IReactorTCP` and, unless ``clock`` is given,
        :class:`~twisted.internet.interfaces.IReactorTime`).
    :param target_host: the host to relay connections to (an IP address or a name).
    :param target_port: the port to relay connections to.
    :param listen_host: the interface to listen on.
    :param listen_port: the port to listen on; ``0`` picks a free one (see :attr:`port`).
    :param clock: the clock for the ``"delay"`` and ``"throttle"`` timers; the reactor
        when ``None``. Pass a :class:`twisted.internet.task.Clock` to control time in a
        test.
    :param mode: the initial :data:`Mode`.
    :param delay: the initial delay, in seconds, for the ``"delay"`` mode.
    :param rate: the initial rate, in bytes per second per direction, for ``"throttle"``.
    :param connect_timeout: seconds allowed to connect to the target.
    :raises ValueError: for an unknown mode, a negative delay or a rate that is not
        positive.
    """

    #: Seconds' worth of bytes ``"throttle"`` writes at once: it writes chunks of
    #: ``max(1, int(rate * throttle_interval))`` bytes, each ``len(chunk) / rate`` seconds
    #: after the previous one.
    throttle_interval = 0.1

    def __init__(
        self,
        reactor: Any,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        clock: IReactorTime | None = None,
        mode: Mode = "forward",
        delay: float = 0.2,
        rate: float = 65536.0,
        connect_timeout: float = 30.0,
    ) -> None:
        _validate(mode, delay, rate)
        self.reactor = reactor
        #: The host connections are relayed to.
        self.target_host = target_host
        #: The port connections are relayed to.
        self.target_port = target_port
        #: The interface the proxy listens on.
        self.listen_host = listen_host
        #: The port requested for listening (``0``: any free port).
        self.listen_port = listen_port
        #: The clock for the ``"delay"`` and ``"throttle"`` timers.
        self.clock: IReactorTime = reactor if clock is None else clock
        #: Seconds allowed to connect to the target.
        self.connect_timeout = connect_timeout
        #: The live connections, in the order they were accepted.
        self.connections: list[ProxyConnection] = []
        #: The number of client connections accepted since the proxy was made.
        self.accepted = 0
        self._mode: Mode = mode
        self._delay = float(delay)
        self._rate = float(rate)
        self._listening: IListeningPort | None = None
        self._failures: list[Failure] = []

    # -- modes ----------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """The :data:`Mode` for new connections. Setting it is :meth:`set_mode` with the
        current options: it changes every live connection too."""
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        self.set_mode(mode)

    @property
    def delay(self) -> float:
        """The delay, in seconds, new connections use in the ``"delay"`` mode."""
        return self._delay

    @property
    def rate(self) -> float:
        """The rate, in bytes per second per direction, new connections use in
        ``"throttle"``."""
        return self._rate

    def set_mode(
        self, mode: Mode, *, delay: float | None = None, rate: float | None = None
    ) -> None:
        """Change the mode of every live connection and of connections accepted later.

        The modes are:

        ``"forward"``
            relay bytes both ways at once.
        ``"blackhole"``
            drop the bytes both ways, but keep both sockets open.
        ``"delay"``
            relay each chunk of bytes ``delay`` seconds after it arrives, in order.
        ``"throttle"``
            relay at most ``rate`` bytes per second in each direction.

        :param mode: one of :data:`MODES`.
        :param delay: seconds for ``"delay"``; ``None`` keeps the current value.
        :param rate: bytes per second for ``"throttle"``; ``None`` keeps the current value.
        :raises ValueError: for an unknown mode, a negative delay or a rate that is not
            positive.
        """
        _validate(mode, delay, rate)
        self._mode = mode
        if delay is not None:
            self._delay = float(delay)
        if rate is not None:
            self._rate = float(rate)
        for conn in list(self.connections):
            conn.set_mode(mode, delay=self._delay, rate=self._rate)

    # -- listening ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the proxy listens on.

        :raises RuntimeError: if the proxy is not listening (before :meth:`start` or after
            :meth:`stop`).
        """
        if self._listening is None:
            raise RuntimeError("the proxy is not listening; call start() first")
        port: int = self._listening.getHost().port  # type: ignore[attr-defined]
        return port

    @property
    def listening(self) -> bool:
        """``True`` between :meth:`start` and :meth:`stop`."""
        return self._listening is not None

    @property
    def failures(self) -> list[Failure]:
        """Why connections to the target failed, oldest first (for diagnosis)."""
        return list(self._failures)

    def start(self) -> Deferred[int]:
        """Start listening.

        :returns: a Deferred firing with the listening port, or failing (for instance with
            :class:`~twisted.internet.error.CannotListenError`).
        :raises RuntimeError: if the proxy is already listening.
        """
        if self._listening is not None:
            raise RuntimeError("the proxy is already listening")

        def listen() -> int:
            self._listening = self.reactor.listenTCP(
                self.listen_port, _ProxyFactory(self), interface=self.listen_host
            )
            return self.port

        return maybeDeferred(listen)

    def stop(self) -> Deferred[None]:
        """Stop listening and reset every connection (see :meth:`ProxyConnection.reset`).

        Every timer the proxy scheduled is cancelled. Calling it again, or before
        :meth:`start`, is harmless.

        :returns: a Deferred that fires once the port is closed and every connection is
            gone.
        """
        waits: list[Deferred[Any]] = []
        if self._listening is not None:
            listening, self._listening = self._listening, None
            waits.append(maybeDeferred(listening.stopListening))
        waits.extend(self._close_every(reset=True))
        return gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)

    def close_all(self) -> Deferred[None]:
        """Close every live connection gracefully (see :meth:`ProxyConnection.close`).

        The proxy keeps listening.

        :returns: a Deferred that fires once those connections are gone.
        """
        return gatherResults(self._close_every(reset=False)).addCallback(lambda _: None)

    def reset_all(self) -> Deferred[None]:
        """Reset every live connection (see :meth:`ProxyConnection.reset`).

        The proxy keeps listening.

        :returns: a Deferred that fires once those connections are gone.
        """
        return gatherResults(self._close_every(reset=True)).addCallback(lambda _: None)

    def __repr__(self) -> str:
        where = f"port {self._listening.getHost().port}" if self._listening else "stopped"  # type: ignore[attr-defined]
        return (
            f"<FaultProxy {where} -> {self.target_host}:{self.target_port} "
            f"{self._mode} connections={len(self.connections)}>"
        )

    # -- internals ------------------------------------------------------------------------

    def _close_every(self, reset: bool) -> list[Deferred[None]]:
        conns = list(self.connections)
        waits = [conn.when_closed() for conn in conns]
        for conn in conns:
            if reset:
                conn.reset()
            else:
                conn.close()
        return waits

    def _endpoint(self) -> IStreamClientEndpoint:
        if isIPAddress(self.target_host):
            return TCP4ClientEndpoint(
                self.reactor, self.target_host, self.target_port, timeout=self.connect_timeout
            )
        return HostnameEndpoint(
            self.reactor, self.target_host, self.target_port, timeout=self.connect_timeout
        )

    def _accept(self, client: ITCPTransport) -> ProxyConnection:
        self.accepted += 1
        conn = ProxyConnection(self, client)
        self.connections.append(conn)
        if self._listening is None:
            conn.reset()  # Accepted while stopping: its connectionLost finishes it.
        else:
            conn._start(self._endpoint())
        return conn

    def _forget(self, conn: ProxyConnection) -> None:
        if conn in self.connections:
            self.connections.remove(conn)

    def _log_failure(self, failure: Failure) -> None:
        self._failures.append(failure)

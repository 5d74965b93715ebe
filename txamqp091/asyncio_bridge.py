"""The core on an asyncio event loop: a clock, a transport and the connecting coroutine.

The core (:class:`~txamqp091.protocol.AMQPProtocol`) needs a transport and a clock; on
asyncio they are thin adapters, and nothing here knows AMQP:

* :class:`AsyncioClock` is an ``IReactorTime`` over ``loop.call_at``/``loop.time()``;
  its timers (:class:`AsyncioDelayedCall`) are full ``IDelayedCall`` objects;
* :class:`BridgeProtocol` is the asyncio :class:`~asyncio.Protocol` that carries bytes to
  and from a Twisted protocol, through :class:`AsyncioTransport`, an ``ITransport`` over
  the asyncio transport; asyncio's ``pause_writing``/``resume_writing`` pause and resume
  the push producer the Twisted protocol registers (the core does);
* :func:`open_protocol` connects with ``loop.create_connection`` (TLS with asyncio's own
  :mod:`ssl` support), trying a list of parameters in pika's order, and returns the core
  once its handshake is done.

When a connection made by :func:`open_protocol` ends, every timer of its clock is
cancelled: nothing is left scheduled on the loop.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import AlreadyCalled, AlreadyCancelled, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IPushProducer,
    IReactorTime,
    ITransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp091.blocking_loop import _address
from txamqp091.connect import (
    DEFAULT_CONNECT_TIMEOUT,
    ConnectionRefused,
    _apply_tcp_options,
    _log_failed_attempt,
    try_in_turn,
)
from txamqp091.exceptions import (
    AMQPTimeoutError,
    AMQPTLSError,
    ConnectionOpenAborted,
)
from txamqp091.parameters import Parameters
from txamqp091.protocol import DEFAULT_RPC_TIMEOUT, AMQPProtocol
from txamqp091.socket_connect import tls_context

__all__ = [
    "AsyncioClock",
    "AsyncioDelayedCall",
    "AsyncioTransport",
    "BridgeProtocol",
    "connect_transport",
    "open_protocol",
]

_log = Logger()


@implementer(IDelayedCall)
class AsyncioDelayedCall:
    """A call scheduled on an :class:`AsyncioClock` (an ``IDelayedCall``)."""

    __slots__ = ("_clock", "_handle", "args", "called", "cancelled", "func", "kw", "time")

    def __init__(
        self,
        clock: AsyncioClock,
        when: float,
        func: Callable[..., object],
        args: tuple[Any, ...],
        kw: dict[str, Any],
    ) -> None:
        self._clock = clock
        #: When the call is due, on the loop's clock.
        self.time = when
        self.func = func
        self.args = args
        self.kw = kw
        #: ``True`` once the call has run.
        self.called = False
        #: ``True`` once the call has been cancelled.
        self.cancelled = False
        self._handle: asyncio.TimerHandle = clock.loop.call_at(when, self._run)

    def _run(self) -> None:
        self.called = True
        self._clock._forget(self)
        self.func(*self.args, **self.kw)

    def getTime(self) -> float:
        """When the call is due, on the loop's clock (``loop.time()``)."""
        return self.time

    def cancel(self) -> None:
        """Unschedule the call.

        :raises AlreadyCancelled: if it was cancelled before.
        :raises AlreadyCalled: if it has run.
        """
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        self.cancelled = True
        self._handle.cancel()
        self._clock._forget(self)

    def delay(self, secondsLater: float) -> None:
        """Move the call *secondsLater* seconds later than it was due."""
        self._move(self.time + secondsLater)

    def reset(self, secondsFromNow: float) -> None:
        """Move the call to *secondsFromNow* seconds from now."""
        self._move(self._clock.seconds() + secondsFromNow)

    def _move(self, when: float) -> None:
        if not self.active():
            raise AlreadyCalled() if self.called else AlreadyCancelled()
        self._handle.cancel()
        self.time = when
        self._handle = self._clock.loop.call_at(when, self._run)

    def active(self) -> bool:
        """``True`` until the call has run or been cancelled."""
        return not (self.called or self.cancelled)

    def __repr__(self) -> str:
        state = "called" if self.called else "cancelled" if self.cancelled else "active"
        return f"<AsyncioDelayedCall {state} at {self.time:.3f} {self.func!r}>"


@implementer(IReactorTime)
class AsyncioClock:
    """An ``IReactorTime`` on an asyncio loop: ``loop.time()`` and ``loop.call_at``.

    It remembers the calls it scheduled until they run or are cancelled, so that
    :meth:`cancel_all` can leave nothing on the loop.

    :param loop: the event loop the calls run on.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        #: The event loop the calls run on.
        self.loop = loop
        self._calls: dict[AsyncioDelayedCall, None] = {}

    def seconds(self) -> float:
        """The loop's clock (monotonic seconds)."""
        return self.loop.time()

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: Any, **kw: Any
    ) -> AsyncioDelayedCall:
        """Call ``callable(*args, **kw)`` from the loop after *delay* seconds."""
        call = AsyncioDelayedCall(self, self.seconds() + max(0.0, delay), callable, args, kw)
        self._calls[call] = None
        return call

    def getDelayedCalls(self) -> list[AsyncioDelayedCall]:
        """The calls still scheduled."""
        return list(self._calls)

    def cancel_all(self) -> None:
        """Cancel every call still scheduled."""
        for call in list(self._calls):
            call.cancel()

    def _forget(self, call: AsyncioDelayedCall) -> None:
        self._calls.pop(call, None)


#: Writes are gathered until the end of the loop turn up to this many bytes; a bigger
#: burst goes to asyncio's buffer at once, so that its back-pressure still applies.
_COALESCE_LIMIT = 64 * 1024


@implementer(ITransport)
class AsyncioTransport:
    """An asyncio transport as a Twisted ``ITransport``, with producer support.

    :param transport: the asyncio transport (plain TCP or TLS).
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        #: Writes of this loop turn, sent together at its end (one system call for a
        #: burst of publishes instead of one each).
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        #: True while the protocol handles received bytes (see BridgeProtocol).
        self._receiving = False
        self._producer: IPushProducer | None = None
        self._paused = False
        #: ``True`` once :meth:`abortConnection` was called.
        self.aborted = False

    @property
    def asyncio_transport(self) -> asyncio.Transport:
        """The asyncio transport underneath."""
        return self._transport

    def write(self, data: bytes) -> None:
        """Send *data* at the end of this loop turn, with the other writes of the turn
        (dropped once the transport is closing)."""
        if self._transport.is_closing():
            return
        if self._pending:
            self._pending.append(data)
            self._pending_bytes += len(data)
            if self._pending_bytes >= _COALESCE_LIMIT:
                self._flush()  # asyncio's buffer (and its back-pressure) takes it now
            return
        if len(data) >= _COALESCE_LIMIT:
            self._transport.write(data)
            return
        if self._receiving:
            # Inside data_received: flushed when it returns, no loop turn needed.
            self._pending.append(data)
            self._pending_bytes = len(data)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside the loop: no turn to wait for
            self._transport.write(data)
            return
        self._pending.append(data)
        self._pending_bytes = len(data)
        loop.call_soon(self._flush)

    def writeSequence(self, data: Any) -> None:
        """Send the byte strings of *data*, in order."""
        for chunk in data:
            self.write(chunk)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._pending_bytes = 0
        if not pending or self._transport.is_closing():
            return
        self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    @property
    def pending(self) -> int:
        """Bytes written this turn, not yet handed to the asyncio transport."""
        return self._pending_bytes

    def loseConnection(self) -> None:
        """Close once the buffered bytes are sent."""
        self._flush()
        self._transport.close()

    def abortConnection(self) -> None:
        """Close now, dropping what is buffered."""
        self.aborted = True
        self._pending = []
        self._pending_bytes = 0
        self._transport.abort()

    def getPeer(self) -> IPv4Address | IPv6Address:
        """The broker's address."""
        return _address(self._transport.get_extra_info("peername"))

    def getHost(self) -> IPv4Address | IPv6Address:
        """Our address."""
        return _address(self._transport.get_extra_info("sockname"))

    def getHandle(self) -> Any:
        """The socket, as asyncio exposes it (for socket options)."""
        return self._transport.get_extra_info("socket")

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        """Pause *producer* while asyncio says the write buffer is full.

        :raises RuntimeError: if a producer is already registered.
        """
        if self._producer is not None:
            raise RuntimeError("a producer is already registered")
        self._producer = producer
        if self._paused:
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self._producer = None

    def _pause(self) -> None:
        self._paused = True
        if self._producer is not None:
            self._producer.pauseProducing()

    def _resume(self) -> None:
        self._paused = False
        if self._producer is not None:
            self._producer.resumeProducing()


class BridgeProtocol(asyncio.Protocol):
    """An asyncio protocol that hands everything to a Twisted protocol.

    :param protocol: the Twisted protocol (the core, or a layer over it).
    :param clock: if given, every call still scheduled on it is cancelled once the
        connection is lost (after *protocol* was told).
    """

    def __init__(self, protocol: IProtocol, clock: AsyncioClock | None = None) -> None:
        #: The Twisted protocol.
        self.protocol = protocol
        self._clock = clock
        #: The Twisted transport given to the protocol (once connected).
        self.transport: AsyncioTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Give the Twisted protocol its transport."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = AsyncioTransport(transport)
        self.protocol.makeConnection(self.transport)

    def data_received(self, data: bytes) -> None:
        """Hand received bytes to the Twisted protocol; what it writes meanwhile (an
        ack, the next request) goes out in one piece when it returns."""
        transport = self.transport
        if transport is None:  # pragma: no cover - asyncio calls connection_made first
            self.protocol.dataReceived(data)
            return
        transport._receiving = True
        try:
            self.protocol.dataReceived(data)
        finally:
            transport._receiving = False
            if transport._pending:
                transport._flush()

    def eof_received(self) -> bool:
        """The peer closed its side: close ours too (``connection_lost`` follows)."""
        return False

    def pause_writing(self) -> None:
        """asyncio's write buffer is above its high-water mark: pause the producer."""
        if self.transport is not None:
            self.transport._pause()

    def resume_writing(self) -> None:
        """The buffer drained below the low-water mark: resume the producer."""
        if self.transport is not None:
            self.transport._resume()

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell the Twisted protocol why the connection ended, then cancel the timers."""
        reason: Failure
        if exc is None and self.transport is not None and self.transport.aborted:
            reason = Failure(ConnectionLost("connection aborted"))  # type: ignore[no-untyped-call]
        elif exc is None:
            reason = Failure(ConnectionDone("connection closed"))  # type: ignore[no-untyped-call]
        elif isinstance(exc, ssl.SSLError):
            reason = Failure(AMQPTLSError(f"TLS failure: {exc}"))  # type: ignore[no-untyped-call]
        else:
            reason = Failure(ConnectionLost(str(exc) or type(exc).__name__))  # type: ignore[no-untyped-call]
        try:
            self.protocol.connectionLost(reason)
        finally:
            if self._clock is not None:
                self._clock.cancel_all()


async def open_protocol(
    parameters: Sequence[Parameters],
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
) -> AMQPProtocol:
    """Connect to a broker on *loop* and complete the AMQP handshake.

    The parameters are tried in pika's order (see
    :func:`~txamqp091.connect.attempt_plan`): the whole list per round, up to
    ``connection_attempts`` rounds ``retry_delay`` seconds apart (both from the last
    parameters object); a refused login or virtual host ends the attempts at once.

    :param parameters: a non-empty sequence of connection parameters.
    :param loop: the event loop; the running one if ``None``.
    :param rpc_timeout: see :class:`~txamqp091.protocol.AMQPProtocol`.
    :returns: the open core connection, whose clock is an :class:`AsyncioClock`.
    :raises AMQPConnectionError: (or a subclass:
        :class:`~txamqp091.connect.ConnectionRefused`,
        :class:`~txamqp091.exceptions.AMQPTLSError`,
        :class:`~txamqp091.exceptions.AccessRefused`…) when no attempt succeeded;
        :class:`~txamqp091.exceptions.AMQPTimeoutError` when the last one timed out.
    """
    if not parameters:
        raise ValueError("parameters must not be empty")
    if loop is None:
        loop = asyncio.get_running_loop()
    running = loop

    def attempt(index: int) -> Deferred[AMQPProtocol]:
        opening = asyncio.ensure_future(
            _open_one(parameters[index], running, rpc_timeout), loop=running
        )
        return Deferred.fromFuture(opening)

    # pika's order, driven as by every face (try_in_turn); the waits between rounds
    # on a clock of the loop's own.
    attempts: Deferred[AMQPProtocol] = Deferred.fromCoroutine(
        try_in_turn(AsyncioClock(loop), parameters, attempt, _log_failed_attempt)
    )
    return await attempts.asFuture(loop)


async def _open_one(
    params: Parameters, loop: asyncio.AbstractEventLoop, rpc_timeout: float | None
) -> AMQPProtocol:
    """One attempt: TCP (and TLS) bounded by ``socket_timeout``, then the handshake
    (bounded by the core's ``stack_timeout``)."""
    tls = tls_context(params)
    clock = AsyncioClock(loop)
    core = AMQPProtocol(params, clock, rpc_timeout=rpc_timeout)
    await connect_transport(params, loop, BridgeProtocol(core, clock), tls)
    ready = core.ready.asFuture(loop)
    try:
        await ready
    except asyncio.CancelledError:
        # The caller gave up: do not leave a half-open connection behind.
        core.fail(ConnectionOpenAborted("open_protocol() was cancelled"))
        raise
    return core


async def connect_transport(
    params: Parameters,
    loop: asyncio.AbstractEventLoop,
    bridge: BridgeProtocol,
    tls: tuple[ssl.SSLContext, str] | None,
) -> asyncio.BaseTransport:
    """Open the TCP (and TLS, with *tls* from ``tls_context``) connection for *params*
    on *loop*, with *bridge* as its protocol (which starts the core), within
    ``socket_timeout``; ``tcp_options`` applied. Shared by :func:`open_protocol` and
    the pika-style :class:`~txamqp091.asyncio_connection.AsyncioConnection`.

    :raises AMQPTimeoutError: the connect took longer than ``socket_timeout``.
    :raises AMQPTLSError: the TLS handshake failed.
    :raises ConnectionRefused: any other socket error.
    """
    where = f"{params.host}:{params.port}"
    timeout = params.socket_timeout or DEFAULT_CONNECT_TIMEOUT
    try:
        transport, _ = await asyncio.wait_for(
            loop.create_connection(
                lambda: bridge,
                params.host,
                params.port,
                ssl=tls[0] if tls else None,
                server_hostname=tls[1] if tls else None,
            ),
            timeout,
        )
    except asyncio.TimeoutError as exc:
        raise AMQPTimeoutError(f"connecting to {where} took longer than {timeout} s") from exc
    except ssl.SSLError as exc:
        raise AMQPTLSError(f"TLS failure with {where}: {exc}") from exc
    except OSError as exc:
        raise ConnectionRefused(f"{where}: {exc}") from exc
    _set_tcp_options(transport, params.tcp_options)
    return transport


def _set_tcp_options(transport: asyncio.BaseTransport, options: dict[str, int] | None) -> None:
    """Apply ``tcp_options`` (keepalive, user timeout) to the transport's socket."""
    handle = transport.get_extra_info("socket")
    if not options or handle is None:
        return
    # asyncio exposes a wrapper, not the socket.socket _apply_tcp_options expects; a
    # duplicate descriptor refers to the same socket, so its options are the socket's.
    with socket.fromfd(handle.fileno(), handle.family, handle.type) as sock:
        _apply_tcp_options(_Handle(sock), options)


class _Handle:
    """Just enough of a transport for :func:`~txamqp091.connect._apply_tcp_options`."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def getHandle(self) -> socket.socket:
        return self._sock

"""Connecting with Twisted: :class:`AMQPClientFactory` and :func:`connect`.

:func:`connect` turns a URL, parameters, a list of them, or a Twisted
endpoint into an open :class:`~txamqp091.protocol.AMQPProtocol`.  TCP goes
through :class:`~twisted.internet.endpoints.HostnameEndpoint` (IPv4/IPv6,
happy eyeballs); TLS is layered on top (see :mod:`txamqp091.tls`).

Several parameter sets are tried in order, as pika does: one round tries
each in turn, and up to ``connection_attempts`` rounds are made (taken from
the *last* parameter set), ``retry_delay`` seconds apart.  Failures that
another attempt cannot fix (login refused, virtual host refused, no common
SASL mechanism, a broker that does not speak 0-9-1) end the attempts at once.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import HostnameEndpoint, clientFromString
from twisted.internet.error import ConnectError, ConnectingCancelledError, TimeoutError
from twisted.internet.interfaces import (
    IAddress,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.logger import Logger

from txamqp091.exceptions import (
    AccessRefused,
    AMQPConnectionError,
    AMQPTimeoutError,
    AuthenticationError,
    ConnectionOpenAborted,
    IncompatibleProtocolError,
    VirtualHostAccessRefused,
)
from txamqp091.parameters import ConnectionParameters, Parameters, URLParameters
from txamqp091.protocol import DEFAULT_RPC_TIMEOUT, AMQPProtocol

__all__ = [
    "AMQPClientFactory",
    "ConnectionRefused",
    "connect",
    "endpoint_for",
    "resolve_targets",
]

_log = Logger()
_T = TypeVar("_T")

#: Errors that retrying cannot fix.
_PERMANENT = (
    AccessRefused,
    VirtualHostAccessRefused,
    AuthenticationError,
    ConnectionOpenAborted,
    IncompatibleProtocolError,
)

#: Bytes handed to the socket per write call.
_SEND_LIMIT = 1 << 20
#: Bytes asked of the socket per read call.
_READ_SIZE = 256 * 1024

#: Seconds a TCP connect may take when ``socket_timeout`` is not set.
DEFAULT_CONNECT_TIMEOUT = 10.0


class ConnectionRefused(AMQPConnectionError):
    """The TCP connection could not be made (refused, unreachable, timed out)."""


def _apply_tcp_options(transport: Any, options: dict[str, int] | None) -> None:
    """Set keepalive and user-timeout socket options on the transport's socket."""
    if not options:
        return
    get_handle = getattr(transport, "getHandle", None)
    sock = get_handle() if get_handle is not None else None
    if not isinstance(sock, socket.socket):
        return
    keepalive = any(name.startswith("TCP_KEEP") for name in options)
    if keepalive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in options.items():
        opt = getattr(socket, name, None)
        if opt is None:
            _log.warn("TCP option {name} is not supported on this platform", name=name)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, opt, value)


class _TwistedAMQPProtocol(AMQPProtocol):
    """AMQPProtocol on a reactor transport: applies ``tcp_options`` first."""

    def connectionMade(self) -> None:
        _apply_tcp_options(self.transport, self.parameters.tcp_options)
        if isinstance(getattr(self.transport, "SEND_LIMIT", None), int):
            # Twisted sends at most 128 KiB per write call; large messages go out
            # with far fewer system calls and reactor turns in 1 MiB steps.
            self.transport.SEND_LIMIT = _SEND_LIMIT  # type: ignore[union-attr]
        if isinstance(getattr(self.transport, "bufferSize", None), int):
            # And it reads 64 KiB at a time; 256 KiB cuts the cost of large messages
            # by about a third (measured) without slowing small ones.
            self.transport.bufferSize = _READ_SIZE  # type: ignore[union-attr]
        super().connectionMade()


class AMQPClientFactory(Factory):
    """Builds :class:`~txamqp091.protocol.AMQPProtocol` instances.

    Use with any client endpoint (``endpoint.connect(factory)``) or with
    :class:`twisted.application.internet.ClientService`; wait for
    ``protocol.ready`` before using the connection.

    :param parameters: connection settings shared by every protocol built.
    :param clock: clock for heartbeats and timeouts; the global reactor if
        ``None``.
    :param rpc_timeout: see :class:`~txamqp091.protocol.AMQPProtocol`.
    """

    protocol = _TwistedAMQPProtocol

    def __init__(
        self,
        parameters: Parameters | None = None,
        clock: IReactorTime | None = None,
        *,
        rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
    ) -> None:
        if parameters is not None and not isinstance(parameters, Parameters):
            raise TypeError(f"parameters must be Parameters or None, not {parameters!r}")
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        #: The settings given to each protocol.
        self.parameters: Parameters = parameters or ConnectionParameters()
        self.clock = clock
        self.rpc_timeout = rpc_timeout

    def buildProtocol(self, addr: IAddress | None) -> AMQPProtocol:
        """Build a protocol for a new connection."""
        proto = _TwistedAMQPProtocol(self.parameters, self.clock, rpc_timeout=self.rpc_timeout)
        proto.factory = self
        return proto


def endpoint_for(reactor: Any, parameters: Parameters) -> IStreamClientEndpoint:
    """The Twisted endpoint that reaches the broker named by *parameters*.

    :returns: a :class:`HostnameEndpoint`, wrapped in TLS when
        ``parameters.ssl_options`` is set.
    """
    timeout = parameters.socket_timeout or DEFAULT_CONNECT_TIMEOUT
    tcp = HostnameEndpoint(reactor, parameters.host, parameters.port, timeout=timeout)
    if parameters.ssl_options is None:
        return tcp
    from txamqp091.tls import tls_endpoint

    return tls_endpoint(tcp, parameters.ssl_options, parameters.host)


def _as_targets(target: object, parameters: Parameters | None) -> list[tuple[Any, Parameters]]:
    """Normalise *target* into ``(endpoint or None, parameters)`` pairs."""
    if isinstance(target, str):
        if "://" in target:
            return [(None, URLParameters(target))]
        return [("description", parameters or ConnectionParameters())]
    if isinstance(target, Parameters):
        return [(None, target)]
    if IStreamClientEndpoint.providedBy(target):
        return [(target, parameters or ConnectionParameters())]
    if isinstance(target, Sequence) and target:
        pairs: list[tuple[Any, Parameters]] = []
        for item in target:
            if isinstance(item, str) and "://" in item:
                pairs.append((None, URLParameters(item)))
            elif isinstance(item, Parameters):
                pairs.append((None, item))
            elif IStreamClientEndpoint.providedBy(item):
                pairs.append((item, parameters or ConnectionParameters()))
            else:
                raise TypeError(
                    "a sequence target must hold URLs, Parameters or endpoints, not "
                    f"{type(item).__name__}"
                )
        return pairs
    raise TypeError(
        "target must be a URL, Parameters, a non-empty sequence of them, an "
        f"IStreamClientEndpoint or an endpoint description, not {type(target).__name__}"
    )


def _typed_connect_error(exc: BaseException, parameters: Parameters) -> BaseException:
    if isinstance(exc, TimeoutError):
        return AMQPTimeoutError(f"TCP connect to {parameters.host}:{parameters.port} timed out")
    if isinstance(exc, ConnectError | ConnectingCancelledError | OSError):
        return ConnectionRefused(f"{parameters.host}:{parameters.port}: {exc}")
    return exc


def connect(
    reactor: Any,
    target: Any = "amqp://guest:guest@localhost:5672/%2F",
    *,
    parameters: Parameters | None = None,
    rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
) -> Deferred[AMQPProtocol]:
    """Connect to a broker and complete the AMQP handshake.

    :param reactor: the reactor (TCP, TLS, time).
    :param target: an ``amqp://`` / ``amqps://`` URL, a
        :class:`~txamqp091.ConnectionParameters` or
        :class:`~txamqp091.URLParameters`, a non-empty sequence of those or of endpoints
        (tried in order), an :class:`IStreamClientEndpoint`, or an endpoint
        description string such as ``"tcp:host=rabbit:port=5672"``.
    :param parameters: AMQP settings to use with an endpoint or description
        target (credentials, vhost, tuning); ignored otherwise.
    :param rpc_timeout: see :class:`~txamqp091.protocol.AMQPProtocol`.
    :returns: a Deferred firing with the open connection, or failing with a
        typed error: :class:`~txamqp091.exceptions.AccessRefused`,
        :class:`~txamqp091.exceptions.VirtualHostAccessRefused`,
        :class:`~txamqp091.exceptions.AMQPTLSError`,
        :class:`ConnectionRefused`,
        :class:`~txamqp091.exceptions.AMQPTimeoutError`, ….
    :raises TypeError, ValueError: for a malformed target, at once.
    """
    pairs = resolve_targets(reactor, target, parameters)
    return Deferred.fromCoroutine(_connect(reactor, pairs, rpc_timeout))


def resolve_targets(
    reactor: Any, target: Any, parameters: Parameters | None = None
) -> list[tuple[IStreamClientEndpoint, Parameters]]:
    """The ``(endpoint, parameters)`` pairs a :func:`connect` target names, in order.

    :raises TypeError, ValueError: for a malformed target.
    """
    pairs: list[tuple[IStreamClientEndpoint, Parameters]] = []
    for endpoint, params in _as_targets(target, parameters):
        if endpoint == "description":
            endpoint = clientFromString(reactor, target)  # type: ignore[no-untyped-call]
        elif endpoint is None:
            endpoint = endpoint_for(reactor, params)
        pairs.append((endpoint, params))
    return pairs


def attempt_plan(parameters: Sequence[Parameters]) -> Iterator[tuple[int, float]]:
    """pika 1.x's order of connection attempts over a list of parameter sets.

    The whole list is tried in each round; up to ``connection_attempts`` rounds are
    made and ``retry_delay`` seconds pass between rounds, both taken from the *last*
    parameter set.

    :returns: ``(index into parameters, seconds to wait first)`` per attempt.
    """
    last = parameters[-1]
    for round_number in range(last.connection_attempts):
        for index in range(len(parameters)):
            yield index, (last.retry_delay if round_number and not index else 0.0)


def is_permanent(error: BaseException) -> bool:
    """Whether a failed attempt ends the whole plan (a refused login or vhost, a peer
    that is not an AMQP 0-9-1 broker): trying again cannot help."""
    return isinstance(error, _PERMANENT)


async def try_in_turn(
    clock: IReactorTime,
    parameters: Sequence[Parameters],
    attempt: Callable[[int], Awaitable[_T]],
    failed: Callable[[Parameters, BaseException], object] | None = None,
) -> _T:
    """Make connection attempts in pika's order until one succeeds: the one place
    that drives :func:`attempt_plan`, for every face.

    :param clock: waits ``retry_delay`` between rounds on it (any ``IReactorTime``:
        a reactor, the selector loop, an asyncio clock, a test ``Clock``).
    :param parameters: the parameter sets, in order.
    :param attempt: ``attempt(index)`` tries ``parameters[index]``; what it returns
        is awaited (a Deferred, or a coroutine of Deferreds).
    :param failed: told ``(parameters, error)`` of each failed attempt.
    :returns: the first attempt's result that succeeds.
    :raises: at once, an error :func:`is_permanent` says retrying cannot fix;
        else the last attempt's error.
    """
    error: BaseException | None = None
    for index, delay in attempt_plan(parameters):
        if delay:
            await deferLater(clock, delay, lambda: None)
        try:
            return await attempt(index)
        except CancelledError:
            raise
        except Exception as exc:
            if failed is not None:
                failed(parameters[index], exc)
            if is_permanent(exc):
                raise
            error = exc
    assert error is not None
    raise error


def _log_failed_attempt(params: Parameters, exc: BaseException) -> None:
    _log.info(
        "AMQP connection attempt to {host}:{port} failed: {exc!r}",
        host=params.host,
        port=params.port,
        exc=exc,
    )


async def _connect(
    reactor: Any,
    pairs: list[tuple[IStreamClientEndpoint, Parameters]],
    rpc_timeout: float | None,
) -> AMQPProtocol:
    def attempt(index: int) -> Awaitable[AMQPProtocol]:
        endpoint, params = pairs[index]
        return _connect_one(reactor, endpoint, params, rpc_timeout)

    return await try_in_turn(
        reactor, [params for _, params in pairs], attempt, _log_failed_attempt
    )


async def _connect_one(
    reactor: Any,
    endpoint: IStreamClientEndpoint,
    parameters: Parameters,
    rpc_timeout: float | None,
) -> AMQPProtocol:
    """One attempt: TCP (and TLS) then the AMQP handshake, bounded by ``stack_timeout``."""
    factory = AMQPClientFactory(parameters, reactor, rpc_timeout=rpc_timeout)
    connecting = endpoint.connect(factory)
    limit = parameters.stack_timeout
    expired: list[AMQPTimeoutError] = []
    proto: AMQPProtocol | None = None

    def expire() -> None:
        exc = AMQPTimeoutError(
            f"connecting to {parameters.host}:{parameters.port} (TCP, TLS and AMQP "
            f"handshake) took longer than stack_timeout={limit} s"
        )
        expired.append(exc)
        if proto is None:
            connecting.cancel()
        else:
            proto.fail(exc)

    timer = reactor.callLater(limit, expire) if limit else None
    try:
        try:
            connected = await connecting
        except Exception as exc:
            if expired:
                raise expired[0] from exc
            raise _typed_connect_error(exc, parameters) from exc
        assert isinstance(connected, AMQPProtocol)
        proto = connected
        try:
            return await proto.ready
        except CancelledError:
            # The caller gave up: do not leave a half-open connection behind.
            proto.fail(ConnectionOpenAborted("connect() was cancelled"))
            raise
    finally:
        if timer is not None and timer.active():
            timer.cancel()

"""Connecting a socket on a :class:`~txamqp091.blocking_loop.SelectorLoop` and putting
the core on it: shared by the Blocking and Select faces.

* :func:`connect_socket` opens a TCP connection without blocking the loop (each
  resolved address in turn, one timeout for all) and gives the socket as a Deferred;
* :func:`attach` puts an :class:`~txamqp091.protocol.AMQPProtocol` on that socket, with
  the core's memory-BIO TLS layer between them when the parameters ask for TLS;
* :func:`tls_context` turns the parameters' TLS settings into an ``ssl.SSLContext``.
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IProtocol

from txamqp091.blocking_loop import SelectorLoop, SocketTransport
from txamqp091.connect import DEFAULT_CONNECT_TIMEOUT, _apply_tcp_options
from txamqp091.exceptions import AMQPConnectionError
from txamqp091.parameters import Parameters
from txamqp091.protocol import AMQPProtocol
from txamqp091.tls import _TLSProtocol

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "attach", "connect_socket", "tls_context"]


def tls_context(params: Parameters) -> tuple[ssl.SSLContext, str] | None:
    """The standard-library context and server name for *params*' TLS settings, or
    ``None`` for plain TCP.

    An ``amqps://`` URL without TLS options gets the platform's defaults: its CAs and
    a host name check. A Twisted connection creator is for the Twisted face only.

    :raises TypeError: for a Twisted connection creator.
    """
    options = params.ssl_options
    if options is None:
        return None
    hostname = options.server_hostname or params.host
    if options.ssl_context is not None:
        return options.ssl_context, hostname
    if options.connection_creator is not None:
        raise TypeError(
            "this face takes TLS settings as an ssl.SSLContext "
            "(SSLOptions(context)), not a Twisted connection creator"
        )
    return ssl.create_default_context(), hostname


class _Connecting:
    """One non-blocking TCP connect, trying each resolved address in turn.

    Watched by the loop for writability (a connect completes by becoming writable);
    it has the two methods and the attribute the loop calls on what it watches.
    """

    disconnected = False

    def __init__(
        self,
        loop: SelectorLoop,
        host: str,
        port: int,
        addresses: list[Any],
        timeout: float,
    ) -> None:
        self._loop = loop
        self._where = f"{host}:{port}"
        self._addresses = addresses
        self._sock: socket.socket | None = None
        self._last_error: OSError | None = None
        self.deferred: Deferred[socket.socket] = Deferred(lambda _: self._cancel())
        self._timer: IDelayedCall | None = loop.callLater(timeout, self._timed_out, timeout)
        self._next()

    def _next(self) -> None:
        while self._addresses:
            family, kind, proto, _, address = self._addresses.pop(0)
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as e:  # e.g. an IPv6 address where IPv6 is off: next one
                self._last_error = e
                continue
            try:
                sock.setblocking(False)
                code = sock.connect_ex(address)
            except OSError as e:
                sock.close()
                self._last_error = e
                continue
            if code == 0:
                self._done(sock)
                return
            if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                self._sock = sock
                self._loop.watch_writable(sock, self)
                return
            sock.close()
            self._last_error = OSError(code, errno.errorcode.get(code, str(code)))
        self._fail(
            AMQPConnectionError(f"{self._where}: {self._last_error or 'no address to connect to'}")
        )

    def _readable(self) -> None:
        self._writable()  # an error can show as readable too

    def _writable(self) -> None:
        sock = self._sock
        if sock is None:
            return  # reported readable and writable in one turn: handled already
        self._sock = None
        self._loop.unregister(sock)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            self._done(sock)
            return
        sock.close()
        self._last_error = OSError(code, errno.errorcode.get(code, str(code)))
        self._next()

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _drop_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop.unregister(sock)
            sock.close()

    def _done(self, sock: socket.socket) -> None:
        self._stop_timer()
        self.deferred.callback(sock)

    def _fail(self, error: Exception) -> None:
        self._stop_timer()
        self._drop_socket()
        self.deferred.errback(error)

    def _timed_out(self, timeout: float) -> None:
        self._timer = None
        self._fail(AMQPConnectionError(f"TCP connect to {self._where} timed out after {timeout}s"))

    def _cancel(self) -> None:
        self._stop_timer()
        self._drop_socket()


def connect_socket(
    loop: SelectorLoop, host: str, port: int, timeout: float | None = None
) -> Deferred[socket.socket]:
    """Open a TCP connection to *host*:*port* without blocking *loop*.

    The name is resolved first (a blocking ``getaddrinfo``, as with ``socket``'s own
    functions); the addresses are tried in turn within *timeout* seconds in all.
    Cancelling the Deferred stops the attempt and closes its socket.

    :returns: a Deferred firing with the connected non-blocking socket (``TCP_NODELAY``
        set), or failing with :class:`~txamqp091.exceptions.AMQPConnectionError`.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        d: Deferred[socket.socket] = Deferred()
        d.errback(AMQPConnectionError(f"{host}:{port}: {e}"))
        return d
    connecting = _Connecting(loop, host, port, list(addresses), timeout or DEFAULT_CONNECT_TIMEOUT)

    def ready(sock: socket.socket) -> socket.socket:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            raise
        return sock

    return connecting.deferred.addCallback(ready)


def attach(
    loop: SelectorLoop,
    sock: socket.socket,
    params: Parameters,
    protocol: AMQPProtocol,
    tls: tuple[ssl.SSLContext, str] | None,
) -> SocketTransport:
    """Run *protocol* over *sock* on *loop* (through TLS with *tls*, from
    :func:`tls_context`, checked before connecting) and start it (``makeConnection``:
    the AMQP handshake begins)."""
    try:
        lowest: IProtocol = protocol if tls is None else _TLSProtocol(protocol, *tls)
        transport = SocketTransport(loop, sock, lowest)
    except BaseException:
        sock.close()
        raise
    _apply_tcp_options(transport, params.tcp_options)
    lowest.makeConnection(transport)
    return transport

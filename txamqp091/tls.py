"""TLS for the Twisted face.

Two kinds of TLS settings arrive in :class:`~txamqp091.SSLOptions`:

* a Twisted connection creator (e.g. from
  :func:`twisted.internet.ssl.optionsForClientTLS`): used as is, through
  :func:`twisted.internet.endpoints.wrapClientTLS` (pyOpenSSL);
* a standard-library :class:`ssl.SSLContext` (what pika programs and
  ``amqps://`` URLs with ``ssl_options`` give): driven here through
  :class:`ssl.SSLObject` and memory BIOs on top of the TCP transport, so its
  verification settings, client certificate and SNI apply exactly as
  configured;
* nothing but an ``amqps://`` URL: Twisted's TLS from
  :func:`~twisted.internet.ssl.optionsForClientTLS`, which trusts the
  platform's CAs and checks the host name with ``service_identity``.

A handshake or verification failure fails the connection with
:class:`~txamqp091.exceptions.AMQPTLSError`.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import wrapClientTLS
from twisted.internet.interfaces import (
    IAddress,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.ssl import optionsForClientTLS
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp091.exceptions import AMQPTLSError
from txamqp091.parameters import SSLOptions

__all__ = ["StdlibTLSEndpoint", "tls_endpoint"]

_READ_SIZE = 256 * 1024


def tls_endpoint(
    tcp: IStreamClientEndpoint, options: SSLOptions, host: str
) -> IStreamClientEndpoint:
    """Wrap *tcp* in TLS as *options* say.

    :param tcp: the TCP endpoint to the broker.
    :param options: the TLS settings.
    :param host: the broker's host name, used for SNI and verification
        when ``options.server_hostname`` is ``None``.
    """
    creator = options.connection_creator
    if creator is None and options.platform_default:
        # An amqps URL with no TLS settings: Twisted's TLS, verifying the
        # certificate against the platform's CAs and the host name with
        # service_identity.
        creator = optionsForClientTLS(options.server_hostname or host)
    if creator is not None:
        return wrapClientTLS(creator, tcp)
    context = options.ssl_context
    assert context is not None
    return StdlibTLSEndpoint(tcp, context, options.server_hostname or host)


@implementer(IStreamClientEndpoint)
class StdlibTLSEndpoint:
    """A client endpoint speaking TLS with an :class:`ssl.SSLContext` over another endpoint.

    :param endpoint: the endpoint carrying the TLS bytes (usually TCP).
    :param context: the client context (verification, certificates, ciphers).
    :param server_hostname: the name sent in SNI and checked against the
        certificate when the context checks host names.
    """

    def __init__(
        self, endpoint: IStreamClientEndpoint, context: ssl.SSLContext, server_hostname: str
    ) -> None:
        self._endpoint = endpoint
        self._context = context
        self._server_hostname = server_hostname

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """Connect, and hand back the application protocol once TCP is up."""
        context, hostname = self._context, self._server_hostname

        class _Wrapping(Factory):
            def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
                inner = protocolFactory.buildProtocol(addr)  # type: ignore[arg-type]
                if inner is None:
                    return None
                return _TLSProtocol(inner, context, hostname)

        def unwrap(proto: IProtocol) -> IProtocol:
            assert isinstance(proto, _TLSProtocol)
            return proto.wrapped

        return self._endpoint.connect(_Wrapping()).addCallback(unwrap)


@implementer(ITransport)
class _TLSTransport:
    """The transport the application protocol writes to: encrypts onto the TCP one."""

    def __init__(self, owner: _TLSProtocol) -> None:
        self._owner = owner

    def write(self, data: bytes) -> None:
        self._owner.write_plain(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self._owner.write_plain(b"".join(data))

    def loseConnection(self) -> None:
        self._owner.close()

    def abortConnection(self) -> None:
        self._owner.abort()

    def getPeer(self) -> IAddress:
        return self._owner.lower().getPeer()

    def getHost(self) -> IAddress:
        return self._owner.lower().getHost()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._owner.lower().registerProducer(producer, streaming)  # type: ignore[attr-defined]

    def unregisterProducer(self) -> None:
        self._owner.lower().unregisterProducer()  # type: ignore[attr-defined]

    def getHandle(self) -> Any:
        return self._owner.lower().getHandle()  # type: ignore[attr-defined]

    def get_peer_certificate(self) -> dict[str, Any] | None:
        """The verified peer certificate (see :meth:`ssl.SSLObject.getpeercert`)."""
        return self._owner.tls.getpeercert()


class _TLSProtocol(Protocol):
    """Sits between the TCP transport and the application protocol."""

    def __init__(self, wrapped: IProtocol, context: ssl.SSLContext, hostname: str) -> None:
        self.wrapped = wrapped
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=hostname
        )
        self._handshaken = False
        self._pending: list[bytes] = []
        self._error: AMQPTLSError | None = None
        self._closing = False

    def lower(self) -> ITransport:
        assert self.transport is not None
        return self.transport

    def connectionMade(self) -> None:
        self.wrapped.makeConnection(_TLSTransport(self))
        self._handshake()

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data and self.transport is not None:
            self.transport.write(data)

    def _fail(self, exc: ssl.SSLError | OSError) -> None:
        self._error = AMQPTLSError(f"TLS failure: {exc}")
        fail = getattr(self.wrapped, "fail", None)
        if callable(fail):
            fail(self._error)
        self.abort()

    def _handshake(self) -> None:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, OSError) as exc:
            self._flush()
            self._fail(exc)
            return
        self._handshaken = True
        pending, self._pending = self._pending, []
        for data in pending:
            self.tls.write(data)
        self._flush()

    def dataReceived(self, data: bytes) -> None:
        self._incoming.write(data)
        if not self._handshaken:
            self._handshake()
            if not self._handshaken:
                return
        chunks = []
        while True:
            try:
                chunk = self.tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.close()
                break
            except (ssl.SSLError, OSError) as exc:
                self._fail(exc)
                return
            if not chunk:
                break
            chunks.append(chunk)
        self._flush()
        if chunks:
            self.wrapped.dataReceived(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def write_plain(self, data: bytes) -> None:
        if self._closing:
            return
        if not self._handshaken:
            self._pending.append(bytes(data))
            return
        try:
            self.tls.write(data)
        except (ssl.SSLError, OSError) as exc:
            self._fail(exc)
            return
        self._flush()

    def close(self) -> None:
        if self._closing or self.transport is None:
            return
        self._closing = True
        if self._handshaken:
            try:
                self.tls.unwrap()
            except (ssl.SSLError, OSError):
                pass  # close_notify is best effort; the peer may be gone
            self._flush()
        self.transport.loseConnection()

    def abort(self) -> None:
        self._closing = True
        if self.transport is not None:
            abort = getattr(self.transport, "abortConnection", None)
            if callable(abort):
                abort()
            else:
                self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._error is None and not self._handshaken:
            self._error = AMQPTLSError(
                f"connection lost during the TLS handshake: {reason.getErrorMessage()}"
            )
        if self._error is not None:
            reason = Failure(self._error)  # type: ignore[no-untyped-call]
        self.wrapped.connectionLost(reason)

"""AMQPClientService: a connection that comes back, on Twisted's ClientService.

The service keeps one AMQP connection open for as long as it runs.  It is a
:class:`twisted.application.internet.ClientService` (its retry state machine,
``whenConnected`` and ``prepareConnection``), not a retry loop of its own:

* several brokers (URLs, parameters, endpoints) are tried in turn, one per
  attempt, and the *first* connection is retried like any other;
* the delay between attempts grows by ``factor`` from ``initial_delay`` up to
  ``max_delay``, plus up to ``jitter`` seconds of randomness, so that many
  clients do not reconnect in step;
* :meth:`AMQPClientService.whenConnected` fires only with an *open*
  connection: the AMQP handshake has finished (``prepareConnection`` waits for
  :attr:`~txamqp091.protocol.AMQPProtocol.ready`);
* :meth:`AMQPClientService.stopService` closes the connection with the AMQP
  close handshake before the service stops, and leaves no timer behind.

Recovery of channels, topology and consumers after a reconnection builds on
this service.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from txamqp091.connect import AMQPClientFactory, resolve_targets
from txamqp091.parameters import Parameters
from txamqp091.protocol import DEFAULT_RPC_TIMEOUT, AMQPProtocol

__all__ = ["AMQPClientService"]

_log = Logger()


@implementer(IStreamClientEndpoint)
class _RotatingEndpoint:
    """Each connect() goes to the next target, with that target's parameters."""

    def __init__(
        self,
        targets: Sequence[tuple[IStreamClientEndpoint, Parameters]],
        factory: AMQPClientFactory,
    ) -> None:
        self._targets = list(targets)
        self._factory = factory
        self._next = 0
        #: The parameters of the target being (or last) connected to.
        self.current: Parameters = self._targets[0][1]

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        endpoint, parameters = self._targets[self._next]
        self._next = (self._next + 1) % len(self._targets)
        self.current = parameters
        # ClientService wraps our factory (to learn of disconnections); the
        # wrapped one builds protocols with the parameters set here.
        self._factory.parameters = parameters
        _log.debug(
            "Connecting to AMQP broker {host}:{port}", host=parameters.host, port=parameters.port
        )
        return endpoint.connect(protocolFactory)


class AMQPClientService(ClientService):
    """Keep an AMQP connection open, reconnecting with backoff.

    :param reactor: the reactor (TCP, TLS and time).
    :param target: what :func:`~txamqp091.connect.connect` accepts: a URL,
        parameters, a non-empty sequence of them (tried in turn, one per
        attempt), an endpoint or an endpoint description.
    :param parameters: AMQP settings for an endpoint or description target.
    :param rpc_timeout: see :class:`~txamqp091.protocol.AMQPProtocol`.
    :param initial_delay: seconds before the first retry.
    :param max_delay: the longest delay between attempts, before jitter.
    :param factor: how much the delay grows after each failed attempt.
    :param jitter: at most this many random seconds added to each delay.
    :param retry_policy: instead of the four above, a callable taking the
        number of failed attempts and returning the delay in seconds.
    """

    def __init__(
        self,
        reactor: Any,
        target: Any,
        *,
        parameters: Parameters | None = None,
        rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
        initial_delay: float = 1.0,
        max_delay: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        retry_policy: Callable[[int], float] | None = None,
    ) -> None:
        for name, value in (
            ("initial_delay", initial_delay),
            ("max_delay", max_delay),
            ("factor", factor),
            ("jitter", jitter),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, not {factor!r}")
        pairs = resolve_targets(reactor, target, parameters)
        self._amqp_factory = AMQPClientFactory(pairs[0][1], reactor, rpc_timeout=rpc_timeout)
        self._rotating = _RotatingEndpoint(pairs, self._amqp_factory)
        if retry_policy is None:
            rng = random.Random()
            retry_policy = backoffPolicy(
                initialDelay=initial_delay,
                maxDelay=max_delay,
                factor=factor,
                jitter=lambda: rng.random() * jitter,
            )
        #: The connection now open, or ``None``.
        self.connection: AMQPProtocol | None = None
        self._reactor = reactor
        super().__init__(
            self._rotating,
            self._amqp_factory,
            retryPolicy=retry_policy,
            clock=reactor,
            prepareConnection=self._prepare,
        )

    def _prepare(self, proto: IProtocol) -> Deferred[Any]:
        """Wait for the AMQP handshake; remember the open connection."""
        amqp: AMQPProtocol = proto  # type: ignore[assignment]

        def opened(connection: AMQPProtocol) -> AMQPProtocol:
            self.connection = connection
            connection.add_on_close_callback(self._closed)
            return connection

        return amqp.ready.addCallback(opened)

    def _closed(self, connection: AMQPProtocol, reason: Exception) -> None:
        if self.connection is connection:
            self.connection = None
            _log.info("AMQP connection lost ({reason!r}); reconnecting", reason=reason)

    def whenConnected(  # type: ignore[override]
        self,
        failAfterFailures: int | None = None,
    ) -> Deferred[AMQPProtocol]:
        """A Deferred firing with an open connection (now, or once there is one).

        :param failAfterFailures: fail after this many failed attempts instead
            of waiting for ever (Twisted's ``ClientService`` semantics).
        """

        def fresh(connection: AMQPProtocol) -> Any:
            if connection.is_open:
                return connection
            # Asked right as the connection closed, before ClientService heard of
            # it: ask again once it has (it is told next, in the same turn).
            return deferLater(self._reactor, 0, lambda: None).addCallback(
                lambda _: self.whenConnected(failAfterFailures)
            )

        waiting: Deferred[AMQPProtocol] = super().whenConnected(failAfterFailures)  # type: ignore[assignment]
        return waiting.addCallback(fresh)

    def stopService(self) -> Deferred[None]:
        """Close the connection with the AMQP close handshake, then stop retrying.

        :returns: a Deferred firing once the connection is closed and the
            service has stopped.
        """
        connection = self.connection
        closing: Deferred[None] = (
            connection.close() if connection is not None and connection.is_open else succeed(None)
        )

        def stop(_: object) -> Deferred[None]:
            return super(AMQPClientService, self).stopService()

        return closing.addBoth(stop)

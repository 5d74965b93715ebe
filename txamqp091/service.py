"""AMQPClientService: a connection that comes back, with everything declared on it.

The service keeps one AMQP connection open for as long as it runs.  It is a
:class:`twisted.application.internet.ClientService` (its retry state machine,
``whenConnected`` and ``prepareConnection``), not a retry loop of its own:

* several brokers (URLs, parameters, endpoints) are tried in turn, one per
  attempt, and the *first* connection is retried like any other;
* the delay between attempts grows by ``factor`` from ``initial_delay`` up to
  ``max_delay``, plus up to ``jitter`` seconds of randomness, so that many
  clients do not reconnect in step;
* channels opened with :meth:`AMQPClientService.channel` are
  :class:`~txamqp091.recovering_channel.RecoveringChannel` objects: what they
  declare and consume is recorded, and recovered on each new connection
  (:mod:`txamqp091.recovery`) before
  :meth:`AMQPClientService.whenConnected` fires;
* listeners (:meth:`AMQPClientService.add_listener`) hear of connection loss,
  recovery start, renamed queues, success, failure and broker-sent consumer
  cancels; :attr:`AMQPClientService.healthy` is ``True`` only while connected
  and recovered;
* an optional bounded outbox keeps confirmed publishes across outages;
* :meth:`AMQPClientService.stopService` cancels the consumers, waits (up to
  ``stop_timeout``) for message handlers still running, closes the connection
  with the AMQP close handshake, and leaves no timer behind.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.internet import ClientService
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    ensureDeferred,
)
from twisted.internet.interfaces import (
    IAddress,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp091.connect import AMQPClientFactory, resolve_targets
from txamqp091.exceptions import (
    ConnectionClosedByClient,
    ConnectionRecovering,
    RecoveryError,
)
from txamqp091.outbox import Outbox
from txamqp091.parameters import Parameters
from txamqp091.protocol import DEFAULT_RPC_TIMEOUT, AMQPProtocol
from txamqp091.recovering_channel import RecoveringChannel
from txamqp091.recovery import (
    ConnectionLost,
    RecoveryEvent,
    RecoveryFailed,
    RecoveryStarted,
    RecoverySucceeded,
    describe,
    recover,
)
from txamqp091.topology import Record, Topology

__all__ = ["AMQPClientService"]

_log = Logger()


@implementer(IProtocol)
class _Gate:
    """Stands between a transport and ClientService's protocol proxy.

    ClientService hears of a lost connection through its proxy's
    ``connectionLost``; for a connection it never accepted (its preparation
    failed: handshake or recovery) Twisted's state machine has no transition
    for that and logs ``NoTransition``.  Until the service accepts the
    connection, the gate tells only the AMQP protocol.
    """

    def __init__(self, proxy: IProtocol, amqp: AMQPProtocol) -> None:
        self.proxy = proxy
        self.amqp = amqp
        self.accepted = False
        self.dataReceived = amqp.dataReceived

    def makeConnection(self, transport: ITransport) -> None:
        self.proxy.makeConnection(transport)

    def connectionMade(self) -> None:  # pragma: no cover - makeConnection does it
        pass

    def connectionLost(self, reason: Failure) -> None:
        if self.accepted:
            self.proxy.connectionLost(reason)
        else:
            self.amqp.connectionLost(reason)

    def logPrefix(self) -> str:
        return "AMQPClientService"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.amqp, name)


class _GateFactory:
    """Builds ClientService's proxy for a connection, behind a :class:`_Gate`."""

    def __init__(self, outer: IProtocolFactory, amqp_factory: _RecordingFactory) -> None:
        self.outer = outer
        self.amqp_factory = amqp_factory
        self.gate: _Gate | None = None

    def buildProtocol(self, addr: IAddress) -> IProtocol | None:
        proxy = self.outer.buildProtocol(addr)
        built = self.amqp_factory.built
        if proxy is None or built is None:  # pragma: no cover - our factory always builds
            return proxy
        self.gate = _Gate(proxy, built)
        return self.gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outer, name)


class _RecordingFactory(AMQPClientFactory):
    """AMQPClientFactory that remembers the protocol it built last."""

    built: AMQPProtocol | None = None

    def buildProtocol(self, addr: IAddress | None) -> AMQPProtocol:
        self.built = super().buildProtocol(addr)
        return self.built


@implementer(IStreamClientEndpoint)
class _RotatingEndpoint:
    """Each connect() goes to the next target, with that target's parameters."""

    def __init__(
        self,
        targets: Sequence[tuple[IStreamClientEndpoint, Parameters]],
        factory: _RecordingFactory,
    ) -> None:
        self._targets = list(targets)
        self._factory = factory
        self._next = 0
        #: The parameters of the target being (or last) connected to.
        self.current: Parameters = self._targets[0][1]
        #: The gate of the connection being (or last) made.
        self.gate: _Gate | None = None

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
        gates = _GateFactory(protocolFactory, self._factory)

        def connected(gate: IProtocol) -> IProtocol:
            self.gate = gates.gate
            # ClientService works with its own proxy, which the gate holds.
            return gates.gate.proxy if gates.gate is not None else gate

        return endpoint.connect(gates).addCallback(connected)  # type: ignore[arg-type]


def _backoff(
    initial_delay: float, max_delay: float, factor: float, jitter: float
) -> Callable[[int], float]:
    """The delay before retry *n* (1 for the first): ``initial_delay * factor ** (n - 1)``,
    at most ``max_delay``, plus up to ``jitter`` random seconds."""
    rng = random.Random()

    def policy(failures: int) -> float:
        exponent = min(max(failures - 1, 0), 100)
        try:
            delay = min(initial_delay * factor**exponent, max_delay)
        except OverflowError:  # pragma: no cover - exponent is capped
            delay = max_delay
        return delay + rng.random() * jitter

    return policy


def _ready(amqp: AMQPProtocol) -> Deferred[AMQPProtocol]:
    """``amqp.ready``, as a Deferred whose cancellation aborts the connection.

    ClientService cancels the attempt when stopped during the handshake; the
    protocol's own ``ready`` must then fail by the abort, not be cancelled
    under the handshake's feet.
    """

    def abort(_: object) -> None:
        if amqp.transport is not None:
            amqp.transport.abortConnection()  # type: ignore[attr-defined]

    waiting: Deferred[AMQPProtocol] = Deferred(abort)

    def relay(result: Any) -> Any:
        failed = isinstance(result, Failure)
        if not waiting.called:
            if failed:
                waiting.errback(result)
            else:
                waiting.callback(result)
        # A failure is handled here (as ClientService handled it before).
        return None if failed else result

    amqp.ready.addBoth(relay)
    return waiting


class AMQPClientService(ClientService):
    """Keep an AMQP connection open, reconnecting with backoff and recovering
    channels, topology and consumers.

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
    :param include: a filter for the topology record: called with each
        :mod:`~txamqp091.topology` record, ``False`` keeps it from recovery.
    :param outbox_messages: keep up to this many confirmed publishes across
        outages (0, the default, keeps none: publishing while disconnected
        fails fast).
    :param outbox_bytes: and up to this many body bytes.
    :param stop_timeout: how long ``stopService`` waits for message handlers.
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
        include: Callable[[Record], bool] | None = None,
        outbox_messages: int = 0,
        outbox_bytes: int = 64 * 1024 * 1024,
        stop_timeout: float = 10.0,
    ) -> None:
        for name, value in (
            ("initial_delay", initial_delay),
            ("max_delay", max_delay),
            ("factor", factor),
            ("jitter", jitter),
            ("stop_timeout", stop_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, not {factor!r}")
        if (
            isinstance(outbox_messages, bool)
            or not isinstance(outbox_messages, int)
            or outbox_messages < 0
        ):
            raise ValueError(f"outbox_messages must be an int >= 0, not {outbox_messages!r}")
        if isinstance(outbox_bytes, bool) or not isinstance(outbox_bytes, int) or outbox_bytes < 1:
            raise ValueError(f"outbox_bytes must be an int >= 1, not {outbox_bytes!r}")
        if retry_policy is not None and not callable(retry_policy):
            raise TypeError("retry_policy must be callable or None")
        if include is not None and not callable(include):
            raise TypeError("include must be callable or None")
        pairs = resolve_targets(reactor, target, parameters)
        self._amqp_factory = _RecordingFactory(pairs[0][1], reactor, rpc_timeout=rpc_timeout)
        self._rotating = _RotatingEndpoint(pairs, self._amqp_factory)
        if retry_policy is None:
            retry_policy = _backoff(initial_delay, max_delay, factor, jitter)
        #: The connection now open and recovered, or ``None``.
        self.connection: AMQPProtocol | None = None
        #: What the application declared through the service's channels.
        self.topology = Topology(include)
        #: The outbox, when ``outbox_messages`` > 0.
        self.outbox: Outbox | None = (
            Outbox(outbox_messages, outbox_bytes) if outbox_messages else None
        )
        #: How many times a new connection was recovered.
        self.recoveries = 0
        #: The last recovery failure, until a recovery succeeds.
        self.last_error: BaseException | None = None
        self._channels: dict[int, RecoveringChannel] = {}
        self._listeners: list[Callable[[RecoveryEvent], object]] = []
        self._connected_once = False
        self._stopping = False
        self._stop_timeout = stop_timeout
        self._reactor = reactor
        super().__init__(
            self._rotating,
            self._amqp_factory,
            retryPolicy=retry_policy,
            clock=reactor,
            prepareConnection=self._prepare,
        )

    # -- events ------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """``True`` while a connection is open and everything recorded is recovered."""
        return self.connection is not None and self.connection.is_open

    @property
    def channels(self) -> dict[int, RecoveringChannel]:
        """The service's channels by number (a copy)."""
        return dict(self._channels)

    def add_listener(self, listener: Callable[[RecoveryEvent], object]) -> None:
        """Call ``listener(event)`` for each :mod:`~txamqp091.recovery` event."""
        if not callable(listener):
            raise TypeError("listener must be callable")
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[RecoveryEvent], object]) -> None:
        """Stop calling *listener*."""
        self._listeners.remove(listener)

    def _emit(self, event: RecoveryEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                _log.failure("recovery listener {listener!r} failed", listener=listener)

    # -- channels ------------------------------------------------------------------------

    def channel(self, channel_number: int | None = None) -> Deferred[RecoveringChannel]:
        """Open a channel that is recovered with the connection.

        :returns: a Deferred firing with a
            :class:`~txamqp091.recovering_channel.RecoveringChannel` once a
            connection is up (waiting for one if needed).
        :raises TypeError, ValueError: for a bad channel number, at once.
        """
        if channel_number is not None and (
            isinstance(channel_number, bool) or not isinstance(channel_number, int)
        ):
            raise TypeError(f"channel_number must be an int or None, not {channel_number!r}")
        if channel_number is not None and not 1 <= channel_number <= 65535:
            raise ValueError(f"channel_number must be 1..65535, not {channel_number}")
        return ensureDeferred(self._open_channel(channel_number))

    async def _open_channel(self, channel_number: int | None) -> RecoveringChannel:
        if channel_number is not None and channel_number in self._channels:
            raise ValueError(f"channel {channel_number} is already open on this service")
        connection = await self.whenConnected()
        raw = await connection.channel(channel_number)
        wrapper = RecoveringChannel(self, raw)
        self._channels[raw.channel_number] = wrapper
        return wrapper

    def _forget_channel(self, channel: RecoveringChannel, reason: BaseException) -> None:
        if self._channels.get(channel.channel_number) is channel:
            del self._channels[channel.channel_number]
        if self.outbox is not None:
            self.outbox.fail_channel(channel, reason)

    # -- connections ---------------------------------------------------------------------

    def _prepare(self, proto: IProtocol) -> Deferred[Any]:
        """Wait for the AMQP handshake, recover, and only then accept the connection."""
        gate = self._rotating.gate
        return ensureDeferred(self._recover(proto, gate))

    async def _recover(self, proto: IProtocol, gate: _Gate | None) -> AMQPProtocol:
        amqp: AMQPProtocol = proto  # type: ignore[assignment]
        connection = await _ready(amqp)
        recovering = self._connected_once
        if recovering:
            self._emit(RecoveryStarted(connection))
            try:
                records = await recover(connection, self._channels, self.topology, self._emit)
            except Exception as e:
                error = e if isinstance(e, RecoveryError) else RecoveryError("connection", e)
                if not connection.is_closed:
                    # Everything on it fails now (its channels wait for the next
                    # attempt), and the transport is aborted.
                    connection.fail(error)
                if self._stopping:
                    raise error from e
                self.last_error = error
                _log.warn(
                    "AMQP recovery failed at {entity}: {error!r}; retrying",
                    entity=describe(error.entity),
                    error=error.error,
                )
                self._emit(RecoveryFailed(error.entity, error.error or error))
                raise error from e
        else:
            records = 0
        if gate is not None:
            gate.accepted = True
        self._connected_once = True
        self.connection = connection
        self.last_error = None
        connection.add_on_close_callback(self._closed)
        for wrapper in list(self._channels.values()):
            wrapper._go_live()
        republished = 0
        if self.outbox is not None:
            for entry in list(self.outbox.take_all()):
                republished += 1
                entry.channel._republish(entry)
        if recovering:
            self.recoveries += 1
            _log.info(
                "AMQP connection recovered: {channels} channels, {records} records, "
                "{republished} messages republished",
                channels=len(self._channels),
                records=records,
                republished=republished,
            )
            self._emit(RecoverySucceeded(connection, len(self._channels), records, republished))
        return connection

    def _closed(self, connection: AMQPProtocol, reason: Exception) -> None:
        if self.connection is connection:
            self.connection = None
            if not self._stopping:
                _log.info("AMQP connection lost ({reason!r}); reconnecting", reason=reason)
                self._emit(ConnectionLost(reason))

    def whenConnected(  # type: ignore[override]
        self,
        failAfterFailures: int | None = None,
    ) -> Deferred[AMQPProtocol]:
        """A Deferred firing with an open, recovered connection (now, or once
        there is one).

        :param failAfterFailures: fail after this many failed attempts instead
            of waiting for ever (Twisted's ``ClientService`` semantics).
        """

        def fresh(connection: AMQPProtocol) -> Any:
            if connection.is_open:
                return connection
            # Asked as the connection closes, before ClientService heard of it:
            # once it is closed (ClientService is told right after), ask again.
            return (
                connection.when_closed()
                .addCallback(lambda _: deferLater(self._reactor, 0, lambda: None))
                .addCallback(lambda _: self.whenConnected(failAfterFailures))
            )

        waiting: Deferred[AMQPProtocol] = super().whenConnected(failAfterFailures)  # type: ignore[assignment]
        return waiting.addCallback(fresh)

    def stopService(self) -> Deferred[None]:
        """Stop: cancel consumers, wait for running message handlers (up to
        ``stop_timeout``), close the connection with the AMQP close handshake,
        then stop retrying.  Outbox messages still held fail.

        :returns: a Deferred firing once all that is done.
        """
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        self._stopping = True
        # Channels closed while stopping leave the table; their handlers are
        # still waited for.
        wrappers = list(self._channels.values())
        if self.outbox is not None:
            self.outbox.fail_all(
                ConnectionRecovering("the service stopped before the message could be sent")
            )
        connection = self.connection
        if connection is None or not connection.is_open:
            # Not connected (retrying, or recovering): stop ClientService first, so
            # that no recovery resumes consumers while the handlers are awaited.
            await super().stopService()
        else:
            cancels = []
            for wrapper in wrappers:
                if wrapper.is_closed:
                    continue
                for tag in wrapper.consumer_tags:
                    cancels.append(wrapper.basic_cancel(tag))
            if cancels:
                await DeferredList(cancels, consumeErrors=True)
        waits = [d for wrapper in wrappers for d in wrapper._handler_waits()]
        if waits:
            # Cancelling the list at the deadline cancels each wait (a handler
            # ending later is then ignored); the errors are consumed.
            all_done = DeferredList(waits, consumeErrors=True)
            deadline = self._reactor.callLater(self._stop_timeout, all_done.cancel)
            await all_done
            if deadline.active():
                deadline.cancel()
            else:
                _log.warn(
                    "message handlers still running after {timeout} s; closing anyway",
                    timeout=self._stop_timeout,
                )
        connection = self.connection
        if connection is not None and connection.is_open:
            await connection.close()
        await super().stopService()
        for wrapper in list(self._channels.values()):
            wrapper._close_for_good(ConnectionClosedByClient(200, "the service stopped"))
        self._stopping = False

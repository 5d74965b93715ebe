"""One relay link: consume from a source queue, publish to a destination, at least once.

A :class:`RelayLink` owns two :class:`~txamqp091.service.AMQPClientService` objects,
one per side, so each side reconnects with backoff and recovers its channel, QoS,
confirm mode and consumer on its own.  With ``ack-mode on-confirm`` a source delivery
is acknowledged only after the destination confirmed its copy; a destination nack or
return is never acknowledged (``on-reject`` says what happens to it); a publish cut off
by a destination outage waits in the destination service's outbox (at most
``prefetch`` messages) and is published again after recovery.  While the destination
is down the link stops consuming, so nothing spins.

Deliveries received on a source connection that was lost cannot be acknowledged any
more: the broker delivers them again, so the destination may see a message twice
(``redelivered`` counts them), never zero times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredList, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from txamqp091 import spec
from txamqp091.exceptions import (
    AMQPConnectionError,
    AMQPError,
    AMQPTimeoutError,
    ConsumerCancelled,
    NackError,
    UnroutableError,
)
from txamqp091.protocol import AMQPProtocol
from txamqp091.recovering_channel import RecoveringChannel
from txamqp091.recovery import (
    ConnectionLost,
    ConsumerCancelledByBroker,
    RecoveryEvent,
    RecoverySucceeded,
)
from txamqp091.relay.acks import AckWindow
from txamqp091.relay.config import LinkConfig
from txamqp091.service import AMQPClientService

__all__ = ["FORWARD_HEADER", "STATES", "LinkCounters", "LinkStateError", "RelayLink"]

_log = Logger()

#: Every state a link reports (``/healthz``, the ``link_state`` metric, the logs).
STATES = (
    "stopped",
    "starting",
    "running",
    "paused",
    "source-down",
    "dest-down",
    "dest-blocked",
    "stalled",
    "failed",
    "stopping",
)

#: The header ``--add-forward-headers`` appends to (a list, one table per hop).
FORWARD_HEADER = "x-relayed-by"

#: Seconds a stop may take beyond the shutdown timeout (for the close handshakes)
#: before the link drops its connections.
CLOSE_GRACE = 5.0

#: Seconds a message the destination refused (``on-reject requeue``) is held before it
#: is given back to the source queue; the acknowledgements of newer deliveries wait.
REQUEUE_DELAY = 1.0

#: The destination outbox's byte bound (its message bound is the prefetch).
OUTBOX_BYTES = 256 * 1024 * 1024


class LinkStateError(Exception):
    """The link cannot do that in its present state (pause a stopped link, say)."""


@dataclass
class LinkCounters:
    """What a link has done since the relay started (across restarts)."""

    consumed: int = 0
    published: int = 0
    confirmed: int = 0
    acked: int = 0
    nacked: int = 0
    returned: int = 0
    redelivered: int = 0
    requeued: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    #: Acknowledgements and rejections not sent: the delivery came on a source
    #: connection since lost (the broker delivers it again).
    stale_acks: int = 0
    stalls: int = 0
    restarts: int = 0
    reconnects: dict[str, int] = field(default_factory=lambda: {"source": 0, "dest": 0})


class RelayLink(Service):
    """A link of the relay (a Twisted service; start it, or add it to a parent).

    :param config: the link's settings.
    :param reactor: the reactor (TCP, TLS and time).
    :param shutdown_timeout: how long stopping waits for in-flight confirms.
    :param retry_delays: seconds to wait before restarting a failed link, growing
        along this tuple and staying at its last value.
    :param make_service: builds each side's service, called as
        ``make_service(side, targets, **settings)`` with ``side`` ``"source"`` or
        ``"dest"``, the side's URLs and the service settings the link needs; the
        default builds an :class:`~txamqp091.service.AMQPClientService` on *reactor*
        (tests pass one that connects elsewhere).
    """

    def __init__(
        self,
        config: LinkConfig,
        reactor: Any,
        shutdown_timeout: float = 30.0,
        retry_delays: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0),
        make_service: Callable[..., AMQPClientService] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.counters = LinkCounters()
        #: Published and not yet confirmed (on-confirm mode).
        self.in_flight = 0
        self._reactor = reactor
        self._shutdown_timeout = shutdown_timeout
        self._retry_delays = retry_delays
        self._make_service = make_service or self._default_service
        self._failures = 0
        self._phase = "stopped"
        self._paused = False
        #: Consuming held while the destination cannot take more (no-confirm modes).
        self._held = False
        self._source_up = False
        self._dest_up = False
        self._reported = "stopped"
        self._source: AMQPClientService | None = None
        self._dest: AMQPClientService | None = None
        self._source_channel: RecoveringChannel | None = None
        self._dest_channel: RecoveringChannel | None = None
        self._consumer_tag: str | None = None
        #: The source deliveries awaiting their confirm (on-confirm mode).
        self._acks: AckWindow | None = None
        self._syncing = False
        self._resync = False
        self._sync_waiters: list[Deferred[None]] = []
        self._task: Deferred[None] | None = None
        self._retry: IDelayedCall | None = None
        self._watchdog: LoopingCall | None = None
        self._last_progress = 0.0
        self._backlog_since: float | None = None
        self._draining: set[Deferred[None]] = set()
        #: Refused messages held before they are requeued.
        self._requeues: dict[IDelayedCall, Callable[[], None]] = {}
        #: Messages waiting at the source when the watchdog last looked (or ``None``).
        self.source_depth: int | None = None

    # -- state -------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """The link's state, one of :data:`STATES`."""
        if self._phase != "running":
            return self._phase
        if not self._source_up:
            return "source-down"
        if not self._dest_up:
            return "dest-down"
        if self._held or self._dest_blocked():
            return "dest-blocked"
        if self._paused:
            return "paused"
        # Running once the broker accepted the consumer (a missing source queue is
        # not healthy for a moment before failing).
        return "running" if self._consumer_tag is not None else "starting"

    def _set(self, phase: str | None = None, **why: Any) -> None:
        """Change the phase (if given) and log the reported state if it changed."""
        if phase is not None:
            self._phase = phase
        state = self.state
        if state != self._reported:
            old, self._reported = self._reported, state
            _log.info(
                "relay link {link}: {old} -> {new}",
                link=self.name,
                old=old,
                new=state,
                relay_event="state",
                **why,
            )

    def describe(self) -> dict[str, Any]:
        """The link's state and counters, as ``/healthz`` shows them."""
        return {
            "state": self.state,
            "source_queue": self.config.source_queue,
            "dest_exchange": self.config.dest_exchange,
            "ack_mode": self.config.ack_mode,
            "in_flight": self.in_flight,
            "source_depth": self.source_depth,
            **asdict(self.counters),
        }

    # -- service -----------------------------------------------------------------------

    def startService(self) -> None:
        """Connect both sides and start relaying."""
        super().startService()  # type: ignore[no-untyped-call]
        self._begin(self._start_sides())

    def stopService(self) -> Deferred[None]:
        """Stop consuming, wait up to the shutdown timeout for in-flight confirms,
        acknowledge what was confirmed, and close both sides."""
        super().stopService()  # type: ignore[no-untyped-call]
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        self._set("stopping")
        self._cancel_timers()
        if self._task is not None and not self._task.called:
            self._task.cancel()
        await self._stop_sides()
        while self._draining:  # sides a cancelled restart was stopping
            await DeferredList(list(self._draining))
        self._set("stopped")

    def pause(self) -> Deferred[None]:
        """Stop consuming (in-flight messages are still confirmed and acknowledged).

        :raises LinkStateError: if the link is stopped or stopping.
        """
        self._check_alive("pause")
        self._paused = True
        _log.info("relay link {link} paused", link=self.name, relay_event="pause")
        self._set()
        return self._sync_consumer()

    def resume(self) -> Deferred[None]:
        """Consume again after :meth:`pause`."""
        self._check_alive("resume")
        self._paused = False
        _log.info("relay link {link} resumed", link=self.name, relay_event="resume")
        self._set()
        return self._sync_consumer()

    def restart(self) -> Deferred[None]:
        """Close both sides (as a stop does) and connect them again; a paused link
        stays paused."""
        self._check_alive("restart")
        self.counters.restarts += 1
        return self._begin(self._restart(why="asked over HTTP or by the application"))

    def _check_alive(self, action: str) -> None:
        if not self.running or self._phase in ("stopping", "stopped"):
            raise LinkStateError(f"cannot {action} link {self.name!r}: it is {self.state}")

    def _begin(self, work: Any) -> Deferred[None]:
        """Run *work* (a coroutine) as the link's one start or restart task."""
        if self._task is not None and not self._task.called:
            self._task.cancel()
        task: Deferred[None] = ensureDeferred(work)
        self._task = task
        done: Deferred[None] = Deferred()

        def finished(result: object) -> None:
            if isinstance(result, Failure) and not result.check(CancelledError):  # type: ignore[no-untyped-call]
                self._fail(result.value or Exception("unknown failure"))
            done.callback(None)

        task.addBoth(finished)
        return done

    async def _restart(self, phase: str = "starting", why: str = "asked") -> None:
        """Stop both sides and start them again, reporting *phase* until running."""
        _log.info(
            "relay link {link} restarting ({why})", link=self.name, why=why, relay_event="restart"
        )
        self._cancel_timers()
        self._set(phase)
        await self._stop_sides()
        await self._start_sides(phase)

    async def _start_sides(self, phase: str = "starting") -> None:
        config = self.config
        self._set(phase)
        confirming = config.ack_mode == "on-confirm"
        source = self._make_service("source", config.sources, stop_timeout=self._shutdown_timeout)
        dest = self._make_service(
            "dest",
            config.dests,
            outbox_messages=config.prefetch if confirming else 0,
            outbox_bytes=OUTBOX_BYTES,
        )
        self._source, self._dest = source, dest
        source.add_listener(self._listener("source", source))
        dest.add_listener(self._listener("dest", dest))
        source.startService()
        dest.startService()
        dest_channel = await dest.channel()
        if confirming:
            await dest_channel.confirm_delivery()
        dest_channel.add_on_return_callback(self._returned)
        dest_channel.add_on_close_callback(self._channel_closed)
        self._dest_channel = dest_channel
        self._dest_up = True
        if dest.connection is not None:
            self._watch_blocked(dest.connection)
        source_channel = await source.channel()
        await source_channel.basic_qos(prefetch_count=config.prefetch)
        source_channel.add_on_close_callback(self._channel_closed)
        self._source_channel = source_channel
        self._source_up = True
        self._consumer_tag = None
        self._last_progress = self._reactor.seconds()
        self._backlog_since = None
        self._set("running")
        await self._sync_consumer()
        if self._phase != "running":
            return  # failed while starting the consumer
        if config.stall_timeout > 0:
            self._watchdog = LoopingCall(self._check_stall)
            self._watchdog.clock = self._reactor
            interval = max(0.5, config.stall_timeout / 4)
            self._watchdog.start(interval, now=False).addErrback(
                lambda f: _log.failure("relay link {link}: watchdog", f, link=self.name)
            )

    def _default_service(
        self, side: str, targets: tuple[str, ...], **settings: Any
    ) -> AMQPClientService:
        return AMQPClientService(self._reactor, list(targets), **settings)

    def _stop_sides(self) -> Deferred[None]:
        """Stop both services: the source first (it cancels the consumer and waits for
        the handlers, that is the in-flight confirms and their acks), then the
        destination (its outbox, if anything is left in it, fails: those deliveries
        are not acknowledged and the broker delivers them again).

        Cancelling the Deferred returned only stops waiting: the services go on
        stopping (a restart asked during a restart does not leave one running), and
        :meth:`stopService` waits for every such stop.
        """
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        self._watchdog = None
        source, dest = self._source, self._dest
        self._source = self._dest = None
        self._source_channel = self._dest_channel = None
        self._consumer_tag = None
        self._source_up = self._dest_up = False
        # Held refusals are given back now: after their nacks, the confirmed
        # deliveries behind them are acknowledged before the source closes.
        for call, now in list(self._requeues.items()):
            call.cancel()
            now()
        self._acks = None
        stopping = ensureDeferred(self._stop_services(source, dest))
        self._draining.add(stopping)
        wait: Deferred[None] = Deferred()

        def stopped(_: object) -> None:
            self._draining.discard(stopping)
            if not wait.called:
                wait.callback(None)

        stopping.addBoth(stopped)
        return wait

    async def _stop_services(self, *sides: AMQPClientService | None) -> None:
        # A side that does not answer its close (a silent broker) would hold the stop
        # for the close timeout: past the shutdown timeout and a grace, it is dropped.
        deadline = self._reactor.callLater(
            self._shutdown_timeout + CLOSE_GRACE, self._drop_connections, sides
        )
        try:
            for side in sides:
                if side is not None and side.running:
                    try:
                        await side.stopService()
                    except Exception as e:
                        _log.warn(
                            "relay link {link}: stopping: {error!r}", link=self.name, error=e
                        )
        finally:
            if deadline.active():
                deadline.cancel()

    def _drop_connections(self, sides: tuple[AMQPClientService | None, ...]) -> None:
        _log.warn(
            "relay link {link}: still stopping {seconds} s after it began; dropping its "
            "connections",
            link=self.name,
            seconds=self._shutdown_timeout + CLOSE_GRACE,
        )
        reason = AMQPTimeoutError("the relay's shutdown timeout passed during the stop")
        for side in sides:
            if side is None:
                continue
            if side.outbox is not None:
                # Publishes waiting for a destination that is down end now, and so
                # do the source's waits for them (not acknowledged: redelivered).
                side.outbox.fail_all(reason)
            connection = side.connection
            if connection is not None and not connection.is_closed:
                connection.fail(reason)

    def _cancel_timers(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def _fail(self, error: BaseException) -> None:
        """Something the services do not recover from: restart the link later."""
        if not self.running or self._phase in ("stopping", "stopped"):
            return
        if self._phase == "failed" and self._retry is not None and self._retry.active():
            return  # one failure seen twice (a refused consume also closes the channel)
        delay = self._retry_delays[min(self._failures, len(self._retry_delays) - 1)]
        self._failures += 1
        _log.error(
            "relay link {link} failed: {error}; restarting in {delay} s",
            link=self.name,
            error=error,
            delay=delay,
            relay_event="failed",
        )
        self._set("failed")
        self._cancel_timers()
        self._retry = self._reactor.callLater(delay, self._retry_now)
        self._sync_consumer()  # stop consuming until the restart

    def _retry_now(self) -> None:
        self._retry = None
        self.counters.restarts += 1
        self._begin(self._restart(why="after a failure"))

    # -- events from the two services ---------------------------------------------------

    def _listener(self, side: str, service: AMQPClientService) -> Callable[[RecoveryEvent], None]:
        def heard(event: RecoveryEvent) -> None:
            if service is not (self._source if side == "source" else self._dest):
                return  # a service from before a restart
            if isinstance(event, ConnectionLost):
                _log.warn(
                    "relay link {link}: {side} connection lost: {reason!r}",
                    link=self.name,
                    side=side,
                    reason=event.reason,
                    relay_event="connection-lost",
                )
                self._side_up(side, False)
                if side == "source" and self._acks is not None:
                    self._acks.forget()
            elif isinstance(event, RecoverySucceeded):
                self.counters.reconnects[side] += 1
                if side == "dest":
                    self._watch_blocked(event.connection)
                _log.info(
                    "relay link {link}: {side} reconnected",
                    link=self.name,
                    side=side,
                    relay_event="reconnected",
                )
                self._side_up(side, True)
            elif isinstance(event, ConsumerCancelledByBroker) and side == "source":
                self._consumer_tag = None
                self._fail(
                    ConsumerCancelled(f"the broker cancelled the consumer of {event.queue}")
                )

        return heard

    def _side_up(self, side: str, up: bool) -> None:
        if side == "source":
            self._source_up = up
        else:
            self._dest_up = up
        self._set()
        self._sync_consumer()

    def _channel_closed(self, channel: RecoveringChannel, reason: Exception) -> None:
        if channel is self._source_channel or channel is self._dest_channel:
            self._fail(reason)

    # -- consuming ---------------------------------------------------------------------

    def _sync_consumer(self) -> Deferred[None]:
        """Start or cancel the source consumer to match the state (one at a time).

        A failure (the source queue is missing, say) fails the link, which is
        restarted later; the Deferred fires in any case.
        """
        if self._syncing:
            # The running sync goes round once more; answer when it is done.
            self._resync = True
            waiter: Deferred[None] = Deferred()
            self._sync_waiters.append(waiter)
            return waiter

        def failed(failure: Failure) -> None:
            if not failure.check(CancelledError):  # type: ignore[no-untyped-call]
                self._fail(failure.value or Exception("unknown failure"))

        def done(_: object) -> None:
            waiters, self._sync_waiters = self._sync_waiters, []
            for waiter in waiters:
                waiter.callback(None)

        return ensureDeferred(self._sync()).addErrback(failed).addBoth(done)

    async def _sync(self) -> None:
        self._syncing = True
        try:
            while True:
                self._resync = False
                channel = self._source_channel
                want = (
                    self._phase == "running"
                    and self._dest_up
                    and not self._held
                    and not self._paused
                    and channel is not None
                )
                if (
                    want
                    and self._consumer_tag is None
                    and self._source_up  # else: when the source is back
                    and channel is not None
                ):
                    try:
                        self._consumer_tag = await channel.basic_consume(
                            self.config.source_queue,
                            self._on_message,
                            auto_ack=self.config.ack_mode == "no-ack",
                        )
                    except AMQPConnectionError:
                        pass  # the source went away: its RecoverySucceeded syncs again
                elif not want and self._consumer_tag is not None and channel is not None:
                    tag, self._consumer_tag = self._consumer_tag, None
                    if not channel.is_closed:
                        try:
                            await channel.basic_cancel(tag)
                        except AMQPConnectionError:
                            # The source went away before the CancelOk: forget the
                            # consumer (nothing is sent while the channel recovers),
                            # or the recovery would start it again.
                            if not channel.is_closed:
                                channel.basic_cancel(tag)
                self._set()  # "running" once the consumer is on
                if not self._resync:
                    break
        finally:
            self._syncing = False

    def _on_message(
        self,
        channel: RecoveringChannel,
        method: spec.Method,
        properties: spec.BasicProperties,
        body: bytes,
    ) -> Deferred[None] | None:
        deliver: Any = method
        counters = self.counters
        counters.consumed += 1
        self._last_progress = self._reactor.seconds()
        if deliver.redelivered:
            counters.redelivered += 1
        tag: int = deliver.delivery_tag
        config = self.config
        if config.add_forward_headers:
            headers = dict(properties.headers or {})
            hops = headers.get(FORWARD_HEADER)
            hops = list(hops) if isinstance(hops, list) else []
            hops.append(
                {
                    "link": self.name,
                    "source-queue": config.source_queue,
                    "dest-exchange": config.dest_exchange,
                    "relayed-at": int(self._reactor.seconds()),
                }
            )
            headers[FORWARD_HEADER] = hops
            properties.headers = headers
        routing_key = config.dest_routing_key
        if routing_key is None:
            routing_key = deliver.routing_key
        dest = self._dest_channel
        try:
            if dest is None:
                raise LinkStateError("the destination channel is gone")
            published = dest.basic_publish(
                config.dest_exchange, routing_key, body, properties, mandatory=True
            )
        except Exception as e:
            if config.ack_mode == "no-ack":
                counters.dropped += 1
                _log.warn(
                    "relay link {link}: a message was lost (no-ack mode): {error!r}",
                    link=self.name,
                    error=e,
                )
            else:
                self._settle(channel, tag, "requeue")
            return None
        counters.published += 1
        if config.ack_mode != "on-confirm":
            self._failures = 0
            if config.ack_mode == "on-publish":
                self._ack(channel, tag)
            self._check_writable()
            return None
        self.in_flight += 1
        window = self._acks
        if window is None or window.channel is not channel:
            window = self._acks = AckWindow(channel, self.counters)
        window.add(tag)
        return published.addBoth(self._confirmed, window, tag)

    def _confirmed(self, result: object, window: AckWindow, tag: int) -> None:
        self.in_flight -= 1
        counters = self.counters
        if not isinstance(result, Failure):
            counters.confirmed += 1
            self._failures = 0  # a link that moves messages backs off from scratch
            self._last_progress = self._reactor.seconds()
            window.confirmed(tag)
            return
        error = result.value
        if isinstance(error, UnroutableError | NackError):
            if isinstance(error, UnroutableError):
                counters.returned += 1
            else:
                counters.nacked += 1
            if self.config.on_reject == "requeue":
                # Held a moment first: a message the destination will never take
                # would otherwise come back at once, again and again.
                self._requeue_later(window, tag)
                return
            self._give_back(window, tag, self.config.on_reject)
        else:
            # Not confirmed: the destination went away and the outbox could not keep
            # it, or the link is stopping. The source delivers it again.
            self._give_back(window, tag, "requeue")

    def _give_back(self, window: AckWindow, tag: int, action: str) -> None:
        self._settle(window.channel, tag, action)
        # Only now: a multiple ack of the newer ones sent before the nack would
        # acknowledge this one too.
        window.settled(tag)

    def _requeue_later(self, window: AckWindow, tag: int) -> None:
        if self._phase in ("stopping", "stopped") or window is not self._acks:
            self._give_back(window, tag, "requeue")  # no time to hold it
            return

        def now() -> None:
            del self._requeues[call]
            self._give_back(window, tag, "requeue")

        call = self._reactor.callLater(REQUEUE_DELAY, now)
        self._requeues[call] = now

    def _dest_blocked(self) -> bool:
        dest = self._dest
        connection = dest.connection if dest is not None else None
        return connection is not None and connection.blocked

    def _watch_blocked(self, connection: AMQPProtocol) -> None:
        """Report the destination's Connection.Blocked and Unblocked as state changes."""
        connection.add_on_connection_blocked_callback(lambda *_: self._set())
        connection.add_on_connection_unblocked_callback(lambda *_: self._set())

    def _check_writable(self) -> None:
        """Without confirms nothing bounds what is consumed but not yet sent: while
        the destination is blocked (a broker alarm) or cannot take the bytes, stop
        consuming ("dest-blocked")."""
        dest = self._dest
        connection = dest.connection if dest is not None else None
        if self._held or connection is None or connection.writable:
            return
        self._held = True
        self._set()
        self._sync_consumer()

        def writable_again(_: object) -> None:
            self._held = False
            self._set()
            self._sync_consumer()

        connection.when_writable().addBoth(writable_again)

    def _returned(self, *_: object) -> None:
        if self.config.ack_mode != "on-confirm":
            self.counters.returned += 1  # in on-confirm mode the confirm reports it

    def _ack(self, channel: RecoveringChannel, tag: int) -> None:
        self._last_progress = self._reactor.seconds()
        try:
            sent = channel.basic_ack(tag)
        except AMQPError:
            sent = False
        if sent:
            self.counters.acked += 1
        else:
            self.counters.stale_acks += 1

    def _settle(self, channel: RecoveringChannel, tag: int, action: str) -> None:
        """Give a delivery back to the source without acknowledging it."""
        counters = self.counters
        try:
            if action == "requeue":
                sent = channel.basic_nack(tag, requeue=True)
            elif action == "drop":
                sent = channel.basic_nack(tag, requeue=False)
            else:
                sent = channel.basic_reject(tag, requeue=False)
        except AMQPError:
            sent = False  # the channel is gone
        if not sent:
            # From a lost connection: the broker delivers it again anyway.
            counters.stale_acks += 1
        elif action == "requeue":
            counters.requeued += 1
        elif action == "drop":
            counters.dropped += 1
        else:
            counters.dead_lettered += 1

    # -- the watchdog ------------------------------------------------------------------

    def _check_stall(self) -> Deferred[None]:
        return ensureDeferred(self._look())

    async def _look(self) -> None:
        """Restart the link if messages wait at the source and none moved for
        ``stall-timeout`` seconds."""
        now = self._reactor.seconds()
        source = self._source
        # A blocked destination ("dest-blocked", a broker alarm) is not a stall: a
        # restart would not help.
        if self.state != "running" or source is None or source.connection is None:
            self._backlog_since = None
            return
        depth = await self._source_depth(source)
        self.source_depth = depth
        if not depth:
            self._backlog_since = None
            return
        if self._backlog_since is None or self._last_progress > self._backlog_since:
            self._backlog_since = now
            return
        if now - self._backlog_since < self.config.stall_timeout or self.state != "running":
            return
        self.counters.stalls += 1
        _log.warn(
            "relay link {link} stalled: {depth} messages waiting, none moved for {seconds} s",
            link=self.name,
            depth=depth,
            seconds=round(now - self._backlog_since, 1),
            relay_event="stalled",
        )
        self.counters.restarts += 1
        self._begin(self._restart("stalled", why="stalled"))  # "stalled" until running again

    async def _source_depth(self, source: AMQPClientService) -> int | None:
        """The source queue's ready messages, asked on a channel of its own."""
        connection = source.connection
        if connection is None or not connection.is_open:
            return None
        try:
            channel = await connection.channel()
            frame = await channel.queue_declare(self.config.source_queue, passive=True)
            await channel.close()
        except AMQPError:
            return None
        method: Any = frame.method
        count: int = method.message_count
        return count

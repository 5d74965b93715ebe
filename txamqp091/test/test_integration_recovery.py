"""AMQPClientService recovery against the real broker, with faults injected on the wire.

The services here talk to RabbitMQ, most of them through a
:class:`~txamqp091.testing.FaultProxy`, while a test resets (RST) or closes (FIN) their
connections, blackholes the link until heartbeats notice, delays it, or has the broker
force a close (``rabbitmqctl close_connection``).  The tests check what an application
relies on:

* a confirmed publisher and a consumer move 20,000 messages through a dozen faults of
  every kind, and every confirmed message is consumed (at least once, with a bounded
  number of duplicates), with the broker showing the same consumers afterwards;
* a blackholed link is noticed by heartbeats and recovered;
* an ack of a delivery from an earlier connection is dropped, not sent (no channel error);
* a consumer the broker cancels (its queue deleted) is resumed on the re-declared queue;
* a server-named exclusive queue comes back under a new name with its binding;
* a recovery the broker refuses is reported, and the next attempt succeeds once the
  conflict is gone.

Waits are for events (recovery events, deliveries, confirms) with a timeout, or bounded
polls of a condition; nothing sleeps to synchronise.  Every test stops its services and
proxies and deletes what it declared.
"""

# trial's assertion methods carry no annotations.
# mypy: allow-untyped-calls

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, TimeoutError, ensureDeferred
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from txamqp091 import ConnectionParameters, URLParameters, spec
from txamqp091.exceptions import (
    AMQPConnectionError,
    AMQPHeartbeatTimeout,
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    ConnectionRecovering,
    RecoveryError,
    UnconfirmedPublishError,
)
from txamqp091.protocol import AMQPProtocol
from txamqp091.recovering_channel import RecoveringChannel
from txamqp091.recovery import (
    ConnectionLost,
    ConsumerCancelledByBroker,
    QueueRenamed,
    RecoveryEvent,
    RecoveryFailed,
    RecoverySucceeded,
)
from txamqp091.service import AMQPClientService
from txamqp091.test.broker import amqp_url, broker_address, ensure_broker
from txamqp091.test.integration import (
    IntegrationTestCase,
    async_test,
    reactor,
    unique_name,
    wait_for,
)
from txamqp091.test.test_integration_connection import rabbitmqctl
from txamqp091.testing import FaultProxy
from txamqp091.topology import QueueRecord

#: Seconds allowed for one awaited event unless a test says otherwise.
WAIT = 10.0

#: Seconds allowed for a service to notice a fault and recover from it.
RECOVERY_WAIT = 20.0

#: Seconds between two checks of a polled condition.
POLL = 0.05

E = TypeVar("E")


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``condition()`` is true, checking every :data:`POLL` seconds.

    :raises AssertionError: naming ``what`` if it is still false after ``timeout`` s.
    """
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await deferLater(reactor, POLL, lambda: None)


class Signal:
    """Something changed: wakes up every coroutine waiting on :meth:`wait`."""

    def __init__(self) -> None:
        self._waiting: list[Deferred[None]] = []

    def wait(self) -> Deferred[None]:
        """A Deferred firing at the next :meth:`fire` (cancellable)."""

        def cancel(d: Deferred[None]) -> None:
            if d in self._waiting:
                self._waiting.remove(d)

        d: Deferred[None] = Deferred(cancel)
        self._waiting.append(d)
        return d

    def fire(self) -> None:
        """Wake up the waiters."""
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)


async def when(signal: Signal, condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``condition()`` is true, checking it each time ``signal`` fires.

    :raises AssertionError: naming ``what`` if it is still false after ``timeout`` s.
    """
    deadline = reactor.seconds() + timeout
    while not condition():
        left = deadline - reactor.seconds()
        try:
            if left <= 0:
                raise TimeoutError()
            await wait_for(signal.wait(), left)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


class EventLog:
    """Every recovery event a service emits, with waits for the n-th of a kind."""

    def __init__(self, service: AMQPClientService) -> None:
        self.events: list[RecoveryEvent] = []
        self._changed = Signal()
        service.add_listener(self._heard)

    def _heard(self, event: RecoveryEvent) -> None:
        self.events.append(event)
        self._changed.fire()

    def of(self, kind: type[E]) -> list[E]:
        """The events of one kind, oldest first."""
        return [event for event in self.events if isinstance(event, kind)]

    def count(self, kind: type[Any]) -> int:
        """How many events of ``kind`` were emitted."""
        return len(self.of(kind))

    def mark(self) -> int:
        """A position in the log: events after it are those emitted from now on."""
        return len(self.events)

    def since(self, mark: int, kind: type[E]) -> list[E]:
        """The events of ``kind`` emitted after ``mark``."""
        return [event for event in self.events[mark:] if isinstance(event, kind)]

    async def first(self, kind: type[E], since: int, timeout: float = WAIT) -> E:
        """Wait (at most ``timeout`` s) for the first event of ``kind`` emitted after
        the mark ``since`` (see :meth:`mark`) and return it."""
        deadline = reactor.seconds() + timeout
        while True:
            found = self.since(since, kind)
            if found:
                return found[0]
            left = deadline - reactor.seconds()
            if left > 0:
                try:
                    await wait_for(self._changed.wait(), left)
                    continue
                except TimeoutError:
                    pass
            raise AssertionError(
                f"timed out after {timeout} s waiting for {kind.__name__}; "
                f"the last events: {self.events[-8:]!r}"
            )


def service_parameters(port: int | None = None, **kw: Any) -> ConnectionParameters:
    """Parameters for the broker under test, or for a proxy on 127.0.0.1:``port``."""
    base = URLParameters(amqp_url())
    host, broker_port = broker_address()
    return ConnectionParameters(
        host="127.0.0.1" if port is not None else host,
        port=port if port is not None else broker_port,
        credentials=base.credentials,
        virtual_host=base.virtual_host,
        **kw,
    )


async def broker_pid(connection_name: str) -> str:
    """The pid of the one connection the broker lists with ``connection_name`` (waiting,
    up to :data:`WAIT` s, until there is exactly one: an old one may still be closing)."""
    needle = '{"connection_name","' + connection_name + '"}'
    deadline = reactor.seconds() + WAIT
    while True:
        out = await rabbitmqctl(
            "list_connections", "pid", "client_properties", "--no-table-headers"
        )
        pids = [
            line.split("\t", 1)[0]
            for line in out.splitlines()
            if "\t" in line and needle in line.split("\t", 1)[1]
        ]
        if len(pids) == 1:
            return pids[0]
        if reactor.seconds() > deadline:
            raise AssertionError(f"the broker lists {pids!r} for connection {connection_name!r}")
        await deferLater(reactor, POLL, lambda: None)


async def consumer_count(conn: AMQPProtocol, queue: str) -> int | None:
    """The broker's consumer count of ``queue`` (passive declare on a channel of its
    own), or ``None`` if the queue does not exist."""
    channel = await conn.channel()
    try:
        ok: Any = await channel.queue_declare(queue, passive=True)
    except ChannelClosedByBroker as e:
        if e.reply_code == 404:
            return None
        raise
    await channel.close()
    count: int = ok.method.consumer_count
    return count


async def message_count(conn: AMQPProtocol, queue: str) -> int:
    """The broker's count of ready messages in ``queue``."""
    channel = await conn.channel()
    ok: Any = await channel.queue_declare(queue, passive=True)
    await channel.close()
    count: int = ok.method.message_count
    return count


Delivery = tuple[Any, spec.BasicProperties, bytes]


class RecoveryTestCase(IntegrationTestCase):
    """Starts services and proxies that are stopped when the test ends."""

    timeout = 60

    async def proxy(self) -> FaultProxy:
        """A started FaultProxy to the broker, stopped at cleanup (after the services,
        which are started later; it forwards again before they stop)."""
        ensure_broker()
        host, port = broker_address()
        proxy = FaultProxy(reactor, host, port)
        await proxy.start()
        self.addCleanup(proxy.stop)
        self.__dict__.setdefault("_proxies", []).append(proxy)
        return proxy

    def service(self, params: ConnectionParameters, **kw: Any) -> AMQPClientService:
        """A started service with short retry delays, stopped at cleanup."""
        ensure_broker()
        settings: dict[str, Any] = {"initial_delay": 0.1, "max_delay": 0.5, "jitter": 0.05}
        settings.update(kw)
        service = AMQPClientService(reactor, params, **settings)
        service.startService()
        self.addCleanup(self._stop_service, service)
        return service

    def _stop_service(self, service: AMQPClientService) -> Deferred[None] | None:
        """Stop ``service`` unless the test did; a test that failed in the middle of a
        fault leaves its proxy forwarding again, so that the close handshake works."""
        for proxy in self.__dict__.get("_proxies", []):
            if proxy.listening and proxy.mode != "forward":
                proxy.set_mode("forward")
        if not service.running:
            return None
        return service.stopService()

    @staticmethod
    def deliveries(into: list[Delivery], signal: Signal, *, ack: bool) -> Callable[..., None]:
        """A consumer callback that appends each delivery to ``into`` (acking it if
        ``ack``) and fires ``signal``."""

        def on_message(
            channel: RecoveringChannel, method: Any, properties: Any, body: bytes
        ) -> None:
            into.append((method, properties, body))
            if ack:
                channel.basic_ack(method.delivery_tag)
            signal.fire()

        return on_message

    async def received(
        self, into: list[Delivery], signal: Signal, body: bytes, timeout: float = WAIT
    ) -> Delivery:
        """Wait for a delivery of ``body`` in ``into``; return the latest one."""
        await when(
            signal, lambda: any(d[2] == body for d in into), timeout, f"a delivery of {body!r}"
        )
        return [d for d in into if d[2] == body][-1]


# ---------------------------------------------------------------------------------------
# 20,000 messages through a dozen faults
# ---------------------------------------------------------------------------------------


def _body(ident: int) -> bytes:
    return b"message %d" % ident


class Traffic:
    """A confirmed publisher with a bounded window and a manual-ack consumer, keeping
    track of every message id.

    :param total: how many messages (ids ``0 .. total-1``) to publish.
    :param window: at most this many publishes unconfirmed at once.
    :param queue: the queue they go to (through the default exchange).
    """

    def __init__(self, total: int, window: int, queue: str) -> None:
        self.total = total
        self.window = window
        self.queue = queue
        #: The next new id to publish.
        self.next_id = 0
        self._limit = total
        #: Ids to publish again (their publish failed with UnconfirmedPublishError).
        self.retry: deque[int] = deque()
        self.in_flight = 0
        self.confirmed: set[int] = set()
        self.confirms = 0
        self.republished = 0
        self.recovering = 0
        #: Anything unexpected the callbacks saw (they must not raise).
        self.problems: list[str] = []
        self.received: Counter[int] = Counter()
        self.deliveries = 0
        self.redelivered = 0
        self.stale_acks = 0
        self.changed = Signal()

    # -- publisher ----------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """Ids below this may be published (the fault loop moves it)."""
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = value
        self.changed.fire()

    async def publish_all(self, service: AMQPClientService, channel: RecoveringChannel) -> None:
        """Publish every id until each one is confirmed; wait for the service when it
        recovers; publish again what a fault cut off."""
        while len(self.confirmed) < self.total:
            if self.problems:
                raise AssertionError(f"publisher problems: {self.problems[:5]}")
            if self.in_flight >= self.window or not (
                self.retry or self.next_id < min(self.limit, self.total)
            ):
                await wait_for(self.changed.wait(), 30)
                continue
            if self.retry:
                ident = self.retry.popleft()
            else:
                ident = self.next_id
                self.next_id += 1
            properties = spec.BasicProperties(message_id=str(ident))
            try:
                d = channel.basic_publish("", self.queue, _body(ident), properties)
            except ConnectionRecovering:
                self.retry.appendleft(ident)
                self.recovering += 1
                await wait_for(service.whenConnected(), RECOVERY_WAIT)
                continue
            self.in_flight += 1
            d.addCallbacks(
                self._confirmed,
                self._unconfirmed,
                callbackArgs=(ident,),
                errbackArgs=(ident,),
            )

    def _confirmed(self, result: object, ident: int) -> None:
        self.in_flight -= 1
        self.confirms += 1
        if not isinstance(result, spec.Basic.Ack):
            # Outside confirm mode (not restored?) the publish "succeeds" at once.
            self.problems.append(f"id {ident}: publish settled with {result!r}, not an ack")
        if ident in self.confirmed:
            self.problems.append(f"id {ident} confirmed twice")
        self.confirmed.add(ident)
        self.changed.fire()

    def _unconfirmed(self, failure: Failure, ident: int) -> None:
        self.in_flight -= 1
        error = failure.value
        if isinstance(error, UnconfirmedPublishError):
            message = error.message
            if (message.exchange, message.routing_key, bytes(message.body)) != (
                "",
                self.queue,
                _body(ident),
            ):
                self.problems.append(f"id {ident}: the error carries {message!r}")
            self.republished += 1
            self.retry.append(ident)
        else:
            self.problems.append(f"id {ident}: publish failed with {error!r}")
        self.changed.fire()

    # -- consumer -----------------------------------------------------------------------

    def on_message(
        self, channel: RecoveringChannel, method: Any, properties: Any, body: bytes
    ) -> None:
        """Record the id, ack the delivery."""
        try:
            ident = int(properties.message_id)
        except (TypeError, ValueError):
            self.problems.append(f"a delivery without a message id: {properties!r} {body!r}")
            return
        if body != _body(ident):
            self.problems.append(f"id {ident} delivered with body {body!r}")
        self.received[ident] += 1
        self.deliveries += 1
        if method.redelivered:
            self.redelivered += 1
        if not channel.basic_ack(method.delivery_tag):
            self.stale_acks += 1
        self.changed.fire()

    @property
    def duplicates(self) -> int:
        """Deliveries beyond the first of each id."""
        return self.deliveries - len(self.received)


class ManyMessagesThroughFaultsTests(RecoveryTestCase):
    """A publisher and a consumer keep moving messages while faults of every kind hit
    their connections."""

    TOTAL = 20_000
    WINDOW = 200
    PREFETCH = 100
    #: Confirms between two faults, at least half of it: the fault comes at half.
    STEP = 1_400
    FAULTS = (
        "reset",
        "fin",
        "blackhole",
        "delay",
        "broker-close-consumer",
        "reset",
        "broker-close-publisher",
        "fin",
        "delay",
        "blackhole",
        "reset",
        "broker-close-consumer",
    )

    @async_test
    async def test_twenty_thousand_messages_through_faults(self) -> None:
        """20,000 confirmed publishes, consumed with manual acks, while 12 faults hit
        (RST, FIN, heartbeat-detected blackholes, delay, broker-forced closes of either
        side): every confirmed id is consumed, duplicates stay within the in-flight
        windows, the services recover from each fault, and the queue has its one
        consumer afterwards."""
        proxy = await self.proxy()
        plain = await self.open_connection()
        queue = self.delete_queue_later(unique_name("txamqp091-recovery-q"))
        names = {
            "consumer": unique_name("txamqp091-consumer"),
            "publisher": unique_name("txamqp091-publisher"),
        }

        def params(role: str) -> ConnectionParameters:
            return service_parameters(
                proxy.port,
                heartbeat=1,
                stack_timeout=2.0,
                client_properties={"connection_name": names[role]},
            )

        consumer = self.service(params("consumer"))
        publisher = self.service(params("publisher"))
        logs = {"consumer": EventLog(consumer), "publisher": EventLog(publisher)}
        traffic = Traffic(self.TOTAL, self.WINDOW, queue)

        cch = await wait_for(consumer.channel())
        await cch.basic_qos(prefetch_count=self.PREFETCH)
        await cch.queue_declare(queue)
        await cch.basic_consume(queue, traffic.on_message)
        pch = await wait_for(publisher.channel())
        await pch.confirm_delivery()
        consumers_before = await consumer_count(plain, queue)
        self.assertEqual(consumers_before, 1)

        traffic.limit = self.STEP
        publishing = ensureDeferred(traffic.publish_all(publisher, pch))
        self.addCleanup(self._stop_publishing, publishing)
        in_flight_at_fault: list[int] = []

        async def recovered(roles: list[str], marks: dict[str, int]) -> None:
            for role in roles:
                event = await logs[role].first(ConnectionLost, marks[role], RECOVERY_WAIT)
                self.assertIsInstance(event.reason, AMQPConnectionError)
                await logs[role].first(RecoverySucceeded, marks[role], RECOVERY_WAIT)

        def confirms(n: int) -> Callable[[], bool]:
            """At least ``n`` ids confirmed (or the publisher stopped)."""
            return lambda: len(traffic.confirmed) >= n or publishing.called

        def attempts(n: int) -> Callable[[], bool]:
            """At least ``n`` connections accepted by the proxy."""
            return lambda: proxy.accepted >= n

        for kind in self.FAULTS:
            await when(
                traffic.changed,
                confirms(len(traffic.confirmed) + self.STEP // 2),
                60,
                f"{self.STEP // 2} confirms before the {kind} fault",
            )
            if publishing.called:
                await publishing  # raises what stopped it
                self.fail(f"the publisher finished before the {kind} fault")
            marks = {role: log.mark() for role, log in logs.items()}
            in_flight_at_fault.append(traffic.in_flight)
            if kind == "delay":
                proxy.set_mode("delay", delay=0.05)
                await when(
                    traffic.changed,
                    confirms(len(traffic.confirmed) + 300),
                    60,
                    "300 confirms through the delaying proxy",
                )
                proxy.set_mode("forward")
            elif kind in ("reset", "fin"):
                await wait_for(proxy.reset_all() if kind == "reset" else proxy.close_all())
                await recovered(["consumer", "publisher"], marks)
            elif kind == "blackhole":
                accepted = proxy.accepted
                proxy.set_mode("blackhole")
                for role in ("consumer", "publisher"):
                    await logs[role].first(ConnectionLost, marks[role], WAIT)
                # Their next attempts hang in the blackhole too, until their handshake
                # times out (stack_timeout) after the link is back.
                await until(
                    attempts(accepted + 2),
                    WAIT,
                    "reconnection attempts into the blackhole",
                )
                proxy.set_mode("forward")
                await recovered(["consumer", "publisher"], marks)
            else:
                role = kind.rsplit("-", 1)[1]
                pid = await broker_pid(names[role])
                await rabbitmqctl("close_connection", pid, "txamqp091 test: forced close")
                await recovered([role], marks)
                reason = (await logs[role].first(ConnectionLost, marks[role])).reason
                self.assertIsInstance(reason, ConnectionClosedByBroker)
                assert isinstance(reason, ConnectionClosedByBroker)
                self.assertEqual(reason.reply_code, 320)
            traffic.limit = len(traffic.confirmed) + self.STEP
        traffic.limit = self.TOTAL

        # After the last fault, the broker shows the one consumer again.
        await until(
            lambda: consumer.healthy and publisher.healthy, RECOVERY_WAIT, "healthy services"
        )
        counts: list[int | None] = []

        async def one_consumer() -> bool:
            counts.append(await consumer_count(plain, queue))
            return counts[-1] == consumers_before

        deadline = reactor.seconds() + WAIT
        while not await one_consumer() and reactor.seconds() < deadline:
            await deferLater(reactor, POLL, lambda: None)
        self.assertEqual(
            counts[-1],
            consumers_before,
            f"the last of {len(counts)} consumer counts seen: {counts[-5:]}",
        )

        await wait_for(publishing, 120)
        await until(
            lambda: traffic.confirmed <= traffic.received.keys() or bool(traffic.problems),
            60,
            "every confirmed message to be consumed",
        )

        self.assertEqual(traffic.problems, [])
        self.assertEqual(len(traffic.confirmed), self.TOTAL)
        self.assertEqual(traffic.confirmed - traffic.received.keys(), set())
        self.assertEqual(traffic.received.keys() - set(range(self.TOTAL)), set())
        bound = (self.WINDOW + self.PREFETCH) * len(self.FAULTS)
        self.assertLessEqual(traffic.duplicates, bound)
        self.assertEqual(traffic.in_flight, 0)
        # Each delivery was acked on the connection it came on.
        self.assertEqual(traffic.stale_acks, 0)
        self.assertEqual(cch.stale_acks, 0)
        # Each fault was noticed once by each service it hit, and each was recovered.
        disconnects = {
            "consumer": sum(
                1 for kind in self.FAULTS if kind != "delay" and not kind.endswith("publisher")
            ),
            "publisher": sum(
                1 for kind in self.FAULTS if kind != "delay" and not kind.endswith("consumer")
            ),
        }
        for role, log in logs.items():
            self.assertEqual(log.of(RecoveryFailed), [], role)
            self.assertEqual(log.count(ConnectionLost), disconnects[role], role)
            self.assertEqual(log.count(RecoverySucceeded), disconnects[role], role)
        self.assertEqual(consumer.recoveries, disconnects["consumer"])
        self.assertEqual(publisher.recoveries, disconnects["publisher"])
        # The faults hit while publishes were unconfirmed, which were published again.
        self.assertTrue(any(in_flight_at_fault), in_flight_at_fault)
        self.assertGreater(traffic.republished, 0)
        self.assertEqual(traffic.confirms, self.TOTAL)
        self.assertEqual(await consumer_count(plain, queue), consumers_before)
        self.assertTrue(cch.is_open)
        self.assertTrue(pch.is_open)
        # No connection was left behind by the recoveries (broker_pid wants just one).
        for role, name in names.items():
            self.assertTrue(await broker_pid(name), role)

    @staticmethod
    def _stop_publishing(publishing: Deferred[None]) -> None:
        """Cancel the publisher if the test ended before it (a failure was reported)."""
        if not publishing.called:
            publishing.addErrback(lambda _: None)
            publishing.cancel()

    test_twenty_thousand_messages_through_faults.timeout = 240  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# One fault at a time
# ---------------------------------------------------------------------------------------


class HeartbeatRecoveryTests(RecoveryTestCase):
    """A link that goes silent is noticed by heartbeats and recovered."""

    @async_test
    async def test_blackhole_detected_by_heartbeat_then_recovered(self) -> None:
        """With heartbeat=1 and a blackholed proxy, ConnectionLost carries an
        AMQPHeartbeatTimeout; once the link forwards again the service recovers and its
        consumer gets a message published afterwards."""
        proxy = await self.proxy()
        plain = await self.open_channel()
        queue = self.delete_queue_later(unique_name("txamqp091-heartbeat-q"))
        service = self.service(service_parameters(proxy.port, heartbeat=1, stack_timeout=2.0))
        log = EventLog(service)
        got: list[Delivery] = []
        signal = Signal()
        channel = await wait_for(service.channel())
        await channel.queue_declare(queue)
        await channel.basic_consume(queue, self.deliveries(got, signal, ack=True))
        plain.basic_publish("", queue, b"before")
        await self.received(got, signal, b"before")

        mark = log.mark()
        proxy.set_mode("blackhole")
        lost = await log.first(ConnectionLost, mark)
        self.assertIsInstance(lost.reason, AMQPHeartbeatTimeout)
        self.assertFalse(service.healthy)
        self.assertTrue(channel.is_recovering)

        proxy.set_mode("forward")
        await log.first(RecoverySucceeded, mark, RECOVERY_WAIT)
        self.assertTrue(service.healthy)
        self.assertTrue(channel.is_open)
        plain.basic_publish("", queue, b"after")
        await self.received(got, signal, b"after")
        self.assertEqual(log.of(RecoveryFailed), [])


class StaleAckTests(RecoveryTestCase):
    """Acks of deliveries from an earlier connection are dropped, not sent."""

    @async_test
    async def test_ack_of_delivery_from_earlier_connection(self) -> None:
        """A delivery held across an RST: its ack returns False and sends nothing; the
        broker redelivers it (redelivered=True); that redelivery and a new message are
        acked (True); the channel never closes and the queue ends empty."""
        proxy = await self.proxy()
        plain_conn = await self.open_connection()
        queue = self.delete_queue_later(unique_name("txamqp091-stale-q"))
        service = self.service(service_parameters(proxy.port))
        log = EventLog(service)
        got: list[Delivery] = []
        signal = Signal()
        channel = await wait_for(service.channel())
        await channel.confirm_delivery()
        await channel.queue_declare(queue)
        await channel.basic_consume(queue, self.deliveries(got, signal, ack=False))
        await wait_for(channel.basic_publish("", queue, b"held"))
        held, _, _ = await self.received(got, signal, b"held")
        self.assertFalse(held.redelivered)

        mark = log.mark()
        await wait_for(proxy.reset_all())
        await log.first(ConnectionLost, mark)
        await log.first(RecoverySucceeded, mark, RECOVERY_WAIT)

        self.assertIs(channel.basic_ack(held.delivery_tag), False)
        self.assertEqual(channel.stale_acks, 1)
        self.assertTrue(channel.is_open)
        await wait_for(channel.basic_publish("", queue, b"new"))
        again, _, _ = await self.received(got, signal, b"held")
        self.assertIsNot(again, held)
        self.assertTrue(again.redelivered)
        new, _, _ = await self.received(got, signal, b"new")
        self.assertFalse(new.redelivered)
        self.assertNotEqual(again.delivery_tag, held.delivery_tag)
        self.assertIs(channel.basic_ack(again.delivery_tag), True)
        self.assertIs(channel.basic_ack(new.delivery_tag), True)
        # A round trip after the acks: an ack with a tag the broker does not know would
        # have closed the channel (406) before this reply.
        await wait_for(channel.basic_qos(prefetch_count=10))
        self.assertIsNone(channel.close_reason)
        self.assertTrue(channel.is_open)
        self.assertEqual(channel.stale_acks, 1)
        self.assertEqual([body for _, _, body in got], [b"held", b"held", b"new"])

        await wait_for(service.stopService())
        # Unacked deliveries would be back in the queue now.
        self.assertEqual(await message_count(plain_conn, queue), 0)


class BrokerCancelTests(RecoveryTestCase):
    """A consumer the broker cancels is resumed on its re-declared queue."""

    @async_test
    async def test_queue_deleted_consumer_resumed(self) -> None:
        """Deleting a recorded queue from another connection: the service reports
        ConsumerCancelledByBroker(resumed=True), declares the queue again and consumes
        from it with the same tag, on the same connection."""
        plain_conn = await self.open_connection()
        plain = await plain_conn.channel()
        queue = self.delete_queue_later(unique_name("txamqp091-cancel-q"))
        service = self.service(service_parameters())
        log = EventLog(service)
        got: list[Delivery] = []
        signal = Signal()
        channel = await wait_for(service.channel())
        connection = await wait_for(service.whenConnected())
        await channel.queue_declare(queue)
        tag = await channel.basic_consume(queue, self.deliveries(got, signal, ack=True))
        self.assertEqual(await consumer_count(plain_conn, queue), 1)

        mark = log.mark()
        await plain.queue_delete(queue)
        cancelled = await log.first(ConsumerCancelledByBroker, mark)
        self.assertEqual(
            cancelled,
            ConsumerCancelledByBroker(channel.channel_number, tag, queue, True),
        )
        counts: list[int | None] = []

        async def resumed() -> bool:
            counts.append(await consumer_count(plain_conn, queue))
            return counts[-1] == 1

        deadline = reactor.seconds() + WAIT
        while not await resumed() and reactor.seconds() < deadline:
            await deferLater(reactor, POLL, lambda: None)
        self.assertEqual(
            counts[-1], 1, f"the last of {len(counts)} consumer counts seen: {counts[-5:]}"
        )

        plain.basic_publish("", queue, b"after the cancel")
        method, _, _ = await self.received(got, signal, b"after the cancel")
        self.assertEqual(method.consumer_tag, tag)
        self.assertEqual(channel.consumer_tags, [tag])
        self.assertIsNotNone(service.topology.queue(queue))
        self.assertTrue(channel.is_open)
        self.assertIs(await wait_for(service.whenConnected()), connection)
        self.assertEqual(log.of(ConnectionLost), [])
        self.assertEqual(log.of(RecoveryFailed), [])


class ServerNamedQueueTests(RecoveryTestCase):
    """A server-named exclusive queue comes back under a new name, with its binding."""

    @async_test
    async def test_renamed_queue_keeps_binding_after_forced_close(self) -> None:
        """After ``rabbitmqctl close_connection`` (320) the exclusive server-named queue
        is declared again: QueueRenamed names the old and new queue, the binding and the
        consumer move to the new one, and a message published to the exchange with the
        routing key reaches the consumer."""
        plain = await self.open_channel()
        name = unique_name("txamqp091-renamed")
        service = self.service(service_parameters(client_properties={"connection_name": name}))
        log = EventLog(service)
        got: list[Delivery] = []
        signal = Signal()
        channel = await wait_for(service.channel())
        exchange = self.delete_exchange_later(unique_name("txamqp091-renamed-x"))
        await channel.exchange_declare(exchange, "direct")
        ok: Any = await channel.queue_declare("", exclusive=True)
        old = ok.method.queue
        await channel.queue_bind(old, exchange, "rk")
        tag = await channel.basic_consume(old, self.deliveries(got, signal, ack=True))
        plain.basic_publish(exchange, "rk", b"before")
        await self.received(got, signal, b"before")

        pid = await broker_pid(name)
        mark = log.mark()
        await rabbitmqctl("close_connection", pid, "txamqp091 test: forced close")
        lost = await log.first(ConnectionLost, mark)
        self.assertIsInstance(lost.reason, ConnectionClosedByBroker)
        assert isinstance(lost.reason, ConnectionClosedByBroker)
        self.assertEqual(lost.reason.reply_code, 320)
        renamed = await log.first(QueueRenamed, mark, RECOVERY_WAIT)
        await log.first(RecoverySucceeded, mark, RECOVERY_WAIT)

        self.assertEqual(renamed.old, old)
        self.assertNotEqual(renamed.new, old)
        self.assertTrue(renamed.new.startswith("amq.gen-"), renamed.new)
        self.assertIsNone(service.topology.queue(old))
        self.assertIsNotNone(service.topology.queue(renamed.new))
        self.assertEqual(
            [(b.source, b.routing_key) for b in service.topology.bindings_of(renamed.new)],
            [(exchange, "rk")],
        )
        plain.basic_publish(exchange, "rk", b"after")
        method, _, _ = await self.received(got, signal, b"after")
        self.assertEqual((method.exchange, method.routing_key), (exchange, "rk"))
        self.assertEqual(method.consumer_tag, tag)
        self.assertEqual(log.of(RecoveryFailed), [])


class RecoveryFailureTests(RecoveryTestCase):
    """A recovery the broker refuses is reported, and retried until it works."""

    @async_test
    async def test_conflicting_queue_reported_then_recovered(self) -> None:
        """While the service is cut off, its queue is re-declared elsewhere with other
        arguments: the service's re-declare fails (406), RecoveryFailed names the queue
        record and the service is unhealthy; once the conflicting queue is deleted, a
        later attempt recovers (RecoverySucceeded, healthy) and declares the queue as
        recorded."""
        proxy = await self.proxy()
        plain_conn = await self.open_connection()
        plain = await plain_conn.channel()
        queue = self.delete_queue_later(unique_name("txamqp091-conflict-q"))
        service = self.service(service_parameters(proxy.port), max_delay=0.3)
        log = EventLog(service)
        channel = await wait_for(service.channel())
        await channel.queue_declare(queue)

        # Cut the service off: its connection is reset, new ones hang in the blackhole.
        mark = log.mark()
        proxy.set_mode("blackhole")
        await wait_for(proxy.reset_all())
        await log.first(ConnectionLost, mark)
        await plain.queue_delete(queue)
        await plain.queue_declare(queue, arguments={"x-max-length": 10})
        proxy.set_mode("forward")
        await wait_for(proxy.reset_all())  # the attempts stuck in the blackhole

        failed = await log.first(RecoveryFailed, mark, RECOVERY_WAIT)
        self.assertIsInstance(failed.entity, QueueRecord)
        assert isinstance(failed.entity, QueueRecord)
        self.assertEqual(failed.entity.name, queue)
        self.assertIsInstance(failed.error, ChannelClosedByBroker)
        assert isinstance(failed.error, ChannelClosedByBroker)
        self.assertEqual(failed.error.reply_code, 406)
        self.assertFalse(service.healthy)
        self.assertIsInstance(service.last_error, RecoveryError)
        self.assertTrue(channel.is_recovering)
        with self.assertRaises(ConnectionRecovering):
            channel.queue_declare(queue, passive=True)
        self.assertEqual(log.count(RecoverySucceeded), 0)

        await plain.queue_delete(queue)
        await log.first(RecoverySucceeded, mark, RECOVERY_WAIT)
        self.assertTrue(service.healthy)
        self.assertIsNone(service.last_error)
        self.assertTrue(channel.is_open)
        await wait_for(channel.queue_declare(queue, passive=True))
        # Declared as recorded: without x-max-length (a different one would fail).
        await wait_for(plain.queue_declare(queue))
        self.assertEqual(log.count(ConnectionLost), 1)

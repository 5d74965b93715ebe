"""AMQPClientService recovery: what goes on the wire after a loss, and what the
application sees (events, delivery tags, fail-fast calls, the outbox, stopping).

Every test runs on StringTransports and a Clock: each connection the service
makes is played by a :class:`~txamqp091.test.fakebroker.FakeBroker`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import Any, cast

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import FailTest, SynchronousTestCase
from zope.interface import implementer

from txamqp091 import ConnectionParameters, codec, spec
from txamqp091.channel import Channel
from txamqp091.exceptions import (
    AMQPTimeoutError,
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConnectionClosedByClient,
    ConnectionRecovering,
    ConsumerCancelled,
    OutboxFull,
    RecoveryError,
    ShortStringTooLong,
    StreamLostError,
    TransactionRolledBack,
    UnconfirmedPublishError,
)
from txamqp091.message import PublishedMessage
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
from txamqp091.test.fakebroker import FakeBroker
from txamqp091.topology import QueueRecord, Record

#: The name the fake broker gives a queue declared as "" (unless told otherwise).
SERVER_NAME = "amq.gen-1"

#: What a well-behaved broker answers to each method (methods not here get no answer).
_REPLIES: dict[type[spec.Method], Callable[[Any], spec.Method]] = {
    spec.Channel.Open: lambda m: spec.Channel.OpenOk(),
    spec.Channel.Close: lambda m: spec.Channel.CloseOk(),
    spec.Connection.Close: lambda m: spec.Connection.CloseOk(),
    spec.Basic.Qos: lambda m: spec.Basic.QosOk(),
    spec.Confirm.Select: lambda m: spec.Confirm.SelectOk(),
    spec.Tx.Select: lambda m: spec.Tx.SelectOk(),
    spec.Tx.Commit: lambda m: spec.Tx.CommitOk(),
    spec.Tx.Rollback: lambda m: spec.Tx.RollbackOk(),
    spec.Exchange.Declare: lambda m: spec.Exchange.DeclareOk(),
    spec.Exchange.Delete: lambda m: spec.Exchange.DeleteOk(),
    spec.Exchange.Bind: lambda m: spec.Exchange.BindOk(),
    spec.Exchange.Unbind: lambda m: spec.Exchange.UnbindOk(),
    spec.Queue.Declare: lambda m: spec.Queue.DeclareOk(m.queue, 0, 0),
    spec.Queue.Bind: lambda m: spec.Queue.BindOk(),
    spec.Queue.Unbind: lambda m: spec.Queue.UnbindOk(),
    spec.Queue.Delete: lambda m: spec.Queue.DeleteOk(0),
    spec.Basic.Consume: lambda m: spec.Basic.ConsumeOk(m.consumer_tag),
    spec.Basic.Cancel: lambda m: spec.Basic.CancelOk(m.consumer_tag),
}

Sent = tuple[int, str]
Reply = spec.Method | Callable[[Any], spec.Method] | None


def respond(broker: FakeBroker, server_name: str = SERVER_NAME) -> list[Sent]:
    """Play a well-behaved broker until the client writes nothing more.

    Each method the client wrote is answered (see ``_REPLIES``; a queue declared
    as ``""`` is named *server_name*).

    :returns: ``(channel, method name)`` of each method the client wrote, in
        wire order (content frames are left out).
    """
    sent: list[Sent] = []
    while True:
        frames = broker.read()
        if not frames:
            return sent
        for frame in frames:
            if not isinstance(frame, codec.MethodFrame):
                continue
            method: Any = frame.method
            sent.append((frame.channel_number, method.NAME))
            make = _REPLIES.get(type(method))
            if make is None or broker.lost:
                continue
            reply: spec.Method
            if isinstance(method, spec.Queue.Declare) and not method.queue:
                reply = spec.Queue.DeclareOk(server_name, 0, 0)
            else:
                reply = make(method)
            broker.send_method(frame.channel_number, reply)


def script(broker: FakeBroker, steps: Sequence[tuple[type[spec.Method], int, Reply]]) -> list[Any]:
    """Check the client's methods one by one, answering each as told.

    Each step is ``(method class, channel, reply)``: the client's next frame
    must be that method on that channel, and nothing else may follow it before
    the reply (the client waits for each answer).  The reply is a method, a
    callable making one from the client's method, or ``None`` (no answer).

    :returns: the client's methods.
    """
    methods = []
    for kind, channel, reply in steps:
        method = broker.expect(kind, channel)
        methods.append(method)
        if reply is None:
            continue
        broker.expect_nothing()  # nothing pipelined ahead of the answer
        broker.send_method(channel, reply if isinstance(reply, spec.Method) else reply(method))
    return methods


def deliver(broker: FakeBroker, channel: int, tag: str, delivery_tag: int, body: bytes) -> None:
    """The broker delivers a message to consumer *tag*."""
    broker.send_message(channel, spec.Basic.Deliver(tag, delivery_tag, False, "", "rk"), body)


def amqp_of(broker: FakeBroker) -> AMQPProtocol:
    """The AMQP protocol behind a service connection's broker (which talks to the
    service's gate in front of the protocol)."""
    gate: Any = broker.protocol
    protocol: AMQPProtocol = gate.amqp
    return protocol


@implementer(IStreamClientEndpoint)
class Endpoint:
    """Connects every time, each connection to a StringTransport and its FakeBroker."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.brokers: list[FakeBroker] = []
        #: Keep only the last broker (for long runs: old ones keep old protocols alive).
        self.keep_last_only = False

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        proto: Any = factory.buildProtocol(None)  # type: ignore[arg-type]
        transport = StringTransport()
        proto.makeConnection(transport)
        broker = FakeBroker(proto, self.clock, transport)
        broker.connected = True
        if self.keep_last_only:
            self.brokers.clear()
        self.brokers.append(broker)
        return succeed(proto)


Handler = Callable[[RecoveringChannel, Any, spec.BasicProperties, bytes], object]


class ServiceTestCase(SynchronousTestCase):
    """A service on a fake endpoint, with helpers to drive it."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = Endpoint(self.clock)
        self.events: list[RecoveryEvent] = []
        #: (channel number, delivery tag, body) of each message a callback got.
        self.received: list[tuple[int, int, bytes]] = []

    def tearDown(self) -> None:
        # Each test also checks this itself once the service has stopped.
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @property
    def broker(self) -> FakeBroker:
        """The broker of the latest connection."""
        return self.endpoint.brokers[-1]

    def start(self, **kw: Any) -> AMQPClientService:
        """A started service, connected (first connection: no recovery)."""
        kw.setdefault("retry_policy", lambda failures: 2.0**failures)
        service = AMQPClientService(
            self.clock, self.endpoint, parameters=ConnectionParameters(heartbeat=0), **kw
        )
        service.add_listener(self.events.append)
        service.startService()
        self.broker.handshake()
        self.successResultOf(service.whenConnected())
        return service

    def done(self, d: Deferred[Any]) -> Any:
        """Let the broker answer, then give *d*'s result."""
        respond(self.broker)
        return self.successResultOf(d)

    def open(self, service: AMQPClientService, number: int | None = None) -> RecoveringChannel:
        """Open a service channel."""
        channel: RecoveringChannel = self.done(service.channel(number))
        return channel

    def handler(self, ch: RecoveringChannel, method: Any, props: Any, body: bytes) -> None:
        """A message callback that records what it got."""
        self.received.append((ch.channel_number, method.delivery_tag, body))

    def lose(self) -> None:
        """The network drops the current connection; the retry is the one timer left."""
        self.broker.lose()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def retry(self) -> FakeBroker:
        """Let the pending retry happen; returns the new connection's broker (not
        yet handshaken)."""
        before = len(self.endpoint.brokers)
        (call,) = self.clock.getDelayedCalls()
        self.clock.advance(call.getTime() - self.clock.seconds())
        if self.endpoint.keep_last_only:
            return self.broker
        self.assertEqual(len(self.endpoint.brokers), before + 1)
        return self.broker

    def reconnect(self, server_name: str = SERVER_NAME) -> list[Sent]:
        """Lose the connection, reconnect, and let recovery run against a
        well-behaved broker.

        :returns: what the client sent after the handshake.
        """
        self.lose()
        broker = self.retry()
        broker.handshake()
        return respond(broker, server_name)

    def stop(self, service: AMQPClientService) -> None:
        """Stop the service against a well-behaved broker; no timer may be left."""
        stopped = service.stopService()
        if self.endpoint.brokers:
            respond(self.broker)
        self.successResultOf(stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def kinds(self) -> list[str]:
        """The names of the events heard so far."""
        return [type(event).__name__ for event in self.events]


class RecoveryOrderTests(ServiceTestCase):
    """What a new connection is told, and in which order."""

    def build(self, service: AMQPClientService) -> tuple[RecoveringChannel, RecoveringChannel]:
        """Channels 1 and 3 with QoS, confirm and tx, an exchange, two queues (one
        server-named), an exchange binding, two queue bindings and two consumers."""
        ch1 = self.open(service, 1)
        ch3 = self.open(service, 3)
        self.done(ch1.basic_qos(0, 10, False))
        self.done(ch1.basic_qos(0, 100, True))
        self.done(ch1.confirm_delivery())
        self.done(ch3.tx_select())
        self.done(ch1.exchange_declare("events", "topic", durable=True))
        self.done(ch1.queue_declare("jobs", durable=True))
        self.done(ch3.queue_declare("", exclusive=True))
        self.done(ch1.exchange_bind("events", "amq.topic", "audit.#"))
        self.done(ch1.queue_bind("jobs", "events", "job.*"))
        self.done(ch3.queue_bind(SERVER_NAME, "events", "reply.*"))
        self.done(ch1.basic_consume("jobs", self.handler, consumer_tag="c-jobs"))
        self.done(ch3.basic_consume(SERVER_NAME, consumer_tag="c-replies"))
        return ch1, ch3

    def test_recovery_order_on_the_wire(self) -> None:
        """After a loss the client reopens channels 1 and 3 with their QoS (per-consumer
        then global), confirm and tx modes; declares the exchange, the queues and the
        bindings (exchange-to-exchange first) on a work channel it then closes; and
        starts each consumer again on its own channel with its tag.  It waits for each
        answer, and whenConnected fires only after the last ConsumeOk; the events are
        ConnectionLost, RecoveryStarted, QueueRenamed, RecoverySucceeded."""
        service = self.start()
        ch1, ch3 = self.build(service)
        self.lose()
        self.assertFalse(service.healthy)
        waiting = service.whenConnected()
        broker = self.retry()
        broker.handshake()
        new = "amq.gen-2"
        sent = script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Basic.Qos, 1, spec.Basic.QosOk()),
                (spec.Basic.Qos, 1, spec.Basic.QosOk()),
                (spec.Confirm.Select, 1, spec.Confirm.SelectOk()),
                (spec.Channel.Open, 3, spec.Channel.OpenOk()),
                (spec.Tx.Select, 3, spec.Tx.SelectOk()),
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Exchange.Declare, 2, spec.Exchange.DeclareOk()),
                (spec.Queue.Declare, 2, spec.Queue.DeclareOk("jobs", 0, 0)),
                (spec.Queue.Declare, 2, spec.Queue.DeclareOk(new, 0, 0)),
                (spec.Exchange.Bind, 2, spec.Exchange.BindOk()),
                (spec.Queue.Bind, 2, spec.Queue.BindOk()),
                (spec.Queue.Bind, 2, spec.Queue.BindOk()),
                (spec.Channel.Close, 2, spec.Channel.CloseOk()),
                (spec.Basic.Consume, 1, spec.Basic.ConsumeOk("c-jobs")),
                (spec.Basic.Consume, 3, None),
            ],
        )
        self.assertNoResult(waiting)
        self.assertFalse(service.healthy)
        broker.send_method(3, spec.Basic.ConsumeOk("c-replies"))
        self.assertIs(self.successResultOf(waiting), amqp_of(broker))
        broker.expect_nothing()
        qos, global_qos = sent[1], sent[2]
        self.assertEqual((qos.prefetch_count, qos.global_), (10, False))
        self.assertEqual((global_qos.prefetch_count, global_qos.global_), (100, True))
        exchange = sent[7]
        self.assertEqual(
            (exchange.exchange, exchange.type, exchange.durable), ("events", "topic", True)
        )
        self.assertFalse(exchange.passive)
        self.assertEqual((sent[8].queue, sent[8].durable, sent[8].passive), ("jobs", True, False))
        self.assertEqual((sent[9].queue, sent[9].exclusive), ("", True))
        e2e = sent[10]
        self.assertEqual(
            (e2e.destination, e2e.source, e2e.routing_key), ("events", "amq.topic", "audit.#")
        )
        self.assertEqual(
            [(b.queue, b.exchange, b.routing_key) for b in sent[11:13]],
            [("jobs", "events", "job.*"), (new, "events", "reply.*")],
        )
        self.assertEqual(
            [(c.queue, c.consumer_tag) for c in sent[14:16]],
            [("jobs", "c-jobs"), (new, "c-replies")],
        )
        self.assertTrue(service.healthy)
        self.assertTrue(ch1.is_open and ch3.is_open)
        self.assertEqual(service.recoveries, 1)
        self.assertEqual(
            self.kinds(),
            ["ConnectionLost", "RecoveryStarted", "QueueRenamed", "RecoverySucceeded"],
        )
        self.assertEqual(self.events[2], QueueRenamed(SERVER_NAME, new))
        succeeded = self.events[3]
        assert isinstance(succeeded, RecoverySucceeded)
        self.assertIs(succeeded.connection, amqp_of(broker))
        # 1 exchange, 2 queues, 3 bindings, 2 consumers
        self.assertEqual((succeeded.channels, succeeded.records, succeeded.republished), (2, 8, 0))
        self.stop(service)

    def test_server_named_queue_renamed_everywhere(self) -> None:
        """A server-named queue declared again gets a new name, which its binding and
        its consumer use during recovery and which the topology records; a second
        recovery renames it again from the newest name; deliveries under the
        new name reach the consumer."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.queue_declare("", exclusive=True))
        self.done(ch.queue_bind(SERVER_NAME, "amq.direct", "k"))
        self.done(ch.basic_consume(SERVER_NAME, self.handler, consumer_tag="c"))
        for old, new in ((SERVER_NAME, "amq.gen-2"), ("amq.gen-2", "amq.gen-3")):
            self.events.clear()
            self.lose()
            self.retry().handshake()
            script(
                self.broker,
                [
                    (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                    (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                ],
            )
            declared, bound, _, consumed = script(
                self.broker,
                [
                    (spec.Queue.Declare, 2, spec.Queue.DeclareOk(new, 0, 0)),
                    (spec.Queue.Bind, 2, spec.Queue.BindOk()),
                    (spec.Channel.Close, 2, spec.Channel.CloseOk()),
                    (spec.Basic.Consume, 1, spec.Basic.ConsumeOk("c")),
                ],
            )
            self.assertEqual(declared.queue, "")
            self.assertEqual(
                (bound.queue, bound.exchange, bound.routing_key), (new, "amq.direct", "k")
            )
            self.assertEqual((consumed.queue, consumed.consumer_tag), (new, "c"))
            self.assertIn(QueueRenamed(old, new), self.events)
            self.assertEqual([q.name for q in service.topology.queues], [new])
            self.assertEqual([b.destination for b in service.topology.bindings], [new])
            self.assertEqual([c.queue for c in service.topology.consumers], [new])
            self.assertTrue(service.topology.queues[0].server_named)
        deliver(self.broker, 1, "c", 1, b"hello")
        self.assertEqual([body for _, _, body in self.received], [b"hello"])
        self.stop(service)

    def test_passive_deleted_unbound_and_filtered_not_replayed(self) -> None:
        """Passive declarations, deleted exchanges and queues, removed bindings,
        cancelled consumers and records the include filter refuses are not
        declared again: only the one queue left is."""

        def include(record: Record) -> bool:
            name = getattr(record, "name", None) or getattr(record, "destination", "")
            return not str(name).startswith("tmp.")

        service = self.start(include=include)
        ch = self.open(service)
        self.done(ch.exchange_declare("external", "topic", passive=True))
        self.done(ch.queue_declare("elsewhere", passive=True))
        self.done(ch.exchange_declare("old", "fanout"))
        self.done(ch.exchange_delete("old"))
        self.done(ch.queue_declare("gone"))
        self.done(ch.queue_bind("gone", "amq.direct", "g"))
        self.done(ch.queue_delete("gone"))
        self.done(ch.queue_declare("kept", durable=True))
        self.done(ch.queue_bind("kept", "amq.direct", "once"))
        self.done(ch.queue_unbind("kept", "amq.direct", "once"))
        _, tag = self.done(ch.basic_consume("kept", consumer_tag="short-lived"))
        self.done(ch.basic_cancel(tag))
        self.done(ch.queue_declare("tmp.scratch"))
        self.done(ch.queue_bind("tmp.scratch", "amq.fanout"))
        self.assertEqual(service.topology.queues, [QueueRecord("kept", durable=True)])
        self.assertEqual(len(service.topology), 1)
        sent = self.reconnect()
        self.assertEqual(
            sent,
            [
                (1, "Channel.Open"),
                (2, "Channel.Open"),
                (2, "Queue.Declare"),
                (2, "Channel.Close"),
            ],
        )
        self.assertEqual(self.kinds()[-1], "RecoverySucceeded")
        self.stop(service)

    def test_nothing_recorded_opens_no_work_channel(self) -> None:
        """With channels but no records, recovery only reopens the channels."""
        service = self.start()
        self.open(service)
        self.assertEqual(self.reconnect(), [(1, "Channel.Open")])
        self.assertTrue(service.healthy)
        self.stop(service)


class DeliveryTagTests(ServiceTestCase):
    """Delivery tags keep growing across connections; stale acks send nothing."""

    def test_stale_ack_suppressed_and_tags_offset(self) -> None:
        """Deliveries of the old connection acked while recovering or after recovery
        send nothing, return False and are counted; a delivery on the new connection
        (broker tag 1) is handed out as the old highest tag + 1 and its ack carries
        the broker's tag 1."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.basic_consume("jobs", self.handler, consumer_tag="c"))
        for tag in (1, 2, 3):
            deliver(self.broker, 1, "c", tag, b"old%d" % tag)
        self.assertEqual([t for _, t, _ in self.received], [1, 2, 3])
        self.assertTrue(ch.basic_ack(1))
        self.assertEqual(self.broker.expect(spec.Basic.Ack, 1).delivery_tag, 1)
        old = self.broker
        self.lose()
        self.assertTrue(ch.is_recovering)
        self.assertFalse(ch.basic_ack(2))  # between loss and reconnect: no error
        self.assertEqual(ch.stale_acks, 1)
        old.expect_nothing()
        self.retry().handshake()
        respond(self.broker)
        self.assertTrue(ch.is_open)
        self.assertFalse(ch.basic_ack(3))
        self.assertFalse(ch.basic_nack(2))
        self.assertFalse(ch.basic_reject(3))
        self.assertEqual(ch.stale_acks, 4)
        self.broker.expect_nothing()
        deliver(self.broker, 1, "c", 1, b"new")
        self.assertEqual(self.received[-1], (1, 4, b"new"))
        self.assertTrue(ch.basic_ack(4))
        ack = self.broker.expect(spec.Basic.Ack, 1)
        self.assertEqual((ack.delivery_tag, ack.multiple), (1, False))
        self.assertEqual(ch.stale_acks, 4)
        self.stop(service)

    def test_tags_keep_growing_over_several_connections(self) -> None:
        """The offset accumulates: after two recoveries the first delivery of the
        third connection follows the highest tag of the second, and a multiple ack
        up to it is sent with the broker's own tag."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.basic_consume("jobs", self.handler, consumer_tag="c"))
        deliver(self.broker, 1, "c", 1, b"a")
        deliver(self.broker, 1, "c", 2, b"b")
        self.reconnect()
        deliver(self.broker, 1, "c", 1, b"c")
        self.reconnect()
        deliver(self.broker, 1, "c", 1, b"d")
        deliver(self.broker, 1, "c", 2, b"e")
        self.assertEqual([t for _, t, _ in self.received], [1, 2, 3, 4, 5])
        self.assertFalse(ch.basic_ack(3, multiple=True))
        self.broker.expect_nothing()
        self.assertTrue(ch.basic_ack(5, multiple=True))
        ack = self.broker.expect(spec.Basic.Ack, 1)
        self.assertEqual((ack.delivery_tag, ack.multiple), (2, True))
        self.stop(service)


class FailFastTests(ServiceTestCase):
    """While the connection is down or being recovered, calls fail at once."""

    def test_calls_raise_connection_recovering(self) -> None:
        """Between the loss and the reconnection, and again during recovery, a
        declare and a publish raise ConnectionRecovering and nothing is written."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.queue_declare("jobs"))
        old = self.broker
        self.lose()
        self.assertRaises(ConnectionRecovering, ch.queue_declare, "other")
        self.assertRaises(ConnectionRecovering, ch.basic_publish, "", "jobs", b"x")
        old.expect_nothing()
        broker = self.retry()
        broker.handshake()
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Queue.Declare, 2, None),
            ],
        )
        self.assertTrue(ch.is_recovering)
        self.assertRaises(ConnectionRecovering, ch.queue_declare, "other")
        self.assertRaises(ConnectionRecovering, ch.basic_publish, "", "jobs", b"x")
        broker.expect_nothing()
        broker.send_method(2, spec.Queue.DeclareOk("jobs", 0, 0))
        self.assertEqual(respond(broker), [(2, "Channel.Close")])
        self.assertTrue(ch.is_open)
        self.assertEqual([q.name for q in service.topology.queues], ["jobs"])
        self.stop(service)

    def test_cancel_while_disconnected_forgets_consumer(self) -> None:
        """A consumer cancelled while the connection is down is forgotten at once:
        nothing is sent, its queue object ends quietly, and recovery does not start
        it again."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.queue_declare("jobs"))
        queue, tag = self.done(ch.basic_consume("jobs"))
        self.lose()
        cancelled = self.successResultOf(ch.basic_cancel(tag))
        self.assertIsInstance(cancelled.method, spec.Basic.CancelOk)
        self.assertTrue(queue.closed)
        self.assertEqual(ch.consumer_tags, [])
        self.assertIsNone(service.topology.consumer(tag))
        broker = self.retry()
        broker.handshake()
        sent = respond(broker)
        self.assertNotIn("Basic.Consume", [name for _, name in sent])
        self.assertTrue(ch.is_open)
        self.stop(service)

    def test_delivery_to_consumer_cancelled_during_recovery_requeued(self) -> None:
        """A consumer the application cancelled during recovery, before recovery
        consumed it again, is cancelled on the broker right after its ConsumeOk; a
        delivery reaching it before the CancelOk is rejected with requeue (not dropped,
        not given to the handler)."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.queue_declare("jobs"))
        self.done(ch.basic_consume("jobs", self.handler, consumer_tag="c1"))
        self.done(ch.basic_consume("jobs", self.handler, consumer_tag="c2"))
        self.lose()
        broker = self.retry()
        broker.handshake()
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Queue.Declare, 2, spec.Queue.DeclareOk("jobs", 0, 0)),
                (spec.Channel.Close, 2, spec.Channel.CloseOk()),
                (spec.Basic.Consume, 1, None),
            ],
        )
        ch.basic_cancel("c2")
        broker.send_method(1, spec.Basic.ConsumeOk("c1"))
        script(
            broker,
            [
                (spec.Basic.Cancel, 1, spec.Basic.CancelOk("c2")),
                (spec.Basic.Consume, 1, spec.Basic.ConsumeOk("c2")),
                (spec.Basic.Cancel, 1, None),
            ],
        )
        deliver(broker, 1, "c2", 1, b"in the window")
        reject = broker.expect(spec.Basic.Reject, 1)
        self.assertEqual((reject.delivery_tag, reject.requeue), (1, True))
        self.assertEqual(self.received, [])
        broker.send_method(1, spec.Basic.CancelOk("c2"))
        self.assertEqual(ch.consumer_tags, ["c1"])
        self.stop(service)

    def test_cancel_while_consume_in_flight_during_recovery(self) -> None:
        """Consumers cancelled by the application while recovery's Basic.Consume of
        c1 is in flight: c1 is cancelled on the broker once, after its ConsumeOk;
        c2, whose Consume was not sent yet, is cancelled on the broker after that
        Consume's ConsumeOk too (no orphan consumer, whichever reached the broker
        first); neither is in the channel's tags nor the topology, and their queue
        objects end."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.queue_declare("jobs"))
        q1, _ = self.done(ch.basic_consume("jobs", consumer_tag="c1"))
        q2, _ = self.done(ch.basic_consume("jobs", consumer_tag="c2"))
        self.lose()
        broker = self.retry()
        broker.handshake()
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Queue.Declare, 2, spec.Queue.DeclareOk("jobs", 0, 0)),
                (spec.Channel.Close, 2, spec.Channel.CloseOk()),
                (spec.Basic.Consume, 1, None),
            ],
        )
        cancelling = [ch.basic_cancel("c1"), ch.basic_cancel("c2")]
        broker.expect_nothing()  # the client waits for the ConsumeOk first
        broker.send_method(1, spec.Basic.ConsumeOk("c1"))
        sent = script(
            broker,
            [
                (spec.Basic.Cancel, 1, lambda m: spec.Basic.CancelOk(m.consumer_tag)),
                (spec.Basic.Cancel, 1, lambda m: spec.Basic.CancelOk(m.consumer_tag)),
                (spec.Basic.Consume, 1, lambda m: spec.Basic.ConsumeOk(m.consumer_tag)),
                (spec.Basic.Cancel, 1, lambda m: spec.Basic.CancelOk(m.consumer_tag)),
            ],
        )
        broker.expect_nothing()
        self.assertEqual([m.consumer_tag for m in sent], ["c1", "c2", "c2", "c2"])
        for d in cancelling:
            self.successResultOf(d)
        self.assertEqual(ch.consumer_tags, [])
        self.assertEqual(service.topology.consumers, [])
        self.assertTrue(q1.closed and q2.closed)
        self.assertEqual(self.kinds()[-1], "RecoverySucceeded")
        self.assertTrue(service.healthy)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.stop(service)


class OutboxServiceTests(ServiceTestCase):
    """Confirmed publishes kept across an outage."""

    def confirming(self, **kw: Any) -> tuple[AMQPClientService, RecoveringChannel]:
        service = self.start(**kw)
        ch = self.open(service)
        self.done(ch.confirm_delivery())
        return service, ch

    def test_publishes_while_down_republished_in_order(self) -> None:
        """Publishes made while disconnected are kept, then published again in order
        on the same channel number after recovery; their Deferreds fire with the new
        connection's acks, and RecoverySucceeded counts them."""
        service, ch = self.confirming(outbox_messages=10)
        self.assertIsNotNone(service.outbox)
        assert service.outbox is not None
        self.lose()
        first = ch.basic_publish("", "jobs", b"one")
        second = ch.basic_publish("", "jobs", b"two")
        self.assertEqual(len(service.outbox), 2)
        self.assertEqual(service.outbox.bytes, 6)
        self.assertNoResult(first)
        broker = self.retry()
        broker.handshake()
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Confirm.Select, 1, spec.Confirm.SelectOk()),
            ],
        )
        bodies = [broker.expect_message(1)[2] for _ in range(2)]
        self.assertEqual(bodies, [b"one", b"two"])
        broker.expect_nothing()
        self.assertEqual(len(service.outbox), 0)
        self.assertNoResult(first)
        broker.send_method(1, spec.Basic.Ack(1, False))
        self.assertIsInstance(self.successResultOf(first), spec.Basic.Ack)
        self.assertNoResult(second)
        broker.send_method(1, spec.Basic.Ack(2, False))
        self.assertEqual(self.successResultOf(second).delivery_tag, 2)
        succeeded = self.events[-1]
        assert isinstance(succeeded, RecoverySucceeded)
        self.assertEqual(succeeded.republished, 2)
        self.stop(service)

    def test_outbox_bounds(self) -> None:
        """A publish that would pass the message or the byte bound raises OutboxFull
        and is not kept."""
        service, ch = self.confirming(outbox_messages=2, outbox_bytes=10)
        assert service.outbox is not None
        self.lose()
        kept = [ch.basic_publish("", "q", b"12345"), ch.basic_publish("", "q", b"1")]
        self.assertRaises(OutboxFull, ch.basic_publish, "", "q", b"")
        self.assertEqual((len(service.outbox), service.outbox.bytes), (2, 6))
        broker = self.retry()
        broker.handshake()
        respond(broker)
        broker.send_method(1, spec.Basic.Ack(2, True))
        for d in kept:
            self.successResultOf(d)
        self.lose()
        held = ch.basic_publish("", "q", b"123456789")
        self.assertRaises(OutboxFull, ch.basic_publish, "", "q", b"12")
        self.assertEqual((len(service.outbox), service.outbox.bytes), (1, 9))
        self.stop(service)
        self.failureResultOf(held, ConnectionRecovering)

    def test_outbox_needs_confirm_mode(self) -> None:
        """Without confirm mode there is no confirm to wait for: a publish while
        disconnected raises ConnectionRecovering even with an outbox."""
        service = self.start(outbox_messages=5)
        ch = self.open(service)
        self.lose()
        self.assertRaises(ConnectionRecovering, ch.basic_publish, "", "q", b"x")
        assert service.outbox is not None
        self.assertEqual(len(service.outbox), 0)
        self.stop(service)

    def test_in_flight_publish_moves_to_outbox(self) -> None:
        """A confirmed publish cut off by the loss goes to the outbox, is published
        exactly once on the new connection, and settles with that connection's ack."""
        service, ch = self.confirming(outbox_messages=5)
        assert service.outbox is not None
        d = ch.basic_publish("", "jobs", b"payload")
        self.assertEqual(self.broker.expect_message(1)[2], b"payload")
        self.lose()
        self.assertNoResult(d)
        self.assertEqual(len(service.outbox), 1)
        self.reconnect()
        publishes = [
            frame
            for frame in self.broker.written
            if isinstance(frame, codec.MethodFrame)
            and isinstance(frame.method, spec.Basic.Publish)
        ]
        self.assertEqual(len(publishes), 1)
        self.assertNoResult(d)
        self.broker.send_method(1, spec.Basic.Ack(1, False))
        self.assertIsInstance(self.successResultOf(d), spec.Basic.Ack)
        self.assertEqual(len(service.outbox), 0)
        self.stop(service)

    def test_in_flight_publish_without_outbox_fails(self) -> None:
        """Without an outbox, a confirmed publish cut off by the loss fails with
        UnconfirmedPublishError carrying the message (and is a StreamLostError)."""
        service, ch = self.confirming()
        self.assertIsNone(service.outbox)
        d = ch.basic_publish("amq.direct", "jobs", b"payload", mandatory=True)
        self.lose()
        error = self.failureResultOf(d, UnconfirmedPublishError).value
        assert isinstance(error, UnconfirmedPublishError)
        self.assertIsInstance(error, StreamLostError)
        self.assertEqual(
            error.message, PublishedMessage("amq.direct", "jobs", b"payload", None, True)
        )
        self.reconnect()
        self.broker.expect_nothing()
        self.stop(service)

    def test_in_flight_publish_that_does_not_fit_fails(self) -> None:
        """A cut-off publish too big for the outbox fails with its
        UnconfirmedPublishError; the outbox stays empty."""
        service, ch = self.confirming(outbox_messages=5, outbox_bytes=4)
        d = ch.basic_publish("", "jobs", b"too big")
        self.lose()
        error = self.failureResultOf(d, UnconfirmedPublishError).value
        self.assertEqual(error.message.body, b"too big")
        assert service.outbox is not None
        self.assertEqual(len(service.outbox), 0)
        self.stop(service)

    def test_stop_fails_outbox_entries(self) -> None:
        """Stopping while disconnected fails what the outbox holds, cancels the retry
        and leaves no timer."""
        service, ch = self.confirming(outbox_messages=5)
        self.lose()
        d = ch.basic_publish("", "jobs", b"x")
        brokers = len(self.endpoint.brokers)
        self.stop(service)
        self.failureResultOf(d, ConnectionRecovering)
        assert service.outbox is not None
        self.assertEqual(len(service.outbox), 0)
        self.assertEqual(len(self.endpoint.brokers), brokers)
        self.assertTrue(ch.is_closed)

    def test_confirm_mode_restored_when_lost_before_select_ok(self) -> None:
        """A publish made right after confirm_delivery(), before the SelectOk, is
        confirmed: when the connection drops before the SelectOk, recovery sends
        Confirm.Select again before republishing the kept message, and the
        message's Deferred fires with the new connection's Basic.Ack."""
        service = self.start(outbox_messages=5)
        assert service.outbox is not None
        ch = self.open(service)
        selecting = ch.confirm_delivery()
        self.broker.expect(spec.Confirm.Select, 1)
        publishing = ch.basic_publish("", "jobs", b"payload")
        self.assertEqual(self.broker.expect_message(1)[2], b"payload")
        self.lose()
        self.failureResultOf(selecting, StreamLostError)
        self.assertNoResult(publishing)
        self.assertEqual(len(service.outbox), 1)
        self.assertTrue(ch.confirming)
        broker = self.retry()
        broker.handshake()
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Confirm.Select, 1, spec.Confirm.SelectOk()),
            ],
        )
        method, _, body = broker.expect_message(1)
        self.assertIsInstance(method, spec.Basic.Publish)
        self.assertEqual(body, b"payload")
        broker.expect_nothing()
        self.assertNoResult(publishing)
        broker.send_method(1, spec.Basic.Ack(1, False))
        ack = self.successResultOf(publishing)
        self.assertIsInstance(ack, spec.Basic.Ack)
        self.assertEqual(ack.delivery_tag, 1)
        self.assertEqual(len(service.outbox), 0)
        self.stop(service)


class InputCheckTests(ServiceTestCase):
    """Arguments are checked at once, also for messages kept in the outbox."""

    def test_ack_and_outbox_input_checks(self) -> None:
        """A negative delivery tag raises ValueError; basic_ack(0, multiple=True) after
        a reconnection is sent as Basic.Ack(0, multiple) (it is not stale); while
        disconnected, a kept publish with a 300-character exchange raises
        ShortStringTooLong at once and nothing is kept; a bytearray body kept in the
        outbox is copied: changing the bytearray afterwards does not change what
        is published again."""
        service = self.start(outbox_messages=5)
        assert service.outbox is not None
        ch = self.open(service)
        self.done(ch.confirm_delivery())
        self.done(ch.basic_consume("jobs", self.handler, consumer_tag="c"))
        deliver(self.broker, 1, "c", 1, b"a")
        deliver(self.broker, 1, "c", 2, b"b")
        self.assertRaises(ValueError, ch.basic_ack, -1)
        self.assertRaises(ValueError, ch.basic_nack, -1)
        self.assertRaises(ValueError, ch.basic_reject, -1)
        self.broker.expect_nothing()
        self.assertEqual(ch.stale_acks, 0)
        self.reconnect()
        self.assertTrue(ch.basic_ack(0, multiple=True))
        ack = self.broker.expect(spec.Basic.Ack, 1)
        self.assertEqual((ack.delivery_tag, ack.multiple), (0, True))
        self.assertEqual(ch.stale_acks, 0)
        self.lose()
        self.assertRaises(ShortStringTooLong, ch.basic_publish, "x" * 300, "jobs", b"body")
        self.assertEqual((len(service.outbox), service.outbox.bytes), (0, 0))
        buffer = bytearray(b"original")
        kept = ch.basic_publish("", "jobs", buffer)
        buffer[:] = b"mutated!"
        self.assertEqual(len(service.outbox), 1)
        broker = self.retry()
        broker.handshake()
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Confirm.Select, 1, spec.Confirm.SelectOk()),
                (spec.Basic.Consume, 1, spec.Basic.ConsumeOk("c")),
            ],
        )
        self.assertEqual(broker.expect_message(1)[2], b"original")
        broker.expect_nothing()
        broker.send_method(1, spec.Basic.Ack(1, False))
        self.assertIsInstance(self.successResultOf(kept), spec.Basic.Ack)
        self.stop(service)


class RecoveryFailureTests(ServiceTestCase):
    """A recovery that fails is reported, and retried after the backoff."""

    def test_failed_redeclare_retried(self) -> None:
        """The broker refusing a re-declare (Channel.Close 406) gives RecoveryFailed
        naming the queue record; the connection is aborted and the service stays
        unhealthy; after the retry delay a new attempt succeeds, with
        RecoverySucceeded and healthy again.  Nothing is logged as an error."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.queue_declare("jobs", durable=True))
        self.done(ch.basic_consume("jobs", self.handler, consumer_tag="c"))
        self.lose()
        waiting = service.whenConnected()
        broker = self.retry()
        broker.handshake()
        refusal = spec.Channel.Close(406, "PRECONDITION_FAILED - inequivalent arg", 50, 10)
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Queue.Declare, 2, refusal),
                (spec.Channel.CloseOk, 2, None),
            ],
        )
        broker.expect_nothing()
        self.assertTrue(broker.transport.disconnected)  # aborted, not closed politely
        self.assertTrue(broker.lost)
        self.assertEqual(self.kinds(), ["ConnectionLost", "RecoveryStarted", "RecoveryFailed"])
        failed = self.events[-1]
        assert isinstance(failed, RecoveryFailed)
        self.assertEqual(failed.entity, QueueRecord("jobs", durable=True))
        self.assertIsInstance(failed.error, ChannelClosedByBroker)
        self.assertEqual(failed.error.reply_code, 406)  # type: ignore[attr-defined]
        self.assertFalse(service.healthy)
        self.assertIsInstance(service.last_error, RecoveryError)
        self.assertEqual(service.recoveries, 0)
        self.assertTrue(ch.is_recovering)
        self.assertNoResult(waiting)
        # One timer: the retry, after the policy's delay.
        (call,) = self.clock.getDelayedCalls()
        self.assertGreater(call.getTime(), self.clock.seconds())
        self.clock.advance(call.getTime() - self.clock.seconds() - 0.5)
        self.assertIs(self.broker, broker)
        third = self.retry()
        self.assertIsNot(third, broker)
        third.handshake()
        self.assertEqual(
            respond(third),
            [
                (1, "Channel.Open"),
                (2, "Channel.Open"),
                (2, "Queue.Declare"),
                (2, "Channel.Close"),
                (1, "Basic.Consume"),
            ],
        )
        self.assertIs(self.successResultOf(waiting), amqp_of(third))
        self.assertEqual(self.kinds()[-2:], ["RecoveryStarted", "RecoverySucceeded"])
        self.assertTrue(service.healthy)
        self.assertIsNone(service.last_error)
        self.assertEqual(service.recoveries, 1)
        deliver(third, 1, "c", 1, b"after")
        self.assertEqual(self.received, [(1, 1, b"after")])
        self.assertEqual(self.flushLoggedErrors(), [])
        self.stop(service)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_failed_channel_restore_retried(self) -> None:
        """The broker refusing a channel's restored QoS gives RecoveryFailed naming
        the channel; the channel is not closed for good but restored (same number,
        same QoS) by the next attempt."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.basic_qos(0, 5))
        self.lose()
        broker = self.retry()
        broker.handshake()
        refusal = spec.Channel.Close(406, "PRECONDITION_FAILED", 60, 10)
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Basic.Qos, 1, refusal),
                (spec.Channel.CloseOk, 1, None),
            ],
        )
        broker.expect_nothing()
        self.assertTrue(broker.lost)
        failed = self.events[-1]
        assert isinstance(failed, RecoveryFailed)
        self.assertEqual(failed.entity, "channel 1")
        self.assertIsInstance(failed.error, ChannelClosedByBroker)
        self.assertTrue(ch.is_recovering)
        self.assertEqual(service.channels, {1: ch})
        third = self.retry()
        third.handshake()
        qos = script(
            third,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Basic.Qos, 1, spec.Basic.QosOk()),
            ],
        )[1]
        third.expect_nothing()
        self.assertEqual(qos.prefetch_count, 5)
        self.assertTrue(ch.is_open)
        self.assertTrue(service.healthy)
        self.assertEqual(self.kinds()[-1], "RecoverySucceeded")
        self.assertEqual(self.flushLoggedErrors(), [])
        self.stop(service)

    def test_connection_lost_awaiting_work_channel_close_ok(self) -> None:
        """The connection dropping while recovery waits for the work channel's
        CloseOk fails that recovery: RecoveryFailed (not RecoverySucceeded), the
        service stays unhealthy with the retry as the one timer, and the next
        attempt recovers everything."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.queue_declare("jobs"))
        self.lose()
        waiting = service.whenConnected()
        broker = self.retry()
        broker.handshake()
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Queue.Declare, 2, spec.Queue.DeclareOk("jobs", 0, 0)),
                (spec.Channel.Close, 2, None),
            ],
        )
        broker.lose()
        self.assertEqual(self.kinds(), ["ConnectionLost", "RecoveryStarted", "RecoveryFailed"])
        failed = self.events[-1]
        assert isinstance(failed, RecoveryFailed)
        self.assertEqual(failed.entity, "connection")
        self.assertFalse(service.healthy)
        self.assertIsNone(service.connection)
        self.assertEqual(service.recoveries, 0)
        self.assertTrue(ch.is_recovering)
        self.assertNoResult(waiting)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # the retry, nothing else
        third = self.retry()
        third.handshake()
        self.assertEqual(
            respond(third),
            [
                (1, "Channel.Open"),
                (2, "Channel.Open"),
                (2, "Queue.Declare"),
                (2, "Channel.Close"),
            ],
        )
        self.assertIs(self.successResultOf(waiting), amqp_of(third))
        self.assertEqual(self.kinds()[-2:], ["RecoveryStarted", "RecoverySucceeded"])
        self.assertTrue(service.healthy)
        self.assertTrue(ch.is_open)
        self.assertEqual(service.recoveries, 1)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.stop(service)

    def test_channel_closed_by_broker_after_restore(self) -> None:
        """The broker closing channel 1 (406) after its OpenOk and QoS were restored,
        while recovery still declares the topology: RecoveryFailed names "channel 1",
        the connection is dropped and retried, the channel is not closed for good,
        and the next attempt restores channel 1 and succeeds."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.basic_qos(0, 5))
        self.done(ch.queue_declare("jobs"))
        self.lose()
        waiting = service.whenConnected()
        broker = self.retry()
        broker.handshake()
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Basic.Qos, 1, spec.Basic.QosOk()),
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Queue.Declare, 2, None),
            ],
        )
        broker.send_method(1, spec.Channel.Close(406, "PRECONDITION_FAILED", 0, 0))
        broker.expect(spec.Channel.CloseOk, 1)
        broker.expect_nothing()
        self.assertFalse(ch.is_closed)
        self.assertTrue(ch.is_recovering)
        broker.send_method(2, spec.Queue.DeclareOk("jobs", 0, 0))
        script(broker, [(spec.Channel.Close, 2, spec.Channel.CloseOk())])
        broker.expect_nothing()
        self.assertTrue(broker.lost)
        self.assertEqual(self.kinds(), ["ConnectionLost", "RecoveryStarted", "RecoveryFailed"])
        failed = self.events[-1]
        assert isinstance(failed, RecoveryFailed)
        self.assertEqual(failed.entity, "channel 1")
        self.assertIn("channel 1", str(failed.error))
        self.assertFalse(service.healthy)
        self.assertTrue(ch.is_recovering)
        self.assertEqual(service.channels, {1: ch})
        self.assertNoResult(waiting)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # the retry
        third = self.retry()
        third.handshake()
        self.assertEqual(
            respond(third),
            [
                (1, "Channel.Open"),
                (1, "Basic.Qos"),
                (2, "Channel.Open"),
                (2, "Queue.Declare"),
                (2, "Channel.Close"),
            ],
        )
        self.assertIs(self.successResultOf(waiting), amqp_of(third))
        self.assertEqual(self.kinds()[-2:], ["RecoveryStarted", "RecoverySucceeded"])
        self.assertTrue(ch.is_open)
        self.assertTrue(service.healthy)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.stop(service)


class BrokerCancelTests(ServiceTestCase):
    """A consumer the broker cancels is restarted when its queue is recorded."""

    def test_cancel_of_recorded_queue_resumes(self) -> None:
        """A broker-sent Basic.Cancel for a consumer of a recorded queue gives
        ConsumerCancelledByBroker(resumed=True); the queue and its binding are
        declared again on a work channel, then the consumer starts again with the
        same tag and gets deliveries."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.queue_declare("jobs"))
        self.done(ch.queue_bind("jobs", "amq.direct", "j"))
        queue, tag = self.done(ch.basic_consume("jobs", consumer_tag="c"))
        self.assertEqual(tag, "c")
        cancelled: list[Any] = []
        ch.add_on_cancel_callback(cancelled.append)
        self.events.clear()
        self.broker.send_method(1, spec.Basic.Cancel("c", False))
        sent = script(
            self.broker,
            [
                (spec.Basic.CancelOk, 1, None),
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Queue.Declare, 2, spec.Queue.DeclareOk("jobs", 0, 0)),
                (spec.Queue.Bind, 2, spec.Queue.BindOk()),
                (spec.Channel.Close, 2, spec.Channel.CloseOk()),
                (spec.Basic.Consume, 1, spec.Basic.ConsumeOk("c")),
            ],
        )
        self.broker.expect_nothing()
        self.assertEqual(self.events, [ConsumerCancelledByBroker(1, "c", "jobs", True)])
        self.assertEqual(len(cancelled), 1)
        self.assertEqual((sent[2].queue, sent[3].routing_key), ("jobs", "j"))
        self.assertEqual((sent[5].queue, sent[5].consumer_tag), ("jobs", "c"))
        self.assertEqual(ch.consumer_tags, ["c"])
        self.assertFalse(queue.closed)
        deliver(self.broker, 1, "c", 1, b"again")
        message = self.successResultOf(queue.get())
        self.assertEqual(message.body, b"again")
        self.assertIs(message.channel, ch)
        self.stop(service)

    def test_consumer_timeout_reopens_channel(self) -> None:
        """RabbitMQ 3.10 enforces its consumer timeout by closing the channel (406,
        "delivery acknowledgement ... timed out"): the channel is opened again with
        the same number and QoS, its consumer starts again with the same tag, the
        listeners hear ConsumerCancelledByBroker(resumed=True), the held delivery's
        ack is stale, and new deliveries get tags after it."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.basic_qos(0, 5))
        self.done(ch.queue_declare("jobs"))
        self.done(ch.basic_consume("jobs", self.handler, consumer_tag="c"))
        deliver(self.broker, 1, "c", 1, b"held")
        self.events.clear()
        text = (
            "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. "
            "Timeout value used: 1800000 ms."
        )
        self.broker.send_method(1, spec.Channel.Close(406, text, 0, 0))
        sent = script(
            self.broker,
            [
                (spec.Channel.CloseOk, 1, None),
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Basic.Qos, 1, spec.Basic.QosOk()),
                (spec.Basic.Consume, 1, spec.Basic.ConsumeOk("c")),
            ],
        )
        self.assertEqual((sent[2].prefetch_count, sent[3].consumer_tag), (5, "c"))
        self.broker.expect_nothing()
        self.assertEqual(self.events, [ConsumerCancelledByBroker(1, "c", "jobs", True)])
        self.assertTrue(ch.is_open)
        self.assertFalse(ch.basic_ack(1))
        self.broker.expect_nothing()
        deliver(self.broker, 1, "c", 1, b"again")
        self.assertEqual(self.received[-1], (1, 2, b"again"))
        self.assertTrue(ch.basic_ack(2))
        ack = self.broker.expect(spec.Basic.Ack, 1)
        self.assertEqual(ack.delivery_tag, 1)
        self.stop(service)

    def test_cancel_of_unrecorded_queue_ends_consumer(self) -> None:
        """A broker-sent Basic.Cancel for a consumer of a queue declared elsewhere
        gives ConsumerCancelledByBroker(resumed=False), ends its queue object with
        ConsumerCancelled, forgets it, and sends nothing but the CancelOk."""
        service = self.start()
        ch = self.open(service)
        queue, _ = self.done(ch.basic_consume("elsewhere", consumer_tag="c"))
        self.events.clear()
        self.broker.send_method(1, spec.Basic.Cancel("c", False))
        self.broker.expect(spec.Basic.CancelOk, 1)
        self.broker.expect_nothing()
        self.assertEqual(self.events, [ConsumerCancelledByBroker(1, "c", "elsewhere", False)])
        self.assertTrue(queue.closed)
        self.failureResultOf(queue.get(), ConsumerCancelled)
        self.assertEqual(ch.consumer_tags, [])
        self.assertEqual(service.topology.consumers, [])
        self.assertEqual(self.reconnect(), [(1, "Channel.Open")])
        self.stop(service)

    def test_queue_deleted_meanwhile_ends_consumer(self) -> None:
        """A queue deleted by the application from another channel: the broker's
        cancel arrives before the DeleteOk, so resuming starts, but finds the queue
        forgotten once its work channel is open; the consumer then ends
        (resumed=False), nothing is declared or consumed again, and the consumer's
        channel stays open."""
        service = self.start()
        ch = self.open(service, 1)
        other = self.open(service, 2)
        self.done(ch.queue_declare("jobs"))
        queue, _ = self.done(ch.basic_consume("jobs", consumer_tag="c"))
        self.events.clear()
        deleted = other.queue_delete("jobs")
        self.broker.expect(spec.Queue.Delete, 2)
        self.broker.send_method(1, spec.Basic.Cancel("c", False))
        script(
            self.broker,
            [(spec.Basic.CancelOk, 1, None), (spec.Channel.Open, 3, None)],
        )
        self.broker.send_method(2, spec.Queue.DeleteOk(0))
        self.successResultOf(deleted)
        self.broker.send_method(3, spec.Channel.OpenOk())
        script(self.broker, [(spec.Channel.Close, 3, spec.Channel.CloseOk())])
        self.broker.expect_nothing()
        self.assertEqual(self.events, [ConsumerCancelledByBroker(1, "c", "jobs", False)])
        self.assertTrue(queue.closed)
        self.assertEqual(ch.consumer_tags, [])
        self.assertTrue(ch.is_open)
        self.stop(service)

    def test_cancel_during_recovery_resumes(self) -> None:
        """A broker-sent Basic.Cancel for consumer c1 arriving during recovery (after
        c1's ConsumeOk, before c2's) is not lost: once recovery is done, c1's queue is
        declared again on a work channel and c1 consumes again with its tag;
        ConsumerCancelledByBroker(resumed=True) is reported and c1 gets deliveries."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.queue_declare("q1"))
        self.done(ch.queue_declare("q2"))
        self.done(ch.basic_consume("q1", self.handler, consumer_tag="c1"))
        self.done(ch.basic_consume("q2", self.handler, consumer_tag="c2"))
        self.lose()
        broker = self.retry()
        broker.handshake()
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Queue.Declare, 2, spec.Queue.DeclareOk("q1", 0, 0)),
                (spec.Queue.Declare, 2, spec.Queue.DeclareOk("q2", 0, 0)),
                (spec.Channel.Close, 2, spec.Channel.CloseOk()),
                (spec.Basic.Consume, 1, spec.Basic.ConsumeOk("c1")),
                (spec.Basic.Consume, 1, None),
            ],
        )
        broker.send_method(1, spec.Basic.Cancel("c1", False))
        broker.expect(spec.Basic.CancelOk, 1)
        broker.send_method(1, spec.Basic.ConsumeOk("c2"))
        self.assertEqual(self.kinds()[-1], "RecoverySucceeded")
        self.assertTrue(service.healthy)
        sent = script(
            broker,
            [
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Queue.Declare, 2, spec.Queue.DeclareOk("q1", 0, 0)),
                (spec.Channel.Close, 2, spec.Channel.CloseOk()),
                (spec.Basic.Consume, 1, spec.Basic.ConsumeOk("c1")),
            ],
        )
        broker.expect_nothing()
        self.assertEqual(sent[1].queue, "q1")
        self.assertEqual((sent[3].queue, sent[3].consumer_tag), ("q1", "c1"))
        self.assertEqual(self.events[-1], ConsumerCancelledByBroker(1, "c1", "q1", True))
        self.assertEqual(sorted(ch.consumer_tags), ["c1", "c2"])
        deliver(broker, 1, "c1", 1, b"again")
        self.assertEqual(self.received, [(1, 1, b"again")])
        self.assertEqual(self.flushLoggedErrors(), [])
        self.stop(service)


class ChannelStateTests(ServiceTestCase):
    """Closing for good, transactions cut off by a disconnection."""

    def test_channel_error_seen_at_once(self) -> None:
        """When the broker closes the channel over a refused call, code in that call's
        errback already sees the channel closed for good: is_closed, close_reason, not
        in service.channels; close callbacks and when_closed fire once."""
        service = self.start()
        ch = self.open(service)
        seen: list[tuple[bool, bool, bool]] = []
        closed: list[Exception] = []
        ch.add_on_close_callback(lambda channel, reason: closed.append(reason))
        waiting = ch.when_closed()

        def refused(failure: Any) -> None:
            seen.append((ch.is_closed, ch.is_recovering, 1 in service.channels))

        ch.queue_declare("missing", passive=True).addErrback(refused)
        self.broker.expect(spec.Queue.Declare, 1)
        self.broker.send_method(1, spec.Channel.Close(404, "NOT_FOUND", 50, 10))
        self.assertEqual(seen, [(True, False, False)])
        self.assertIsInstance(ch.close_reason, ChannelClosedByBroker)
        self.assertEqual(len(closed), 1)
        self.assertIs(self.successResultOf(waiting), closed[0])
        self.assertRaises(ChannelWrongStateError, ch.queue_declare, "other")
        self.stop(service)

    def test_transaction_cut_off_is_rolled_back(self) -> None:
        """A transaction holding a publish when the connection drops: after recovery
        the next tx_commit sends Tx.Rollback (not Commit) and fails with
        TransactionRolledBack; the transaction after it commits normally."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.tx_select())
        ch.basic_publish("", "jobs", b"lost")
        self.reconnect()
        self.broker.read()
        ch.basic_publish("", "jobs", b"after")
        self.broker.read()  # the publish
        committing = ch.tx_commit()
        script(self.broker, [(spec.Tx.Rollback, 1, spec.Tx.RollbackOk())])
        self.failureResultOf(committing, TransactionRolledBack)
        ch.basic_publish("", "jobs", b"again")
        self.broker.read()
        committing = ch.tx_commit()
        script(self.broker, [(spec.Tx.Commit, 1, spec.Tx.CommitOk())])
        self.successResultOf(committing)
        self.stop(service)

    def test_clean_transaction_survives(self) -> None:
        """A transaction with nothing in it when the connection drops is not lost:
        the next commit is a plain Tx.Commit."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.tx_select())
        ch.basic_publish("", "jobs", b"x")
        self.done(ch.tx_commit())
        self.reconnect()
        committing = ch.tx_commit()
        script(self.broker, [(spec.Tx.Commit, 1, spec.Tx.CommitOk())])
        self.successResultOf(committing)
        self.stop(service)

    def test_commit_in_flight_when_connection_drops(self) -> None:
        """A tx_commit whose CommitOk never came fails with the connection's error;
        the transaction the application then redoes after recovery (publish +
        tx_commit) sends Tx.Commit, not Tx.Rollback, and succeeds."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.tx_select())
        ch.basic_publish("", "jobs", b"first")
        committing = ch.tx_commit()
        self.assertEqual(self.broker.expect_message(1)[2], b"first")
        self.broker.expect(spec.Tx.Commit, 1)
        self.lose()
        self.failureResultOf(committing, StreamLostError)
        self.assertEqual(self.reconnect(), [(1, "Channel.Open"), (1, "Tx.Select")])
        ch.basic_publish("", "jobs", b"redone")
        self.assertEqual(self.broker.expect_message(1)[2], b"redone")
        committing = ch.tx_commit()
        script(self.broker, [(spec.Tx.Commit, 1, spec.Tx.CommitOk())])
        self.assertIsInstance(self.successResultOf(committing).method, spec.Tx.CommitOk)
        self.broker.expect_nothing()
        self.stop(service)

    def test_rpc_timeout_drops_connection_not_channel(self) -> None:
        """A call on a service channel that gets no reply within rpc_timeout fails
        with AMQPTimeoutError; once the core channel's Close is answered, the
        connection is dropped (ConnectionLost with a StreamLostError naming the
        channel, a retry scheduled), the RecoveringChannel is not closed for good,
        and the retry recovers it under the same number."""
        service = self.start(rpc_timeout=5)
        ch = self.open(service)
        broker = self.broker
        getting = ch.basic_get("jobs")
        broker.expect(spec.Basic.Get, 1)
        self.clock.advance(5)
        self.failureResultOf(getting, AMQPTimeoutError)
        self.events.clear()
        script(broker, [(spec.Channel.Close, 1, spec.Channel.CloseOk())])
        self.assertFalse(ch.is_closed)
        self.assertTrue(ch.is_recovering)
        self.assertEqual(service.channels, {1: ch})
        self.assertTrue(broker.lost)
        self.assertFalse(service.healthy)
        self.assertEqual(self.kinds(), ["ConnectionLost"])
        lost = self.events[0]
        assert isinstance(lost, ConnectionLost)
        self.assertIsInstance(lost.reason, StreamLostError)
        self.assertIn("channel 1", str(lost.reason))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # the retry
        third = self.retry()
        third.handshake()
        self.assertEqual(respond(third), [(1, "Channel.Open")])
        self.assertTrue(ch.is_open)
        self.assertEqual(ch.channel_number, 1)
        self.assertEqual(service.channels, {1: ch})
        self.assertTrue(service.healthy)
        self.assertEqual(self.kinds()[-1], "RecoverySucceeded")
        self.assertEqual(self.flushLoggedErrors(), [])
        self.stop(service)

    def test_close_during_recovery(self) -> None:
        """Closing a channel after recovery sent its Channel.Open, before the OpenOk:
        the channel is closed for good and forgotten at once; the core channel the
        OpenOk then opens is closed again; recovery goes on and succeeds (no
        RecoveryFailed, nothing logged), recovering only the other channel."""
        service = self.start()
        ch = self.open(service, 1)
        other = self.open(service, 2)
        self.done(other.queue_declare("jobs"))
        self.lose()
        broker = self.retry()
        broker.handshake()
        broker.expect(spec.Channel.Open, 1)
        broker.expect_nothing()
        self.successResultOf(ch.close())
        self.assertTrue(ch.is_closed)
        self.assertIsInstance(ch.close_reason, ChannelClosedByClient)
        self.assertEqual(service.channels, {2: other})
        broker.send_method(1, spec.Channel.OpenOk())
        close = broker.expect(spec.Channel.Close, 1)
        self.assertEqual(close.reply_code, 0)
        broker.expect_nothing()
        broker.send_method(1, spec.Channel.CloseOk())
        sent = respond(broker)
        self.assertEqual(
            [name for _, name in sent],
            ["Channel.Open", "Channel.Open", "Queue.Declare", "Channel.Close"],
        )
        self.assertEqual(sent[0], (2, "Channel.Open"))
        self.assertNotIn(1, amqp_of(broker).channels)
        self.assertEqual(self.kinds(), ["ConnectionLost", "RecoveryStarted", "RecoverySucceeded"])
        succeeded = self.events[-1]
        assert isinstance(succeeded, RecoverySucceeded)
        self.assertEqual(succeeded.channels, 1)
        self.assertTrue(service.healthy)
        self.assertTrue(other.is_open)
        self.assertTrue(ch.is_closed)
        self.assertEqual(service.channels, {2: other})
        self.assertEqual(self.flushLoggedErrors(), [])
        self.stop(service)


class StopTests(ServiceTestCase):
    """stopService cancels consumers, waits for handlers (within bounds), closes."""

    def busy(self, **kw: Any) -> tuple[AMQPClientService, Deferred[None]]:
        """A service whose consumer's handler is still running (its Deferred unfired)."""
        service = self.start(**kw)
        ch = self.open(service)
        running: Deferred[None] = Deferred()
        calls: list[bytes] = []

        def handler(ch: RecoveringChannel, method: Any, props: Any, body: bytes) -> object:
            calls.append(body)
            return running

        self.done(ch.basic_consume("jobs", handler, consumer_tag="c"))
        deliver(self.broker, 1, "c", 1, b"work")
        self.assertEqual(calls, [b"work"])
        return service, running

    def test_stop_waits_for_handler(self) -> None:
        """stopService cancels the consumer, then waits for the running handler;
        once it finishes, Connection.Close goes out and the stop completes with no
        timer left."""
        service, running = self.busy(stop_timeout=10.0)
        broker = self.broker
        stopped = service.stopService()
        script(broker, [(spec.Basic.Cancel, 1, lambda m: spec.Basic.CancelOk(m.consumer_tag))])
        broker.expect_nothing()
        self.assertNoResult(stopped)
        self.clock.advance(9.0)
        broker.expect_nothing()
        running.callback(None)
        script(broker, [(spec.Connection.Close, 0, spec.Connection.CloseOk())])
        self.successResultOf(stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_stop_does_not_wait_for_ever(self) -> None:
        """A handler that never finishes delays the close only until stop_timeout
        passes on the clock; then the close goes out, no timer is left, the service
        warns that it closed with handlers still running, and nothing is logged as
        an error (no unhandled CancelledError from the abandoned wait)."""
        warnings: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_level") is LogLevel.warn:
                warnings.append(str(event.get("log_format")))

        observer = cast(ILogObserver, observe)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        service, running = self.busy(stop_timeout=5.0)
        broker = self.broker
        stopped = service.stopService()
        self.assertEqual(respond(broker), [(1, "Basic.Cancel")])
        self.clock.advance(4.5)
        broker.expect_nothing()
        self.assertNoResult(stopped)
        self.clock.advance(0.5)
        script(broker, [(spec.Connection.Close, 0, spec.Connection.CloseOk())])
        self.successResultOf(stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        running.callback(None)  # finishing late disturbs nothing
        del running, stopped
        gc.collect()  # an unhandled failure in a Deferred is logged when it is collected
        errors = self.flushLoggedErrors()
        self.assertTrue(
            any("still running" in text for text in warnings), f"no warning in {warnings!r}"
        )
        self.assertEqual(errors, [])

    def test_stop_during_recovery(self) -> None:
        """Stopping while recovery waits for the broker aborts the new connection:
        the stop completes without a RecoveryFailed event, waiters of whenConnected
        are cancelled, the channel is closed for good, and no timer is left."""
        service = self.start()
        ch = self.open(service)
        self.done(ch.queue_declare("jobs"))
        self.lose()
        waiting = service.whenConnected()
        broker = self.retry()
        broker.handshake()
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Queue.Declare, 2, None),
            ],
        )
        stopped = service.stopService()
        broker.expect_nothing()
        self.assertTrue(broker.transport.disconnected)  # aborted
        broker.deliver_loss()
        self.successResultOf(stopped)
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(self.kinds(), ["ConnectionLost", "RecoveryStarted"])
        self.assertTrue(ch.is_closed)
        self.assertFalse(service.healthy)
        self.assertEqual(len(self.endpoint.brokers), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_stop_during_recovery_ends_quietly(self) -> None:
        """Stopping after the new connection's handshake, while recovery waits for a
        re-declare and a handler of the earlier connection still runs: the message
        kept in the outbox fails with ConnectionRecovering at once, recovery is
        abandoned (nothing more is sent, no RecoveryFailed event), the consumer's
        queue object ends quietly (closed without an error: get() fails with
        ConsumerCancelled), the stop completes once the handler ends, and the
        channel is closed for good by the client."""
        service = self.start(outbox_messages=5, stop_timeout=10.0)
        ch = self.open(service)
        self.done(ch.confirm_delivery())
        self.done(ch.queue_declare("jobs"))
        queue, _ = self.done(ch.basic_consume("jobs", consumer_tag="c"))
        running: Deferred[None] = Deferred()
        self.done(ch.basic_consume("jobs", lambda *args: running, consumer_tag="h"))
        deliver(self.broker, 1, "h", 1, b"work")
        self.lose()
        kept = ch.basic_publish("", "jobs", b"kept")
        self.assertNoResult(kept)
        broker = self.retry()
        broker.handshake()
        script(
            broker,
            [
                (spec.Channel.Open, 1, spec.Channel.OpenOk()),
                (spec.Confirm.Select, 1, spec.Confirm.SelectOk()),
                (spec.Channel.Open, 2, spec.Channel.OpenOk()),
                (spec.Queue.Declare, 2, None),
            ],
        )
        stopped = service.stopService()
        self.failureResultOf(kept, ConnectionRecovering)
        broker.expect_nothing()
        broker.deliver_loss()
        self.assertTrue(queue.closed)
        self.failureResultOf(queue.get(), ConsumerCancelled)
        self.assertTrue(ch.is_closed)
        self.assertIsInstance(ch.close_reason, ConnectionClosedByClient)
        self.assertEqual(self.kinds(), ["ConnectionLost", "RecoveryStarted"])
        assert service.outbox is not None
        self.assertEqual(len(service.outbox), 0)
        self.assertFalse(service.healthy)
        self.assertNoResult(stopped)  # the handler still runs: the stop waits for it
        running.callback(None)
        self.successResultOf(stopped)
        broker.expect_nothing()
        self.assertEqual(self.kinds(), ["ConnectionLost", "RecoveryStarted"])
        self.assertEqual(service.channels, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.flushLoggedErrors(), [])


class LeakTests(ServiceTestCase):
    """Many recoveries leave nothing behind."""

    def test_thousand_recoveries_stay_flat(self) -> None:
        """1,000 lose/reconnect/recover cycles of one channel, one queue, one binding
        and one consumer keep the topology, the channels and the channel's callback
        lists the same size, and the number of live protocols and core channels
        does not grow."""
        self.endpoint.keep_last_only = True
        service = self.start()
        service.remove_listener(self.events.append)
        ch = self.open(service)
        self.done(ch.queue_declare("jobs"))
        self.done(ch.queue_bind("jobs", "amq.direct", "j"))
        self.done(ch.basic_consume("jobs", self.handler, consumer_tag="c"))
        ch.add_on_return_callback(lambda *args: None)
        ch.add_on_cancel_callback(lambda frame: None)

        def sizes() -> tuple[int, ...]:
            core = ch.channel
            connection = service.connection
            assert core is not None and connection is not None
            return (
                len(connection._close_callbacks),
                len(connection.channels),
                len(service.topology),
                len(service.channels),
                len(ch._consumers),
                len(ch._return_callbacks),
                len(ch._cancel_callbacks),
                len(ch._handlers),
                len(core._close_callbacks),
                len(core._return_callbacks),
                len(core._cancel_callbacks),
                len(service._listeners),
            )

        def alive() -> tuple[int, int]:
            gc.collect()
            objects = gc.get_objects()
            return (
                sum(isinstance(o, AMQPProtocol) for o in objects),
                sum(isinstance(o, Channel) for o in objects),
            )

        expected = sizes()
        expected_sent = [
            (1, "Channel.Open"),
            (2, "Channel.Open"),
            (2, "Queue.Declare"),
            (2, "Queue.Bind"),
            (2, "Channel.Close"),
            (1, "Basic.Consume"),
        ]
        at_100 = (0, 0)
        for cycle in range(1, 1001):
            sent = self.reconnect()
            if sent != expected_sent:
                raise FailTest(f"cycle {cycle}: {sent!r}")
            if cycle == 1 or cycle % 100 == 0:
                self.assertEqual(sizes(), expected, f"cycle {cycle}")
            if cycle == 100:
                at_100 = alive()
        at_1000 = alive()
        self.assertEqual(service.recoveries, 1000)
        self.assertLessEqual(at_1000[0], at_100[0] + 2)
        self.assertLessEqual(at_1000[1], at_100[1] + 2)
        self.stop(service)

"""RelayLink on a Clock, both sides played by in-memory FakeBrokers (no broker).

Each side's :class:`~txamqp091.service.AMQPClientService` connects through a
``FakeEndpoint`` (a StringTransport and a FakeBroker per connection attempt); the
tests play both brokers frame by frame and check what the link sends each side.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prometheus_client import generate_latest
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import provider

from txamqp091 import ConnectionParameters, codec, fields, spec
from txamqp091.relay.config import LinkConfig
from txamqp091.relay.link import (
    CLOSE_GRACE,
    FORWARD_HEADER,
    REQUEUE_DELAY,
    STATES,
    LinkStateError,
    RelayLink,
)
from txamqp091.relay.metrics import registry_for
from txamqp091.service import AMQPClientService
from txamqp091.test.fakebroker import FakeBroker
from txamqp091.test.test_service import FakeEndpoint

SOURCE_URL = "amqp://guest:guest@source.example:5672/"
DEST_URL = "amqp://guest:guest@dest.example:5672/"
LINK = "east-west"


class LinkTestCase(SynchronousTestCase):
    """Builds links whose services connect to FakeBrokers, and plays both brokers."""

    def setUp(self) -> None:
        self.clock = Clock()
        #: Each connection attempt, by side ("source" or "dest"), in order.
        self.attempts: list[str] = []
        self.endpoints = {
            "source": FakeEndpoint(self.clock, "source", self.attempts),
            "dest": FakeEndpoint(self.clock, "dest", self.attempts),
        }
        #: What the link asked make_service for: (side, targets, settings).
        self.made: list[tuple[str, tuple[str, ...], dict[str, Any]]] = []
        self.services: dict[str, list[AMQPClientService]] = {"source": [], "dest": []}
        #: The states the link reported (its "state" log events), in order.
        self.states: list[str] = []

        @provider(ILogObserver)
        def observe(event: LogEvent) -> None:
            if event.get("relay_event") == "state" and event.get("link") == LINK:
                self.states.append(event["new"])

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def make_service(
        self, side: str, targets: tuple[str, ...], **settings: Any
    ) -> AMQPClientService:
        self.made.append((side, targets, settings))
        service = AMQPClientService(
            self.clock,
            self.endpoints[side],
            parameters=ConnectionParameters(heartbeat=0),
            retry_policy=lambda failures: 1.0,
            **settings,
        )
        self.services[side].append(service)
        return service

    def link(self, **settings: Any) -> RelayLink:
        settings.setdefault("stall_timeout", 0.0)
        settings.setdefault("prefetch", 10)
        settings.setdefault("dest_exchange", "out")
        config = LinkConfig(
            name=LINK,
            sources=(SOURCE_URL,),
            source_queue="inbox",
            dests=(DEST_URL,),
            **settings,
        )
        return RelayLink(
            config,
            self.clock,
            shutdown_timeout=5.0,
            retry_delays=(3.0, 7.0),
            make_service=self.make_service,
        )

    def source(self, index: int = -1) -> FakeBroker:
        return self.endpoints["source"].brokers[index]

    def dest(self, index: int = -1) -> FakeBroker:
        return self.endpoints["dest"].brokers[index]

    # -- conversations -----------------------------------------------------------------

    def start(self, link: RelayLink) -> spec.Basic.Consume:
        """Start *link* and play both brokers until it consumes."""
        link.startService()
        self.assertEqual(link.state, "starting")
        return self.connect_sides(link)

    def connect_sides(self, link: RelayLink) -> spec.Basic.Consume:
        """Play the newest brokers of both sides through the link's start: the
        destination's channel (and confirm mode), then the source's channel, QoS and
        consumer.  :returns: the source's Basic.Consume."""
        self.open_sides(link)
        consume = self.consumed(self.source())
        self.assertEqual(link.state, "running")
        return consume

    def open_sides(self, link: RelayLink) -> None:
        """Play the newest brokers through the link's start up to (not including) the
        source's Basic.Consume."""
        source, dest = self.source(), self.dest()
        dest.handshake()
        dest.expect(spec.Channel.Open, 1)
        dest.send_method(1, spec.Channel.OpenOk())
        if link.config.ack_mode == "on-confirm":
            dest.expect(spec.Confirm.Select, 1)
            dest.send_method(1, spec.Confirm.SelectOk())
        dest.expect_nothing()  # no Confirm.Select in the other modes
        source.handshake()
        source.expect(spec.Channel.Open, 1)
        source.send_method(1, spec.Channel.OpenOk())
        qos = source.expect(spec.Basic.Qos, 1)
        self.assertEqual((qos.prefetch_count, qos.global_), (link.config.prefetch, False))
        source.send_method(1, spec.Basic.QosOk())

    def consumed(self, source: FakeBroker) -> spec.Basic.Consume:
        """Answer the source's Basic.Consume of the source queue."""
        consume = source.expect(spec.Basic.Consume, 1)
        self.assertEqual(consume.queue, "inbox")
        source.send_method(1, spec.Basic.ConsumeOk(consume.consumer_tag))
        return consume

    def cancelled(self, source: FakeBroker, consume: spec.Basic.Consume) -> None:
        """Answer the source's Basic.Cancel of that consumer."""
        cancel = source.expect(spec.Basic.Cancel, 1)
        self.assertEqual(cancel.consumer_tag, consume.consumer_tag)
        source.send_method(1, spec.Basic.CancelOk(cancel.consumer_tag))

    def deliver(
        self,
        source: FakeBroker,
        consume: spec.Basic.Consume,
        tag: int,
        body: bytes = b"payload",
        properties: spec.BasicProperties | None = None,
        routing_key: str = "orders.new",
        redelivered: bool = False,
    ) -> None:
        source.send_message(
            1,
            spec.Basic.Deliver(consume.consumer_tag, tag, redelivered, "in-x", routing_key),
            body,
            properties,
        )

    def published(
        self, dest: FakeBroker, body: bytes = b"payload", routing_key: str = "orders.new"
    ) -> spec.BasicProperties:
        """Take a Basic.Publish of *body* from the destination: to the link's exchange,
        mandatory.  :returns: its properties."""
        method, properties, got = dest.expect_message(1)
        assert isinstance(method, spec.Basic.Publish)
        self.assertEqual(
            (method.exchange, method.routing_key, method.mandatory, got),
            ("out", routing_key, True, body),
        )
        return properties

    def close_connection(self, broker: FakeBroker) -> None:
        """Answer the client's Connection.Close (a normal one)."""
        close = broker.expect(spec.Connection.Close)
        self.assertEqual(close.reply_code, 200)
        broker.send_method(0, spec.Connection.CloseOk())
        broker.deliver_loss()
        self.assertTrue(broker.lost)

    def close_sides(self, consume: spec.Basic.Consume | None) -> None:
        """Play the newest brokers through the link stopping both sides: the source's
        consumer cancel (if *consume*), then each close handshake."""
        source, dest = self.source(), self.dest()
        if consume is not None:
            self.cancelled(source, consume)
        self.close_connection(source)
        self.close_connection(dest)

    def stop(self, link: RelayLink, consume: spec.Basic.Consume | None) -> None:
        """Stop *link*, play the close handshakes, and check nothing is left."""
        stopped = link.stopService()
        self.close_sides(consume)
        self.successResultOf(stopped)
        self.assertEqual(link.state, "stopped")
        self.assertFalse(link.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def refuse_consume(self, link: RelayLink) -> None:
        """Play the newest brokers through a start whose consumer the source refuses
        (Channel.Close 404: no such queue)."""
        self.open_sides(link)
        source = self.source()
        source.expect(spec.Basic.Consume, 1)
        source.send_method(1, spec.Channel.Close(404, "NOT_FOUND - no queue 'inbox'", 60, 20))
        source.expect(spec.Channel.CloseOk, 1)
        source.expect_nothing()
        self.assertEqual(link.state, "failed")

    def assertCounters(self, link: RelayLink, **expected: Any) -> None:
        """Every counter of *link* is 0 except those given."""
        everything: dict[str, Any] = {
            f.name: 0 for f in dataclasses.fields(link.counters) if f.name != "reconnects"
        }
        everything["reconnects"] = {"source": 0, "dest": 0}
        everything.update(expected)
        self.assertEqual(dataclasses.asdict(link.counters), everything)

    def written(self, broker: FakeBroker, kind: type[spec.Method]) -> list[Any]:
        """Every *kind* method the client wrote to *broker*, read or not."""
        broker.read()
        return [
            f.method
            for f in broker.written
            if isinstance(f, codec.MethodFrame) and isinstance(f.method, kind)
        ]


class OnConfirmTests(LinkTestCase):
    """``ack-mode on-confirm``: a delivery is acknowledged once the destination
    confirmed its copy, and given back (per ``on-reject``) otherwise."""

    def test_acked_only_after_the_destination_confirmed(self) -> None:
        """The delivery is published to the destination exchange with its routing key,
        properties and headers, mandatory; the source gets the Basic.Ack for it only
        after the destination's Basic.Ack, and for that tag only."""
        link = self.link()
        consume = self.start(link)
        self.assertFalse(consume.no_ack)
        source, dest = self.source(), self.dest()
        first = spec.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id="m-1",
            headers={"tenant": "acme", "n": 7},
        )
        self.deliver(source, consume, 1, b'{"a": 1}', first)
        self.deliver(source, consume, 2, b"second", routing_key="orders.old")
        self.assertEqual(self.published(dest, b'{"a": 1}'), first)
        self.assertEqual(self.published(dest, b"second", "orders.old"), spec.BasicProperties())
        source.expect_nothing()  # nothing acknowledged before the confirms
        self.assertEqual(link.in_flight, 2)
        self.assertCounters(link, consumed=2, published=2)
        dest.send_method(1, spec.Basic.Ack(2, False))  # the second publish first
        source.expect_nothing()  # the first still waits: acks go in delivery order
        self.assertCounters(link, consumed=2, published=2, confirmed=1)
        dest.send_method(1, spec.Basic.Ack(1, False))
        ack = source.expect(spec.Basic.Ack, 1)  # both at once
        self.assertEqual((ack.delivery_tag, ack.multiple), (2, True))
        source.expect_nothing()
        self.assertEqual(link.in_flight, 0)
        self.assertCounters(link, consumed=2, published=2, confirmed=2, acked=2)
        self.stop(link, consume)

    def test_header_types_kept(self) -> None:
        """Header values keep their wire types through the relay (a 64-bit count in
        x-death, a 16-bit or unsigned value, a 32-bit float, a non-UTF-8 long
        string): the published properties encode to the same bytes."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        sent = spec.BasicProperties(
            headers={
                "x-death": [{"count": fields.Int64(1), "queue": "q"}],
                "small": fields.Int8(-3),
                "port": fields.UInt16(5672),
                "big": fields.UInt32(2**32 - 1),
                "ratio": fields.Float32(0.5),
                "raw": fields.LongStr(b"\xff\xfe"),
                "plain": 7,
            }
        )
        self.deliver(source, consume, 1, b"typed", sent)
        got = self.published(dest, b"typed")
        self.assertEqual(got.encode(), sent.encode())
        dest.send_method(1, spec.Basic.Ack(1, False))
        self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, 1)
        self.stop(link, consume)

    def test_acks_in_delivery_order_one_frame_per_run(self) -> None:
        """Confirmed deliveries are acknowledged oldest first, each run of settled ones
        with one Basic.Ack (multiple, up to the newest confirmed); a rejected one in
        the middle gets its own Basic.Nack and no longer holds the newer ones back."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        for tag in (1, 2, 3, 4):
            self.deliver(source, consume, tag, f"m{tag}".encode())
            self.published(dest, f"m{tag}".encode())
        dest.send_method(1, spec.Basic.Ack(1, False))
        ack = source.expect(spec.Basic.Ack, 1)
        self.assertEqual((ack.delivery_tag, ack.multiple), (1, True))
        dest.send_method(1, spec.Basic.Ack(4, False))
        dest.send_method(1, spec.Basic.Ack(3, False))
        source.expect_nothing()  # 2 is not settled yet
        dest.send_method(1, spec.Basic.Nack(2, False, False))
        source.expect_nothing()
        self.clock.advance(REQUEUE_DELAY)
        nack = source.expect(spec.Basic.Nack, 1)
        self.assertEqual((nack.delivery_tag, nack.requeue), (2, True))
        ack = source.expect(spec.Basic.Ack, 1)  # 3 and 4 together
        self.assertEqual((ack.delivery_tag, ack.multiple), (4, True))
        source.expect_nothing()
        self.assertCounters(
            link, consumed=4, published=4, confirmed=3, acked=3, nacked=1, requeued=1
        )
        self.stop(link, consume)

    def test_dest_routing_key_replaces_the_messages_own(self) -> None:
        """With dest_routing_key set, every publish uses it (even ''), whatever the
        delivery's routing key; and the services get the settings the link needs."""
        for routing_key in ("fixed.key", ""):
            link = self.link(dest_routing_key=routing_key)
            consume = self.start(link)
            source, dest = self.source(), self.dest()
            self.deliver(source, consume, 1, routing_key="orders.new")
            self.published(dest, routing_key=routing_key)
            dest.send_method(1, spec.Basic.Ack(1, False))
            self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, 1)
            self.stop(link, consume)
        source_settings = {"stop_timeout": 5.0}
        dest_settings = {"outbox_messages": 10, "outbox_bytes": 256 * 1024 * 1024}
        self.assertEqual(
            self.made,
            [
                ("source", (SOURCE_URL,), source_settings),
                ("dest", (DEST_URL,), dest_settings),
            ]
            * 2,
        )

    def check_rejected(
        self, on_reject: str, settle: type[spec.Method], requeue: bool, **counters: int
    ) -> None:
        """The destination nacks the publish: the source gets *settle* (never an ack)."""
        link = self.link(on_reject=on_reject)
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        self.deliver(source, consume, 1)
        self.published(dest)
        source.expect_nothing()
        dest.send_method(1, spec.Basic.Nack(1, False, False))
        if on_reject == "requeue":  # held a moment, so that it does not loop at once
            source.expect_nothing()
            self.clock.advance(REQUEUE_DELAY)
        given_back: Any = source.expect(settle, 1)
        self.assertEqual((given_back.delivery_tag, given_back.requeue), (1, requeue))
        source.expect_nothing()
        self.assertEqual(self.written(source, spec.Basic.Ack), [])
        self.assertEqual(link.in_flight, 0)
        self.assertCounters(link, consumed=1, published=1, nacked=1, **counters)
        self.stop(link, consume)

    def test_nack_requeued(self) -> None:
        """on-reject requeue: a destination nack gives Basic.Nack requeue=True."""
        self.check_rejected("requeue", spec.Basic.Nack, True, requeued=1)

    def test_nack_dropped(self) -> None:
        """on-reject drop: a destination nack gives Basic.Nack requeue=False."""
        self.check_rejected("drop", spec.Basic.Nack, False, dropped=1)

    def test_nack_dead_lettered(self) -> None:
        """on-reject dead-letter: a destination nack gives Basic.Reject requeue=False."""
        self.check_rejected("dead-letter", spec.Basic.Reject, False, dead_lettered=1)

    def test_unroutable_is_rejected_not_acked(self) -> None:
        """A Basic.Return then the Basic.Ack (the publish was unroutable) is treated
        like a nack, per on-reject, and counted as returned; a routed publish confirmed
        by the same Basic.Ack (multiple) is acknowledged."""
        for on_reject, settle, requeue, counter in (
            ("requeue", spec.Basic.Nack, True, "requeued"),
            ("drop", spec.Basic.Nack, False, "dropped"),
            ("dead-letter", spec.Basic.Reject, False, "dead_lettered"),
        ):
            link = self.link(on_reject=on_reject)
            consume = self.start(link)
            source, dest = self.source(), self.dest()
            properties = spec.BasicProperties(message_id="lost", headers={"h": 1})
            self.deliver(source, consume, 1, b"nowhere", properties, routing_key="no.route")
            self.deliver(source, consume, 2, b"routed")
            got = self.published(dest, b"nowhere", "no.route")
            self.published(dest, b"routed")
            dest.send_message(
                1, spec.Basic.Return(312, "NO_ROUTE", "out", "no.route"), b"nowhere", got
            )
            source.expect_nothing()  # the Return alone settles nothing
            dest.send_method(1, spec.Basic.Ack(2, True))
            if on_reject == "requeue":  # held a moment; the newer ack waits for it
                source.expect_nothing()
                self.clock.advance(REQUEUE_DELAY)
            given_back: Any = source.expect(settle, 1)
            self.assertEqual((given_back.delivery_tag, given_back.requeue), (1, requeue))
            ack = source.expect(spec.Basic.Ack, 1)
            self.assertEqual((ack.delivery_tag, ack.multiple), (2, True))
            source.expect_nothing()
            self.assertCounters(
                link,
                consumed=2,
                published=2,
                confirmed=1,
                acked=1,
                returned=1,
                **{counter: 1},
            )
            self.stop(link, consume)


class OtherAckModesTests(LinkTestCase):
    """``ack-mode on-publish`` and ``no-ack``: no confirm mode on the destination."""

    def test_on_publish_acks_right_after_the_publish(self) -> None:
        """The source's Basic.Ack follows the publish at once (no Confirm.Select was
        sent: connect_sides checks it); a Basic.Return is counted as returned."""
        link = self.link(ack_mode="on-publish")
        consume = self.start(link)
        self.assertFalse(consume.no_ack)
        self.assertEqual(self.made[1][2]["outbox_messages"], 0)
        source, dest = self.source(), self.dest()
        self.deliver(source, consume, 1)
        got = self.published(dest)
        ack = source.expect(spec.Basic.Ack, 1)
        self.assertEqual((ack.delivery_tag, ack.multiple), (1, False))
        self.assertEqual(link.in_flight, 0)
        self.assertEqual(self.written(dest, spec.Confirm.Select), [])
        dest.send_message(
            1, spec.Basic.Return(312, "NO_ROUTE", "out", "orders.new"), b"payload", got
        )
        source.expect_nothing()
        self.assertCounters(link, consumed=1, published=1, acked=1, returned=1)
        self.stop(link, consume)

    def test_blocked_destination_stops_consuming_without_confirms(self) -> None:
        """on-publish: once the destination is blocked (a broker alarm), the next
        delivery is still relayed and acknowledged, then the consumer is cancelled
        ("dest-blocked": nothing bounds what would pile up); Connection.Unblocked
        starts it again."""
        link = self.link(ack_mode="on-publish")
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        dest.send_method(0, spec.Connection.Blocked("low on memory"))
        self.assertEqual(link.state, "dest-blocked")
        self.deliver(source, consume, 1)
        self.published(dest)
        self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, 1)
        self.cancelled(source, consume)
        self.assertEqual(link.state, "dest-blocked")
        dest.send_method(0, spec.Connection.Unblocked())
        again = self.consumed(source)
        self.assertEqual(link.state, "running")
        self.assertIn("dest-blocked", self.states)
        self.stop(link, again)

    def test_blocked_destination_is_not_a_stall(self) -> None:
        """on-confirm: a blocked destination shows as "dest-blocked" (the prefetch
        bounds what waits), and the watchdog does not restart the link for it."""
        link = self.link(stall_timeout=10.0)
        consume = self.start(link)
        dest = self.dest()
        dest.send_method(0, spec.Connection.Blocked("low on disk"))
        self.assertEqual(link.state, "dest-blocked")
        self.clock.advance(30.0)  # watchdog turns: no passive declare, no restart
        self.source().expect_nothing()
        self.assertEqual(link.counters.stalls, 0)
        dest.send_method(0, spec.Connection.Unblocked())
        self.assertEqual(link.state, "running")
        self.stop(link, consume)

    def test_on_publish_dest_down_requeues(self) -> None:
        """on-publish, destination down (no outbox in this mode): a delivery that
        arrives before the consumer's cancel is given back (Basic.Nack requeue=True)."""
        link = self.link(ack_mode="on-publish")
        consume = self.start(link)
        source = self.source()
        self.dest().lose()
        self.assertEqual(link.state, "dest-down")
        cancel = source.expect(spec.Basic.Cancel, 1)
        self.deliver(source, consume, 1)
        nack = source.expect(spec.Basic.Nack, 1)
        self.assertEqual((nack.delivery_tag, nack.requeue), (1, True))
        source.send_method(1, spec.Basic.CancelOk(cancel.consumer_tag))
        self.assertCounters(link, consumed=1, requeued=1)
        self.clock.advance(1.0)
        dest = self.dest()
        dest.handshake()
        dest.expect(spec.Channel.Open, 1)
        dest.send_method(1, spec.Channel.OpenOk())
        dest.expect_nothing()
        again = self.consumed(source)
        self.assertEqual(link.state, "running")
        self.stop(link, again)

    def test_no_ack_consumes_without_acknowledgements(self) -> None:
        """Basic.Consume has no_ack=True; deliveries are published and nothing is
        acknowledged."""
        link = self.link(ack_mode="no-ack")
        consume = self.start(link)
        self.assertTrue(consume.no_ack)
        source, dest = self.source(), self.dest()
        self.deliver(source, consume, 1, b"one")
        self.deliver(source, consume, 2, b"two")
        self.published(dest, b"one")
        self.published(dest, b"two")
        source.expect_nothing()
        dest.expect_nothing()
        self.assertEqual(self.written(dest, spec.Confirm.Select), [])
        self.assertCounters(link, consumed=2, published=2)
        self.stop(link, consume)


class ForwardHeadersTests(LinkTestCase):
    """``--add-forward-headers``: a hop table appended to ``x-relayed-by``."""

    def hop(self, table: Any) -> None:
        self.assertEqual(
            {key: value for key, value in table.items() if key != "relayed-at"},
            {"link": LINK, "source-queue": "inbox", "dest-exchange": "out"},
        )
        self.assertIsInstance(table["relayed-at"], int)

    def test_hop_added_and_appended(self) -> None:
        """A message without headers gets a one-hop list; a message that has one gets
        this hop appended, its other headers kept."""
        link = self.link(add_forward_headers=True)
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        self.deliver(source, consume, 1, b"fresh")
        earlier = {"link": "upstream", "source-queue": "a", "dest-exchange": "b"}
        properties = spec.BasicProperties(
            message_id="m-2", headers={FORWARD_HEADER: [earlier], "tenant": "acme"}
        )
        self.deliver(source, consume, 2, b"relayed", properties)
        headers = self.published(dest, b"fresh").headers
        assert headers is not None
        self.assertEqual(list(headers), [FORWARD_HEADER])
        (hop,) = headers[FORWARD_HEADER]
        self.hop(hop)
        again = self.published(dest, b"relayed")
        self.assertEqual(again.message_id, "m-2")
        assert again.headers is not None
        self.assertEqual(again.headers["tenant"], "acme")
        first, second = again.headers[FORWARD_HEADER]
        self.assertEqual(first, earlier)
        self.hop(second)
        dest.send_method(1, spec.Basic.Ack(2, True))
        self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, 1)
        self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, 2)
        self.stop(link, consume)

    def test_no_hop_without_the_option(self) -> None:
        """Without the option the headers are published as they came."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        properties = spec.BasicProperties(headers={"tenant": "acme"})
        self.deliver(source, consume, 1, b"plain", properties)
        self.assertEqual(self.published(dest, b"plain").headers, {"tenant": "acme"})
        dest.send_method(1, spec.Basic.Ack(1, False))
        source.expect(spec.Basic.Ack, 1)
        self.stop(link, consume)


class ConnectionLossTests(LinkTestCase):
    """Each side's service reconnects and recovers on its own; the link follows."""

    def test_dest_lost_stops_consuming_and_republishes_after_recovery(self) -> None:
        """While the destination is down the source consumer is cancelled (state
        dest-down); publishes cut off, and deliveries that arrive meanwhile, wait in
        the destination's outbox; after the retry and the recovery (channel, confirm
        mode) they are published again, acknowledged once confirmed, and the link
        consumes again."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        self.deliver(source, consume, 1, b"one")
        self.published(dest, b"one")
        dest.lose()
        self.assertEqual(link.state, "dest-down")
        self.assertEqual(self.states[-1], "dest-down")
        cancel = source.expect(spec.Basic.Cancel, 1)
        self.assertEqual(cancel.consumer_tag, consume.consumer_tag)
        # A delivery the broker sent before it got the Cancel.
        self.deliver(source, consume, 2, b"two")
        source.send_method(1, spec.Basic.CancelOk(cancel.consumer_tag))
        outbox = self.services["dest"][0].outbox
        assert outbox is not None
        self.assertEqual(len(outbox), 2)
        self.assertEqual(link.in_flight, 2)
        self.assertEqual(self.attempts, ["source", "dest"])
        self.clock.advance(1.0)  # the destination service's retry
        self.assertEqual(self.attempts, ["source", "dest", "dest"])
        self.assertEqual(len(self.endpoints["dest"].brokers), 2)
        dest = self.dest()
        dest.handshake()
        dest.expect(spec.Channel.Open, 1)
        dest.send_method(1, spec.Channel.OpenOk())
        self.assertEqual(link.state, "dest-down")  # not recovered yet
        dest.expect(spec.Confirm.Select, 1)
        dest.send_method(1, spec.Confirm.SelectOk())
        self.published(dest, b"one")
        self.published(dest, b"two")
        self.assertEqual(len(outbox), 0)
        self.assertEqual(link.state, "starting")  # the consumer is not on yet
        resumed = self.consumed(source)
        self.assertEqual(link.state, "running")
        source.expect_nothing()  # no ack before the confirms
        self.assertNotEqual(resumed.consumer_tag, consume.consumer_tag)
        dest.send_method(1, spec.Basic.Ack(2, True))
        self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, 1)
        self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, 2)
        self.assertEqual(link.in_flight, 0)
        self.assertCounters(
            link,
            consumed=2,
            published=2,
            confirmed=2,
            acked=2,
            reconnects={"source": 0, "dest": 1},
        )
        self.assertEqual(self.states, ["starting", "running", "dest-down", "starting", "running"])
        self.stop(link, resumed)

    def test_source_lost_confirm_for_old_delivery_not_acked(self) -> None:
        """While the source is down the state is source-down; its service recovers the
        channel, QoS and consumer.  The confirm of a delivery received on the lost
        connection sends no ack on the new one (a stale ack); the broker's redelivery
        is relayed and acknowledged with the new connection's tag."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        self.deliver(source, consume, 1, b"one")
        self.published(dest, b"one")
        source.lose()
        self.assertEqual(link.state, "source-down")
        self.clock.advance(1.0)
        source = self.source()
        self.assertIsNot(source, self.source(0))
        source.handshake()
        source.expect(spec.Channel.Open, 1)
        source.send_method(1, spec.Channel.OpenOk())
        qos = source.expect(spec.Basic.Qos, 1)
        self.assertEqual(qos.prefetch_count, 10)
        source.send_method(1, spec.Basic.QosOk())
        self.assertEqual(link.state, "source-down")
        recovered = self.consumed(source)
        self.assertEqual(recovered.consumer_tag, consume.consumer_tag)
        self.assertEqual(link.state, "running")
        dest.send_method(1, spec.Basic.Ack(1, False))  # for the lost connection's tag 1
        source.expect_nothing()
        self.assertEqual(link.in_flight, 0)
        self.assertCounters(
            link,
            consumed=1,
            published=1,
            confirmed=1,
            stale_acks=1,
            reconnects={"source": 1, "dest": 0},
        )
        self.deliver(source, recovered, 1, b"one", redelivered=True)
        self.published(dest, b"one")
        dest.send_method(1, spec.Basic.Ack(2, False))
        ack = source.expect(spec.Basic.Ack, 1)
        self.assertEqual(ack.delivery_tag, 1)  # the new connection's own tag
        self.assertCounters(
            link,
            consumed=2,
            published=2,
            confirmed=2,
            acked=1,
            redelivered=1,
            stale_acks=1,
            reconnects={"source": 1, "dest": 0},
        )
        self.assertEqual(self.states, ["starting", "running", "source-down", "running"])
        self.stop(link, recovered)

    def test_both_sides_lost_dest_back_first(self) -> None:
        """Both sides lost, the destination first: the link waits (no failure, no
        restart) and consumes again, with one consumer, once both are back.

        Losing the destination makes the link send Basic.Cancel on the source; the
        source connection lost before the CancelOk fails that cancel, which must not
        fail the link (it once did: "failed", and a restart 3 s later)."""
        link = self.link()
        self.start(link)
        self.dest().lose()
        self.source().lose()
        self.assertIn(link.state, ("source-down", "dest-down"))
        self.clock.advance(1.0)
        dest = self.dest()
        dest.handshake()
        dest.expect(spec.Channel.Open, 1)
        dest.send_method(1, spec.Channel.OpenOk())
        dest.expect(spec.Confirm.Select, 1)
        dest.send_method(1, spec.Confirm.SelectOk())
        self.assertEqual(link.state, "source-down")
        source = self.source()
        source.handshake()
        source.expect(spec.Channel.Open, 1)
        source.send_method(1, spec.Channel.OpenOk())
        source.expect(spec.Basic.Qos, 1)
        source.send_method(1, spec.Basic.QosOk())
        consume = self.consumed(source)
        source.expect_nothing()  # one consumer, not two
        self.assertEqual(link.state, "running")
        self.assertCounters(link, reconnects={"source": 1, "dest": 1})
        self.stop(link, consume)


class PauseTests(LinkTestCase):
    """pause() and resume() cancel and restart the source consumer."""

    def test_pause_answers_once_the_consumer_is_cancelled(self) -> None:
        """A pause asked while the consumer is still starting answers only once the
        consumer is started and then cancelled: "paused" then really means it."""
        link = self.link()
        link.startService()
        self.open_sides(link)
        source = self.source()
        consume = source.expect(spec.Basic.Consume, 1)  # not answered yet
        paused = link.pause()
        self.assertNoResult(paused)
        source.send_method(1, spec.Basic.ConsumeOk(consume.consumer_tag))
        self.assertNoResult(paused)  # the cancel is on its way
        self.cancelled(source, consume)
        self.successResultOf(paused)
        self.assertEqual(link.state, "paused")
        self.stop(link, None)

    def test_pause_and_resume(self) -> None:
        """pause() cancels the consumer (state paused), a publish in flight is still
        confirmed and acknowledged; resume() consumes again (state running)."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        self.deliver(source, consume, 1)
        self.published(dest)
        paused = link.pause()
        self.assertEqual(link.state, "paused")
        self.assertNoResult(paused)
        self.cancelled(source, consume)
        self.successResultOf(paused)
        dest.send_method(1, spec.Basic.Ack(1, False))
        self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, 1)
        self.assertEqual(link.state, "paused")
        source.expect_nothing()
        resumed = link.resume()
        self.assertEqual(link.state, "starting")  # until the broker's ConsumeOk
        self.assertNoResult(resumed)
        again = self.consumed(source)
        self.assertEqual(link.state, "running")
        self.successResultOf(resumed)
        self.assertCounters(link, consumed=1, published=1, confirmed=1, acked=1)
        self.assertEqual(self.states, ["starting", "running", "paused", "starting", "running"])
        self.stop(link, again)

    def test_paused_link_stays_paused_across_restart(self) -> None:
        """restart() closes both sides and connects them again; a paused link does not
        consume after it."""
        link = self.link()
        consume = self.start(link)
        link.pause()
        self.cancelled(self.source(), consume)
        restarted = link.restart()
        self.assertEqual(link.state, "starting")
        self.close_sides(None)
        self.assertEqual(len(self.endpoints["source"].brokers), 2)
        self.open_sides(link)
        source = self.source()
        self.successResultOf(restarted)
        source.expect_nothing()  # no Basic.Consume
        self.assertEqual(link.state, "paused")
        self.assertEqual(link.counters.restarts, 1)
        resumed = link.resume()
        again = self.consumed(source)
        self.successResultOf(resumed)
        self.assertEqual(link.state, "running")
        self.stop(link, again)

    def test_pause_refused_when_stopped(self) -> None:
        """pause(), resume() and restart() raise LinkStateError on a link never started
        or stopped, and send nothing."""
        link = self.link()
        for action in (link.pause, link.resume, link.restart):
            self.assertRaises(LinkStateError, action)
        consume = self.start(link)
        self.stop(link, consume)
        for action in (link.pause, link.resume, link.restart):
            error = self.assertRaises(LinkStateError, action)
            self.assertIn("stopped", str(error))
        self.assertEqual(link.state, "stopped")
        self.assertEqual(link.counters.restarts, 0)
        self.assertEqual(self.attempts, ["source", "dest"])


class WatchdogTests(LinkTestCase):
    """``stall-timeout``: messages waiting at the source and none moving restart the
    link; the watchdog looks every stall_timeout / 4 seconds."""

    def depth(self, source: FakeBroker, count: int) -> None:
        """Answer the watchdog's look: its own channel, a passive Queue.Declare of the
        source queue (*count* messages ready), the channel's close."""
        frame = source.next_frame()
        assert isinstance(frame, codec.MethodFrame), frame
        self.assertIsInstance(frame.method, spec.Channel.Open)
        number = frame.channel_number
        self.assertNotEqual(number, 1)  # not the consuming channel
        source.send_method(number, spec.Channel.OpenOk())
        declare = source.expect(spec.Queue.Declare, number)
        self.assertEqual((declare.queue, declare.passive), ("inbox", True))
        source.send_method(number, spec.Queue.DeclareOk("inbox", count, 1))
        source.expect(spec.Channel.Close, number)
        source.send_method(number, spec.Channel.CloseOk())

    def test_stalled_link_restarted(self) -> None:
        """Messages waiting and none consumed for 10 s: the link is stalled, counts the
        stall and restarts (both sides closed, connected again)."""
        link = self.link(stall_timeout=10.0)
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        source.expect_nothing()
        for _ in range(4):  # at 2.5, 5, 7.5 and 10 s
            self.clock.advance(2.5)
            self.depth(source, 5)
            self.assertEqual(link.state, "running")
        self.assertEqual(link.source_depth, 5)
        self.assertEqual(link.counters.stalls, 0)
        self.clock.advance(2.5)  # 10 s after the backlog was first seen
        self.depth(source, 5)
        self.assertEqual(link.counters.stalls, 1)
        self.assertEqual(link.counters.restarts, 1)
        # The link reports "stalled" (the log's state event), then restarts at once.
        self.assertEqual(self.states[:3], ["starting", "running", "stalled"])
        self.assertIn(link.state, ("stalled", "starting"))
        self.cancelled(source, consume)
        self.close_connection(source)
        self.close_connection(dest)
        self.assertEqual(self.attempts, ["source", "dest"] * 2)
        again = self.connect_sides(link)
        self.assertEqual(link.state, "running")
        self.assertEqual(self.states[-1], "running")
        self.assertCounters(link, stalls=1, restarts=1)
        self.stop(link, again)

    def test_empty_queue_is_not_a_stall(self) -> None:
        """With no message waiting the link is never stalled."""
        link = self.link(stall_timeout=10.0)
        consume = self.start(link)
        source = self.source()
        for _ in range(10):  # 25 s
            self.clock.advance(2.5)
            self.depth(source, 0)
        self.assertEqual(link.source_depth, 0)
        self.assertEqual(link.state, "running")
        self.assertCounters(link)
        self.stop(link, consume)

    def test_flowing_messages_are_not_a_stall(self) -> None:
        """With messages waiting but deliveries flowing the link is never stalled."""
        link = self.link(stall_timeout=10.0)
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        self.clock.advance(2.5)
        for tag in range(1, 11):  # a look every 2.5 s, a message between two looks
            self.depth(source, 100)
            self.clock.advance(1.0)
            self.deliver(source, consume, tag)
            self.published(dest)
            dest.send_method(1, spec.Basic.Ack(tag, False))
            self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, tag)
            self.clock.advance(1.5)
        self.depth(source, 100)
        self.assertEqual(link.source_depth, 100)
        self.assertEqual(link.state, "running")
        self.assertCounters(link, consumed=10, published=10, confirmed=10, acked=10)
        self.stop(link, consume)


class FailureTests(LinkTestCase):
    """What the services do not recover from fails the link, restarted later along
    retry_delays (3 s, then 7 s)."""

    def test_refused_consumer_fails_and_restarts_per_retry_delays(self) -> None:
        """A source consumer refused (Channel.Close 404) fails the link, which was
        never reported running; it restarts after retry_delays[0] (3 s), once (the
        consume's failure and the channel's close are one failure): both sides closed
        and connected again."""
        link = self.link()
        link.startService()
        self.refuse_consume(link)
        self.assertEqual(self.states, ["starting", "failed"])
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [3.0])
        self.clock.advance(2.9)
        self.assertEqual(link.counters.restarts, 0)
        self.assertEqual(self.attempts, ["source", "dest"])
        self.clock.advance(0.1)
        self.assertEqual(link.counters.restarts, 1)
        self.assertEqual(link.state, "starting")
        self.close_connection(self.source())  # no consumer to cancel
        self.close_connection(self.dest())
        self.assertEqual(self.attempts, ["source", "dest"] * 2)
        consume = self.connect_sides(link)
        self.assertCounters(link, restarts=1)
        self.stop(link, consume)

    def test_failures_back_off_along_retry_delays(self) -> None:
        """Failed starts wait 3 s, then 7 s, then 7 s; a start that succeeds resets the
        backoff once it moved a message: the next failure waits 3 s again (one failure
        seen twice, a refused consume closing the channel, counts once)."""
        link = self.link()
        link.startService()
        self.refuse_consume(link)
        delays = []
        for attempt in range(4):
            (retry,) = self.clock.getDelayedCalls()
            delays.append(retry.getTime() - self.clock.seconds())
            self.clock.advance(delays[-1])
            self.close_connection(self.source())
            self.close_connection(self.dest())
            if attempt < 2:
                self.refuse_consume(link)
                continue
            consume = self.connect_sides(link)
            if attempt == 2:
                # One message moves (the backoff starts over), then the broker
                # cancels the consumer: a failure again.
                self.deliver(self.source(), consume, 1)
                self.published(self.dest())
                self.dest().send_method(1, spec.Basic.Ack(1, False))
                self.source().expect(spec.Basic.Ack, 1)
                self.source().send_method(1, spec.Basic.Cancel(consume.consumer_tag, True))
                self.assertEqual(link.state, "failed")
        self.assertEqual(delays, [3.0, 7.0, 7.0, 3.0])
        self.assertEqual(link.counters.restarts, 4)
        self.stop(link, consume)

    def test_consumer_cancelled_by_broker(self) -> None:
        """A Basic.Cancel from the source broker (its queue was deleted) fails the link;
        it restarts after retry_delays[0]."""
        link = self.link()
        consume = self.start(link)
        source = self.source()
        source.send_method(1, spec.Basic.Cancel(consume.consumer_tag, True))
        self.assertEqual(link.state, "failed")
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [3.0])
        self.clock.advance(3.0)
        self.close_connection(source)
        self.close_connection(self.dest())
        again = self.connect_sides(link)
        self.assertCounters(link, restarts=1)
        self.stop(link, again)

    def test_dest_channel_closed_by_broker(self) -> None:
        """The destination closes the channel (its exchange is missing): the publish in
        flight is given back for redelivery, the link fails and stops consuming, and
        restarts after retry_delays[0]."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        self.deliver(source, consume, 1)
        self.published(dest)
        dest.send_method(1, spec.Channel.Close(404, "NOT_FOUND - no exchange 'out'", 60, 40))
        dest.expect(spec.Channel.CloseOk, 1)
        self.assertEqual(link.state, "failed")
        nack = source.expect(spec.Basic.Nack, 1)
        self.assertEqual((nack.delivery_tag, nack.requeue), (1, True))
        self.cancelled(source, consume)
        self.assertCounters(link, consumed=1, published=1, requeued=1)
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [3.0])
        self.clock.advance(3.0)
        self.close_connection(source)
        self.close_connection(dest)
        again = self.connect_sides(link)
        self.assertEqual(link.counters.restarts, 1)
        self.stop(link, again)


class RestartTests(LinkTestCase):
    """restart() (``POST /links/NAME/restart``) at awkward times."""

    def test_restart_during_restart(self) -> None:
        """A restart asked while a restart waits for the old sides to close connects
        new sides at once; the old sides still close, and no service is left running
        once the link stopped."""
        link = self.link()
        consume = self.start(link)
        old_source, old_dest = self.source(), self.dest()
        first = link.restart()
        self.cancelled(old_source, consume)
        old_source.expect(spec.Connection.Close)  # not answered yet
        second = link.restart()
        self.successResultOf(first)
        self.assertEqual(self.attempts, ["source", "dest"] * 2)
        old_source.send_method(0, spec.Connection.CloseOk())
        self.close_connection(old_dest)
        again = self.connect_sides(link)
        self.successResultOf(second)
        self.assertEqual(link.counters.restarts, 2)
        self.stop(link, again)
        services = self.services["source"] + self.services["dest"]
        self.assertEqual([service.running for service in services], [False] * 4)


class StopTests(LinkTestCase):
    """stopService: cancel the consumer, wait for in-flight confirms (up to the
    shutdown timeout), acknowledge what was confirmed, close both sides."""

    def test_confirm_in_time_acked_before_close(self) -> None:
        """A confirm arriving while the link waits is acknowledged on the source before
        its Connection.Close; then the destination closes."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        self.deliver(source, consume, 1)
        self.published(dest)
        stopped = link.stopService()
        self.assertEqual(link.state, "stopping")
        self.cancelled(source, consume)
        self.clock.advance(4.9)
        source.expect_nothing()  # waiting for the confirm
        dest.expect_nothing()
        self.assertNoResult(stopped)
        dest.send_method(1, spec.Basic.Ack(1, False))
        self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, 1)
        self.close_connection(source)
        self.close_connection(dest)
        self.successResultOf(stopped)
        self.assertEqual(link.state, "stopped")
        self.assertEqual(self.states, ["starting", "running", "stopping", "stopped"])
        self.assertCounters(link, consumed=1, published=1, confirmed=1, acked=1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_held_refusal_given_back_at_stop_and_the_rest_acked(self) -> None:
        """A refused message held before its requeue is given back at once when the
        link stops, so the confirmed one behind it is acknowledged before the source
        closes; a refusal arriving while the link stops is given back at once too (no
        timer outlives the stop)."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        for tag in (1, 2, 3):
            self.deliver(source, consume, tag, f"m{tag}".encode())
            self.published(dest, f"m{tag}".encode())
        dest.send_method(1, spec.Basic.Nack(1, False, False))
        dest.send_method(1, spec.Basic.Ack(2, False))
        source.expect_nothing()  # 1 is held, 2 waits behind it
        stopped = link.stopService()
        nack = source.expect(spec.Basic.Nack, 1)
        self.assertEqual((nack.delivery_tag, nack.requeue), (1, True))
        ack = source.expect(spec.Basic.Ack, 1)
        self.assertEqual((ack.delivery_tag, ack.multiple), (2, True))
        self.cancelled(source, consume)
        dest.send_method(1, spec.Basic.Nack(3, False, False))  # while stopping
        self.assertEqual(source.expect(spec.Basic.Nack, 1).delivery_tag, 3)
        self.close_connection(source)
        self.close_connection(dest)
        self.successResultOf(stopped)
        self.assertCounters(
            link, consumed=3, published=3, confirmed=1, acked=1, nacked=2, requeued=2
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_confirm_closes_after_the_timeout_without_ack(self) -> None:
        """Without a confirm the source closes once the shutdown timeout (5 s) passed,
        without acknowledging the delivery (the broker delivers it again)."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        self.deliver(source, consume, 1)
        self.published(dest)
        stopped = link.stopService()
        self.cancelled(source, consume)
        self.clock.advance(4.9)
        source.expect_nothing()
        self.clock.advance(0.1)
        self.close_connection(source)
        self.close_connection(dest)
        self.successResultOf(stopped)
        self.assertEqual(link.state, "stopped")
        self.assertEqual(self.written(source, spec.Basic.Ack), [])
        self.assertEqual(self.written(source, spec.Basic.Nack), [])
        self.assertEqual(link.in_flight, 0)
        self.assertEqual(link.counters.acked, 0)
        self.assertEqual(link.counters.confirmed, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_silent_destination_dropped_after_the_grace(self) -> None:
        """A destination that answers neither the confirm nor the Connection.Close
        holds the stop for the shutdown timeout plus CLOSE_GRACE at most: then its
        connection is dropped, and the stop ends (nothing acknowledged)."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        self.deliver(source, consume, 1)
        self.published(dest)
        stopped = link.stopService()
        self.cancelled(source, consume)
        self.clock.advance(5.0)  # the shutdown timeout: the source closes
        self.close_connection(source)
        dest.expect(spec.Connection.Close)  # never answered
        self.clock.advance(CLOSE_GRACE - 0.1)
        self.assertNoResult(stopped)
        self.assertFalse(dest.lost)
        self.clock.advance(0.1)
        dest.deliver_loss()  # the abort reaches the protocol
        self.assertTrue(dest.lost)
        self.successResultOf(stopped)
        self.assertEqual(link.state, "stopped")
        self.assertEqual(self.written(source, spec.Basic.Ack), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_without_in_flight_closes_at_once(self) -> None:
        """With nothing in flight the source closes right after the consumer's cancel,
        and the watchdog's timer goes too."""
        link = self.link(stall_timeout=10.0)
        consume = self.start(link)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # the watchdog
        stopped = link.stopService()
        self.close_sides(consume)
        self.successResultOf(stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_while_starting(self) -> None:
        """Stopping before the brokers answered aborts both attempts; nothing is left
        on the clock."""
        link = self.link()
        link.startService()
        stopped = link.stopService()
        for broker in (self.source(), self.dest()):
            self.assertTrue(broker.transport.disconnecting)
            broker.deliver_loss()
        self.successResultOf(stopped)
        self.assertEqual(link.state, "stopped")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_stop_while_failed_cancels_the_restart(self) -> None:
        """A failed link waiting to restart stops at once; its restart is cancelled."""
        link = self.link()
        link.startService()
        self.refuse_consume(link)
        self.assertEqual(link.state, "failed")
        stopped = link.stopService()
        self.close_connection(self.source())
        self.close_connection(self.dest())
        self.successResultOf(stopped)
        self.assertEqual(link.state, "stopped")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(60)
        self.assertEqual(self.attempts, ["source", "dest"])

    def test_stop_during_restart(self) -> None:
        """stopService while a restart waits for the old sides to close waits for them
        too, connects nothing new, and leaves nothing on the clock."""
        link = self.link()
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        link.restart()
        self.cancelled(source, consume)
        stopped = link.stopService()
        self.assertNoResult(stopped)
        self.close_connection(source)
        self.assertNoResult(stopped)
        self.close_connection(dest)
        self.successResultOf(stopped)
        self.assertEqual(link.state, "stopped")
        self.assertEqual(self.attempts, ["source", "dest"])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ReportTests(LinkTestCase):
    """describe() (``/healthz``) and the Prometheus metrics."""

    def metrics(self, link: RelayLink) -> set[str]:
        text = generate_latest(registry_for([link])).decode()
        return {line for line in text.splitlines() if not line.startswith("#")}

    def test_describe_and_metrics(self) -> None:
        link = self.link()
        self.assertEqual(link.describe()["state"], "stopped")
        consume = self.start(link)
        source, dest = self.source(), self.dest()
        for tag in (1, 2, 3):
            self.deliver(source, consume, tag)
            self.published(dest)
        dest.send_method(1, spec.Basic.Ack(1, False))
        dest.send_method(1, spec.Basic.Nack(2, False, False))
        self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, 1)
        self.clock.advance(REQUEUE_DELAY)
        self.assertEqual(source.expect(spec.Basic.Nack, 1).delivery_tag, 2)
        self.assertEqual(
            link.describe(),
            {
                "state": "running",
                "source_queue": "inbox",
                "dest_exchange": "out",
                "ack_mode": "on-confirm",
                "in_flight": 1,
                "source_depth": None,
                "consumed": 3,
                "published": 3,
                "confirmed": 1,
                "acked": 1,
                "nacked": 1,
                "returned": 0,
                "redelivered": 0,
                "requeued": 1,
                "dropped": 0,
                "dead_lettered": 0,
                "stale_acks": 0,
                "stalls": 0,
                "restarts": 0,
                "reconnects": {"source": 0, "dest": 0},
            },
        )
        lines = self.metrics(link)
        label = f'link="{LINK}"'
        expected = {
            f"amqp_relay_consumed_total{{{label}}} 3.0",
            f"amqp_relay_published_total{{{label}}} 3.0",
            f"amqp_relay_confirmed_total{{{label}}} 1.0",
            f"amqp_relay_acked_total{{{label}}} 1.0",
            f"amqp_relay_nacked_total{{{label}}} 1.0",
            f"amqp_relay_requeued_total{{{label}}} 1.0",
            f"amqp_relay_returned_total{{{label}}} 0.0",
            f"amqp_relay_stalls_total{{{label}}} 0.0",
            f"amqp_relay_in_flight{{{label}}} 1.0",
            f'amqp_relay_reconnects_total{{{label},side="source"}} 0.0',
            f'amqp_relay_reconnects_total{{{label},side="dest"}} 0.0',
        }
        expected |= {
            f'amqp_relay_link_state{{{label},state="{state}"}} '
            + ("1.0" if state == "running" else "0.0")
            for state in STATES
        }
        self.assertEqual(expected - lines, set())
        paused = link.pause()
        self.cancelled(source, consume)
        self.successResultOf(paused)
        self.assertEqual(link.describe()["state"], "paused")
        lines = self.metrics(link)
        self.assertIn(f'amqp_relay_link_state{{{label},state="paused"}} 1.0', lines)
        self.assertIn(f'amqp_relay_link_state{{{label},state="running"}} 0.0', lines)
        dest.send_method(1, spec.Basic.Ack(3, False))
        self.assertEqual(source.expect(spec.Basic.Ack, 1).delivery_tag, 3)
        self.stop(link, None)
        lines = self.metrics(link)
        self.assertIn(f"amqp_relay_acked_total{{{label}}} 2.0", lines)
        self.assertIn(f"amqp_relay_in_flight{{{label}}} 0.0", lines)
        states = {line for line in lines if line.startswith("amqp_relay_link_state")}
        self.assertEqual(
            {line for line in states if line.endswith(" 1.0")},
            {f'amqp_relay_link_state{{{label},state="stopped"}} 1.0'},
        )
        self.assertEqual(len(states), len(STATES))

"""Every :class:`~txamqp091.channel.Channel` operation against the real RabbitMQ broker.

Each test declares uniquely named queues and exchanges and deletes them at cleanup
(:class:`~txamqp091.test.integration.IntegrationTestCase`); events are awaited, never
slept for, and each wait is bounded (:func:`~txamqp091.test.integration.wait_for` and
trial's ``timeout``). An unreachable broker fails every test.
"""

# trial's assertion methods carry no annotations.
# mypy: allow-untyped-calls

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer

from txamqp091 import BasicProperties, spec
from txamqp091.channel import Channel
from txamqp091.exceptions import (
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConsumerCancelled,
    DuplicateConsumerTag,
    NackError,
    UnroutableError,
)
from txamqp091.message import PUBLISHED, ConsumerQueue, PublishedMessage, ReceivedMessage
from txamqp091.protocol import AMQPProtocol
from txamqp091.test.integration import IntegrationTestCase, async_test, unique_name, wait_for

# RabbitMQ reply codes.
NO_ROUTE = 312
NOT_FOUND = 404
PRECONDITION_FAILED = 406


def method_of(frame: Any) -> Any:
    """The method of a reply frame, typed loosely (its fields depend on the method)."""
    return frame.method


class ChannelTestCase(IntegrationTestCase):
    """Helpers shared by the channel tests."""

    async def setup_queue(self, **kw: Any) -> tuple[AMQPProtocol, Channel, str]:
        """A connection, a channel on it and a fresh queue (all removed at cleanup)."""
        conn, channel = await self.connection_and_channel()
        queue = await self.declare_queue(channel, **kw)
        return conn, channel, queue

    async def confirm_channel(self, conn: AMQPProtocol) -> Channel:
        """A new channel on ``conn`` in publisher-confirm mode."""
        channel = await conn.channel()
        await channel.confirm_delivery()
        return channel

    async def publish_all(
        self,
        conn: AMQPProtocol,
        exchange: str,
        routing_key: str,
        bodies: list[bytes],
        properties: BasicProperties | None = None,
    ) -> None:
        """Publish ``bodies`` with confirms on a channel of their own and wait until the
        broker has acked (so enqueued) every one, then close that channel."""
        channel = await self.confirm_channel(conn)
        await wait_for(
            defer.gatherResults(
                [
                    channel.basic_publish(exchange, routing_key, body, properties)
                    for body in bodies
                ],
                consumeErrors=True,
            )
        )
        await channel.close()

    async def ready_count(self, conn: AMQPProtocol, queue: str) -> int:
        """The queue's ready-message count, asked on a channel of its own (a round trip
        to the queue)."""
        channel = await conn.channel()
        frame = await channel.queue_declare(queue, passive=True)
        await channel.close()
        count: int = method_of(frame).message_count
        return count


class ExchangeTests(ChannelTestCase):
    """exchange_declare, exchange_delete, exchange_bind and exchange_unbind."""

    @async_test
    async def test_declare_every_type_then_delete(self) -> None:
        """exchange_declare creates direct, fanout, topic and headers exchanges (a passive
        declare then finds each), and exchange_delete removes one: a passive declare of
        it then fails with 404 NOT_FOUND."""
        conn, channel = await self.connection_and_channel()
        for kind in ("direct", "fanout", "topic", "headers"):
            name = await self.declare_exchange(channel, exchange_type=kind)
            frame = await channel.exchange_declare(name, kind, passive=True)
            self.assertIsInstance(method_of(frame), spec.Exchange.DeclareOk)
            deleted = await channel.exchange_delete(name)
            self.assertIsInstance(method_of(deleted), spec.Exchange.DeleteOk)
            other = await conn.channel()
            with self.assertRaises(ChannelClosedByBroker) as caught:
                await other.exchange_declare(name, kind, passive=True)
            self.assertEqual(caught.exception.reply_code, NOT_FOUND)

    @async_test
    async def test_delete_if_unused_refuses_bound_exchange(self) -> None:
        """exchange_delete(if_unused=True) on an exchange with a binding fails with
        406 PRECONDITION_FAILED and leaves the exchange in place."""
        conn, channel = await self.connection_and_channel()
        exchange = await self.declare_exchange(channel)
        queue = await self.declare_queue(channel)
        await channel.queue_bind(queue, exchange, "key")
        with self.assertRaises(ChannelClosedByBroker) as caught:
            await channel.exchange_delete(exchange, if_unused=True)
        self.assertEqual(caught.exception.reply_code, PRECONDITION_FAILED)
        other = await conn.channel()
        await other.exchange_declare(exchange, passive=True)

    @async_test
    async def test_exchange_to_exchange_binding_routes_then_unbind_stops(self) -> None:
        """A message published to a topic exchange reaches a queue bound to a fanout
        exchange that exchange_bind bound to the topic exchange; after exchange_unbind
        the same mandatory publish is returned (UnroutableError)."""
        conn, channel = await self.connection_and_channel()
        source = await self.declare_exchange(channel, exchange_type="topic")
        destination = await self.declare_exchange(channel, exchange_type="fanout")
        queue = await self.declare_queue(channel)
        await channel.queue_bind(queue, destination, "")
        bound = await channel.exchange_bind(destination, source, "route.*")
        self.assertIsInstance(method_of(bound), spec.Exchange.BindOk)

        publisher = await self.confirm_channel(conn)
        ack = await wait_for(
            publisher.basic_publish(source, "route.one", b"through two", mandatory=True)
        )
        self.assertIsInstance(ack, spec.Basic.Ack)
        message = await channel.basic_get(queue, auto_ack=True)
        assert message is not None
        self.assertEqual(message.body, b"through two")
        self.assertEqual(method_of(message).exchange, source)
        self.assertEqual(method_of(message).routing_key, "route.one")

        unbound = await channel.exchange_unbind(destination, source, "route.*")
        self.assertIsInstance(method_of(unbound), spec.Exchange.UnbindOk)
        with self.assertRaises(UnroutableError):
            await wait_for(publisher.basic_publish(source, "route.one", b"lost", mandatory=True))
        self.assertIsNone(await channel.basic_get(queue))


class QueueTests(ChannelTestCase):
    """queue_declare, queue_bind, queue_unbind, queue_purge and queue_delete."""

    @async_test
    async def test_declare_named_queue(self) -> None:
        """queue_declare of a new name fires with DeclareOk naming it, with no messages
        and no consumers; a passive declare of it succeeds with the same counts."""
        _conn, channel = await self.connection_and_channel()
        name = unique_name("txamqp091-test-q")
        self.delete_queue_later(name)
        frame = await channel.queue_declare(name)
        method = method_of(frame)
        self.assertIsInstance(method, spec.Queue.DeclareOk)
        self.assertEqual((method.queue, method.message_count, method.consumer_count), (name, 0, 0))
        again = method_of(await channel.queue_declare(name, passive=True))
        self.assertEqual((again.queue, again.message_count, again.consumer_count), (name, 0, 0))

    @async_test
    async def test_declare_server_named_queue(self) -> None:
        """queue_declare("") makes the broker name the queue ("amq.gen-…"), and the name
        it returns is usable (a passive declare finds it)."""
        _conn, channel = await self.connection_and_channel()
        name = await self.declare_queue(channel, "")
        self.assertTrue(name.startswith("amq.gen-"), name)
        frame = await channel.queue_declare(name, passive=True)
        self.assertEqual(method_of(frame).queue, name)

    @async_test
    async def test_passive_declare_of_missing_queue_closes_channel(self) -> None:
        """A passive queue_declare of a missing queue fails with ChannelClosedByBroker
        404; the channel is then closed with that reason (when_closed and the close
        callback get it), later calls raise ChannelWrongStateError at once, and the
        connection stays usable."""
        conn, channel = await self.connection_and_channel()
        closed_with: defer.Deferred[Exception] = defer.Deferred()
        channel.add_on_close_callback(lambda ch, reason: closed_with.callback(reason))
        with self.assertRaises(ChannelClosedByBroker) as caught:
            await channel.queue_declare(unique_name("txamqp091-missing"), passive=True)
        self.assertEqual(caught.exception.reply_code, NOT_FOUND)
        self.assertTrue(channel.is_closed)
        self.assertIs(channel.close_reason, caught.exception)
        self.assertIs(await wait_for(channel.when_closed()), caught.exception)
        self.assertIs(await wait_for(closed_with), caught.exception)
        self.assertRaises(ChannelWrongStateError, channel.queue_declare, "any")
        self.assertRaises(ChannelWrongStateError, channel.basic_publish, "", "any", b"x")
        self.assertRaises(ChannelWrongStateError, channel.basic_get, "any")
        self.assertRaises(ChannelWrongStateError, channel.basic_ack, 1)
        self.assertRaises(ChannelWrongStateError, channel.close)
        self.assertNotIn(channel.channel_number, conn.channels)
        self.assertTrue(conn.is_open)
        other = await conn.channel()
        await self.declare_queue(other)

    @async_test
    async def test_bind_and_unbind(self) -> None:
        """queue_bind routes messages with the binding key (the queue name by default)
        into the queue; after queue_unbind those publishes are unroutable."""
        conn, channel, queue = await self.setup_queue()
        exchange = await self.declare_exchange(channel)
        bound = await channel.queue_bind(queue, exchange, "explicit")
        self.assertIsInstance(method_of(bound), spec.Queue.BindOk)
        await channel.queue_bind(queue, exchange)  # routing key defaults to the queue name
        await self.publish_all(conn, exchange, "explicit", [b"one"])
        await self.publish_all(conn, exchange, queue, [b"two"])
        self.assertEqual(await self.ready_count(conn, queue), 2)

        unbound = await channel.queue_unbind(queue, exchange, "explicit")
        self.assertIsInstance(method_of(unbound), spec.Queue.UnbindOk)
        await channel.queue_unbind(queue, exchange)
        publisher = await self.confirm_channel(conn)
        for key in ("explicit", queue):
            with self.assertRaises(UnroutableError):
                await wait_for(publisher.basic_publish(exchange, key, b"x", mandatory=True))
        self.assertEqual(await self.ready_count(conn, queue), 2)

    @async_test
    async def test_purge_reports_message_count(self) -> None:
        """queue_purge removes every ready message and reports how many in PurgeOk."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"a", b"b", b"c"])
        frame = await channel.queue_purge(queue)
        self.assertIsInstance(method_of(frame), spec.Queue.PurgeOk)
        self.assertEqual(method_of(frame).message_count, 3)
        self.assertEqual(await self.ready_count(conn, queue), 0)
        self.assertIsNone(await channel.basic_get(queue))

    @async_test
    async def test_delete_reports_message_count(self) -> None:
        """queue_delete reports the messages it dropped in DeleteOk, and the queue is
        gone (a passive declare fails with 404)."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"a", b"b"])
        frame = await channel.queue_delete(queue)
        self.assertIsInstance(method_of(frame), spec.Queue.DeleteOk)
        self.assertEqual(method_of(frame).message_count, 2)
        with self.assertRaises(ChannelClosedByBroker) as caught:
            await self.ready_count(conn, queue)
        self.assertEqual(caught.exception.reply_code, NOT_FOUND)

    @async_test
    async def test_delete_if_empty_refuses_non_empty_queue(self) -> None:
        """queue_delete(if_empty=True) of a queue holding a message fails with 406 and
        leaves the queue and its message in place."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"kept"])
        with self.assertRaises(ChannelClosedByBroker) as caught:
            await channel.queue_delete(queue, if_empty=True)
        self.assertEqual(caught.exception.reply_code, PRECONDITION_FAILED)
        self.assertEqual(await self.ready_count(conn, queue), 1)

    @async_test
    async def test_pipelined_rpcs_get_their_own_replies(self) -> None:
        """Several queue_declare calls made without waiting are sent one at a time and
        each Deferred fires with the reply to its own request, in order."""
        _conn, channel = await self.connection_and_channel()
        names = [self.delete_queue_later(unique_name("txamqp091-test-q")) for _ in range(10)]
        frames = await wait_for(
            defer.gatherResults([channel.queue_declare(name) for name in names])
        )
        self.assertEqual([method_of(frame).queue for frame in frames], names)


class QosTests(ChannelTestCase):
    """basic_qos (per consumer and global) and basic_recover."""

    @async_test
    async def test_per_consumer_prefetch(self) -> None:
        """With basic_qos(prefetch_count=2) and no acks a consumer gets exactly two of
        five messages (after a round trip the queue still holds three ready and nothing
        more has arrived); acking one lets exactly the next one, in order, arrive."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"m0", b"m1", b"m2", b"m3", b"m4"])
        frame = await channel.basic_qos(prefetch_count=2)
        self.assertIsInstance(method_of(frame), spec.Basic.QosOk)
        consumer, _tag = await channel.basic_consume(queue)
        first = await wait_for(consumer.get())
        second = await wait_for(consumer.get())
        self.assertEqual([first.body, second.body], [b"m0", b"m1"])
        self.assertEqual(await self.ready_count(conn, queue), 3)
        self.assertEqual(len(consumer), 0)

        channel.basic_ack(method_of(first).delivery_tag)
        third = await wait_for(consumer.get())
        self.assertEqual(third.body, b"m2")
        self.assertEqual(await self.ready_count(conn, queue), 2)
        self.assertEqual(len(consumer), 0)

    @async_test
    async def test_global_prefetch_is_shared_by_the_channels_consumers(self) -> None:
        """basic_qos(prefetch_count=2, global_qos=True) limits the whole channel: two
        consumers on two queues of three messages each get two deliveries in all (the
        queues then hold four ready), and one ack lets exactly one more through."""
        conn, channel = await self.connection_and_channel()
        queues = [await self.declare_queue(channel) for _ in range(2)]
        for queue in queues:
            await self.publish_all(conn, "", queue, [b"a", b"b", b"c"])
        await channel.basic_qos(prefetch_count=2, global_qos=True)
        received: list[Any] = []
        waiters: dict[int, defer.Deferred[None]] = {2: defer.Deferred(), 3: defer.Deferred()}

        def on_message(ch: Channel, method: Any, properties: Any, body: bytes) -> None:
            received.append(method)
            waiter = waiters.get(len(received))
            if waiter is not None:
                waiter.callback(None)

        for queue in queues:
            await channel.basic_consume(queue, on_message)
        await wait_for(waiters[2])
        counts = [await self.ready_count(conn, queue) for queue in queues]
        self.assertEqual(sum(counts), 4)
        self.assertEqual(len(received), 2)

        channel.basic_ack(received[0].delivery_tag)
        await wait_for(waiters[3])
        counts = [await self.ready_count(conn, queue) for queue in queues]
        self.assertEqual(sum(counts), 3)
        self.assertEqual(len(received), 3)

    @async_test
    async def test_recover_requeue_redelivers(self) -> None:
        """basic_recover(requeue=True) makes the broker redeliver the unacked messages,
        flagged redelivered=True; the first deliveries were not."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"x", b"y"])
        consumer, _tag = await channel.basic_consume(queue)
        firsts = [await wait_for(consumer.get()) for _ in range(2)]
        self.assertEqual([m.body for m in firsts], [b"x", b"y"])
        self.assertEqual([method_of(m).redelivered for m in firsts], [False, False])
        frame = await channel.basic_recover(requeue=True)
        self.assertIsInstance(method_of(frame), spec.Basic.RecoverOk)
        again = [await wait_for(consumer.get()) for _ in range(2)]
        self.assertEqual(sorted(m.body for m in again), [b"x", b"y"])
        self.assertEqual([method_of(m).redelivered for m in again], [True, True])
        for message in again:
            channel.basic_ack(method_of(message).delivery_tag)
        self.assertEqual(await self.ready_count(conn, queue), 0)


class GetTests(ChannelTestCase):
    """basic_get."""

    @async_test
    async def test_get_empty_then_message(self) -> None:
        """basic_get of an empty queue fires with None; of a queue with messages, with a
        ReceivedMessage (channel, GetOk, properties, body) unpacking like pika's tuple,
        whose GetOk counts the messages left."""
        conn, channel, queue = await self.setup_queue()
        self.assertIsNone(await channel.basic_get(queue))
        properties = BasicProperties(content_type="text/plain", message_id="id-1")
        await self.publish_all(conn, "", queue, [b"first", b"second"], properties)
        message = await channel.basic_get(queue)
        self.assertIsInstance(message, ReceivedMessage)
        assert message is not None
        ch, method, props, body = message
        self.assertIs(ch, channel)
        self.assertIsInstance(method, spec.Basic.GetOk)
        got: Any = method
        self.assertEqual((got.exchange, got.routing_key), ("", queue))
        self.assertEqual((got.redelivered, got.message_count), (False, 1))
        self.assertEqual((props.content_type, props.message_id), ("text/plain", "id-1"))
        self.assertEqual(body, b"first")
        channel.basic_ack(got.delivery_tag)

    @async_test
    async def test_get_auto_ack_removes_message(self) -> None:
        """basic_get(auto_ack=True) takes the message for good: after closing the channel
        (which would requeue unacked messages) the queue is empty."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"once"])
        message = await channel.basic_get(queue, auto_ack=True)
        assert message is not None
        self.assertEqual(message.body, b"once")
        await channel.close()
        self.assertEqual(await self.ready_count(conn, queue), 0)


class ConsumeTests(ChannelTestCase):
    """basic_consume, basic_cancel and broker-sent cancellation."""

    @async_test
    async def test_consume_with_callback_then_cancel(self) -> None:
        """basic_consume with a callback fires with the consumer tag, and the callback
        gets (channel, Basic.Deliver, properties, body) for each message; basic_cancel
        fires with CancelOk and removes the tag."""
        conn, channel, queue = await self.setup_queue()
        arrived: defer.Deferred[tuple[Any, ...]] = defer.Deferred()

        def on_message(ch: Channel, method: Any, properties: Any, body: bytes) -> None:
            arrived.callback((ch, method, properties, body))

        tag = await channel.basic_consume(queue, on_message, consumer_tag="my-tag")
        self.assertEqual(tag, "my-tag")
        self.assertEqual(channel.consumer_tags, ["my-tag"])
        await self.publish_all(conn, "", queue, [b"hello"], BasicProperties(priority=3))
        ch, method, properties, body = await wait_for(arrived)
        self.assertIs(ch, channel)
        self.assertIsInstance(method, spec.Basic.Deliver)
        self.assertEqual((method.consumer_tag, method.routing_key), ("my-tag", queue))
        self.assertEqual((properties.priority, body), (3, b"hello"))
        channel.basic_ack(method.delivery_tag)
        frame = await channel.basic_cancel(tag)
        self.assertIsInstance(method_of(frame), spec.Basic.CancelOk)
        self.assertEqual(channel.consumer_tags, [])

    @async_test
    async def test_duplicate_consumer_tag_raises(self) -> None:
        """basic_consume with a consumer tag already in use on the channel raises
        DuplicateConsumerTag at once, sending nothing."""
        conn, channel, queue = await self.setup_queue()
        await channel.basic_consume(queue, consumer_tag="same")
        before = conn.bytes_sent
        self.assertRaises(
            DuplicateConsumerTag, channel.basic_consume, queue, None, False, False, "same"
        )
        self.assertEqual(conn.bytes_sent, before)

    @async_test
    async def test_consumer_queue_async_for_ends_quietly_on_cancel(self) -> None:
        """Without a callback basic_consume gives a ConsumerQueue and tag; ``async for``
        yields the messages in order and stops quietly after basic_cancel."""
        conn, channel, queue = await self.setup_queue()
        consumer, tag = await channel.basic_consume(queue)
        self.assertIsInstance(consumer, ConsumerQueue)
        self.assertEqual(consumer.consumer_tag, tag)
        three: defer.Deferred[None] = defer.Deferred()

        async def collect() -> list[bytes]:
            bodies = []
            async for message in consumer:
                bodies.append(message.body)
                channel.basic_ack(method_of(message).delivery_tag)
                if len(bodies) == 3:
                    three.callback(None)
            return bodies

        collecting = defer.ensureDeferred(collect())
        await self.publish_all(conn, "", queue, [b"1", b"2", b"3"])
        await wait_for(three)
        await channel.basic_cancel(tag)
        self.assertEqual(await wait_for(collecting), [b"1", b"2", b"3"])
        self.assertTrue(consumer.closed)

    @async_test
    async def test_pending_get_ends_on_cancel(self) -> None:
        """A ConsumerQueue.get() waiting when basic_cancel completes fails with
        ConsumerCancelled."""
        _conn, channel, queue = await self.setup_queue()
        consumer, tag = await channel.basic_consume(queue)
        waiting = consumer.get()
        await channel.basic_cancel(tag)
        with self.assertRaises(ConsumerCancelled):
            await wait_for(waiting)

    @async_test
    async def test_broker_cancel_when_queue_deleted(self) -> None:
        """Deleting a consumed queue makes the broker cancel the consumers: the
        ConsumerQueue's get() fails with ConsumerCancelled, the cancel callback gets the
        Basic.Cancel frame (for both consumers, one with a callback), and the tags are
        forgotten."""
        conn, channel, queue = await self.setup_queue()
        self.assertTrue(conn.consumer_cancel_notify_supported)
        cancels: list[Any] = []
        both: defer.Deferred[None] = defer.Deferred()

        def on_cancel(frame: Any) -> None:
            cancels.append(frame)
            if len(cancels) == 2:
                both.callback(None)

        channel.add_on_cancel_callback(on_cancel)
        consumer, tag = await channel.basic_consume(queue)
        callback_tag = await channel.basic_consume(queue, lambda *args: None)
        waiting = consumer.get()
        other = await conn.channel()
        await other.queue_delete(queue)
        with self.assertRaises(ConsumerCancelled):
            await wait_for(waiting)
        await wait_for(both)
        self.assertIsInstance(method_of(cancels[0]), spec.Basic.Cancel)
        self.assertEqual(
            sorted(method_of(frame).consumer_tag for frame in cancels),
            sorted([tag, callback_tag]),
        )
        self.assertEqual(channel.consumer_tags, [])
        self.assertTrue(channel.is_open)


class AckTests(ChannelTestCase):
    """basic_ack, basic_nack and basic_reject."""

    async def get_all(self, channel: Channel, queue: str, count: int) -> list[Any]:
        """basic_get ``count`` messages (failing if the queue runs dry)."""
        messages = []
        for _ in range(count):
            message = await channel.basic_get(queue)
            assert message is not None
            messages.append(message)
        return messages

    @async_test
    async def test_ack_removes_message(self) -> None:
        """An acked message is gone for good: closing the channel requeues nothing."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"a"])
        (message,) = await self.get_all(channel, queue, 1)
        channel.basic_ack(method_of(message).delivery_tag)
        await channel.close()
        self.assertEqual(await self.ready_count(conn, queue), 0)

    @async_test
    async def test_unacked_messages_requeued_when_channel_closes(self) -> None:
        """Messages taken but not acked return to the queue when their channel closes,
        and are then flagged redelivered."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"a"])
        await self.get_all(channel, queue, 1)
        await channel.close()
        other = await conn.channel()
        message = await other.basic_get(queue, auto_ack=True)
        assert message is not None
        self.assertTrue(method_of(message).redelivered)

    @async_test
    async def test_ack_multiple(self) -> None:
        """basic_ack(tag, multiple=True) acks every delivery up to ``tag``."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"a", b"b", b"c"])
        messages = await self.get_all(channel, queue, 3)
        channel.basic_ack(method_of(messages[1]).delivery_tag, multiple=True)
        await channel.close()
        other = await conn.channel()
        left = await other.basic_get(queue, auto_ack=True)
        assert left is not None
        self.assertEqual(left.body, b"c")
        self.assertIsNone(await other.basic_get(queue))

    @async_test
    async def test_nack_requeue_true_redelivers(self) -> None:
        """basic_nack(requeue=True) puts the message back; the next basic_get gets it
        flagged redelivered."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"again"])
        (message,) = await self.get_all(channel, queue, 1)
        channel.basic_nack(method_of(message).delivery_tag, requeue=True)
        again = await channel.basic_get(queue)
        assert again is not None
        self.assertEqual(again.body, b"again")
        self.assertTrue(method_of(again).redelivered)
        channel.basic_ack(method_of(again).delivery_tag)

    @async_test
    async def test_nack_multiple_without_requeue_drops(self) -> None:
        """basic_nack(tag, multiple=True, requeue=False) drops every delivery up to tag."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"a", b"b", b"c"])
        messages = await self.get_all(channel, queue, 3)
        channel.basic_nack(method_of(messages[2]).delivery_tag, multiple=True, requeue=False)
        self.assertIsNone(await channel.basic_get(queue))
        await channel.close()
        self.assertEqual(await self.ready_count(conn, queue), 0)

    @async_test
    async def test_nack_multiple_with_requeue_returns_all(self) -> None:
        """basic_nack(tag, multiple=True) requeues every delivery up to tag, in order."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"a", b"b", b"c"])
        messages = await self.get_all(channel, queue, 3)
        channel.basic_nack(method_of(messages[2]).delivery_tag, multiple=True)
        again = await self.get_all(channel, queue, 3)
        self.assertEqual([m.body for m in again], [b"a", b"b", b"c"])
        self.assertTrue(all(method_of(m).redelivered for m in again))
        channel.basic_ack(method_of(again[2]).delivery_tag, multiple=True)

    @async_test
    async def test_reject_requeue_and_drop(self) -> None:
        """basic_reject(requeue=True) puts the message back (redelivered);
        basic_reject(requeue=False) drops it."""
        conn, channel, queue = await self.setup_queue()
        await self.publish_all(conn, "", queue, [b"r"])
        (message,) = await self.get_all(channel, queue, 1)
        channel.basic_reject(method_of(message).delivery_tag)
        (again,) = await self.get_all(channel, queue, 1)
        self.assertTrue(method_of(again).redelivered)
        channel.basic_reject(method_of(again).delivery_tag, requeue=False)
        self.assertIsNone(await channel.basic_get(queue))

    @async_test
    async def test_ack_flags_must_be_bool(self) -> None:
        """basic_ack, basic_nack and basic_reject raise TypeError for a non-bool
        ``multiple``/``requeue``, before anything is sent (like every other flag)."""
        conn, channel, _queue = await self.setup_queue()
        calls = [
            lambda: channel.basic_ack(1, multiple="yes"),  # type: ignore[arg-type]
            lambda: channel.basic_nack(1, multiple=1),  # type: ignore[arg-type]
            lambda: channel.basic_nack(1, requeue="no"),  # type: ignore[arg-type]
            lambda: channel.basic_reject(1, requeue=None),  # type: ignore[arg-type]
        ]
        sent: list[int] = []
        raised: list[bool] = []
        for call in calls:
            before = conn.bytes_sent
            try:
                call()
            except TypeError:
                raised.append(True)
            else:
                raised.append(False)
            sent.append(conn.bytes_sent - before)
        self.assertEqual(raised, [True] * len(calls))
        self.assertEqual(sent, [0] * len(calls))


class ConfirmTests(ChannelTestCase):
    """confirm_delivery, publisher acks and nacks, mandatory returns."""

    @async_test
    async def test_publish_acked(self) -> None:
        """After confirm_delivery (SelectOk) each publish returns a Deferred firing with
        Basic.Ack; the unconfirmed count drops back to zero."""
        conn, channel, queue = await self.setup_queue()
        self.assertTrue(conn.publisher_confirms_supported)
        self.assertIs(channel.basic_publish("", queue, b"plain"), PUBLISHED)
        frame = await channel.confirm_delivery()
        self.assertIsInstance(method_of(frame), spec.Confirm.SelectOk)
        self.assertTrue(channel.confirming)
        pending = [channel.basic_publish("", queue, f"m{i}") for i in range(3)]
        self.assertEqual(channel.unconfirmed_count, 3)
        acks = await wait_for(defer.gatherResults(pending))
        self.assertTrue(all(isinstance(ack, spec.Basic.Ack) for ack in acks))
        self.assertEqual(channel.unconfirmed_count, 0)
        self.assertEqual(await self.ready_count(conn, queue), 4)

    @async_test
    async def test_reject_publish_overflow_nacks(self) -> None:
        """On a queue with x-max-length=1 and x-overflow=reject-publish the first publish
        is acked and the second fails with NackError carrying the published message."""
        _conn, channel, queue = await self.setup_queue(
            arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
        )
        await channel.confirm_delivery()
        first = await wait_for(channel.basic_publish("", queue, b"fits"))
        self.assertIsInstance(first, spec.Basic.Ack)
        with self.assertRaises(NackError) as caught:
            await wait_for(channel.basic_publish("", queue, b"overflows"))
        (published,) = caught.exception.messages
        self.assertIsInstance(published, PublishedMessage)
        self.assertEqual((published.routing_key, published.body), (queue, b"overflows"))
        self.assertEqual(channel.unconfirmed_count, 0)

    @async_test
    async def test_mandatory_unroutable_in_confirm_mode(self) -> None:
        """A mandatory publish nothing routes fails with UnroutableError carrying the
        returned message (312 NO_ROUTE), and the return callback is called."""
        _conn, channel = await self.connection_and_channel()
        returned: list[tuple[Any, ...]] = []
        channel.add_on_return_callback(lambda *args: returned.append(args))
        await channel.confirm_delivery()
        key = unique_name("txamqp091-nowhere")
        with self.assertRaises(UnroutableError) as caught:
            await wait_for(channel.basic_publish("", key, b"lost", mandatory=True))
        (message,) = caught.exception.messages
        self.assertEqual(
            (method_of(message).reply_code, method_of(message).routing_key, message.body),
            (NO_ROUTE, key, b"lost"),
        )
        self.assertEqual(len(returned), 1)
        ch, method, _properties, body = returned[0]
        self.assertIs(ch, channel)
        self.assertEqual((method.reply_code, body), (NO_ROUTE, b"lost"))

    @async_test
    async def test_mandatory_unroutable_without_confirms_calls_return_callback(self) -> None:
        """Outside confirm mode an unroutable mandatory publish comes back through the
        return callback with its properties and body."""
        _conn, channel = await self.connection_and_channel()
        returned: defer.Deferred[tuple[Any, ...]] = defer.Deferred()
        channel.add_on_return_callback(lambda *args: returned.callback(args))
        key = unique_name("txamqp091-nowhere")
        properties = BasicProperties(message_id="back")
        self.assertIs(channel.basic_publish("", key, b"x", properties, mandatory=True), PUBLISHED)
        _ch, method, props, body = await wait_for(returned)
        self.assertIsInstance(method, spec.Basic.Return)
        self.assertEqual(
            (method.reply_code, method.exchange, method.routing_key), (NO_ROUTE, "", key)
        )
        self.assertEqual((props.message_id, body), ("back", b"x"))


class RpcPatternTests(ChannelTestCase):
    """Direct reply-to."""

    @async_test
    async def test_direct_reply_to(self) -> None:
        """A client consuming amq.rabbitmq.reply-to (auto_ack) publishes a request with
        reply_to=amq.rabbitmq.reply-to; a responder on another connection answers to
        that reply_to, and the reply reaches the client with its correlation id."""
        _conn, channel = await self.connection_and_channel()
        requests = await self.declare_queue(channel)
        responder_conn = await self.open_connection()
        responder = await responder_conn.channel()

        def respond(ch: Channel, method: Any, properties: Any, body: bytes) -> None:
            ch.basic_publish(
                "",
                properties.reply_to,
                body.upper(),
                BasicProperties(correlation_id=properties.correlation_id),
            )
            ch.basic_ack(method.delivery_tag)

        await responder.basic_consume(requests, respond)
        replies, _tag = await channel.basic_consume("amq.rabbitmq.reply-to", auto_ack=True)
        correlation_id = unique_name("corr")
        channel.basic_publish(
            "",
            requests,
            b"ping",
            BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id=correlation_id),
        )
        reply = await wait_for(replies.get())
        self.assertEqual(reply.body, b"PING")
        self.assertEqual(reply.properties.correlation_id, correlation_id)


class TxAndFlowTests(ChannelTestCase):
    """tx_select, tx_commit, tx_rollback and flow."""

    @async_test
    async def test_rolled_back_publish_never_arrives(self) -> None:
        """In a transaction, a publish followed by tx_rollback is discarded and one
        followed by tx_commit is delivered: the queue then holds just the latter."""
        conn, channel, queue = await self.setup_queue()
        self.assertIsInstance(method_of(await channel.tx_select()), spec.Tx.SelectOk)
        channel.basic_publish("", queue, b"rolled back")
        self.assertIsInstance(method_of(await channel.tx_rollback()), spec.Tx.RollbackOk)
        channel.basic_publish("", queue, b"committed")
        self.assertIsInstance(method_of(await channel.tx_commit()), spec.Tx.CommitOk)
        other = await conn.channel()
        message = await other.basic_get(queue, auto_ack=True)
        assert message is not None
        self.assertEqual(message.body, b"committed")
        self.assertIsNone(await other.basic_get(queue))

    @async_test
    async def test_flow_true(self) -> None:
        """flow(True) is answered with Channel.FlowOk(active=True)."""
        _conn, channel = await self.connection_and_channel()
        frame = await channel.flow(True)
        self.assertIsInstance(method_of(frame), spec.Channel.FlowOk)
        self.assertTrue(method_of(frame).active)
        self.assertTrue(channel.flow_active)


class CloseTests(ChannelTestCase):
    """Closing a channel from the client."""

    @async_test
    async def test_close_fails_everything_pending(self) -> None:
        """Channel.close() fails the in-flight and queued RPCs and unconfirmed publishes
        with ChannelClosedByClient, ends a waiting ConsumerQueue.get() with
        ConsumerCancelled, calls the close callbacks, fires once CloseOk arrives, and
        leaves the channel closed (later calls raise ChannelWrongStateError) while the
        connection stays open."""
        conn, channel, queue = await self.setup_queue()
        consumer, _tag = await channel.basic_consume(queue)
        waiting = consumer.get()
        await channel.confirm_delivery()
        closed_with: list[Exception] = []
        channel.add_on_close_callback(lambda ch, reason: closed_with.append(reason))
        publish = channel.basic_publish("", queue, b"unconfirmed")
        rpcs = [channel.queue_declare(queue, passive=True) for _ in range(3)]
        closing = channel.close(320, "bye")
        for d in [publish, *rpcs]:
            with self.assertRaises(ChannelClosedByClient) as caught:
                await d
            self.assertEqual(caught.exception.reply_code, 320)
        with self.assertRaises(ConsumerCancelled):
            await wait_for(waiting)
        await wait_for(closing)
        self.assertTrue(channel.is_closed)
        self.assertEqual(len(closed_with), 1)
        self.assertIsInstance(closed_with[0], ChannelClosedByClient)
        self.assertIsInstance(channel.close_reason, ChannelClosedByClient)
        self.assertRaises(ChannelWrongStateError, channel.close)
        self.assertRaises(ChannelWrongStateError, channel.queue_purge, queue)
        self.assertRaises(ChannelWrongStateError, channel.basic_publish, "", queue, b"x")
        self.assertTrue(conn.is_open)
        self.assertNotIn(channel.channel_number, conn.channels)
        other = await conn.channel()
        await other.queue_declare(queue, passive=True)

    @async_test
    async def test_crossed_close_keeps_connection_open(self) -> None:
        """When the broker closes a channel (406 for an unknown delivery tag) while the
        client's own Channel.Close is in flight, the close completes and the connection
        stays open and usable: the broker's CloseOk to the client's Close must not be
        taken for a frame on an unknown channel."""
        conn, channel = await self.connection_and_channel()
        channel.basic_ack(999)  # unknown delivery tag: the broker will close the channel
        closing = channel.close()
        await wait_for(closing)
        self.assertTrue(channel.is_closed)
        # One round trip on a new channel: the broker's answer to our Close has arrived.
        other = await conn.channel()
        await self.declare_queue(other)
        self.assertTrue(conn.is_open, conn.close_reason)


class BodyTests(ChannelTestCase):
    """Message bodies: size and type."""

    @async_test
    async def test_large_body_round_trip(self) -> None:
        """A 128 MiB body (RabbitMQ's default limit) goes out split into body frames of
        at most frame_max bytes (each adding 8 bytes of framing), is acked, and comes
        back through basic_get, again in many frames, byte for byte."""
        conn, channel, queue = await self.setup_queue()
        size = 128 * 1024 * 1024
        body = os.urandom(size)
        self.assertLess(conn.frame_max, size)
        body_frames = -(-size // (conn.frame_max - 8))
        await channel.confirm_delivery()
        sent_before = conn.bytes_sent
        publishing = channel.basic_publish("", queue, body)
        # Method frame, header frame, then every body frame with its 8 bytes of framing.
        self.assertGreaterEqual(conn.bytes_sent - sent_before, size + 8 * body_frames)
        ack = await wait_for(publishing, 240)
        self.assertIsInstance(ack, spec.Basic.Ack)
        received_before = conn.frames_received
        message = await wait_for(channel.basic_get(queue, auto_ack=True), 240)
        assert message is not None
        self.assertGreaterEqual(conn.frames_received - received_before, 2 + body_frames)
        self.assertEqual(len(message.body), size)
        self.assertTrue(message.body == body, "the body came back different")

    test_large_body_round_trip.timeout = 300  # type: ignore[attr-defined]

    @async_test
    async def test_frames_sent_counts_every_frame_of_a_message(self) -> None:
        """conn.frames_sent grows by the number of frames a publish writes: method and
        header for an empty body (no body frame), plus one body frame per frame_max-8
        bytes otherwise."""
        conn, channel, queue = await self.setup_queue()
        room = conn.frame_max - 8
        expected = {0: 2, 1: 3, room: 3, room + 1: 4, 3 * room + 5: 6}
        counted = {}
        for size in expected:
            before = conn.frames_sent
            channel.basic_publish("", queue, bytes(size))
            counted[size] = conn.frames_sent - before
        self.assertEqual(counted, expected)

    @async_test
    async def test_body_types(self) -> None:
        """Bodies given as bytearray, memoryview (of a slice), str (sent as UTF-8) and
        empty bytes arrive as the corresponding bytes."""
        _conn, channel, queue = await self.setup_queue()
        text = "héllo wörld ✓"
        bodies: list[Any] = [
            bytearray(b"from a bytearray"),
            memoryview(b"--from a memoryview--")[2:-2],
            text,
            b"",
        ]
        expected = [b"from a bytearray", b"from a memoryview", text.encode("utf-8"), b""]
        await channel.confirm_delivery()
        await wait_for(
            defer.gatherResults([channel.basic_publish("", queue, body) for body in bodies])
        )
        got = []
        for _ in bodies:
            message = await channel.basic_get(queue, auto_ack=True)
            assert message is not None
            self.assertIs(type(message.body), bytes)
            got.append(message.body)
        self.assertEqual(got, expected)


class ArgumentTests(ChannelTestCase):
    """Bad arguments are refused before anything is sent."""

    @async_test
    async def test_bad_arguments_raise_before_sending(self) -> None:
        """Every operation given an argument of the wrong type raises TypeError (a value
        out of range or too long, ValueError) synchronously, writes nothing, and leaves
        the channel usable."""
        conn, typed_channel, queue = await self.setup_queue()
        channel: Any = typed_channel  # deliberately called with wrong types
        bad: Any = object()
        type_errors: dict[str, Any] = {
            "queue_declare queue": lambda: channel.queue_declare(123),
            "queue_declare passive": lambda: channel.queue_declare(queue, passive="yes"),
            "queue_declare arguments": lambda: channel.queue_declare(queue, arguments=[1]),
            "queue_declare argument value": lambda: channel.queue_declare(
                queue, arguments={"k": bad}
            ),
            "queue_bind exchange": lambda: channel.queue_bind(queue, 5),
            "queue_bind routing_key": lambda: channel.queue_bind(queue, "amq.direct", 5),
            "queue_unbind exchange": lambda: channel.queue_unbind(queue, 5),
            "queue_purge": lambda: channel.queue_purge(b"q"),
            "queue_delete if_empty": lambda: channel.queue_delete(queue, if_empty=1),
            "exchange_declare name": lambda: channel.exchange_declare(5),
            "exchange_declare type": lambda: channel.exchange_declare("x", exchange_type=5),
            "exchange_declare argument value": lambda: channel.exchange_declare(
                "x", arguments={"k": bad}
            ),
            "exchange_delete": lambda: channel.exchange_delete(5),
            "exchange_bind": lambda: channel.exchange_bind(1, "amq.direct"),
            "exchange_bind arguments": lambda: channel.exchange_bind("a", "b", arguments=[1]),
            "exchange_unbind": lambda: channel.exchange_unbind("a", 1),
            "basic_publish body": lambda: channel.basic_publish("", queue, 123),
            "basic_publish routing_key": lambda: channel.basic_publish("", 5, b"x"),
            "basic_publish exchange": lambda: channel.basic_publish(None, queue, b"x"),
            "basic_publish properties": lambda: channel.basic_publish("", queue, b"x", {}),
            "basic_publish mandatory": lambda: channel.basic_publish("", queue, b"x", None, "yes"),
            "basic_publish property type": lambda: channel.basic_publish(
                "", queue, b"x", BasicProperties(delivery_mode=bad)
            ),
            "basic_publish header value": lambda: channel.basic_publish(
                "", queue, b"x", BasicProperties(headers={"k": bad})
            ),
            "basic_qos prefetch_count": lambda: channel.basic_qos(prefetch_count="1"),
            "basic_qos global_qos": lambda: channel.basic_qos(0, 1, 1),
            "basic_ack delivery_tag": lambda: channel.basic_ack("1"),
            "basic_reject delivery_tag": lambda: channel.basic_reject(None),
            "basic_consume auto_ack": lambda: channel.basic_consume(queue, auto_ack=1),
            "basic_consume callback": lambda: channel.basic_consume(queue, 5),
            "basic_get queue": lambda: channel.basic_get(5),
            "basic_cancel": lambda: channel.basic_cancel(5),
            "basic_recover": lambda: channel.basic_recover(1),
            "flow": lambda: channel.flow(1),
            "close": lambda: channel.close("x"),
        }
        value_errors: dict[str, Any] = {
            "queue_declare name too long": lambda: channel.queue_declare("q" * 256),
            "basic_publish exchange too long": lambda: channel.basic_publish(
                "x" * 256, queue, b"x"
            ),
            "basic_qos negative": lambda: channel.basic_qos(prefetch_count=-1),
            "basic_qos too big": lambda: channel.basic_qos(prefetch_count=70000),
        }
        problems = []
        for expected, calls in ((TypeError, type_errors), (ValueError, value_errors)):
            for name, call in calls.items():
                before = conn.bytes_sent
                try:
                    call()
                except expected:
                    pass
                except Exception as exc:
                    problems.append(f"{name}: raised {exc!r}")
                else:
                    problems.append(f"{name}: did not raise")
                if conn.bytes_sent != before:
                    problems.append(f"{name}: sent {conn.bytes_sent - before} bytes")
        self.assertEqual(problems, [])
        self.assertEqual(channel.consumer_tags, [])
        frame = await channel.queue_declare(queue, passive=True)
        self.assertEqual(method_of(frame).queue, queue)

    @async_test
    async def test_refused_consume_leaves_no_consumer(self) -> None:
        """A basic_consume refused for a bad argument (an unencodable arguments value, a
        queue name over 255 bytes) registers no consumer: the tag is not listed and can
        be used for a real consumer afterwards."""
        _conn, channel, queue = await self.setup_queue()
        bad: Any = object()
        self.assertRaises(
            TypeError, channel.basic_consume, queue, None, False, False, "tag1", {"k": bad}
        )
        self.assertRaises(ValueError, channel.basic_consume, "q" * 256, None, False, False, "tag2")
        self.assertEqual(channel.consumer_tags, [])
        for wanted in ("tag1", "tag2"):
            _consumer, tag = await channel.basic_consume(queue, consumer_tag=wanted)
            self.assertEqual(tag, wanted)

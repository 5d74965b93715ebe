"""Tests of the native asyncio API (:mod:`txamqp091.aio`) against the real broker.

Each test runs on its own asyncio loop (:class:`unittest.IsolatedAsyncioTestCase`, which
trial runs too); no reactor is involved. Every wait is bounded by
:func:`asyncio.wait_for`; queues and exchanges have unique names and are deleted at
cleanup, over a connection of their own.
"""

from __future__ import annotations

import asyncio
import socket
import unittest
from collections.abc import Awaitable
from typing import Any, TypeVar

from txamqp091 import aio, spec
from txamqp091.exceptions import (
    AMQPConnectionError,
    ChannelClosedByBroker,
    ChannelWrongStateError,
    ConnectionClosedByClient,
    ConsumerCancelled,
    NackError,
    UnroutableError,
)
from txamqp091.parameters import ConnectionParameters, URLParameters
from txamqp091.test.broker import amqp_url, ensure_broker
from txamqp091.test.integration import unique_name

T = TypeVar("T")

#: Upper bound for a single wait (only reached when something is broken).
WAIT = 10.0


def wait(awaitable: Awaitable[T]) -> Awaitable[T]:
    """*awaitable*, failing with :class:`TimeoutError` after :data:`WAIT` seconds."""
    return asyncio.wait_for(awaitable, WAIT)


def live_handles(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    """The timer handles still scheduled (not cancelled) on *loop*."""
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
    return [handle for handle in scheduled if not handle.cancelled()]


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class AioTestCase(unittest.IsolatedAsyncioTestCase):
    """Opens connections closed at cleanup; deletes the queues/exchanges it declares."""

    async def asyncSetUp(self) -> None:
        ensure_broker()
        self.loop = asyncio.get_running_loop()
        self.url = amqp_url()

    async def connect(self, target: Any = None) -> aio.Connection:
        """A connection to the test broker (or *target*), closed at cleanup."""
        conn = await wait(aio.connect(self.url if target is None else target))
        self.addAsyncCleanup(self._close, conn)
        return conn

    @staticmethod
    async def _close(conn: aio.Connection) -> None:
        await wait(conn.close())

    async def channel(self) -> aio.Channel:
        """A channel on a new connection."""
        conn = await self.connect()
        return await wait(conn.channel())

    async def queue(self, channel: aio.Channel, **kw: Any) -> str:
        """Declare a uniquely named queue, deleted at cleanup."""
        name = unique_name("txamqp091-aio-q")
        frame = await wait(channel.queue_declare(name, **kw))
        self.assertEqual(frame.method.queue, name)
        self.addAsyncCleanup(self._delete, "queue", name)
        return name

    async def exchange(self, channel: aio.Channel) -> str:
        """Declare a uniquely named direct exchange, deleted at cleanup."""
        name = unique_name("txamqp091-aio-x")
        await wait(channel.exchange_declare(name, "direct"))
        self.addAsyncCleanup(self._delete, "exchange", name)
        return name

    async def _delete(self, kind: str, name: str) -> None:
        async with await wait(aio.connect(self.url)) as conn:
            ch = await wait(conn.channel())
            if kind == "queue":
                await wait(ch.queue_delete(name))
            else:
                await wait(ch.exchange_delete(name))

    async def counts(self, queue: str) -> tuple[int, int]:
        """``(ready messages, consumers)`` of *queue*, asked on a channel of its own."""
        async with await wait(aio.connect(self.url)) as conn:
            ch = await wait(conn.channel())
            frame = await wait(ch.queue_declare(queue, passive=True))
            return frame.method.message_count, frame.method.consumer_count


class FlowTests(AioTestCase):
    """The everyday path: declare, bind, consume, publish with confirms, close."""

    async def test_full_flow(self) -> None:
        """Connect (with heartbeats); declare an exchange and a queue, bind, consume with
        ``async for`` and ack, publish with confirms; close: the connection says why it
        closed and nothing is left scheduled on the loop."""
        conn = await wait(aio.connect(URLParameters(self.url + "?heartbeat=5")))
        self.assertTrue(conn.is_open)
        self.assertEqual(conn.core.heartbeat, 5)
        self.assertFalse(conn.is_blocked)
        ch = await wait(conn.channel())
        exchange = await self.exchange(ch)
        queue = await self.queue(ch)
        bound = await wait(ch.queue_bind(queue, exchange, "key"))
        self.assertIsInstance(bound.method, spec.Queue.BindOk)
        publisher = await wait(conn.channel())
        selected = await wait(publisher.confirm_delivery())
        self.assertIsInstance(selected.method, spec.Confirm.SelectOk)
        self.assertTrue(publisher.confirming)

        bodies = [f"message {n}".encode() for n in range(5)]
        async with ch.consume(queue, prefetch=2) as consumer:
            self.assertTrue(consumer.is_active)
            self.assertEqual(ch.consumer_tags, [consumer.consumer_tag])
            for body in bodies:
                await wait(
                    publisher.basic_publish(
                        exchange, "key", body, spec.BasicProperties(content_type="text/plain")
                    )
                )
            received: list[bytes] = []
            async for message in consumer:
                self.assertEqual(message.properties.content_type, "text/plain")
                self.assertEqual((message.exchange, message.routing_key), (exchange, "key"))
                self.assertFalse(message.redelivered)
                message.ack()
                received.append(message.body)
                if len(received) == len(bodies):
                    break
        self.assertFalse(consumer.is_active)
        self.assertEqual(received, bodies)
        self.assertEqual(ch.consumer_tags, [])
        self.assertEqual(await self.counts(queue), (0, 0))

        closed = conn.closed
        await wait(conn.close())
        self.assertTrue(conn.is_closed)
        reason = await wait(closed)
        self.assertIsInstance(reason, ConnectionClosedByClient)
        self.assertIs(conn.close_reason, reason)
        self.assertTrue(ch.is_closed)
        self.assertEqual(conn.core.clock.getDelayedCalls(), [])
        self.assertEqual(live_handles(self.loop), [])

    async def test_context_managers(self) -> None:
        """Leaving ``async with`` closes the channel, then the connection; closing again
        is harmless."""
        async with await wait(aio.connect(self.url)) as conn:
            async with await wait(conn.channel()) as ch:
                self.assertTrue(ch.is_open)
            self.assertTrue(ch.is_closed)
            self.assertTrue(conn.is_open)
        self.assertTrue(conn.is_closed)
        await wait(conn.close())
        self.assertEqual(live_handles(self.loop), [])

    async def test_basic_get(self) -> None:
        """``basic_get`` returns a :class:`~txamqp091.aio.Message` (acked on its channel),
        then ``None`` once the queue is empty."""
        ch = await self.channel()
        queue = await self.queue(ch)
        await wait(ch.confirm_delivery())
        await wait(ch.basic_publish("", queue, "only one"))
        message = await wait(ch.basic_get(queue))
        assert message is not None
        self.assertEqual(message.body, b"only one")
        self.assertIsInstance(message.method, spec.Basic.GetOk)
        self.assertIs(message.channel, ch)
        message.ack()
        self.assertIsNone(await wait(ch.basic_get(queue)))
        self.assertEqual(await self.counts(queue), (0, 0))

    async def test_publish_without_confirms(self) -> None:
        """Outside confirm mode ``basic_publish`` sends at once and its future is already
        resolved."""
        ch = await self.channel()
        queue = await self.queue(ch)
        published = ch.basic_publish("", queue, b"fire and forget")
        self.assertTrue(published.done())
        self.assertIsNone(published.result())
        message = None
        while message is None:
            message = await wait(ch.basic_get(queue, auto_ack=True))
        self.assertEqual(message.body, b"fire and forget")

    async def test_nack_and_reject(self) -> None:
        """``nack`` and ``reject`` requeue by default: the message comes back redelivered."""
        ch = await self.channel()
        queue = await self.queue(ch)
        await wait(ch.confirm_delivery())
        await wait(ch.basic_publish("", queue, b"again"))
        first = await wait(ch.basic_get(queue))
        assert first is not None
        first.nack()
        second = await wait(ch.basic_get(queue))
        assert second is not None
        self.assertTrue(second.redelivered)
        second.reject(requeue=False)
        self.assertIsNone(await wait(ch.basic_get(queue)))


class ErrorTests(AioTestCase):
    """Errors are the core's exceptions."""

    async def test_nack_error(self) -> None:
        """A ``reject-publish`` overflow makes the broker nack: ``NackError``; the
        channel stays open."""
        ch = await self.channel()
        queue = await self.queue(ch, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        await wait(ch.confirm_delivery())
        await wait(ch.basic_publish("", queue, b"fits"))
        with self.assertRaises(NackError) as caught:
            await wait(ch.basic_publish("", queue, b"overflows"))
        (published,) = caught.exception.messages
        self.assertEqual(published.body, b"overflows")
        self.assertTrue(ch.is_open)

    async def test_unroutable(self) -> None:
        """A mandatory publish nothing routes fails with ``UnroutableError``, and the
        return callback gets this channel."""
        ch = await self.channel()
        returned: list[tuple[Any, ...]] = []
        ch.add_on_return_callback(lambda *args: returned.append(args))
        await wait(ch.confirm_delivery())
        key = unique_name("txamqp091-aio-nowhere")
        with self.assertRaises(UnroutableError):
            await wait(ch.basic_publish("", key, b"lost", mandatory=True))
        self.assertEqual(len(returned), 1)
        channel, method, _properties, body = returned[0]
        self.assertIs(channel, ch)
        self.assertEqual((method.reply_code, method.routing_key, body), (312, key, b"lost"))

    async def test_broker_closes_channel(self) -> None:
        """A passive declare of a missing queue: ``ChannelClosedByBroker`` with 404; the
        channel is closed (``closed`` resolves with the reason), later calls raise
        ``ChannelWrongStateError``, and the connection and other channels go on."""
        conn = await self.connect()
        ch = await wait(conn.channel())
        with self.assertRaises(ChannelClosedByBroker) as caught:
            await wait(ch.queue_declare(unique_name("txamqp091-aio-missing"), passive=True))
        self.assertEqual(caught.exception.reply_code, 404)
        self.assertTrue(ch.is_closed)
        self.assertIs(await wait(ch.closed), caught.exception)
        self.assertIs(ch.close_reason, caught.exception)
        with self.assertRaises(ChannelWrongStateError):
            ch.basic_get("anything")
        with self.assertRaises(ChannelWrongStateError):
            ch.close()
        self.assertTrue(conn.is_open)
        other = await wait(conn.channel())
        await self.queue(other)

    async def test_connection_refused(self) -> None:
        """A port nobody listens on: ``AMQPConnectionError``."""
        params = ConnectionParameters(host="127.0.0.1", port=closed_port())
        with self.assertRaises(AMQPConnectionError):
            await wait(aio.connect(params))
        self.assertEqual(live_handles(self.loop), [])

    async def test_dead_host_then_good_one(self) -> None:
        """With a list, a dead first host is skipped and the next one is used."""
        good = URLParameters(self.url)
        dead = ConnectionParameters(host="127.0.0.1", port=closed_port())
        conn = await self.connect([dead, good])
        self.assertTrue(conn.is_open)
        self.assertEqual(conn.core.parameters.port, good.port)
        await wait(conn.channel())

    async def test_bad_target(self) -> None:
        """A target that is neither a URL nor parameters is a ``TypeError``."""
        with self.assertRaises(TypeError):
            await aio.connect(42)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            await aio.connect([])


class CancellationTests(AioTestCase):
    """Cancelling what is awaited leaves the channel sound."""

    async def test_cancel_task_awaiting_rpc(self) -> None:
        """A task cancelled while awaiting an RPC on the wire raises ``CancelledError``;
        the reply is dropped when it comes, and the next RPC gets its own reply."""
        ch = await self.channel()
        first = unique_name("txamqp091-aio-q")
        self.addAsyncCleanup(self._delete, "queue", first)
        sent = asyncio.Event()

        async def declare() -> Any:
            reply = ch.queue_declare(first)
            sent.set()
            return await reply

        task = asyncio.create_task(declare())
        await wait(sent.wait())
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        second = await self.queue(ch)  # asserts the reply names the second queue
        self.assertTrue(ch.is_open)
        self.assertEqual(await self.counts(first), (0, 0))  # sent before: it exists
        self.assertNotEqual(first, second)

    async def test_cancel_queued_rpc(self) -> None:
        """An RPC cancelled while waiting its turn is never sent."""
        ch = await self.channel()
        queue = await self.queue(ch)
        never = unique_name("txamqp091-aio-never")
        ahead = ch.queue_declare(queue, passive=True)
        queued = ch.queue_declare(never)
        queued.cancel()
        self.assertEqual((await wait(ahead)).method.queue, queue)
        after = await wait(ch.queue_declare(queue, passive=True))
        self.assertEqual(after.method.queue, queue)
        async with await wait(aio.connect(self.url)) as conn:
            probe = await wait(conn.channel())
            with self.assertRaises(ChannelClosedByBroker) as caught:
                await wait(probe.queue_declare(never, passive=True))
            self.assertEqual(caught.exception.reply_code, 404)

    async def test_cancel_channel_open(self) -> None:
        """A channel whose opening was cancelled is closed once open; the connection
        goes on."""
        conn = await self.connect()
        opening = conn.channel()
        (orphan,) = conn.core.channels.values()
        opening.cancel()
        reason = await wait(orphan.when_closed().asFuture(self.loop))
        self.assertIsNotNone(reason)
        self.assertTrue(conn.is_open)
        ch = await wait(conn.channel())
        self.assertTrue(ch.is_open)

    async def test_cancel_consuming_task(self) -> None:
        """Cancelling a task that awaits the next message cancels the consumer on the
        broker at once, and the channel goes on."""
        ch = await self.channel()
        queue = await self.queue(ch)
        await wait(ch.confirm_delivery())
        await wait(ch.basic_publish("", queue, b"m0"))
        first = asyncio.Event()
        received: list[bytes] = []

        async def consume() -> None:
            async for message in ch.consume(queue):
                message.ack()
                received.append(message.body)
                first.set()

        task = asyncio.create_task(consume())
        await wait(first.wait())  # the task now waits for a second message
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        self.assertEqual(received, [b"m0"])
        # The channel serialises RPCs: this one is answered after the Basic.CancelOk.
        frame = await wait(ch.queue_declare(queue, passive=True))
        self.assertEqual(frame.method.consumer_count, 0)
        self.assertEqual(ch.consumer_tags, [])
        await wait(ch.basic_publish("", queue, b"m1"))
        self.assertEqual(await self.counts(queue), (1, 0))


class ConsumeTests(AioTestCase):
    """How ``async for`` over a consumer ends."""

    async def publish(self, ch: aio.Channel, queue: str, count: int) -> None:
        """Publish ``m0``… with confirms."""
        await wait(ch.confirm_delivery())
        for n in range(count):
            await wait(ch.basic_publish("", queue, f"m{n}"))

    async def test_break_ends_the_consumer(self) -> None:
        """Breaking out of ``async for`` cancels the consumer and requeues the messages
        it had received but not handed out: another consumer then gets all the rest."""
        ch = await self.channel()
        queue = await self.queue(ch)
        await self.publish(ch, queue, 5)
        async for message in ch.consume(queue, prefetch=3):
            message.ack()
            break
        other = await self.channel()
        rest: list[bytes] = []
        async with other.consume(queue) as consumer:
            async for message in consumer:
                message.ack()
                rest.append(message.body)
                if len(rest) == 4:
                    break
        self.assertEqual(sorted(rest), [b"m1", b"m2", b"m3", b"m4"])
        self.assertEqual(ch.consumer_tags, [])
        self.assertEqual(await self.counts(queue), (0, 0))

    async def test_cancel_ends_iteration_quietly(self) -> None:
        """``cancel()`` from elsewhere ends the ``async for`` without an error, after the
        messages received before."""
        ch = await self.channel()
        queue = await self.queue(ch)
        await self.publish(ch, queue, 2)
        consumer = ch.consume(queue)
        received: list[bytes] = []
        async for message in consumer:
            message.ack()
            received.append(message.body)
            if len(received) == 2:
                await wait(consumer.cancel())
        self.assertEqual(received, [b"m0", b"m1"])
        self.assertFalse(consumer.is_active)
        await wait(consumer.cancel())  # again: nothing to do

    async def test_channel_close_ends_iteration_quietly(self) -> None:
        """The application closing the channel ends the ``async for`` without an error."""
        ch = await self.channel()
        queue = await self.queue(ch)
        await self.publish(ch, queue, 1)
        received: list[bytes] = []
        async for message in ch.consume(queue):
            received.append(message.body)
            await wait(ch.close())
        self.assertEqual(received, [b"m0"])
        self.assertEqual(await self.counts(queue), (1, 0))

    async def test_broker_channel_close_raises(self) -> None:
        """The broker closing the channel ends the ``async for`` with its error."""
        ch = await self.channel()
        queue = await self.queue(ch)
        await self.publish(ch, queue, 1)
        with self.assertRaises(ChannelClosedByBroker) as caught:
            async for message in ch.consume(queue):
                self.assertEqual(message.body, b"m0")
                message.ack()
                message.ack()  # an unknown delivery tag: 406 PRECONDITION_FAILED
        self.assertEqual(caught.exception.reply_code, 406)

    async def test_broker_cancel_raises(self) -> None:
        """A consumer the broker cancels (its queue was deleted) ends the ``async for``
        with ``ConsumerCancelled``."""
        ch = await self.channel()
        queue = await self.queue(ch)
        other = await self.channel()
        with self.assertRaises(ConsumerCancelled):
            async with ch.consume(queue) as consumer:
                await wait(other.queue_delete(queue))
                async for _ in consumer:
                    self.fail("the queue was empty")

    async def test_start_failure(self) -> None:
        """Consuming from a missing queue raises the broker's error at the first
        iteration."""
        ch = await self.channel()
        with self.assertRaises(ChannelClosedByBroker) as caught:
            async for _ in ch.consume(unique_name("txamqp091-aio-missing")):
                self.fail("nothing to consume")
        self.assertEqual(caught.exception.reply_code, 404)

"""Tests of the Blocking face (:mod:`txamqp091.blocking`) against the real broker.

These are plain :class:`unittest.TestCase` tests (trial runs them too): the Blocking face
runs its own loop in the calling thread, no reactor is involved. The face's own blocking
calls (with timeouts) are the only synchronisation.
"""

from __future__ import annotations

import gc
import os
import ssl
import subprocess
import threading
import time
import unittest
import weakref
from typing import Any

import txamqp091 as pika
from txamqp091.test.broker import amqp_url, ensure_broker
from txamqp091.test.integration import unique_name

#: Upper bound for a single wait (only reached when something is broken).
WAIT = 5.0


class BlockingTestCase(unittest.TestCase):
    """Opens connections closed at cleanup; deletes the queues/exchanges it declares."""

    def setUp(self) -> None:
        self.host, self.port = ensure_broker()

    def params(self, **kw: Any) -> pika.ConnectionParameters:
        """Parameters for the test broker (guest/guest)."""
        kw.setdefault("host", self.host)
        kw.setdefault("port", self.port)
        return pika.ConnectionParameters(**kw)

    def connect(self) -> pika.BlockingConnection:
        """A connection closed when the test ends."""
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url()))
        self.addCleanup(self._close, conn)
        return conn

    @staticmethod
    def _close(conn: pika.BlockingConnection) -> None:
        if conn.is_open:
            conn.close()

    def channel(self) -> pika.BlockingChannel:
        """A channel on a new connection (closed at cleanup)."""
        return self.connect().channel()

    def queue(self, channel: pika.BlockingChannel, **kw: Any) -> str:
        """Declare a uniquely named queue deleted when the test ends."""
        name = unique_name("txamqp091-blocking-q")
        frame = channel.queue_declare(name, **kw)
        self.assertEqual(frame.method.queue, name)
        self.addCleanup(self._delete, "queue", name)
        return name

    def exchange(
        self, channel: pika.BlockingChannel, exchange_type: pika.exchange_type.ExchangeType
    ) -> str:
        """Declare a uniquely named exchange deleted when the test ends."""
        name = unique_name("txamqp091-blocking-x")
        channel.exchange_declare(name, exchange_type)
        self.addCleanup(self._delete, "exchange", name)
        return name

    def _delete(self, kind: str, name: str) -> None:
        with pika.BlockingConnection(pika.URLParameters(amqp_url())) as conn:
            ch = conn.channel()
            if kind == "queue":
                ch.queue_delete(name)
            else:
                ch.exchange_delete(name)


class ConnectionTests(BlockingTestCase):
    """:class:`BlockingConnection` itself."""

    def test_open_and_close(self) -> None:
        """A connection opens, reports its state, and closes; closing twice raises."""
        conn = pika.BlockingConnection(self.params())
        self.addCleanup(self._close, conn)
        self.assertTrue(conn.is_open)
        self.assertFalse(conn.is_closed)
        conn.close()
        self.assertFalse(conn.is_open)
        self.assertTrue(conn.is_closed)
        self.assertRaises(pika.exceptions.ConnectionWrongStateError, conn.close)
        self.assertRaises(pika.exceptions.ConnectionWrongStateError, conn.channel)

    def test_context_manager(self) -> None:
        """``with BlockingConnection(...)`` closes the connection on exit."""
        with pika.BlockingConnection(self.params()) as conn:
            self.addCleanup(self._close, conn)
            self.assertTrue(conn.is_open)
        self.assertTrue(conn.is_closed)

    def test_capabilities(self) -> None:
        """RabbitMQ's capabilities are reported, under pika's current and legacy names."""
        conn = self.connect()
        self.assertIs(conn.basic_nack_supported, True)
        self.assertIs(conn.consumer_cancel_notify_supported, True)
        self.assertIs(conn.exchange_exchange_bindings_supported, True)
        self.assertIs(conn.publisher_confirms_supported, True)
        self.assertIs(conn.basic_nack, True)
        self.assertIs(conn.consumer_cancel_notify, True)
        self.assertIs(conn.exchange_exchange_bindings, True)
        self.assertIs(conn.publisher_confirms, True)

    def test_wrong_password(self) -> None:
        """Bad credentials raise ``ProbableAuthenticationError`` (an
        ``AMQPConnectionError``), not retried."""
        creds = pika.PlainCredentials("guest", "not-the-password")
        params = self.params(credentials=creds, connection_attempts=3, retry_delay=30)
        with self.assertRaises(pika.exceptions.AMQPConnectionError) as cm:
            pika.BlockingConnection(params)
        self.assertIsInstance(cm.exception, pika.exceptions.ProbableAuthenticationError)

    def test_dead_first_parameters(self) -> None:
        """With several parameters, an unreachable first one is skipped."""
        dead = pika.ConnectionParameters("127.0.0.1", 1, connection_attempts=1)
        conn = pika.BlockingConnection([dead, self.params()])
        self.addCleanup(self._close, conn)
        self.assertTrue(conn.is_open)

    def test_only_dead_parameters(self) -> None:
        """When nothing answers, ``AMQPConnectionError`` is raised."""
        dead = pika.ConnectionParameters("127.0.0.1", 1, connection_attempts=1)
        self.assertRaises(pika.exceptions.AMQPConnectionError, pika.BlockingConnection, dead)

    def test_bad_parameters_type(self) -> None:
        """Parameters of the wrong type are refused with ``TypeError``."""
        self.assertRaises(TypeError, pika.BlockingConnection, "amqp://localhost")
        self.assertRaises(TypeError, pika.BlockingConnection, [])

    def test_process_data_events_zero(self) -> None:
        """``process_data_events(time_limit=0)`` returns with nothing to do."""
        conn = self.connect()
        conn.process_data_events(time_limit=0)
        conn.process_data_events()
        self.assertTrue(conn.is_open)

    def test_call_later_in_process_data_events(self) -> None:
        """A ``call_later`` callback runs inside ``process_data_events``."""
        conn = self.connect()
        ran: list[str] = []
        conn.call_later(0, lambda: ran.append("fired"))
        self.assertEqual(ran, [])  # only from inside the loop
        conn.process_data_events(time_limit=WAIT)
        self.assertEqual(ran, ["fired"])

    def test_call_later_in_sleep(self) -> None:
        """A ``call_later`` callback runs inside ``sleep``."""
        conn = self.connect()
        ran: list[str] = []
        conn.call_later(0, lambda: ran.append("fired"))
        conn.sleep(0.05)
        self.assertEqual(ran, ["fired"])

    def test_remove_timeout(self) -> None:
        """``remove_timeout`` stops a ``call_later`` callback (twice is harmless)."""
        conn = self.connect()
        ran: list[str] = []
        timer = conn.call_later(0, lambda: ran.append("removed"))
        conn.remove_timeout(timer)
        conn.remove_timeout(timer)
        conn.call_later(0.01, lambda: ran.append("kept"))
        conn.process_data_events(time_limit=WAIT)
        self.assertEqual(ran, ["kept"])

    def test_call_later_requires_callable(self) -> None:
        """Non-callables are refused."""
        conn = self.connect()
        self.assertRaises(TypeError, conn.call_later, 1, "nope")
        self.assertRaises(TypeError, conn.add_callback_threadsafe, "nope")

    def test_add_callback_threadsafe(self) -> None:
        """A worker thread's ``add_callback_threadsafe`` callback runs in the connection's
        thread, inside ``process_data_events``."""
        conn = self.connect()
        ran: list[str] = []
        worker = threading.Thread(
            target=conn.add_callback_threadsafe,
            args=(lambda: ran.append(threading.current_thread().name),),
        )
        worker.start()
        self.addCleanup(worker.join, WAIT)
        worker.join(WAIT)
        self.assertFalse(worker.is_alive())
        conn.process_data_events(time_limit=WAIT)
        self.assertEqual(ran, [threading.current_thread().name])

    def test_add_callback_threadsafe_wakes_sleep(self) -> None:
        """A callback added while ``process_data_events(None)`` blocks wakes it."""
        conn = self.connect()
        ran: list[str] = []
        go = threading.Event()

        def work() -> None:
            go.wait(WAIT)
            conn.add_callback_threadsafe(lambda: ran.append("from worker"))

        worker = threading.Thread(target=work)
        worker.start()
        self.addCleanup(worker.join, WAIT)
        # Guard: a broken wake-up fails the test instead of hanging it.
        conn.call_later(WAIT, lambda: ran.append("guard"))
        go.set()
        conn.process_data_events(time_limit=None)
        self.assertEqual(ran, ["from worker"])


class ChannelTests(BlockingTestCase):
    """:class:`BlockingChannel`."""

    def test_channel_context_manager(self) -> None:
        """``with conn.channel()`` closes the channel; the connection stays open."""
        conn = self.connect()
        with conn.channel() as ch:
            self.assertTrue(ch.is_open)
            self.assertIs(ch.connection, conn)
            self.assertGreater(ch.channel_number, 0)
        self.assertTrue(ch.is_closed)
        self.assertTrue(conn.is_open)
        self.assertRaises(pika.exceptions.ChannelWrongStateError, ch.basic_qos)

    def test_queue_declare_frame(self) -> None:
        """``queue_declare`` returns the DeclareOk frame; a server-named queue works."""
        ch = self.channel()
        frame = ch.queue_declare("", exclusive=True)
        self.assertTrue(frame.method.queue.startswith("amq.gen-"))
        self.assertEqual(frame.method.message_count, 0)

    def test_fanout_bind_unbind(self) -> None:
        """A fanout exchange routes to a bound queue, no longer after unbinding."""
        ch = self.channel()
        x = self.exchange(ch, pika.exchange_type.ExchangeType.fanout)
        q = self.queue(ch)
        ch.queue_bind(q, x)
        ch.basic_publish(x, "any-key", b"one")
        method, _, body = self._get(ch, q)
        self.assertEqual(body, b"one")
        ch.basic_ack(method.delivery_tag)
        ch.queue_unbind(q, x)
        ch.basic_publish(x, "any-key", b"two")
        # confirm mode makes the publish synchronous: routing is done when it returns
        ch.confirm_delivery()
        ch.basic_publish(x, "any-key", b"three")
        self.assertEqual(ch.basic_get(q), (None, None, None))

    def _get(self, ch: pika.BlockingChannel, q: str) -> Any:
        """``basic_get`` until a message is there (the publish is asynchronous)."""
        for _ in range(200):
            method, props, body = ch.basic_get(q)
            if method is not None:
                return method, props, body
            ch.connection.process_data_events(time_limit=0.01)
        self.fail(f"no message in {q}")

    def test_publish_and_get(self) -> None:
        """``basic_publish`` then ``basic_get`` returns (method, properties, body)."""
        ch = self.channel()
        q = self.queue(ch)
        self.assertEqual(ch.basic_get(q), (None, None, None))
        props = pika.BasicProperties(content_type="text/plain", headers={"k": "v"})
        ch.basic_publish("", q, "héllo", properties=props)
        method, got, body = self._get(ch, q)
        self.assertEqual(body, "héllo".encode())
        self.assertEqual(got.content_type, "text/plain")
        self.assertEqual(got.headers, {"k": "v"})
        self.assertEqual(method.routing_key, q)
        ch.basic_ack(method.delivery_tag)
        self.assertEqual(ch.basic_get(q), (None, None, None))

    def test_consume_and_stop_from_callback(self) -> None:
        """``start_consuming`` runs the callback; ``stop_consuming`` in it returns."""
        ch = self.channel()
        q = self.queue(ch)
        ch.confirm_delivery()
        ch.basic_publish("", q, b"a")
        ch.basic_publish("", q, b"b")
        seen: list[bytes] = []

        def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
            self.assertIs(channel, ch)
            seen.append(body)
            channel.basic_ack(method.delivery_tag)
            if len(seen) == 2:
                channel.stop_consuming()

        tag = ch.basic_consume(q, on_message)
        self.assertEqual(ch.consumer_tags, [tag])
        guard = ch.connection.call_later(WAIT, ch.stop_consuming)
        ch.start_consuming()
        ch.connection.remove_timeout(guard)
        self.assertEqual(seen, [b"a", b"b"])
        self.assertEqual(ch.consumer_tags, [])

    def test_start_consuming_reentrancy(self) -> None:
        """``start_consuming`` from a callback raises ``ReentrancyError``."""
        ch = self.channel()
        q = self.queue(ch)
        errors: list[BaseException] = []

        def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
            try:
                channel.start_consuming()
            except pika.exceptions.ReentrancyError as e:
                errors.append(e)
            channel.stop_consuming()

        ch.basic_consume(q, on_message, auto_ack=True)
        ch.basic_publish("", q, b"x")
        guard = ch.connection.call_later(WAIT, ch.stop_consuming)
        ch.start_consuming()
        ch.connection.remove_timeout(guard)
        self.assertEqual(len(errors), 1)

    def test_duplicate_consumer_tag(self) -> None:
        """Reusing an active consumer tag raises ``DuplicateConsumerTag``."""
        ch = self.channel()
        q = self.queue(ch)
        ch.basic_consume(q, lambda *a: None, consumer_tag="ctag")
        with self.assertRaises(pika.exceptions.DuplicateConsumerTag):
            ch.basic_consume(q, lambda *a: None, consumer_tag="ctag")
        self.assertEqual(ch.basic_cancel("ctag"), [])

    def _fill(self, ch: pika.BlockingChannel, q: str, count: int) -> None:
        """Publish *count* confirmed messages ``0``, ``1``, ... (in the queue on return)."""
        ch.confirm_delivery()
        for i in range(count):
            ch.basic_publish("", q, str(i).encode())

    def _get_all(self, ch: pika.BlockingChannel, q: str, count: int) -> list[Any]:
        """``basic_get`` *count* messages (acking them), waiting at most WAIT seconds."""
        got: list[Any] = []
        deadline = time.monotonic() + WAIT
        while len(got) < count and time.monotonic() < deadline:
            method, _props, body = ch.basic_get(q)
            if method is None:
                ch.connection.process_data_events(time_limit=0.05)
                continue
            ch.basic_ack(method.delivery_tag)
            got.append((method, body))
        return got

    def test_basic_cancel_requeues_undispatched(self) -> None:
        """Cancelling an ``auto_ack=False`` consumer from its callback rejects (with
        requeue) what it received but had not dispatched: the callback does not see
        them, and they come back to the queue instead of staying unacknowledged."""
        ch = self.channel()
        q = self.queue(ch)
        self._fill(ch, q, 20)
        seen: list[bytes] = []
        returned: list[Any] = []

        def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
            seen.append(body)
            channel.basic_ack(method.delivery_tag)
            returned.append(channel.basic_cancel(method.consumer_tag))

        ch.basic_consume(q, on_message)
        guard = ch.connection.call_later(WAIT, ch.stop_consuming)
        ch.start_consuming()
        ch.connection.remove_timeout(guard)
        self.assertEqual(seen, [b"0"])
        self.assertEqual(returned, [[]])
        # On the same channel: a message still held unacknowledged would not come back.
        got = self._get_all(ch, q, 19)
        self.assertEqual(sorted(int(body) for _, body in got), list(range(1, 20)))
        self.assertTrue(any(method.redelivered for method, _ in got))

    def test_basic_cancel_returns_undispatched_auto_ack(self) -> None:
        """Cancelling an ``auto_ack=True`` consumer returns what it received but had not
        dispatched, as ``(channel, method, properties, body)``."""
        ch = self.channel()
        q = self.queue(ch)
        self._fill(ch, q, 20)
        seen: list[bytes] = []
        returned: list[Any] = []

        def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
            seen.append(body)
            returned.extend(channel.basic_cancel(method.consumer_tag))

        ch.basic_consume(q, on_message, auto_ack=True)
        guard = ch.connection.call_later(WAIT, ch.stop_consuming)
        ch.start_consuming()
        ch.connection.remove_timeout(guard)
        self.assertEqual(seen, [b"0"])
        self.assertTrue(all(item[0] is ch for item in returned))
        self.assertTrue(all(isinstance(item[1], pika.spec.Basic.Deliver) for item in returned))
        left = ch.queue_declare(q, passive=True).method.message_count
        bodies = [int(item[3]) for item in returned]
        self.assertEqual(bodies, list(range(1, 1 + len(bodies))))
        self.assertEqual(1 + len(bodies) + left, 20)

    def test_stop_consuming_keeps_auto_acked_messages(self) -> None:
        """``stop_consuming`` from a callback still gives an ``auto_ack=True`` consumer
        what it had received (the broker has forgotten those messages), and requeues
        what an ``auto_ack=False`` consumer had received."""
        ch = self.channel()
        auto_q = self.queue(ch)
        manual_q = self.queue(ch)
        self._fill(ch, auto_q, 20)
        self._fill(ch, manual_q, 20)
        auto_seen: list[int] = []
        manual_seen: list[int] = []

        def on_auto(channel: Any, method: Any, props: Any, body: bytes) -> None:
            auto_seen.append(int(body))
            if len(auto_seen) == 1:
                channel.stop_consuming()

        def on_manual(channel: Any, method: Any, props: Any, body: bytes) -> None:
            manual_seen.append(int(body))
            channel.basic_ack(method.delivery_tag)

        ch.basic_consume(manual_q, on_manual)
        ch.basic_consume(auto_q, on_auto, auto_ack=True)
        guard = ch.connection.call_later(WAIT, ch.stop_consuming)
        ch.start_consuming()
        ch.connection.remove_timeout(guard)
        self.assertEqual(ch.consumer_tags, [])
        left = ch.queue_declare(auto_q, passive=True).method.message_count
        self.assertEqual(auto_seen, list(range(len(auto_seen))))
        self.assertEqual(len(auto_seen) + left, 20)
        got = self._get_all(ch, manual_q, 20 - len(manual_seen))
        self.assertEqual(sorted(manual_seen + [int(body) for _, body in got]), list(range(20)))

    def test_basic_cancel_unknown_and_generator_tags(self) -> None:
        """basic_cancel of an unknown tag returns [] and leaves the channel usable (as
        pika); of the consume() generator's tag, it ends the generator (which would
        otherwise wait for ever) and requeues what it held."""
        ch = self.channel()
        q = self.queue(ch)
        self.assertEqual(ch.basic_cancel("no-such-consumer"), [])
        self.assertTrue(ch.is_open)
        ch.basic_publish("", q, b"one")
        ch.basic_publish("", q, b"two")
        generator = ch.consume(q)
        method, _, body = next(generator)
        self.assertEqual(body, b"one")
        ch.basic_ack(method.delivery_tag)
        self.assertEqual(ch.basic_cancel(method.consumer_tag), [])
        self.assertRaises(StopIteration, next, generator)
        self.assertEqual(ch.get_waiting_message_count(), 0)
        got = self._get_all(ch, q, 1)
        self.assertEqual([body for _, body in got], [b"two"])

    def test_consume_other_parameters_refused(self) -> None:
        """A second ``consume()`` with other parameters while one is active raises
        ``ValueError``; the same parameters resume the same generator."""
        ch = self.channel()
        q = self.queue(ch)
        ch.basic_publish("", q, b"x")
        first = ch.consume(q, inactivity_timeout=WAIT)
        _method, _, body = next(first)
        self.assertEqual(body, b"x")
        with self.assertRaises(ValueError):
            next(ch.consume(q, auto_ack=True, inactivity_timeout=0.1))
        with self.assertRaises(ValueError):
            next(ch.consume(q, inactivity_timeout=-1))
        ch.basic_publish("", q, b"y")
        _, _, body = next(ch.consume(q, inactivity_timeout=WAIT))
        self.assertEqual(body, b"y")
        self.assertEqual(ch.cancel(), 0)

    def test_consume_inactivity_timeout(self) -> None:
        """``consume(inactivity_timeout=...)`` yields (None, None, None) when idle."""
        ch = self.channel()
        q = self.queue(ch)
        gen = ch.consume(q, inactivity_timeout=0.05)
        self.assertEqual(next(gen), (None, None, None))
        self.assertEqual(ch.cancel(), 0)

    def test_consume_cancel_requeues(self) -> None:
        """Messages buffered by the consume generator are requeued by ``cancel``."""
        ch = self.channel()
        q = self.queue(ch)
        ch.basic_qos(prefetch_count=3)
        ch.confirm_delivery()
        for body in (b"1", b"2", b"3"):
            ch.basic_publish("", q, body)
        gen = ch.consume(q, inactivity_timeout=0.2)
        first: Any = next(gen)
        self.assertIsNotNone(first[0])
        self.assertEqual(first[2], b"1")
        ch.basic_ack(first[0].delivery_tag)
        for _ in range(50):
            if ch.get_waiting_message_count() == 2:
                break
            ch.connection.process_data_events(time_limit=0.05)
        self.assertEqual(ch.get_waiting_message_count(), 2)
        self.assertEqual(ch.cancel(), 2)
        self.assertEqual(ch.get_waiting_message_count(), 0)
        bodies = []
        for _ in range(2):
            method, _, body = self._get(ch, q)
            self.assertTrue(method.redelivered)
            bodies.append(body)
            ch.basic_ack(method.delivery_tag)
        self.assertEqual(sorted(bodies), [b"2", b"3"])

    def test_consume_without_inactivity_timeout(self) -> None:
        """``consume()`` without inactivity_timeout yields a message that arrives while it
        waits (a guard timer fails the test instead of hanging it)."""
        ch = self.channel()
        q = self.queue(ch)
        gen = ch.consume(q, auto_ack=True)
        # Published from inside the generator's wait, once it is consuming.
        ch.connection.call_later(0, lambda: ch.basic_publish("", q, b"m"))

        def guard() -> None:
            raise AssertionError("consume() did not yield the message delivered meanwhile")

        timer = ch.connection.call_later(WAIT, guard)
        _, _, body = next(gen)
        ch.connection.remove_timeout(timer)
        self.assertEqual(body, b"m")
        self.assertEqual(ch.cancel(), 0)

    def test_unroutable_mandatory(self) -> None:
        """In confirm mode a mandatory publish nobody takes raises ``UnroutableError``."""
        ch = self.channel()
        ch.confirm_delivery()
        with self.assertRaises(pika.exceptions.UnroutableError):
            ch.basic_publish("", unique_name("nowhere"), b"lost", mandatory=True)
        self.assertTrue(ch.is_open)
        # Not mandatory: silently dropped but confirmed.
        ch.basic_publish("", unique_name("nowhere"), b"lost")

    def test_nack_error(self) -> None:
        """A ``reject-publish`` overflow makes the broker nack: ``NackError``."""
        ch = self.channel()
        q = self.queue(ch, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        ch.confirm_delivery()
        ch.basic_publish("", q, b"fits")
        with self.assertRaises(pika.exceptions.NackError):
            ch.basic_publish("", q, b"overflows")
        self.assertTrue(ch.is_open)

    def test_channel_error(self) -> None:
        """A passive declare of a missing queue closes the channel
        (``ChannelClosedByBroker``, 404); later calls raise ``ChannelWrongStateError``."""
        conn = self.connect()
        ch = conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.queue_declare(unique_name("missing"), passive=True)
        self.assertEqual(cm.exception.reply_code, 404)
        self.assertTrue(ch.is_closed)
        with self.assertRaises(pika.exceptions.ChannelWrongStateError):
            ch.basic_get("whatever")
        self.assertTrue(conn.is_open)
        other = conn.channel()
        self.assertTrue(other.is_open)

    def test_tx(self) -> None:
        """``tx_select``/``tx_rollback``/``tx_commit`` govern when publishes land."""
        ch = self.channel()
        q = self.queue(ch)
        ch.tx_select()
        ch.basic_publish("", q, b"rolled back")
        ch.tx_rollback()
        ch.basic_publish("", q, b"committed")
        ch.tx_commit()
        _, _, body = ch.basic_get(q, auto_ack=True)
        self.assertEqual(body, b"committed")
        self.assertEqual(ch.basic_get(q), (None, None, None))

    def test_basic_qos_and_recover(self) -> None:
        """``basic_qos`` limits deliveries; ``basic_recover(requeue=True)`` redelivers."""
        ch = self.channel()
        q = self.queue(ch)
        ch.confirm_delivery()
        for body in (b"1", b"2"):
            ch.basic_publish("", q, body)
        ch.basic_qos(prefetch_count=1)
        seen: list[tuple[bytes, bool]] = []

        def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
            seen.append((body, method.redelivered))

        ch.basic_consume(q, on_message)
        # With prefetch 1 and no ack, only one message is delivered.
        while not seen:
            ch.connection.process_data_events(time_limit=WAIT)
        ch.connection.process_data_events(time_limit=0.1)
        self.assertEqual(seen, [(b"1", False)])
        ch.basic_recover(requeue=True)
        while len(seen) < 2:
            ch.connection.process_data_events(time_limit=WAIT)
        self.assertEqual(seen[1], (b"1", True))


class BeyondPikaTests(BlockingTestCase):
    """What the Blocking face promises beyond pika."""

    def test_heartbeats_survive_long_user_code(self) -> None:
        """With heartbeat=2, a consumer callback that runs for 10 s and then 10 s with
        no call into the library do not lose the connection (pika loses it: its
        heartbeats go out only while the application is inside one of its calls). The
        sleeps are the application's long work, not synchronisation."""
        conn = pika.BlockingConnection(self.params(heartbeat=2))
        self.addCleanup(self._close, conn)
        ch = conn.channel()
        q = self.queue(ch)
        ch.basic_publish("", q, b"slow")
        handled: list[bytes] = []

        def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            time.sleep(10)  # long user code: five heartbeat intervals
            channel.basic_ack(method.delivery_tag)
            handled.append(body)
            channel.stop_consuming()

        ch.basic_consume(q, on_message)
        ch.start_consuming()
        self.assertEqual(handled, [b"slow"])
        self.assertTrue(conn.is_open)
        time.sleep(10)  # an idle publisher
        ch.confirm_delivery()
        ch.basic_publish("", q, b"after")
        self.assertEqual(ch.basic_get(q, auto_ack=True)[2], b"after")
        self.assertTrue(conn.is_open)

    def test_many_threads_publish_through_one_connection(self) -> None:
        """16 threads x 10,000 publishes on one channel: every message arrives (the
        broker counts 160,000), no framing error closes the connection, no deadlock
        (each thread is joined with a timeout)."""
        conn = self.connect()
        ch = conn.channel()
        q = self.queue(ch)
        threads, per_thread = 16, 10_000
        errors: list[BaseException] = []

        def publish() -> None:
            try:
                for _ in range(per_thread):
                    ch.basic_publish("", q, b"m" * 32)
            except BaseException as e:  # reported below
                errors.append(e)

        workers = [threading.Thread(target=publish) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
            self.assertFalse(worker.is_alive(), "a publishing thread is stuck")
        self.assertEqual(errors, [])
        deadline = time.monotonic() + 60
        while True:
            held = ch.queue_declare(q, passive=True).method.message_count
            if held >= threads * per_thread or time.monotonic() > deadline:
                break
            conn.process_data_events(0.1)
        self.assertEqual(held, threads * per_thread)
        self.assertTrue(conn.is_open)

    def test_idle_consumer_does_not_spin(self) -> None:
        """An idle consumer in start_consuming waits in select(): over a second with
        nothing to do, the loop turns a handful of times (timers), not thousands."""
        conn = pika.BlockingConnection(self.params(heartbeat=0))
        self.addCleanup(self._close, conn)
        ch = conn.channel()
        q = self.queue(ch)
        ch.basic_consume(q, lambda *args: None)
        loop = conn._loop
        real_poll = loop.poll
        turns = [0]

        def counting_poll(timeout: float | None) -> None:
            turns[0] += 1
            real_poll(timeout)

        loop.poll = counting_poll  # type: ignore[method-assign]
        conn.call_later(1.0, ch.stop_consuming)
        ch.start_consuming()
        self.assertLess(turns[0], 20)


class AsynchronousErrorTests(BlockingTestCase):
    """Errors that happen between calls are raised from the next call, as in pika."""

    def test_channel_closed_between_calls(self) -> None:
        """An ack of an unknown tag makes the broker close the channel (406) after the
        call returned: start_consuming raises ChannelClosedByBroker (it does not hang),
        and the next call ChannelWrongStateError."""
        ch = self.channel()
        q = self.queue(ch)
        ch.basic_consume(q, lambda *args: None)
        ch.basic_ack(999)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as raised:
            ch.start_consuming()
        self.assertEqual(raised.exception.reply_code, 406)
        with self.assertRaises(pika.exceptions.ChannelWrongStateError):
            ch.basic_get(q)

    def test_connection_forced_close_during_start_consuming(self) -> None:
        """``rabbitmqctl close_connection`` while start_consuming waits: it raises
        ConnectionClosedByBroker (320), the next call ConnectionWrongStateError."""
        name = unique_name("txamqp091-blocking-conn")
        conn = pika.BlockingConnection(self.params(client_properties={"connection_name": name}))
        self.addCleanup(self._close, conn)
        ch = conn.channel()
        q = self.queue(ch)
        ch.basic_consume(q, lambda *args: None)
        closer = threading.Thread(target=force_close, args=(name,))
        closer.start()
        self.addCleanup(closer.join, 30)
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as raised:
            ch.start_consuming()
        self.assertEqual(raised.exception.reply_code, 320)
        with self.assertRaises(pika.exceptions.ConnectionWrongStateError):
            conn.channel()


def force_close(connection_name: str) -> None:
    """Have the broker close the connection named *connection_name* (waits for it to be
    listed, at most 20 s)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["rabbitmqctl", "list_connections", "pid", "client_properties", "-q"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in listed.splitlines():
            if connection_name in line:
                subprocess.run(
                    ["rabbitmqctl", "close_connection", line.split("\t")[0], "test: forced"],
                    capture_output=True,
                    check=True,
                )
                return
    raise AssertionError(f"connection {connection_name!r} never listed")


class TLSTests(unittest.TestCase):
    """The Blocking face over TLS, on the test suite's TLS node (started once)."""

    def setUp(self) -> None:
        from txamqp091.test.tls_broker import tls_broker

        self.broker = tls_broker()

    def context(self, ca: str | None = None) -> ssl.SSLContext:
        """A verifying client context trusting *ca* (the node's CA by default)."""
        return ssl.create_default_context(cafile=ca or self.broker.ca_cert)

    def test_verified_tls_round_trip(self) -> None:
        """SSLOptions(SSLContext, server_hostname): the handshake verifies the node's
        certificate, and a publish/get round trip works over TLS."""
        params = pika.ConnectionParameters(
            host="127.0.0.1",
            port=self.broker.port,
            ssl_options=pika.SSLOptions(self.context(), server_hostname="localhost"),
        )
        with pika.BlockingConnection(params) as conn:
            ch = conn.channel()
            q = ch.queue_declare("", exclusive=True).method.queue
            ch.basic_publish("", q, b"over tls")
            self.assertEqual(ch.basic_get(q, auto_ack=True)[2], b"over tls")
        self.assertTrue(conn.is_closed)

    def test_unknown_ca_refused(self) -> None:
        """A certificate from a CA we do not trust fails the connection with
        AMQPTLSError (an AMQPConnectionError)."""
        params = pika.ConnectionParameters(
            host="127.0.0.1",
            port=self.broker.port,
            ssl_options=pika.SSLOptions(
                self.context(self.broker.other_ca_cert), server_hostname="localhost"
            ),
            connection_attempts=1,
        )
        with self.assertRaises(pika.exceptions.AMQPTLSError):
            pika.BlockingConnection(params)

    def test_twisted_creator_refused(self) -> None:
        """A Twisted connection creator is for the Twisted face: a clear TypeError."""
        from twisted.internet.ssl import optionsForClientTLS

        params = pika.ConnectionParameters(
            host="localhost",
            port=self.broker.port,
            ssl_options=pika.SSLOptions(optionsForClientTLS("localhost")),
        )
        with self.assertRaises(TypeError):
            pika.BlockingConnection(params)


class MoreChannelTests(BlockingTestCase):
    """Settling deliveries, update_secret, exchange-to-exchange bindings."""

    def test_nack_and_reject_requeue_or_drop(self) -> None:
        """basic_nack and basic_reject with requeue put a message back (redelivered);
        without requeue they drop it."""
        ch = self.channel()
        q = self.queue(ch)
        for body in (b"a", b"b"):
            ch.basic_publish("", q, body)
        first: Any = ch.basic_get(q)
        ch.basic_nack(first[0].delivery_tag, requeue=True)
        again: Any = ch.basic_get(q)
        self.assertTrue(again[0].redelivered)
        self.assertEqual(again[2], first[2])
        ch.basic_reject(again[0].delivery_tag, requeue=False)
        last: Any = ch.basic_get(q)
        ch.basic_nack(last[0].delivery_tag, requeue=False)
        self.assertEqual(ch.basic_get(q), (None, None, None))
        self.assertEqual(sorted([first[2], last[2]]), [b"a", b"b"])

    def test_update_secret(self) -> None:
        """update_secret with the same password is accepted by the broker; the
        connection stays usable."""
        conn = self.connect()
        conn.update_secret("guest", "rotation test")
        self.assertTrue(conn.is_open)
        self.assertTrue(conn.channel().is_open)

    def test_exchange_to_exchange_binding(self) -> None:
        """A message published to a source exchange reaches a queue bound to the
        destination exchange bound to it; unbinding stops that."""
        ch = self.channel()
        source = self.exchange(ch, pika.exchange_type.ExchangeType.fanout)
        destination = self.exchange(ch, pika.exchange_type.ExchangeType.fanout)
        q = self.queue(ch)
        ch.queue_bind(q, destination)
        ch.exchange_bind(destination, source)
        ch.confirm_delivery()
        ch.basic_publish(source, "", b"through")
        self.assertEqual(ch.basic_get(q, auto_ack=True)[2], b"through")
        ch.exchange_unbind(destination, source)
        ch.basic_publish(source, "", b"dropped")
        self.assertEqual(ch.basic_get(q), (None, None, None))


class ResourceTests(BlockingTestCase):
    """Connections the broker ends leave nothing behind."""

    def test_unexpected_close_releases_thread_and_sockets(self) -> None:
        """After the broker force-closes three connections (with heartbeats, so each
        had a keeper thread), the process holds as many file descriptors as before and
        no heartbeat thread; the application never called close()."""

        def open_fds() -> int:
            return len(os.listdir("/proc/self/fd"))

        def keepers() -> int:
            return sum(t.name == "txamqp091-heartbeat" for t in threading.enumerate())

        # Objects left by earlier tests may hold sockets until collected: collect
        # them first, so that only this test's connections can change the count.
        gc.collect()
        before = open_fds()
        for _ in range(3):
            name = unique_name("txamqp091-blocking-leak")
            conn = pika.BlockingConnection(
                self.params(heartbeat=5, client_properties={"connection_name": name})
            )
            ch = conn.channel()
            q = self.queue(ch)
            ch.basic_consume(q, lambda *args: None)
            closer = threading.Thread(target=force_close, args=(name,))
            closer.start()
            with self.assertRaises(pika.exceptions.ConnectionClosedByBroker):
                ch.start_consuming()
            closer.join(30)
            self.assertTrue(conn.is_closed)
            del conn, ch
        gc.collect()
        self.assertEqual(keepers(), 0)
        # Each connection held at least a socket, a selector and a wake-up pair:
        # a leak of any of them shows as a count above the one before.
        self.assertLessEqual(open_fds(), before)


class AttemptPlanTests(unittest.TestCase):
    """The order of connection attempts over a list of parameters (pika 1.x's)."""

    def test_whole_list_per_round_settings_from_the_last(self) -> None:
        """Each round tries the whole list; the rounds and the delay between them come
        from the last parameters object; the first round starts at once."""
        from txamqp091.connect import attempt_plan

        first = pika.ConnectionParameters(port=1, connection_attempts=9, retry_delay=7.0)
        last = pika.ConnectionParameters(connection_attempts=3, retry_delay=0.5)
        self.assertEqual(
            list(attempt_plan([first, last])),
            [(0, 0.0), (1, 0.0), (0, 0.5), (1, 0.0), (0, 0.5), (1, 0.0)],
        )


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl`` and return its output."""
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, check=True)
    return done.stdout


class BlockedConnectionTests(BlockingTestCase):
    """Connection.Blocked / Unblocked reach the blocked and unblocked callbacks."""

    def test_blocked_and_unblocked_callbacks(self) -> None:
        """A memory alarm (watermark 0) makes the broker block the publishing
        connection: the blocked callback runs inside process_data_events with the
        Connection.Blocked frame; restoring the watermark runs the unblocked one."""
        original = rabbitmqctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").strip()
        self.assertNotIn(original, ("0", "0.0"), "another run holds a memory alarm")

        def restore() -> None:
            if original.startswith("{absolute,"):
                rabbitmqctl("set_vm_memory_high_watermark", "absolute", original[10:-1].strip())
            else:
                rabbitmqctl("set_vm_memory_high_watermark", original)

        self.addCleanup(restore)
        conn = self.connect()
        ch = conn.channel()
        q = self.queue(ch)
        events: list[tuple[str, Any]] = []
        conn.add_on_connection_blocked_callback(lambda c, frame: events.append(("blocked", frame)))
        conn.add_on_connection_unblocked_callback(
            lambda c, frame: events.append(("unblocked", frame))
        )
        rabbitmqctl("set_vm_memory_high_watermark", "0")
        ch.basic_publish("", q, b"while blocked")
        deadline = time.monotonic() + 30
        while not events and time.monotonic() < deadline:
            conn.process_data_events(0.5)
        self.assertEqual([kind for kind, _ in events], ["blocked"])
        self.assertIsInstance(events[0][1].method, pika.spec.Connection.Blocked)
        restore()
        while len(events) < 2 and time.monotonic() < deadline:
            conn.process_data_events(0.5)
        self.assertEqual([kind for kind, _ in events], ["blocked", "unblocked"])
        self.assertTrue(conn.is_open)


class CallbackTests(BlockingTestCase):
    """Return and cancel callbacks, flow, the consume generator's buffer."""

    def test_return_callback(self) -> None:
        """A mandatory message the broker cannot route comes back to the return
        callback, inside process_data_events, as (channel, method, properties, body)."""
        conn = self.connect()
        ch = conn.channel()
        returned: list[Any] = []
        ch.add_on_return_callback(
            lambda c, method, props, body: returned.append((c, method, body))
        )
        ch.basic_publish("amq.direct", unique_name("nowhere"), b"back", mandatory=True)
        deadline = time.monotonic() + WAIT
        while not returned and time.monotonic() < deadline:
            conn.process_data_events(0.1)
        self.assertEqual(len(returned), 1)
        channel, method, body = returned[0]
        self.assertIs(channel, ch)
        self.assertEqual((method.reply_code, body), (312, b"back"))

    def test_cancel_callback_and_start_consuming_ends(self) -> None:
        """Deleting a consumed queue from another channel: the broker cancels the
        consumer, the cancel callback gets the Basic.Cancel frame, and start_consuming
        returns (no consumer is left)."""
        conn = self.connect()
        ch = conn.channel()
        other = conn.channel()
        q = unique_name("txamqp091-blocking-q")
        ch.queue_declare(q)
        self.addCleanup(self._delete, "queue", q)
        cancels: list[Any] = []
        ch.add_on_cancel_callback(cancels.append)
        ch.basic_consume(q, lambda *args: None)
        other.queue_delete(q)
        ch.start_consuming()
        self.assertEqual(len(cancels), 1)
        self.assertIsInstance(cancels[0].method, pika.spec.Basic.Cancel)
        self.assertEqual(ch.consumer_tags, [])

    def test_flow_true(self) -> None:
        """flow(True) returns the broker's answer (True)."""
        self.assertTrue(self.channel().flow(True))

    def test_waiting_message_count(self) -> None:
        """Messages the consume generator holds but has not yielded are counted."""
        conn = self.connect()
        ch = conn.channel()
        q = self.queue(ch)
        ch.confirm_delivery()
        for body in (b"1", b"2", b"3"):
            ch.basic_publish("", q, body)
        generator = ch.consume(q)
        first = next(generator)
        deadline = time.monotonic() + WAIT
        while ch.get_waiting_message_count() < 2 and time.monotonic() < deadline:
            conn.process_data_events(0.1)
        self.assertEqual(first[2], b"1")
        self.assertEqual(ch.get_waiting_message_count(), 2)
        self.assertEqual(ch.cancel(), 2)
        self.assertEqual(ch.get_waiting_message_count(), 0)


class ThreadingAndOrderTests(BlockingTestCase):
    """Threads sharing a connection; callbacks never nest."""

    def test_worker_thread_acks_while_start_consuming_waits(self) -> None:
        """With prefetch 1, each message is acked by a worker thread calling basic_ack
        directly while the main thread waits in start_consuming: the ack goes out at
        once (the waiting thread lets the worker in), so the next message comes."""
        conn = self.connect()
        ch = conn.channel()
        q = self.queue(ch)
        for n in range(3):
            ch.basic_publish("", q, str(n).encode())
        ch.basic_qos(prefetch_count=1)
        handled: list[bytes] = []
        workers: list[threading.Thread] = []

        def work(tag: int, body: bytes) -> None:
            ch.basic_ack(tag)
            handled.append(body)
            if len(handled) == 3:
                ch.stop_consuming()

        def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            worker = threading.Thread(target=work, args=(method.delivery_tag, body))
            workers.append(worker)
            worker.start()

        ch.basic_consume(q, on_message)
        timed_out: list[bool] = []

        def give_up() -> None:
            timed_out.append(True)
            ch.stop_consuming()

        guard = conn.call_later(WAIT * 2, give_up)
        ch.start_consuming()
        conn.remove_timeout(guard)
        for worker in workers:
            worker.join(WAIT)
        self.assertEqual(handled, [b"0", b"1", b"2"])
        self.assertEqual(timed_out, [], "stop_consuming from the worker did not end it")

    def test_callbacks_do_not_nest(self) -> None:
        """A callback that calls process_data_events processes I/O but the next
        callbacks wait until it has returned (as in pika): in order, never nested."""
        conn = self.connect()
        ch = conn.channel()
        q = self.queue(ch)
        for n in range(5):
            ch.basic_publish("", q, str(n).encode())
        depth = [0]
        seen: list[tuple[bytes, int]] = []

        def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            depth[0] += 1
            seen.append((body, depth[0]))
            channel.basic_ack(method.delivery_tag)
            conn.process_data_events(0.05)
            depth[0] -= 1
            if len(seen) == 5:
                channel.stop_consuming()

        ch.basic_consume(q, on_message)
        ch.start_consuming()
        self.assertEqual(seen, [(str(n).encode(), 1) for n in range(5)])

    def test_consume_generator_raises_channel_close(self) -> None:
        """The consume generator raises ChannelClosedByBroker when the broker closes
        its channel (an ack of an unknown tag) instead of waiting for ever."""
        ch = self.channel()
        q = self.queue(ch)
        ch.basic_publish("", q, b"m")
        generator = ch.consume(q, inactivity_timeout=WAIT)
        method, _, _ = next(generator)
        self.assertIsNotNone(method)
        ch.basic_ack(999)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker):
            next(generator)


class DroppedConnectionTests(BlockingTestCase):
    """A connection the application drops without close() does not live on."""

    def test_dropped_connection_is_collected(self) -> None:
        """Dropping the last reference to an open connection with heartbeats lets it be
        collected: its heartbeat thread ends (it holds the loop weakly)."""
        before = {t for t in threading.enumerate() if t.name == "txamqp091-heartbeat"}
        conn = pika.BlockingConnection(self.params(heartbeat=2))
        conn.channel()
        (keeper,) = {t for t in threading.enumerate() if t.name == "txamqp091-heartbeat"} - before
        collected: list[bool] = []
        weakref.finalize(conn, collected.append, True)
        del conn
        gc.collect()
        self.assertEqual(collected, [True])
        keeper.join(WAIT)
        self.assertFalse(keeper.is_alive())


class TimerTests(BlockingTestCase):
    """call_later and remove_timeout around a busy call."""

    def test_remove_timeout_after_it_fell_due(self) -> None:
        """A timer that fell due during another call (its callback queued, not run) is
        still removed by remove_timeout: the callback never runs."""
        conn = self.connect()
        ch = conn.channel()
        fired: list[str] = []
        timer = conn.call_later(0, lambda: fired.append("watchdog"))
        ch.queue_declare("", exclusive=True)  # a blocking call: the timer falls due here
        conn.remove_timeout(timer)
        conn.process_data_events(0.05)
        self.assertEqual(fired, [])
        kept = conn.call_later(0, lambda: fired.append("kept"))
        ch.queue_declare("", exclusive=True)
        conn.process_data_events(0.05)
        self.assertEqual(fired, ["kept"])
        self.assertFalse(kept.active())

"""Tests of the asyncio face (:mod:`txamqp091.asyncio_connection`) against the real broker.

The callback API is tested by the face-independent mixins of
:mod:`txamqp091.test.test_select_connection`, run here on two more loops:

* :class:`AsyncioFace`: an ``AsyncioConnection`` on a new asyncio loop per test, made
  outside any running loop (``custom_ioloop``) and run with ``run_forever()``;
* :class:`TornadoFace`: a ``TornadoConnection`` on a new Tornado ``IOLoop`` per test,
  run with ``start()``.

Then the asyncio-specific behaviour: the loop chosen, the watchdog of a loop that never
runs, exceptions of application callbacks reaching the loop's exception handler, nothing
of ours left scheduled on the loop after close.

These are plain :class:`unittest.TestCase` tests (trial runs them too); no reactor is
involved. Every run of a loop is guarded by a timer that stops it after :data:`WAIT`
seconds and fails the test; every wait for another thread is bounded too. At cleanup,
each test checks that nothing is left scheduled on its loop, closes the loop, and checks
that the global event-loop policy is the object it was before the test.
"""

from __future__ import annotations

import asyncio
import threading
import unittest
import warnings
from collections.abc import Callable
from typing import Any, TextIO

from tornado.ioloop import IOLoop as TornadoIOLoop
from twisted.logger import LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.python import log as legacy_log

import txamqp091 as pika
from txamqp091 import spec
from txamqp091.asyncio_connection import AsyncioConnection, TornadoConnection
from txamqp091.callback_connection import CallbackChannel
from txamqp091.exceptions import (
    AMQPConnectionError,
    ChannelClosedByClient,
    ConnectionClosedByClient,
    ConnectionOpenAborted,
)
from txamqp091.test.test_select_connection import (
    DEAD_PORT,
    WAIT,
    BlockedChecks,
    CallbackFaceTestCase,
    ClosingChecks,
    CompletionChecks,
    ConsumingChecks,
    CreateConnectionChecks,
    FlowChecks,
    OpeningChecks,
    ThreadChecks,
)


def live_handles(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    """The timer handles still scheduled (not cancelled) on *loop*."""
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
    return [handle for handle in scheduled if not handle.cancelled()]


def pending_tasks(loop: asyncio.AbstractEventLoop) -> set[asyncio.Task[Any]]:
    """The tasks of *loop* not done."""
    return {task for task in asyncio.all_tasks(loop) if not task.done()}


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close *loop* as :func:`asyncio.run` does: cancel what is left, let it finish,
    shut the async generators down, then close."""
    if loop.is_closed():
        return
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
        for _ in range(5):  # running the loop may have started more
            tasks = pending_tasks(loop)
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    finally:
        loop.close()


class AsyncioLoopChecks(CallbackFaceTestCase):
    """Per-test checks of an asyncio-based face: the policy is untouched, and nothing of
    ours is left on the loop once every connection of the test is closed."""

    def check_policy_kept(self) -> None:
        """Fail at cleanup if the test changed the global event-loop policy."""
        policy = asyncio.get_event_loop_policy()

        def check() -> None:
            self.assertIs(asyncio.get_event_loop_policy(), policy)

        self.addCleanup(check)  # registered first: runs after every other cleanup

    def check_and_close(
        self, loop: asyncio.AbstractEventLoop, close: Callable[[], object]
    ) -> None:
        """At cleanup (after the connections were closed): no timer still scheduled, no
        task pending on *loop*; then ``close()`` it."""
        try:
            self.assertEqual(live_handles(loop), [], "timers left scheduled on the loop")
            self.assertEqual(pending_tasks(loop), set(), "tasks left pending on the loop")
        finally:
            close_loop(loop)
            close()
            self.assertTrue(loop.is_closed())


class AsyncioFace(AsyncioLoopChecks):
    """The hooks for the asyncio face: a new asyncio loop per test, made outside any
    running loop and given as ``custom_ioloop``; run with ``run_forever()``."""

    connection_class = AsyncioConnection
    ioloop: asyncio.AbstractEventLoop

    def set_up_loop(self) -> None:
        self.check_policy_kept()
        self.ioloop = loop = asyncio.new_event_loop()
        self.addCleanup(self.check_and_close, loop, loop.close)

    def start_loop(self) -> None:
        self.ioloop.run_forever()

    def stop_loop(self) -> None:
        self.ioloop.stop()

    def call_later(self, delay: float, fn: Callable[[], object]) -> Any:
        return self.ioloop.call_later(delay, fn)

    def cancel_timer(self, timer: Any) -> None:
        timer.cancel()

    def call_threadsafe(self, fn: Callable[[], object]) -> None:
        self.ioloop.call_soon_threadsafe(fn)


class AsyncioTestCase(AsyncioFace, unittest.TestCase):
    """An asyncio-face test case."""


class TornadoFace(AsyncioLoopChecks):
    """The hooks for the Tornado face: a new Tornado ``IOLoop`` per test (on an asyncio
    loop of its own, not made current); run with ``start()``."""

    connection_class = TornadoConnection
    ioloop: TornadoIOLoop

    def set_up_loop(self) -> None:
        self.check_policy_kept()
        self.ioloop = tornado_loop = TornadoIOLoop(make_current=False)
        loop = tornado_loop.asyncio_loop
        self.assertIsInstance(loop, asyncio.AbstractEventLoop)
        self.addCleanup(self.check_and_close, loop, tornado_loop.close)

    def start_loop(self) -> None:
        self.ioloop.start()

    def stop_loop(self) -> None:
        self.ioloop.stop()

    def call_later(self, delay: float, fn: Callable[[], object]) -> Any:
        return self.ioloop.call_later(delay, fn)

    def cancel_timer(self, timer: Any) -> None:
        self.ioloop.remove_timeout(timer)

    def call_threadsafe(self, fn: Callable[[], object]) -> None:
        self.ioloop.add_callback(fn)


class TornadoTestCase(TornadoFace, unittest.TestCase):
    """A Tornado-face test case."""


# -- the callback API on the asyncio face ------------------------------------------------


class AsyncioFlowTests(FlowChecks, AsyncioTestCase):
    """The whole-application flow (consumer and confirmed publisher) on asyncio."""


class AsyncioOpeningTests(OpeningChecks, AsyncioTestCase):
    """Opening an AsyncioConnection: closed port retried, bad login, close() while
    opening."""


class AsyncioClosingTests(ClosingChecks, AsyncioTestCase):
    """Closing AsyncioConnection connections and channels, by the client and the
    broker."""


class AsyncioConsumingTests(ConsumingChecks, AsyncioTestCase):
    """basic_get, basic_cancel, broker cancels, returns, nacks on asyncio."""


class AsyncioCompletionTests(CompletionChecks, AsyncioTestCase):
    """Completion callbacks get their reply frames on asyncio."""


class AsyncioBlockedTests(BlockedChecks, AsyncioTestCase):
    """Connection.Blocked / Unblocked on asyncio."""


class AsyncioCreateConnectionTests(CreateConnectionChecks, AsyncioTestCase):
    """AsyncioConnection.create_connection: a dead first host, abort(), all dead."""


class AsyncioThreadTests(ThreadChecks, AsyncioTestCase):
    """A worker thread acks through ``loop.call_soon_threadsafe``."""


# -- the callback API on the Tornado face ------------------------------------------------


class TornadoFlowTests(FlowChecks, TornadoTestCase):
    """The whole-application flow on a Tornado IOLoop."""


class TornadoOpeningTests(OpeningChecks, TornadoTestCase):
    """Opening a TornadoConnection."""


class TornadoClosingTests(ClosingChecks, TornadoTestCase):
    """Closing TornadoConnection connections and channels."""


class TornadoConsumingTests(ConsumingChecks, TornadoTestCase):
    """Consuming on a Tornado IOLoop."""


class TornadoCompletionTests(CompletionChecks, TornadoTestCase):
    """Completion callbacks on a Tornado IOLoop."""


class TornadoCreateConnectionTests(CreateConnectionChecks, TornadoTestCase):
    """TornadoConnection.create_connection."""


class TornadoThreadTests(ThreadChecks, TornadoTestCase):
    """A worker thread acks through ``IOLoop.add_callback``."""


# -- asyncio-specific ----------------------------------------------------------------------


class Boom(Exception):
    """Raised by application callbacks."""


class WhichLoopTests(AsyncioTestCase):
    """The loop an AsyncioConnection runs on."""

    def test_custom_ioloop_outside_a_running_loop(self) -> None:
        """Made outside any running loop with ``custom_ioloop=asyncio.new_event_loop()``:
        ``connection.ioloop`` is that loop, nothing happens before it runs, and
        ``run_forever()`` opens the connection, a channel, and closes both
        (ConnectionClosedByClient)."""
        events: list[Any] = []

        def on_open(conn: Any) -> None:
            events.append(("open", asyncio.get_running_loop()))
            conn.channel(on_open_callback=on_channel)

        def on_channel(ch: CallbackChannel) -> None:
            events.append(("channel", ch.channel_number))
            ch.connection.close()

        def on_close(conn: Any, reason: BaseException) -> None:
            events.append(("close", reason))
            self.ioloop.stop()

        conn = AsyncioConnection(
            self.params(),
            on_open_callback=on_open,
            on_close_callback=on_close,
            custom_ioloop=self.ioloop,
        )
        self.addCleanup(self.close_connection, conn)
        self.assertIs(conn.ioloop, self.ioloop)
        self.assertFalse(self.ioloop.is_running())
        self.assertEqual(events, [])
        self.assertFalse(conn.is_open)
        self.run_loop()
        self.assertEqual([e[0] for e in events], ["open", "channel", "close"])
        self.assertIs(events[0][1], self.ioloop)
        self.assertIsInstance(events[2][1], ConnectionClosedByClient)
        self.assertTrue(conn.is_closed)

    def test_made_inside_a_running_loop(self) -> None:
        """Made inside a coroutine run by ``loop.run_until_complete`` with no
        custom_ioloop: the connection uses the running loop; it opens, a channel
        declares a queue, and it closes -- all awaited through futures its callbacks
        resolve."""
        loop = self.ioloop

        async def main() -> tuple[AsyncioConnection, Any, BaseException]:
            running = asyncio.get_running_loop()
            opened: asyncio.Future[Any] = running.create_future()
            closed: asyncio.Future[BaseException] = running.create_future()
            conn = AsyncioConnection(
                self.params(),
                on_open_callback=opened.set_result,
                on_open_error_callback=lambda c, e: opened.set_exception(e),
                on_close_callback=lambda c, e: closed.set_result(e),
            )
            self.addCleanup(self.close_connection, conn)
            self.assertIs(conn.ioloop, running)
            self.assertIs(await asyncio.wait_for(opened, WAIT), conn)
            channel: asyncio.Future[CallbackChannel] = running.create_future()
            conn.channel(on_open_callback=channel.set_result)
            ch = await asyncio.wait_for(channel, WAIT)
            declared: asyncio.Future[Any] = running.create_future()
            ch.queue_declare("", exclusive=True, callback=declared.set_result)
            frame = await asyncio.wait_for(declared, WAIT)
            conn.close()
            reason = await asyncio.wait_for(closed, WAIT)
            return conn, frame, reason

        conn, frame, reason = loop.run_until_complete(main())
        self.assertIs(conn.ioloop, loop)
        self.assertIsInstance(frame.method, spec.Queue.DeclareOk)
        self.assertIsInstance(reason, ConnectionClosedByClient)
        self.assertTrue(conn.is_closed)

    def test_no_loop_in_a_worker_thread(self) -> None:
        """As pika 1.4's AsyncioConnection: made in a thread that has no event loop (none
        running, none set), with no custom_ioloop, it still works -- on a new loop,
        ``connection.ioloop``, which ``run_forever()`` runs until the connection has
        opened and closed."""
        results: dict[str, Any] = {}
        done = threading.Event()

        def worker() -> None:
            loop: asyncio.AbstractEventLoop | None = None
            try:

                def on_open(conn: Any) -> None:
                    results["open"] = True
                    conn.close()

                def on_close(conn: Any, reason: BaseException) -> None:
                    results["closed"] = reason
                    conn.ioloop.stop()

                conn = AsyncioConnection(
                    self.params(), on_open_callback=on_open, on_close_callback=on_close
                )
                loop = conn.ioloop
                guard = loop.call_later(WAIT, loop.stop)
                loop.run_forever()
                guard.cancel()
            except BaseException as e:
                results["error"] = e
            finally:
                if loop is not None:
                    close_loop(loop)
                done.set()

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        self.assertTrue(done.wait(WAIT + 5), "the worker thread did not finish")
        thread.join(WAIT)
        self.assertNotIn("error", results, results.get("error"))
        self.assertEqual(results.get("open"), True)
        self.assertIsInstance(results.get("closed"), ConnectionClosedByClient)

    def test_bad_custom_ioloop(self) -> None:
        """custom_ioloop that is not an asyncio loop raises TypeError; a closed loop
        raises RuntimeError; TornadoConnection refuses a bare asyncio loop (TypeError).
        No connection is attempted: nothing is scheduled on the test's loop."""
        self.assertRaises(TypeError, AsyncioConnection, self.params(), custom_ioloop=object())
        closed = asyncio.new_event_loop()
        closed.close()
        self.assertRaises(RuntimeError, AsyncioConnection, self.params(), custom_ioloop=closed)
        self.assertRaises(TypeError, TornadoConnection, self.params(), custom_ioloop=self.ioloop)
        self.assertEqual(live_handles(self.ioloop), [])


class WatchdogTests(AsyncioTestCase):
    """A connection whose loop never runs says so, loudly."""

    def never_run(self, params: Any) -> tuple[list[warnings.WarningMessage], list[Any]]:
        """Make a connection with *params* on the test's loop, never run it, and wait (at
        most :data:`WAIT` s) for the watchdog's RuntimeWarning and logged error; return
        the warnings caught and the open/error callbacks' events so far. The opening is
        aborted at cleanup."""
        warned = threading.Event()
        caught: list[warnings.WarningMessage] = []
        events: list[Any] = []
        with warnings.catch_warnings():
            warnings.simplefilter("always")

            def showwarning(
                message: Warning | str,
                category: type[Warning],
                filename: str,
                lineno: int,
                file: TextIO | None = None,
                line: str | None = None,
            ) -> None:
                caught.append(
                    warnings.WarningMessage(message, category, filename, lineno, file, line)
                )
                warned.set()

            warnings.showwarning = showwarning
            conn = AsyncioConnection(
                params,
                on_open_callback=lambda c: events.append(("open", c)),
                on_open_error_callback=lambda c, e: events.append(("error", e)),
                custom_ioloop=self.ioloop,
            )

            def abort() -> None:
                if not conn.is_closed:
                    conn.close()

            self.addCleanup(abort)
            self.assertTrue(warned.wait(WAIT), "no RuntimeWarning from the watchdog")
        self.assertEqual(events, [])
        conn.close()  # aborts the opening, before the loop ever ran
        self.assertEqual([e[0] for e in events], ["error"])
        self.assertIsInstance(events[0][1], ConnectionOpenAborted)
        return caught, events

    def logged_errors(self) -> tuple[threading.Event, list[LogEvent]]:
        """Record the error events of the asyncio face's logger (from any thread)."""
        logged = threading.Event()
        errors: list[LogEvent] = []

        def observer(event: LogEvent) -> None:
            if (
                event.get("log_namespace") == "txamqp091.asyncio_connection"
                and event.get("log_level") is LogLevel.error
            ):
                errors.append(event)
                logged.set()

        globalLogPublisher.addObserver(observer)  # type: ignore[arg-type]
        self.addCleanup(globalLogPublisher.removeObserver, observer)  # type: ignore[arg-type]
        return logged, errors

    def assert_watchdog_fires(self, params: Any) -> None:
        """Within ``socket_timeout`` (0.2 s) plus a margin, the watchdog of a connection
        whose loop never runs emits one RuntimeWarning naming the loop and telling to
        run it, and logs one error."""
        logged, errors = self.logged_errors()
        caught, _ = self.never_run(params)
        self.assertTrue(logged.wait(WAIT), "no error logged by the watchdog")
        self.assertEqual(len(caught), 1, [str(w.message) for w in caught])
        self.assertIs(caught[0].category, RuntimeWarning)
        text = str(caught[0].message)
        self.assertIn(repr(self.ioloop), text)
        self.assertIn("run_forever", text)
        self.assertEqual(len(errors), 1)

    def test_url_parameter(self) -> None:
        """``socket_timeout=0.2`` as a URL parameter, the loop never run: the watchdog
        warns (RuntimeWarning) and logs an error."""
        url = f"amqp://guest:guest@{self.host}:{self.port}/%2F?socket_timeout=0.2"
        self.assert_watchdog_fires(pika.URLParameters(url))

    def test_connection_parameters(self) -> None:
        """``ConnectionParameters(socket_timeout=0.2)``, the loop never run: the watchdog
        warns (RuntimeWarning) and logs an error."""
        self.assert_watchdog_fires(self.params(socket_timeout=0.2))

    def test_logged_text_with_a_legacy_observer(self) -> None:
        """The watchdog's logged error keeps its text for every observer, also when a
        legacy (``twisted.python.log``) observer was added before them -- as trial,
        twistd and ``log.startLogging`` do. (Logging the text under the key
        ``message``, which Twisted's legacy bridge overwrites with ``()``, loses it.)"""
        legacy_texts: list[str | None] = []

        def legacy_observer(event: dict[str, Any]) -> None:
            if event.get("log_namespace") == "txamqp091.asyncio_connection":
                legacy_texts.append(legacy_log.textFromEventDict(event))

        legacy_log.addObserver(legacy_observer)
        self.addCleanup(legacy_log.removeObserver, legacy_observer)
        logged, errors = self.logged_errors()  # added after the legacy observer
        self.never_run(self.params(socket_timeout=0.2))
        self.assertTrue(logged.wait(WAIT), "no error logged by the watchdog")
        self.assertEqual(len(legacy_texts), 1)
        self.assertIn(repr(self.ioloop), legacy_texts[0] or "")
        self.assertIn(repr(self.ioloop), formatEvent(errors[0]))

    def test_silent_when_the_loop_runs(self) -> None:
        """socket_timeout=0.2 and the loop run: the connection opens and, the loop kept
        running well past 0.2 s, no RuntimeWarning is emitted."""
        caught: list[Any] = []
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda message, category, *a: caught.append(message)
            conn = self.connect(socket_timeout=0.2)
            self.call(lambda done: self.ioloop.call_later(0.5, done))
        self.assertTrue(conn.is_open)
        self.assertEqual(caught, [])


class CallbackErrorTests(AsyncioTestCase):
    """An exception raised by an application callback goes to the loop's exception
    handler (asyncio's way), and the connection carries on."""

    def record_errors(self) -> list[dict[str, Any]]:
        """Install an exception handler on the loop that records each context and stops
        the loop."""
        contexts: list[dict[str, Any]] = []

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            contexts.append(context)
            loop.stop()

        self.ioloop.set_exception_handler(handler)
        return contexts

    def test_open_callback(self) -> None:
        """on_open_callback raises: the handler's context has that exception and the
        connection; the connection is open and still works (a channel opens)."""
        contexts = self.record_errors()
        raised: list[Boom] = []

        def on_open(conn: Any) -> None:
            raised.append(Boom("from on_open_callback"))
            raise raised[0]

        conn = self.new_connection(self.params(), on_open_callback=on_open)
        self.run_loop()
        self.assertEqual(len(contexts), 1)
        self.assertIs(contexts[0]["exception"], raised[0])
        self.assertIs(contexts[0]["connection"], conn)
        self.assertIn("message", contexts[0])
        self.assertTrue(conn.is_open)
        self.assertTrue(self.channel(conn).is_open)

    def test_message_callback(self) -> None:
        """A consumer's on_message_callback raises: the handler gets the exception; the
        channel stays open and later deliveries still reach the callback."""
        contexts = self.record_errors()
        _conn, ch = self.open_channel()
        queue = self.declare_queue(ch)
        bodies: list[bytes] = []

        def on_message(c: Any, method: Any, props: Any, body: bytes) -> None:
            bodies.append(body)
            if body == b"boom":
                raise Boom(body)
            self.ioloop.stop()

        ch.basic_consume(queue, on_message, auto_ack=True)
        ch.basic_publish("", queue, b"boom")
        self.run_loop()
        self.assertEqual(len(contexts), 1)
        self.assertIsInstance(contexts[0]["exception"], Boom)
        ch.basic_publish("", queue, b"fine")
        self.run_loop()
        self.assertEqual(bodies, [b"boom", b"fine"])
        self.assertTrue(ch.is_open)
        self.assertEqual(len(contexts), 1)


class LeftoverTests(AsyncioTestCase):
    """After a connection ends, nothing of ours is left on the loop."""

    def test_after_close(self) -> None:
        """With heartbeats and a blocked-connection timeout, the open connection has
        timers on the loop; after close() none is left and no task is pending."""
        conn = self.connect(heartbeat=2, blocked_connection_timeout=30)
        ch = self.channel(conn)
        self.assertNotEqual(live_handles(self.ioloop), [], "no timer while open")
        reasons: list[BaseException] = []
        ch.add_on_close_callback(lambda c, e: reasons.append(e))
        conn.add_on_close_callback(self.then_stop(lambda c, e: reasons.append(e)))
        conn.close()
        self.run_loop()
        self.assertIsInstance(reasons[0], ChannelClosedByClient)
        self.assertIsInstance(reasons[1], ConnectionClosedByClient)
        self.assertEqual(live_handles(self.ioloop), [])
        self.assertEqual(pending_tasks(self.ioloop), set())

    def test_after_failed_opening(self) -> None:
        """A closed port with connection_attempts=3, retry_delay=0.1: after
        on_open_error_callback (AMQPConnectionError, three attempt errors) nothing is
        scheduled and no task is pending."""
        errors: list[BaseException] = []
        conn = self.new_connection(
            self.params(port=DEAD_PORT, connection_attempts=3, retry_delay=0.1),
            on_open_error_callback=self.then_stop(lambda c, e: errors.append(e)),
        )
        self.run_loop()
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], AMQPConnectionError)
        self.assertEqual(len(conn.attempt_errors), 3)
        self.assertEqual(live_handles(self.ioloop), [])
        self.assertEqual(pending_tasks(self.ioloop), set())

    def test_after_close_while_connecting(self) -> None:
        """close() while the connect is under way (or the handshake): ConnectionOpenAborted,
        and once the loop has turned, nothing is scheduled and no task is pending."""
        errors: list[BaseException] = []
        conn = self.new_connection(
            self.params(),
            on_open_error_callback=lambda c, e: errors.append(e),
        )
        self.call_later(0, conn.close)
        # A round trip on another connection lets the aborted attempt wind down.
        other = self.connect()
        self.assertTrue(other.is_open)
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], ConnectionOpenAborted)
        self.close_connection(other)
        self.assertEqual(live_handles(self.ioloop), [])
        self.assertEqual(pending_tasks(self.ioloop), set())


class TornadoTests(TornadoTestCase):
    """TornadoConnection, and AsyncioConnection on Tornado's asyncio loop."""

    def publish_consume_close(self, conn: Any, run: Callable[[], None]) -> list[Any]:
        """On the open *conn*: a channel, a server-named queue, a consumer, a publish;
        the delivery is acked and the connection closed; ``run()`` runs the loop until
        it is. Returns the events recorded."""
        events: list[Any] = []

        def on_channel(ch: CallbackChannel) -> None:
            events.append(("channel", ch))
            ch.queue_declare("", exclusive=True, callback=lambda f: on_queue(ch, f))

        def on_queue(ch: CallbackChannel, frame: Any) -> None:
            queue = frame.method.queue
            ch.basic_consume(queue, on_message, callback=lambda f: on_consume(ch, queue))

        def on_consume(ch: CallbackChannel, queue: str) -> None:
            ch.basic_publish("", queue, b"via tornado")

        def on_message(ch: CallbackChannel, method: Any, props: Any, body: bytes) -> None:
            events.append(("message", body))
            ch.basic_ack(method.delivery_tag)
            ch.connection.close()

        conn.add_on_close_callback(lambda c, e: events.append(("closed", e)))
        conn.channel(on_open_callback=on_channel)
        run()
        return events

    def test_tornado_connection(self) -> None:
        """TornadoConnection on a Tornado IOLoop: ``connection.ioloop`` is the Tornado
        loop; started with ``start()``, it opens, consumes its own publish, and closes
        (ConnectionClosedByClient), stopping the loop with ``stop()``."""
        conn = self.connect()
        self.assertIsInstance(conn, TornadoConnection)
        self.assertIs(conn.ioloop, self.ioloop)
        conn.add_on_close_callback(lambda c, e: c.ioloop.stop())
        events = self.publish_consume_close(conn, self.run_loop)
        self.assertEqual([e[0] for e in events], ["channel", "message", "closed"])
        self.assertEqual(events[1][1], b"via tornado")
        self.assertIsInstance(events[2][1], ConnectionClosedByClient)
        self.assertTrue(conn.is_closed)

    def test_asyncio_connection_on_tornado_asyncio_loop(self) -> None:
        """AsyncioConnection(custom_ioloop=tornado_loop.asyncio_loop), run by the
        Tornado loop's ``start()``: ``connection.ioloop`` is the asyncio loop, and the
        same flow works."""
        asyncio_loop = self.ioloop.asyncio_loop  # type: ignore[attr-defined]
        errors: list[BaseException] = []
        conn = AsyncioConnection(
            self.params(),
            on_open_callback=self.stop,
            on_open_error_callback=self.then_stop(lambda c, e: errors.append(e)),
            custom_ioloop=asyncio_loop,
        )
        self.addCleanup(self.close_connection, conn)
        self.assertIs(conn.ioloop, asyncio_loop)
        self.run_loop()
        self.assertEqual(errors, [])
        self.assertTrue(conn.is_open)
        conn.add_on_close_callback(self.stop)
        events = self.publish_consume_close(conn, self.run_loop)
        self.assertEqual([e[0] for e in events], ["channel", "message", "closed"])
        self.assertIsInstance(events[2][1], ConnectionClosedByClient)

    def test_current_ioloop_inside_run_sync(self) -> None:
        """TornadoConnection with no custom_ioloop, made inside a coroutine run by
        ``IOLoop.run_sync``: it uses that (current) Tornado loop, and opens."""
        tornado_loop = self.ioloop

        async def main() -> TornadoConnection:
            opened: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            conn = TornadoConnection(
                self.params(),
                on_open_callback=opened.set_result,
                on_open_error_callback=lambda c, e: opened.set_exception(e),
            )
            self.addCleanup(self.close_connection, conn)
            self.assertIs(conn.ioloop, tornado_loop)
            await asyncio.wait_for(opened, WAIT)
            return conn

        conn = tornado_loop.run_sync(main, timeout=WAIT + 1)
        self.assertTrue(conn.is_open)


if __name__ == "__main__":  # pragma: no cover
    unittest.main()

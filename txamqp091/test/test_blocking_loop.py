"""Unit tests for :mod:`txamqp091.blocking_loop` (no broker, no reactor).

The loop runs in the test's own thread; its own ``poll``/``run_until`` with timeouts are
the only synchronisation.
"""

from __future__ import annotations

import socket
import threading
import unittest

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import AlreadyCalled, AlreadyCancelled, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp091.blocking_loop import HIGH_WATER, SelectorLoop, SocketTransport

#: Upper bound for any single wait in these tests (never reached when the code works).
WAIT = 5.0


def make_loop(case: unittest.TestCase) -> SelectorLoop:
    """A loop closed when *case* ends (on epoll unless the case says ``epoll = False``)."""
    loop = SelectorLoop(epoll=getattr(case, "epoll", None))
    case.addCleanup(loop.close)
    return loop


def poll_until(loop: SelectorLoop, condition: object, limit: int = 1000) -> None:
    """Poll *loop* (each turn waiting at most :data:`WAIT`) until ``condition()``."""
    assert callable(condition)
    for _ in range(limit):
        if condition():
            return
        loop.poll(WAIT)
    raise AssertionError("condition not reached")


class SelectorLoopClockTests(unittest.TestCase):
    """The ``IReactorTime`` side of :class:`SelectorLoop`."""

    def test_seconds_is_monotonic(self) -> None:
        """``seconds()`` never goes backwards."""
        loop = make_loop(self)
        first = loop.seconds()
        self.assertGreaterEqual(loop.seconds(), first)

    def test_call_later_runs_in_time_order(self) -> None:
        """Due timers run in the order of their due time, not of scheduling."""
        loop = make_loop(self)
        ran: list[str] = []
        loop.callLater(0.02, ran.append, "b")
        loop.callLater(0, ran.append, "a")
        loop.callLater(0.04, ran.append, "c")
        poll_until(loop, lambda: len(ran) == 3)
        self.assertEqual(ran, ["a", "b", "c"])

    def test_call_later_passes_args_and_kwargs(self) -> None:
        """Positional and keyword arguments reach the callable."""
        loop = make_loop(self)
        got: list[tuple[object, ...]] = []
        loop.callLater(0, lambda *a, **kw: got.append((a, kw)), 1, 2, x=3)
        poll_until(loop, lambda: got)
        self.assertEqual(got, [((1, 2), {"x": 3})])

    def test_get_delayed_calls(self) -> None:
        """``getDelayedCalls`` lists the pending timers only, not run/cancelled ones."""
        loop = make_loop(self)
        t1 = loop.callLater(100, lambda: None)
        t2 = loop.callLater(200, lambda: None)
        t3 = loop.callLater(0, lambda: None)
        self.assertEqual(set(loop.getDelayedCalls()), {t1, t2, t3})
        poll_until(loop, lambda: t3.called)
        self.assertEqual(set(loop.getDelayedCalls()), {t1, t2})
        t1.cancel()
        self.assertEqual(loop.getDelayedCalls(), [t2])

    def test_get_delayed_calls_after_reset(self) -> None:
        """A reset timer is listed once (its stale heap entry is not)."""
        loop = make_loop(self)
        t = loop.callLater(100, lambda: None)
        t.reset(50)
        self.assertEqual(loop.getDelayedCalls(), [t])

    def test_cancel(self) -> None:
        """A cancelled timer never runs and is no longer active."""
        loop = make_loop(self)
        ran: list[str] = []
        t = loop.callLater(0, ran.append, "cancelled")
        loop.callLater(0, ran.append, "other")
        self.assertTrue(t.active())
        t.cancel()
        self.assertFalse(t.active())
        self.assertTrue(t.cancelled)
        poll_until(loop, lambda: ran)
        self.assertEqual(ran, ["other"])

    def test_cancel_twice_raises_already_cancelled(self) -> None:
        """Cancelling twice raises ``AlreadyCancelled``; so does reset/delay after."""
        loop = make_loop(self)
        t = loop.callLater(10, lambda: None)
        t.cancel()
        self.assertRaises(AlreadyCancelled, t.cancel)
        self.assertRaises(AlreadyCancelled, t.reset, 1)
        self.assertRaises(AlreadyCancelled, t.delay, 1)

    def test_cancel_after_call_raises_already_called(self) -> None:
        """A timer that ran raises ``AlreadyCalled`` on cancel/reset/delay."""
        loop = make_loop(self)
        t = loop.callLater(0, lambda: None)
        poll_until(loop, lambda: t.called)
        self.assertFalse(t.active())
        self.assertRaises(AlreadyCalled, t.cancel)
        self.assertRaises(AlreadyCalled, t.reset, 1)
        self.assertRaises(AlreadyCalled, t.delay, 1)

    def test_reset_moves_earlier(self) -> None:
        """``reset`` moves a far timer to now; it runs once, at the new time."""
        loop = make_loop(self)
        ran: list[int] = []
        t = loop.callLater(1000, ran.append, 1)
        t.reset(0)
        self.assertLessEqual(t.getTime(), loop.seconds())
        poll_until(loop, lambda: ran)
        loop.poll(0)
        self.assertEqual(ran, [1])
        self.assertTrue(t.called)

    def test_reset_moves_later(self) -> None:
        """A timer reset further away does not run at its old time."""
        loop = make_loop(self)
        ran: list[str] = []
        t = loop.callLater(0, ran.append, "moved")
        t.reset(1000)
        loop.callLater(0, ran.append, "marker")
        poll_until(loop, lambda: ran)
        loop.poll(0)
        self.assertEqual(ran, ["marker"])
        self.assertTrue(t.active())
        t.cancel()

    def test_delay(self) -> None:
        """``delay`` adds to the due time."""
        loop = make_loop(self)
        t = loop.callLater(100, lambda: None)
        before = t.getTime()
        t.delay(50)
        self.assertAlmostEqual(t.getTime(), before + 50, delta=1.0)
        self.assertEqual(loop.getDelayedCalls(), [t])

    def test_cancelled_timers_do_not_pile_up(self) -> None:
        """Cancelled (and moved) timers far in the future do not stay in the heap by
        the thousand: it is compacted once they are most of it, and what is live
        still runs in order."""
        loop = make_loop(self)
        ran: list[int] = []
        keep = [loop.callLater(0, ran.append, i) for i in range(3)]
        for _ in range(10_000):
            loop.callLater(30, ran.append, -1).cancel()
        moved = loop.callLater(30, ran.append, 3)
        for _ in range(10_000):
            moved.reset(30)
        self.assertLess(len(loop._timers), 1_000)
        self.assertEqual(loop.getDelayedCalls(), [*keep, moved])
        loop.poll(0)
        self.assertEqual(ran, [0, 1, 2])
        moved.cancel()
        self.assertEqual(loop.getDelayedCalls(), [])

    def test_timer_exception_propagates_from_poll(self) -> None:
        """An exception raised by a timer's callable comes out of ``poll``."""
        loop = make_loop(self)

        def boom() -> None:
            raise ValueError("boom")

        loop.callLater(0, boom)
        with self.assertRaises(ValueError):
            for _ in range(100):
                loop.poll(WAIT)

    def test_poll_after_close_raises(self) -> None:
        """A closed loop refuses to poll; closing twice is harmless."""
        loop = SelectorLoop()
        loop.close()
        loop.close()
        self.assertRaises(RuntimeError, loop.poll, 0)


class RunUntilTests(unittest.TestCase):
    """:meth:`SelectorLoop.run_until`."""

    def test_already_fired(self) -> None:
        """A fired Deferred's result is returned at once."""
        loop = make_loop(self)
        d: Deferred[int] = Deferred()
        d.callback(42)
        self.assertEqual(loop.run_until(d), 42)

    def test_fired_by_timer(self) -> None:
        """The loop polls until a timer fires the Deferred."""
        loop = make_loop(self)
        d: Deferred[str] = Deferred()
        loop.callLater(0.01, d.callback, "done")
        self.assertEqual(loop.run_until(d, timeout=WAIT), "done")

    def test_failure_is_raised(self) -> None:
        """A failed Deferred's exception is raised."""
        loop = make_loop(self)
        d: Deferred[None] = Deferred()
        loop.callLater(0, d.errback, Failure(KeyError("nope")))
        with self.assertRaises(KeyError):
            loop.run_until(d, timeout=WAIT)

    def test_timeout_cancels(self) -> None:
        """After *timeout* the Deferred is cancelled and ``TimeoutError`` raised (as
        documented), not the ``CancelledError`` the cancellation produced."""
        loop = make_loop(self)
        cancelled: list[Deferred[None]] = []
        d: Deferred[None] = Deferred(cancelled.append)
        try:
            loop.run_until(d, timeout=0.05)
        except TimeoutError:
            pass
        except CancelledError:
            self.fail("run_until(timeout=...) raised CancelledError instead of TimeoutError")
        else:
            self.fail("run_until(timeout=...) returned")
        self.assertEqual(cancelled, [d])

    def test_call_threadsafe_wakes_blocking_poll(self) -> None:
        """``call_threadsafe`` from another thread wakes ``poll(None)``."""
        loop = make_loop(self)
        ran: list[str] = []
        ready = threading.Event()
        # A guard timer so a broken wake-up fails instead of hanging.
        guard = loop.callLater(WAIT, ran.append, "guard")

        def other() -> None:
            ready.wait(WAIT)
            loop.call_threadsafe(lambda: ran.append(threading.current_thread().name))

        thread = threading.Thread(target=other, name="other")
        thread.start()
        self.addCleanup(thread.join, WAIT)
        ready.set()
        loop.poll(None)
        thread.join(WAIT)
        self.assertFalse(thread.is_alive())
        self.assertEqual(ran, [threading.current_thread().name])
        guard.cancel()

    def test_call_threadsafe_before_poll(self) -> None:
        """A call queued before ``poll(None)`` runs without blocking."""
        loop = make_loop(self)
        ran: list[int] = []
        guard = loop.callLater(WAIT, ran.append, -1)
        loop.call_threadsafe(lambda: ran.append(1))
        loop.call_threadsafe(lambda: ran.append(2))
        loop.poll(None)
        self.assertEqual(ran, [1, 2])
        guard.cancel()


@implementer(IPushProducer)
class Recorder(Protocol):
    """A protocol that records what it receives and how the connection ended."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.lost: list[Failure] = []
        self.paused = 0
        self.resumed = 0

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        self.lost.append(reason)

    # IPushProducer
    def pauseProducing(self) -> None:
        self.paused += 1

    def resumeProducing(self) -> None:
        self.resumed += 1

    def stopProducing(self) -> None:
        pass


class SocketTransportTests(unittest.TestCase):
    """:class:`SocketTransport` over a ``socketpair``."""

    def setUp(self) -> None:
        self.loop = make_loop(self)
        ours, self.peer = socket.socketpair()
        self.addCleanup(self.peer.close)
        self.addCleanup(ours.close)
        self.peer.settimeout(WAIT)
        self.proto = Recorder()
        self.transport = SocketTransport(self.loop, ours, self.proto)
        self.proto.makeConnection(self.transport)

    def read_peer(self, n: int) -> bytes:
        """Read exactly *n* bytes on the peer side."""
        out = bytearray()
        while len(out) < n:
            chunk = self.peer.recv(n - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def test_write_reaches_peer(self) -> None:
        """``write``/``writeSequence`` send bytes to the peer."""
        self.transport.write(b"hello ")
        self.transport.writeSequence([b"wor", b"ld"])
        self.assertEqual(self.read_peer(11), b"hello world")

    def test_readable_calls_data_received(self) -> None:
        """Bytes from the peer reach ``dataReceived`` on ``poll``."""
        self.peer.sendall(b"ping")
        poll_until(self.loop, lambda: len(self.proto.received) >= 4)
        self.assertEqual(bytes(self.proto.received), b"ping")
        self.assertEqual(self.proto.lost, [])

    def test_addresses_and_handle(self) -> None:
        """``getHandle`` is the socket."""
        self.assertIsInstance(self.transport.getHandle(), socket.socket)

    def test_lose_connection_clean(self) -> None:
        """``loseConnection`` with nothing buffered ends with ``ConnectionDone``."""
        self.transport.loseConnection()
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(len(self.proto.lost), 1)
        self.assertTrue(self.proto.lost[0].check(ConnectionDone))
        self.assertEqual(self.peer.recv(10), b"")
        # Writes after the close are dropped; a second close is a no-op.
        self.transport.write(b"late")
        self.transport.loseConnection()
        self.assertEqual(len(self.proto.lost), 1)

    def test_lose_connection_after_buffered_bytes(self) -> None:
        """Bytes buffered before ``loseConnection`` are all sent, then ``ConnectionDone``."""
        payload = b"x" * (8 * 1024 * 1024)
        self.transport.write(payload)
        self.transport.loseConnection()
        self.assertFalse(self.transport.disconnected, "nothing was buffered; enlarge payload")
        self.transport.write(b"dropped")  # after loseConnection: ignored
        received = bytearray()
        while not self.transport.disconnected:
            self.loop.poll(0)
            try:
                self.peer.settimeout(0.0)
                chunk = self.peer.recv(1024 * 1024)
            except BlockingIOError:
                continue
            finally:
                self.peer.settimeout(WAIT)
            received += chunk
        self.peer.settimeout(WAIT)
        while True:
            chunk = self.peer.recv(1024 * 1024)
            if not chunk:
                break
            received += chunk
        self.assertEqual(len(received), len(payload))
        self.assertEqual(len(self.proto.lost), 1)
        self.assertTrue(self.proto.lost[0].check(ConnectionDone))

    def test_partial_sends_do_not_copy_the_rest(self) -> None:
        """After a partial send the rest of a large write is sent from an offset into
        the same bytes (not a copy of the remainder per send), and arrives intact."""
        payload = bytes(range(256)) * (32 * 1024)  # 8 MiB
        self.transport.write(payload)
        pending = self.transport._out[0]
        self.assertGreater(self.transport.buffered, 0, "nothing buffered; enlarge payload")
        received = bytearray()
        self.peer.settimeout(0.0)
        sends = 0
        for _ in range(100000):
            if len(received) == len(payload):
                break
            try:
                received += self.peer.recv(64 * 1024)
            except BlockingIOError:
                before = self.transport.buffered
                self.loop.poll(0)
                if self.transport._out:
                    self.assertIs(self.transport._out[0], pending)
                sends += before != self.transport.buffered
        self.assertGreater(sends, 1)
        self.assertEqual(bytes(received), payload)
        self.assertEqual(self.transport.buffered, 0)

    def test_peer_close(self) -> None:
        """The peer closing makes ``connectionLost`` fire (``ConnectionDone``)."""
        self.peer.close()
        poll_until(self.loop, lambda: self.proto.lost)
        self.assertEqual(len(self.proto.lost), 1)
        self.assertTrue(self.proto.lost[0].check(ConnectionDone, ConnectionLost))
        self.assertTrue(self.transport.disconnected)

    def test_abort_connection(self) -> None:
        """``abortConnection`` drops buffered bytes and ends with ``ConnectionLost``."""
        self.transport.write(b"y" * (8 * 1024 * 1024))
        self.transport.abortConnection()
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(len(self.proto.lost), 1)
        self.assertTrue(self.proto.lost[0].check(ConnectionLost))
        self.transport.abortConnection()
        self.transport.loseConnection()
        self.assertEqual(len(self.proto.lost), 1)

    def test_producer_paused_and_resumed(self) -> None:
        """Above ``HIGH_WATER`` buffered bytes the producer is paused; once the peer has
        read everything and the buffer drained, it is resumed."""
        self.transport.registerProducer(self.proto, True)
        self.assertRaises(RuntimeError, self.transport.registerProducer, self.proto, True)
        chunk = b"z" * (256 * 1024)
        total = 0
        while not self.proto.paused and total < 4 * HIGH_WATER:
            self.transport.write(chunk)
            total += len(chunk)
        self.assertEqual(self.proto.paused, 1)
        self.assertEqual(self.proto.resumed, 0)
        received = 0
        self.peer.settimeout(0.0)
        for _ in range(100000):
            if self.proto.resumed and received == total:
                break
            self.loop.poll(0)
            try:
                received += len(self.peer.recv(1024 * 1024))
            except BlockingIOError:
                pass
        self.assertEqual(received, total)
        self.assertEqual((self.proto.paused, self.proto.resumed), (1, 1))
        self.transport.unregisterProducer()
        self.transport.registerProducer(self.proto, True)


class SelectorsSocketTransportTests(SocketTransportTests):
    """The same, with the loop on :mod:`selectors` (as where epoll does not exist)."""

    epoll = False

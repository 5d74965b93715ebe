"""The Blocking face's loop: a clock, a socket transport and a ``selectors`` loop that
the calling thread runs until what it waits for has happened.

The core (:class:`~txamqp091.protocol.AMQPProtocol`) needs only a transport and a clock
(``callLater``/``seconds``); this module gives it both without a Twisted reactor:

* :class:`SelectorLoop` is the clock (a heap of timers on :func:`time.monotonic`) and
  the loop: :meth:`SelectorLoop.poll` waits for socket events or the next timer, reads,
  writes and runs due timers; :meth:`SelectorLoop.run_until` polls until a Deferred has
  fired and returns its result or raises its error;
* :class:`SocketTransport` is a non-blocking socket as an ``ITransport`` with the
  producer interface the core uses for back-pressure.

Nothing here knows AMQP. Every method is called with :attr:`SelectorLoop.lock` held,
except :meth:`SelectorLoop.call_threadsafe`, which any thread may call.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import select
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import AlreadyCalled, AlreadyCancelled, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IPushProducer,
    IReactorTime,
    ITransport,
)
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["SelectorLoop", "SocketTransport", "Timer"]

_T = TypeVar("_T")

#: Bytes read per ``recv`` call.
READ_SIZE = 256 * 1024
#: The producer is paused when this many bytes wait to be sent, resumed when all went.
HIGH_WATER = 4 * 1024 * 1024


@implementer(IDelayedCall)
class Timer:
    """A call scheduled on a :class:`SelectorLoop` (an ``IDelayedCall``)."""

    __slots__ = ("_loop", "args", "called", "cancelled", "func", "kw", "time")

    def __init__(
        self,
        loop: SelectorLoop,
        when: float,
        func: Callable[..., object],
        args: tuple[Any, ...],
        kw: dict[str, Any],
    ) -> None:
        self._loop = loop
        self.time = when
        self.func = func
        self.args = args
        self.kw = kw
        self.called = False
        self.cancelled = False

    def getTime(self) -> float:
        """When the call is due, on the loop's clock."""
        return self.time

    def cancel(self) -> None:
        """Unschedule the call."""
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        self.cancelled = True
        self._loop._stale += 1  # its heap entry stays until popped or compacted

    def delay(self, secondsLater: float) -> None:
        """Move the call *secondsLater* seconds later."""
        self.reset(self.time - self._loop.seconds() + secondsLater)

    def reset(self, secondsFromNow: float) -> None:
        """Move the call to *secondsFromNow* seconds from now."""
        if not self.active():
            raise AlreadyCalled() if self.called else AlreadyCancelled()
        # The heap entry under the old time goes stale and is skipped.
        self.time = self._loop.seconds() + max(0.0, secondsFromNow)
        self._loop._stale += 1
        self._loop._push(self)

    def active(self) -> bool:
        """``True`` until the call has run or been cancelled."""
        return not (self.called or self.cancelled)


_READ, _WRITE = 1, 2
#: Stale heap entries tolerated before the heap may be compacted.
_COMPACT_MIN = 256


def _live(entry: tuple[float, int, Timer]) -> bool:
    """Whether a heap entry is its timer's current, still active schedule."""
    timer = entry[2]
    return entry[0] == timer.time and not (timer.called or timer.cancelled)


class _EpollPoller:
    """Linux's epoll, called directly: a round trip spends a few microseconds less
    than through :mod:`selectors`."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._data: dict[int, Any] = {}

    def register(self, sock: socket.socket, events: int, data: Any) -> None:
        fd = sock.fileno()
        self._data[fd] = data
        self._epoll.register(fd, _epoll_mask(events))

    def modify(self, sock: socket.socket, events: int, data: Any) -> None:
        fd = sock.fileno()
        self._data[fd] = data
        self._epoll.modify(fd, _epoll_mask(events))

    def unregister(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self._data.pop(fd, _MISSING) is not _MISSING:
            self._epoll.unregister(fd)

    def poll(self, timeout: float | None) -> list[tuple[Any, int]]:
        ready = self._epoll.poll(-1 if timeout is None else timeout)
        data = self._data
        if len(ready) == 1:  # the common case: one socket readable
            fd, mask = ready[0]
            if mask == select.EPOLLIN and fd in data:
                return [(data[fd], _READ)]
        return [
            (
                data[fd],
                (_READ if mask & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP) else 0)
                | (_WRITE if mask & select.EPOLLOUT else 0),
            )
            for fd, mask in ready
            if fd in data
        ]

    def close(self) -> None:
        self._epoll.close()


class _SelectorsPoller:
    """:mod:`selectors`, where epoll is not available."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def register(self, sock: socket.socket, events: int, data: Any) -> None:
        self._selector.register(sock, _selector_mask(events), data)

    def modify(self, sock: socket.socket, events: int, data: Any) -> None:
        self._selector.modify(sock, _selector_mask(events), data)

    def unregister(self, sock: socket.socket) -> None:
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def poll(self, timeout: float | None) -> list[tuple[Any, int]]:
        return [
            (
                key.data,
                (_READ if mask & selectors.EVENT_READ else 0)
                | (_WRITE if mask & selectors.EVENT_WRITE else 0),
            )
            for key, mask in self._selector.select(timeout)
        ]

    def close(self) -> None:
        self._selector.close()


_MISSING = object()


def _epoll_mask(events: int) -> int:
    return (select.EPOLLIN if events & _READ else 0) | (select.EPOLLOUT if events & _WRITE else 0)


def _selector_mask(events: int) -> int:
    return (selectors.EVENT_READ if events & _READ else 0) | (
        selectors.EVENT_WRITE if events & _WRITE else 0
    )


@implementer(IReactorTime)
class SelectorLoop:
    """A clock and an I/O loop for sockets, run by whichever thread waits.

    It provides ``IReactorTime``'s ``callLater``, ``seconds`` and
    ``getDelayedCalls``, which is all the core asks of a clock.
    """

    def __init__(self, *, epoll: bool | None = None) -> None:
        """:param epoll: use epoll directly (the default where it exists) or
        :mod:`selectors` (elsewhere, or when ``False``)."""
        if epoll is None:
            epoll = hasattr(select, "epoll")
        self._poller: _EpollPoller | _SelectorsPoller = (
            _EpollPoller() if epoll else _SelectorsPoller()
        )
        self._timers: list[tuple[float, int, Timer]] = []
        #: Heap entries of cancelled or moved timers, not yet popped: the heap is
        #: rebuilt without them when they are most of it (a cancelled 30 s RPC timeout
        #: per call would otherwise pile up for 30 s).
        self._stale = 0
        self._seq = itertools.count()
        #: Held by whichever thread runs the loop or calls into the core.
        self.lock = threading.RLock()
        self._threadsafe: deque[Callable[[], object]] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._poller.register(self._wake_r, _READ, None)
        self._closed = False

    # -- IReactorTime ------------------------------------------------------------------

    def seconds(self) -> float:
        """The loop's clock: monotonic seconds."""
        return time.monotonic()

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: Any, **kw: Any
    ) -> Timer:
        """Call ``callable(*args, **kw)`` after *delay* seconds, from the loop."""
        timer = Timer(self, self.seconds() + max(0.0, delay), callable, args, kw)
        self._push(timer)
        return timer

    def _push(self, timer: Timer) -> None:
        timers = self._timers
        if self._stale > _COMPACT_MIN and 2 * self._stale > len(timers):
            timers[:] = [entry for entry in timers if _live(entry)]
            heapq.heapify(timers)
            self._stale = 0
        heapq.heappush(timers, (timer.time, next(self._seq), timer))

    def getDelayedCalls(self) -> list[Timer]:
        """The calls still scheduled."""
        return [entry[2] for entry in self._timers if _live(entry)]

    # -- threads ---------------------------------------------------------------------

    def call_threadsafe(self, callback: Callable[[], object]) -> None:
        """Run *callback* in the loop's thread at its next turn; wakes a waiting loop.

        Safe from any thread (and from signal handlers that only append).
        """
        self._threadsafe.append(callback)
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the wake-up pipe is full: the loop wakes anyway

    # -- running ---------------------------------------------------------------------

    def register(self, sock: socket.socket, transport: SocketTransport) -> None:
        """Watch *sock* for reading on behalf of *transport*."""
        self._poller.register(sock, _READ, transport)

    def watch_writable(self, sock: socket.socket, watcher: Any) -> None:
        """Watch *sock* (a connect in progress) until writable: the loop calls
        ``watcher._writable()`` (or ``_readable()``); unregister it then."""
        self._poller.register(sock, _WRITE, watcher)

    def modify(self, sock: socket.socket, transport: SocketTransport, write: bool) -> None:
        """Also watch *sock* for writing (or stop)."""
        self._poller.modify(sock, _READ | (_WRITE if write else 0), transport)

    def unregister(self, sock: socket.socket) -> None:
        """Stop watching *sock*."""
        self._poller.unregister(sock)

    def _next_timeout(self, limit: float | None) -> float | None:
        timers = self._timers
        while timers and not _live(timers[0]):
            heapq.heappop(timers)  # cancelled, or moved by reset()
            self._stale = max(0, self._stale - 1)
        if self._threadsafe:
            return 0.0
        if not timers:
            return limit
        wait = max(0.0, timers[0][0] - time.monotonic())
        return wait if limit is None else min(wait, limit)

    def poll(self, timeout: float | None) -> None:
        """One turn: wait up to *timeout* seconds (``None``: until something happens) for
        socket events or the next timer; then read and write, then run due timers and
        the calls queued by other threads."""
        if self._closed:
            raise RuntimeError("the loop is closed")
        wait = self._next_timeout(timeout)
        try:
            events = self._poller.poll(wait)
        except InterruptedError:  # pragma: no cover - retried by Python since 3.5
            events = []
        for transport, mask in events:
            if transport is None:
                self._drain_waker()
                continue
            if mask & _READ:
                transport._readable()
            if mask & _WRITE and not transport.disconnected:
                transport._writable()
        timers = self._timers
        if timers and timers[0][0] <= time.monotonic():
            self._run_timers()
        while self._threadsafe:
            self._threadsafe.popleft()()

    def _drain_waker(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _run_timers(self) -> None:
        timers = self._timers
        if not timers:
            return
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            entry = heapq.heappop(timers)
            timer = entry[2]
            if not _live(entry):
                self._stale = max(0, self._stale - 1)
                continue
            timer.called = True
            timer.func(*timer.args, **timer.kw)

    def run_until(self, d: Deferred[_T], timeout: float | None = None) -> _T:
        """Poll until *d* has fired; return its result or raise its error.

        :param timeout: give up after this many seconds with :class:`TimeoutError`
            (*d* is then cancelled); ``None`` waits as long as it takes.
        """
        box: list[Any] = []
        d.addBoth(box.append)
        deadline = None if timeout is None else self.seconds() + timeout
        while not box:
            left = None if deadline is None else deadline - self.seconds()
            if left is not None and left <= 0:
                d.cancel()
                if not box or (isinstance(box[0], Failure) and box[0].check(CancelledError)):  # type: ignore[no-untyped-call]
                    raise TimeoutError(f"gave up after {timeout} s")
                break
            self.poll(left)
        result = box[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result  # type: ignore[no-any-return]

    def close(self) -> None:
        """Release the selector and the wake-up sockets."""
        if self._closed:
            return
        self._closed = True
        self._poller.close()
        self._wake_r.close()
        self._wake_w.close()


@implementer(ITransport)
class SocketTransport:
    """A connected non-blocking socket as a Twisted transport, driven by a
    :class:`SelectorLoop`."""

    def __init__(self, loop: SelectorLoop, sock: socket.socket, protocol: IProtocol) -> None:
        self._loop = loop
        self._sock = sock
        self.protocol = protocol
        self._out: deque[bytes] = deque()
        #: How much of ``_out[0]`` the socket already took (no copy per partial send).
        self._out_offset = 0
        self._out_bytes = 0
        self._writing = False
        self._producer: IPushProducer | None = None
        self._paused = False
        self._closing = False
        #: ``True`` once the socket is closed and the protocol told.
        self.disconnected = False
        sock.setblocking(False)
        loop.register(sock, self)

    @property
    def buffered(self) -> int:
        """Bytes written but not yet taken by the socket."""
        return self._out_bytes

    # -- ITransport --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send *data*, buffering what the socket does not take at once."""
        if self.disconnected or self._closing or not data:
            return
        if not self._out:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as e:
                # Not from inside the protocol's own write: tell it at the next turn
                # (as a reactor would), and take no more bytes meanwhile.
                self._closing = True
                self._loop.callLater(0, self._lost, e)
                return
            if sent == len(data):
                return
            data = data[sent:]
        self._out.append(data)
        self._out_bytes += len(data)
        if not self._writing:
            self._writing = True
            self._loop.modify(self._sock, self, True)
        if self._producer is not None and not self._paused and self._out_bytes > HIGH_WATER:
            self._paused = True
            self._producer.pauseProducing()

    def writeSequence(self, data: Any) -> None:
        """Send the byte strings of *data* as one write."""
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close once the buffered bytes are sent."""
        if self.disconnected:
            return
        self._closing = True
        if not self._out:
            self._close(Failure(ConnectionDone("connection closed cleanly")))  # type: ignore[no-untyped-call]

    def abortConnection(self) -> None:
        """Close now, dropping what is buffered."""
        if not self.disconnected:
            self._close(Failure(ConnectionLost("connection aborted")))  # type: ignore[no-untyped-call]

    def getPeer(self) -> IPv4Address | IPv6Address:
        """The broker's address."""
        return _address(self._sock.getpeername())

    def getHost(self) -> IPv4Address | IPv6Address:
        """Our address."""
        return _address(self._sock.getsockname())

    def getHandle(self) -> socket.socket:
        """The socket (for socket options)."""
        return self._sock

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        """Pause *producer* while more than :data:`HIGH_WATER` bytes wait to be sent."""
        if self._producer is not None:
            raise RuntimeError("a producer is already registered")
        self._producer = producer

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self._producer = None

    # -- driven by the loop --------------------------------------------------------

    def _readable(self) -> None:
        try:
            data = self._sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._lost(e)
            return
        if not data:
            self._close(Failure(ConnectionDone("the broker closed the connection")))  # type: ignore[no-untyped-call]
            return
        self.protocol.dataReceived(data)

    def _writable(self) -> None:
        out = self._out
        while out:
            chunk = out[0]
            offset = self._out_offset
            try:
                if offset:
                    with memoryview(chunk) as view:
                        sent = self._sock.send(view[offset:])
                else:
                    sent = self._sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._lost(e)
                return
            self._out_bytes -= sent
            if offset + sent < len(chunk):
                self._out_offset = offset + sent
                return
            self._out_offset = 0
            out.popleft()
        self._writing = False
        if not self.disconnected:
            self._loop.modify(self._sock, self, False)
        if self._producer is not None and self._paused:
            self._paused = False
            self._producer.resumeProducing()
        if self._closing:
            self._close(Failure(ConnectionDone("connection closed cleanly")))  # type: ignore[no-untyped-call]

    def _lost(self, error: OSError) -> None:
        reason = "connection reset" if error.errno == errno.ECONNRESET else str(error)
        self._close(Failure(ConnectionLost(reason)))  # type: ignore[no-untyped-call]

    def _close(self, reason: Failure) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        self._out.clear()
        self._out_offset = 0
        self._out_bytes = 0
        self._loop.unregister(self._sock)
        try:
            self._sock.close()
        finally:
            self.protocol.connectionLost(reason)


def _address(addr: Any) -> IPv4Address | IPv6Address:
    if isinstance(addr, tuple) and len(addr) >= 4:
        return IPv6Address("TCP", addr[0], addr[1])
    host, port = addr[0], addr[1]
    return IPv4Address("TCP", host, port)

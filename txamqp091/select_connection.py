"""The Select face: pika's ``SelectConnection`` and ``IOLoop`` over the core.

The loop is the Blocking face's :class:`~txamqp091.blocking_loop.SelectorLoop` (epoll
where it exists), run by :meth:`IOLoop.start` until :meth:`IOLoop.stop`; the
connection is :class:`~txamqp091.callback_connection.CallbackConnection` with a
non-blocking TCP connect (:mod:`txamqp091.socket_connect`). Nothing here speaks AMQP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from txamqp091.blocking_loop import SelectorLoop, SocketTransport, Timer
from txamqp091.callback_connection import CallbackConnection
from txamqp091.parameters import Parameters
from txamqp091.protocol import AMQPProtocol
from txamqp091.socket_connect import attach, connect_socket

__all__ = ["IOLoop", "SelectConnection"]


class IOLoop:
    """pika's ``IOLoop``: timers, thread-safe callbacks, and ``start()``/``stop()``."""

    def __init__(self) -> None:
        self._loop = SelectorLoop()
        self._stopping = False
        self._running = False
        self._error: BaseException | None = None

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback()`` after *delay* seconds, from the loop.

        :returns: a handle for :meth:`remove_timeout`.
        """
        if not callable(callback):
            raise TypeError("callback must be callable")
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise ValueError(f"delay must be a number >= 0, not {delay!r}")
        return self._loop.callLater(delay, callback)

    def remove_timeout(self, timeout_handle: Timer) -> None:
        """Cancel a :meth:`call_later` timer (nothing if it ran or was removed)."""
        if timeout_handle.active():
            timeout_handle.cancel()

    def add_callback_threadsafe(self, callback: Callable[[], object]) -> None:
        """Have ``callback()`` run by the loop at its next turn; safe from any thread
        (it wakes a waiting loop)."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._loop.call_threadsafe(callback)

    add_callback = add_callback_threadsafe

    def process_timeouts(self) -> None:
        """Run the timers that are due."""
        self._loop._run_timers()

    def start(self) -> None:
        """Run the loop until :meth:`stop`; an exception raised by an application
        callback stops it and is raised here, as in pika."""
        if self._running:
            raise RuntimeError("the IOLoop is already running")
        self._running = True
        try:
            while not self._stopping and self._error is None:
                self._loop.poll(None)
        finally:
            self._running = False
            self._stopping = False
        error, self._error = self._error, None
        if error is not None:
            raise error

    def stop(self) -> None:
        """Make :meth:`start` return after the current turn (from a callback, or from
        another thread)."""
        self._stopping = True
        self._loop.call_threadsafe(_nothing)

    def close(self) -> None:
        """Release the loop's resources (once stopped)."""
        self._loop.close()

    def _callback_failed(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._loop.call_threadsafe(_nothing)


def _nothing() -> None:
    """A callback that does nothing (wakes the loop)."""


class SelectConnection(CallbackConnection):
    """pika's ``SelectConnection``: the asynchronous API on an :class:`IOLoop`.

    The connection is attempted once the loop runs (``connection.ioloop.start()``).
    See :class:`~txamqp091.callback_connection.CallbackConnection` for the callbacks.

    :param custom_ioloop: an :class:`IOLoop` to share (default: a new one).
    :param internal_connection_workflow: accepted for pika's signature; attempts
        always follow the parameters' ``connection_attempts`` and ``retry_delay``.
    """

    def __init__(
        self,
        parameters: Parameters | None = None,
        on_open_callback: Callable[[Any], object] | None = None,
        on_open_error_callback: Callable[[Any, BaseException], object] | None = None,
        on_close_callback: Callable[[Any, BaseException], object] | None = None,
        custom_ioloop: IOLoop | None = None,
        internal_connection_workflow: bool = True,
        *,
        candidates: list[Parameters] | None = None,
    ) -> None:
        if custom_ioloop is not None and not isinstance(custom_ioloop, IOLoop):
            raise TypeError(f"custom_ioloop must be an IOLoop, not {type(custom_ioloop).__name__}")
        self.ioloop = custom_ioloop or IOLoop()
        self._clock = self.ioloop._loop
        self._transport: SocketTransport | None = None
        super().__init__(
            parameters,
            on_open_callback,
            on_open_error_callback,
            on_close_callback,
            candidates=candidates,
        )

    def _open_transport(self, params: Parameters, protocol: AMQPProtocol) -> Deferred[Any]:
        tls = self._tls_of(params)
        loop = self.ioloop._loop

        def connected(sock: Any) -> None:
            self._transport = attach(loop, sock, params, protocol, tls)

        return connect_socket(loop, params.host, params.port, params.socket_timeout).addCallback(
            connected
        )

    def _callback_failed(self, error: BaseException) -> None:
        self.ioloop._callback_failed(error)

    def _get_write_buffer_size(self) -> int:
        """Bytes written but not yet taken by the socket (pika's private method, which
        programs use for back-pressure)."""
        transport = self._transport
        return transport.buffered if transport is not None else 0

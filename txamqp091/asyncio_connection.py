"""The asyncio face: pika's ``AsyncioConnection`` (and ``TornadoConnection``, on
Tornado's asyncio loop) over the core.

The connection and channel API is the Select face's
(:class:`~txamqp091.callback_connection.CallbackConnection`); this module gives it an
asyncio loop: the core's clock is :class:`~txamqp091.asyncio_bridge.AsyncioClock` and
its transport is opened by :func:`~txamqp091.asyncio_bridge.connect_transport`.
Nothing here speaks AMQP.

Which loop: ``custom_ioloop`` when given; else the running loop when created inside
one; else a new loop of its own (``connection.ioloop``), as pika 1.4 does (the
event-loop policy and the thread's current loop are never changed). A connection
whose loop never runs cannot do anything: after
``socket_timeout`` (or 10) seconds without its loop having started the first
attempt, it says so loudly -- an error in the log and a ``RuntimeWarning`` -- instead
of leaving the program to wait in silence.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from txamqp091.asyncio_bridge import AsyncioClock, BridgeProtocol, connect_transport
from txamqp091.callback_connection import CallbackConnection
from txamqp091.parameters import Parameters
from txamqp091.protocol import AMQPProtocol
from txamqp091.socket_connect import DEFAULT_CONNECT_TIMEOUT

__all__ = ["AsyncioConnection", "TornadoConnection"]

_log = Logger(namespace="txamqp091.asyncio_connection")


def _default_loop() -> asyncio.AbstractEventLoop:
    """The running loop, else a new one of the connection's own (pika 1.4's choice:
    ``connection.ioloop.run_forever()`` runs it)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.new_event_loop()


class AsyncioConnection(CallbackConnection):
    """pika's ``AsyncioConnection``: the asynchronous API on an asyncio loop.

    ``connection.ioloop`` is the asyncio loop (``run_forever()``, ``stop()``,
    ``call_later()``…). See :class:`~txamqp091.callback_connection.CallbackConnection`
    for the callbacks.

    :param custom_ioloop: the asyncio loop to use.
    :param internal_connection_workflow: accepted for pika's signature; attempts
        always follow the parameters' ``connection_attempts`` and ``retry_delay``.
    """

    def __init__(
        self,
        parameters: Parameters | None = None,
        on_open_callback: Callable[[Any], object] | None = None,
        on_open_error_callback: Callable[[Any, BaseException], object] | None = None,
        on_close_callback: Callable[[Any, BaseException], object] | None = None,
        custom_ioloop: asyncio.AbstractEventLoop | None = None,
        internal_connection_workflow: bool = True,
        *,
        candidates: list[Parameters] | None = None,
    ) -> None:
        if custom_ioloop is not None and not isinstance(custom_ioloop, asyncio.AbstractEventLoop):
            raise TypeError(
                f"custom_ioloop must be an asyncio event loop, not {type(custom_ioloop).__name__}"
            )
        loop = custom_ioloop or _default_loop()
        if loop.is_closed():
            raise RuntimeError("the asyncio event loop is closed")
        self._loop = loop
        self._clock = AsyncioClock(loop)
        self._bridge: BridgeProtocol | None = None
        self._started = False
        super().__init__(
            parameters,
            on_open_callback,
            on_open_error_callback,
            on_close_callback,
            candidates=candidates,
        )
        patience = self.params.socket_timeout or DEFAULT_CONNECT_TIMEOUT
        self._watchdog: threading.Timer | None = threading.Timer(patience, self._never_ran)
        self._watchdog.daemon = True
        self._watchdog.start()

    @property
    def ioloop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop the connection runs on."""
        return self._loop

    def _never_ran(self) -> None:
        if self._started or self.is_closed:
            return
        message = (
            f"{self!r}: its asyncio loop {self._loop!r} has not run for "
            f"{self.params.socket_timeout or DEFAULT_CONNECT_TIMEOUT:g} s, so the connection "
            "cannot open; run connection.ioloop (run_forever()), or create the connection "
            "inside the loop that runs"
        )
        _log.error("{text}", text=message)
        warnings.warn(message, RuntimeWarning, stacklevel=1)

    def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()

    def _start(self) -> None:
        self._started = True
        self._stop_watchdog()
        super()._start()

    def _open_transport(self, params: Parameters, protocol: AMQPProtocol) -> Deferred[Any]:
        tls = self._tls_of(params)
        # Not given the clock: it is the connection's, shared by every attempt, and
        # each core cancels its own timers as it ends.
        bridge = self._bridge = BridgeProtocol(protocol, None)
        future = asyncio.ensure_future(
            connect_transport(params, self._loop, bridge, tls), loop=self._loop
        )
        return Deferred.fromFuture(future)

    def _ended(self) -> None:
        # The core cancels its own timers as it ends; the connection's retry timer is
        # cancelled by close(). Cancelling every call on the clock here could hit a
        # protocol still shutting down.
        self._stop_watchdog()

    def _callback_failed(self, error: BaseException) -> None:
        self._loop.call_exception_handler(
            {
                "message": f"exception in a callback of {self!r}",
                "exception": error,
                "connection": self,
            }
        )

    def _get_write_buffer_size(self) -> int:
        """Bytes written but not yet taken by the socket (pika's private method, which
        programs use for back-pressure)."""
        bridge = self._bridge
        if bridge is None or bridge.transport is None:
            return 0
        transport = bridge.transport
        return transport.pending + transport.asyncio_transport.get_write_buffer_size()


class TornadoConnection(AsyncioConnection):
    """pika's ``TornadoConnection``: the asyncio face on a Tornado ``IOLoop`` (Tornado
    runs on asyncio). ``connection.ioloop`` is the Tornado ``IOLoop``.

    :param custom_ioloop: a ``tornado.ioloop.IOLoop`` (default: ``IOLoop.current()``).
    """

    def __init__(
        self,
        parameters: Parameters | None = None,
        on_open_callback: Callable[[Any], object] | None = None,
        on_open_error_callback: Callable[[Any, BaseException], object] | None = None,
        on_close_callback: Callable[[Any, BaseException], object] | None = None,
        custom_ioloop: Any = None,
        internal_connection_workflow: bool = True,
        *,
        candidates: list[Parameters] | None = None,
    ) -> None:
        from tornado.ioloop import IOLoop

        tornado_loop = custom_ioloop if custom_ioloop is not None else IOLoop.current()
        if not isinstance(tornado_loop, IOLoop):
            raise TypeError(
                f"custom_ioloop must be a tornado IOLoop, not {type(tornado_loop).__name__}"
            )
        self._tornado_loop = tornado_loop
        super().__init__(
            parameters,
            on_open_callback,
            on_open_error_callback,
            on_close_callback,
            tornado_loop.asyncio_loop,  # type: ignore[attr-defined]
            internal_connection_workflow,
            candidates=candidates,
        )

    @property
    def ioloop(self) -> Any:
        """The Tornado ``IOLoop`` the connection runs on."""
        return self._tornado_loop

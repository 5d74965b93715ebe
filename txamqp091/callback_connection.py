"""pika's asynchronous (callback) ``Connection`` and ``Channel`` API over the core.

:class:`CallbackConnection` is shared by the Select face
(:class:`~txamqp091.select_connection.SelectConnection`) and the asyncio face: a face
gives it a clock and a way to open a transport, and everything else -- the attempts,
the handshake, channels, consumers, confirms -- is the core's, converted here from
Deferreds to pika's callbacks:

* completion callbacks receive the reply method frame (``frame.method``); where pika
  does, ``callback=None`` sends the request with its ``nowait`` bit (no reply comes);
* a failed request closes its channel (or connection), so it is reported to the
  channel's (or connection's) close callbacks, as in pika, not to the completion
  callback;
* an exception raised by an application callback is handed to the face
  (:meth:`CallbackConnection._callback_failed`): the Select face's ``IOLoop.start()``
  raises it, as pika's does.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txamqp091 import spec
from txamqp091.channel import Channel
from txamqp091.codec import MethodFrame
from txamqp091.connect import try_in_turn
from txamqp091.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AMQPConnectionWorkflowAborted,
    AMQPConnectionWorkflowFailed,
    AMQPConnectionWorkflowWrongState,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConnectionClosedByClient,
    ConnectionOpenAborted,
    ConnectionWrongStateError,
    NoFreeChannels,
)
from txamqp091.exchange_type import ExchangeType
from txamqp091.message import PUBLISHED, ReceivedMessage
from txamqp091.parameters import ConnectionParameters, Parameters
from txamqp091.protocol import AMQPProtocol
from txamqp091.socket_connect import tls_context

__all__ = ["CallbackChannel", "CallbackConnection", "ConnectionWorkflow"]

_log = Logger(namespace="txamqp091.callback_connection")
_T = TypeVar("_T")
Callback = Callable[..., object]

_OPENING, _OPEN, _CLOSING, _CLOSED = "opening", "open", "closing", "closed"


def _check_callback(callback: object, name: str = "callback") -> None:
    if callback is not None and not callable(callback):
        raise TypeError(f"{name} must be callable or None, not {callback!r}")


def _check_close_arguments(reply_code: object, reply_text: object) -> None:
    """Raise for a bad ``close()`` argument before any state changes."""
    if isinstance(reply_code, bool) or not isinstance(reply_code, int):
        raise TypeError(f"reply_code must be an int, not {reply_code!r}")
    if not isinstance(reply_text, str):
        raise TypeError(f"reply_text must be a str, not {reply_text!r}")


def _check_required(callback: object, name: str) -> None:
    if not callable(callback):
        raise TypeError(f"{name} must be callable, not {callback!r}")


class CallbackConnection:
    """pika's asynchronous ``Connection`` over the core; made through a face.

    :param parameters: a :class:`~txamqp091.ConnectionParameters` or
        :class:`~txamqp091.URLParameters` (``None``: the defaults); tried
        ``connection_attempts`` times, ``retry_delay`` seconds apart.
    :param on_open_callback: ``callback(connection)`` once open.
    :param on_open_error_callback: ``callback(connection, error)`` when no attempt
        succeeded or ``close()`` aborted the opening (default: log it).
    :param on_close_callback: ``callback(connection, error)`` when an open connection
        closes, ``error`` saying why (``ConnectionClosedByClient``,
        ``ConnectionClosedByBroker``, ``StreamLostError``, ``AMQPHeartbeatTimeout``…).
    """

    #: The clock the core runs on (set by the face before ``__init__``).
    _clock: IReactorTime

    def __init__(
        self,
        parameters: Parameters | None = None,
        on_open_callback: Callable[[Any], object] | None = None,
        on_open_error_callback: Callable[[Any, BaseException], object] | None = None,
        on_close_callback: Callable[[Any, BaseException], object] | None = None,
        *,
        candidates: list[Parameters] | None = None,
    ) -> None:
        """:param candidates: (for ``create_connection``) parameters to try in turn, in
        pika's order, instead of *parameters* alone."""
        if parameters is None:
            parameters = ConnectionParameters()
        elif not isinstance(parameters, Parameters):
            raise TypeError(
                f"parameters must be ConnectionParameters, URLParameters or None, "
                f"not {type(parameters).__name__}"
            )
        for name, cb in (
            ("on_open_callback", on_open_callback),
            ("on_open_error_callback", on_open_error_callback),
            ("on_close_callback", on_close_callback),
        ):
            _check_callback(cb, name)
        self.params = parameters
        self._state = _OPENING
        self._impl: AMQPProtocol | None = None
        self._open_callbacks: list[Callable[[Any], object]] = []
        self._open_error_callbacks: list[Callable[[Any, BaseException], object]] = []
        self._close_callbacks: list[Callable[[Any, BaseException], object]] = []
        self._blocked_callbacks: list[Callable[[Any, Any], object]] = []
        self._unblocked_callbacks: list[Callable[[Any, Any], object]] = []
        if on_open_callback is not None:
            self._open_callbacks.append(on_open_callback)
        self._open_error_callbacks.append(on_open_error_callback or self._log_open_error)
        if on_close_callback is not None:
            self._close_callbacks.append(on_close_callback)
        self._channels: dict[int, CallbackChannel] = {}
        self._candidates = candidates or [parameters]
        # The TLS settings of each candidate, made once; one no callback face can use
        # (a Twisted connection creator) raises TypeError now.
        self._tls = [tls_context(p) for p in self._candidates]
        #: The error of each failed attempt, in order.
        self.attempt_errors: list[BaseException] = []
        #: The attempts under way (try_in_turn), cancelled by close().
        self._attempts: Deferred[AMQPProtocol] | None = None
        # The opening starts at the loop's first turn, as in pika.
        self._start_call: IDelayedCall | None = self._clock.callLater(0, self._start)

    # -- what a face provides ------------------------------------------------------

    def _open_transport(self, params: Parameters, protocol: AMQPProtocol) -> Deferred[Any]:
        """Connect and start *protocol* (``makeConnection``); a face's job, with the
        TLS settings of :meth:`_tls_of`."""
        raise NotImplementedError  # pragma: no cover - every face overrides it

    def _tls_of(self, params: Parameters) -> tuple[ssl.SSLContext, str] | None:
        """The TLS context and server name for one of the candidates (``None``: TCP)."""
        for candidate, tls in zip(self._candidates, self._tls, strict=True):
            if candidate is params:
                return tls
        return tls_context(params)

    def _callback_failed(self, error: BaseException) -> None:
        """An application callback raised *error*: the face reports it."""
        _log.failure("application callback failed", Failure(error))  # type: ignore[no-untyped-call]

    def _invoke(self, callback: Callable[..., object], *args: Any) -> None:
        """Run an application callback; what it raises goes to the face."""
        try:
            callback(*args)
        except Exception as e:
            self._callback_failed(e)

    # -- opening ------------------------------------------------------------------

    def _log_open_error(self, connection: Any, error: BaseException) -> None:
        _log.error("connection to {host} failed: {error!r}", host=self.params.host, error=error)

    def _start(self) -> None:
        """Make the attempts, in pika's order (:func:`~txamqp091.connect.try_in_turn`)."""
        self._start_call = None
        if self._state is not _OPENING:
            return
        self._attempts = Deferred.fromCoroutine(
            try_in_turn(self._clock, self._candidates, self._attempt, self._attempt_failed)
        )
        self._attempts.addCallbacks(self._opened, self._attempts_failed)

    def _attempt(self, index: int) -> Deferred[AMQPProtocol]:
        """One attempt: the face's transport, then the AMQP handshake. Cancelling it
        (close() while opening) stops the connect, or closes the protocol once it has
        its transport (the handshake is aborted, the transport dropped)."""
        self.params = params = self._candidates[index]
        protocol = AMQPProtocol(params, self._clock)
        try:
            connecting = self._open_transport(params, protocol)
        except Exception as e:  # e.g. TLS settings this face cannot use
            connecting = fail(e)

        cancelled = False

        def cancel(_: Deferred[AMQPProtocol]) -> None:
            # The attempt then fails with CancelledError, which ends try_in_turn;
            # what the connect or the handshake does next is nobody's business.
            nonlocal cancelled
            cancelled = True
            if protocol.transport is not None:
                protocol.close()
            else:
                connecting.cancel()

        def settle(result: object) -> None:
            if cancelled:
                return  # a failure, consumed here
            if isinstance(result, Failure):
                attempt.errback(result)
            else:
                attempt.callback(protocol)

        attempt: Deferred[AMQPProtocol] = Deferred(cancel)
        connecting.addCallback(lambda _: protocol.ready).addBoth(settle)
        return attempt

    def _attempt_failed(self, params: Parameters, error: BaseException) -> None:
        self.attempt_errors.append(error)
        _log.info(
            "AMQP connection attempt to {host}:{port} failed: {error!r}",
            host=params.host,
            port=params.port,
            error=error,
        )

    def _attempts_failed(self, failure: Failure) -> None:
        self._attempts = None
        if self._state is not _OPENING:
            return  # aborted by close(): reported there
        error = failure.value
        if not isinstance(error, AMQPConnectionError):
            error = AMQPConnectionError(repr(error))
        self._open_failed(error)

    def _opened(self, protocol: AMQPProtocol) -> None:
        self._attempts = None
        if self._state is not _OPENING:  # pragma: no cover - close() cancels the attempts
            protocol.close()
            return
        self._impl = protocol
        self._state = _OPEN
        protocol.add_on_close_callback(self._on_impl_closed)
        protocol.add_on_connection_blocked_callback(
            lambda _, method: self._notify(self._blocked_callbacks, method)
        )
        protocol.add_on_connection_unblocked_callback(
            lambda _, method: self._notify(self._unblocked_callbacks, method)
        )
        for callback in list(self._open_callbacks):
            self._invoke(callback, self)

    def _open_failed(self, error: BaseException) -> None:
        self._state = _CLOSED
        for callback in list(self._open_error_callbacks):
            self._invoke(callback, self, error)
        self._ended()

    def _notify(self, callbacks: list[Callable[[Any, Any], object]], method: spec.Method) -> None:
        frame = MethodFrame(0, method)
        for callback in list(callbacks):
            self._invoke(callback, self, frame)

    def _on_impl_closed(self, protocol: AMQPProtocol, reason: Exception) -> None:
        self._state = _CLOSED
        for callback in list(self._close_callbacks):
            self._invoke(callback, self, reason)
        self._ended()

    def _ended(self) -> None:
        """The connection is over (opened or not): a face may release its resources."""

    # -- pika's API ---------------------------------------------------------------

    def add_on_open_callback(self, callback: Callable[[Any], object]) -> None:
        """Call ``callback(connection)`` once the connection is open."""
        _check_required(callback, "callback")
        self._open_callbacks.append(callback)

    def add_on_open_error_callback(
        self, callback: Callable[[Any, BaseException], object], remove_default: bool = True
    ) -> None:
        """Call ``callback(connection, error)`` if the connection cannot be opened.

        :param remove_default: drop the default callback (which logs the error).
        """
        _check_required(callback, "callback")
        if remove_default and self._log_open_error in self._open_error_callbacks:
            self._open_error_callbacks.remove(self._log_open_error)
        self._open_error_callbacks.append(callback)

    def add_on_close_callback(self, callback: Callable[[Any, BaseException], object]) -> None:
        """Call ``callback(connection, error)`` when the open connection closes."""
        _check_required(callback, "callback")
        self._close_callbacks.append(callback)

    def add_on_connection_blocked_callback(self, callback: Callable[[Any, Any], object]) -> None:
        """Call ``callback(connection, method_frame)`` on ``Connection.Blocked``."""
        _check_required(callback, "callback")
        self._blocked_callbacks.append(callback)

    def add_on_connection_unblocked_callback(self, callback: Callable[[Any, Any], object]) -> None:
        """Call ``callback(connection, method_frame)`` on ``Connection.Unblocked``."""
        _check_required(callback, "callback")
        self._unblocked_callbacks.append(callback)

    def channel(
        self,
        channel_number: int | None = None,
        on_open_callback: Callable[[CallbackChannel], object] | None = None,
    ) -> CallbackChannel:
        """Open a channel; ``on_open_callback(channel)`` runs once it is open.

        :returns: the channel, still opening.
        :raises ConnectionWrongStateError: if the connection is not open.
        """
        _check_callback(on_open_callback, "on_open_callback")
        impl = self._open_impl()
        if channel_number is None:
            channel_number = impl._free_channel_number()
            if channel_number is None:
                raise NoFreeChannels()
        d = impl.channel(channel_number)  # raises for a bad or taken number
        channel = CallbackChannel(self, channel_number, on_open_callback)
        self._channels[channel_number] = channel
        d.addCallbacks(channel._opened, channel._open_failed)
        return channel

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close the connection (its channels first); the close callbacks run once
        the broker has answered. While opening, abort the opening instead: the open
        error callbacks get ``ConnectionOpenAborted``.

        :raises ConnectionWrongStateError: if it is closing or closed.
        """
        _check_close_arguments(reply_code, reply_text)
        if self._state is _OPENING:
            self._state = _CLOSING
            start, self._start_call = self._start_call, None
            if start is not None and start.active():
                start.cancel()
            attempts, self._attempts = self._attempts, None
            if attempts is not None:
                attempts.addErrback(lambda f: None)
                attempts.cancel()  # the retry wait, or the attempt under way
            self._open_failed(
                ConnectionOpenAborted(f"close() while opening: {reply_code} {reply_text}")
            )
            return
        if self._state is not _OPEN:
            raise ConnectionWrongStateError(f"the connection is {self._state}")
        assert self._impl is not None
        self._state = _CLOSING
        self._impl.close(reply_code, reply_text).addErrback(lambda f: None)

    def update_secret(
        self, new_secret: str, reason: str, callback: Callable[[Any], object] | None = None
    ) -> None:
        """Replace the credentials' secret; ``callback(method_frame)`` once done."""
        _check_callback(callback)
        d = self._open_impl().update_secret(new_secret, reason)
        self._complete(d.addCallback(lambda method: MethodFrame(0, method)), callback)

    def _get_write_buffer_size(self) -> int:
        """Bytes written but not yet taken by the socket (pika's private method, which
        programs use for back-pressure)."""
        return 0

    def _open_impl(self) -> AMQPProtocol:
        if self._state is not _OPEN or self._impl is None:
            raise ConnectionWrongStateError(f"the connection is {self._state}")
        return self._impl

    def _complete(self, d: Deferred[Any], callback: Callable[[Any], object] | None) -> None:
        """Hand *d*'s result to *callback*; a failure closed the channel or connection
        and is reported to its close callbacks, so it stops here."""
        d.addCallbacks(
            (lambda result: self._invoke(callback, result)) if callback is not None else _drop,
            self._request_failed,
        )

    def _request_failed(self, failure: Failure) -> None:
        if not failure.check(AMQPChannelError, AMQPConnectionError):  # type: ignore[no-untyped-call]
            _log.failure("request failed", failure)

    @property
    def is_open(self) -> bool:
        """``True`` while the connection is open."""
        return self._state is _OPEN

    @property
    def is_closing(self) -> bool:
        """``True`` while it closes (or aborts its opening)."""
        return self._state is _CLOSING

    @property
    def is_closed(self) -> bool:
        """``True`` once it is closed, or its opening failed."""
        return self._state is _CLOSED

    def _capability(self, name: str) -> bool:
        return bool(self._impl is not None and getattr(self._impl, name))

    @property
    def basic_nack_supported(self) -> bool:
        """Whether the broker supports ``Basic.Nack``."""
        return self._capability("basic_nack_supported")

    @property
    def consumer_cancel_notify_supported(self) -> bool:
        """Whether the broker sends ``Basic.Cancel`` to consumers."""
        return self._capability("consumer_cancel_notify_supported")

    @property
    def exchange_exchange_bindings_supported(self) -> bool:
        """Whether the broker supports exchange-to-exchange bindings."""
        return self._capability("exchange_exchange_bindings_supported")

    @property
    def publisher_confirms_supported(self) -> bool:
        """Whether the broker supports publisher confirms."""
        return self._capability("publisher_confirms_supported")

    # pika's older names.
    basic_nack = basic_nack_supported
    consumer_cancel_notify = consumer_cancel_notify_supported
    exchange_exchange_bindings = exchange_exchange_bindings_supported
    publisher_confirms = publisher_confirms_supported

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._state} {self.params.host}:{self.params.port}>"

    @classmethod
    def create_connection(
        cls,
        connection_configs: Sequence[Parameters],
        on_done: Callable[[Any], object],
        custom_ioloop: Any = None,
        workflow: object = None,
    ) -> ConnectionWorkflow:
        """Try *connection_configs* in pika's order (each ``connection_attempts``
        times, ``retry_delay`` apart); ``on_done(connection)`` with the first that
        opens, or ``on_done(error)``: ``AMQPConnectionWorkflowFailed`` (its
        ``exceptions`` lists every attempt's error) or
        ``AMQPConnectionWorkflowAborted`` after ``abort()``.

        :param custom_ioloop: the face's loop (as for the constructor).
        :param workflow: pika's custom workflow object; not supported (must be None).
        :returns: the workflow, whose ``abort()`` stops it.
        """
        if workflow is not None:
            raise NotImplementedError("a custom connection workflow is not supported")
        if not callable(on_done):
            raise TypeError("on_done must be callable")
        configs = list(connection_configs)
        if not configs or not all(isinstance(c, Parameters) for c in configs):
            raise ValueError("connection_configs must be a non-empty sequence of Parameters")
        return ConnectionWorkflow(cls, configs, on_done, custom_ioloop)


class ConnectionWorkflow:
    """The attempts started by :meth:`CallbackConnection.create_connection`."""

    def __init__(
        self,
        cls: type[CallbackConnection],
        configs: list[Parameters],
        on_done: Callable[[Any], object],
        custom_ioloop: Any,
    ) -> None:
        self._on_done = on_done
        self._done = False
        self._aborted = False
        #: The connection being attempted (the one ``on_done`` gets when it opens).
        self.connection = cls(  # type: ignore[call-arg]
            configs[0],
            on_open_callback=self._opened,
            on_open_error_callback=self._failed,
            custom_ioloop=custom_ioloop,
            candidates=configs,
        )

    def abort(self) -> None:
        """Stop trying; ``on_done`` gets ``AMQPConnectionWorkflowAborted``.

        :raises AMQPConnectionWorkflowWrongState: if the workflow already ended.
        """
        if self._done or self._aborted:
            raise AMQPConnectionWorkflowWrongState("the connection workflow already ended")
        self._aborted = True
        self.connection.close()

    def _opened(self, connection: CallbackConnection) -> None:
        self._finish(connection)

    def _failed(self, connection: CallbackConnection, error: BaseException) -> None:
        if self._aborted and isinstance(error, ConnectionOpenAborted):
            self._finish(AMQPConnectionWorkflowAborted())
        else:
            self._finish(AMQPConnectionWorkflowFailed(list(connection.attempt_errors)))

    def _finish(self, result: Any) -> None:
        if self._done:
            return
        self._done = True
        self.connection._invoke(self._on_done, result)


def _drop(_: object) -> None:
    """Ignore a result nobody asked for."""


class CallbackChannel:
    """pika's asynchronous ``Channel``; made by :meth:`CallbackConnection.channel`."""

    def __init__(
        self,
        connection: CallbackConnection,
        channel_number: int,
        on_open_callback: Callable[[CallbackChannel], object] | None,
    ) -> None:
        self.connection = connection
        self.channel_number = channel_number
        self._impl: Channel | None = None
        self._state = _OPENING
        self._on_open = on_open_callback
        self._close_callbacks: list[Callable[[CallbackChannel, BaseException], object]] = []
        self._cancel_callbacks: list[Callable[[Any], object]] = []
        self._return_callbacks: list[Callback] = []
        self._flow_callbacks: list[Callable[[Any], object]] = []
        self._consumer_tags: list[str] = []
        #: Consumers cancelled, their CancelOk not yet in: deliveries stop at once.
        self._cancelled: set[str] = set()
        self._ack_nack_callbacks: list[Callable[[Any], object]] = []
        self._close_requested: tuple[int, str] | None = None

    def __repr__(self) -> str:
        return f"<CallbackChannel {self.channel_number} {self._state}>"

    # -- state --------------------------------------------------------------------

    def _opened(self, impl: Channel) -> None:
        self._impl = impl
        impl.add_on_close_callback(self._on_impl_closed)
        impl.add_on_return_callback(self._returned)
        impl.add_on_cancel_callback(self._cancelled_by_broker)
        impl.add_on_flow_callback(self._flowed)
        if self._close_requested is not None:  # close() while opening, as pika allows
            impl.close(*self._close_requested, drain=True).addErrback(lambda f: None)
            return
        self._state = _OPEN
        if self._on_open is not None:
            self.connection._invoke(self._on_open, self)

    def _open_failed(self, failure: Failure) -> None:
        error = failure.value
        assert isinstance(error, BaseException)
        self._closed(error)

    def _on_impl_closed(self, impl: Channel, reason: Exception) -> None:
        self._closed(reason)

    def _closed(self, reason: BaseException) -> None:
        if self._state is _CLOSED:
            return
        if isinstance(reason, ConnectionClosedByClient):
            # pika closes each channel before the connection: its callbacks see that.
            reason = ChannelClosedByClient(reason.reply_code, reason.reply_text)
        self._state = _CLOSED
        self._consumer_tags.clear()
        self._cancelled.clear()
        self.connection._channels.pop(self.channel_number, None)
        for callback in list(self._close_callbacks):
            self.connection._invoke(callback, self, reason)

    def _open_impl(self) -> Channel:
        if self._state is not _OPEN or self._impl is None:
            raise ChannelWrongStateError(f"channel {self.channel_number} is {self._state}")
        return self._impl

    @property
    def is_open(self) -> bool:
        """``True`` while the channel is open."""
        return self._state is _OPEN

    @property
    def is_opening(self) -> bool:
        """``True`` until the broker has opened it."""
        return self._state is _OPENING

    @property
    def is_closing(self) -> bool:
        """``True`` while it closes."""
        return self._state is _CLOSING

    @property
    def is_closed(self) -> bool:
        """``True`` once it is closed."""
        return self._state is _CLOSED

    @property
    def consumer_tags(self) -> list[str]:
        """The tags of this channel's active consumers."""
        return list(self._consumer_tags)

    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Close the channel; its close callbacks get ``ChannelClosedByClient``.

        :raises ChannelWrongStateError: if it is closing or closed.
        """
        _check_close_arguments(reply_code, reply_text)
        if self._state is _OPENING:
            self._state = _CLOSING
            self._close_requested = (reply_code, reply_text)
            return
        impl = self._open_impl()
        self._state = _CLOSING
        # As pika: what was asked before goes out first, then Channel.Close.
        impl.close(reply_code, reply_text, drain=True).addErrback(lambda f: None)

    # -- callbacks ---------------------------------------------------------------

    def add_on_close_callback(
        self, callback: Callable[[CallbackChannel, BaseException], object]
    ) -> None:
        """Call ``callback(channel, error)`` when the channel closes."""
        _check_required(callback, "callback")
        self._close_callbacks.append(callback)

    def add_on_cancel_callback(self, callback: Callable[[Any], object]) -> None:
        """Call ``callback(method_frame)`` when the broker cancels a consumer."""
        _check_required(callback, "callback")
        self._cancel_callbacks.append(callback)

    def add_on_return_callback(self, callback: Callback) -> None:
        """Call ``callback(channel, method, properties, body)`` for each returned
        message (``Basic.Return``)."""
        _check_required(callback, "callback")
        self._return_callbacks.append(callback)

    def add_on_flow_callback(self, callback: Callable[[Any], object]) -> None:
        """Call ``callback(method_frame)`` when the broker sends ``Channel.Flow``."""
        _check_required(callback, "callback")
        self._flow_callbacks.append(callback)

    def _returned(self, _: Channel, method: spec.Method, properties: Any, body: bytes) -> None:
        for callback in list(self._return_callbacks):
            self.connection._invoke(callback, self, method, properties, body)

    def _cancelled_by_broker(self, frame: Any) -> None:
        tag = frame.method.consumer_tag
        if tag in self._consumer_tags:
            self._consumer_tags.remove(tag)
        for callback in list(self._cancel_callbacks):
            self.connection._invoke(callback, frame)

    def _flowed(self, active: bool) -> None:
        frame = MethodFrame(self.channel_number, spec.Channel.Flow(active))
        for callback in list(self._flow_callbacks):
            self.connection._invoke(callback, frame)

    def _complete(self, d: Deferred[Any], callback: Callable[[Any], object] | None) -> None:
        self.connection._complete(d, callback)

    # -- consuming ----------------------------------------------------------------

    def basic_consume(
        self,
        queue: str,
        on_message_callback: Callback,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, Any] | None = None,
        callback: Callable[[Any], object] | None = None,
    ) -> str:
        """Start a consumer: ``on_message_callback(channel, method, properties, body)``
        for each delivery; ``callback(method_frame)`` on ``Basic.ConsumeOk``.

        :returns: the consumer tag (made up here when not given, as pika does).
        """
        _check_required(on_message_callback, "on_message_callback")
        _check_callback(callback)
        impl = self._open_impl()
        if consumer_tag is None:
            consumer_tag = f"ctag{self.channel_number}.{uuid.uuid4().hex}"
        failed = self.connection._callback_failed
        tag = consumer_tag
        cancelled = self._cancelled

        def delivered(_: Channel, method: Any, properties: Any, body: bytes) -> None:
            if cancelled and tag in cancelled and not auto_ack:
                # As pika: a cancelled consumer sees nothing more; what it would have
                # had goes back to the queue. (An auto-acked message, which the broker
                # has forgotten, still reaches the callback: pika drops it.)
                if impl.is_open:
                    impl.basic_reject(method.delivery_tag, True)
                return
            try:  # _invoke, inlined: this runs once per message
                on_message_callback(self, method, properties, body)
            except Exception as e:
                failed(e)

        d = impl.basic_consume(queue, delivered, auto_ack, exclusive, consumer_tag, arguments)
        self._consumer_tags.append(consumer_tag)

        def refused(failure: Failure) -> Failure:
            if consumer_tag in self._consumer_tags:
                self._consumer_tags.remove(consumer_tag)
            return failure

        ok = MethodFrame(self.channel_number, spec.Basic.ConsumeOk(consumer_tag))
        d.addCallbacks(lambda _: ok, refused)
        self._complete(d, callback)
        return consumer_tag

    def basic_cancel(
        self, consumer_tag: str = "", callback: Callable[[Any], object] | None = None
    ) -> None:
        """Cancel a consumer; ``callback(method_frame)`` on ``Basic.CancelOk``, after
        which the tag leaves ``consumer_tags``. As in pika, the consumer's callback gets
        nothing more from now on: deliveries already on their way are rejected with
        requeue -- except for an ``auto_ack`` consumer, whose messages the broker has
        already forgotten: those still reach its callback (pika drops them). An unknown
        or already cancelled tag is ignored (logged)."""
        _check_callback(callback)
        impl = self._open_impl()
        if consumer_tag not in self._consumer_tags or consumer_tag in self._cancelled:
            _log.warn(
                "basic_cancel of a consumer unknown or already cancelled: {tag!r}",
                tag=consumer_tag,
            )
            return
        self._cancelled.add(consumer_tag)
        d = impl.basic_cancel(consumer_tag)

        def forget(result: object) -> object:
            if consumer_tag in self._consumer_tags:
                self._consumer_tags.remove(consumer_tag)
            self._cancelled.discard(consumer_tag)
            return result

        self._complete(d, callback)
        d.addBoth(forget)

    def basic_get(self, queue: str, callback: Callback, auto_ack: bool = False) -> None:
        """Fetch one message: ``callback(channel, method, properties, body)``, or
        nothing when the queue is empty (as pika)."""
        _check_required(callback, "callback")
        d = self._open_impl().basic_get(queue, auto_ack)

        def got(message: ReceivedMessage | None) -> None:
            if message is not None:
                self.connection._invoke(
                    callback, self, message.method, message.properties, message.body
                )

        d.addCallbacks(got, self.connection._request_failed)

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Acknowledge deliveries."""
        self._open_impl().basic_ack(delivery_tag, multiple)

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Reject deliveries (``Basic.Nack``)."""
        self._open_impl().basic_nack(delivery_tag, multiple, requeue)

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        """Reject one delivery."""
        self._open_impl().basic_reject(delivery_tag, requeue)

    def basic_qos(
        self,
        prefetch_size: int = 0,
        prefetch_count: int = 0,
        global_qos: bool = False,
        callback: Callable[[Any], object] | None = None,
    ) -> None:
        """Set the prefetch window; ``callback(method_frame)`` on ``Basic.QosOk``."""
        _check_callback(callback)
        d = self._open_impl().basic_qos(prefetch_size, prefetch_count, global_qos)
        self._complete(d, callback)

    def basic_recover(
        self, requeue: bool = False, callback: Callable[[Any], object] | None = None
    ) -> None:
        """Redeliver unacknowledged messages; ``callback(method_frame)`` once done."""
        _check_callback(callback)
        self._complete(self._open_impl().basic_recover(requeue), callback)

    # -- publishing ---------------------------------------------------------------

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish a message. In confirm mode its ``Basic.Ack``/``Nack`` goes to the
        ``ack_nack_callback`` given to :meth:`confirm_delivery`."""
        d = self._open_impl().basic_publish(exchange, routing_key, body, properties, mandatory)
        if d is not PUBLISHED:
            d.addErrback(_drop)  # reported as a frame to ack_nack_callback

    def confirm_delivery(
        self,
        ack_nack_callback: Callable[[Any], object],
        callback: Callable[[Any], object] | None = None,
    ) -> None:
        """Turn on publisher confirms: ``ack_nack_callback(method_frame)`` with each
        ``Basic.Ack`` or ``Basic.Nack`` as the broker sends it (``delivery_tag``,
        ``multiple``); ``callback(method_frame)`` on ``Confirm.SelectOk``."""
        _check_required(ack_nack_callback, "ack_nack_callback")
        _check_callback(callback)
        impl = self._open_impl()
        callbacks = self._ack_nack_callbacks
        if not callbacks:
            invoke = self.connection._invoke

            def confirmed(frame: Any) -> None:
                for cb in list(callbacks):
                    invoke(cb, frame)

            impl.add_on_confirm_callback(confirmed)
        if ack_nack_callback not in callbacks:  # as pika: the same callback once
            callbacks.append(ack_nack_callback)
        # The frames go to ack_nack_callback as they come: nothing kept per publish.
        self._complete(impl.confirm_delivery(per_publish=False), callback)

    # -- exchanges, queues, transactions ------------------------------------------

    def exchange_declare(
        self,
        exchange: str,
        exchange_type: str | ExchangeType = ExchangeType.direct,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
        callback: Callable[[Any], object] | None = None,
    ) -> None:
        """Declare an exchange; ``callback(method_frame)`` on ``Exchange.DeclareOk``."""
        _check_callback(callback)
        d = self._open_impl().exchange_declare(
            exchange,
            exchange_type,
            passive,
            durable,
            auto_delete,
            internal,
            arguments,
            nowait=callback is None,
        )
        self._complete(d, callback)

    def exchange_delete(
        self,
        exchange: str | None = None,
        if_unused: bool = False,
        callback: Callable[[Any], object] | None = None,
    ) -> None:
        """Delete an exchange; ``callback(method_frame)`` on ``Exchange.DeleteOk``."""
        _check_callback(callback)
        self._complete(
            self._open_impl().exchange_delete(exchange, if_unused, nowait=callback is None),
            callback,
        )

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
        callback: Callable[[Any], object] | None = None,
    ) -> None:
        """Bind an exchange to another; ``callback(method_frame)`` on ``BindOk``."""
        _check_callback(callback)
        d = self._open_impl().exchange_bind(
            destination, source, routing_key, arguments, nowait=callback is None
        )
        self._complete(d, callback)

    def exchange_unbind(
        self,
        destination: str | None = None,
        source: str | None = None,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
        callback: Callable[[Any], object] | None = None,
    ) -> None:
        """Remove an exchange-to-exchange binding; ``callback(method_frame)`` once done."""
        _check_callback(callback)
        d = self._open_impl().exchange_unbind(
            destination, source, routing_key, arguments, nowait=callback is None
        )
        self._complete(d, callback)

    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        callback: Callable[[Any], object] | None = None,
    ) -> None:
        """Declare a queue (``''``: the broker names it); ``callback(method_frame)`` on
        ``Queue.DeclareOk`` (``.method.queue``, ``.message_count``…)."""
        _check_callback(callback)
        d = self._open_impl().queue_declare(
            queue, passive, durable, exclusive, auto_delete, arguments, nowait=callback is None
        )
        self._complete(d, callback)

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
        callback: Callable[[Any], object] | None = None,
    ) -> None:
        """Bind a queue (``routing_key`` defaults to the queue's name)."""
        _check_callback(callback)
        d = self._open_impl().queue_bind(
            queue, exchange, routing_key, arguments, nowait=callback is None
        )
        self._complete(d, callback)

    def queue_unbind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
        callback: Callable[[Any], object] | None = None,
    ) -> None:
        """Remove a queue binding (``routing_key`` defaults to the queue's name)."""
        _check_callback(callback)
        d = self._open_impl().queue_unbind(queue, exchange, routing_key, arguments)
        self._complete(d, callback)

    def queue_purge(self, queue: str, callback: Callable[[Any], object] | None = None) -> None:
        """Purge a queue; ``callback(method_frame)`` on ``Queue.PurgeOk``."""
        _check_callback(callback)
        self._complete(self._open_impl().queue_purge(queue, nowait=callback is None), callback)

    def queue_delete(
        self,
        queue: str,
        if_unused: bool = False,
        if_empty: bool = False,
        callback: Callable[[Any], object] | None = None,
    ) -> None:
        """Delete a queue; ``callback(method_frame)`` on ``Queue.DeleteOk``."""
        _check_callback(callback)
        self._complete(
            self._open_impl().queue_delete(queue, if_unused, if_empty, nowait=callback is None),
            callback,
        )

    def flow(self, active: bool, callback: Callable[[bool], object] | None = None) -> None:
        """``Channel.Flow``; ``callback(active)`` with the broker's answer (RabbitMQ
        refuses ``flow(False)`` by closing the connection)."""
        _check_callback(callback)
        d = self._open_impl().flow(active).addCallback(lambda frame: bool(frame.method.active))
        self._complete(d, callback)

    def tx_select(self, callback: Callable[[Any], object] | None = None) -> None:
        """Start transactions; ``callback(method_frame)`` on ``Tx.SelectOk``."""
        _check_callback(callback)
        self._complete(self._open_impl().tx_select(), callback)

    def tx_commit(self, callback: Callable[[Any], object] | None = None) -> None:
        """Commit; ``callback(method_frame)`` on ``Tx.CommitOk``."""
        _check_callback(callback)
        self._complete(self._open_impl().tx_commit(), callback)

    def tx_rollback(self, callback: Callable[[Any], object] | None = None) -> None:
        """Roll back; ``callback(method_frame)`` on ``Tx.RollbackOk``."""
        _check_callback(callback)
        self._complete(self._open_impl().tx_rollback(), callback)

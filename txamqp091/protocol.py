"""AMQPProtocol: one AMQP 0-9-1 connection as a Twisted protocol.

The protocol is the core every face of txamqp091 shares.  It reaches the world
only through its transport (``ITransport``) and a clock (``IReactorTime``); it
never opens sockets and never imports a reactor.

Rules, in the order the conversation happens:

* ``connectionMade`` writes the protocol header and starts the
  ``stack_timeout`` timer, which bounds the whole handshake.
* ``Connection.Start`` → ``StartOk`` (client properties, SASL mechanism);
  ``Secure`` → ``SecureOk``; ``Tune`` → ``TuneOk`` with pika's negotiation
  rules (:func:`negotiate`, :func:`negotiate_heartbeat`) → ``Open``;
  ``OpenOk`` fires :attr:`AMQPProtocol.ready`.
* Heartbeats (when negotiated to ``H`` > 0 seconds): a heartbeat frame is sent
  whenever nothing was sent for ``H / 2`` seconds; the peer is declared dead
  when nothing at all was received for two heartbeat intervals (``2 * H``), and
  the connection fails with :class:`~txamqp091.exceptions.AMQPHeartbeatTimeout`.
  (A broker that sends only when idle for ``H / 2`` can leave gaps close to
  ``H``; waiting ``2 * H`` never mistakes such a gap for a dead peer.)
* ``Connection.Blocked`` starts the ``blocked_connection_timeout`` timer;
  ``Unblocked`` stops it; expiry fails the connection with
  :class:`~txamqp091.exceptions.ConnectionBlockedTimeout`.
* A peer that violates the protocol (undecodable bytes, a frame out of order,
  a frame for an unknown channel) gets ``Connection.Close`` with the reply
  code of the error, and the connection fails with that error.
* Whatever ends the connection, every pending Deferred on every channel fails
  exactly once with the typed reason, and :meth:`AMQPProtocol.when_closed`
  fires with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp091 import codec, spec
from txamqp091.channel import _OPEN as _CHANNEL_OPEN
from txamqp091.channel import Channel
from txamqp091.exceptions import (
    AccessRefused,
    AMQPError,
    AMQPHeartbeatTimeout,
    AMQPTimeoutError,
    AMQPTLSError,
    AuthenticationError,
    ConnectionBlockedTimeout,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionOpenAborted,
    ConnectionWrongStateError,
    IncompatibleProtocolError,
    InvalidChannelNumber,
    MethodNotImplemented,
    NoFreeChannels,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    ProtocolSyntaxError,
    StreamLostError,
    UnexpectedFrameError,
    VirtualHostAccessRefused,
)
from txamqp091.handshake import (
    CLIENT_CAPABILITIES,
    client_properties,
    negotiate,
    negotiate_heartbeat,
)
from txamqp091.heartbeat import Heartbeat
from txamqp091.lifecycle import CLOSED, CLOSING, OPEN, Lifecycle
from txamqp091.parameters import ConnectionParameters, Parameters

__all__ = [
    "CLIENT_CAPABILITIES",
    "DEFAULT_RPC_TIMEOUT",
    "AMQPProtocol",
    "client_properties",
    "negotiate",
    "negotiate_heartbeat",
]

_log = Logger()

#: Default time, in seconds, a synchronous channel or connection RPC may take.
DEFAULT_RPC_TIMEOUT: Final = 30.0

_CONNECTION_CLASS: Final = spec.Connection.INDEX

# Connection states.
_INIT: Final = "init"
_HANDSHAKE: Final = "handshake"  # header sent, waiting for Start
_AUTH: Final = "auth"  # StartOk sent, waiting for Secure or Tune
_OPENING: Final = "opening"  # Open sent, waiting for OpenOk
_OPEN: Final = OPEN
_CLOSING: Final = CLOSING
_CLOSED: Final = CLOSED

#: Bytes held back during a dispatch before they are handed to the transport anyway.
_HOLD_LIMIT: Final = 256 * 1024

_ChannelCloseOk: Final = spec.Channel.CloseOk
_MethodFrame: Final = codec.MethodFrame
_HeaderFrame: Final = codec.HeaderFrame
_BodyFrame: Final = codec.BodyFrame

_CODEC_ERRORS: Final = (ProtocolSyntaxError, MethodNotImplemented, IncompatibleProtocolError)


@implementer(IPushProducer)
class AMQPProtocol(Lifecycle, Protocol):
    """One AMQP 0-9-1 connection, speaking through a Twisted transport.

    :param parameters: connection settings (credentials, vhost, tuning,
        timeouts); pika's :class:`~txamqp091.ConnectionParameters`.
    :param clock: the clock used for heartbeats and timeouts (the reactor,
        or a :class:`twisted.internet.task.Clock` in tests).
    :param rpc_timeout: seconds a synchronous RPC (``queue_declare``,
        ``channel()``, ``close()``…) may take before its Deferred fails with
        :class:`~txamqp091.exceptions.AMQPTimeoutError`; ``None`` waits forever.
    """

    def __init__(
        self,
        parameters: Parameters | None = None,
        clock: IReactorTime | None = None,
        *,
        rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
    ) -> None:
        if clock is None:
            raise TypeError("AMQPProtocol needs a clock (the reactor, or a task.Clock)")
        self.parameters: Parameters = (
            parameters if parameters is not None else ConnectionParameters()
        )
        self.clock: IReactorTime = clock
        self.rpc_timeout = rpc_timeout
        #: Fires with this protocol once ``Connection.OpenOk`` arrives, or
        #: fails with the typed reason the connection could not open.
        self.ready: Deferred[AMQPProtocol] = Deferred()
        #: The broker's ``server_properties`` from ``Connection.Start``.
        self.server_properties: dict[str, Any] = {}
        #: Negotiated limits (valid once open).
        self.channel_max = 0
        self.frame_max = spec.FRAME_MIN_SIZE
        self.heartbeat = 0
        #: Traffic counters.
        self.bytes_sent = 0
        self.bytes_received = 0
        self.frames_sent = 0
        self.frames_received = 0
        self._init_lifecycle(_INIT)
        self._decoder = codec.FrameDecoder(spec.FRAME_MIN_SIZE)
        self._channels: dict[int, Channel] = {}
        # Numbers of channels closed without the broker's CloseOk (timed out):
        # their late frames are dropped, and the number is not reused, until it comes.
        self._retired: set[int] = set()
        self._blocked_callbacks: list[Callable[[AMQPProtocol, spec.Method], object]] = []
        self._unblocked_callbacks: list[Callable[[AMQPProtocol, spec.Method], object]] = []
        self._pending_rpc: Deferred[spec.Method] | None = None
        self._pending_rpc_replies: tuple[type[spec.Method], ...] = ()
        self._stack_timer: IDelayedCall | None = None
        self._blocked_timer: IDelayedCall | None = None
        self._heartbeat: Heartbeat | None = None
        self._close_timer: IDelayedCall | None = None
        self.blocked = False
        self._paused = False
        self._writable_waiters: list[Deferred[None]] = []
        # While dataReceived dispatches frames, writes (acks, replies, publishes
        # made by callbacks) are collected here and written once at the end.
        self._out: list[bytes] | None = None
        self._out_bytes = 0
        self._producing = False
        self._dropped = False
        self._late_replies = 0

    # ------------------------------------------------------------------
    # Public state
    # ------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<AMQPProtocol {self._state} {self.parameters.host}:{self.parameters.port}>"

    @property
    def server_capabilities(self) -> dict[str, Any]:
        """The ``capabilities`` table of the broker's ``server_properties``."""
        caps = self.server_properties.get("capabilities")
        return caps if isinstance(caps, dict) else {}

    def _has_capability(self, name: str) -> bool:
        return bool(self.server_capabilities.get(name, False))

    @property
    def basic_nack_supported(self) -> bool:
        """Whether the broker supports ``Basic.Nack``."""
        return self._has_capability("basic.nack")

    @property
    def consumer_cancel_notify_supported(self) -> bool:
        """Whether the broker notifies consumers it cancels."""
        return self._has_capability("consumer_cancel_notify")

    @property
    def exchange_exchange_bindings_supported(self) -> bool:
        """Whether the broker supports exchange-to-exchange bindings."""
        return self._has_capability("exchange_exchange_bindings")

    @property
    def publisher_confirms_supported(self) -> bool:
        """Whether the broker supports publisher confirms."""
        return self._has_capability("publisher_confirms")

    @property
    def channels(self) -> dict[int, Channel]:
        """The open (or opening) channels by number; a copy."""
        return dict(self._channels)

    def add_on_connection_blocked_callback(
        self, callback: Callable[[AMQPProtocol, spec.Method], object]
    ) -> None:
        """Call ``callback(connection, Connection.Blocked)`` when the broker blocks us."""
        self._blocked_callbacks.append(callback)

    def add_on_connection_unblocked_callback(
        self, callback: Callable[[AMQPProtocol, spec.Method], object]
    ) -> None:
        """Call ``callback(connection, Connection.Unblocked)`` when the broker unblocks us."""
        self._unblocked_callbacks.append(callback)

    # ------------------------------------------------------------------
    # Operations
    # ------------------------------------------------------------------

    def channel(self, channel_number: int | None = None) -> Deferred[Channel]:
        """Open a channel.

        :param channel_number: a specific number in ``1 .. channel_max``, or
            ``None`` for the lowest free one.
        :returns: a Deferred firing with the open :class:`~txamqp091.channel.Channel`.
        """
        if self._state is not _OPEN:
            return fail(self._wrong_state("open a channel"))
        if channel_number is None:
            channel_number = self._free_channel_number()
            if channel_number is None:
                return fail(NoFreeChannels())
        elif isinstance(channel_number, bool) or not isinstance(channel_number, int):
            raise TypeError(f"channel_number must be an int or None, not {channel_number!r}")
        elif not 1 <= channel_number <= (self.channel_max or 65535):
            raise InvalidChannelNumber(channel_number)
        elif channel_number in self._channels or channel_number in self._retired:
            raise InvalidChannelNumber(f"channel {channel_number} is already in use")
        ch = Channel(self, channel_number)
        self._channels[channel_number] = ch
        return ch._open()

    def _free_channel_number(self) -> int | None:
        """The lowest channel number not in use, or ``None``."""
        channels, retired = self._channels, self._retired
        for n in range(1, (self.channel_max or 65535) + 1):
            if n not in channels and n not in retired:
                return n
        return None

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> Deferred[None]:
        """Close the connection, and every channel with it.

        Idempotent: while closing, or once closed, returns a Deferred that
        fires when the connection is gone.  Closing before the handshake ends
        aborts it (:attr:`ready` fails with
        :class:`~txamqp091.exceptions.ConnectionOpenAborted`).

        :param reply_code: the code sent in ``Connection.Close``.
        :param reply_text: the text sent in ``Connection.Close``.
        :returns: a Deferred that fires once the close handshake has ended
            and the transport is closed.
        """
        if isinstance(reply_code, bool) or not isinstance(reply_code, int):
            raise TypeError(f"reply_code must be an int, not {reply_code!r}")
        if not isinstance(reply_text, str):
            raise TypeError(f"reply_text must be a str, not {reply_text!r}")
        done = self.when_closed().addCallback(lambda _: None)
        if self._state is _OPEN:
            self._state = _CLOSING
            self._reason = ConnectionClosedByClient(reply_code, reply_text)
            self._fail_channels(self._reason)
            self._send_method(0, spec.Connection.Close(reply_code, reply_text, 0, 0))
            self._close_timer = self._call_later(
                self.rpc_timeout or DEFAULT_RPC_TIMEOUT, self._close_timed_out
            )
        elif self._state in (_INIT, _HANDSHAKE, _AUTH, _OPENING):
            self._abort(ConnectionOpenAborted(reply_code, reply_text))
        return done

    def _close_timed_out(self) -> None:
        self._close_timer = None
        if self._dropped and not callable(getattr(self.transport, "abortConnection", None)):
            # Dropped once already and the transport cannot abort: give up on it.
            self.connectionLost(Failure(self._reason or StreamLostError()))  # type: ignore[no-untyped-call]
            return
        self._drop(abort=True)

    def update_secret(self, new_secret: str, reason: str) -> Deferred[spec.Method]:
        """Replace the credentials' secret (e.g. an OAuth 2 token) on a live connection.

        :param new_secret: the new secret.
        :param reason: a reason, logged by the broker.
        :returns: a Deferred firing with ``Connection.UpdateSecretOk``.
        """
        if not isinstance(new_secret, str | bytes):
            raise TypeError(f"new_secret must be str or bytes, not {new_secret!r}")
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, not {reason!r}")
        if self._state is not _OPEN:
            return fail(self._wrong_state("update the secret"))
        if self._pending_rpc is not None:
            return fail(ConnectionWrongStateError("an update_secret is already in progress"))
        secret = new_secret.encode() if isinstance(new_secret, str) else new_secret
        d: Deferred[spec.Method] = Deferred()
        self._pending_rpc = d
        self._pending_rpc_replies = (spec.Connection.UpdateSecretOk,)
        self._send_method(0, spec.Connection.UpdateSecret(secret, reason))
        timer = self._call_later(self.rpc_timeout, lambda: self._update_secret_timed_out(d))
        if timer is not None:
            d.addBoth(_cancel_timer, timer)
        return d

    def _update_secret_timed_out(self, d: Deferred[spec.Method]) -> None:
        if self._pending_rpc is d:
            self._pending_rpc = None
            self._late_replies += 1  # the UpdateSecretOk may still come: drop it then
            d.errback(AMQPTimeoutError(f"no UpdateSecretOk within {self.rpc_timeout} s"))

    @property
    def writable(self) -> bool:
        """Whether publishing may go on now: the broker has not blocked the
        connection and the transport has not paused us (see :meth:`when_writable`,
        which waits for it)."""
        return not self._paused and not self.blocked

    def when_writable(self) -> Deferred[None]:
        """A Deferred that fires when publishing may go on.

        That is when the transport's buffer has drained (Twisted paused us as
        its producer) and the broker has not blocked the connection.  A fast
        publisher yields this between batches to keep memory bounded.

        :returns: an already-fired Deferred when nothing holds us back.
        """
        if self._state is _CLOSED:
            assert self._reason is not None
            return fail(self._reason)
        if self._out:
            # Writes held back during a dispatch: hand them to the transport now
            # so its buffer (and so its pausing of us) accounts for them.
            held, self._out = self._out, []
            self._out_bytes = 0
            assert self.transport is not None
            self.transport.writeSequence(held)
        if not self._paused and not self.blocked:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._writable_waiters.append(d)
        return d

    def _wake_writers(self) -> None:
        if self._paused or self.blocked or not self._writable_waiters:
            return
        waiters, self._writable_waiters = self._writable_waiters, []
        for d in waiters:
            d.callback(None)

    # IPushProducer: the transport pauses us when its buffer is full.
    def pauseProducing(self) -> None:
        """Called by the transport when its write buffer is full."""
        self._paused = True

    def resumeProducing(self) -> None:
        """Called by the transport when its write buffer has drained."""
        self._paused = False
        self._wake_writers()

    def stopProducing(self) -> None:
        """Called by the transport when it is closing."""
        self._paused = True

    # ------------------------------------------------------------------
    # Writing
    # ------------------------------------------------------------------

    def _write(self, data: bytes, frames: int = 1) -> None:
        self.bytes_sent += len(data)
        self.frames_sent += frames
        out = self._out
        if out is not None:
            out.append(data)
            self._out_bytes += len(data)
            if self._out_bytes > _HOLD_LIMIT:
                self._out = []
                self._out_bytes = 0
                assert self.transport is not None
                self.transport.writeSequence(out)
        else:
            assert self.transport is not None
            self.transport.write(data)

    def _flush(self) -> None:
        """Write what was held back while incoming frames were dispatched."""
        out = self._out
        self._out = None
        self._out_bytes = 0
        if out and self.transport is not None:
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                self.transport.writeSequence(out)

    def _send_method(self, channel_number: int, method: spec.Method) -> None:
        self._write(codec.encode_method_frame(channel_number, method))

    # ------------------------------------------------------------------
    # Twisted Protocol
    # ------------------------------------------------------------------

    def connectionMade(self) -> None:
        """Send the protocol header and start the handshake timer."""
        self._state = _HANDSHAKE
        assert self.transport is not None
        try:
            self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
            self._producing = True
        except (AttributeError, RuntimeError):
            pass  # a transport without producer support, or one already registered
        self._write(codec.PROTOCOL_HEADER, 0)
        self._stack_timer = self._call_later(self.parameters.stack_timeout, self._stack_timed_out)

    def dataReceived(self, data: bytes) -> None:
        """Decode frames and dispatch them to the connection or its channels."""
        if self._dropped:
            return  # closing the transport: nothing more is read
        self.bytes_received += len(data)
        if self._heartbeat is not None:
            self._heartbeat.received()
        try:
            frames = self._decoder.feed(data)
        except _CODEC_ERRORS as exc:
            if self._state is _HANDSHAKE and self.frames_received == 0:
                # Not one frame yet: the server does not speak AMQP (e.g. HTTP).
                self._abort(IncompatibleProtocolError(f"the server does not speak AMQP: {exc}"))
                return
            self._violation(exc)
            return
        self.frames_received += len(frames)
        self._out = []
        try:
            self._dispatch(frames)
        finally:
            self._flush()

    def _dispatch(self, frames: list[codec.Frame]) -> None:
        channels = self._channels
        count = len(frames)
        i = 0
        while i < count:
            frame = frames[i]
            i += 1
            number = frame.channel_number
            if not number:
                self._on_connection_frame(frame)
                if self._dropped:
                    return
                continue
            ch = channels.get(number)
            if ch is None:
                if number in self._retired:
                    if type(frame) is _MethodFrame and type(frame.method) is _ChannelCloseOk:
                        self._retired.discard(number)
                    continue
                if self._state is _CLOSING:
                    continue  # frames racing our Connection.Close
                self._violation(
                    UnexpectedFrameError(f"frame for channel {number}, which is not open")
                )
                return
            try:
                # Fast path: a whole one-body-frame message (Deliver, GetOk,
                # Return) arrived in this batch; skip the per-frame state machine.
                if type(frame) is _MethodFrame and i + 1 < count and frame.method.has_content:
                    header = frames[i]
                    body = frames[i + 1]
                    if (
                        type(header) is _HeaderFrame
                        and type(body) is _BodyFrame
                        and header.channel_number == number == body.channel_number
                        and 0 < header.body_size == len(body.fragment)
                        and ch._state is _CHANNEL_OPEN
                        and ch._content_method is None
                    ):
                        i += 2
                        ch._on_content(frame.method, header.properties, body.fragment)
                        if self._dropped:
                            return
                        continue
                ch._on_frame(frame)
            except (ProtocolSyntaxError, MethodNotImplemented) as exc:
                self._violation(exc)
                return
            if self._dropped:
                return

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Fail everything still pending with the typed reason."""
        if self._state is _CLOSED:
            return
        state = self._state
        self._state = _CLOSED
        exc = self._reason or self._reason_for_loss(state, reason)
        self._reason = exc
        for timer in (self._stack_timer, self._blocked_timer, self._close_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._stack_timer = self._blocked_timer = self._close_timer = None
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        self._fail_channels(exc)
        if self._pending_rpc is not None:
            d, self._pending_rpc = self._pending_rpc, None
            d.errback(exc)
        writers, self._writable_waiters = self._writable_waiters, []
        for writer in writers:
            writer.errback(exc)
        if not self.ready.called:
            self.ready.errback(exc)
        # The text, not the exception: a log buffer must not keep its traceback (and
        # so the application's frames) alive.
        if isinstance(exc, ConnectionClosedByClient):
            _log.debug("AMQP connection closed: {reason}", reason=repr(exc))
        else:
            _log.info("AMQP connection lost: {reason}", reason=repr(exc))
        self._announce_closed(exc)

    def _reason_for_loss(self, state: str, reason: Failure) -> Exception:
        text = reason.getErrorMessage()
        if _is_tls_failure(reason):
            return AMQPTLSError(text)
        if state is _AUTH:
            return ProbableAuthenticationError(text)
        if state is _OPENING:
            return ProbableAccessDeniedError(text)
        if isinstance(reason.value, AMQPError):
            return reason.value
        return StreamLostError(f"Transport indicated EOF: {text}" if text else "Stream lost")

    # ------------------------------------------------------------------
    # Ending the connection
    # ------------------------------------------------------------------

    def _fail_channels(self, exc: Exception) -> None:
        channels = list(self._channels.values())
        self._channels.clear()
        for ch in channels:
            ch._on_connection_closed(exc)

    def _abort(self, exc: Exception) -> None:
        """End the connection now with *exc* as its reason, without a close handshake.

        The transport is aborted, not closed gracefully: a peer that stopped
        reading (dead, or blocking us) would never drain our buffer.
        """
        if self._state is _CLOSED:
            return
        if self._reason is None:
            self._reason = exc
        self._drop(abort=True)

    def _drop(self, *, abort: bool = False) -> None:
        """Close the transport: gracefully (flushing what is buffered) or by aborting it.

        A graceful close is bounded: if the transport is not gone after
        ``rpc_timeout`` (10 s when unset), it is aborted.
        """
        self._flush()
        self._dropped = True
        if self._state is not _CLOSED:
            self._state = _CLOSING
            # Channels end now: nothing more may be written after our last frame.
            self._fail_channels(self._reason or StreamLostError("connection dropped"))
        transport = self.transport
        if transport is None:
            self.connectionLost(Failure(self._reason or StreamLostError()))  # type: ignore[no-untyped-call]
            return
        if self._producing:
            # A TLS transport only shuts down once its producer is gone.
            self._producing = False
            transport.unregisterProducer()  # type: ignore[attr-defined]
        if abort:
            abort_connection = getattr(transport, "abortConnection", None)
            if callable(abort_connection):
                abort_connection()
                return
        transport.loseConnection()
        # A transport with nothing buffered may have reported the loss already.
        if self._close_timer is None and self._state is not _CLOSED:
            self._close_timer = self._call_later(self.rpc_timeout or 10.0, self._close_timed_out)

    def _violation(self, exc: Exception) -> None:
        """The peer broke the protocol: send Connection.Close with its code and drop."""
        if self._state is _CLOSED:
            return
        code = getattr(exc, "reply_code", 502)
        _log.warn("Closing AMQP connection, peer violated the protocol: {exc!r}", exc=exc)
        if self._reason is None:
            self._reason = exc
        if self.transport is not None and self._state is not _INIT:
            text = f"{spec.REPLY_CODE_NAMES.get(code, 'ERROR')} - {exc}"[:255]
            self._send_method(0, spec.Connection.Close(code, text, 0, 0))
        self._drop()

    def fail(self, exc: Exception) -> None:
        """Drop the connection now, failing everything pending with *exc*.

        Faces and services use this (e.g. on a socket error they detect
        themselves).

        :param exc: the reason given to every pending Deferred.
        """
        self._abort(exc)

    # ------------------------------------------------------------------
    # Timers
    # ------------------------------------------------------------------

    def _call_later(self, delay: float | None, fn: Callable[[], None]) -> IDelayedCall | None:
        if delay is None or delay <= 0:
            return None
        return self.clock.callLater(delay, fn)

    def _stack_timed_out(self) -> None:
        self._stack_timer = None
        self._abort(
            AMQPTimeoutError(
                f"AMQP handshake did not finish within {self.parameters.stack_timeout} s"
            )
        )

    def _start_heartbeats(self) -> None:
        if self.heartbeat > 0:
            self._heartbeat = Heartbeat(
                self.clock,
                self.heartbeat,
                lambda: self.bytes_sent,
                lambda: self._write(codec.HEARTBEAT_FRAME),
                self._peer_silent,
            )

    def _peer_silent(self) -> None:
        self._abort(
            AMQPHeartbeatTimeout(
                f"No data from the broker for {2 * self.heartbeat} s "
                f"(two heartbeat timeouts of {self.heartbeat} s)"
            )
        )

    # ------------------------------------------------------------------
    # Connection-class frames
    # ------------------------------------------------------------------

    def _on_connection_frame(self, frame: codec.Frame) -> None:
        if type(frame) is codec.HeartbeatFrame:
            return
        if type(frame) is not codec.MethodFrame:
            self._violation(UnexpectedFrameError(f"{frame!r} on channel 0"))
            return
        method = frame.method
        if method.CLASS_ID != _CONNECTION_CLASS:
            self._violation(UnexpectedFrameError(f"{method.NAME} on channel 0"))
            return
        handler = self._handlers.get(type(method))
        if handler is None:
            self._violation(UnexpectedFrameError(f"unexpected {method.NAME} from the broker"))
            return
        handler(self, method)

    def _expect(self, state: str, method: spec.Method) -> bool:
        if self._state is state:
            return True
        if self._state is not _CLOSING:
            self._violation(UnexpectedFrameError(f"{method.NAME} in state {self._state}"))
        return False

    def _on_start(self, method: Any) -> None:
        if not self._expect(_HANDSHAKE, method):
            return
        if (method.version_major, method.version_minor) != (0, 9):
            self._abort(
                IncompatibleProtocolError(
                    f"broker speaks AMQP {method.version_major}-{method.version_minor}"
                )
            )
            return
        self.server_properties = dict(method.server_properties or {})
        credentials = self.parameters.credentials
        mechanism, response = credentials.response_for(method)
        if mechanism is None or response is None:
            offered = method.mechanisms
            self._abort(
                AuthenticationError(f"{credentials.mechanism} (the broker offers {offered!r})")
            )
            return
        self._state = _AUTH
        self._send_method(
            0,
            spec.Connection.StartOk(
                client_properties(self.parameters), mechanism, response, self.parameters.locale
            ),
        )

    def _on_secure(self, method: Any) -> None:
        if not self._expect(_AUTH, method):
            return
        self._send_method(0, spec.Connection.SecureOk(self.parameters.credentials.sasl_response()))

    def _on_tune(self, method: Any) -> None:
        if not self._expect(_AUTH, method):
            return
        params = self.parameters
        try:
            heartbeat = negotiate_heartbeat(self, params.heartbeat, method.heartbeat)
        except (TypeError, ValueError) as exc:
            self._abort(exc)
            return
        self.channel_max = negotiate(params.channel_max, method.channel_max) or 65535
        self.frame_max = negotiate(params.frame_max, method.frame_max)
        if self.frame_max == 0:
            self.frame_max = codec.FRAME_MAX_LIMIT
        self.frame_max = max(self.frame_max, spec.FRAME_MIN_SIZE)
        self.heartbeat = heartbeat
        self._decoder.frame_max = self.frame_max
        self._send_method(0, spec.Connection.TuneOk(self.channel_max, self.frame_max, heartbeat))
        self._state = _OPENING
        self._start_heartbeats()
        self._send_method(0, spec.Connection.Open(params.virtual_host))

    def _on_open_ok(self, method: Any) -> None:
        if not self._expect(_OPENING, method):
            return
        self._state = _OPEN
        if self._stack_timer is not None:
            self._stack_timer.cancel()
            self._stack_timer = None
        self.parameters.credentials.erase_credentials()
        self.ready.callback(self)

    def _on_close(self, method: Any) -> None:
        code, text = method.reply_code, method.reply_text
        exc: Exception
        if self._state is _AUTH and code == 403:
            exc = AccessRefused(code, text)
        elif self._state is _OPENING and code in (403, 530):
            exc = VirtualHostAccessRefused(code, text)
        else:
            exc = ConnectionClosedByBroker(code, text)
        if self._state is not _CLOSING or self._reason is None:
            self._reason = exc
        # else our own Close crossed the broker's: keep our reason, which the
        # channels have already failed with, so everything reports one cause.
        self._send_method(0, spec.Connection.CloseOk())
        self._state = _CLOSING
        self._drop()

    def _on_close_ok(self, method: Any) -> None:
        if self._state is not _CLOSING:
            self._violation(UnexpectedFrameError("Connection.CloseOk without Connection.Close"))
            return
        self._drop()

    def _on_blocked(self, method: Any) -> None:
        self.blocked = True
        timeout = self.parameters.blocked_connection_timeout
        if self._blocked_timer is None:
            self._blocked_timer = self._call_later(timeout, self._blocked_timed_out)
        self._run_callbacks(self._blocked_callbacks, method)

    def _on_unblocked(self, method: Any) -> None:
        self.blocked = False
        if self._blocked_timer is not None:
            self._blocked_timer.cancel()
            self._blocked_timer = None
        self._run_callbacks(self._unblocked_callbacks, method)
        self._wake_writers()

    def _blocked_timed_out(self) -> None:
        self._blocked_timer = None
        self._abort(
            ConnectionBlockedTimeout(
                "Blocked by the broker for longer than "
                f"blocked_connection_timeout={self.parameters.blocked_connection_timeout} s"
            )
        )

    def _on_update_secret_ok(self, method: Any) -> None:
        d = self._pending_rpc
        if d is None and self._late_replies:
            self._late_replies -= 1
            return
        if d is None or type(method) not in self._pending_rpc_replies:
            self._violation(UnexpectedFrameError(f"unexpected {method.NAME}"))
            return
        self._pending_rpc = None
        d.callback(method)

    def _run_callbacks(
        self, callbacks: list[Callable[[AMQPProtocol, spec.Method], object]], method: spec.Method
    ) -> None:
        for cb in list(callbacks):
            try:
                cb(self, method)
            except Exception:
                _log.failure("connection callback {cb!r} failed", cb=cb)

    _handlers: Final[dict[type[spec.Method], Callable[[AMQPProtocol, Any], None]]] = {
        spec.Connection.Start: _on_start,
        spec.Connection.Secure: _on_secure,
        spec.Connection.Tune: _on_tune,
        spec.Connection.OpenOk: _on_open_ok,
        spec.Connection.Close: _on_close,
        spec.Connection.CloseOk: _on_close_ok,
        spec.Connection.Blocked: _on_blocked,
        spec.Connection.Unblocked: _on_unblocked,
        spec.Connection.UpdateSecretOk: _on_update_secret_ok,
    }

    # ------------------------------------------------------------------
    # Helpers for channels
    # ------------------------------------------------------------------

    def _wrong_state(self, action: str) -> Exception:
        if self._state is _CLOSED and self._reason is not None:
            return self._reason
        return ConnectionWrongStateError(f"cannot {action}: the connection is {self._state}")

    def _forget_channel(self, channel_number: int) -> None:
        self._channels.pop(channel_number, None)

    def _retire_channel_number(self, channel_number: int) -> None:
        """Keep *channel_number* out of use until the broker's late Channel.CloseOk."""
        self._retired.add(channel_number)


def _cancel_timer(result: Any, timer: IDelayedCall) -> Any:
    """Cancel *timer* if it is still pending; pass *result* on."""
    if timer.active():
        timer.cancel()
    return result


def _is_tls_failure(reason: Failure) -> bool:
    try:
        from OpenSSL.SSL import Error as SSLError
    except ImportError:  # pragma: no cover - pyOpenSSL is a dependency
        return False
    return isinstance(reason.value, SSLError)

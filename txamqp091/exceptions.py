"""Exceptions raised by txamqp091.

The names and the inheritance tree follow :mod:`pika.exceptions` (pika 1.x) so
that code written as ``except pika.exceptions.AMQPConnectionError`` keeps
working after ``import txamqp091 as pika``.  The connection-workflow errors
that pika keeps in ``pika.adapters.utils.connection_workflow`` are defined
here as well.

Additions over pika:

* every exception that maps onto an AMQP 0-9-1 reply code carries a
  ``reply_code`` attribute (a class attribute, or an instance property for
  :class:`ConnectionClosed` and :class:`ChannelClosed`), so a protocol error
  can be turned into a ``Connection.Close`` without a lookup table;
* a few classes also derive from a builtin (:class:`ValueError`,
  :class:`TypeError`, :class:`TimeoutError`) where that describes the failure
  better; the pika base class is always kept first;
* :class:`AMQPTimeoutError` and :class:`AMQPTLSError` are new.

All codec errors accept a single human-readable message, and ``str(exc)``
returns that message unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AMQPChannelError",
    "AMQPConnectionError",
    "AMQPConnectionWorkflowAborted",
    "AMQPConnectionWorkflowFailed",
    "AMQPConnectionWorkflowWrongState",
    "AMQPConnectorAMQPHandshakeError",
    "AMQPConnectorAborted",
    "AMQPConnectorException",
    "AMQPConnectorPhaseErrorBase",
    "AMQPConnectorSocketConnectError",
    "AMQPConnectorStackTimeout",
    "AMQPConnectorTransportSetupError",
    "AMQPConnectorWrongState",
    "AMQPError",
    "AMQPHeartbeatTimeout",
    "AMQPTLSError",
    "AMQPTimeoutError",
    "AccessRefused",
    "AuthenticationError",
    "BodyTooLongError",
    "ChannelAlreadyClosing",
    "ChannelClosed",
    "ChannelClosedByBroker",
    "ChannelClosedByClient",
    "ChannelError",
    "ChannelWrongStateError",
    "ConnectionBlockedTimeout",
    "ConnectionClosed",
    "ConnectionClosedByBroker",
    "ConnectionClosedByClient",
    "ConnectionOpenAborted",
    "ConnectionRecovering",
    "ConnectionWrongStateError",
    "ConsumerCancelled",
    "DuplicateConsumerTag",
    "DuplicateGetOkCallback",
    "IncompatibleProtocolError",
    "InvalidChannelNumber",
    "InvalidFieldTypeException",
    "InvalidFrameError",
    "InvalidMaximumFrameSize",
    "InvalidMinimumFrameSize",
    "MethodNotImplemented",
    "NackError",
    "NoFreeChannels",
    "OutboxFull",
    "ProbableAccessDeniedError",
    "ProbableAuthenticationError",
    "ProtocolSyntaxError",
    "ProtocolVersionMismatch",
    "RecoveryError",
    "ReentrancyError",
    "ShortStringTooLong",
    "StreamLostError",
    "TransactionRolledBack",
    "UnconfirmedPublishError",
    "UnexpectedFrameError",
    "UnroutableError",
    "UnspportedAMQPFieldException",
    "UnsupportedAMQPFieldException",
    "VirtualHostAccessRefused",
]


def _detail(exc: BaseException) -> str:
    """Return the most useful textual detail carried by *exc*.

    :param exc: the exception being described.
    :returns: the single argument when there is exactly one, otherwise the
        ``repr`` of the whole argument tuple.
    """
    if len(exc.args) == 1:
        return str(exc.args[0])
    return repr(exc.args)


def _first_repr(exc: BaseException) -> str:
    """Return ``repr`` of the single argument of *exc*, or of all its arguments.

    :param exc: the exception being described.
    :returns: the text to embed in the exception's ``repr``.
    """
    if len(exc.args) == 1:
        return repr(exc.args[0])
    return repr(exc.args)


# ---------------------------------------------------------------------------
# Roots
# ---------------------------------------------------------------------------


class AMQPError(Exception):
    """Root of every AMQP-level error raised by this package."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}: An unspecified AMQP error has occurred; {self.args}"


class AMQPTimeoutError(AMQPError, TimeoutError):
    """An operation, or the connection handshake, did not finish in time.

    This is a txamqp091 addition.  It is both an :class:`AMQPError` and a
    builtin :class:`TimeoutError`, so either ``except`` clause catches it.
    """

    def __str__(self) -> str:
        # OSError renders two-argument instances as "[Errno x] y"; an AMQP
        # timeout has no errno, so fall back to the plain Exception rendering.
        return Exception.__str__(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {_detail(self)}"


# ---------------------------------------------------------------------------
# Connection errors
# ---------------------------------------------------------------------------


class AMQPConnectionError(AMQPError):
    """The connection failed to open, or was lost or closed."""

    def __repr__(self) -> str:
        if len(self.args) == 2:
            return f"{type(self).__name__}: ({self.args[0]}) {self.args[1]}"
        return f"{type(self).__name__}: {self.args}"


class ConnectionOpenAborted(AMQPConnectionError):
    """The client closed the connection before the handshake completed."""


class StreamLostError(AMQPConnectionError):
    """The underlying byte stream (TCP or TLS) was lost unexpectedly."""


class AMQPTLSError(AMQPConnectionError):
    """The TLS handshake failed or the peer certificate did not verify.

    This is a txamqp091 addition; pika reports these failures as generic
    connection errors.
    """


class IncompatibleProtocolError(AMQPConnectionError):
    """The server does not speak AMQP 0-9-1.

    Raised when the server answers our protocol header with a protocol header
    of its own (the AMQP way of saying "I support a different version"), or
    with bytes that are not AMQP at all.
    """

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}: The protocol returned by the server is not "
            f"supported: {self.args}"
        )


class AuthenticationError(AMQPConnectionError):
    """No SASL mechanism offered by the server suits the given credentials.

    The first argument is the name of the mechanism the client wanted.
    """

    def __repr__(self) -> str:
        mechanism = self.args[0] if self.args else None
        return (
            f"{type(self).__name__}: Server and client could not negotiate use of "
            f"the {mechanism} authentication mechanism"
        )


class ProbableAuthenticationError(AMQPConnectionError):
    """The server dropped the connection while authenticating.

    Brokers without the ``authentication_failure_close`` capability simply
    close the socket on bad credentials, so this is an inference.
    """

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}: Client was disconnected at a connection stage "
            f"indicating a probable authentication error: {self.args}"
        )


class ProbableAccessDeniedError(AMQPConnectionError):
    """The server dropped the connection while opening the virtual host.

    This usually means the user may not access the requested virtual host.
    """

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}: Client was disconnected at a connection stage "
            f"indicating a probable denial of access to the specified virtual host: "
            f"{self.args}"
        )


class NoFreeChannels(AMQPConnectionError):
    """Every channel number allowed by ``channel_max`` is in use."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}: The connection has run out of free channels"


class ConnectionWrongStateError(AMQPConnectionError):
    """The connection is not in a state that allows the requested operation."""

    def __repr__(self) -> str:
        if self.args:
            return super().__repr__()
        return (
            f"{type(self).__name__}: The connection is in wrong state for the requested operation."
        )


class _ClosedWithReply(Exception):
    """A close carrying ``(reply_code, reply_text)``; shared by connection and channel.

    :param reply_code: the AMQP reply code carried by the ``Close`` method.
    :param reply_text: the human-readable text carried by the ``Close`` method.
    """

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(int(reply_code), str(reply_text))

    def __repr__(self) -> str:
        return f"{type(self).__name__}: ({self.reply_code}) {self.reply_text!r}"

    @property
    def reply_code(self) -> int:
        """The AMQP reply code given with the close, e.g. ``404`` for ``NOT_FOUND``."""
        code: int = self.args[0]
        return code

    @property
    def reply_text(self) -> str:
        """The human-readable explanation sent with the reply code."""
        text: str = self.args[1]
        return text


class ConnectionClosed(_ClosedWithReply, AMQPConnectionError):
    """The connection was closed with ``Connection.Close``.

    :param reply_code: the AMQP reply code carried by ``Connection.Close``.
    :param reply_text: the human-readable text carried by ``Connection.Close``.
    """


class ConnectionClosedByBroker(ConnectionClosed):
    """The broker closed the connection with ``Connection.Close``."""


class AccessRefused(ConnectionClosedByBroker, ProbableAuthenticationError):
    """The broker refused the login (``Connection.Close`` 403 during authentication).

    RabbitMQ sends this to clients announcing the
    ``authentication_failure_close`` capability, as txamqp091 does.  It is
    both a :class:`ConnectionClosedByBroker` (what pika raises) and a
    :class:`ProbableAuthenticationError`.  This is a txamqp091 addition.
    """


class VirtualHostAccessRefused(ConnectionClosedByBroker, ProbableAccessDeniedError):
    """The broker refused to open the virtual host (``Connection.Close`` 530 or 403).

    Raised when the virtual host does not exist or the user may not use it.
    It is both a :class:`ConnectionClosedByBroker` and a
    :class:`ProbableAccessDeniedError`.  This is a txamqp091 addition.
    """


class ConnectionClosedByClient(ConnectionClosed):
    """The connection was closed because this client asked for it."""


class ConnectionBlockedTimeout(AMQPConnectionError):
    """``Connection.Unblocked`` did not arrive within the configured timeout.

    Relates to RabbitMQ's ``connection.blocked`` extension and the
    ``blocked_connection_timeout`` connection parameter.
    """


class AMQPHeartbeatTimeout(AMQPConnectionError):
    """The connection was dropped because the peer stopped sending heartbeats."""


# ---------------------------------------------------------------------------
# Channel errors
# ---------------------------------------------------------------------------


class AMQPChannelError(AMQPError):
    """Base class for errors that concern a single channel."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.args!r}"


class ChannelWrongStateError(AMQPChannelError):
    """The channel is not in a state that allows the requested operation."""


class ChannelClosed(_ClosedWithReply, AMQPChannelError):
    """The channel was closed, by the client or by the broker.

    :param reply_code: the AMQP reply code carried by ``Channel.Close``.
    :param reply_text: the human-readable text carried by ``Channel.Close``.
    """


class ChannelClosedByBroker(ChannelClosed):
    """The broker closed the channel with ``Channel.Close``."""


class ChannelClosedByClient(ChannelClosed):
    """The channel was closed because this client asked for it.

    Delivered once ``Channel.CloseOk`` arrives from the broker.
    """


class ChannelAlreadyClosing(AMQPChannelError):
    """The channel is already closing (kept for pika 0.x compatibility)."""


class DuplicateConsumerTag(AMQPChannelError):
    """The consumer tag is already in use on this channel."""

    def __repr__(self) -> str:
        tag = self.args[0] if self.args else None
        return (
            f"{type(self).__name__}: The consumer tag specified already exists for "
            f"this channel: {tag}"
        )


class ConsumerCancelled(AMQPChannelError):
    """The broker cancelled the consumer (``Basic.Cancel`` from the server)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}: Server cancelled consumer"


class UnroutableError(AMQPChannelError):
    """One or more published messages were returned with ``Basic.Return``.

    In publisher-confirm mode this is raised once the broker acknowledges the
    publish; when the broker nacks instead, :class:`NackError` is raised.

    :param messages: the returned messages.
    """

    def __init__(self, messages: Sequence[Any]) -> None:
        super().__init__(f"{len(messages)} unroutable message(s) returned")
        #: The returned messages, as given to the constructor.
        self.messages = messages

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}: {len(self.messages)} unroutable messages returned by broker"
        )


class NackError(AMQPChannelError):
    """One or more messages published in confirm mode were nacked by the broker.

    :param messages: the rejected messages.
    """

    def __init__(self, messages: Sequence[Any]) -> None:
        super().__init__(f"{len(messages)} message(s) NACKed")
        #: The nacked messages, as given to the constructor.
        self.messages = messages

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {len(self.messages)} messages NACKed by broker"


class UnconfirmedPublishError(AMQPError):
    """A publish in confirm mode was neither acked nor nacked: the channel or connection
    closed first.  The broker may or may not have the message.

    This is a txamqp091 addition.  The error is raised as a subclass of *both*
    this class and the class of the error that closed the channel or
    connection (e.g. :class:`StreamLostError`), so ``except StreamLostError``
    still catches it, while ``except UnconfirmedPublishError`` gets the
    message back to publish again (which may duplicate it).
    """

    #: The message as it was given to ``basic_publish`` (a ``PublishedMessage``).
    message: Any
    #: The error that closed the channel or connection.
    reason: BaseException

    @staticmethod
    def wrap(reason: BaseException, message: Any) -> UnconfirmedPublishError:
        """The error for one unconfirmed publish ended by *reason*.

        :param reason: the error that closed the channel or connection.
        :param message: what was published.
        :returns: an instance of both this class and ``type(reason)``, with
            ``reason``'s arguments.
        """
        cls = _UNCONFIRMED_CLASSES.get(type(reason))
        if cls is None:
            cls = type(
                f"Unconfirmed{type(reason).__name__}",
                (UnconfirmedPublishError, type(reason)),
                {"__module__": __name__, "__qualname__": f"Unconfirmed{type(reason).__name__}"},
            )
            _UNCONFIRMED_CLASSES[type(reason)] = cls
        error: UnconfirmedPublishError = cls.__new__(cls)
        error.args = reason.args
        error.message = message
        error.reason = reason
        error.__cause__ = reason
        return error

    def __repr__(self) -> str:
        return f"{type(self).__name__}: unconfirmed publish ({getattr(self, 'reason', None)!r})"

    def __str__(self) -> str:
        return f"publish not confirmed: {getattr(self, 'reason', self.args)}"


_UNCONFIRMED_CLASSES: dict[type[BaseException], type[UnconfirmedPublishError]] = {}


class ConnectionRecovering(AMQPConnectionError):
    """The service is reconnecting: nothing was sent.

    This is a txamqp091 addition, raised by the channels of
    :class:`~txamqp091.service.AMQPClientService` while the connection is down
    or its recovery has not finished.  Retry once
    :meth:`~txamqp091.service.AMQPClientService.whenConnected` fires.
    """


class RecoveryError(AMQPConnectionError):
    """Recovering a channel, an entity or a consumer on a new connection failed.

    This is a txamqp091 addition.  :class:`~txamqp091.service.AMQPClientService`
    reports it in a :class:`~txamqp091.recovery.RecoveryFailed` event, drops the
    connection and tries again after its backoff; ``whenConnected(failAfterFailures=n)``
    may fail with it.
    """

    def __init__(self, entity: Any = None, error: BaseException | None = None) -> None:
        super().__init__(f"recovery of {entity!r} failed: {error!r}")
        #: What could not be recovered: a topology record, or ``"channel N"``.
        self.entity = entity
        #: The error the broker or the connection gave.
        self.error = error


class TransactionRolledBack(AMQPChannelError):
    """A transaction was cut off by a disconnection; the broker rolled it back.

    This is a txamqp091 addition, raised by ``tx_commit`` on a channel of
    :class:`~txamqp091.service.AMQPClientService` after a reconnection: nothing
    of the transaction was committed; publish and ack its messages again.
    """


class OutboxFull(AMQPError):
    """The service's outbox is full: the message was not kept.

    This is a txamqp091 addition: the bounded outbox of
    :class:`~txamqp091.service.AMQPClientService` holds at most its configured
    number of messages and bytes.  A confirmed publish cut off by a
    disconnection while the outbox is full fails with its
    :class:`UnconfirmedPublishError` instead, as without an outbox.
    """


class InvalidChannelNumber(AMQPError):
    """A channel number outside ``1 .. channel_max`` was requested."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}: An invalid channel number has been specified: {_detail(self)}"
        )


# ---------------------------------------------------------------------------
# Protocol / codec errors
# ---------------------------------------------------------------------------


class ProtocolSyntaxError(AMQPError):
    """Bytes received from the peer do not form valid AMQP 0-9-1.

    Corresponds to reply code 502 (``SYNTAX_ERROR``) unless a subclass says
    otherwise.
    """

    #: AMQP reply code to use when closing the connection for this error.
    reply_code: int = 502

    def __repr__(self) -> str:
        if self.args:
            return f"{type(self).__name__}: {_detail(self)}"
        return f"{type(self).__name__}: An unspecified protocol syntax error occurred"


class UnexpectedFrameError(ProtocolSyntaxError):
    """A frame arrived that is not allowed at this point of the conversation.

    Corresponds to reply code 505 (``UNEXPECTED_FRAME``).
    """

    #: AMQP reply code to use when closing the connection for this error.
    reply_code: int = 505

    def __repr__(self) -> str:
        return f"{type(self).__name__}: Received a frame out of sequence: {_first_repr(self)}"


class ProtocolVersionMismatch(ProtocolSyntaxError):
    """The protocol versions of the two peers do not match.

    Takes the two versions as arguments, as pika does, or a single message.
    """

    def __repr__(self) -> str:
        if len(self.args) == 2:
            return (
                f"{type(self).__name__}: Protocol versions did not match: "
                f"{self.args[0]!r} vs {self.args[1]!r}"
            )
        return f"{type(self).__name__}: {_detail(self)}"


class BodyTooLongError(ProtocolSyntaxError, ValueError):
    """A message body is longer than allowed or than announced.

    Raised when more body bytes arrive than the content header declared, and
    when asked to encode a body that cannot be represented.  Corresponds to
    reply code 501 (``FRAME_ERROR``).  Accepts either a single message or,
    as pika does, the received and expected sizes.
    """

    #: AMQP reply code to use when closing the connection for this error.
    reply_code: int = 501

    def __repr__(self) -> str:
        if len(self.args) == 2 and all(isinstance(a, int) for a in self.args):
            return (
                f"{type(self).__name__}: Received too many bytes for a message "
                f"delivery: Received {self.args[0]}, expected {self.args[1]}"
            )
        return f"{type(self).__name__}: {_detail(self)}"


class InvalidFrameError(ProtocolSyntaxError):
    """A frame could not be decoded (bad type, size or frame-end byte).

    Corresponds to reply code 501 (``FRAME_ERROR``).
    """

    #: AMQP reply code to use when closing the connection for this error.
    reply_code: int = 501

    def __repr__(self) -> str:
        return f"{type(self).__name__}: Invalid frame received: {_first_repr(self)}"


class InvalidFieldTypeException(ProtocolSyntaxError):
    """A field table or array contains an unknown field-type tag.

    Corresponds to reply code 502 (``SYNTAX_ERROR``).
    """

    #: AMQP reply code to use when closing the connection for this error.
    reply_code: int = 502

    def __repr__(self) -> str:
        return f"{type(self).__name__}: Unsupported field kind {_detail(self)}"


class UnsupportedAMQPFieldException(ProtocolSyntaxError, TypeError):
    """A Python value of an unsupported type was given for a field table.

    pika raises it with ``(pieces, value)``; txamqp091 raises it with a single
    message.  Both forms are accepted.  Corresponds to reply code 502.
    """

    #: AMQP reply code to use when closing the connection for this error.
    reply_code: int = 502

    def __repr__(self) -> str:
        if len(self.args) == 2:
            return f"{type(self).__name__}: Unsupported field kind {type(self.args[1])}"
        return f"{type(self).__name__}: Unsupported field kind {_detail(self)}"


#: Misspelled alias kept because old pika releases exported this name.
UnspportedAMQPFieldException = UnsupportedAMQPFieldException


class InvalidMinimumFrameSize(ProtocolSyntaxError):
    """A frame size below the AMQP minimum of 4096 bytes was requested.

    Kept for pika 0.x compatibility; parameter validation raises
    :class:`ValueError` instead.
    """

    def __repr__(self) -> str:
        return f"{type(self).__name__}: AMQP Minimum Frame Size is 4096 Bytes"


class InvalidMaximumFrameSize(ProtocolSyntaxError):
    """A frame size above the supported maximum of 131072 bytes was requested.

    Kept for pika 0.x compatibility; parameter validation raises
    :class:`ValueError` instead.
    """

    def __repr__(self) -> str:
        return f"{type(self).__name__}: AMQP Maximum Frame Size is 131072 Bytes"


class MethodNotImplemented(AMQPError):
    """A method frame names a class/method id pair that is not known.

    Corresponds to reply code 540 (``NOT_IMPLEMENTED``).
    """

    #: AMQP reply code to use when closing the connection for this error.
    reply_code: int = 540


class ShortStringTooLong(AMQPError, ValueError):
    """A value for a ``shortstr`` field encodes to more than 255 bytes."""

    def __repr__(self) -> str:
        value = str(self.args[0]) if self.args else ""
        return (
            f"{type(self).__name__}: AMQP Short String can contain up to 255 bytes: {value:.300}"
        )


# ---------------------------------------------------------------------------
# Miscellaneous (not AMQPError subclasses, as in pika)
# ---------------------------------------------------------------------------


class ChannelError(Exception):
    """A generic misuse of a channel object."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}: An unspecified error occurred with the Channel"


class ReentrancyError(Exception):
    """The call would recurse into code that does not support reentrancy."""


class DuplicateGetOkCallback(ChannelError):
    """``basic_get`` was called again before the previous one completed."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}: basic_get can only be called again after the "
            f"callback for the previous basic_get is executed"
        )


# ---------------------------------------------------------------------------
# Connection workflow errors (pika.adapters.utils.connection_workflow)
# ---------------------------------------------------------------------------


class AMQPConnectorException(Exception):
    """Base class of the connection-workflow errors."""


class AMQPConnectorStackTimeout(AMQPConnectorException):
    """Bringing up the whole TCP/[TLS]/AMQP stack took too long."""


class AMQPConnectorAborted(AMQPConnectorException):
    """A single connection attempt was aborted by the caller."""


class AMQPConnectorWrongState(AMQPConnectorException):
    """A connector operation was requested in the wrong state.

    For example, aborting an attempt that has already reported its outcome.
    """


class AMQPConnectorPhaseErrorBase(AMQPConnectorException):
    """Wraps the error that ended one phase of a connection attempt.

    :param exception: the error raised during the phase.
    :param args: further arguments for :class:`Exception`.
    """

    def __init__(self, exception: BaseException, *args: Any) -> None:
        super().__init__(*args)
        #: The error raised during the phase.
        self.exception = exception

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.exception!r}"


class AMQPConnectorSocketConnectError(AMQPConnectorPhaseErrorBase):
    """The TCP connection to the server could not be established."""


class AMQPConnectorTransportSetupError(AMQPConnectorPhaseErrorBase):
    """The transport (e.g. TLS) failed after TCP connected but before AMQP."""


class AMQPConnectorAMQPHandshakeError(AMQPConnectorPhaseErrorBase):
    """The AMQP handshake failed."""


class AMQPConnectionWorkflowAborted(AMQPConnectorException):
    """The whole multi-attempt connection workflow was aborted."""


class AMQPConnectionWorkflowWrongState(AMQPConnectorException):
    """A workflow operation was requested in the wrong state."""


class AMQPConnectionWorkflowFailed(AMQPConnectorException):
    """Every connection attempt of the workflow failed.

    :param exceptions: the errors collected from the individual attempts, in
        the order they happened.
    :param args: further arguments for :class:`Exception`.
    """

    def __init__(self, exceptions: Sequence[BaseException], *args: Any) -> None:
        super().__init__(*args)
        #: The errors from each attempt, oldest first.
        self.exceptions: tuple[BaseException, ...] = tuple(exceptions)

    def __repr__(self) -> str:
        last = self.exceptions[-1] if self.exceptions else None
        first = self.exceptions[0] if len(self.exceptions) > 1 else None
        return (
            f"{type(self).__name__}: {len(self.exceptions)} exceptions in all; "
            f"last exception - {last!r}; first exception - {first!r}"
        )

"""Tests for :mod:`txamqp091.exceptions`."""

from __future__ import annotations

import inspect
from typing import Any

import pika.exceptions
from pika.adapters.utils import connection_workflow as pika_workflow
from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import exceptions as exc

#: Workflow exception names that pika keeps in connection_workflow.
_WORKFLOW_NAMES = [
    "AMQPConnectorException",
    "AMQPConnectorStackTimeout",
    "AMQPConnectorAborted",
    "AMQPConnectorWrongState",
    "AMQPConnectorPhaseErrorBase",
    "AMQPConnectorSocketConnectError",
    "AMQPConnectorTransportSetupError",
    "AMQPConnectorAMQPHandshakeError",
    "AMQPConnectionWorkflowAborted",
    "AMQPConnectionWorkflowWrongState",
    "AMQPConnectionWorkflowFailed",
]


def _pika_classes() -> dict[str, type[BaseException]]:
    """Return every exception class pika defines, by name."""
    found: dict[str, type[BaseException]] = {}
    for name, value in vars(pika.exceptions).items():
        if inspect.isclass(value) and issubclass(value, BaseException):
            if value.__module__ == pika.exceptions.__name__:
                found[name] = value
    for name in _WORKFLOW_NAMES:
        found[name] = getattr(pika_workflow, name)
    return found


def _our_classes() -> dict[str, type[BaseException]]:
    """Return every public exception class txamqp091.exceptions defines, by name."""
    return {
        name: value
        for name, value in vars(exc).items()
        if not name.startswith("_")
        and inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == exc.__name__
    }


class PikaParityTests(SynchronousTestCase):
    """The exception names and hierarchy match pika's."""

    def test_every_pika_name_exists(self) -> None:
        """Every exception class of pika 1.x (including the workflow errors) has
        a counterpart of the same name."""
        missing = sorted(set(_pika_classes()) - set(vars(exc)))
        self.assertEqual(missing, [])

    def test_pika_ancestry_preserved(self) -> None:
        """Whenever a pika exception derives from another pika exception, ours
        derives from our counterpart, so ``except`` clauses behave the same."""
        pika_classes = _pika_classes()
        pika_names = {cls: name for name, cls in pika_classes.items()}
        for name, pika_cls in pika_classes.items():
            ours = getattr(exc, name)
            for ancestor in pika_cls.__mro__[1:]:
                if ancestor in pika_names:
                    self.assertTrue(
                        issubclass(ours, getattr(exc, pika_names[ancestor])),
                        f"{name} should derive from {pika_names[ancestor]}",
                    )

    def test_non_amqp_roots_kept(self) -> None:
        """ChannelError, ReentrancyError and the workflow errors are not
        AMQPError subclasses, exactly as in pika."""
        for cls in (exc.ChannelError, exc.ReentrancyError, exc.AMQPConnectorException):
            self.assertFalse(issubclass(cls, exc.AMQPError), cls)
        self.assertTrue(issubclass(exc.DuplicateGetOkCallback, exc.ChannelError))

    def test_legacy_names(self) -> None:
        """The pika 0.x names InvalidMinimumFrameSize, InvalidMaximumFrameSize,
        ChannelAlreadyClosing and the misspelled UnspportedAMQPFieldException
        exist; the misspelling is an alias of the correct name."""
        self.assertIs(exc.UnspportedAMQPFieldException, exc.UnsupportedAMQPFieldException)
        self.assertTrue(issubclass(exc.InvalidMinimumFrameSize, exc.ProtocolSyntaxError))
        self.assertTrue(issubclass(exc.InvalidMaximumFrameSize, exc.ProtocolSyntaxError))
        self.assertTrue(issubclass(exc.ChannelAlreadyClosing, exc.AMQPChannelError))

    def test_all_is_complete(self) -> None:
        """``__all__`` lists exactly the public exception classes and alias."""
        expected = set(_our_classes()) | {"UnspportedAMQPFieldException"}
        self.assertEqual(set(exc.__all__), expected)
        for name in exc.__all__:
            self.assertTrue(hasattr(exc, name), name)

    def test_every_class_documented(self) -> None:
        """Every exception class has its own docstring."""
        for name, cls in _our_classes().items():
            self.assertTrue(cls.__dict__.get("__doc__"), name)


class HierarchyTests(SynchronousTestCase):
    """Specific inheritance relations the rest of the package relies on."""

    def test_connection_closed_chain(self) -> None:
        """ConnectionClosedByBroker/ByClient are ConnectionClosed, which is an
        AMQPConnectionError, which is an AMQPError."""
        for cls in (exc.ConnectionClosedByBroker, exc.ConnectionClosedByClient):
            self.assertTrue(issubclass(cls, exc.ConnectionClosed))
        self.assertTrue(issubclass(exc.ConnectionClosed, exc.AMQPConnectionError))
        self.assertTrue(issubclass(exc.AMQPConnectionError, exc.AMQPError))

    def test_channel_closed_chain(self) -> None:
        """ChannelClosedByBroker/ByClient are ChannelClosed, an AMQPChannelError."""
        for cls in (exc.ChannelClosedByBroker, exc.ChannelClosedByClient):
            self.assertTrue(issubclass(cls, exc.ChannelClosed))
        self.assertTrue(issubclass(exc.ChannelClosed, exc.AMQPChannelError))
        self.assertFalse(issubclass(exc.ChannelClosed, exc.AMQPConnectionError))

    def test_connection_error_children(self) -> None:
        """All connection-level failures, including the new AMQPTLSError, are
        AMQPConnectionError subclasses."""
        for cls in (
            exc.ConnectionOpenAborted,
            exc.StreamLostError,
            exc.IncompatibleProtocolError,
            exc.AuthenticationError,
            exc.ProbableAuthenticationError,
            exc.ProbableAccessDeniedError,
            exc.NoFreeChannels,
            exc.ConnectionWrongStateError,
            exc.ConnectionBlockedTimeout,
            exc.AMQPHeartbeatTimeout,
            exc.AMQPTLSError,
        ):
            self.assertTrue(issubclass(cls, exc.AMQPConnectionError), cls)

    def test_codec_errors(self) -> None:
        """The codec error classes sit under ProtocolSyntaxError (or AMQPError)
        with the builtin mixins the codec contract promises."""
        for cls in (
            exc.InvalidFrameError,
            exc.UnexpectedFrameError,
            exc.InvalidFieldTypeException,
            exc.UnsupportedAMQPFieldException,
            exc.BodyTooLongError,
            exc.ProtocolVersionMismatch,
        ):
            self.assertTrue(issubclass(cls, exc.ProtocolSyntaxError), cls)
        self.assertTrue(issubclass(exc.ProtocolSyntaxError, exc.AMQPError))
        self.assertTrue(issubclass(exc.MethodNotImplemented, exc.AMQPError))
        self.assertTrue(issubclass(exc.UnsupportedAMQPFieldException, TypeError))
        self.assertTrue(issubclass(exc.BodyTooLongError, ValueError))
        self.assertTrue(issubclass(exc.ShortStringTooLong, exc.AMQPError))
        self.assertTrue(issubclass(exc.ShortStringTooLong, ValueError))

    def test_no_unrequested_builtin_mixins(self) -> None:
        """Classes without a documented mixin do not accidentally become
        ValueError/TypeError."""
        for cls in (exc.InvalidFrameError, exc.UnexpectedFrameError, exc.MethodNotImplemented):
            self.assertFalse(issubclass(cls, (ValueError, TypeError)), cls)

    def test_timeout_error(self) -> None:
        """AMQPTimeoutError is caught both as AMQPError and as TimeoutError."""
        self.assertTrue(issubclass(exc.AMQPTimeoutError, exc.AMQPError))
        self.assertTrue(issubclass(exc.AMQPTimeoutError, TimeoutError))
        try:
            raise exc.AMQPTimeoutError("handshake took too long")
        except TimeoutError as caught:
            self.assertEqual(str(caught), "handshake took too long")

    def test_timeout_error_str_two_args(self) -> None:
        """A two-argument AMQPTimeoutError renders like a plain Exception, not
        as an ``[Errno ...]`` OSError."""
        error = exc.AMQPTimeoutError(5, "waiting for Channel.OpenOk")
        self.assertEqual(str(error), str(Exception(5, "waiting for Channel.OpenOk")))
        self.assertIn("AMQPTimeoutError", repr(error))

    def test_workflow_errors(self) -> None:
        """All connection-workflow errors derive from AMQPConnectorException,
        and the phase errors from AMQPConnectorPhaseErrorBase."""
        for name in _WORKFLOW_NAMES:
            self.assertTrue(issubclass(getattr(exc, name), exc.AMQPConnectorException))
        for cls in (
            exc.AMQPConnectorSocketConnectError,
            exc.AMQPConnectorTransportSetupError,
            exc.AMQPConnectorAMQPHandshakeError,
        ):
            self.assertTrue(issubclass(cls, exc.AMQPConnectorPhaseErrorBase))


class ReplyCodeTests(SynchronousTestCase):
    """The ``reply_code`` attributes used to build ``Connection.Close``."""

    def test_codec_reply_codes(self) -> None:
        """Codec errors carry the AMQP reply codes of the codec contract:
        syntax-error 502, frame-error 501, unexpected-frame 505,
        not-implemented 540."""
        expected: dict[type[Any], int] = {
            exc.ProtocolSyntaxError: 502,
            exc.InvalidFrameError: 501,
            exc.UnexpectedFrameError: 505,
            exc.InvalidFieldTypeException: 502,
            exc.UnsupportedAMQPFieldException: 502,
            exc.MethodNotImplemented: 540,
            exc.BodyTooLongError: 501,
        }
        for cls, code in expected.items():
            self.assertEqual(cls.reply_code, code, cls)
            self.assertEqual(cls("message").reply_code, code, cls)

    def test_closed_reply_codes_from_constructor(self) -> None:
        """ConnectionClosed and ChannelClosed take reply_code and reply_text
        from the constructor, coercing them to int and str."""
        for cls in (
            exc.ConnectionClosed,
            exc.ConnectionClosedByBroker,
            exc.ConnectionClosedByClient,
            exc.AccessRefused,
            exc.VirtualHostAccessRefused,
            exc.ChannelClosed,
            exc.ChannelClosedByBroker,
            exc.ChannelClosedByClient,
        ):
            error = cls(320, "CONNECTION_FORCED")
            self.assertEqual(error.reply_code, 320)
            self.assertEqual(error.reply_text, "CONNECTION_FORCED")
            self.assertEqual(error.args, (320, "CONNECTION_FORCED"))
            coerced = cls("404", b"x")  # type: ignore[arg-type]
            self.assertEqual(coerced.reply_code, 404)
            self.assertIsInstance(coerced.reply_text, str)


class MessageTests(SynchronousTestCase):
    """Construction, ``str()`` and ``repr()``."""

    def test_single_message_str(self) -> None:
        """Every codec error accepts one human-readable message and ``str()``
        returns it unchanged."""
        message = "frame-end byte is 0x00, expected 0xCE"
        for cls in (
            exc.ProtocolSyntaxError,
            exc.InvalidFrameError,
            exc.UnexpectedFrameError,
            exc.InvalidFieldTypeException,
            exc.UnsupportedAMQPFieldException,
            exc.MethodNotImplemented,
            exc.ShortStringTooLong,
            exc.IncompatibleProtocolError,
            exc.BodyTooLongError,
            exc.ProtocolVersionMismatch,
        ):
            error = cls(message)
            self.assertEqual(str(error), message, cls)
            self.assertIn(type(error).__name__, repr(error))

    def test_codec_repr_includes_message(self) -> None:
        """The repr of a codec error constructed with a message shows it."""
        for cls in (
            exc.ProtocolSyntaxError,
            exc.InvalidFrameError,
            exc.UnexpectedFrameError,
            exc.InvalidFieldTypeException,
            exc.UnsupportedAMQPFieldException,
            exc.BodyTooLongError,
        ):
            self.assertIn("bad bytes", repr(cls("bad bytes")), cls)

    def test_repr_never_raises(self) -> None:
        """``repr()`` works for every class with no arguments or one argument
        (pika's reprs index ``args`` and crash on empty ones)."""
        special = {
            exc.ConnectionClosed,
            exc.ConnectionClosedByBroker,
            exc.ConnectionClosedByClient,
            exc.AccessRefused,
            exc.VirtualHostAccessRefused,
            exc.ChannelClosed,
            exc.ChannelClosedByBroker,
            exc.ChannelClosedByClient,
            exc.UnroutableError,
            exc.NackError,
            exc.AMQPConnectorPhaseErrorBase,
            exc.AMQPConnectorSocketConnectError,
            exc.AMQPConnectorTransportSetupError,
            exc.AMQPConnectorAMQPHandshakeError,
            exc.AMQPConnectionWorkflowFailed,
        }
        for cls in _our_classes().values():
            if cls in special:
                continue
            self.assertIn(cls.__name__, repr(cls()))
            self.assertIn(cls.__name__, repr(cls("detail")))

    def test_repr_matches_pika(self) -> None:
        """For the arguments pika itself uses, our repr equals pika's."""
        cases: list[tuple[str, tuple[object, ...]]] = [
            ("AMQPError", ("x",)),
            ("AMQPConnectionError", (1, "two")),
            ("AMQPConnectionError", ("only",)),
            ("ConnectionClosedByBroker", (320, "CONNECTION_FORCED")),
            ("ConnectionClosedByClient", (200, "Normal shutdown")),
            ("ChannelClosedByBroker", (404, "NOT_FOUND - no queue 'q'")),
            ("ChannelClosedByClient", (200, "Normal shutdown")),
            ("AuthenticationError", ("PLAIN",)),
            ("ProbableAuthenticationError", ("detail",)),
            ("ProbableAccessDeniedError", ("detail",)),
            ("NoFreeChannels", ()),
            ("ConnectionWrongStateError", ()),
            ("ConnectionWrongStateError", ("closed",)),
            ("IncompatibleProtocolError", ("AMQP\x00\x00\x09\x01",)),
            ("AMQPChannelError", ("x",)),
            ("DuplicateConsumerTag", ("ctag1",)),
            ("ConsumerCancelled", ()),
            ("InvalidChannelNumber", (70000,)),
            ("UnexpectedFrameError", ("frame",)),
            ("ProtocolVersionMismatch", ((0, 9, 1), (0, 8))),
            ("BodyTooLongError", (20, 10)),
            ("InvalidFrameError", ("frame",)),
            ("InvalidFieldTypeException", ("Z",)),
            ("UnsupportedAMQPFieldException", (["pieces"], object)),
            ("ShortStringTooLong", ("x" * 300,)),
            ("ChannelError", ()),
            ("DuplicateGetOkCallback", ()),
        ]
        for name, args in cases:
            ours = getattr(exc, name)(*args)
            theirs = getattr(pika.exceptions, name)(*args)
            self.assertEqual(repr(ours), repr(theirs), name)
            self.assertEqual(str(ours), str(theirs), name)

    def test_closed_repr(self) -> None:
        """ConnectionClosed/ChannelClosed reprs show code and quoted text."""
        self.assertEqual(
            repr(exc.ChannelClosedByBroker(406, "PRECONDITION_FAILED")),
            "ChannelClosedByBroker: (406) 'PRECONDITION_FAILED'",
        )

    def test_unroutable_error(self) -> None:
        """UnroutableError keeps the returned messages and counts them."""
        messages = ["m1", "m2"]
        error = exc.UnroutableError(messages)
        self.assertIs(error.messages, messages)
        self.assertEqual(str(error), "2 unroutable message(s) returned")
        self.assertEqual(repr(error), "UnroutableError: 2 unroutable messages returned by broker")
        self.assertEqual(str(error), str(pika.exceptions.UnroutableError(messages)))

    def test_nack_error(self) -> None:
        """NackError keeps the nacked messages and counts them."""
        messages = ["m1"]
        error = exc.NackError(messages)
        self.assertIs(error.messages, messages)
        self.assertEqual(str(error), "1 message(s) NACKed")
        self.assertEqual(str(error), str(pika.exceptions.NackError(messages)))
        self.assertIn("1", repr(error))

    def test_phase_error(self) -> None:
        """Connector phase errors keep the wrapped exception and show it in
        their repr."""
        inner = OSError("refused")
        error = exc.AMQPConnectorSocketConnectError(inner, "extra")
        self.assertIs(error.exception, inner)
        self.assertEqual(error.args, ("extra",))
        self.assertEqual(repr(error), f"AMQPConnectorSocketConnectError: {inner!r}")

    def test_workflow_failed(self) -> None:
        """AMQPConnectionWorkflowFailed stores the attempts' errors as a tuple
        and its repr names the first and last; an empty list is tolerated."""
        first, last = OSError("a"), OSError("b")
        error = exc.AMQPConnectionWorkflowFailed([first, last])
        self.assertEqual(error.exceptions, (first, last))
        theirs = pika_workflow.AMQPConnectionWorkflowFailed([first, last])
        self.assertEqual(repr(error), repr(theirs))
        self.assertIn("0 exceptions", repr(exc.AMQPConnectionWorkflowFailed([])))

    def test_unsupported_field_two_args(self) -> None:
        """UnsupportedAMQPFieldException raised pika-style with (pieces,
        value) names the value's type in its repr."""
        error = exc.UnsupportedAMQPFieldException([], 1.5j)
        self.assertIn("complex", repr(error))

    def test_tls_error(self) -> None:
        """AMQPTLSError carries its message and is caught as a connection
        error."""
        try:
            raise exc.AMQPTLSError("certificate verify failed")
        except exc.AMQPConnectionError as caught:
            self.assertEqual(str(caught), "certificate verify failed")

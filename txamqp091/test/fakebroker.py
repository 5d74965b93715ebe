"""An in-memory "server side" for unit tests of :class:`~txamqp091.protocol.AMQPProtocol`.

:class:`FakeBroker` sits on the other end of a
:class:`~twisted.internet.testing.StringTransport`: it decodes what the client
wrote (the 8-byte protocol header first, then frames, with
:class:`~txamqp091.codec.FrameDecoder`) and feeds server frames to the
protocol, whole or one byte at a time (the idea of h11's ``ConnectionPair``) to
catch buffering bugs.  Time is a :class:`~twisted.internet.task.Clock`.

It plays a well-behaved broker only when asked: every frame is sent by the
test (or by :meth:`FakeBroker.handshake` / :meth:`FakeBroker.open_channel`),
so tests can also play a misbehaving one.

Like a real Twisted transport, a :class:`StringTransport` on which the
protocol called ``loseConnection`` stops delivering data; unlike a real one it
never calls ``connectionLost`` by itself.  :meth:`FakeBroker.deliver_loss`
does (and :meth:`FakeBroker.send` / :meth:`FakeBroker.advance` call it
unless told not to), with ``ConnectionAborted`` after ``abortConnection`` and
``ConnectionDone`` after ``loseConnection``.

:class:`AMQPTestCase` is the base of the protocol and channel test cases: it
builds a protocol and its broker, and :meth:`AMQPTestCase.finish` ends every
test by closing the connection and checking that no timer is left behind.
"""

from __future__ import annotations

import struct
from typing import Any, TypeVar

from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import FailTest, SynchronousTestCase

from txamqp091 import codec, spec
from txamqp091.channel import Channel
from txamqp091.parameters import ConnectionParameters
from txamqp091.protocol import AMQPProtocol

__all__ = [
    "RABBITMQ_CAPABILITIES",
    "AMQPTestCase",
    "FakeBroker",
    "raw_frame",
]

M = TypeVar("M", bound=spec.Method)

#: The capabilities a recent RabbitMQ announces in ``Connection.Start``.
RABBITMQ_CAPABILITIES: dict[str, Any] = {
    "authentication_failure_close": True,
    "basic.nack": True,
    "connection.blocked": True,
    "consumer_cancel_notify": True,
    "direct_reply_to": True,
    "exchange_exchange_bindings": True,
    "per_consumer_qos": True,
    "publisher_confirms": True,
}

_FRAME_HEADER = struct.Struct(">BHI")


def raw_frame(frame_type: int, channel: int, payload: bytes, end: int = codec.FRAME_END) -> bytes:
    """Build a frame by hand, possibly a broken one.

    :param frame_type: the frame type octet (1 method, 2 header, 3 body, 8 heartbeat).
    :param channel: the channel number.
    :param payload: the payload; its length is written in the frame header.
    :param end: the frame-end octet (``0xCE`` for a valid frame).
    """
    return _FRAME_HEADER.pack(frame_type, channel, len(payload)) + payload + bytes([end])


class FakeBroker:
    """The server end of a :class:`StringTransport` connected to an :class:`AMQPProtocol`.

    :param protocol: the client protocol under test.
    :param clock: the clock the protocol was given.
    :param transport: the transport to connect the protocol to (a new
        :class:`StringTransport` by default).
    :param chunk_size: feed server bytes in pieces of this size (``1`` for
        one byte at a time), or whole when ``None``.
    """

    def __init__(
        self,
        protocol: AMQPProtocol,
        clock: Clock,
        transport: StringTransport | None = None,
        *,
        chunk_size: int | None = None,
    ) -> None:
        self.protocol = protocol
        self.clock = clock
        self.transport = transport if transport is not None else StringTransport()
        self.chunk_size = chunk_size
        #: The protocol header the client sent (``None`` until 8 bytes arrived).
        self.header: bytes | None = None
        #: Every frame the client wrote, in order (never emptied).
        self.written: list[codec.Frame] = []
        self._pending: list[codec.Frame] = []
        self._decoder = codec.FrameDecoder(codec.FRAME_MAX_LIMIT)
        self._offset = 0
        self._head = b""
        #: How many bytes were fed to the protocol.
        self.bytes_fed = 0
        #: Whether the protocol was connected to the transport.
        self.connected = False
        #: Whether ``connectionLost`` was delivered to the protocol.
        self.lost = False

    # ------------------------------------------------------------------
    # What the client wrote

    def connect(self) -> None:
        """Connect the protocol to the transport (it writes the protocol header)."""
        self.connected = True
        self.protocol.makeConnection(self.transport)

    def _pump(self) -> None:
        data = self.transport.value()[self._offset :]
        self._offset += len(data)
        if self.header is None:
            need = 8 - len(self._head)
            self._head += data[:need]
            data = data[need:]
            if len(self._head) == 8:
                self.header = self._head
        if data:
            frames = self._decoder.feed(data)
            self.written.extend(frames)
            self._pending.extend(frames)

    def read(self) -> list[codec.Frame]:
        """Every frame the client wrote since the last read."""
        self._pump()
        frames, self._pending = self._pending, []
        return frames

    def next_frame(self) -> codec.Frame:
        """The oldest frame not read yet.

        :raises FailTest: if the client wrote no new frame.
        """
        self._pump()
        if not self._pending:
            raise FailTest("the client wrote no frame")
        return self._pending.pop(0)

    def expect(self, kind: type[M], channel: int = 0) -> M:
        """Take the next frame, which must be method *kind* on *channel*.

        :returns: the method.
        :raises FailTest: otherwise.
        """
        frame = self.next_frame()
        if not isinstance(frame, codec.MethodFrame):
            raise FailTest(f"expected {kind.NAME} on channel {channel}, got {frame!r}")
        if type(frame.method) is not kind or frame.channel_number != channel:
            raise FailTest(f"expected {kind.NAME} on channel {channel}, got {frame!r}")
        method: M = frame.method
        return method

    def expect_message(self, channel: int) -> tuple[spec.Method, spec.BasicProperties, bytes]:
        """Take a content-carrying method, its header and its body frames.

        :returns: ``(method, properties, body)``.
        """
        frame = self.next_frame()
        if not isinstance(frame, codec.MethodFrame) or frame.channel_number != channel:
            raise FailTest(f"expected a content method on channel {channel}, got {frame!r}")
        header = self.next_frame()
        if not isinstance(header, codec.HeaderFrame) or header.channel_number != channel:
            raise FailTest(f"expected a content header on channel {channel}, got {header!r}")
        parts = []
        size = 0
        while size < header.body_size:
            body = self.next_frame()
            if not isinstance(body, codec.BodyFrame) or body.channel_number != channel:
                raise FailTest(f"expected a body frame on channel {channel}, got {body!r}")
            parts.append(body.fragment)
            size += len(body.fragment)
        return frame.method, header.properties, b"".join(parts)

    def expect_nothing(self) -> None:
        """:raises FailTest: if the client wrote a frame not read yet."""
        self._pump()
        if self._pending:
            raise FailTest(f"the client wrote {self._pending!r}")

    # ------------------------------------------------------------------
    # What the broker sends

    def send(self, data: bytes, *, deliver_loss: bool = True) -> None:
        """Feed *data* to the protocol (in ``chunk_size`` pieces).

        Like a real transport, stops once the protocol lost the connection.

        :param deliver_loss: then call :meth:`deliver_loss`.
        """
        step = self.chunk_size or len(data) or 1
        for start in range(0, len(data), step):
            if self.transport.disconnecting or self.lost:
                break
            chunk = data[start : start + step]
            self.bytes_fed += len(chunk)
            self.protocol.dataReceived(chunk)
        if deliver_loss:
            self.deliver_loss()

    def send_method(self, channel: int, method: spec.Method, *, deliver_loss: bool = True) -> None:
        """Send one method frame."""
        self.send(codec.encode_method_frame(channel, method), deliver_loss=deliver_loss)

    def send_message(
        self,
        channel: int,
        method: spec.Method,
        body: bytes,
        properties: spec.BasicProperties | None = None,
        frame_max: int | None = None,
    ) -> None:
        """Send a content-carrying method with its header and body frames.

        :param frame_max: split the body for this ``frame_max`` (default: the
            protocol's negotiated one).
        """
        limit = frame_max if frame_max is not None else self.protocol.frame_max
        self.send(codec.encode_message(channel, method, properties, body, limit))

    def send_heartbeat(self) -> None:
        """Send a heartbeat frame."""
        self.send(codec.HEARTBEAT_FRAME)

    # ------------------------------------------------------------------
    # Transport and time

    def deliver_loss(self) -> None:
        """Call ``connectionLost`` if the protocol dropped the transport.

        ``ConnectionAborted`` after ``abortConnection``, ``ConnectionDone``
        after ``loseConnection``.
        """
        if self.lost or not self.transport.disconnecting:
            return
        self.lost = True
        if self.transport.disconnected:  # StringTransport.abortConnection sets it
            self.protocol.connectionLost(Failure(ConnectionAborted()))
        else:
            self.protocol.connectionLost(Failure(ConnectionDone()))

    def lose(self, reason: Exception | None = None) -> None:
        """The broker (or the network) drops the connection.

        :param reason: the exception given to ``connectionLost``
            (``ConnectionLost`` by default).
        """
        if self.lost:
            return
        self.lost = True
        self.protocol.connectionLost(Failure(reason if reason is not None else ConnectionLost()))

    def advance(self, seconds: float, *, deliver_loss: bool = True) -> None:
        """Advance the clock, then :meth:`deliver_loss` unless told not to."""
        self.clock.advance(seconds)
        if deliver_loss:
            self.deliver_loss()

    # ------------------------------------------------------------------
    # Conversations

    def start(
        self,
        *,
        server_properties: dict[str, Any] | None = None,
        mechanisms: bytes = b"PLAIN AMQPLAIN",
        locales: bytes = b"en_US",
        version: tuple[int, int] = (0, 9),
    ) -> None:
        """Check the protocol header, then send ``Connection.Start``."""
        self._pump()
        if self.header != codec.PROTOCOL_HEADER:
            raise FailTest(f"the client sent the protocol header {self.header!r}")
        if server_properties is None:
            server_properties = {
                "product": "RabbitMQ",
                "version": "3.13.0",
                "platform": "Erlang/OTP 26",
                "capabilities": dict(RABBITMQ_CAPABILITIES),
            }
        self.send_method(
            0,
            spec.Connection.Start(version[0], version[1], server_properties, mechanisms, locales),
        )

    def handshake(
        self,
        *,
        server_properties: dict[str, Any] | None = None,
        mechanisms: bytes = b"PLAIN AMQPLAIN",
        secure_challenges: tuple[bytes, ...] = (),
        channel_max: int = 2047,
        frame_max: int = 131072,
        heartbeat: int = 0,
    ) -> AMQPProtocol:
        """Drive Start → StartOk → (Secure → SecureOk)* → Tune → TuneOk, Open → OpenOk.

        Connects the protocol first if the test did not.

        :param secure_challenges: send a ``Connection.Secure`` with each, and
            expect a ``SecureOk`` for each.
        :returns: the open protocol.
        :raises FailTest: if the client deviates or the protocol is not open.
        """
        if not self.connected:
            self.connect()
        self.start(server_properties=server_properties, mechanisms=mechanisms)
        self.expect(spec.Connection.StartOk)
        for challenge in secure_challenges:
            self.send_method(0, spec.Connection.Secure(challenge))
            self.expect(spec.Connection.SecureOk)
        self.send_method(0, spec.Connection.Tune(channel_max, frame_max, heartbeat))
        self.expect(spec.Connection.TuneOk)
        self.expect(spec.Connection.Open)
        self.send_method(0, spec.Connection.OpenOk())
        if not self.protocol.is_open:
            raise FailTest(f"the protocol did not open: {self.protocol!r}")
        return self.protocol

    def open_channel(self, channel_number: int | None = None) -> Channel:
        """Open a channel: ``Channel.Open`` → ``Channel.OpenOk``.

        Heartbeat frames the client wrote before ``Channel.Open`` are skipped.

        :returns: the open channel.
        """
        d = self.protocol.channel(channel_number)
        results: list[object] = []
        d.addBoth(results.append)
        frame = self.next_frame()
        while isinstance(frame, codec.HeartbeatFrame):  # timing noise, not the subject
            frame = self.next_frame()
        if not (isinstance(frame, codec.MethodFrame) and type(frame.method) is spec.Channel.Open):
            raise FailTest(f"expected Channel.Open, got {frame!r}")
        number = frame.channel_number
        if channel_number is not None and number != channel_number:
            raise FailTest(f"Channel.Open on channel {number}, not {channel_number}")
        self.send_method(number, spec.Channel.OpenOk())
        if not results or not isinstance(results[0], Channel):
            raise FailTest(f"channel() gave {results!r}")
        return results[0]

    def shutdown(self) -> None:
        """End the connection whatever its state, so that no timer is left.

        An open connection is closed by the client (``Connection.Close`` →
        ``CloseOk``, the polite way); a closing one gets its ``CloseOk``;
        otherwise the transport is lost.
        """
        self.deliver_loss()
        if self.lost:
            return
        protocol = self.protocol
        if not protocol.ready.called:
            # The test left the handshake unfinished: ready fails because of
            # this shutdown, which is not what the test is about.
            protocol.ready.addErrback(lambda _: None)
        if protocol.is_open:
            protocol.close()
        if protocol.is_closing and not self.transport.disconnecting:
            self.send_method(0, spec.Connection.CloseOk())
        self.deliver_loss()
        self.lose(ConnectionDone())


class AMQPTestCase(SynchronousTestCase):
    """Base of the protocol and channel test cases.

    Subclasses set :attr:`chunk_size` to feed server bytes in pieces.
    """

    #: Feed server bytes in pieces of this size (``None``: whole).
    chunk_size: int | None = None

    def setUp(self) -> None:
        self.clock = Clock()

    def make_broker(
        self, *, rpc_timeout: float | None = 30.0, connect: bool = True, **parameters: Any
    ) -> FakeBroker:
        """A protocol with ``ConnectionParameters(**parameters)`` and its broker.

        :param connect: connect the protocol to the transport now.
        """
        protocol = AMQPProtocol(
            ConnectionParameters(**parameters), self.clock, rpc_timeout=rpc_timeout
        )
        broker = FakeBroker(protocol, self.clock, chunk_size=self.chunk_size)
        if connect:
            broker.connect()
        return broker

    def open_connection(
        self, *, tune: dict[str, Any] | None = None, **parameters: Any
    ) -> FakeBroker:
        """A connected protocol, handshake done.

        :param tune: keyword arguments of :meth:`FakeBroker.handshake`.
        """
        broker = self.make_broker(**parameters)
        broker.handshake(**(tune or {}))
        return broker

    def finish(self, broker: FakeBroker) -> None:
        """End the test: close the connection, and check no timer is left."""
        broker.shutdown()
        self.assertTrue(broker.protocol.is_closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

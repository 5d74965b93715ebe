"""The AMQP 0-9-1 frame codec: bytes in, frames out; frames in, bytes out.

This module is sans-I/O: it never touches a socket or a clock. Every face of
txamqp091 (the Twisted protocol, the blocking, select and asyncio adapters)
feeds received bytes to one :class:`FrameDecoder` and writes what the encoders
here return.

A frame is ``type (1) | channel (2) | size (4) | payload (size) | 0xCE``:

====  ===========================  =========================================
type  frame                        payload
====  ===========================  =========================================
1     :class:`MethodFrame`         class id, method id, arguments
2     :class:`HeaderFrame`         class id, weight, body size, properties
3     :class:`BodyFrame`           a fragment of the message body
8     :class:`HeartbeatFrame`      nothing (channel 0 only)
====  ===========================  =========================================

Errors raised while decoding carry the reply code with which the connection
must be closed (``exc.reply_code``):

* :class:`~txamqp091.exceptions.InvalidFrameError` (501 frame-error): a frame
  that cannot be decoded: a wrong frame-end byte, an unknown frame type, a frame
  larger than ``frame_max``, a heartbeat with a payload, a method frame too
  short for its ids, arguments or properties that are truncated or followed by
  stray bytes (RabbitMQ uses 501 for these too);
* :class:`~txamqp091.exceptions.ProtocolSyntaxError` (502 syntax-error) and its
  subclass :class:`~txamqp091.exceptions.InvalidFieldTypeException`: illegal
  values: a bad field-table type letter, tables nested deeper than
  :data:`~txamqp091.fields.MAX_NESTING_DEPTH`, property flags naming
  properties that do not exist, a content header weight other than 0;
* :class:`~txamqp091.exceptions.UnexpectedFrameError` (505 unexpected-frame): a
  heartbeat on a channel other than 0 (as RabbitMQ answers it);
* :class:`~txamqp091.exceptions.MethodNotImplemented` (540 not-implemented): an
  unknown class or method id, or a content header for a class without content;
* :class:`~txamqp091.exceptions.IncompatibleProtocolError`: the server answered
  the protocol header with its own (it does not speak 0-9-1).

After an error the decoder is unusable: the stream is out of step, and the
connection must be closed.

Field values and tables live in :mod:`txamqp091.fields`; they are re-exported
here (:func:`encode_table`, :func:`decode_table`, the type wrappers).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from types import ModuleType
from typing import Final, Generic, NoReturn, Protocol, TypeAlias, TypeVar

from txamqp091 import spec
from txamqp091.exceptions import (
    IncompatibleProtocolError,
    InvalidFrameError,
    MethodNotImplemented,
    ProtocolSyntaxError,
    UnexpectedFrameError,
)
from txamqp091.fields import (
    MAX_NESTING_DEPTH,
    FieldTable,
    Float32,
    Int8,
    Int16,
    Int32,
    Int64,
    LongStr,
    UInt8,
    UInt16,
    UInt32,
    decode_table,
    decode_value,
    encode_table,
    encode_value,
)

__all__ = [
    "ACCELERATED",
    "FRAME_END",
    "FRAME_OVERHEAD",
    "HEARTBEAT_FRAME",
    "MAX_NESTING_DEPTH",
    "PROTOCOL_HEADER",
    "BodyFrame",
    "FieldTable",
    "Float32",
    "Frame",
    "FrameDecoder",
    "HeaderFrame",
    "HeartbeatFrame",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "LongStr",
    "MethodFrame",
    "UInt8",
    "UInt16",
    "UInt32",
    "decode_table",
    "decode_value",
    "encode_body_frames",
    "encode_header_frame",
    "encode_message",
    "encode_method_frame",
    "encode_table",
    "encode_value",
]

#: The protocol header a client sends first: AMQP 0-9-1.
PROTOCOL_HEADER: Final = b"AMQP\x00\x00\x09\x01"
#: The byte that ends every frame.
FRAME_END: Final = 0xCE
#: Bytes a frame adds around its payload (7 of header, 1 frame-end byte).
FRAME_OVERHEAD: Final = 8
#: A heartbeat frame, ready to write.
HEARTBEAT_FRAME: Final = b"\x08\x00\x00\x00\x00\x00\x00\xce"

#: The smallest ``frame_max`` a peer may negotiate.
FRAME_MIN_SIZE: Final = spec.FRAME_MIN_SIZE
#: The largest ``frame_max`` the wire format can express.
FRAME_MAX_LIMIT: Final = 2**32 - 1

_FRAME_HEADER = struct.Struct(">BHI")
_METHOD_FRAME = struct.Struct(">BHIHH")  # frame header + class id + method id
# The end of one frame joined with the header of the next.
_END_AND_FRAME = struct.Struct(">BBHI")
# frame end, then a content header frame's header and fixed fields.
_END_AND_CONTENT_HEADER = struct.Struct(">BBHIHHQ")
_CONTENT_HEADER = struct.Struct(">HHQ")
_IDS = struct.Struct(">HH")
_INDEX = struct.Struct(">I")  # class id << 16 | method id
_EMPTY_PROPERTIES = b"\x00\x00"

_METHODS = spec.methods
_BASIC_CLASS_ID = spec.Basic.INDEX


#: The method class a :class:`MethodFrame` holds (for typing replies precisely).
M = TypeVar("M", bound=spec.Method)


class MethodFrame(Generic[M]):
    """A method frame: ``method`` (a :class:`txamqp091.spec.Method`) on a channel.

    Generic in the method's class, so a reply can be typed precisely, e.g.
    ``MethodFrame[spec.Queue.DeclareOk]``.
    """

    __slots__ = ("channel_number", "method")
    frame_type: Final = spec.FRAME_METHOD

    def __init__(self, channel_number: int, method: M) -> None:
        """:param channel_number: the channel, 0 for the connection."""
        self.channel_number = channel_number
        self.method = method

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MethodFrame):
            return NotImplemented
        return (self.channel_number, self.method) == (other.channel_number, other.method)

    def __hash__(self) -> int:
        return hash((self.channel_number, self.method))

    def __repr__(self) -> str:
        return f"<MethodFrame channel={self.channel_number} {self.method!r}>"


class HeaderFrame:
    """A content header: the body size and the message properties."""

    __slots__ = ("body_size", "channel_number", "properties")
    frame_type: Final = spec.FRAME_HEADER

    def __init__(
        self, channel_number: int, body_size: int, properties: spec.BasicProperties
    ) -> None:
        """:param body_size: the total size of the body frames that follow."""
        self.channel_number = channel_number
        self.body_size = body_size
        self.properties = properties

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeaderFrame):
            return NotImplemented
        return (self.channel_number, self.body_size, self.properties) == (
            other.channel_number,
            other.body_size,
            other.properties,
        )

    def __hash__(self) -> int:
        return hash((self.channel_number, self.body_size))

    def __repr__(self) -> str:
        return (
            f"<HeaderFrame channel={self.channel_number} body_size={self.body_size} "
            f"{self.properties!r}>"
        )


class BodyFrame:
    """A content body frame: one ``fragment`` of a message body."""

    __slots__ = ("channel_number", "fragment")
    frame_type: Final = spec.FRAME_BODY

    def __init__(self, channel_number: int, fragment: bytes) -> None:
        """:param fragment: this frame's part of the body."""
        self.channel_number = channel_number
        self.fragment = fragment

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BodyFrame):
            return NotImplemented
        return (self.channel_number, self.fragment) == (other.channel_number, other.fragment)

    def __hash__(self) -> int:
        return hash((self.channel_number, self.fragment))

    def __repr__(self) -> str:
        return f"<BodyFrame channel={self.channel_number} {len(self.fragment)} bytes>"


class HeartbeatFrame:
    """A heartbeat frame (always on channel 0)."""

    __slots__ = ()
    frame_type: Final = spec.FRAME_HEARTBEAT
    channel_number: Final = 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeartbeatFrame)

    def __hash__(self) -> int:
        return hash(HeartbeatFrame)

    def __repr__(self) -> str:
        return "<HeartbeatFrame>"


#: Any decoded frame.
Frame: TypeAlias = "MethodFrame[spec.Method] | HeaderFrame | BodyFrame | HeartbeatFrame"

_HEARTBEAT = HeartbeatFrame()


def _check_frame_max(frame_max: int) -> int:
    if not isinstance(frame_max, int) or isinstance(frame_max, bool):
        raise TypeError(f"frame_max must be an int, not {type(frame_max).__name__}")
    if not FRAME_MIN_SIZE <= frame_max <= FRAME_MAX_LIMIT:
        raise ValueError(
            f"frame_max must be between {FRAME_MIN_SIZE} and {FRAME_MAX_LIMIT}, not {frame_max}"
        )
    return frame_max


class FrameDecoder:
    """Incremental frame decoder: :meth:`feed` it bytes as they arrive.

    Partial frames are buffered, and each received byte is copied a bounded
    number of times however the stream is chunked, so large bodies cost linear
    time. A frame whose declared size exceeds ``frame_max`` is refused as soon
    as its 7-byte header arrives, before any payload is buffered: memory stays
    bounded by ``frame_max`` whatever a peer announces.

    :param frame_max: the largest frame accepted, header and frame-end included
        (the negotiated ``frame_max``; it may be changed later through the
        :attr:`frame_max` attribute, e.g. after Connection.Tune).
    :param accelerated: use the C accelerator (``True``), the pure-Python
        decoder (``False``), or whichever is available (``None``, the default).
        Both behave identically; see :data:`ACCELERATED`.
    """

    def __init__(
        self, frame_max: int = spec.FRAME_MAX_SIZE, *, accelerated: bool | None = None
    ) -> None:
        self._frame_max = _check_frame_max(frame_max)
        self._max_payload = frame_max - FRAME_OVERHEAD
        self._buffer = bytearray()
        # How many buffered bytes the next frame needs before it can be decoded.
        self._need = 7
        if accelerated and _speedups is None:
            raise RuntimeError(f"the C accelerator is not available: {_SPEEDUPS_ABSENT}")
        self._impl = None
        if _speedups is not None and accelerated is not False:
            self._impl = _speedups.FrameDecoder(self._max_payload)
            if type(self).feed is FrameDecoder.feed:
                # Skip the Python layer: the C decoder's feed serves this instance.
                self.feed = self._impl.feed  # type: ignore[method-assign]

    @property
    def frame_max(self) -> int:
        """The largest frame accepted, in bytes, header and frame-end included."""
        return self._frame_max

    @frame_max.setter
    def frame_max(self, value: int) -> None:
        self._frame_max = _check_frame_max(value)
        self._max_payload = value - FRAME_OVERHEAD
        if self._impl is not None:
            self._impl.max_payload = self._max_payload

    @property
    def accelerated(self) -> bool:
        """Whether this decoder runs on the C accelerator."""
        return self._impl is not None

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete frame are held."""
        if self._impl is not None:
            return int(self._impl.buffered)
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Take received bytes; return the frames they complete, in order.

        :raises InvalidFrameError: 501, see the module documentation.
        :raises ProtocolSyntaxError: 502 (and subclasses).
        :raises MethodNotImplemented: 540.
        :raises IncompatibleProtocolError: the server sent a protocol header.
        """
        if self._impl is not None:  # a subclass calling up to this feed
            frames: list[Frame] = self._impl.feed(data)
            return frames
        if type(data) is not bytes:
            data = bytes(memoryview(data))
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._need:
                return []
            data = bytes(buffer)
            buffer.clear()
        elif len(data) < self._need:
            buffer += data
            return []
        frames = []
        append = frames.append
        unpack_header = _FRAME_HEADER.unpack_from
        unpack_index = _INDEX.unpack_from
        unpack_content = _CONTENT_HEADER.unpack_from
        methods_get = _METHODS.get
        decode_properties = spec.BasicProperties.decode
        max_payload = self._max_payload
        length = len(data)
        pos = 0
        while length - pos >= 7:
            frame_type, channel, size = unpack_header(data, pos)
            if size > max_payload:
                self._fail_size(data, pos, size)
            end = pos + 7 + size
            if end >= length:
                if frame_type not in _KNOWN_TYPES:
                    self._fail_type(data, pos)
                self._need = end + 1 - pos
                break
            if data[end] != 0xCE:
                raise InvalidFrameError(
                    f"frame-end byte is 0x{data[end]:02x}, expected 0xce "
                    f"(frame type {frame_type}, channel {channel}, size {size})"
                )
            if frame_type == 3:
                append(BodyFrame(channel, data[pos + 7 : end]))
            elif frame_type == 1:
                if size < 4:
                    raise InvalidFrameError(f"method frame of {size} bytes has no method ids")
                method_class = methods_get(unpack_index(data, pos + 7)[0])
                if method_class is None:
                    self._fail_method(data[pos + 7 : end])
                append(MethodFrame(channel, method_class.decode(data[pos + 7 : end], 4)))
            elif frame_type == 2:
                if size < 14:
                    raise InvalidFrameError(f"content header of {size} bytes is too short")
                class_id, weight, body_size = unpack_content(data, pos + 7)
                if class_id != 60 or weight:
                    self._fail_header(class_id, weight)
                append(HeaderFrame(channel, body_size, decode_properties(data[pos + 7 : end], 12)))
            elif frame_type == 8:
                if size != 0:
                    raise InvalidFrameError(f"heartbeat frame with {size} payload bytes")
                if channel != 0:
                    # RabbitMQ answers this with 505 too.
                    raise UnexpectedFrameError(f"heartbeat frame on channel {channel}")
                append(_HEARTBEAT)
            else:
                self._fail_type(data, pos)
            pos = end + 1
        else:
            self._need = 7
        if pos < length:
            buffer += data[pos:] if pos else data
        return frames

    def _fail_size(self, data: bytes, pos: int, size: int) -> NoReturn:
        frame_type = data[pos]
        if frame_type not in _KNOWN_TYPES:
            self._fail_type(data, pos)
        raise InvalidFrameError(
            f"frame of type {frame_type} declares a {size}-byte payload, larger than "
            f"frame_max {self._frame_max} allows ({self._max_payload})"
        )

    @staticmethod
    def _fail_type(data: bytes, pos: int) -> NoReturn:
        if data[pos : pos + 4] == b"AMQP":
            # A server that refuses our protocol version answers with its own
            # protocol header ("AMQP" + version): say so rather than "bad frame".
            version = ".".join(str(b) for b in data[pos + 5 : pos + 8]) or "unknown"
            raise IncompatibleProtocolError(
                f"the server does not speak AMQP 0-9-1; it answered with a protocol "
                f"header for version {version}"
            )
        raise InvalidFrameError(f"unknown frame type {data[pos]}")

    @staticmethod
    def _fail_method(payload: bytes) -> NoReturn:
        class_id, method_id = _IDS.unpack_from(payload, 0)
        raise MethodNotImplemented(f"unknown method: class {class_id}, method {method_id}")

    @staticmethod
    def _fail_header(class_id: int, weight: int) -> NoReturn:
        if class_id != _BASIC_CLASS_ID:
            raise MethodNotImplemented(f"content header for class {class_id}, which has none")
        raise ProtocolSyntaxError(f"content header weight is {weight}, it must be 0")


_KNOWN_TYPES: Final = frozenset((1, 2, 3, 8))


# --------------------------------------------------------------------------
# Encoders


def encode_method_frame(channel_number: int, method: spec.Method) -> bytes:
    """One method frame, ready to write.

    :raises TypeError, ValueError: for bad arguments (before anything is sent).
    """
    payload = method.encode()
    try:
        return _FRAME_HEADER.pack(1, channel_number, len(payload)) + payload + b"\xce"
    except struct.error:
        raise _bad_channel(channel_number) from None


def encode_header_frame(
    channel_number: int, body_size: int, properties: spec.BasicProperties | None
) -> bytes:
    """One content header frame (class ``basic``), ready to write.

    :raises TypeError, ValueError: for bad arguments.
    """
    props = _EMPTY_PROPERTIES if properties is None else properties.encode()
    try:
        header = _FRAME_HEADER.pack(2, channel_number, 12 + len(props))
    except struct.error:
        raise _bad_channel(channel_number) from None
    try:
        return header + _CONTENT_HEADER.pack(_BASIC_CLASS_ID, 0, body_size) + props + b"\xce"
    except struct.error:
        raise ValueError(
            f"body_size must be an int from 0 to 2**64-1, not {body_size!r}"
        ) from None


def _bad_channel(channel_number: object) -> Exception:
    """The error for a channel number that does not fit the frame header."""
    if not isinstance(channel_number, int):
        return TypeError(f"channel_number must be an int, not {type(channel_number).__name__}")
    return ValueError(f"channel_number must be from 0 to 65535, not {channel_number}")


def _check_body(body: object) -> int:
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"a message body must be bytes, not {type(body).__name__}")
    return len(body) if not isinstance(body, memoryview) else body.nbytes


def encode_body_frames(
    channel_number: int, body: bytes | bytearray | memoryview, frame_max: int
) -> list[bytes | memoryview]:
    """The body frames of a message, split to ``frame_max - 8`` bytes each.

    :returns: pieces for ``transport.writeSequence`` (an empty body has no frame).
    """
    size = _check_body(body)
    chunk = _check_frame_max(frame_max) - FRAME_OVERHEAD
    if not (isinstance(channel_number, int) and 0 <= channel_number <= 65535):
        raise _bad_channel(channel_number)
    view = memoryview(body).cast("B")
    pieces: list[bytes | memoryview] = []
    for start in range(0, size, chunk):
        part = view[start : start + chunk]
        pieces.append(_FRAME_HEADER.pack(3, channel_number, len(part)))
        pieces.append(part)
        pieces.append(b"\xce")
    return pieces


def encode_message(
    channel_number: int,
    method: spec.Method,
    properties: spec.BasicProperties | None,
    body: bytes | bytearray | memoryview,
    frame_max: int = spec.FRAME_MAX_SIZE,
) -> bytes:
    """A content-carrying method (e.g. Basic.Publish), its header and body frames.

    Everything is encoded (and validated) before anything is returned, so a bad
    argument raises without a partial message reaching the wire.

    :param frame_max: the negotiated ``frame_max``; the body is split into
        frames of at most ``frame_max - 8`` bytes.
    :returns: one buffer holding every frame of the message.
    :raises TypeError, ValueError: for bad arguments.
    """
    if not method.has_content:
        raise ValueError(f"{method.NAME} carries no content; use encode_method_frame")
    payload = method.encode()
    props = _EMPTY_PROPERTIES if properties is None else properties.encode()
    if type(body) is bytes:
        size = len(body)
    else:
        size = _check_body(body)
        body = memoryview(body).cast("B")
    if not FRAME_MIN_SIZE <= frame_max <= FRAME_MAX_LIMIT:
        _check_frame_max(frame_max)
    try:
        head = (
            _FRAME_HEADER.pack(1, channel_number, len(payload))
            + payload
            + _END_AND_CONTENT_HEADER.pack(
                FRAME_END, 2, channel_number, 12 + len(props), _BASIC_CLASS_ID, 0, size
            )
            + props
        )
    except struct.error:
        raise _bad_channel(channel_number) from None
    if not size:
        return head + b"\xce"
    if size <= frame_max - FRAME_OVERHEAD:
        # The common case: one body frame, its header joined to the frame end before it.
        return b"".join(
            (head, _END_AND_FRAME.pack(FRAME_END, 3, channel_number, size), body, b"\xce")
        )
    return b"".join([head, b"\xce", *encode_body_frames(channel_number, body, frame_max)])


def encode_frames(frames: Sequence[Frame]) -> bytes:
    """Encode decoded frames back to bytes (used by tests and tools)."""
    out: list[bytes] = []
    for frame in frames:
        if isinstance(frame, MethodFrame):
            out.append(encode_method_frame(frame.channel_number, frame.method))
        elif isinstance(frame, HeaderFrame):
            out.append(
                encode_header_frame(frame.channel_number, frame.body_size, frame.properties)
            )
        elif isinstance(frame, BodyFrame):
            out.append(
                _FRAME_HEADER.pack(3, frame.channel_number, len(frame.fragment))
                + frame.fragment
                + b"\xce"
            )
        else:
            out.append(HEARTBEAT_FRAME)
    return b"".join(out)


# --------------------------------------------------------------------------
# The optional C accelerator (txamqp091/_speedups.c). It decodes and encodes
# the common cases and hands anything unusual to the Python code above, which
# stays the one definition of behaviour. TXAMQP091_PURE_PYTHON=1 disables it.


class _EncodeMessage(Protocol):
    def __call__(
        self,
        channel_number: int,
        method: spec.Method,
        properties: spec.BasicProperties | None,
        body: bytes | bytearray | memoryview,
        frame_max: int = ...,
    ) -> bytes: ...


class _EncodeMethodFrame(Protocol):
    def __call__(self, channel_number: int, method: spec.Method) -> bytes: ...


def _diagnose(data: bytes, max_payload: int) -> None:
    """Raise the pure decoder's error for ``data``, which starts with a bad frame."""
    FrameDecoder(max_payload + FRAME_OVERHEAD, accelerated=False).feed(data)


def _load_speedups() -> tuple[ModuleType | None, str]:
    if os.environ.get("TXAMQP091_PURE_PYTHON"):
        return None, "disabled by TXAMQP091_PURE_PYTHON"
    try:
        from txamqp091 import _speedups as module  # type: ignore[attr-defined]
    except ImportError as exc:  # pragma: no cover - depends on the build
        return None, f"not built ({exc})"
    module.configure(
        MethodFrame,
        HeaderFrame,
        BodyFrame,
        _HEARTBEAT,
        spec.methods,
        spec.BasicProperties,
        decode_value,
        encode_value,
        _diagnose,
        encode_message,
        encode_method_frame,
    )
    return module, ""


_speedups, _SPEEDUPS_ABSENT = _load_speedups()
#: Whether the C accelerator is in use (it is optional; behaviour is the same).
ACCELERATED: Final = _speedups is not None

#: The pure-Python encoders, which the accelerated ones fall back to.
pure_encode_message: _EncodeMessage = encode_message
pure_encode_method_frame: _EncodeMethodFrame = encode_method_frame
if _speedups is not None:
    encode_message = _speedups.encode_message
    encode_method_frame = _speedups.encode_method_frame

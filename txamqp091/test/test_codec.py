"""Tests for :mod:`txamqp091.codec`: the incremental frame decoder and the frame
encoders."""

from __future__ import annotations

import itertools
import struct
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import codec, spec
from txamqp091.codec import (
    BodyFrame,
    Frame,
    FrameDecoder,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
)
from txamqp091.exceptions import (
    AMQPError,
    IncompatibleProtocolError,
    InvalidFieldTypeException,
    InvalidFrameError,
    MethodNotImplemented,
    ProtocolSyntaxError,
    ShortStringTooLong,
    UnexpectedFrameError,
)
from txamqp091.fields import MAX_NESTING_DEPTH
from txamqp091.test import strategies as s

SMALL_FRAME_MAX = 4096
SMALL_CHUNK = SMALL_FRAME_MAX - 8


def frame(frame_type: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    """One frame built by hand."""
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + end


def method_payload(class_id: int, method_id: int, arguments: bytes = b"") -> bytes:
    """A method frame payload built by hand."""
    return struct.pack(">HH", class_id, method_id) + arguments


def header_payload(body_size: int, properties: bytes = b"\x00\x00", weight: int = 0) -> bytes:
    """A basic content header payload built by hand."""
    return struct.pack(">HHQ", 60, weight, body_size) + properties


def feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[Frame]:
    """Feed every chunk and collect the frames."""
    frames: list[Frame] = []
    for chunk in chunks:
        frames.extend(decoder.feed(chunk))
    return frames


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given offsets."""
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


class StreamTests(SynchronousTestCase):
    """However a stream is chunked, the decoder returns the same frames."""

    @settings(max_examples=60, deadline=None)
    @given(s.frame_streams(), st.data())
    def test_chunkings(self, frames: list[Frame], data: st.DataObject) -> None:
        """A stream of random frames decodes to the same frames fed in one chunk,
        one byte at a time and in random chunks, and re-encodes to the same
        bytes; nothing stays buffered."""
        encoded = codec.encode_frames(frames)
        whole = FrameDecoder()
        self.assertEqual(whole.feed(encoded), frames)
        self.assertEqual(whole.buffered, 0)
        one_by_one = FrameDecoder()
        self.assertEqual(
            feed_all(one_by_one, [encoded[i : i + 1] for i in range(len(encoded))]), frames
        )
        self.assertEqual(one_by_one.buffered, 0)
        cuts = data.draw(st.lists(st.integers(0, len(encoded)), max_size=20))
        chunked = FrameDecoder()
        decoded = feed_all(chunked, split(encoded, cuts))
        self.assertEqual(decoded, frames)
        self.assertEqual(chunked.buffered, 0)
        self.assertEqual(codec.encode_frames(decoded), encoded)

    def test_partial_frame_is_buffered(self) -> None:
        """Complete frames are returned at once; the incomplete tail is held
        (``buffered``) until the rest arrives."""
        first = codec.HEARTBEAT_FRAME
        second = codec.encode_method_frame(3, spec.Basic.Ack(delivery_tag=9))
        decoder = FrameDecoder()
        self.assertEqual(decoder.feed(first + second[:10]), [HeartbeatFrame()])
        self.assertEqual(decoder.buffered, 10)
        self.assertEqual(decoder.feed(second[10:-1]), [])
        self.assertEqual(
            decoder.feed(second[-1:]), [MethodFrame(3, spec.Basic.Ack(delivery_tag=9))]
        )
        self.assertEqual(decoder.buffered, 0)

    def test_feed_accepts_buffers(self) -> None:
        """feed takes bytearray and memoryview as well as bytes."""
        decoder = FrameDecoder()
        heartbeat = codec.HEARTBEAT_FRAME
        self.assertEqual(decoder.feed(bytearray(heartbeat)), [HeartbeatFrame()])
        self.assertEqual(decoder.feed(memoryview(heartbeat)), [HeartbeatFrame()])

    def test_constants(self) -> None:
        """The protocol header is AMQP 0-9-1's, and HEARTBEAT_FRAME decodes to a
        heartbeat."""
        self.assertEqual(codec.PROTOCOL_HEADER, b"AMQP\x00\x00\x09\x01")
        self.assertEqual(codec.HEARTBEAT_FRAME, frame(8, 0, b""))
        self.assertEqual(FrameDecoder().feed(codec.HEARTBEAT_FRAME), [HeartbeatFrame()])

    def test_known_frames(self) -> None:
        """Hand-built frames of each type decode to the expected frame objects."""
        stream = (
            frame(1, 1, method_payload(60, 80, b"\x00" * 7 + b"\x05\x01"))
            + frame(2, 1, header_payload(3, b"\x10\x00\x02"))
            + frame(3, 1, b"abc")
            + frame(8, 0, b"")
        )
        self.assertEqual(
            FrameDecoder().feed(stream),
            [
                MethodFrame(1, spec.Basic.Ack(delivery_tag=5, multiple=True)),
                HeaderFrame(1, 3, spec.BasicProperties(delivery_mode=2)),
                BodyFrame(1, b"abc"),
                HeartbeatFrame(),
            ],
        )

    def test_non_utf8_routing_key(self) -> None:
        """A Basic.Deliver with a non-UTF-8 routing key decodes, and encodes back
        byte-identical."""
        arguments = b"\x02ct" + b"\x00" * 7 + b"\x01\x00\x01e\x02\xff\xfe"
        stream = frame(1, 5, method_payload(60, 60, arguments))
        decoded = FrameDecoder().feed(stream)
        self.assertEqual(codec.encode_frames(decoded), stream)


class FrameMaxTests(SynchronousTestCase):
    """frame_max bounds what is accepted and what is buffered."""

    def test_validation(self) -> None:
        """frame_max must be an int from 4096 to 2**32-1, at construction and when
        set."""
        for bad in (4095, 0, -1, 2**32):
            self.assertRaises(ValueError, FrameDecoder, bad)
            self.assertRaises(ValueError, setattr, FrameDecoder(), "frame_max", bad)
        for bad_type in (4096.0, "4096", True, None):
            self.assertRaises(TypeError, FrameDecoder, bad_type)
            self.assertRaises(TypeError, setattr, FrameDecoder(), "frame_max", bad_type)
        decoder = FrameDecoder(4096)
        decoder.frame_max = 2**32 - 1
        self.assertEqual(decoder.frame_max, 2**32 - 1)
        self.assertEqual(FrameDecoder().frame_max, 131072)

    def test_largest_frame_accepted(self) -> None:
        """A frame of exactly frame_max bytes (payload frame_max - 8) is accepted;
        one byte more is refused with InvalidFrameError (501) as soon as its
        7-byte header arrives."""
        decoder = FrameDecoder(SMALL_FRAME_MAX)
        body = b"x" * SMALL_CHUNK
        self.assertEqual(decoder.feed(frame(3, 1, body)), [BodyFrame(1, body)])
        header = struct.pack(">BHI", 3, 1, SMALL_CHUNK + 1)
        decoder = FrameDecoder(SMALL_FRAME_MAX)
        self.assertEqual(decoder.feed(header[:6]), [])
        exc = self.assertRaises(InvalidFrameError, decoder.feed, header[6:])
        self.assertEqual(exc.reply_code, 501)

    def test_raising_frame_max(self) -> None:
        """Raising frame_max (after Connection.Tune) lets bigger frames through."""
        decoder = FrameDecoder(SMALL_FRAME_MAX)
        big = frame(3, 1, b"y" * 10000)
        self.assertRaises(InvalidFrameError, FrameDecoder(SMALL_FRAME_MAX).feed, big)
        decoder.frame_max = 20000
        self.assertEqual(decoder.feed(big), [BodyFrame(1, b"y" * 10000)])

    def test_buffer_bounded_while_trickling(self) -> None:
        """While a maximum-size frame trickles in, ``buffered`` never exceeds
        frame_max, and the frame comes out whole."""
        frame_max = 8192
        body = bytes(range(256)) * ((frame_max - 8) // 256)
        stream = frame(3, 2, body) + codec.HEARTBEAT_FRAME
        decoder = FrameDecoder(frame_max)
        frames: list[Frame] = []
        for start in range(0, len(stream), 97):
            frames.extend(decoder.feed(stream[start : start + 97]))
            self.assertLessEqual(decoder.buffered, frame_max)
        self.assertEqual(frames, [BodyFrame(2, body), HeartbeatFrame()])
        self.assertEqual(decoder.buffered, 0)

    def test_4gib_length_prefix(self) -> None:
        """A 0xFFFFFFFF size is refused right after the 7-byte header, with
        nothing large allocated, even with the largest frame_max."""
        header = b"\x03\x00\x01\xff\xff\xff\xff"
        for frame_max in (131072, 2**32 - 1):
            decoder = FrameDecoder(frame_max)
            tracemalloc.start()
            try:
                exc = self.assertRaises(InvalidFrameError, decoder.feed, header)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            self.assertEqual(exc.reply_code, 501)
            self.assertLessEqual(decoder.buffered, 7)
            self.assertLess(peak, 1_000_000)
            # Byte by byte, it is refused at the seventh.
            decoder = FrameDecoder(frame_max)
            for byte in range(6):
                self.assertEqual(decoder.feed(header[byte : byte + 1]), [])
            self.assertRaises(InvalidFrameError, decoder.feed, header[6:])

    def test_huge_body_in_small_chunks(self) -> None:
        """A 64 MiB body frame fed in 4 KiB chunks decodes to one BodyFrame with
        the right bytes (each byte is copied a bounded number of times, so this
        finishes quickly)."""
        size = 64 * 1024 * 1024
        body = bytes(range(256)) * (size // 256)
        stream = frame(3, 7, body)
        decoder = FrameDecoder(size + 8)
        frames: list[Frame] = []
        for start in range(0, len(stream), 4096):
            frames.extend(decoder.feed(stream[start : start + 4096]))
        self.assertEqual(len(frames), 1)
        self.assertEqual(frames[0], BodyFrame(7, body))
        self.assertEqual(decoder.buffered, 0)


class DecodeErrorTests(SynchronousTestCase):
    """Each documented error, with its reply code."""

    def assert_error(self, kind: type[AMQPError], data: bytes, reply_code: int | None) -> None:
        """Feeding ``data`` raises exactly ``kind`` with ``reply_code``, whole and
        byte by byte."""
        exc = self.assertRaises(kind, FrameDecoder().feed, data)
        self.assertIs(type(exc), kind, exc)
        if reply_code is not None:
            self.assertEqual(getattr(exc, "reply_code", None), reply_code)
        decoder = FrameDecoder()
        with self.assertRaises(kind):
            for index in range(len(data)):
                decoder.feed(data[index : index + 1])

    def test_frame_end(self) -> None:
        """A wrong frame-end byte raises InvalidFrameError (501)."""
        self.assert_error(InvalidFrameError, frame(8, 0, b"", end=b"\x00"), 501)
        self.assert_error(InvalidFrameError, frame(3, 1, b"abc", end=b"\xcf"), 501)

    def test_unknown_frame_type(self) -> None:
        """An unknown frame type raises InvalidFrameError (501), even before the
        frame is complete."""
        for frame_type in (0, 4, 7, 9, 255):
            self.assert_error(InvalidFrameError, frame(frame_type, 0, b"abc"), 501)
            header = struct.pack(">BHI", frame_type, 0, 100)
            self.assertRaises(InvalidFrameError, FrameDecoder().feed, header)

    def test_heartbeats(self) -> None:
        """A heartbeat with a payload raises InvalidFrameError (501); on a channel
        other than 0, UnexpectedFrameError (505)."""
        self.assert_error(InvalidFrameError, frame(8, 0, b"x"), 501)
        self.assert_error(UnexpectedFrameError, frame(8, 1, b""), 505)

    def test_short_method_frame(self) -> None:
        """A method frame shorter than its 4 id bytes raises InvalidFrameError (501)."""
        for size in range(4):
            self.assert_error(InvalidFrameError, frame(1, 1, b"\x00" * size), 501)

    def test_unknown_method(self) -> None:
        """Unknown class or method ids raise MethodNotImplemented (540)."""
        self.assert_error(MethodNotImplemented, frame(1, 1, method_payload(60, 999)), 540)
        self.assert_error(MethodNotImplemented, frame(1, 1, method_payload(999, 10)), 540)
        self.assert_error(MethodNotImplemented, frame(1, 1, method_payload(0, 0)), 540)

    def test_truncated_and_overlong_arguments(self) -> None:
        """Truncated arguments and stray bytes after them raise InvalidFrameError
        (501), for every truncation of a method with every field kind."""
        for cls in s.METHOD_CLASSES:
            payload = cls().encode()
            for cut in range(4, len(payload)):
                self.assert_error(InvalidFrameError, frame(1, 1, payload[:cut]), 501)
            self.assert_error(InvalidFrameError, frame(1, 1, payload + b"\x00"), 501)

    def test_bad_tables(self) -> None:
        """A bad type letter in a table raises InvalidFieldTypeException (502);
        tables nested deeper than MAX_NESTING_DEPTH raise ProtocolSyntaxError (502)."""
        declare = spec.Queue.Declare(queue="q").encode()[:-4]
        bad_letter = b"\x00\x00\x00\x03\x01kZ"
        self.assert_error(InvalidFieldTypeException, frame(1, 1, declare + bad_letter), 502)
        levels = MAX_NESTING_DEPTH + 1
        deep = b"".join(struct.pack(">I", 7 * k) + b"\x01kF" for k in range(levels - 1, 0, -1))
        deep += b"\x00\x00\x00\x00"
        self.assert_error(ProtocolSyntaxError, frame(1, 1, declare + deep), 502)
        self.assert_error(
            ProtocolSyntaxError,
            frame(2, 1, header_payload(0, b"\x20\x00" + deep)),
            502,
        )

    def test_content_headers(self) -> None:
        """A content header too short raises InvalidFrameError (501); for a class
        other than basic, MethodNotImplemented (540); with a weight,
        ProtocolSyntaxError (502); with flags naming properties that do not exist,
        ProtocolSyntaxError (502)."""
        for size in range(14):
            self.assert_error(InvalidFrameError, frame(2, 1, header_payload(0)[:size]), 501)
        other_class = struct.pack(">HHQ", 50, 0, 0) + b"\x00\x00"
        self.assert_error(MethodNotImplemented, frame(2, 1, other_class), 540)
        self.assert_error(ProtocolSyntaxError, frame(2, 1, header_payload(0, weight=1)), 502)
        self.assert_error(ProtocolSyntaxError, frame(2, 1, header_payload(0, b"\x00\x02")), 502)

    def test_truncated_properties(self) -> None:
        """Truncated properties, and stray bytes after them, raise
        InvalidFrameError (501)."""
        props = spec.BasicProperties(
            content_type="t", headers={"a": 1}, timestamp=5, app_id="app"
        ).encode()
        for cut in range(2, len(props)):
            self.assert_error(InvalidFrameError, frame(2, 1, header_payload(0, props[:cut])), 501)
        self.assert_error(InvalidFrameError, frame(2, 1, header_payload(0, props + b"\x00")), 501)

    def test_protocol_header_answer(self) -> None:
        """A server answering with its own protocol header (0-9-1 or another
        version) raises IncompatibleProtocolError, whatever frame_max."""
        for answer in (b"AMQP\x00\x00\x09\x01", b"AMQP\x01\x01\x00\x0a"):
            self.assert_error(IncompatibleProtocolError, answer, None)
            for frame_max in (4096, 2**32 - 1):
                decoder = FrameDecoder(frame_max)
                self.assertRaises(IncompatibleProtocolError, decoder.feed, answer)

    def test_errors_are_amqp_errors(self) -> None:
        """Every decode error is an AMQPError; the protocol ones carry reply codes
        of spec errors that close the connection."""
        for kind in (
            InvalidFrameError,
            ProtocolSyntaxError,
            InvalidFieldTypeException,
            UnexpectedFrameError,
            MethodNotImplemented,
        ):
            self.assertTrue(issubclass(kind, AMQPError))
            self.assertIn(kind.reply_code, spec.HARD_ERROR_CODES)
        self.assertTrue(issubclass(IncompatibleProtocolError, AMQPError))


def _structured_garbage() -> st.SearchStrategy[bytes]:
    """Frames of known types with plausible headers and arbitrary payloads."""
    method_ids = st.sampled_from([(cls.CLASS_ID, cls.METHOD_ID) for cls in s.METHOD_CLASSES])
    method_frames = st.builds(
        lambda ids, args: frame(1, 1, method_payload(ids[0], ids[1], args)),
        method_ids,
        st.binary(max_size=40),
    )
    header_frames = st.builds(
        lambda size, props: frame(2, 1, header_payload(size, props)),
        st.integers(0, 2**64 - 1),
        st.binary(max_size=40),
    )
    return st.lists(st.one_of(method_frames, header_frames), min_size=1, max_size=4).map(b"".join)


class GarbageTests(SynchronousTestCase):
    """Whatever arrives, feed returns frames or raises an AMQPError."""

    def check(self, data: bytes, chunk: int) -> None:
        """Feed ``data`` in chunks; only AMQPError may escape."""
        decoder = FrameDecoder()
        try:
            for start in range(0, len(data), chunk):
                decoder.feed(data[start : start + chunk])
        except AMQPError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200), st.integers(1, 50))
    def test_random_bytes(self, data: bytes, chunk: int) -> None:
        """Arbitrary bytes never raise IndexError, struct.error,
        UnicodeDecodeError, RecursionError or anything but an AMQPError."""
        self.check(data, chunk)

    @settings(max_examples=300, deadline=None)
    @given(_structured_garbage(), st.integers(1, 64))
    def test_garbage_payloads(self, data: bytes, chunk: int) -> None:
        """Well-framed method and content-header frames with arbitrary payloads
        decode or raise an AMQPError."""
        self.check(data, chunk)

    @settings(max_examples=200, deadline=None)
    @given(s.frame_streams(max_size=5).filter(bool), st.data())
    def test_mutated_streams(self, frames: list[Frame], data: st.DataObject) -> None:
        """A valid stream with a few bytes changed, or truncated, decodes or
        raises an AMQPError."""
        encoded = bytearray(codec.encode_frames(frames))
        for _ in range(data.draw(st.integers(1, 3))):
            index = data.draw(st.integers(0, len(encoded) - 1))
            encoded[index] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(encoded)))
        self.check(bytes(encoded[:cut]), data.draw(st.integers(1, 64)))


class MessageTests(SynchronousTestCase):
    """encode_message: method, content header and body frames in one buffer."""

    def decode_message(
        self, data: bytes, frame_max: int
    ) -> tuple[MethodFrame[spec.Method], HeaderFrame, list[BodyFrame]]:
        """Decode an encoded message, checking the frame types and sizes."""
        decoder = FrameDecoder(frame_max)
        frames = decoder.feed(data)
        self.assertEqual(decoder.buffered, 0)
        method, header, *bodies = frames
        assert isinstance(method, MethodFrame)
        assert isinstance(header, HeaderFrame)
        body_frames = []
        for body in bodies:
            assert isinstance(body, BodyFrame)
            self.assertLessEqual(len(body.fragment), frame_max - 8)
            body_frames.append(body)
        return method, header, body_frames

    def test_body_sizes(self) -> None:
        """Bodies of 0, 1, frame_max-8, frame_max-7 and several frames' worth are
        split into the expected number of frames of at most frame_max-8 bytes,
        and decode back to the same method, properties and body."""
        publish = spec.Basic.Publish(exchange="ex", routing_key="rk", mandatory=True)
        props = spec.BasicProperties(content_type="application/json", headers={"h": [1, "a"]})
        cases = [
            (0, []),
            (1, [1]),
            (SMALL_CHUNK, [SMALL_CHUNK]),
            (SMALL_CHUNK + 1, [SMALL_CHUNK, 1]),
            (3 * SMALL_CHUNK + 5, [SMALL_CHUNK] * 3 + [5]),
            (4 * SMALL_CHUNK, [SMALL_CHUNK] * 4),
        ]
        for size, fragment_sizes in cases:
            body = bytes(i % 251 for i in range(size))
            for body_type in (bytes, bytearray, memoryview):
                data = codec.encode_message(9, publish, props, body_type(body), SMALL_FRAME_MAX)
                method, header, bodies = self.decode_message(data, SMALL_FRAME_MAX)
                self.assertEqual(method, MethodFrame(9, publish))
                self.assertEqual(header, HeaderFrame(9, size, props))
                self.assertEqual([len(b.fragment) for b in bodies], fragment_sizes)
                self.assertEqual({b.channel_number for b in bodies} - {9}, set())
                self.assertEqual(b"".join(b.fragment for b in bodies), body)
                expected = (
                    codec.encode_method_frame(9, publish)
                    + codec.encode_header_frame(9, size, props)
                    + b"".join(
                        bytes(p) for p in codec.encode_body_frames(9, body, SMALL_FRAME_MAX)
                    )
                )
                self.assertEqual(data, expected)

    def test_without_properties(self) -> None:
        """Properties of None travel as an empty property list."""
        data = codec.encode_message(1, spec.Basic.Publish(), None, b"x")
        _, header, _ = self.decode_message(data, 131072)
        self.assertEqual(header.properties, spec.BasicProperties())

    @settings(max_examples=50, deadline=None)
    @given(
        s.method_of(spec.Basic.Publish),
        s.basic_properties(),
        st.binary(max_size=3 * SMALL_CHUNK),
        st.integers(0, 2**16 - 1),
    )
    def test_any_message(
        self,
        method: spec.Method,
        props: spec.BasicProperties,
        body: bytes,
        channel: int,
    ) -> None:
        """Any publish, properties and body decode back unchanged."""
        data = codec.encode_message(channel, method, props, body, SMALL_FRAME_MAX)
        decoded_method, header, bodies = self.decode_message(data, SMALL_FRAME_MAX)
        self.assertEqual(decoded_method, MethodFrame(channel, method))
        self.assertEqual(header, HeaderFrame(channel, len(body), props))
        self.assertEqual(b"".join(b.fragment for b in bodies), body)
        self.assertEqual(len(bodies), -(-len(body) // SMALL_CHUNK))

    def test_bad_arguments_raise_before_encoding(self) -> None:
        """Bad method arguments, properties, body, channel or frame_max raise
        (TypeError or ValueError) instead of returning a partial message."""
        publish = spec.Basic.Publish()
        self.assertRaises(
            ShortStringTooLong,
            codec.encode_message,
            1,
            spec.Basic.Publish(routing_key="r" * 256),
            None,
            b"body",
        )
        self.assertRaises(
            TypeError,
            codec.encode_message,
            1,
            publish,
            spec.BasicProperties(headers={"a": object()}),
            b"body",
        )
        self.assertRaises(TypeError, codec.encode_message, 1, publish, None, "text")
        self.assertRaises(ValueError, codec.encode_message, 1, spec.Basic.Ack(), None, b"x")
        for channel in (-1, 2**16):
            self.assertRaises(ValueError, codec.encode_message, channel, publish, None, b"x")
            self.assertRaises(ValueError, codec.encode_method_frame, channel, publish)
            self.assertRaises(ValueError, codec.encode_header_frame, channel, 0, None)
            self.assertRaises(ValueError, codec.encode_body_frames, channel, b"x", 4096)
        self.assertRaises(TypeError, codec.encode_method_frame, "1", publish)
        self.assertRaises(ValueError, codec.encode_header_frame, 1, -1, None)
        self.assertRaises(ValueError, codec.encode_header_frame, 1, 2**64, None)
        for frame_max in (0, 4095):
            self.assertRaises(ValueError, codec.encode_message, 1, publish, None, b"x", frame_max)
            self.assertRaises(ValueError, codec.encode_body_frames, 1, b"x", frame_max)

    def test_body_frames(self) -> None:
        """encode_body_frames gives header, fragment and frame-end per frame, and
        nothing for an empty body."""
        self.assertEqual(codec.encode_body_frames(1, b"", 4096), [])
        pieces = codec.encode_body_frames(2, b"z" * (SMALL_CHUNK + 2), SMALL_FRAME_MAX)
        self.assertEqual(len(pieces), 6)
        frames = FrameDecoder().feed(b"".join(bytes(p) for p in pieces))
        self.assertEqual(frames, [BodyFrame(2, b"z" * SMALL_CHUNK), BodyFrame(2, b"zz")])

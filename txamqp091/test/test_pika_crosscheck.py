"""Cross-checks of our codec against pika 1.4's (``pika.spec``, ``pika.frame``,
``pika.data``): what we encode, pika decodes to the same values, and what pika
encodes, we decode to the same values.

pika's codec has known faults, which these tests work around and document
rather than copy:

* ``f`` and ``d`` field values decode truncated to ``int``; we decode floats;
* ``pika.frame.decode_frame`` cannot decode Connection.UpdateSecret (it calls
  the class without its two required arguments), and
  ``Connection.UpdateSecret.decode`` stores ``new_secret`` as ``mechanisms``;
* ``T`` decodes to an aware datetime; we decode a naive UTC datetime (the
  comparison makes pika's naive);
* pika decodes ``l`` to its own ``int`` subclass ``pika.compat.long`` and
  normalizes decimals it encodes (``1.10`` is sent as ``1.1``), so those
  compare by value.
"""

from __future__ import annotations

import struct
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pika.data
import pika.frame
import pika.spec
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import codec, fields, spec
from txamqp091.codec import FrameDecoder, HeaderFrame, MethodFrame
from txamqp091.test import strategies as s

#: Our attribute names that pika spells differently.
PIKA_NAMES = {("Basic.Qos", "global_"): "global_qos"}
#: Where pika's decoder stores an attribute, when that differs (a pika bug).
PIKA_DECODED_NAMES = {("Connection.UpdateSecret", "new_secret"): "mechanisms"}


def pika_name(cls: type[spec.Method], name: str) -> str:
    """pika's name for the attribute ``name`` of ``cls``."""
    return PIKA_NAMES.get((cls.NAME, name), name)


def pika_decode_method(data: bytes) -> tuple[int, Any]:
    """Decode one method frame with pika: its channel and pika's method.

    ``pika.frame.decode_frame`` instantiates the method class without
    arguments, which fails for Connection.UpdateSecret; this decodes the
    payload with the class's own ``decode`` instead.
    """
    frame_type, channel, size = struct.unpack_from(">BHI", data)
    assert (frame_type, len(data)) == (1, size + 8)
    index = struct.unpack_from(">I", data, 7)[0]
    pika_cls = pika.spec.methods[index]
    method = pika_cls.__new__(pika_cls)
    method.decode(data[7:-1], 4)
    return channel, method


def from_pika_value(value: Any) -> Any:
    """A value decoded by pika, with its datetimes made naive UTC and its
    ``long`` (an int subclass of pika.compat) made int."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    if isinstance(value, list):
        return [from_pika_value(item) for item in value]
    if isinstance(value, dict):
        return {key: from_pika_value(item) for key, item in value.items()}
    return value


def normalized(value: Any) -> Any:
    """``typed`` form with decimals normalized (pika sends 1.10 as 1.1), and our
    typed wrappers (Int8, Float32, LongStr...) as the plain values pika gives."""
    if isinstance(value, int) and type(value) not in (int, bool):
        return s.typed(int(value))
    if isinstance(value, float) and type(value) is not float:
        return s.typed(float(value))
    if isinstance(value, bytes) and type(value) is not bytes:
        return s.typed(bytes(value))
    if isinstance(value, Decimal):
        return ("Decimal", value.normalize())
    if isinstance(value, list):
        return ("list", [normalized(item) for item in value])
    if isinstance(value, dict):
        return ("dict", {key: normalized(item) for key, item in value.items()})
    return s.typed(value)


def to_pika_method(method: spec.Method) -> Any:
    """The pika instance equal to ``method``."""
    cls = type(method)
    pika_cls = pika.spec.methods[cls.INDEX]
    return pika_cls(**{pika_name(cls, name): value for name, value in method})


def to_pika_properties(props: spec.BasicProperties) -> pika.spec.BasicProperties:
    """The pika BasicProperties equal to ``props``."""
    return pika.spec.BasicProperties(**dict(props))


class MethodCrossCheckTests(SynchronousTestCase):
    """Methods travel between our codec and pika's unchanged."""

    def check_ours_to_pika(self, channel: int, method: spec.Method) -> None:
        """pika decodes our method frame to the same values."""
        cls = type(method)
        data = codec.encode_method_frame(channel, method)
        if cls is not spec.Connection.UpdateSecret:  # pika cannot, see pika_decode_method
            consumed, pika_frame = pika.frame.decode_frame(data)
            self.assertEqual(consumed, len(data))
            assert isinstance(pika_frame, pika.frame.Method)
            self.assertEqual(pika_frame.channel_number, channel)
            self.assertEqual(pika_frame.method.INDEX, cls.INDEX)
        pika_channel, pika_method = pika_decode_method(data)
        self.assertEqual(pika_channel, channel)
        for name, _ in cls._fields:
            ours = getattr(method, name)
            attribute = pika_name(cls, name)
            if not hasattr(pika_method, attribute):
                attribute = PIKA_DECODED_NAMES[(cls.NAME, name)]
            theirs = getattr(pika_method, attribute)
            self.assertEqual(
                normalized(from_pika_value(theirs)), normalized(ours), (cls.NAME, name)
            )

    def check_pika_to_ours(self, channel: int, method: spec.Method) -> None:
        """We decode pika's method frame to the same values."""
        data = pika.frame.Method(channel, to_pika_method(method)).marshal()
        frames = FrameDecoder().feed(data)
        self.assertEqual(frames, [MethodFrame(channel, method)])
        decoded = frames[0]
        assert isinstance(decoded, MethodFrame)
        self.assertEqual(
            normalized([value for _, value in decoded.method]),
            normalized([value for _, value in method]),
        )

    def test_every_method_class(self) -> None:
        """Every method class, with arbitrary values both codecs support, decodes
        in pika as we encoded it, and pika's encoding decodes here to the same
        values."""
        for cls in s.METHOD_CLASSES:

            @settings(max_examples=8, deadline=None)
            @given(st.integers(0, 2**16 - 1), s.method_of(cls, pika_compatible=True))
            def check(channel: int, method: spec.Method) -> None:
                self.check_ours_to_pika(channel, method)
                self.check_pika_to_ours(channel, method)

            check()

    @settings(max_examples=100, deadline=None)
    @given(st.integers(0, 2**16 - 1), s.methods(pika_compatible=True))
    def test_any_method(self, channel: int, method: spec.Method) -> None:
        """A method drawn from the whole spec round trips through both codecs."""
        self.check_ours_to_pika(channel, method)
        self.check_pika_to_ours(channel, method)

    def test_same_bytes(self) -> None:
        """Every method, with its defaults and with non-default values (a table
        of str, int, bool, nested table and array included), encodes to the
        same bytes as pika."""
        values = {
            "octet": 9,
            "short": 0x1234,
            "long": 0x12345678,
            "longlong": 2**63 + 5,
            "bit": True,
            "shortstr": "sé",
            "longstr": b"\x00\xff",
            "table": {"s": "x", "i": -5, "l": 2**40, "b": False, "n": {"a": [1, "y", None]}},
        }
        for cls in s.METHOD_CLASSES:
            for method in (cls(), cls(**{name: values[kind] for name, kind in cls._fields})):
                ours = codec.encode_method_frame(1, method)
                theirs = pika.frame.Method(1, to_pika_method(method)).marshal()
                self.assertEqual(ours, theirs, cls.NAME)

    def test_flags_match_pika(self) -> None:
        """synchronous and has_content agree with pika for every method, and the
        two registries hold the same methods."""
        self.assertEqual(set(spec.methods), set(pika.spec.methods))
        for index, cls in spec.methods.items():
            pika_cls = pika.spec.methods[index]
            instance = pika_cls.__new__(pika_cls)
            self.assertEqual(cls.synchronous, instance.synchronous, cls.NAME)
            self.assertEqual(cls.has_content, pika.spec.has_content(index), cls.NAME)
            self.assertEqual(cls.NAME, pika_cls.NAME)

    def test_constants_match_pika(self) -> None:
        """The spec constants pika exports have the same values here."""
        for name in dir(pika.spec):
            if name.isupper():
                self.assertEqual(getattr(spec, name), getattr(pika.spec, name), name)


class PropertiesCrossCheckTests(SynchronousTestCase):
    """Content headers travel between our codec and pika's unchanged."""

    def check(self, channel: int, body_size: int, props: spec.BasicProperties) -> None:
        """Both directions for one content header."""
        data = codec.encode_header_frame(channel, body_size, props)
        consumed, pika_frame = pika.frame.decode_frame(data)
        self.assertEqual(consumed, len(data))
        assert isinstance(pika_frame, pika.frame.Header)
        self.assertEqual(pika_frame.body_size, body_size)
        for name, _ in spec.BasicProperties._fields:
            self.assertEqual(
                normalized(from_pika_value(getattr(pika_frame.properties, name))),
                normalized(getattr(props, name)),
                name,
            )
        theirs = pika.frame.Header(channel, body_size, to_pika_properties(props)).marshal()
        self.assertEqual(FrameDecoder().feed(theirs), [HeaderFrame(channel, body_size, props)])

    @settings(max_examples=200, deadline=None)
    @given(
        st.integers(0, 2**16 - 1),
        st.integers(0, 2**64 - 1),
        s.basic_properties(pika_compatible=True),
    )
    def test_any_properties(
        self, channel: int, body_size: int, props: spec.BasicProperties
    ) -> None:
        """Any combination of properties, with headers of every type both codecs
        handle alike, decodes the same in pika and here."""
        self.check(channel, body_size, props)

    def test_headers_of_every_shared_type(self) -> None:
        """Headers holding str, int32, int64, bool, nested dict, list, Decimal,
        whole-second datetime, bytes and None decode the same in both codecs."""
        headers = {
            "str": "héllo",
            "int32": -(2**31),
            "int64": 2**62,
            "bool": True,
            "nested": {"list": [1, "a", False, None, {"deep": [b"\x00"]}]},
            "decimal": Decimal("-12.345"),
            "when": datetime(2023, 5, 6, 7, 8, 9),
            "bytes": b"\xff\x00",
            "none": None,
        }
        self.check(1, 10, spec.BasicProperties(headers=headers, delivery_mode=2, timestamp=7))

    def test_bytes_identical(self) -> None:
        """Without headers, our content header is byte-identical to pika's."""
        props = spec.BasicProperties(
            content_type="text/plain",
            delivery_mode=2,
            priority=5,
            correlation_id="c",
            reply_to="r",
            expiration="60000",
            message_id="m",
            timestamp=1700000000,
            type="t",
            user_id="guest",
            app_id="a",
            cluster_id="x",
        )
        ours = codec.encode_header_frame(3, 42, props)
        theirs = pika.frame.Header(3, 42, to_pika_properties(props)).marshal()
        self.assertEqual(ours, theirs)


class FieldTableCrossCheckTests(SynchronousTestCase):
    """Field tables and values, and where pika's decoding goes wrong."""

    @settings(max_examples=200, deadline=None)
    @given(s.field_tables(pika_compatible=True, lossless=True))
    def test_tables_both_ways(self, table: dict[str, Any]) -> None:
        """Tables of shared types decode in pika as we encoded them, and pika's
        encoding decodes here to the same values."""
        ours = fields.encode_table(table)
        theirs_decoded, end = pika.data.decode_table(ours, 0)
        self.assertEqual(end, len(ours))
        self.assertEqual(normalized(from_pika_value(theirs_decoded)), normalized(table))
        pieces: list[bytes] = []
        pika.data.encode_table(pieces, table)
        theirs = b"".join(pieces)
        decoded, end = fields.decode_table(theirs, 0)
        self.assertEqual(end, len(theirs))
        self.assertEqual(normalized(decoded), normalized(table))

    def test_integer_signedness_agrees(self) -> None:
        """b, s, I, l are signed and B, u, i unsigned, in pika and here (pika gets
        b and B right)."""
        for encoded in (
            b"b\xff",
            b"B\xff",
            b"s\xff\xfe",
            b"u\xff\xfe",
            b"I\xff\xff\xff\xfd",
            b"i\xff\xff\xff\xfd",
            b"l" + b"\xff" * 8,
        ):
            ours, end = fields.decode_value(encoded, 0)
            theirs, pika_end = pika.data.decode_value(encoded, 0)
            self.assertEqual((ours, end), (theirs, pika_end), encoded)
        self.assertEqual(fields.decode_value(b"b\xff", 0)[0], -1)
        self.assertEqual(fields.decode_value(b"B\xff", 0)[0], 255)

    def test_floats_not_truncated(self) -> None:
        """We decode 'f' and 'd' to the float on the wire; pika 1.4 truncates
        them to int (int(1.5) == 1), which is pika's bug, not copied here."""
        for encoded, expected in (
            (b"d" + struct.pack(">d", 1.5), 1.5),
            (b"f" + struct.pack(">f", -2.75), -2.75),
        ):
            ours, _ = fields.decode_value(encoded, 0)
            self.assertEqual(ours, expected)
            self.assertIsInstance(ours, float)  # a Float32 for "f"
            # pika 1.4's pika.data.decode_value gives int(expected) here.

    def test_update_secret(self) -> None:
        """We decode Connection.UpdateSecret's arguments to their own attributes;
        pika 1.4's decode_frame raises TypeError on it, and its decode stores
        new_secret as ``mechanisms`` (pika's bugs, not copied here)."""
        method = spec.Connection.UpdateSecret(new_secret=b"\x00tok", reason="rotate")
        data = codec.encode_method_frame(0, method)
        (frame,) = FrameDecoder().feed(data)
        assert isinstance(frame, MethodFrame)
        assert isinstance(frame.method, spec.Connection.UpdateSecret)
        self.assertEqual((frame.method.new_secret, frame.method.reason), (b"\x00tok", "rotate"))
        self.assertEqual(codec.encode_frames([frame]), data)

    def test_timestamps_naive_utc(self) -> None:
        """We decode 'T' to a naive UTC datetime where pika gives an aware one;
        both name the same instant."""
        encoded = b"T" + struct.pack(">Q", 1700000000)
        ours, _ = fields.decode_value(encoded, 0)
        theirs, _ = pika.data.decode_value(encoded, 0)
        self.assertIsNone(ours.tzinfo)
        self.assertEqual(ours.replace(tzinfo=timezone.utc), theirs)

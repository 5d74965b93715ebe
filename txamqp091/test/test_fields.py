"""Tests for :mod:`txamqp091.fields`: field values, field tables and the generic
per-field codec."""

from __future__ import annotations

import collections
import enum
import math
import struct
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import fields
from txamqp091.exceptions import (
    AMQPError,
    InvalidFieldTypeException,
    ProtocolSyntaxError,
    ShortStringTooLong,
    UnsupportedAMQPFieldException,
)
from txamqp091.fields import (
    MAX_NESTING_DEPTH,
    decode_field,
    decode_fields,
    decode_table,
    decode_value,
    encode_field,
    encode_fields,
    encode_table,
    encode_value,
)
from txamqp091.test import strategies as s

#: Every type letter the decoder knows.
LETTERS = b"tbBsuIilfdDSATFVx"

#: Example values of every field kind, encoded by hand where it matters.
SAMPLES: list[Any] = [
    True,
    False,
    0,
    -1,
    s.INT32_MAX,
    s.INT32_MIN,
    s.INT64_MAX,
    s.INT64_MIN,
    1.5,
    -0.0,
    Decimal("3.14"),
    "hé",
    b"\x00\xff",
    datetime(2024, 2, 29, 12, 0, 1),
    None,
    [1, "a", [None]],
    {"k": {"n": [True]}},
    fields.Int8(-5),
    fields.UInt8(200),
    fields.Int16(-300),
    fields.UInt16(60000),
    fields.Int32(-7),
    fields.UInt32(4000000000),
    fields.Int64(5),
    fields.Float32(0.5),
    fields.LongStr(b"long"),
]


def nested_tables(levels: int) -> dict[str, Any]:
    """``levels`` tables nested in each other; the innermost is empty."""
    table: dict[str, Any] = {}
    for _ in range(levels - 1):
        table = {"k": table}
    return table


def nested_arrays(levels: int) -> list[Any]:
    """``levels`` arrays nested in each other; the innermost is empty."""
    array: list[Any] = []
    for _ in range(levels - 1):
        array = [array]
    return array


def deep_table_bytes(levels: int) -> bytes:
    """An encoded table nesting ``levels`` tables (without encode_table, which refuses)."""
    # Table k (counting from the innermost, 0) is 4 + 7 * k bytes long.
    parts = [struct.pack(">I", 7 * k) + b"\x01kF" for k in range(levels - 1, 0, -1)]
    parts.append(b"\x00\x00\x00\x00")
    return b"".join(parts)


def deep_array_value_bytes(levels: int) -> bytes:
    """An encoded field value nesting ``levels`` arrays ('A'), type letter first."""
    # Array k (from the innermost, 0) is 5 + 5 * k bytes long with its letter.
    parts = [b"A" + struct.pack(">I", 5 * k) for k in range(levels - 1, -1, -1)]
    return b"".join(parts)


def round_trip(value: Any) -> Any:
    """Encode one value, decode it, check the offset, and return the decoded value."""
    data = encode_value(value)
    decoded, end = decode_value(data, 0)
    assert end == len(data), (end, len(data))
    return decoded


class RoundTripTests(SynchronousTestCase):
    """Whatever is encoded decodes to the same value, of the expected type."""

    @settings(max_examples=300, deadline=None)
    @given(s.field_values())
    def test_any_value(self, value: Any) -> None:
        """Every supported value, nested tables and arrays included, round trips
        through encode_value/decode_value with its type (bool stays bool, int
        stays int, bytes stay bytes, str stays str)."""
        self.assertEqual(s.typed(round_trip(value)), s.typed(s.expected_decoded(value)))

    @settings(max_examples=200, deadline=None)
    @given(s.field_tables())
    def test_any_table(self, table: dict[str, Any]) -> None:
        """Every table round trips through encode_table/decode_table, and the
        returned offset is just past the table."""
        data = encode_table(table)
        decoded, end = decode_table(data, 0)
        self.assertEqual(end, len(data))
        self.assertEqual(s.typed(decoded), s.typed(s.expected_decoded(table)))

    @settings(max_examples=50, deadline=None)
    @given(s.field_tables(), st.binary(max_size=8), st.binary(max_size=8))
    def test_table_at_offset(self, table: dict[str, Any], before: bytes, after: bytes) -> None:
        """decode_table reads from ``offset`` and stops at the table's end,
        whatever surrounds it."""
        data = before + encode_table(table) + after
        decoded, end = decode_table(data, len(before))
        self.assertEqual(end, len(data) - len(after))
        self.assertEqual(s.typed(decoded), s.typed(s.expected_decoded(table)))

    def test_samples(self) -> None:
        """A hand-picked value of every type letter round trips."""
        for value in SAMPLES:
            self.assertEqual(s.typed(round_trip(value)), s.typed(s.expected_decoded(value)))

    def test_none_and_empty_table(self) -> None:
        """None and {} both encode as the empty table, which decodes to {}."""
        self.assertEqual(encode_table(None), b"\x00\x00\x00\x00")
        self.assertEqual(encode_table({}), b"\x00\x00\x00\x00")
        self.assertEqual(decode_table(b"\x00\x00\x00\x00", 0), ({}, 4))

    def test_int_boundaries(self) -> None:
        """ints use 'I' inside the signed 32-bit range and 'l' outside it, up to
        the signed 64-bit limits, and come back exactly."""
        cases = [
            (s.INT32_MAX, b"I"),
            (s.INT32_MIN, b"I"),
            (s.INT32_MAX + 1, b"l"),
            (s.INT32_MIN - 1, b"l"),
            (s.INT64_MAX, b"l"),
            (s.INT64_MIN, b"l"),
        ]
        for value, letter in cases:
            data = encode_value(value)
            self.assertEqual(data[:1], letter, value)
            self.assertEqual(round_trip(value), value)
            # "l" comes back as an Int64, which encodes back to "l".
            self.assertIs(type(round_trip(value)), int if letter == b"I" else fields.Int64)

    def test_int_out_of_int64(self) -> None:
        """ints outside the signed 64-bit range raise ValueError (2**63 and -2**63-1)."""
        for value in (s.INT64_MAX + 1, s.INT64_MIN - 1, 2**100):
            self.assertRaises(ValueError, encode_value, value)
            self.assertRaises(ValueError, encode_table, {"k": value})

    def test_bool_is_not_int(self) -> None:
        """bool encodes as 't' and decodes as bool, not as the int 1."""
        self.assertEqual(encode_value(True), b"t\x01")
        self.assertEqual(encode_value(False), b"t\x00")
        self.assertIs(round_trip(True), True)
        self.assertIs(round_trip(False), False)
        decoded, _ = decode_table(encode_table({"a": True, "b": 1}), 0)
        self.assertIs(decoded["a"], True)
        self.assertIs(type(decoded["b"]), int)

    def test_special_floats(self) -> None:
        """Doubles keep -0.0's sign and infinities; nan stays nan."""
        negative_zero = round_trip(-0.0)
        self.assertEqual(math.copysign(1.0, negative_zero), -1.0)
        self.assertEqual(round_trip(math.inf), math.inf)
        self.assertEqual(round_trip(-math.inf), -math.inf)
        self.assertTrue(math.isnan(round_trip(math.nan)))
        self.assertEqual(round_trip(5e-324), 5e-324)
        self.assertEqual(round_trip(1.7976931348623157e308), 1.7976931348623157e308)

    def test_special_float32(self) -> None:
        """Float32 keeps -0.0's sign, infinities and nan, and too-large values raise
        ValueError rather than becoming infinite."""
        negative_zero = round_trip(fields.Float32(-0.0))
        self.assertEqual(math.copysign(1.0, negative_zero), -1.0)
        self.assertEqual(round_trip(fields.Float32(math.inf)), math.inf)
        self.assertEqual(round_trip(fields.Float32(-math.inf)), -math.inf)
        self.assertTrue(math.isnan(round_trip(fields.Float32(math.nan))))
        self.assertRaises(ValueError, encode_value, fields.Float32(1e39))

    def test_decimals(self) -> None:
        """Decimals encode as scale octet plus signed 32-bit digits and decode to
        the same value and exponent."""
        cases = [
            (Decimal("3.14"), b"D\x02\x00\x00\x01\x3a"),
            (Decimal("-1.5"), b"D\x01\xff\xff\xff\xf1"),
            (Decimal("0"), b"D\x00\x00\x00\x00\x00"),
            (Decimal("1E+2"), b"D\x00\x00\x00\x00\x64"),
            (Decimal("-2147483648"), b"D\x00\x80\x00\x00\x00"),
            (Decimal("1E-255"), b"D\xff\x00\x00\x00\x01"),
        ]
        for value, encoded in cases:
            self.assertEqual(encode_value(value), encoded, value)
            decoded = round_trip(value)
            self.assertIsInstance(decoded, Decimal)
            self.assertEqual(decoded, value)
        self.assertEqual(round_trip(Decimal("1.10")).as_tuple().exponent, -2)

    def test_decimal_out_of_range(self) -> None:
        """Decimals that an AMQP decimal cannot hold raise ValueError: digits
        beyond 32 signed bits, scale above 255, NaN and infinities."""
        for value in (
            Decimal(2**31),
            Decimal(-(2**31) - 1),
            Decimal("1E+300"),
            Decimal("1E-256"),
            Decimal("NaN"),
            Decimal("sNaN"),
            Decimal("Infinity"),
            Decimal("-Infinity"),
        ):
            self.assertRaises(ValueError, encode_value, value)

    def test_datetimes(self) -> None:
        """Naive datetimes are UTC; aware ones are converted to UTC; both decode
        to a naive UTC datetime."""
        self.assertEqual(
            encode_value(datetime(1970, 1, 1, 0, 0, 1)), b"T\x00\x00\x00\x00\x00\x00\x00\x01"
        )
        aware = datetime(2020, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
        self.assertEqual(round_trip(aware), datetime(2020, 1, 1, 0, 0))
        self.assertEqual(
            round_trip(datetime(2020, 1, 1, tzinfo=timezone.utc)), datetime(2020, 1, 1)
        )
        last = datetime(9999, 12, 31, 23, 59, 59)
        self.assertEqual(round_trip(last), last)
        self.assertIsNone(round_trip(datetime(1970, 1, 1)).tzinfo)

    def test_datetime_errors(self) -> None:
        """Sub-second datetimes and datetimes before the epoch raise ValueError
        rather than lose information."""
        self.assertRaises(ValueError, encode_value, datetime(2020, 1, 1, 0, 0, 0, 1))
        self.assertRaises(ValueError, encode_value, datetime(1969, 12, 31, 23, 59, 59))

    def test_timestamp_out_of_range(self) -> None:
        """A timestamp beyond what datetime can hold is a ProtocolSyntaxError."""
        self.assertRaises(ProtocolSyntaxError, decode_value, b"T" + b"\xff" * 8, 0)

    def test_bytes_and_str(self) -> None:
        """str travels as 'S' and decodes to str; bytes and bytearray travel as
        'x' and decode to bytes; LongStr forces 'S'."""
        self.assertEqual(encode_value("hé"), b"S\x00\x00\x00\x03h\xc3\xa9")
        self.assertEqual(encode_value(b"ab"), b"x\x00\x00\x00\x02ab")
        self.assertEqual(encode_value(bytearray(b"ab")), b"x\x00\x00\x00\x02ab")
        self.assertEqual(encode_value(fields.LongStr(b"ab")), b"S\x00\x00\x00\x02ab")
        self.assertEqual(s.typed(round_trip("hé")), ("str", "hé"))
        self.assertEqual(s.typed(round_trip(b"ab")), ("bytes", b"ab"))
        self.assertEqual(s.typed(round_trip(fields.LongStr(b"ab"))), ("str", "ab"))

    def test_non_utf8_longstr_decodes_to_bytes(self) -> None:
        """An 'S' value that is not UTF-8 decodes to bytes, in tables and alone."""
        self.assertEqual(decode_value(b"S\x00\x00\x00\x02\xff\xfe", 0), (b"\xff\xfe", 7))
        table = b"\x00\x00\x00\x09\x01kS\x00\x00\x00\x02\xff\xfe"
        self.assertEqual(decode_table(table, 0), ({"k": b"\xff\xfe"}, len(table)))

    def test_non_utf8_key_survives(self) -> None:
        """A key that is not UTF-8 decodes (surrogateescape) to a str that encodes
        back to the same bytes."""
        data = b"\x00\x00\x00\x03\x01\xffV"
        table, _ = decode_table(data, 0)
        self.assertEqual(encode_table(table), data)

    def test_subclasses_of_builtins(self) -> None:
        """Subclasses of the built-in types (IntEnum, OrderedDict, str) encode as
        their base type."""

        class Colour(enum.IntEnum):
            RED = 5

        class Name(str):
            pass

        self.assertEqual(encode_value(Colour.RED), b"I\x00\x00\x00\x05")
        self.assertEqual(
            encode_value(collections.OrderedDict(a=1)), b"F\x00\x00\x00\x07\x01aI\x00\x00\x00\x01"
        )
        self.assertEqual(encode_value(Name("x")), b"S\x00\x00\x00\x01x")


class WrapperTests(SynchronousTestCase):
    """The wrappers force a type letter and check its range."""

    WRAPPERS: list[tuple[type[int], bytes, str, int, int]] = [
        (fields.Int8, b"b", ">b", -(2**7), 2**7 - 1),
        (fields.UInt8, b"B", ">B", 0, 2**8 - 1),
        (fields.Int16, b"s", ">h", -(2**15), 2**15 - 1),
        (fields.UInt16, b"u", ">H", 0, 2**16 - 1),
        (fields.Int32, b"I", ">i", -(2**31), 2**31 - 1),
        (fields.UInt32, b"i", ">I", 0, 2**32 - 1),
        (fields.Int64, b"l", ">q", -(2**63), 2**63 - 1),
    ]

    def test_letters_and_limits(self) -> None:
        """Each integer wrapper encodes its limits with its letter and layout, and
        they decode back as the same wrapper (Int32, "I", as a plain int), so that
        they encode back to the same bytes."""
        for wrapper, letter, layout, low, high in self.WRAPPERS:
            self.assertTrue(issubclass(wrapper, int))
            for value in (low, high, 0):
                data = encode_value(wrapper(value))
                self.assertEqual(data, letter + struct.pack(layout, value), wrapper)
                decoded = round_trip(wrapper(value))
                self.assertEqual(decoded, value)
                self.assertIs(type(decoded), int if wrapper is fields.Int32 else wrapper)
                self.assertEqual(encode_value(decoded), data)

    def test_range_errors(self) -> None:
        """Each integer wrapper refuses one below and one above its range with
        ValueError, alone and inside a table."""
        for wrapper, _, _, low, high in self.WRAPPERS:
            for value in (low - 1, high + 1):
                self.assertRaises(ValueError, encode_value, wrapper(value))
                self.assertRaises(ValueError, encode_table, {"k": wrapper(value)})

    def test_float32(self) -> None:
        """Float32 is a float encoded as 'f' (4 bytes) and decodes to a Float32."""
        self.assertTrue(issubclass(fields.Float32, float))
        self.assertEqual(encode_value(fields.Float32(1.5)), b"f\x3f\xc0\x00\x00")
        decoded = round_trip(fields.Float32(1.5))
        self.assertEqual(decoded, 1.5)
        self.assertIs(type(decoded), fields.Float32)

    def test_float_is_double(self) -> None:
        """A plain float is encoded as a double ('d', 8 bytes) without rounding."""
        self.assertEqual(encode_value(1.5), b"d" + struct.pack(">d", 1.5))
        self.assertEqual(round_trip(0.1), 0.1)

    def test_longstr(self) -> None:
        """LongStr is bytes encoded as 'S'."""
        self.assertTrue(issubclass(fields.LongStr, bytes))
        self.assertEqual(encode_value(fields.LongStr(b"\xff")), b"S\x00\x00\x00\x01\xff")
        self.assertEqual(round_trip(fields.LongStr(b"\xff")), b"\xff")


class LayoutTests(SynchronousTestCase):
    """Exact bytes of a few known values, computed by hand."""

    def test_tables(self) -> None:
        """Tables are a 32-bit length, then key (octet length + bytes), type
        letter and value for each entry."""
        cases: list[tuple[Any, bytes]] = [
            # 2 bytes of key + 'I' + 4 bytes = 7.
            ({"a": 1}, b"\x00\x00\x00\x07\x01aI\x00\x00\x00\x01"),
            ({"b": True}, b"\x00\x00\x00\x04\x01bt\x01"),
            ({"s": "hi"}, b"\x00\x00\x00\x09\x01sS\x00\x00\x00\x02hi"),
            ({"v": None}, b"\x00\x00\x00\x03\x01vV"),
            ({"t": {"u": None}}, b"\x00\x00\x00\x0a\x01tF\x00\x00\x00\x03\x01uV"),
            ({"a": 1, "b": 2}, b"\x00\x00\x00\x0e\x01aI\x00\x00\x00\x01\x01bI\x00\x00\x00\x02"),
        ]
        for table, encoded in cases:
            self.assertEqual(encode_table(table), encoded, table)
            self.assertEqual(decode_table(encoded, 0), (table, len(encoded)))

    def test_values(self) -> None:
        """Single values: type letter, then the big-endian value."""
        cases: list[tuple[Any, bytes]] = [
            (None, b"V"),
            (-2, b"I\xff\xff\xff\xfe"),
            (2**31, b"l\x00\x00\x00\x00\x80\x00\x00\x00"),
            (1.5, b"d\x3f\xf8\x00\x00\x00\x00\x00\x00"),
            ([1, "x"], b"A\x00\x00\x00\x0bI\x00\x00\x00\x01S\x00\x00\x00\x01x"),
            ((), b"A\x00\x00\x00\x00"),
            ({}, b"F\x00\x00\x00\x00"),
        ]
        for value, encoded in cases:
            self.assertEqual(encode_value(value), encoded, value)


class SignednessTests(SynchronousTestCase):
    """Hand-made bytes decode with the signedness RabbitMQ uses."""

    def test_integer_letters(self) -> None:
        """b, s, I, l are signed; B, u, i are unsigned."""
        cases = [
            (b"b\xff", -1),
            (b"b\x80", -128),
            (b"B\xff", 255),
            (b"B\x80", 128),
            (b"s\xff\xff", -1),
            (b"s\x80\x00", -32768),
            (b"u\xff\xff", 65535),
            (b"I\xff\xff\xff\xff", -1),
            (b"i\xff\xff\xff\xff", 2**32 - 1),
            (b"i\x80\x00\x00\x00", 2**31),
            (b"l\xff\xff\xff\xff\xff\xff\xff\xff", -1),
            (b"l\x80\x00\x00\x00\x00\x00\x00\x00", -(2**63)),
        ]
        for encoded, value in cases:
            self.assertEqual(decode_value(encoded, 0), (value, len(encoded)), encoded)

    def test_f_and_d(self) -> None:
        """'f' is a 4-byte float and 'd' an 8-byte double; both decode to float
        with their fraction (not truncated to int)."""
        value, end = decode_value(b"f" + struct.pack(">f", 2.5), 0)
        self.assertEqual((value, end), (2.5, 5))
        self.assertIs(type(value), fields.Float32)
        value, end = decode_value(b"d" + struct.pack(">d", 0.1), 0)
        self.assertEqual((value, end), (0.1, 9))
        value, _ = decode_value(b"f" + struct.pack(">f", 0.1), 0)
        self.assertEqual(value, struct.unpack(">f", struct.pack(">f", 0.1))[0])

    def test_decimal_and_bool(self) -> None:
        """A decimal's digits are signed; any non-zero boolean octet is True."""
        self.assertEqual(decode_value(b"D\x02\xff\xff\xff\xff", 0), (Decimal("-0.01"), 6))
        self.assertEqual(decode_value(b"t\x02", 0), (True, 2))
        self.assertEqual(decode_value(b"t\x00", 0), (False, 2))


class EncodeErrorTests(SynchronousTestCase):
    """Values that cannot be encoded raise a precise exception."""

    def test_unsupported_types(self) -> None:
        """Values of unsupported types raise UnsupportedAMQPFieldException (also a
        TypeError), alone, in tables and in arrays."""
        for value in (object(), {1, 2}, 1j, frozenset(), datetime.now().date()):
            self.assertRaises(UnsupportedAMQPFieldException, encode_value, value)
            self.assertRaises(UnsupportedAMQPFieldException, encode_table, {"k": value})
            self.assertRaises(UnsupportedAMQPFieldException, encode_value, [value])
            self.assertRaises(TypeError, encode_value, value)

    def test_table_must_be_mapping(self) -> None:
        """encode_table refuses a non-mapping with UnsupportedAMQPFieldException."""
        self.assertRaises(UnsupportedAMQPFieldException, encode_table, [("a", 1)])

    def test_non_str_key(self) -> None:
        """A key that is not a str raises UnsupportedAMQPFieldException."""
        self.assertRaises(UnsupportedAMQPFieldException, encode_table, {1: 2})
        self.assertRaises(UnsupportedAMQPFieldException, encode_table, {None: 2})

    def test_str_subclass_keys(self) -> None:
        """Keys that are str subclasses (StrEnum members, say) encode like str,
        as str subclasses do as values (and as pika accepts them)."""

        class Key(str):
            pass

        expected = b"\x00\x00\x00\x07\x01kI\x00\x00\x00\x01"
        self.assertEqual(encode_table({Key("k"): 1}), expected)
        self.assertEqual(encode_table({Key("é"): None}), b"\x00\x00\x00\x04\x02\xc3\xa9V")

    def test_key_too_long(self) -> None:
        """A key longer than 255 bytes raises ShortStringTooLong, counting UTF-8
        bytes, not characters; 255 bytes are fine."""
        self.assertEqual(decode_table(encode_table({"k" * 255: 1}), 0)[0], {"k" * 255: 1})
        self.assertRaises(ShortStringTooLong, encode_table, {"k" * 256: 1})
        self.assertRaises(ShortStringTooLong, encode_table, {"é" * 128: 1})
        self.assertRaises(ShortStringTooLong, encode_table, {"k": {"k" * 256: 1}})
        self.assertRaises(ShortStringTooLong, encode_value, [{"k" * 256: 1}])

    def test_cyclic_values(self) -> None:
        """Cyclic dicts and lists raise ValueError, not RecursionError."""
        table: dict[str, Any] = {}
        table["self"] = table
        array: list[Any] = []
        array.append(array)
        mixed: dict[str, Any] = {}
        mixed["list"] = [mixed]
        for value in (table, mixed):
            self.assertRaises(ValueError, encode_table, value)
            self.assertRaises(ValueError, encode_value, value)
        self.assertRaises(ValueError, encode_value, array)
        self.assertRaises(ValueError, encode_table, {"a": array})

    def test_nesting_limit_both_ways(self) -> None:
        """Whatever nesting encode_table/encode_value accepts, decode_table and
        decode_value accept too (the limit is the same both ways, including
        for an empty innermost table)."""
        accepted = 0
        for levels in range(MAX_NESTING_DEPTH - 2, MAX_NESTING_DEPTH + 3):
            for value in (nested_tables(levels), {"k": nested_arrays(levels)}):
                try:
                    data = encode_table(value)
                except ValueError:
                    continue
                accepted += 1
                decoded, _ = decode_table(data, 0)
                self.assertEqual(decoded, value)
            try:
                data = encode_value(nested_arrays(levels))
            except ValueError:
                continue
            accepted += 1
            self.assertEqual(decode_value(data, 0)[0], nested_arrays(levels))
        # The levels just under the limit must have been accepted, both shapes.
        self.assertGreaterEqual(accepted, 6)

    def test_nesting_limit(self) -> None:
        """MAX_NESTING_DEPTH nested tables encode; deeper non-empty nesting raises
        ValueError."""
        encode_table(nested_tables(MAX_NESTING_DEPTH))
        self.assertRaises(ValueError, encode_table, {"k": nested_tables(MAX_NESTING_DEPTH + 1)})
        self.assertRaises(ValueError, encode_value, nested_arrays(MAX_NESTING_DEPTH + 2))

    def test_unencodable_surrogate(self) -> None:
        """A str holding a lone surrogate that surrogateescape cannot encode
        raises ValueError (as a key and as a value)."""
        self.assertRaises(ValueError, encode_table, {"\ud800": 1})
        self.assertRaises(ValueError, encode_value, "\ud800")


class DecodeErrorTests(SynchronousTestCase):
    """Malformed input raises ProtocolSyntaxError (or a subclass), never anything else."""

    def assert_syntax_error(self, data: bytes, offset: int = 0) -> ProtocolSyntaxError:
        """decode_table(data) raises a ProtocolSyntaxError; return it."""
        exc = self.assertRaises(ProtocolSyntaxError, decode_table, data, offset)
        assert isinstance(exc, ProtocolSyntaxError)
        return exc

    @settings(max_examples=60, deadline=None)
    @given(s.field_tables(max_size=4).filter(bool))
    def test_truncated_table_at_every_cut(self, table: dict[str, Any]) -> None:
        """Every proper prefix of an encoded table raises ProtocolSyntaxError."""
        data = encode_table(table)
        for cut in range(len(data)):
            self.assert_syntax_error(data[:cut])

    def test_truncated_samples_at_every_cut(self) -> None:
        """Every proper prefix of a table holding one value of each type raises
        ProtocolSyntaxError."""
        data = encode_table({str(i): value for i, value in enumerate(SAMPLES)})
        for cut in range(len(data)):
            self.assert_syntax_error(data[:cut])

    def test_truncated_value_at_every_cut(self) -> None:
        """Every proper prefix of an encoded value, decoded with decode_value,
        raises ProtocolSyntaxError (decode_value is public and documented to)."""
        failures = []
        for value in SAMPLES:
            data = encode_value(value)
            for cut in range(len(data)):
                try:
                    decode_value(data[:cut], 0)
                except ProtocolSyntaxError:
                    continue
                except Exception as exc:
                    failures.append(f"{value!r} cut at {cut}: {type(exc).__name__}")
                else:
                    failures.append(f"{value!r} cut at {cut}: decoded")
        self.assertEqual(failures, [])

    def test_truncated_bool_value(self) -> None:
        """decode_value of a boolean without its octet raises ProtocolSyntaxError,
        not IndexError."""
        self.assertRaises(ProtocolSyntaxError, decode_value, b"t", 0)
        self.assertRaises(ProtocolSyntaxError, decode_value, b"A\x00\x00\x00\x01t", 0)

    def test_bad_letters(self) -> None:
        """Every byte that is not a type letter raises InvalidFieldTypeException
        (reply code 502), in a table and in an array."""
        for code in range(256):
            if code in LETTERS:
                continue
            letter = bytes([code])
            exc = self.assertRaises(
                InvalidFieldTypeException,
                decode_table,
                b"\x00\x00\x00\x03\x01k" + letter,
                0,
            )
            self.assertEqual(exc.reply_code, 502)
            self.assertRaises(
                InvalidFieldTypeException,
                decode_table,
                b"\x00\x00\x00\x08\x01kA\x00\x00\x00\x01" + letter,
                0,
            )
            self.assertRaises(InvalidFieldTypeException, decode_value, letter + b"\x00" * 8, 0)

    def test_lengths_overrunning(self) -> None:
        """Lengths that claim more bytes than their container holds raise
        ProtocolSyntaxError."""
        cases = [
            # The table claims 8 bytes; 7 follow.
            b"\x00\x00\x00\x08\x01aI\x00\x00\x00\x01",
            # The table claims 3 bytes, its only entry needs 7.
            b"\x00\x00\x00\x03\x01aI\x00\x00\x00\x01",
            # A key of 5 bytes in a 3-byte table.
            b"\x00\x00\x00\x03\x05abcdefgV",
            # 'S' claiming 100 bytes inside a table of 9.
            b"\x00\x00\x00\x09\x01sS\x00\x00\x00\x64hi",
            # 'x' claiming 100 bytes.
            b"\x00\x00\x00\x09\x01sx\x00\x00\x00\x64hi",
            # 'A' claiming 100 bytes.
            b"\x00\x00\x00\x08\x01sA\x00\x00\x00\x64V",
            # An array whose item overruns the array's declared length.
            b"\x00\x00\x00\x0c\x01sA\x00\x00\x00\x01I\x00\x00\x00\x01",
            # A nested table claiming more than the outer table holds.
            b"\x00\x00\x00\x08\x01tF\x00\x00\x00\x10V",
            # 'S' claiming 4 GiB.
            b"\x00\x00\x00\x09\x01sS\xff\xff\xff\xffhi",
        ]
        for data in cases:
            self.assert_syntax_error(data)
            # Followed by more data, as inside a method frame.
            self.assert_syntax_error(data + b"\x00" * 200)

    def test_huge_length_prefix(self) -> None:
        """A 0xFFFFFFFF table length prefix raises ProtocolSyntaxError at once."""
        self.assert_syntax_error(b"\xff\xff\xff\xff")
        self.assert_syntax_error(b"\xff\xff\xff\xff" + b"\x00" * 100)

    def test_offset_past_end(self) -> None:
        """decode_table at or past the end of the data raises ProtocolSyntaxError."""
        self.assert_syntax_error(b"\x00\x00\x00\x00", 4)
        self.assert_syntax_error(b"", 10)
        self.assertRaises(ProtocolSyntaxError, decode_value, b"", 0)

    def test_deep_tables(self) -> None:
        """10,000 nested tables raise ProtocolSyntaxError, not RecursionError."""
        exc = self.assert_syntax_error(deep_table_bytes(10_000))
        self.assertEqual(exc.reply_code, 502)

    def test_deep_arrays(self) -> None:
        """10,000 nested arrays raise ProtocolSyntaxError, not RecursionError, in
        a table and alone."""
        value = deep_array_value_bytes(10_000)
        table = struct.pack(">I", len(value) + 2) + b"\x01k" + value
        exc = self.assert_syntax_error(table)
        self.assertEqual(exc.reply_code, 502)
        self.assertRaises(ProtocolSyntaxError, decode_value, value, 0)

    def test_deep_limit(self) -> None:
        """MAX_NESTING_DEPTH nested tables decode; one more raises ProtocolSyntaxError."""
        decoded, _ = decode_table(deep_table_bytes(MAX_NESTING_DEPTH), 0)
        self.assertEqual(decoded, nested_tables(MAX_NESTING_DEPTH))
        self.assert_syntax_error(deep_table_bytes(MAX_NESTING_DEPTH + 1))

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=64))
    def test_garbage_table(self, data: bytes) -> None:
        """Arbitrary bytes either decode as a table or raise ProtocolSyntaxError."""
        try:
            decode_table(data, 0)
        except ProtocolSyntaxError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(list(LETTERS)), st.binary(max_size=24))
    def test_garbage_value(self, letter: int, data: bytes) -> None:
        """Any type letter followed by arbitrary bytes either decodes or raises
        ProtocolSyntaxError, alone and inside a table."""
        value = bytes([letter]) + data
        try:
            decode_value(value, 0)
        except ProtocolSyntaxError:
            pass
        try:
            decode_table(struct.pack(">I", len(value) + 2) + b"\x01k" + value, 0)
        except ProtocolSyntaxError:
            pass

    @settings(max_examples=200, deadline=None)
    @given(s.field_tables(max_size=4).filter(bool), st.data())
    def test_mutated_table(self, table: dict[str, Any], data: st.DataObject) -> None:
        """A valid table with one byte changed either decodes or raises
        ProtocolSyntaxError."""
        encoded = bytearray(encode_table(table))
        index = data.draw(st.integers(0, len(encoded) - 1))
        encoded[index] = data.draw(st.integers(0, 255))
        try:
            decode_table(bytes(encoded), 0)
        except ProtocolSyntaxError:
            pass


class FieldCodecTests(SynchronousTestCase):
    """The generic per-field codec (the spec's validating slow path)."""

    @settings(max_examples=200, deadline=None)
    @given(
        st.sampled_from([k for k in s.FIELD_KINDS if k != "bit"]).flatmap(
            lambda kind: st.tuples(st.just(kind), s.values_for_kind(kind))
        )
    )
    def test_round_trip(self, case: tuple[str, Any]) -> None:
        """Every field kind round trips through encode_field/decode_field."""
        kind, value = case
        data = encode_field(kind, "f", value)
        decoded, end = decode_field(kind, "f", data, 0)
        self.assertEqual(end, len(data))
        self.assertEqual(s.typed(decoded), s.typed(s.expected_field(kind, value)))

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.sampled_from(s.FIELD_KINDS), max_size=12).flatmap(
            lambda kinds: st.tuples(
                st.just(tuple((f"f{i}", kind) for i, kind in enumerate(kinds))),
                st.tuples(*(s.values_for_kind(kind) for kind in kinds)),
            )
        )
    )
    def test_field_lists(self, case: tuple[tuple[tuple[str, str], ...], tuple[Any, ...]]) -> None:
        """Any list of fields (bits packed) round trips through
        encode_fields/decode_fields."""
        field_list, values = case
        data = encode_fields("M", field_list, values)
        decoded, end = decode_fields("M", field_list, data, 0)
        self.assertEqual(end, len(data))
        expected = [
            s.expected_field(kind, v) for (_, kind), v in zip(field_list, values, strict=True)
        ]
        self.assertEqual(s.typed(decoded), s.typed(expected))

    def test_bit_packing(self) -> None:
        """Consecutive bits share octets (eight to one, lowest bit first); any
        other field ends the run."""
        layout = [("a", "bit"), ("b", "bit"), ("c", "octet"), ("d", "bit")]
        self.assertEqual(encode_fields("M", layout, [True, False, 7, True]), b"\x01\x07\x01")
        nine = [(f"b{i}", "bit") for i in range(9)]
        self.assertEqual(encode_fields("M", nine, [True] * 9), b"\xff\x01")
        self.assertEqual(decode_fields("M", nine, b"\xff\x01", 0), ([True] * 9, 2))

    def test_exact_layouts(self) -> None:
        """Fixed kinds are unsigned big-endian; strings are length-prefixed."""
        self.assertEqual(encode_field("octet", "f", 255), b"\xff")
        self.assertEqual(encode_field("short", "f", 258), b"\x01\x02")
        self.assertEqual(encode_field("long", "f", 2**32 - 1), b"\xff\xff\xff\xff")
        self.assertEqual(encode_field("longlong", "f", 1), b"\x00" * 7 + b"\x01")
        self.assertEqual(encode_field("shortstr", "f", "hé"), b"\x03h\xc3\xa9")
        self.assertEqual(encode_field("longstr", "f", "hi"), b"\x00\x00\x00\x02hi")
        self.assertEqual(encode_field("longstr", "f", b"hi"), b"\x00\x00\x00\x02hi")
        self.assertEqual(encode_field("table", "f", None), b"\x00\x00\x00\x00")

    def test_timestamp_accepts_datetime(self) -> None:
        """A timestamp field accepts a whole-second datetime (naive = UTC)."""
        self.assertEqual(
            encode_field("timestamp", "f", datetime(1970, 1, 1, 0, 0, 5)), b"\x00" * 7 + b"\x05"
        )

    def test_errors_name_the_field(self) -> None:
        """Bad values raise TypeError, ValueError, ShortStringTooLong or
        UnsupportedAMQPFieldException, naming the field."""
        cases: list[tuple[type[Exception], str, Any]] = [
            (TypeError, "shortstr", 5),
            (ShortStringTooLong, "shortstr", "x" * 256),
            (ShortStringTooLong, "shortstr", b"x" * 256),
            (ValueError, "short", -1),
            (ValueError, "short", 2**16),
            (ValueError, "octet", 256),
            (ValueError, "long", 2**32),
            (ValueError, "longlong", 2**64),
            (TypeError, "long", 1.0),
            (TypeError, "octet", "1"),
            (TypeError, "longstr", 5),
            (TypeError, "table", [1]),
            (UnsupportedAMQPFieldException, "table", {"a": object()}),
            (ShortStringTooLong, "table", {"k" * 256: 1}),
        ]
        for kind_of_error, kind, value in cases:
            exc = self.assertRaises(kind_of_error, encode_field, kind, "Thing.field_name", value)
            self.assertIn("field_name", str(exc), (kind, value))

    def test_truncated_fields(self) -> None:
        """A truncated field raises ProtocolSyntaxError naming the field."""
        cases = [
            ("octet", b""),
            ("short", b"\x00"),
            ("long", b"\x00\x00\x00"),
            ("longlong", b"\x00" * 7),
            ("timestamp", b"\x00" * 7),
            ("shortstr", b""),
            ("shortstr", b"\x05abc"),
            ("longstr", b"\x00\x00\x00\x05abc"),
            ("table", b"\x00\x00\x00\x05\x01aV"),
        ]
        for kind, data in cases:
            exc = self.assertRaises(
                ProtocolSyntaxError, decode_field, kind, "M.field_name", data, 0
            )
            self.assertIn("field_name", str(exc))
        exc = self.assertRaises(ProtocolSyntaxError, decode_fields, "M", [("flag", "bit")], b"", 0)
        self.assertIn("flag", str(exc))

    def test_non_utf8_shortstr(self) -> None:
        """A non-UTF-8 short string decodes with surrogateescape and encodes back
        to the same bytes."""
        value, end = decode_field("shortstr", "f", b"\x02\xff\xfe", 0)
        self.assertEqual(end, 3)
        self.assertEqual(encode_field("shortstr", "f", value), b"\x02\xff\xfe")

    def test_errors_are_amqp_errors(self) -> None:
        """The codec's decode errors are AMQPErrors with a reply code."""
        exc = self.assertRaises(ProtocolSyntaxError, decode_table, b"\xff", 0)
        self.assertIsInstance(exc, AMQPError)
        self.assertIn(exc.reply_code, (501, 502))

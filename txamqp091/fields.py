"""AMQP field values and field tables, and the generic per-field codec.

Field tables carry the ``arguments`` of declarations, the ``headers`` message
property and the peers' ``client_properties``/``server_properties``. Each value
is tagged with a one-letter type; these are the letters RabbitMQ uses:

====  =========================  ==========================================
code  AMQP type                  Python value (decoded)
====  =========================  ==========================================
t     boolean                    :class:`bool`
b     signed 8-bit               :class:`Int8` (an :class:`int`)
B     unsigned 8-bit             :class:`UInt8` (an :class:`int`)
s     signed 16-bit              :class:`Int16` (an :class:`int`)
u     unsigned 16-bit            :class:`UInt16` (an :class:`int`)
I     signed 32-bit              :class:`int`
i     unsigned 32-bit            :class:`UInt32` (an :class:`int`)
l     signed 64-bit              :class:`Int64` (an :class:`int`)
f     32-bit float               :class:`Float32` (a :class:`float`)
d     64-bit float               :class:`float`
D     decimal (scale, int32)     :class:`decimal.Decimal`
S     long string                :class:`str` (:class:`LongStr`, a :class:`bytes`,
                                 if not UTF-8)
A     array                      :class:`list`
T     timestamp (seconds)        naive UTC :class:`datetime.datetime`
F     nested table               :class:`dict`
V     void                       ``None``
x     byte array                 :class:`bytes`
====  =========================  ==========================================

Encoding picks the type from the Python value: ``bool`` → ``t``, ``int`` →
``I`` when it fits 32 signed bits, else ``l`` (values outside the signed 64-bit
range raise :class:`ValueError`), ``float`` → ``d``, ``Decimal`` → ``D``,
``str`` → ``S``, ``bytes``/``bytearray`` → ``x``, ``datetime`` → ``T``
(naive values are taken as UTC; sub-second values raise :class:`ValueError`
rather than lose precision), ``list``/``tuple`` → ``A``, any mapping → ``F``,
``None`` → ``V``. To force another type, wrap the value: :class:`Int8`,
:class:`UInt8`, :class:`Int16`, :class:`UInt16`, :class:`Int32`,
:class:`UInt32`, :class:`Int64`, :class:`Float32`, :class:`LongStr`.
Decoding gives those wrappers for the types that a plain value would not encode
back to, so a decoded table encodes to the same bytes (a relayed message keeps its
headers' types); they are subclasses of :class:`int`, :class:`float` and
:class:`bytes`, and compare equal to plain values.

The second half of this module is the generic, table-driven codec for method
and property fields. The generated :mod:`txamqp091.spec` has fast straight-line
code for every method; it falls back to these functions only to produce a
precise error, or for rare inputs (non-UTF-8 short strings, continuation
property flags).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from txamqp091.exceptions import (
    InvalidFieldTypeException,
    InvalidFrameError,
    ProtocolSyntaxError,
    ShortStringTooLong,
    UnsupportedAMQPFieldException,
)

__all__ = [
    "MAX_NESTING_DEPTH",
    "FieldTable",
    "Float32",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "LongStr",
    "UInt8",
    "UInt16",
    "UInt32",
    "decode_field",
    "decode_table",
    "decode_value",
    "encode_field",
    "encode_table",
    "encode_value",
]

#: A decoded field table.
FieldTable = dict[str, Any]

#: Tables and arrays nested deeper than this are refused, both ways, so that a
#: hostile peer cannot exhaust the stack (and a cyclic dict cannot loop).
MAX_NESTING_DEPTH = 64

_EMPTY_TABLE = b"\x00\x00\x00\x00"
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_U8 = struct.Struct(">B")
_I8 = struct.Struct(">b")
_U16 = struct.Struct(">H")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_DEC = struct.Struct(">Bi")
_TAG_I32 = struct.Struct(">ci")
_TAG_I64 = struct.Struct(">cq")
_TAG_U32 = struct.Struct(">cI")
_TAG_F64 = struct.Struct(">cd")


# --------------------------------------------------------------------------
# Wrappers that force a field type.


class Int8(int):
    """An ``int`` encoded as a signed 8-bit field value (``b``)."""

    __slots__ = ()


class UInt8(int):
    """An ``int`` encoded as an unsigned 8-bit field value (``B``)."""

    __slots__ = ()


class Int16(int):
    """An ``int`` encoded as a signed 16-bit field value (``s``)."""

    __slots__ = ()


class UInt16(int):
    """An ``int`` encoded as an unsigned 16-bit field value (``u``)."""

    __slots__ = ()


class Int32(int):
    """An ``int`` encoded as a signed 32-bit field value (``I``)."""

    __slots__ = ()


class UInt32(int):
    """An ``int`` encoded as an unsigned 32-bit field value (``i``)."""

    __slots__ = ()


class Int64(int):
    """An ``int`` encoded as a signed 64-bit field value (``l``)."""

    __slots__ = ()


class Float32(float):
    """A ``float`` encoded as a 32-bit float field value (``f``)."""

    __slots__ = ()


class LongStr(bytes):
    """``bytes`` encoded as a long string (``S``) instead of a byte array (``x``)."""

    __slots__ = ()


# --------------------------------------------------------------------------
# Encoding field values.


def _short_key(key: object) -> bytes:
    if isinstance(key, str):
        try:
            raw = key.encode()
        except UnicodeEncodeError:
            raw = _encode_surrogates(key, "table key")
    elif isinstance(key, (bytes, bytearray)):
        raw = bytes(key)
    else:
        raise UnsupportedAMQPFieldException(
            f"field table keys must be str, not {type(key).__name__}"
        )
    if len(raw) > 255:
        raise ShortStringTooLong(f"table key is {len(raw)} bytes long, the limit is 255")
    return _U8.pack(len(raw)) + raw


def _encode_surrogates(value: str, what: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} cannot be encoded as UTF-8: {exc}") from None


def _ranged(
    code: bytes, packer: struct.Struct, low: int, high: int
) -> Callable[[Any, int], bytes]:
    def encode(value: Any, depth: int) -> bytes:
        if not low <= value <= high:
            raise ValueError(f"{value} does not fit field type {code.decode()!r} ({low}..{high})")
        return code + packer.pack(value)

    return encode


def _encode_int(value: int, depth: int) -> bytes:
    if _INT32_MIN <= value <= _INT32_MAX:
        return _TAG_I32.pack(b"I", value)
    if _INT64_MIN <= value <= _INT64_MAX:
        return _TAG_I64.pack(b"l", value)
    raise ValueError(f"{value} does not fit a signed 64-bit field value")


def _encode_str(value: str, depth: int) -> bytes:
    try:
        raw = value.encode()
    except UnicodeEncodeError:
        raw = _encode_surrogates(value, "string field value")
    return _TAG_U32.pack(b"S", len(raw)) + raw


def _encode_bytes(value: bytes | bytearray, depth: int) -> bytes:
    return _TAG_U32.pack(b"x", len(value)) + bytes(value)


def _encode_longstr(value: bytes, depth: int) -> bytes:
    return _TAG_U32.pack(b"S", len(value)) + bytes(value)


def _encode_float32(value: float, depth: int) -> bytes:
    try:
        return b"f" + _F32.pack(value)
    except OverflowError:
        raise ValueError(f"{value} does not fit a 32-bit float field value") from None


def _encode_decimal(value: Decimal, depth: int) -> bytes:
    if not value.is_finite():
        raise ValueError(f"decimal field values must be finite, not {value}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    unscaled = int("".join(map(str, digits)) or "0")
    if exponent > 0:
        unscaled *= 10**exponent
        exponent = 0
    if sign:
        unscaled = -unscaled
    scale = -exponent
    if scale > 255 or not _INT32_MIN <= unscaled <= _INT32_MAX:
        raise ValueError(
            f"decimal {value} does not fit an AMQP decimal (scale 0..255, 32-bit signed digits)"
        )
    return b"D" + _DEC.pack(scale, unscaled)


def _encode_datetime(value: datetime, depth: int) -> bytes:
    if value.microsecond:
        raise ValueError(
            f"AMQP timestamps have whole-second precision; {value!r} would lose its "
            "microseconds (use value.replace(microsecond=0))"
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    seconds = int(value.timestamp())
    if not 0 <= seconds <= 2**64 - 1:
        raise ValueError(f"{value!r} is before the epoch and cannot be an AMQP timestamp")
    return b"T" + _U64.pack(seconds)


def _encode_array(value: Sequence[Any], depth: int) -> bytes:
    if depth >= MAX_NESTING_DEPTH:
        raise ValueError(f"field values nest deeper than {MAX_NESTING_DEPTH} levels")
    body = b"".join([encode_value(item, depth + 1) for item in value])
    return _TAG_U32.pack(b"A", len(body)) + body


def _encode_table_value(value: Mapping[str, Any], depth: int) -> bytes:
    return b"F" + encode_table(value, depth + 1)


_ENCODERS: dict[type, Callable[[Any, int], bytes]] = {
    int: _encode_int,
    bool: lambda value, depth: b"t\x01" if value else b"t\x00",
    str: _encode_str,
    float: lambda value, depth: _TAG_F64.pack(b"d", value),
    bytes: _encode_bytes,
    bytearray: _encode_bytes,
    type(None): lambda value, depth: b"V",
    dict: _encode_table_value,
    list: _encode_array,
    tuple: _encode_array,
    Decimal: _encode_decimal,
    datetime: _encode_datetime,
    Int8: _ranged(b"b", _I8, -(2**7), 2**7 - 1),
    UInt8: _ranged(b"B", _U8, 0, 2**8 - 1),
    Int16: _ranged(b"s", _I16, -(2**15), 2**15 - 1),
    UInt16: _ranged(b"u", _U16, 0, 2**16 - 1),
    Int32: _ranged(b"I", _I32, _INT32_MIN, _INT32_MAX),
    UInt32: _ranged(b"i", _U32, 0, 2**32 - 1),
    Int64: _ranged(b"l", _I64, _INT64_MIN, _INT64_MAX),
    Float32: _encode_float32,
    LongStr: _encode_longstr,
}

# Checked in order for subclasses of the built-in types (IntEnum, OrderedDict, ...).
_FALLBACKS: tuple[tuple[type, Callable[[Any, int], bytes]], ...] = (
    (bool, _ENCODERS[bool]),
    (int, _encode_int),
    (float, _ENCODERS[float]),
    (str, _encode_str),
    (bytes, _encode_bytes),
    (bytearray, _encode_bytes),
    (Decimal, _encode_decimal),
    (datetime, _encode_datetime),
    (Mapping, _encode_table_value),
    (list, _encode_array),
    (tuple, _encode_array),
)


def encode_value(value: Any, depth: int = 0) -> bytes:
    """Encode one field value, type letter first.

    :param value: any supported Python value (see the module documentation).
    :param depth: how deep in nested tables/arrays this value sits.
    :raises UnsupportedAMQPFieldException: for a value of an unsupported type.
    :raises ValueError: for a value out of its type's range.
    """
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        for base, candidate in _FALLBACKS:
            if isinstance(value, base):
                encoder = candidate
                break
        else:
            raise UnsupportedAMQPFieldException(
                f"cannot encode a {type(value).__name__} as an AMQP field value: {value!r}"
            )
    return encoder(value, depth)


def encode_table(table: Mapping[str, Any] | None, depth: int = 0) -> bytes:
    """Encode a field table, with its 32-bit length prefix.

    ``None`` and an empty mapping give the empty table.

    :raises ShortStringTooLong: when a key is longer than 255 bytes.
    :raises UnsupportedAMQPFieldException: for a value of an unsupported type.
    :raises ValueError: for a value out of range or nesting deeper than
        :data:`MAX_NESTING_DEPTH`.
    """
    if type(table) is not dict:
        if table is None:
            return _EMPTY_TABLE
        if not isinstance(table, Mapping):
            raise UnsupportedAMQPFieldException(
                f"a field table must be a mapping, not {type(table).__name__}"
            )
    if depth >= MAX_NESTING_DEPTH:
        raise ValueError(f"field tables nest deeper than {MAX_NESTING_DEPTH} levels")
    if not table:
        return _EMPTY_TABLE
    parts = []
    for key, value in table.items():
        # Inline the common cases (str keys; int and str values); the rest go
        # through the general, validating encoders.
        if type(key) is str and key.isascii() and len(key) < 256:
            entry = _U8.pack(len(key)) + key.encode()
        else:
            entry = _short_key(key)
        kind = type(value)
        if kind is int and _INT32_MIN <= value <= _INT32_MAX:
            parts.append(entry + _TAG_I32.pack(b"I", value))
        elif kind is str and value.isascii():
            parts.append(entry + _TAG_U32.pack(b"S", len(value)) + value.encode())
        else:
            parts.append(entry + encode_value(value, depth))
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


# --------------------------------------------------------------------------
# Decoding field values.

_Decoder = Callable[[bytes, int, int], tuple[Any, int]]


def _fixed(unpacker: struct.Struct) -> _Decoder:
    size = unpacker.size

    def decode(data: bytes, offset: int, depth: int) -> tuple[Any, int]:
        return unpacker.unpack_from(data, offset)[0], offset + size

    return decode


def _take(data: bytes, offset: int, length: int) -> bytes:
    end = offset + length
    if end > len(data):
        raise InvalidFrameError(
            f"a field claims {length} bytes but only {len(data) - offset} remain"
        )
    return data[offset:end]


def _typed(unpacker: struct.Struct, kind: Callable[[Any], Any]) -> _Decoder:
    """A fixed-size value decoded as *kind* (a wrapper that encodes back to the same
    type letter: a relayed header keeps its wire type)."""
    size = unpacker.size

    def decode(data: bytes, offset: int, depth: int) -> tuple[Any, int]:
        return kind(unpacker.unpack_from(data, offset)[0]), offset + size

    return decode


def _decode_longstr(data: bytes, offset: int, depth: int) -> tuple[Any, int]:
    length = _U32.unpack_from(data, offset)[0]
    raw = _take(data, offset + 4, length)
    try:
        return raw.decode(), offset + 4 + length
    except UnicodeDecodeError:
        return LongStr(raw), offset + 4 + length


def _decode_bytes(data: bytes, offset: int, depth: int) -> tuple[Any, int]:
    length = _U32.unpack_from(data, offset)[0]
    return _take(data, offset + 4, length), offset + 4 + length


def _decode_bool(data: bytes, offset: int, depth: int) -> tuple[Any, int]:
    return data[offset] != 0, offset + 1


def _decode_decimal(data: bytes, offset: int, depth: int) -> tuple[Any, int]:
    scale, unscaled = _DEC.unpack_from(data, offset)
    return Decimal(unscaled).scaleb(-scale), offset + 5


def _decode_timestamp(data: bytes, offset: int, depth: int) -> tuple[Any, int]:
    seconds = _U64.unpack_from(data, offset)[0]
    try:
        stamp = datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        raise ProtocolSyntaxError(f"timestamp {seconds} is out of range") from None
    return stamp, offset + 8


def _decode_array(data: bytes, offset: int, depth: int) -> tuple[Any, int]:
    if depth >= MAX_NESTING_DEPTH:
        raise ProtocolSyntaxError(f"field values nest deeper than {MAX_NESTING_DEPTH} levels")
    length = _U32.unpack_from(data, offset)[0]
    offset += 4
    end = offset + length
    if end > len(data):
        raise InvalidFrameError(
            f"an array claims {length} bytes but only {len(data) - offset} remain"
        )
    items = []
    while offset < end:
        item, offset = decode_value(data, offset, depth + 1)
        items.append(item)
    if offset != end:
        raise InvalidFrameError("an array's items overrun its declared length")
    return items, offset


def _decode_nested(data: bytes, offset: int, depth: int) -> tuple[Any, int]:
    return decode_table(data, offset, depth + 1)


_DECODERS: dict[int, _Decoder] = {
    ord("t"): _decode_bool,
    ord("b"): _typed(_I8, Int8),
    ord("B"): _typed(_U8, UInt8),
    ord("s"): _typed(_I16, Int16),
    ord("u"): _typed(_U16, UInt16),
    ord("I"): _fixed(_I32),
    ord("i"): _typed(_U32, UInt32),
    ord("l"): _typed(_I64, Int64),
    ord("f"): _typed(_F32, Float32),
    ord("d"): _fixed(_F64),
    ord("D"): _decode_decimal,
    ord("S"): _decode_longstr,
    ord("A"): _decode_array,
    ord("T"): _decode_timestamp,
    ord("F"): _decode_nested,
    ord("V"): lambda data, offset, depth: (None, offset),
    ord("x"): _decode_bytes,
}


def decode_value(data: bytes, offset: int, depth: int = 0) -> tuple[Any, int]:
    """Decode one field value (type letter first) at ``offset``.

    :returns: the value and the offset just past it.
    :raises InvalidFieldTypeException: for an unknown type letter.
    :raises ProtocolSyntaxError: for truncated or inconsistent data.
    """
    try:
        decoder = _DECODERS[data[offset]]
    except IndexError:
        raise InvalidFrameError("field value truncated before its type letter") from None
    except KeyError:
        raise InvalidFieldTypeException(
            f"unknown field type letter {chr(data[offset])!r} (0x{data[offset]:02x})"
        ) from None
    try:
        return decoder(data, offset + 1, depth)
    except (struct.error, IndexError):
        raise InvalidFrameError(
            f"field value of type {chr(data[offset])!r} is truncated"
        ) from None


def decode_table(data: bytes, offset: int, depth: int = 0) -> tuple[FieldTable, int]:
    """Decode a field table (32-bit length prefix first) at ``offset``.

    :returns: the table as a ``dict`` and the offset just past it.
    :raises ProtocolSyntaxError: (or its subclass
        :class:`~txamqp091.exceptions.InvalidFieldTypeException`) for malformed
        data; never another exception.
    """
    if depth >= MAX_NESTING_DEPTH:
        raise ProtocolSyntaxError(f"field tables nest deeper than {MAX_NESTING_DEPTH} levels")
    try:
        length = _U32.unpack_from(data, offset)[0]
    except struct.error:
        raise InvalidFrameError("field table truncated before its length") from None
    offset += 4
    end = offset + length
    if end > len(data):
        raise InvalidFrameError(
            f"a field table claims {length} bytes but only {len(data) - offset} remain"
        )
    table: FieldTable = {}
    try:
        while offset < end:
            key_end = offset + 1 + data[offset]
            if key_end > end:
                raise InvalidFrameError("a field table key overruns the table")
            key_raw = data[offset + 1 : key_end]
            try:
                key = key_raw.decode()
            except UnicodeDecodeError:
                key = key_raw.decode("utf-8", "surrogateescape")
            # Inline the common value types; the rest go through decode_value.
            code = data[key_end]
            if code == 83:  # "S"
                value_end = key_end + 5 + _U32.unpack_from(data, key_end + 1)[0]
                if value_end > end:
                    raise InvalidFrameError(f"field {key!r} overruns its table")
                raw = data[key_end + 5 : value_end]
                try:
                    table[key] = raw.decode()
                except UnicodeDecodeError:
                    table[key] = LongStr(raw)
                offset = value_end
            elif code == 73:  # "I"
                table[key] = _I32.unpack_from(data, key_end + 1)[0]
                offset = key_end + 5
            elif code == 116:  # "t"
                table[key] = data[key_end + 1] != 0
                offset = key_end + 2
            else:
                table[key], offset = decode_value(data, key_end, depth)
    except (IndexError, struct.error):
        raise InvalidFrameError("a field table is truncated") from None
    if offset != end:
        raise InvalidFrameError("a field table's entries overrun its declared length")
    return table, offset


# --------------------------------------------------------------------------
# The generic per-field codec for method arguments and content properties.
# Field kinds are the spec's domain types: octet, short, long, longlong,
# timestamp, bit, shortstr, longstr, table.

_FIXED_KINDS: dict[str, struct.Struct] = {
    "octet": _U8,
    "short": _U16,
    "long": _U32,
    "longlong": _U64,
    "timestamp": _U64,
}


def encode_field(kind: str, name: str, value: Any) -> bytes:
    """Encode one method or property field of spec type ``kind`` (not ``bit``).

    This is the validating slow path; it names the field in its errors.

    :raises TypeError: for a value of the wrong type.
    :raises ValueError: for a value out of range (including
        :class:`~txamqp091.exceptions.ShortStringTooLong`).
    """
    if kind in _FIXED_KINDS:
        if isinstance(value, datetime) and kind == "timestamp":
            value = int(value.replace(tzinfo=value.tzinfo or timezone.utc).timestamp())
        if not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        packer = _FIXED_KINDS[kind]
        try:
            return packer.pack(value)
        except struct.error:
            bits = packer.size * 8
            raise ValueError(
                f"{name}={value} does not fit an unsigned {bits}-bit {kind}"
            ) from None
    if kind == "shortstr":
        if isinstance(value, str):
            try:
                raw = value.encode()
            except UnicodeEncodeError:
                raw = _encode_surrogates(value, name)
        elif isinstance(value, (bytes, bytearray)):
            raw = bytes(value)
        else:
            raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        if len(raw) > 255:
            raise ShortStringTooLong(f"{name} is {len(raw)} bytes long, the limit is 255")
        return _U8.pack(len(raw)) + raw
    if kind == "longstr":
        if isinstance(value, str):
            try:
                raw = value.encode()
            except UnicodeEncodeError:
                raw = _encode_surrogates(value, name)
        elif isinstance(value, (bytes, bytearray)):
            raw = bytes(value)
        else:
            raise TypeError(f"{name} must be bytes or str, not {type(value).__name__}")
        if len(raw) > 2**32 - 1:
            raise ValueError(f"{name} is longer than 4 GiB")
        return _U32.pack(len(raw)) + raw
    if kind == "table":
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{name} must be a mapping or None, not {type(value).__name__}")
        try:
            return encode_table(value)
        except (UnsupportedAMQPFieldException, ValueError) as exc:
            raise type(exc)(f"{name}: {exc}") from None
    raise AssertionError(f"unknown field kind {kind!r}")  # pragma: no cover


def decode_field(kind: str, name: str, data: bytes, offset: int) -> tuple[Any, int]:
    """Decode one field of spec type ``kind`` (not ``bit``) at ``offset``.

    Short strings that are not valid UTF-8 decode with ``surrogateescape`` so
    that they encode back to the same bytes.

    :raises ProtocolSyntaxError: naming the field, for truncated data.
    """
    try:
        if kind in _FIXED_KINDS:
            packer = _FIXED_KINDS[kind]
            return packer.unpack_from(data, offset)[0], offset + packer.size
        if kind == "shortstr":
            length = data[offset]
            raw = _take(data, offset + 1, length)
            return raw.decode("utf-8", "surrogateescape"), offset + 1 + length
        if kind == "longstr":
            length = _U32.unpack_from(data, offset)[0]
            return _take(data, offset + 4, length), offset + 4 + length
        if kind == "table":
            return decode_table(data, offset)
    except (struct.error, IndexError):
        raise InvalidFrameError(f"{name} ({kind}) is truncated") from None
    except ProtocolSyntaxError as exc:
        raise type(exc)(f"{name}: {exc}") from None
    raise AssertionError(f"unknown field kind {kind!r}")  # pragma: no cover


def encode_fields(owner: str, fields: Sequence[tuple[str, str]], values: Sequence[Any]) -> bytes:
    """Encode a method's argument list (bits packed as AMQP requires).

    :param owner: the method's name, for error messages.
    :param fields: ``(attribute, kind)`` pairs, in wire order.
    :param values: one value per field.
    """
    parts: list[bytes] = []
    bits = 0
    bit_index = 0
    for (name, kind), value in zip(fields, values, strict=True):
        if kind == "bit":
            if bit_index == 8:
                parts.append(_U8.pack(bits))
                bits = bit_index = 0
            if value:
                bits |= 1 << bit_index
            bit_index += 1
            continue
        if bit_index:
            parts.append(_U8.pack(bits))
            bits = bit_index = 0
        parts.append(encode_field(kind, f"{owner}.{name}", value))
    if bit_index:
        parts.append(_U8.pack(bits))
    return b"".join(parts)


def decode_fields(
    owner: str, fields: Sequence[tuple[str, str]], data: bytes, offset: int
) -> tuple[list[Any], int]:
    """Decode a method's argument list; the inverse of :func:`encode_fields`.

    :returns: the values in wire order and the offset just past them.
    """
    values: list[Any] = []
    bits = 0
    bit_index = 8
    for name, kind in fields:
        if kind == "bit":
            if bit_index == 8:
                if offset >= len(data):
                    raise InvalidFrameError(f"{owner}.{name} (bit) is truncated")
                bits = data[offset]
                offset += 1
                bit_index = 0
            values.append(bool(bits & (1 << bit_index)))
            bit_index += 1
            continue
        bit_index = 8
        value, offset = decode_field(kind, f"{owner}.{name}", data, offset)
        values.append(value)
    return values, offset

"""Hypothesis strategies for the AMQP codec: field values, method and property
fields, methods, content properties and frames.

Alongside the strategies, :func:`expected_decoded` and :func:`typed` say what a
value must look like once it has been through ``encode_value``/``decode_value``,
so that tests can compare types as well as values (``True == 1`` and
``1 == 1.0`` in Python; they are different field values on the wire).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from txamqp091 import codec, fields, spec

__all__ = [
    "FIELD_KINDS",
    "INT32_MAX",
    "INT32_MIN",
    "INT64_MAX",
    "INT64_MIN",
    "METHOD_CLASSES",
    "PIKA_BODY_MAX",
    "basic_properties",
    "datetimes",
    "decimals",
    "expected_decoded",
    "expected_field",
    "field_keys",
    "field_tables",
    "field_values",
    "frame_streams",
    "frames",
    "method_of",
    "methods",
    "shortstrs",
    "typed",
    "values_for_kind",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Every method class of the spec, in INDEX order.
METHOD_CLASSES: list[type[spec.Method]] = [spec.methods[i] for i in sorted(spec.methods)]

#: The spec's field kinds (domain types) used by methods and properties.
FIELD_KINDS = (
    "octet",
    "short",
    "long",
    "longlong",
    "timestamp",
    "bit",
    "shortstr",
    "longstr",
    "table",
)

#: Body fragments stay small so that streams of many frames stay fast.
PIKA_BODY_MAX = 300

_EPOCH = datetime(1970, 1, 1)
_LAST_SECOND = datetime(9999, 12, 31, 23, 59, 59)


# --------------------------------------------------------------------------
# Scalars


def shortstrs() -> st.SearchStrategy[str]:
    """``str`` values that encode to at most 255 UTF-8 bytes (including exactly 255)."""
    return st.one_of(
        st.text(max_size=63),
        st.text(alphabet=st.characters(max_codepoint=127), min_size=250, max_size=255),
    )


def field_keys(*, non_utf8: bool = True) -> st.SearchStrategy[str]:
    """Field-table keys: text, and (``non_utf8``) raw bytes decoded with surrogateescape."""
    keys = st.text(max_size=20)
    if non_utf8:
        keys = keys | st.binary(max_size=12).map(lambda b: b.decode("utf-8", "surrogateescape"))
    return keys


def decimals() -> st.SearchStrategy[Decimal]:
    """Decimals an AMQP decimal can hold: 32-bit signed digits, scale 0..255."""
    return st.builds(
        lambda unscaled, scale: Decimal(unscaled).scaleb(-scale),
        st.integers(INT32_MIN, INT32_MAX),
        st.integers(0, 255),
    )


def datetimes() -> st.SearchStrategy[datetime]:
    """Naive whole-second datetimes from the epoch to the end of year 9999."""
    return st.datetimes(min_value=_EPOCH, max_value=_LAST_SECOND).map(
        lambda d: d.replace(microsecond=0)
    )


def _ints() -> st.SearchStrategy[int]:
    """Signed 64-bit ints, with the int32/int64 boundaries drawn often."""
    edges = [
        0,
        -1,
        INT32_MIN,
        INT32_MAX,
        INT32_MIN - 1,
        INT32_MAX + 1,
        INT64_MIN,
        INT64_MAX,
    ]
    return st.sampled_from(edges) | st.integers(INT64_MIN, INT64_MAX)


def _wrapped() -> st.SearchStrategy[Any]:
    """Values wrapped to force a field type letter."""
    return st.one_of(
        st.integers(-(2**7), 2**7 - 1).map(fields.Int8),
        st.integers(0, 2**8 - 1).map(fields.UInt8),
        st.integers(-(2**15), 2**15 - 1).map(fields.Int16),
        st.integers(0, 2**16 - 1).map(fields.UInt16),
        st.integers(INT32_MIN, INT32_MAX).map(fields.Int32),
        st.integers(0, 2**32 - 1).map(fields.UInt32),
        st.integers(INT64_MIN, INT64_MAX).map(fields.Int64),
        st.floats(width=32).map(fields.Float32),
        st.binary(max_size=20).map(fields.LongStr),
    )


def _scalars(*, pika_compatible: bool, lossless: bool) -> st.SearchStrategy[Any]:
    base: list[st.SearchStrategy[Any]] = [
        st.booleans(),
        _ints(),
        decimals(),
        st.text(max_size=30),
        st.binary(max_size=30),
        datetimes(),
        st.none(),
    ]
    if not pika_compatible:
        # pika decodes 'f' and 'd' to int, and has no wrappers.
        base.append(st.floats(allow_nan=not lossless))
        if not lossless:
            base.append(_wrapped())
    return st.one_of(base)


def field_values(
    *, pika_compatible: bool = False, lossless: bool = False, max_leaves: int = 12
) -> st.SearchStrategy[Any]:
    """Any field value, nested tables and arrays included (depth bounded by ``max_leaves``).

    :param pika_compatible: only values that pika 1.4 encodes and decodes the
        same way as we do (no floats, wrappers, tuples or non-UTF-8 keys).
    :param lossless: only values that decode to an equal value of the same
        type (no wrappers, tuples or nan), so that ``==`` holds after a round trip.
    """
    keys = field_keys(non_utf8=not pika_compatible)

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        containers: list[st.SearchStrategy[Any]] = [
            st.lists(children, max_size=4),
            st.dictionaries(keys, children, max_size=4),
        ]
        if not (pika_compatible or lossless):
            containers.append(st.lists(children, max_size=3).map(tuple))
        return st.one_of(containers)

    scalars = _scalars(pika_compatible=pika_compatible, lossless=lossless)
    return st.recursive(scalars, extend, max_leaves=max_leaves)


def field_tables(
    *, pika_compatible: bool = False, lossless: bool = False, max_size: int = 5
) -> st.SearchStrategy[dict[str, Any]]:
    """Field tables (``dict``), with nested values (see :func:`field_values`)."""
    return st.dictionaries(
        field_keys(non_utf8=not pika_compatible),
        field_values(pika_compatible=pika_compatible, lossless=lossless, max_leaves=6),
        max_size=max_size,
    )


# --------------------------------------------------------------------------
# Expected decoded forms


def expected_decoded(value: Any) -> Any:
    """What ``decode_value(encode_value(value))`` must give back.

    A value keeps its wire type: a wrapper comes back as the same wrapper, except
    :class:`~txamqp091.fields.Int32` (``I``, a plain ``int``); a plain ``int``
    outside 32 bits travels as ``l`` and comes back an
    :class:`~txamqp091.fields.Int64`. Tuples become lists; aware datetimes become
    naive UTC; a :class:`~txamqp091.fields.LongStr` becomes ``str`` when it is
    UTF-8, else stays a ``LongStr``; ``bytearray`` becomes ``bytes``.
    """
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        if type(value) in (int, fields.Int32):
            plain = int(value)
            return plain if -(2**31) <= plain < 2**31 else fields.Int64(plain)
        return type(value)(int(value))
    if isinstance(value, fields.Float32):
        return fields.Float32(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, fields.LongStr):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            return fields.LongStr(bytes(value))
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent > 0:
            # 1E+2 travels as unscaled 100, scale 0.
            return Decimal(int(value))
        return value
    if isinstance(value, (list, tuple)):
        return [expected_decoded(item) for item in value]
    if isinstance(value, Mapping):
        return {key: expected_decoded(item) for key, item in value.items()}
    return value


def expected_field(kind: str, value: Any) -> Any:
    """What a method or property field of *kind* decodes *value* to: a table as
    :func:`expected_decoded` says, any other kind as a plain value (the kind, not
    the value, gives its wire type)."""
    if kind == "table":
        return expected_decoded(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return value


def typed(value: Any) -> Any:
    """A comparable form of a decoded value that also records its type.

    ``nan`` compares equal to ``nan`` and ``-0.0`` differs from ``0.0``.
    """
    if isinstance(value, float):
        if math.isnan(value):
            return ("float", "nan")
        return ("float", value, math.copysign(1.0, value))
    if isinstance(value, list):
        return ("list", [typed(item) for item in value])
    if isinstance(value, dict):
        return ("dict", {key: typed(item) for key, item in value.items()})
    if isinstance(value, Decimal):
        # Decimal equality is numeric (1.0 == 1.00); the wire keeps the scale.
        return ("Decimal", value.as_tuple().exponent, value)
    return (type(value).__name__, value)


# --------------------------------------------------------------------------
# Method and property fields


def values_for_kind(kind: str, *, pika_compatible: bool = False) -> st.SearchStrategy[Any]:
    """Valid values of one spec field kind, that decode back to equal values of
    the same type.

    Long strings are ``bytes`` (they decode to ``bytes``); short strings are
    ``str``; tables hold only lossless values.
    """
    if kind == "octet":
        return st.integers(0, 2**8 - 1)
    if kind == "short":
        return st.integers(0, 2**16 - 1)
    if kind == "long":
        return st.integers(0, 2**32 - 1)
    if kind in ("longlong", "timestamp"):
        return st.integers(0, 2**64 - 1)
    if kind == "bit":
        return st.booleans()
    if kind == "shortstr":
        return shortstrs()
    if kind == "longstr":
        return st.binary(max_size=300)
    if kind == "table":
        return field_tables(pika_compatible=pika_compatible, lossless=True)
    raise AssertionError(f"unknown field kind {kind!r}")


def method_of(
    cls: type[spec.Method], *, pika_compatible: bool = False
) -> st.SearchStrategy[spec.Method]:
    """Instances of the method class ``cls`` with arbitrary valid arguments."""
    arguments = {
        name: values_for_kind(kind, pika_compatible=pika_compatible) for name, kind in cls._fields
    }
    return st.fixed_dictionaries(arguments).map(lambda kwargs: cls(**kwargs))


def methods(*, pika_compatible: bool = False) -> st.SearchStrategy[spec.Method]:
    """An instance of any method class of the spec."""
    return st.sampled_from(METHOD_CLASSES).flatmap(
        lambda cls: method_of(cls, pika_compatible=pika_compatible)
    )


def basic_properties(*, pika_compatible: bool = False) -> st.SearchStrategy[spec.BasicProperties]:
    """``BasicProperties`` with any combination of present and absent properties."""
    optional = {
        name: values_for_kind(kind, pika_compatible=pika_compatible)
        for name, kind in spec.BasicProperties._fields
    }
    return st.fixed_dictionaries({}, optional=optional).map(
        lambda kwargs: spec.BasicProperties(**kwargs)
    )


# --------------------------------------------------------------------------
# Frames


def frames(*, pika_compatible: bool = False) -> st.SearchStrategy[codec.Frame]:
    """Any frame: method, content header, body fragment or heartbeat."""
    channels = st.integers(0, 2**16 - 1)
    return st.one_of(
        st.builds(codec.MethodFrame, channels, methods(pika_compatible=pika_compatible)),
        st.builds(
            codec.HeaderFrame,
            channels,
            st.integers(0, 2**64 - 1),
            basic_properties(pika_compatible=pika_compatible),
        ),
        st.builds(codec.BodyFrame, channels, st.binary(max_size=PIKA_BODY_MAX)),
        st.just(codec.HeartbeatFrame()),
    )


def frame_streams(max_size: int = 12) -> st.SearchStrategy[list[codec.Frame]]:
    """Lists of frames, as they would follow each other on a connection."""
    return st.lists(frames(), max_size=max_size)

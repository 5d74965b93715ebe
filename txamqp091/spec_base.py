"""Base classes of the generated :mod:`txamqp091.spec`.

The generated subclasses carry fast, straight-line ``encode``/``decode``; what
they share (equality, ``repr``, and the validating slow paths that the fast code
falls back to) lives here, written once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

from txamqp091.exceptions import InvalidFrameError, ProtocolSyntaxError
from txamqp091.fields import decode_field, decode_fields, encode_field, encode_fields

__all__ = ["Class", "Method", "Properties"]

#: Exceptions on which the generated fast encoders retry through the slow path,
#: which raises a precise error naming the field (or encodes a rare valid input).
_ENCODE_ERRORS = (struct.error, AttributeError, TypeError, ValueError, OverflowError)
#: Exceptions on which the generated fast decoders retry through the slow path
#: (which also names the field in errors raised by the table decoder).
_DECODE_ERRORS = (struct.error, IndexError, UnicodeDecodeError, ProtocolSyntaxError)

_U16 = struct.Struct(">H")
_IDS = struct.Struct(">HH")

_M = TypeVar("_M", bound="Method")
_P = TypeVar("_P", bound="Properties")


class Class:
    """An AMQP class: a namespace of methods with a numeric ``INDEX``."""

    INDEX: ClassVar[int]
    NAME: ClassVar[str]


class _Fielded:
    """Equality, ``repr`` and iteration over the spec fields of a method or properties."""

    __slots__ = ()
    NAME: ClassVar[str]
    _fields: ClassVar[tuple[tuple[str, str], ...]]

    def _values(self) -> list[Any]:
        return [getattr(self, name) for name, _ in self._fields]

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """Yield ``(attribute, value)`` pairs in wire order."""
        for name, _ in self._fields:
            yield name, getattr(self, name)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), repr(self._values())))

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={value!r}" for name, value in self)
        return f"<{self.NAME}({args})>"


class Method(_Fielded):
    """An AMQP method. Subclasses are generated, one per method of the spec."""

    __slots__ = ()
    INDEX: ClassVar[int]
    CLASS_ID: ClassVar[int]
    METHOD_ID: ClassVar[int]
    #: Whether the sender waits for one of :attr:`valid_responses`.
    synchronous: ClassVar[bool]
    #: Whether a content header and body frames follow this method.
    has_content: ClassVar[bool]
    #: The replies a synchronous method may get; empty for asynchronous ones.
    valid_responses: ClassVar[tuple[type[Method], ...]] = ()

    def encode(self) -> bytes:
        """The method frame payload: class id, method id, then the arguments."""
        return self._encode_slow()  # pragma: no cover - generated classes override

    @classmethod
    def decode(cls: type[_M], data: bytes, offset: int = 4) -> _M:
        """Decode a method frame payload; arguments start at ``offset``."""
        return cls._decode_slow(data, offset)  # pragma: no cover - overridden

    def _encode_slow(self) -> bytes:
        """Validate every argument and encode; raises naming the bad argument."""
        return _IDS.pack(self.CLASS_ID, self.METHOD_ID) + encode_fields(
            self.NAME, self._fields, self._values()
        )

    @classmethod
    def _decode_slow(cls: type[_M], data: bytes, offset: int) -> _M:
        """Decode field by field; raises :class:`ProtocolSyntaxError` naming the field."""
        values, end = decode_fields(cls.NAME, cls._fields, data, offset)
        if end != len(data):
            raise InvalidFrameError(
                f"{cls.NAME} has {len(data) - end} unexpected bytes after its arguments"
            )
        method = cls.__new__(cls)
        for (name, _), value in zip(cls._fields, values, strict=True):
            setattr(method, name, value)
        return method


class Properties(_Fielded):
    """Content properties (the content header). Subclasses are generated."""

    __slots__ = ()
    CLASS: ClassVar[type[Class]]
    INDEX: ClassVar[int]

    def encode(self) -> bytes:
        """The property flags followed by the present properties."""
        return self._encode_slow()  # pragma: no cover - generated classes override

    @classmethod
    def decode(cls: type[_P], data: bytes, offset: int = 0) -> _P:
        """Decode property flags and properties from ``offset`` to the end of ``data``."""
        return cls._decode_slow(data, offset)  # pragma: no cover - overridden

    def _encode_slow(self) -> bytes:
        """Validate every present property and encode; raises naming the bad one."""
        flags = 0
        parts = []
        for index, (name, kind) in enumerate(self._fields):
            value = getattr(self, name)
            if value is not None:
                flags |= 1 << (15 - index)
                parts.append(encode_field(kind, f"{self.NAME}.{name}", value))
        return _U16.pack(flags) + b"".join(parts)

    @classmethod
    def _decode_slow(cls: type[_P], data: bytes, offset: int) -> _P:
        """Decode property by property, following flag continuation words."""
        flag_words = []
        while True:
            try:
                word = _U16.unpack_from(data, offset)[0]
            except struct.error:
                raise InvalidFrameError(f"{cls.NAME}: property flags truncated") from None
            offset += 2
            flag_words.append(word)
            if not word & 1:
                break
        first = flag_words[0]
        known = 0xFFFF ^ ((1 << (16 - len(cls._fields))) - 1)
        if first & ~known & 0xFFFE or any(w & 0xFFFE for w in flag_words[1:]):
            raise ProtocolSyntaxError(f"{cls.NAME}: flags name properties that do not exist")
        props = cls.__new__(cls)
        for index, (name, kind) in enumerate(cls._fields):
            if first & (1 << (15 - index)):
                value, offset = decode_field(kind, f"{cls.NAME}.{name}", data, offset)
            else:
                value = None
            setattr(props, name, value)
        if offset != len(data):
            raise InvalidFrameError(
                f"{cls.NAME} has {len(data) - offset} unexpected bytes after its properties"
            )
        return props

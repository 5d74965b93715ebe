"""Tests for the generated :mod:`txamqp091.spec`: method classes, content
properties, metadata and constants."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import spec
from txamqp091.exceptions import (
    ProtocolSyntaxError,
    ShortStringTooLong,
    UnsupportedAMQPFieldException,
)
from txamqp091.test import strategies as s

ROOT = Path(__file__).resolve().parents[2]

CLASSES: list[type[spec.Class]] = [
    spec.Connection,
    spec.Channel,
    spec.Access,
    spec.Exchange,
    spec.Queue,
    spec.Basic,
    spec.Tx,
    spec.Confirm,
]

#: One non-default value per field kind, used to build "rich" instances.
RICH_VALUES: dict[str, Any] = {
    "octet": 7,
    "short": 513,
    "long": 70000,
    "longlong": 2**40 + 1,
    "timestamp": 1700000000,
    "bit": True,
    "shortstr": "sh",
    "longstr": b"long",
    "table": {"a": 1, "n": {"b": [True, "x"]}},
}

#: A value of every property of BasicProperties.
RICH_PROPERTIES: dict[str, Any] = {
    name: RICH_VALUES[kind] for name, kind in spec.BasicProperties._fields
}


def rich(cls: type[spec.Method]) -> spec.Method:
    """An instance of ``cls`` with a non-default value in every field."""
    return cls(**{name: RICH_VALUES[kind] for name, kind in cls._fields})


def field_values(obj: spec.Method | spec.BasicProperties) -> Any:
    """The typed values of a method's or properties' fields, for exact comparison;
    field tables as they decode (``expected_decoded``: a value keeps its wire type,
    so an int beyond 32 bits comes back an Int64)."""
    return s.typed([s.expected_decoded(v) if isinstance(v, dict) else v for _, v in obj])


def non_utf8_instance(
    cls: type[spec.Method], shortstrs: list[bytes], other: dict[str, Any]
) -> spec.Method:
    """``cls`` with raw (possibly non-UTF-8) bytes for its short strings."""
    raw = iter(shortstrs)
    kwargs = {name: next(raw) if kind == "shortstr" else other[kind] for name, kind in cls._fields}
    return cls(**kwargs)


class MethodRoundTripTests(SynchronousTestCase):
    """Every method encodes and decodes losslessly, fast path equal to slow path."""

    def check_method(self, method: spec.Method) -> None:
        """Assert the round trip and fast/slow equality for one method instance."""
        cls = type(method)
        payload = method.encode()
        self.assertEqual(payload[:4], struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID))
        self.assertEqual(payload, method._encode_slow())
        decoded = cls.decode(payload)
        self.assertIs(type(decoded), cls)
        self.assertEqual(decoded, method)
        self.assertEqual(field_values(decoded), field_values(method))
        slow = cls._decode_slow(payload, 4)
        self.assertEqual(decoded, slow)
        self.assertEqual(field_values(decoded), field_values(slow))
        self.assertEqual(decoded.encode(), payload)

    def test_every_method_class(self) -> None:
        """Every method class of the spec, with arbitrary valid arguments, round
        trips (decode(encode(m)) == m, types included), and its fast encoder and
        decoder agree with the slow, validating ones."""
        for cls in s.METHOD_CLASSES:

            @settings(max_examples=12, deadline=None)
            @given(s.method_of(cls))
            def check(method: spec.Method) -> None:
                self.check_method(method)

            check()

    @settings(max_examples=150, deadline=None)
    @given(s.methods())
    def test_any_method(self, method: spec.Method) -> None:
        """A method drawn from the whole spec round trips, fast equal to slow."""
        self.check_method(method)

    def test_defaults_and_rich_instances(self) -> None:
        """Each method class with its default arguments, and with a non-default
        value in every field, round trips."""
        for cls in s.METHOD_CLASSES:
            self.check_method(cls())
            self.check_method(rich(cls))

    def test_known_layout(self) -> None:
        """Basic.Publish encodes as ids, ticket, exchange, routing key, then the
        bits (mandatory lowest)."""
        method = spec.Basic.Publish(exchange="ex", routing_key="rk", mandatory=True)
        self.assertEqual(method.encode(), b"\x00\x3c\x00\x28\x00\x00\x02ex\x02rk\x01")
        qos = spec.Basic.Qos(prefetch_size=1, prefetch_count=2, global_=True)
        self.assertEqual(qos.encode(), b"\x00\x3c\x00\x0a\x00\x00\x00\x01\x00\x02\x01")

    @settings(max_examples=60, deadline=None)
    @given(
        st.sampled_from(
            [cls for cls in s.METHOD_CLASSES if any(k == "shortstr" for _, k in cls._fields)]
        ),
        st.lists(st.binary(max_size=255), min_size=8, max_size=8),
    )
    def test_non_utf8_shortstrs(self, cls: type[spec.Method], shortstrs: list[bytes]) -> None:
        """Short strings that are not UTF-8 decode (surrogateescape) and encode
        back byte-identical, fast path equal to slow path."""
        method = non_utf8_instance(cls, shortstrs, RICH_VALUES)
        payload = method.encode()
        decoded = cls.decode(payload)
        self.assertEqual(decoded, cls._decode_slow(payload, 4))
        self.assertEqual(decoded.encode(), payload)

    def test_non_utf8_routing_key(self) -> None:
        """A non-UTF-8 routing key in a received Basic.Deliver or Basic.Publish
        survives decode then encode byte-identical."""
        publish = b"\x00\x3c\x00\x28\x00\x00\x00\x02\xff\xfe\x00"
        decoded = spec.Basic.Publish.decode(publish)
        self.assertIsInstance(decoded.routing_key, str)
        self.assertEqual(decoded.encode(), publish)
        deliver = b"\x00\x3c\x00\x3c\x03ct\xff" + b"\x00" * 7 + b"\x01\x00\x01e\x03\xc3\x28k"
        decoded_deliver = spec.Basic.Deliver.decode(deliver)
        self.assertEqual(decoded_deliver.exchange, "e")
        self.assertEqual(decoded_deliver.encode(), deliver)


class MethodDecodeErrorTests(SynchronousTestCase):
    """Malformed method payloads raise ProtocolSyntaxError."""

    def assert_every_cut_fails(self, cls: type[spec.Method], payload: bytes) -> None:
        """Every truncation of the arguments, and any trailing byte, raises."""
        for cut in range(4, len(payload)):
            self.assertRaises(ProtocolSyntaxError, cls.decode, payload[:cut])
            self.assertRaises(ProtocolSyntaxError, cls._decode_slow, payload[:cut], 4)
        for extra in (b"\x00", b"\xff", b"\x00\x00\x00\x00\x00"):
            self.assertRaises(ProtocolSyntaxError, cls.decode, payload + extra)

    def test_truncated_rich_methods(self) -> None:
        """Every method class, with a value in every field: each truncated
        payload, and the payload with trailing bytes, raises ProtocolSyntaxError."""
        for cls in s.METHOD_CLASSES:
            self.assert_every_cut_fails(cls, rich(cls).encode())

    @settings(max_examples=40, deadline=None)
    @given(s.methods())
    def test_truncated_any_method(self, method: spec.Method) -> None:
        """An arbitrary method: every truncated payload and trailing bytes raise
        ProtocolSyntaxError."""
        self.assert_every_cut_fails(type(method), method.encode())

    def test_error_names_the_field(self) -> None:
        """The error for a truncated payload names the method and the field."""
        payload = spec.Basic.Publish(exchange="ex", routing_key="rk").encode()
        exc = self.assertRaises(ProtocolSyntaxError, spec.Basic.Publish.decode, payload[:9])
        self.assertIn("Basic.Publish.routing_key", str(exc))

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(s.METHOD_CLASSES), st.binary(max_size=40))
    def test_garbage_arguments(self, cls: type[spec.Method], garbage: bytes) -> None:
        """Arbitrary argument bytes either decode (fast equal to slow) or raise
        ProtocolSyntaxError, never another exception."""
        payload = struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID) + garbage
        try:
            decoded = cls.decode(payload)
        except ProtocolSyntaxError:
            self.assertRaises(ProtocolSyntaxError, cls._decode_slow, payload, 4)
            return
        self.assertEqual(field_values(decoded), field_values(cls._decode_slow(payload, 4)))


class MethodEncodeErrorTests(SynchronousTestCase):
    """Bad arguments raise, with the right type and naming the field, before any
    byte is produced."""

    def assert_bad(
        self, kind: type[Exception], method: spec.Method | spec.BasicProperties, field: str
    ) -> None:
        """``method.encode()`` raises ``kind`` naming ``field``."""
        exc = self.assertRaises(kind, method.encode)
        self.assertIn(field, str(exc))

    def test_wrong_types(self) -> None:
        """A value of the wrong type raises TypeError."""
        self.assert_bad(TypeError, spec.Basic.Publish(routing_key=5), "routing_key")  # type: ignore[arg-type]
        self.assert_bad(TypeError, spec.Queue.Declare(queue=None), "queue")  # type: ignore[arg-type]
        self.assert_bad(TypeError, spec.Basic.Qos(prefetch_count=1.5), "prefetch_count")  # type: ignore[arg-type]
        self.assert_bad(TypeError, spec.Basic.Ack(delivery_tag="1"), "delivery_tag")  # type: ignore[arg-type]
        self.assert_bad(TypeError, spec.Connection.StartOk(response=5), "response")  # type: ignore[arg-type]
        self.assert_bad(TypeError, spec.BasicProperties(content_type=5), "content_type")  # type: ignore[arg-type]

    def test_short_strings_too_long(self) -> None:
        """A short string over 255 UTF-8 bytes raises ShortStringTooLong (a
        ValueError); 255 bytes are fine."""
        self.assert_bad(
            ShortStringTooLong, spec.Basic.Publish(routing_key="r" * 256), "routing_key"
        )
        self.assert_bad(
            ShortStringTooLong, spec.Basic.Publish(routing_key="é" * 128), "routing_key"
        )
        self.assert_bad(ShortStringTooLong, spec.Queue.Declare(queue="q" * 300), "queue")
        self.assert_bad(
            ShortStringTooLong, spec.BasicProperties(message_id="m" * 256), "message_id"
        )
        self.assertTrue(issubclass(ShortStringTooLong, ValueError))
        payload = spec.Basic.Publish(routing_key="r" * 255).encode()
        self.assertEqual(spec.Basic.Publish.decode(payload).routing_key, "r" * 255)

    def test_numbers_out_of_range(self) -> None:
        """Negative numbers and numbers too big for their field raise ValueError."""
        cases: list[tuple[spec.Method | spec.BasicProperties, str]] = [
            (spec.Basic.Publish(ticket=-1), "ticket"),
            (spec.Basic.Publish(ticket=2**16), "ticket"),
            (spec.Basic.Qos(prefetch_count=-1), "prefetch_count"),
            (spec.Basic.Qos(prefetch_count=2**16), "prefetch_count"),
            (spec.Basic.Qos(prefetch_size=2**32), "prefetch_size"),
            (spec.Basic.Ack(delivery_tag=2**64), "delivery_tag"),
            (spec.Basic.Ack(delivery_tag=-1), "delivery_tag"),
            (spec.Connection.Start(version_major=256), "version_major"),
            (spec.BasicProperties(delivery_mode=256), "delivery_mode"),
            (spec.BasicProperties(priority=-1), "priority"),
            (spec.BasicProperties(timestamp=-1), "timestamp"),
            (spec.BasicProperties(timestamp=2**64), "timestamp"),
        ]
        for method, field in cases:
            self.assert_bad(ValueError, method, field)

    def test_bad_tables(self) -> None:
        """An unsupported value in arguments or headers raises
        UnsupportedAMQPFieldException naming the field; a non-mapping raises
        TypeError."""
        self.assert_bad(
            UnsupportedAMQPFieldException,
            spec.Queue.Declare(arguments={"x-bad": object()}),
            "arguments",
        )
        self.assert_bad(
            UnsupportedAMQPFieldException,
            spec.BasicProperties(headers={"bad": {1, 2}}),
            "headers",
        )
        self.assert_bad(ValueError, spec.BasicProperties(headers={"big": 2**64}), "headers")
        self.assert_bad(
            ShortStringTooLong, spec.Exchange.Declare(arguments={"k" * 256: 1}), "arguments"
        )
        method = spec.Queue.Declare()
        method.arguments = [1]  # type: ignore[assignment]
        self.assert_bad(TypeError, method, "arguments")

    def test_bits_accept_truthy_values(self) -> None:
        """Bits take any truthy value as set and decode to bool."""
        method = spec.Queue.Declare(durable=1, auto_delete=0)  # type: ignore[arg-type]
        decoded = spec.Queue.Declare.decode(method.encode())
        self.assertIs(decoded.durable, True)
        self.assertIs(decoded.auto_delete, False)


class PropertiesTests(SynchronousTestCase):
    """BasicProperties: every combination of present properties round trips."""

    def check_properties(self, props: spec.BasicProperties) -> bytes:
        """Assert round trip and fast/slow equality; return the encoding."""
        data = props.encode()
        self.assertEqual(data, props._encode_slow())
        decoded = spec.BasicProperties.decode(data)
        self.assertEqual(decoded, props)
        self.assertEqual(field_values(decoded), field_values(props))
        slow = spec.BasicProperties._decode_slow(data, 0)
        self.assertEqual(field_values(decoded), field_values(slow))
        self.assertEqual(decoded.encode(), data)
        return data

    def test_every_combination(self) -> None:
        """All 2**14 combinations of present and absent properties round trip,
        with the flag bits (highest first, in spec order) set for exactly the
        present ones."""
        names = [name for name, _ in spec.BasicProperties._fields]
        for mask in range(2 ** len(names)):
            present = {
                name: RICH_PROPERTIES[name]
                for index, name in enumerate(names)
                if mask & (1 << index)
            }
            data = self.check_properties(spec.BasicProperties(**present))
            flags = struct.unpack_from(">H", data)[0]
            expected = sum(
                1 << (15 - index) for index, name in enumerate(names) if name in present
            )
            self.assertEqual(flags, expected)

    @settings(max_examples=200, deadline=None)
    @given(s.basic_properties())
    def test_any_properties(self, props: spec.BasicProperties) -> None:
        """Arbitrary property values round trip, fast path equal to slow path."""
        self.check_properties(props)

    def test_empty_and_layout(self) -> None:
        """No properties encode as two zero flag octets; a known header encodes
        as its flags then the present values."""
        self.assertEqual(spec.BasicProperties().encode(), b"\x00\x00")
        props = spec.BasicProperties(
            content_type="text/plain", delivery_mode=spec.DeliveryMode.Persistent
        )
        self.assertEqual(props.delivery_mode, 2)
        self.assertEqual(props.encode(), b"\x90\x00\x0atext/plain\x02")
        self.assertEqual(spec.BasicProperties.decode(b"\x90\x00\x0atext/plain\x02"), props)

    def test_decode_at_offset(self) -> None:
        """decode reads from ``offset`` to the end of the data."""
        data = spec.BasicProperties(app_id="a").encode()
        self.assertEqual(spec.BasicProperties.decode(b"xyz" + data, 3).app_id, "a")

    def test_non_utf8_shortstrs(self) -> None:
        """Non-UTF-8 short-string properties decode and encode back byte-identical."""
        props = spec.BasicProperties(content_type=b"\xff\xfe", app_id=b"\xc3(")  # type: ignore[arg-type]
        data = props.encode()
        decoded = spec.BasicProperties.decode(data)
        self.assertEqual(decoded.encode(), data)
        self.assertEqual(decoded, spec.BasicProperties._decode_slow(data, 0))

    def test_truncated_at_every_cut(self) -> None:
        """Every truncation of a header carrying all properties, and trailing
        bytes, raise ProtocolSyntaxError."""
        data = spec.BasicProperties(**RICH_PROPERTIES).encode()
        for cut in range(len(data)):
            self.assertRaises(ProtocolSyntaxError, spec.BasicProperties.decode, data[:cut])
        self.assertRaises(ProtocolSyntaxError, spec.BasicProperties.decode, data + b"\x00")

    def test_unknown_flags(self) -> None:
        """Flags naming properties that do not exist raise ProtocolSyntaxError; a
        continuation word without further flags is accepted."""
        self.assertRaises(ProtocolSyntaxError, spec.BasicProperties.decode, b"\x00\x02")
        self.assertRaises(ProtocolSyntaxError, spec.BasicProperties.decode, b"\x00\x01\x80\x00")
        self.assertRaises(ProtocolSyntaxError, spec.BasicProperties.decode, b"\x00\x01")
        decoded = spec.BasicProperties.decode(b"\x80\x01\x00\x00\x01t")
        self.assertEqual(decoded, spec.BasicProperties(content_type="t"))

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=40))
    def test_garbage(self, data: bytes) -> None:
        """Arbitrary bytes either decode as properties (fast equal to slow) or
        raise ProtocolSyntaxError."""
        try:
            decoded = spec.BasicProperties.decode(data)
        except ProtocolSyntaxError:
            return
        slow = spec.BasicProperties._decode_slow(data, 0)
        self.assertEqual(field_values(decoded), field_values(slow))


class MetadataTests(SynchronousTestCase):
    """Names, ids, synchronicity, responses and constants."""

    def all_method_classes(self) -> list[type[spec.Method]]:
        """Every Method subclass nested in the spec's classes."""
        found = []
        for amqp_class in CLASSES:
            for value in vars(amqp_class).values():
                if isinstance(value, type) and issubclass(value, spec.Method):
                    found.append(value)
        return found

    def test_methods_registry(self) -> None:
        """spec.methods maps INDEX to every method class, and nothing else."""
        classes = self.all_method_classes()
        self.assertEqual(len(classes), len(spec.methods))
        self.assertEqual(set(spec.methods.values()), set(classes))
        for index, cls in spec.methods.items():
            self.assertEqual(cls.INDEX, index)

    def test_names_and_ids(self) -> None:
        """Each method's NAME is Class.Method, CLASS_ID its class's INDEX, and
        INDEX is CLASS_ID << 16 | METHOD_ID."""
        for amqp_class in CLASSES:
            for attr, value in vars(amqp_class).items():
                if isinstance(value, type) and issubclass(value, spec.Method):
                    self.assertEqual(value.NAME, f"{amqp_class.NAME}.{attr}")
                    self.assertEqual(value.CLASS_ID, amqp_class.INDEX)
                    self.assertEqual(value.INDEX, value.CLASS_ID << 16 | value.METHOD_ID)
        self.assertEqual(spec.Basic.Publish.INDEX, 0x003C0028)
        self.assertEqual(spec.Queue.DeclareOk.NAME, "Queue.DeclareOk")
        self.assertEqual(spec.Confirm.Select.CLASS_ID, 85)

    def test_valid_responses(self) -> None:
        """Spot checks: Basic.Get gets GetOk or GetEmpty; Queue.Declare gets
        DeclareOk; Basic.Publish is asynchronous and carries content."""
        self.assertEqual(spec.Basic.Get.valid_responses, (spec.Basic.GetOk, spec.Basic.GetEmpty))
        self.assertEqual(spec.Queue.Declare.valid_responses, (spec.Queue.DeclareOk,))
        self.assertEqual(spec.Channel.Close.valid_responses, (spec.Channel.CloseOk,))
        self.assertFalse(spec.Basic.Publish.synchronous)
        self.assertTrue(spec.Basic.Publish.has_content)
        self.assertEqual(spec.Basic.Publish.valid_responses, ())

    def test_every_synchronous_method_has_responses(self) -> None:
        """Synchronous methods have at least one valid response, in their own
        class and asynchronous; asynchronous methods have none."""
        for cls in spec.methods.values():
            if cls.synchronous:
                self.assertGreaterEqual(len(cls.valid_responses), 1, cls.NAME)
                for response in cls.valid_responses:
                    self.assertEqual(response.CLASS_ID, cls.CLASS_ID)
                    self.assertFalse(response.synchronous, response.NAME)
            else:
                self.assertEqual(cls.valid_responses, (), cls.NAME)

    def test_content_methods(self) -> None:
        """Exactly Basic.Publish, Return, Deliver and GetOk carry content."""
        with_content = {cls for cls in spec.methods.values() if cls.has_content}
        self.assertEqual(
            with_content,
            {spec.Basic.Publish, spec.Basic.Return, spec.Basic.Deliver, spec.Basic.GetOk},
        )
        self.assertTrue(spec.has_content(spec.Basic.Deliver.INDEX))
        self.assertFalse(spec.has_content(spec.Basic.Ack.INDEX))
        self.assertFalse(spec.has_content(0))

    def test_constants(self) -> None:
        """Delivery modes, reply codes and their hard/soft split."""
        self.assertEqual(spec.PERSISTENT_DELIVERY_MODE, 2)
        self.assertEqual(spec.TRANSIENT_DELIVERY_MODE, 1)
        self.assertEqual(spec.DeliveryMode.Persistent, 2)
        self.assertEqual(spec.REPLY_CODE_NAMES[404], "not-found")
        self.assertEqual(spec.REPLY_CODE_NAMES[spec.FRAME_ERROR], "frame-error")
        self.assertEqual(spec.HARD_ERROR_CODES & spec.SOFT_ERROR_CODES, frozenset())
        self.assertEqual(
            spec.HARD_ERROR_CODES | spec.SOFT_ERROR_CODES,
            set(spec.REPLY_CODE_NAMES) - {spec.REPLY_SUCCESS},
        )
        self.assertIn(spec.NOT_FOUND, spec.SOFT_ERROR_CODES)
        self.assertIn(spec.NOT_IMPLEMENTED, spec.HARD_ERROR_CODES)
        self.assertEqual((spec.FRAME_MIN_SIZE, spec.FRAME_END), (4096, 0xCE))
        self.assertEqual(spec.props, {60: spec.BasicProperties})


class GeneratorTests(SynchronousTestCase):
    """The committed spec module is what the generator produces."""

    def test_gen_spec_check(self) -> None:
        """``tools/gen_spec.py --check`` exits 0: spec.py is up to date."""
        result = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "gen_spec.py"), "--check"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

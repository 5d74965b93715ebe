"""The C accelerator and the pure-Python codec behave identically.

The accelerator (``txamqp091/_speedups.c``) handles the common cases and hands
everything else to the Python code, so for every input both paths must give the
same frames or bytes, or the same exception with the same message and reply
code. These tests feed both the same valid, corrupted and random input.

The whole suite also runs on the pure path: CI runs trial with
``TXAMQP091_PURE_PYTHON=1``.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import codec, spec
from txamqp091.exceptions import InvalidFrameError
from txamqp091.test.strategies import (
    basic_properties,
    expected_decoded,
    frame_streams,
    methods,
    typed,
)

EXAMPLES = settings(max_examples=150, deadline=None)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """What ``call`` did: ``("ok", result)`` or ``("error", (type, message, reply_code))``.

    Decoded frames are given in a form that also compares the types of their
    values (``True`` differs from ``1``; a NaN equals a NaN).
    """
    try:
        result = call()
    except Exception as exc:
        return "error", (type(exc), str(exc), getattr(exc, "reply_code", None))
    if isinstance(result, list):
        return "ok", [frame_form(frame) for frame in result]
    return "ok", result


def frame_form(frame: codec.Frame) -> Any:
    """A frame as nested tuples of typed values, for exact comparison; field tables
    as they decode (``expected_decoded``: the same for a decoded frame, the decoded
    form for a frame as it was made)."""
    if isinstance(frame, codec.MethodFrame):
        return (
            "method",
            frame.channel_number,
            type(frame.method).__name__,
            typed(_tables_decoded(dict(frame.method))),
        )
    if isinstance(frame, codec.HeaderFrame):
        return (
            "header",
            frame.channel_number,
            frame.body_size,
            typed(_tables_decoded(dict(frame.properties))),
        )
    if isinstance(frame, codec.BodyFrame):
        return ("body", frame.channel_number, frame.fragment)
    return ("heartbeat",)


def _tables_decoded(values: dict[str, Any]) -> dict[str, Any]:
    return {
        name: expected_decoded(value) if isinstance(value, dict) else value
        for name, value in values.items()
    }


def decode_both(data: bytes, chunks: list[int] | None = None) -> tuple[Any, Any]:
    """Decode ``data`` with both decoders, fed in the same chunks."""
    results = []
    for accelerated in (True, False):
        decoder = codec.FrameDecoder(accelerated=accelerated)

        def run(decoder: codec.FrameDecoder = decoder) -> list[codec.Frame]:
            frames: list[codec.Frame] = []
            if chunks is None:
                return decoder.feed(data)
            start = 0
            for size in chunks:
                frames += decoder.feed(data[start : start + size])
                start += size
            frames += decoder.feed(data[start:])
            return frames

        results.append(outcome(run))
    return results[0], results[1]


class AvailabilityTests(SynchronousTestCase):
    """The accelerator is there when it should be."""

    def setUp(self) -> None:
        if not codec.ACCELERATED:
            # Honest about what runs: on the pure path these comparisons are moot.
            self.assertFalse(os.environ.get("TXAMQP091_REQUIRE_SPEEDUPS"))

    def test_required_in_ci(self) -> None:
        """With TXAMQP091_REQUIRE_SPEEDUPS set (as CI does), the C accelerator is built."""
        if os.environ.get("TXAMQP091_REQUIRE_SPEEDUPS"):
            self.assertTrue(codec.ACCELERATED)
        decoder = codec.FrameDecoder()
        self.assertEqual(decoder.accelerated, codec.ACCELERATED)

    def test_pure_decoder_on_request(self) -> None:
        """accelerated=False gives the pure decoder, whatever is built."""
        self.assertFalse(codec.FrameDecoder(accelerated=False).accelerated)


class SameResultsTests(SynchronousTestCase):
    """Both paths agree on valid, corrupted and random input."""

    def setUp(self) -> None:
        if not codec.ACCELERATED:
            self.skipTest("the C accelerator is not built (TXAMQP091_PURE_PYTHON or no compiler)")

    @EXAMPLES
    @given(stream=frame_streams(), data=st.data())
    def test_valid_streams(self, stream: list[codec.Frame], data: st.DataObject) -> None:
        """Valid frame streams decode to the same frames, in any chunking."""
        raw = codec.encode_frames(stream)
        cuts = data.draw(st.lists(st.integers(0, 64), max_size=10))
        fast, pure = decode_both(raw, cuts)
        self.assertEqual(fast, ("ok", [frame_form(frame) for frame in stream]))
        self.assertEqual(fast, pure)

    @EXAMPLES
    @given(stream=frame_streams(), data=st.data())
    def test_corrupted_streams(self, stream: list[codec.Frame], data: st.DataObject) -> None:
        """A stream with bytes overwritten or cut gives the same frames or the same error."""
        raw = bytearray(codec.encode_frames(stream) or codec.HEARTBEAT_FRAME)
        for _ in range(data.draw(st.integers(1, 4))):
            index = data.draw(st.integers(0, len(raw) - 1))
            raw[index] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(raw)))
        fast, pure = decode_both(bytes(raw[:cut]))
        self.assertEqual(fast, pure)

    @EXAMPLES
    @given(st.binary(max_size=300))
    def test_random_bytes(self, raw: bytes) -> None:
        """Arbitrary bytes give the same frames or the same error."""
        fast, pure = decode_both(raw)
        self.assertEqual(fast, pure)

    @EXAMPLES
    @given(
        method=methods(),
        properties=st.none() | basic_properties(),
        body=st.binary(max_size=9000),
        frame_max=st.sampled_from([4096, 5000, 131072]),
    )
    def test_encode_message(
        self,
        method: spec.Method,
        properties: spec.BasicProperties | None,
        body: bytes,
        frame_max: int,
    ) -> None:
        """encode_message gives the same bytes, or the same error for non-content methods."""
        fast = outcome(lambda: codec.encode_message(1, method, properties, body, frame_max))
        pure = outcome(lambda: codec.pure_encode_message(1, method, properties, body, frame_max))
        self.assertEqual(fast, pure)

    @EXAMPLES
    @given(method=methods(), channel=st.integers(0, 65535))
    def test_encode_method_frame(self, method: spec.Method, channel: int) -> None:
        """encode_method_frame gives the same bytes for every method."""
        self.assertEqual(
            codec.encode_method_frame(channel, method),
            codec.pure_encode_method_frame(channel, method),
        )

    def test_bad_arguments_same_errors(self) -> None:
        """Bad arguments raise the same errors, with the same messages, on both paths."""
        publish = spec.Basic.Publish(routing_key="rk")
        cases: list[tuple[Any, ...]] = [
            (70000, publish, None, b""),
            ("1", publish, None, b""),
            (1, spec.Queue.Declare(), None, b""),
            (1, publish, None, "text"),
            (1, publish, None, b"", 100),
            (1, publish, None, b"", 2**40),
            (1, spec.Basic.Publish(routing_key="r" * 256), None, b""),
            (1, spec.Basic.Publish(routing_key=5), None, b""),  # type: ignore[arg-type]
            (1, publish, spec.BasicProperties(priority=256), b""),
            (1, publish, spec.BasicProperties(headers={"x": object()}), b""),
            (1, publish, spec.BasicProperties(headers={"x": 2**64}), b""),
            (1, publish, spec.BasicProperties(timestamp=-1), b""),
        ]
        for args in cases:
            fast = outcome(partial(codec.encode_message, *args))
            pure = outcome(partial(codec.pure_encode_message, *args))
            self.assertEqual(fast[0], "error", args)
            self.assertEqual(fast, pure, args)

    def test_rare_valid_inputs(self) -> None:
        """Inputs the C code hands to Python still encode, identically."""
        publish = spec.Basic.Publish(routing_key="caf\udce9")  # a surrogate-escaped byte
        properties = spec.BasicProperties(
            headers={"when": __import__("datetime").datetime(2020, 1, 2, 3, 4, 5)},
            delivery_mode=spec.DeliveryMode.Persistent,
        )
        for body in (b"abc", bytearray(b"abc"), memoryview(b"abc")):
            self.assertEqual(
                codec.encode_message(1, publish, properties, body),
                codec.pure_encode_message(1, publish, properties, body),
            )


class AwkwardInputTests(SynchronousTestCase):
    """Inputs that once tripped the accelerator give the pure path's result."""

    def setUp(self) -> None:
        if not codec.ACCELERATED:
            self.skipTest("the C accelerator is not built")

    def test_properties_passed_as_a_method(self) -> None:
        """encode_method_frame given BasicProperties (after headers were encoded)
        does what the pure encoder does instead of misreading its layout."""
        codec.encode_message(1, spec.Basic.Publish(), spec.BasicProperties(), b"x")
        codec.FrameDecoder().feed(
            codec.encode_header_frame(1, 0, spec.BasicProperties(content_type="a"))
        )
        bogus: Any = spec.BasicProperties()
        self.assertEqual(
            outcome(lambda: codec.encode_method_frame(1, bogus)),
            outcome(lambda: codec.pure_encode_method_frame(1, bogus)),
        )

    def test_table_replaced_while_encoding(self) -> None:
        """A table value whose comparison rebinds the method's table while it is
        being encoded gives the same bytes as the pure encoder."""
        method = spec.Queue.Declare(queue="q")

        class Meddler(int):
            def __ge__(self, other: object) -> bool:
                method.arguments = {}
                return int(self) >= other  # type: ignore[operator]

            __hash__ = int.__hash__

        def arguments() -> dict[str, Any]:
            return {"x-a": Meddler(5), "x-b": "y" * 100, "x-c": [1, 2, 3]}

        method.arguments = arguments()
        fast = codec.encode_method_frame(1, method)
        method.arguments = arguments()
        pure = codec.pure_encode_method_frame(1, method)
        self.assertEqual(fast, pure)

    def test_subclass_feed_is_called(self) -> None:
        """A subclass overriding feed keeps its override, and super().feed still decodes."""
        calls: list[bytes] = []

        class Recording(codec.FrameDecoder):
            def feed(self, data: bytes | bytearray | memoryview) -> list[codec.Frame]:
                calls.append(bytes(data))
                return super().feed(data)

        decoder = Recording()
        self.assertTrue(decoder.accelerated)
        self.assertEqual(decoder.feed(codec.HEARTBEAT_FRAME), [codec.HeartbeatFrame()])
        self.assertEqual(calls, [codec.HEARTBEAT_FRAME])

    def test_feed_rejects_non_bytes(self) -> None:
        """feed(5) raises TypeError on both paths (it does not buffer five zero bytes)."""
        for accelerated in (True, False):
            decoder = codec.FrameDecoder(accelerated=accelerated)
            self.assertRaises(TypeError, decoder.feed, 5)
            self.assertEqual(decoder.buffered, 0)

    def test_many_decimals(self) -> None:
        """A header full of decimals and timestamps decodes as on the pure path."""
        from datetime import datetime
        from decimal import Decimal

        headers = {
            f"k{i}": Decimal(i) / 100 if i % 2 else datetime(2020, 1, 1) for i in range(500)
        }
        raw = codec.encode_header_frame(1, 0, spec.BasicProperties(headers=headers))
        fast, pure = decode_both(raw)
        self.assertEqual(fast, pure)
        self.assertEqual(fast[0], "ok")


class NoLeakTests(SynchronousTestCase):
    """The accelerator does not leak memory, on the fast path or the fallbacks."""

    def setUp(self) -> None:
        if not codec.ACCELERATED:
            self.skipTest("the C accelerator is not built")

    def assertNoGrowth(self, work: Callable[[], object]) -> None:
        """Running ``work`` 20,000 more times leaves traced memory (nearly) unchanged."""
        for _ in range(2000):
            work()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(20000):
                work()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        self.assertLess(after - before, 64 * 1024)

    def test_decode_and_encode(self) -> None:
        """Decoding and encoding messages (with headers of several types) does not leak."""
        properties = spec.BasicProperties(
            content_type="text/plain",
            headers={"a": 1, "b": [1.5, "x", None], "c": {"d": True}, "e": b"\x00"},
        )
        deliver = spec.Basic.Deliver("ctag", 1, False, "", "rk")
        raw = codec.encode_message(1, deliver, properties, b"x" * 100)
        decoder = codec.FrameDecoder()
        self.assertNoGrowth(lambda: decoder.feed(raw))
        self.assertNoGrowth(lambda: codec.encode_message(1, deliver, properties, b"x" * 100))

    def test_fallbacks(self) -> None:
        """The paths that hand work to Python (rare values, errors) do not leak."""
        from decimal import Decimal

        properties = spec.BasicProperties(headers={"d": Decimal("1.5")})
        raw = codec.encode_message(1, spec.Basic.Publish(), properties, b"")
        decoder = codec.FrameDecoder()
        self.assertNoGrowth(lambda: decoder.feed(raw))
        bad = bytearray(raw)
        bad[-1] = 0

        def fail() -> None:
            try:
                codec.FrameDecoder().feed(bytes(bad))
            except InvalidFrameError:
                pass

        self.assertNoGrowth(fail)
        self.assertNoGrowth(
            lambda: outcome(lambda: codec.encode_message(70000, spec.Basic.Publish(), None, b""))
        )

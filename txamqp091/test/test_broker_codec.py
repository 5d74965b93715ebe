"""Integration tests: the codec's frames against the real RabbitMQ.

These run the README's example and reuse its small blocking session to check
that what we encode is what the broker accepts, and that what the broker sends
back decodes to what we published. They fail (never skip) without a broker.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import codec, fields, spec
from txamqp091.exceptions import InvalidFrameError
from txamqp091.parameters import URLParameters
from txamqp091.test.broker import amqp_url, ensure_broker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module."""
    location = EXAMPLES / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(f"example_{name}", location)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


class ExampleTests(SynchronousTestCase):
    """The README's example runs against the broker."""

    def setUp(self) -> None:
        ensure_broker()

    def test_publish_get_example(self) -> None:
        """examples/publish_get.py publishes a message, gets it back and says so."""
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / "publish_get.py"), amqp_url()],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("got b'Hello from txamqp091!'", result.stdout)
        self.assertIn("closed the connection", result.stdout)


class BrokerRoundTripTests(SynchronousTestCase):
    """Messages encoded by the codec survive a trip through RabbitMQ."""

    def setUp(self) -> None:
        ensure_broker()
        self.example = load_example("publish_get")

    def open(self, query: str = "") -> tuple[Any, str]:
        """Open a session, channel 1 and a fresh auto-delete queue."""
        url = amqp_url() + query
        session = self.example.Session(URLParameters(url))
        self.addCleanup(session.sock.close)
        session.call(1, spec.Channel.Open())
        queue = f"txamqp091-test-{uuid.uuid4().hex}"
        session.call(1, spec.Queue.Declare(queue=queue, auto_delete=True))
        self.addCleanup(self._delete, url, queue)
        return session, queue

    def _delete(self, url: str, queue: str) -> None:
        session = self.example.Session(URLParameters(url))
        try:
            session.call(1, spec.Channel.Open())
            session.call(1, spec.Queue.Delete(queue=queue))
            session.close()
        finally:
            session.sock.close()

    def publish_and_get(
        self, session: Any, queue: str, properties: spec.BasicProperties, body: bytes
    ) -> tuple[spec.BasicProperties, bytes]:
        """Publish one message to ``queue`` and fetch it back with Basic.Get."""
        publish = spec.Basic.Publish(exchange="", routing_key=queue)
        session.sock.sendall(codec.encode_message(1, publish, properties, body, session.frame_max))
        # A synchronous round trip on the same channel orders after the publish.
        session.call(1, spec.Basic.Qos(prefetch_count=0))
        reply = session.call(1, spec.Basic.Get(queue=queue, no_ack=True))
        self.assertIsInstance(reply, spec.Basic.GetOk)
        props, received = session.read_content(1)
        return props, received

    def test_every_property_and_header_type(self) -> None:
        """All 14 properties and headers of every field type come back equal."""
        session, queue = self.open()
        headers = {
            "bool": True,
            "int8": fields.Int8(-5),
            "uint8": fields.UInt8(250),
            "int16": fields.Int16(-30000),
            "uint16": fields.UInt16(65000),
            "int32": -(2**31),
            "uint32": fields.UInt32(2**32 - 1),
            "int64": 2**63 - 1,
            "float32": fields.Float32(1.5),
            "double": 2.718281828459045,
            "decimal": Decimal("-12.345"),
            "str": "h\u00e9llo",
            "bytes": b"\x00\xff",
            "list": [1, "two", [3.0], {"four": None}],
            "stamp": datetime(2026, 11, 27, 12, 34, 56),
            "table": {"nested": {"deep": True}},
            "void": None,
        }
        properties = spec.BasicProperties(
            content_type="application/octet-stream",
            content_encoding="identity",
            headers=headers,
            delivery_mode=2,
            priority=5,
            correlation_id="corr",
            reply_to="reply-queue",
            expiration="60000",
            message_id="msg-1",
            timestamp=1_700_000_000,
            type="kind",
            user_id="guest",
            app_id="txamqp091-tests",
            cluster_id="cluster",
        )
        props, body = self.publish_and_get(session, queue, properties, b"payload")
        self.assertEqual(body, b"payload")
        self.assertEqual(props, properties)
        self.assertEqual(props.headers, headers)
        session.close()

    def test_body_split_into_many_frames(self) -> None:
        """A body larger than frame_max is split by the encoder and reassembled intact."""
        session, queue = self.open("?frame_max=4096")
        self.assertEqual(session.frame_max, 4096)
        body = bytes(range(256)) * 1000  # 256,000 bytes: 63 body frames of 4,088 bytes
        props, received = self.publish_and_get(session, queue, spec.BasicProperties(), body)
        self.assertEqual(received, body)
        self.assertEqual(props, spec.BasicProperties())
        session.close()

    def test_empty_body(self) -> None:
        """A message with an empty body has no body frame and comes back empty."""
        session, queue = self.open()
        props, received = self.publish_and_get(
            session, queue, spec.BasicProperties(content_type="text/plain"), b""
        )
        self.assertEqual(received, b"")
        self.assertEqual(props.content_type, "text/plain")
        session.close()

    def test_broker_closes_on_bad_frame_end(self) -> None:
        """RabbitMQ answers a corrupted frame-end byte by closing with 501 frame-error.

        This pins down the reply code our own decoder uses for the same fault.
        """
        session, _queue = self.open()
        frame = bytearray(codec.encode_method_frame(1, spec.Basic.Qos(prefetch_count=1)))
        frame[-1] = 0x00
        session.sock.sendall(bytes(frame))
        close = session.next_frame()
        self.assertIsInstance(close, codec.MethodFrame)
        self.assertIsInstance(close.method, spec.Connection.Close)
        self.assertEqual(close.method.reply_code, spec.FRAME_ERROR)
        with self.assertRaises(InvalidFrameError) as raised:
            codec.FrameDecoder().feed(bytes(frame))
        self.assertEqual(raised.exception.reply_code, close.method.reply_code)

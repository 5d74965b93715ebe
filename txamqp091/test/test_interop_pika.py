"""Interoperability with pika through the real broker.

pika (``BlockingConnection``, run in a thread with :func:`deferToThread`) publishes a
message with every ``BasicProperties`` field set and headers of every type pika encodes;
txamqp091 consumes it and must see the same properties and body. Then the reverse:
txamqp091 publishes, pika fetches with ``basic_get`` and must see what was sent.

pika 1.4 cannot encode floats and truncates the ones it decodes, so no header here is a
float. An unreachable broker fails these tests (see :mod:`txamqp091.test.broker`).
"""

# trial's assertion methods carry no annotations.
# mypy: allow-untyped-calls

from __future__ import annotations

import os
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pika
from twisted.internet import threads

from txamqp091 import BasicProperties
from txamqp091.fields import Int8, Int16, Int64, UInt8, UInt16, UInt32
from txamqp091.test.broker import amqp_url
from txamqp091.test.integration import IntegrationTestCase, async_test, wait_for

#: The BasicProperties fields (in the AMQP order), the same in pika and txamqp091.
PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)

#: A moment with whole seconds (AMQP timestamps carry seconds).
MOMENT = datetime(2024, 2, 29, 23, 59, 58, tzinfo=timezone.utc)

#: A body larger than RabbitMQ's frame_max (131072), so it travels in several frames.
BODY = os.urandom(300_000)

#: Seconds allowed for one pika operation run in a thread.
PIKA_WAIT = 20.0


def header_values() -> dict[str, Any]:
    """Header values of every type pika encodes, as pika is given them.

    Floats are left out: pika 1.4 refuses to encode them.
    """
    return {
        "str": "text with ünïcödé",
        "empty str": "",
        "int": 42,
        "zero": 0,
        "negative int": -42,
        "int32 max": 2**31 - 1,
        "int32 min": -(2**31),
        "large int": 2**31,
        "int64 max": 2**63 - 1,
        "int64 min": -(2**63),
        "true": True,
        "false": False,
        "none": None,
        "bytes": b"\x00\x01\xfe\xff raw",
        "empty bytes": b"",
        "decimal": Decimal("-12.345"),
        "decimal integral": Decimal("100"),
        "timestamp": MOMENT,
        "list": [1, "two", b"three", False, None, Decimal("1.5"), MOMENT, {"k": "v"}, [1, [2]]],
        "empty list": [],
        "nested": {"inner": "v", "deeper": {"n": -1, "l": [True, "x"]}, "empty": {}},
    }


def all_properties(headers: dict[str, Any]) -> dict[str, Any]:
    """Every BasicProperties field with a value (``user_id`` is the broker login, which
    RabbitMQ checks)."""
    return {
        "content_type": "application/octet-stream",
        "content_encoding": "identity",
        "headers": headers,
        "delivery_mode": 2,
        "priority": 7,
        "correlation_id": "correlation-äöü",
        "reply_to": "reply.queue",
        "expiration": "600000",
        "message_id": "message-1",
        "timestamp": 1_709_251_198,
        "type": "interop.test",
        "user_id": "guest",
        "app_id": "txamqp091-tests",
        "cluster_id": "cluster-7",
    }


def naive_utc(value: Any) -> Any:
    """``value`` with every aware datetime (as pika decodes timestamps) made naive UTC (as
    txamqp091 decodes them), in lists and tables too."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(timezone.utc).replace(tzinfo=None)
        return value
    if isinstance(value, dict):
        return {key: naive_utc(item) for key, item in value.items()}
    if isinstance(value, list):
        return [naive_utc(item) for item in value]
    return value


def properties_dict(properties: Any) -> dict[str, Any]:
    """Every field of a pika or txamqp091 BasicProperties, as a dict."""
    return {name: getattr(properties, name) for name in PROPERTY_NAMES}


def pika_parameters() -> pika.URLParameters:
    """Connection parameters for pika, to the same broker as the tests."""
    parameters = pika.URLParameters(amqp_url())
    parameters.socket_timeout = 10
    parameters.blocked_connection_timeout = 10
    return parameters


def pika_publish(queue: str, body: bytes, properties: dict[str, Any]) -> None:
    """Publish with pika (confirmed, mandatory) to ``queue`` via the default exchange.

    Blocking; run it in a thread.
    """
    connection = pika.BlockingConnection(pika_parameters())
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", queue, body, pika.BasicProperties(**properties), mandatory=True)
    finally:
        connection.close()


def pika_get(queue: str) -> tuple[Any, Any, bytes] | None:
    """Fetch one message with pika's basic_get (auto-acked); ``None`` if there is none.

    Blocking; run it in a thread.
    """
    connection = pika.BlockingConnection(pika_parameters())
    try:
        channel = connection.channel()
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return None
        return method, properties, body
    finally:
        connection.close()


class PikaInteropTests(IntegrationTestCase):
    """Messages cross between pika and txamqp091 unchanged."""

    @async_test
    async def test_pika_publishes_txamqp091_consumes(self) -> None:
        """A message pika publishes with every property set, headers of every type
        pika encodes and a multi-frame body reaches a txamqp091 consumer with every
        property (timestamps as naive UTC datetimes) and the body unchanged."""
        _conn, channel = await self.connection_and_channel()
        queue = await self.declare_queue(channel)
        sent = all_properties(header_values())
        await wait_for(threads.deferToThread(pika_publish, queue, BODY, sent), PIKA_WAIT)

        consumer, _tag = await channel.basic_consume(queue)
        message = await wait_for(consumer.get())
        channel.basic_ack(message.method.delivery_tag)
        self.assertEqual(len(message.body), len(BODY))
        self.assertTrue(message.body == BODY, "the body came back different")
        received = properties_dict(message.properties)
        expected = dict(sent, headers=naive_utc(sent["headers"]))
        for name in PROPERTY_NAMES:
            if name != "headers":
                self.assertEqual(received[name], expected[name], name)
        for key, value in expected["headers"].items():
            self.assertEqual(received["headers"].get(key, "<missing>"), value, key)
        self.assertEqual(received, expected)
        self.assertIsInstance(received["headers"]["bytes"], bytes)
        self.assertIs(received["headers"]["true"], True)

    @async_test
    async def test_txamqp091_publishes_pika_gets(self) -> None:
        """A message txamqp091 publishes with every property set, headers of every type
        pika decodes (including the explicitly sized integers) and a multi-frame body
        reaches pika's basic_get with every property (timestamps as aware UTC
        datetimes) and the body unchanged."""
        conn, channel = await self.connection_and_channel()
        queue = await self.declare_queue(channel)
        headers = header_values()
        sized = {
            "int8": (Int8(-128), -128),
            "uint8": (UInt8(255), 255),
            "int16": (Int16(-32768), -32768),
            "uint16": (UInt16(65535), 65535),
            "uint32": (UInt32(2**32 - 1), 2**32 - 1),
            "int64 small": (Int64(5), 5),
        }
        sent_headers = dict(headers, **{key: wrapped for key, (wrapped, _) in sized.items()})
        sent = all_properties(sent_headers)
        await channel.confirm_delivery()
        await wait_for(
            channel.basic_publish("", queue, BODY, BasicProperties(**sent), mandatory=True)
        )

        got = await wait_for(threads.deferToThread(pika_get, queue), PIKA_WAIT)
        self.assertIsNotNone(got, "pika found the queue empty")
        assert got is not None
        _method, properties, body = got
        self.assertEqual(len(body), len(BODY))
        self.assertTrue(body == BODY, "the body came back different")
        received = properties_dict(properties)
        expected_headers = dict(headers, **{key: plain for key, (_, plain) in sized.items()})
        expected = dict(sent, headers=expected_headers)
        for name in PROPERTY_NAMES:
            if name != "headers":
                self.assertEqual(received[name], expected[name], name)
        for key, value in expected_headers.items():
            self.assertEqual(received["headers"].get(key, "<missing>"), value, key)
        self.assertEqual(received, expected)
        self.assertEqual(received["headers"]["timestamp"].tzinfo, timezone.utc)
        self.assertTrue(conn.is_open)

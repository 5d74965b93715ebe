#!/usr/bin/env python3
"""Publish with publisher confirms: acks, nacks and unroutable returns.

After ``confirm_delivery()`` every ``basic_publish`` returns a Deferred that
fires when the broker has taken responsibility for the message, or fails
with a typed error saying why it did not:

1. ``--count`` messages to a queue: all are acked;
2. a ``mandatory`` message no queue is bound for: the broker returns it and
   the Deferred fails with ``UnroutableError``;
3. two messages to a queue that holds one at most and rejects the overflow:
   the second is nacked and its Deferred fails with ``NackError``.

Usage::

    python examples/confirmed_publish.py [--url URL] [--count N]
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, task

from txamqp091 import BasicProperties, DeliveryMode, spec
from txamqp091.channel import Channel
from txamqp091.connect import connect
from txamqp091.exceptions import AMQPError, NackError, UnroutableError

DEFAULT_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def on_return(
    channel: Channel, method: Any, properties: spec.BasicProperties, body: bytes
) -> None:
    """Called for every message the broker returns (``Basic.Return``)."""
    print(f"returned: {body!r} ({method.reply_code} {method.reply_text})")


@defer.inlineCallbacks
def publish_all(channel: Channel, args: argparse.Namespace) -> Generator[Any, Any, None]:
    """Publish ``args.count`` messages and wait until the broker acks them all."""
    queue = f"txamqp091-example-{uuid.uuid4().hex[:8]}"
    yield channel.queue_declare(queue)
    properties = BasicProperties(delivery_mode=DeliveryMode.Persistent)
    confirms = [
        channel.basic_publish("", queue, f"message {n}", properties)
        for n in range(1, args.count + 1)
    ]
    print(f"published {args.count} messages, {channel.unconfirmed_count} unconfirmed")
    # Each Deferred fires with the broker's Basic.Ack.
    yield defer.gatherResults(confirms, consumeErrors=True)
    print(f"all {args.count} messages confirmed")
    yield channel.queue_delete(queue)


@defer.inlineCallbacks
def publish_unroutable(channel: Channel) -> Generator[Any, Any, None]:
    """A mandatory message that no queue receives comes back as UnroutableError."""
    nowhere = f"txamqp091-nowhere-{uuid.uuid4().hex[:8]}"
    try:
        yield channel.basic_publish("", nowhere, b"lost?", mandatory=True)
    except UnroutableError as exc:
        returned = exc.messages[0]
        print(f"unroutable: {returned.body!r} ({returned.method.reply_code})")
    else:
        raise SystemExit("a mandatory message to nowhere was confirmed")


@defer.inlineCallbacks
def publish_overflow(channel: Channel) -> Generator[Any, Any, None]:
    """A queue that rejects what exceeds its length makes the broker nack."""
    queue = f"txamqp091-example-{uuid.uuid4().hex[:8]}"
    yield channel.queue_declare(
        queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    first = channel.basic_publish("", queue, b"fits")
    second = channel.basic_publish("", queue, b"overflows")
    yield first
    print("first message acked")
    try:
        yield second
    except NackError as exc:
        print(f"nacked: {exc.messages[0].body!r}")  # the message as published
    else:
        raise SystemExit("the overflowing message was acked")
    yield channel.queue_delete(queue)


@defer.inlineCallbacks
def main(reactor: Any, args: argparse.Namespace) -> Generator[defer.Deferred[Any], Any, None]:
    """Run the three demonstrations; raise SystemExit on failure."""
    try:
        connection = yield connect(reactor, args.url)
    except AMQPError as exc:
        raise SystemExit(f"could not connect: {exc!r}") from None
    try:
        if not connection.publisher_confirms_supported:
            raise SystemExit("the broker does not support publisher confirms")
        channel = yield connection.channel()
        channel.add_on_return_callback(on_return)
        yield channel.confirm_delivery()
        print("publisher confirms enabled")
        yield publish_all(channel, args)
        yield publish_unroutable(channel)
        yield publish_overflow(channel)
        yield channel.close()
    except AMQPError as exc:
        raise SystemExit(f"failed: {exc!r}") from None
    finally:
        yield connection.close()
        print("closed the connection")


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description="Publish with publisher confirms.")
    parser.add_argument("--url", default=DEFAULT_URL, help="broker URL (default: %(default)s)")
    parser.add_argument("--count", type=int, default=10, help="messages to publish")
    return parser.parse_args()


if __name__ == "__main__":
    task.react(main, (parse_args(),))

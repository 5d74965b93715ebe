#!/usr/bin/env python3
"""Publish messages with the Twisted API, pacing the writes with ``when_writable()``.

Connects, declares a queue, publishes ``--count`` persistent messages in
batches and waits until the queue holds them all. A queue the script named
itself is deleted at the end; one named with ``--queue`` is kept, with its
messages, for ``twisted_consumer.py --queue`` to read.

Usage::

    python examples/twisted_publisher.py [--url URL] [--count N] [--queue NAME]
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, task

from txamqp091 import BasicProperties, DeliveryMode
from txamqp091.connect import connect
from txamqp091.exceptions import AMQPError

DEFAULT_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@defer.inlineCallbacks
def main(reactor: Any, args: argparse.Namespace) -> Generator[defer.Deferred[Any], Any, None]:
    """Publish ``args.count`` messages; raise SystemExit on failure."""
    try:
        connection = yield connect(reactor, args.url)
    except AMQPError as exc:
        raise SystemExit(f"could not connect: {exc!r}") from None
    print(f"connected to {connection.server_properties.get('product', '?')}")
    try:
        channel = yield connection.channel()
        queue = args.queue or f"txamqp091-example-{uuid.uuid4().hex[:8]}"
        yield channel.queue_declare(queue)
        print(f"declared queue {queue!r}")

        properties = BasicProperties(
            content_type="text/plain", delivery_mode=DeliveryMode.Persistent
        )
        for number in range(1, args.count + 1):
            # Outside confirm mode basic_publish just writes: nothing to wait for.
            channel.basic_publish("", queue, f"message {number}", properties)
            if number % args.batch == 0:
                # Back-pressure: wait while the socket buffer is full or the
                # broker has blocked the connection (a memory or disk alarm).
                yield connection.when_writable()
        print(f"published {args.count} messages to {queue!r}")

        # Without publisher confirms nothing says when the broker has routed
        # the messages (confirmed_publish.py shows that), so poll the queue.
        held = 0
        for _ in range(100):
            declared = yield channel.queue_declare(queue, passive=True)
            held = declared.method.message_count
            if held >= args.count:
                break
            yield task.deferLater(reactor, 0.1, lambda: None)
        print(f"the queue holds {held} messages")

        if args.queue is None:
            yield channel.queue_delete(queue)
            print(f"deleted {queue!r}")
        yield channel.close()
    except AMQPError as exc:
        raise SystemExit(f"failed: {exc!r}") from None
    finally:
        yield connection.close()
        print("closed the connection")
    if held < args.count:
        raise SystemExit(f"expected {args.count} messages in the queue, found {held}")


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="broker URL (default: %(default)s)")
    parser.add_argument("--count", type=int, default=10, help="messages to publish")
    parser.add_argument("--batch", type=int, default=100, help="messages between pauses")
    parser.add_argument("--queue", help="queue to publish to, kept at the end")
    return parser.parse_args()


if __name__ == "__main__":
    task.react(main, (parse_args(),))

#!/usr/bin/env python3
"""Consume messages with ``inlineCallbacks``, a prefetch limit and manual acks.

Connects, sets the prefetch window with ``basic_qos``, declares a queue and
consumes ``--count`` messages from it one ``yield queue.get()`` at a time,
acknowledging each, then cancels the consumer and closes. With
``--self-test`` it first publishes the messages itself, so it runs alone;
otherwise feed it with ``twisted_publisher.py --queue NAME``. A queue the
script named itself is deleted at the end.

Usage::

    python examples/twisted_consumer.py --self-test [--url URL] [--count N]
    python examples/twisted_consumer.py --queue NAME [--count N] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, task

from txamqp091.connect import connect
from txamqp091.exceptions import AMQPError, ConsumerCancelled

DEFAULT_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@defer.inlineCallbacks
def main(reactor: Any, args: argparse.Namespace) -> Generator[defer.Deferred[Any], Any, None]:
    """Consume ``args.count`` messages; raise SystemExit on failure."""
    try:
        connection = yield connect(reactor, args.url)
    except AMQPError as exc:
        raise SystemExit(f"could not connect: {exc!r}") from None
    received = 0
    try:
        channel = yield connection.channel()
        # At most --prefetch unacknowledged messages are in flight to us.
        yield channel.basic_qos(prefetch_count=args.prefetch)
        queue = args.queue or f"txamqp091-example-{uuid.uuid4().hex[:8]}"
        yield channel.queue_declare(queue)
        print(f"declared queue {queue!r}")
        if args.self_test:
            for number in range(1, args.count + 1):
                channel.basic_publish("", queue, f"message {number}")
            print(f"published {args.count} test messages")

        # Without a callback, basic_consume hands back a ConsumerQueue.
        messages, tag = yield channel.basic_consume(queue)
        print(f"consuming from {queue!r} as {tag!r}")
        while received < args.count:
            try:
                message = yield messages.get().addTimeout(args.timeout, reactor)
            except defer.TimeoutError:
                print(f"no message within {args.timeout} s")
                break
            except ConsumerCancelled:  # e.g. the queue was deleted
                print("the broker cancelled the consumer")
                break
            received += 1
            print(f"received {message.body.decode()!r}")
            channel.basic_ack(message.method.delivery_tag)

        if not messages.closed:
            yield channel.basic_cancel(tag)
        print(f"cancelled the consumer after {received} messages")
        if args.queue is None:
            yield channel.queue_delete(queue)
            print(f"deleted {queue!r}")
        yield channel.close()
    except AMQPError as exc:
        raise SystemExit(f"failed: {exc!r}") from None
    finally:
        yield connection.close()
        print("closed the connection")
    if received < args.count:
        raise SystemExit(f"expected {args.count} messages, received {received}")


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description="Consume messages with inlineCallbacks.")
    parser.add_argument("--url", default=DEFAULT_URL, help="broker URL (default: %(default)s)")
    parser.add_argument("--count", type=int, default=10, help="messages to consume")
    parser.add_argument("--queue", help="queue to consume from, kept at the end")
    parser.add_argument("--prefetch", type=int, default=5, help="basic_qos prefetch count")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for each message"
    )
    parser.add_argument(
        "--self-test", action="store_true", help="publish the messages to consume first"
    )
    return parser.parse_args()


if __name__ == "__main__":
    task.react(main, (parse_args(),))

#!/usr/bin/env python3
"""Consume messages with ``async def`` and ``async for``.

The same consumer as ``twisted_consumer.py``, written as a coroutine: Twisted's
Deferreds are awaitable, ``defer.ensureDeferred`` (which ``task.react`` calls)
runs the coroutine, and a :class:`~txamqp091.message.ConsumerQueue` is an
async iterator. The loop ends after ``--count`` messages, or quietly when
the consumer is cancelled: here by a timer, after ``--timeout`` seconds.
With ``--self-test`` the script first publishes the messages itself.

Usage::

    python examples/async_consumer.py --self-test [--url URL] [--count N]
    python examples/async_consumer.py --queue NAME [--count N] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any

from twisted.internet import defer, task

from txamqp091.channel import Channel
from txamqp091.connect import connect
from txamqp091.exceptions import AMQPError
from txamqp091.protocol import AMQPProtocol

DEFAULT_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


async def consume(reactor: Any, channel: Channel, queue: str, args: argparse.Namespace) -> int:
    """Consume up to ``args.count`` messages from *queue*; return how many arrived."""
    messages, tag = await channel.basic_consume(queue)
    print(f"consuming from {queue!r} as {tag!r}")
    # Cancelling the consumer ends the ``async for`` below without an error.
    timer = reactor.callLater(args.timeout, channel.basic_cancel, tag)
    received = 0
    async for message in messages:
        received += 1
        print(f"received {message.body.decode()!r}")
        channel.basic_ack(message.method.delivery_tag)
        if received == args.count:
            break
    if timer.active():
        timer.cancel()
        await channel.basic_cancel(tag)
    else:
        print(f"timed out after {args.timeout} s")
    print(f"cancelled the consumer after {received} messages")
    return received


async def run(reactor: Any, connection: AMQPProtocol, args: argparse.Namespace) -> int:
    """Set up the channel and queue, consume, clean up; return the message count."""
    channel = await connection.channel()
    await channel.basic_qos(prefetch_count=args.prefetch)
    queue = args.queue or f"txamqp091-example-{uuid.uuid4().hex[:8]}"
    await channel.queue_declare(queue)
    print(f"declared queue {queue!r}")
    if args.self_test:
        for number in range(1, args.count + 1):
            channel.basic_publish("", queue, f"message {number}")
        print(f"published {args.count} test messages")
    received = await consume(reactor, channel, queue, args)
    if args.queue is None:
        await channel.queue_delete(queue)
        print(f"deleted {queue!r}")
    await channel.close()
    return received


async def main(reactor: Any, args: argparse.Namespace) -> None:
    """Connect, consume, close; raise SystemExit on failure."""
    try:
        connection = await connect(reactor, args.url)
    except AMQPError as exc:
        raise SystemExit(f"could not connect: {exc!r}") from None
    try:
        received = await run(reactor, connection, args)
    except AMQPError as exc:
        raise SystemExit(f"failed: {exc!r}") from None
    finally:
        await connection.close()
        print("closed the connection")
    if received < args.count:
        raise SystemExit(f"expected {args.count} messages, received {received}")


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description="Consume messages with async for.")
    parser.add_argument("--url", default=DEFAULT_URL, help="broker URL (default: %(default)s)")
    parser.add_argument("--count", type=int, default=10, help="messages to consume")
    parser.add_argument("--queue", help="queue to consume from, kept at the end")
    parser.add_argument("--prefetch", type=int, default=5, help="basic_qos prefetch count")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to consume for")
    parser.add_argument(
        "--self-test", action="store_true", help="publish the messages to consume first"
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    # task.react passes main's coroutine to defer.ensureDeferred and runs the
    # reactor until it finishes.
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))

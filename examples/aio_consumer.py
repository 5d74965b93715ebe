#!/usr/bin/env python3
"""Publish with confirms and consume with ``async for``, on plain asyncio.

The native asyncio API (:mod:`txamqp091.aio`): no reactor, just ``asyncio.run``.
The script declares a queue, publishes ``--count`` messages (each ``await`` returns
once the broker has confirmed it), consumes them back with ``async for`` and acks
each, then deletes the queue and closes the connection.

Usage::

    python examples/aio_consumer.py [--url URL] [--count N] [--prefetch N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid

from txamqp091 import aio
from txamqp091.exceptions import AMQPError
from txamqp091.spec import BasicProperties

DEFAULT_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


async def publish(channel: aio.Channel, queue: str, count: int) -> None:
    """Publish *count* messages to *queue*, waiting for each confirm."""
    await channel.confirm_delivery()
    properties = BasicProperties(content_type="text/plain")
    for number in range(1, count + 1):
        await channel.basic_publish("", queue, f"message {number}", properties)
    print(f"published {count} messages, each confirmed")


async def consume(channel: aio.Channel, queue: str, count: int, prefetch: int) -> int:
    """Consume up to *count* messages from *queue*; return how many arrived."""
    received = 0
    # Leaving the block cancels the consumer (breaking out of async for would too).
    async with channel.consume(queue, prefetch=prefetch) as consumer:
        print(f"consuming from {queue!r} as {consumer.consumer_tag!r}")
        async for message in consumer:
            print(f"received {message.body.decode()!r}")
            message.ack()
            received += 1
            if received == count:
                break
    print(f"cancelled the consumer after {received} messages")
    return received


async def main(args: argparse.Namespace) -> int:
    """Connect, publish, consume, clean up; the exit status."""
    try:
        connection = await aio.connect(args.url)
    except AMQPError as exc:
        print(f"could not connect: {exc!r}", file=sys.stderr)
        return 1
    received = 0
    async with connection:
        channel = await connection.channel()
        queue = f"txamqp091-example-{uuid.uuid4().hex[:8]}"
        await channel.queue_declare(queue)
        print(f"declared queue {queue!r}")
        try:
            await publish(channel, queue, args.count)
            # Never wait forever in an example: give up after --timeout seconds.
            received = await asyncio.wait_for(
                consume(channel, queue, args.count, args.prefetch), args.timeout
            )
        except (AMQPError, asyncio.TimeoutError) as exc:
            print(f"failed: {exc!r}", file=sys.stderr)
        finally:
            if channel.is_open:
                await channel.queue_delete(queue)
                print(f"deleted {queue!r}")
    print("closed the connection")
    if received < args.count:
        print(f"expected {args.count} messages, received {received}", file=sys.stderr)
        return 1
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="broker URL (default: %(default)s)")
    parser.add_argument("--count", type=int, default=10, help="messages to publish and consume")
    parser.add_argument("--prefetch", type=int, default=5, help="basic_qos prefetch count")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to consume for")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))

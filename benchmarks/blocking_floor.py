#!/usr/bin/env python3
"""The floor under a blocking client's confirm round trip on this machine.

Opens a txamqp091 BlockingConnection (for the handshake and the queue only), then
measures the cheapest possible confirmed publish from Python: one ``send`` of an
already-encoded ``Basic.Publish`` + header + body, one ``epoll`` wait and one ``recv``
of the ``Basic.Ack`` -- no decoding, no Deferred, no loop. Any blocking client's W2
(confirm each publish) costs at least this much CPU per message; compare it with
``client.py --only W2 --clients pika-blocking,txamqp091-blocking`` run just before or
after (only ratios travel between runs).

Usage::

    python benchmarks/blocking_floor.py [--url URL] [--count 5000]
"""

from __future__ import annotations

import argparse
import select
import time

import txamqp091 as pika
from txamqp091 import codec, spec


def main() -> None:
    """Print the CPU and wall time per bare confirm round trip."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.confirm_delivery()
    frames = codec.encode_message(
        channel.channel_number, spec.Basic.Publish(0, "", queue, False, False), None, b"x" * 64
    )
    sock = connection._transport.getHandle()
    poller = select.epoll()
    poller.register(sock.fileno(), select.EPOLLIN)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(args.count):
        sock.send(frames)
        poller.poll(5.0)
        sock.recv(65536)  # the Basic.Ack (not decoded)
    cpu = (time.process_time() - cpu0) / args.count * 1e6
    wall = (time.perf_counter() - wall0) / args.count * 1e6
    print(f"bare confirm round trip: {cpu:.1f} us CPU, {wall:.1f} us wall (x {args.count})")


if __name__ == "__main__":
    main()

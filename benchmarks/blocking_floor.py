#!/usr/bin/env python3
"""The floor under a blocking client's round trips (W2 confirm, W5 RPC) on this machine.

Opens a txamqp091 BlockingConnection (for the handshake and the queue only), then
measures the cheapest possible confirmed publish from Python: one ``send`` of an
already-encoded ``Basic.Publish`` + header + body, one ``epoll`` wait and one ``recv``
of the ``Basic.Ack`` -- no decoding, no Deferred, no loop. Any blocking client's W2
(confirm each publish) costs at least this much CPU per message; compare it with
``client.py --only W2 --clients pika-blocking,txamqp091-blocking`` run just before or
after (only ratios travel between runs).

With ``--rpc`` it measures W5's floor instead: the same bare send / wait / recv, of
a request to ``client.py``'s RPC responder (another process) and of its reply through
direct reply-to.

Usage::

    python benchmarks/blocking_floor.py [--url URL] [--count 5000] [--rpc]
"""

from __future__ import annotations

import argparse
import select
import time
import uuid
from typing import Any

from client import BODY, REPLY_TO, RPC_QUEUE_SUFFIX, Responder

import txamqp091 as pika
from txamqp091 import codec, spec


def bare_round_trips(sock: Any, frames: bytes, count: int) -> tuple[float, float]:
    """CPU and wall microseconds per send / epoll wait / recv round trip."""
    poller = select.epoll()
    poller.register(sock.fileno(), select.EPOLLIN)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(count):
        sock.send(frames)
        poller.poll(5.0)
        sock.recv(65536)  # the answer (not decoded)
    poller.close()
    cpu = (time.process_time() - cpu0) / count * 1e6
    return cpu, (time.perf_counter() - wall0) / count * 1e6


def main() -> None:
    """Print the CPU and wall time per bare round trip."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rpc", action="store_true", help="W5's floor instead of W2's")
    args = parser.parse_args()
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    sock = connection._transport.getHandle()
    if not args.rpc:
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()
        frames = codec.encode_message(
            channel.channel_number, spec.Basic.Publish(0, "", queue, False, False), None, BODY
        )
        cpu, wall = bare_round_trips(sock, frames, args.count)
        print(f"bare confirm round trip: {cpu:.1f} us CPU, {wall:.1f} us wall (x {args.count})")
        return
    rpc_queue = f"bench-floor-{uuid.uuid4().hex[:10]}{RPC_QUEUE_SUFFIX}"
    responder = Responder(args.url, rpc_queue)
    try:
        channel.basic_consume(REPLY_TO, lambda *_: None, auto_ack=True)
        properties = spec.BasicProperties(correlation_id="0", reply_to=REPLY_TO)
        frames = codec.encode_message(
            channel.channel_number,
            spec.Basic.Publish(0, "", rpc_queue, False, False),
            properties,
            BODY,
        )
        cpu, wall = bare_round_trips(sock, frames, args.count)
    finally:
        responder.stop()
    print(f"bare RPC round trip: {cpu:.1f} us CPU, {wall:.1f} us wall (x {args.count})")


if __name__ == "__main__":
    main()

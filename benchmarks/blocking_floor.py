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

With ``--codec`` each round trip also encodes its request (``Basic.Publish`` and, for
``--rpc``, fresh ``BasicProperties`` with the correlation id) and decodes the answer
with txamqp091's codec (its C accelerator where built): the least a client that
speaks AMQP, rather than replaying canned bytes, must add -- still no loop, no
Deferred, no callback.

Usage::

    python benchmarks/blocking_floor.py [--url URL] [--count 5000] [--rpc] [--codec]
"""

from __future__ import annotations

import argparse
import select
import time
import uuid
from collections.abc import Callable
from typing import Any

from client import BODY, REPLY_TO, RPC_QUEUE_SUFFIX, Responder

import txamqp091 as pika
from txamqp091 import codec, spec


def bare_round_trips(
    sock: Any, frames: Callable[[int], bytes], count: int, decoder: codec.FrameDecoder | None
) -> tuple[float, float]:
    """CPU and wall microseconds per send / epoll wait / recv round trip; *frames(i)*
    gives request *i*; with a *decoder*, each answer is decoded."""
    poller = select.epoll()
    poller.register(sock.fileno(), select.EPOLLIN)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(count):
        sock.send(frames(i))
        poller.poll(5.0)
        answer = sock.recv(65536)
        if decoder is not None and not decoder.feed(answer):
            raise RuntimeError("an answer without a whole frame")
    poller.close()
    cpu = (time.process_time() - cpu0) / count * 1e6
    return cpu, (time.perf_counter() - wall0) / count * 1e6


def main() -> None:
    """Print the CPU and wall time per bare round trip."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rpc", action="store_true", help="W5's floor instead of W2's")
    parser.add_argument(
        "--codec", action="store_true", help="also encode each request and decode each answer"
    )
    args = parser.parse_args()
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    sock = connection._transport.getHandle()
    number = channel.channel_number
    decoder = codec.FrameDecoder(connection._impl.frame_max) if args.codec else None
    what = "encoded/decoded" if args.codec else "bare"
    if not args.rpc:
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()

        def publish(_: int) -> bytes:
            return codec.encode_message(
                number, spec.Basic.Publish(0, "", queue, False, False), None, BODY
            )

        canned = publish(0)
        frames = publish if args.codec else lambda _: canned
        cpu, wall = bare_round_trips(sock, frames, args.count, decoder)
        print(f"{what} confirm round trip: {cpu:.1f} us CPU, {wall:.1f} us wall (x {args.count})")
        return
    rpc_queue = f"bench-floor-{uuid.uuid4().hex[:10]}{RPC_QUEUE_SUFFIX}"
    responder = Responder(args.url, rpc_queue)
    try:
        channel.basic_consume(REPLY_TO, lambda *_: None, auto_ack=True)

        def request(i: int) -> bytes:
            return codec.encode_message(
                number,
                spec.Basic.Publish(0, "", rpc_queue, False, False),
                spec.BasicProperties(correlation_id=str(i), reply_to=REPLY_TO),
                BODY,
            )

        canned = request(0)
        frames = request if args.codec else lambda _: canned
        cpu, wall = bare_round_trips(sock, frames, args.count, decoder)
    finally:
        responder.stop()
    print(f"{what} RPC round trip: {cpu:.1f} us CPU, {wall:.1f} us wall (x {args.count})")


if __name__ == "__main__":
    main()

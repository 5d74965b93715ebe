#!/usr/bin/env python3
"""W2 and W5 round trips of four blocking clients, interleaved in one process.

The machine is shared with the broker and noisy: a floor measured in one run and a
client in another can differ by 2x. Here the four contenders take turns, a round of
``--round`` round trips each, for ``--rounds`` rounds, and each one's CPU (user and
system, from ``getrusage``) is summed over its rounds only:

- ``bare``: one ``send`` of canned, pre-encoded frames, one ``epoll`` wait, one
  ``recv`` -- no AMQP work at all (the floor of ``blocking_floor.py``);
- ``codec``: the same, but each request is encoded (a new ``Basic.Publish`` and, for
  W5, new ``BasicProperties``) and each answer decoded with txamqp091's codec (its C
  accelerator): the least a client that speaks AMQP must add;
- ``pika``: pika's ``BlockingConnection``;
- ``txamqp091``: ours, through ``import txamqp091 as pika``, the same code as pika's.

W2 publishes with confirms, one at a time; W5 sends a request to ``client.py``'s RPC
responder (another process) and waits for the reply through direct reply-to.

Usage::

    python benchmarks/blocking_round_trips.py [--url URL] [--rounds 8] [--round 1000]
"""

from __future__ import annotations

import argparse
import resource
import select
import uuid
from collections.abc import Callable
from typing import Any

import pika as real_pika
from client import BODY, REPLY_TO, RPC_QUEUE_SUFFIX, Responder

import txamqp091
from txamqp091 import codec, spec

Runner = Callable[[int], None]


def cpu() -> tuple[float, float]:
    """User and system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def socket_runner(url: str, rpc_queue: str | None, encode: bool) -> Runner:
    """The ``bare`` (``encode=False``) or ``codec`` contender, on a connection of its own
    (opened by txamqp091's Blocking face, then driven by hand)."""
    # No heartbeats: the keeper thread would otherwise read this socket behind our back.
    connection = txamqp091.BlockingConnection(txamqp091.URLParameters(url + "?heartbeat=0"))
    channel = connection.channel()
    number = channel.channel_number
    sock = connection._transport.getHandle()
    decoder = codec.FrameDecoder(connection._impl.frame_max)
    if rpc_queue is None:
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()

        def request(_: int) -> bytes:
            return codec.encode_message(
                number, spec.Basic.Publish(0, "", queue, False, False), None, BODY
            )

    else:
        channel.basic_consume(REPLY_TO, lambda *_: None, auto_ack=True)
        target = rpc_queue

        def request(i: int) -> bytes:
            return codec.encode_message(
                number,
                spec.Basic.Publish(0, "", target, False, False),
                spec.BasicProperties(correlation_id=str(i), reply_to=REPLY_TO),
                BODY,
            )

    canned = request(0)
    poller = select.epoll()
    poller.register(sock.fileno(), select.EPOLLIN)

    def run(count: int) -> None:
        for i in range(count):
            sock.send(request(i) if encode else canned)
            poller.poll(5.0)
            answer = sock.recv(65536)
            if encode and not decoder.feed(answer):
                raise RuntimeError("an answer without a whole frame")

    return run


def client_runner(pika: Any, url: str, rpc_queue: str | None) -> Runner:
    """pika's or txamqp091's Blocking face running W2 or W5, written once."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    if rpc_queue is None:
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()

        def run(count: int) -> None:
            for _ in range(count):
                channel.basic_publish(exchange="", routing_key=queue, body=BODY)

        return run
    replies: list[Any] = []
    channel.basic_consume(
        queue=REPLY_TO,
        on_message_callback=lambda ch, method, props, body: replies.append(props),
        auto_ack=True,
    )
    target = rpc_queue

    def rpc(count: int) -> None:
        for i in range(count):
            correlation_id = str(i)
            properties = pika.BasicProperties(correlation_id=correlation_id, reply_to=REPLY_TO)
            channel.basic_publish(
                exchange="", routing_key=target, body=BODY, properties=properties
            )
            while not replies:
                connection.process_data_events(time_limit=None)
            if replies.pop().correlation_id != correlation_id:
                raise RuntimeError(f"a reply to another request than {i}")

    return rpc


def measure(runners: dict[str, Runner], rounds: int, size: int) -> dict[str, tuple[float, float]]:
    """Alternate the runners; each one's user and system µs per round trip."""
    for run in runners.values():
        run(size // 10)  # warm up
    totals = {name: [0.0, 0.0] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            user0, sys0 = cpu()
            run(size)
            user1, sys1 = cpu()
            totals[name][0] += user1 - user0
            totals[name][1] += sys1 - sys0
    n = rounds * size / 1e6
    return {name: (user / n, system / n) for name, (user, system) in totals.items()}


def report(workload: str, results: dict[str, tuple[float, float]]) -> None:
    """Print one table: CPU µs per round trip and the ratios that matter."""
    print(f"{workload}: CPU us per round trip (user + system)")
    for name, (user, system) in results.items():
        print(f"  {name:10} {user + system:7.1f}  ({user:.1f} + {system:.1f})")
    total = {name: user + system for name, (user, system) in results.items()}
    print(
        f"  pika / txamqp091 = {total['pika'] / total['txamqp091']:.2f}x; "
        f"a quarter of pika = {total['pika'] / 4:.1f} us; "
        f"pika / codec floor = {total['pika'] / total['codec']:.2f}x"
    )


def main() -> None:
    """Run W2, then W5, and print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--round", type=int, default=1000, dest="size")
    args = parser.parse_args()
    w2 = {
        "bare": socket_runner(args.url, None, encode=False),
        "codec": socket_runner(args.url, None, encode=True),
        "pika": client_runner(real_pika, args.url, None),
        "txamqp091": client_runner(txamqp091, args.url, None),
    }
    report("W2 confirm each publish", measure(w2, args.rounds, args.size))
    rpc_queue = f"bench-round-trips-{uuid.uuid4().hex[:10]}{RPC_QUEUE_SUFFIX}"
    responder = Responder(args.url, rpc_queue)
    try:
        w5 = {
            "bare": socket_runner(args.url, rpc_queue, encode=False),
            "codec": socket_runner(args.url, rpc_queue, encode=True),
            "pika": client_runner(real_pika, args.url, rpc_queue),
            "txamqp091": client_runner(txamqp091, args.url, rpc_queue),
        }
        report("W5 RPC round trip", measure(w5, args.rounds, args.size))
    finally:
        responder.stop()


if __name__ == "__main__":
    main()

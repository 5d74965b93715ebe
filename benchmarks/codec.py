#!/usr/bin/env python3
"""Frame codec benchmark: txamqp091 and pika side by side, in one run.

Measures, per message:

* publish encode: Basic.Publish + content header (content_type, delivery_mode=2,
  headers={'a': 1}) + one 64-byte body frame, to bytes;
* publish decode: the same bytes back to frames;
* deliver decode: Basic.Deliver + the same header and body, to frames (the
  consume path);
* ack encode: one Basic.Ack frame.

Both codecs run the same number of iterations in alternating rounds, so machine
noise hits both alike; the best round of each is reported, with the ratio
(pika's time / ours). Only the ratio means something across machines.

Usage::

    python benchmarks/codec.py [-n ITERATIONS] [--rounds R]

Set ``TXAMQP091_PURE_PYTHON=1`` to measure the pure-Python codec instead of the
C accelerator.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import pika.frame
import pika.spec

from txamqp091 import codec, spec

BODY = b"x" * 64
HEADERS = {"a": 1}


def ours() -> dict[str, Callable[[], object]]:
    """txamqp091's side of each scenario."""
    publish = spec.Basic.Publish(exchange="", routing_key="bench")
    properties = spec.BasicProperties(content_type="text/plain", delivery_mode=2, headers=HEADERS)
    deliver = spec.Basic.Deliver("ctag", 1, False, "", "bench")
    ack = spec.Basic.Ack(delivery_tag=1)
    published = codec.encode_message(1, publish, properties, BODY)
    delivered = codec.encode_message(1, deliver, properties, BODY)
    decoder = codec.FrameDecoder()
    feed = decoder.feed
    assert len(feed(published)) == 3 and len(feed(delivered)) == 3
    return {
        "publish encode": lambda: codec.encode_message(1, publish, properties, BODY),
        "publish decode": lambda: feed(published),
        "deliver decode": lambda: feed(delivered),
        "ack encode": lambda: codec.encode_method_frame(1, ack),
    }


def _pika_decode(data: bytes) -> list[object]:
    frames = []
    while data:
        consumed, frame = pika.frame.decode_frame(data)
        frames.append(frame)
        data = data[consumed:]
    return frames


def theirs() -> dict[str, Callable[[], object]]:
    """pika's side of each scenario, built from its public frame classes."""
    publish = pika.spec.Basic.Publish(exchange="", routing_key="bench")
    properties = pika.spec.BasicProperties(
        content_type="text/plain", delivery_mode=2, headers=HEADERS
    )
    deliver = pika.spec.Basic.Deliver("ctag", 1, False, "", "bench")
    ack = pika.spec.Basic.Ack(delivery_tag=1)

    def encode(method: pika.spec.amqp_object.Method) -> bytes:
        return b"".join(
            (
                pika.frame.Method(1, method).marshal(),
                pika.frame.Header(1, len(BODY), properties).marshal(),
                pika.frame.Body(1, BODY).marshal(),
            )
        )

    published = encode(publish)
    delivered = encode(deliver)
    assert len(_pika_decode(published)) == 3
    return {
        "publish encode": lambda: encode(publish),
        "publish decode": lambda: _pika_decode(published),
        "deliver decode": lambda: _pika_decode(delivered),
        "ack encode": lambda: pika.frame.Method(1, ack).marshal(),
    }


def check_same_bytes() -> None:
    """Both codecs must produce the very same bytes, or the race means nothing."""
    ours_publish = ours()["publish encode"]()
    theirs_publish = theirs()["publish encode"]()
    assert ours_publish == theirs_publish, (ours_publish, theirs_publish)


def best_ns(function: Callable[[], object], iterations: int) -> float:
    """Nanoseconds per call for one timed round of ``iterations`` calls."""
    loop = range(iterations)
    start = time.perf_counter_ns()
    for _ in loop:
        function()
    return (time.perf_counter_ns() - start) / iterations


def main() -> None:
    """Run every scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--iterations", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per codec")
    args = parser.parse_args()
    check_same_bytes()
    mine, pikas = ours(), theirs()
    per_round = max(1, args.iterations // args.rounds)
    kind = "C accelerator" if codec.ACCELERATED else "pure Python (TXAMQP091_PURE_PYTHON)"
    print(f"txamqp091 codec: {kind}")
    print(
        f"{args.iterations:,} messages per scenario and codec, in {args.rounds} alternating "
        "rounds; best round shown"
    )
    print(f"{'scenario':<16} {'txamqp091 ns':>13} {'pika ns':>10} {'pika/ours':>10}")
    for name in mine:
        best_mine = best_pika = float("inf")
        for _ in range(args.rounds):
            best_mine = min(best_mine, best_ns(mine[name], per_round))
            best_pika = min(best_pika, best_ns(pikas[name], per_round))
        print(f"{name:<16} {best_mine:>13,.0f} {best_pika:>10,.0f} {best_pika / best_mine:>9.1f}x")


if __name__ == "__main__":
    main()

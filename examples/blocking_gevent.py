"""The Blocking face under gevent's monkey-patching.

``monkey.patch_all()`` first, then an ordinary pika program (``import txamqp091 as
pika``): while a blocking call waits for the broker, other greenlets run (a ticker
here), and the heartbeat keeper -- a greenlet now -- keeps the connection alive
through a long ``gevent.sleep``. The loop notices that gevent removed
``select.epoll`` and waits through gevent's cooperative selectors instead.

Run it with a broker on localhost::

    python examples/blocking_gevent.py --count 100 --idle 5
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after monkey-patching, as gevent requires)
import sys  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402

import txamqp091 as pika  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Publish and consume while another greenlet ticks; idle past two heartbeats."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--url", default="amqp://guest:guest@localhost:5672/%2F")
    options.add_argument("--count", type=int, default=100)
    options.add_argument("--idle", type=float, default=5.0, help="seconds idle (heartbeat 2)")
    args = options.parse_args(argv)

    ticks: list[int] = []

    def ticker() -> None:
        while True:
            ticks.append(len(ticks))
            gevent.sleep(0.05)

    greenlet = gevent.spawn(ticker)
    queue = f"txamqp091-example-{uuid.uuid4().hex[:8]}"
    params = pika.URLParameters(args.url)
    params.heartbeat = 2
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.queue_declare(queue)
        channel.confirm_delivery()
        for n in range(args.count):
            channel.basic_publish("", queue, f"message {n}".encode())
        received = 0
        before = len(ticks)
        for method, _, _ in channel.consume(queue, inactivity_timeout=1):
            if method is None:
                break
            channel.basic_ack(method.delivery_tag)
            received += 1
        channel.cancel()
        during = len(ticks) - before
        print(f"published and received {received}/{args.count}")
        # The consume generator waited a second for more: the ticker ran meanwhile.
        print(f"the ticker ran {during} times during the blocking calls")
        gevent.sleep(args.idle)  # the application away: only the keeper greenlet runs
        count = channel.queue_declare(queue, passive=True).method.message_count
        print(f"alive after {args.idle:g} s idle (heartbeat 2 s), queue holds {count}")
        channel.queue_delete(queue)
    greenlet.kill()
    print("closed the connection")
    return 0 if received == args.count and during > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Publish and consume with the Blocking face, written as a pika program.

pika's README example, unchanged but for the import: ``import txamqp091 as pika``.
It declares a queue, publishes ``--count`` messages with publisher confirms, then
reads them back with the consume generator (ending on inactivity) and deletes the
queue.

Run it with a broker on localhost::

    python examples/blocking_publish.py --count 5
"""

from __future__ import annotations

import argparse
import sys
import uuid

import txamqp091 as pika


def main(argv: list[str] | None = None) -> int:
    """Publish, consume, clean up; print what happened."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--url", default="amqp://guest:guest@localhost:5672/%2F")
    options.add_argument("--count", type=int, default=3)
    args = options.parse_args(argv)

    queue = f"txamqp091-example-{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(pika.URLParameters(args.url)) as connection:
        channel = connection.channel()
        channel.queue_declare(queue=queue, auto_delete=True)
        channel.confirm_delivery()  # each basic_publish now waits for the broker's ack
        for n in range(args.count):
            channel.basic_publish(
                exchange="",
                routing_key=queue,
                body=f"message {n}".encode(),
                properties=pika.BasicProperties(
                    content_type="text/plain", delivery_mode=pika.DeliveryMode.Transient
                ),
            )
        print(f"published {args.count} messages, each confirmed")

        received = 0
        for method, properties, body in channel.consume(queue, inactivity_timeout=1):
            if method is None:  # a second without a message: done
                break
            print(f"received {body.decode()} ({properties.content_type})")
            channel.basic_ack(method.delivery_tag)
            received += 1
        requeued = channel.cancel()
        channel.queue_delete(queue)
    print(f"received {received}, requeued {requeued}; closed the connection")
    return 0 if received == args.count else 1


if __name__ == "__main__":
    sys.exit(main())

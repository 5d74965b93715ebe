"""Acknowledge from worker threads, written as a pika program.

pika's README example "Requesting message acknowledgements from another thread",
unchanged but for the import: ``import txamqp091 as pika``. The connection's thread
runs ``start_consuming``; each delivery is handed to a new ``threading.Thread`` that
does the work (a short sleep, ``--work`` seconds) and then, since a connection may only
be used from its own thread, asks that thread to acknowledge with
``connection.add_callback_threadsafe(functools.partial(ack_message, channel, tag))``.
The prefetch window (``--prefetch``) bounds how many messages are being worked on at
once. The example first publishes ``--count`` messages to an exclusive queue of its
own; once every one is acknowledged it stops consuming, joins the workers and deletes
the queue.

Run it with a broker on localhost::

    python examples/blocking_threaded_ack.py --count 6 --prefetch 3
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
import time
import uuid
from typing import Any

import txamqp091 as pika


def main(argv: list[str] | None = None) -> int:
    """Publish, consume with worker threads acking through the connection's thread."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--url", default="amqp://guest:guest@localhost:5672/%2F")
    options.add_argument("--count", type=int, default=6)
    options.add_argument("--prefetch", type=int, default=3)
    options.add_argument("--work", type=float, default=0.2, help="seconds of work each")
    args = options.parse_args(argv)

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    queue = f"txamqp091-example-{uuid.uuid4().hex[:8]}"
    channel.queue_declare(queue=queue, exclusive=True)
    for n in range(args.count):
        channel.basic_publish(exchange="", routing_key=queue, body=f"job {n}".encode())
    print(f"published {args.count} messages")

    threads: list[threading.Thread] = []
    acked: list[int] = []
    busy = [0, 0]  # workers working now, most at once
    busy_lock = threading.Lock()
    connection_thread = threading.current_thread()

    def ack_message(channel: pika.BlockingChannel, delivery_tag: int) -> None:
        """Runs on the connection's thread (scheduled by a worker)."""
        assert threading.current_thread() is connection_thread
        if channel.is_open:
            channel.basic_ack(delivery_tag)
            acked.append(delivery_tag)
            if len(acked) == args.count:
                channel.stop_consuming()
        # else: the channel is gone; the broker redelivers the message elsewhere.

    def do_work(
        connection: pika.BlockingConnection,
        channel: pika.BlockingChannel,
        delivery_tag: int,
        body: bytes,
    ) -> None:
        """Runs on a worker thread: never touches the channel itself."""
        with busy_lock:
            busy[0] += 1
            busy[1] = max(busy)
        time.sleep(args.work)  # the work
        with busy_lock:  # (the lock also keeps the workers' lines whole)
            busy[0] -= 1
            print(f"{threading.current_thread().name} worked on {body.decode()}")
        connection.add_callback_threadsafe(functools.partial(ack_message, channel, delivery_tag))

    def on_message(
        channel: pika.BlockingChannel,
        method_frame: Any,
        header_frame: pika.BasicProperties,
        body: bytes,
        args: tuple[pika.BlockingConnection, list[threading.Thread]],
    ) -> None:
        (connection, threads) = args
        delivery_tag = method_frame.delivery_tag
        t = threading.Thread(target=do_work, args=(connection, channel, delivery_tag, body))
        t.start()
        threads.append(t)

    channel.basic_qos(prefetch_count=args.prefetch)
    on_message_callback = functools.partial(on_message, args=(connection, threads))
    channel.basic_consume(queue, on_message_callback)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        channel.stop_consuming()

    # Wait for all to complete.
    for thread in threads:
        thread.join()

    channel.queue_delete(queue)
    connection.close()
    print(
        f"acked {len(acked)}/{args.count} from worker threads "
        f"(at most {busy[1]} at once, prefetch {args.prefetch}); closed the connection"
    )
    return 0 if len(acked) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())

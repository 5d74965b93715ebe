"""Reconnect after the broker closes the connection, written as a pika program.

pika's README example "Connection recovery" (the ``while True`` loop around
``BlockingConnection`` and ``start_consuming``), unchanged but for the import:
``import txamqp091 as pika``. When the connection is lost the running call,
``start_consuming``, raises: ``ConnectionClosedByBroker`` (a forced close, a broker
restart) and any other ``AMQPConnectionError`` make the loop connect again after a short
back-off; an ``AMQPChannelError`` ends it.

To show that without stopping a broker, ``--force-close-after N`` makes the example
close its own connection from the broker's side after every ``N`` messages consumed on
it: it finds the connection by the ``connection_name`` it sets in ``client_properties``
(``rabbitmqctl list_connections pid client_properties``) and runs ``rabbitmqctl
close_connection <pid> "example: forced close"``, so the broker closes it with 320
(``CONNECTION_FORCED``). That needs ``rabbitmqctl`` rights on the broker's node (root,
or the node's Erlang cookie). The example first publishes ``--count`` persistent
messages to a durable queue of its own, consumes (acknowledging each) until it has
seen every one of them, then deletes the queue. A message whose acknowledgement was
lost with a connection comes again: it is counted once.

Run it as root with a broker on localhost::

    python examples/blocking_recovery_loop.py --count 6 --force-close-after 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from typing import Any

import txamqp091 as pika


def connection_pids(rabbitmqctl: str, connection_name: str) -> list[str]:
    """The pids of the broker's connections named *connection_name*."""
    listing = subprocess.run(
        [rabbitmqctl, "list_connections", "-q", "--no-table-headers", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    needle = f'{{"connection_name","{connection_name}"}}'
    pids = []
    for line in listing.stdout.splitlines():
        pid, _, client_properties = line.partition("\t")
        if needle in client_properties:
            pids.append(pid)
    return pids


def force_close(rabbitmqctl: str, connection_name: str) -> None:
    """Have the broker close our connection (``CONNECTION_FORCED``)."""
    try:
        pids = connection_pids(rabbitmqctl, connection_name)
        for pid in pids:
            subprocess.run(
                [rabbitmqctl, "close_connection", pid, "example: forced close"],
                capture_output=True,
                timeout=60,
                check=True,
            )
    except (OSError, subprocess.SubprocessError) as e:
        print(f"could not force the connection closed: {e!r}")
        return
    print(f"asked the broker to close {connection_name} ({len(pids)} connection(s))")


def main(argv: list[str] | None = None) -> int:
    """Publish, then consume through forced closes; print what happened."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--url", default="amqp://guest:guest@localhost:5672/%2F")
    options.add_argument("--count", type=int, default=6)
    options.add_argument(
        "--force-close-after",
        type=int,
        default=2,
        metavar="N",
        help="force the connection closed after N messages on it (0: never)",
    )
    options.add_argument("--backoff", type=float, default=0.5, help="seconds before reconnecting")
    options.add_argument(
        "--max-reconnects", type=int, default=10, help="give up after this many reconnections"
    )
    options.add_argument("--rabbitmqctl", default="rabbitmqctl")
    args = options.parse_args(argv)

    run = uuid.uuid4().hex[:8]
    queue = f"txamqp091-example-recovery-{run}"
    connection_name = f"txamqp091-example-recovery-{run}"

    with pika.BlockingConnection(pika.URLParameters(args.url)) as connection:
        channel = connection.channel()
        channel.queue_declare(queue=queue, durable=True)
        channel.confirm_delivery()
        for n in range(args.count):
            channel.basic_publish(
                exchange="",
                routing_key=queue,
                body=f"message {n}".encode(),
                properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            )
    print(f"published {args.count} messages to {queue}")

    parameters = pika.URLParameters(args.url)
    parameters.client_properties = {"connection_name": connection_name}
    seen: set[bytes] = set()
    deliveries = 0
    on_this_connection = 0

    def on_message(
        channel: pika.BlockingChannel, method: Any, properties: pika.BasicProperties, body: bytes
    ) -> None:
        nonlocal deliveries, on_this_connection
        channel.basic_ack(method.delivery_tag)
        deliveries += 1
        on_this_connection += 1
        seen.add(body)
        print(f"received {body.decode()}{' (again)' if method.redelivered else ''}")
        if len(seen) == args.count:
            channel.stop_consuming()
        elif on_this_connection == args.force_close_after:
            force_close(args.rabbitmqctl, connection_name)

    reconnections = 0
    done = False
    while True:
        try:
            connection = pika.BlockingConnection(parameters)
            channel = connection.channel()
            channel.basic_qos(prefetch_count=1)
            on_this_connection = 0
            channel.basic_consume(queue, on_message)
            try:
                channel.start_consuming()
            except KeyboardInterrupt:
                channel.stop_consuming()
                connection.close()
                break
            # Every message has been seen: clean up and leave the loop.
            channel.queue_delete(queue)
            connection.close()
            done = True
            break
        # Recover if the broker closed the connection.
        except pika.exceptions.ConnectionClosedByBroker as e:
            print(f"the broker closed the connection: {e}")
        # Do not recover on channel errors.
        except pika.exceptions.AMQPChannelError as e:
            print(f"channel error, not recovering: {e!r}")
            break
        # Recover on all other connection errors.
        except pika.exceptions.AMQPConnectionError as e:
            print(f"connection lost: {e!r}")
        if reconnections == args.max_reconnects:
            print(f"giving up after {reconnections} reconnections")
            break
        reconnections += 1
        time.sleep(args.backoff)
        continue

    if not done:  # leave nothing behind
        with pika.BlockingConnection(pika.URLParameters(args.url)) as connection:
            connection.channel().queue_delete(queue)
    print(
        f"reconnected {reconnections} time(s), received {len(seen)} messages "
        f"({deliveries} deliveries); closed the connection"
    )
    return 0 if len(seen) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())

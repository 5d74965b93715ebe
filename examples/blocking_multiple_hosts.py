"""Connect with a list of parameters, the first of them dead, written as a pika program.

pika's README example "Multiple connection parameters", unchanged but for the
import: ``import txamqp091 as pika``. ``BlockingConnection`` is given a tuple of two
parameters objects and tries them in order until one connects, retrying with their
``connection_attempts`` and ``retry_delay`` (both objects get the same values here,
``--attempts`` and ``--retry-delay``). The first names a port where no broker listens
(``--dead-port``, a closed local port), so each of its attempts is refused; the second
is ``--url``. The example reports which one it connected to (each parameters object
carries its own ``heartbeat`` callable, which is called only for the one that reaches
the broker's ``Connection.Tune``), publishes a message and gets it back with
``basic_get``, then deletes its queue.

Run it with a broker on localhost::

    python examples/blocking_multiple_hosts.py --dead-port 1 --attempts 2 --retry-delay 0.2
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import txamqp091 as pika


def main(argv: list[str] | None = None) -> int:
    """Connect through the list, publish and get one message; print what happened."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--url", default="amqp://guest:guest@localhost:5672/%2F")
    options.add_argument(
        "--dead-port", type=int, default=1, help="a local port nothing listens on"
    )
    options.add_argument(
        "--attempts", type=int, default=2, help="connection_attempts of each parameters"
    )
    options.add_argument(
        "--retry-delay", type=float, default=0.2, help="retry_delay of each, in seconds"
    )
    args = options.parse_args(argv)

    connected_via: list[int] = []  # which parameters object the broker tuned

    def accept_heartbeat(number: int) -> Callable[[Any, int], int]:
        """A ``heartbeat`` callable: accept the broker's value, note who was tuned."""

        def heartbeat(connection: Any, broker_value: int) -> int:
            connected_via.append(number)
            return broker_value

        return heartbeat

    live = pika.URLParameters(args.url)
    live.connection_attempts = args.attempts
    live.retry_delay = args.retry_delay
    live.heartbeat = accept_heartbeat(2)
    dead = pika.ConnectionParameters(
        host=live.host,
        port=args.dead_port,
        virtual_host=live.virtual_host,
        credentials=live.credentials,
        connection_attempts=args.attempts,
        retry_delay=args.retry_delay,
        heartbeat=accept_heartbeat(1),
    )
    parameters = (dead, live)

    started = time.monotonic()
    try:
        connection = pika.BlockingConnection(parameters)
    except pika.exceptions.AMQPConnectionError as e:
        print(f"no parameters worked: {e!r}")
        return 1
    elapsed = time.monotonic() - started
    chosen = parameters[connected_via[-1] - 1]
    print(
        f"connected to {chosen.host}:{chosen.port} "
        f"(parameters {connected_via[-1]} of {len(parameters)}) after {elapsed:.1f} s; "
        f"connection_attempts={args.attempts}, retry_delay={args.retry_delay}"
    )

    queue = f"txamqp091-example-{uuid.uuid4().hex[:8]}"
    with connection:
        channel = connection.channel()
        channel.queue_declare(queue=queue, exclusive=True)
        channel.basic_publish(exchange="", routing_key=queue, body=b"hello from a list")
        body = None
        for _ in range(50):  # the message may take a moment to be queued
            method, _properties, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                break
            connection.sleep(0.1)
        print(f"got {body!r}")
        channel.queue_delete(queue)
    print("closed the connection")
    return 0 if body == b"hello from a list" else 1


if __name__ == "__main__":
    sys.exit(main())

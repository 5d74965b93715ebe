#!/usr/bin/env python3
"""Keep a connection open with AMQPClientService, and use it whenever it is there.

The service connects (retrying with backoff until the broker answers, even for the
first connection), and connects again whenever the connection is lost.
``whenConnected()`` gives the connection that is open now, or waits for the next.
This script asks for a connection ``--rounds`` times, sends a message through it and
reads it back each time, then stops the service, which closes the connection
politely (the AMQP close handshake).

In a twistd application, add the service to the application's service collection
instead of starting and stopping it by hand.

Usage::

    python examples/reconnecting_service.py [--url URL] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from twisted.internet import defer, task

from txamqp091.service import AMQPClientService

DEFAULT_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


async def main(reactor: Any, args: argparse.Namespace) -> None:
    """Use the service's connection ``args.rounds`` times, then stop it."""
    service = AMQPClientService(reactor, args.url, initial_delay=0.5, max_delay=10.0)
    service.startService()
    try:
        for round_number in range(1, args.rounds + 1):
            # Gives up after 5 failed attempts instead of waiting for ever.
            connection = await service.whenConnected(failAfterFailures=5)
            channel = await connection.channel()
            declared = await channel.queue_declare("", exclusive=True)
            queue = declared.method.queue
            await channel.confirm_delivery()
            await channel.basic_publish("", queue, f"round {round_number}")
            message = await channel.basic_get(queue, auto_ack=True)
            assert message is not None
            print(f"round {round_number}: got {message.body.decode()!r} back")
            await channel.close()
    finally:
        await service.stopService()
    print("stopped the service and closed the connection")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, options)))

#!/usr/bin/env python3
"""The RPC responder for client.py's W5, in a process of its own.

A pika BlockingConnection declares ``--queue``, prints ``ready`` and answers every
request on it: the request's body goes back to its ``reply_to`` with its
``correlation_id``. On SIGTERM (or SIGINT) it deletes the queue and prints one JSON
line, ``{"replied": N}``, so that the harness can check it answered every request.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from types import FrameType

import pika
import pika.spec
from pika.adapters.blocking_connection import BlockingChannel

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class Responder:
    """Answers requests until told to stop."""

    def __init__(self) -> None:
        self.replied = 0
        self.stopping = False

    def on_request(
        self,
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.spec.BasicProperties,
        body: bytes,
    ) -> None:
        reply = pika.BasicProperties(correlation_id=properties.correlation_id)
        channel.basic_publish("", properties.reply_to, body, reply)
        self.replied += 1

    def stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", required=True)
    parser.add_argument("--url", default=DEFAULT_URL)
    args = parser.parse_args()

    responder = Responder()
    signal.signal(signal.SIGTERM, responder.stop)
    signal.signal(signal.SIGINT, responder.stop)
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.queue_declare(queue=args.queue, durable=False, auto_delete=False)
    channel.basic_consume(args.queue, responder.on_request, auto_ack=True)
    print("ready", flush=True)
    while not responder.stopping:
        connection.process_data_events(time_limit=0.1)
    channel.queue_delete(queue=args.queue)
    connection.close()
    json.dump({"replied": responder.replied}, sys.stdout)
    print(flush=True)


if __name__ == "__main__":
    main()

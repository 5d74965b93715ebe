#!/usr/bin/env python3
"""One client.py run for a Blocking face: ``--client pika`` or ``--client txamqp091``.

The same program drives both, written once against pika's BlockingConnection API:
with ``--client txamqp091`` it runs on ``import txamqp091 as pika``. W2 confirms each
publish before the next, as a blocking user would; W3 consumes with a callback and one
ack per message; W5 waits for each reply in ``process_data_events``. Prints one JSON
line, ``{"results": [row, ...]}``; anything wrong raises, and the exit status says so.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from client import (
    BIG_BODY,
    BIG_PREFETCH,
    BODY,
    DEADLINE,
    POLL_INTERVAL,
    PREFETCH,
    REPLY_TO,
    RPC_QUEUE_SUFFIX,
    CountMismatch,
    Meter,
    child_arguments,
    emit,
    expect,
    row,
)


def wait_for_count(connection: Any, channel: Any, queue: str, count: int) -> None:
    """Poll the queue's message count until the broker holds ``count``."""
    deadline = time.monotonic() + DEADLINE
    while True:
        held = channel.queue_declare(queue=queue, passive=True).method.message_count
        if held == count:
            return
        if held > count or time.monotonic() > deadline:
            expect(held, count, f"messages in {queue}")
        connection.sleep(POLL_INTERVAL)


def consume(connection: Any, channel: Any, queue: str, count: int, size: int) -> None:
    """Consume ``count`` messages with a callback, acking each."""
    got = [0]

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        if len(body) != size:
            raise CountMismatch(f"a body of {len(body)} bytes, not {size}")
        ch.basic_ack(method.delivery_tag)
        got[0] += 1
        if got[0] == count:
            ch.stop_consuming()

    channel.basic_consume(queue=queue, on_message_callback=on_message)
    channel.start_consuming()
    expect(got[0], count, "messages consumed")


def run(pika: Any, args: Any) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    queue, count, results = args.queue, args.count, []
    meter = Meter()

    if args.workload == "W1":
        channel.queue_declare(queue=queue, durable=False, auto_delete=False)
        meter.start()
        for _ in range(count):
            channel.basic_publish(exchange="", routing_key=queue, body=BODY)
        wait_for_count(connection, channel, queue, count)
        results.append(row("W1", count, meter.stop()))
        channel.queue_delete(queue=queue)

    elif args.workload == "W2":
        channel.queue_declare(queue=queue, durable=False, auto_delete=False)
        channel.confirm_delivery()
        latencies = []
        meter.start()
        for _ in range(count):
            sent_at = time.perf_counter()
            channel.basic_publish(exchange="", routing_key=queue, body=BODY)
            latencies.append(time.perf_counter() - sent_at)
        meter.stop()
        wait_for_count(connection, channel, queue, count)
        results.append(row("W2", count, meter, latencies=latencies))
        channel.queue_delete(queue=queue)

    elif args.workload == "W3":
        channel.basic_qos(prefetch_count=PREFETCH)
        meter.start()
        consume(connection, channel, queue, count, len(BODY))
        results.append(row("W3", count, meter.stop()))

    elif args.workload == "W4":
        channel.queue_declare(queue=queue, durable=False, auto_delete=False)
        meter.start()
        for _ in range(count):
            channel.basic_publish(exchange="", routing_key=queue, body=BIG_BODY)
        wait_for_count(connection, channel, queue, count)
        nbytes = count * len(BIG_BODY)
        results.append(row("W4 publish", count, meter.stop(), nbytes))
        channel.basic_qos(prefetch_count=BIG_PREFETCH)
        meter.start()
        consume(connection, channel, queue, count, len(BIG_BODY))
        results.append(row("W4 consume", count, meter.stop(), nbytes))

    elif args.workload == "W5":
        replies: list[Any] = []
        channel.basic_consume(
            queue=REPLY_TO,
            on_message_callback=lambda ch, method, props, body: replies.append(props),
            auto_ack=True,
        )
        rpc_queue, latencies = queue + RPC_QUEUE_SUFFIX, []
        meter.start()
        for i in range(count):
            correlation_id = str(i)
            sent_at = time.perf_counter()
            properties = pika.BasicProperties(correlation_id=correlation_id, reply_to=REPLY_TO)
            channel.basic_publish(
                exchange="", routing_key=rpc_queue, body=BODY, properties=properties
            )
            while not replies:
                connection.process_data_events(time_limit=None)
            reply = replies.pop()
            latencies.append(time.perf_counter() - sent_at)
            if reply.correlation_id != correlation_id:
                raise CountMismatch(f"reply {reply.correlation_id!r} to {i}")
        results.append(row("W5", count, meter.stop(), latencies=latencies))

    connection.close()  # the harness checks that consumed queues were left empty
    emit({"results": results})


def main() -> None:
    args = child_arguments(clients=("pika", "txamqp091"))
    run(importlib.import_module(args.client), args)


if __name__ == "__main__":
    main()

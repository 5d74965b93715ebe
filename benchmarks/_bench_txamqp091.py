#!/usr/bin/env python3
"""One client.py run for txamqp091, on the Twisted reactor (inlineCallbacks).

The same shape as the ``twisted`` half of ``_bench_pika.py``, written against
txamqp091's own API. Prints one JSON line, ``{"results": [row, ...]}``; anything
wrong raises, and the exit status says so. If txamqp091 (or ``txamqp091.connect``)
cannot be imported, it prints ``{"unavailable": "<why>"}`` and exits with 0;
``--probe`` does only that check, printing ``{"available": true}`` when it passes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Generator
from typing import Any

from _twisted_common import sleep, wait_for_count
from client import (
    BIG_BODY,
    BIG_PREFETCH,
    BODY,
    CONFIRM_WINDOW,
    PREFETCH,
    PUBLISH_BATCH,
    REPLY_TO,
    RPC_QUEUE_SUFFIX,
    RUN_DEADLINE,
    CountMismatch,
    Meter,
    child_arguments,
    emit,
    expect,
    row,
)
from twisted.internet import defer, task

Gen = Generator[Any, Any, Any]


def writable(reactor: Any, conn: Any) -> defer.Deferred[Any]:
    """Fires once the connection may take more data (a reactor turn, lacking the API)."""
    if hasattr(conn, "when_writable"):
        return conn.when_writable()
    return sleep(reactor, 0)


@defer.inlineCallbacks
def publish(
    reactor: Any, conn: Any, ch: Any, queue: str, body: bytes, count: int, batch: int
) -> Gen:
    """Publish ``count`` x ``body``, waiting for the transport every ``batch``."""
    basic_publish = ch.basic_publish
    for start in range(0, count, batch):
        for _ in range(min(batch, count - start)):
            basic_publish(exchange="", routing_key=queue, body=body)
        yield writable(reactor, conn)


@defer.inlineCallbacks
def consume(ch: Any, queue: str, count: int, size: int) -> Gen:
    """Consume ``count`` messages of ``size`` bytes, acking each one."""
    queue_object, consumer_tag = yield ch.basic_consume(queue=queue)
    for _ in range(count):
        message = yield queue_object.get()
        if len(message.body) != size:
            raise CountMismatch(f"a body of {len(message.body)} bytes, not {size}")
        ch.basic_ack(message.method.delivery_tag)
    return consumer_tag


def consume_callback(ch: Any, queue: str, count: int, size: int) -> defer.Deferred[Any]:
    """Consume ``count`` messages of ``size`` bytes with a callback, acking each one."""
    done: defer.Deferred[Any] = defer.Deferred()
    received = [0]

    def on_message(channel: Any, method: Any, _properties: Any, body: bytes) -> None:
        if len(body) != size and not done.called:
            done.errback(CountMismatch(f"a body of {len(body)} bytes, not {size}"))
            return
        channel.basic_ack(method.delivery_tag)
        received[0] += 1
        if received[0] == count:
            done.callback(None)

    started = ch.basic_consume(queue=queue, on_message_callback=on_message)
    return started.addCallback(lambda _tag: done)


class ConfirmWindow:
    """W2: keep at most ``window`` confirmed publishes in flight until ``count`` acked."""

    def __init__(self, ch: Any, queue: str, count: int, window: int) -> None:
        self.ch, self.queue, self.count, self.window = ch, queue, count, window
        self.sent = self.acked = 0
        self.latencies: list[float] = []
        self.done: defer.Deferred[None] = defer.Deferred()

    def run(self) -> defer.Deferred[None]:
        for _ in range(min(self.window, self.count)):
            self.publish()
        return self.done

    def publish(self) -> None:
        self.sent += 1
        d = self.ch.basic_publish(exchange="", routing_key=self.queue, body=BODY)
        d.addCallbacks(self.on_ack, self.on_failure, callbackArgs=(time.perf_counter(),))

    def on_ack(self, _method: Any, sent_at: float) -> None:
        self.latencies.append(time.perf_counter() - sent_at)
        self.acked += 1
        if self.sent < self.count:
            self.publish()
        elif self.acked == self.count:
            self.done.callback(None)

    def on_failure(self, failure: Any) -> None:
        if not self.done.called:
            self.done.errback(failure)


@defer.inlineCallbacks
def run(reactor: Any, args: Any) -> Gen:
    import txamqp091
    from txamqp091.connect import connect

    conn = yield connect(reactor, args.url)
    ch = yield conn.channel()
    queue, count, results = args.queue, args.count, []
    meter = Meter()

    if args.workload == "W1":
        yield ch.queue_declare(queue=queue, durable=False, auto_delete=False)
        meter.start()
        yield publish(reactor, conn, ch, queue, BODY, count, PUBLISH_BATCH)
        yield wait_for_count(reactor, ch, queue, count)
        results.append(row("W1", count, meter.stop()))
        yield ch.queue_delete(queue=queue)

    elif args.workload == "W2":
        yield ch.queue_declare(queue=queue, durable=False, auto_delete=False)
        yield ch.confirm_delivery()
        window = ConfirmWindow(ch, queue, count, CONFIRM_WINDOW)
        meter.start()
        yield window.run()
        meter.stop()
        expect(window.acked, count, "publishes confirmed")
        yield wait_for_count(reactor, ch, queue, count)
        results.append(row("W2", count, meter, latencies=window.latencies))
        yield ch.queue_delete(queue=queue)

    elif args.workload == "W3":
        # The callback consumer, txamqp091's fastest (as pika's Select face).
        yield ch.basic_qos(prefetch_count=PREFETCH)
        meter.start()
        yield consume_callback(ch, queue, count, len(BODY))
        results.append(row("W3", count, meter.stop()))

    elif args.workload == "W3q":
        # The queue object, as pika's Twisted adapter consumes.
        yield ch.basic_qos(prefetch_count=PREFETCH)
        meter.start()
        yield consume(ch, queue, count, len(BODY))
        results.append(row("W3q", count, meter.stop()))

    elif args.workload == "W4":
        yield ch.queue_declare(queue=queue, durable=False, auto_delete=False)
        meter.start()
        yield publish(reactor, conn, ch, queue, BIG_BODY, count, 1)
        yield wait_for_count(reactor, ch, queue, count)
        nbytes = count * len(BIG_BODY)
        results.append(row("W4 publish", count, meter.stop(), nbytes))
        yield ch.basic_qos(prefetch_count=BIG_PREFETCH)
        meter.start()
        yield consume(ch, queue, count, len(BIG_BODY))
        results.append(row("W4 consume", count, meter.stop(), nbytes))

    elif args.workload == "W5":
        replies, _ = yield ch.basic_consume(queue=REPLY_TO, auto_ack=True)
        rpc_queue, latencies = queue + RPC_QUEUE_SUFFIX, []
        meter.start()
        for i in range(count):
            correlation_id = str(i)
            sent_at = time.perf_counter()
            properties = txamqp091.BasicProperties(
                correlation_id=correlation_id, reply_to=REPLY_TO
            )
            ch.basic_publish(exchange="", routing_key=rpc_queue, body=BODY, properties=properties)
            reply = yield replies.get()
            latencies.append(time.perf_counter() - sent_at)
            if reply.properties.correlation_id != correlation_id:
                raise CountMismatch(f"reply {reply.properties.correlation_id!r} to {i}")
        results.append(row("W5", count, meter.stop(), latencies=latencies))

    yield conn.close()  # the harness checks that consumed queues were left empty
    emit({"results": results})


def unavailable() -> str | None:
    """Why txamqp091's client cannot be imported here, or None."""
    try:
        import txamqp091
        from txamqp091.connect import connect
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    if not hasattr(txamqp091, "BasicProperties"):
        return "txamqp091 has no BasicProperties"
    if not callable(connect):
        return "txamqp091.connect.connect is not callable"
    return None


def main() -> None:
    if sys.argv[1:] == ["--probe"]:
        why = unavailable()
        emit({"available": True} if why is None else {"unavailable": why})
        return
    args = child_arguments()
    why = unavailable()
    if why is not None:
        emit({"unavailable": why})
        return
    task.react(lambda reactor: run(reactor, args).addTimeout(RUN_DEADLINE, reactor))


if __name__ == "__main__":
    main()

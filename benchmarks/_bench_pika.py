#!/usr/bin/env python3
"""One client.py run for pika's Twisted adapter (``--client twisted``).

It drives pika's TwistedProtocolConnection on the Twisted reactor with its Deferred
API (inlineCallbacks), in the same shape as ``_bench_txamqp091.py`` (pika's
SelectConnection runs in ``_bench_select.py``). Prints one JSON line,
``{"results": [row, ...]}``; anything wrong raises, and the exit status says so.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Generator
from typing import Any

import pika
import pika.frame
import pika.spec
from _twisted_common import wait_for_count
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
from pika.adapters.twisted_connection import TwistedChannel, TwistedProtocolConnection
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

Gen = Generator[Any, Any, Any]

# --- pika's Twisted adapter ------------------------------------------------------------


@implementer(IPushProducer)
class WriteGate:
    """Back-pressure from a Twisted transport: registered as its streaming producer,
    it is paused while the transport's send buffer is over its limit and resumed once
    that buffer has drained. ``wait()`` fires when writing may go on.
    """

    def __init__(self, transport: Any) -> None:
        self.paused = False
        self._waiting: list[defer.Deferred[None]] = []
        self._transport = transport
        transport.registerProducer(self, True)

    def wait(self) -> defer.Deferred[None]:
        if not self.paused:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append(d)
        return d

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def stopProducing(self) -> None:
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(ConnectionError("the transport stopped"))

    def close(self) -> None:
        self._transport.unregisterProducer()


@defer.inlineCallbacks
def tw_publish(
    ch: TwistedChannel, gate: WriteGate, queue: str, body: bytes, count: int, batch: int
) -> Gen:
    """Publish ``count`` x ``body``, waiting for the transport every ``batch``."""
    publish = ch.basic_publish
    for start in range(0, count, batch):
        for _ in range(min(batch, count - start)):
            publish("", queue, body)
        yield gate.wait()


@defer.inlineCallbacks
def tw_consume(ch: TwistedChannel, queue: str, count: int, size: int) -> Gen:
    """Consume ``count`` messages of ``size`` bytes, acking each one."""
    queue_object, consumer_tag = yield ch.basic_consume(queue=queue)
    for _ in range(count):
        message = yield queue_object.get()
        if len(message.body) != size:
            raise CountMismatch(f"a body of {len(message.body)} bytes, not {size}")
        ch.basic_ack(message.method.delivery_tag)
    return consumer_tag


class TwConfirmWindow:
    """W2: keep at most ``window`` confirmed publishes in flight until ``count`` acked."""

    def __init__(self, ch: TwistedChannel, queue: str, count: int, window: int) -> None:
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
        d = self.ch.basic_publish("", self.queue, BODY)
        d.addCallbacks(self.on_ack, self.on_failure, callbackArgs=(time.perf_counter(),))

    def on_ack(self, _method: pika.spec.Basic.Ack, sent_at: float) -> None:
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
def twisted_run(reactor: Any, args: Any) -> Gen:
    params = pika.URLParameters(args.url)
    endpoint = TCP4ClientEndpoint(reactor, params.host, params.port)
    conn = yield connectProtocol(endpoint, TwistedProtocolConnection(params))
    yield conn.ready
    ch = yield conn.channel()
    queue, count, results = args.queue, args.count, []
    meter = Meter()

    if args.workload == "W1":
        yield ch.queue_declare(queue=queue, durable=False, auto_delete=False)
        gate = WriteGate(conn.transport)
        meter.start()
        yield tw_publish(ch, gate, queue, BODY, count, PUBLISH_BATCH)
        yield wait_for_count(reactor, ch, queue, count)
        results.append(row("W1", count, meter.stop()))
        gate.close()
        yield ch.queue_delete(queue=queue)

    elif args.workload == "W2":
        yield ch.queue_declare(queue=queue, durable=False, auto_delete=False)
        yield ch.confirm_delivery()
        window = TwConfirmWindow(ch, queue, count, CONFIRM_WINDOW)
        meter.start()
        yield window.run()
        meter.stop()
        expect(window.acked, count, "publishes confirmed")
        yield wait_for_count(reactor, ch, queue, count)
        results.append(row("W2", count, meter, latencies=window.latencies))
        yield ch.queue_delete(queue=queue)

    elif args.workload in ("W3", "W3q"):
        # The queue object is the only consumer pika's Twisted adapter offers.
        yield ch.basic_qos(prefetch_count=PREFETCH)
        meter.start()
        yield tw_consume(ch, queue, count, len(BODY))
        results.append(row(args.workload, count, meter.stop()))

    elif args.workload == "W4":
        yield ch.queue_declare(queue=queue, durable=False, auto_delete=False)
        gate = WriteGate(conn.transport)
        meter.start()
        yield tw_publish(ch, gate, queue, BIG_BODY, count, 1)
        yield wait_for_count(reactor, ch, queue, count)
        nbytes = count * len(BIG_BODY)
        results.append(row("W4 publish", count, meter.stop(), nbytes))
        gate.close()
        yield ch.basic_qos(prefetch_count=BIG_PREFETCH)
        meter.start()
        yield tw_consume(ch, queue, count, len(BIG_BODY))
        results.append(row("W4 consume", count, meter.stop(), nbytes))

    elif args.workload == "W5":
        replies, _ = yield ch.basic_consume(queue=REPLY_TO, auto_ack=True)
        rpc_queue, latencies = queue + RPC_QUEUE_SUFFIX, []
        meter.start()
        for i in range(count):
            correlation_id = str(i)
            sent_at = time.perf_counter()
            properties = pika.BasicProperties(correlation_id=correlation_id, reply_to=REPLY_TO)
            ch.basic_publish("", rpc_queue, BODY, properties)
            reply = yield replies.get()
            latencies.append(time.perf_counter() - sent_at)
            if reply.properties.correlation_id != correlation_id:
                raise CountMismatch(f"reply {reply.properties.correlation_id!r} to {i}")
        results.append(row("W5", count, meter.stop(), latencies=latencies))

    yield conn.close()  # the harness checks that consumed queues were left empty
    emit({"results": results})


# --- pika's SelectConnection -----------------------------------------------------------


def main() -> None:
    args = child_arguments(clients=("twisted",))
    task.react(lambda reactor: twisted_run(reactor, args).addTimeout(RUN_DEADLINE, reactor))


if __name__ == "__main__":
    sys.exit(main())

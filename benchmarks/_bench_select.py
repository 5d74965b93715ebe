#!/usr/bin/env python3
"""One client.py run for a callback face: pika's or ours, Select or asyncio.

``--client pika`` / ``txamqp091`` run ``SelectConnection``; ``pika-asyncio`` /
``txamqp091-asyncio`` run ``AsyncioConnection`` (on a new asyncio loop). The same
program drives pika and, with ``import txamqp091 as pika``, ours: a chain of callbacks
on the loop, one workload at a time (W2 keeps a window of confirms in flight through
``ack_nack_callback``). Prints one JSON line,
``{"results": [row, ...]}``; anything wrong raises, and the exit status says so.
"""

from __future__ import annotations

import collections
import importlib
import sys
import time
from collections.abc import Callable
from typing import Any

from client import (
    BIG_BODY,
    BIG_PREFETCH,
    BODY,
    CONFIRM_WINDOW,
    DEADLINE,
    POLL_INTERVAL,
    PREFETCH,
    PUBLISH_BATCH,
    REPLY_TO,
    RPC_QUEUE_SUFFIX,
    RUN_DEADLINE,
    WRITE_BUFFER_LIMIT,
    CountMismatch,
    Meter,
    child_arguments,
    emit,
    expect,
    row,
)

#: pika, or txamqp091 standing in for it, and the connection class (set by main()).
pika: Any = None
connection_class: Any = None


def write_buffer_size(conn: Any) -> int:
    """Bytes the connection holds unsent: pika's SelectConnection (and ours) have a
    private method for it; pika's AsyncioConnection keeps it on its transport."""
    getter = getattr(conn, "_get_write_buffer_size", None)
    if getter is not None:
        return int(getter())
    return int(conn._transport.get_write_buffer_size())


class SelectRun:
    """One run on a SelectConnection: a chain of callbacks, one workload at a time."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.queue, self.count = args.queue, args.count
        self.results: list[dict[str, Any]] = []
        self.meter = Meter()
        self.error: BaseException | None = None
        self.conn = connection_class(
            pika.URLParameters(args.url),
            on_open_callback=self.on_open,
            on_open_error_callback=self.on_open_error,
            on_close_callback=self.on_closed,
        )
        self.ch: Any = None

    def run(self) -> None:
        def too_long() -> None:
            self.fail(TimeoutError(f"the run took over {RUN_DEADLINE:g} s"))

        self.conn.ioloop.call_later(RUN_DEADLINE, too_long)
        if hasattr(self.conn.ioloop, "run_forever"):  # asyncio
            self.conn.ioloop.run_forever()
        else:
            self.conn.ioloop.start()
        if self.error is not None:
            raise self.error
        emit({"results": self.results})

    # plumbing

    def on_open(self, _conn: Any) -> None:
        self.conn.channel(on_open_callback=self.on_channel)

    def on_open_error(self, _conn: Any, error: BaseException) -> None:
        self.error = error
        self.conn.ioloop.stop()

    def on_closed(self, _conn: Any, reason: BaseException) -> None:
        if self.error is None and type(reason).__name__ != "ConnectionClosedByClient":
            self.error = reason  # lost, or closed by the broker: the run failed
        self.conn.ioloop.stop()

    def on_channel(self, ch: Any) -> None:
        self.ch = ch
        ch.add_on_close_callback(self.on_channel_closed)
        getattr(self, "start_" + self.args.workload.lower())()

    def on_channel_closed(self, _ch: Any, reason: BaseException) -> None:
        if not self.conn.is_closing and not self.conn.is_closed:
            self.fail(reason)

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if not self.conn.is_closing and not self.conn.is_closed:
            self.conn.close()

    def guard(self, function: Callable[..., None]) -> Callable[..., None]:
        """``function``, but an exception it raises ends the run instead of the loop."""

        def guarded(*args: Any) -> None:
            try:
                function(*args)
            except Exception as error:
                self.fail(error)

        return guarded

    def finish(self, delete_queue: bool) -> None:
        if delete_queue:
            self.ch.queue_delete(self.queue, callback=lambda _frame: self.conn.close())
        else:
            self.conn.close()

    def declare(self, then: Callable[..., None]) -> None:
        self.ch.queue_declare(self.queue, durable=False, auto_delete=False, callback=then)

    def wait_for_count(self, count: int, then: Callable[[], None]) -> None:
        """Poll the broker until the queue holds ``count`` messages (bounded), then ``then``."""
        deadline = time.monotonic() + DEADLINE

        def poll() -> None:
            self.ch.queue_declare(self.queue, passive=True, callback=self.guard(check))

        def check(frame: pika.frame.Method) -> None:
            held = frame.method.message_count
            if held == count:
                then()
            elif held > count or time.monotonic() > deadline:
                expect(held, count, f"messages in {self.queue}")
            else:
                self.conn.ioloop.call_later(POLL_INTERVAL, poll)

        poll()

    def publish(self, body: bytes, count: int, batch: int, then: Callable[[], None]) -> None:
        """Publish ``count`` x ``body`` by batches, letting the socket drain in between."""
        publish, queue, ioloop = self.ch.basic_publish, self.queue, self.conn.ioloop
        sent = 0

        def next_batch() -> None:
            nonlocal sent
            if write_buffer_size(self.conn) > WRITE_BUFFER_LIMIT:
                ioloop.call_later(0.001, next_batch)  # the socket is full: don't spin
                return
            n = min(batch, count - sent)
            for _ in range(n):
                publish("", queue, body)
            sent += n
            if sent < count:
                ioloop.call_later(0, next_batch)  # the loop writes, then we go on
            else:
                then()

        next_batch()

    def consume(self, count: int, size: int, prefetch: int, then: Callable[[], None]) -> None:
        """Consume ``count`` messages of ``size`` bytes, acking each, then ``then``."""
        received = 0

        def on_message(ch: Any, method: Any, _properties: Any, body: bytes) -> None:
            nonlocal received
            if len(body) != size:
                raise CountMismatch(f"a body of {len(body)} bytes, not {size}")
            ch.basic_ack(method.delivery_tag)
            received += 1
            if received == count:
                then()

        def on_qos(_frame: Any) -> None:
            self.meter.start()
            self.ch.basic_consume(self.queue, self.guard(on_message))

        self.ch.basic_qos(prefetch_count=prefetch, callback=on_qos)

    # workloads

    def start_w1(self) -> None:
        count = self.count

        def go(_frame: Any) -> None:
            self.meter.start()
            self.publish(BODY, count, PUBLISH_BATCH, lambda: self.wait_for_count(count, done))

        def done() -> None:
            self.results.append(row("W1", count, self.meter.stop()))
            self.finish(delete_queue=True)

        self.declare(go)

    def start_w2(self) -> None:
        pending: collections.OrderedDict[int, float] = collections.OrderedDict()
        latencies: list[float] = []
        sent = acked = 0
        window, count = CONFIRM_WINDOW, self.count

        def publish_more() -> None:
            nonlocal sent
            while sent < count and len(pending) < window:
                sent += 1
                pending[sent] = time.perf_counter()
                self.ch.basic_publish("", self.queue, BODY)

        def on_confirm(frame: pika.frame.Method) -> None:
            nonlocal acked
            method, now = frame.method, time.perf_counter()
            if not isinstance(method, pika.spec.Basic.Ack):
                raise CountMismatch(f"the broker refused a publish: {method}")
            if method.multiple:
                while pending and next(iter(pending)) <= method.delivery_tag:
                    latencies.append(now - pending.popitem(last=False)[1])
                    acked += 1
            else:
                latencies.append(now - pending.pop(method.delivery_tag))
                acked += 1
            if acked == count:
                self.meter.stop()
                self.wait_for_count(count, done)
            else:
                publish_more()

        def go(_frame: Any) -> None:
            self.meter.start()
            publish_more()

        def done() -> None:
            self.results.append(row("W2", count, self.meter, latencies=latencies))
            self.finish(delete_queue=True)

        self.declare(lambda _frame: self.ch.confirm_delivery(self.guard(on_confirm), callback=go))

    def start_w3(self) -> None:
        def done() -> None:
            self.results.append(row("W3", self.count, self.meter.stop()))
            self.finish(delete_queue=False)

        self.consume(self.count, len(BODY), PREFETCH, done)

    def start_w4(self) -> None:
        count = self.count
        nbytes = count * len(BIG_BODY)

        def go(_frame: Any) -> None:
            self.meter.start()
            self.publish(BIG_BODY, count, 1, lambda: self.wait_for_count(count, published))

        def published() -> None:
            self.results.append(row("W4 publish", count, self.meter.stop(), nbytes))
            self.consume(count, len(BIG_BODY), BIG_PREFETCH, consumed)

        def consumed() -> None:
            self.results.append(row("W4 consume", count, self.meter.stop(), nbytes))
            self.finish(delete_queue=False)

        self.declare(go)

    def start_w5(self) -> None:
        rpc_queue, count = self.queue + RPC_QUEUE_SUFFIX, self.count
        latencies: list[float] = []
        state = {"i": 0, "sent_at": 0.0}

        def request() -> None:
            state["sent_at"] = time.perf_counter()
            properties = pika.BasicProperties(correlation_id=str(state["i"]), reply_to=REPLY_TO)
            self.ch.basic_publish("", rpc_queue, BODY, properties)

        def on_reply(_ch: Any, _method: Any, properties: Any, _body: bytes) -> None:
            latencies.append(time.perf_counter() - state["sent_at"])
            if properties.correlation_id != str(state["i"]):
                raise CountMismatch(f"reply {properties.correlation_id!r} to {state['i']}")
            state["i"] += 1
            if state["i"] < count:
                request()
            else:
                self.results.append(row("W5", count, self.meter.stop(), latencies=latencies))
                self.finish(delete_queue=False)

        def go(_frame: Any) -> None:
            self.meter.start()
            request()

        self.ch.basic_consume(REPLY_TO, self.guard(on_reply), auto_ack=True, callback=go)


def main() -> None:
    global pika, connection_class
    args = child_arguments(clients=("pika", "txamqp091", "pika-asyncio", "txamqp091-asyncio"))
    module, _, face = args.client.partition("-")
    pika = importlib.import_module(module)
    if face == "asyncio":
        import asyncio

        adapter = importlib.import_module(f"{module}.adapters.asyncio_connection")
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        connection_class = adapter.AsyncioConnection
    else:
        connection_class = pika.SelectConnection
    SelectRun(args).run()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""One client.py run for a native asyncio client: ``--client txamqp091`` (the
:mod:`txamqp091.aio` API) or ``--client aiormq``.

Each is written the way its users write it: ``await`` each request, a window of
confirmed-publish futures for W2, ``async for`` (txamqp091) or an async callback
(aiormq) to consume. Prints one JSON line, ``{"results": [row, ...]}``; anything wrong
raises, and the exit status says so.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import time
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
    CountMismatch,
    Meter,
    child_arguments,
    emit,
    expect,
    row,
)


class Ours:
    """txamqp091.aio."""

    async def open(self, url: str) -> None:
        from txamqp091 import aio, spec

        self.spec = spec
        self.conn = await aio.connect(url)
        self.ch = await self.conn.channel()

    async def declare(self, queue: str) -> None:
        await self.ch.queue_declare(queue, durable=False, auto_delete=False)

    async def held(self, queue: str) -> int:
        frame = await self.ch.queue_declare(queue, passive=True)
        return int(frame.method.message_count)

    async def delete(self, queue: str) -> None:
        await self.ch.queue_delete(queue)

    async def publish_many(self, queue: str, body: bytes, count: int, batch: int) -> None:
        publish = self.ch.basic_publish
        for start in range(0, count, batch):
            for _ in range(min(batch, count - start)):
                publish("", queue, body)
            await self.conn.when_writable()

    async def confirm_mode(self) -> None:
        await self.ch.confirm_delivery()

    def publish_confirmed(self, queue: str) -> Any:
        return self.ch.basic_publish("", queue, BODY)

    async def consume(self, queue: str, count: int, size: int, prefetch: int) -> None:
        received = 0
        async for message in self.ch.consume(queue, prefetch=prefetch):
            if len(message.body) != size:
                raise CountMismatch(f"a body of {len(message.body)} bytes, not {size}")
            message.ack()
            received += 1
            if received == count:
                break

    async def rpc(self, rpc_queue: str, count: int, latencies: list[float]) -> None:
        replies = self.ch.consume(REPLY_TO, auto_ack=True)
        await replies.start()
        publish, properties = self.ch.basic_publish, self.spec.BasicProperties
        async with replies:
            iterator = replies.__aiter__()
            for i in range(count):
                correlation_id = str(i)
                sent_at = time.perf_counter()
                publish(
                    "",
                    rpc_queue,
                    BODY,
                    properties(correlation_id=correlation_id, reply_to=REPLY_TO),
                )
                reply = await iterator.__anext__()
                latencies.append(time.perf_counter() - sent_at)
                if reply.properties.correlation_id != correlation_id:
                    raise CountMismatch(f"reply {reply.properties.correlation_id!r} to {i}")

    async def close(self) -> None:
        await self.conn.close()


class Aiormq:
    """aiormq: every request awaited, as its documentation shows."""

    async def open(self, url: str) -> None:
        import aiormq

        self.spec = aiormq.spec
        self.conn = await aiormq.connect(url)
        self.ch = await self.conn.channel(publisher_confirms=False)

    async def declare(self, queue: str) -> None:
        await self.ch.queue_declare(queue, durable=False, auto_delete=False)

    async def held(self, queue: str) -> int:
        frame = await self.ch.queue_declare(queue, passive=True)
        return int(frame.message_count)

    async def delete(self, queue: str) -> None:
        await self.ch.queue_delete(queue)

    async def publish_many(self, queue: str, body: bytes, count: int, batch: int) -> None:
        publish = self.ch.basic_publish
        for _ in range(count):
            await publish(body, routing_key=queue)

    async def confirm_mode(self) -> None:
        self.ch = await self.conn.channel(publisher_confirms=True)

    def publish_confirmed(self, queue: str) -> Any:
        return asyncio.ensure_future(self.ch.basic_publish(BODY, routing_key=queue))

    async def consume(self, queue: str, count: int, size: int, prefetch: int) -> None:
        done = asyncio.get_running_loop().create_future()
        received = 0

        async def on_message(message: Any) -> None:
            nonlocal received
            if len(message.body) != size:
                raise CountMismatch(f"a body of {len(message.body)} bytes, not {size}")
            await message.channel.basic_ack(message.delivery.delivery_tag)
            received += 1
            if received == count and not done.done():
                done.set_result(None)

        await self.ch.basic_qos(prefetch_count=prefetch)
        consume_ok = await self.ch.basic_consume(queue, on_message)
        await done
        await self.ch.basic_cancel(consume_ok.consumer_tag)

    async def rpc(self, rpc_queue: str, count: int, latencies: list[float]) -> None:
        replies: asyncio.Queue[Any] = asyncio.Queue()

        async def on_reply(message: Any) -> None:
            replies.put_nowait(message)

        await self.ch.basic_consume(REPLY_TO, on_reply, no_ack=True)
        properties = self.spec.Basic.Properties
        for i in range(count):
            correlation_id = str(i)
            sent_at = time.perf_counter()
            await self.ch.basic_publish(
                BODY,
                routing_key=rpc_queue,
                properties=properties(correlation_id=correlation_id, reply_to=REPLY_TO),
            )
            reply = await replies.get()
            latencies.append(time.perf_counter() - sent_at)
            if reply.header.properties.correlation_id != correlation_id:
                raise CountMismatch(f"a reply to another request than {i}")

    async def close(self) -> None:
        await self.conn.close()


async def wait_for_count(client: Any, queue: str, count: int) -> None:
    """Poll the queue's message count until the broker holds ``count`` (bounded)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        held = await client.held(queue)
        if held == count:
            return
        if held > count or time.monotonic() > deadline:
            expect(held, count, f"messages in {queue}")
        await asyncio.sleep(POLL_INTERVAL)


async def confirm_window(client: Any, queue: str, count: int, latencies: list[float]) -> None:
    """W2: at most CONFIRM_WINDOW confirmed publishes in flight until ``count`` acked."""
    in_flight: collections.deque[tuple[Any, float]] = collections.deque()
    for _ in range(count):
        if len(in_flight) >= CONFIRM_WINDOW:
            future, sent_at = in_flight.popleft()
            await future
            latencies.append(time.perf_counter() - sent_at)
        in_flight.append((client.publish_confirmed(queue), time.perf_counter()))
    while in_flight:
        future, sent_at = in_flight.popleft()
        await future
        latencies.append(time.perf_counter() - sent_at)


async def run(client: Any, args: Any) -> None:
    await client.open(args.url)
    queue, count, results = args.queue, args.count, []
    meter = Meter()
    if args.workload == "W1":
        await client.declare(queue)
        meter.start()
        await client.publish_many(queue, BODY, count, PUBLISH_BATCH)
        await wait_for_count(client, queue, count)
        results.append(row("W1", count, meter.stop()))
        await client.delete(queue)
    elif args.workload == "W2":
        await client.declare(queue)
        await client.confirm_mode()
        latencies: list[float] = []
        meter.start()
        await confirm_window(client, queue, count, latencies)
        meter.stop()
        await wait_for_count(client, queue, count)
        results.append(row("W2", count, meter, latencies=latencies))
        await client.delete(queue)
    elif args.workload == "W3":
        meter.start()
        await client.consume(queue, count, len(BODY), PREFETCH)
        results.append(row("W3", count, meter.stop()))
    elif args.workload == "W4":
        await client.declare(queue)
        meter.start()
        await client.publish_many(queue, BIG_BODY, count, 1)
        await wait_for_count(client, queue, count)
        nbytes = count * len(BIG_BODY)
        results.append(row("W4 publish", count, meter.stop(), nbytes))
        meter.start()
        await client.consume(queue, count, len(BIG_BODY), BIG_PREFETCH)
        results.append(row("W4 consume", count, meter.stop(), nbytes))
    elif args.workload == "W5":
        latencies = []
        meter.start()
        await client.rpc(queue + RPC_QUEUE_SUFFIX, count, latencies)
        results.append(row("W5", count, meter.stop(), latencies=latencies))
    await client.close()  # the harness checks that consumed queues were left empty
    emit({"results": results})


def main() -> None:
    args = child_arguments(clients=("txamqp091", "aiormq"))
    client = Ours() if args.client == "txamqp091" else Aiormq()
    asyncio.run(asyncio.wait_for(run(client, args), RUN_DEADLINE))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""W5 RPC round trips of four asyncio clients, interleaved in one process and one loop.

The asyncio counterpart of ``blocking_round_trips.py``. The machine is shared with the
broker and noisy: a floor measured in one run and a client in another can differ by
2x. Here the four contenders share one asyncio event loop and take turns, a round of
``--round`` round trips each (after a warm-up of a tenth of that), for ``--rounds``
rounds; each one's CPU (user and system, from ``getrusage``) is summed over its own
rounds only. Every round trip sends a request to ``client.py``'s RPC responder
(another process) and waits for the reply through direct reply-to:

- ``bare``: an ``asyncio.Protocol`` on a connection opened by txamqp091's Blocking
  face (handshake, channel, ``basic_consume`` on the reply-to pseudo-queue, with
  heartbeats off so that nothing else ever reads the socket), whose socket is then
  duplicated and handed to ``loop.create_connection(sock=...)``. Each round trip
  writes canned, pre-encoded request frames and awaits a future that
  ``data_received`` resolves once the answer's bytes (their count learned from one
  decoded answer beforehand) have arrived: one loop turn per round trip, no AMQP work;
- ``codec``: the same, but each request is encoded (a new ``Basic.Publish`` and new
  ``BasicProperties``) and each answer decoded with txamqp091's codec (its C
  accelerator), the future resolved with the reply's properties once its body frame
  is decoded, and the correlation id checked: the least a client that speaks AMQP
  must add;
- ``pika``: pika's ``AsyncioConnection``, written as a pika asyncio user writes an
  RPC client: publish with a ``correlation_id``, then await a future that
  ``on_message`` resolves (futures kept by correlation id);
- ``txamqp091``: ours, through ``import txamqp091 as pika``, the same code as pika's.

Both libraries' connections run on the shared loop (``custom_ioloop``) with their
default heartbeat. The responder's count of answered requests is checked at the end.

Usage (from the repository's root; ``client.py`` must be importable)::

    PYTHONPATH=benchmarks python benchmarks/asyncio_round_trips.py \\
        [--url URL] [--rounds 8] [--round 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import resource
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pika as real_pika
from client import BODY, REPLY_TO, RPC_QUEUE_SUFFIX, RUN_DEADLINE, Responder

import txamqp091
from txamqp091 import codec, spec

Runner = Callable[[int], Awaitable[None]]


@dataclass
class Contender:
    """What ``measure`` drives: ``run(count)`` round trips, and ``close()`` at the end."""

    run: Runner
    close: Callable[[], Awaitable[None]]


def cpu() -> tuple[float, float]:
    """User and system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def without_heartbeats(url: str) -> str:
    """``url`` asking for no heartbeats: the hand-driven connections never send any."""
    return url + ("&" if "?" in url else "?") + "heartbeat=0"


class CodecClient(asyncio.Protocol):
    """A connection driven by hand: decodes what arrives and resolves ``waiter`` with
    the reply's properties when its body frame is in."""

    def __init__(self, frame_max: int) -> None:
        self.decoder = codec.FrameDecoder(frame_max)
        self.waiter: asyncio.Future[Any] | None = None
        self.properties: spec.BasicProperties | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def answer(self, result: Any) -> None:
        """Resolve the request waiting for an answer (there must be one)."""
        waiter, self.waiter = self.waiter, None
        if waiter is None:
            raise RuntimeError("an answer that no request waits for")
        waiter.set_result(result)

    def data_received(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            if type(frame) is codec.HeaderFrame:
                self.properties = frame.properties
            elif type(frame) is codec.BodyFrame:
                self.answer(self.properties)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"the connection was lost: {exc!r}"))
        self.lost.set_result(None)


class BareClient(CodecClient):
    """Counts the answer's bytes instead of decoding them: once ``size`` is known (from
    the first answer, decoded), ``waiter`` is resolved when ``unread`` reaches 0."""

    def __init__(self, frame_max: int) -> None:
        super().__init__(frame_max)
        self.size = 0
        self.unread = 0

    def data_received(self, data: bytes) -> None:
        if not self.size:  # the first answer: decoded, to learn its size
            self.unread += len(data)
            waiter = self.waiter
            super().data_received(data)
            if waiter is not None and waiter.done():
                self.size, self.unread = self.unread, 0
            return
        self.unread -= len(data)
        if self.unread == 0:
            self.answer(None)
        elif self.unread < 0:
            raise RuntimeError(f"{-self.unread} bytes more than an answer")


async def socket_runner(url: str, rpc_queue: str, encode: bool) -> Contender:
    """The ``bare`` (``encode=False``) or ``codec`` contender, on a connection of its own
    (opened by txamqp091's Blocking face, then driven by hand on the asyncio loop)."""
    loop = asyncio.get_running_loop()
    connection = txamqp091.BlockingConnection(txamqp091.URLParameters(without_heartbeats(url)))
    channel = connection.channel()
    channel.basic_consume(REPLY_TO, lambda *_: None, auto_ack=True)
    number = channel.channel_number
    frame_max = connection._impl.frame_max
    sock = connection._transport.getHandle().dup()  # the Blocking face keeps its own
    client = CodecClient(frame_max) if encode else BareClient(frame_max)
    transport, _ = await loop.create_connection(lambda: client, sock=sock)
    target = rpc_queue

    def request(i: int) -> bytes:
        return codec.encode_message(
            number,
            spec.Basic.Publish(0, "", target, False, False),
            spec.BasicProperties(correlation_id=str(i), reply_to=REPLY_TO),
            BODY,
        )

    canned = request(0)
    if isinstance(client, BareClient):  # learn the size of an answer to `canned`
        client.waiter = loop.create_future()
        transport.write(canned)
        await client.waiter

    async def bare(count: int) -> None:
        assert isinstance(client, BareClient)
        size, create_future, write = client.size, loop.create_future, transport.write
        for _ in range(count):
            client.unread = size
            client.waiter = waiter = create_future()
            write(canned)
            await waiter

    async def encoded(count: int) -> None:
        create_future, write = loop.create_future, transport.write
        for i in range(count):
            client.waiter = waiter = create_future()
            write(request(i))
            if (await waiter).correlation_id != str(i):
                raise RuntimeError(f"a reply to another request than {i}")

    async def close() -> None:
        transport.close()
        await client.lost  # the duplicate is closed; the Blocking face closes its own
        connection.close()

    return Contender(encoded if encode else bare, close)


async def client_runner(pika: Any, url: str, rpc_queue: str) -> Contender:
    """pika's or txamqp091's AsyncioConnection running W5, written once."""
    from_module = importlib.import_module(f"{pika.__name__}.adapters.asyncio_connection")
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[Any] = loop.create_future()
    closed: asyncio.Future[Any] = loop.create_future()

    def on_open_error(_connection: Any, error: BaseException) -> None:
        opened.set_exception(error if isinstance(error, Exception) else RuntimeError(error))

    def on_close(_connection: Any, reason: BaseException) -> None:
        if not opened.done():
            opened.set_exception(RuntimeError(f"closed while opening: {reason!r}"))
        closed.set_result(reason)

    connection = from_module.AsyncioConnection(
        pika.URLParameters(url),
        on_open_callback=opened.set_result,
        on_open_error_callback=on_open_error,
        on_close_callback=on_close,
        custom_ioloop=loop,
    )
    await opened
    channel_opened: asyncio.Future[Any] = loop.create_future()
    connection.channel(on_open_callback=channel_opened.set_result)
    channel = await channel_opened

    replies: dict[str, asyncio.Future[bytes]] = {}

    def on_message(_ch: Any, _method: Any, properties: Any, body: bytes) -> None:
        replies.pop(properties.correlation_id).set_result(body)

    consuming: asyncio.Future[Any] = loop.create_future()
    channel.basic_consume(REPLY_TO, on_message, auto_ack=True, callback=consuming.set_result)
    await consuming
    target = rpc_queue

    async def rpc(count: int) -> None:
        for i in range(count):
            correlation_id = str(i)
            reply = replies[correlation_id] = loop.create_future()
            properties = pika.BasicProperties(correlation_id=correlation_id, reply_to=REPLY_TO)
            channel.basic_publish(
                exchange="", routing_key=target, body=BODY, properties=properties
            )
            if await reply != BODY:
                raise RuntimeError(f"a wrong reply to request {i}")

    async def close() -> None:
        if not closed.done():
            connection.close()
        await closed

    return Contender(rpc, close)


async def measure(
    runners: dict[str, Runner], rounds: int, size: int
) -> dict[str, tuple[float, float]]:
    """Alternate the runners; each one's user and system µs per round trip."""
    for run in runners.values():
        await run(size // 10)  # warm up
    totals = {name: [0.0, 0.0] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            user0, sys0 = cpu()
            await run(size)
            user1, sys1 = cpu()
            totals[name][0] += user1 - user0
            totals[name][1] += sys1 - sys0
    n = rounds * size / 1e6
    return {name: (user / n, system / n) for name, (user, system) in totals.items()}


def report(workload: str, results: dict[str, tuple[float, float]]) -> None:
    """Print one table: CPU µs per round trip and the ratios that matter."""
    print(f"{workload}: CPU us per round trip (user + system)")
    for name, (user, system) in results.items():
        print(f"  {name:10} {user + system:7.1f}  ({user:.1f} + {system:.1f})")
    total = {name: user + system for name, (user, system) in results.items()}
    print(
        f"  pika / txamqp091 = {total['pika'] / total['txamqp091']:.2f}x; "
        f"a third of pika = {total['pika'] / 3:.1f} us; "
        f"pika / codec floor = {total['pika'] / total['codec']:.2f}x"
    )


async def run_w5(url: str, rpc_queue: str, rounds: int, size: int) -> int:
    """Open the four contenders, measure them, print the table, close them all; return
    how many requests were sent."""
    contenders: dict[str, Contender] = {}
    try:
        contenders["bare"] = await socket_runner(url, rpc_queue, encode=False)
        contenders["codec"] = await socket_runner(url, rpc_queue, encode=True)
        contenders["pika"] = await client_runner(real_pika, url, rpc_queue)
        contenders["txamqp091"] = await client_runner(txamqp091, url, rpc_queue)
        async with asyncio.timeout(RUN_DEADLINE):
            runners = {name: contender.run for name, contender in contenders.items()}
            results = await measure(runners, rounds, size)
        report(f"W5 RPC round trip, asyncio ({rounds} x {size:,} each)", results)
    finally:
        for contender in contenders.values():
            await contender.close()
    return len(contenders) * (size // 10 + rounds * size) + 1  # + bare's sizing one


def main() -> None:
    """Start the responder, run W5 on one asyncio loop, check the responder's count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--round", type=int, default=1000, dest="size")
    args = parser.parse_args()
    rpc_queue = f"bench-asyncio-round-trips-{uuid.uuid4().hex[:10]}{RPC_QUEUE_SUFFIX}"
    responder = Responder(args.url, rpc_queue)
    try:
        sent = asyncio.run(run_w5(args.url, rpc_queue, args.rounds, args.size))
    finally:
        replied = responder.stop()  # and it deletes its queue
    if replied != sent:
        raise RuntimeError(f"the responder answered {replied:,} of {sent:,} requests")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Publish with confirms through AMQPClientService, and lose no message to a reconnection.

The channel is in confirm mode, so each ``basic_publish`` returns a Deferred that
fires once the broker has the message. The service has a bounded outbox
(``outbox_messages``): a confirmed publish cut off by a lost connection, or made
while the service reconnects, is kept there and published again, in order, once
the connection and the channel are recovered; its Deferred fires with that
publish's confirm. What does not fit in the outbox fails, and the script publishes
it again itself once the service is connected (see ``publish_one``).

The script publishes ``--count`` messages, each with a unique ``message_id``, at
most ``--window`` unconfirmed at a time, and waits until every one is confirmed.
With ``--fault-proxy`` the service connects through a
:class:`txamqp091.testing.FaultProxy` that resets the connection ``--resets``
times during the run. At the end it reads the queue back: republishing gives
at-least-once delivery, so the queue may hold a few duplicates (the same
``message_id`` twice), never fewer than ``--count`` distinct messages.

Usage::

    python examples/reliable_publisher.py [--url URL] [--count N] [--window N]
    python examples/reliable_publisher.py --fault-proxy [--resets N] [--outbox N]
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections import Counter
from typing import Any

from twisted.internet import defer, task
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python.failure import Failure

from txamqp091 import BasicProperties, URLParameters
from txamqp091.connect import connect
from txamqp091.exceptions import (
    AMQPError,
    ConnectionRecovering,
    OutboxFull,
    UnconfirmedPublishError,
)
from txamqp091.recovering_channel import RecoveringChannel
from txamqp091.recovery import (
    ConnectionLost,
    RecoveryEvent,
    RecoveryFailed,
    RecoveryStarted,
    RecoverySucceeded,
)
from txamqp091.service import AMQPClientService
from txamqp091.testing import FaultProxy

DEFAULT_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def on_event(event: RecoveryEvent) -> None:
    """A service listener: print the events a publisher cares about."""
    if isinstance(event, ConnectionLost):
        print(f"event: connection lost: {type(event.reason).__name__}")
    elif isinstance(event, RecoveryStarted):
        print("event: recovery started on a new connection")
    elif isinstance(event, RecoverySucceeded):
        print(
            f"event: recovered {event.channels} channel(s), {event.records} record(s); "
            f"{event.republished} message(s) republished from the outbox"
        )
    elif isinstance(event, RecoveryFailed):
        print(f"event: recovery of {event.entity!r} failed: {event.error!r}; retrying")


class Publisher:
    """Publishes the messages and counts what happened to them."""

    def __init__(
        self,
        reactor: Any,
        service: AMQPClientService,
        channel: RecoveringChannel,
        queue: str,
        proxy: FaultProxy | None,
        resets: int,
        count: int,
    ) -> None:
        self.reactor = reactor
        self.service = service
        self.channel = channel
        self.queue = queue
        self.proxy = proxy
        self.count = count
        #: Reset the connection when this many messages are confirmed.
        self.reset_at = {count * i // (resets + 1) for i in range(1, resets + 1)}
        if proxy is None:
            self.reset_at.clear()
        self.confirmed = 0
        #: Why messages had to be published again by the script.
        self.retries: Counter[str] = Counter()

    async def publish_one(self, number: int) -> None:
        """Publish message *number* until the broker confirms it."""
        properties = BasicProperties(message_id=f"msg-{number:05d}", content_type="text/plain")
        body = f"message {number}"
        while True:
            try:
                # Connected: sent at once. Reconnecting: kept in the outbox and
                # sent after recovery. Either way the Deferred fires with the
                # broker's ack, once.
                await self.channel.basic_publish("", self.queue, body, properties)
                break
            except OutboxFull:
                # Raised at once, by basic_publish, while reconnecting with a full
                # outbox: nothing was kept. Wait for the connection, then publish.
                self.retries["outbox full"] += 1
            except UnconfirmedPublishError:
                # Sent, but the connection went before the confirm, and the
                # outbox had no room for it: the broker may or may not have it.
                # Publishing it again may make a duplicate (at least once).
                # exc.message is the message as published: the same message_id.
                self.retries["unconfirmed"] += 1
            except ConnectionRecovering:
                # Without an outbox (or outside confirm mode) every publish made
                # while reconnecting fails fast like this; with one, only when the
                # service stops with messages still held.
                self.retries["recovering"] += 1
            # NackError and UnroutableError are answers from the broker, not
            # failures of the connection: they end the script.
            await self.service.whenConnected()
        self.confirmed += 1
        if self.confirmed in self.reset_at and self.proxy is not None:
            print(f"fault: resetting the connection after {self.confirmed} confirms")
            # Not from inside the protocol's callback: on the next turn.
            self.reactor.callLater(0, self.proxy.reset_all)

    async def run(self, window: int) -> None:
        """Publish every message, at most *window* unconfirmed at a time.

        With a window no larger than the outbox, every publish cut off by a
        reconnection fits in the outbox. The defaults (a window of 100, an outbox
        of 50) let some not fit, to show the script publishing them again.
        """
        slots = defer.DeferredSemaphore(window)
        failures: list[Failure] = []
        running: list[defer.Deferred[None]] = []

        def finished(result: object) -> None:
            slots.release()
            if isinstance(result, Failure):
                failures.append(result)

        for number in range(1, self.count + 1):
            if failures:
                break
            await slots.acquire()
            running.append(defer.ensureDeferred(self.publish_one(number)).addBoth(finished))
        await defer.DeferredList(running)
        if failures:
            failures[0].raiseException()


async def read_back(reactor: Any, url: str, queue: str) -> tuple[int, int]:
    """Read every message in *queue* over a plain connection, then delete the queue.

    :returns: how many messages it held, and how many distinct message ids.
    """
    connection = await connect(reactor, url)
    try:
        channel = await connection.channel()
        declared: Any = await channel.queue_declare(queue, passive=True)
        total: int = declared.method.message_count
        ids: set[str | None] = set()
        if total:
            messages, _ = await channel.basic_consume(queue, auto_ack=True)
            for _ in range(total):
                message = await messages.get()
                ids.add(message.properties.message_id)
        await channel.queue_delete(queue)
        print(f"deleted {queue!r}")
    finally:
        await connection.close()
    return total, len(ids)


async def main(reactor: Any, args: argparse.Namespace) -> None:
    """Publish ``args.count`` messages through the service; raise SystemExit on failure."""
    proxy: FaultProxy | None = None
    target: Any = args.url
    if args.fault_proxy:
        # The service connects through the proxy; the read-back connects straight
        # to the broker.
        broker = URLParameters(args.url)
        proxy = FaultProxy(reactor, broker.host, broker.port)
        port = await proxy.start()
        target = URLParameters(args.url)
        target.host, target.port = "127.0.0.1", port
        print(f"fault proxy on port {port}")
    service = AMQPClientService(
        reactor,
        target,
        initial_delay=0.2,
        max_delay=2.0,
        jitter=0.2,
        # Up to this many confirmed publishes are kept across an outage.
        outbox_messages=args.outbox,
    )
    service.add_listener(on_event)
    service.startService()
    # A queue of our own to publish to (through the default exchange), deleted at
    # the end; not exclusive, so that it keeps its messages while we reconnect.
    # x-expires removes it should the script die before deleting it.
    queue = f"txamqp091-example-{uuid.uuid4().hex[:8]}"
    declared = False
    publisher: Publisher | None = None
    try:
        try:
            channel = await service.channel().addTimeout(args.timeout, reactor)
        except defer.TimeoutError:
            raise SystemExit(f"could not connect within {args.timeout} s") from None
        try:
            await channel.queue_declare(queue, arguments={"x-expires": 600_000})
            declared = True
            await channel.confirm_delivery()  # recovered with the channel
            print(f"publishing {args.count} messages to {queue!r}, outbox of {args.outbox}")
            publisher = Publisher(reactor, service, channel, queue, proxy, args.resets, args.count)
            await defer.ensureDeferred(publisher.run(args.window)).addTimeout(
                args.timeout, reactor
            )
        except defer.TimeoutError:
            done = publisher.confirmed if publisher is not None else 0
            raise SystemExit(f"timed out: confirmed {done}/{args.count}") from None
        except AMQPError as exc:
            raise SystemExit(f"failed: {exc!r}") from None
        retries = ", ".join(f"{why}: {n}" for why, n in sorted(publisher.retries.items()))
        print(f"confirmed {publisher.confirmed}/{args.count}")
        print(f"published again by the script: {retries or 'none'}")
        print(f"recoveries: {service.recoveries}")
    finally:
        await service.stopService()
        if declared:
            total, distinct = await read_back(reactor, args.url, queue)
            print(f"the queue held {total} messages, {distinct} distinct")
        if proxy is not None:
            await proxy.stop()
        print("stopped the service and closed the connection")


def log_warnings() -> None:
    """Send the library's warnings and errors to stderr, leaving stdout to the script."""
    observer = FilteringLogObserver(
        textFileLogObserver(sys.stderr),
        [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)],
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--count", type=int, default=500, help="messages to publish")
    parser.add_argument("--window", type=int, default=100, help="most unconfirmed at once")
    parser.add_argument("--outbox", type=int, default=50, help="outbox_messages")
    parser.add_argument(
        "--fault-proxy",
        action="store_true",
        help="connect through a FaultProxy that resets the connection during the run",
    )
    parser.add_argument("--resets", type=int, default=2, help="resets with --fault-proxy")
    parser.add_argument("--timeout", type=float, default=45.0, help="seconds to wait in all")
    args = parser.parse_args()
    for name in ("count", "window", "outbox"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.resets < 0:
        parser.error("--resets must be at least 0")
    return args


if __name__ == "__main__":
    options = parse_args()
    log_warnings()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, options)))

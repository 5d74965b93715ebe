#!/usr/bin/env python3
"""Consume with AMQPClientService, and keep consuming across a lost connection.

The consumer runs on a channel of the service: the prefetch window, the exchange,
the durable queue, its binding and the consumer itself are recorded as the broker
confirms them, and declared again, in that order, on each new connection, before
the channel accepts calls again. The message handler is the same function before
and after; listeners hear of the connection loss and of the recovery.

The script publishes ``--count`` test messages (each with a ``message_id``) over a
plain connection of its own, consumes them with manual acks, and exits once every
message is acknowledged. With ``--fault-proxy`` the service connects through a
:class:`txamqp091.testing.FaultProxy`, which resets the connection while the
message that completes ``--fault-after`` is being handled. That message's ack is then
*stale*: it belongs to the lost connection, so ``basic_ack`` sends nothing and
returns ``False``, and the broker delivers the message again (``redelivered``) on
the new connection. So does every message that was in flight, unacknowledged,
when the connection went (up to ``--prefetch``).

Delivery is at least once: a message acked just before the reset may come back
too, if the ack was lost with the connection. The handler keeps the ids it has
processed and acks such duplicates without processing them again.

Usage::

    python examples/recovering_consumer.py [--url URL] [--count N] [--prefetch N]
    python examples/recovering_consumer.py --fault-proxy [--fault-after N]
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from typing import Any

from twisted.internet import defer, task
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from txamqp091 import BasicProperties, URLParameters, spec
from txamqp091.connect import connect
from txamqp091.exceptions import AMQPError
from txamqp091.recovering_channel import RecoveringChannel
from txamqp091.recovery import (
    ConnectionLost,
    ConsumerCancelledByBroker,
    QueueRenamed,
    RecoveryEvent,
    RecoveryFailed,
    RecoveryStarted,
    RecoverySucceeded,
)
from txamqp091.service import AMQPClientService
from txamqp091.testing import FaultProxy

DEFAULT_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def describe(event: RecoveryEvent) -> str:
    """One line for a recovery event."""
    match event:
        case ConnectionLost(reason=reason):
            return f"connection lost: {type(reason).__name__}"
        case RecoveryStarted():
            return "recovery started on a new connection"
        case QueueRenamed(old=old, new=new):
            return f"server-named queue {old!r} is now {new!r}"
        case RecoverySucceeded(channels=channels, records=records):
            return f"recovered {channels} channel(s) and {records} record(s)"
        case RecoveryFailed(entity=entity, error=error):
            return f"recovery of {entity!r} failed: {error!r}; retrying"
        case ConsumerCancelledByBroker(consumer_tag=tag, resumed=resumed):
            return f"the broker cancelled {tag!r}; " + ("resumed" if resumed else "ended")
    return repr(event)  # pragma: no cover - every event is matched above


class Consumer:
    """The message handler and what it has processed."""

    def __init__(self, reactor: Any, args: argparse.Namespace, proxy: FaultProxy | None) -> None:
        self.reactor = reactor
        self.count: int = args.count
        self.work: float = args.work
        self.fault_after: int = args.fault_after
        self.proxy = proxy
        #: The message ids processed and acknowledged.
        self.done: set[str] = set()
        #: Fires once ``count`` distinct messages are acknowledged.
        self.finished: defer.Deferred[None] = defer.Deferred()
        self._lost: defer.Deferred[None] | None = None

    def on_event(self, event: RecoveryEvent) -> None:
        """A service listener: print each event."""
        print(f"event: {describe(event)}")
        if isinstance(event, ConnectionLost) and self._lost is not None:
            lost, self._lost = self._lost, None
            lost.callback(None)

    async def handle(
        self,
        channel: RecoveringChannel,
        method: Any,
        properties: spec.BasicProperties,
        body: bytes,
    ) -> None:
        """The on_message_callback: the same one before and after a reconnection.

        It returns a coroutine, so the service runs it as a Deferred and
        ``stopService`` waits for it to finish.
        """
        message_id = properties.message_id or "?"
        tag: int = method.delivery_tag
        again = " (redelivered)" if method.redelivered else ""
        if message_id in self.done:
            # At least once: the ack sent on the old connection was lost with it.
            channel.basic_ack(tag)
            print(f"duplicate {message_id}{again}, tag {tag}: acked, not processed again")
            return
        print(f"received {message_id}{again}, tag {tag}")
        await task.deferLater(self.reactor, self.work, lambda: None)  # "processing"
        if self.proxy is not None and len(self.done) + 1 == self.fault_after:
            await self.break_connection()
        # Delivery tags keep growing across connections, so a tag from the lost
        # connection is never taken for a new one: acking it sends nothing and
        # returns False, and the broker, which requeued the message when the
        # connection went, delivers it again.
        if channel.basic_ack(tag):
            self.done.add(message_id)
            if len(self.done) == self.count and not self.finished.called:
                self.finished.callback(None)
        else:
            print(f"stale ack of {message_id}, tag {tag}: returned False, it will come again")

    async def break_connection(self) -> None:
        """Reset the service's connection and wait until the service has noticed."""
        assert self.proxy is not None
        proxy, self.proxy = self.proxy, None  # only once
        lost: defer.Deferred[None] = defer.Deferred()
        self._lost = lost
        print(f"fault: resetting the connection while handling message {self.fault_after}")
        await proxy.reset_all()
        await lost


async def publish_test_messages(reactor: Any, url: str, exchange: str, count: int) -> None:
    """Publish *count* messages over a plain connection straight to the broker."""
    connection = await connect(reactor, url)
    try:
        channel = await connection.channel()
        await channel.confirm_delivery()
        confirms = [
            channel.basic_publish(
                exchange,
                "work",
                f"message {number}",
                BasicProperties(message_id=f"msg-{number:04d}"),
            )
            for number in range(1, count + 1)
        ]
        await defer.gatherResults(confirms, consumeErrors=True)
    finally:
        await connection.close()
    print(f"published {count} test messages")


async def delete_entities(reactor: Any, url: str, queue: str, exchange: str) -> None:
    """Delete the example's queue and exchange over a plain connection."""
    connection = await connect(reactor, url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()
    print(f"deleted {queue!r} and {exchange!r}")


async def main(reactor: Any, args: argparse.Namespace) -> None:
    """Consume ``args.count`` messages through the service; raise SystemExit on failure."""
    proxy: FaultProxy | None = None
    target: Any = args.url
    if args.fault_proxy:
        # The service connects through the proxy; the test publisher and the
        # clean-up connect straight to the broker.
        broker = URLParameters(args.url)
        proxy = FaultProxy(reactor, broker.host, broker.port)
        port = await proxy.start()
        target = URLParameters(args.url)
        target.host, target.port = "127.0.0.1", port
        print(f"fault proxy on port {port}")
    consumer = Consumer(reactor, args, proxy)
    service = AMQPClientService(reactor, target, initial_delay=0.2, max_delay=2.0, jitter=0.2)
    service.add_listener(consumer.on_event)
    service.startService()
    suffix = uuid.uuid4().hex[:8]
    exchange = f"txamqp091-example-x-{suffix}"
    # Durable and not auto-delete: while the consumer is disconnected the queue,
    # and the messages in it, stay. An exclusive or auto-delete queue would be
    # recovered too, but empty: it goes with the connection (or its consumer).
    # x-expires removes it should the script die before deleting it.
    queue = f"txamqp091-example-{suffix}"
    declared = False
    try:
        try:
            channel = await service.channel().addTimeout(args.timeout, reactor)
        except defer.TimeoutError:
            raise SystemExit(f"could not connect within {args.timeout} s") from None
        try:
            await channel.basic_qos(prefetch_count=args.prefetch)
            await channel.exchange_declare(exchange, "direct")
            declared = True
            await channel.queue_declare(queue, durable=True, arguments={"x-expires": 600_000})
            await channel.queue_bind(queue, exchange, "work")
            print(f"declared {queue!r} bound to {exchange!r}, prefetch {args.prefetch}")
            await publish_test_messages(reactor, args.url, exchange, args.count)
            tag = await channel.basic_consume(queue, consumer.handle)
            print(f"consuming from {queue!r} as {tag!r}")
            await consumer.finished.addTimeout(args.timeout, reactor)
        except defer.TimeoutError:
            raise SystemExit(
                f"expected {args.count} messages, received {len(consumer.done)}"
            ) from None
        except AMQPError as exc:
            raise SystemExit(f"failed: {exc!r}") from None
        print(
            f"acknowledged {len(consumer.done)}/{args.count} messages; "
            f"{channel.stale_acks} stale ack(s), {service.recoveries} recovery(ies)"
        )
    finally:
        # Cancels the consumer, waits for running handlers, closes the connection.
        await service.stopService()
        if declared:
            await delete_entities(reactor, args.url, queue, exchange)
        if proxy is not None:
            await proxy.stop()
        print("stopped the service and closed the connection")


def log_warnings() -> None:
    """Send the library's warnings and errors (recovery failures, failing handlers) to
    stderr, leaving stdout to the script's own output."""
    observer = FilteringLogObserver(
        textFileLogObserver(sys.stderr),
        [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)],
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--count", type=int, default=20, help="messages to consume")
    parser.add_argument("--prefetch", type=int, default=5)
    parser.add_argument("--work", type=float, default=0.01, help="seconds per message")
    parser.add_argument(
        "--fault-proxy",
        action="store_true",
        help="connect through a FaultProxy that resets the connection once",
    )
    parser.add_argument(
        "--fault-after",
        type=int,
        default=None,
        help="reset while handling the message that would be the Nth acked (default: half)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait in all")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    if args.fault_after is None:
        args.fault_after = max(1, args.count // 2)
    if not 1 <= args.fault_after <= args.count:
        parser.error("--fault-after must be between 1 and --count")
    return args


if __name__ == "__main__":
    options = parse_args()
    log_warnings()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, options)))

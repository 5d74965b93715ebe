#!/usr/bin/env python3
"""Request/reply (RPC) over RabbitMQ's direct reply-to.

The responder consumes requests from a queue with an ``on_message_callback``
and publishes each answer to the request's ``reply_to``, echoing its
``correlation_id``. The client consumes from the pseudo-queue
``amq.rabbitmq.reply-to`` (no queue to declare or delete), publishes its
requests with ``reply_to="amq.rabbitmq.reply-to"`` and matches answers to
requests by ``correlation_id``.

By default the script plays both roles, on two channels of one connection,
sends ``--count`` requests and exits. ``--serve`` runs only the responder
and ``--client`` only the client, for two processes sharing ``--queue``.

Usage::

    python examples/rpc_direct_reply_to.py [--url URL] [--count N]
    python examples/rpc_direct_reply_to.py --serve [--queue NAME]
    python examples/rpc_direct_reply_to.py --client [--queue NAME] [--count N]
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, task

from txamqp091 import BasicProperties, spec
from txamqp091.channel import Channel
from txamqp091.connect import connect
from txamqp091.exceptions import AMQPError, ChannelClosedByBroker
from txamqp091.protocol import AMQPProtocol

DEFAULT_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
SHARED_QUEUE = "txamqp091-rpc-example"


def compute(request: bytes) -> bytes:
    """The service: square a number."""
    number = int(request)
    return str(number * number).encode()


@defer.inlineCallbacks
def start_responder(connection: AMQPProtocol, queue: str) -> Generator[Any, Any, Channel]:
    """Declare the request queue and answer every request on a channel of its own."""
    channel: Channel = yield connection.channel()
    # The queue goes away with the responder's last consumer.
    yield channel.queue_declare(queue, auto_delete=True)

    def on_request(
        ch: Channel, method: Any, properties: spec.BasicProperties, body: bytes
    ) -> None:
        reply = BasicProperties(correlation_id=properties.correlation_id)
        if properties.reply_to:
            ch.basic_publish("", properties.reply_to, compute(body), reply)
        ch.basic_ack(method.delivery_tag)

    yield channel.basic_consume(queue, on_request)
    print(f"responder consuming from {queue!r}")
    return channel


class RPCClient:
    """Sends requests and fires each one's Deferred with the matching reply."""

    def __init__(self, reactor: Any, channel: Channel, queue: str, timeout: float) -> None:
        self.reactor = reactor
        self.channel = channel
        self.queue = queue
        self.timeout = timeout
        self.pending: dict[str, defer.Deferred[bytes]] = {}

    @defer.inlineCallbacks
    def start(self) -> Generator[Any, Any, None]:
        """Consume from the reply-to pseudo-queue; RabbitMQ requires auto_ack."""
        yield self.channel.basic_consume(DIRECT_REPLY_TO, self.on_reply, auto_ack=True)

    def on_reply(
        self, channel: Channel, method: Any, properties: spec.BasicProperties, body: bytes
    ) -> None:
        waiting = self.pending.pop(properties.correlation_id or "", None)
        if waiting is not None:
            waiting.callback(body)

    def call(self, request: bytes) -> defer.Deferred[bytes]:
        """Send *request*; the Deferred fires with the reply or fails on timeout."""
        correlation_id = uuid.uuid4().hex
        reply: defer.Deferred[bytes] = defer.Deferred()
        self.pending[correlation_id] = reply
        properties = BasicProperties(reply_to=DIRECT_REPLY_TO, correlation_id=correlation_id)
        self.channel.basic_publish("", self.queue, request, properties)

        def forget(result: Any) -> Any:
            self.pending.pop(correlation_id, None)
            return result

        return reply.addTimeout(self.timeout, self.reactor).addBoth(forget)


@defer.inlineCallbacks
def run_client(
    reactor: Any, connection: AMQPProtocol, args: argparse.Namespace, queue: str
) -> Generator[Any, Any, None]:
    """Send ``args.count`` requests and check the answers."""
    channel = yield connection.channel()
    try:
        yield channel.queue_declare(queue, passive=True)
    except ChannelClosedByBroker as exc:  # 404: nobody declared the queue
        raise SystemExit(f"no responder on {queue!r} ({exc.reply_code}): start --serve") from None
    client = RPCClient(reactor, channel, queue, args.timeout)
    yield client.start()
    numbers = range(1, args.count + 1)
    # The requests are all in flight at once; the replies may come in any order.
    replies = yield defer.gatherResults([client.call(str(n).encode()) for n in numbers])
    for number, reply in zip(numbers, replies, strict=True):
        print(f"{number} squared is {reply.decode()}")
        if int(reply) != number * number:
            raise SystemExit(f"wrong answer for {number}: {reply!r}")
    print(f"received {len(replies)} replies")
    yield channel.close()


@defer.inlineCallbacks
def main(reactor: Any, args: argparse.Namespace) -> Generator[defer.Deferred[Any], Any, None]:
    """Play the roles asked for; raise SystemExit on failure."""
    both = not (args.serve or args.client)
    queue = args.queue or (f"txamqp091-rpc-{uuid.uuid4().hex[:8]}" if both else SHARED_QUEUE)
    try:
        connection = yield connect(reactor, args.url)
    except AMQPError as exc:
        raise SystemExit(f"could not connect: {exc!r}") from None
    try:
        if args.serve:
            yield start_responder(connection, queue)
            print("serving until interrupted (Ctrl-C)")
            yield connection.when_closed()
            return
        responder = (yield start_responder(connection, queue)) if both else None
        yield run_client(reactor, connection, args, queue)
        if responder is not None:
            yield responder.close()  # cancels its consumer: the queue is auto-deleted
            print("responder stopped")
    except AMQPError as exc:
        raise SystemExit(f"failed: {exc!r}") from None
    except defer.FirstError as exc:  # from gatherResults
        raise SystemExit(f"a request failed: {exc.subFailure.value!r}") from None
    finally:
        yield connection.close()
        print("closed the connection")


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description="RPC over direct reply-to.")
    parser.add_argument("--url", default=DEFAULT_URL, help="broker URL (default: %(default)s)")
    parser.add_argument("--count", type=int, default=5, help="requests to send")
    parser.add_argument("--queue", help=f"request queue (with --serve/--client: {SHARED_QUEUE})")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--serve", action="store_true", help="only answer requests")
    role.add_argument("--client", action="store_true", help="only send requests")
    return parser.parse_args()


if __name__ == "__main__":
    task.react(main, (parse_args(),))

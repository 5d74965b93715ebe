"""A confirmed publisher on the Select face, written as a pika program.

pika's asynchronous publisher pattern, unchanged but for the import (``import
txamqp091 as pika``): every step is a callback on the IOLoop. It opens a connection
and a channel, declares an exchange and a queue bound to it, turns on publisher
confirms, publishes ``--count`` messages keeping at most ``--window`` unconfirmed,
counts the broker's acks (``multiple`` acks cover several), then closes and stops
the loop.

Run it with a broker on localhost::

    python examples/select_publisher.py --count 100 --window 10
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from typing import Any

import txamqp091 as pika


def open_connection(face: str, url: str, **callbacks: Any) -> Any:
    """A connection on the chosen face: ``select`` (its own IOLoop), ``asyncio`` (a new
    asyncio loop) or ``tornado`` (a Tornado IOLoop, which runs on asyncio)."""
    params = pika.URLParameters(url)
    if face == "asyncio":
        loop = asyncio.new_event_loop()
        return pika.adapters.asyncio_connection.AsyncioConnection(
            params, custom_ioloop=loop, **callbacks
        )
    if face == "tornado":
        from tornado.ioloop import IOLoop

        return pika.adapters.tornado_connection.TornadoConnection(
            params, custom_ioloop=IOLoop(make_current=False), **callbacks
        )
    return pika.SelectConnection(params, **callbacks)


def run_loop(ioloop: Any) -> None:
    """Run the connection's loop until stopped (``start()``, or asyncio's
    ``run_forever()``)."""
    if isinstance(ioloop, asyncio.AbstractEventLoop):
        ioloop.run_forever()
    else:
        ioloop.start()


class Publisher:
    """Publishes ``count`` messages with confirms, ``window`` at most in flight."""

    def __init__(self, face: str, url: str, count: int, window: int) -> None:
        self.count, self.window = count, window
        self.exchange = f"txamqp091-example-x-{uuid.uuid4().hex[:8]}"
        self.queue = f"txamqp091-example-q-{uuid.uuid4().hex[:8]}"
        self.sent = self.acked = self.nacked = 0
        self.error: BaseException | None = None
        self.channel: Any = None
        self.connection = open_connection(
            face,
            url,
            on_open_callback=self.on_connection_open,
            on_open_error_callback=self.on_connection_open_error,
            on_close_callback=self.on_connection_closed,
        )

    def run(self) -> int:
        """Run the IOLoop until the publisher is done; 0 if every message was acked."""
        run_loop(self.connection.ioloop)
        self.connection.ioloop.close()
        if self.error is not None:
            print(f"failed: {self.error!r}")
            return 1
        print(f"published {self.sent}, acked {self.acked}, nacked {self.nacked}")
        return 0 if self.acked == self.count else 1

    # connection and channel

    def on_connection_open(self, connection: Any) -> None:
        print("connection open")
        connection.channel(on_open_callback=self.on_channel_open)

    def on_connection_open_error(self, connection: Any, error: BaseException) -> None:
        self.error = error
        connection.ioloop.stop()

    def on_connection_closed(self, connection: Any, reason: BaseException) -> None:
        print(f"closed the connection: {reason!r}")
        connection.ioloop.stop()

    def on_channel_open(self, channel: Any) -> None:
        self.channel = channel
        channel.add_on_close_callback(self.on_channel_closed)
        channel.exchange_declare(
            self.exchange, pika.exchange_type.ExchangeType.direct, callback=self.on_exchange
        )

    def on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        if not self.connection.is_closing and not self.connection.is_closed:
            self.error = reason
            self.connection.close()

    # topology

    def on_exchange(self, frame: Any) -> None:
        self.channel.queue_declare(self.queue, auto_delete=True, callback=self.on_queue)

    def on_queue(self, frame: Any) -> None:
        print(f"declared {frame.method.queue}")
        self.channel.queue_bind(self.queue, self.exchange, "example", callback=self.on_bound)

    def on_bound(self, frame: Any) -> None:
        self.channel.confirm_delivery(self.on_delivery_confirmation, callback=self.on_confirming)

    # publishing

    def on_confirming(self, frame: Any) -> None:
        self.publish_more()

    def publish_more(self) -> None:
        while self.sent < self.count and self.sent - self.acked - self.nacked < self.window:
            self.sent += 1
            self.channel.basic_publish(
                self.exchange,
                "example",
                f"message {self.sent}".encode(),
                pika.BasicProperties(content_type="text/plain", message_id=str(self.sent)),
            )

    def on_delivery_confirmation(self, frame: Any) -> None:
        method = frame.method
        settled = self.acked + self.nacked
        covered = method.delivery_tag - settled if method.multiple else 1
        if isinstance(method, pika.spec.Basic.Ack):
            self.acked += covered
        else:
            self.nacked += covered
        if self.acked + self.nacked < self.count:
            self.publish_more()
        else:
            self.channel.queue_delete(self.queue, callback=self.on_deleted)

    def on_deleted(self, frame: Any) -> None:
        self.channel.exchange_delete(self.exchange, callback=lambda _: self.connection.close())


def main(argv: list[str] | None = None) -> int:
    """Publish with confirms; print what happened."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--url", default="amqp://guest:guest@localhost:5672/%2F")
    options.add_argument("--face", choices=("select", "asyncio", "tornado"), default="select")
    options.add_argument("--count", type=int, default=100)
    options.add_argument("--window", type=int, default=10)
    args = options.parse_args(argv)
    return Publisher(args.face, args.url, args.count, args.window).run()


if __name__ == "__main__":
    sys.exit(main())

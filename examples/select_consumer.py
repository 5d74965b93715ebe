"""An asynchronous consumer on the Select face, written as a pika program.

pika's asynchronous consumer pattern, unchanged but for the import (``import
txamqp091 as pika``). It declares a queue, sets a prefetch window, publishes
``--count`` messages to it itself (so that it has something to read), consumes and
acks them, cancels its consumer once all arrived (the ``Basic.CancelOk`` callback),
deletes the queue and closes. A ``call_later`` timer ends it if messages stop coming.

Run it with a broker on localhost::

    python examples/select_consumer.py --count 20 --prefetch 5
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


class Consumer:
    """Consumes ``count`` messages from a queue of its own, ``prefetch`` at a time."""

    def __init__(self, face: str, url: str, count: int, prefetch: int, timeout: float) -> None:
        self.count, self.prefetch, self.timeout = count, prefetch, timeout
        self.queue = f"txamqp091-example-{uuid.uuid4().hex[:8]}"
        self.received: list[str] = []
        self.error: BaseException | None = None
        self.channel: Any = None
        self.consumer_tag = ""
        self.connection = open_connection(
            face,
            url,
            on_open_callback=self.on_connection_open,
            on_open_error_callback=self.on_connection_open_error,
            on_close_callback=self.on_connection_closed,
        )
        self.watchdog = self.connection.ioloop.call_later(timeout, self.on_timeout)

    def run(self) -> int:
        """Run the IOLoop until done; 0 if every message was received."""
        ioloop = self.connection.ioloop
        run_loop(ioloop)
        if hasattr(ioloop, "remove_timeout"):
            ioloop.remove_timeout(self.watchdog)
        else:
            self.watchdog.cancel()  # an asyncio TimerHandle
        ioloop.close()
        if self.error is not None:
            print(f"failed: {self.error!r}")
            return 1
        print(f"received {len(self.received)}/{self.count}")
        return 0 if len(self.received) == self.count else 1

    def on_timeout(self) -> None:
        self.error = TimeoutError(f"not done after {self.timeout} s")
        if self.connection.is_open:
            self.connection.close()
        else:
            self.connection.ioloop.stop()

    # connection and channel

    def on_connection_open(self, connection: Any) -> None:
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
        channel.add_on_cancel_callback(self.on_consumer_cancelled)
        channel.queue_declare(self.queue, auto_delete=True, callback=self.on_queue)

    def on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        if not self.connection.is_closing and not self.connection.is_closed:
            self.error = reason
            self.connection.close()

    def on_consumer_cancelled(self, frame: Any) -> None:
        print(f"the broker cancelled {frame.method.consumer_tag}")
        self.connection.close()

    # consuming

    def on_queue(self, frame: Any) -> None:
        for n in range(self.count):
            self.channel.basic_publish("", self.queue, f"message {n}".encode())
        self.channel.basic_qos(prefetch_count=self.prefetch, callback=self.on_qos)

    def on_qos(self, frame: Any) -> None:
        self.consumer_tag = self.channel.basic_consume(
            self.queue, self.on_message, callback=self.on_consuming
        )

    def on_consuming(self, frame: Any) -> None:
        assert frame.method.consumer_tag == self.consumer_tag
        print("consumer started")

    def on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.received.append(body.decode())
        print(f"received {body.decode()} (delivery tag {method.delivery_tag})")
        channel.basic_ack(method.delivery_tag)
        if len(self.received) == self.count:
            channel.basic_cancel(self.consumer_tag, callback=self.on_cancelled)

    def on_cancelled(self, frame: Any) -> None:
        print("consumer cancelled")
        self.channel.queue_delete(self.queue, callback=lambda _: self.connection.close())


def main(argv: list[str] | None = None) -> int:
    """Consume; print what happened."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--url", default="amqp://guest:guest@localhost:5672/%2F")
    options.add_argument("--face", choices=("select", "asyncio", "tornado"), default="select")
    options.add_argument("--count", type=int, default=20)
    options.add_argument("--prefetch", type=int, default=5)
    options.add_argument("--timeout", type=float, default=30.0)
    args = options.parse_args(argv)
    return Consumer(args.face, args.url, args.count, args.prefetch, args.timeout).run()


if __name__ == "__main__":
    sys.exit(main())

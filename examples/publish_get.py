#!/usr/bin/env python3
"""Publish a message to RabbitMQ and read it back, speaking AMQP with the codec alone.

This example drives txamqp091's sans-I/O frame codec over a plain blocking
socket: it performs the connection handshake, declares a temporary queue,
publishes one persistent message with headers, fetches it with Basic.Get,
acknowledges it and closes everything, printing each step.

(The Twisted protocol and the pika-compatible faces, which do all of this for
you, build on exactly these pieces.)

Usage::

    python examples/publish_get.py [AMQP_URL]

The URL defaults to ``$AMQP_URL`` or ``amqp://guest:guest@127.0.0.1:5672/%2F``.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from typing import TypeVar

from txamqp091 import codec, spec
from txamqp091.parameters import URLParameters

M = TypeVar("M", bound=spec.Method)


class Session:
    """A minimal blocking AMQP session: just enough to run this example."""

    def __init__(self, parameters: URLParameters, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((parameters.host, parameters.port), timeout)
        self.decoder = codec.FrameDecoder()
        self.pending: list[codec.Frame] = []
        self.frame_max = parameters.frame_max
        self._handshake(parameters)

    def _handshake(self, parameters: URLParameters) -> None:
        self.sock.sendall(codec.PROTOCOL_HEADER)
        start = self.expect(0, spec.Connection.Start)
        product = start.server_properties.get("product", "?")
        version = start.server_properties.get("version", "?")
        print(f"connected to {product} {version} at {parameters.host}:{parameters.port}")
        mechanism, response = parameters.credentials.response_for(start)
        if mechanism is None or response is None:
            raise SystemExit(f"the broker offers none of our mechanisms: {start.mechanisms!r}")
        client_properties = {"product": "txamqp091 example", "platform": sys.platform}
        self.send(0, spec.Connection.StartOk(client_properties, mechanism, response, "en_US"))
        tune = self.expect(0, spec.Connection.Tune)
        # Take the smaller of our and the broker's limits (0 means "no limit").
        self.frame_max = min(x for x in (tune.frame_max, self.frame_max) if x) or self.frame_max
        self.decoder.frame_max = self.frame_max
        channel_max = min(x for x in (tune.channel_max, 2047) if x)
        self.send(0, spec.Connection.TuneOk(channel_max, self.frame_max, 0))
        self.send(0, spec.Connection.Open(virtual_host=parameters.virtual_host))
        self.expect(0, spec.Connection.OpenOk)
        print(f"opened vhost {parameters.virtual_host!r} (frame_max {self.frame_max})")

    def send(self, channel: int, method: spec.Method) -> None:
        """Write one method frame."""
        self.sock.sendall(codec.encode_method_frame(channel, method))

    def next_frame(self) -> codec.Frame:
        """Read until the decoder yields a frame; heartbeats are skipped."""
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the broker closed the connection")
            self.pending.extend(
                frame
                for frame in self.decoder.feed(data)
                if not isinstance(frame, codec.HeartbeatFrame)
            )
        return self.pending.pop(0)

    def expect(self, channel: int, kind: type[M]) -> M:
        """Read the next frame; it must be method ``kind`` on ``channel``."""
        frame = self.next_frame()
        if isinstance(frame, codec.MethodFrame) and isinstance(
            frame.method, (spec.Connection.Close, spec.Channel.Close)
        ):
            close = frame.method
            raise ConnectionError(f"closed by the broker: {close.reply_code} {close.reply_text}")
        if not (
            isinstance(frame, codec.MethodFrame)
            and frame.channel_number == channel
            and isinstance(frame.method, kind)
        ):
            raise ConnectionError(f"expected {kind.NAME} on channel {channel}, got {frame!r}")
        return frame.method

    def call(self, channel: int, method: spec.Method) -> spec.Method:
        """Send a synchronous method and return its reply."""
        self.send(channel, method)
        frame = self.next_frame()
        if not isinstance(frame, codec.MethodFrame) or not isinstance(
            frame.method, method.valid_responses
        ):
            raise ConnectionError(f"unexpected reply to {method.NAME}: {frame!r}")
        return frame.method

    def read_content(self, channel: int) -> tuple[spec.BasicProperties, bytes]:
        """Read the content header and body frames that follow a content method."""
        header = self.next_frame()
        assert isinstance(header, codec.HeaderFrame) and header.channel_number == channel
        body = bytearray()
        while len(body) < header.body_size:
            frame = self.next_frame()
            assert isinstance(frame, codec.BodyFrame) and frame.channel_number == channel
            body += frame.fragment
        return header.properties, bytes(body)

    def close(self) -> None:
        """Close the connection with the handshake, then the socket."""
        self.call(0, spec.Connection.Close(200, "Normal shutdown", 0, 0))
        self.sock.close()


def main(url: str) -> int:
    """Run the example against the broker at ``url``."""
    session = Session(URLParameters(url))
    channel = 1
    session.call(channel, spec.Channel.Open())
    print(f"opened channel {channel}")
    queue = f"txamqp091-example-{uuid.uuid4().hex[:8]}"
    declared = session.call(channel, spec.Queue.Declare(queue=queue, auto_delete=True))
    assert isinstance(declared, spec.Queue.DeclareOk)
    print(f"declared queue {declared.queue!r}")

    body = b"Hello from txamqp091!"
    properties = spec.BasicProperties(
        content_type="text/plain",
        delivery_mode=spec.DeliveryMode.Persistent,
        headers={"greeting": True, "attempt": 1},
    )
    publish = spec.Basic.Publish(exchange="", routing_key=queue)
    session.sock.sendall(
        codec.encode_message(channel, publish, properties, body, session.frame_max)
    )
    print(f"published {body!r} to {queue!r}")

    # Publishing is asynchronous: poll with Basic.Get until the message is there.
    for _ in range(50):
        reply = session.call(channel, spec.Basic.Get(queue=queue))
        if isinstance(reply, spec.Basic.GetOk):
            break
    else:
        raise SystemExit("the message never arrived")
    received_properties, received = session.read_content(channel)
    print(
        f"got {received!r} (delivery tag {reply.delivery_tag}, "
        f"headers {received_properties.headers})"
    )
    session.send(channel, spec.Basic.Ack(delivery_tag=reply.delivery_tag))
    print("acknowledged it")

    deleted = session.call(channel, spec.Queue.Delete(queue=queue))
    assert isinstance(deleted, spec.Queue.DeleteOk)
    session.call(channel, spec.Channel.Close(200, "Normal shutdown", 0, 0))
    session.close()
    print(f"deleted {queue!r} and closed the connection")
    return 0 if received == body else 1


if __name__ == "__main__":
    default = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else default))

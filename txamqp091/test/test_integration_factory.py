"""AMQPClientFactory with Twisted's own machinery, and tcp_options on a real socket."""

from __future__ import annotations

import socket
from typing import Any

from twisted.application.internet import ClientService
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater
from twisted.trial import unittest

from txamqp091 import ConnectionParameters, URLParameters
from txamqp091.connect import AMQPClientFactory, connect
from txamqp091.protocol import AMQPProtocol
from txamqp091.test.broker import amqp_url, ensure_broker
from txamqp091.test.integration import wait_for


class FactoryTests(unittest.TestCase):
    """The factory works with endpoint.connect() and ClientService."""

    timeout = 30

    def setUp(self) -> None:
        ensure_broker()
        self.params = URLParameters(amqp_url())
        self.endpoint = TCP4ClientEndpoint(reactor, self.params.host, self.params.port)

    def test_endpoint_connect(self) -> None:
        """endpoint.connect(factory) gives a protocol whose ``ready`` fires with itself."""

        async def go() -> None:
            proto = await self.endpoint.connect(AMQPClientFactory(self.params))
            assert isinstance(proto, AMQPProtocol)
            ready = await wait_for(proto.ready)
            self.assertIs(ready, proto)
            self.assertTrue(proto.is_open)
            await proto.close()
            self.assertTrue(proto.is_closed)

        return ensureDeferred(go())  # type: ignore[return-value]

    def test_client_service(self) -> None:
        """ClientService(endpoint, factory) connects; the protocol opens a channel and
        declares a queue; stopping the service closes the connection."""
        service = ClientService(self.endpoint, AMQPClientFactory(self.params))
        service.startService()

        async def go() -> None:
            proto = await wait_for(service.whenConnected())
            assert isinstance(proto, AMQPProtocol)
            await wait_for(proto.ready)
            ch = await proto.channel()
            declared: Any = await ch.queue_declare("", exclusive=True)
            self.assertTrue(declared.method.queue)
            closed = proto.when_closed()
            await service.stopService()
            reason = await wait_for(closed)
            self.assertTrue(proto.is_closed, reason)

        return ensureDeferred(go())  # type: ignore[return-value]

    def test_client_service_prepare_connection_waits_for_ready(self) -> None:
        """With ``prepareConnection=lambda p: p.ready``, ClientService.whenConnected()
        fires only once the AMQP handshake is done."""
        service = ClientService(
            self.endpoint,
            AMQPClientFactory(self.params),
            prepareConnection=lambda proto: proto.ready,  # type: ignore[attr-defined]
        )
        service.startService()

        async def go() -> None:
            proto = await wait_for(service.whenConnected())
            assert isinstance(proto, AMQPProtocol)
            self.assertTrue(proto.is_open)
            # Leave ClientService's state transition before stopping it.
            await deferLater(reactor, 0, lambda: None)
            await service.stopService()

        return ensureDeferred(go())  # type: ignore[return-value]


class TCPOptionsTests(unittest.TestCase):
    """``tcp_options`` reach the socket."""

    timeout = 30

    def test_keepalive_options_applied(self) -> None:
        """TCP_KEEPIDLE/INTVL/CNT set keepalive on the connection's socket."""
        ensure_broker()
        base = URLParameters(amqp_url())
        params = ConnectionParameters(
            host=base.host,
            port=base.port,
            credentials=base.credentials,
            tcp_options={"TCP_KEEPIDLE": 33, "TCP_KEEPINTVL": 7, "TCP_KEEPCNT": 4},
        )

        async def go() -> None:
            conn = await connect(reactor, params)
            try:
                assert conn.transport is not None
                sock: socket.socket = conn.transport.getHandle()  # type: ignore[attr-defined]
                self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 1)
                self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), 33)
                self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL), 7)
                self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT), 4)
            finally:
                await conn.close()

        return ensureDeferred(go())  # type: ignore[return-value]

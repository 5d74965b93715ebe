"""AMQPClientService against the real broker: connect, lose the connection, come back."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.trial import unittest

from txamqp091 import ConnectionParameters, URLParameters
from txamqp091.exceptions import (
    AMQPHeartbeatTimeout,
    ConnectionClosedByBroker,
    StreamLostError,
)
from txamqp091.service import AMQPClientService
from txamqp091.test.broker import amqp_url, broker_address, ensure_broker
from txamqp091.test.integration import unique_name, wait_for
from txamqp091.test.test_integration_connection import broker_connection, rabbitmqctl
from txamqp091.testing import FaultProxy


class ServiceIntegrationTests(unittest.TestCase):
    """The service keeps a connection to RabbitMQ open across a broker-forced close."""

    timeout = 60

    def test_reconnects_after_forced_close(self) -> None:
        """After ``rabbitmqctl close_connection`` the service connects again on its own:
        whenConnected gives a new open connection that works; stopService closes it with
        the AMQP handshake and leaves the reactor clean."""
        ensure_broker()
        base = URLParameters(amqp_url())
        name = unique_name("txamqp091-service")
        params = ConnectionParameters(
            host=base.host,
            port=base.port,
            credentials=base.credentials,
            virtual_host=base.virtual_host,
            client_properties={"connection_name": name},
        )
        service = AMQPClientService(reactor, params, initial_delay=0.1, max_delay=1.0, jitter=0.1)
        service.startService()

        async def go() -> None:
            try:
                first = await wait_for(service.whenConnected())
                closed = first.when_closed()
                row = await broker_connection(name)
                await rabbitmqctl("close_connection", row["pid"], "test: forced close")
                self.assertIsInstance(await wait_for(closed), ConnectionClosedByBroker)
                second = await wait_for(service.whenConnected(), timeout=20)
                self.assertIsNot(second, first)
                self.assertTrue(second.is_open)
                channel = await second.channel()
                declared: Any = await channel.queue_declare("", exclusive=True)
                self.assertTrue(declared.method.queue.startswith("amq.gen-"))
            finally:
                await service.stopService()
            self.assertTrue(second.is_closed)

        return ensureDeferred(go())  # type: ignore[return-value]


class ServiceFaultTests(unittest.TestCase):
    """The service recovers its connection from network faults injected by FaultProxy."""

    timeout = 60

    def _service(self, proxy_port: int, **kw: Any) -> AMQPClientService:
        base = URLParameters(amqp_url())
        params = ConnectionParameters(
            host="127.0.0.1",
            port=proxy_port,
            credentials=base.credentials,
            virtual_host=base.virtual_host,
            **kw,
        )
        return AMQPClientService(reactor, params, initial_delay=0.1, max_delay=1.0, jitter=0.1)

    def test_reset_and_blackhole_recovered(self) -> None:
        """An RST from the network gives StreamLostError and a new connection; a
        blackholed link is noticed by heartbeats (AMQPHeartbeatTimeout) and replaced too."""
        ensure_broker()
        host, port = broker_address()
        proxy = FaultProxy(reactor, host, port)

        async def go() -> None:
            await proxy.start()
            service = self._service(proxy.port, heartbeat=1)
            service.startService()
            try:
                first = await wait_for(service.whenConnected())
                closed = first.when_closed()
                await proxy.reset_all()
                self.assertIsInstance(await wait_for(closed), StreamLostError)
                second = await wait_for(service.whenConnected(), timeout=20)
                self.assertIsNot(second, first)
                closed = second.when_closed()
                proxy.set_mode("blackhole")
                self.assertIsInstance(await wait_for(closed), AMQPHeartbeatTimeout)
                proxy.set_mode("forward")
                third = await wait_for(service.whenConnected(), timeout=20)
                self.assertTrue(third.is_open)
                await third.channel()
            finally:
                await service.stopService()
                await proxy.stop()

        return ensureDeferred(go())  # type: ignore[return-value]

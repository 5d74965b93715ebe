"""AMQPClientService against the real broker: connect, lose the connection, come back."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.trial import unittest

from txamqp091 import ConnectionParameters, URLParameters
from txamqp091.exceptions import ConnectionClosedByBroker
from txamqp091.service import AMQPClientService
from txamqp091.test.broker import amqp_url, ensure_broker
from txamqp091.test.integration import unique_name, wait_for
from txamqp091.test.test_integration_connection import broker_connection, rabbitmqctl


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

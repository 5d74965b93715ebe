"""Tests for :mod:`txamqp091.test.broker`, the integration tests' broker support."""

# trial's assertion methods carry no annotations.
# mypy: allow-untyped-calls

from __future__ import annotations

import socket

from twisted.trial.unittest import SynchronousTestCase

from txamqp091.test import broker


def _closed_port() -> int:
    """Return a local TCP port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class BrokerAddressTests(SynchronousTestCase):
    """Reading the broker's address from an AMQP URL."""

    def test_explicit_port(self) -> None:
        """The host and port written in the URL are returned as they are."""
        self.assertEqual(
            broker.broker_address("amqp://guest:guest@broker.example:5673/%2F"),
            ("broker.example", 5673),
        )

    def test_default_ports(self) -> None:
        """A URL without a port gets 5672 for amqp and 5671 for amqps."""
        self.assertEqual(broker.broker_address("amqp://h/"), ("h", 5672))
        self.assertEqual(broker.broker_address("amqps://h/"), ("h", 5671))

    def test_not_amqp(self) -> None:
        """A URL with another scheme is rejected."""
        self.assertRaises(ValueError, broker.broker_address, "http://h/")


class BrokerProbeTests(SynchronousTestCase):
    """Probing for a broker with the AMQP handshake."""

    def test_broker_answers(self) -> None:
        """The test broker answers the handshake, and ensure_broker returns its address."""
        host, port = broker.ensure_broker()
        self.assertEqual((host, port), broker.broker_address())
        self.assertIsNone(broker.handshake_error(host, port))
        self.assertTrue(broker.answers_handshake(host, port))

    def test_closed_port(self) -> None:
        """A closed port fails the probe, and ensure_broker raises without starting anything."""
        port = _closed_port()
        url = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
        self.assertFalse(broker.answers_handshake("127.0.0.1", port, timeout=2.0))
        error = self.assertRaises(
            RuntimeError, broker.ensure_broker, url, autostart=False, timeout=2.0
        )
        self.assertIn(f"127.0.0.1:{port}", str(error))
        self.assertIn("tools/rabbitmq.sh start", str(error))
        self.assertNotIn(url, broker._start_attempted)

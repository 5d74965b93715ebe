"""TLS connections through connect() against a real RabbitMQ TLS listener.

The listener is a second RabbitMQ node started by :mod:`txamqp091.test.tls_broker`
with a test CA, a server certificate for ``localhost`` and ``127.0.0.1``, and the
``EXTERNAL`` mechanism mapping a client certificate's common name to a user.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.trial import unittest

from txamqp091 import ConnectionParameters, ExternalCredentials, SSLOptions, URLParameters
from txamqp091.connect import connect
from txamqp091.exceptions import AMQPTLSError
from txamqp091.protocol import AMQPProtocol
from txamqp091.test.tls_broker import TLSBroker, tls_broker


def _context(broker: TLSBroker, *, ca: str | None = None, client: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca or broker.ca_cert)
    if client:
        ctx.load_cert_chain(broker.client_cert, broker.client_key)
    return ctx


class TLSConnectTests(unittest.TestCase):
    """connect() over TLS: verification on by default, SNI, client certificates."""

    timeout = 120

    def setUp(self) -> None:
        self.broker = tls_broker()

    async def _round_trip(self, conn: AMQPProtocol) -> None:
        try:
            ch = await conn.channel()
            declared: Any = await ch.queue_declare("", exclusive=True)
            queue = declared.method.queue
            ch.basic_publish("", queue, b"over tls")
            message = await ch.basic_get(queue, auto_ack=True)
            self.assertIsNotNone(message)
            assert message is not None
            self.assertEqual(message.body, b"over tls")
        finally:
            await conn.close()

    def test_verified_amqps_url(self) -> None:
        """An amqps URL with the test CA connects, verifies the certificate and works."""
        url = self.broker.url() + f"?ssl_options={{'ca_certs':'{self.broker.ca_cert}'}}"

        async def go() -> None:
            conn = await connect(reactor, url)
            self.assertTrue(conn.is_open)
            await self._round_trip(conn)

        return ensureDeferred(go())  # type: ignore[return-value]

    def test_amqps_url_alone_uses_platform_trust(self) -> None:
        """A bare amqps URL goes through Twisted's TLS with the platform's CAs: the test
        CA is not among them, so the certificate is refused (verification is on)."""
        return self._assert_tls_failure(URLParameters(self.broker.url()))  # type: ignore[return-value]

    def test_amqps_url_alone_verifies_with_service_identity(self) -> None:
        """With the test CA made the platform's (``SSL_CERT_FILE``), a bare amqps URL
        connects: the chain and the host name ``localhost`` verify."""
        previous = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = self.broker.ca_cert

        def restore() -> None:
            if previous is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = previous

        self.addCleanup(restore)

        async def go() -> None:
            conn = await connect(reactor, self.broker.url())
            self.assertTrue(conn.is_open)
            await self._round_trip(conn)

        return ensureDeferred(go())  # type: ignore[return-value]

    def test_parameters_with_ssl_context(self) -> None:
        """ConnectionParameters with SSLOptions(SSLContext, server_hostname) connect and work."""
        params = ConnectionParameters(
            host="127.0.0.1",
            port=self.broker.port,
            ssl_options=SSLOptions(_context(self.broker), server_hostname="localhost"),
        )

        async def go() -> None:
            await self._round_trip(await connect(reactor, params))

        return ensureDeferred(go())  # type: ignore[return-value]

    def test_twisted_connection_creator(self) -> None:
        """A Twisted creator from optionsForClientTLS is used as is (pyOpenSSL path)."""
        with open(self.broker.ca_cert, "rb") as f:
            ca = Certificate.loadPEM(f.read())
        creator = optionsForClientTLS("localhost", trustRoot=ca)
        params = ConnectionParameters(
            host="localhost", port=self.broker.port, ssl_options=SSLOptions(creator)
        )

        async def go() -> None:
            await self._round_trip(await connect(reactor, params))

        return ensureDeferred(go())  # type: ignore[return-value]

    def _assert_tls_failure(self, params: ConnectionParameters | URLParameters) -> Deferred[None]:
        async def go() -> None:
            with self.assertRaises(AMQPTLSError) as caught:
                await connect(reactor, params)
            self.assertIn("certificate", str(caught.exception).lower())

        return ensureDeferred(go())

    def test_hostname_mismatch_refused(self) -> None:
        """A certificate that does not name the host we asked for is refused: AMQPTLSError."""
        params = ConnectionParameters(
            host="127.0.0.1",
            port=self.broker.port,
            ssl_options=SSLOptions(_context(self.broker), server_hostname="wronghost"),
            connection_attempts=1,
        )
        return self._assert_tls_failure(params)  # type: ignore[return-value]

    def test_unknown_ca_refused(self) -> None:
        """A server certificate from a CA we do not trust is refused: AMQPTLSError."""
        params = ConnectionParameters(
            host="localhost",
            port=self.broker.port,
            ssl_options=SSLOptions(_context(self.broker, ca=self.broker.other_ca_cert)),
        )
        return self._assert_tls_failure(params)  # type: ignore[return-value]

    def test_unknown_ca_refused_twisted_creator(self) -> None:
        """The pyOpenSSL path also fails with AMQPTLSError for an untrusted CA."""
        with open(self.broker.other_ca_cert, "rb") as f:
            other = Certificate.loadPEM(f.read())
        params = ConnectionParameters(
            host="localhost",
            port=self.broker.port,
            ssl_options=SSLOptions(optionsForClientTLS("localhost", trustRoot=other)),
        )

        async def go() -> None:
            with self.assertRaises(AMQPTLSError):
                await connect(reactor, params)

        return ensureDeferred(go())  # type: ignore[return-value]

    def test_client_certificate_external_login(self) -> None:
        """A client certificate with EXTERNAL logs in as the certificate's common name."""
        params = ConnectionParameters(
            host="localhost",
            port=self.broker.port,
            credentials=ExternalCredentials(),
            ssl_options=SSLOptions(_context(self.broker, client=True)),
        )

        async def go() -> None:
            conn = await connect(reactor, params)
            self.assertTrue(conn.is_open)
            await self._round_trip(conn)

        return ensureDeferred(go())  # type: ignore[return-value]

    def test_client_certificate_external_login_twisted_creator(self) -> None:
        """EXTERNAL login also works with a Twisted creator carrying the client certificate."""
        with open(self.broker.ca_cert, "rb") as f:
            ca = Certificate.loadPEM(f.read())
        with open(self.broker.client_cert, "rb") as f:
            cert_pem = f.read()
        with open(self.broker.client_key, "rb") as f:
            key_pem = f.read()
        client = PrivateCertificate.loadPEM(cert_pem + key_pem)
        creator = optionsForClientTLS("localhost", trustRoot=ca, clientCertificate=client)
        params = ConnectionParameters(
            host="localhost",
            port=self.broker.port,
            credentials=ExternalCredentials(),
            ssl_options=SSLOptions(creator),
        )

        async def go() -> None:
            await self._round_trip(await connect(reactor, params))

        return ensureDeferred(go())  # type: ignore[return-value]

"""Tests for :mod:`txamqp091.test.tls_broker`, the second RabbitMQ node that speaks TLS.

These talk to the node with the standard library's :mod:`ssl` and txamqp091's codec, so
they check the node (and its certificates) independently of txamqp091's own TLS support.
"""

# trial's assertion methods carry no annotations.
# mypy: allow-untyped-calls

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import spec
from txamqp091.codec import Frame, FrameDecoder, MethodFrame, encode_method_frame
from txamqp091.test import tls_broker as tls_broker_module
from txamqp091.test.tls_broker import CLIENT_CN, TLSBroker, tls_broker

# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH.
_HOSTNAME_MISMATCH = 62
# X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN (the node sends its CA along with its certificate)
# and X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY (were it not to).
_UNKNOWN_ISSUER = (19, 20)

_TIMEOUT = 10.0


def _context(cafile: str, broker: TLSBroker | None = None) -> ssl.SSLContext:
    """A client context that verifies with ``cafile``, presenting the client certificate
    of ``broker`` if one is given."""
    context = ssl.create_default_context(cafile=cafile)
    if broker is not None:
        context.load_cert_chain(broker.client_cert, broker.client_key)
    return context


def _connect(
    broker: TLSBroker, context: ssl.SSLContext, server_hostname: str | None = None
) -> ssl.SSLSocket:
    """Connect to the node and complete the TLS handshake (raising if it fails)."""
    raw = socket.create_connection((broker.host, broker.port), timeout=_TIMEOUT)
    try:
        return context.wrap_socket(raw, server_hostname=server_hostname or broker.host)
    except BaseException:
        raw.close()
        raise


def _next_method(sock: ssl.SSLSocket, decoder: FrameDecoder) -> spec.Method | None:
    """Read until a method frame arrives; ``None`` if the node closes the connection first.

    Each read is bounded by the socket's timeout.
    """
    while True:
        data = sock.recv(4096)
        if not data:
            return None
        for frame in decoder.feed(data):
            if isinstance(frame, MethodFrame):
                return frame.method


def _start(sock: ssl.SSLSocket, decoder: FrameDecoder) -> spec.Connection.Start:
    """Send the protocol header and return the node's Connection.Start.

    :raises AssertionError: if the first frame is not Connection.Start on channel 0.
    """
    sock.sendall(b"AMQP\x00\x00\x09\x01")
    received = 0
    frames: list[Frame] = []
    while not frames:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"the node closed the connection after {received} bytes")
        received += len(chunk)
        frames = decoder.feed(chunk)
    frame = frames[0]
    if not (
        isinstance(frame, MethodFrame)
        and frame.channel_number == 0
        and isinstance(frame.method, spec.Connection.Start)
    ):
        raise AssertionError(f"expected Connection.Start on channel 0, got {frame!r}")
    return frame.method


def _mechanisms(start: spec.Connection.Start) -> list[str]:
    mechanisms = start.mechanisms
    text = mechanisms.decode() if isinstance(mechanisms, bytes) else mechanisms
    return text.split()


def _login(
    broker: TLSBroker, context: ssl.SSLContext, mechanism: str, response: bytes
) -> spec.Method | None:
    """Open a connection and answer Connection.Start; return the node's next method."""
    decoder = FrameDecoder()
    with _connect(broker, context) as sock:
        _start(sock, decoder)
        start_ok = spec.Connection.StartOk(
            # With this capability a refused login gets Connection.Close, not just a close.
            client_properties={
                "product": "txamqp091 tests",
                "capabilities": {"authentication_failure_close": True},
            },
            mechanism=mechanism,
            response=response,
            locale="en_US",
        )
        sock.sendall(encode_method_frame(0, start_ok))
        return _next_method(sock, decoder)


class TLSBrokerTests(SynchronousTestCase):
    """The TLS node: its certificates, its handshake and its logins."""

    def assertAccessRefused(self, reply: spec.Method | None) -> None:
        """Assert that ``reply`` is Connection.Close with ACCESS_REFUSED (403)."""
        if not isinstance(reply, spec.Connection.Close):
            self.fail(f"expected Connection.Close, got {reply!r}")
        self.assertEqual(reply.reply_code, 403, reply.reply_text)

    def setUp(self) -> None:
        # Started once per process; a node that cannot boot fails every test here.
        self.broker = tls_broker()

    def test_started_once(self) -> None:
        """tls_broker returns the same node on every call, and url() names it over amqps."""
        self.assertIs(tls_broker(), self.broker)
        self.assertEqual(self.broker.host, "localhost")
        self.assertEqual(self.broker.client_cn, CLIENT_CN)
        self.assertEqual(
            self.broker.url(), f"amqps://guest:guest@localhost:{self.broker.port}/%2F"
        )
        parts = urlsplit(self.broker.url(user="a b", password="p@ss/", vhost="v/1"))
        self.assertEqual(
            (parts.scheme, parts.username, parts.password, parts.path),
            ("amqps", "a%20b", "p%40ss%2F", "/v%2F1"),
        )

    def test_verified_handshake_offers_external(self) -> None:
        """A client verifying with ca_cert for "localhost", presenting the client
        certificate, completes the TLS handshake and gets Connection.Start on channel 0
        offering EXTERNAL and PLAIN."""
        with _connect(self.broker, _context(self.broker.ca_cert, self.broker)) as sock:
            self.assertIsNotNone(sock.getpeercert())
            start = _start(sock, FrameDecoder())
        self.assertEqual((start.version_major, start.version_minor), (0, 9))
        self.assertIn("EXTERNAL", _mechanisms(start))
        self.assertIn("PLAIN", _mechanisms(start))

    def test_external_needs_client_certificate(self) -> None:
        """Without a client certificate the handshake still succeeds (the node does not
        require one) and PLAIN is offered, but an EXTERNAL login is refused."""
        context = _context(self.broker.ca_cert)
        with _connect(self.broker, context) as sock:
            start = _start(sock, FrameDecoder())
        self.assertIn("PLAIN", _mechanisms(start))
        self.assertAccessRefused(_login(self.broker, context, "EXTERNAL", b""))

    def test_unknown_ca_refused(self) -> None:
        """A client that trusts only other_ca_cert refuses the node's certificate."""
        error = self.assertRaises(
            ssl.SSLCertVerificationError,
            _connect,
            self.broker,
            _context(self.broker.other_ca_cert),
        )
        self.assertIn(error.verify_code, _UNKNOWN_ISSUER, error.verify_message)

    def test_wrong_hostname_refused(self) -> None:
        """A client that expects another host name refuses the node's certificate, which
        is signed by the trusted CA but names only localhost and 127.0.0.1."""
        error = self.assertRaises(
            ssl.SSLCertVerificationError,
            _connect,
            self.broker,
            _context(self.broker.ca_cert),
            "wronghost",
        )
        self.assertEqual(error.verify_code, _HOSTNAME_MISMATCH, error.verify_message)

    def test_ip_address_verified(self) -> None:
        """The server certificate is also valid for the address 127.0.0.1."""
        with _connect(self.broker, _context(self.broker.ca_cert), "127.0.0.1") as sock:
            start = _start(sock, FrameDecoder())
        self.assertIn("PLAIN", _mechanisms(start))

    def test_external_login(self) -> None:
        """The client certificate logs in with EXTERNAL: the node answers Connection.StartOk
        with Connection.Tune, so the certificate's common name is an accepted user."""
        context = _context(self.broker.ca_cert, self.broker)
        reply = _login(self.broker, context, "EXTERNAL", b"")
        self.assertIsInstance(reply, spec.Connection.Tune)

    def test_plain_login(self) -> None:
        """guest/guest logs in with PLAIN over TLS, and a wrong password does not."""
        context = _context(self.broker.ca_cert)
        reply = _login(self.broker, context, "PLAIN", b"\x00guest\x00guest")
        self.assertIsInstance(reply, spec.Connection.Tune)
        self.assertAccessRefused(_login(self.broker, context, "PLAIN", b"\x00guest\x00wrong"))


class TLSBrokerBootFailureTests(SynchronousTestCase):
    """A node that cannot boot."""

    def test_boot_failure(self) -> None:
        """A node whose configuration RabbitMQ refuses makes the start raise RuntimeError
        quoting the node's own error, with its process reaped and its files removed."""
        workdirs: list[str] = []
        processes: list[subprocess.Popen[bytes]] = []
        write_config = tls_broker_module._write_config
        terminate = tls_broker_module._terminate
        mkdtemp = tempfile.mkdtemp

        def bad_config(workdir: Path, certs: Path, port: int) -> None:
            write_config(workdir, certs, port)
            with open(workdir / "rabbitmq.conf", "a") as config:
                config.write("no_such_setting = 1\n")

        def recording_terminate(process: subprocess.Popen[bytes]) -> None:
            processes.append(process)
            terminate(process)

        def recording_mkdtemp(*args: Any, **kwargs: Any) -> str:
            workdirs.append(mkdtemp(*args, **kwargs))
            return workdirs[-1]

        self.patch(tls_broker_module, "_write_config", bad_config)
        self.patch(tls_broker_module, "_terminate", recording_terminate)
        self.patch(tempfile, "mkdtemp", recording_mkdtemp)
        # _start, not tls_broker: this failure must not become the process's cached one.
        error = self.assertRaises(RuntimeError, tls_broker_module._start)
        self.assertIn("did not boot", str(error))
        self.assertIn("no_such_setting", str(error))
        self.assertEqual(len(processes), 1)
        self.assertIsNotNone(processes[0].returncode)
        self.assertEqual(len(workdirs), 1)
        self.assertFalse(os.path.exists(workdirs[0]))

    def test_failure_remembered(self) -> None:
        """After a failed start, tls_broker raises again at once rather than booting anew."""
        self.patch(tls_broker_module, "_node", None)
        self.patch(tls_broker_module, "_boot_error", RuntimeError("the first boot failed"))
        self.patch(tls_broker_module, "_start", lambda: self.fail("started again"))
        error = self.assertRaises(RuntimeError, tls_broker)
        self.assertIn("the first boot failed", str(error))

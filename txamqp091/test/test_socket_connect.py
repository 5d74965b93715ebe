"""Tests of :mod:`txamqp091.socket_connect`: the non-blocking connect on the
selector loop, with no broker (a listening socket of the test's own)."""

from __future__ import annotations

import socket
import unittest
from typing import Any

from twisted.internet.defer import Deferred

from txamqp091.blocking_loop import SelectorLoop
from txamqp091.exceptions import AMQPConnectionError
from txamqp091.socket_connect import _Connecting, connect_socket

#: Upper bound for any single wait (never reached when the code works).
WAIT = 5.0


class ConnectSocketTests(unittest.TestCase):
    """connect_socket / _Connecting."""

    def setUp(self) -> None:
        self.loop = SelectorLoop()
        self.addCleanup(self.loop.close)
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.addCleanup(self.server.close)
        self.port = self.server.getsockname()[1]

    def wait(self, d: Deferred[Any]) -> list[Any]:
        """Run the loop until *d* fired; its result, or its failure, in a list."""
        out: list[Any] = []
        d.addBoth(out.append)
        for _ in range(1000):
            if out:
                return out
            self.loop.poll(WAIT)
        raise AssertionError("the Deferred never fired")

    def test_connects(self) -> None:
        """A listening port: the socket comes back connected, TCP_NODELAY set."""
        [sock] = self.wait(connect_socket(self.loop, "127.0.0.1", self.port, WAIT))
        self.addCleanup(sock.close)
        self.assertIsInstance(sock, socket.socket)
        self.assertEqual(sock.getpeername()[1], self.port)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)
        self.assertEqual(self.loop.getDelayedCalls(), [])

    def test_unusable_address_then_a_good_one(self) -> None:
        """An address whose socket cannot even be made (an address family this host
        does not have, as IPv6 where it is off) is skipped: the next one connects."""
        bad = (-1, socket.SOCK_STREAM, 0, "", ("::1", self.port))
        good = (socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", self.port))
        connecting = _Connecting(self.loop, "localhost", self.port, [bad, good], WAIT)
        [sock] = self.wait(connecting.deferred)
        self.addCleanup(sock.close)
        self.assertEqual(sock.getpeername(), ("127.0.0.1", self.port))
        self.assertEqual(self.loop.getDelayedCalls(), [])

    def test_nothing_usable(self) -> None:
        """Every address unusable: AMQPConnectionError naming the last error, and the
        timeout timer is gone."""
        bad = (-1, socket.SOCK_STREAM, 0, "", ("::1", self.port))
        connecting = _Connecting(self.loop, "localhost", self.port, [bad], WAIT)
        [failure] = self.wait(connecting.deferred)
        self.assertTrue(failure.check(AMQPConnectionError))
        self.assertIn("localhost", str(failure.value))
        self.assertEqual(self.loop.getDelayedCalls(), [])

    def test_refused(self) -> None:
        """A closed port: AMQPConnectionError, no timer left."""
        self.server.close()
        [failure] = self.wait(connect_socket(self.loop, "127.0.0.1", self.port, WAIT))
        self.assertTrue(failure.check(AMQPConnectionError))
        self.assertEqual(self.loop.getDelayedCalls(), [])

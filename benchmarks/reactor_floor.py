#!/usr/bin/env python3
"""The floor under W5: CPU per round trip of a bare Twisted client, no AMQP at all.

An echo server (a plain blocking socket in a child process) returns every 100-byte
message; a minimal Twisted protocol sends the next one when the echo arrives. What the
client process spends per round trip is the cost of the reactor and the system calls
alone: no AMQP client on Twisted can do a round trip for less on this machine.

    python benchmarks/reactor_floor.py [--count 5000]
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import time
from typing import Any

ECHO_SERVER = r"""
import socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    data = conn.recv(65536)
    if not data:
        break
    conn.sendall(data)
"""


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        run(port, args.count)
    finally:
        server.kill()
        server.wait()


def run(port: int, count: int) -> None:
    from twisted.internet import endpoints, protocol, reactor

    payload = b"x" * 100
    result: dict[str, float] = {}

    class Echo(protocol.Protocol):
        def connectionMade(self) -> None:
            self.transport.getHandle().setsockopt(  # type: ignore[union-attr]
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )
            self.left = count
            self.cpu = cpu_seconds()
            self.wall = time.perf_counter()
            self.transport.write(payload)  # type: ignore[union-attr]

        def dataReceived(self, data: bytes) -> None:
            self.left -= 1
            if self.left:
                self.transport.write(payload)  # type: ignore[union-attr]
                return
            result["cpu"] = (cpu_seconds() - self.cpu) / count
            result["wall"] = (time.perf_counter() - self.wall) / count
            self.transport.loseConnection()  # type: ignore[union-attr]
            reactor.stop()  # type: ignore[attr-defined]

    endpoint: Any = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    endpoint.connect(protocol.Factory.forProtocol(Echo))
    reactor.run()  # type: ignore[attr-defined]
    print(
        f"bare Twisted round trip: {result['cpu'] * 1e6:.1f} us CPU, "
        f"{result['wall'] * 1e6:.0f} us wall ({count:,} round trips)"
    )


if __name__ == "__main__":
    main()

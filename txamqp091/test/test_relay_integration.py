"""``twistd amqp-relay`` end to end: the real twistd process against the real broker.

Each test runs the relay as a child process (``twistd -n amqp-relay``, found as a
plugin with the repository root on ``PYTHONPATH``) between two virtual hosts that
stand for two brokers, made for the test and deleted after it.  The test talks to
the relay the way an operator does: its command line, its TOML file, its HTTP API
(``/healthz``, ``/metrics``, ``/links/NAME/ACTION``) and signals.  Faults are
injected with :class:`~txamqp091.testing.FaultProxy` (in this process) and
``rabbitmqctl``.

Waits are bounded polls of a condition on the reactor (``deferLater``), never sleeps;
only the pause test watches a queue for a bounded while, to show that nothing moves.
Every test kills its relay (and waits for it to be reaped), stops its proxies and
deletes its virtual hosts, whatever the outcome.

Set ``TXAMQP091_RELAY_TEST_LOGS`` to a directory to keep each relay's whole log there.
"""

# trial's assertion methods carry no annotations.
# mypy: allow-untyped-calls

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from twisted.internet.defer import Deferred, ensureDeferred, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError, ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import Logger
from twisted.python.failure import Failure

import txamqp091
from txamqp091 import URLParameters, spec
from txamqp091.channel import Channel
from txamqp091.protocol import AMQPProtocol
from txamqp091.test.broker import amqp_url, broker_address, ensure_broker
from txamqp091.test.integration import (
    IntegrationTestCase,
    async_test,
    reactor,
    unique_name,
    wait_for,
)
from txamqp091.testing import FaultProxy

_log = Logger()

#: Seconds allowed for one awaited condition (the relay starting, messages arriving…).
WAIT = 60.0

#: Seconds between two checks of a polled condition.
POLL = 0.1

#: The repository root: twistd finds the ``twisted/plugins`` drop-in there.
REPO_ROOT = Path(txamqp091.__file__).resolve().parents[1]

#: twistd, run by this interpreter (``python -m twisted`` is ``twist``, not twistd).
TWISTD = (
    sys.executable,
    "-c",
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
)

#: Every option ``twistd amqp-relay --help`` must document.
OPTIONS = (
    "--source",
    "--source-queue",
    "--dest",
    "--dest-exchange",
    "--dest-routing-key",
    "--prefetch",
    "--ack-mode",
    "--on-reject",
    "--add-forward-headers",
    "--http",
    "--shutdown-timeout",
    "--config",
    "--stall-timeout",
)

#: The ``connection_name`` of the test's own broker connections (the relay's are
#: named after the test when a test needs to find them).
TEST_CONNECTION = "txamqp091-relay-test-client"


# ---------------------------------------------------------------------------------------
# Waiting, rabbitmqctl, ports
# ---------------------------------------------------------------------------------------


async def until(
    condition: Callable[[], Any],
    what: str | Callable[[], str],
    timeout: float = WAIT,
    interval: float = POLL,
) -> Any:
    """Poll ``condition()`` (a value or an awaitable) until it is truthy; return it.

    :raises AssertionError: describing ``what`` (a string, or a function giving one at
        the time of the failure) after ``timeout`` seconds.
    """
    deadline = reactor.seconds() + timeout
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if reactor.seconds() > deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {text}")
        await deferLater(reactor, interval, lambda: None)


async def rabbitmqctl(*args: str, check: bool = True) -> str:
    """Run ``rabbitmqctl -q args`` without blocking the reactor; return its stdout.

    :raises AssertionError: if ``check`` and it exits with a non-zero status.
    """
    path = shutil.which("rabbitmqctl")
    assert path is not None, "rabbitmqctl is not on PATH"
    out, err, code = await getProcessOutputAndValue(path, ("-q", *args), env=dict(os.environ))
    if check and code != 0:
        raise AssertionError(
            f"rabbitmqctl {' '.join(args)} exited with {code}: {err.decode(errors='replace')}"
        )
    text: str = out.decode(errors="replace")
    return text


def gather(*ds: Deferred[Any]) -> Deferred[list[Any]]:
    """Wait for every Deferred; fail with the first failure."""
    return gatherResults(list(ds), consumeErrors=True)


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string."""
    return json.dumps(value)


# ---------------------------------------------------------------------------------------
# A small HTTP client that leaves nothing behind
# ---------------------------------------------------------------------------------------


class _HTTPExchange(Protocol):
    """One HTTP/1.0 request; ``done`` fires with the raw response once the server has
    closed the connection (so no socket outlives the exchange)."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.data = bytearray()
        self.done: Deferred[bytes] = Deferred(self._abort)

    def _abort(self, _: Deferred[bytes]) -> None:
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.done.called:
            self.done.callback(bytes(self.data))


async def http(method: str, port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """``method path`` on the relay's HTTP API; return the status and the body.

    :raises ConnectError: if nothing listens on ``port`` (yet).
    """
    request = (
        f"{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    exchange = _HTTPExchange(request)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5)
    await connectProtocol(endpoint, exchange)
    raw = await wait_for(exchange.done, timeout)
    head, _, body = raw.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if match is None:
        raise AssertionError(f"not an HTTP response to {method} {path}: {raw[:200]!r}")
    return int(match.group(1)), body


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format as ``{'name{labels}': value}`` (labels as written)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def metric(samples: dict[str, float], name: str, link: str = "default", **labels: str) -> float:
    """One sample of ``amqp_relay_<name>`` for ``link`` (and further ``labels``)."""
    parts = [f'link="{link}"', *(f'{k}="{v}"' for k, v in labels.items())]
    key = f"amqp_relay_{name}{{{','.join(parts)}}}"
    if key not in samples:
        raise AssertionError(f"/metrics has no {key}; it has {sorted(samples)}")
    return samples[key]


# ---------------------------------------------------------------------------------------
# The relay process
# ---------------------------------------------------------------------------------------


class RelayProcess(ProcessProtocol):
    """``twistd ARGS`` as a child process: its output, its exit status, and the port of
    its HTTP API (if it has one)."""

    def __init__(self, args: Sequence[str], cwd: str, http_port: int | None = None) -> None:
        self.args = list(args)
        self.cwd = cwd
        self.http_port = http_port
        #: Everything it wrote, stdout and stderr together.
        self.output = bytearray()
        #: The exit code (``None`` while running, or if a signal ended it).
        self.exit_code: int | None = None
        #: The signal that ended it, if one did.
        self.exit_signal: int | None = None
        #: ``True`` once it has ended and been reaped.
        self.ended = False
        #: The signals sent to it.
        self.signalled: list[str] = []
        self.pid: int | None = None

    # -- ProcessProtocol ---------------------------------------------------------------

    def outReceived(self, data: bytes) -> None:
        self.output += data

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        if isinstance(value, ProcessDone | ProcessTerminated):
            self.exit_code = value.exitCode
            self.exit_signal = value.signal
        self.ended = True

    # -- control -----------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the process (the repository root first on its ``PYTHONPATH``)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        transport = reactor.spawnProcess(
            self, sys.executable, [*TWISTD, *self.args], env=env, path=self.cwd
        )
        self.pid = transport.pid

    def text(self, tail: int = 6000) -> str:
        """The output so far (its end, without the HTTP access log)."""
        lines = self.output.decode(errors="replace").splitlines(keepends=True)
        return "".join(line for line in lines if '"GET /' not in line)[-tail:]

    def describe(self, tail: int = 6000) -> str:
        """The process's state and the end of its output, for failure messages."""
        state = (
            "running"
            if not self.ended
            else f"exited with code {self.exit_code}, signal {self.exit_signal}"
        )
        return f"the relay ({state}); its output ends with:\n{self.text(tail)}"

    async def wait_exit(self, timeout: float = WAIT) -> None:
        """Wait until the process has ended (and been reaped)."""
        await until(lambda: self.ended, lambda: f"the end of {self.describe()}", timeout)

    def signal(self, name: str) -> None:
        """Send ``SIG<name>`` unless the process has ended."""
        self.signalled.append(name)
        if not self.ended and self.transport is not None:
            try:
                self.transport.signalProcess(name)
            except OSError:  # pragma: no cover - it ended in between
                pass

    async def terminate(self, timeout: float = WAIT) -> None:
        """SIGTERM (unless sent already) and wait for the exit, which must be orderly.

        twistd stops the application (the relay stops its links, each waiting for its
        in-flight confirms) and logs ``Server Shut Down.``; then it re-raises the
        signal that stopped it (``runApp`` in ``twisted/scripts/twistd.py``, since
        Twisted 20.3), so that a supervisor sees why it ended: the wait status is
        "terminated by SIGTERM", not exit code 0 (systemd counts it as a success).
        Either is accepted here, provided the shutdown was orderly and nothing in the
        log is an error.
        """
        if "TERM" not in self.signalled:
            self.signal("TERM")
        await self.wait_exit(timeout)
        text = self.output.decode(errors="replace")
        clean_status = (self.exit_code == 0 and self.exit_signal is None) or (
            self.exit_code is None and self.exit_signal == signal.SIGTERM
        )
        if not clean_status:
            raise AssertionError(f"SIGTERM: expected a clean exit, got {self.describe()}")
        for needed in ("-> stopped", "Server Shut Down."):
            if needed not in text:
                raise AssertionError(f"SIGTERM: no {needed!r} in the log of {self.describe()}")
        for bad in ("Traceback", "Unhandled"):
            if bad in text:
                raise AssertionError(f"{bad!r} in the log of {self.describe(20000)}")

    async def kill(self) -> None:
        """Cleanup: SIGKILL if still running, and wait for the process to be reaped
        (trial checks that no process pipe is left on the reactor).  With
        ``$TXAMQP091_RELAY_TEST_LOGS`` set, keep the output there."""
        if not self.ended:
            self.signal("KILL")
            await self.wait_exit(30)
        keep = os.environ.get("TXAMQP091_RELAY_TEST_LOGS")
        if keep and self.pid is not None:
            Path(keep, f"relay-{self.pid}.log").write_bytes(bytes(self.output))

    # -- HTTP --------------------------------------------------------------------------

    async def get(self, path: str) -> tuple[int, bytes]:
        assert self.http_port is not None
        return await http("GET", self.http_port, path)

    async def post(self, path: str) -> tuple[int, Any]:
        """``POST path``: the status and the decoded JSON body."""
        assert self.http_port is not None
        code, body = await http("POST", self.http_port, path, timeout=WAIT)
        return code, json.loads(body)

    async def health(self) -> tuple[int, dict[str, Any]]:
        """``GET /healthz``: the status and the decoded JSON body."""
        code, body = await self.get("/healthz")
        return code, json.loads(body)

    async def metrics(self) -> dict[str, float]:
        """``GET /metrics``, parsed."""
        code, body = await self.get("/metrics")
        if code != 200:
            raise AssertionError(f"/metrics answered {code}: {body[:500]!r}")
        return parse_metrics(body.decode())

    async def metrics_until(
        self, condition: Callable[[dict[str, float]], bool], what: str | Callable[[], str]
    ) -> dict[str, float]:
        """Poll ``/metrics`` until ``condition(samples)``; return the samples."""
        samples: dict[str, float] = {}

        async def check() -> bool:
            samples.update(await self.metrics())
            return condition(samples)

        def describe() -> str:
            text = what() if callable(what) else what
            return f"{text}; /metrics: {samples}; {self.describe()}"

        await until(check, describe)
        return samples


# ---------------------------------------------------------------------------------------
# The test case
# ---------------------------------------------------------------------------------------


@dataclass
class Sides:
    """Two virtual hosts standing for two brokers, the test's own connection and
    channel to each (the source's in confirm mode), a source queue in ``a`` and a
    destination queue in ``b``."""

    a: str
    b: str
    conn_a: AMQPProtocol
    conn_b: AMQPProtocol
    ch_a: Channel
    ch_b: Channel
    source: str
    dest: str


class RelayTestCase(IntegrationTestCase):
    """Makes virtual hosts, relay processes and proxies that are gone when the test
    ends (cleanups run in reverse: relays are killed, then proxies stopped, then the
    test's connections closed and the virtual hosts deleted, which takes anything
    left in them)."""

    timeout = 120

    def setUp(self) -> None:
        ensure_broker()
        base = urlsplit(amqp_url())
        self.broker_host, self.broker_port = broker_address()
        self.user = unquote(base.username or "guest")
        self.password = unquote(base.password or "guest")
        self.name = unique_name("txamqp091-relay")
        workdir = tempfile.mkdtemp(prefix="txamqp091-relay-")
        self.addCleanup(shutil.rmtree, workdir, True)
        self.workdir = workdir

    # -- virtual hosts and URLs -----------------------------------------------------------

    async def vhost(self, suffix: str) -> str:
        """A new virtual host ``<test name>-<suffix>`` the user may use; deleted at
        cleanup."""
        vhost = f"{self.name}-{suffix}"
        await rabbitmqctl("add_vhost", vhost)
        self.addCleanup(lambda: ensureDeferred(rabbitmqctl("delete_vhost", vhost, check=False)))
        await rabbitmqctl("set_permissions", "-p", vhost, self.user, ".*", ".*", ".*")
        return vhost

    def url(self, vhost: str, port: int | None = None, connection_name: str | None = None) -> str:
        """An ``amqp://`` URL for ``vhost``, at the broker or at ``port`` (a proxy);
        the connection is named ``connection_name`` if given."""
        url = (
            f"amqp://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.broker_host}:{port or self.broker_port}/{quote(vhost, safe='')}"
        )
        if connection_name is not None:
            props = repr({"connection_name": connection_name})
            url += "?client_properties=" + quote(props, safe="")
        return url

    async def connect(self, vhost: str) -> AMQPProtocol:
        """A connection of the test's own to ``vhost`` (closed at cleanup)."""
        params = URLParameters(self.url(vhost, connection_name=TEST_CONNECTION))
        return await self.open_connection(url=params)

    async def sides(self) -> Sides:
        """See :class:`Sides`."""
        a, b = await self.vhost("a"), await self.vhost("b")
        conn_a, conn_b = await self.connect(a), await self.connect(b)
        ch_a, ch_b = await conn_a.channel(), await conn_b.channel()
        source, dest = f"{self.name}-source", f"{self.name}-dest"
        await ch_a.queue_declare(source, durable=True)
        await ch_b.queue_declare(dest, durable=True)
        await ch_a.confirm_delivery()
        return Sides(a, b, conn_a, conn_b, ch_a, ch_b, source, dest)

    async def proxy(self) -> FaultProxy:
        """A started FaultProxy to the broker, stopped at cleanup."""
        proxy = FaultProxy(reactor, self.broker_host, self.broker_port)
        await proxy.start()
        self.addCleanup(proxy.stop)
        return proxy

    # -- queues and messages --------------------------------------------------------------

    @staticmethod
    async def count(conn: AMQPProtocol, queue: str) -> int:
        """Messages ready in ``queue`` (a passive declare on a channel of its own)."""
        channel = await conn.channel()
        frame: Any = await channel.queue_declare(queue, passive=True)
        await channel.close()
        count: int = frame.method.message_count
        return count

    async def count_until(self, conn: AMQPProtocol, queue: str, n: int, what: str) -> None:
        """Wait until ``queue`` holds ``n`` ready messages."""
        seen: list[int] = []

        async def check() -> bool:
            seen.append(await self.count(conn, queue))
            return seen[-1] == n

        await until(check, lambda: f"{what} ({n} messages in {queue}, last seen {seen[-1:]})")

    @staticmethod
    async def publish(
        channel: Channel,
        routing_key: str,
        messages: Sequence[tuple[bytes, spec.BasicProperties | None]],
        exchange: str = "",
    ) -> None:
        """Publish ``messages`` on ``channel`` (in confirm mode); wait for the confirms."""
        confirms = [
            channel.basic_publish(exchange, routing_key, body, properties)
            for body, properties in messages
        ]
        for d in confirms:
            await wait_for(d, WAIT)

    async def collector(
        self, conn: AMQPProtocol, queue: str, then: Callable[[], object] | None = None
    ) -> Counter[str]:
        """Consume ``queue`` (auto-ack) on ``conn``: a Counter of the bodies received
        (decoded), filled as they come (``then()`` is called after each one)."""
        received: Counter[str] = Counter()
        channel = await conn.channel()

        def on_message(_: Any, method: Any, properties: Any, body: bytes) -> None:
            received[body.decode()] += 1
            if then is not None:
                then()

        await channel.basic_consume(queue, on_message, auto_ack=True)
        return received

    async def queue_totals(self, vhost: str, queue: str) -> tuple[int, int]:
        """``(ready, unacknowledged)`` messages of ``queue``, as the broker lists them."""
        out = await rabbitmqctl(
            "list_queues",
            "-p",
            vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "--no-table-headers",
        )
        for line in out.splitlines():
            fields = line.split("\t")
            if fields[0] == queue:
                return int(fields[1]), int(fields[2])
        raise AssertionError(f"rabbitmqctl list_queues -p {vhost} does not list {queue}")

    async def broker_connection_pid(self, connection_name: str) -> str:
        """The broker's pid of the (one) connection whose client properties name
        ``connection_name`` (waiting for it to be listed)."""

        async def listed() -> list[str]:
            out = await rabbitmqctl(
                "list_connections", "pid", "client_properties", "--no-table-headers"
            )
            return [line.split("\t")[0] for line in out.splitlines() if connection_name in line]

        pids: list[str] = await until(listed, f"a broker connection named {connection_name!r}")
        self.assertEqual(len(pids), 1, f"connections named {connection_name!r}: {pids}")
        return pids[0]

    # -- relay processes ------------------------------------------------------------------

    @staticmethod
    def link_args(source_url: str, source_queue: str, dest_url: str, *extra: str) -> list[str]:
        """The command-line options of one link."""
        return ["--source", source_url, "--source-queue", source_queue, "--dest", dest_url, *extra]

    def sides_args(self, sides: Sides, *extra: str) -> list[str]:
        """A link from ``sides.source`` to ``sides.dest`` (default exchange), direct."""
        return self.link_args(
            self.url(sides.a),
            sides.source,
            self.url(sides.b),
            "--dest-routing-key",
            sides.dest,
            *extra,
        )

    async def relay(self, *args: str, attempts: int = 3) -> RelayProcess:
        """Start ``twistd -n amqp-relay ARGS --http tcp:PORT`` (a free port), killed at
        cleanup; wait until ``/healthz`` answers 200.  (Should another process take
        the port first, twistd exits with "Address already in use": try another.)"""
        for attempt in range(attempts):
            port = free_port()
            endpoint = f"tcp:{port}:interface=127.0.0.1"
            process = self.spawn(
                ["-n", "--pidfile=", "amqp-relay", *args, "--http", endpoint], port
            )
            await self.answering(process)
            if not process.ended:
                break
            if b"Address already in use" not in process.output or attempt == attempts - 1:
                raise AssertionError(f"the relay did not start: {process.describe()}")
        await self.healthy(process)
        return process

    @staticmethod
    async def answering(process: RelayProcess) -> None:
        """Wait until ``process`` answers HTTP requests, or has ended."""

        async def answers() -> bool:
            if process.ended:
                return True
            try:
                await process.get("/healthz")
            except ConnectError:
                return False
            return True

        await until(answers, lambda: f"the HTTP API of {process.describe()}")

    async def healthy(self, process: RelayProcess, timeout: float = WAIT) -> dict[str, Any]:
        """Wait until ``/healthz`` answers 200; return its body."""
        last: list[Any] = []

        async def ok() -> dict[str, Any] | None:
            if process.ended:
                raise AssertionError(f"the relay ended: {process.describe()}")
            code, body = await process.health()
            last[:] = [code, body]
            return body if code == 200 else None

        result: dict[str, Any] = await until(
            ok,
            lambda: f"/healthz to answer 200 (last: {last}) from {process.describe()}",
            timeout,
        )
        return result

    def spawn(self, args: Sequence[str], http_port: int | None = None) -> RelayProcess:
        """Start ``twistd ARGS``; it is killed (if need be) and reaped at cleanup."""
        process = RelayProcess(args, self.workdir, http_port)
        process.start()
        self.addCleanup(lambda: ensureDeferred(process.kill()))
        return process

    async def run_to_exit(self, *args: str, timeout: float = WAIT) -> RelayProcess:
        """Run ``twistd ARGS`` (no --http added) to its end; return the process."""
        process = self.spawn(args)
        await process.wait_exit(timeout)
        return process


# ---------------------------------------------------------------------------------------
# 20,000 messages through faults and a restart
# ---------------------------------------------------------------------------------------


class Feeder:
    """Publishes ``ids`` (as bodies and message ids, persistent) to ``queue`` in
    confirmed batches, up to :attr:`limit`, and runs the test's faults at chosen points
    of the stream (:meth:`at`, which raises the limit).

    The relay cannot run ahead of the test, however fast it is: it can only relay what
    the feeder has sent, and the feeder stops at the limit until the test asks for
    the next fault.
    """

    BATCH = 1_000

    def __init__(self, channel: Channel, queue: str, ids: Sequence[str]) -> None:
        self.channel = channel
        self.queue = queue
        self.ids = ids
        #: Distinct ids received at the destination (the test's collector fills it).
        self.received: Counter[str] = Counter()
        #: Ids below this index may be sent.
        self.limit = 0
        #: Ids sent to the broker (the last batch may not be confirmed yet).
        self.sent = 0
        self._stopping = False
        self._done: Deferred[None] | None = None
        self._trigger: tuple[int, int, Callable[[], object], Deferred[str]] | None = None

    def start(self) -> None:
        self._done = ensureDeferred(self._feed())

    async def _feed(self) -> None:
        while self.sent < len(self.ids) and not self._stopping:
            end = min(self.limit, len(self.ids), self.sent + self.BATCH)
            if end <= self.sent:
                await deferLater(reactor, POLL, lambda: None)
                continue
            confirms = [
                self.channel.basic_publish(
                    "",
                    self.queue,
                    ident.encode(),
                    spec.BasicProperties(message_id=ident, delivery_mode=2),
                )
                for ident in self.ids[self.sent : end]
            ]
            self.sent = end
            self.check()
            for d in confirms:
                await wait_for(d, WAIT)

    def at(self, count: int, gap: int, action: Callable[[], object]) -> Deferred[str]:
        """Run ``action()`` once, as soon as ``count`` distinct ids have arrived while
        at least ``gap`` ids sent have not (the relay is mid-stream).  The Deferred
        fires with a description of that moment."""
        assert self._trigger is None and self.limit < count and gap <= self.BATCH
        d: Deferred[str] = Deferred()
        self._trigger = (count, gap, action, d)
        self.limit = count + 3 * self.BATCH
        self.check()
        return d

    def check(self) -> None:
        """Called at each delivery and each batch sent: run the fault if it is due.

        It is due at the latest just after the next batch is sent (the gap is then a
        batch at least) or when ``count`` is reached after the last one (the gap is
        then ``limit - count``)."""
        trigger = self._trigger
        received = len(self.received)
        if trigger is None or received < trigger[0] or self.sent - received < trigger[1]:
            return
        self._trigger = None
        _, _, action, d = trigger
        action()
        d.callback(f"at {received} ids received, {self.sent - received} more sent")

    def stop(self) -> Deferred[None]:
        """Stop sending; the Deferred fires when the feeder is done (or fails as it
        did: a publishing problem fails the test)."""
        self._stopping = True
        done, self._done = self._done, None
        return succeed(None) if done is None else done


class FaultTests(RelayTestCase):
    """At least once, whatever happens to the connections and to the process."""

    timeout = 240

    @async_test
    async def test_every_message_arrives_through_faults_and_a_restart(self) -> None:
        """20,000 messages with unique ids go from vhost A to vhost B, the relay's
        connections passing through FaultProxies, while: the source connection is
        reset; the destination connection is reset; the broker closes both
        (``rabbitmqctl close_connection``, the relay throttled meanwhile); both are
        reset at once; the relay gets SIGTERM, exits in order, and is started again.
        Each fault strikes when a given number of ids has arrived and at least 1,000
        more are on their way.  Every id arrives at least once (duplicates are allowed
        and counted), and in the end the source queue holds nothing, ready or
        unacknowledged: no message was acknowledged at the source without reaching the
        destination."""
        total = 20_000
        sides = await self.sides()
        ids = [f"m-{i:05d}" for i in range(total)]
        feeder = Feeder(sides.ch_a, sides.source, ids)
        received = feeder.received = await self.collector(sides.conn_b, sides.dest, feeder.check)
        self.addCleanup(feeder.stop)
        feeder.start()

        src_proxy, dst_proxy = await self.proxy(), await self.proxy()
        src_name, dst_name = f"{self.name}-relay-source", f"{self.name}-relay-dest"
        args = self.link_args(
            self.url(sides.a, src_proxy.port, src_name),
            sides.source,
            self.url(sides.b, dst_proxy.port, dst_name),
            "--dest-routing-key",
            sides.dest,
            "--prefetch",
            "500",
            "--shutdown-timeout",
            "20",
        )
        relay = await self.relay(*args)
        faults: list[str] = []

        def progress(log: bool = True) -> str:
            text = (
                f"{len(received)} of {total} ids received ({feeder.sent} sent); faults: {faults}"
            )
            return f"{text}; {relay.describe()}" if log else text

        async def fault(count: int, name: str, action: Callable[[], object]) -> None:
            """Run ``action`` when ``count`` ids have arrived and 1,000 more are on their
            way (it runs in the consumer's callback: nothing arrives in between)."""
            fired = feeder.at(count, 1_000, action)
            await until(lambda: fired.called, lambda: f"{count} ids: {progress()}")
            faults.append(f"{name} {fired.result}")

        async def recovered(source_reconnects: int, dest_reconnects: int) -> None:
            """Wait until /metrics counts these reconnections and /healthz says 200."""
            await relay.metrics_until(
                lambda s: (
                    metric(s, "reconnects_total", side="source") >= source_reconnects
                    and metric(s, "reconnects_total", side="dest") >= dest_reconnects
                ),
                lambda: (
                    f"reconnections {source_reconnects}/{dest_reconnects} (a link restart "
                    f"instead shows in restarts_total): {progress(log=False)}"
                ),
            )
            await self.healthy(relay)

        resets: list[Deferred[None]] = []

        def reset(*proxies: FaultProxy) -> Callable[[], None]:
            return lambda: resets.extend(proxy.reset_all() for proxy in proxies)

        async def reset_done() -> None:
            await gather(*resets)
            resets.clear()

        await fault(1_000, "source reset", reset(src_proxy))
        await reset_done()
        await recovered(1, 0)

        await fault(4_500, "destination reset", reset(dst_proxy))
        await reset_done()
        await recovered(1, 1)

        # The broker closes both connections.  rabbitmqctl takes a while: the proxies
        # throttle the relay meanwhile, so that the closes find it mid-stream, with its
        # prefetch window full of deliveries waiting for their confirms.
        pids = [await self.broker_connection_pid(n) for n in (src_name, dst_name)]

        def throttle() -> None:
            for proxy in (src_proxy, dst_proxy):
                proxy.set_mode("throttle", rate=20_000)

        await fault(8_000, "rabbitmqctl close_connection on both sides", throttle)
        await gather(
            *(
                ensureDeferred(rabbitmqctl("close_connection", pid, "txamqp091 relay test"))
                for pid in pids
            )
        )
        for proxy in (src_proxy, dst_proxy):
            proxy.set_mode("forward")
        await recovered(2, 2)

        await fault(11_500, "both sides reset at once", reset(src_proxy, dst_proxy))
        await reset_done()
        await recovered(3, 3)

        await fault(15_000, "SIGTERM", lambda: relay.signal("TERM"))
        await relay.terminate()
        ready, unacked = await self.queue_totals(sides.a, sides.source)
        self.assertEqual(unacked, 0, "the stopped relay left deliveries unacknowledged")
        faults.append(f"{ready} messages waited at the source after the exit")
        relay = await self.relay(*args)

        feeder.limit = total
        await until(
            lambda: len(received) >= total,
            lambda: f"every id at the destination: {progress()}",
            timeout=WAIT * 2,
        )
        await feeder.stop()
        # Every id arrived; the source must drain completely (duplicates of messages
        # whose acks a fault cut off may still be on their way).
        totals: list[tuple[int, int]] = []

        async def drained() -> bool:
            totals.append(await self.queue_totals(sides.a, sides.source))
            return totals[-1] == (0, 0)

        await until(drained, lambda: f"an empty source queue ({totals[-1:]}): {progress()}")
        await relay.metrics_until(lambda s: metric(s, "in_flight") == 0, "nothing in flight")
        await relay.terminate()
        self.assertEqual(await self.queue_totals(sides.a, sides.source), (0, 0))
        self.assertEqual(await self.count(sides.conn_a, sides.source), 0)

        missing = sorted(set(ids) - set(received))
        unknown = sorted(set(received) - set(ids))
        duplicates = sum(received.values()) - len(received)
        summary = (
            f"{len(received)} distinct ids of {total}, {duplicates} duplicate deliveries "
            f"({sum(1 for n in received.values() if n > 1)} ids seen more than once); "
            f"faults: {faults}"
        )
        self.assertEqual(missing, [], summary)
        self.assertEqual(unknown, [], summary)
        _log.info("relay fault test: {summary}", summary=summary)


# ---------------------------------------------------------------------------------------
# Counters
# ---------------------------------------------------------------------------------------


class MetricsTests(RelayTestCase):
    """``/metrics`` tells what happened."""

    @async_test
    async def test_counters_match_after_clean_run(self) -> None:
        """500 messages relayed without a fault: consumed == published == confirmed ==
        acked == 500, nacked == returned == 0, nothing in flight, the link running,
        no reconnection, and each message arrived exactly once."""
        total = 500
        sides = await self.sides()
        await self.publish(sides.ch_a, sides.source, [(b"%d" % i, None) for i in range(total)])
        relay = await self.relay(*self.sides_args(sides))
        received = await self.collector(sides.conn_b, sides.dest)
        await until(
            lambda: len(received) == total,
            lambda: f"{total} messages at the destination (got {len(received)})",
        )
        samples = await relay.metrics_until(
            lambda s: metric(s, "acked_total") >= total, f"{total} acks"
        )
        counts = {
            name: metric(samples, f"{name}_total")
            for name in ("consumed", "published", "confirmed", "acked", "nacked", "returned")
        }
        self.assertEqual(
            counts,
            {
                "consumed": total,
                "published": total,
                "confirmed": total,
                "acked": total,
                "nacked": 0,
                "returned": 0,
            },
        )
        self.assertEqual(metric(samples, "in_flight"), 0)
        self.assertEqual(metric(samples, "link_state", state="running"), 1)
        self.assertEqual(metric(samples, "link_state", state="paused"), 0)
        self.assertEqual(metric(samples, "reconnects_total", side="source"), 0)
        self.assertEqual(metric(samples, "reconnects_total", side="dest"), 0)
        self.assertEqual(await self.queue_totals(sides.a, sides.source), (0, 0))
        self.assertEqual(sum(received.values()), total, "duplicates without a fault")
        await relay.terminate()


# ---------------------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------------------


class HealthTests(RelayTestCase):
    """``/healthz`` answers 503 while a side is down, and 200 again once it is back."""

    async def unhealthy(self, relay: RelayProcess, state: str) -> dict[str, Any]:
        """Wait until ``/healthz`` answers 503 with the link in ``state``."""
        seen: list[Any] = []

        async def down() -> dict[str, Any] | None:
            code, body = await relay.health()
            seen.append((code, body["links"]["default"]["state"]))
            return body if seen[-1] == (503, state) else None

        result: dict[str, Any] = await until(
            down, lambda: f"503 and {state!r}; seen {seen[-5:]}; {relay.describe()}"
        )
        return result

    @async_test
    async def test_503_while_destination_unreachable(self) -> None:
        """The destination's proxy resets the relay's connection and refuses new ones
        (its target is a closed port): /healthz answers 503, healthy false, the link
        ``dest-down``, and the link stops consuming (what is published meanwhile waits
        at the source).  Once the proxy reaches the broker again, /healthz answers 200
        and the waiting messages arrive."""
        sides = await self.sides()
        proxy = await self.proxy()
        relay = await self.relay(
            *self.link_args(
                self.url(sides.a),
                sides.source,
                self.url(sides.b, proxy.port),
                "--dest-routing-key",
                sides.dest,
            )
        )
        proxy.target_port = free_port()
        await proxy.reset_all()
        body = await self.unhealthy(relay, "dest-down")
        self.assertIs(body["healthy"], False)
        await self.publish(sides.ch_a, sides.source, [(b"%d" % i, None) for i in range(10)])
        await self.count_until(
            sides.conn_a, sides.source, 10, "messages waiting while the destination is down"
        )
        self.assertEqual(await self.count(sides.conn_b, sides.dest), 0)
        proxy.target_port = self.broker_port
        body = await self.healthy(relay)
        self.assertEqual(body["links"]["default"]["state"], "running")
        self.assertIs(body["healthy"], True)
        await self.count_until(sides.conn_b, sides.dest, 10, "the destination came back")
        await relay.terminate()

    @async_test
    async def test_503_while_source_refused(self) -> None:
        """The user loses its permissions on the source's virtual host and the broker
        closes the relay's source connection (``rabbitmqctl``): reconnecting is refused,
        /healthz answers 503 with the link ``source-down``; once the permissions are
        back, 200, and messages flow again."""
        sides = await self.sides()
        name = f"{self.name}-relay-source"
        relay = await self.relay(
            *self.link_args(
                self.url(sides.a, connection_name=name),
                sides.source,
                self.url(sides.b),
                "--dest-routing-key",
                sides.dest,
            )
        )
        restore = ("set_permissions", "-p", sides.a, self.user, ".*", ".*", ".*")
        await rabbitmqctl("clear_permissions", "-p", sides.a, self.user)
        self.addCleanup(lambda: ensureDeferred(rabbitmqctl(*restore, check=False)))
        pid = await self.broker_connection_pid(name)
        await rabbitmqctl("close_connection", pid, "txamqp091 relay test: source down")
        body = await self.unhealthy(relay, "source-down")
        self.assertIs(body["healthy"], False)
        await rabbitmqctl(*restore)
        body = await self.healthy(relay)
        self.assertEqual(body["links"]["default"]["state"], "running")
        await self.publish(sides.ch_a, sides.source, [(b"%d" % i, None) for i in range(10)])
        await self.count_until(sides.conn_b, sides.dest, 10, "the source came back")
        samples = await relay.metrics()
        self.assertGreaterEqual(metric(samples, "reconnects_total", side="source"), 1)
        await relay.terminate()


# ---------------------------------------------------------------------------------------
# Link control
# ---------------------------------------------------------------------------------------


class ControlTests(RelayTestCase):
    """``POST /links/NAME/ACTION``."""

    @async_test
    async def test_pause_holds_messages_and_resume_moves_them(self) -> None:
        """POST pause: 200, the link ``paused`` (and /healthz 503); messages published
        then stay at the source for as long as the test watches (ten looks across a
        second of reactor time); POST resume: 200, ``running``, and they all arrive.
        Unknown links and actions are 404."""
        count = 100
        sides = await self.sides()
        relay = await self.relay(*self.sides_args(sides))
        code, body = await relay.post("/links/default/pause")
        self.assertEqual((code, body), (200, {"link": "default", "state": "paused"}))
        code, health = await relay.health()
        self.assertEqual((code, health["links"]["default"]["state"]), (503, "paused"))

        await self.publish(sides.ch_a, sides.source, [(b"%d" % i, None) for i in range(count)])
        looks = []
        for _ in range(10):  # an absence check: a bounded observation window
            looks.append(
                (
                    await self.count(sides.conn_a, sides.source),
                    await self.count(sides.conn_b, sides.dest),
                )
            )
            await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(looks, [(count, 0)] * 10, "messages moved while paused")
        samples = await relay.metrics()
        self.assertEqual(metric(samples, "consumed_total"), 0)
        self.assertEqual(metric(samples, "link_state", state="paused"), 1)

        code, body = await relay.post("/links/default/resume")
        self.assertEqual((code, body), (200, {"link": "default", "state": "running"}))
        await self.count_until(sides.conn_b, sides.dest, count, "resumed")
        self.assertEqual(await self.count(sides.conn_a, sides.source), 0)
        await self.healthy(relay)

        for path in ("/links/nosuchlink/pause", "/links/default/explode", "/links/default"):
            code, body = await relay.post(path)
            self.assertEqual(code, 404, f"POST {path}: {body}")
        await relay.terminate()

    @async_test
    async def test_restart_reconnects_and_keeps_relaying(self) -> None:
        """POST restart: 202 at once (the restart goes on in the background), then
        healthy again; the restart is counted, and messages published afterwards
        arrive."""
        sides = await self.sides()
        relay = await self.relay(*self.sides_args(sides))
        code, body = await relay.post("/links/default/restart")
        self.assertEqual((code, body["link"]), (202, "default"), body)
        await self.healthy(relay)
        self.assertEqual(metric(await relay.metrics(), "restarts_total"), 1)
        await self.publish(sides.ch_a, sides.source, [(b"%d" % i, None) for i in range(10)])
        await self.count_until(sides.conn_b, sides.dest, 10, "restarted")
        await relay.terminate()


# ---------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------


class CommandLineTests(RelayTestCase):
    """Usage errors and help, without a broker connection."""

    @async_test
    async def test_bad_options_exit_with_a_usage_error(self) -> None:
        """Each bad command line makes twistd exit non-zero with the plugin's usage
        and a message naming the problem, before anything starts: the URLs point at a
        port where nothing listens, so a relay that started would keep retrying rather
        than exit, and its log would say ``amqp-relay starting``."""
        nowhere = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
        bad_toml = Path(self.workdir, "bad.toml")
        bad_toml.write_text('[links.one]\nsource = "amqp://x\n')
        unknown_key = Path(self.workdir, "unknown.toml")
        unknown_key.write_text(
            "[links.one]\n"
            f"source = {toml_string(nowhere)}\n"
            'source-queue = "q"\n'
            f"dest = {toml_string(nowhere)}\n"
            "speed = 3\n"
        )
        good = ["--source", nowhere, "--source-queue", "q", "--dest", nowhere]
        cases: list[tuple[list[str], str]] = [
            (
                ["--source", "notaurl", "--source-queue", "q", "--dest", nowhere],
                "source 'notaurl' is not an amqp:// or amqps:// URL",
            ),
            (["--source", nowhere, "--dest", nowhere], "source-queue is required"),
            ([*good, "--ack-mode", "sometimes"], "ack-mode must be one of"),
            ([*good, "--http", "bogus:1"], "http"),
            ([*good, "--on-reject", "shred"], "on-reject must be one of"),
            ([*good, "--prefetch", "0"], "prefetch must be a number from 1 to 65535"),
            ([*good, "--prefetch", "lots"], "prefetch must be a number"),
            ([*good, "--shutdown-timeout", "-1"], "shutdown-timeout must be a number"),
            ([*good, "--frobnicate"], "option --frobnicate not recognized"),
            (["--config", str(bad_toml)], "is not valid TOML"),
            (["--config", str(unknown_key)], "unknown setting(s) speed"),
            (["--config", str(Path(self.workdir, "missing.toml"))], "cannot read"),
            ([], "no link"),
        ]
        processes = await gather(
            *(
                ensureDeferred(self.run_to_exit("-n", "--pidfile=", "amqp-relay", *args))
                for args, _ in cases
            )
        )
        for (args, expected), process in zip(cases, processes, strict=True):
            text = process.output.decode(errors="replace")
            where = f"twistd amqp-relay {' '.join(args)}: {process.describe()}"
            self.assertNotEqual(process.exit_code, 0, where)
            self.assertIsNone(process.exit_signal, where)
            self.assertIn(expected, text, where)
            # twistd prints the plugin's usage (its options), then the error.
            self.assertIn("Usage: twistd", text, where)
            self.assertIn("--source-queue=", text, where)
            self.assertNotIn("amqp-relay starting", text, where)
            self.assertNotIn("Traceback", text, where)

    @async_test
    async def test_help_lists_the_plugin_and_documents_every_option(self) -> None:
        """``twistd --help`` lists amqp-relay; ``twistd -n amqp-relay --help`` documents
        every option, each with a description; both exit 0."""
        top, relay = await gather(
            ensureDeferred(self.run_to_exit("--help")),
            ensureDeferred(self.run_to_exit("-n", "amqp-relay", "--help")),
        )
        self.assertEqual((top.exit_code, top.exit_signal), (0, None), top.describe())
        self.assertRegex(top.output.decode(), r"\n\s+amqp-relay\s+An at-least-once AMQP relay")
        text = relay.output.decode()
        self.assertEqual((relay.exit_code, relay.exit_signal), (0, None), relay.describe())
        self.assertIn("Usage: twistd [options] amqp-relay [options]", text)
        documented = set(re.findall(r"^\s+(--[a-z-]+)", text, re.MULTILINE))
        self.assertEqual(sorted(set(OPTIONS) - documented), [], f"not in --help:\n{text}")
        for option in OPTIONS:
            line = re.search(rf"^\s+{re.escape(option)}=?\s+(\S.*)$", text, re.MULTILINE)
            self.assertIsNotNone(line, f"{option} has no description:\n{text}")


# ---------------------------------------------------------------------------------------
# A TOML file of links
# ---------------------------------------------------------------------------------------


class ConfigTests(RelayTestCase):
    """``--config FILE``: named links."""

    @async_test
    async def test_two_links_from_a_toml_file(self) -> None:
        """A TOML file with two links (two source queues to two destinations, one
        through a topic exchange): each relays its own messages, /healthz lists both
        (200, both running), /metrics counts each link apart."""
        sides = await self.sides()
        ch_a, ch_b = sides.ch_a, sides.ch_b
        names = {link: f"{self.name}-{link}" for link in ("alpha", "beta")}
        for queue in names.values():
            await ch_a.queue_declare(queue + "-source", durable=True)
            await ch_b.queue_declare(queue + "-dest", durable=True)
        exchange = f"{self.name}-topic"
        await ch_b.exchange_declare(exchange, "topic", durable=True)
        await ch_b.queue_bind(names["beta"] + "-dest", exchange, "beta.#")
        config = Path(self.workdir, "relay.toml")
        config.write_text(
            "shutdown-timeout = 5\n\n"
            "[links.alpha]\n"
            f"source = {toml_string(self.url(sides.a))}\n"
            f"source-queue = {toml_string(names['alpha'] + '-source')}\n"
            f"dest = [{toml_string(self.url(sides.b))}]\n"
            f"dest-routing-key = {toml_string(names['alpha'] + '-dest')}\n"
            "prefetch = 50\n\n"
            "[links.beta]\n"
            f"source = [{toml_string(self.url(sides.a))}]\n"
            f"source-queue = {toml_string(names['beta'] + '-source')}\n"
            f"dest = {toml_string(self.url(sides.b))}\n"
            f"dest-exchange = {toml_string(exchange)}\n"
            'dest-routing-key = "beta.relayed"\n'
            'ack-mode = "on-confirm"\n'
        )
        relay = await self.relay("--config", str(config))
        _, health = await relay.health()
        self.assertEqual(sorted(health["links"]), ["alpha", "beta"])
        self.assertEqual({link["state"] for link in health["links"].values()}, {"running"})
        self.assertEqual(health["links"]["beta"]["dest_exchange"], exchange)

        per_link = {"alpha": 30, "beta": 20}
        for link, n in per_link.items():
            await self.publish(
                ch_a, names[link] + "-source", [(f"{link}-{i}".encode(), None) for i in range(n)]
            )
        received = {
            link: await self.collector(sides.conn_b, names[link] + "-dest") for link in names
        }
        await until(
            lambda: all(len(received[link]) == n for link, n in per_link.items()),
            lambda: f"both links' messages: {received}; {relay.describe()}",
        )
        for link, n in per_link.items():
            self.assertEqual(set(received[link]), {f"{link}-{i}" for i in range(n)})
        samples = await relay.metrics_until(
            lambda s: all(metric(s, "acked_total", link) == n for link, n in per_link.items()),
            "acks per link",
        )
        for link, n in per_link.items():
            self.assertEqual(metric(samples, "consumed_total", link), n)
            self.assertEqual(metric(samples, "link_state", link, state="running"), 1)
        await relay.terminate()


# ---------------------------------------------------------------------------------------
# Properties and headers
# ---------------------------------------------------------------------------------------


def rich_properties(
    message_id: str, user_id: str, headers: dict[str, Any] | None = None
) -> spec.BasicProperties:
    """Every basic property set, and headers of every field type, nested."""
    table: dict[str, Any] = {
        "string": "text, with ünïcödé",
        "int": 42,
        "negative": -(2**40),
        "bool": True,
        "float": 1.5,
        "decimal": Decimal("3.14"),
        "datetime": datetime(2024, 5, 6, 7, 8, 9),
        "bytes": b"\x00\x01\xfe\xff",
        "void": None,
        "list": [1, "two", 3.0, [4, [5]], {"six": 6}],
        "nested": {"level": 1, "deeper": {"level": 2, "items": ["a", {"b": False}]}},
    }
    table.update(headers or {})
    return spec.BasicProperties(
        content_type="application/json",
        content_encoding="identity",
        headers=table,
        delivery_mode=2,
        priority=7,
        correlation_id=f"corr-{message_id}",
        reply_to="reply-queue",
        expiration="600000",
        message_id=message_id,
        timestamp=1_700_000_000,
        type="relay.test",
        user_id=user_id,  # the broker checks it names the publishing user
        app_id="txamqp091-tests",
    )


class PropertiesTests(RelayTestCase):
    """What the destination gets is what the source got."""

    @async_test
    async def test_properties_intact_and_forward_header_appended(self) -> None:
        """Two links from one TOML file.  ``plain`` relays through the default exchange
        with the message's own routing key: the destination gets the body and the
        properties (content type and encoding, headers of every field type, nested,
        delivery mode, priority, correlation id, reply-to, expiration, message id,
        timestamp, type, user id, app id) exactly as published.  ``forwarding``
        (``add-forward-headers``, through a direct exchange) changes nothing but
        ``x-relayed-by``: a list to which it appends one entry naming the link, the
        source queue and the exchange (after any earlier hop's entry)."""
        sides = await self.sides()
        ch_a, ch_b = sides.ch_a, sides.ch_b
        plain, forwarding = f"{self.name}-plain", f"{self.name}-forwarding"
        await ch_a.queue_declare(plain, durable=True)
        await ch_b.queue_declare(plain, durable=True)  # the same name: the message's key
        await ch_a.queue_declare(forwarding, durable=True)
        await ch_b.queue_declare(forwarding + "-dest", durable=True)
        exchange = f"{self.name}-direct"
        await ch_b.exchange_declare(exchange, "direct")
        await ch_b.queue_bind(forwarding + "-dest", exchange, "forwarded")
        config = Path(self.workdir, "relay.toml")
        config.write_text(
            "[links.plain]\n"
            f"source = {toml_string(self.url(sides.a))}\n"
            f"source-queue = {toml_string(plain)}\n"
            f"dest = {toml_string(self.url(sides.b))}\n\n"
            "[links.forwarding]\n"
            f"source = {toml_string(self.url(sides.a))}\n"
            f"source-queue = {toml_string(forwarding)}\n"
            f"dest = {toml_string(self.url(sides.b))}\n"
            f"dest-exchange = {toml_string(exchange)}\n"
            'dest-routing-key = "forwarded"\n'
            "add-forward-headers = true\n"
        )
        earlier = {"link": "upstream", "source-queue": "elsewhere", "relayed-at": 1}
        sent = {
            "plain": rich_properties("plain-1", self.user),
            "fresh": rich_properties("fresh-1", self.user),
            "hopped": rich_properties("hopped-1", self.user, {"x-relayed-by": [earlier]}),
        }
        await self.publish(ch_a, plain, [(b"body of plain", sent["plain"])])
        await self.publish(
            ch_a,
            forwarding,
            [(b"body of fresh", sent["fresh"]), (b"body of hopped", sent["hopped"])],
        )
        relay = await self.relay("--config", str(config))
        got: dict[str, tuple[Any, spec.BasicProperties, bytes]] = {}

        async def fetch(queue: str) -> None:
            channel = await sides.conn_b.channel()

            def on_message(_: Any, method: Any, properties: Any, body: bytes) -> None:
                got[properties.message_id.split("-")[0]] = (method, properties, body)

            await channel.basic_consume(queue, on_message, auto_ack=True)

        await fetch(plain)
        await fetch(forwarding + "-dest")
        await until(lambda: len(got) == 3, lambda: f"3 messages: {got}; {relay.describe()}")

        method, properties, body = got["plain"]
        self.assertEqual(body, b"body of plain")
        self.assertEqual((method.exchange, method.routing_key), ("", plain))
        self.assertEqual(properties, sent["plain"])

        for key, hops_before in (("fresh", []), ("hopped", [earlier])):
            method, properties, body = got[key]
            self.assertEqual(body, b"body of " + key.encode())
            self.assertEqual((method.exchange, method.routing_key), (exchange, "forwarded"))
            headers = dict(properties.headers or {})
            hops = headers.pop("x-relayed-by")
            expected_headers = dict(sent[key].headers or {})
            expected_headers.pop("x-relayed-by", None)
            self.assertEqual(headers, expected_headers)
            self.assertIsInstance(hops, list)
            self.assertEqual(len(hops), len(hops_before) + 1, hops)
            self.assertEqual(hops[:-1], hops_before)
            hop = dict(hops[-1])
            self.assertIsInstance(hop.pop("relayed-at"), int)
            self.assertEqual(
                hop,
                {"link": "forwarding", "source-queue": forwarding, "dest-exchange": exchange},
            )
            others, expected = dict(iter(properties)), dict(iter(sent[key]))
            del others["headers"], expected["headers"]
            self.assertEqual(others, expected)
        await relay.terminate()


# ---------------------------------------------------------------------------------------
# Rejections at the destination
# ---------------------------------------------------------------------------------------


class RejectTests(RelayTestCase):
    """``--on-reject``: what becomes of a message the destination returns or nacks."""

    async def rejecting(self, *, dead_letter: bool) -> tuple[Sides, str, str, str]:
        """The usual sides, but the source queue dead-letters (if ``dead_letter``) to a
        fanout exchange bound to a queue; at the destination an exchange bound to
        nothing, and a queue that refuses every publish (max-length 0,
        reject-publish), which is the sides' ``dest``.  Returns the sides, the
        dead-letter queue, the exchange and the refusing queue."""
        a, b = await self.vhost("a"), await self.vhost("b")
        conn_a, conn_b = await self.connect(a), await self.connect(b)
        ch_a, ch_b = await conn_a.channel(), await conn_b.channel()
        source, dlq = f"{self.name}-source", f"{self.name}-dead"
        arguments: dict[str, Any] = {}
        if dead_letter:
            dlx = f"{self.name}-dlx"
            await ch_a.exchange_declare(dlx, "fanout")
            await ch_a.queue_declare(dlq, durable=True)
            await ch_a.queue_bind(dlq, dlx, "")
            arguments["x-dead-letter-exchange"] = dlx
        await ch_a.queue_declare(source, durable=True, arguments=arguments)
        nowhere, full = f"{self.name}-nowhere", f"{self.name}-full"
        await ch_b.exchange_declare(nowhere, "direct")
        await ch_b.queue_declare(
            full, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
        )
        await ch_a.confirm_delivery()
        return Sides(a, b, conn_a, conn_b, ch_a, ch_b, source, full), dlq, nowhere, full

    @async_test
    async def test_unroutable_is_dead_lettered_not_acked(self) -> None:
        """``--dest-exchange`` bound to nothing and ``--on-reject dead-letter``: the
        destination returns each message; the relay counts it as returned, never acks
        it, and rejects it, so that the source queue dead-letters it (reason
        ``rejected``) into the dead-letter queue, with its body and id."""
        sides, dlq, nowhere, _ = await self.rejecting(dead_letter=True)
        n = 3
        await self.publish(
            sides.ch_a,
            sides.source,
            [(b"lost-%d" % i, spec.BasicProperties(message_id=f"lost-{i}")) for i in range(n)],
        )
        relay = await self.relay(
            *self.link_args(
                self.url(sides.a),
                sides.source,
                self.url(sides.b),
                "--dest-exchange",
                nowhere,
                "--on-reject",
                "dead-letter",
            )
        )
        samples = await relay.metrics_until(
            lambda s: metric(s, "dead_lettered_total") >= n, f"{n} messages dead-lettered"
        )
        self.assertEqual(metric(samples, "returned_total"), n)
        self.assertEqual(metric(samples, "nacked_total"), 0)
        self.assertEqual(metric(samples, "confirmed_total"), 0)
        self.assertEqual(metric(samples, "acked_total"), 0)
        self.assertEqual(metric(samples, "in_flight"), 0)
        await self.count_until(sides.conn_a, dlq, n, "dead-lettered")
        self.assertEqual(await self.queue_totals(sides.a, sides.source), (0, 0))
        channel = await sides.conn_a.channel()
        dead = []
        for _ in range(n):
            message = await channel.basic_get(dlq, auto_ack=True)
            assert message is not None
            dead.append(message)
        self.assertEqual(sorted(m.body for m in dead), [b"lost-%d" % i for i in range(n)])
        for message in dead:
            headers = message.properties.headers or {}
            death = headers["x-death"][0]
            self.assertEqual((death["reason"], death["queue"]), ("rejected", sides.source))
            self.assertEqual(message.properties.message_id, message.body.decode())
        await relay.terminate()

    @async_test
    async def test_nacked_is_dead_lettered_not_acked(self) -> None:
        """A destination queue that refuses publishes (``reject-publish``): the broker
        nacks each one; the relay counts it as nacked, never acks it, and it ends in
        the source's dead-letter queue."""
        sides, dlq, _, full = await self.rejecting(dead_letter=True)
        n = 3
        await self.publish(sides.ch_a, sides.source, [(b"%d" % i, None) for i in range(n)])
        relay = await self.relay(*self.sides_args(sides, "--on-reject", "dead-letter"))
        samples = await relay.metrics_until(
            lambda s: metric(s, "dead_lettered_total") >= n, f"{n} messages dead-lettered"
        )
        self.assertEqual(metric(samples, "nacked_total"), n)
        self.assertEqual(metric(samples, "returned_total"), 0)
        self.assertEqual(metric(samples, "acked_total"), 0)
        await self.count_until(sides.conn_a, dlq, n, "dead-lettered")
        self.assertEqual(await self.queue_totals(sides.a, sides.source), (0, 0))
        self.assertEqual(await self.count(sides.conn_b, full), 0)
        await relay.terminate()

    @async_test
    async def test_unroutable_is_requeued_until_paused(self) -> None:
        """``--on-reject requeue`` (the default): a returned message is given back to
        the source and delivered again (``redelivered``, ``requeued`` and ``returned``
        grow, nothing is acked); once the link is paused it waits in the source queue,
        intact."""
        sides, _, nowhere, _ = await self.rejecting(dead_letter=False)
        boomerang = spec.BasicProperties(message_id="boomerang")
        await self.publish(sides.ch_a, sides.source, [(b"boomerang", boomerang)])
        relay = await self.relay(
            *self.link_args(
                self.url(sides.a),
                sides.source,
                self.url(sides.b),
                "--dest-exchange",
                nowhere,
                "--on-reject",
                "requeue",
            )
        )
        samples = await relay.metrics_until(
            lambda s: metric(s, "redelivered_total") >= 3, "three redeliveries"
        )
        self.assertGreaterEqual(metric(samples, "requeued_total"), 3)
        self.assertGreaterEqual(metric(samples, "returned_total"), 3)
        self.assertEqual(metric(samples, "acked_total"), 0)
        self.assertEqual(metric(samples, "dead_lettered_total"), 0)
        self.assertEqual(metric(samples, "dropped_total"), 0)
        code, body = await relay.post("/links/default/pause")
        self.assertEqual((code, body["state"]), (200, "paused"))
        totals: list[tuple[int, int]] = []

        async def back() -> bool:
            totals.append(await self.queue_totals(sides.a, sides.source))
            return totals[-1] == (1, 0)

        await until(back, lambda: f"the message ready at the source again ({totals[-1:]})")
        samples = await relay.metrics()
        self.assertEqual(metric(samples, "in_flight"), 0)
        self.assertEqual(metric(samples, "acked_total"), 0)
        message = await (await sides.conn_a.channel()).basic_get(sides.source, auto_ack=True)
        assert message is not None
        self.assertEqual(
            (message.body, message.properties.message_id), (b"boomerang", "boomerang")
        )
        method: Any = message.method
        self.assertTrue(method.redelivered)
        await relay.terminate()


class ShutdownTests(RelayTestCase):
    """Stopping with work in flight."""

    @async_test
    async def test_sigterm_while_destination_silent(self) -> None:
        """The destination's link goes silent (the proxy drops every byte, the TCP
        connection stays up) while messages are in flight: on SIGTERM the relay waits
        up to ``--shutdown-timeout`` for their confirms, then exits in order without
        acknowledging them; they are all back at the source, and a new relay moves
        them.  (The close handshake with the silent destination ends only by the
        connection's own 30 s close timeout, which ``--shutdown-timeout`` does not
        bound: this test takes that long, and does not time it.)"""
        n = 50
        sides = await self.sides()
        proxy = await self.proxy()
        args = self.link_args(
            self.url(sides.a),
            sides.source,
            self.url(sides.b, proxy.port),
            "--dest-routing-key",
            sides.dest,
            "--shutdown-timeout",
            "2",
        )
        relay = await self.relay(*args)
        proxy.set_mode("blackhole")
        await self.publish(sides.ch_a, sides.source, [(b"%d" % i, None) for i in range(n)])
        await relay.metrics_until(lambda s: metric(s, "in_flight") == n, f"{n} in flight")
        await relay.terminate()
        self.assertEqual(await self.queue_totals(sides.a, sides.source), (n, 0))
        self.assertEqual(await self.count(sides.conn_b, sides.dest), 0)
        proxy.set_mode("forward")
        relay = await self.relay(*args)
        await self.count_until(sides.conn_b, sides.dest, n, "relayed after the restart")
        await relay.terminate()

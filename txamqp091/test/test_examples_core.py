"""Integration tests: the Twisted API examples in ``examples/`` run against RabbitMQ.

Each example runs as a subprocess of this interpreter, with a timeout, and must exit
with the expected status and print what it did. They fail (never skip) without a
broker. The TLS example also runs against the TLS node of
:mod:`txamqp091.test.tls_broker`.
"""

# trial's assertion methods carry no annotations.
# mypy: allow-untyped-calls

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import codec, spec
from txamqp091.parameters import URLParameters
from txamqp091.test.broker import amqp_url, ensure_broker
from txamqp091.test.tls_broker import tls_broker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

#: Seconds an example may run.
TIMEOUT = 60


def example_env() -> dict[str, str]:
    """The environment for an example: txamqp091 is imported from this source tree."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path)


def run_example(
    name: str, *args: str, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>`` with *args* and wait for it to finish."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env=example_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def unique(prefix: str) -> str:
    """A queue name no other test uses."""
    return f"txamqp091-test-{prefix}-{uuid.uuid4().hex[:8]}"


def delete_queue(url: str, queue: str) -> None:
    """Delete *queue* over a short blocking codec session (a test cleanup)."""
    parameters = URLParameters(url)
    with socket.create_connection((parameters.host, parameters.port), timeout=10) as sock:
        decoder = codec.FrameDecoder()
        pending: list[codec.Frame] = []

        def expect(kind: type[spec.Method]) -> spec.Method:
            while not pending:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the broker closed the connection")
                pending.extend(
                    f for f in decoder.feed(data) if not isinstance(f, codec.HeartbeatFrame)
                )
            frame = pending.pop(0)
            assert isinstance(frame, codec.MethodFrame), frame
            assert isinstance(frame.method, kind), frame.method
            return frame.method

        def send(channel: int, method: spec.Method) -> None:
            sock.sendall(codec.encode_method_frame(channel, method))

        sock.sendall(codec.PROTOCOL_HEADER)
        start = expect(spec.Connection.Start)
        mechanism, response = parameters.credentials.response_for(start)  # type: ignore[arg-type]
        assert mechanism is not None and response is not None
        send(0, spec.Connection.StartOk({}, mechanism, response, "en_US"))
        tune = expect(spec.Connection.Tune)
        send(0, spec.Connection.TuneOk(tune.channel_max, tune.frame_max, 0))  # type: ignore[attr-defined]
        send(0, spec.Connection.Open(virtual_host=parameters.virtual_host))
        expect(spec.Connection.OpenOk)
        send(1, spec.Channel.Open())
        expect(spec.Channel.OpenOk)
        send(1, spec.Queue.Delete(queue=queue))
        expect(spec.Queue.DeleteOk)
        send(0, spec.Connection.Close(200, "Normal shutdown", 0, 0))
        expect(spec.Connection.CloseOk)


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class ExampleTestCase(SynchronousTestCase):
    """Runs examples against the test broker."""

    def setUp(self) -> None:
        ensure_broker()
        self.url = amqp_url()

    def run_ok(self, name: str, *args: str) -> str:
        """Run an example that must succeed; return its output."""
        result = run_example(name, "--url", self.url, *args)
        self.assertEqual(result.returncode, 0, f"{result.stdout}\n{result.stderr}")
        self.assertIn("closed the connection", result.stdout)
        return result.stdout


class PublisherConsumerTests(ExampleTestCase):
    """twisted_publisher.py, twisted_consumer.py and async_consumer.py."""

    def test_publisher(self) -> None:
        """The publisher publishes --count messages, sees them queued, then cleans up."""
        out = self.run_ok("twisted_publisher.py", "--count", "250", "--batch", "50")
        self.assertIn("published 250 messages", out)
        self.assertIn("the queue holds 250 messages", out)
        self.assertIn("deleted 'txamqp091-example-", out)

    def test_twisted_consumer_self_test(self) -> None:
        """The inlineCallbacks consumer receives and acks the messages it published."""
        out = self.run_ok("twisted_consumer.py", "--self-test", "--count", "7")
        self.assertIn("published 7 test messages", out)
        for number in range(1, 8):
            self.assertIn(f"received 'message {number}'", out)
        self.assertIn("cancelled the consumer after 7 messages", out)
        self.assertIn("deleted 'txamqp091-example-", out)

    def test_async_consumer_self_test(self) -> None:
        """The async-for consumer receives and acks the messages it published."""
        out = self.run_ok("async_consumer.py", "--self-test", "--count", "7", "--prefetch", "2")
        for number in range(1, 8):
            self.assertIn(f"received 'message {number}'", out)
        self.assertIn("cancelled the consumer after 7 messages", out)
        self.assertIn("deleted 'txamqp091-example-", out)

    def test_publisher_then_consumers(self) -> None:
        """Messages the publisher leaves in a named queue are read by both consumers."""
        queue = unique("pubsub")
        self.addCleanup(delete_queue, self.url, queue)
        out = self.run_ok("twisted_publisher.py", "--queue", queue, "--count", "6")
        self.assertIn("the queue holds 6 messages", out)
        self.assertNotIn("deleted", out)
        out = self.run_ok("twisted_consumer.py", "--queue", queue, "--count", "3")
        self.assertIn("received 'message 1'", out)
        self.assertIn("received 'message 3'", out)
        self.assertNotIn("deleted", out)
        out = self.run_ok("async_consumer.py", "--queue", queue, "--count", "3")
        self.assertIn("received 'message 4'", out)
        self.assertIn("received 'message 6'", out)

    def test_consumers_time_out(self) -> None:
        """With no message to read, both consumers give up after --timeout and exit 1."""
        for name in ("twisted_consumer.py", "async_consumer.py"):
            result = run_example(name, "--url", self.url, "--count", "1", "--timeout", "0.5")
            self.assertEqual(result.returncode, 1, f"{name}: {result.stdout}{result.stderr}")
            self.assertIn("expected 1 messages, received 0", result.stderr)
            self.assertIn("closed the connection", result.stdout)

    def test_connection_refused(self) -> None:
        """A broker that does not answer makes the example exit 1 with a typed error."""
        url = f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F"
        result = run_example("twisted_publisher.py", "--url", url)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("could not connect: ConnectionRefused", result.stderr)

    def test_access_refused(self) -> None:
        """A wrong password makes the example exit 1 with AccessRefused."""
        parameters = URLParameters(self.url)
        url = f"amqp://guest:wrong-{uuid.uuid4().hex}@{parameters.host}:{parameters.port}/%2F"
        result = run_example("async_consumer.py", "--url", url)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("could not connect: AccessRefused", result.stderr)


class ConfirmAndRPCTests(ExampleTestCase):
    """confirmed_publish.py and rpc_direct_reply_to.py."""

    def test_confirmed_publish(self) -> None:
        """Acks, a return of an unroutable mandatory message, and a nack."""
        out = self.run_ok("confirmed_publish.py", "--count", "25")
        self.assertIn("publisher confirms enabled", out)
        self.assertIn("all 25 messages confirmed", out)
        self.assertIn("returned: b'lost?' (312 NO_ROUTE)", out)
        self.assertIn("unroutable: b'lost?' (312)", out)
        self.assertIn("first message acked", out)
        self.assertIn("nacked: b'overflows'", out)

    def test_rpc_both_roles(self) -> None:
        """The script answers its own requests over direct reply-to."""
        out = self.run_ok("rpc_direct_reply_to.py", "--count", "8")
        self.assertIn("responder consuming from 'txamqp091-rpc-", out)
        for number in range(1, 9):
            self.assertIn(f"{number} squared is {number * number}\n", out)
        self.assertIn("received 8 replies", out)
        self.assertIn("responder stopped", out)

    def test_rpc_client_without_responder(self) -> None:
        """The client alone, with no responder queue, exits 1 saying so."""
        queue = unique("rpc")
        result = run_example(
            "rpc_direct_reply_to.py", "--url", self.url, "--client", "--queue", queue
        )
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn(f"no responder on {queue!r} (404)", result.stderr)

    def test_rpc_separate_processes(self) -> None:
        """A --serve process answers a --client process."""
        queue = unique("rpc")
        script = str(EXAMPLES / "rpc_direct_reply_to.py")
        server = subprocess.Popen(
            [sys.executable, script, "--url", self.url, "--serve", "--queue", queue],
            env=example_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        def stop() -> None:
            server.terminate()
            try:
                server.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                server.kill()
                server.communicate()

        self.addCleanup(stop)
        assert server.stdout is not None
        self.assertIn("responder consuming", server.stdout.readline())
        out = self.run_ok("rpc_direct_reply_to.py", "--client", "--queue", queue, "--count", "3")
        self.assertIn("3 squared is 9\n", out)
        self.assertIn("received 3 replies", out)


class BlockingExampleTests(ExampleTestCase):
    """The Blocking examples: pika programs run with ``import txamqp091 as pika``."""

    def test_blocking_publish(self) -> None:
        """Confirmed publishes, then the consume generator reads them all back and ends
        on inactivity; nothing is left to requeue."""
        out = self.run_ok("blocking_publish.py", "--count", "5")
        self.assertIn("published 5 messages, each confirmed", out)
        for n in range(5):
            self.assertIn(f"received message {n} (text/plain)", out)
        self.assertIn("received 5, requeued 0", out)

    def test_blocking_multiple_hosts(self) -> None:
        """A list of parameters whose first names a closed port: every attempt on it
        is refused, the second one connects, a message goes there and back."""
        out = self.run_ok(
            "blocking_multiple_hosts.py",
            *("--dead-port", str(closed_port()), "--attempts", "2", "--retry-delay", "0.1"),
        )
        self.assertIn("(parameters 2 of 2)", out)
        self.assertIn("got b'hello from a list'", out)

    def test_blocking_threaded_ack(self) -> None:
        """Worker threads do the work and ack through add_callback_threadsafe; the
        prefetch window bounds how many work at once."""
        out = self.run_ok(
            "blocking_threaded_ack.py", "--count", "8", "--prefetch", "3", "--work", "0.1"
        )
        self.assertIn("published 8 messages", out)
        for n in range(8):
            self.assertRegex(out, rf"Thread-\d+ \(do_work\) worked on job {n}\n")
        self.assertIn("acked 8/8 from worker threads", out)
        match = re.search(r"at most (\d+) at once, prefetch 3", out)
        assert match is not None, out
        self.assertIn(int(match.group(1)), (2, 3), out)

    def test_blocking_gevent(self) -> None:
        """Under gevent's monkey-patching: another greenlet runs while the Blocking
        face waits, and the keeper greenlet keeps a 2 s heartbeat connection alive
        through 5 s of idleness."""
        out = self.run_ok("blocking_gevent.py", "--count", "50", "--idle", "5")
        self.assertIn("published and received 50/50", out)
        match = re.search(r"the ticker ran (\d+) times during the blocking calls", out)
        assert match is not None, out
        self.assertGreater(int(match.group(1)), 0, out)
        self.assertIn("alive after 5 s idle (heartbeat 2 s), queue holds 0", out)

    def test_blocking_recovery_loop(self) -> None:
        """rabbitmqctl closes the example's connection every two messages (320): the
        loop reconnects each time and ends with every message seen; the queue is gone."""
        out = self.run_ok("blocking_recovery_loop.py", "--count", "6", "--force-close-after", "2")
        self.assertIn("CONNECTION_FORCED - example: forced close", out)
        match = re.search(r"reconnected (\d+) time\(s\), received (\d+) messages", out)
        assert match is not None, out
        self.assertGreaterEqual(int(match.group(1)), 1, out)
        self.assertEqual(int(match.group(2)), 6, out)
        bodies = set(re.findall(r"^received (message \d+)", out, re.MULTILINE))
        self.assertEqual(bodies, {f"message {n}" for n in range(6)})
        queue = re.search(r"published 6 messages to (\S+)", out)
        assert queue is not None, out
        listing = subprocess.run(
            ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        self.assertNotIn(queue.group(1), listing.stdout.split())


class TLSExampleTests(SynchronousTestCase):
    """tls_connect.py: its usage, and connections to the TLS test node."""

    def test_usage(self) -> None:
        """Without arguments the script prints its usage and exits 2."""
        result = run_example("tls_connect.py")
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn("usage: tls_connect.py", result.stderr)
        for option in ("--url", "--ca", "--cert", "--key", "--external"):
            self.assertIn(option, result.stderr)

    def test_external_needs_certificate(self) -> None:
        """--external without a client certificate is a usage error."""
        result = run_example("tls_connect.py", "--url", "amqps://localhost/", "--external")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--external needs --cert and --key", result.stderr)

    def run_tls(self, *args: str, expect: int = 0) -> str:
        """Run tls_connect.py against the TLS node; return stdout + stderr."""
        broker = tls_broker()
        result = run_example("tls_connect.py", "--url", broker.url(), *args)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, expect, output)
        return output

    def certificate_args(self) -> list[str]:
        """``--ca``, ``--cert`` and ``--key`` for the TLS node."""
        broker = tls_broker()
        return ["--ca", broker.ca_cert, "--cert", broker.client_cert, "--key", broker.client_key]

    def test_tls_plain(self) -> None:
        """Verifying the node with the test CA, logging in with the URL's user."""
        out = self.run_tls("--ca", tls_broker().ca_cert)
        self.assertIn("connected over TLS (ssl.SSLContext)", out)
        self.assertIn("authenticated with PLAIN", out)
        self.assertIn("b'sent over TLS'", out)
        self.assertIn("closed the connection", out)

    def test_tls_external(self) -> None:
        """A client certificate and SASL EXTERNAL, with an SSLContext."""
        out = self.run_tls(*self.certificate_args(), "--external")
        self.assertIn("connected over TLS (ssl.SSLContext)", out)
        self.assertIn("authenticated with EXTERNAL", out)
        self.assertIn("b'sent over TLS'", out)

    def test_tls_external_twisted_creator(self) -> None:
        """A client certificate and SASL EXTERNAL, with optionsForClientTLS."""
        out = self.run_tls(*self.certificate_args(), "--external", "--twisted")
        self.assertIn("connected over TLS (Twisted creator)", out)
        self.assertIn("authenticated with EXTERNAL", out)
        self.assertIn("b'sent over TLS'", out)

    def test_tls_unknown_ca(self) -> None:
        """A CA that did not sign the node's certificate fails with AMQPTLSError."""
        for extra in ([], ["--twisted"]):
            out = self.run_tls("--ca", tls_broker().other_ca_cert, *extra, expect=1)
            self.assertIn("could not connect: AMQPTLSError", out)


def readme_snippet() -> str:
    """The Python program shown at the top of README.rst (its first ``::`` block)."""
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    lines = text.split("::\n\n", 1)[1].splitlines()
    block = []
    for line in lines:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block)


class ReadmeSnippetTests(SynchronousTestCase):
    """The README's code sample works as shown."""

    def test_readme_program_runs(self) -> None:
        """The README program publishes with confirms, gets the message back and prints it."""
        ensure_broker()
        program = readme_snippet()
        self.assertIn("connect(reactor,", program)
        if amqp_url() != "amqp://guest:guest@127.0.0.1:5672/%2F":
            program = program.replace("amqp://guest:guest@127.0.0.1:5672/%2F", amqp_url())
        result = subprocess.run(
            [sys.executable, "-c", program],
            env=example_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), "b'hello'")


class ServiceExampleTests(ExampleTestCase):
    """examples/reconnecting_service.py."""

    def test_reconnecting_service_example(self) -> None:
        """The service example uses its connection each round and stops cleanly."""
        result = run_example("reconnecting_service.py", "--url", self.url, "--rounds", "2")
        self.assertEqual(result.returncode, 0, f"{result.stdout}\n{result.stderr}")
        self.assertIn("round 1: got 'round 1' back", result.stdout)
        self.assertIn("round 2: got 'round 2' back", result.stdout)
        self.assertIn("stopped the service and closed the connection", result.stdout)


class RecoveryExampleTests(ExampleTestCase):
    """examples/recovering_consumer.py and examples/reliable_publisher.py, through a
    FaultProxy that resets the service's connection mid-run."""

    def test_recovering_consumer_survives_a_reset(self) -> None:
        """The consumer loses its connection while handling a message, sees the events,
        gets a stale ack (False), and still acknowledges every message once."""
        out = self.run_ok(
            "recovering_consumer.py", "--fault-proxy", "--count", "20", "--fault-after", "8"
        )
        self.assertIn("fault proxy on port", out)
        self.assertIn("published 20 test messages", out)
        self.assertIn("fault: resetting the connection while handling message 8", out)
        self.assertIn("event: connection lost: StreamLostError", out)
        self.assertIn("event: recovery started on a new connection", out)
        # The exchange, the queue, its binding and the consumer.
        self.assertIn("event: recovered 1 channel(s) and 4 record(s)", out)
        self.assertIn("stale ack of ", out)
        self.assertIn("returned False, it will come again", out)
        self.assertIn("(redelivered)", out)
        for number in range(1, 21):
            self.assertIn(f"received msg-{number:04d}", out)
        self.assertIn("acknowledged 20/20 messages;", out)
        self.assertIn("1 recovery(ies)", out)
        self.assertNotIn("0 stale ack(s)", out)
        self.assertIn("deleted 'txamqp091-example-", out)

    def test_recovering_consumer_without_fault(self) -> None:
        """Without the proxy nothing is lost, stale or recovered."""
        out = self.run_ok("recovering_consumer.py", "--count", "5", "--prefetch", "2")
        self.assertNotIn("event:", out)
        self.assertIn("acknowledged 5/5 messages; 0 stale ack(s), 0 recovery(ies)", out)

    def test_reliable_publisher_survives_resets(self) -> None:
        """Every message is confirmed across two resets; the queue holds each one at
        least once."""
        out = self.run_ok(
            "reliable_publisher.py", "--fault-proxy", "--count", "500", "--resets", "2"
        )
        self.assertIn("publishing 500 messages to 'txamqp091-example-", out)
        self.assertEqual(out.count("fault: resetting the connection"), 2, out)
        self.assertEqual(out.count("event: connection lost: StreamLostError"), 2, out)
        self.assertEqual(out.count("event: recovered 1 channel(s), 1 record(s)"), 2, out)
        self.assertIn("confirmed 500/500\n", out)
        self.assertIn("recoveries: 2\n", out)
        self.assertIn("500 distinct\n", out)
        self.assertIn("deleted 'txamqp091-example-", out)

    def test_reliable_publisher_without_fault(self) -> None:
        """Without the proxy every message is confirmed once: no retry, no duplicate."""
        out = self.run_ok("reliable_publisher.py", "--count", "200")
        self.assertIn("confirmed 200/200\n", out)
        self.assertIn("published again by the script: none\n", out)
        self.assertIn("the queue held 200 messages, 200 distinct\n", out)


class SelectExampleTests(ExampleTestCase):
    """The Select examples: pika's asynchronous patterns with ``import txamqp091 as
    pika``."""

    def test_select_publisher(self) -> None:
        """Every publish confirmed through ack_nack_callback with a bounded window;
        the connection closes cleanly and the loop stops."""
        out = self.run_ok("select_publisher.py", "--count", "50", "--window", "7")
        self.assertIn("connection open", out)
        self.assertIn("published 50, acked 50, nacked 0", out)
        self.assertIn("ConnectionClosedByClient", out)

    def test_asyncio_and_tornado_faces(self) -> None:
        """The same two programs on AsyncioConnection and on TornadoConnection (Tornado's
        IOLoop, on asyncio): every publish confirmed, every message consumed."""
        for face in ("asyncio", "tornado"):
            with self.subTest(face=face):
                out = self.run_ok(
                    "select_publisher.py", "--face", face, "--count", "30", "--window", "4"
                )
                self.assertIn("published 30, acked 30, nacked 0", out)
                out = self.run_ok(
                    "select_consumer.py", "--face", face, "--count", "5", "--prefetch", "2"
                )
                self.assertIn("consumer started", out)
                self.assertIn("received 5/5", out)

    def test_select_consumer(self) -> None:
        """Messages consumed in order and acked under a prefetch window; the consumer
        is cancelled with its CancelOk callback, then the connection closes."""
        out = self.run_ok("select_consumer.py", "--count", "6", "--prefetch", "2")
        self.assertIn("consumer started", out)
        for n in range(6):
            self.assertIn(f"received message {n} (delivery tag {n + 1})", out)
        self.assertIn("consumer cancelled", out)
        self.assertIn("received 6/6", out)


class AioExampleTests(ExampleTestCase):
    """aio_consumer.py: the native asyncio API."""

    def test_aio_consumer(self) -> None:
        """The asyncio example publishes with confirms, consumes and acks, cleans up."""
        out = self.run_ok("aio_consumer.py", "--count", "7", "--prefetch", "2")
        self.assertIn("published 7 messages, each confirmed", out)
        for number in range(1, 8):
            self.assertIn(f"received 'message {number}'", out)
        self.assertIn("cancelled the consumer after 7 messages", out)
        self.assertIn("deleted 'txamqp091-example-", out)

    def test_aio_consumer_refused(self) -> None:
        """Without a broker the asyncio example says so and exits with status 1."""
        url = f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F"
        result = run_example("aio_consumer.py", "--url", url)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("could not connect", result.stderr)


class RelayExampleTests(ExampleTestCase):
    """``twistd amqp-relay`` run as an operator runs it."""

    def test_relay_queues(self) -> None:
        """The relay moves every message, reports running over HTTP, counts what it
        acked, and stops gracefully on SIGTERM."""
        out = self.run_ok("relay_queues.py", "--count", "300")
        self.assertIn("healthz: running", out)
        self.assertRegex(out, r"relay-example-out-\w+ holds 300 messages")
        self.assertIn('amqp_relay_acked_total{link="default"} 300.0', out)
        self.assertIn("relay stopped", out)

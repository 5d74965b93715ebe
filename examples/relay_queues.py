"""Run ``twistd amqp-relay`` between two queues and watch it over HTTP.

The program fills a source queue, starts the relay as ``twistd -n amqp-relay`` (a
subprocess, as an operator would run it), waits until ``/healthz`` says the link is
running and the destination queue holds every message, prints the relay's
``/metrics`` counters, and stops the relay with SIGTERM (its graceful stop)::

    python examples/relay_queues.py [--url URL] [--count 1000]

Source and destination here are two queues of one broker; give the relay two URLs with
different hosts or virtual hosts to move messages between brokers.  Run from a
checkout, the program puts the checkout on ``PYTHONPATH`` so that twistd finds the
plugin in ``twisted/plugins/``; an installed txamqp091 needs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import txamqp091

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str) -> tuple[int, bytes]:
    """GET *url*: the status and the body (also for error statuses)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(what: str, condition: object, timeout: float = 60.0) -> None:
    """Poll *condition* (a callable) until it is true, or exit with an error."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    source, dest = f"relay-example-in-{suffix}", f"relay-example-out-{suffix}"

    connection = txamqp091.BlockingConnection(txamqp091.URLParameters(args.url))
    channel = connection.channel()
    channel.queue_declare(source, durable=True)
    channel.queue_declare(dest, durable=True)
    channel.confirm_delivery()
    for i in range(args.count):
        channel.basic_publish("", source, f"message {i}".encode())
    print(f"published {args.count} messages to {source}")

    port = free_port()
    http = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    if (ROOT / "twisted" / "plugins" / "txamqp091_relay.py").exists():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    relay = subprocess.Popen(
        [
            # twistd itself, run by this interpreter (python -m twisted is "twist").
            sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=", "amqp-relay",
            "--source", args.url, "--source-queue", source,
            "--dest", args.url, "--dest-routing-key", dest,
            "--http", f"tcp:{port}:interface=127.0.0.1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip

    def arrived() -> bool:
        if relay.poll() is not None:
            sys.exit(f"the relay exited with status {relay.returncode}:\n{relay.stdout.read()}")  # type: ignore[union-attr]
        depth: int = channel.queue_declare(dest, passive=True).method.message_count
        return depth == args.count

    try:
        wait_until("the relay's HTTP API", lambda: _status(f"{http}/healthz") == 200)
        print("healthz:", json.loads(get(f"{http}/healthz")[1])["links"]["default"]["state"])
        wait_until(f"{args.count} messages in {dest}", arrived)
        print(f"{dest} holds {args.count} messages")
        for line in get(f"{http}/metrics")[1].decode().splitlines():
            if line.startswith(("amqp_relay_consumed_total", "amqp_relay_acked_total")):
                print(line)
    finally:
        relay.send_signal(signal.SIGTERM)
        output, _ = relay.communicate(timeout=60)
        channel.queue_delete(source)
        channel.queue_delete(dest)
        connection.close()
        print("closed the connection")
    # twistd ends by the signal it received once it has shut down cleanly.
    if relay.returncode not in (0, -signal.SIGTERM) or "Server Shut Down." not in output:
        sys.exit(f"the relay exited with status {relay.returncode}:\n{output}")
    print("relay stopped")


def _status(url: str) -> int | None:
    try:
        return get(url)[0]
    except OSError:
        return None  # not listening yet


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Client benchmark: pika (Twisted and select adapters) and txamqp091 side by side.

Runs against a real broker (``amqp://guest:guest@127.0.0.1:5672/%2F`` unless
``--url`` says otherwise). Every workload runs once for each client, the clients
interleaved (W1 pika-twisted, W1 pika-select, W1 txamqp091, W2 ...), each run in a
fresh subprocess, so that the CPU time one run measures (``getrusage`` user + sys,
taken in the child around the measured part only) holds nothing but that client's
work: no imports, no connection set-up, no other client's garbage.

Workloads (counts are multiplied by ``--scale``):

* W1: publish 100,000 x 64 B without confirms to a queue (default exchange); the run
  ends when the broker holds all N (``queue_declare(passive=True)`` polled).
* W2: 20,000 confirmed publishes, at most 1,000 in flight; confirm latency p50/p99.
* W3: consume 100,000 x 64 B (put in the queue by this harness beforehand, not
  measured) with prefetch 1,000 and one ``basic_ack`` per message, each client with
  its own consumer style: a callback for txamqp091 and pika's Select face, the queue
  object for pika's Twisted adapter (the only consumer it offers).
* W3q: the same through a queue object (``yield queue.get()`` per message), for
  txamqp091 and pika's Twisted adapter only: the like-for-like comparison.
* W4: publish 500 x 1 MiB (until the broker holds all), then consume them with an
  ack each: two rows, each with MiB/s.
* W5: 2,000 sequential RPC round trips over direct reply-to
  (``amq.rabbitmq.reply-to``) to a responder in another process
  (``_rpc_responder.py``); round trip p50/p99.

Counts are checked, never assumed: publishers wait for the broker's message count,
consumers count what they got, the harness checks that consumed queues are left empty
(an ack that never arrived would put its message back) and that the responder answered
every request. A mismatch fails the run loudly. Every run uses its own uniquely named
queues and deletes them.

The table shows messages per second (wall clock), MiB/s for W4, latency percentiles
where they apply, the client's CPU microseconds per message (user + sys) and, on the
pika rows, pika's CPU per message over txamqp091's. Only the ratios travel well
between machines; the broker shares this machine's cores with the client.

Usage::

    python benchmarks/client.py [--scale 0.1] [--only W1,W3]
                                [--clients pika-twisted,pika-select,txamqp091]
                                [--url URL] [--json OUT] [--pause SECONDS]

If txamqp091 (or its ``txamqp091.connect``) cannot be imported, it is reported as not
available and the other clients still run; a txamqp091 run that fails is reported on
its row the same way. The exit status is non-zero if any run failed (a mere import
failure of txamqp091 does not count).

This module also holds what the child scripts (``_bench_pika.py``,
``_bench_txamqp091.py``) share: the workload constants, the CPU meter and the JSON
result line. It imports nothing outside the standard library at module level.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

# --- shared with the child processes ------------------------------------------------

BODY = b"x" * 64
BIG_BODY = b"x" * (1 << 20)
MIB = float(1 << 20)
#: Base counts, before --scale.
COUNTS = {"W1": 100_000, "W2": 20_000, "W3": 100_000, "W3q": 100_000, "W4": 500, "W5": 2_000}
#: Workloads only some clients run (W3q: consuming through a queue object).
ONLY_FOR = {"W3q": {"pika-twisted", "txamqp091"}}
CONFIRM_WINDOW = 1_000  # W2: most confirms outstanding at once
PREFETCH = 1_000  # W3
BIG_PREFETCH = 100  # W4 consume: 100 MiB in flight at most
PUBLISH_BATCH = 1_000  # publishes between two back-pressure checks (W1)
WRITE_BUFFER_LIMIT = 1 << 16  # select adapter: resume publishing below this many bytes
POLL_INTERVAL = 0.01  # seconds between two message-count polls
DEADLINE = 120.0  # seconds a run may wait for the broker to reach a count
RUN_DEADLINE = 300.0  # seconds a child may take in all before it gives up
REPLY_TO = "amq.rabbitmq.reply-to"
RPC_QUEUE_SUFFIX = "-rpc"


class CountMismatch(Exception):
    """A count came out other than expected: the run proves nothing."""


def expect(actual: int, expected: int, what: str) -> None:
    """Fail loudly unless ``actual == expected``."""
    if actual != expected:
        raise CountMismatch(f"{what}: expected {expected:,}, got {actual:,}")


class Meter:
    """Wall-clock and CPU (user + sys, this process) time from ``start()`` to ``stop()``."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._wall0 = self._cpu0 = 0.0

    @staticmethod
    def _cpu_now() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def start(self) -> Meter:
        self._cpu0 = self._cpu_now()
        self._wall0 = time.perf_counter()
        return self

    def stop(self) -> Meter:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = self._cpu_now() - self._cpu0
        return self


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of already sorted values."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def row(
    label: str,
    count: int,
    meter: Meter,
    nbytes: int = 0,
    latencies: Sequence[float] | None = None,
) -> dict[str, Any]:
    """One measured result, as the child reports it (times in seconds)."""
    result: dict[str, Any] = {
        "label": label,
        "count": count,
        "wall_s": meter.wall,
        "cpu_s": meter.cpu,
        "bytes": nbytes,
    }
    if latencies is not None:
        expect(len(latencies), count, f"{label}: latency samples")
        ordered = sorted(latencies)
        result["p50_ms"] = percentile(ordered, 50) * 1e3
        result["p99_ms"] = percentile(ordered, 99) * 1e3
    return result


def emit(payload: dict[str, Any]) -> None:
    """Print the child's one JSON line (the last line of its standard output)."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def child_arguments(argv: Sequence[str] | None = None, clients: Sequence[str] = ()) -> Any:
    """Parse a child script's command line."""
    parser = argparse.ArgumentParser(description="one benchmark run (started by client.py)")
    if clients:
        parser.add_argument("--client", choices=clients, required=True)
    parser.add_argument("--workload", choices=sorted(COUNTS), required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--url", default=DEFAULT_URL)
    return parser.parse_args(argv)


# --- the harness ----------------------------------------------------------------------

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENTS = {
    "pika-twisted": [str(HERE / "_bench_pika.py"), "--client", "twisted"],
    "pika-select": [str(HERE / "_bench_select.py"), "--client", "pika"],
    "txamqp091-select": [str(HERE / "_bench_select.py"), "--client", "txamqp091"],
    "pika-asyncio": [str(HERE / "_bench_select.py"), "--client", "pika-asyncio"],
    "txamqp091-asyncio": [str(HERE / "_bench_select.py"), "--client", "txamqp091-asyncio"],
    "aiormq": [str(HERE / "_bench_aio.py"), "--client", "aiormq"],
    "txamqp091-aio": [str(HERE / "_bench_aio.py"), "--client", "txamqp091"],
    "txamqp091": [str(HERE / "_bench_txamqp091.py")],
    "pika-blocking": [str(HERE / "_bench_blocking.py"), "--client", "pika"],
    "txamqp091-blocking": [str(HERE / "_bench_blocking.py"), "--client", "txamqp091"],
}
OURS = "txamqp091"
#: The txamqp091 row a client's CPU is compared with (OURS unless named here).
COMPARED_WITH = {
    "pika-blocking": "txamqp091-blocking",
    "pika-select": "txamqp091-select",
    "pika-asyncio": "txamqp091-asyncio",
    "aiormq": "txamqp091-aio",
}
RUN_TIMEOUT = RUN_DEADLINE + 60  # the harness's own limit on a child


def child_env() -> dict[str, str]:
    """The environment for the children: this checkout's txamqp091 comes first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def blocking_channel(url: str) -> tuple[Any, Any]:
    """A pika BlockingConnection and a channel on it, for the harness's own chores."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    return connection, connection.channel()


def prefill(url: str, queue: str, count: int) -> None:
    """Declare ``queue`` and put ``count`` x 64 B in it, outside any measurement.

    A BlockingChannel flushes the socket after every publish (some 100 us each), so
    this goes through the channel's asynchronous core, flushing every thousand.
    """
    connection, channel = blocking_channel(url)
    try:
        channel.queue_declare(queue=queue, durable=False, auto_delete=False)
        fast = channel._impl  # the SelectConnection-style channel under the blocking one
        for start in range(0, count, PUBLISH_BATCH):
            for _ in range(min(PUBLISH_BATCH, count - start)):
                fast.basic_publish("", queue, BODY)
            connection.process_data_events(0)
        deadline = time.monotonic() + DEADLINE
        while True:
            held = channel.queue_declare(queue=queue, passive=True).method.message_count
            if held == count:
                break
            if held > count or time.monotonic() > deadline:
                expect(held, count, f"prefill of {queue}")
            connection.sleep(POLL_INTERVAL)
    finally:
        connection.close()


def check_empty(url: str, queue: str) -> None:
    """Fail unless ``queue`` holds no message: an ack that never arrived puts one back."""
    connection, channel = blocking_channel(url)
    try:
        held = channel.queue_declare(queue=queue, passive=True).method.message_count
        expect(held, 0, f"messages left in {queue} after consuming")
    finally:
        connection.close()


def delete_queues(url: str, *queues: str) -> None:
    """Delete ``queues``; RabbitMQ answers Delete-Ok for a queue that is gone already."""
    connection, channel = blocking_channel(url)
    try:
        for queue in queues:
            channel.queue_delete(queue=queue)
    finally:
        connection.close()


class Responder:
    """The W5 RPC responder, in its own process, for the span of one run."""

    def __init__(self, url: str, queue: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "_rpc_responder.py"), "--url", url, "--queue", queue],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline().strip()
        if ready != "ready":
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"the RPC responder did not start (it said {ready!r})")

    def kill(self) -> None:
        """Stop the responder without asking how it went (a run failed already)."""
        self.process.kill()
        self.process.communicate()

    def stop(self) -> int:
        """Stop the responder; return how many requests it answered."""
        self.process.terminate()
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("the RPC responder did not stop") from None
        lines = out.strip().splitlines()
        if self.process.returncode != 0 or not lines:
            raise RuntimeError(f"the RPC responder failed (exit {self.process.returncode})")
        return int(json.loads(lines[-1])["replied"])


def run_child(client: str, workload: str, count: int, queue: str, url: str) -> dict[str, Any]:
    """Run one workload for one client in a fresh process; return its JSON report."""
    command = [sys.executable, *CLIENTS[client]]
    command += ["--workload", workload, "--count", str(count), "--queue", queue, "--url", url]
    done = subprocess.run(
        command, capture_output=True, text=True, env=child_env(), timeout=RUN_TIMEOUT
    )
    lines = done.stdout.strip().splitlines()
    report: dict[str, Any] = {}
    if lines:
        try:
            report = json.loads(lines[-1])
        except ValueError:
            report = {}
    if done.returncode != 0 or not report:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit status {done.returncode}: {tail}")
    return report


def run_one(client: str, workload: str, count: int, url: str) -> dict[str, Any]:
    """Prepare the broker, run the child, verify what is left, clean up."""
    queue = f"bench-{workload.lower()}-{client}-{uuid.uuid4().hex[:10]}"
    responder = None
    try:
        if workload in ("W3", "W3q"):
            prefill(url, queue, count)
        if workload == "W5":
            responder = Responder(url, queue + RPC_QUEUE_SUFFIX)
        report = run_child(client, workload, count, queue, url)
        if "unavailable" in report:
            return report
        if responder is not None:
            replied, responder = responder.stop(), None
            expect(replied, count, "requests the RPC responder answered")
        if workload in ("W3", "W3q", "W4"):
            check_empty(url, queue)
        return report
    finally:
        if responder is not None:
            responder.kill()
        delete_queues(url, queue, queue + RPC_QUEUE_SUFFIX)


def probe_ours() -> str | None:
    """Why txamqp091 cannot be benchmarked here, or None if it can."""
    done = subprocess.run(
        [sys.executable, *CLIENTS[OURS], "--probe"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    lines = done.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"probe failed with exit status {done.returncode}: {tail}"
    return report.get("unavailable")


def machine(url: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    import pika

    import twisted

    connection, _ = blocking_channel(url)
    try:
        broker = connection._impl.server_properties
        product = f"{broker.get('product', '?')} {broker.get('version', '?')}"
    finally:
        connection.close()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "pika": pika.__version__,
        "twisted": twisted.__version__,
        "broker": product,
    }


def derive(report_row: dict[str, Any], workload: str, client: str) -> dict[str, Any]:
    """A child's row with the per-message figures the table shows."""
    result = dict(report_row, workload=workload, client=client)
    count, wall = result["count"], result["wall_s"]
    result["msg_s"] = count / wall
    result["mib_s"] = result["bytes"] / MIB / wall if result["bytes"] else None
    result["cpu_us_per_msg"] = result["cpu_s"] / count * 1e6
    return result


def fmt(value: float | None, width: int, spec: str) -> str:
    """``value`` in ``spec`` right-aligned to ``width``, or a dash if there is none."""
    return f"{'-' if value is None else format(value, spec):>{width}}"


def print_table(rows: list[dict[str, Any]]) -> None:
    """The side-by-side table, with pika's CPU per message over txamqp091's."""
    ours = {
        (r["label"], r["client"]): r["cpu_us_per_msg"]
        for r in rows
        if r["client"] in (OURS, *COMPARED_WITH.values()) and "error" not in r
    }
    header = (
        f"{'workload':<11} {'client':<18} {'count':>8} {'wall s':>7} {'msg/s':>9} "
        f"{'MiB/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/msg':>10} {'pika/ours':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        if "error" in r:
            print(f"{r['label']:<11} {r['client']:<18} {r['error']}")
            continue
        ratio = None
        peer = COMPARED_WITH.get(r["client"], OURS)
        if not r["client"].startswith(OURS) and ours.get((r["label"], peer)):
            ratio = r["cpu_us_per_msg"] / ours[(r["label"], peer)]
        print(
            f"{r['label']:<11} {r['client']:<18} {r['count']:>8,} {r['wall_s']:>7.2f} "
            f"{r['msg_s']:>9,.0f} {fmt(r['mib_s'], 7, '.1f')} "
            f"{fmt(r.get('p50_ms'), 7, '.2f')} {fmt(r.get('p99_ms'), 7, '.2f')} "
            f"{r['cpu_us_per_msg']:>10.1f} {fmt(ratio, 9, '.2f')}"
        )


def parse_list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in allowed]
    if unknown or not chosen:
        raise SystemExit(f"unknown {what}: {', '.join(unknown) or text!r}; pick from {allowed}")
    return [item for item in allowed if item in chosen]  # the canonical order


def main() -> int:
    """Run the suite and print the table; non-zero if any run failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count")
    parser.add_argument("--only", default=",".join(COUNTS), help="workloads, e.g. W1,W3")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="clients to compare")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--json", metavar="OUT", help="also write the results here as JSON")
    parser.add_argument(
        "--pause",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="idle time between runs, for the broker to settle (default 1)",
    )
    args = parser.parse_args()
    workloads = parse_list(args.only, list(COUNTS), "workload")
    clients = parse_list(args.clients, list(CLIENTS), "client")

    info = machine(args.url)
    print(
        f"{info['date']}  {info['platform']}  {info['processor']}, {info['cpu_count']} CPUs\n"
        f"Python {info['python']}, pika {info['pika']}, Twisted {info['twisted']}, "
        f"broker {info['broker']}; scale {args.scale:g}"
    )
    unavailable: dict[str, str] = {}
    if OURS in clients:
        why = probe_ours()
        if why is not None:
            unavailable[OURS] = why
            print(f"{OURS}: not available ({why})")
    print(flush=True)

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    started = time.monotonic()
    for workload in workloads:
        count = max(1, round(COUNTS[workload] * args.scale))
        for client in clients:
            if client in unavailable or client not in ONLY_FOR.get(workload, {client}):
                continue
            if rows or failures:
                time.sleep(args.pause)  # the last run's queue deletion, GC: not this run's
            print(f"  {workload} {client} x {count:,} ...", end=" ", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            try:
                report = run_one(client, workload, count, args.url)
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
                print(f"FAILED ({why})", file=sys.stderr)
                failures.append(f"{workload} {client}: {why}")
                error = f"{client}: not available ({why})" if client == OURS else f"FAILED: {why}"
                rows.append({"label": workload, "client": client, "error": error})
                continue
            if "unavailable" in report:
                unavailable[client] = report["unavailable"]
                print(f"{client}: not available ({report['unavailable']})", file=sys.stderr)
                continue
            print(f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
            rows.extend(derive(r, workload, client) for r in report["results"])
    print(f"  (suite: {time.monotonic() - started:.0f} s)\n", file=sys.stderr)

    print_table(rows)
    for client, why in unavailable.items():
        print(f"\n{client}: not available ({why})")
    if failures:
        print(f"\n{len(failures)} run(s) FAILED:")
        for failure in failures:
            print(f"  {failure}")
    if args.json:
        document = {
            "machine": info,
            "scale": args.scale,
            "rows": rows,
            "unavailable": unavailable,
            "failures": failures,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Relay throughput: ``twistd amqp-relay`` against RabbitMQ's shovel plugin (issue 7).

Both contenders move the same messages in the same run, on the same broker, with the
same prefetch: ``--count`` x ``--size`` bytes (default 100,000 x 64 B, transient) from
a queue in one vhost to a queue in another, acknowledging each source delivery only
once the destination confirmed it (the relay's ``--ack-mode on-confirm``, its default;
the shovel's ``"ack-mode": "on-confirm"``). The relay publishes to the default
exchange with the destination queue as routing key, as a shovel with ``dest-queue``
does.

The script enables ``rabbitmq_shovel`` if it is not enabled (and disables it again at
the end, whatever happens), creates two vhosts of its own with full permissions for
the URL's user (and deletes them at the end, which also removes any shovel left in
them), and declares one durable queue in each.

Method, for each run (contenders alternate: shovel, relay, shovel, relay for
``--repeat 2``; ``--only`` runs one of them):

1. pre-fill the source queue with ``--count`` messages (a txamqp091
   ``BlockingConnection``, no confirms) and wait until the broker reports them all
   ready and the destination queue empty;
2. start the contender: the shovel with ``rabbitmqctl set_parameter -p VA shovel ...``
   (``src-prefetch-count`` = ``--prefetch``); the relay as a fresh
   ``twistd -n amqp-relay ... --prefetch N`` process (``PYTHONPATH`` = the repository,
   for the plugin; ``python -m twisted`` would run ``twist``, which lacks ``-n``,
   ``--pidfile`` and ``--profile``);
3. poll both queue depths (passive ``queue.declare`` on a connection per vhost) every
   50 ms (every 10 ms until the first message moved) until the destination holds all
   ``--count`` messages and no message is ready at the source;
4. stop the contender (``rabbitmqctl clear_parameter``; SIGTERM for the relay, after
   reading its ``/metrics``), check that exactly ``--count`` messages arrived and none
   is left at the source (unacknowledged deliveries come back when the consumer goes),
   and purge both queues.

Clocks (all ``time.perf_counter`` in this process). The end is, for every clock, the
first poll that saw everything moved. Each run reports three throughputs:

- ``transfer`` (the headline figure and its ratio): from the last poll that saw
  nothing moved yet (every message ready at the source, none at the destination) to
  the end. The same rule for both, blind to how each starts: it measures the
  contender from the moment its consumer starts taking messages, so connection set-up
  is left out of both. Its resolution is one poll (10 ms at the start, 50 ms at the
  end), i.e. about +-2 % on a 3 s run.
- ``launch``: from launching the contender to the end, start-up included: for the
  relay from spawning ``twistd`` (Python, Twisted and the plugin importing, both
  connections opening); for the shovel from spawning ``rabbitmqctl set_parameter``
  (the Erlang CLI starting, then the shovel's connections opening inside the broker).
- ``ready``: the relay's clock starts when its ``GET /healthz`` first answers 200
  (both connections open, channels set up; the ``basic.consume`` is sent right after),
  polled every 10 ms; the shovel's when ``rabbitmqctl set_parameter`` returns. That
  is what issue 7 suggested, but it is not a fair pair: the CLI returns after the
  broker started the shovel, often once it is already moving (10-150 ms later here),
  so the shovel's ``ready`` figure is inflated, hugely for a small ``--count``. It is
  printed for reference, not for the ratio.

The relay's CPU is read from ``/proc/PID/stat`` (utime + stime) over the ``transfer``
window (``CPU us/msg``), and once more just before SIGTERM (its whole life, start-up
included: ``life CPU s``). The shovel runs inside the broker, so its cost shows only
as the broker's (``beam.smp``) CPU over the same window, reported for both
contenders (for the relay it is what the broker spends serving the relay's two
connections, plus this script's polls in both cases). The machine is small and shared
and the broker runs on the same cores as the relay, so compare contenders within a
run, not across runs.

The ratio printed is relay / shovel of the mean msg/s by the ``transfer`` clock (higher
is better for the relay; the target of issue 7 is >= 1.0x).

``--profile DIR`` runs the relay under cProfile (twistd ``--profile``, ``--profiler
cprofile --savestats``), writes ``DIR/relay-runN.pstats`` and prints the top functions
by own time; profiled runs are slower than plain ones, so use them to see where the
time goes, not for the ratio.

Usage::

    python benchmarks/relay.py [--count 100000] [--size 64] [--prefetch 1000]
        [--repeat 2] [--url amqp://guest:guest@127.0.0.1:5672]
        [--only relay|shovel] [--timeout 300] [--profile DIR] [--keep-logs DIR]

The broker must be the local node that ``rabbitmqctl`` and ``rabbitmq-plugins`` talk
to (this script runs them, so it needs the rights they need, root here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import txamqp091

REPO = Path(__file__).resolve().parent.parent
POLL_INTERVAL = 0.05
FAST_POLL_INTERVAL = 0.01
CLK_TCK = os.sysconf("SC_CLK_TCK")
RELAY_STOP_TIMEOUT = 45.0
CONTENDERS = ("shovel", "relay")
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
#: Log lines of the relay worth reporting (errors, restarts, lost connections...).
SUSPICIOUS = re.compile(
    r"Traceback|Unhandled|error|failed|stalled|lost|restart|Error|CRITICAL|warn",
)


# -- small helpers -------------------------------------------------------------------------


def run_cli(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a RabbitMQ CLI command, its output captured."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {done.returncode}: "
            f"{done.stderr.strip() or done.stdout.strip()}"
        )
    return done


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process *pid* from ``/proc`` (``None`` if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the command name: state is field 3, utime 14, stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def broker_pid() -> int | None:
    """The PID of the broker's Erlang VM (``beam.smp``), if it runs here."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "beam.smp":
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                    if b"rabbit" in cmdline:
                        return int(entry)
        except OSError:
            continue
    return None


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def vhost_url(base: str, vhost: str) -> str:
    """*base* (``amqp://user:pass@host:port``) with *vhost* as its path."""
    return base.rstrip("/") + "/" + urllib.parse.quote(vhost, safe="")


def http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes]:
    """GET *url*: the status and the body (an HTTP error status is not an exception)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# -- the broker side -----------------------------------------------------------------------


class Queues:
    """The source and destination queues, each seen through a connection to its vhost."""

    def __init__(self, url_a: str, url_b: str, source: str, dest: str) -> None:
        self.source, self.dest = source, dest
        self._conn_a = txamqp091.BlockingConnection(txamqp091.URLParameters(url_a))
        self._conn_b = txamqp091.BlockingConnection(txamqp091.URLParameters(url_b))
        self._ch_a = self._conn_a.channel()
        self._ch_b = self._conn_b.channel()
        self._ch_a.queue_declare(queue=source, durable=True, auto_delete=False)
        self._ch_b.queue_declare(queue=dest, durable=True, auto_delete=False)

    def depths(self) -> tuple[int, int]:
        """Messages ready at the source and at the destination."""
        a = self._ch_a.queue_declare(queue=self.source, passive=True).method.message_count
        b = self._ch_b.queue_declare(queue=self.dest, passive=True).method.message_count
        return int(a), int(b)

    def fill(self, count: int, body: bytes, timeout: float) -> float:
        """Publish *count* x *body* to the source; wait until the broker holds them all.

        :returns: the seconds it took.
        """
        started = time.perf_counter()
        publish = self._ch_a.basic_publish
        for _ in range(count):
            publish(exchange="", routing_key=self.source, body=body)
        self.wait_for(count, 0, timeout, "pre-fill")
        return time.perf_counter() - started

    def wait_for(self, source: int, dest: int, timeout: float, what: str) -> None:
        """Poll until the depths are (*source*, *dest*)."""
        deadline = time.monotonic() + timeout
        while True:
            depths = self.depths()
            if depths == (source, dest):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: queues hold {depths}, expected {(source, dest)}")
            self._conn_a.sleep(POLL_INTERVAL)

    def settle(self, timeout: float = 10.0) -> tuple[int, int]:
        """The depths once they stopped changing (requeued deliveries come back)."""
        deadline = time.monotonic() + timeout
        last = self.depths()
        while time.monotonic() < deadline:
            self._conn_a.sleep(0.2)
            now = self.depths()
            if now == last:
                return now
            last = now
        return last

    def purge(self) -> None:
        """Empty both queues."""
        self._ch_a.queue_purge(self.source)
        self._ch_b.queue_purge(self.dest)

    def close(self) -> None:
        """Close both connections (never raises)."""
        for conn in (self._conn_a, self._conn_b):
            try:
                if conn.is_open:
                    conn.close()
            except Exception:
                pass


# -- the contenders ------------------------------------------------------------------------


@dataclass
class Setup:
    """What both contenders need to know."""

    base_url: str
    vhost_a: str
    vhost_b: str
    source: str
    dest: str
    prefetch: int
    log_dir: Path
    profile_dir: Path | None


class Contender:
    """A relay under test: launched, asked whether it is ready, stopped."""

    name = "?"

    def __init__(self, setup: Setup, run: int) -> None:
        self.setup = setup
        self.run = run
        #: When ``launch`` was called and when the contender was first seen ready.
        self.launched_at: float | None = None
        self.ready_at: float | None = None
        self.notes: list[str] = []

    def launch(self) -> None:
        """Start it (must not block long)."""
        raise NotImplementedError

    def check(self) -> None:
        """Called every 10 ms until ``ready_at`` is set: set it when ready; raise if dead."""
        raise NotImplementedError

    def alive(self) -> None:
        """Raise if the contender died (called at every depth poll)."""

    def cpu(self) -> float | None:
        """Its own CPU seconds so far (``None`` when it has no process of its own)."""
        return None

    def stop(self) -> None:
        """Stop it (blocks until stopped)."""
        raise NotImplementedError


class Shovel(Contender):
    """A dynamic shovel, set with ``rabbitmqctl set_parameter``."""

    name = "shovel"

    def __init__(self, setup: Setup, run: int) -> None:
        super().__init__(setup, run)
        self.parameter = f"bench-relay-{run}"
        self._done: subprocess.CompletedProcess[str] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def definition(self) -> str:
        s = self.setup
        return json.dumps(
            {
                "src-protocol": "amqp091",
                "src-uri": vhost_url(s.base_url, s.vhost_a),
                "src-queue": s.source,
                "dest-protocol": "amqp091",
                "dest-uri": vhost_url(s.base_url, s.vhost_b),
                "dest-queue": s.dest,
                "ack-mode": "on-confirm",
                "src-prefetch-count": s.prefetch,
            }
        )

    def launch(self) -> None:
        argv = [
            "rabbitmqctl",
            "set_parameter",
            "-p",
            self.setup.vhost_a,
            "shovel",
            self.parameter,
            self.definition(),
        ]

        def wait() -> None:
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
                returned = time.perf_counter()
                self._done = done
                if done.returncode == 0:
                    self.ready_at = returned  # the moment the CLI returned
            except BaseException as e:  # reported by check()
                self._error = e

        self._thread = threading.Thread(target=wait, daemon=True)
        self.launched_at = time.perf_counter()
        self._thread.start()

    def check(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"rabbitmqctl set_parameter: {self._error!r}")
        done = self._done
        if done is not None and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl set_parameter failed: {done.stderr.strip()}")

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join(120)
        done = run_cli(
            "rabbitmqctl", "clear_parameter", "-p", self.setup.vhost_a, "shovel", self.parameter,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            self.notes.append(f"clear_parameter: {done.stderr.strip()}")


class Relay(Contender):
    """``twistd -n amqp-relay`` in a process of its own."""

    name = "relay"

    def __init__(self, setup: Setup, run: int) -> None:
        super().__init__(setup, run)
        self.port = free_port()
        self.log_path = setup.log_dir / f"relay-run{run}.log"
        self.profile_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics: dict[str, float] = {}
        self.cpu_total: float | None = None
        self.exit_code: int | None = None
        self.stop_seconds: float | None = None
        self.log_findings: list[str] = []

    def argv(self) -> list[str]:
        s = self.setup
        # twistd, not ``python -m twisted``: that runs ``twist``, which has no ``-n``,
        # ``--pidfile`` or ``--profile``.
        argv = [sys.executable, "-c", TWISTD, "-n", "--pidfile="]
        if s.profile_dir is not None:
            self.profile_path = s.profile_dir / f"relay-run{self.run}.pstats"
            argv += [f"--profile={self.profile_path}", "--profiler=cprofile", "--savestats"]
        argv += [
            "amqp-relay",
            "--source", vhost_url(s.base_url, s.vhost_a),
            "--source-queue", s.source,
            "--dest", vhost_url(s.base_url, s.vhost_b),
            "--dest-routing-key", s.dest,
            "--http", f"tcp:{self.port}:interface=127.0.0.1",
            "--prefetch", str(s.prefetch),
        ]  # fmt: skip
        return argv

    def launch(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        log = open(self.log_path, "wb")
        self.launched_at = time.perf_counter()
        self.process = subprocess.Popen(
            self.argv(), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO)
        )
        log.close()

    def alive(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise RuntimeError(f"the relay exited with {code}; see {self.log_path}")

    def check(self) -> None:
        self.alive()
        try:
            status, body = http_get(f"http://127.0.0.1:{self.port}/healthz", timeout=0.5)
        except OSError:
            return  # not listening yet
        if status == 200 and json.loads(body).get("healthy"):
            self.ready_at = time.perf_counter()

    def cpu(self) -> float | None:
        return None if self.process is None else cpu_seconds(self.process.pid)

    def read_metrics(self) -> None:
        """The relay's counters (``amqp_relay_*_total{link="default"}``), into ``metrics``."""
        try:
            _, body = http_get(f"http://127.0.0.1:{self.port}/metrics", timeout=5)
        except OSError as e:
            self.notes.append(f"/metrics: {e!r}")
            return
        for line in body.decode().splitlines():
            m = re.match(r'amqp_relay_(\w+)_total\{link="default"\} (\S+)$', line)
            if m:
                self.metrics[m.group(1)] = float(m.group(2))

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            self.read_metrics()
            self.cpu_total = self.cpu()
            started = time.perf_counter()
            process.send_signal(signal.SIGTERM)
            try:
                self.exit_code = process.wait(RELAY_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.notes.append(f"no exit {RELAY_STOP_TIMEOUT:g} s after SIGTERM: killed")
                process.kill()
                self.exit_code = process.wait()
            self.stop_seconds = time.perf_counter() - started
        else:
            self.exit_code = process.returncode
        self.scan_log()

    def scan_log(self) -> None:
        """Keep the log lines that look wrong."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return
        self.log_findings = [line for line in lines if SUSPICIOUS.search(line)]


# -- one run -------------------------------------------------------------------------------


@dataclass
class Result:
    """One contender's run."""

    contender: str
    run: int
    count: int
    fill_seconds: float = 0.0
    launched_at: float | None = None
    ready_at: float | None = None
    untouched_at: float | None = None
    done_at: float | None = None
    polls: int = 0
    relay_cpu_window: float | None = None
    relay_cpu_total: float | None = None
    broker_cpu_window: float | None = None
    verified: str = ""
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    log_findings: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    relay_stop_seconds: float | None = None
    relay_exit: int | None = None

    def seconds(self, clock: str) -> float | None:
        """The measured seconds by *clock*: ``transfer``, ``launch`` or ``ready``."""
        start = {"ready": self.ready_at, "transfer": self.untouched_at, "launch": self.launched_at}
        begin = start[clock]
        if self.error or begin is None or self.done_at is None:
            return None
        return self.done_at - begin

    def rate(self, clock: str) -> float | None:
        """Messages per second by *clock*."""
        seconds = self.seconds(clock)
        return None if not seconds else self.count / seconds


def measure(
    contender: Contender, queues: Queues, count: int, timeout: float, beam: int | None
) -> Result:
    """Start *contender*, poll until everything moved, stop it, verify."""
    result = Result(contender.name, contender.run, count)
    try:
        src, dst = queues.depths()
        if (src, dst) != (count, 0):
            raise RuntimeError(f"not ready to start: queues hold {(src, dst)}")

        def untouched() -> tuple[float, float | None, float | None]:
            """Now, the contender's CPU and the broker's: the transfer window's start."""
            return (
                time.perf_counter(),
                contender.cpu(),
                None if beam is None else cpu_seconds(beam),
            )

        start = untouched()
        contender.launch()
        deadline = time.monotonic() + timeout
        moved = False
        next_poll = 0.0
        while True:
            if contender.ready_at is None:
                contender.check()
            if time.perf_counter() >= next_poll:
                contender.alive()
                src, dst = queues.depths()
                polled = time.perf_counter()
                result.polls += 1
                if dst > count:
                    raise RuntimeError(f"the destination holds {dst} > {count} messages")
                if dst == count and src == 0:
                    result.done_at = polled
                    break
                if src == count and dst == 0:
                    start = untouched()
                else:
                    moved = True
                next_poll = polled + (POLL_INTERVAL if moved else FAST_POLL_INTERVAL)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"not done after {timeout:g} s: source {src} ready, destination {dst}"
                )
            time.sleep(FAST_POLL_INTERVAL if contender.ready_at is None else 0.005)
        result.untouched_at, cpu_start, beam_start = start
        end_cpu = contender.cpu()
        if cpu_start is not None and end_cpu is not None:
            result.relay_cpu_window = end_cpu - cpu_start
        end_beam = None if beam is None else cpu_seconds(beam)
        if beam_start is not None and end_beam is not None:
            result.broker_cpu_window = end_beam - beam_start
        if contender.ready_at is None:  # done before seen ready: look once more
            contender.check()
    except Exception as e:
        result.error = str(e)
    finally:
        result.launched_at = contender.launched_at
        result.ready_at = contender.ready_at
        try:
            contender.stop()
        except Exception as e:
            result.notes.append(f"stopping: {e!r}")
        result.notes += contender.notes
        if isinstance(contender, Relay):
            result.metrics = contender.metrics
            result.relay_cpu_total = contender.cpu_total
            result.log_findings = contender.log_findings
            result.relay_stop_seconds = contender.stop_seconds
            result.relay_exit = contender.exit_code
    try:
        src, dst = queues.settle()
        result.verified = "ok" if (src, dst) == (0, count) else f"source {src}, dest {dst}"
        if result.verified != "ok" and result.error is None:
            result.error = f"after the stop: {result.verified} (expected 0, {count})"
    finally:
        queues.purge()
    return result


# -- output --------------------------------------------------------------------------------


def fmt_rate(value: float | None) -> str:
    return "failed" if value is None else f"{value:,.0f}"


def mean(values: list[float | None]) -> float | None:
    good = [v for v in values if v is not None]
    return statistics.fmean(good) if good and len(good) == len(values) else None


def rate_table(results: list[Result], clock: str, repeat: int) -> tuple[list[str], float | None]:
    """One table of msg/s by *clock*: a row per contender, and the relay/shovel ratio."""
    header = f"{'contender':<12}" + "".join(f"{f'run {i + 1}':>11}" for i in range(repeat))
    header += f"{'mean':>11}"
    lines = [header, "-" * len(header)]
    means: dict[str, float | None] = {}
    for name in CONTENDERS:
        mine = sorted((r for r in results if r.contender == name), key=lambda r: r.run)
        if not mine:
            continue
        rates = [r.rate(clock) for r in mine]
        means[name] = mean(rates)
        lines.append(
            f"{name:<12}"
            + "".join(f"{fmt_rate(v):>11}" for v in rates)
            + f"{fmt_rate(means[name]):>11}"
        )
    ratio = None
    if means.get("relay") and means.get("shovel"):
        ratio = means["relay"] / means["shovel"]  # type: ignore[operator]
        lines.append(f"relay/shovel {ratio:.2f}x")
    return lines, ratio


def detail_table(results: list[Result]) -> list[str]:
    """Every run's seconds by each clock, start-up, CPU and verification."""
    header = (
        f"{'contender':<9}{'run':>4}{'fill s':>7}{'transfer s':>11}{'launch s':>9}"
        f"{'ready s':>8}{'to ready':>9}{'to move':>8}{'CPU s':>7}{'CPU us/msg':>11}"
        f"{'life CPU s':>11}{'broker CPU s':>13}  verified"
    )
    lines = [header, "-" * len(header)]

    def num(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    def since_launch(at: float | None, r: Result) -> float | None:
        return None if at is None or r.launched_at is None else at - r.launched_at

    for r in results:
        per_msg = None if r.relay_cpu_window is None else r.relay_cpu_window / r.count * 1e6
        lines.append(
            f"{r.contender:<9}{r.run:>4}{num(r.fill_seconds):>7}"
            f"{num(r.seconds('transfer')):>11}{num(r.seconds('launch')):>9}"
            f"{num(r.seconds('ready')):>8}{num(since_launch(r.ready_at, r)):>9}"
            f"{num(since_launch(r.untouched_at, r)):>8}"
            f"{num(r.relay_cpu_window):>7}{num(per_msg, 1):>11}{num(r.relay_cpu_total):>11}"
            f"{num(r.broker_cpu_window):>13}  {r.verified or '-'}"
        )
    return lines


def print_profile(path: Path, top: int = 25) -> None:
    """The *top* functions of a cProfile stats file by own time, then by cumulative."""
    if not path.exists():
        print(f"(no profile written at {path})")
        return
    print(f"\n--- profile {path} (by own time) ---")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(top)
    print(f"--- profile {path} (by cumulative time) ---")
    stats.sort_stats("cumulative").print_stats(top)


# -- the broker's setup --------------------------------------------------------------------


def shovel_enabled() -> bool:
    """Whether ``rabbitmq_shovel`` is enabled (explicitly or implicitly)."""
    listing = run_cli("rabbitmq-plugins", "list", "--enabled", "--minimal").stdout
    return "rabbitmq_shovel" in listing.split()


def plugins_file() -> Path | None:
    """The broker's ``enabled_plugins`` file, if the broker tells."""
    done = run_cli(
        "rabbitmqctl", "eval", "application:get_env(rabbit, enabled_plugins_file).", check=False
    )
    m = re.search(r'\{ok,"([^"]+)"\}', done.stdout)
    return Path(m.group(1)) if m else None


def environment(count: int, size: int, prefetch: int, repeat: int) -> str:
    versions = []
    for name in ("twisted", "pika"):
        try:
            module = __import__(name)
            versions.append(f"{name} {module.__version__}")
        except Exception:
            pass
    broker = run_cli("rabbitmqctl", "version", check=False).stdout.strip() or "?"
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.platform()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {', '.join(versions)}, "
        f"RabbitMQ {broker}\n{count:,} x {size} B, prefetch {prefetch}, ack on confirm, "
        f"{repeat} run(s) per contender"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="messages per run")
    parser.add_argument("--size", type=int, default=64, help="body bytes")
    parser.add_argument("--prefetch", type=int, default=1000, help="source prefetch, both")
    parser.add_argument("--repeat", type=int, default=2, help="runs per contender")
    parser.add_argument(
        "--url", default="amqp://guest:guest@127.0.0.1:5672", help="broker, without vhost"
    )
    parser.add_argument("--only", choices=CONTENDERS, help="run one contender only")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run at most")
    parser.add_argument("--profile", type=Path, help="profile the relay, stats into this dir")
    parser.add_argument("--keep-logs", type=Path, help="keep the relay's logs in this dir")
    args = parser.parse_args(argv)
    if args.count < 1 or args.size < 0 or args.repeat < 1 or not 1 <= args.prefetch <= 65535:
        parser.error("--count and --repeat must be >= 1, --size >= 0, --prefetch 1-65535")
    user = urllib.parse.unquote(urllib.parse.urlparse(args.url).username or "guest")
    tag = uuid.uuid4().hex[:8]
    vhost_a, vhost_b = f"bench-relay-{tag}-a", f"bench-relay-{tag}-b"
    log_dir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    setup = Setup(
        args.url, vhost_a, vhost_b, "bench.relay.source", "bench.relay.dest", args.prefetch,
        log_dir, args.profile,
    )  # fmt: skip
    body = b"x" * args.size
    results: list[Result] = []
    enabled_here = False
    plugins_path: Path | None = None
    plugins_existed = True
    created: list[str] = []
    queues: Queues | None = None
    profiles: list[Path] = []
    print(environment(args.count, args.size, args.prefetch, args.repeat), flush=True)

    def terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # so that the cleanup below runs

    signal.signal(signal.SIGTERM, terminated)
    try:
        if args.only != "relay" and not shovel_enabled():
            plugins_path = plugins_file()
            plugins_existed = plugins_path is None or plugins_path.exists()
            print("enabling rabbitmq_shovel (disabled again at the end)", flush=True)
            enabled_here = True
            run_cli("rabbitmq-plugins", "enable", "rabbitmq_shovel")
        for vhost in (vhost_a, vhost_b):
            run_cli("rabbitmqctl", "add_vhost", vhost)
            created.append(vhost)
            run_cli("rabbitmqctl", "set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        queues = Queues(
            vhost_url(args.url, vhost_a), vhost_url(args.url, vhost_b), setup.source, setup.dest
        )
        beam = broker_pid()
        order = [args.only] if args.only else list(CONTENDERS)
        for run in range(1, args.repeat + 1):
            for name in order:
                fill = queues.fill(args.count, body, args.timeout)
                contender: Contender = (Shovel if name == "shovel" else Relay)(setup, run)
                result = measure(contender, queues, args.count, args.timeout, beam)
                result.fill_seconds = fill
                results.append(result)
                rate = result.rate("transfer")
                print(
                    f"  {name} run {run}: "
                    + (f"{rate:,.0f} msg/s" if rate else f"FAILED: {result.error}"),
                    flush=True,
                )
                if isinstance(contender, Relay) and contender.profile_path is not None:
                    profiles.append(contender.profile_path)
    finally:
        if queues is not None:
            queues.close()
        for vhost in created:
            done = run_cli("rabbitmqctl", "delete_vhost", vhost, check=False)
            if done.returncode != 0:
                print(f"could not delete vhost {vhost}: {done.stderr.strip()}", file=sys.stderr)
        if enabled_here:
            done = run_cli("rabbitmq-plugins", "disable", "rabbitmq_shovel", check=False)
            if done.returncode != 0:
                print(f"could not disable rabbitmq_shovel: {done.stderr}", file=sys.stderr)
            elif plugins_path is not None and not plugins_existed:
                # The file did not exist before enabling; it now says "[]." only.
                try:
                    if plugins_path.read_text().strip() == "[].":
                        plugins_path.unlink()
                except OSError:
                    pass
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for path in log_dir.iterdir():
                shutil.copy(path, args.keep_logs / path.name)
        shutil.rmtree(log_dir, ignore_errors=True)

    print()
    ratios: dict[str, float | None] = {}
    for clock, title in (
        ("transfer", "msg/s, transfer clock: from the last poll before anything moved (headline)"),
        ("launch", "msg/s, launch clock: from spawning twistd / rabbitmqctl set_parameter"),
        ("ready", "msg/s, ready clock: relay from /healthz 200, shovel from set_parameter "
                  "returned (NOT a fair pair, see the docstring)"),
    ):  # fmt: skip
        print(title)
        lines, ratios[clock] = rate_table(results, clock, args.repeat)
        print("\n".join(lines))
        print()
    print(
        "per run: seconds by each clock; 'to ready' / 'to move' = seconds from launch to "
        "ready / to the transfer's start;\nCPU = the relay process's over the transfer "
        "window; life = its whole life up to SIGTERM; broker = beam.smp, transfer window"
    )
    print("\n".join(detail_table(results)))
    for r in results:
        extra = []
        if r.metrics:
            keys = ("consumed", "published", "confirmed", "acked", "redelivered", "requeued")
            extra.append(
                "relay counters: " + ", ".join(f"{k} {r.metrics.get(k, 0):,.0f}" for k in keys)
            )
            nonzero = {
                k: v for k, v in r.metrics.items() if v and k not in keys and k != "reconnects"
            }
            if nonzero:
                extra.append(f"other non-zero counters: {nonzero}")
        if r.relay_stop_seconds is not None:
            extra.append(
                f"stopped in {r.relay_stop_seconds:.2f} s after SIGTERM, exit status "
                f"{r.relay_exit} (-15: twistd re-raises the signal after a clean stop)"
            )
        if r.error:
            extra.append(f"ERROR: {r.error}")
        extra += r.notes
        if r.log_findings:
            extra.append(f"{len(r.log_findings)} suspicious log line(s):")
            extra += [f"    {line}" for line in r.log_findings[:20]]
        if extra:
            print(f"{r.contender} run {r.run}: " + "\n  ".join(extra))
    for path in profiles:
        print_profile(path)
    ratio = ratios.get("transfer")
    if ratio is not None:
        verdict = "met" if ratio >= 1.0 else "NOT met"
        print(f"\nrelay/shovel (transfer clock): {ratio:.2f}x, target >= 1.0x: {verdict}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

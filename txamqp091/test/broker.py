"""Locate, and if need be start, the RabbitMQ broker used by integration tests.

Integration tests call :func:`ensure_broker` before they connect. It checks that a broker
answers the AMQP 0-9-1 handshake at :func:`amqp_url`; when none does, it runs
``tools/rabbitmq.sh start`` once and checks again. A broker that still does not answer is
an error: integration tests fail rather than skip, so a missing broker is never mistaken
for a passing run.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "AMQP_URL",
    "DEFAULT_AMQP_URL",
    "RABBITMQ_SCRIPT",
    "amqp_url",
    "answers_handshake",
    "broker_address",
    "ensure_broker",
    "handshake_error",
]

#: The broker tests use when the ``AMQP_URL`` environment variable is unset.
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

#: The script that makes a broker reachable; found relative to this file in a source tree.
RABBITMQ_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "rabbitmq.sh"

#: The protocol header a client sends first (AMQP 0-9-1).
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

_FRAME_METHOD = 1
_CONNECTION_START = (10, 10)
# Frame type (1), channel (2), payload size (4), then the method's class and method ids.
_START_PREFIX = struct.Struct("!BHIHH")

# URLs whose broker has answered in this process, and those the script was run for.
_reachable: dict[str, tuple[str, int]] = {}
_start_attempted: set[str] = set()


def amqp_url() -> str:
    """Return the broker URL for tests: ``$AMQP_URL``, or :data:`DEFAULT_AMQP_URL`.

    :returns: an ``amqp://`` or ``amqps://`` URL.
    """
    return os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL


#: The broker URL as it was when this module was imported (see :func:`amqp_url`).
AMQP_URL = amqp_url()


def broker_address(url: str | None = None) -> tuple[str, int]:
    """Return the host and port named by an AMQP URL.

    :param url: the URL; :func:`amqp_url` when ``None``.
    :returns: ``(host, port)``, with the scheme's default port when the URL names none.
    :raises ValueError: if the URL is not an ``amqp``/``amqps`` URL or its port is invalid.
    """
    parts = urlsplit(amqp_url() if url is None else url)
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"not an amqp:// or amqps:// URL: {parts.scheme}://...")
    default_port = 5671 if parts.scheme == "amqps" else 5672
    return parts.hostname or "127.0.0.1", parts.port or default_port


def handshake_error(
    host: str, port: int, timeout: float = 5.0, *, tls: bool = False
) -> str | None:
    """Probe for a broker by opening an AMQP 0-9-1 handshake.

    The probe sends the protocol header and reads the first frame back, which must be a
    method frame on channel 0 carrying ``Connection.Start``. It then closes the socket.

    :param host: the broker's host name or address.
    :param port: the broker's TCP port.
    :param timeout: seconds allowed for connecting and for each read.
    :param tls: wrap the connection in TLS, without verifying the certificate.
    :returns: ``None`` if the broker answered, else why the probe failed.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            # Only liveness is checked here; the client under test verifies certificates.
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=host)
        with sock:
            sock.settimeout(timeout)
            sock.sendall(PROTOCOL_HEADER)
            data = b""
            while len(data) < _START_PREFIX.size:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return f"no AMQP handshake ({exc})"
    if len(data) < _START_PREFIX.size:
        return f"the connection closed after {len(data)} bytes"
    frame_type, channel, _size, class_id, method_id = _START_PREFIX.unpack_from(data)
    if (frame_type, channel, (class_id, method_id)) != (_FRAME_METHOD, 0, _CONNECTION_START):
        return f"the peer answered, but not with Connection.Start ({data[:11]!r})"
    return None


def answers_handshake(host: str, port: int, timeout: float = 5.0, *, tls: bool = False) -> bool:
    """Tell whether a broker answers the AMQP 0-9-1 handshake (see :func:`handshake_error`).

    :returns: ``True`` if ``Connection.Start`` came back.
    """
    return handshake_error(host, port, timeout, tls=tls) is None


def _run_start_script(url: str, timeout: float) -> str:
    """Run ``tools/rabbitmq.sh start`` for ``url`` and return a note on how it went."""
    env = dict(os.environ, AMQP_URL=url)
    try:
        result = subprocess.run(
            ["bash", str(RABBITMQ_SCRIPT), "start"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"tools/rabbitmq.sh start did not finish within {timeout:g}s"
    except OSError as exc:
        return f"tools/rabbitmq.sh start could not run ({exc})"
    if result.returncode == 0:
        return "tools/rabbitmq.sh start succeeded"
    output = (result.stderr or result.stdout).strip().splitlines()
    tail = "; ".join(output[-3:]) or "no output"
    return f"tools/rabbitmq.sh start exited with {result.returncode} ({tail})"


def ensure_broker(
    url: str | None = None,
    *,
    autostart: bool = True,
    timeout: float = 5.0,
    start_timeout: float = 600.0,
) -> tuple[str, int]:
    """Make sure a broker answers at ``url``, starting one if allowed, or raise.

    Success is remembered for the rest of the process, and the start script is run at
    most once per URL, so calling this from every test costs one probe at most.

    :param url: the broker URL; :func:`amqp_url` when ``None``.
    :param autostart: run ``tools/rabbitmq.sh start`` when no broker answers and the script
        exists in this source tree.
    :param timeout: seconds allowed for each handshake probe.
    :param start_timeout: seconds allowed for the start script, which may install the
        broker and waits for it to answer.
    :returns: the ``(host, port)`` that answered.
    :raises RuntimeError: if no broker answers the handshake.
    """
    url = amqp_url() if url is None else url
    cached = _reachable.get(url)
    if cached is not None:
        return cached
    host, port = broker_address(url)
    tls = urlsplit(url).scheme == "amqps"

    reason = handshake_error(host, port, timeout, tls=tls)
    if reason is not None and autostart and url not in _start_attempted:
        if RABBITMQ_SCRIPT.is_file():
            _start_attempted.add(url)
            note = _run_start_script(url, start_timeout)
            reason = handshake_error(host, port, timeout, tls=tls)
            if reason is not None:
                reason = f"{reason}; {note}"
        else:
            reason = f"{reason}; {RABBITMQ_SCRIPT} does not exist"
    if reason is not None:
        raise RuntimeError(
            f"RabbitMQ is not reachable at {host}:{port}: {reason}; "
            "start one with tools/rabbitmq.sh start"
        )
    _reachable[url] = (host, port)
    return host, port

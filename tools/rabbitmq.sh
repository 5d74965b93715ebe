#!/usr/bin/env bash
# Make a RabbitMQ broker reachable for txamqp091's tests, examples and CI.
#
#   tools/rabbitmq.sh status   exit 0 iff the broker answers an AMQP 0-9-1 handshake
#   tools/rabbitmq.sh start    use a broker that answers, or start (installing if needed) one
#   tools/rabbitmq.sh stop     stop the broker, but only if this script started it
#
# Environment:
#   AMQP_URL        where the broker is expected (default amqp://guest:guest@127.0.0.1:5672/%2F)
#   RABBITMQ_WAIT   seconds `start` waits for the handshake to answer (default 90)
#   TMPDIR          where the "started by this script" marker is kept (default /tmp)
set -euo pipefail

AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2F}"
RABBITMQ_WAIT="${RABBITMQ_WAIT:-90}"
MARKER="${TMPDIR:-/tmp}/txamqp091-rabbitmq.started"

log() { printf 'rabbitmq.sh: %s\n' "$*"; }
die() { printf 'rabbitmq.sh: error: %s\n' "$*" >&2; exit 1; }

# Prints "scheme host port" for AMQP_URL, or fails on a URL it cannot use.
read -r SCHEME HOST PORT < <(python3 -c '
import sys
from urllib.parse import urlsplit

url = urlsplit(sys.argv[1])
if url.scheme not in ("amqp", "amqps"):
    sys.exit(f"AMQP_URL must start with amqp:// or amqps://, got {sys.argv[1]!r}")
try:
    port = url.port
except ValueError as exc:
    sys.exit(f"AMQP_URL has an invalid port: {exc}")
default = 5671 if url.scheme == "amqps" else 5672
print(url.scheme, url.hostname or "127.0.0.1", port or default)
' "$AMQP_URL") || die "cannot parse AMQP_URL"

# The probe: send the AMQP 0-9-1 protocol header and expect the first frame back to be a
# method frame on channel 0 carrying Connection.Start (class 10, method 10).
PROBE_PY='
import socket, ssl, struct, sys

scheme, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
try:
    sock = socket.create_connection((host, port), timeout=timeout)
    if scheme == "amqps":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # a liveness probe, not an authenticated session
        sock = context.wrap_socket(sock, server_hostname=host)
    with sock:
        sock.settimeout(timeout)
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        data = b""
        while len(data) < 11:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
except OSError as exc:
    sys.exit(f"no AMQP handshake from {host}:{port}: {exc}")
if len(data) < 11:
    sys.exit(f"no AMQP handshake from {host}:{port}: connection closed after {len(data)} bytes")
frame_type, channel, _size, class_id, method_id = struct.unpack("!BHIHH", data[:11])
if (frame_type, channel, class_id, method_id) != (1, 0, 10, 10):
    sys.exit(f"{host}:{port} answered, but not with Connection.Start: {data[:11]!r}")
'

# Exit status 0 iff the broker answers; the reason for a failure goes to stderr.
probe() {
    python3 -c "$PROBE_PY" "$SCHEME" "$HOST" "$PORT" "${1:-5}"
}

is_local_host() {
    case "$HOST" in
        127.* | localhost | ::1 | "$(hostname 2>/dev/null || echo localhost)") return 0 ;;
        *) return 1 ;;
    esac
}

require_root() {
    if [ "$(id -u)" != 0 ]; then
        die "$1 needs root; run 'sudo bash tools/rabbitmq.sh start' or start a broker yourself"
    fi
}

# The OS pid of the local node, or nothing when no node answers the CLI tools.
node_pid() {
    timeout 30 rabbitmqctl -q eval 'os:getpid().' 2>/dev/null | tr -dc '0-9' || true
}

cmd_status() {
    if probe 5; then
        log "a broker answers the AMQP handshake at $HOST:$PORT"
        return 0
    fi
    return 1
}

cmd_start() {
    if probe 5 2>/dev/null; then
        log "using the existing broker at $HOST:$PORT (it already answers the AMQP handshake)"
        return 0
    fi
    if ! is_local_host; then
        die "no broker answers at $HOST:$PORT and this script only starts a local one;" \
            "start the broker at $HOST yourself or point AMQP_URL at 127.0.0.1"
    fi
    if [ "$SCHEME" != amqp ]; then
        die "no broker answers at $HOST:$PORT; this script starts a plain-AMQP broker only," \
            "so configure TLS on your broker yourself"
    fi

    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        require_root "installing rabbitmq-server"
        log "rabbitmq-server is not installed; installing Debian's package"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server
    fi

    # The package's own init may already have started a node; start one only if none runs.
    if [ -n "$(node_pid)" ]; then
        log "a RabbitMQ node is running; waiting for it to answer at $HOST:$PORT"
    else
        require_root "starting rabbitmq-server"
        log "starting rabbitmq-server -detached (AMQP port $PORT)"
        RABBITMQ_NODE_PORT="$PORT" rabbitmq-server -detached
        printf 'starting\n' >"$MARKER"
    fi

    local deadline=$((SECONDS + RABBITMQ_WAIT))
    until probe 2 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            probe 2 || true
            die "RabbitMQ did not answer the AMQP handshake at $HOST:$PORT within" \
                "${RABBITMQ_WAIT}s (see /var/log/rabbitmq/ for the broker's own logs)"
        fi
        sleep 1
    done
    if [ -f "$MARKER" ]; then
        # Record which node this script started, so `stop` never stops another one.
        node_pid >"$MARKER"
    fi
    log "RabbitMQ answers the AMQP handshake at $HOST:$PORT"
}

cmd_stop() {
    if [ ! -f "$MARKER" ]; then
        log "this script did not start the running broker (no $MARKER); leaving it alone"
        return 0
    fi
    local started running
    started="$(tr -dc '0-9' <"$MARKER")"
    running="$(node_pid)"
    if [ -z "$running" ]; then
        log "no RabbitMQ node is running; removing the stale marker $MARKER"
        rm -f "$MARKER"
        return 0
    fi
    if [ -z "$started" ] || [ "$started" != "$running" ]; then
        log "the running node (pid $running) is not the one this script started" \
            "(pid ${started:-unknown}); leaving it alone and removing the stale marker"
        rm -f "$MARKER"
        return 0
    fi
    log "stopping the RabbitMQ node this script started (pid $running)"
    rabbitmqctl stop
    rm -f "$MARKER"
}

case "${1:-}" in
    status) cmd_status ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    *)
        printf 'usage: %s start|stop|status\n' "$0" >&2
        exit 2
        ;;
esac

"""Start a second RabbitMQ node with a TLS listener, for the TLS integration tests.

:func:`tls_broker` starts the node on its first call and returns the same
:class:`TLSBroker` on every later call in the process; the node is stopped, and its files
removed, when the process exits (or by :func:`stop_tls_broker`). The main broker
(:mod:`txamqp091.test.broker`) is neither used nor touched.

The node gets fresh certificates made with ``cryptography``: a test CA that signs the
server certificate (``localhost`` and ``127.0.0.1``) and a client certificate whose common
name is a user on the node, so the client can log in with the ``EXTERNAL`` mechanism; and
an unrelated CA that signed nothing the node uses, for "unknown CA" tests. The node listens
for AMQP over TLS on ``127.0.0.1`` only, and for plain AMQP nowhere. It verifies a client
certificate when one is sent but does not require one. It offers ``PLAIN`` and
``EXTERNAL`` to every client (``EXTERNAL`` succeeds only with the client certificate), and
loads at boot the users ``guest`` (password ``guest``, from any address) and the client's
common name (a random password), both with full permissions on the vhost ``/``.

The node is a ``rabbitmq-server`` run with environment variables pointing every file and
directory it uses into a temporary directory, under its own name and ports. Run as root,
it runs as the ``rabbitmq`` user (so every file it uses is owned by that user), with that
user's home directory and so that user's Erlang cookie: ``rabbitmqctl -n NODENAME ...``
reaches it as it reaches the main node. It is started in its own process group and, when
:func:`tls_broker` is called from the main thread, with a parent-death signal, so it stops
even if the test process is killed before its exit handlers run.

A node that does not boot within :data:`BOOT_TIMEOUT` seconds is an error, never a skip:
:func:`tls_broker` raises :class:`RuntimeError` quoting the first errors and the last lines
of the node's output and log (its files are then removed), and raises again at once on
later calls instead of spending another boot on each test.
"""

from __future__ import annotations

import atexit
import base64
import datetime
import hashlib
import ipaddress
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["BOOT_TIMEOUT", "CLIENT_CN", "TLSBroker", "stop_tls_broker", "tls_broker"]

#: The client certificate's common name, which is also the node's user for EXTERNAL.
CLIENT_CN = "txamqp091-client"

#: Seconds allowed for the node to boot before :func:`tls_broker` gives up.
BOOT_TIMEOUT = 90.0

#: Seconds allowed for the node to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 60.0

_HOST = "localhost"
_ADDRESS = "127.0.0.1"
_SERVICE_USER = "rabbitmq"
_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
# Frame type (1), channel (2), payload size (4), then the method's class and method ids.
_START_PREFIX = struct.Struct("!BHIHH")
_LOG_TAIL_LINES = 30
_LOG_ERROR_LINES = 15


@dataclass(frozen=True)
class TLSBroker:
    """A running RabbitMQ node that speaks AMQP 0-9-1 over TLS; paths are PEM files."""

    #: The host name to connect to, which the server certificate names.
    host: str
    #: The TLS AMQP port.
    port: int
    #: The CA that signed the server and client certificates.
    ca_cert: str
    #: The client certificate, for the EXTERNAL mechanism.
    client_cert: str
    #: The client certificate's private key, unencrypted.
    client_key: str
    #: The client certificate's common name, a user on the node.
    client_cn: str
    #: A CA that signed neither the server's certificate nor the client's.
    other_ca_cert: str
    #: The node's Erlang node name, for ``rabbitmqctl -n``.
    nodename: str

    def url(self, *, user: str = "guest", password: str = "guest", vhost: str = "/") -> str:
        """Return an ``amqps://`` URL for this node (with no TLS options in it).

        :param user: the user name, ``guest`` by default.
        :param password: the password, ``guest`` by default.
        :param vhost: the virtual host, ``/`` by default.
        """
        return (
            f"amqps://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{self.host}:{self.port}/{quote(vhost, safe='')}"
        )


class _Node:
    """The started node: its process, its files, and who started it."""

    def __init__(self, broker: TLSBroker, process: subprocess.Popen[bytes], workdir: Path):
        self.broker = broker
        self.process = process
        self.workdir = workdir
        self.owner_pid = os.getpid()


_node: _Node | None = None
_boot_error: RuntimeError | None = None
_atexit_registered = False


def tls_broker() -> TLSBroker:
    """Return the TLS node, starting it on the first call in this process.

    :returns: where the node listens, and the certificates to use with it.
    :raises RuntimeError: if the node did not boot (then and on every later call).
    """
    global _boot_error, _atexit_registered
    if _node is not None:
        return _node.broker
    if _boot_error is not None:
        # A fresh exception: re-raising one object would pile up every caller's traceback.
        raise RuntimeError(f"(an earlier call in this process failed) {_boot_error}")
    if not _atexit_registered:
        atexit.register(stop_tls_broker)
        _atexit_registered = True
    try:
        return _start()
    except RuntimeError as exc:
        _boot_error = exc
        raise


def stop_tls_broker() -> None:
    """Stop the TLS node if this process started it, and remove its files.

    The node gets SIGTERM, on which ``rabbitmq-server`` stops RabbitMQ cleanly; if it has
    not exited within :data:`STOP_TIMEOUT` seconds its process group is killed. A later
    :func:`tls_broker` call starts a new node.
    """
    global _node, _boot_error
    node, _node = _node, None
    _boot_error = None
    if node is None or node.owner_pid != os.getpid():
        return
    _terminate(node.process)
    shutil.rmtree(node.workdir, ignore_errors=True)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop ``rabbitmq-server`` (SIGTERM, then SIGKILL to its group) and reap it."""
    if process.poll() is None:
        try:
            process.terminate()
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    # Anything left in the group (normally nothing: the script exits after the VM) dies.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _free_port() -> int:
    """Return a local TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_ADDRESS, 0))
        port: int = sock.getsockname()[1]
    return port


# Certificates ------------------------------------------------------------------------------

#: A CA's certificate and the key it signs with.
_Issuer = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "txamqp091 tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: _Issuer | None,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """Make a certificate valid from a day ago for 30 days; self-signed if no issuer."""
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), False
        )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(signing_key, hashes.SHA256())


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _make_ca(directory: Path, stem: str, common_name: str) -> _Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(
        common_name,
        key,
        None,
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (_key_usage(cert_sign=True), True),
        ],
    )
    _write_cert(directory / f"{stem}.pem", cert)
    return cert, key


def _make_leaf(
    directory: Path,
    stem: str,
    common_name: str,
    ca: _Issuer,
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName] | None = None,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(cert_sign=False), True),
        (x509.ExtendedKeyUsage([usage]), False),
    ]
    if names:
        extensions.append((x509.SubjectAlternativeName(names), False))
    _write_cert(directory / f"{stem}.pem", _certificate(common_name, key, ca, extensions))
    _write_key(directory / f"{stem}_key.pem", key)


def _make_certificates(directory: Path) -> None:
    """Write ``ca.pem``, ``server.pem``, ``client.pem`` and ``other_ca.pem`` in ``directory``.

    The server and client keys go in ``server_key.pem`` and ``client_key.pem``.
    """
    ca = _make_ca(directory, "ca", "txamqp091 test CA")
    _make_leaf(
        directory,
        "server",
        _HOST,
        ca,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName(_HOST), x509.IPAddress(ipaddress.ip_address(_ADDRESS))],
    )
    _make_leaf(directory, "client", CLIENT_CN, ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    _make_ca(directory, "other_ca", "txamqp091 unrelated test CA")


# The node's files ---------------------------------------------------------------------------


def _password_hash(password: str) -> str:
    """Hash a password as RabbitMQ's ``rabbit_password_hashing_sha256`` does."""
    salt = secrets.token_bytes(4)
    digest = hashlib.sha256(salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def _definitions() -> dict[str, object]:
    """The users, vhost and permissions the node loads at boot.

    Loading definitions at boot replaces RabbitMQ's default user and vhost, so ``guest``
    and ``/`` are defined here too.
    """
    users = {"guest": ("guest", ["administrator"]), CLIENT_CN: (secrets.token_urlsafe(), [])}
    return {
        "users": [
            {
                "name": name,
                "password_hash": _password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": tags,
                "limits": {},
            }
            for name, (password, tags) in users.items()
        ],
        "vhosts": [{"name": "/"}],
        "permissions": [
            {"user": name, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
            for name in users
        ],
    }


def _write_config(workdir: Path, certs: Path, port: int) -> None:
    """Write the node's ``rabbitmq.conf``, plugins file, definitions and empty env file."""
    definitions = workdir / "definitions.json"
    definitions.write_text(json.dumps(_definitions(), indent=2))
    (workdir / "enabled_plugins").write_text("[rabbitmq_auth_mechanism_ssl].\n")
    (workdir / "rabbitmq-env.conf").write_text("# Empty: the environment says it all.\n")
    (workdir / "rabbitmq.conf").write_text(
        "\n".join(
            [
                "listeners.tcp = none",
                f"listeners.ssl.default = {_ADDRESS}:{port}",
                f"ssl_options.cacertfile = {certs / 'ca.pem'}",
                f"ssl_options.certfile = {certs / 'server.pem'}",
                f"ssl_options.keyfile = {certs / 'server_key.pem'}",
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = false",
                "auth_mechanisms.1 = PLAIN",
                "auth_mechanisms.2 = EXTERNAL",
                "ssl_cert_login_from = common_name",
                "loopback_users = none",
                f"load_definitions = {definitions}",
                "log.console = false",
                "log.file.level = info",
                "",
            ]
        )
    )


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            os.chown(os.path.join(directory, name), uid, gid)


# Starting -----------------------------------------------------------------------------------


def _rabbitmq_server() -> str:
    """Find the ``rabbitmq-server`` script itself, not the Debian wrapper that su's to it."""
    packaged = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    if packaged.is_file():
        return str(packaged)
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise RuntimeError("cannot start the TLS test broker: rabbitmq-server is not installed")
    return found


def _server_environment(workdir: Path, nodename: str, dist_port: int, home: str) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RABBITMQ_", "ERL_"))
        and name not in ("HOME", "NOTIFY_SOCKET", "CONF_ENV_FILE")
    }
    environment.update(
        HOME=home,
        RABBITMQ_NODENAME=nodename,
        RABBITMQ_DIST_PORT=str(dist_port),
        RABBITMQ_CONF_ENV_FILE=str(workdir / "rabbitmq-env.conf"),
        RABBITMQ_CONFIG_FILE=str(workdir / "rabbitmq.conf"),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(workdir / "advanced.config"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(workdir / "enabled_plugins"),
        RABBITMQ_MNESIA_BASE=str(workdir / "mnesia"),
        RABBITMQ_LOG_BASE=str(workdir / "log"),
        RABBITMQ_PID_FILE=str(workdir / "node.pid"),
        # Erlang distribution on the loopback interface only, as the main node has it.
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
    )
    return environment


def _excerpt(path: Path) -> str:
    """The first error lines of a node's output or log, then its last lines."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"--- {path}: cannot read ({exc})"
    errors = [line for line in lines if "[error]" in line or "BOOT FAILED" in line]
    parts = [f"--- {path}: {len(lines)} lines"]
    if errors:
        parts += ["first errors:", *errors[:_LOG_ERROR_LINES]]
    parts += [f"last {min(len(lines), _LOG_TAIL_LINES)} lines:", *lines[-_LOG_TAIL_LINES:]]
    return "\n".join(parts)


def _logs(workdir: Path) -> str:
    """Excerpts of the node's standard output and of its log files."""
    paths = [workdir / "server.out", *sorted((workdir / "log").glob("*.log"))]
    return "\n".join(_excerpt(path) for path in paths)


def _probe(broker: TLSBroker, timeout: float = 5.0) -> str | None:
    """Open a verified TLS connection and read Connection.Start's prefix; ``None`` if it did."""
    context = ssl.create_default_context(cafile=broker.ca_cert)
    try:
        with socket.create_connection((broker.host, broker.port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=broker.host) as sock:
                sock.sendall(_PROTOCOL_HEADER)
                data = b""
                while len(data) < _START_PREFIX.size:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return f"the connection closed after {len(data)} bytes"
                    data += chunk
    except OSError as exc:
        return f"no TLS AMQP handshake ({exc})"
    frame_type, channel, _size, class_id, method_id = _START_PREFIX.unpack_from(data)
    if (frame_type, channel, class_id, method_id) != (1, 0, 10, 10):
        return f"the node answered, but not with Connection.Start ({data[:11]!r})"
    return None


def _start() -> TLSBroker:
    """Start the node and wait for it; on any failure, leave nothing behind and raise.

    :raises RuntimeError: why the node did not boot, with excerpts of its output and logs.
    """
    global _node
    workdir = Path(tempfile.mkdtemp(prefix="txamqp091-tls-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        broker, process = _launch(workdir)
        reason = _wait(broker, process)
        if reason is None:
            _node = _Node(broker, process, workdir)
            return broker
        logs = _logs(workdir)
    except BaseException as exc:
        if process is not None:
            _terminate(process)
        shutil.rmtree(workdir, ignore_errors=True)
        if isinstance(exc, Exception) and not isinstance(exc, RuntimeError):
            raise RuntimeError(f"cannot start the TLS test broker: {exc!r}") from exc
        raise
    _terminate(process)
    shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError(
        f"the TLS test broker {broker.nodename} did not boot on {_ADDRESS}:{broker.port} "
        f"({reason})\n{logs}"
    )


def _launch(workdir: Path) -> tuple[TLSBroker, subprocess.Popen[bytes]]:
    """Write the node's files in ``workdir`` and start ``rabbitmq-server``."""
    certs = workdir / "certs"
    certs.mkdir()
    _make_certificates(certs)
    port, dist_port = _free_port(), _free_port()
    _write_config(workdir, certs, port)
    for directory in ("mnesia", "log"):
        (workdir / directory).mkdir()

    command = [_rabbitmq_server()]
    home = os.environ.get("HOME", str(workdir))
    if os.geteuid() == 0:
        # RabbitMQ runs as its own user, as the packaged service does; with that user's
        # home it shares the main node's Erlang cookie, so rabbitmqctl reaches both.
        try:
            account = pwd.getpwnam(_SERVICE_USER)
        except KeyError:
            raise RuntimeError(
                f"cannot start the TLS test broker: there is no {_SERVICE_USER!r} user"
            ) from None
        _chown_tree(workdir, account.pw_uid, account.pw_gid)
        home = account.pw_dir
        switch = ["--reuid", str(account.pw_uid), "--regid", str(account.pw_gid)]
        command = ["setpriv", *switch, "--clear-groups", "--", *command]
    if threading.current_thread() is threading.main_thread() and shutil.which("setpriv"):
        # Stop with the test process even if it dies without running its exit handlers.
        # (The signal is tied to the creating thread, hence the main thread only.)
        if command[0] == "setpriv":
            command[1:1] = ["--pdeathsig", "TERM"]
        else:
            command = ["setpriv", "--pdeathsig", "TERM", "--", *command]

    nodename = f"txamqp091-tls-{os.getpid()}-{secrets.token_hex(3)}@{_HOST}"
    broker = TLSBroker(
        host=_HOST,
        port=port,
        ca_cert=str(certs / "ca.pem"),
        client_cert=str(certs / "client.pem"),
        client_key=str(certs / "client_key.pem"),
        client_cn=CLIENT_CN,
        other_ca_cert=str(certs / "other_ca.pem"),
        nodename=nodename,
    )
    with open(workdir / "server.out", "wb") as output:
        process = subprocess.Popen(
            command,
            env=_server_environment(workdir, nodename, dist_port, home),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return broker, process


def _wait(broker: TLSBroker, process: subprocess.Popen[bytes]) -> str | None:
    """Poll until the node answers a verified TLS handshake, exits, or time runs out.

    :returns: ``None`` once it answers, else why it did not.
    """
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:
        if process.poll() is not None:
            return f"rabbitmq-server exited with status {process.returncode}"
        reason = _probe(broker)
        if reason is None:
            return None
        if time.monotonic() >= deadline:
            return f"{reason}, still after {BOOT_TIMEOUT:g}s"
        time.sleep(0.25)  # the poll interval; the deadline above bounds the wait

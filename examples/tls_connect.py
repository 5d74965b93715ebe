#!/usr/bin/env python3
"""Connect over TLS, optionally with a client certificate and SASL EXTERNAL.

Builds the TLS settings from the command line, either as a standard-library
``ssl.SSLContext`` (the default) or as a Twisted connection creator from
``optionsForClientTLS`` (``--twisted``), connects, and makes a round trip
through a server-named queue to show that the connection works.

With ``--cert`` and ``--key`` the client presents a certificate; add
``--external`` to log in with it (the SASL ``EXTERNAL`` mechanism, the user
being the certificate's common name) instead of the URL's user and password.

Usage::

    python examples/tls_connect.py --url amqps://guest:guest@localhost:5671/%2F --ca ca.pem
    python examples/tls_connect.py --url amqps://localhost:5671/%2F --ca ca.pem \\
        --cert client.pem --key client_key.pem --external [--twisted]
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.internet import ssl as twisted_ssl

from txamqp091 import ExternalCredentials, SSLOptions, URLParameters
from txamqp091.connect import connect
from txamqp091.exceptions import AMQPError


def tls_parameters(args: argparse.Namespace) -> URLParameters:
    """Connection parameters for ``args.url`` with the TLS settings asked for."""
    parameters = URLParameters(args.url)
    if parameters.ssl_options is None:
        raise SystemExit("--url must be an amqps:// URL")
    host = parameters.host  # checked against the broker's certificate
    if args.twisted:
        trust = twisted_ssl.Certificate.loadPEM(Path(args.ca).read_bytes()) if args.ca else None
        client = None
        if args.cert:
            pem = Path(args.cert).read_bytes() + b"\n" + Path(args.key).read_bytes()
            client = twisted_ssl.PrivateCertificate.loadPEM(pem)  # type: ignore[no-untyped-call]
        creator = twisted_ssl.optionsForClientTLS(
            host,
            trustRoot=trust,  # None: the platform's CA certificates
            clientCertificate=client,
        )
        parameters.ssl_options = SSLOptions(creator)
    else:
        # Verifies the certificate chain and the host name; cafile=None
        # means the system's CA certificates.
        context = ssl.create_default_context(cafile=args.ca)
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
        parameters.ssl_options = SSLOptions(context, server_hostname=host)
    if args.external:
        parameters.credentials = ExternalCredentials()
    return parameters


@defer.inlineCallbacks
def main(reactor: Any, args: argparse.Namespace) -> Generator[defer.Deferred[Any], Any, None]:
    """Connect over TLS and make a round trip; raise SystemExit on failure."""
    parameters = tls_parameters(args)
    mechanism = parameters.credentials.TYPE
    try:
        # A TLS failure (unknown CA, wrong host name, refused client
        # certificate) fails this Deferred with AMQPTLSError.
        connection = yield connect(reactor, parameters)
    except AMQPError as exc:
        raise SystemExit(f"could not connect: {exc!r}") from None
    kind = "Twisted creator" if args.twisted else "ssl.SSLContext"
    print(f"connected over TLS ({kind}) to {parameters.host}:{parameters.port}")
    print(f"authenticated with {mechanism}")
    try:
        channel = yield connection.channel()
        declared = yield channel.queue_declare("", exclusive=True)
        queue = declared.method.queue
        channel.basic_publish("", queue, b"sent over TLS")
        message = None
        for _ in range(50):
            message = yield channel.basic_get(queue, auto_ack=True)
            if message is not None:
                break
            yield task.deferLater(reactor, 0.1, lambda: None)
        if message is None:
            raise SystemExit("the message never arrived")
        print(f"round trip through {queue!r}: {message.body!r}")
        yield channel.queue_delete(queue)
        yield channel.close()
    except AMQPError as exc:
        raise SystemExit(f"failed: {exc!r}") from None
    finally:
        yield connection.close()
        print("closed the connection")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Read the command line; print the usage and exit 2 when it is empty."""
    parser = argparse.ArgumentParser(description="Connect to RabbitMQ over TLS.")
    parser.add_argument("--url", required=True, help="broker URL, amqps://...")
    parser.add_argument("--ca", help="CA certificates (PEM) to verify the broker with")
    parser.add_argument("--cert", help="client certificate (PEM)")
    parser.add_argument("--key", help="the client certificate's private key (PEM)")
    parser.add_argument(
        "--external", action="store_true", help="log in with the certificate (SASL EXTERNAL)"
    )
    parser.add_argument(
        "--twisted", action="store_true", help="use optionsForClientTLS, not ssl.SSLContext"
    )
    if not argv:
        parser.print_help(sys.stderr)
        raise SystemExit(2)
    args = parser.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    if args.external and not args.cert:
        parser.error("--external needs --cert and --key")
    return args


if __name__ == "__main__":
    task.react(main, (parse_args(sys.argv[1:]),))

"""Tests for :mod:`txamqp091.parameters` and :mod:`txamqp091.credentials`."""

from __future__ import annotations

import copy
import datetime
import math
import shutil
import ssl
import tempfile
from typing import Any
from urllib.parse import quote

import pika
import pika.channel
import pika.credentials
import pika.spec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import ssl as twisted_ssl
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import credentials as creds
from txamqp091 import parameters as params
from txamqp091.credentials import ExternalCredentials, PlainCredentials
from txamqp091.parameters import ConnectionParameters, Parameters, SSLOptions, URLParameters

SECRET = "s3cr3t-Pa55w0rd"


class _Start:
    """Minimal stand-in for a ``Connection.Start`` method."""

    def __init__(self, mechanisms: bytes | str) -> None:
        self.mechanisms = mechanisms


def _write_self_signed(directory: FilePath[str]) -> tuple[str, str]:
    """Write a throw-away self-signed certificate and key; return their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory.child("cert.pem")
    key_path = directory.child("key.pem")
    cert_path.setContent(cert.public_bytes(serialization.Encoding.PEM))
    key_path.setContent(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path.path, key_path.path


class ConstantsTests(SynchronousTestCase):
    """Class constants mirror pika's."""

    def test_default_constants_match_pika(self) -> None:
        """Every ``DEFAULT_*`` constant of pika's Parameters has the same value
        here (credentials compared by username and password)."""
        names = [name for name in vars(pika.connection.Parameters) if name.startswith("DEFAULT_")]
        self.assertTrue(names)
        for name in names:
            ours = getattr(Parameters, name)
            theirs = getattr(pika.connection.Parameters, name)
            if name == "DEFAULT_CREDENTIALS":
                self.assertEqual(
                    (ours.username, ours.password), (theirs.username, theirs.password)
                )
            else:
                self.assertEqual(ours, theirs, name)

    def test_specific_defaults(self) -> None:
        """The documented defaults: localhost:5672, vhost '/', 65535 channels,
        131072-byte frames, TLS port 5671, guest/guest."""
        self.assertEqual(Parameters.DEFAULT_HOST, "localhost")
        self.assertEqual(Parameters.DEFAULT_PORT, 5672)
        self.assertEqual(Parameters.DEFAULT_SSL_PORT, 5671)
        self.assertEqual(Parameters.DEFAULT_VIRTUAL_HOST, "/")
        self.assertEqual(Parameters.DEFAULT_CHANNEL_MAX, 65535)
        self.assertEqual(Parameters.DEFAULT_FRAME_MAX, 131072)
        self.assertEqual(Parameters.DEFAULT_USERNAME, "guest")
        self.assertEqual(Parameters.DEFAULT_PASSWORD, "guest")
        self.assertIsNone(Parameters.DEFAULT_HEARTBEAT_TIMEOUT)
        self.assertEqual(Parameters.DEFAULT_SOCKET_TIMEOUT, 10.0)
        self.assertEqual(Parameters.DEFAULT_STACK_TIMEOUT, 15.0)
        self.assertEqual(Parameters.DEFAULT_RETRY_DELAY, 2.0)
        self.assertEqual(Parameters.DEFAULT_CONNECTION_ATTEMPTS, 1)
        self.assertEqual(Parameters.DEFAULT_LOCALE, "en_US")
        self.assertFalse(Parameters.DEFAULT_SSL)

    def test_frame_and_channel_limits_match_pika(self) -> None:
        """FRAME_MIN_SIZE, FRAME_MAX_SIZE and MAX_CHANNELS equal pika's."""
        self.assertEqual(params.FRAME_MIN_SIZE, pika.spec.FRAME_MIN_SIZE)
        self.assertEqual(params.FRAME_MAX_SIZE, pika.spec.FRAME_MAX_SIZE)
        self.assertEqual(params.FRAME_MIN_SIZE, 4096)
        self.assertEqual(params.FRAME_MAX_SIZE, 131072)
        self.assertEqual(params.MAX_CHANNELS, pika.channel.MAX_CHANNELS)


class DefaultsTests(SynchronousTestCase):
    """A ConnectionParameters() with no arguments matches pika's."""

    _PROPERTIES = [
        "host",
        "port",
        "virtual_host",
        "channel_max",
        "frame_max",
        "heartbeat",
        "ssl_options",
        "connection_attempts",
        "retry_delay",
        "socket_timeout",
        "stack_timeout",
        "locale",
        "blocked_connection_timeout",
        "client_properties",
        "tcp_options",
    ]

    def test_defaults_match_pika(self) -> None:
        """Each property of a default ConnectionParameters equals pika's."""
        ours, theirs = ConnectionParameters(), pika.ConnectionParameters()
        for name in self._PROPERTIES:
            self.assertEqual(getattr(ours, name), getattr(theirs, name), name)
        assert isinstance(ours.credentials, PlainCredentials)
        self.assertEqual(ours.credentials.username, theirs.credentials.username)
        self.assertEqual(ours.credentials.password, theirs.credentials.password)

    def test_base_parameters_defaults(self) -> None:
        """The base Parameters class is instantiable with the same defaults."""
        base = Parameters()
        for name in self._PROPERTIES:
            self.assertEqual(getattr(base, name), getattr(ConnectionParameters(), name), name)

    def test_default_credentials_copied(self) -> None:
        """Each instance gets its own copy of DEFAULT_CREDENTIALS, so erasing
        them on one connection cannot affect the class default."""
        first = ConnectionParameters()
        self.assertIsNot(first.credentials, Parameters.DEFAULT_CREDENTIALS)
        self.assertEqual(first.credentials, Parameters.DEFAULT_CREDENTIALS)

    def test_subclass_defaults_validated(self) -> None:
        """A subclass overriding a DEFAULT_* constant gets it through the
        setter, so an invalid override is rejected."""

        class Custom(ConnectionParameters):
            DEFAULT_HOST = "rabbit.example"

        class Broken(ConnectionParameters):
            DEFAULT_CHANNEL_MAX = 0

        self.assertEqual(Custom().host, "rabbit.example")
        self.assertRaises(ValueError, Broken)

    def test_slots_reject_typos(self) -> None:
        """Assigning a misspelled attribute raises AttributeError, as pika's
        ``__slots__`` does."""
        parameters = ConnectionParameters()
        with self.assertRaises(AttributeError):
            parameters.hearbeat = 10  # type: ignore[attr-defined]

    def test_unexpected_keyword(self) -> None:
        """An unknown keyword argument raises TypeError."""
        with self.assertRaises(TypeError):
            ConnectionParameters(hearbeat=10)  # type: ignore[call-arg]


class OptionTests(SynchronousTestCase):
    """Every option is accepted via the constructor and via the setter."""

    _GOOD: dict[str, list[Any]] = {
        "host": ["rabbit", "10.0.0.1", "::1"],
        "virtual_host": ["/", "", "vhost", "a/b"],
        "channel_max": [1, 2047, 65535],
        "frame_max": [4096, 8192, 131072],
        "heartbeat": [None, 0, 60, 65535],
        "connection_attempts": [1, 5],
        "retry_delay": [0, 0.5, 3],
        "socket_timeout": [None, 0.25, 5],
        "stack_timeout": [None, 0.25, 30],
        "locale": ["en_US", "fr_FR"],
        "blocked_connection_timeout": [None, 0, 12.5],
        "client_properties": [None, {}, {"connection_name": "worker-1"}],
        "tcp_options": [
            None,
            {},
            {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3, "TCP_USER_TIMEOUT": 0},
        ],
        "port": [1, 5672, 65535],
    }

    def test_constructor_and_setter_accept_valid_values(self) -> None:
        """Each valid value given to the constructor or assigned later is
        returned by the property (numbers compare equal)."""
        for name, values in self._GOOD.items():
            for value in values:
                built = ConnectionParameters(**{name: value})
                self.assertEqual(getattr(built, name), value, (name, value))
                later = ConnectionParameters()
                setattr(later, name, value)
                self.assertEqual(getattr(later, name), value, (name, value))

    def test_float_options_are_floats(self) -> None:
        """retry_delay and the timeouts given as int are stored as float."""
        parameters = ConnectionParameters(
            retry_delay=3, socket_timeout=4, stack_timeout=5, blocked_connection_timeout=6
        )
        for name in (
            "retry_delay",
            "socket_timeout",
            "stack_timeout",
            "blocked_connection_timeout",
        ):
            self.assertIsInstance(getattr(parameters, name), float, name)

    def test_port_string_accepted(self) -> None:
        """As in pika, a port given as a string of digits is converted."""
        self.assertEqual(ConnectionParameters(port="5673").port, 5673)

    def test_port_defaults_follow_ssl(self) -> None:
        """Without an explicit port, 5671 is used when ssl_options is given and
        5672 otherwise; an explicit port always wins."""
        tls = SSLOptions(ssl.create_default_context())
        self.assertEqual(ConnectionParameters(ssl_options=tls).port, 5671)
        self.assertEqual(ConnectionParameters(ssl_options=None).port, 5672)
        self.assertEqual(ConnectionParameters(ssl_options=tls, port=1234).port, 1234)
        self.assertEqual(
            ConnectionParameters(ssl_options=tls).port,
            pika.ConnectionParameters(
                ssl_options=pika.SSLOptions(ssl.create_default_context())
            ).port,
        )

    def test_heartbeat_callable(self) -> None:
        """A callable ``(connection, server_value) -> int | None`` is accepted
        for heartbeat and stored as is."""

        def choose(connection: object, server_value: int) -> int | None:
            return min(server_value, 30)

        parameters = ConnectionParameters(heartbeat=choose)
        self.assertIs(parameters.heartbeat, choose)
        parameters.heartbeat = lambda connection, value: None
        self.assertTrue(callable(parameters.heartbeat))

    def test_credentials_option(self) -> None:
        """PlainCredentials and ExternalCredentials are accepted and copied."""
        plain = PlainCredentials("user", SECRET)
        parameters = ConnectionParameters(credentials=plain)
        self.assertEqual(parameters.credentials, plain)
        self.assertIsNot(parameters.credentials, plain)
        parameters.credentials = ExternalCredentials()
        self.assertIsInstance(parameters.credentials, ExternalCredentials)

    def test_custom_credentials_type(self) -> None:
        """A class appended to credentials.VALID_TYPES becomes acceptable."""

        class Token(ExternalCredentials):
            pass

        class Other:
            pass

        creds.VALID_TYPES.append(Other)
        self.addCleanup(creds.VALID_TYPES.remove, Other)
        parameters = ConnectionParameters()
        parameters.credentials = Other()  # type: ignore[assignment]
        self.assertIsInstance(parameters.credentials, Other)
        parameters.credentials = Token()
        self.assertIsInstance(parameters.credentials, Token)

    def test_ssl_options_option(self) -> None:
        """ssl_options accepts an SSLOptions instance or None."""
        tls = SSLOptions(ssl.create_default_context(), server_hostname="rabbit")
        parameters = ConnectionParameters(ssl_options=tls)
        self.assertIs(parameters.ssl_options, tls)
        parameters.ssl_options = None
        self.assertIsNone(parameters.ssl_options)

    def test_client_properties_deep_copied(self) -> None:
        """client_properties is deep-copied, so later mutation of the caller's
        dictionary does not leak in."""
        original = {"capabilities": {"x": True}}
        parameters = ConnectionParameters(client_properties=original)
        original["capabilities"]["x"] = False
        self.assertEqual(parameters.client_properties, {"capabilities": {"x": True}})

    def test_tcp_options_copied(self) -> None:
        """tcp_options is copied on assignment."""
        original = {"TCP_KEEPIDLE": 60}
        parameters = ConnectionParameters(tcp_options=original)
        original["TCP_KEEPIDLE"] = 1
        self.assertEqual(parameters.tcp_options, {"TCP_KEEPIDLE": 60})

    def test_tcp_option_names(self) -> None:
        """TCP_OPTION_NAMES lists the four supported socket options."""
        self.assertEqual(
            params.TCP_OPTION_NAMES,
            {"TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT"},
        )


class ValidationTests(SynchronousTestCase):
    """Wrong types raise TypeError; bad values raise ValueError."""

    _TYPE_ERRORS: dict[str, list[Any]] = {
        "host": [None, 1, b"host"],
        "port": [None, 5672.0, "http", b"5672", True, []],
        "virtual_host": [None, 1, b"/"],
        "credentials": [None, ("guest", "guest"), pika.credentials.PlainCredentials("a", "b")],
        "channel_max": [None, 1.0, "10", True],
        "frame_max": [None, 4096.0, "4096", False],
        "heartbeat": [1.5, "10", True, object()],
        "ssl_options": [{}, ssl.create_default_context(), "yes"],
        "connection_attempts": [None, 1.0, "3", True],
        "retry_delay": [None, "1", True],
        "socket_timeout": ["1", True, [1]],
        "stack_timeout": ["1", True, [1]],
        "locale": [None, 1, b"en_US"],
        "blocked_connection_timeout": ["1", True],
        "client_properties": [[], "x", {1: "a"}],
        "tcp_options": [[], "x", {1: 2}, {"TCP_KEEPIDLE": "60"}, {"TCP_KEEPIDLE": 1.5}],
    }

    _VALUE_ERRORS: dict[str, list[Any]] = {
        "host": [""],
        "port": [0, -1, 65536],
        "virtual_host": ["v" * 256, "\u00e9" * 128],
        "channel_max": [0, -1, 65536],
        "frame_max": [0, 4095, 131073],
        "heartbeat": [-1, 65536],
        "connection_attempts": [0, -1],
        "retry_delay": [-0.1, math.nan, math.inf],
        "socket_timeout": [0, -1, math.nan, math.inf],
        "stack_timeout": [0, -1, math.nan],
        "locale": ["l" * 256],
        "blocked_connection_timeout": [-1, math.nan],
        "tcp_options": [{"SO_KEEPALIVE": 1}, {"TCP_KEEPIDLE": -1}],
    }

    def test_type_errors(self) -> None:
        """A value of the wrong type raises TypeError from the constructor and
        from the setter."""
        for name, values in self._TYPE_ERRORS.items():
            for value in values:
                with self.assertRaises(TypeError, msg=(name, value)):
                    ConnectionParameters(**{name: value})
                parameters = ConnectionParameters()
                with self.assertRaises(TypeError, msg=(name, value)):
                    setattr(parameters, name, value)

    def test_value_errors(self) -> None:
        """A value of the right type but out of range raises ValueError from
        the constructor and from the setter."""
        for name, values in self._VALUE_ERRORS.items():
            for value in values:
                with self.assertRaises(ValueError, msg=(name, value)):
                    ConnectionParameters(**{name: value})
                parameters = ConnectionParameters()
                with self.assertRaises(ValueError, msg=(name, value)):
                    setattr(parameters, name, value)

    def test_value_errors_are_not_type_errors(self) -> None:
        """Range failures raise a plain ValueError, distinguishable from a
        TypeError (no class derives from both)."""
        try:
            ConnectionParameters(frame_max=1)
        except ValueError as caught:
            self.assertNotIsInstance(caught, TypeError)

    def test_pika_agrees_on_shared_rules(self) -> None:
        """Where pika validates too, it raises the same exception class."""
        shared: dict[str, list[tuple[object, type[Exception]]]] = {
            "channel_max": [(0, ValueError), (65536, ValueError), ("1", TypeError)],
            "frame_max": [(4095, ValueError), (131073, ValueError), ("1", TypeError)],
            "heartbeat": [(-1, ValueError), ("1", TypeError)],
            "connection_attempts": [(0, ValueError), ("1", TypeError)],
            "socket_timeout": [(0, ValueError), ("1", TypeError)],
            "stack_timeout": [(0, ValueError), ("1", TypeError)],
            "blocked_connection_timeout": [(-1, ValueError), ("1", TypeError)],
            "client_properties": [([], TypeError)],
            "tcp_options": [([], TypeError)],
            "host": [(1, TypeError)],
            "locale": [(1, TypeError)],
            "virtual_host": [(1, TypeError)],
            "retry_delay": [("1", TypeError)],
            "port": [("x", TypeError)],
        }
        for name, cases in shared.items():
            for value, error in cases:
                self.assertRaises(error, pika.ConnectionParameters, **{name: value})
                self.assertRaises(error, ConnectionParameters, **{name: value})

    def test_failed_setter_keeps_old_value(self) -> None:
        """A rejected assignment leaves the previous value in place."""
        parameters = ConnectionParameters(heartbeat=30)
        self.assertRaises(ValueError, setattr, parameters, "heartbeat", -5)
        self.assertEqual(parameters.heartbeat, 30)


class EqualityAndReprTests(SynchronousTestCase):
    """``__eq__`` and ``repr()``."""

    def test_equal_on_host_and_port(self) -> None:
        """As in pika, parameters are equal when host and port are equal,
        whatever the other settings."""
        first = ConnectionParameters(host="rabbit", port=5672, virtual_host="a", heartbeat=1)
        second = ConnectionParameters(host="rabbit", port=5672, virtual_host="b")
        self.assertEqual(first, second)
        self.assertFalse(first != second)
        self.assertEqual(
            pika.ConnectionParameters(host="rabbit", virtual_host="a"),
            pika.ConnectionParameters(host="rabbit", virtual_host="b"),
        )

    def test_unequal_host_or_port(self) -> None:
        """A different host or port makes parameters unequal."""
        base = ConnectionParameters(host="rabbit", port=5672)
        self.assertNotEqual(base, ConnectionParameters(host="other", port=5672))
        self.assertNotEqual(base, ConnectionParameters(host="rabbit", port=5673))

    def test_equal_across_subclasses(self) -> None:
        """URLParameters and ConnectionParameters compare by host and port."""
        self.assertEqual(
            URLParameters("amqp://guest:guest@rabbit:5672/%2f"),
            ConnectionParameters(host="rabbit"),
        )

    def test_not_equal_to_other_types(self) -> None:
        """Comparing with a non-Parameters object is unequal, not an error."""
        parameters = ConnectionParameters()
        self.assertNotEqual(parameters, ("localhost", 5672))
        self.assertIs(parameters.__eq__(object()), NotImplemented)

    def test_unhashable(self) -> None:
        """Like pika's, parameters define ``__eq__`` and are unhashable."""
        self.assertRaises(TypeError, hash, ConnectionParameters())

    def test_repr(self) -> None:
        """repr shows class, host, port, virtual host and TLS flag, as pika's."""
        parameters = ConnectionParameters(host="rabbit", virtual_host="v")
        self.assertEqual(
            repr(parameters),
            "<ConnectionParameters host=rabbit port=5672 virtual_host=v ssl=False>",
        )
        self.assertEqual(
            repr(ConnectionParameters()), repr(pika.ConnectionParameters()).replace("pika.", "")
        )

    def test_password_never_in_parameters_text(self) -> None:
        """Neither repr() nor str() of any parameters object reveals the
        password, including one parsed from a URL."""
        objects: list[object] = [
            ConnectionParameters(credentials=PlainCredentials("bob", SECRET)),
            URLParameters(f"amqp://bob:{SECRET}@rabbit/%2f"),
            URLParameters(f"amqps://bob:{SECRET}@rabbit/%2f"),
        ]
        for item in objects:
            self.assertNotIn(SECRET, repr(item))
            self.assertNotIn(SECRET, str(item))
            credentials = item.credentials  # type: ignore[attr-defined]
            self.assertNotIn(SECRET, repr(credentials))
            self.assertNotIn(SECRET, str(credentials))
            self.assertEqual(credentials.password, SECRET)

    def test_password_never_in_url_errors(self) -> None:
        """Errors raised while parsing a URL do not echo the password."""
        for url in (
            f"amqp://bob:{SECRET}@rabbit/?bogus=1",
            f"amqp://bob:{SECRET}@rabbit/?heartbeat=x",
            f"http://bob:{SECRET}@rabbit/",
            f"amqp://bob:{SECRET}@rabbit:99999/",
            f"amqp://bob:{SECRET}@rabbit/?channel_max=1&channel_max=2",
        ):
            with self.assertRaises(ValueError) as caught:
                URLParameters(url)
            self.assertNotIn(SECRET, str(caught.exception))
            self.assertNotIn(SECRET, repr(caught.exception))
        with self.assertRaises(TypeError) as type_error:
            URLParameters(f"amqp://bob:{SECRET}@rabbit/".encode())  # type: ignore[arg-type]
        self.assertNotIn(SECRET, str(type_error.exception))

    def test_password_never_in_credentials_errors(self) -> None:
        """A password of the wrong type is not echoed in the TypeError."""
        with self.assertRaises(TypeError) as caught:
            PlainCredentials("bob", SECRET.encode())  # type: ignore[arg-type]
        self.assertNotIn(SECRET, str(caught.exception))


class URLParametersTests(SynchronousTestCase):
    """Parsing of AMQP URLs."""

    def _tempdir(self) -> FilePath[str]:
        """Return a fresh temporary directory, removed after the test.

        ``tempfile`` is used rather than ``mktemp`` so that pytest runs do not
        leave directories in the working tree.
        """
        path = tempfile.mkdtemp(prefix="txamqp091-test-")
        self.addCleanup(shutil.rmtree, path, True)
        return FilePath(path)

    def test_full_url(self) -> None:
        """User, password, host, port and vhost are all taken from the URL."""
        parameters = URLParameters("amqp://alice:wonder@rabbit.example:5673/prod")
        self.assertEqual(parameters.host, "rabbit.example")
        self.assertEqual(parameters.port, 5673)
        self.assertEqual(parameters.virtual_host, "prod")
        self.assertEqual(parameters.credentials, PlainCredentials("alice", "wonder"))
        self.assertIsNone(parameters.ssl_options)

    def test_vhost_percent_decoded(self) -> None:
        """``%2f`` (either case) decodes to the default vhost ``/``, and other
        escapes are decoded too."""
        self.assertEqual(URLParameters("amqp://h/%2f").virtual_host, "/")
        self.assertEqual(URLParameters("amqp://h/%2F").virtual_host, "/")
        self.assertEqual(URLParameters("amqp://h/a%2fb").virtual_host, "a/b")
        self.assertEqual(URLParameters("amqp://h/caf%C3%A9").virtual_host, "caf\u00e9")

    def test_empty_vhost_is_default(self) -> None:
        """An absent path or a bare ``/`` gives the default vhost ``/``, as
        pika does."""
        for url in ("amqp://h", "amqp://h/", "amqp://h?heartbeat=1", "amqp://h/?heartbeat=1"):
            self.assertEqual(URLParameters(url).virtual_host, "/", url)
            self.assertEqual(pika.URLParameters(url).virtual_host, "/", url)

    def test_only_first_path_segment(self) -> None:
        """As in pika, only the first path segment names the vhost."""
        self.assertEqual(URLParameters("amqp://h/vhost/").virtual_host, "vhost")

    def test_default_ports(self) -> None:
        """The port defaults to 5672 for amqp and 5671 for amqps."""
        self.assertEqual(URLParameters("amqp://h/").port, 5672)
        self.assertEqual(URLParameters("amqps://h/").port, 5671)
        self.assertEqual(URLParameters("amqps://h:1234/").port, 1234)

    def test_scheme_case_insensitive(self) -> None:
        """Scheme names are case-insensitive."""
        self.assertIsNotNone(URLParameters("AMQPS://h/").ssl_options)
        self.assertIsNone(URLParameters("AMQP://h/").ssl_options)

    def test_bad_scheme(self) -> None:
        """Schemes other than amqp and amqps raise ValueError."""
        for url in ("http://h/", "amqpx://h/", "ampq://h/"):
            self.assertRaises(ValueError, URLParameters, url)

    def test_bad_port(self) -> None:
        """A non-numeric or out-of-range port raises ValueError."""
        for url in ("amqp://h:abc/", "amqp://h:70000/", "amqp://h:0/"):
            self.assertRaises(ValueError, URLParameters, url)

    def test_non_string_url(self) -> None:
        """A URL that is not a str raises TypeError."""
        self.assertRaises(TypeError, URLParameters, b"amqp://h/")
        self.assertRaises(TypeError, URLParameters, None)

    def test_missing_parts_use_defaults(self) -> None:
        """Without host or credentials, the defaults localhost and guest/guest
        apply; an empty URL is all defaults, as in pika."""
        parameters = URLParameters("amqp:///%2f")
        self.assertEqual(parameters.host, "localhost")
        self.assertEqual(parameters.credentials, PlainCredentials("guest", "guest"))
        self.assertEqual(URLParameters("").host, pika.URLParameters("").host)

    def test_ipv6_host(self) -> None:
        """A bracketed IPv6 literal gives the bare address as host."""
        parameters = URLParameters("amqp://[::1]:5673/")
        self.assertEqual((parameters.host, parameters.port), ("::1", 5673))

    def test_credentials_percent_decoded(self) -> None:
        """User name and password are percent-decoded; '+' is kept."""
        parameters = URLParameters("amqp://us%40er:p%3Ass%2Fw+rd@h/")
        self.assertEqual(parameters.credentials, PlainCredentials("us@er", "p:ss/w+rd"))
        theirs = pika.URLParameters("amqp://us%40er:p%3Ass%2Fw+rd@h/").credentials
        assert isinstance(parameters.credentials, PlainCredentials)
        self.assertEqual(parameters.credentials.password, theirs.password)

    def test_user_without_password(self) -> None:
        """A user name without password gives an empty password."""
        self.assertEqual(URLParameters("amqp://bob@h/").credentials, PlainCredentials("bob", ""))

    def test_amqps_default_context(self) -> None:
        """An amqps URL without ssl_options gets a verifying default context
        with server_hostname set to the URL's host."""
        tls = URLParameters("amqps://Rabbit.Example/").ssl_options
        assert tls is not None
        context = tls.ssl_context
        assert context is not None
        self.assertEqual(context.verify_mode, ssl.CERT_REQUIRED)
        self.assertTrue(context.check_hostname)
        self.assertEqual(tls.server_hostname, "rabbit.example")
        self.assertIsNone(tls.connection_creator)

    def test_every_numeric_query_option(self) -> None:
        """Each numeric query option is parsed and applied, matching pika."""
        query = (
            "heartbeat=30&channel_max=100&frame_max=8192&connection_attempts=3"
            "&retry_delay=1.5&socket_timeout=2.5&stack_timeout=20"
            "&blocked_connection_timeout=60&locale=de_DE"
        )
        ours = URLParameters("amqp://h/?" + query)
        theirs = pika.URLParameters("amqp://h/?" + query)
        expected = {
            "heartbeat": 30,
            "channel_max": 100,
            "frame_max": 8192,
            "connection_attempts": 3,
            "retry_delay": 1.5,
            "socket_timeout": 2.5,
            "stack_timeout": 20.0,
            "blocked_connection_timeout": 60.0,
            "locale": "de_DE",
        }
        for name, value in expected.items():
            self.assertEqual(getattr(ours, name), value, name)
            self.assertEqual(getattr(ours, name), getattr(theirs, name), name)

    def test_client_properties_query(self) -> None:
        """client_properties accepts a Python dict literal (as pika) or JSON."""
        literal = URLParameters("amqp://h/?client_properties={'connection_name':'w1','n':1}")
        self.assertEqual(literal.client_properties, {"connection_name": "w1", "n": 1})
        as_json = URLParameters('amqp://h/?client_properties={"flag":true,"x":null}')
        self.assertEqual(as_json.client_properties, {"flag": True, "x": None})

    def test_tcp_options_query(self) -> None:
        """tcp_options accepts a dict literal of supported socket options."""
        parameters = URLParameters("amqp://h/?tcp_options={'TCP_KEEPIDLE':60,'TCP_KEEPCNT':4}")
        self.assertEqual(parameters.tcp_options, {"TCP_KEEPIDLE": 60, "TCP_KEEPCNT": 4})

    def test_unknown_query_option(self) -> None:
        """An unknown query option raises ValueError naming it (pika only
        warns)."""
        with self.assertRaises(ValueError) as caught:
            URLParameters("amqp://h/?hearbeat=10")
        self.assertIn("hearbeat", str(caught.exception))
        self.assertRaises(ValueError, URLParameters, "amqp://h/?flag")

    def test_repeated_query_option(self) -> None:
        """An option given twice raises ValueError."""
        self.assertRaises(ValueError, URLParameters, "amqp://h/?heartbeat=1&heartbeat=2")

    def test_bad_query_values(self) -> None:
        """Malformed or out-of-range query values raise ValueError, including
        values whose decoded type is wrong."""
        for query in (
            "heartbeat=1.5",
            "heartbeat=",
            "heartbeat=-1",
            "channel_max=x",
            "channel_max=0",
            "frame_max=100",
            "connection_attempts=0",
            "retry_delay=soon",
            "retry_delay=-1",
            "socket_timeout=0",
            "socket_timeout=nan",
            "stack_timeout=inf",
            "blocked_connection_timeout=-1",
            "client_properties=[1]",
            "client_properties={oops",
            "tcp_options={'SO_LINGER':1}",
            "tcp_options=7",
            "locale=" + "x" * 300,
        ):
            with self.assertRaises(ValueError, msg=query):
                URLParameters("amqp://h/?" + query)

    def test_ssl_options_query_builds_context(self) -> None:
        """ssl_options with CA file, client certificate, ciphers and
        server_hostname builds a verifying SSLContext from them, as pika."""
        cert, key = _write_self_signed(self._tempdir())
        opts = {
            "ca_certs": cert,
            "certfile": cert,
            "keyfile": key,
            "ciphers": "ECDHE+AESGCM",
            "server_hostname": "broker.internal",
        }
        parameters = URLParameters(f"amqps://h/?ssl_options={opts!r}")
        tls = parameters.ssl_options
        assert tls is not None and tls.ssl_context is not None
        self.assertEqual(tls.server_hostname, "broker.internal")
        self.assertEqual(tls.ssl_context.verify_mode, ssl.CERT_REQUIRED)
        self.assertTrue(tls.ssl_context.check_hostname)
        self.assertEqual(len(tls.ssl_context.get_ca_certs()), 1)
        self.assertEqual(parameters.port, 5671)

    def test_ssl_options_query_aliases(self) -> None:
        """cafile/capath/cadata spellings are accepted like ca_certs/ca_path/
        ca_data; server_hostname defaults to the host."""
        cert, _ = _write_self_signed(self._tempdir())
        tls = URLParameters(f"amqps://h/?ssl_options={ {'cafile': cert}!r}").ssl_options
        assert tls is not None and tls.ssl_context is not None
        self.assertEqual(len(tls.ssl_context.get_ca_certs()), 1)
        self.assertEqual(tls.server_hostname, "h")
        with open(cert) as pem:
            cadata = pem.read()
        # PEM base64 contains '+', which must be percent-encoded in a query.
        query = quote(repr({"ca_data": cadata}))
        tls = URLParameters(f"amqps://h/?ssl_options={query}").ssl_options
        assert tls is not None and tls.ssl_context is not None
        self.assertEqual(len(tls.ssl_context.get_ca_certs()), 1)

    def test_ssl_options_query_protocol(self) -> None:
        """The protocol key selects the SSLContext protocol."""
        opts = {"protocol": int(ssl.PROTOCOL_TLS_CLIENT)}
        tls = URLParameters(f"amqps://h/?ssl_options={opts!r}").ssl_options
        assert tls is not None and tls.ssl_context is not None
        self.assertEqual(tls.ssl_context.protocol, ssl.PROTOCOL_TLS_CLIENT)

    def test_ssl_options_query_empty_dict(self) -> None:
        """An empty ssl_options dict gives a verifying context loaded with the
        system CAs (pika fails here because it loads no CA at all)."""
        tls = URLParameters("amqps://h/?ssl_options={}").ssl_options
        assert tls is not None and tls.ssl_context is not None
        self.assertEqual(tls.ssl_context.verify_mode, ssl.CERT_REQUIRED)

    def test_ssl_options_on_amqp_url(self) -> None:
        """As in pika, ssl_options on an amqp URL enables TLS but keeps the
        plain port."""
        parameters = URLParameters("amqp://h/?ssl_options={}")
        self.assertIsNotNone(parameters.ssl_options)
        self.assertEqual(parameters.port, 5672)

    def test_ssl_options_none(self) -> None:
        """ssl_options=None is a no-op on amqp and a ValueError on amqps."""
        self.assertIsNone(URLParameters("amqp://h/?ssl_options=None").ssl_options)
        self.assertRaises(ValueError, URLParameters, "amqps://h/?ssl_options=None")

    def test_ssl_options_bad(self) -> None:
        """A non-dict ssl_options, an unknown key (pika ignores it) or a bad
        value raises ValueError."""
        for value in ("[1]", "{'cert_reqs':0}", "{'protocol':'tls'}", "{nope"):
            with self.assertRaises(ValueError, msg=value):
                URLParameters("amqps://h/?ssl_options=" + value)


class SSLOptionsTests(SynchronousTestCase):
    """The SSLOptions container."""

    def test_ssl_context(self) -> None:
        """An SSLContext is stored as ``context`` and ``ssl_context``."""
        context = ssl.create_default_context()
        tls = SSLOptions(context, server_hostname="rabbit")
        self.assertIs(tls.context, context)
        self.assertIs(tls.ssl_context, context)
        self.assertIsNone(tls.connection_creator)
        self.assertEqual(tls.server_hostname, "rabbit")
        self.assertIsNone(SSLOptions(context).server_hostname)

    def test_twisted_creator(self) -> None:
        """A Twisted IOpenSSLClientConnectionCreator is accepted and exposed
        as ``connection_creator``."""
        creator = twisted_ssl.optionsForClientTLS("rabbit.example")
        tls = SSLOptions(creator)
        self.assertIs(tls.context, creator)
        self.assertIs(tls.connection_creator, creator)
        self.assertIsNone(tls.ssl_context)
        self.assertEqual(ConnectionParameters(ssl_options=tls).port, 5671)

    def test_rejects_other_contexts(self) -> None:
        """Anything else, including a dict of options, raises TypeError."""
        for bad in (None, {}, "ctx", object()):
            self.assertRaises(TypeError, SSLOptions, bad)

    def test_server_hostname_type(self) -> None:
        """A non-string server_hostname raises TypeError."""
        self.assertRaises(TypeError, SSLOptions, ssl.create_default_context(), b"host")

    def test_slots(self) -> None:
        """Unknown attributes cannot be set."""
        tls = SSLOptions(ssl.create_default_context())
        with self.assertRaises(AttributeError):
            tls.hostname = "x"  # type: ignore[attr-defined]

    def test_repr(self) -> None:
        """repr names the context type and server hostname."""
        tls = SSLOptions(ssl.create_default_context(), "rabbit")
        self.assertEqual(repr(tls), "<SSLOptions context=SSLContext server_hostname='rabbit'>")


class CredentialsTests(SynchronousTestCase):
    """PlainCredentials and ExternalCredentials."""

    def test_plain_attributes(self) -> None:
        """PlainCredentials stores username, password and erase_on_connect
        (default False) and names the PLAIN mechanism."""
        plain = PlainCredentials("bob", SECRET)
        self.assertEqual((plain.username, plain.password), ("bob", SECRET))
        self.assertFalse(plain.erase_on_connect)
        self.assertEqual(plain.mechanism, "PLAIN")
        self.assertEqual(PlainCredentials.TYPE, pika.credentials.PlainCredentials.TYPE)

    def test_plain_sasl_response(self) -> None:
        """The PLAIN response is NUL user NUL password, UTF-8 encoded."""
        self.assertEqual(PlainCredentials("user", "pass").sasl_response(), b"\0user\0pass")
        self.assertEqual(
            PlainCredentials("\u00fc", "\u00e9").sasl_response(), b"\0\xc3\xbc\0\xc3\xa9"
        )

    def test_plain_response_for(self) -> None:
        """response_for answers ('PLAIN', response) when the broker offers
        PLAIN (bytes or text), (None, None) otherwise, as pika does."""
        plain = PlainCredentials("user", "pass")
        theirs = pika.credentials.PlainCredentials("user", "pass")
        for mechanisms in (b"AMQPLAIN PLAIN", "PLAIN EXTERNAL", b"EXTERNAL", b"", b"PLAINX"):
            start = _Start(mechanisms)
            self.assertEqual(plain.response_for(start), theirs.response_for(start), mechanisms)
        self.assertEqual(plain.response_for(_Start(b"PLAIN")), ("PLAIN", b"\0user\0pass"))

    def test_erase_on_connect(self) -> None:
        """erase_credentials forgets username and password only when
        erase_on_connect is set; the response is then empty fields."""
        kept = PlainCredentials("u", "p")
        kept.erase_credentials()
        self.assertEqual((kept.username, kept.password), ("u", "p"))
        erased = PlainCredentials("u", "p", erase_on_connect=True)
        erased.erase_credentials()
        self.assertEqual((erased.username, erased.password), (None, None))
        self.assertEqual(erased.sasl_response(), b"\0\0")

    def test_plain_validation(self) -> None:
        """Non-str username/password or non-bool erase_on_connect raise
        TypeError."""
        self.assertRaises(TypeError, PlainCredentials, None, "p")
        self.assertRaises(TypeError, PlainCredentials, "u", None)
        self.assertRaises(TypeError, PlainCredentials, "u", "p", "yes")

    def test_plain_equality(self) -> None:
        """PlainCredentials compare by username, password and erase flag, and
        are unhashable like pika's."""
        self.assertEqual(PlainCredentials("u", "p"), PlainCredentials("u", "p"))
        self.assertNotEqual(PlainCredentials("u", "p"), PlainCredentials("u", "q"))
        self.assertNotEqual(PlainCredentials("u", "p"), PlainCredentials("v", "p"))
        self.assertNotEqual(PlainCredentials("u", "p"), PlainCredentials("u", "p", True))
        self.assertNotEqual(PlainCredentials("u", "p"), ExternalCredentials())
        self.assertRaises(TypeError, hash, PlainCredentials("u", "p"))

    def test_plain_text_hides_password(self) -> None:
        """repr() and str() show the username but never the password."""
        plain = PlainCredentials("bob", SECRET)
        for text in (repr(plain), str(plain), f"{plain}", repr([plain])):
            self.assertNotIn(SECRET, text)
        self.assertIn("bob", repr(plain))

    def test_plain_deepcopy(self) -> None:
        """Deep copies (used by the credentials setter) are equal."""
        plain = PlainCredentials("u", "p", erase_on_connect=True)
        self.assertEqual(copy.deepcopy(plain), plain)

    def test_external(self) -> None:
        """ExternalCredentials name EXTERNAL, send an empty response when the
        broker offers it and (None, None) otherwise, exactly as pika."""
        external = ExternalCredentials()
        theirs = pika.credentials.ExternalCredentials()
        self.assertEqual(external.mechanism, "EXTERNAL")
        self.assertEqual(external.sasl_response(), b"")
        self.assertFalse(external.erase_on_connect)
        for mechanisms in (b"PLAIN EXTERNAL", b"PLAIN", "EXTERNAL"):
            start = _Start(mechanisms)
            self.assertEqual(external.response_for(start), theirs.response_for(start))
        external.erase_credentials()
        self.assertEqual(external, ExternalCredentials())
        self.assertNotEqual(external, PlainCredentials("u", "p"))
        self.assertEqual(repr(external), "<ExternalCredentials>")

    def test_valid_types(self) -> None:
        """VALID_TYPES lists the two built-in credential classes."""
        self.assertEqual(creds.VALID_TYPES[:2], [PlainCredentials, ExternalCredentials])

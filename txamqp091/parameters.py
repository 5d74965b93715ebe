"""Connection parameters: where and how to connect to the broker.

The public names, defaults, property setters and validation follow pika 1.x
(``pika.connection.Parameters``, ``ConnectionParameters``, ``URLParameters``
and ``SSLOptions``), so ``import txamqp091 as pika`` keeps existing
configuration code working.  Validation raises :class:`TypeError` for a value
of the wrong type and :class:`ValueError` for a value of the right type that
is out of range or malformed.

Differences from pika, all in the direction of failing early:

* unknown ``URLParameters`` query options, and unknown keys inside the
  ``ssl_options`` and ``tcp_options`` dictionaries, raise :class:`ValueError`
  (pika ignores or merely logs them);
* every malformed URL query value raises :class:`ValueError`, even when
  pika's setter would raise :class:`TypeError` for the decoded value;
* :class:`bool` is not accepted where a number is expected, non-finite
  floats are rejected, ``port`` must be in ``1..65535``, ``heartbeat`` must
  fit the protocol's 16-bit field, ``retry_delay`` must not be negative, and
  ``host`` must not be empty;
* ``SSLOptions`` also accepts a Twisted TLS connection creator, and
  ``amqps`` URLs set ``server_hostname`` to the URL's host.
"""

from __future__ import annotations

import ast
import copy
import enum
import json
import math
import numbers
import ssl
from collections.abc import Callable
from typing import Any, Final, Literal, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

from twisted.internet.interfaces import IOpenSSLClientConnectionCreator

from txamqp091.credentials import VALID_TYPES, ExternalCredentials, PlainCredentials

__all__ = [
    "FRAME_MAX_SIZE",
    "FRAME_MIN_SIZE",
    "MAX_CHANNELS",
    "TCP_OPTION_NAMES",
    "ConnectionParameters",
    "Credentials",
    "ExternalCredentials",
    "HeartbeatCallable",
    "Parameters",
    "PlainCredentials",
    "SSLOptions",
    "URLParameters",
]

#: Largest channel number allowed by AMQP 0-9-1 (a 16-bit field).
MAX_CHANNELS: Final = 65535
#: Smallest ``frame_max`` a peer may propose (AMQP 0-9-1 ``frame-min-size``).
FRAME_MIN_SIZE: Final = 4096
#: Largest ``frame_max`` accepted, matching pika and RabbitMQ's default.
FRAME_MAX_SIZE: Final = 131072
#: Names accepted as keys of the ``tcp_options`` dictionary.
TCP_OPTION_NAMES: Final = frozenset(
    {"TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT"}
)

_MAX_HEARTBEAT: Final = 65535
_MAX_SHORTSTR: Final = 255

#: ``heartbeat`` may be a callable ``(connection, server_value) -> int | None``;
#: it is called during tuning with the broker's proposed timeout in seconds.
HeartbeatCallable: TypeAlias = Callable[[Any, int], "int | None"]
#: The credential objects accepted by :attr:`Parameters.credentials`.
Credentials: TypeAlias = PlainCredentials | ExternalCredentials


class _Sentinel(enum.Enum):
    """Marks a constructor argument that was not given."""

    DEFAULT = enum.auto()


_DEFAULT: Final = _Sentinel.DEFAULT
_Default: TypeAlias = Literal[_Sentinel.DEFAULT]


def _type_name(value: object) -> str:
    """Return the unqualified type name of *value*, for error messages."""
    return type(value).__name__


def _check_str(value: object, name: str) -> str:
    """Return *value*, or raise :class:`TypeError` if it is not a string."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, but got {value!r}")
    return value


def _check_shortstr(value: object, name: str) -> str:
    """Return *value* if it is a string fitting an AMQP ``shortstr`` (255 bytes)."""
    text = _check_str(value, name)
    if len(text.encode("utf-8")) > _MAX_SHORTSTR:
        raise ValueError(f"{name} must encode to at most {_MAX_SHORTSTR} bytes of UTF-8")
    return text


def _check_int(value: object, name: str) -> int:
    """Return *value* as an int; :class:`TypeError` unless integral and not bool."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, but got {value!r}")
    return int(value)


def _check_real(value: object, name: str) -> float:
    """Return *value* as a float; it must be a finite real number, not a bool."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float or int, but got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, but got {value!r}")
    return result


def _check_optional_timeout(value: object, name: str, *, allow_zero: bool) -> float | None:
    """Validate a timeout in seconds that may be ``None`` (disabled)."""
    if value is None:
        return None
    result = _check_real(value, name)
    if result < 0 or (result == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, but got {value!r}")
    return result


class SSLOptions:
    """TLS settings for a connection.

    As in pika, *context* is an :class:`ssl.SSLContext`.  txamqp091 also
    accepts a Twisted client TLS connection creator (any object providing
    :class:`twisted.internet.interfaces.IOpenSSLClientConnectionCreator`,
    e.g. the result of :func:`twisted.internet.ssl.optionsForClientTLS`),
    which is used as is.

    :param context: an :class:`ssl.SSLContext` or a Twisted connection
        creator.
    :param server_hostname: host name for SNI and certificate verification;
        ``None`` means "use the connection's host".  A Twisted creator already
        knows its host name, so this value is informational for it.
    :raises TypeError: if *context* is neither kind of object, or
        *server_hostname* is neither ``None`` nor a string.
    """

    __slots__ = ("context", "platform_default", "server_hostname")

    def __init__(
        self,
        context: ssl.SSLContext | IOpenSSLClientConnectionCreator,
        server_hostname: str | None = None,
    ) -> None:
        if not isinstance(context, ssl.SSLContext) and not (
            IOpenSSLClientConnectionCreator.providedBy(context)
        ):
            raise TypeError(
                "context must be an ssl.SSLContext or provide "
                f"IOpenSSLClientConnectionCreator, but got {context!r}"
            )
        if server_hostname is not None and not isinstance(server_hostname, str):
            raise TypeError(f"server_hostname must be a str or None, but got {server_hostname!r}")
        #: The object given as *context*: an SSLContext or a Twisted creator.
        self.context = context
        #: Host name for SNI and verification, or ``None`` for the host.
        self.server_hostname = server_hostname
        #: ``True`` for the defaults of an ``amqps`` URL without ``ssl_options``:
        #: the Twisted face then uses Twisted's own TLS (the platform's trusted
        #: CAs, host names checked with ``service_identity``) instead of
        #: *context*, which the other faces use.
        self.platform_default = False

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The :class:`ssl.SSLContext`, if one was given.

        :returns: the context, or ``None`` when a Twisted creator was given.
        """
        return self.context if isinstance(self.context, ssl.SSLContext) else None

    @property
    def connection_creator(self) -> IOpenSSLClientConnectionCreator | None:
        """The Twisted client connection creator, if one was given.

        :returns: the creator, or ``None`` when an SSLContext was given.
        """
        return None if isinstance(self.context, ssl.SSLContext) else self.context

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} context={type(self.context).__name__} "
            f"server_hostname={self.server_hostname!r}>"
        )


class Parameters:
    """Base class holding every connection setting, each at its default.

    Each setting is a property whose setter validates the new value.  Two
    parameter objects compare equal when their ``host`` and ``port`` are
    equal, as in pika.  The ``repr()`` never includes credentials.
    """

    __slots__ = (
        "_blocked_connection_timeout",
        "_channel_max",
        "_client_properties",
        "_connection_attempts",
        "_credentials",
        "_frame_max",
        "_heartbeat",
        "_host",
        "_locale",
        "_port",
        "_retry_delay",
        "_socket_timeout",
        "_ssl_options",
        "_stack_timeout",
        "_tcp_options",
        "_virtual_host",
    )

    #: Default user name of :attr:`DEFAULT_CREDENTIALS`.
    DEFAULT_USERNAME: str = "guest"
    #: Default password of :attr:`DEFAULT_CREDENTIALS`.
    DEFAULT_PASSWORD: str = "guest"
    #: ``None``: a blocked connection may stay blocked forever.
    DEFAULT_BLOCKED_CONNECTION_TIMEOUT: float | None = None
    #: Highest channel number we propose.
    DEFAULT_CHANNEL_MAX: int = MAX_CHANNELS
    #: ``None``: send only the built-in client properties.
    DEFAULT_CLIENT_PROPERTIES: dict[str, Any] | None = None
    #: ``guest``/``guest`` PLAIN credentials.
    DEFAULT_CREDENTIALS: Credentials = PlainCredentials(DEFAULT_USERNAME, DEFAULT_PASSWORD)
    #: A single connection attempt.
    DEFAULT_CONNECTION_ATTEMPTS: int = 1
    #: Largest frame size we propose.
    DEFAULT_FRAME_MAX: int = FRAME_MAX_SIZE
    #: ``None``: accept the broker's proposed heartbeat timeout.
    DEFAULT_HEARTBEAT_TIMEOUT: int | None = None
    #: Broker host name.
    DEFAULT_HOST: str = "localhost"
    #: Locale sent in ``Connection.StartOk``.
    DEFAULT_LOCALE: str = "en_US"
    #: Plain-text AMQP port.
    DEFAULT_PORT: int = 5672
    #: Seconds between connection attempts.
    DEFAULT_RETRY_DELAY: float = 2.0
    #: Seconds allowed for the TCP connect.
    DEFAULT_SOCKET_TIMEOUT: float = 10.0
    #: Seconds allowed for TCP, TLS and the AMQP handshake together.
    DEFAULT_STACK_TIMEOUT: float = 15.0
    #: TLS is off by default.
    DEFAULT_SSL: bool = False
    #: ``None``: no TLS.
    DEFAULT_SSL_OPTIONS: SSLOptions | None = None
    #: AMQP-over-TLS port.
    DEFAULT_SSL_PORT: int = 5671
    #: Virtual host to open.
    DEFAULT_VIRTUAL_HOST: str = "/"
    #: ``None``: no extra TCP socket options.
    DEFAULT_TCP_OPTIONS: dict[str, int] | None = None

    def __init__(self) -> None:
        self._blocked_connection_timeout: float | None = None
        self._channel_max: int = self.DEFAULT_CHANNEL_MAX
        self._client_properties: dict[str, Any] | None = None
        self._connection_attempts: int = self.DEFAULT_CONNECTION_ATTEMPTS
        self._credentials: Credentials = self.DEFAULT_CREDENTIALS
        self._frame_max: int = self.DEFAULT_FRAME_MAX
        self._heartbeat: int | HeartbeatCallable | None = None
        self._host: str = self.DEFAULT_HOST
        self._locale: str = self.DEFAULT_LOCALE
        self._port: int = self.DEFAULT_PORT
        self._retry_delay: float = self.DEFAULT_RETRY_DELAY
        self._socket_timeout: float | None = None
        self._stack_timeout: float | None = None
        self._ssl_options: SSLOptions | None = None
        self._virtual_host: str = self.DEFAULT_VIRTUAL_HOST
        self._tcp_options: dict[str, int] | None = None
        # Run every default through its setter, so that subclasses overriding
        # a DEFAULT_* constant get it validated (and copied) too.
        self.blocked_connection_timeout = self.DEFAULT_BLOCKED_CONNECTION_TIMEOUT
        self.channel_max = self.DEFAULT_CHANNEL_MAX
        self.client_properties = self.DEFAULT_CLIENT_PROPERTIES
        self.connection_attempts = self.DEFAULT_CONNECTION_ATTEMPTS
        self.credentials = self.DEFAULT_CREDENTIALS
        self.frame_max = self.DEFAULT_FRAME_MAX
        self.heartbeat = self.DEFAULT_HEARTBEAT_TIMEOUT
        self.host = self.DEFAULT_HOST
        self.locale = self.DEFAULT_LOCALE
        self.port = self.DEFAULT_PORT
        self.retry_delay = self.DEFAULT_RETRY_DELAY
        self.socket_timeout = self.DEFAULT_SOCKET_TIMEOUT
        self.stack_timeout = self.DEFAULT_STACK_TIMEOUT
        self.ssl_options = self.DEFAULT_SSL_OPTIONS
        self.virtual_host = self.DEFAULT_VIRTUAL_HOST
        self.tcp_options = self.DEFAULT_TCP_OPTIONS

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} host={self.host} port={self.port} "
            f"virtual_host={self.virtual_host} ssl={bool(self.ssl_options)}>"
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Parameters):
            return self._host == other._host and self._port == other._port
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @property
    def blocked_connection_timeout(self) -> float | None:
        """Seconds the broker may keep the connection blocked, or ``None``.

        When RabbitMQ sends ``Connection.Blocked`` and ``Connection.Unblocked``
        does not follow within this many seconds, the connection is torn down
        with :class:`~txamqp091.exceptions.ConnectionBlockedTimeout`.  ``None``
        (the default) waits forever.  Must be ``>= 0``.
        """
        return self._blocked_connection_timeout

    @blocked_connection_timeout.setter
    def blocked_connection_timeout(self, value: float | None) -> None:
        self._blocked_connection_timeout = _check_optional_timeout(
            value, "blocked_connection_timeout", allow_zero=True
        )

    @property
    def channel_max(self) -> int:
        """Highest channel number to propose, ``1..65535`` (default 65535)."""
        return self._channel_max

    @channel_max.setter
    def channel_max(self, value: int) -> None:
        number = _check_int(value, "channel_max")
        if not 1 <= number <= MAX_CHANNELS:
            raise ValueError(f"channel_max must be <= {MAX_CHANNELS} and > 0, but got {value!r}")
        self._channel_max = number

    @property
    def client_properties(self) -> dict[str, Any] | None:
        """Entries that override the default client properties, or ``None``.

        They are merged into the ``client-properties`` table sent in
        ``Connection.StartOk``.  The dictionary is deep-copied on assignment.
        """
        return self._client_properties

    @client_properties.setter
    def client_properties(self, value: dict[str, Any] | None) -> None:
        if value is not None:
            if not isinstance(value, dict):
                raise TypeError(f"client_properties must be a dict or None, but got {value!r}")
            for key in value:
                if not isinstance(key, str):
                    raise TypeError(f"client_properties keys must be str, but got {key!r}")
        self._client_properties = copy.deepcopy(value)

    @property
    def connection_attempts(self) -> int:
        """How many times to try connecting, at least 1 (default 1).

        Attempts are separated by :attr:`retry_delay` seconds.
        """
        return self._connection_attempts

    @connection_attempts.setter
    def connection_attempts(self, value: int) -> None:
        number = _check_int(value, "connection_attempts")
        if number < 1:
            raise ValueError(f"connection_attempts must be > 0, but got {value!r}")
        self._connection_attempts = number

    @property
    def credentials(self) -> Credentials:
        """SASL credentials (default ``PlainCredentials("guest", "guest")``).

        Must be an instance of a class in
        :data:`txamqp091.credentials.VALID_TYPES`; it is deep-copied on
        assignment.
        """
        return self._credentials

    @credentials.setter
    def credentials(self, value: Credentials) -> None:
        if not isinstance(value, tuple(VALID_TYPES)):
            names = ", ".join(cls.__name__ for cls in VALID_TYPES)
            raise TypeError(f"credentials must be one of ({names}), but got {_type_name(value)}")
        self._credentials = copy.deepcopy(value)

    @property
    def frame_max(self) -> int:
        """Largest frame size to propose, ``4096..131072`` bytes (default 131072)."""
        return self._frame_max

    @frame_max.setter
    def frame_max(self, value: int) -> None:
        number = _check_int(value, "frame_max")
        if number < FRAME_MIN_SIZE:
            raise ValueError(f"Min AMQP 0.9.1 Frame Size is {FRAME_MIN_SIZE}, but got {value!r}")
        if number > FRAME_MAX_SIZE:
            raise ValueError(f"Max AMQP 0.9.1 Frame Size is {FRAME_MAX_SIZE}, but got {value!r}")
        self._frame_max = number

    @property
    def heartbeat(self) -> int | HeartbeatCallable | None:
        """Heartbeat timeout negotiation, in seconds.

        ``None`` (the default) accepts the broker's proposal; an integer
        (``0..65535``) overrides it, with ``0`` disabling heartbeats; a
        callable ``(connection, server_value) -> int | None`` is called during
        tuning with the broker's proposal and returns the value to use.
        """
        return self._heartbeat

    @heartbeat.setter
    def heartbeat(self, value: int | HeartbeatCallable | None) -> None:
        if value is None or callable(value):
            self._heartbeat = value
            return
        number = _check_int(value, "heartbeat")
        if not 0 <= number <= _MAX_HEARTBEAT:
            raise ValueError(f"heartbeat must be >= 0 and <= {_MAX_HEARTBEAT}, but got {value!r}")
        self._heartbeat = number

    @property
    def host(self) -> str:
        """Host name or IP address of the broker (default ``"localhost"``)."""
        return self._host

    @host.setter
    def host(self, value: str) -> None:
        if not _check_str(value, "host"):
            raise ValueError("host must not be empty")
        self._host = value

    @property
    def locale(self) -> str:
        """Locale sent to the broker in ``Connection.StartOk`` (default ``"en_US"``)."""
        return self._locale

    @locale.setter
    def locale(self, value: str) -> None:
        self._locale = _check_shortstr(value, "locale")

    @property
    def port(self) -> int:
        """TCP port of the broker, ``1..65535``.

        Defaults to 5672, or 5671 when TLS options are given to the
        constructor.  As in pika, a string of digits is accepted and
        converted.
        """
        return self._port

    @port.setter
    def port(self, value: int | str) -> None:
        if isinstance(value, str):
            try:
                number = int(value)
            except ValueError:
                raise TypeError(f"port must be an int, but got {value!r}") from None
        else:
            number = _check_int(value, "port")
        if not 1 <= number <= 65535:
            raise ValueError(f"port must be between 1 and 65535, but got {value!r}")
        self._port = number

    @property
    def retry_delay(self) -> float:
        """Seconds to wait between connection attempts, ``>= 0`` (default 2.0)."""
        return self._retry_delay

    @retry_delay.setter
    def retry_delay(self, value: float) -> None:
        delay = _check_real(value, "retry_delay")
        if delay < 0:
            raise ValueError(f"retry_delay must be >= 0, but got {value!r}")
        self._retry_delay = delay

    @property
    def socket_timeout(self) -> float | None:
        """Seconds allowed for the TCP connect, ``> 0``; ``None`` disables (default 10.0)."""
        return self._socket_timeout

    @socket_timeout.setter
    def socket_timeout(self, value: float | None) -> None:
        self._socket_timeout = _check_optional_timeout(value, "socket_timeout", allow_zero=False)

    @property
    def stack_timeout(self) -> float | None:
        """Seconds allowed for TCP, TLS and the AMQP handshake together.

        Must be ``> 0``; ``None`` disables it (default 15.0).  It should be
        larger than :attr:`socket_timeout`.
        """
        return self._stack_timeout

    @stack_timeout.setter
    def stack_timeout(self, value: float | None) -> None:
        self._stack_timeout = _check_optional_timeout(value, "stack_timeout", allow_zero=False)

    @property
    def ssl_options(self) -> SSLOptions | None:
        """TLS settings, or ``None`` for a plain-text connection (default)."""
        return self._ssl_options

    @ssl_options.setter
    def ssl_options(self, value: SSLOptions | None) -> None:
        if value is not None and not isinstance(value, SSLOptions):
            raise TypeError(f"ssl_options must be None or SSLOptions, but got {value!r}")
        self._ssl_options = value

    @property
    def virtual_host(self) -> str:
        """RabbitMQ virtual host to open (default ``"/"``)."""
        return self._virtual_host

    @virtual_host.setter
    def virtual_host(self, value: str) -> None:
        self._virtual_host = _check_shortstr(value, "virtual_host")

    @property
    def tcp_options(self) -> dict[str, int] | None:
        """Extra TCP socket options, or ``None`` (default).

        Keys are taken from :data:`TCP_OPTION_NAMES` (``TCP_KEEPIDLE``,
        ``TCP_KEEPINTVL``, ``TCP_KEEPCNT``, ``TCP_USER_TIMEOUT``); values are
        non-negative integers.  Options the platform lacks are skipped when
        the socket is configured.  The dictionary is copied on assignment.
        """
        return self._tcp_options

    @tcp_options.setter
    def tcp_options(self, value: dict[str, int] | None) -> None:
        if value is None:
            self._tcp_options = None
            return
        if not isinstance(value, dict):
            raise TypeError(f"tcp_options must be a dict or None, but got {value!r}")
        checked: dict[str, int] = {}
        for key, option in value.items():
            if not isinstance(key, str):
                raise TypeError(f"tcp_options keys must be str, but got {key!r}")
            if key not in TCP_OPTION_NAMES:
                known = ", ".join(sorted(TCP_OPTION_NAMES))
                raise ValueError(f"unknown tcp_options key {key!r}; known keys: {known}")
            number = _check_int(option, f"tcp_options[{key!r}]")
            if number < 0:
                raise ValueError(f"tcp_options[{key!r}] must be >= 0, but got {option!r}")
            checked[key] = number
        self._tcp_options = checked


class ConnectionParameters(Parameters):
    """Connection settings given as keyword arguments.

    Any argument left out keeps the corresponding ``Parameters.DEFAULT_*``
    value; see the properties of :class:`Parameters` for the meaning and
    validation of each.  When *port* is omitted it defaults to 5671 if
    *ssl_options* is given, otherwise 5672.

    :param host: broker host name or IP address.
    :param port: broker TCP port.
    :param virtual_host: virtual host to open.
    :param credentials: SASL credentials.
    :param channel_max: highest channel number to propose.
    :param frame_max: largest frame size to propose.
    :param heartbeat: heartbeat timeout, ``None`` or a callable.
    :param ssl_options: TLS settings, or ``None`` for plain text.
    :param connection_attempts: number of connection attempts.
    :param retry_delay: seconds between attempts.
    :param socket_timeout: TCP connect timeout in seconds, or ``None``.
    :param stack_timeout: whole-handshake timeout in seconds, or ``None``.
    :param locale: locale to announce.
    :param blocked_connection_timeout: seconds a blocked connection may
        stay blocked, or ``None``.
    :param client_properties: overrides for the client-properties table.
    :param tcp_options: extra TCP socket options.
    :raises TypeError: for an argument of the wrong type.
    :raises ValueError: for an argument out of range.
    """

    __slots__ = ()

    #: The "argument not given" marker (pika exposes it under this name).
    _DEFAULT = _DEFAULT

    def __init__(
        self,
        host: str | _Default = _DEFAULT,
        port: int | str | _Default = _DEFAULT,
        virtual_host: str | _Default = _DEFAULT,
        credentials: Credentials | _Default = _DEFAULT,
        channel_max: int | _Default = _DEFAULT,
        frame_max: int | _Default = _DEFAULT,
        heartbeat: int | HeartbeatCallable | _Default | None = _DEFAULT,
        ssl_options: SSLOptions | _Default | None = _DEFAULT,
        connection_attempts: int | _Default = _DEFAULT,
        retry_delay: float | _Default = _DEFAULT,
        socket_timeout: float | _Default | None = _DEFAULT,
        stack_timeout: float | _Default | None = _DEFAULT,
        locale: str | _Default = _DEFAULT,
        blocked_connection_timeout: float | _Default | None = _DEFAULT,
        client_properties: dict[str, Any] | _Default | None = _DEFAULT,
        tcp_options: dict[str, int] | _Default | None = _DEFAULT,
    ) -> None:
        super().__init__()
        if blocked_connection_timeout is not _DEFAULT:
            self.blocked_connection_timeout = blocked_connection_timeout
        if channel_max is not _DEFAULT:
            self.channel_max = channel_max
        if client_properties is not _DEFAULT:
            self.client_properties = client_properties
        if connection_attempts is not _DEFAULT:
            self.connection_attempts = connection_attempts
        if credentials is not _DEFAULT:
            self.credentials = credentials
        if frame_max is not _DEFAULT:
            self.frame_max = frame_max
        if heartbeat is not _DEFAULT:
            self.heartbeat = heartbeat
        if host is not _DEFAULT:
            self.host = host
        if locale is not _DEFAULT:
            self.locale = locale
        if retry_delay is not _DEFAULT:
            self.retry_delay = retry_delay
        if socket_timeout is not _DEFAULT:
            self.socket_timeout = socket_timeout
        if stack_timeout is not _DEFAULT:
            self.stack_timeout = stack_timeout
        if ssl_options is not _DEFAULT:
            self.ssl_options = ssl_options
        # The default port depends on whether TLS is in use.
        if port is not _DEFAULT:
            self.port = port
        else:
            self.port = self.DEFAULT_SSL_PORT if self.ssl_options else self.DEFAULT_PORT
        if virtual_host is not _DEFAULT:
            self.virtual_host = virtual_host
        if tcp_options is not _DEFAULT:
            self.tcp_options = tcp_options


#: Keys understood inside the ``ssl_options`` URL option.
_SSL_URL_KEYS: Final = frozenset(
    {
        "protocol",
        "ca_certs",
        "cafile",
        "ca_path",
        "capath",
        "ca_data",
        "cadata",
        "certfile",
        "keyfile",
        "password",
        "ciphers",
        "server_hostname",
    }
)

#: How each URL query option is decoded before its property setter runs.
_URL_DECODERS: Final[dict[str, Callable[[str], object]]] = {
    "blocked_connection_timeout": float,
    "channel_max": int,
    "connection_attempts": int,
    "frame_max": int,
    "heartbeat": int,
    "retry_delay": float,
    "socket_timeout": float,
    "stack_timeout": float,
    "locale": str,
    "client_properties": lambda text: _parse_literal("client_properties", text),
    "tcp_options": lambda text: _parse_literal("tcp_options", text),
    "ssl_options": lambda text: _parse_literal("ssl_options", text),
}


def _parse_literal(name: str, text: str) -> object:
    """Decode *text* as a Python literal, or failing that as JSON.

    :raises ValueError: if it is neither.
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(
            f"URL option {name} must be a Python or JSON literal, but could not be parsed"
        ) from None


def _ssl_options_from_dict(opts: object, host: str) -> SSLOptions:
    """Build :class:`SSLOptions` from the ``ssl_options`` URL dictionary.

    :raises ValueError: if *opts* is not a dict or has unknown keys.
    """
    if not isinstance(opts, dict):
        raise ValueError(f"URL option ssl_options must be a dict, not {_type_name(opts)}")
    unknown = sorted(str(key) for key in opts if key not in _SSL_URL_KEYS)
    if unknown:
        known = ", ".join(sorted(_SSL_URL_KEYS))
        raise ValueError(f"Unknown ssl_options key(s) {unknown}; known keys: {known}")
    context = ssl.SSLContext(opts.get("protocol", ssl.PROTOCOL_TLS_CLIENT))
    cafile = opts.get("ca_certs") or opts.get("cafile")
    capath = opts.get("ca_path") or opts.get("capath")
    cadata = opts.get("ca_data") or opts.get("cadata")
    if cafile or capath or cadata:
        context.load_verify_locations(cafile, capath, cadata)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if "certfile" in opts:
        context.load_cert_chain(opts["certfile"], opts.get("keyfile"), opts.get("password"))
    if "ciphers" in opts:
        context.set_ciphers(opts["ciphers"])
    return SSLOptions(context, server_hostname=opts.get("server_hostname", host))


class URLParameters(Parameters):
    """Connection settings parsed from an AMQP URL.

    The URL has the form
    ``amqp[s]://[username[:password]@]host[:port][/virtual_host][?options]``.
    Percent-escapes are decoded in the user name, password and virtual host,
    so the default virtual host ``/`` is written ``%2f``; an empty or absent
    path also means ``/``.  The port defaults to 5672 for ``amqp`` and 5671
    for ``amqps``.  An ``amqps`` URL without ``ssl_options`` gets a verifying
    :func:`ssl.create_default_context` with ``server_hostname`` set to the
    host.

    Query options (each may appear once): ``heartbeat``, ``channel_max``,
    ``frame_max``, ``connection_attempts``, ``retry_delay``,
    ``socket_timeout``, ``stack_timeout``, ``locale``,
    ``blocked_connection_timeout``, ``client_properties`` and
    ``tcp_options`` (Python or JSON dict literals), and ``ssl_options``: a
    dict literal with any of ``protocol``, ``ca_certs``/``cafile``,
    ``ca_path``/``capath``, ``ca_data``/``cadata``, ``certfile``,
    ``keyfile``, ``password``, ``ciphers`` and ``server_hostname`` (default:
    the URL's host), from which an :class:`ssl.SSLContext` is built as pika
    does; the system CA certificates are loaded when no CA is named.  As in
    pika, ``ssl_options`` enables TLS even on an ``amqp`` URL, without
    changing the port, and ``ssl_options=None`` is rejected on ``amqps``.

    :param url: the AMQP URL.
    :raises TypeError: if *url* is not a string.
    :raises ValueError: for an unsupported scheme, a malformed port or
        query value, an option given twice, or an unknown query option.
    """

    __slots__ = ()

    def __init__(self, url: str) -> None:
        super().__init__()
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {_type_name(url)}")
        # Never echo the URL in errors: it may contain a password.
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "amqps":
            self.ssl_options = SSLOptions(ssl.create_default_context())
            self.ssl_options.platform_default = True
        elif scheme not in ("amqp", ""):
            raise ValueError(
                f"Unexpected URL scheme {parts.scheme!r}; supported schemes: amqp, amqps"
            )
        if parts.hostname:
            self.host = parts.hostname
        if self.ssl_options is not None:
            self.ssl_options.server_hostname = self.host
        port = parts.port  # raises ValueError for a malformed port
        if port is not None:
            self.port = port
        else:
            self.port = self.DEFAULT_SSL_PORT if self.ssl_options else self.DEFAULT_PORT
        if parts.username is not None:
            self.credentials = PlainCredentials(
                unquote(parts.username), unquote(parts.password or "")
            )
        if len(parts.path) > 1:
            self.virtual_host = unquote(parts.path.split("/")[1])
        for name, values in parse_qs(parts.query, keep_blank_values=True).items():
            self._apply_url_option(name, values)

    def _apply_url_option(self, name: str, values: list[str]) -> None:
        """Decode and apply one query option.

        :raises ValueError: for an unknown option, repeated option or bad value.
        """
        decoder = _URL_DECODERS.get(name)
        if decoder is None:
            known = ", ".join(sorted(_URL_DECODERS))
            raise ValueError(f"Unknown URL parameter {name!r}; known parameters: {known}")
        if len(values) != 1:
            raise ValueError(
                f"Expected exactly one value for URL parameter {name}, "
                f"but got {len(values)} values"
            )
        try:
            value = decoder(values[0])
        except ValueError:
            if decoder in (int, float):
                raise ValueError(f"Invalid {name} value {values[0]!r}") from None
            raise
        try:
            if name != "ssl_options":
                setattr(self, name, value)
            elif value is not None:
                self.ssl_options = _ssl_options_from_dict(value, self.host)
            elif self.ssl_options is not None:
                raise ValueError("ssl_options=None in the URL is inconsistent with amqps")
        except TypeError as exc:
            raise ValueError(f"Invalid value for URL parameter {name}: {exc}") from None

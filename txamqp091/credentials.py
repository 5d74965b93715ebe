"""SASL credentials for the AMQP connection handshake.

Mirrors :mod:`pika.credentials`: pass an instance as the ``credentials``
argument of :class:`~txamqp091.parameters.ConnectionParameters`;
:class:`~txamqp091.parameters.URLParameters` builds a
:class:`PlainCredentials` from the ``user:password`` part of the URL.

During the handshake the connection calls :meth:`PlainCredentials.response_for`
(or the same method of another credentials class) with the broker's
``Connection.Start`` method to obtain the mechanism name and the SASL
response to send in ``Connection.StartOk``.

The password is never included in ``repr()`` or ``str()`` of a credentials
object.
"""

from __future__ import annotations

import logging
from typing import Protocol

__all__ = [
    "VALID_TYPES",
    "ExternalCredentials",
    "PlainCredentials",
    "StartLike",
]

_log = logging.getLogger(__name__)


class StartLike(Protocol):
    """Anything with a ``mechanisms`` attribute, like ``Connection.Start``.

    ``mechanisms`` is the space-separated list of SASL mechanisms offered by
    the broker, as bytes or text.
    """

    @property
    def mechanisms(self) -> bytes | str:
        """The space-separated SASL mechanisms offered by the broker."""
        ...


def _offered(start: StartLike) -> list[bytes]:
    """Return the SASL mechanism names offered in *start*.

    :param start: the broker's ``Connection.Start`` method (or look-alike).
    :returns: the mechanism names, as bytes.
    """
    mechanisms = start.mechanisms
    if isinstance(mechanisms, str):
        mechanisms = mechanisms.encode("utf-8")
    return mechanisms.split()


class PlainCredentials:
    """Username and password for the SASL ``PLAIN`` mechanism.

    This is RabbitMQ's default mechanism; the default connection parameters
    use ``PlainCredentials("guest", "guest")``.

    :param username: the user name to authenticate as.
    :param password: the user's password.
    :param erase_on_connect: when true, :meth:`erase_credentials` (called by
        the connection once the handshake no longer needs them) forgets the
        username and password.
    :raises TypeError: if *username* or *password* is not a :class:`str`, or
        *erase_on_connect* is not a :class:`bool`.
    """

    #: SASL mechanism name (pika's spelling).
    TYPE = "PLAIN"

    __slots__ = ("erase_on_connect", "password", "username")

    def __init__(self, username: str, password: str, erase_on_connect: bool = False) -> None:
        if not isinstance(username, str):
            raise TypeError(f"username must be a str, not {type(username).__name__}")
        if not isinstance(password, str):
            # Never echo the value itself: it is a secret.
            raise TypeError(f"password must be a str, not {type(password).__name__}")
        if not isinstance(erase_on_connect, bool):
            raise TypeError(
                f"erase_on_connect must be a bool, not {type(erase_on_connect).__name__}"
            )
        #: The user name, or ``None`` once erased.
        self.username: str | None = username
        #: The password, or ``None`` once erased.
        self.password: str | None = password
        #: Whether :meth:`erase_credentials` forgets the username and password.
        self.erase_on_connect: bool = erase_on_connect

    @property
    def mechanism(self) -> str:
        """The SASL mechanism name, ``"PLAIN"``.

        :returns: the mechanism name sent in ``Connection.StartOk``.
        """
        return self.TYPE

    def sasl_response(self) -> bytes:
        """Build the SASL ``PLAIN`` response: ``NUL username NUL password``.

        :returns: the UTF-8 encoded response bytes.
        """
        user = (self.username or "").encode("utf-8")
        secret = (self.password or "").encode("utf-8")
        return b"\0" + user + b"\0" + secret

    def response_for(self, start: StartLike) -> tuple[str | None, bytes | None]:
        """Answer the broker's ``Connection.Start``.

        :param start: the broker's ``Connection.Start`` method.
        :returns: ``(mechanism, response)`` when the broker offers ``PLAIN``,
            otherwise ``(None, None)``.
        """
        if self.TYPE.encode("ascii") not in _offered(start):
            return None, None
        return self.TYPE, self.sasl_response()

    def erase_credentials(self) -> None:
        """Forget the username and password if ``erase_on_connect`` is set."""
        if self.erase_on_connect:
            _log.info("Erasing stored credential values")
            self.username = None
            self.password = None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PlainCredentials):
            return (
                self.username == other.username
                and self.password == other.password
                and self.erase_on_connect == other.erase_on_connect
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} username={self.username!r} "
            f"erase_on_connect={self.erase_on_connect!r}>"
        )

    __str__ = __repr__


class ExternalCredentials:
    """Credentials for the SASL ``EXTERNAL`` mechanism.

    The broker authenticates the client by other means, typically the TLS
    client certificate, so the SASL response is empty.
    """

    #: SASL mechanism name (pika's spelling).
    TYPE = "EXTERNAL"

    __slots__ = ("erase_on_connect",)

    def __init__(self) -> None:
        #: Always ``False``: there is nothing to erase.
        self.erase_on_connect: bool = False

    @property
    def mechanism(self) -> str:
        """The SASL mechanism name, ``"EXTERNAL"``.

        :returns: the mechanism name sent in ``Connection.StartOk``.
        """
        return self.TYPE

    def sasl_response(self) -> bytes:
        """Build the SASL ``EXTERNAL`` response, which is empty.

        :returns: ``b""``.
        """
        return b""

    def response_for(self, start: StartLike) -> tuple[str | None, bytes | None]:
        """Answer the broker's ``Connection.Start``.

        :param start: the broker's ``Connection.Start`` method.
        :returns: ``("EXTERNAL", b"")`` when the broker offers ``EXTERNAL``,
            otherwise ``(None, None)``.
        """
        if self.TYPE.encode("ascii") not in _offered(start):
            return None, None
        return self.TYPE, self.sasl_response()

    def erase_credentials(self) -> None:
        """Do nothing: external credentials hold no secret."""
        _log.debug("ExternalCredentials hold nothing to erase")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ExternalCredentials):
            return self.erase_on_connect == other.erase_on_connect
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


#: Credential classes accepted by ``Parameters.credentials``.  Append a custom
#: class (one with ``response_for`` and ``erase_credentials``) to allow it.
VALID_TYPES: list[type] = [PlainCredentials, ExternalCredentials]

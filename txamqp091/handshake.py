"""Connection handshake decisions: what the client announces and how limits are negotiated.

Pure functions, used by :class:`~txamqp091.protocol.AMQPProtocol` during
``Connection.Start`` / ``Connection.Tune``; they follow pika's rules so that
parameters mean the same thing in both clients.
"""

from __future__ import annotations

import platform
from typing import Any, Final

from txamqp091 import __version__
from txamqp091.parameters import Parameters

__all__ = ["CLIENT_CAPABILITIES", "client_properties", "negotiate", "negotiate_heartbeat"]

#: Capabilities announced to the broker in ``client_properties``.
CLIENT_CAPABILITIES: Final = {
    "authentication_failure_close": True,
    "basic.nack": True,
    "connection.blocked": True,
    "consumer_cancel_notify": True,
    "direct_reply_to": True,
    "exchange_exchange_bindings": True,
    "per_consumer_qos": True,
    "publisher_confirms": True,
}


def negotiate(client: int | None, server: int | None) -> int:
    """Negotiate ``channel_max`` or ``frame_max`` as pika does.

    Zero (or ``None``) means "no limit" on either side, so the other side's
    value wins; otherwise the smaller value wins.

    :param client: the value the client asked for.
    :param server: the value the broker proposed in ``Connection.Tune``.
    :returns: the value to send in ``Connection.TuneOk``.
    """
    client = client or 0
    server = server or 0
    if client == 0 or server == 0:
        return max(client, server)
    return min(client, server)


def negotiate_heartbeat(connection: object, client: Any, server: int) -> int:
    """Negotiate the heartbeat timeout as pika does.

    :param connection: passed to a callable *client* value.
    :param client: ``None`` (accept the broker's value), an ``int`` (the
        client's value wins, ``0`` disables heartbeats), or a callable
        ``(connection, server_value) -> int | None`` whose ``None`` accepts
        the broker's value.
    :param server: the broker's proposed timeout in seconds.
    :returns: the heartbeat timeout in seconds, ``0`` for none.
    :raises TypeError: when a callable returns something other than an
        ``int`` or ``None``.
    """
    if callable(client):
        value = client(connection, server)
        if value is None:
            return server
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"heartbeat callable must return an int or None, not {value!r}")
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"heartbeat callable returned {value}, outside 0..65535")
        return value
    if client is None:
        return server
    return int(client)


def client_properties(parameters: Parameters) -> dict[str, Any]:
    """The ``client_properties`` table sent in ``Connection.StartOk``.

    :param parameters: the connection parameters; their ``client_properties``
        are merged over the defaults (capabilities are merged key by key).
    :returns: a new dictionary.
    """
    props: dict[str, Any] = {
        "product": "txamqp091",
        "version": __version__,
        "platform": f"Python {platform.python_version()}",
        "information": "Twisted AMQP 0-9-1 client",
        "capabilities": dict(CLIENT_CAPABILITIES),
    }
    extra = parameters.client_properties or {}
    for key, value in extra.items():
        if key == "capabilities" and isinstance(value, dict):
            props["capabilities"].update(value)
        else:
            props[key] = value
    return props

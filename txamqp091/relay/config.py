"""The relay's settings: one :class:`LinkConfig` per link, checked in one place.

Links come from the command line (one link, named ``default``) or from a TOML file
(several named links).  Both give this module a mapping of option names to values
(the command line's names, such as ``source-queue``); :func:`link_config` checks it
and builds the link's settings, so the two sources cannot disagree on what is valid.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

from twisted.internet.endpoints import serverFromString

from txamqp091.parameters import URLParameters

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the relay extra installs tomli there)
    import tomli as tomllib

__all__ = [
    "ACK_MODES",
    "DEFAULT_HTTP",
    "DEFAULT_PREFETCH",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_STALL_TIMEOUT",
    "LINK_KEYS",
    "ON_REJECT",
    "ConfigError",
    "LinkConfig",
    "RelayConfig",
    "link_config",
    "load_config",
    "redact",
    "relay_config",
]

AckMode = Literal["on-confirm", "on-publish", "no-ack"]
OnReject = Literal["requeue", "drop", "dead-letter"]

#: When the source's deliveries are acknowledged.
ACK_MODES: tuple[AckMode, ...] = ("on-confirm", "on-publish", "no-ack")
#: What happens to a source delivery the destination nacked or returned.
ON_REJECT: tuple[OnReject, ...] = ("requeue", "drop", "dead-letter")
#: The HTTP endpoint: loopback only unless the operator says otherwise.
DEFAULT_HTTP = "tcp:9187:interface=127.0.0.1"
DEFAULT_PREFETCH = 1000
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
DEFAULT_STALL_TIMEOUT = 60.0

#: The settings a link takes (command-line spelling), and their meaning.
LINK_KEYS: dict[str, str] = {
    "source": "source broker URL (repeat for a failover list)",
    "source-queue": "the queue to consume from (must exist)",
    "dest": "destination broker URL (repeat for a failover list)",
    "dest-exchange": "the exchange to publish to ('' is the default exchange)",
    "dest-routing-key": "the routing key to publish with (default: the message's own)",
    "prefetch": f"unacknowledged source deliveries at most (default {DEFAULT_PREFETCH})",
    "ack-mode": "when to ack the source: on-confirm (default), on-publish or no-ack",
    "on-reject": "a destination nack or return: requeue (default), drop or dead-letter",
    "add-forward-headers": (
        "append a hop (link, source queue, destination exchange, time) to x-relayed-by"
    ),
    "stall-timeout": (
        "seconds with messages waiting at the source and none moving before the link "
        f"is restarted (default {DEFAULT_STALL_TIMEOUT:g}; 0 turns the watchdog off)"
    ),
}

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ConfigError(ValueError):
    """A setting is missing, unknown or invalid (the message says which and why)."""


@dataclass(frozen=True)
class LinkConfig:
    """One link's settings: consume from ``source_queue`` at one of ``sources``,
    publish to ``dest_exchange`` at one of ``dests``."""

    name: str
    sources: tuple[str, ...]
    source_queue: str
    dests: tuple[str, ...]
    dest_exchange: str = ""
    dest_routing_key: str | None = None
    prefetch: int = DEFAULT_PREFETCH
    ack_mode: AckMode = "on-confirm"
    on_reject: OnReject = "requeue"
    add_forward_headers: bool = False
    stall_timeout: float = DEFAULT_STALL_TIMEOUT


@dataclass(frozen=True)
class RelayConfig:
    """The whole relay: its links, its HTTP endpoint and its shutdown timeout."""

    links: tuple[LinkConfig, ...]
    http: str = DEFAULT_HTTP
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT


def redact(url: str) -> str:
    """*url* without its password, for logs, headers and the HTTP API.

    Everything between the scheme's ``://`` and the last ``@`` is the user
    information; what follows its first ``:`` is replaced by ``***`` (a password
    with ``/``, ``?``, ``#`` or ``@`` in it included; too much is hidden rather than
    too little).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, host = rest.rsplit("@", 1)
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def _secret(url: str) -> str:
    """The password in *url* ('' if none), as written."""
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return ""
    return rest.rsplit("@", 1)[0].partition(":")[2]


def _urls(value: Any, key: str, where: str) -> tuple[str, ...]:
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, Sequence) or isinstance(urls, str) or not urls:
        raise ConfigError(f"{where}: {key} must be a URL or a non-empty list of URLs")
    for url in urls:
        if not isinstance(url, str):
            raise ConfigError(f"{where}: {key} must be a URL or a list of URLs, not {url!r}")
        if not url.startswith(("amqp://", "amqps://")):
            raise ConfigError(f"{where}: {key} {redact(url)!r} is not an amqp:// or amqps:// URL")
        try:
            URLParameters(url)
        except (TypeError, ValueError) as e:
            why = str(e)
            secret = _secret(url)
            # The parser may quote the password, or a piece of it (one with "/" in it
            # is read as part of the host): then its message is withheld.
            pieces = {secret, unquote(secret), *re.split(r"[/?#@:]", secret)}
            if any(len(piece) > 1 and piece in why for piece in pieces):
                why = "malformed (the details would show the password)"
            raise ConfigError(f"{where}: bad {key} URL {redact(url)!r}: {why}") from None
    return tuple(urls)


def _str(value: Any, key: str, where: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise ConfigError(f"{where}: {key} must be a {'' if empty else 'non-empty '}string")
    if len(value.encode()) > 255:
        raise ConfigError(f"{where}: {key} is longer than 255 bytes")
    return value


def _number(value: Any, key: str, where: str, *, integer: bool, low: float, high: float) -> Any:
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            raise ConfigError(f"{where}: {key} must be a number, not {value!r}") from None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise ConfigError(f"{where}: {key} must be a number from {low:g} to {high:g}")
    return value


def _choice(value: Any, key: str, where: str, choices: Sequence[str]) -> Any:
    if value not in choices:
        raise ConfigError(f"{where}: {key} must be one of {', '.join(choices)}, not {value!r}")
    return value


def link_config(name: str, settings: Mapping[str, Any]) -> LinkConfig:
    """Check one link's *settings* (keys as in :data:`LINK_KEYS`) and build its config.

    :raises ConfigError: naming the link and the setting at fault.
    """
    where = f"link {name!r}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: a link name is 1-64 letters, digits, '_', '.' or '-'")
    unknown = sorted(set(settings) - set(LINK_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    for required in ("source", "source-queue", "dest"):
        if settings.get(required) in (None, [], ()):
            raise ConfigError(f"{where}: {required} is required")
    routing_key = settings.get("dest-routing-key")
    forward = settings.get("add-forward-headers", False)
    if not isinstance(forward, bool):
        raise ConfigError(f"{where}: add-forward-headers must be true or false")
    ack_mode = _choice(settings.get("ack-mode", "on-confirm"), "ack-mode", where, ACK_MODES)
    on_reject = _choice(settings.get("on-reject", "requeue"), "on-reject", where, ON_REJECT)
    return LinkConfig(
        name=name,
        sources=_urls(settings["source"], "source", where),
        source_queue=_str(settings["source-queue"], "source-queue", where, empty=False),
        dests=_urls(settings["dest"], "dest", where),
        dest_exchange=_str(settings.get("dest-exchange", ""), "dest-exchange", where),
        dest_routing_key=(
            None if routing_key is None else _str(routing_key, "dest-routing-key", where)
        ),
        prefetch=_number(
            settings.get("prefetch", DEFAULT_PREFETCH),
            "prefetch",
            where,
            integer=True,
            low=1,
            high=65535,
        ),
        ack_mode=ack_mode,
        on_reject=on_reject,
        add_forward_headers=forward,
        stall_timeout=float(
            _number(
                settings.get("stall-timeout", DEFAULT_STALL_TIMEOUT),
                "stall-timeout",
                where,
                integer=False,
                low=0,
                high=86400,
            )
        ),
    )


def relay_config(
    links: Sequence[LinkConfig], http: Any = DEFAULT_HTTP, shutdown_timeout: Any = None
) -> RelayConfig:
    """Check the relay-wide settings and the set of links."""
    if not links:
        raise ConfigError("no link: give --source, --source-queue and --dest, or --config")
    names = [link.name for link in links]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"link name(s) given twice: {', '.join(duplicates)}")
    if not isinstance(http, str) or not http:
        raise ConfigError("http must be a Twisted endpoint description, such as tcp:9187")
    try:
        # Parsed (and, for ssl:, its certificate read) without listening or a reactor.
        serverFromString(None, http)  # type: ignore[no-untyped-call]
    except Exception as e:  # each endpoint type raises its own errors
        raise ConfigError(f"http: {http!r} is not a usable endpoint description: {e}") from None
    timeout = DEFAULT_SHUTDOWN_TIMEOUT if shutdown_timeout is None else shutdown_timeout
    return RelayConfig(
        links=tuple(links),
        http=http,
        shutdown_timeout=float(
            _number(timeout, "shutdown-timeout", "relay", integer=False, low=0, high=3600)
        ),
    )


def load_config(path: str) -> tuple[list[LinkConfig], dict[str, Any]]:
    """Read a TOML file: its links (``[links.NAME]`` tables) and its relay-wide
    settings (``http``, ``shutdown-timeout`` at the top level).

    :raises ConfigError: for an unreadable or invalid file.
    """
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    unknown = sorted(set(document) - {"links", "http", "shutdown-timeout"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level setting(s) {', '.join(unknown)}")
    tables = document.get("links", {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigError(f"{path}: links must be tables, [links.NAME]")
    links = [link_config(name, table) for name, table in tables.items()]
    wide: dict[str, Any] = {
        key: document[key] for key in ("http", "shutdown-timeout") if key in document
    }
    return links, wide

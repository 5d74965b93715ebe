"""``twistd amqp-relay``'s command line."""

from __future__ import annotations

from typing import Any

from twisted.python import usage

from txamqp091.relay.config import (
    DEFAULT_HTTP,
    LINK_KEYS,
    ConfigError,
    LinkConfig,
    RelayConfig,
    link_config,
    load_config,
    relay_config,
)

__all__ = ["Options"]

_REPEATED = ("source", "dest")
_FLAGS = ("add-forward-headers",)


class Options(usage.Options):
    """The options of ``twistd amqp-relay``.

    The link options (``--source``, ``--source-queue``, ``--dest``…) describe one link,
    named ``default``; ``--config FILE`` adds the named links of a TOML file.  Every
    setting is checked here, so bad options and bad URLs stop twistd with a usage error
    before anything connects.  The checked settings are ``self.relay``, a
    :class:`~txamqp091.relay.config.RelayConfig`.
    """

    synopsis = "[options]"
    longdesc = (
        "Relay messages from a queue to an exchange, on the same or another broker, "
        "at least once: each source delivery is acknowledged only after the destination "
        "confirmed it (--ack-mode on-confirm). Both sides reconnect with backoff. "
        "Health, Prometheus metrics and pause/resume/restart are served over HTTP."
    )
    optFlags = [["add-forward-headers", None, LINK_KEYS["add-forward-headers"]]]
    optParameters = [
        [key, None, None, LINK_KEYS[key]]
        for key in LINK_KEYS
        if key not in _REPEATED and key not in _FLAGS
    ] + [
        ["http", None, DEFAULT_HTTP, "Twisted endpoint description of the HTTP API"],
        [
            "shutdown-timeout",
            None,
            None,
            "seconds to wait for in-flight confirms when stopping (default 30)",
        ],
        ["config", None, None, "a TOML file of named links ([links.NAME] tables)"],
    ]

    #: The checked configuration, set by :meth:`postOptions`.
    relay: RelayConfig

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["source"] = []
        self["dest"] = []

    def opt_source(self, url: str) -> None:
        """source broker URL (repeat for a failover list)"""
        self["source"].append(url)

    def opt_dest(self, url: str) -> None:
        """destination broker URL (repeat for a failover list)"""
        self["dest"].append(url)

    def postOptions(self) -> None:
        """Check everything; a problem is a usage error."""
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            raise usage.UsageError(
                "amqp-relay needs prometheus_client: pip install 'txamqp091[relay]'"
            ) from None
        try:
            self.relay = self._check()
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None

    def _check(self) -> RelayConfig:
        given: dict[str, Any] = {}
        for key in LINK_KEYS:
            value = self[key]
            if key in _FLAGS:
                if value:
                    given[key] = True
            elif value not in (None, []):
                given[key] = value
        links: list[LinkConfig] = []
        wide: dict[str, Any] = {}
        if self["config"] is not None:
            links, wide = load_config(self["config"])
        if given:
            links.insert(0, link_config("default", given))
        http = self["http"] if self["http"] != DEFAULT_HTTP else wide.get("http", DEFAULT_HTTP)
        timeout = self["shutdown-timeout"]
        if timeout is None:
            timeout = wide.get("shutdown-timeout")
        return relay_config(links, http, timeout)

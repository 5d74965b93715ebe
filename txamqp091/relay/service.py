"""The relay as a Twisted service: its links and its HTTP API, for twistd."""

from __future__ import annotations

from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.logger import Logger
from twisted.web.server import Site

from txamqp091.relay.config import RelayConfig
from txamqp091.relay.link import RelayLink
from txamqp091.relay.metrics import registry_for
from txamqp091.relay.web import relay_resource

__all__ = ["RelayService"]

_log = Logger()


class RelayService(MultiService):
    """Every link of *config*, and the HTTP API on ``config.http``.

    Stopping (twistd does it on SIGTERM and SIGINT) stops the links together, each
    waiting up to ``config.shutdown_timeout`` for its in-flight confirms, then the HTTP
    API.
    """

    def __init__(self, config: RelayConfig, reactor: Any = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        #: The links by name.
        self.links = {
            link.name: RelayLink(link, reactor, config.shutdown_timeout) for link in config.links
        }
        self.registry = registry_for(list(self.links.values()))
        site = Site(relay_resource(self.links, self.registry))  # type: ignore[no-untyped-call]
        site.noisy = False
        self._http = strports.service(config.http, site)
        self._http.setServiceParent(self)  # type: ignore[no-untyped-call]
        for link in self.links.values():
            link.setServiceParent(self)  # type: ignore[no-untyped-call]

    def startService(self) -> None:
        """Start the HTTP API and every link."""
        _log.info(
            "amqp-relay starting: {count} link(s) ({names}), HTTP on {http}",
            count=len(self.links),
            names=", ".join(self.links),
            http=self.config.http,
            relay_event="start",
        )
        super().startService()  # type: ignore[no-untyped-call]

    def stopService(self) -> Deferred[None]:
        """Stop the links (each draining its in-flight confirms), then the HTTP API,
        which answers until then."""
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        self.running = False
        _log.info("amqp-relay stopping", relay_event="stop")
        await DeferredList(
            [link.stopService() for link in self.links.values()], consumeErrors=True
        )
        await self._http.stopService()  # type: ignore[no-untyped-call]

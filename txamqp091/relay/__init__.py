"""``twistd amqp-relay``: an at-least-once relay between queues and brokers.

:mod:`~txamqp091.relay.options` parses the command line (and the TOML file of
``--config``) into a :class:`~txamqp091.relay.config.RelayConfig`;
:func:`~txamqp091.relay.service.makeService` builds the
:class:`~txamqp091.relay.service.RelayService`: one
:class:`~txamqp091.relay.link.RelayLink` per link and the HTTP API of
:mod:`~txamqp091.relay.web`.  The plugin in ``twisted/plugins/txamqp091_relay.py``
points twistd here.
"""

from __future__ import annotations

import gc
from typing import Any

from twisted.application.service import IService

from txamqp091.relay.options import Options

__all__ = ["Options", "makeService"]


def makeService(options: Options) -> IService:
    """twistd's entry point: the :class:`~txamqp091.relay.service.RelayService`
    described by parsed :class:`~txamqp091.relay.options.Options`."""
    # Imported here: the options (and so ``twistd amqp-relay --help``) work without
    # prometheus_client, whose absence they report as a usage error.
    from txamqp091.relay.service import RelayService

    _tune_gc()
    reactor: Any = None
    return RelayService(options.relay, reactor)


def _tune_gc() -> None:
    """Garbage-collector settings for the relay's process (twistd's, which it owns).

    Each message's objects live for a confirm round trip, long enough to be promoted,
    and the promotions set off full collections that stall the pipeline. The modules
    loaded so far are moved out of the collector's sight (``gc.freeze``), and the
    youngest generation is collected less often; memory stays bounded by the prefetch.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)

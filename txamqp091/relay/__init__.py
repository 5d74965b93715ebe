"""``twistd amqp-relay``: an at-least-once relay between queues and brokers.

:mod:`~txamqp091.relay.options` parses the command line (and the TOML file of
``--config``) into a :class:`~txamqp091.relay.config.RelayConfig`;
:func:`~txamqp091.relay.service.makeService` builds the
:class:`~txamqp091.relay.service.RelayService`: one
:class:`~txamqp091.relay.link.RelayLink` per link and the HTTP API of
:mod:`~txamqp091.relay.web`.  The plugin in ``twisted/plugins/txamqp091_relay.py``
points twistd here.
"""

from txamqp091.relay.options import Options
from txamqp091.relay.service import RelayService, makeService

__all__ = ["Options", "RelayService", "makeService"]

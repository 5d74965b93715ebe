"""The relay's Prometheus metrics, read from its links when scraped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from txamqp091.relay.link import STATES, RelayLink

__all__ = ["COUNTERS", "RelayCollector", "registry_for"]

#: The counters of :class:`~txamqp091.relay.link.LinkCounters` exported, with their help.
COUNTERS: dict[str, str] = {
    "consumed": "Deliveries received from the source queue",
    "published": "Messages published to the destination",
    "confirmed": "Publishes the destination confirmed",
    "acked": "Source deliveries acknowledged",
    "nacked": "Publishes the destination nacked",
    "returned": "Publishes the destination returned as unroutable",
    "redelivered": "Source deliveries flagged as redelivered",
    "requeued": "Source deliveries given back for redelivery",
    "dropped": "Deliveries rejected without requeue (on-reject drop) or lost in no-ack mode",
    "dead_lettered": "Deliveries rejected for dead-lettering (on-reject dead-letter)",
    "stale_acks": (
        "Acknowledgements and rejections not sent: the source connection of their "
        "delivery was lost (the broker delivers it again)"
    ),
    "stalls": "Times the watchdog found the link stalled",
    "restarts": "Link restarts (watchdog, failure or HTTP)",
}


class RelayCollector(Collector):
    """Exports each link's counters (``amqp_relay_<name>_total``, label ``link``),
    reconnections (``amqp_relay_reconnects_total``, labels ``link`` and ``side``),
    in-flight publishes (``amqp_relay_in_flight``) and state (``amqp_relay_link_state``,
    1 for the link's present state, 0 for the others)."""

    def __init__(self, links: Sequence[RelayLink]) -> None:
        self._links = links

    def collect(self) -> Iterable[Metric]:
        """The metrics as they are now."""
        for name, help_text in COUNTERS.items():
            family = CounterMetricFamily(f"amqp_relay_{name}", help_text, labels=["link"])
            for link in self._links:
                family.add_metric([link.config.name], getattr(link.counters, name))
            yield family
        reconnects = CounterMetricFamily(
            "amqp_relay_reconnects",
            "Connections recovered after a loss, per side",
            labels=["link", "side"],
        )
        in_flight = GaugeMetricFamily(
            "amqp_relay_in_flight",
            "Publishes waiting for the destination's confirm",
            labels=["link"],
        )
        state = GaugeMetricFamily(
            "amqp_relay_link_state", "1 for the link's present state", labels=["link", "state"]
        )
        for link in self._links:
            for side, count in link.counters.reconnects.items():
                reconnects.add_metric([link.config.name, side], count)
            in_flight.add_metric([link.config.name], link.in_flight)
            now = link.state
            for each in STATES:
                state.add_metric([link.config.name, each], 1 if each == now else 0)
        yield reconnects
        yield in_flight
        yield state


def registry_for(links: Sequence[RelayLink]) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) holding the links' metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RelayCollector(links))
    return registry

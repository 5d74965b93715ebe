"""What an application declared, kept so that it can be declared again after a reconnection.

:class:`Topology` records exchanges, queues, bindings (queue and exchange-to-exchange)
and consumers as the broker confirms them, and gives them back in the order a new
connection must declare them: exchanges, then queues, then bindings, then consumers.
It is plain data: it sends nothing, so recovery can be tested without a broker.

Rules, as RabbitMQ behaves:

* passive declarations are not recorded (they declare nothing);
* deleting an exchange or a queue forgets it and the bindings that name it; deleting a
  queue also forgets its consumers;
* a server-named queue (declared as ``""``) is declared anew with ``""`` after a
  reconnection; :meth:`Topology.rename_queue` then moves its bindings and consumers to
  the new name;
* an auto-delete queue goes when its last consumer is cancelled, and an auto-delete
  exchange when its last binding (as a source) is removed; they are forgotten then;
* a filter (``include``) can keep records out, e.g. transient objects the application
  re-creates itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

__all__ = [
    "BindingRecord",
    "ConsumerRecord",
    "ExchangeRecord",
    "QueueRecord",
    "Record",
    "Topology",
]


@dataclass(frozen=True)
class ExchangeRecord:
    """An exchange declared by the application."""

    name: str
    exchange_type: str = "direct"
    durable: bool = False
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class QueueRecord:
    """A queue declared by the application.

    ``name`` is the name the broker gave (for a server-named queue, the latest one).
    """

    name: str
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = False
    arguments: dict[str, Any] = field(default_factory=dict, compare=False)
    #: Declared as ``""``: the broker names it, anew on each declaration.
    server_named: bool = False


@dataclass(frozen=True)
class BindingRecord:
    """A binding of a queue (``kind="queue"``) or an exchange to a source exchange."""

    kind: Literal["queue", "exchange"]
    destination: str
    source: str
    routing_key: str = ""
    arguments: dict[str, Any] = field(default_factory=dict, compare=False)

    def key(self) -> tuple[str, str, str, str, tuple[tuple[str, str], ...]]:
        """What identifies the binding on the broker."""
        args = tuple(sorted((k, repr(v)) for k, v in self.arguments.items()))
        return (self.kind, self.destination, self.source, self.routing_key, args)


@dataclass(frozen=True)
class ConsumerRecord:
    """A consumer started by the application."""

    consumer_tag: str
    queue: str
    #: The ``on_message_callback`` or the :class:`~txamqp091.message.ConsumerQueue`.
    target: Any = field(compare=False)
    auto_ack: bool = False
    exclusive: bool = False
    arguments: dict[str, Any] = field(default_factory=dict, compare=False)
    channel_number: int = 0


#: Any of the records.
Record: TypeAlias = ExchangeRecord | QueueRecord | BindingRecord | ConsumerRecord


class Topology:
    """The record of declared exchanges, queues, bindings and consumers.

    :param include: called with each record before it is kept; ``False`` keeps it out.
    """

    def __init__(self, include: Callable[[Record], bool] | None = None) -> None:
        self._include = include
        self._exchanges: dict[str, ExchangeRecord] = {}
        self._queues: dict[str, QueueRecord] = {}
        self._bindings: dict[tuple[Any, ...], BindingRecord] = {}
        self._consumers: dict[tuple[int, str], ConsumerRecord] = {}

    def _keep(self, record: Record) -> bool:
        return self._include is None or bool(self._include(record))

    # -- what the application did ------------------------------------------------------

    def exchange_declared(self, record: ExchangeRecord, *, passive: bool = False) -> None:
        """Record an exchange the broker confirmed (``Exchange.DeclareOk``)."""
        if not passive and self._keep(record):
            self._exchanges[record.name] = record

    def exchange_deleted(self, name: str) -> None:
        """Forget an exchange and every binding it is the source or destination of."""
        self._exchanges.pop(name, None)
        for key, binding in list(self._bindings.items()):
            if binding.source == name or (
                binding.kind == "exchange" and binding.destination == name
            ):
                del self._bindings[key]

    def queue_declared(self, record: QueueRecord, *, passive: bool = False) -> None:
        """Record a queue the broker confirmed, under the name it gave."""
        if not passive and self._keep(record):
            self._queues[record.name] = record

    def queue_deleted(self, name: str) -> None:
        """Forget a queue, its bindings and its consumers."""
        self._queues.pop(name, None)
        for key, binding in list(self._bindings.items()):
            if binding.kind == "queue" and binding.destination == name:
                del self._bindings[key]
        for key, consumer in list(self._consumers.items()):
            if consumer.queue == name:
                del self._consumers[key]

    def bound(self, record: BindingRecord) -> None:
        """Record a binding the broker confirmed."""
        if self._keep(record):
            self._bindings[record.key()] = record

    def unbound(self, record: BindingRecord) -> None:
        """Forget a binding; an auto-delete source exchange left without one goes too."""
        self._bindings.pop(record.key(), None)
        source = self._exchanges.get(record.source)
        if (
            source is not None
            and source.auto_delete
            and not any(b.source == source.name for b in self._bindings.values())
        ):
            self.exchange_deleted(source.name)

    def consumer_started(self, record: ConsumerRecord) -> None:
        """Record a consumer the broker confirmed (``Basic.ConsumeOk``)."""
        if self._keep(record):
            self._consumers[(record.channel_number, record.consumer_tag)] = record

    def consumer_cancelled(self, consumer_tag: str, channel_number: int | None = None) -> None:
        """Forget a consumer (on *channel_number*, or on any channel when ``None``);
        an auto-delete queue left without one goes too."""
        consumer = self.consumer(consumer_tag, channel_number)
        if consumer is None:
            return
        del self._consumers[(consumer.channel_number, consumer.consumer_tag)]
        queue = self._queues.get(consumer.queue)
        if (
            queue is not None
            and queue.auto_delete
            and not any(c.queue == queue.name for c in self._consumers.values())
        ):
            self.queue_deleted(queue.name)

    # -- recovery ----------------------------------------------------------------------

    def rename_queue(self, old: str, new: str) -> None:
        """A server-named queue got a new name: move its record, bindings and consumers."""
        queue = self._queues.pop(old, None)
        if queue is not None:
            self._queues[new] = replace(queue, name=new)
        for key, binding in list(self._bindings.items()):
            if binding.kind == "queue" and binding.destination == old:
                del self._bindings[key]
                moved = replace(binding, destination=new)
                self._bindings[moved.key()] = moved
        for key, consumer in list(self._consumers.items()):
            if consumer.queue == old:
                self._consumers[key] = replace(consumer, queue=new)

    def consumer(
        self, consumer_tag: str, channel_number: int | None = None
    ) -> ConsumerRecord | None:
        """The record of a consumer (on *channel_number*, or on any channel), if kept."""
        if channel_number is not None:
            return self._consumers.get((channel_number, consumer_tag))
        for consumer in self._consumers.values():
            if consumer.consumer_tag == consumer_tag:
                return consumer
        return None

    def queue(self, name: str) -> QueueRecord | None:
        """The record of a queue, if kept."""
        return self._queues.get(name)

    def bindings_of(self, queue: str) -> list[BindingRecord]:
        """The recorded bindings whose destination is the queue *queue*."""
        return [b for b in self._bindings.values() if b.kind == "queue" and b.destination == queue]

    def forget_channel(self, channel_number: int) -> None:
        """Forget the consumers of a channel closed for good (as consumer_cancelled)."""
        for consumer in [
            c for c in self._consumers.values() if c.channel_number == channel_number
        ]:
            self.consumer_cancelled(consumer.consumer_tag, channel_number)

    def replay(self) -> Iterator[Record]:
        """Every record, in the order a new connection declares them: exchanges, queues,
        bindings (exchange-to-exchange ones first), consumers; each group in the order
        it was first recorded."""
        yield from list(self._exchanges.values())
        yield from list(self._queues.values())
        bindings = list(self._bindings.values())
        yield from [b for b in bindings if b.kind == "exchange"]
        yield from [b for b in bindings if b.kind == "queue"]
        yield from list(self._consumers.values())

    def __len__(self) -> int:
        return (
            len(self._exchanges) + len(self._queues) + len(self._bindings) + len(self._consumers)
        )

    @property
    def exchanges(self) -> list[ExchangeRecord]:
        """The recorded exchanges."""
        return list(self._exchanges.values())

    @property
    def queues(self) -> list[QueueRecord]:
        """The recorded queues."""
        return list(self._queues.values())

    @property
    def bindings(self) -> list[BindingRecord]:
        """The recorded bindings."""
        return list(self._bindings.values())

    @property
    def consumers(self) -> list[ConsumerRecord]:
        """The recorded consumers."""
        return list(self._consumers.values())

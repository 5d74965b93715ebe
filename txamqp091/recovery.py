"""Recovery of a service's channels, topology and consumers on a new connection.

:func:`recover` is what :class:`~txamqp091.service.AMQPClientService` runs on
each new connection after the first, before ``whenConnected`` fires:

1. the application's channels, with the same numbers, each with its
   ``basic_qos`` (per-consumer and global), confirm mode and tx mode;
2. on a channel of its own, the recorded exchanges, then queues (a
   server-named queue gets a new name, which is moved to its bindings and
   consumers and reported with :class:`QueueRenamed`), then bindings
   (exchange-to-exchange first);
3. the consumers, on their channels, with their tags, callbacks or queue
   objects.

The first failure stops recovery with a :class:`~txamqp091.exceptions.RecoveryError`
naming the entity; the service reports it (:class:`RecoveryFailed`), drops the
connection and tries again after its backoff.

The events a service gives its listeners are defined here too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from txamqp091.exceptions import RecoveryError
from txamqp091.topology import (
    BindingRecord,
    ConsumerRecord,
    ExchangeRecord,
    QueueRecord,
    Record,
    Topology,
)

if TYPE_CHECKING:
    from txamqp091.channel import Channel
    from txamqp091.protocol import AMQPProtocol
    from txamqp091.recovering_channel import RecoveringChannel

__all__ = [
    "ConnectionLost",
    "ConsumerCancelledByBroker",
    "QueueRenamed",
    "RecoveryEvent",
    "RecoveryFailed",
    "RecoveryStarted",
    "RecoverySucceeded",
    "declare",
    "recover",
]


@dataclass(frozen=True)
class ConnectionLost:
    """The service's connection closed without the application asking."""

    #: The error it closed with (e.g. ``StreamLostError``, ``AMQPHeartbeatTimeout``).
    reason: BaseException


@dataclass(frozen=True)
class RecoveryStarted:
    """A new connection is open; recovery of channels and topology begins on it."""

    connection: AMQPProtocol


@dataclass(frozen=True)
class QueueRenamed:
    """A server-named queue was declared again and got a new name."""

    old: str
    new: str


@dataclass(frozen=True)
class RecoverySucceeded:
    """Everything recorded was recovered; the service is healthy again."""

    connection: AMQPProtocol
    #: How many channels were reopened.
    channels: int
    #: How many exchanges, queues, bindings and consumers were declared again.
    records: int
    #: How many outbox messages were published again.
    republished: int


@dataclass(frozen=True)
class RecoveryFailed:
    """Recovering *entity* failed with *error*.

    During a reconnection the service is then unhealthy and tries again after
    its backoff; after a broker-sent consumer cancel, the consumer ended.
    """

    #: A topology record, or ``"channel N"``.
    entity: Record | str
    error: BaseException


@dataclass(frozen=True)
class ConsumerCancelledByBroker:
    """The broker cancelled a consumer (its queue was deleted, for instance)."""

    channel_number: int
    consumer_tag: str
    #: The queue it consumed from, when recorded.
    queue: str | None
    #: ``True`` when the queue is recorded: it was declared again and the
    #: consumer restarted with the same tag; ``False`` when the consumer ended.
    resumed: bool


#: Any of the events.
RecoveryEvent: TypeAlias = (
    ConnectionLost
    | RecoveryStarted
    | QueueRenamed
    | RecoverySucceeded
    | RecoveryFailed
    | ConsumerCancelledByBroker
)

Emit = Callable[[RecoveryEvent], None]


async def declare(channel: Channel, record: Record, topology: Topology, emit: Emit) -> None:
    """Declare one exchange, queue or binding record again on *channel*.

    A server-named queue is declared as ``""``; its new name replaces the old
    one in *topology* and is reported with :class:`QueueRenamed`.
    """
    if isinstance(record, ExchangeRecord):
        await channel.exchange_declare(
            record.name,
            record.exchange_type,
            False,
            record.durable,
            record.auto_delete,
            record.internal,
            record.arguments or None,
        )
    elif isinstance(record, QueueRecord):
        ok = await channel.queue_declare(
            "" if record.server_named else record.name,
            False,
            record.durable,
            record.exclusive,
            record.auto_delete,
            record.arguments or None,
        )
        new = ok.method.queue
        if new != record.name:
            topology.rename_queue(record.name, new)
            emit(QueueRenamed(record.name, new))
    elif isinstance(record, BindingRecord):
        if record.kind == "exchange":
            await channel.exchange_bind(
                record.destination, record.source, record.routing_key, record.arguments or None
            )
        else:
            await channel.queue_bind(
                record.destination, record.source, record.routing_key, record.arguments or None
            )
    else:  # pragma: no cover - consumers are started by their channel
        raise TypeError(f"cannot declare {record!r}")


async def recover(
    connection: AMQPProtocol,
    channels: Mapping[int, RecoveringChannel],
    topology: Topology,
    emit: Emit,
) -> int:
    """Recover *channels* and *topology* on *connection* (see the module's text).

    :returns: how many records were declared again.
    :raises RecoveryError: naming the first entity that failed.
    """
    for number in sorted(channels):
        wrapper = channels.get(number)
        if wrapper is None or wrapper.is_closed:
            continue  # closed by the application meanwhile
        try:
            raw = await connection.channel(number)
            if wrapper.is_closed:
                await raw.close()
                continue
            await wrapper._restore(raw)
        except Exception as e:
            raise RecoveryError(f"channel {number}", e) from e
    records = 0
    work: Channel | None = None  # opened for the first record, if any
    consumers: list[ConsumerRecord] = []
    for record in topology.replay():
        if isinstance(record, ConsumerRecord):
            consumers.append(record)
            continue
        try:
            if work is None:
                work = await connection.channel()
            await declare(work, record, topology, emit)
        except Exception as e:
            raise RecoveryError(record, e) from e
        records += 1
    if work is not None:
        await work.close()  # also fires if the connection went meanwhile: checked below
    _check_open(connection, channels)
    # The topology is back: the application may use its channels while the
    # consumers start (their handlers may publish, e.g. RPC replies).
    for wrapper in list(channels.values()):
        wrapper._go_live()
    for consumer in consumers:
        wrapper = channels.get(consumer.channel_number)
        if wrapper is None or wrapper.is_closed:
            continue  # closed meanwhile: it forgot its consumers
        try:
            if await wrapper._resume_consumer(consumer):
                records += 1
        except Exception as e:
            raise RecoveryError(consumer, e) from e
    _check_open(connection, channels)
    return records


def _check_open(connection: AMQPProtocol, channels: Mapping[int, RecoveringChannel]) -> None:
    """Recovery may succeed only with the connection and every channel open."""
    if not connection.is_open:
        reason = connection.close_reason
        raise RecoveryError("connection", reason or ConnectionError("the connection closed"))
    for number, wrapper in list(channels.items()):
        if not wrapper.is_closed and (wrapper.channel is None or not wrapper.channel.is_open):
            raise RecoveryError(
                f"channel {number}", ConnectionError(f"channel {number} closed during recovery")
            )


def describe(entity: Any) -> str:
    """A short text for a record or entity, for logs."""
    if isinstance(entity, ExchangeRecord):
        return f"exchange {entity.name!r}"
    if isinstance(entity, QueueRecord):
        return f"queue {entity.name!r}"
    if isinstance(entity, BindingRecord):
        return f"binding {entity.source!r} -> {entity.destination!r} ({entity.routing_key!r})"
    if isinstance(entity, ConsumerRecord):
        return f"consumer {entity.consumer_tag!r} on {entity.queue!r}"
    return str(entity)

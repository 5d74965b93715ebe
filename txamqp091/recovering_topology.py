"""The exchange, queue and binding methods of a recovering channel, which record what
the broker confirmed in the service's :class:`~txamqp091.topology.Topology`.

:class:`RecordingTopology` is a mixin of
:class:`~txamqp091.recovering_channel.RecoveringChannel`; each method forwards to
the core channel of the current connection and, once the broker answered, records
(or forgets) the entity so that recovery declares it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred

from txamqp091 import codec, spec
from txamqp091.topology import BindingRecord, ExchangeRecord, QueueRecord

if TYPE_CHECKING:
    from txamqp091.channel import Channel
    from txamqp091.service import AMQPClientService

__all__ = ["RecordingTopology"]

_T = TypeVar("_T")
_MethodFrame = codec.MethodFrame


class RecordingTopology:
    """Exchange, queue and binding methods that record for recovery."""

    # Provided by RecoveringChannel.
    _service: AMQPClientService

    def _current(self) -> Channel:
        raise NotImplementedError  # pragma: no cover - provided by RecoveringChannel

    def exchange_declare(
        self,
        exchange: str,
        exchange_type: str = "direct",
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Deferred[_MethodFrame[spec.Exchange.DeclareOk]]:
        """Declare an exchange; recorded (unless passive) for recovery."""
        kind = getattr(exchange_type, "value", exchange_type)
        d = self._current().exchange_declare(
            exchange, exchange_type, passive, durable, auto_delete, internal, arguments
        )

        def record(frame: Any) -> None:
            if exchange and not exchange.startswith("amq."):
                self._service.topology.exchange_declared(
                    ExchangeRecord(
                        exchange, kind, durable, auto_delete, internal, dict(arguments or {})
                    ),
                    passive=passive,
                )

        return with_effect(d, record)

    def exchange_delete(
        self, exchange: str | None = None, if_unused: bool = False
    ) -> Deferred[_MethodFrame[spec.Exchange.DeleteOk]]:
        """Delete an exchange and forget its record and bindings."""

        def forget(frame: Any) -> None:
            self._service.topology.exchange_deleted(exchange or "")

        return with_effect(self._current().exchange_delete(exchange, if_unused), forget)

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> Deferred[_MethodFrame[spec.Exchange.BindOk]]:
        """Bind an exchange to another; recorded for recovery."""

        def record(frame: Any) -> None:
            self._service.topology.bound(
                BindingRecord("exchange", destination, source, routing_key, dict(arguments or {}))
            )

        return with_effect(
            self._current().exchange_bind(destination, source, routing_key, arguments),
            record,
        )

    def exchange_unbind(
        self,
        destination: str | None = None,
        source: str | None = None,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> Deferred[_MethodFrame[spec.Exchange.UnbindOk]]:
        """Remove an exchange-to-exchange binding and forget it."""

        def forget(frame: Any) -> None:
            self._service.topology.unbound(
                BindingRecord(
                    "exchange", destination or "", source or "", routing_key, dict(arguments or {})
                )
            )

        return with_effect(
            self._current().exchange_unbind(destination, source, routing_key, arguments),
            forget,
        )

    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Deferred[_MethodFrame[spec.Queue.DeclareOk]]:
        """Declare a queue; recorded (unless passive) under the name the broker gave.

        A queue declared as ``""`` is server-named: after a reconnection it is
        declared as ``""`` again and its new name is reported
        (:class:`~txamqp091.recovery.QueueRenamed`) and used by its bindings and
        consumers.
        """
        d = self._current().queue_declare(
            queue, passive, durable, exclusive, auto_delete, arguments
        )

        def record(frame: Any) -> None:
            name: str = frame.method.queue
            self._service.topology.queue_declared(
                QueueRecord(
                    name, durable, exclusive, auto_delete, dict(arguments or {}), not queue
                ),
                passive=passive,
            )

        return with_effect(d, record)

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Deferred[_MethodFrame[spec.Queue.BindOk]]:
        """Bind a queue to an exchange; recorded for recovery."""
        key = queue if routing_key is None else routing_key

        def record(frame: Any) -> None:
            self._service.topology.bound(
                BindingRecord("queue", queue, exchange, key, dict(arguments or {}))
            )

        return with_effect(
            self._current().queue_bind(queue, exchange, routing_key, arguments), record
        )

    def queue_unbind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Deferred[_MethodFrame[spec.Queue.UnbindOk]]:
        """Remove a queue binding and forget it."""
        key = queue if routing_key is None else routing_key

        def forget(frame: Any) -> None:
            self._service.topology.unbound(
                BindingRecord("queue", queue, exchange or "", key, dict(arguments or {}))
            )

        return with_effect(
            self._current().queue_unbind(queue, exchange, routing_key, arguments),
            forget,
        )

    def queue_purge(self, queue: str) -> Deferred[_MethodFrame[spec.Queue.PurgeOk]]:
        """Purge a queue."""
        return self._current().queue_purge(queue)

    def queue_delete(
        self, queue: str, if_unused: bool = False, if_empty: bool = False
    ) -> Deferred[_MethodFrame[spec.Queue.DeleteOk]]:
        """Delete a queue and forget its record, bindings and consumers."""

        def forget(frame: Any) -> None:
            self._service.topology.queue_deleted(queue)

        return with_effect(self._current().queue_delete(queue, if_unused, if_empty), forget)


def with_effect(d: Deferred[_T], effect: Callable[[_T], object]) -> Deferred[_T]:
    """*d*, with *effect* run on its result (which passes through unchanged)."""

    def run(result: _T) -> _T:
        effect(result)
        return result

    return d.addCallback(run)

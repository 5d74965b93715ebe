"""The channel operations that are plain RPCs: QoS, exchanges, queues, transactions, flow.

:class:`ChannelRPCs` is a mixin of :class:`~txamqp091.channel.Channel`: each
method checks its arguments, builds the method and hands it to the channel's
RPC queue (``Channel._rpc``), which serialises it, times it out and fires the
returned Deferred with the broker's reply frame.  The argument checks shared
with the rest of the channel live here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from txamqp091 import codec, spec
from txamqp091.exchange_type import ExchangeType

__all__ = ["ChannelRPCs", "check_bool", "check_str", "check_table"]

_MethodFrame = codec.MethodFrame
_AnyFrame = codec.MethodFrame[spec.Method]


def check_str(value: object, name: str) -> str:
    """Return *value* if it is a ``str``; raise :class:`TypeError` naming *name* if not."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def check_bool(value: object, name: str) -> bool:
    """Return *value* if it is a ``bool``; raise :class:`TypeError` naming *name* if not."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def check_table(value: object, name: str) -> dict[str, Any] | None:
    """Return *value* if it is a ``dict`` or ``None``; raise :class:`TypeError` if not."""
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict or None, not {type(value).__name__}")
    return value


class ChannelRPCs:
    """Synchronous channel methods that only send a request and return its reply."""

    def _rpc(
        self,
        method: spec.Method,
        on_reply: Callable[[_AnyFrame], Any] | None = None,
        *,
        check: bool = True,
    ) -> Deferred[Any]:
        raise NotImplementedError  # pragma: no cover - provided by Channel

    def _send_nowait(self, method: spec.Method) -> Deferred[Any]:
        raise NotImplementedError  # pragma: no cover - provided by Channel

    def _request(self, method: Any) -> Deferred[Any]:
        """Send *method* as an RPC, or, when its ``nowait`` bit is set, in turn without
        expecting a reply (its Deferred then fires with ``None`` once it is queued;
        a refusal closes the channel)."""
        if method.nowait:
            return self._send_nowait(method)
        return self._rpc(method)

    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False
    ) -> Deferred[_MethodFrame[spec.Basic.QosOk]]:
        """Set the prefetch window (per consumer, or per channel with *global_qos*)."""
        check_bool(global_qos, "global_qos")
        return self._rpc(spec.Basic.Qos(prefetch_size, prefetch_count, global_qos))

    def basic_recover(self, requeue: bool = False) -> Deferred[_MethodFrame[spec.Basic.RecoverOk]]:
        """Ask the broker to redeliver unacknowledged messages."""
        check_bool(requeue, "requeue")
        return self._rpc(spec.Basic.Recover(requeue))

    # ------------------------------------------------------------------
    # Exchanges, queues, transactions, flow
    # ------------------------------------------------------------------

    def exchange_declare(
        self,
        exchange: str,
        exchange_type: str | ExchangeType = "direct",
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
        *,
        nowait: bool = False,
    ) -> Deferred[_MethodFrame[spec.Exchange.DeclareOk]]:
        """Declare an exchange; fires with the ``Exchange.DeclareOk`` frame."""
        kind = check_str(getattr(exchange_type, "value", exchange_type), "exchange_type")
        for name, flag in (
            ("passive", passive),
            ("durable", durable),
            ("auto_delete", auto_delete),
            ("internal", internal),
        ):
            check_bool(flag, name)
        return self._request(
            spec.Exchange.Declare(
                0,
                exchange,
                kind,
                passive,
                durable,
                auto_delete,
                internal,
                check_bool(nowait, "nowait"),
                check_table(arguments, "arguments") or {},
            )
        )

    def exchange_delete(
        self, exchange: str | None = None, if_unused: bool = False, *, nowait: bool = False
    ) -> Deferred[_MethodFrame[spec.Exchange.DeleteOk]]:
        """Delete an exchange; fires with the ``Exchange.DeleteOk`` frame."""
        check_bool(if_unused, "if_unused")
        return self._request(
            spec.Exchange.Delete(0, exchange or "", if_unused, check_bool(nowait, "nowait"))
        )

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
        *,
        nowait: bool = False,
    ) -> Deferred[_MethodFrame[spec.Exchange.BindOk]]:
        """Bind exchange *destination* to *source*; fires with ``Exchange.BindOk``."""
        return self._request(
            spec.Exchange.Bind(
                0,
                destination,
                source,
                routing_key,
                check_bool(nowait, "nowait"),
                check_table(arguments, "arguments") or {},
            )
        )

    def exchange_unbind(
        self,
        destination: str | None = None,
        source: str | None = None,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
        *,
        nowait: bool = False,
    ) -> Deferred[_MethodFrame[spec.Exchange.UnbindOk]]:
        """Remove an exchange-to-exchange binding; fires with ``Exchange.UnbindOk``."""
        return self._request(
            spec.Exchange.Unbind(
                0,
                destination or "",
                source or "",
                routing_key,
                check_bool(nowait, "nowait"),
                check_table(arguments, "arguments") or {},
            )
        )

    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        *,
        nowait: bool = False,
    ) -> Deferred[_MethodFrame[spec.Queue.DeclareOk]]:
        """Declare a queue (``""`` for a server-named one).

        :returns: a Deferred firing with the ``Queue.DeclareOk`` frame
            (``result.method.queue``, ``.message_count``, ``.consumer_count``).
        """
        check_str(queue, "queue")
        for name, flag in (
            ("passive", passive),
            ("durable", durable),
            ("exclusive", exclusive),
            ("auto_delete", auto_delete),
        ):
            check_bool(flag, name)
        return self._request(
            spec.Queue.Declare(
                0,
                queue,
                passive,
                durable,
                exclusive,
                auto_delete,
                check_bool(nowait, "nowait"),
                check_table(arguments, "arguments") or {},
            )
        )

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
        *,
        nowait: bool = False,
    ) -> Deferred[_MethodFrame[spec.Queue.BindOk]]:
        """Bind a queue; *routing_key* defaults to the queue name (as pika does)."""
        check_str(queue, "queue")
        return self._request(
            spec.Queue.Bind(
                0,
                queue,
                exchange,
                queue if routing_key is None else routing_key,
                check_bool(nowait, "nowait"),
                check_table(arguments, "arguments") or {},
            )
        )

    def queue_unbind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Deferred[_MethodFrame[spec.Queue.UnbindOk]]:
        """Remove a binding; *routing_key* defaults to the queue name."""
        check_str(queue, "queue")
        return self._rpc(
            spec.Queue.Unbind(
                0,
                queue,
                exchange or "",
                queue if routing_key is None else routing_key,
                check_table(arguments, "arguments") or {},
            )
        )

    def queue_purge(
        self, queue: str, *, nowait: bool = False
    ) -> Deferred[_MethodFrame[spec.Queue.PurgeOk]]:
        """Remove every ready message; fires with ``Queue.PurgeOk`` (``message_count``)."""
        check_str(queue, "queue")
        return self._request(spec.Queue.Purge(0, queue, check_bool(nowait, "nowait")))

    def queue_delete(
        self, queue: str, if_unused: bool = False, if_empty: bool = False, *, nowait: bool = False
    ) -> Deferred[_MethodFrame[spec.Queue.DeleteOk]]:
        """Delete a queue; fires with ``Queue.DeleteOk`` (``message_count``)."""
        check_str(queue, "queue")
        check_bool(if_unused, "if_unused")
        check_bool(if_empty, "if_empty")
        return self._request(
            spec.Queue.Delete(0, queue, if_unused, if_empty, check_bool(nowait, "nowait"))
        )

    def tx_select(self) -> Deferred[_MethodFrame[spec.Tx.SelectOk]]:
        """Use transactions on this channel; fires with ``Tx.SelectOk``."""
        return self._rpc(spec.Tx.Select())

    def tx_commit(self) -> Deferred[_MethodFrame[spec.Tx.CommitOk]]:
        """Commit the current transaction; fires with ``Tx.CommitOk``."""
        return self._rpc(spec.Tx.Commit())

    def tx_rollback(self) -> Deferred[_MethodFrame[spec.Tx.RollbackOk]]:
        """Roll back the current transaction; fires with ``Tx.RollbackOk``."""
        return self._rpc(spec.Tx.Rollback())

    def flow(self, active: bool) -> Deferred[_MethodFrame[spec.Channel.FlowOk]]:
        """Ask the broker to pause or resume deliveries; fires with ``Channel.FlowOk``.

        RabbitMQ does not implement ``flow(False)``: it closes the whole
        connection with 540 (``NOT_IMPLEMENTED``).  Use ``basic_qos`` or
        ``basic_cancel`` to stop deliveries instead.
        """
        check_bool(active, "active")
        return self._rpc(spec.Channel.Flow(active))

"""The topology record kept for recovery: what is recorded, forgotten, renamed, replayed."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txamqp091.topology import (
    BindingRecord,
    ConsumerRecord,
    ExchangeRecord,
    QueueRecord,
    Record,
    Topology,
)


def consumer(tag: str, queue: str) -> ConsumerRecord:
    return ConsumerRecord(consumer_tag=tag, queue=queue, target=None)


class TopologyTests(SynchronousTestCase):
    """Topology records declarations and replays them in dependency order."""

    def test_replay_order(self) -> None:
        """Replay gives exchanges, queues, exchange bindings, queue bindings, consumers,
        whatever order they were recorded in."""
        t = Topology()
        t.consumer_started(consumer("c1", "q1"))
        t.bound(BindingRecord("queue", "q1", "x1", "rk"))
        t.bound(BindingRecord("exchange", "x2", "x1", "#"))
        t.queue_declared(QueueRecord("q1", durable=True))
        t.exchange_declared(ExchangeRecord("x1", "topic"))
        t.exchange_declared(ExchangeRecord("x2", "fanout"))
        kinds = [type(r).__name__ + getattr(r, "kind", "") for r in t.replay()]
        self.assertEqual(
            kinds,
            [
                "ExchangeRecord",
                "ExchangeRecord",
                "QueueRecord",
                "BindingRecordexchange",
                "BindingRecordqueue",
                "ConsumerRecord",
            ],
        )
        self.assertEqual(len(t), 6)

    def test_passive_declarations_not_recorded(self) -> None:
        """Passive declares check, they do not declare: nothing is recorded."""
        t = Topology()
        t.exchange_declared(ExchangeRecord("x"), passive=True)
        t.queue_declared(QueueRecord("q"), passive=True)
        self.assertEqual(list(t.replay()), [])

    def test_queue_delete_forgets_bindings_and_consumers(self) -> None:
        """Deleting a queue forgets it, the bindings to it and its consumers, nothing else."""
        t = Topology()
        t.queue_declared(QueueRecord("q"))
        t.queue_declared(QueueRecord("other"))
        t.bound(BindingRecord("queue", "q", "x", "a"))
        t.bound(BindingRecord("queue", "other", "x", "b"))
        t.consumer_started(consumer("c", "q"))
        t.consumer_started(consumer("d", "other"))
        t.queue_deleted("q")
        self.assertEqual([q.name for q in t.queues], ["other"])
        self.assertEqual([b.destination for b in t.bindings], ["other"])
        self.assertEqual([c.consumer_tag for c in t.consumers], ["d"])

    def test_exchange_delete_forgets_its_bindings(self) -> None:
        """Deleting an exchange forgets the bindings where it is source or destination."""
        t = Topology()
        for name in ("x", "y"):
            t.exchange_declared(ExchangeRecord(name))
        t.bound(BindingRecord("exchange", "y", "x", ""))
        t.bound(BindingRecord("queue", "q", "x", ""))
        t.bound(BindingRecord("queue", "q", "y", ""))
        t.exchange_deleted("y")
        self.assertEqual([e.name for e in t.exchanges], ["x"])
        self.assertEqual([(b.destination, b.source) for b in t.bindings], [("q", "x")])

    def test_unbind_forgets_binding_and_empty_auto_delete_source(self) -> None:
        """Unbinding forgets the binding (arguments are part of its identity); an
        auto-delete exchange left without bindings is forgotten too."""
        t = Topology()
        t.exchange_declared(ExchangeRecord("ad", auto_delete=True))
        t.bound(BindingRecord("queue", "q", "ad", "k", {"x-match": "all"}))
        t.bound(BindingRecord("queue", "q", "ad", "k", {"x-match": "any"}))
        t.unbound(BindingRecord("queue", "q", "ad", "k", {"x-match": "all"}))
        self.assertEqual(len(t.bindings), 1)
        self.assertEqual([e.name for e in t.exchanges], ["ad"])
        t.unbound(BindingRecord("queue", "q", "ad", "k", {"x-match": "any"}))
        self.assertEqual(t.bindings, [])
        self.assertEqual(t.exchanges, [])

    def test_cancel_last_consumer_of_auto_delete_queue(self) -> None:
        """An auto-delete queue is forgotten with its last consumer (the broker deletes it);
        an ordinary queue stays."""
        t = Topology()
        t.queue_declared(QueueRecord("ad", auto_delete=True))
        t.queue_declared(QueueRecord("keep"))
        t.bound(BindingRecord("queue", "ad", "x", ""))
        for tag, queue in (("a", "ad"), ("b", "ad"), ("c", "keep")):
            t.consumer_started(consumer(tag, queue))
        t.consumer_cancelled("a")
        self.assertIn("ad", [q.name for q in t.queues])
        t.consumer_cancelled("b")
        t.consumer_cancelled("c")
        t.consumer_cancelled("unknown")
        self.assertEqual([q.name for q in t.queues], ["keep"])
        self.assertEqual(t.bindings, [])

    def test_rename_server_named_queue(self) -> None:
        """A server-named queue's new name reaches its bindings and consumers."""
        t = Topology()
        t.queue_declared(QueueRecord("amq.gen-old", exclusive=True, server_named=True))
        t.bound(BindingRecord("queue", "amq.gen-old", "x", "rk"))
        t.consumer_started(consumer("c", "amq.gen-old"))
        t.rename_queue("amq.gen-old", "amq.gen-new")
        self.assertEqual([(q.name, q.server_named) for q in t.queues], [("amq.gen-new", True)])
        self.assertEqual([b.destination for b in t.bindings], ["amq.gen-new"])
        self.assertEqual([c.queue for c in t.consumers], ["amq.gen-new"])

    def test_filter_keeps_records_out(self) -> None:
        """The include filter decides what is recorded."""

        def include(record: Record) -> bool:
            return not (isinstance(record, QueueRecord) and record.name.startswith("tmp."))

        t = Topology(include)
        t.queue_declared(QueueRecord("tmp.1"))
        t.queue_declared(QueueRecord("work"))
        self.assertEqual([q.name for q in t.queues], ["work"])

    def test_redeclare_replaces(self) -> None:
        """Declaring the same name again keeps one record, the latest."""
        t = Topology()
        t.exchange_declared(ExchangeRecord("x", "direct"))
        t.exchange_declared(ExchangeRecord("x", "topic"))
        self.assertEqual([(e.name, e.exchange_type) for e in t.exchanges], [("x", "topic")])

"""The service's outbox on its own: bounds, order, failing entries, body sizes."""

from __future__ import annotations

from array import array

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txamqp091 import ConnectionParameters
from txamqp091.exceptions import ConnectionRecovering, OutboxFull
from txamqp091.message import PublishedMessage
from txamqp091.outbox import Outbox, OutboxEntry
from txamqp091.protocol import AMQPProtocol
from txamqp091.recovering_channel import RecoveringChannel
from txamqp091.service import AMQPClientService
from txamqp091.test.fakebroker import FakeBroker
from txamqp091.test.test_recovery import Endpoint


class OutboxTests(SynchronousTestCase):
    """Outbox keeps entries in order within its bounds and fails them on demand."""

    def setUp(self) -> None:
        self.clock = Clock()
        # Two real service channels for the entries to belong to (the outbox only
        # compares them by identity).  The service is never started.
        service = AMQPClientService(
            self.clock, Endpoint(self.clock), parameters=ConnectionParameters(heartbeat=0)
        )
        broker = FakeBroker(
            AMQPProtocol(ConnectionParameters(heartbeat=0), self.clock), self.clock
        )
        broker.handshake()
        self.a = RecoveringChannel(service, broker.open_channel(1))
        self.b = RecoveringChannel(service, broker.open_channel(2))
        #: (label, what each entry's Deferred gave), in the order they fired.
        self.outcomes: list[tuple[str, object]] = []

    def tearDown(self) -> None:
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def entry(
        self,
        body: bytes | bytearray | memoryview,
        channel: RecoveringChannel | None = None,
        label: str = "",
    ) -> OutboxEntry:
        """An entry whose Deferred's outcome is recorded under *label*."""
        d: Deferred[object] = Deferred()

        def record(result: object) -> None:
            self.outcomes.append((label, result.value if isinstance(result, Failure) else result))

        d.addBoth(record)
        message = PublishedMessage("", "rk", body, None, False)
        return OutboxEntry(channel if channel is not None else self.a, message, d)

    def test_bounds_validated(self) -> None:
        """Both bounds must be ints >= 1 (not bools, not floats)."""
        for messages, size in ((0, 1), (1, 0), (-1, 1), (True, 1), (1, True), (1.5, 1), (1, "8")):
            with self.assertRaises(ValueError, msg=repr((messages, size))):
                Outbox(messages, size)  # type: ignore[arg-type]
        outbox = Outbox(1, 1)
        self.assertEqual((outbox.max_messages, outbox.max_bytes), (1, 1))
        self.assertEqual((len(outbox), outbox.bytes), (0, 0))

    def test_add_fits_and_take_all_in_order(self) -> None:
        """Entries are kept oldest first and counted (messages and bytes); take_all
        gives them in that order and empties the outbox, which then takes more."""
        outbox = Outbox(3, 100)
        entries = [self.entry(b"a" * n, label=str(n)) for n in (1, 2, 3)]
        for entry in entries:
            self.assertTrue(outbox.fits(entry))
            outbox.add(entry)
        self.assertEqual((len(outbox), outbox.bytes), (3, 6))
        self.assertFalse(outbox.fits(self.entry(b"")))
        taken = list(outbox.take_all())
        self.assertEqual([e.message.body for e in taken], [b"a", b"aa", b"aaa"])
        self.assertEqual([e for e in taken], entries)
        self.assertEqual((len(outbox), outbox.bytes), (0, 0))
        self.assertEqual(list(outbox.take_all()), [])
        outbox.add(self.entry(b"again"))
        self.assertEqual((len(outbox), outbox.bytes), (1, 5))
        self.assertEqual(self.outcomes, [])  # taking settles nothing

    def test_message_bound(self) -> None:
        """Past the message bound, add raises OutboxFull and keeps nothing; the
        refused entry's Deferred is not fired."""
        outbox = Outbox(2, 1000)
        outbox.add(self.entry(b"1"))
        outbox.add(self.entry(b"2"))
        refused = self.entry(b"", label="refused")
        self.assertFalse(outbox.fits(refused))
        self.assertRaises(OutboxFull, outbox.add, refused)
        self.assertEqual((len(outbox), outbox.bytes), (2, 2))
        self.assertEqual([e.message.body for e in outbox.take_all()], [b"1", b"2"])
        self.assertEqual(self.outcomes, [])

    def test_byte_bound(self) -> None:
        """Bodies may fill the byte bound exactly, not pass it; an empty body still
        fits a full byte bound while the message bound allows."""
        outbox = Outbox(10, 8)
        outbox.add(self.entry(b"12345"))
        self.assertFalse(outbox.fits(self.entry(b"1234")))
        self.assertRaises(OutboxFull, outbox.add, self.entry(b"1234"))
        self.assertEqual((len(outbox), outbox.bytes), (1, 5))
        outbox.add(self.entry(b"123"))
        self.assertEqual(outbox.bytes, 8)
        self.assertFalse(outbox.fits(self.entry(b"x")))
        outbox.add(self.entry(b""))
        self.assertEqual((len(outbox), outbox.bytes), (3, 8))
        self.assertRaises(OutboxFull, Outbox(1, 4).add, self.entry(b"12345"))

    def test_fail_all(self) -> None:
        """fail_all fails every entry's Deferred with the reason, oldest first, and
        empties the outbox."""
        outbox = Outbox(5, 100)
        for label in ("first", "second", "third"):
            outbox.add(self.entry(label.encode(), label=label))
        reason = ConnectionRecovering("stopped")
        outbox.fail_all(reason)
        self.assertEqual(self.outcomes, [("first", reason), ("second", reason), ("third", reason)])
        self.assertEqual((len(outbox), outbox.bytes), (0, 0))
        outbox.fail_all(reason)
        self.assertEqual(len(self.outcomes), 3)

    def test_fail_channel(self) -> None:
        """fail_channel fails only the entries of that channel; the others stay, in
        order, and the byte count is that of what is left."""
        outbox = Outbox(10, 100)
        outbox.add(self.entry(b"a1", self.a, "a1"))
        outbox.add(self.entry(b"b-one", self.b, "b1"))
        outbox.add(self.entry(b"a-two", self.a, "a2"))
        outbox.add(self.entry(b"b2", self.b, "b2"))
        reason = ConnectionRecovering("channel closed")
        outbox.fail_channel(self.a, reason)
        self.assertEqual(self.outcomes, [("a1", reason), ("a2", reason)])
        self.assertEqual((len(outbox), outbox.bytes), (2, 7))
        outbox.fail_channel(self.a, reason)  # nothing of a's is left
        self.assertEqual(len(self.outcomes), 2)
        self.assertEqual([e.message.body for e in outbox.take_all()], [b"b-one", b"b2"])
        self.assertEqual(len(self.outcomes), 2)

    def test_memoryview_and_bytearray_sizes(self) -> None:
        """A memoryview body counts its bytes (nbytes), not its items; a slice counts
        only its own bytes; a bytearray counts its length."""
        words = memoryview(array("I", [1, 2, 3, 4]))
        self.assertEqual(len(words), 4)
        self.assertEqual(self.entry(words).size, 4 * words.itemsize)
        self.assertEqual(self.entry(memoryview(b"0123456789")[2:5]).size, 3)
        self.assertEqual(self.entry(bytearray(b"abcd")).size, 4)
        outbox = Outbox(10, 4 * words.itemsize)
        outbox.add(self.entry(words))
        self.assertEqual(outbox.bytes, 4 * words.itemsize)
        self.assertFalse(outbox.fits(self.entry(memoryview(b"x"))))
        outbox.fail_channel(self.b, ConnectionRecovering("other channel"))
        self.assertEqual(outbox.bytes, 4 * words.itemsize)  # recomputed the same way

"""Tests of :func:`txamqp091.connect.try_in_turn`, the one driver of connection
attempts every face uses, on a :class:`~twisted.internet.task.Clock`."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txamqp091.connect import try_in_turn
from txamqp091.exceptions import AccessRefused, AMQPConnectionError
from txamqp091.parameters import ConnectionParameters


class TryInTurnTests(SynchronousTestCase):
    """pika's order of attempts, the waits between rounds, permanent errors,
    cancellation -- whatever the clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        #: ``(index, clock time)`` of each attempt.
        self.calls: list[tuple[int, float]] = []
        self.failures: list[tuple[str, BaseException]] = []

    def run_attempts(self, params: list[Any], outcomes: list[Any]) -> Deferred[Any]:
        """try_in_turn over *params*; attempt *n* returns ``outcomes[n]`` (an exception
        fails it, anything else succeeds with it, a Deferred is returned as is)."""

        def attempt(index: int) -> Deferred[Any]:
            self.calls.append((index, self.clock.seconds()))
            outcome = outcomes.pop(0)
            if isinstance(outcome, Deferred):
                return outcome
            if isinstance(outcome, BaseException):
                return fail(outcome)
            return succeed(outcome)

        return Deferred.fromCoroutine(
            try_in_turn(
                self.clock,
                params,
                attempt,
                lambda p, e: self.failures.append((p.host, e)),
            )
        )

    def test_rounds_and_delays(self) -> None:
        """The whole list per round, ``retry_delay`` (of the last parameters) between
        rounds, until one attempt succeeds; each failure is reported."""
        params = [
            ConnectionParameters("a"),
            ConnectionParameters("b", connection_attempts=3, retry_delay=5),
        ]
        refused = [AMQPConnectionError("refused") for _ in range(3)]
        d = self.run_attempts(params, [*refused, "connected"])
        self.assertEqual(self.calls, [(0, 0.0), (1, 0.0)])
        self.assertNoResult(d)
        self.clock.advance(5)
        self.assertEqual(self.calls[2:], [(0, 5.0), (1, 5.0)])
        self.assertEqual(self.successResultOf(d), "connected")
        self.assertEqual([host for host, _ in self.failures], ["a", "b", "a"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_last_error_when_every_attempt_fails(self) -> None:
        """Every attempt failing: the last attempt's error."""
        params = [ConnectionParameters("a", connection_attempts=2, retry_delay=1)]
        errors = [AMQPConnectionError("first"), AMQPConnectionError("second")]
        d = self.run_attempts(params, list(errors))
        self.clock.advance(1)
        self.assertIs(self.failureResultOf(d, AMQPConnectionError).value, errors[1])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_permanent_error_ends_it(self) -> None:
        """A refused login ends the plan at once, whatever is left of it."""
        params = [ConnectionParameters("a"), ConnectionParameters("b", connection_attempts=5)]
        d = self.run_attempts(params, [AccessRefused(403, "ACCESS_REFUSED")])
        self.failureResultOf(d, AccessRefused)
        self.assertEqual(self.calls, [(0, 0.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel_during_the_wait(self) -> None:
        """Cancelled between rounds: CancelledError, no timer left, no more attempts."""
        params = [ConnectionParameters("a", connection_attempts=3, retry_delay=5)]
        d = self.run_attempts(params, [AMQPConnectionError("refused"), "never"])
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10)
        self.assertEqual(len(self.calls), 1)

    def test_cancel_during_an_attempt(self) -> None:
        """Cancelled while an attempt runs: the attempt is cancelled, and so is all."""
        pending: Deferred[Any] = Deferred()
        params = [ConnectionParameters("a", connection_attempts=3, retry_delay=5)]
        d = self.run_attempts(params, [pending])
        d.cancel()
        self.assertTrue(pending.called)  # cancelled (its failure went to try_in_turn)
        self.failureResultOf(d, CancelledError)
        self.assertEqual(len(self.calls), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

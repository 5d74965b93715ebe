"""Helpers shared by the two Twisted clients of the benchmark (pika's adapter and ours).

Both clients' channels have ``queue_declare(queue=..., passive=True)`` returning a
Deferred of a frame with ``.method.message_count``, so one poller serves both.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from client import DEADLINE, POLL_INTERVAL, expect
from twisted.internet import defer, task

Gen = Generator[Any, Any, Any]


def sleep(reactor: Any, seconds: float) -> defer.Deferred[None]:
    """A Deferred that fires after *seconds*."""
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def wait_for_count(reactor: Any, ch: Any, queue: str, count: int) -> Gen:
    """Poll the broker until ``queue`` holds ``count`` messages (bounded)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        frame = yield ch.queue_declare(queue=queue, passive=True)
        held = frame.method.message_count
        if held == count:
            return
        if held > count or time.monotonic() > deadline:
            expect(held, count, f"messages in {queue}")
        yield sleep(reactor, POLL_INTERVAL)

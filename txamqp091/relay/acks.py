"""Acknowledging source deliveries in order, many with one frame.

The destination confirms publishes in batches and may settle them out of order; the
source broker's ``multiple`` flag acknowledges every delivery of the channel up to a
tag. :class:`AckWindow` keeps the deliveries in the order they came and, each time the
oldest ones are settled, acknowledges the confirmed ones among them with one
``basic.ack`` (``multiple=True``, up to the newest confirmed).  Deliveries rejected
or requeued in between were already settled with their own frame, so the broker no
longer counts them: the ``multiple`` ack does not touch them.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from txamqp091.exceptions import AMQPError
from txamqp091.recovering_channel import RecoveringChannel

__all__ = ["AckWindow"]

_WAITING, _CONFIRMED, _SETTLED = 0, 1, 2


class _Counters(Protocol):
    acked: int
    stale_acks: int


class AckWindow:
    """The unacknowledged deliveries of one source channel, oldest first.

    :param channel: the source channel (a recovering one: a tag from a lost
        connection is stale and not sent).
    :param counters: counts each delivery acknowledged in ``acked`` (acknowledged
        together or not), and each confirmed one that could not be (its connection was
        lost) in ``stale_acks``.
    """

    def __init__(self, channel: RecoveringChannel, counters: _Counters) -> None:
        self.channel = channel
        self._counters = counters
        self._order: deque[int] = deque()
        self._state: dict[int, int] = {}

    def add(self, tag: int) -> None:
        """A delivery to acknowledge once confirmed (tags come in increasing order)."""
        self._order.append(tag)
        self._state[tag] = _WAITING

    def confirmed(self, tag: int) -> None:
        """The destination confirmed *tag*'s copy: acknowledge it when all older ones
        are settled."""
        if tag not in self._state:
            self._counters.stale_acks += 1  # forgotten with its connection
            return
        self._state[tag] = _CONFIRMED
        self._advance()

    def settled(self, tag: int) -> None:
        """*tag* was settled otherwise (rejected, requeued): it no longer holds the
        acknowledgement of newer ones."""
        if tag in self._state:
            self._state[tag] = _SETTLED
            self._advance()

    def forget(self) -> None:
        """The channel's connection is lost: its deliveries cannot be acknowledged
        any more (the broker delivers them again)."""
        self._order.clear()
        self._state.clear()

    def _advance(self) -> None:
        order, state = self._order, self._state
        last = 0
        count = 0
        while order and state[order[0]] != _WAITING:
            tag = order.popleft()
            if state.pop(tag) == _CONFIRMED:
                last = tag
                count += 1
        if not count:
            return
        try:
            sent = self.channel.basic_ack(last, multiple=True)
        except AMQPError:
            sent = False  # the channel is gone: the broker requeues them
        if sent:
            self._counters.acked += count
        else:
            self._counters.stale_acks += count

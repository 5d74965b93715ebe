"""Heartbeats: send when the link is quiet, notice when the peer is silent.

With a negotiated timeout ``H`` (seconds), :class:`Heartbeat` checks every
``H / 2`` whether anything was sent since the last check and sends a heartbeat
frame if not; and it declares the peer dead when nothing at all was received
for ``2 * H`` (a broker that sends only after ``H / 2`` of quiet can leave gaps
close to ``H``, which must not look like a dead peer).  It only reads the
clock when a check runs and when bytes arrive.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["Heartbeat"]


class Heartbeat:
    """Heartbeat timers for one connection.

    :param clock: the connection's clock.
    :param timeout: the negotiated heartbeat timeout ``H``, in seconds (> 0).
    :param bytes_sent: returns how many bytes the connection has sent so far.
    :param send: writes one heartbeat frame.
    :param dead: called once, when the peer has been silent for ``2 * H``.
    """

    def __init__(
        self,
        clock: IReactorTime,
        timeout: float,
        bytes_sent: Callable[[], int],
        send: Callable[[], None],
        dead: Callable[[], None],
    ) -> None:
        self._clock = clock
        self._timeout = timeout
        self._bytes_sent = bytes_sent
        self._send = send
        self._dead = dead
        #: Clock time of the last bytes received (set by the connection).
        self.last_received = clock.seconds()
        self._sent_at_check = bytes_sent()
        self._send_timer: IDelayedCall | None = clock.callLater(timeout / 2, self._send_check)
        self._recv_timer: IDelayedCall | None = clock.callLater(2 * timeout, self._recv_check)

    def received(self) -> None:
        """Note that bytes arrived from the peer."""
        self.last_received = self._clock.seconds()

    def stop(self) -> None:
        """Cancel both timers (idempotent)."""
        for timer in (self._send_timer, self._recv_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._send_timer = self._recv_timer = None

    def _send_check(self) -> None:
        sent = self._bytes_sent()
        if sent == self._sent_at_check:
            self._send()
            sent = self._bytes_sent()
        self._sent_at_check = sent
        self._send_timer = self._clock.callLater(self._timeout / 2, self._send_check)

    def _recv_check(self) -> None:
        deadline = self.last_received + 2 * self._timeout
        now = self._clock.seconds()
        if now >= deadline:
            self._recv_timer = None
            self.stop()
            self._dead()
            return
        self._recv_timer = self._clock.callLater(deadline - now, self._recv_check)

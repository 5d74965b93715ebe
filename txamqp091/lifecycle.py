"""Open, closing, closed: the life of a connection or a channel.

:class:`Lifecycle` holds what connections and channels share about it: the
state, the typed reason they closed, the ``is_open``/``is_closing``/
``is_closed`` properties, close callbacks and :meth:`Lifecycle.when_closed`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

__all__ = ["CLOSED", "CLOSING", "OPEN", "Lifecycle"]

_log = Logger()

#: Open and usable.
OPEN: Final = "open"
#: The close handshake is in progress.
CLOSING: Final = "closing"
#: Gone; :attr:`Lifecycle.close_reason` says why.
CLOSED: Final = "closed"


class Lifecycle:
    """State and close notifications shared by connections and channels."""

    _state: str
    _reason: Exception | None

    def _init_lifecycle(self, state: str) -> None:
        self._state = state
        self._reason = None
        self._close_callbacks: list[Callable[[Any, Exception], object]] = []
        self._close_waiters: list[Deferred[Exception]] = []

    @property
    def is_open(self) -> bool:
        """``True`` once open, until closing starts."""
        return self._state is OPEN

    @property
    def is_closing(self) -> bool:
        """``True`` while the close handshake is in progress."""
        return self._state is CLOSING

    @property
    def is_closed(self) -> bool:
        """``True`` once closed."""
        return self._state is CLOSED

    @property
    def close_reason(self) -> Exception | None:
        """The typed reason it closed, or ``None`` while it is not closed."""
        return self._reason if self._state is CLOSED else None

    def add_on_close_callback(self, callback: Callable[[Any, Exception], object]) -> None:
        """Call ``callback(self, reason)`` once, when it closes.

        :param callback: called with this object and the typed reason.
        """
        self._close_callbacks.append(callback)

    def when_closed(self) -> Deferred[Exception]:
        """A Deferred that fires (never fails) with the typed reason it closed.

        :returns: a new Deferred; already fired if it is closed.
        """
        if self._state is CLOSED:
            assert self._reason is not None
            return succeed(self._reason)
        d: Deferred[Exception] = Deferred()
        self._close_waiters.append(d)
        return d

    def _announce_closed(self, reason: Exception) -> None:
        """Run the close callbacks, then fire the :meth:`when_closed` Deferreds."""
        for callback in self._close_callbacks:
            try:
                callback(self, reason)
            except Exception:
                _log.failure("on-close callback {cb!r} failed", cb=callback)
        waiters, self._close_waiters = self._close_waiters, []
        for d in waiters:
            d.callback(reason)

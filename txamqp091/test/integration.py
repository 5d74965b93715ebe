"""Shared helpers for integration tests that run on the reactor against a real broker.

Every helper calls :func:`txamqp091.test.broker.ensure_broker` before connecting, so an
unreachable broker makes the test fail (with :class:`RuntimeError`), never skip.

Use :class:`IntegrationTestCase` as the base class; it opens connections and channels
whose closing is registered as a cleanup, and deletes the queues and exchanges a test
declares through :meth:`IntegrationTestCase.declare_queue` /
:meth:`IntegrationTestCase.declare_exchange` (or registers with
:meth:`IntegrationTestCase.delete_queue_later` / :meth:`IntegrationTestCase.delete_exchange_later`)
on a connection of its own, so the cleanup works even when the test's channel was closed.
"""

# trial's assertion methods carry no annotations.
# mypy: allow-untyped-calls

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.trial import unittest

from txamqp091.channel import Channel
from txamqp091.connect import connect
from txamqp091.exceptions import AMQPError
from txamqp091.protocol import AMQPProtocol
from txamqp091.test.broker import amqp_url, ensure_broker

__all__ = [
    "IntegrationTestCase",
    "async_test",
    "inline_generator",
    "open_connection",
    "open_connection_d",
    "reactor",
    "unique_name",
    "wait_for",
]

#: The global reactor, typed loosely (its interfaces are provided dynamically).
reactor: Any = _reactor

T = TypeVar("T")

#: Seconds allowed for one awaited event in :func:`wait_for` unless told otherwise.
DEFAULT_WAIT = 10.0


def unique_name(prefix: str = "txamqp091-test") -> str:
    """Return a name no other test (or test run) uses: ``prefix`` plus a random uuid."""
    return f"{prefix}-{uuid.uuid4().hex}"


async def open_connection(**kw: Any) -> AMQPProtocol:
    """Make sure the broker answers, then connect to :func:`amqp_url`.

    :param kw: passed on to :func:`txamqp091.connect.connect` (``parameters``,
        ``rpc_timeout``), except ``url``, which replaces :func:`amqp_url`.
    :raises RuntimeError: if no broker answers (integration tests fail, never skip).
    """
    url = kw.pop("url", None) or amqp_url()
    ensure_broker()
    return await connect(reactor, url, **kw)


def open_connection_d(**kw: Any) -> defer.Deferred[AMQPProtocol]:
    """:func:`open_connection` as a Deferred, for ``inlineCallbacks`` code."""
    return defer.ensureDeferred(open_connection(**kw))


def wait_for(d: defer.Deferred[T], timeout: float = DEFAULT_WAIT) -> defer.Deferred[T]:
    """Return ``d``, failing with :class:`twisted.internet.defer.TimeoutError` after
    ``timeout`` seconds if it has not fired by then (it is then cancelled)."""
    return d.addTimeout(timeout, reactor)


def async_test(
    method: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., defer.Deferred[None]]:
    """Wrap an ``async def`` test method so that it returns a Deferred trial waits for."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> defer.Deferred[None]:
        return defer.ensureDeferred(method(self, *args, **kwargs))

    wrapper.__name__ = method.__name__
    wrapper.__qualname__ = method.__qualname__
    wrapper.__doc__ = method.__doc__
    wrapper.__module__ = method.__module__
    return wrapper


class IntegrationTestCase(unittest.TestCase):
    """Base class for tests against the real broker.

    Connections opened with :meth:`open_connection` are closed, and recorded queues and
    exchanges deleted, when the test ends (pass or fail).
    """

    #: Seconds trial allows for each test, cleanups included.
    timeout = 30

    # Recorded per test, created on first use (so subclasses need not call setUp).
    _queues_to_delete: list[str]
    _exchanges_to_delete: list[str]

    # -- connections and channels ---------------------------------------------------------

    async def open_connection(self, **kw: Any) -> AMQPProtocol:
        """Open a connection (see :func:`open_connection`) closed at cleanup."""
        conn = await open_connection(**kw)
        self.addCleanup(self._close_connection, conn)
        return conn

    @staticmethod
    def _close_connection(conn: AMQPProtocol) -> defer.Deferred[None]:
        d = conn.close()
        return d.addErrback(lambda _: None)

    async def open_channel(self, conn: AMQPProtocol | None = None) -> Channel:
        """Open a channel on ``conn``, or on a new connection closed at cleanup."""
        if conn is None:
            conn = await self.open_connection()
        return await conn.channel()

    async def connection_and_channel(self, **kw: Any) -> tuple[AMQPProtocol, Channel]:
        """Open a connection (closed at cleanup) and one channel on it."""
        conn = await self.open_connection(**kw)
        channel = await conn.channel()
        return conn, channel

    def open_connection_d(self, **kw: Any) -> defer.Deferred[AMQPProtocol]:
        """:meth:`open_connection` as a Deferred, for ``inlineCallbacks`` tests."""
        return defer.ensureDeferred(self.open_connection(**kw))

    def open_channel_d(self, conn: AMQPProtocol | None = None) -> defer.Deferred[Channel]:
        """:meth:`open_channel` as a Deferred, for ``inlineCallbacks`` tests."""
        return defer.ensureDeferred(self.open_channel(conn))

    def connection_and_channel_d(self, **kw: Any) -> defer.Deferred[tuple[AMQPProtocol, Channel]]:
        """:meth:`connection_and_channel` as a Deferred, for ``inlineCallbacks`` tests."""
        return defer.ensureDeferred(self.connection_and_channel(**kw))

    # -- declared objects -----------------------------------------------------------------

    def _register_object_cleanup(self) -> None:
        if "_queues_to_delete" not in self.__dict__:
            self._queues_to_delete = []
            self._exchanges_to_delete = []
            self.addCleanup(lambda: defer.ensureDeferred(self._delete_objects()))

    def delete_queue_later(self, queue: str) -> str:
        """Delete ``queue`` when the test ends; return its name."""
        self._register_object_cleanup()
        self._queues_to_delete.append(queue)
        return queue

    def delete_exchange_later(self, exchange: str) -> str:
        """Delete ``exchange`` when the test ends; return its name."""
        self._register_object_cleanup()
        self._exchanges_to_delete.append(exchange)
        return exchange

    async def declare_queue(self, channel: Channel, queue: str | None = None, **kw: Any) -> str:
        """Declare a queue (uniquely named unless ``queue`` is given; ``""`` asks the
        broker for a name), delete it at cleanup, and return its name."""
        if queue is None:
            queue = unique_name("txamqp091-test-q")
        if queue:
            self.delete_queue_later(queue)
        frame = await channel.queue_declare(queue, **kw)
        method: Any = frame.method
        name: str = method.queue
        if not queue:
            self.delete_queue_later(name)
        return name

    async def declare_exchange(
        self,
        channel: Channel,
        exchange: str | None = None,
        exchange_type: str = "direct",
        **kw: Any,
    ) -> str:
        """Declare an exchange (uniquely named unless ``exchange`` is given), delete it at
        cleanup, and return its name."""
        if exchange is None:
            exchange = unique_name("txamqp091-test-x")
        self.delete_exchange_later(exchange)
        await channel.exchange_declare(exchange, exchange_type, **kw)
        return exchange

    async def _delete_objects(self) -> None:
        """Delete the recorded queues and exchanges on a connection of their own."""
        queues, exchanges = self._queues_to_delete, self._exchanges_to_delete
        del self._queues_to_delete, self._exchanges_to_delete
        if not queues and not exchanges:
            return
        conn = await open_connection()
        try:
            channel = await conn.channel()
            deletions: list[tuple[Callable[[Channel, str], Awaitable[object]], str]] = [
                (lambda ch, q: ch.queue_delete(q), q) for q in queues
            ] + [(lambda ch, x: ch.exchange_delete(x), x) for x in exchanges]
            for delete, name in deletions:
                if not channel.is_open:
                    channel = await conn.channel()
                try:
                    await delete(channel, name)
                except AMQPError:
                    # e.g. 405 for an exclusive queue of a still-open connection (it goes
                    # away with that connection); the next deletion uses a new channel.
                    pass
        finally:
            await conn.close()


def inline_generator(
    gen: Callable[..., Generator[Any, Any, T]],
) -> Callable[..., defer.Deferred[T]]:
    """Shorthand for :func:`twisted.internet.defer.inlineCallbacks` with typing."""
    return defer.inlineCallbacks(gen)

"""pika's ``pika.adapters`` layout, so that programs reaching the connection classes
through it (``pika.adapters.asyncio_connection.AsyncioConnection``) run unchanged with
``import txamqp091 as pika``; a ``from pika.adapters... import`` line names the
package itself and becomes ``from txamqp091.adapters... import``.
"""

from txamqp091.adapters import (
    asyncio_connection,
    blocking_connection,
    select_connection,
    tornado_connection,
)
from txamqp091.adapters.asyncio_connection import AsyncioConnection
from txamqp091.adapters.blocking_connection import BlockingConnection
from txamqp091.adapters.select_connection import IOLoop, SelectConnection

__all__ = [
    "AsyncioConnection",
    "BlockingConnection",
    "IOLoop",
    "SelectConnection",
    "asyncio_connection",
    "blocking_connection",
    "select_connection",
    "tornado_connection",
]

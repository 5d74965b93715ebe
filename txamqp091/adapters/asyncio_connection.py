"""pika's ``pika.adapters.asyncio_connection``: see :mod:`txamqp091.asyncio_connection`."""

from txamqp091.asyncio_connection import AsyncioConnection

__all__ = ["AsyncioConnection"]

"""pika's ``pika.adapters.tornado_connection``: see :mod:`txamqp091.asyncio_connection`."""

from txamqp091.asyncio_connection import TornadoConnection

__all__ = ["TornadoConnection"]

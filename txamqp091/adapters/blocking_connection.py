"""pika's ``pika.adapters.blocking_connection``: see :mod:`txamqp091.blocking`."""

from txamqp091.blocking import BlockingChannel, BlockingConnection

__all__ = ["BlockingChannel", "BlockingConnection"]

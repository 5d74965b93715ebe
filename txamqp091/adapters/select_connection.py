"""pika's ``pika.adapters.select_connection``: see :mod:`txamqp091.select_connection`."""

from txamqp091.select_connection import IOLoop, SelectConnection

__all__ = ["IOLoop", "SelectConnection"]

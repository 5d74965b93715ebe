"""Exchange types, as pika's ``pika.exchange_type`` names them."""

from __future__ import annotations

from enum import Enum

__all__ = ["ExchangeType"]


class ExchangeType(Enum):
    """The exchange types RabbitMQ knows; ``exchange_declare`` takes a member or its
    value."""

    direct = "direct"
    fanout = "fanout"
    headers = "headers"
    topic = "topic"

"""txamqp091: a Twisted-first AMQP 0-9-1 client for RabbitMQ."""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]

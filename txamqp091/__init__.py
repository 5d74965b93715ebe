"""txamqp091: a Twisted-first AMQP 0-9-1 client for RabbitMQ.

The top level mirrors pika's, so that ``import txamqp091 as pika`` finds the
names pika programs use; the connection classes join them as they land.
"""

from txamqp091 import credentials, exceptions, spec
from txamqp091.credentials import ExternalCredentials, PlainCredentials
from txamqp091.parameters import ConnectionParameters, SSLOptions, URLParameters
from txamqp091.spec import BasicProperties, DeliveryMode

__version__ = "0.1.0.dev0"

__all__ = [
    "BasicProperties",
    "ConnectionParameters",
    "DeliveryMode",
    "ExternalCredentials",
    "PlainCredentials",
    "SSLOptions",
    "URLParameters",
    "__version__",
    "credentials",
    "exceptions",
    "spec",
]

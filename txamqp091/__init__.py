"""txamqp091: a Twisted-first AMQP 0-9-1 client for RabbitMQ.

The top level mirrors pika's, so that ``import txamqp091 as pika`` finds the
names pika programs use; the connection classes join them as they land.
"""

from txamqp091 import credentials, exceptions, exchange_type, spec
from txamqp091.credentials import ExternalCredentials, PlainCredentials
from txamqp091.parameters import ConnectionParameters, SSLOptions, URLParameters
from txamqp091.spec import BasicProperties, DeliveryMode

__version__ = "0.1.0.dev0"

# The core imports __version__ (client_properties), so it comes after it.
from txamqp091 import adapters, aio  # after __version__, which the core imports
from txamqp091.blocking import BlockingChannel, BlockingConnection
from txamqp091.channel import Channel
from txamqp091.connect import AMQPClientFactory, connect
from txamqp091.message import ConsumerQueue, ReceivedMessage, ReturnedMessage
from txamqp091.protocol import AMQPProtocol
from txamqp091.recovering_channel import RecoveringChannel
from txamqp091.select_connection import IOLoop, SelectConnection
from txamqp091.service import AMQPClientService

__all__ = [
    "AMQPClientFactory",
    "AMQPClientService",
    "AMQPProtocol",
    "BasicProperties",
    "BlockingChannel",
    "BlockingConnection",
    "Channel",
    "ConnectionParameters",
    "ConsumerQueue",
    "DeliveryMode",
    "ExternalCredentials",
    "IOLoop",
    "PlainCredentials",
    "ReceivedMessage",
    "RecoveringChannel",
    "ReturnedMessage",
    "SSLOptions",
    "SelectConnection",
    "URLParameters",
    "__version__",
    "adapters",
    "aio",
    "connect",
    "credentials",
    "exceptions",
    "exchange_type",
    "spec",
]

"""twistd plugin: ``twistd amqp-relay`` (see :mod:`txamqp091.relay`)."""

from twisted.application.service import ServiceMaker

amqp_relay = ServiceMaker(
    "txamqp091 amqp-relay",
    "txamqp091.relay",
    "An at-least-once AMQP relay between queues and brokers, with health and metrics",
    "amqp-relay",
)

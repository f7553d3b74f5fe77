"""Builds the broker named by the settings: embedded (in-process), Redis or RabbitMQ."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, CurrentMessage

from services.settings import Settings
from workers.context import TenantContextMiddleware


def create_broker(settings: Settings) -> dramatiq.Broker:
    url = settings.broker_url
    broker: dramatiq.Broker
    if settings.broker_is_embedded:
        broker = StubBroker()
    elif url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url, namespace=settings.broker_namespace)
    elif url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url)
        _refuse_when_blocked(broker.parameters)
    else:
        raise ValueError(f"TENANTRY_BROKER_URL must be 'embedded', redis://… or amqp://…, not {url!r}")
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(TenantContextMiddleware())
    dramatiq.set_broker(broker)
    return broker


#: How long a message waits to be published while RabbitMQ blocks publishers (its disk or memory
#: alarm) before sending fails with an error, rather than holding the request or job forever.
BLOCKED_PUBLISH_SECONDS = 30.0


def _refuse_when_blocked(parameters: Any) -> None:
    for each in parameters if isinstance(parameters, list) else [parameters]:
        if each.blocked_connection_timeout is None:  # a URL may set its own
            each.blocked_connection_timeout = BLOCKED_PUBLISH_SECONDS


def check_broker(broker: dramatiq.Broker) -> None:
    """Raise when the broker cannot be reached. Blocking: call it from a thread."""
    client = getattr(broker, "client", None)
    if client is not None:
        client.ping()
        return
    connection = getattr(broker, "connection", None)
    if connection is not None and not connection.is_open:
        raise ConnectionError("the RabbitMQ connection is closed")

"""Builds the broker named by the settings: embedded (in-process), Redis or RabbitMQ."""

from __future__ import annotations

import logging
import threading
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

        broker = RedisBroker(
            url=url,
            namespace=settings.broker_namespace,
            heartbeat_timeout=int(HEARTBEAT_TIMEOUT_SECONDS * 1000),
            maintenance_chance=MAINTENANCE_CHANCE,
        )
        broker.add_middleware(_RedisHeartbeat())
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


log = logging.getLogger(__name__)

#: Redis: how often a worker process tells the broker it is alive, and how long without a word
#: before the broker gives the messages it had taken (running or fetched ahead) to other workers.
#: Dramatiq's default, a minute noticed at random, left a SIGKILLed worker's fetched jobs waiting
#: one to two minutes. A message given back while its job still runs is harmless: its claim finds
#: the job held (services.jobs).
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TIMEOUT_SECONDS = 10.0
#: Out of a million Redis commands, how many also give back dead workers' messages (Dramatiq's
#: default: 1,000). Idle consumers poll ten times a second, so one look every second or so.
MAINTENANCE_CHANCE = 100_000


class _RedisHeartbeat(dramatiq.Middleware):
    """Beats for the worker while it runs: every Redis command a broker runs is its heartbeat, and
    a worker whose threads are all busy runs none of its own."""

    def __init__(self) -> None:
        self._stopping = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stopping.clear()
        threading.Thread(target=self._beat, args=(broker,), name="tenantry-heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stopping.set()

    def _beat(self, broker: Any) -> None:
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            try:
                for queue in broker.get_declared_queues():
                    broker.do_qsize(queue)
            except Exception:  # Redis away: the consumers say so; beat again when it is back
                log.debug("could not beat on the broker", exc_info=True)


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

"""Client factories: the only place the course builds connections.

Every factory reads `Settings` (environment variables with localhost defaults) and sets
short, explicit timeouts, so a broker that is down fails in seconds, never in minutes.

pika is not thread-safe: make one connection per thread, inside that thread
(`brokerlab.workers` does). In the notebook's main thread prefer the short-lived
`rabbitmq_channel()` context manager: an idle BlockingConnection left open in a notebook
misses heartbeats and dies with StreamLostError (taught in 01.01).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pika.adapters.blocking_connection
import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from brokerlab.settings import Settings, get_settings

DEFAULT_TIMEOUT = 5.0


def rabbitmq_parameters(
    settings: Settings | None = None, *, timeout: float = DEFAULT_TIMEOUT,
    heartbeat: int | None = None,
) -> pika.URLParameters:
    """pika parameters from RABBITMQ_URL (amqps:// gives TLS) with bounded timeouts."""
    settings = settings or get_settings()
    params = pika.URLParameters(settings.rabbitmq_url)
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = max(timeout, 30.0)
    params.connection_attempts = 1
    params.retry_delay = 0
    if heartbeat is not None:
        params.heartbeat = heartbeat
    return params


def rabbitmq_connection(
    settings: Settings | None = None, *, timeout: float = DEFAULT_TIMEOUT,
    heartbeat: int | None = None,
) -> pika.BlockingConnection:
    """A new blocking connection. Close it when done; never share it between threads."""
    return pika.BlockingConnection(
        rabbitmq_parameters(settings, timeout=timeout, heartbeat=heartbeat)
    )


@contextmanager
def rabbitmq_channel(
    settings: Settings | None = None, *, timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """`with rabbitmq_channel() as ch:` opens a connection and a channel, and closes both."""
    connection = rabbitmq_connection(settings, timeout=timeout)
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def redis_client(
    settings: Settings | None = None, *, timeout: float = DEFAULT_TIMEOUT,
    decode_responses: bool = True,
) -> redis.Redis:
    """A Redis client from REDIS_URL (rediss:// gives TLS). Strings come back as str.

    Blocking commands (BRPOP, XREAD BLOCK, ...) need a socket timeout longer than their
    own block time: pass `timeout=` above the longest block you use.
    """
    settings = settings or get_settings()
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=min(timeout, DEFAULT_TIMEOUT),
        socket_timeout=timeout,
        decode_responses=decode_responses,
        health_check_interval=10,
    )


def redis_at(address: str, *, timeout: float = 2.0) -> redis.Redis:
    """A client for one Redis node or Sentinel at 'host:port' that fails at once.

    redis-py 6+ retries a refused connection three times with growing pauses (seconds);
    a node that was just killed must cost milliseconds to probe, and the course's loops
    retry on their own terms. Used by module 04 (brokerlab.faults, the Sentinel views).
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    host, _, port = address.rpartition(":")
    return redis.Redis(host=host.strip("[]"), port=int(port), socket_timeout=timeout,
                       socket_connect_timeout=timeout, decode_responses=True,
                       retry=Retry(NoBackoff(), 0))


def _kafka_config(settings: Settings | None, timeout: float, overrides: dict[str, Any]) -> dict:
    settings = settings or get_settings()
    config: dict[str, Any] = settings.kafka_client_config()
    config.update(
        request_timeout_ms=int(max(timeout, 5.0) * 1000) + 1000,
        bootstrap_timeout_ms=int(timeout * 1000),
    )
    config.update(overrides)
    return config


def kafka_producer(
    settings: Settings | None = None, *, timeout: float = DEFAULT_TIMEOUT, **overrides: Any
) -> KafkaProducer:
    """A KafkaProducer (kafka-python 3 defaults: acks='all', idempotence on).

    `max_block_ms` is bounded so `send()` never hangs for a minute when Kafka is down.
    """
    overrides.setdefault("max_block_ms", int(timeout * 1000))
    producer_cfg = _kafka_config(settings, timeout, overrides)
    # The producer's request timeout must stay below its delivery timeout (120 s default).
    producer_cfg["request_timeout_ms"] = max(int(producer_cfg["request_timeout_ms"]), 10000)
    return KafkaProducer(**producer_cfg)


def kafka_consumer(
    *topics: str, settings: Settings | None = None, timeout: float = DEFAULT_TIMEOUT,
    **overrides: Any,
) -> KafkaConsumer:
    """A KafkaConsumer; pass group_id=, auto_offset_reset= etc. as keyword arguments.

    Poll it with `consumer.poll(timeout_ms=...)`, never `for msg in consumer` in a notebook.
    """
    config = _kafka_config(settings, timeout, overrides)
    # A consumer's request timeout must exceed its session timeout (45 s default).
    config["request_timeout_ms"] = max(
        int(config["request_timeout_ms"]), int(config.get("session_timeout_ms", 45000)) + 5000
    )
    return KafkaConsumer(*topics, **config)


def kafka_admin(
    settings: Settings | None = None, *, timeout: float = DEFAULT_TIMEOUT, **overrides: Any
) -> KafkaAdminClient:
    """A KafkaAdminClient for creating, describing and deleting topics and groups."""
    return KafkaAdminClient(**_kafka_config(settings, timeout, overrides))

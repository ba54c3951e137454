"""Is each broker really serving? Round trips with bounded time, and `require()`.

`check()` connects and does a real exchange (Redis: SET/GET; RabbitMQ: publish and get
on a temporary queue; Kafka: metadata, and with `deep=True` a produced record), so an
open port that does not answer counts as down. Every check is bounded by `timeout`.

Taught in 00.01 (the live status) and used by every notebook's setup cell.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from brokerlab.settings import Settings, get_settings

START_HINT = {
    "redis": "make brokers (native), `docker compose up -d redis`, or set REDIS_URL",
    "rabbitmq": "make brokers (native), `docker compose up -d rabbitmq`, or set RABBITMQ_URL",
    "kafka": "make brokers (native), `docker compose up -d kafka`, "
    "or set KAFKA_BOOTSTRAP_SERVERS",
}
NAMES = {"redis": "Redis", "rabbitmq": "RabbitMQ", "kafka": "Kafka"}
KAFKA_HEALTH_TOPIC = "_brokerlab-health"


class BrokerUnavailable(RuntimeError):
    """A broker the notebook needs does not answer; the message says how to start it."""


@dataclass(frozen=True)
class BrokerStatus:
    broker: str
    ok: bool
    address: str
    detail: str
    seconds: float

    def __str__(self) -> str:
        mark = "✔" if self.ok else "✘"
        name = NAMES[self.broker]
        return f"{mark} {name:8} {self.address:40} {self.detail} ({self.seconds:.2f} s)"


def _tcp_probe(host: str, port: int, timeout: float) -> str | None:
    """None if something accepts connections at host:port, else a short reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "connection refused (nothing listens there)"
    except TimeoutError:
        return f"no answer within {timeout:.0f} s"
    except OSError as exc:
        return f"cannot connect: {exc}"


def _check_redis(settings: Settings, timeout: float, deep: bool) -> str:
    from brokerlab.clients import redis_client

    client = redis_client(settings, timeout=timeout)
    try:
        key = f"_brokerlab:health:{uuid.uuid4().hex}"
        client.set(key, "ok", px=10_000)
        if client.get(key) != "ok":
            raise RuntimeError("SET/GET round trip returned the wrong value")
        client.delete(key)
        return f"Redis {client.info('server').get('redis_version', '?')}"
    finally:
        client.close()


def _check_rabbitmq(settings: Settings, timeout: float, deep: bool) -> str:
    from brokerlab.clients import rabbitmq_connection

    connection = rabbitmq_connection(settings, timeout=timeout)
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        channel.basic_publish("", queue, b"ping")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                break
            connection.sleep(0.05)
        else:
            raise RuntimeError("published a message but could not get it back")
        version = connection._impl.server_properties.get("version", b"?")
        return f"RabbitMQ {version.decode() if isinstance(version, bytes) else version}"
    finally:
        if connection.is_open:
            connection.close()


def _check_kafka(settings: Settings, timeout: float, deep: bool) -> str:
    from brokerlab.clients import kafka_admin, kafka_producer

    reasons = []
    for server in settings.kafka_bootstrap_servers:
        host, _, port = server.rpartition(":")
        reason = _tcp_probe(host.strip("[]"), int(port), min(timeout, 2.0))
        if reason is None:
            break
        reasons.append(f"{server}: {reason}")
    else:
        raise ConnectionError("; ".join(reasons))
    admin = kafka_admin(settings, timeout=timeout)
    try:
        cluster = admin.describe_cluster()
        brokers = len(cluster.get("brokers", []))
    finally:
        admin.close()
    if deep:
        producer = kafka_producer(settings, timeout=timeout)
        try:
            producer.send(KAFKA_HEALTH_TOPIC, b"ping").get(timeout=timeout)
        finally:
            producer.close(timeout=timeout)
    return f"Kafka cluster with {brokers} broker(s)"


_CHECKS = {"redis": _check_redis, "rabbitmq": _check_rabbitmq, "kafka": _check_kafka}


def check(broker: str, settings: Settings | None = None, *, timeout: float = 4.0,
          deep: bool = False) -> BrokerStatus:
    """One bounded round trip to `broker`; never raises for a broker that is down."""
    if broker not in _CHECKS:
        raise ValueError(f"unknown broker {broker!r}; expected one of {', '.join(_CHECKS)}")
    settings = settings or get_settings()
    started = time.monotonic()
    try:
        detail = _CHECKS[broker](settings, timeout, deep)
        ok = True
    except Exception as exc:  # any failure means "not serving"; say which
        detail = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        ok = False
    return BrokerStatus(broker, ok, settings.display_url(broker), detail,
                        time.monotonic() - started)


def require(*brokers: str, settings: Settings | None = None, timeout: float = 4.0
            ) -> list[BrokerStatus]:
    """Fail fast, with what to do, unless every named broker answers a round trip."""
    settings = settings or get_settings()
    results = [check(b, settings, timeout=timeout) for b in (brokers or tuple(_CHECKS))]
    down = [r for r in results if not r.ok]
    if down:
        lines = [
            f"{NAMES[r.broker]} is not reachable at {r.address} ({r.detail}). "
            f"Start it with: {START_HINT[r.broker]}; `make status` shows its log."
            for r in down
        ]
        raise BrokerUnavailable("\n".join(lines))
    return results


def status_table(brokers: Iterable[str] = ("rabbitmq", "redis", "kafka"),
                 settings: Settings | None = None) -> list[BrokerStatus]:
    """Check every broker (for 00.01's live status); never raises."""
    return [check(b, settings) for b in brokers]

"""Delete what a notebook created, and list what anything left behind.

`cleanup(run)` is the last cell of every notebook: it stops the run's workers, then
deletes its RabbitMQ queues and exchanges, Redis keys, and Kafka groups and topics.
`leftovers(prefix)` lists what still carries a name prefix; the test suite uses it to
prove that notebooks leave nothing behind.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from urllib.parse import quote, unquote, urlsplit

from brokerlab.clients import kafka_admin, rabbitmq_connection, redis_client
from brokerlab.naming import Run
from brokerlab.settings import Settings, get_settings
from brokerlab.workers import stop_all


def _redis_keys(prefix: str, settings: Settings) -> list[str]:
    client = redis_client(settings)
    try:
        return sorted(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()


def _kafka_names(prefix: str, settings: Settings) -> tuple[list[str], list[str]]:
    admin = kafka_admin(settings)
    try:
        topics = sorted(t for t in admin.list_topics() if t.startswith(prefix))
        groups = sorted(
            g["group_id"] if isinstance(g, dict) else g[0]
            for g in admin.list_groups()
            if (g["group_id"] if isinstance(g, dict) else g[0]).startswith(prefix)
        )
        return topics, groups
    finally:
        admin.close()


def _rabbitmq_api(path: str, settings: Settings) -> list[dict]:
    """GET from the management API with the credentials of RABBITMQ_URL."""
    amqp = urlsplit(settings.rabbitmq_url)
    user, password = unquote(amqp.username or "guest"), unquote(amqp.password or "guest")
    request = urllib.request.Request(settings.rabbitmq_management_url.rstrip("/") + path)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def rabbitmq_vhost(settings: Settings) -> str:
    path = urlsplit(settings.rabbitmq_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def rabbitmq_queues(settings: Settings | None = None) -> list[dict]:
    """Every queue of the course's vhost from the management API (name, messages, ...)."""
    settings = settings or get_settings()
    return _rabbitmq_api(f"/api/queues/{quote(rabbitmq_vhost(settings), safe='')}", settings)


def leftovers(prefix: str, settings: Settings | None = None) -> dict[str, list[str]]:
    """Everything on the three brokers whose name starts with `prefix`."""
    settings = settings or get_settings()
    vhost = quote(rabbitmq_vhost(settings), safe="")
    topics, groups = _kafka_names(prefix, settings)
    return {
        "rabbitmq queues": sorted(
            q["name"] for q in rabbitmq_queues(settings) if q["name"].startswith(prefix)
        ),
        "rabbitmq exchanges": sorted(
            e["name"] for e in _rabbitmq_api(f"/api/exchanges/{vhost}", settings)
            if e["name"].startswith(prefix)
        ),
        "redis keys": _redis_keys(prefix, settings),
        "kafka topics": topics,
        "kafka groups": groups,
    }


def delete_kafka_names(prefix: str, settings: Settings, timeout: float = 10.0,
                       quiet: float = 0.75) -> dict[str, int]:
    """Delete the groups and topics named with `prefix`, then look again until nothing
    has come back for `quiet` seconds (bounded by `timeout`).

    A consumer closed a moment ago may still have a metadata request in flight that
    re-creates a just-deleted topic (kafka-python 3.0 asks with auto-creation on).
    """
    deleted = {"topics": 0, "groups": 0}
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        topics, groups = _kafka_names(prefix, settings)
        if topics or groups:
            quiet_since = time.monotonic()
            admin = kafka_admin(settings)
            try:
                if groups:
                    admin.delete_groups(groups)
                    deleted["groups"] = max(deleted["groups"], len(groups))
                if topics:
                    admin.delete_topics(topics)
                    deleted["topics"] = max(deleted["topics"], len(topics))
            finally:
                admin.close()
        elif time.monotonic() - quiet_since >= quiet:
            break
        time.sleep(0.25)
    return deleted


def cleanup(run: Run, brokers: tuple[str, ...] | None = None) -> dict[str, int]:
    """Stop the run's workers and delete every resource named by the run. Never hangs.

    Touches the brokers the run's lesson required (all three if it named none).
    """
    settings = run.settings
    brokers = brokers or run.brokers or ("rabbitmq", "redis", "kafka")
    stop_all(prefix=run.prefix)
    deleted = {"queues": 0, "exchanges": 0, "keys": 0, "topics": 0, "groups": 0}
    if "rabbitmq" in brokers and (run.queues or run.exchanges):
        connection = rabbitmq_connection(settings)
        try:
            channel = connection.channel()
            for queue in run.queues:
                channel.queue_delete(queue)
                deleted["queues"] += 1
            for exchange in run.exchanges:
                channel.exchange_delete(exchange)
                deleted["exchanges"] += 1
        finally:
            if connection.is_open:
                connection.close()
    if "redis" in brokers:
        keys = _redis_keys(run.prefix, settings)
        if keys:
            client = redis_client(settings)
            try:
                deleted["keys"] = int(client.delete(*keys))
            finally:
                client.close()
    if "kafka" in brokers:
        deleted.update(delete_kafka_names(run.prefix, settings))
    return deleted

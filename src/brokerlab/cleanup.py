"""Delete what a notebook created, and list what anything left behind.

`cleanup(run)` is the last cell of every notebook: it stops the run's workers, then
deletes its RabbitMQ queues and exchanges, Redis keys, and Kafka groups and topics (after
evicting members that crashed without leaving, and undoing `kafka.set_broker_config`).
`cluster_cleanup(run)` is the same for module 04's three-node clusters, and first starts
every node the lesson left down. `leftovers(prefix)` lists what still carries a name
prefix; the test suite uses it to prove that notebooks leave nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from brokerlab import clusters, faults, kafka
from brokerlab.checks import wait_until
from brokerlab.clients import kafka_admin, rabbitmq_connection, redis_at, redis_client
from brokerlab.naming import Run
from brokerlab.rabbitmq import management_get, queues, vhost
from brokerlab.settings import Settings, get_settings
from brokerlab.workers import stop_all

BROKERS = ("rabbitmq", "redis", "kafka")


def rabbitmq_queues(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every queue of the course's vhost from the management API (name, messages, ...)."""
    return queues(settings)


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


def _rabbitmq_names(prefix: str, settings: Settings) -> tuple[list[str], list[str]]:
    path = quote(vhost(settings), safe="")
    found_queues = management_get(f"/api/queues/{path}", settings)
    found_exchanges = management_get(f"/api/exchanges/{path}", settings)
    return (sorted(q["name"] for q in found_queues if q["name"].startswith(prefix)),
            sorted(e["name"] for e in found_exchanges if e["name"].startswith(prefix)))


def leftovers(prefix: str, settings: Settings | None = None,
              brokers: tuple[str, ...] = BROKERS) -> dict[str, list[str]]:
    """Everything on the brokers whose name starts with `prefix` (all three by default)."""
    settings = settings or get_settings()
    found: dict[str, list[str]] = {}
    if "rabbitmq" in brokers:
        found["rabbitmq queues"], found["rabbitmq exchanges"] = _rabbitmq_names(prefix, settings)
    if "redis" in brokers:
        found["redis keys"] = _redis_keys(prefix, settings)
    if "kafka" in brokers:
        found["kafka topics"], found["kafka groups"] = _kafka_names(prefix, settings)
    return found


def delete_kafka_names(prefix: str, settings: Settings, timeout: float = 10.0,
                       quiet: float = 0.75) -> dict[str, int]:
    """Delete the groups and topics named with `prefix`, then look again until nothing
    has come back for `quiet` seconds (bounded by `timeout`).

    A consumer closed a moment ago may still have a metadata request in flight that
    re-creates a just-deleted topic (kafka-python 3.0 asks with auto-creation on).
    """
    deleted = {"topics": 0, "groups": 0}
    quiet_since = [time.monotonic()]

    def nothing_came_back() -> bool:
        topics, groups = _kafka_names(prefix, settings)
        if not (topics or groups):
            return time.monotonic() - quiet_since[0] >= quiet
        quiet_since[0] = time.monotonic()
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
        return False

    wait_until(nothing_came_back, timeout, interval=0.25)
    return deleted


def _delete_rabbitmq(names: list[str], exchanges: list[str], settings: Settings) -> None:
    connection = rabbitmq_connection(settings)
    try:
        channel = connection.channel()
        for queue in names:
            channel.queue_delete(queue)
        for exchange in exchanges:
            channel.exchange_delete(exchange)
    finally:
        if connection.is_open:
            connection.close()


def delete_named(run: Run, settings: Settings, brokers: tuple[str, ...]) -> dict[str, int]:
    """Delete, on `brokers` at `settings`' addresses, everything named by `run`:
    the queues and exchanges it remembered or the management API lists with its prefix,
    Redis keys and Kafka topics and groups with its prefix. Counts what it deleted."""
    deleted = {"queues": 0, "exchanges": 0, "keys": 0, "topics": 0, "groups": 0}
    if "rabbitmq" in brokers:
        names, exchanges = list(run.queues), list(run.exchanges)
        try:  # also what the lesson made without remembering it in the Run
            listed_queues, listed_exchanges = _rabbitmq_names(run.prefix, settings)
            names += [q for q in listed_queues if q not in names]
            exchanges += [e for e in listed_exchanges if e not in exchanges]
        except OSError:  # no management API here: the Run's own names are all we know
            pass
        if names or exchanges:
            _delete_rabbitmq(names, exchanges, settings)
        deleted["queues"], deleted["exchanges"] = len(names), len(exchanges)
    if "redis" in brokers:
        keys = _redis_keys(run.prefix, settings)
        if keys:
            client = redis_client(settings)
            try:
                deleted["keys"] = int(client.delete(*keys))
            finally:
                client.close()
    if "kafka" in brokers:
        deleted["evicted members"] = kafka.evict_members(run, settings)
        deleted.update(delete_kafka_names(run.prefix, settings))
    return deleted


def cleanup(run: Run, brokers: tuple[str, ...] | None = None) -> dict[str, int]:
    """Stop the run's workers and delete every resource named by the run. Never hangs.

    Touches the brokers the run's lesson required (all three if it named none). On Kafka
    it first undoes this kernel's `kafka.set_broker_config` and evicts members that
    crashed without leaving; it raises, naming them, if the run's topics or groups remain.
    """
    brokers = brokers or run.brokers or BROKERS
    stop_all(prefix=run.prefix)
    if "kafka" in brokers:
        kafka.restore_broker_configs(run.settings)
    deleted = delete_named(run, run.settings, brokers)
    if "kafka" in brokers:
        topics, groups = _kafka_names(run.prefix, run.settings)
        if topics or groups:
            raise RuntimeError(f"could not delete this run's Kafka topics {topics} and groups "
                               f"{groups}; delete them with the admin client or run this "
                               "cell again")
    return deleted


# ---------------------------------------------------------------- module 04's clusters


def _redis_primary(settings: Settings) -> str:
    """'host:port' of the Redis primary the Sentinels name (the first node if none
    answers). The node is found by its port among REDIS_CLUSTER_NODES, so a name that
    only the compose network resolves (redis-primary) still maps to a reachable address."""
    by_port = {server.rpartition(":")[2]: server for server in settings.redis_cluster_nodes}
    for sentinel in settings.redis_sentinels:
        client = redis_at(sentinel)
        try:
            address = client.sentinel_get_master_addr_by_name(settings.redis_sentinel_master)
        except Exception:  # this Sentinel is down: ask the next one
            continue
        finally:
            client.close()
        if address and str(address[1]) in by_port:
            return by_port[str(address[1])]
    return settings.redis_cluster_nodes[0]


def cluster_settings(settings: Settings | None = None) -> Settings:
    """The settings aimed at module 04's clusters: Kafka's three brokers, the first
    RabbitMQ node whose management API answers, and the current Redis primary."""
    settings = settings or get_settings()
    amqp = settings.rabbitmq_cluster_urls[0]
    management = settings.rabbitmq_cluster_management_urls[0]
    for url, api in zip(settings.rabbitmq_cluster_urls,
                        settings.rabbitmq_cluster_management_urls, strict=False):
        try:
            management_get("/api/overview", settings, base_url=api, timeout=2.0)
        except OSError:
            continue
        amqp, management = url, api
        break
    return replace(settings,
                   kafka_bootstrap_servers=settings.kafka_cluster_bootstrap_servers,
                   rabbitmq_url=amqp, rabbitmq_management_url=management,
                   redis_url=f"redis://{_redis_primary(settings)}/0")


def cluster_leftovers(prefix: str, settings: Settings | None = None,
                      brokers: tuple[str, ...] = BROKERS) -> dict[str, list[str]]:
    """`leftovers` on the three clusters; each 04 notebook's cleanup asserts it is empty."""
    return leftovers(prefix, cluster_settings(settings), brokers)


def cluster_cleanup(run: Run, *brokers: str, timeout: float = 90.0,
                    echo: Callable[[str], None] = print) -> dict[str, Any]:
    """The last cell of a 04 notebook: stop the run's workers, start every node that is
    down (this kernel's kills first), wait until the clusters are whole, and delete
    every topic, group, queue and key named by the run. Never hangs (all bounded).

    Returns {'restarted': [...], 'deleted': {...}, 'whole': {broker: problem or None},
    'leftovers': {...}} for the cell to assert on.
    """
    settings = run.settings
    chosen = brokers or BROKERS
    stop_all(prefix=run.prefix)
    restarted = faults.restore_nodes(*chosen, settings=settings, echo=echo)
    whole = clusters.cluster_whole(*chosen, settings=settings, timeout=timeout)
    deleted: dict[str, int] = {}
    remaining: dict[str, list[str]] = {}

    def clean() -> bool:
        # A deletion may race a node that just came back: look again, bounded.
        nonlocal remaining
        try:
            target = cluster_settings(settings)
            for kind, n in delete_named(run, target, chosen).items():
                deleted[kind] = deleted.get(kind, 0) + n
            remaining = leftovers(run.prefix, target, chosen)
        except Exception as exc:  # a cluster still settling: try again shortly
            remaining = {"error": [f"{type(exc).__name__}: {exc}"]}
        return not any(remaining.values())

    wait_until(clean, timeout=30.0, interval=1.0)
    return {"restarted": restarted, "deleted": deleted, "whole": whole,
            "leftovers": {k: v for k, v in remaining.items() if v}}

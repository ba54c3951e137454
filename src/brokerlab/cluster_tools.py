"""Helpers for module 04 (clusters and fault tolerance): nodes, promises, counts.

The module 04 lessons import this as `ct` next to brokerlab:

    import brokerlab as bl
    from brokerlab import cluster_tools as ct
    run = ct.start_lesson("04.01", "kafka")   # fails fast unless the 3-node cluster answers
    ...
    report = ct.cleanup(run)                  # deletes what the run made, restarts killed nodes

Each name's docstring says which lesson teaches it:

    start_lesson, require_cluster, cluster_whole,      every 04 notebook's setup and last cell
      cleanup, leftovers, restart_down_nodes
    kill_node, start_node, is_managed_node,            faults, injected by the course's
      compose_command, node_answers                    launcher (under docker compose the
                                                       lesson says what to run, and waits)
    Ledger, TrackedWorker, Tally, tally, longest_gap   counting promises (04.01-04.06)
    create_topic, partitions, partition_table,         04.01 replication, leaders, ISR;
      kafka_producer_worker,                           04.02 what acks=1 can lose
      read_topic, elect_preferred, elect_unclean
    (04.03's RabbitMQ views: brokerlab.rabbitmq;       04.03 quorum queues
      its pika clients are written in the lesson)
    (04.04-04.05's Redis views: brokerlab.redis;        04.04 Sentinel failover, 04.05 what
      their redis-py clients are written in the lesson) asynchronous replication can lose
    record_measurement, load_measurements,             04.06 the comparison table (from
      comparison_rows, markdown_table,                 brokerlab.ledger, re-exported)
      cluster_memory_mb

The clusters are the ones `make cluster` starts (brokerlab.cluster), or the `cluster`
profile of docker-compose.cluster.yml; their addresses come from Settings
(KAFKA_CLUSTER_BOOTSTRAP_SERVERS, RABBITMQ_CLUSTER_URLS, REDIS_SENTINELS,
REDIS_SENTINEL_MASTER). Nothing here touches the single-node brokers of modules 00-03.

Same rules as the rest of brokerlab: every wait is bounded, background threads never
print (they fill a Ledger that cells read), each thread makes its own connections.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from brokerlab import cluster
from brokerlab import kafka as kfk
from brokerlab.cleanup import cluster_cleanup as cleanup
from brokerlab.cleanup import cluster_leftovers as leftovers
from brokerlab.faults import (
    ClusterUnavailable,
    cluster_whole,
    down_nodes,
    kill_node,
    node_answers,
    node_names,
    require_cluster,
    start_node,
)
from brokerlab.ledger import (
    Ledger,
    Tally,
    cluster_memory_mb,
    comparison_rows,
    load_measurements,
    longest_gap,
    markdown_table,
    measurements_path,
    record_measurement,
    rss_kb,
    tally,
    wait_done,
)
from brokerlab.naming import Run
from brokerlab.settings import Settings, get_settings
from brokerlab.workers import Worker

__all__ = [
    "ClusterUnavailable", "Ledger", "PartitionState", "Tally", "TrackedWorker", "cleanup",
    "cluster_memory_mb", "cluster_whole", "comparison_rows", "create_topic", "down_nodes",
    "elect_preferred", "elect_unclean", "kafka_admin_call", "kafka_node_name",
    "kafka_producer_worker", "kafka_settings", "kill_node", "leftovers", "load_measurements",
    "longest_gap", "markdown_table", "measurements_path", "node_answers", "node_names",
    "partition_table", "partitions", "rabbit_node_name", "read_topic", "record_measurement",
    "require_cluster", "rss_kb", "start_lesson", "start_node", "tally", "topic_config",
    "topic_config_source", "wait_done", "wait_partitions",
]

T = TypeVar("T")
Echo = Callable[[str], None]

BROKERS = ("kafka", "rabbitmq", "redis")


# ====================================================================== nodes
# Nodes, faults and whole clusters: brokerlab.faults. Cleanup: brokerlab.cleanup.


def rabbit_node_name(member: str) -> str:
    """A RabbitMQ member name → our node name: 'rabbit2@localhost' (native) or
    'rabbit@rabbit2' (compose) → 'rabbit-2'."""
    digits = re.findall(r"\d+", member)
    if not digits:
        raise ValueError(f"cannot tell which node {member!r} is")
    name = f"rabbit-{int(digits[-1])}"
    cluster.node(name)
    return name


def _index(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def start_lesson(lesson: str, *brokers: str, settings: Settings | None = None,
                 echo: Echo = print) -> Run:
    """The setup cell of a module 04 notebook: the clusters answer (or fail fast); a Run.

    Unlike `bl.start_lesson` it checks the three-node clusters, not the single brokers.
    """
    settings = settings or get_settings()
    started = time.monotonic()
    require_cluster(*brokers, settings=settings, echo=echo)
    run = Run(lesson, settings)
    echo(f"{lesson}: {', '.join(b + ' cluster' for b in brokers) or 'no cluster'} whole "
         f"({time.monotonic() - started:.1f} s); this run's names start with {run.prefix!r}")
    return run


# ====================================================================== counting promises
# Ledger, Tally, tally, longest_gap, wait_done and the measurements live in
# brokerlab.ledger (imported above); every Worker carries a Ledger now.

TrackedWorker = Worker  # the old name: a Worker fills `worker.ledger`


def _pace(w: Worker, due: float) -> bool:
    """Sleep until `due` (monotonic) in short steps; False once the worker must stop."""
    while not w.should_stop():
        left = due - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(0.05, left))
    return False


# ====================================================================== Kafka (04.01, 04.02)
# The Kafka views live in brokerlab.kafka (lessons: `from brokerlab import kafka as kfk`).
# These thin names keep this module's own callers (cluster checks, kafka_trial, cleanup)
# pointed at the cluster.

kafka_settings = kfk.cluster_settings
kafka_node_name = kfk.node_name
PartitionState = kfk.PartitionState
partition_table = kfk.partition_table


def _kafka_admin_at(settings: Settings, server: str, timeout: float) -> Any:
    return kfk.admin_at(server, settings, timeout)


def kafka_admin_call(settings: Settings | None, call: Callable[[Any], T], *,
                     timeout: float = 20.0) -> T:
    """`kfk.admin_call` against the cluster."""
    return kfk.admin_call(call, kfk.cluster_settings(settings), timeout=timeout)


def create_topic(topic: str, *, partitions: int = 3, replication_factor: int = 3,
                 assignments: Mapping[int, Sequence[int]] | None = None,
                 configs: Mapping[str, str] | None = None,
                 settings: Settings | None = None) -> None:
    """`kfk.create_topic` on the cluster."""
    kfk.create_topic(topic, partitions, replication_factor=replication_factor,
                     assignments=assignments, configs=configs,
                     settings=kfk.cluster_settings(settings))


def partitions(topic: str, settings: Settings | None = None) -> list[PartitionState]:
    """`kfk.partitions` on the cluster."""
    return kfk.partitions(topic, kfk.cluster_settings(settings))


def wait_partitions(topic: str, predicate: Callable[[list[PartitionState]], bool], *,
                    timeout: float = 30.0, settings: Settings | None = None
                    ) -> list[PartitionState]:
    """`kfk.wait_partitions` on the cluster."""
    return kfk.wait_partitions(topic, predicate, timeout=timeout,
                               settings=kfk.cluster_settings(settings))


def topic_config(topic: str, key: str, settings: Settings | None = None) -> str | None:
    """`kfk.topic_config` on the cluster."""
    return kfk.topic_config(topic, key, kfk.cluster_settings(settings))


def topic_config_source(topic: str, key: str, settings: Settings | None = None) -> str | None:
    """`kfk.topic_config_source` on the cluster."""
    return kfk.topic_config_source(topic, key, kfk.cluster_settings(settings))


def read_topic(topic: str, *, settings: Settings | None = None, timeout: float = 20.0
               ) -> list[str]:
    """Every value in `topic` on the cluster, from the beginning up to its end now."""
    cs = kfk.cluster_settings(settings)
    kfk.wait_partitions(topic, lambda ss: all(s.online for s in ss), timeout=timeout,
                        settings=cs)
    return [r.value or "" for r in kfk.read_all(topic, settings=cs, timeout=timeout)]


def elect_unclean(topic: str, partition: int = 0, settings: Settings | None = None) -> int:
    """`kfk.elect_unclean` on the cluster."""
    return kfk.elect_unclean(topic, partition, kfk.cluster_settings(settings))


def elect_preferred(topic: str, settings: Settings | None = None) -> None:
    """`kfk.elect_preferred` on the cluster."""
    kfk.elect_preferred(topic, kfk.cluster_settings(settings))


def kafka_producer_worker(name: str, topic: str, count: int, *, label: str = "m",
                          rate: float = 200.0, settings: Settings | None = None,
                          start: bool = True, flush_timeout: float = 40.0,
                          **config: Any) -> TrackedWorker:
    """Send `count` records ('<label>-0' ...) to `topic` on the cluster, `rate` per second,
    recording each acknowledgement and each failure in `worker.ledger`.

    kafka-python 3 defaults are the safe ones: acks='all', idempotence on. Pass
    `acks=1` (04.02) and idempotence is switched off (it needs acks='all'). The worker
    ends by itself after a bounded flush; a record neither acked nor failed by then
    counts as failed ("never confirmed"). 04.01 writes this loop out; 04.06's trial reuses it.
    """
    cs = kfk.cluster_settings(settings)
    if config.get("acks", "all") not in ("all", -1):
        config.setdefault("enable_idempotence", False)
    config.setdefault("linger_ms", 5)
    config.setdefault("max_block_ms", 5000)
    config.setdefault("delivery_timeout_ms", 30000)

    def body(w: Worker) -> None:
        from brokerlab.clients import kafka_producer

        ledger = worker.ledger
        producer = kafka_producer(cs, client_id=w.name, **config)
        pending: set[str] = set()
        try:
            due = time.monotonic()
            for i in range(count):
                if not _pace(w, due):
                    break
                due += 1.0 / rate if rate > 0 else 0.0
                value = f"{label}-{i}"
                try:
                    future = producer.send(topic, value.encode(), key=str(i).encode())
                except Exception as exc:  # no metadata or buffer full within max_block_ms
                    ledger.fail(value, exc)
                    continue
                pending.add(value)

                def ok(_meta: Any, v: str = value) -> None:
                    pending.discard(v)
                    ledger.ack(v)

                def bad(exc: BaseException, v: str = value) -> None:
                    pending.discard(v)
                    ledger.fail(v, exc)

                future.add_callback(ok)
                future.add_errback(bad)
            producer.flush(timeout=flush_timeout)
        except Exception as exc:  # flush timed out: what is pending was never confirmed
            ledger.error(exc)
        finally:
            producer.close(timeout=2)
            for value in sorted(pending):
                ledger.fail(value, "never confirmed")
            ledger.done = True

    worker = TrackedWorker(name, body)
    return worker.start() if start else worker

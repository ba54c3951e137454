"""Helpers for module 04 (clusters and fault tolerance): nodes, promises, counts.

The module 04 lessons import this as `ct` next to brokerlab:

    import brokerlab as bl
    from brokerlab import cluster_tools as ct
    run = ct.start_lesson("04.01", "kafka")   # fails fast unless the 3-node cluster answers
    ...
    report = ct.cleanup(run)                  # deletes what the run made, restarts killed nodes

Each name's docstring says which lesson teaches it:

    start_lesson, cleanup, leftovers                   every 04 notebook's setup and last cell
    (node kills and whole clusters: brokerlab.faults;  faults made by a command template, the
      the cluster cleanup: brokerlab.cleanup)          course's launcher, or the learner
    Ledger, TrackedWorker, Tally, tally, longest_gap   counting promises (04.01-04.06)
    (04.01-04.02's Kafka views: brokerlab.kafka;       04.01 replication, leaders, ISR;
      their kafka-python clients are in the lesson)    04.02 what acks=1 can lose
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
from collections.abc import Callable
from typing import TypeVar

from brokerlab import cluster
from brokerlab import kafka as kfk
from brokerlab.cleanup import cluster_cleanup as cleanup
from brokerlab.cleanup import cluster_leftovers as leftovers
from brokerlab.faults import node_names, require_cluster
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
    "Ledger", "PartitionState", "Tally", "TrackedWorker", "cleanup",
    "cluster_memory_mb", "comparison_rows", "kafka_node_name",
    "kafka_settings", "leftovers", "load_measurements", "longest_gap",
    "markdown_table", "measurements_path", "node_names", "partition_table",
    "rabbit_node_name", "record_measurement", "require_cluster", "rss_kb", "start_lesson",
    "tally", "wait_done",
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
# The Kafka views live in brokerlab.kafka (lessons: `from brokerlab import kafka as kfk`);
# these four names stay only for tests/test_cluster_tools.py.

kafka_settings = kfk.cluster_settings
kafka_node_name = kfk.node_name
PartitionState = kfk.PartitionState
partition_table = kfk.partition_table

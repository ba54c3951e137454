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
    rabbitmq_parameters, quorum_queue_state,           04.03 quorum queues, reconnecting pika
      rabbitmq_confirmed_publisher,
      rabbitmq_reconnecting_consumer, classic_reachable
    sentinel, primary, primary_node, replica_nodes,    04.04 Sentinel failover, 04.05 what
      redis_sentinel_writer, wait_new_primary,         asynchronous replication can lose
      shorten_failover_timeout
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

import base64
import json
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from brokerlab import cluster, local
from brokerlab import kafka as kfk
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
from brokerlab.redis import (
    primary,
    primary_node,
    redis_values,
    sentinel,
    sentinel_option,
    shorten_failover_timeout,
    translate_address,
    wait_new_primary,
)
from brokerlab.settings import Settings, get_settings
from brokerlab.workers import Worker, stop_all

__all__ = [
    "ClusterUnavailable", "Ledger", "PartitionState", "Tally", "TrackedWorker",
    "classic_reachable", "cleanup", "cluster_memory_mb", "cluster_problem", "cluster_whole",
    "comparison_rows", "compose_command", "connected_node", "create_topic", "down_nodes",
    "elect_preferred", "elect_unclean", "is_managed_node", "kafka_admin_call", "kafka_node_name",
    "kafka_producer_worker", "kafka_settings", "kill_node",
    "launcher_runs", "leftovers", "load_measurements", "longest_gap", "management_call",
    "management_url", "markdown_table", "measurements_path", "node_address", "node_answers",
    "node_names", "partition_table", "partitions", "primary", "primary_node",
    "quorum_queue_state", "rabbit_node_name", "rabbitmq_confirmed_publisher",
    "rabbitmq_parameters", "rabbitmq_reconnecting_consumer", "read_topic",
    "record_measurement", "redis_sentinel_writer", "redis_values", "require_cluster",
    "restart_down_nodes", "rss_kb", "sentinel", "sentinel_option", "shorten_failover_timeout",
    "start_lesson", "start_node", "tally", "topic_config", "topic_config_source",
    "translate_address", "wait_done", "wait_new_primary", "wait_partitions",
    "wait_quorum_state",
]

T = TypeVar("T")
Echo = Callable[[str], None]

BROKERS = ("kafka", "rabbitmq", "redis")
COMPOSE = "docker compose -f docker-compose.yml -f docker-compose.cluster.yml --profile cluster"
START_HINT = ("run `make cluster` (or, with Docker: "
              f"`{COMPOSE} up -d --wait`)")
NODE_TIMEOUT = 120.0   # bounded wait for a node to go or come back


class ClusterUnavailable(RuntimeError):
    """A cluster a module 04 notebook needs is not whole; the message says what to run."""


# ====================================================================== nodes


def node_names(broker: str) -> list[str]:
    """The node names of one broker's cluster, e.g. ['kafka-1', 'kafka-2', 'kafka-3']."""
    if broker not in BROKERS:
        raise ValueError(f"unknown broker {broker!r}; expected one of {', '.join(BROKERS)}")
    return [n.name for n in cluster.nodes(broker)]


def compose_command(action: str, name: str) -> str:
    """The docker compose command that does to node `name` what a lesson needs (kill/start).

    Compose service names equal the launcher's node names (docker-compose.cluster.yml).
    Taught in 04.01 (what to run when the course's launcher does not run the cluster).
    """
    if action not in ("kill", "start", "stop", "restart"):
        raise ValueError(f"action must be kill, start, stop or restart, got {action!r}")
    cluster.node(name)  # raises for an unknown node
    return f"{COMPOSE} {action} {name}"


def is_managed_node(name: str, settings: Settings | None = None) -> bool:
    """True if brokerlab.cluster runs node `name` here (its process is ours and alive).

    Only such nodes are killed and restarted from a notebook; otherwise (docker compose,
    a classroom cluster) the lesson prints the command and waits. Taught in 04.01.
    """
    settings = settings or get_settings()
    paths = cluster.node(name).paths(settings)
    pid = local._read_pid(paths)
    return pid is not None and local._ours(pid, paths)


def launcher_runs(broker: str, settings: Settings | None = None) -> bool:
    """True if the course's launcher runs at least one node of `broker`'s cluster here."""
    return any(is_managed_node(n, settings) for n in node_names(broker))


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


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


def node_address(name: str, settings: Settings | None = None) -> tuple[str, int]:
    """Where clients reach node `name`: from the cluster settings (Kafka, RabbitMQ), or,
    for Redis nodes, the Sentinels' host with the node's port (ports are unique)."""
    settings = settings or get_settings()
    n = cluster.node(name)
    if n.broker == "kafka":
        return _host_port(settings.kafka_cluster_bootstrap_servers[_index(name) - 1])
    if n.broker == "rabbitmq":
        url = urlsplit(settings.rabbitmq_cluster_urls[_index(name) - 1])
        return url.hostname or "127.0.0.1", url.port or 5672
    if name.startswith("sentinel"):
        return _host_port(settings.redis_sentinels[_index(name) - 1])
    return _host_port(settings.redis_sentinels[0])[0], n.port


def node_answers(name: str, settings: Settings | None = None, timeout: float = 2.0) -> bool:
    """A real round trip with one node (not just an open port); never raises."""
    settings = settings or get_settings()
    host, port = node_address(name, settings)
    n = cluster.node(name)
    if not _port_open(host, port, timeout):  # refused at once: no client needed to know
        return False
    try:
        if n.broker == "redis":
            client = _redis_at(host, port, timeout)
            try:
                return bool(client.ping())
            finally:
                client.close()
        if n.broker == "rabbitmq":
            connection = _pika_connect([rabbitmq_parameters(settings)[_index(name) - 1]],
                                       f"probe-{name}", timeout=timeout)
            connection.close()
            return True
        admin = _kafka_admin_at(settings, f"{host}:{port}", timeout)
        try:
            admin.describe_cluster()
            return True
        finally:
            admin.close()
    except Exception:
        return False


def _redis_at(host: str, port: int, timeout: float = 2.0) -> Any:
    """A Redis client for one node or Sentinel that fails at once instead of retrying.

    redis-py 6+ retries a refused connection three times with growing pauses (seconds);
    a dead node must cost milliseconds here, and our loops retry on their own terms.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host=host, port=port, socket_timeout=timeout,
                       socket_connect_timeout=timeout, decode_responses=True,
                       retry=Retry(NoBackoff(), 0))


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_KILLED: dict[str, str] = {}  # node -> "launcher" | "you": what this kernel took down


def kill_node(name: str, settings: Settings | None = None, *, timeout: float = NODE_TIMEOUT,
              echo: Echo = print) -> str:
    """Kill node `name` as a power cut would (SIGKILL), through the course's launcher.

    When the launcher does not run it (docker compose, a classroom), print the command
    to run and wait, bounded, until the node stops answering. Returns "killed" or
    "killed-by-you". Taught in 04.01; used in 04.02-04.06 and
    the 04.01 lab.
    """
    settings = settings or get_settings()
    if is_managed_node(name, settings):
        cluster.kill(name, settings, echo=echo)
        _KILLED[name] = "launcher"
        return "killed"
    echo(f"The course's launcher does not run {name}. In a terminal next to "
         f"docker-compose.yml, run:\n    {compose_command('kill', name)}\n"
         f"Waiting up to {timeout:.0f} s for {name} to go down ...")
    host, port = node_address(name, settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _port_open(host, port):
            _KILLED[name] = "you"
            echo(f"{name} is down")
            return "killed-by-you"
        time.sleep(0.5)
    raise TimeoutError(f"{name} still answers after {timeout:.0f} s; run "
                       f"`{compose_command('kill', name)}` and re-run this cell")


def start_node(name: str, settings: Settings | None = None, *, timeout: float = NODE_TIMEOUT,
               echo: Echo = print) -> str:
    """Start node `name` again (it rejoins its cluster); wait, bounded, until it answers.

    Natively through brokerlab.cluster.start_node; otherwise print the compose command
    and wait. Returns "started", "started-by-you" or "running". Taught in 04.01.
    """
    settings = settings or get_settings()
    broker = cluster.node(name).broker
    if node_answers(name, settings):
        _KILLED.pop(name, None)
        return "running"
    native = _KILLED.get(name) == "launcher" or (
        _KILLED.get(name) != "you" and launcher_runs(broker, settings))
    if native:
        cluster.start_node(name, settings, echo=echo)
        _KILLED.pop(name, None)
        return "started"
    echo(f"Start {name} again: in a terminal next to docker-compose.yml, run:\n"
         f"    {compose_command('start', name)}\n"
         f"Waiting up to {timeout:.0f} s for {name} to answer ...")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node_answers(name, settings):
            _KILLED.pop(name, None)
            echo(f"{name} is back")
            return "started-by-you"
        time.sleep(1.0)
    raise TimeoutError(f"{name} did not come back within {timeout:.0f} s; run "
                       f"`{compose_command('start', name)}` and re-run this cell")


def down_nodes(broker: str, settings: Settings | None = None) -> list[str]:
    """The nodes of `broker`'s cluster that do not answer a round trip."""
    settings = settings or get_settings()
    return [n for n in node_names(broker) if not node_answers(n, settings)]


# ---------------------------------------------------------------- whole clusters


def _kafka_whole(settings: Settings) -> str | None:
    try:
        brokers = kafka_admin_call(settings, lambda a: a.describe_cluster(), timeout=4.0)
    except Exception as exc:
        return f"no answer ({type(exc).__name__})"
    ids = sorted(b["broker_id"] for b in brokers.get("brokers", []) if not b.get("is_fenced"))
    expected = list(range(1, len(node_names("kafka")) + 1))
    return None if ids == expected else f"brokers {ids} registered, expected {expected}"


def _rabbit_whole(settings: Settings) -> str | None:
    try:
        found = management_call(settings, "/api/nodes", timeout=4.0)
    except Exception as exc:
        return f"no answer ({type(exc).__name__})"
    running = sorted(n["name"] for n in found if n.get("running"))
    expected = len(node_names("rabbitmq"))
    return None if len(running) == expected else f"running nodes {running}, expected {expected}"


def _redis_whole(settings: Settings) -> str | None:
    problems = []
    for i, server in enumerate(settings.redis_sentinels):
        host, port = _host_port(server)
        client = _redis_at(host, port)
        try:
            master = client.sentinel_master(settings.redis_sentinel_master)
            replicas = client.sentinel_slaves(settings.redis_sentinel_master)
        except Exception as exc:
            problems.append(f"sentinel-{i + 1}: {type(exc).__name__}")
            continue
        finally:
            client.close()
        good = [r for r in replicas if r.get("master-link-status") == "ok"
                and not r.get("is_sdown") and not r.get("is_disconnected")]
        if master.get("is_sdown") or master.get("is_odown"):
            problems.append(f"sentinel-{i + 1} sees the primary down")
        elif len(good) < 2:
            problems.append(f"sentinel-{i + 1} sees {len(good)} of 2 replicas in sync")
        elif int(master.get("num-other-sentinels", 0)) < len(settings.redis_sentinels) - 1:
            problems.append(f"sentinel-{i + 1} knows {master.get('num-other-sentinels')} "
                            "other sentinels")
    if not problems:
        host, port = sentinel(settings).discover_master(settings.redis_sentinel_master)
        if not _port_open(host, port):
            problems.append(f"the primary {host}:{port} does not answer")
    return "; ".join(problems) or None


_WHOLE = {"kafka": _kafka_whole, "rabbitmq": _rabbit_whole, "redis": _redis_whole}


def cluster_problem(broker: str, settings: Settings | None = None) -> str | None:
    """None if `broker`'s cluster is whole (every node up and in sync), else what is wrong."""
    settings = settings or get_settings()
    down = down_nodes(broker, settings)
    if down:
        return f"node(s) {', '.join(down)} down"
    return _WHOLE[broker](settings)


def cluster_whole(*brokers: str, settings: Settings | None = None,
                  timeout: float = 60.0) -> dict[str, str | None]:
    """Wait, bounded, until each cluster is whole; {broker: None, or what is still wrong}.

    A node that was just restarted needs a moment to catch up (Kafka ISR, Redis replica
    link), so this polls. Used in every 04 notebook's cleanup cell.
    """
    settings = settings or get_settings()
    deadline = time.monotonic() + timeout
    result: dict[str, str | None] = {}
    for broker in brokers or BROKERS:
        problem = cluster_problem(broker, settings)
        while problem and time.monotonic() < deadline:
            time.sleep(0.5)
            problem = cluster_problem(broker, settings)
        result[broker] = problem
    return result


def require_cluster(*brokers: str, settings: Settings | None = None, heal: bool = True,
                    echo: Echo = print) -> None:
    """Fail fast, with what to run, unless each named cluster answers; heal a partial one.

    A cluster with no node answering raises ClusterUnavailable in seconds ("run `make
    cluster`"). When the course's launcher runs some nodes and others are down (an
    earlier run stopped half-way), `heal=True` starts the missing ones first.
    """
    settings = settings or get_settings()
    problems = []
    for broker in brokers:
        down = down_nodes(broker, settings)
        if len(down) == len(node_names(broker)):
            problems.append(f"the {broker} cluster does not answer at "
                            f"{_addresses(broker, settings)}")
            continue
        if down and heal and launcher_runs(broker, settings):
            for name in down:
                echo(f"{name} was down (an earlier run stopped half-way?): starting it")
                start_node(name, settings, echo=echo)
        elif down:
            problems.append(f"{broker} node(s) {', '.join(down)} do not answer")
    if not problems:
        waited = cluster_whole(*brokers, settings=settings, timeout=45.0)
        problems = [f"the {b} cluster is not whole: {p}" for b, p in waited.items() if p]
    if problems:
        raise ClusterUnavailable("; ".join(problems) + f". Start the clusters: {START_HINT}; "
                                 "`python -m brokerlab.cluster status` shows each node.")


def _addresses(broker: str, settings: Settings) -> str:
    if broker == "kafka":
        return ",".join(settings.kafka_cluster_bootstrap_servers)
    if broker == "rabbitmq":
        return ",".join(_redact(u) for u in settings.rabbitmq_cluster_urls)
    return ",".join(settings.redis_sentinels) + f" (master {settings.redis_sentinel_master!r})"


def _redact(url: str) -> str:
    from brokerlab.settings import redact

    return redact(url)


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


# ====================================================================== RabbitMQ (04.03)


def rabbitmq_parameters(settings: Settings | None = None, *, first: str | None = None,
                        only: str | None = None, timeout: float = 3.0, heartbeat: int = 10,
                        name: str | None = None) -> list[Any]:
    """One pika.URLParameters per cluster node (RABBITMQ_CLUSTER_URLS), bounded timeouts.

    Hand the whole list to `pika.BlockingConnection(...)`: pika tries each in turn, so a
    client reconnects to whichever node is alive. `first='rabbit-2'` puts that node's
    parameters first (the rest keep their order); `only='rabbit-2'` returns just that
    node's, to reach one node on purpose. Taught in 04.03.
    """
    import pika

    settings = settings or get_settings()
    urls = list(settings.rabbitmq_cluster_urls)
    if first or only:
        index = _index(rabbit_node_name(first or only or "")) - 1
        urls = [urls[index]] if only else [urls[index]] + urls[:index] + urls[index + 1:]
    result = []
    for url in urls:
        params = pika.URLParameters(url)
        params.socket_timeout = timeout
        params.stack_timeout = timeout
        params.blocked_connection_timeout = 30.0
        params.connection_attempts = 1
        params.retry_delay = 0
        params.heartbeat = heartbeat
        if name:
            params.client_properties = {"connection_name": name}
        result.append(params)
    return result


def _pika_connect(params: list[Any], name: str, timeout: float = 3.0) -> Any:
    import pika

    for p in params:
        p.socket_timeout = timeout
        p.stack_timeout = timeout
        p.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


def connected_node(connection: Any, settings: Settings | None = None) -> str:
    """The node a pika connection is attached to ('rabbit-2'), from its port (04.03)."""
    settings = settings or get_settings()
    port = connection._impl.params.port  # pika keeps the parameters it finally used
    for i, url in enumerate(settings.rabbitmq_cluster_urls, start=1):
        if (urlsplit(url).port or 5672) == port:
            return f"rabbit-{i}"
    return f"port {port}"


def management_url(amqp_url: str) -> str:
    """The management API beside an AMQP URL: same host, port + 10000 (5673 → 15673).

    True for the native cluster, for docker-compose.cluster.yml on the host (5673 →
    15673) and inside the compose network (5672 → 15672).

    >>> management_url("amqp://guest:guest@127.0.0.1:5674/%2F")
    'http://127.0.0.1:15674'
    """
    parts = urlsplit(amqp_url)
    scheme = "https" if parts.scheme == "amqps" else "http"
    port = (parts.port or (5671 if parts.scheme == "amqps" else 5672)) + 10000
    host = parts.hostname or "127.0.0.1"
    return f"{scheme}://{host}:{port}"


def management_call(settings: Settings | None, path: str, *, timeout: float = 5.0) -> Any:
    """GET `path` from the management API of the first cluster node that answers."""
    settings = settings or get_settings()
    last: BaseException | None = None
    for url in settings.rabbitmq_cluster_urls:
        parts = urlsplit(url)
        if not _port_open(parts.hostname or "127.0.0.1", parts.port or 5672, 0.3):
            continue
        user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
        request = urllib.request.Request(management_url(url) + path)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.load(response)
        except Exception as exc:  # that node is going away: ask the next
            last = exc
    raise ConnectionError(f"no RabbitMQ management API of the cluster answered ({last})")


def _vhost(settings: Settings) -> str:
    path = urlsplit(settings.rabbitmq_cluster_urls[0]).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def quorum_queue_state(queue: str, settings: Settings | None = None) -> dict[str, Any]:
    """{'leader': 'rabbit-1', 'members': [...], 'online': [...], 'messages': n} (04.03).

    Node names are the launcher's ('rabbit-2'), whatever RabbitMQ calls them.
    """
    settings = settings or get_settings()
    info = management_call(settings, f"/api/queues/{quote(_vhost(settings), safe='')}/"
                                     f"{quote(queue, safe='')}")
    leader = info.get("leader") or info.get("node")
    return {
        "leader": rabbit_node_name(leader) if leader else None,
        "members": sorted(rabbit_node_name(m) for m in info.get("members") or []),
        "online": sorted(rabbit_node_name(m) for m in info.get("online") or []),
        "messages": info.get("messages"),
        "type": info.get("type"),
    }


def wait_quorum_state(queue: str, predicate: Callable[[dict[str, Any]], bool], *,
                      timeout: float = 30.0, settings: Settings | None = None
                      ) -> dict[str, Any]:
    """Poll `quorum_queue_state` until `predicate` holds (bounded); return the last state."""
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while True:
        try:
            state = quorum_queue_state(queue, settings)
            if predicate(state):
                return state
        except Exception:
            pass
        if time.monotonic() >= deadline:
            return state
        time.sleep(0.3)


def rabbitmq_confirmed_publisher(name: str, queue: str, count: int, *, label: str = "m",
                                 rate: float = 100.0, first: str | None = None,
                                 settings: Settings | None = None,
                                 start: bool = True) -> TrackedWorker:
    """Publish `count` persistent messages with publisher confirms, reconnecting through
    the cluster's nodes when its node dies. Taught in 04.03.

    A message counts as acknowledged only when its confirm arrived. When the connection
    breaks with a message in hand, that message is published again on the next
    connection (at-least-once: the consumer may see it twice). `ledger.connected_to`
    lists the node of each connection.
    """
    import pika
    from pika.exceptions import AMQPError, NackError, UnroutableError

    settings = settings or get_settings()
    props = pika.BasicProperties(delivery_mode=2)

    def body(w: Worker) -> None:
        ledger = worker.ledger
        i, in_hand = 0, None
        due = time.monotonic()
        # pika waits for a confirm without a time limit (and its timers do not fire
        # meanwhile): a watchdog thread ends a wait longer than PUBLISH_TIMEOUT by
        # shutting the socket down, and the message goes out again on a new connection.
        waiting: dict[str, Any] = {"since": None, "connection": None}
        watchdog = threading.Thread(target=_confirm_watchdog, args=(w, waiting),
                                    name=f"{w.name}-watchdog", daemon=True)
        watchdog.start()
        try:
            while not w.should_stop() and (in_hand is not None or i < count):
                connection = None
                try:
                    connection = _pika_connect(rabbitmq_parameters(settings, first=first),
                                               w.name)
                    waiting["connection"] = connection
                    ledger.connected_to.append(connected_node(connection, settings))
                    channel = _confirm_channel(connection)
                    while not w.should_stop():
                        if in_hand is None:
                            if i >= count:
                                return
                            in_hand, i = f"{label}-{i}", i + 1
                            if not _pace(w, due):
                                return
                            due += 1.0 / rate if rate > 0 else 0.0
                        # With confirms on, basic_publish returns once the broker
                        # confirmed, and raises on a nack or a lost connection.
                        waiting["since"] = time.monotonic()
                        try:
                            channel.basic_publish("", queue, in_hand.encode(), props,
                                                  mandatory=True)
                        except (NackError, UnroutableError) as exc:
                            # The queue could not take it now (e.g. electing a new
                            # leader): not confirmed, so send the same message again,
                            # on a fresh channel (pika's confirm count is off after
                            # a nack).
                            ledger.error(exc)
                            _close_quietly(channel)
                            time.sleep(0.1)
                            channel = _confirm_channel(connection)
                            continue
                        finally:
                            waiting["since"] = None
                        ledger.ack(in_hand)
                        in_hand = None
                except (AMQPError, OSError) as exc:
                    ledger.error(exc)
                    ledger.reconnects += 1
                    time.sleep(0.2)
                finally:
                    waiting["connection"] = None
                    _close_quietly(connection)
        finally:
            if in_hand is not None:
                ledger.failed.append(in_hand)
            ledger.done = True

    worker = TrackedWorker(name, body)
    return worker.start() if start else worker


def rabbitmq_reconnecting_consumer(name: str, queue: str, *, prefetch: int = 50,
                                   first: str | None = None,
                                   settings: Settings | None = None,
                                   start: bool = True) -> TrackedWorker:
    """Consume `queue` with manual acks, reconnecting through the cluster's nodes (trying
    `first` first); every body lands in `worker.ledger.delivered` (redeliveries too).
    Taught in 04.03."""
    from pika.exceptions import AMQPError

    settings = settings or get_settings()

    class Cancelled(Exception):
        """The broker cancelled our consumer (e.g. the queue moved): subscribe again."""

    def body(w: Worker) -> None:
        ledger = worker.ledger
        try:
            while not w.should_stop():
                connection = None
                cancelled: list[Any] = []
                try:
                    connection = _pika_connect(rabbitmq_parameters(settings, first=first), w.name)
                    ledger.connected_to.append(connected_node(connection, settings))
                    channel = connection.channel()
                    channel.basic_qos(prefetch_count=prefetch)
                    channel.add_on_cancel_callback(cancelled.append)

                    def on_message(ch: Any, method: Any, _props: Any, raw: bytes) -> None:
                        ledger.delivered.append(raw.decode())
                        ch.basic_ack(method.delivery_tag)

                    channel.basic_consume(queue, on_message)
                    while not w.should_stop():
                        connection.process_data_events(time_limit=0.2)
                        if cancelled:
                            raise Cancelled()
                except (AMQPError, OSError, Cancelled) as exc:
                    ledger.error(exc)
                    ledger.reconnects += 1
                    time.sleep(0.3)
                finally:
                    _close_quietly(connection)
        finally:
            ledger.done = True

    worker = TrackedWorker(name, body)
    return worker.start() if start else worker


PUBLISH_TIMEOUT = 10.0  # seconds to wait for one publisher confirm before giving up on it


def _confirm_watchdog(w: Worker, waiting: dict[str, Any]) -> None:
    """Shut down the socket of a publisher stuck waiting for a confirm (see above)."""
    while not w.should_stop() and not getattr(w, "ledger", Ledger()).done:
        since, connection = waiting["since"], waiting["connection"]
        if since is not None and connection is not None \
                and time.monotonic() - since > PUBLISH_TIMEOUT:
            waiting["since"] = None
            try:  # private, but the only way to end pika's wait from another thread
                connection._impl._transport._sock.shutdown(socket.SHUT_RDWR)
            except Exception:
                pass
        time.sleep(0.2)


def _confirm_channel(connection: Any) -> Any:
    channel = connection.channel()
    channel.confirm_delivery()
    return channel


def _close_quietly(connection: Any) -> None:
    try:
        if connection is not None and connection.is_open:
            connection.close()
    except Exception:  # the node died under it: nothing left to close
        pass


# ==================================================== Redis writer (04.06 reuses it)


def redis_sentinel_writer(name: str, key: str, count: int, *, label: str = "w",
                          rate: float = 200.0, wait_replicas: int = 1, wait_ms: int = 100,
                          settings: Settings | None = None, start: bool = True
                          ) -> TrackedWorker:
    """RPUSH `count` values onto `key` through the Sentinel-found primary, `rate` per
    second. Taught in 04.04.

    A value is acknowledged when RPUSH returned; with `wait_replicas` > 0 each write is
    followed by WAIT (bounded by `wait_ms`) and counts as confirmed when that many
    replicas have it. A failed write is retried with the same value (an RPUSH whose
    reply was lost may then appear twice).
    """
    from redis.exceptions import RedisError

    settings = settings or get_settings()

    def body(w: Worker) -> None:
        ledger = worker.ledger
        client = primary(settings, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            i = 0
            due = time.monotonic()
            while i < count and _pace(w, due):
                value = f"{label}-{i}"
                try:
                    client.rpush(key, value)
                except RedisError as exc:  # no primary right now, or it just went
                    ledger.error(exc)
                    time.sleep(0.05)
                    continue
                ledger.ack(value)
                if wait_replicas:
                    try:
                        if client.wait(wait_replicas, wait_ms) >= wait_replicas:
                            ledger.confirmed.append(value)
                    except RedisError as exc:
                        ledger.error(exc)
                i += 1
                due += 1.0 / rate if rate > 0 else 0.0
        finally:
            client.close()
            ledger.done = True

    worker = TrackedWorker(name, body)
    return worker.start() if start else worker


# ====================================================================== RabbitMQ (04.03)


def classic_reachable(queue: str, settings: Settings | None = None) -> bool:
    """Can a client reach `queue` through any live node right now? (passive declare, 04.03)

    A classic queue lives on one node: while that node is down the others answer
    404 NOT_FOUND "home node ... is down or inaccessible".
    """
    from pika.exceptions import AMQPError

    settings = settings or get_settings()
    connection = None
    try:
        connection = _pika_connect(rabbitmq_parameters(settings), "course-probe")
        connection.channel().queue_declare(queue, passive=True)
        return True
    except AMQPError:
        return False
    finally:
        _close_quietly(connection)


# ====================================================================== leftovers, cleanup


def leftovers(prefix: str, settings: Settings | None = None) -> dict[str, list[str]]:
    """Everything on the three clusters whose name starts with `prefix`.

    The cluster counterpart of `bl.leftovers` (which looks at the single-node brokers);
    each 04 notebook's cleanup cell asserts it comes back empty.
    """
    settings = settings or get_settings()

    def kafka_names(admin: Any) -> tuple[list[str], list[str]]:
        topics = sorted(t for t in admin.list_topics() if t.startswith(prefix))
        groups = []
        for g in admin.list_groups():
            gid = g["group_id"] if isinstance(g, dict) else g[0]
            if gid.startswith(prefix):
                groups.append(gid)
        return topics, sorted(groups)

    topics, groups = kafka_admin_call(settings, kafka_names)
    queues = management_call(settings, f"/api/queues/{quote(_vhost(settings), safe='')}")
    client = primary(settings)
    try:
        keys = sorted(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()
    return {
        "kafka topics": topics,
        "kafka groups": groups,
        "rabbitmq queues": sorted(q["name"] for q in queues if q["name"].startswith(prefix)),
        "redis keys": keys,
    }


def _delete_everything(prefix: str, settings: Settings) -> dict[str, int]:
    found = leftovers(prefix, settings)
    if found["kafka groups"] or found["kafka topics"]:
        def delete(admin: Any) -> None:
            if found["kafka groups"]:
                admin.delete_groups(found["kafka groups"])
            if found["kafka topics"]:
                admin.delete_topics(found["kafka topics"])
        kafka_admin_call(settings, delete)
    if found["rabbitmq queues"]:
        connection = _pika_connect(rabbitmq_parameters(settings), f"{prefix}-cleanup")
        try:
            channel = connection.channel()
            for queue in found["rabbitmq queues"]:
                channel.queue_delete(queue)
        finally:
            _close_quietly(connection)
    if found["redis keys"]:
        client = primary(settings)
        try:
            client.delete(*found["redis keys"])
        finally:
            client.close()
    return {kind: len(names) for kind, names in found.items()}


def restart_down_nodes(*brokers: str, settings: Settings | None = None,
                       echo: Echo = print) -> list[str]:
    """Start every node of `brokers` that this kernel killed or that does not answer.

    Nodes the course's launcher runs start in parallel (a Kafka broker takes 10-20 s, so
    three clusters at once save time); the lines they would print are printed after.
    Other nodes (docker compose) are asked for one at a time. Returns the names started.
    """
    settings = settings or get_settings()
    wanted = [n for b in (brokers or BROKERS) for n in node_names(b)
              if n in _KILLED or not node_answers(n, settings)]
    native = [n for n in wanted if _KILLED.get(n) == "launcher" or (
        _KILLED.get(n) != "you" and launcher_runs(cluster.node(n).broker, settings))]
    lines: list[str] = []
    failures: list[str] = []

    def start_one(name: str) -> None:
        try:
            start_node(name, settings, echo=lines.append)
        except Exception as exc:  # reported below, in the notebook's own thread
            failures.append(f"{name}: {exc}")

    threads = [threading.Thread(target=start_one, args=(n,), daemon=True) for n in native]
    for t in threads:
        t.start()
    for t in threads:
        t.join(NODE_TIMEOUT + 30)
    for line in lines:
        echo(line)
    if failures:
        raise ClusterUnavailable("could not restart: " + "; ".join(failures))
    for name in wanted:
        if name not in native:
            start_node(name, settings, echo=echo)
    return wanted


def cleanup(run: Run, *brokers: str, timeout: float = 90.0, echo: Echo = print
            ) -> dict[str, Any]:
    """The last cell of a 04 notebook: stop the run's workers, restart every node that is
    down (this kernel's kills first), wait until the clusters are whole, and delete
    every topic, group, queue and key named by the run. Never hangs (all bounded).

    Returns {'restarted': [...], 'deleted': {...}, 'whole': {broker: problem or None},
    'leftovers': {...}} for the cell to assert on.
    """
    settings = run.settings
    brokers = brokers or BROKERS
    stop_all(prefix=run.prefix)
    restarted = restart_down_nodes(*brokers, settings=settings, echo=echo)
    whole = cluster_whole(*brokers, settings=settings, timeout=timeout)
    deleted: dict[str, int] = {}
    remaining: dict[str, list[str]] = {}
    for _attempt in range(3):  # a topic deletion may race a broker that just came back
        try:
            for kind, n in _delete_everything(run.prefix, settings).items():
                deleted[kind] = deleted.get(kind, 0) + n
            remaining = leftovers(run.prefix, settings)
        except Exception as exc:  # a cluster still settling: try again shortly
            remaining = {"error": [f"{type(exc).__name__}: {exc}"]}
        if not any(remaining.values()):
            break
        time.sleep(1.0)
    return {"restarted": restarted, "deleted": deleted, "whole": whole,
            "leftovers": {k: v for k, v in remaining.items() if v}}

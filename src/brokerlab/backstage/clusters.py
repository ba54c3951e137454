"""Three-node clusters of each broker, natively, for module 04 (fault tolerance).

Node addresses come from Settings (defaults in brackets):

- Kafka: kafka-1..3, three KRaft nodes, each broker and controller (a three-voter quorum),
  clients on KAFKA_CLUSTER_BOOTSTRAP_SERVERS [19092-19094], controllers 100 ports up;
  replication factor 3 and min.insync.replicas 2 by default.
- RabbitMQ: rabbit-1..3 on RABBITMQ_CLUSTER_URLS [5673-5675], management on
  RABBITMQ_CLUSTER_MANAGEMENT_URLS [15673-15675], one Erlang cookie (the user's), joined
  by classic peer discovery to the first node.
- Redis: redis-primary and redis-replica-1..2 on REDIS_CLUSTER_NODES [6380-6382], and
  sentinel-1..3 on REDIS_SENTINELS [26379-26381], watching the primary as
  REDIS_SENTINEL_MASTER ["course"] (quorum 2).

Same rules as the single brokers: everything runs as the current user under
<state_dir>/cluster/<node>, a node that answers is reused, each wait is bounded, failures
name the node's log, and stop touches only processes started here.

A RabbitMQ or Redis cluster started while none of its nodes runs starts empty. A RabbitMQ
cluster that went down uncleanly (a killed session, a power cut) would otherwise refuse to
boot until the node that stopped last comes first, and Sentinels would remember a
failover the lesson does not expect. Kafka's quorum recovers by itself and keeps its data.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import redis

from brokerlab.backstage import process, single
from brokerlab.backstage.process import LauncherError, Place
from brokerlab.clients import kafka_admin, redis_at
from brokerlab.health import check
from brokerlab.settings import Settings, get_settings

BROKERS = ("kafka", "rabbitmq", "redis")
KAFKA_CLUSTER_ID = "QnJva2VyTGFiQ2x1c3Rlcg"  # fixed: the three nodes must agree
REDIS_NAMES = ("redis-primary", "redis-replica-1", "redis-replica-2")
CONTROLLER_OFFSET = 100  # a Kafka node's controller listens 100 ports above its clients
READY_TIMEOUT = 90.0


@dataclass(frozen=True)
class Node:
    name: str
    broker: str  # "kafka", "rabbitmq", "redis"
    port: int
    index: int  # 1..3 within its kind

    def place(self, settings: Settings) -> Place:
        return Place(self.name, settings.state_dir / "cluster" / self.name)


def nodes(broker: str | None = None, settings: Settings | None = None) -> list[Node]:
    """The cluster nodes (of one broker), at the addresses Settings name."""
    s = settings or get_settings()

    def kind(names: list[str], b: str, addresses: tuple[str, ...]) -> list[Node]:
        # Three names per kind; Settings may list fewer addresses (a smaller cluster).
        return [Node(n, b, process.port_of(a, 0), i)
                for i, (n, a) in enumerate(zip(names, addresses, strict=False), start=1)]

    every = (kind([f"kafka-{i}" for i in (1, 2, 3)], "kafka", s.kafka_cluster_bootstrap_servers)
             + kind([f"rabbit-{i}" for i in (1, 2, 3)], "rabbitmq", s.rabbitmq_cluster_urls)
             + kind(list(REDIS_NAMES), "redis", s.redis_cluster_nodes)
             + kind([f"sentinel-{i}" for i in (1, 2, 3)], "redis", s.redis_sentinels))
    return [n for n in every if broker in (None, n.broker)]


def node(name: str, settings: Settings | None = None) -> Node:
    for candidate in nodes(settings=settings):
        if candidate.name == name:
            return candidate
    known = ", ".join(n.name for n in nodes(settings=settings))
    raise LauncherError(f"unknown node {name!r}; nodes: {known}")


# ---------------------------------------------------------------- per node


def kafka_node_properties(n: Node, settings: Settings) -> str:
    kafka = nodes("kafka", settings)
    voters = ",".join(f"{k.index}@127.0.0.1:{k.port + CONTROLLER_OFFSET}" for k in kafka)
    return single.kafka_properties(n.index, n.port, n.port + CONTROLLER_OFFSET,
                                   n.place(settings).root / "data", {
        "controller.quorum.voters": voters,
        "num.partitions": 3, "default.replication.factor": 3, "min.insync.replicas": 2,
        "unclean.leader.election.enable": "false",
        "offsets.topic.replication.factor": 3, "offsets.topic.num.partitions": 3,
        "transaction.state.log.replication.factor": 3, "transaction.state.log.min.isr": 2,
        "transaction.state.log.num.partitions": 1,
        "share.coordinator.state.topic.replication.factor": 3,
        "share.coordinator.state.topic.min.isr": 2,
        "share.coordinator.state.topic.num.partitions": 1,
        # A killed broker is fenced (and its partitions get new leaders) in ~3 s, not 9.
        "broker.session.timeout.ms": 3000, "broker.heartbeat.interval.ms": 500,
        "replica.lag.time.max.ms": 5000,
    })


def rabbit_ports(n: Node, settings: Settings) -> tuple[int, int, int]:
    """AMQP, management and Erlang distribution ports of one RabbitMQ node."""
    management = settings.rabbitmq_cluster_management_urls[n.index - 1]
    return n.port, process.port_of(management, 15672 + n.index), n.port + 20000


def rabbit_node_name(n: Node) -> str:
    """rabbit1..3@localhost on the default ports; shifted ports need other names."""
    return f"rabbit{n.index}@localhost" if n.port == 5672 + n.index else f"rabbit{n.port}@localhost"


def rabbit_env(n: Node, settings: Settings) -> dict[str, str]:
    first = nodes("rabbitmq", settings)[0]
    return single.rabbitmq_node_env(
        n.place(settings).root, rabbit_node_name(n), rabbit_ports(n, settings),
        watermark="384MB", schedulers="+S 1:1 +A 4",
        extra_conf=(
            "cluster_formation.peer_discovery_backend = classic_config\n"
            f"cluster_formation.classic_config.nodes.1 = {rabbit_node_name(first)}\n"
            # A node cut off from the majority pauses instead of diverging (split brain).
            "cluster_partition_handling = pause_minority\n"
        ),
    )


def ports(n: Node, settings: Settings) -> list[int]:
    """Every port a node listens on (all must be free before it starts)."""
    if n.broker == "kafka":
        return [n.port, n.port + CONTROLLER_OFFSET]
    return list(rabbit_ports(n, settings)) if n.broker == "rabbitmq" else [n.port]


def redis_conf(n: Node, settings: Settings) -> Path:
    """Write a Redis node's or a Sentinel's config (once: both rewrite it); return its path."""
    data = n.place(settings).root / "data"
    data.mkdir(parents=True, exist_ok=True)
    conf = data.parent / "redis.conf"
    primary = nodes("redis", settings)[0].port
    master = settings.redis_sentinel_master
    if conf.exists():
        return conf  # Sentinel records the current primary, replicas their primary: keep
    head = f"port {n.port}\nbind 127.0.0.1\ndaemonize no\ndir \"{data}\"\n"
    if n.name.startswith("sentinel"):
        conf.write_text(head + f"sentinel monitor {master} 127.0.0.1 {primary} 2\n"
                        f"sentinel down-after-milliseconds {master} 2000\n"
                        f"sentinel failover-timeout {master} 10000\n"
                        f"sentinel parallel-syncs {master} 1\n")
    else:
        replica = "" if n.name == "redis-primary" else f"replicaof 127.0.0.1 {primary}\n"
        conf.write_text(head + "save \"\"\nappendonly yes\nappendfsync everysec\n"
                        f"maxmemory 128mb\nmaxmemory-policy noeviction\n{replica}")
    return conf


def answers(n: Node, settings: Settings, timeout: float = 2.0) -> bool:
    """A real round trip with one node (not just an open port)."""
    if n.broker == "kafka":
        return check("kafka", replace(settings, kafka_bootstrap_servers=(
            f"127.0.0.1:{n.port}",)), timeout=timeout).ok
    if n.broker == "rabbitmq":
        url = settings.rabbitmq_cluster_urls[n.index - 1]
        return check("rabbitmq", replace(settings, rabbitmq_url=url), timeout=timeout).ok
    # PING, not health's SET/GET: replicas are read-only and Sentinels store nothing.
    client = redis_at(f"127.0.0.1:{n.port}", timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_node(name: str, settings: Settings | None = None, *, wait: bool = True,
               echo: Callable[[str], None] = print) -> str:
    """Start one node (after a kill, it rejoins its cluster)."""
    settings = settings or get_settings()
    n = node(name, settings)
    where = n.place(settings)
    if answers(n, settings):
        return "reused"
    if process.managed_pid(where) is not None:
        stop_node(name, settings, echo=echo)
    process.require_free(n.name, ports(n, settings))
    if n.broker == "kafka":
        argv = single.kafka_argv(
            where, kafka_node_properties(n, settings), cluster_id=KAFKA_CLUSTER_ID,
            standalone=False, heap=os.environ.get("BROKERLAB_CLUSTER_KAFKA_HEAP", "192m"))
        process.spawn(where, argv, dict(os.environ))
    elif n.broker == "rabbitmq":
        process.require_binary(str(single.RABBITMQ_SERVER), "RabbitMQ")
        process.spawn(where, [str(single.RABBITMQ_SERVER)], rabbit_env(n, settings))
    else:
        server = process.require_binary("redis-server", "Redis")
        conf = str(redis_conf(n, settings))
        sentinel = ["--sentinel"] if n.name.startswith("sentinel") else []
        process.spawn(where, [server, conf, *sentinel], dict(os.environ))
    if not wait:
        echo(f"{n.name:16} starting on 127.0.0.1:{n.port}")
        return "started"
    seconds = process.wait_ready(n.name, lambda: answers(n, settings), READY_TIMEOUT, [where])
    echo(f"{n.name:16} started on 127.0.0.1:{n.port} in {seconds:.1f} s")
    return "started"


def stop_node(name: str, settings: Settings | None = None, *, crash: bool = False,
              echo: Callable[[str], None] = print) -> str:
    """Stop one node we started: gracefully, or `crash=True` (SIGKILL, a power cut)."""
    settings = settings or get_settings()
    pid = process.stop(node(name, settings).place(settings), crash=crash)
    if pid is None:
        echo(f"{name:16} not running here")
        return "not-running"
    echo(f"{name:16} {'killed' if crash else 'stopped'} (pid {pid})")
    return "stopped"


def runs(name: str, settings: Settings | None = None) -> bool:
    """True if this launcher runs cluster node `name` here."""
    settings = settings or get_settings()
    return process.managed_pid(node(name, settings).place(settings)) is not None


# ---------------------------------------------------------------- whole clusters


def _kafka_ready(settings: Settings) -> bool:
    try:
        admin = kafka_admin(replace(settings, kafka_bootstrap_servers=tuple(
            settings.kafka_cluster_bootstrap_servers)), timeout=3.0)
        try:
            brokers = admin.describe_cluster().get("brokers", [])
            return len(brokers) == len(nodes("kafka", settings))
        finally:
            admin.close()
    except Exception:  # not up yet, whatever the reason: keep waiting (bounded)
        return False


def _rabbit_ready(settings: Settings) -> bool:
    first = nodes("rabbitmq", settings)[0]
    try:
        out = single.rabbitmqctl(rabbit_node_name(first), rabbit_env(first, settings),
                                 "cluster_status", "--formatter", "json", timeout=15)
        running = json.loads(out.stdout).get("running_nodes", [])
        return len(running) == len(nodes("rabbitmq", settings))
    except Exception:  # not up yet, whatever the reason: keep waiting (bounded)
        return False


def _redis_ready(settings: Settings) -> bool:
    master = settings.redis_sentinel_master
    sentinel = redis_at(settings.redis_sentinels[0])
    try:
        replicas = sentinel.sentinel_slaves(master)
        others = sentinel.sentinel_sentinels(master)
    except redis.RedisError:
        return False
    finally:
        sentinel.close()
    linked = [r for r in replicas if r.get("master-link-status", "ok") == "ok"]
    return len(linked) >= 2 and len(others) >= 2


def start(broker: str, settings: Settings | None = None,
          echo: Callable[[str], None] = print) -> float:
    """Start a whole cluster; return the seconds until it was whole."""
    settings = settings or get_settings()
    if broker not in BROKERS:
        raise LauncherError(f"unknown broker {broker!r}; expected one of {', '.join(BROKERS)}")
    t0 = time.monotonic()
    if broker != "kafka":
        _forget_past_runs(broker, settings, echo)
    # Kafka: all three at once (the quorum needs a majority to elect). RabbitMQ: the first
    # node up, then the others join it. Redis: one by one (replicas need their primary).
    started = []
    for i, n in enumerate(nodes(broker, settings)):
        wait = broker == "redis" or (broker == "rabbitmq" and i == 0)
        if start_node(n.name, settings, wait=wait, echo=echo) == "started":
            started.append(n)
    whole = {"kafka": _kafka_ready, "rabbitmq": _rabbit_ready, "redis": _redis_ready}[broker]
    process.wait_ready(f"{broker} cluster",
                       lambda: all(answers(n, settings) for n in started) and whole(settings),
                       READY_TIMEOUT, [n.place(settings) for n in started])
    echo(f"{broker} cluster ready in {time.monotonic() - t0:.1f} s")
    return time.monotonic() - t0


def _forget_past_runs(broker: str, settings: Settings, echo: Callable[[str], None]) -> None:
    """Start a RabbitMQ or Redis cluster empty when none of its nodes runs (see above)."""
    members = nodes(broker, settings)  # with Redis, its Sentinels too
    if any(runs(n.name, settings) or answers(n, settings, 1.0) for n in members):
        return
    for n in members:
        root = n.place(settings).root
        for old in (root / "mnesia", root / "data", root / "redis.conf"):
            if old.is_dir():
                shutil.rmtree(old)
            elif old.exists():
                old.unlink()
    echo(f"{broker} cluster: no node was running; starting it empty")


def stop(broker: str, settings: Settings | None = None,
         echo: Callable[[str], None] = print) -> None:
    """Stop the nodes of `broker`: Redis's one by one, sentinels first (so none fails the
    primary over while it stops); Kafka's and RabbitMQ's all at once (one by one, the last
    Kafka node waits for a controller majority already gone: 30 s, then SIGKILL)."""
    found = list(reversed(nodes(broker, settings)))
    with ThreadPoolExecutor(max_workers=1 if broker == "redis" else len(found) or 1) as pool:
        list(pool.map(lambda n: stop_node(n.name, settings, echo=echo), found))
    if broker == "rabbitmq":
        single.stop_idle_epmd()


def status(settings: Settings | None = None,
           brokers: tuple[str, ...] = BROKERS) -> list[process.Status]:
    settings = settings or get_settings()
    rows = []
    for n in (n for n in nodes(settings=settings) if n.broker in brokers):
        where = n.place(settings)
        pid = process.managed_pid(where)
        up = answers(n, settings, 1.0)
        state = ("up" if up else "hung?") if pid else ("up (not ours)" if up else "down")
        rows.append(process.Status(n.name, state, f"127.0.0.1:{n.port}", pid, where.log))
    return rows

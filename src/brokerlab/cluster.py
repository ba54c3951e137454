"""Three-node clusters of each broker, natively, for module 04 (fault tolerance).

    python -m brokerlab.cluster start [kafka|rabbitmq|redis ...]     (make cluster)
    python -m brokerlab.cluster stop  [...]                          (make stop-cluster)
    python -m brokerlab.cluster status
    python -m brokerlab.cluster kill kafka-2      # SIGKILL one node, as a power cut
    python -m brokerlab.cluster start-node kafka-2

- Kafka: three brokers in KRaft mode, each broker and controller (a three-voter quorum),
  clients on 127.0.0.1:19092-19094, controllers on 19192-19194; replication factor 3 and
  min.insync.replicas 2 by default.
- RabbitMQ: rabbit1..3@localhost, AMQP 5673-5675, management 15673-15675, one Erlang
  cookie (the user's), joined by classic peer discovery to rabbit1.
- Redis: a primary on 6380, two replicas on 6381-6382, three Sentinels on 26379-26381
  watching the primary as "course" (quorum 2).

Same rules as `brokerlab.local`: everything runs as the current user under the state
folder (<state>/cluster/<node>), a node that answers is reused, each wait is bounded,
failures print the node's log tail, and stop touches only processes started here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from brokerlab import local
from brokerlab.local import LauncherError, Paths
from brokerlab.settings import Settings, get_settings

KAFKA_NODES = {1: (19092, 19192), 2: (19093, 19193), 3: (19094, 19194)}
RABBIT_NODES = {1: (5673, 15673, 25673), 2: (5674, 15674, 25674), 3: (5675, 15675, 25675)}
REDIS_NODES = {"redis-primary": 6380, "redis-replica-1": 6381, "redis-replica-2": 6382}
SENTINELS = {"sentinel-1": 26379, "sentinel-2": 26380, "sentinel-3": 26381}
KAFKA_CLUSTER_ID = "QnJva2VyTGFiQ2x1c3Rlcg"  # fixed: the three nodes must agree
SENTINEL_MASTER = "course"
READY_TIMEOUT = 90.0


@dataclass(frozen=True)
class Node:
    name: str
    broker: str  # "kafka", "rabbitmq", "redis"
    port: int

    def paths(self, settings: Settings) -> Paths:
        return Paths(settings.state_dir / "cluster" / self.name)


def nodes(broker: str | None = None) -> list[Node]:
    all_nodes = (
        [Node(f"kafka-{i}", "kafka", p[0]) for i, p in KAFKA_NODES.items()]
        + [Node(f"rabbit-{i}", "rabbitmq", p[0]) for i, p in RABBIT_NODES.items()]
        + [Node(n, "redis", p) for n, p in REDIS_NODES.items()]
        + [Node(n, "redis", p) for n, p in SENTINELS.items()]
    )
    return [n for n in all_nodes if broker in (None, n.broker)]


def node(name: str) -> Node:
    for candidate in nodes():
        if candidate.name == name:
            return candidate
    raise LauncherError(f"unknown node {name!r}; nodes: {', '.join(n.name for n in nodes())}")


# ---------------------------------------------------------------- readiness


def _answers(n: Node, timeout: float = 2.0) -> bool:
    """A real round trip with one node (not just an open port)."""
    try:
        if n.broker == "redis":
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # No retries: a node that is down should say so at once (redis-py 8 retries
            # with backoff by default, ~4 s per probe of a stopped node).
            client = redis.Redis(host="127.0.0.1", port=n.port, socket_timeout=timeout,
                                 socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
            try:
                return bool(client.ping())
            finally:
                client.close()
        if n.broker == "rabbitmq":
            from brokerlab.health import _check_rabbitmq

            url = f"amqp://guest:guest@127.0.0.1:{n.port}/%2F"
            _check_rabbitmq(Settings(rabbitmq_url=url), timeout, False)
            return True
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{n.port}",
                                 request_timeout_ms=int(timeout * 1000) + 1000,
                                 bootstrap_timeout_ms=int(timeout * 1000))
        try:
            admin.describe_cluster()
            return True
        finally:
            admin.close()
    except Exception:
        return False


def _wait(what: str, ready: Callable[[], bool], timeout: float, tails: list[Node],
          settings: Settings) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if ready():
            return time.monotonic() - started
        for n in tails:
            pid = local._read_pid(n.paths(settings))
            if pid is not None and not local._alive(pid):
                raise LauncherError(f"{n.name} exited during start-up. Last lines of its log:\n"
                                    + _tail(n, settings))
        time.sleep(0.5)
    logs = "\n".join(f"--- {n.name}:\n{_tail(n, settings)}" for n in tails)
    raise LauncherError(f"{what} not ready within {timeout:.0f} s.\n{logs}")


def _tail(n: Node, settings: Settings, lines: int = 15) -> str:
    try:
        text = n.paths(settings).log.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- per node


def _kafka_props(i: int, data: Path) -> str:
    client, controller = KAFKA_NODES[i]
    voters = ",".join(f"{j}@127.0.0.1:{c}" for j, (_, c) in KAFKA_NODES.items())
    return (
        "# Written by brokerlab.cluster: broker + controller, one of three.\n"
        f"process.roles=broker,controller\nnode.id={i}\ncontroller.quorum.voters={voters}\n"
        f"listeners=PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{client}\n"
        "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
        f"log.dirs={data}\n"
        "num.partitions=3\ndefault.replication.factor=3\nmin.insync.replicas=2\n"
        "unclean.leader.election.enable=false\n"
        "offsets.topic.replication.factor=3\noffsets.topic.num.partitions=3\n"
        "transaction.state.log.replication.factor=3\ntransaction.state.log.min.isr=2\n"
        "transaction.state.log.num.partitions=1\n"
        "share.coordinator.state.topic.replication.factor=3\n"
        "share.coordinator.state.topic.min.isr=2\nshare.coordinator.state.topic.num.partitions=1\n"
        "group.initial.rebalance.delay.ms=0\n"
        # A killed broker is fenced (and its partitions get new leaders) in ~3 s, not 9.
        "broker.session.timeout.ms=3000\nbroker.heartbeat.interval.ms=500\n"
        "replica.lag.time.max.ms=5000\n"
        "log.cleaner.dedupe.buffer.size=4194304\nlog.segment.bytes=16777216\n"
        "num.network.threads=2\nnum.io.threads=2\nbackground.threads=2\n"
    )


def _start_kafka_node(n: Node, settings: Settings) -> None:
    java, lib = local._java(), local.fetch_kafka(quiet=True)
    p = n.paths(settings)
    i = int(n.name.rsplit("-", 1)[1])
    data = p.root / "data"
    props = p.root / "server.properties"
    text = _kafka_props(i, data)
    p.root.mkdir(parents=True, exist_ok=True)
    log4j = p.root / "log4j2.properties"
    log4j.write_text(local._LOG4J2)
    stamp = p.root / "format.stamp"
    marker = f"{local.kafka_version()}\n{text}"
    if not (data / "meta.properties").exists() or not stamp.exists() \
            or stamp.read_text() != marker:
        shutil.rmtree(data, ignore_errors=True)
        props.write_text(text)
        result = subprocess.run(
            [java, "-Xmx128m", "-cp", f"{lib}/*", f"-Dlog4j2.configurationFile={log4j}",
             "kafka.tools.StorageTool", "format", "-t", KAFKA_CLUSTER_ID, "-c", str(props)],
            capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise LauncherError(f"{n.name}: storage format failed:\n{result.stdout}{result.stderr}")
        stamp.write_text(marker)
    props.write_text(text)
    heap = os.environ.get("BROKERLAB_CLUSTER_KAFKA_HEAP", "192m")
    local._spawn(n.name, [
        java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseSerialGC", "-XX:MaxMetaspaceSize=96m",
        f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={p.root / 'logs'}",
        "-cp", f"{lib}/*", "kafka.Kafka", str(props)], dict(os.environ), p)


def _rabbit_env(n: Node, settings: Settings) -> dict[str, str]:
    i = int(n.name.rsplit("-", 1)[1])
    amqp, management, dist = RABBIT_NODES[i]
    return local.rabbitmq_node_env(
        n.paths(settings).root, f"rabbit{i}@localhost", amqp, management, dist,
        watermark="384MB", schedulers="+S 1:1 +A 4",
        extra_conf=(
            "cluster_formation.peer_discovery_backend = classic_config\n"
            "cluster_formation.classic_config.nodes.1 = rabbit1@localhost\n"
            # A node cut off from the majority pauses instead of diverging (split brain).
            "cluster_partition_handling = pause_minority\n"
        ),
    )


def rabbitmqctl(node_name: str, *args: str, timeout: float = 30.0,
                settings: Settings | None = None) -> subprocess.CompletedProcess[str]:
    """rabbitmqctl against one cluster node, e.g. rabbitmqctl("rabbit-1", "cluster_status")."""
    settings = settings or get_settings()
    n = node(node_name)
    i = int(n.name.rsplit("-", 1)[1])
    return subprocess.run([str(local.RABBITMQCTL), "-n", f"rabbit{i}@localhost", *args],
                          env=_rabbit_env(n, settings), capture_output=True, text=True,
                          timeout=timeout)


def _redis_conf(n: Node, settings: Settings) -> Path:
    p = n.paths(settings)
    (p.root / "data").mkdir(parents=True, exist_ok=True)
    conf = p.root / "redis.conf"
    primary = REDIS_NODES["redis-primary"]
    if n.name.startswith("sentinel"):
        # Sentinel rewrites its own config (it records the current primary): keep it.
        if not conf.exists():
            conf.write_text(
                f"port {n.port}\nbind 127.0.0.1\ndaemonize no\ndir \"{p.root / 'data'}\"\n"
                f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_MASTER} 2000\n"
                f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n"
                f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
            )
        return conf
    if not conf.exists():
        replica = "" if n.name == "redis-primary" else f"replicaof 127.0.0.1 {primary}\n"
        conf.write_text(
            f"port {n.port}\nbind 127.0.0.1\ndaemonize no\ndir \"{p.root / 'data'}\"\n"
            "save \"\"\nappendonly yes\nappendfsync everysec\n"
            f"maxmemory 128mb\nmaxmemory-policy noeviction\n{replica}"
        )
    return conf


def start_node(name: str, settings: Settings | None = None, *, wait: bool = True,
               echo: Callable[[str], None] = print) -> str:
    """Start one node (after a kill, it rejoins its cluster)."""
    settings = settings or get_settings()
    n = node(name)
    p = n.paths(settings)
    if _answers(n):
        return "reused"
    if (pid := local._read_pid(p)) is not None and local._ours(pid, p):
        stop_node(name, settings, echo=echo)
    if local._port_open("127.0.0.1", n.port):
        raise LauncherError(f"{n.name}: port {n.port} is taken by another process "
                            f"(`ss -ltnp | grep {n.port}`)")
    if n.broker == "kafka":
        _start_kafka_node(n, settings)
    elif n.broker == "rabbitmq":
        local._require_binary(str(local.RABBITMQ_SERVER), "RabbitMQ")
        local._spawn(n.name, [str(local.RABBITMQ_SERVER)], _rabbit_env(n, settings), p)
    else:
        server = local._require_binary("redis-server", "Redis")
        conf = _redis_conf(n, settings)
        argv = [server, str(conf)] + (["--sentinel"] if n.name.startswith("sentinel") else [])
        local._spawn(n.name, argv, dict(os.environ), p)
    if wait:
        seconds = _wait(n.name, lambda: _answers(n), READY_TIMEOUT, [n], settings)
        echo(f"{n.name:16} started on 127.0.0.1:{n.port} in {seconds:.1f} s")
    return "started"


def stop_node(name: str, settings: Settings | None = None, *, crash: bool = False,
              echo: Callable[[str], None] = print) -> str:
    """Stop one node we started: gracefully, or `crash=True` (SIGKILL, a power cut)."""
    settings = settings or get_settings()
    n = node(name)
    p = n.paths(settings)
    pid = local._read_pid(p)
    if pid is None or not local._ours(pid, p):
        p.pid.unlink(missing_ok=True)
        return "not-running"
    local._kill_group(pid, signal.SIGKILL if crash else signal.SIGTERM)
    if not local._wait_gone(pid, 30.0):
        local._kill_group(pid, signal.SIGKILL)
        local._wait_gone(pid, 5.0)
    local._kill_group(pid, signal.SIGKILL)
    p.pid.unlink(missing_ok=True)
    echo(f"{n.name:16} {'killed' if crash else 'stopped'} (pid {pid})")
    return "stopped"


def kill(name: str, settings: Settings | None = None, echo: Callable[[str], None] = print) -> None:
    """Kill one node with SIGKILL: the fault the lessons of module 04 inject."""
    stop_node(name, settings, crash=True, echo=echo)


# ---------------------------------------------------------------- whole clusters


def _kafka_cluster_ready(settings: Settings) -> bool:
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=list(settings.kafka_cluster_bootstrap_servers),
                                 request_timeout_ms=3000, bootstrap_timeout_ms=2000)
        try:
            return len(admin.describe_cluster().get("brokers", [])) == len(KAFKA_NODES)
        finally:
            admin.close()
    except Exception:
        return False


def _rabbit_cluster_ready(settings: Settings) -> bool:
    try:
        out = rabbitmqctl("rabbit-1", "cluster_status", "--formatter", "json", timeout=15,
                          settings=settings)
        import json

        status = json.loads(out.stdout)
        return len(status.get("running_nodes", [])) == len(RABBIT_NODES)
    except Exception:
        return False


def _redis_cluster_ready(settings: Settings) -> bool:
    import redis

    try:
        sentinel = redis.Redis(host="127.0.0.1", port=SENTINELS["sentinel-1"], socket_timeout=2)
        try:
            replicas = sentinel.sentinel_slaves(SENTINEL_MASTER)
            others = sentinel.sentinel_sentinels(SENTINEL_MASTER)
        finally:
            sentinel.close()
        up = [r for r in replicas if "master-link-status" not in r or
              r.get("master-link-status") == "ok"]
        return len(up) >= 2 and len(others) >= 2
    except Exception:
        return False


def start(broker: str, settings: Settings | None = None,
          echo: Callable[[str], None] = print) -> None:
    settings = settings or get_settings()
    t0 = time.monotonic()
    if broker == "kafka":
        for n in nodes("kafka"):  # all three at once: the quorum needs a majority to elect
            start_node(n.name, settings, wait=False, echo=echo)
        _wait("Kafka cluster (3 brokers)", lambda: _kafka_cluster_ready(settings),
              READY_TIMEOUT, nodes("kafka"), settings)
    elif broker == "rabbitmq":
        first, *rest = nodes("rabbitmq")
        start_node(first.name, settings, echo=echo)  # the others join rabbit1
        for n in rest:
            start_node(n.name, settings, wait=False, echo=echo)
        for n in rest:
            _wait(n.name, lambda n=n: _answers(n), READY_TIMEOUT, [n], settings)
        _wait("RabbitMQ cluster (3 nodes)", lambda: _rabbit_cluster_ready(settings),
              READY_TIMEOUT, nodes("rabbitmq"), settings)
    elif broker == "redis":
        for n in nodes("redis"):
            start_node(n.name, settings, echo=echo)
        _wait("Redis replicas and Sentinels", lambda: _redis_cluster_ready(settings),
              READY_TIMEOUT, nodes("redis"), settings)
    else:
        raise LauncherError(f"unknown broker {broker!r}")
    echo(f"{broker} cluster ready in {time.monotonic() - t0:.1f} s")


def stop(broker: str, settings: Settings | None = None,
         echo: Callable[[str], None] = print) -> None:
    for n in reversed(nodes(broker)):
        stop_node(n.name, settings, echo=echo)
    if broker == "rabbitmq":
        local.stop_idle_epmd()


def status(settings: Settings | None = None) -> list[tuple[str, str, int, Path]]:
    settings = settings or get_settings()
    rows = []
    for n in nodes():
        p = n.paths(settings)
        pid = local._read_pid(p)
        ours = pid is not None and local._ours(pid, p)
        state = ("up" if _answers(n, 1.0) else "hung?") if ours else (
            "up (not ours)" if _answers(n, 1.0) else "down")
        rows.append((n.name, state, n.port, p.log))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brokerlab.cluster",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "kill", "start-node",
                                            "stop-node"])
    parser.add_argument("names", nargs="*",
                        help="brokers (kafka, rabbitmq, redis) or, for node commands, nodes")
    args = parser.parse_args(argv)
    try:
        if args.command == "status":
            for name, state, port, log in status():
                print(f"{name:16} {state:14} 127.0.0.1:{port:<6} log: {log}")
            return 0
        if args.command in ("kill", "start-node", "stop-node"):
            if not args.names:
                parser.error("name the node(s), e.g. kafka-2")
            action = {"kill": kill, "start-node": start_node, "stop-node": stop_node}
            for name in args.names:
                action[args.command](name)
            return 0
        brokers = args.names or ["kafka", "rabbitmq", "redis"]
        for broker in brokers:
            (start if args.command == "start" else stop)(broker)
    except LauncherError as exc:
        print(f"\nFAILED: {exc}\n", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

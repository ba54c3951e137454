"""Whole clusters: is each node up and in sync, and the setup cell of module 04.

    from brokerlab import clusters
    clusters.require_cluster("kafka", settings=s)   # fails fast, or heals, or starts it
    clusters.cluster_whole("kafka", settings=s)     # {broker: None, or what is wrong}

`require_cluster` starts a whole cluster itself where the course's launcher runs the
brokers (Binder: no terminal), stopping the clusters a lesson does not need on a small
machine. Nodes, kills and restarts are brokerlab.faults'. Taught in module 04.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from brokerlab.checks import wait_until
from brokerlab.clients import kafka_admin, redis_at
from brokerlab.faults import (
    BROKERS,
    CLUSTER_START_HINT,
    LAUNCHER,
    ClusterUnavailable,
    down_nodes,
    launcher_runs,
    node_address,
    node_answers,
    node_names,
    run_command,
    start_backend,
    start_node,
)
from brokerlab.health import NAMES
from brokerlab.rabbitmq import management_get
from brokerlab.settings import Settings, get_settings, redact

Echo = Callable[[str], None]



def _kafka_whole(settings: Settings) -> str | None:
    cluster = replace(settings, kafka_bootstrap_servers=settings.kafka_cluster_bootstrap_servers)
    try:
        admin = kafka_admin(cluster, timeout=4.0)
        try:
            found = admin.describe_cluster()
        finally:
            admin.close()
    except Exception as exc:
        return f"no answer ({type(exc).__name__})"
    ids = sorted(b["broker_id"] for b in found.get("brokers", []) if not b.get("is_fenced"))
    expected = list(range(1, len(settings.kafka_cluster_bootstrap_servers) + 1))
    return None if ids == expected else f"brokers {ids} registered, expected {expected}"


def _rabbit_whole(settings: Settings) -> str | None:
    problem = "no management API answers"
    for base_url in settings.rabbitmq_cluster_management_urls:
        try:
            found = management_get("/api/nodes", settings, base_url=base_url, timeout=4.0)
        except Exception as exc:  # this node's API is down: ask the next one
            problem = f"no answer ({type(exc).__name__})"
            continue
        running = sorted(n["name"] for n in found if n.get("running"))
        expected = len(settings.rabbitmq_cluster_urls)
        return None if len(running) == expected else (
            f"running nodes {running}, expected {expected}")
    return problem


def _redis_whole(settings: Settings) -> str | None:
    problems = []
    servers = node_names("redis", settings)[:len(settings.redis_cluster_nodes)]
    by_port = {node_address(n, settings)[1]: n for n in servers}
    primaries = set()
    for i, server in enumerate(settings.redis_sentinels, start=1):
        client = redis_at(server)
        try:
            master = client.sentinel_master(settings.redis_sentinel_master)
            replicas = client.sentinel_slaves(settings.redis_sentinel_master)
        except Exception as exc:
            problems.append(f"sentinel-{i}: {type(exc).__name__}")
            continue
        finally:
            client.close()
        good = [r for r in replicas if r.get("master-link-status") == "ok"
                and not r.get("is_sdown") and not r.get("is_disconnected")]
        primaries.add(by_port.get(int(master.get("port", 0)), f"port {master.get('port')}"))
        if master.get("is_sdown") or master.get("is_odown"):
            problems.append(f"sentinel-{i} sees the primary down")
        elif len(good) < len(servers) - 1:
            problems.append(f"sentinel-{i} sees {len(good)} of {len(servers) - 1} "
                            "replicas in sync")
        elif int(master.get("num-other-sentinels", 0)) < len(settings.redis_sentinels) - 1:
            problems.append(f"sentinel-{i} knows {master.get('num-other-sentinels')} "
                            "other sentinels")
    if not problems and len(primaries) != 1:
        problems.append(f"the Sentinels disagree on the primary: {sorted(primaries)}")
    if not problems:
        primary = primaries.pop()
        if primary not in by_port.values() or not node_answers(primary, settings):
            problems.append(f"the primary ({primary}) does not answer")
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

    A node that was just started needs a moment to catch up (Kafka ISR, Redis replica
    link), so this polls. Used in every 04 notebook's cleanup cell.
    """
    settings = settings or get_settings()
    started = time.monotonic()
    result: dict[str, str | None] = {}
    for broker in brokers or BROKERS:
        problem: list[str | None] = [None]

        def whole(b: str = broker, box: list[str | None] = problem) -> bool:
            box[0] = cluster_problem(b, settings)
            return box[0] is None

        wait_until(whole, max(timeout - (time.monotonic() - started), 0.0), interval=0.5)
        result[broker] = problem[0]
    return result


def cluster_addresses(broker: str, settings: Settings) -> str:
    """Where `broker`'s cluster is expected, for messages (passwords hidden)."""
    if broker == "kafka":
        return ",".join(settings.kafka_cluster_bootstrap_servers)
    if broker == "rabbitmq":
        return ",".join(redact(u) for u in settings.rabbitmq_cluster_urls)
    return ",".join(settings.redis_sentinels) + f" (master {settings.redis_sentinel_master!r})"


SMALL_MACHINE = 3 * 1024**3  # bytes: below this, only the clusters a lesson needs run


def memory_limit() -> int | None:
    """The memory this process's cgroup may use (Binder: 2 GiB), or None when unlimited."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    own = "/proc/self/cgroup"
    try:  # a nested cgroup (the Binder simulation): v1 "N:memory:/name", v2 "0::/name"
        for line in open(own).read().splitlines():
            _, controllers, where = line.split(":", 2)
            base = ("/sys/fs/cgroup/memory" if "memory" in controllers.split(",")
                    else "/sys/fs/cgroup" if not controllers else None)
            if base and where != "/":
                name = "memory.limit_in_bytes" if base.endswith("memory") else "memory.max"
                text = open(f"{base}{where}/{name}").read().strip()
                if text.isdigit() and int(text) < 2**60:
                    return int(text)
    except (OSError, ValueError):
        pass
    return None


def make_room(keep: Sequence[str], settings: Settings, echo: Echo, why: str) -> None:
    """On a small machine (under 3 GiB, like Binder's 2 GiB) stop the launcher's clusters
    other than `keep`, so memory stays in bounds; their lessons start them again."""
    limit = memory_limit()
    if limit is None or limit >= SMALL_MACHINE:
        return
    others = [b for b in BROKERS if b not in keep
              and len(down_nodes(b, settings)) < len(node_names(b, settings))]
    if others:
        echo(f"this machine has {limit / 2**30:.1f} GiB of memory: stopping the "
             f"{', '.join(others)} cluster(s) {why}")
        run_command([*LAUNCHER, "cluster", "stop", *others], settings)


def start_cluster(broker: str, *, keep: Sequence[str] = (), settings: Settings | None = None,
                  echo: Echo = print) -> None:
    """Start `broker`'s three-node cluster through the course's launcher (module 04 on a
    machine where the launcher runs the brokers, such as Binder: no terminal needed).

    On a small machine (under 3 GiB, like Binder's 2 GiB) the launcher's other clusters
    that this lesson does not need (`keep`) are stopped first, so memory stays in bounds.
    """
    settings = settings or get_settings()
    make_room((*keep, broker), settings, echo, "this lesson does not need")
    echo(f"starting the {NAMES[broker]} cluster (three nodes; this takes about half a "
         "minute) ...")
    started = time.monotonic()
    run_command([*LAUNCHER, "cluster", "start", broker], settings)
    echo(f"the {NAMES[broker]} cluster started in {time.monotonic() - started:.0f} s")


def require_cluster(*brokers: str, settings: Settings | None = None, heal: bool = True,
                    echo: Echo = print) -> None:
    """Fail fast, with what to run, unless each named cluster answers; heal a partial one.

    A cluster with no node answering raises ClusterUnavailable in seconds. When some
    nodes are down (an earlier run stopped half-way) and `heal=True`, they are started
    first through the same backends as `start_node`. The setup cell of module 04.
    """
    settings = settings or get_settings()
    problems = []
    for broker in brokers:
        down = down_nodes(broker, settings)
        if (len(down) == len(node_names(broker, settings)) and heal
                and launcher_runs(broker, settings)):
            start_cluster(broker, keep=brokers, settings=settings, echo=echo)
            down = down_nodes(broker, settings)
        if len(down) == len(node_names(broker, settings)):
            problems.append(f"the {broker} cluster does not answer at "
                            f"{cluster_addresses(broker, settings)}")
        elif down and heal and any(start_backend(n, settings) != "you" for n in down):
            for name in down:
                echo(f"{name} was down (an earlier run stopped half-way?): starting it")
                start_node(name, settings=settings, echo=echo)
        elif down:
            problems.append(f"{broker} node(s) {', '.join(down)} do not answer")
    if not problems:
        waited = cluster_whole(*brokers, settings=settings, timeout=45.0)
        problems = [f"the {b} cluster is not whole: {p}" for b, p in waited.items() if p]
    if problems:
        raise ClusterUnavailable("; ".join(problems) + f". Start the clusters: "
                                 f"{CLUSTER_START_HINT}; `python -m brokerlab.backstage "
                                 "cluster status` shows each node.")

"""Faults: restart a broker, kill and start a cluster node. One interface, three backends.

    from brokerlab import faults
    seconds = faults.restart("redis", crash=True, settings=run.settings)   # 02.04
    faults.kill_node("kafka-2", settings=run.settings)   # 04.01: SIGKILL, a power cut
    faults.start_node("kafka-2", settings=run.settings)  # it rejoins; waits until it answers

The backend is chosen by where the brokers live, never by the notebook:

1. a command template from the environment, run in a shell: BROKERLAB_RESTART_COMMAND,
   BROKERLAB_KILL_NODE_COMMAND, BROKERLAB_START_NODE_COMMAND, with the placeholders
   {broker}, {node} and {mode} ("graceful" or "crash"). docker-compose.yml sets them for
   its JupyterLab, the GitHub workflow for the runner, `make test-external` for CI here;
2. the course's launcher, when it runs that broker or node here, through its command
   line (`python -m brokerlab.backstage restart BROKER [--crash]`, `node kill|start NODE`);
3. otherwise the learner: the cell prints the command to run and waits, bounded.

Whatever ran, the cell then waits, bounded, until the broker or node really answers
again (or, after a kill, really stopped answering), and checks that a restart happened
(the server's uptime starts again). A command that fails or does not exist stops the cell
with the command, its exit code and its output; a command that hangs is stopped.

Nodes are named as docker-compose.cluster.yml's services, and found at the addresses of
Settings: kafka-1..3 (KAFKA_CLUSTER_BOOTSTRAP_SERVERS), rabbit-1..3 (RABBITMQ_CLUSTER_URLS),
redis-primary, redis-replica-1, redis-replica-2 (REDIS_CLUSTER_NODES, primary first) and
sentinel-1..3 (REDIS_SENTINELS).

Restarts are taught in 01.03, 02.04 and 03.04; node kills in every lesson of module 04,
whose setup and cleanup cells use require_cluster, cluster_whole and restore_nodes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from brokerlab.checks import wait_until
from brokerlab.clients import kafka_admin, rabbitmq_connection, redis_at, redis_client
from brokerlab.health import NAMES, check, port_open
from brokerlab.rabbitmq import management_get
from brokerlab.settings import Settings, get_settings, redact

Echo = Callable[[str], None]

BROKERS = ("rabbitmq", "redis", "kafka")
LAUNCHER = (sys.executable, "-m", "brokerlab.backstage")
COMPOSE_CLUSTER = ("docker compose -f docker-compose.yml -f docker-compose.cluster.yml "
                   "--profile cluster")
CLUSTER_START_HINT = f"run `make cluster` (or, with Docker: `{COMPOSE_CLUSTER} up -d --wait`)"
NODE_TIMEOUT = 120.0    # bounded wait for a node or broker to go or come back
COMMAND_TIMEOUT = 300.0  # a command template or launcher call that takes longer is stopped
GONE_TIMEOUT = 30.0     # after a kill command: the node's port must close within this


class FaultError(RuntimeError):
    """A fault could not be made: the command failed, or the broker did not do as told."""


class ClusterUnavailable(RuntimeError):
    """A cluster a module 04 notebook needs is not whole; the message says what to run."""


# ---------------------------------------------------------------- nodes, from Settings


def _node_table(settings: Settings) -> dict[str, tuple[str, str]]:
    """{node name: (broker, host:port)} for every cluster node the settings name."""
    table: dict[str, tuple[str, str]] = {}
    for i, server in enumerate(settings.kafka_cluster_bootstrap_servers, start=1):
        table[f"kafka-{i}"] = ("kafka", server)
    for i, url in enumerate(settings.rabbitmq_cluster_urls, start=1):
        parts = urlsplit(url)
        table[f"rabbit-{i}"] = ("rabbitmq", f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}")
    for i, server in enumerate(settings.redis_cluster_nodes):
        table["redis-primary" if i == 0 else f"redis-replica-{i}"] = ("redis", server)
    for i, server in enumerate(settings.redis_sentinels, start=1):
        table[f"sentinel-{i}"] = ("redis", server)
    return table


def _node(name: str, settings: Settings) -> tuple[str, str]:
    table = _node_table(settings)
    if name not in table:
        raise ValueError(f"unknown node {name!r}; nodes: {', '.join(table)}")
    return table[name]


def node_names(broker: str, settings: Settings | None = None) -> list[str]:
    """The node names of `broker`'s cluster, e.g. ['kafka-1', 'kafka-2', 'kafka-3'].

    Redis lists its three servers first, then its three Sentinels.
    """
    if broker not in BROKERS:
        raise ValueError(f"unknown broker {broker!r}; expected one of {', '.join(BROKERS)}")
    table = _node_table(settings or get_settings())
    return [name for name, (b, _) in table.items() if b == broker]


def node_broker(name: str, settings: Settings | None = None) -> str:
    """The broker a node belongs to: 'kafka-2' -> 'kafka', 'sentinel-1' -> 'redis'."""
    return _node(name, settings or get_settings())[0]


def node_address(name: str, settings: Settings | None = None) -> tuple[str, int]:
    """(host, port) where clients reach node `name`, from the cluster settings."""
    server = _node(name, settings or get_settings())[1]
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


def node_answers(name: str, settings: Settings | None = None, timeout: float = 2.0) -> bool:
    """A real round trip with one node (a refused port costs milliseconds); never raises."""
    settings = settings or get_settings()
    broker, server = _node(name, settings)
    host, port = node_address(name, settings)
    if not port_open(host, port, timeout):
        return False
    try:
        if broker == "redis":
            client = redis_at(server, timeout=timeout)
            try:
                return bool(client.ping())
            finally:
                client.close()
        if broker == "rabbitmq":
            index = node_names("rabbitmq", settings).index(name)
            one = replace(settings, rabbitmq_url=settings.rabbitmq_cluster_urls[index])
            connection = rabbitmq_connection(one, timeout=timeout)
            connection.close()
            return True
        admin = kafka_admin(replace(settings, kafka_bootstrap_servers=(server,)), timeout=timeout)
        try:
            admin.describe_cluster()
            return True
        finally:
            admin.close()
    except Exception:  # any failure means "does not answer"
        return False


def down_nodes(broker: str, settings: Settings | None = None) -> list[str]:
    """The nodes of `broker`'s cluster that do not answer a round trip."""
    settings = settings or get_settings()
    return [n for n in node_names(broker, settings) if not node_answers(n, settings)]


def compose_command(action: str, target: str) -> str:
    """The docker compose command a learner runs for a broker or cluster node.

    >>> compose_command("restart", "redis")
    'docker compose restart redis'
    """
    if action not in ("kill", "start", "stop", "restart"):
        raise ValueError(f"action must be kill, start, stop or restart, got {action!r}")
    if target in BROKERS:
        return f"docker compose {action} {target}"
    return f"{COMPOSE_CLUSTER} {action} {target}"


# ---------------------------------------------------------------- running commands


def _environment(settings: Settings) -> dict[str, str]:
    """The process environment with `settings` written back, so the launcher or a template
    acts on the brokers this kernel talks to (a modified Settings is not lost)."""
    env = dict(os.environ)
    env.update({
        "RABBITMQ_URL": settings.rabbitmq_url,
        "RABBITMQ_MANAGEMENT_URL": settings.rabbitmq_management_url,
        "REDIS_URL": settings.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": ",".join(settings.kafka_bootstrap_servers),
        "KAFKA_CLUSTER_BOOTSTRAP_SERVERS": ",".join(settings.kafka_cluster_bootstrap_servers),
        "RABBITMQ_CLUSTER_URLS": ",".join(settings.rabbitmq_cluster_urls),
        "RABBITMQ_CLUSTER_MANAGEMENT_URLS": ",".join(settings.rabbitmq_cluster_management_urls),
        "REDIS_CLUSTER_NODES": ",".join(settings.redis_cluster_nodes),
        "REDIS_SENTINELS": ",".join(settings.redis_sentinels),
        "COURSE_NAMESPACE": settings.namespace,
        "BROKERLAB_STATE_DIR": str(settings.state_dir),
    })
    return env


def run_command(command: str | Sequence[str], settings: Settings, *,
                timeout: float = COMMAND_TIMEOUT) -> str:
    """Run a command (a string goes through the shell); return its output.

    Raises FaultError with the command, its exit code and the end of its output when it
    fails, does not exist (the shell's 127) or runs longer than `timeout` (it is killed).
    Output goes to a file, not a pipe: a broker the command starts may keep the pipe
    open for its whole life, and reading it would never end.
    """
    shown = command if isinstance(command, str) else " ".join(command)
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
        try:
            proc = subprocess.Popen(command, shell=isinstance(command, str), stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=_environment(settings), start_new_session=True)
        except OSError as exc:
            raise FaultError(f"`{shown}` could not start: {exc}") from exc
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            code = None
        out.seek(0)
        output = out.read().strip()
    tail = "\n".join(output.splitlines()[-20:])
    if code is None:
        raise FaultError(f"`{shown}` did not finish within {timeout:.0f} s and was stopped."
                         + (f" Its output:\n{tail}" if tail else ""))
    if code != 0:
        raise FaultError(f"`{shown}` failed with exit code {code}."
                         + (f" Its output:\n{tail}" if tail else " It printed nothing."))
    return output


def launcher_runs(name: str, settings: Settings | None = None) -> bool:
    """True if the course's launcher runs broker or node `name` here (asked through its
    command line: `python -m brokerlab.backstage runs NAME` exits 0)."""
    settings = settings or get_settings()
    try:
        run_command([*LAUNCHER, "runs", name], settings, timeout=60.0)
    except FaultError:
        return False
    return True


def _fill(template: str, **values: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise FaultError(f"the command template {template!r} has a placeholder other than "
                         f"{{broker}}, {{node}} and {{mode}}: {exc}") from exc


# ---------------------------------------------------------------- restart a broker


def _uptime(broker: str, settings: Settings) -> float | None:
    """Seconds since the broker's server started (Redis, RabbitMQ), else None. Cheap."""
    try:
        if broker == "redis":
            client = redis_client(settings, timeout=2.0)
            try:
                return float(client.info("server")["uptime_in_seconds"])
            finally:
                client.close()
        if broker == "rabbitmq":
            nodes = management_get("/api/nodes", settings, timeout=3.0)
            return min(float(n["uptime"]) / 1000 for n in nodes if n.get("running"))
    except Exception:  # down, or no management API: the restart check is skipped
        return None
    return None


def _answers(broker: str, settings: Settings) -> bool:
    return check(broker, settings, timeout=2.0).ok


def restart(broker: str, *, crash: bool = False, settings: Settings | None = None,
            timeout: float = NODE_TIMEOUT, echo: Echo = print) -> float:
    """Restart `broker` keeping its data (gracefully, or `crash=True`: SIGKILL first) and
    wait until it answers again; return the seconds that took.

    Restarting disconnects every client: never on a shared classroom broker.
    Taught in 01.03 (RabbitMQ), 02.04 (Redis) and 03.04 (Kafka).
    """
    if broker not in BROKERS:
        raise ValueError(f"unknown broker {broker!r}; expected one of {', '.join(BROKERS)}")
    settings = settings or get_settings()
    name, mode = NAMES[broker], ("crash" if crash else "graceful")
    uptime_before = _uptime(broker, settings)
    started = time.monotonic()
    if settings.restart_command:
        command = _fill(settings.restart_command, broker=broker, node=broker, mode=mode)
        echo(f"Restarting {name} ({mode}): {command}")
        run_command(command, settings)
    elif launcher_runs(broker, settings):
        command = " ".join([*LAUNCHER[1:], "restart", broker] + (["--crash"] if crash else []))
        echo(f"Restarting {name} ({mode}) with the course's launcher: python {command}")
        run_command([*LAUNCHER, "restart", broker] + (["--crash"] if crash else []), settings)
    else:
        command = (f"docker compose kill {broker} && docker compose start {broker}" if crash
                   else compose_command("restart", broker))
        echo(f"The course's launcher does not run {name} here, so restart it yourself: in a "
             f"terminal next to docker-compose.yml, run\n    {command}\n"
             f"Waiting up to {timeout:.0f} s for {name} to go away and come back ...")

        def went_away() -> bool:
            uptime = _uptime(broker, settings)
            restarted = uptime is not None and uptime <= time.monotonic() - started + 1
            return restarted or not _answers(broker, settings)

        if not wait_until(went_away, timeout, interval=0.25):
            raise TimeoutError(f"{name} kept running for {timeout:.0f} s: run `{command}`, "
                               "then run this cell again")
    left = max(timeout - (time.monotonic() - started), 15.0)
    if not wait_until(lambda: _answers(broker, settings), left, interval=0.5):
        raise TimeoutError(f"{name} did not answer at {settings.display_url(broker)} within "
                           f"{left:.0f} s after `{command}`; its log says why")
    uptime_after = _uptime(broker, settings)
    elapsed = time.monotonic() - started
    if uptime_before is not None and uptime_after is not None and uptime_after > elapsed + 2:
        raise FaultError(f"`{command}` finished, but {name} did not restart: it has been up "
                         f"{uptime_after:.0f} s (check what the command restarts)")
    echo(f"{name} is back after {elapsed:.1f} s")
    return elapsed


# ---------------------------------------------------------------- kill and start nodes


_KILLED: dict[str, str] = {}  # node -> "template" | "launcher" | "you": how this kernel killed it


def kill_node(name: str, *, settings: Settings | None = None, timeout: float = NODE_TIMEOUT,
              echo: Echo = print) -> None:
    """Kill cluster node `name` as a power cut would (SIGKILL); return once it is gone.

    Taught in 04.01; used in 04.02-04.06 and the 04.01 lab.
    """
    settings = settings or get_settings()
    broker = node_broker(name, settings)
    host, port = node_address(name, settings)
    if settings.kill_node_command:
        command = _fill(settings.kill_node_command, broker=broker, node=name, mode="crash")
        echo(f"Killing {name}: {command}")
        run_command(command, settings)
        _KILLED[name], wait = "template", GONE_TIMEOUT
    elif launcher_runs(name, settings):
        command = f"python -m brokerlab.backstage node kill {name}"
        echo(f"Killing {name} with the course's launcher: {command}")
        run_command([*LAUNCHER, "node", "kill", name], settings)
        _KILLED[name], wait = "launcher", GONE_TIMEOUT
    else:
        command = compose_command("kill", name)
        echo(f"The course's launcher does not run {name} here. In a terminal next to "
             f"docker-compose.yml, run:\n    {command}\n"
             f"Waiting up to {timeout:.0f} s for {name} to go down ...")
        _KILLED[name], wait = "you", timeout
    if not wait_until(lambda: not port_open(host, port), wait, interval=0.25):
        raise TimeoutError(f"{name} still listens on {host}:{port} {wait:.0f} s after "
                           f"`{command}`; kill it, then run this cell again")
    echo(f"{name} is down")


def _start_backend(name: str, settings: Settings) -> str:
    if settings.start_node_command:
        return "template"
    if _KILLED.get(name) == "launcher":
        return "launcher"
    if _KILLED.get(name) != "you":
        broker = node_broker(name, settings)
        siblings = [name] + [n for n in node_names(broker, settings) if n != name]
        if any(launcher_runs(n, settings) for n in siblings):
            return "launcher"
    return "you"


def start_node(name: str, *, settings: Settings | None = None, timeout: float = NODE_TIMEOUT,
               echo: Echo = print) -> None:
    """Start cluster node `name` again (it rejoins its cluster); wait until it answers.

    A node that already answers is left alone. Taught in 04.01.
    """
    settings = settings or get_settings()
    broker = node_broker(name, settings)
    if node_answers(name, settings):
        _KILLED.pop(name, None)
        return
    backend = _start_backend(name, settings)
    if backend == "template":
        assert settings.start_node_command
        command = _fill(settings.start_node_command, broker=broker, node=name, mode="graceful")
        echo(f"Starting {name}: {command}")
        run_command(command, settings)
    elif backend == "launcher":
        command = f"python -m brokerlab.backstage node start {name}"
        echo(f"Starting {name} with the course's launcher: {command}")
        run_command([*LAUNCHER, "node", "start", name], settings)
    else:
        command = compose_command("start", name)
        echo(f"Start {name} again: in a terminal next to docker-compose.yml, run:\n"
             f"    {command}\nWaiting up to {timeout:.0f} s for {name} to answer ...")
    if not wait_until(lambda: node_answers(name, settings), timeout, interval=0.5):
        raise TimeoutError(f"{name} did not answer within {timeout:.0f} s after `{command}`")
    _KILLED.pop(name, None)
    echo(f"{name} is back")


def restore_nodes(*brokers: str, settings: Settings | None = None,
                  echo: Echo = print) -> list[str]:
    """Start every node of `brokers` (default all) that this kernel killed or that does
    not answer; return their names. The cleanup of every module 04 notebook.

    Nodes started by a command (launcher or template) start in parallel: a Kafka broker
    takes 10-20 s, so three clusters at once save time. Nodes the learner must start are
    asked for one at a time.
    """
    settings = settings or get_settings()
    wanted = [n for b in (brokers or BROKERS) for n in node_names(b, settings)
              if n in _KILLED or not node_answers(n, settings)]
    by_command = [n for n in wanted if _start_backend(n, settings) != "you"]
    lines: list[str] = []
    failures: list[str] = []

    def start_one(node: str) -> None:
        try:
            start_node(node, settings=settings, echo=lines.append)
        except Exception as exc:  # reported below, in the notebook's own thread
            failures.append(f"{node}: {exc}")

    threads = [threading.Thread(target=start_one, args=(n,), daemon=True) for n in by_command]
    for t in threads:
        t.start()
    for t in threads:
        t.join(COMMAND_TIMEOUT + NODE_TIMEOUT)
    for line in lines:
        echo(line)
    if failures:
        raise ClusterUnavailable("could not start again: " + "; ".join(failures))
    for node in wanted:
        if node not in by_command:
            start_node(node, settings=settings, echo=echo)
    return wanted


# ---------------------------------------------------------------- whole clusters


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


def start_cluster(broker: str, *, keep: Sequence[str] = (), settings: Settings | None = None,
                  echo: Echo = print) -> None:
    """Start `broker`'s three-node cluster through the course's launcher (module 04 on a
    machine where the launcher runs the brokers, such as Binder: no terminal needed).

    On a small machine (under 3 GiB, like Binder's 2 GiB) the launcher's other clusters
    that this lesson does not need (`keep`) are stopped first, so memory stays in bounds.
    """
    settings = settings or get_settings()
    limit = memory_limit()
    if limit is not None and limit < SMALL_MACHINE:
        others = [b for b in BROKERS if b not in keep and b != broker
                  and not all(n in down_nodes(b, settings) for n in node_names(b, settings))]
        if others:
            echo(f"this machine has {limit / 2**30:.1f} GiB of memory: stopping the "
                 f"{', '.join(others)} cluster(s) this lesson does not need")
            run_command([*LAUNCHER, "cluster", "stop", *others], settings)
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
        elif down and heal and any(_start_backend(n, settings) != "you" for n in down):
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

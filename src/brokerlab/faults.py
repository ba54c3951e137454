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
whose setup and cleanup cells use brokerlab.clusters (whole clusters) and restore_nodes.
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
from brokerlab.settings import Settings, get_settings

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


def start_backend(name: str, settings: Settings) -> str:
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
    backend = start_backend(name, settings)
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
    by_command = [n for n in wanted if start_backend(n, settings) != "you"]
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

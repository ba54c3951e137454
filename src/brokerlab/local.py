"""Run the three brokers natively, without Docker: the course's own launcher.

    python -m brokerlab.local start [redis|rabbitmq|kafka ...]   (make brokers)
    python -m brokerlab.local stop  [...]                        (make stop)
    python -m brokerlab.local status                             (make status)
    python -m brokerlab.local restart rabbitmq [--crash]
    python -m brokerlab.local fetch-kafka                        (Kafka's jars via Maven)

Each broker runs as the current user, root or not, with its data, logs and pid file
under one state folder (BROKERLAB_STATE_DIR, default ~/.local/state/brokerlab), so CI,
Binder's notebook user and a laptop all work the same way:

- Redis: Debian's redis-server on 127.0.0.1:6379, persistence off (as Redis ships).
- RabbitMQ: Debian's rabbitmq-server started through /usr/lib/rabbitmq/bin (the
  /usr/sbin wrapper refuses non-root users), AMQP 127.0.0.1:5672, management UI 15672,
  a fixed node name so durable queues survive a restart.
- Kafka: Apache Kafka's own jars from Maven Central (pom.xml beside this file), single
  node in KRaft mode on 127.0.0.1:9092 (controller on 9093), Java 17, a small heap.

Redis and Kafka listen on the port their URL names (REDIS_URL, KAFKA_BOOTSTRAP_SERVERS),
so a second, throw-away instance can run beside the course's (the launcher's own tests).

A broker that already answers is reused and never stopped by us. We stop only what we
started (its pid file names a process whose command line points into our state folder).
Notebooks call `restart(...)` for the persistence demos (01.03, 02.04, 03.04).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from brokerlab.health import check
from brokerlab.settings import Settings, get_settings

BROKERS = ("redis", "rabbitmq", "kafka")
POM = Path(__file__).parent / "backstage" / "kafka" / "pom.xml"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
RABBITMQ_NODE = "rabbit@localhost"
READY_TIMEOUT = {"redis": 15.0, "rabbitmq": 60.0, "kafka": 60.0}
STOP_TIMEOUT = {"redis": 10.0, "rabbitmq": 30.0, "kafka": 30.0}
INSTALL_HINT = (
    "run `make install-system` (as root, or with sudo), or install it yourself: "
    "sudo apt-get install -y redis-server rabbitmq-server openjdk-17-jre-headless maven"
)


class LauncherError(RuntimeError):
    """A broker could not be started or stopped; the message says why and what to do."""


def kafka_version() -> str:
    """The pinned Kafka version: the single source is the pom.xml beside this module."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not match:
        raise LauncherError(f"no <kafka.version> in {POM}")
    return match.group(1)


@dataclass(frozen=True)
class Paths:
    """Where one broker keeps its things under the state folder."""

    root: Path

    @property
    def pid(self) -> Path:
        return self.root / "broker.pid"

    @property
    def log(self) -> Path:
        return self.root / "broker.log"


def paths(broker: str, settings: Settings | None = None) -> Paths:
    settings = settings or get_settings()
    return Paths(settings.state_dir / broker)


def kafka_lib_dir() -> Path:
    """Kafka's jars, cached per version outside the state folder (survives `rm -rf state`)."""
    cache = os.environ.get("BROKERLAB_CACHE_DIR") or str(Path.home() / ".cache" / "brokerlab")
    return Path(cache) / f"kafka-{kafka_version()}" / "lib"


# ---------------------------------------------------------------- processes


def _read_pid(p: Paths) -> int | None:
    try:
        return int(p.pid.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":  # a zombie child of this process: reap it
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def _ours(pid: int, p: Paths) -> bool:
    """True if pid is alive and runs in this broker's state folder (we start it there)."""
    if not _alive(pid):
        return False
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return cwd == str(p.root) or cwd.startswith(str(p.root) + os.sep)


def managed_pid(broker: str, settings: Settings | None = None) -> int | None:
    """The pid of the broker process we started, or None."""
    p = paths(broker, settings)
    pid = _read_pid(p)
    return pid if pid is not None and _ours(pid, p) else None


def is_managed(broker: str, settings: Settings | None = None) -> bool:
    """True if the course's launcher runs this broker here (so notebooks may restart it)."""
    return managed_pid(broker, settings) is not None


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(broker: str, lines: int = 25, settings: Settings | None = None) -> str:
    log = paths(broker, settings).log
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"


def _spawn(broker: str, argv: list[str], env: dict[str, str], p: Paths) -> int:
    p.root.mkdir(parents=True, exist_ok=True)
    with open(p.log, "ab") as log:
        log.write(f"\n==== brokerlab: starting {broker} at {time.ctime()} ====\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=p.root,
            start_new_session=True,  # its own process group: stop kills it all
        )
    p.pid.write_text(f"{proc.pid}\n")
    return proc.pid


# ---------------------------------------------------------------- per-broker setup


def _require_binary(path: str, what: str) -> str:
    found = shutil.which(path) or (path if Path(path).exists() else None)
    if not found:
        raise LauncherError(f"{what} is not installed ({path} not found): {INSTALL_HINT}")
    return found


def redis_port(settings: Settings) -> int:
    return urlsplit(settings.redis_url).port or 6379


def kafka_port(settings: Settings) -> int:
    return int(settings.kafka_bootstrap_servers[0].rpartition(":")[2])


def _redis_argv(settings: Settings, p: Paths, fresh_config: bool) -> list[str]:
    server = _require_binary("redis-server", "Redis")
    conf = p.root / "redis.conf"
    data = p.root / "data"
    data.mkdir(parents=True, exist_ok=True)
    if fresh_config or not conf.exists():
        # Notebooks may change persistence with CONFIG SET + CONFIG REWRITE; a restart
        # from a notebook keeps that, `make brokers` starts from these defaults.
        conf.write_text(
            "# Written by brokerlab.local; CONFIG REWRITE may change it.\n"
            f"bind 127.0.0.1\nport {redis_port(settings)}\nprotected-mode yes\ndaemonize no\n"
            f'dir "{data}"\n'
            'save ""\nappendonly no\n'
            "maxmemory 256mb\nmaxmemory-policy noeviction\n"
        )
    return [server, str(conf)]


def rabbitmq_node_env(root: Path, node: str, amqp: int, management: int, dist: int, *,
                      watermark: str, schedulers: str, extra_conf: str = "") -> dict[str, str]:
    """Config files and environment that run one RabbitMQ node as any user from `root`
    (used for the course's node here and for the three cluster nodes)."""
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "rabbitmq.conf"
    conf.write_text(
        "# Written by brokerlab\n"
        f"listeners.tcp.default = 127.0.0.1:{amqp}\n"
        f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management}\n"
        # Small enough for Binder's 2 GB; the broker blocks publishers above this.
        f"vm_memory_high_watermark.absolute = {watermark}\n"
        "disk_free_limit.absolute = 50MB\n" + extra_conf
    )
    (root / "enabled_plugins").write_text("[rabbitmq_management].\n")
    (root / "rabbitmq-env.conf").write_text("# brokerlab: no overrides\n")
    env = dict(os.environ)
    env.update(
        RABBITMQ_NODENAME=node,
        RABBITMQ_USE_LONGNAME="false",
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(amqp),
        RABBITMQ_DIST_PORT=str(dist),
        RABBITMQ_CONFIG_FILE=str(conf),
        RABBITMQ_CONF_ENV_FILE=str(root / "rabbitmq-env.conf"),
        RABBITMQ_MNESIA_BASE=str(root / "mnesia"),
        RABBITMQ_LOG_BASE=str(root / "log"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(root / "enabled_plugins"),
        RABBITMQ_PID_FILE=str(root / "rabbitmq.pid"),
        RABBITMQ_LOGS="-",  # to stdout, which is our broker.log
        ERL_EPMD_ADDRESS="127.0.0.1",
        # Few schedulers are plenty for a course and keep memory down.
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=schedulers,
    )
    return env


def _rabbitmq_env(settings: Settings, p: Paths) -> dict[str, str]:
    return rabbitmq_node_env(p.root, RABBITMQ_NODE, 5672, 15672, 25672,
                             watermark="512MB", schedulers="+S 2:2 +A 8")


def rabbitmqctl(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run rabbitmqctl against the course's node (used by lessons as a window into the broker)."""
    settings = get_settings()
    env = _rabbitmq_env(settings, paths("rabbitmq", settings))
    return subprocess.run(
        [str(RABBITMQCTL), "-n", RABBITMQ_NODE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _kafka_cluster_id() -> str:
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _kafka_properties(p: Paths, port: int) -> str:
    data = p.root / "data"
    return (
        "# Written by brokerlab.local: one node, broker and controller in one process.\n"
        "process.roles=broker,controller\nnode.id=1\n"
        f"controller.quorum.bootstrap.servers=127.0.0.1:{port + 1}\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n"
        "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
        f"log.dirs={data}\n"
        "num.partitions=1\nauto.create.topics.enable=true\n"
        # One node: internal topics with one replica and one partition (small and fast).
        "offsets.topic.replication.factor=1\noffsets.topic.num.partitions=1\n"
        "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
        "transaction.state.log.num.partitions=1\n"
        "share.coordinator.state.topic.replication.factor=1\n"
        "share.coordinator.state.topic.min.isr=1\n"
        "share.coordinator.state.topic.num.partitions=1\n"
        # No 3-second wait before the first rebalance of a new group (lessons stay snappy).
        "group.initial.rebalance.delay.ms=0\n"
        "log.cleaner.dedupe.buffer.size=4194304\n"
        "log.segment.bytes=16777216\n"
        "num.network.threads=2\nnum.io.threads=2\nbackground.threads=2\n"
    )


_LOG4J2 = """\
# Written by brokerlab.local: Kafka's own log to stdout (our broker.log), INFO and up.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


def fetch_kafka(quiet: bool = False) -> Path:
    """Download Kafka's jars with Maven (once; Maven's ~/.m2 caches them too)."""
    lib = kafka_lib_dir()
    done = lib / ".complete"
    if done.exists():
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise LauncherError(f"Maven (mvn) is needed once to fetch Kafka's jars: {INSTALL_HINT}")
    tmp = lib.with_name("lib.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print(f"fetching Apache Kafka {kafka_version()} jars from Maven Central into {lib} ...")
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"],
        capture_output=True, text=True, timeout=900,
    )
    if result.returncode != 0:
        raise LauncherError(
            "Maven could not fetch Kafka's jars (is Maven Central reachable?):\n"
            + (result.stdout + result.stderr)[-2000:]
        )
    shutil.rmtree(lib, ignore_errors=True)
    tmp.rename(lib)
    done.write_text(kafka_version() + "\n")
    return lib


def _java() -> str:
    java = _require_binary("java", "Java 17 (for Kafka)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < 17:
        raise LauncherError(f"Kafka {kafka_version()} needs Java 17 or newer; found: {out.strip()}")
    return java


def _kafka_argv(p: Paths, port: int) -> list[str]:
    java = _java()
    lib = fetch_kafka()
    props = p.root / "server.properties"
    text = _kafka_properties(p, port)
    # A state folder from an earlier run (another Kafka version or config) must never
    # break the next start: when the stamp differs, the old log is wiped and reformatted.
    stamp = hashlib.sha256(f"{kafka_version()}\n{text}".encode()).hexdigest()
    stamp_file = p.root / "format.stamp"
    data = p.root / "data"
    formatted = (data / "meta.properties").exists()
    if not formatted or not stamp_file.exists() or stamp_file.read_text().strip() != stamp:
        shutil.rmtree(data, ignore_errors=True)
        p.root.mkdir(parents=True, exist_ok=True)
        props.write_text(text)
        (p.root / "log4j2.properties").write_text(_LOG4J2)
        result = subprocess.run(
            [java, "-Xmx128m", "-cp", f"{lib}/*",
             f"-Dlog4j2.configurationFile={p.root / 'log4j2.properties'}",
             "kafka.tools.StorageTool", "format", "--standalone",
             "-t", _kafka_cluster_id(), "-c", str(props)],
            capture_output=True, text=True, timeout=120,
        )
        if result.returncode != 0:
            raise LauncherError(
                "Kafka storage format failed:\n" + (result.stdout + result.stderr)[-2000:]
            )
        stamp_file.write_text(stamp + "\n")
    props.write_text(text)
    (p.root / "log4j2.properties").write_text(_LOG4J2)
    heap = os.environ.get("BROKERLAB_KAFKA_HEAP", "256m")
    return [
        java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseSerialGC", "-XX:MaxMetaspaceSize=96m",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={p.root / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={p.root / 'logs'}",
        "-cp", f"{lib}/*", "kafka.Kafka", str(props),
    ]


# ---------------------------------------------------------------- start / stop


def _wait_ready(broker: str, pid: int, settings: Settings, p: Paths, timeout: float) -> float:
    started = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - started < timeout:
        if not _alive(pid):
            p.pid.unlink(missing_ok=True)
            raise LauncherError(
                f"{broker} exited during start-up. Last lines of {p.log}:\n{log_tail(broker)}"
            )
        status = check(broker, settings, timeout=3.0, deep=True)
        if status.ok:
            return time.monotonic() - started
        last = status.detail
        time.sleep(0.5)
    raise LauncherError(
        f"{broker} did not answer a round trip within {timeout:.0f} s (last: {last}). "
        f"Last lines of {p.log}:\n{log_tail(broker)}"
    )


def start(broker: str, settings: Settings | None = None, *, fresh_config: bool = True,
          echo: Callable[[str], None] = print) -> str:
    """Start one broker unless it already answers; wait (bounded) until it really serves."""
    settings = settings or get_settings()
    p = paths(broker, settings)
    if check(broker, settings, timeout=3.0).ok:
        how = "started by this launcher" if is_managed(broker, settings) else "not ours: reused"
        echo(f"{broker:9} already running at {settings.display_url(broker)} ({how})")
        return "reused"
    if managed_pid(broker, settings) is not None:
        # Ours but not answering (hung, or still booting from an earlier call): replace it.
        stop(broker, settings, echo=echo)
    ports = {"redis": [redis_port(settings)], "rabbitmq": [5672, 15672, 25672],
             "kafka": [kafka_port(settings), kafka_port(settings) + 1]}[broker]
    busy = [port for port in ports if _port_open("127.0.0.1", port)]
    if busy:
        raise LauncherError(
            f"{broker}: port(s) {busy} on 127.0.0.1 are taken by a process that is not a "
            f"working {broker} started here. Find it with `ss -ltnp | grep -E "
            f"'{'|'.join(map(str, busy))}'` and stop it, or point the course at it with "
            "the environment variables in the README."
        )
    p.root.mkdir(parents=True, exist_ok=True)
    if broker == "redis":
        pid = _spawn(broker, _redis_argv(settings, p, fresh_config), dict(os.environ), p)
    elif broker == "rabbitmq":
        _require_binary(str(RABBITMQ_SERVER), "RabbitMQ")
        pid = _spawn(broker, [str(RABBITMQ_SERVER)], _rabbitmq_env(settings, p), p)
    elif broker == "kafka":
        pid = _spawn(broker, _kafka_argv(p, kafka_port(settings)), dict(os.environ), p)
    else:
        raise LauncherError(f"unknown broker {broker!r}; expected one of {', '.join(BROKERS)}")
    try:
        seconds = _wait_ready(broker, pid, settings, p, READY_TIMEOUT[broker])
    except LauncherError as exc:
        if broker != "kafka" or _alive(pid):
            raise
        # A Kafka log folder left by an earlier run (another cluster id, a half-written
        # format, a crash mid-write) must not block the course: reformat once and retry.
        echo(f"kafka     could not start on its old data ({str(exc).splitlines()[0]}); "
             f"reformatting {p.root / 'data'} and retrying")
        shutil.rmtree(p.root / "data", ignore_errors=True)
        (p.root / "format.stamp").unlink(missing_ok=True)
        pid = _spawn(broker, _kafka_argv(p, kafka_port(settings)), dict(os.environ), p)
        seconds = _wait_ready(broker, pid, settings, p, READY_TIMEOUT[broker])
    echo(f"{broker:9} started at {settings.display_url(broker)} in {seconds:.1f} s "
         f"(pid {pid}, log {p.log})")
    return "started"


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return not _alive(pid)


def stop(broker: str, settings: Settings | None = None, *, crash: bool = False,
         echo: Callable[[str], None] = print) -> str:
    """Stop a broker we started (gracefully, or `crash=True`: SIGKILL, as a power cut)."""
    settings = settings or get_settings()
    p = paths(broker, settings)
    pid = managed_pid(broker, settings)
    if pid is None:
        p.pid.unlink(missing_ok=True)
        if check(broker, settings, timeout=2.0).ok:
            echo(f"{broker:9} is running but was not started here: left alone")
            return "not-ours"
        echo(f"{broker:9} not running")
        return "not-running"
    if crash:
        _kill_group(pid, signal.SIGKILL)
    else:
        if broker == "rabbitmq":
            try:
                rabbitmqctl("stop", timeout=STOP_TIMEOUT[broker])
            except subprocess.TimeoutExpired:
                pass
        _kill_group(pid, signal.SIGTERM)
    if not _wait_gone(pid, STOP_TIMEOUT[broker]):
        _kill_group(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)
    _kill_group(pid, signal.SIGKILL)  # anything left in its process group
    p.pid.unlink(missing_ok=True)
    if broker == "rabbitmq":
        stop_idle_epmd()
    echo(f"{broker:9} {'killed' if crash else 'stopped'} (pid {pid})")
    return "stopped"


def stop_idle_epmd() -> None:
    """Stop Erlang's port mapper once no node is registered with it (RabbitMQ starts it
    and leaves it running; with no node left it serves nothing)."""
    epmd = shutil.which("epmd")
    if not epmd or not _port_open("127.0.0.1", 4369):
        return
    names = subprocess.run([epmd, "-names"], capture_output=True, text=True, timeout=10)
    if names.returncode == 0 and "name " not in names.stdout:
        subprocess.run([epmd, "-kill"], capture_output=True, timeout=10)


def restart(broker: str, settings: Settings | None = None, *, crash: bool = False,
            echo: Callable[[str], None] = print) -> None:
    """Stop and start a broker this launcher runs, keeping its data (the durability demos).

    Under docker compose (or any broker not started here) it raises LauncherError with
    the command to run instead; lessons catch that and wait for the broker to come back.
    """
    settings = settings or get_settings()
    if not is_managed(broker, settings):
        raise LauncherError(
            f"{broker} at {settings.display_url(broker)} was not started by this course's "
            f"launcher, so it cannot be restarted from here. Restart it yourself, e.g. "
            f"`docker compose restart {broker}`."
        )
    stop(broker, settings, crash=crash, echo=echo)
    start(broker, settings, fresh_config=False, echo=echo)


@dataclass(frozen=True)
class Status:
    broker: str
    state: str  # "running (ours)", "running (not ours)", "stopped"
    address: str
    pid: int | None
    log: Path


def status(settings: Settings | None = None) -> list[Status]:
    settings = settings or get_settings()
    rows = []
    for broker in BROKERS:
        pid = managed_pid(broker, settings)
        ok = check(broker, settings, timeout=2.0).ok
        state = ("running (ours)" if pid else "running (not ours)") if ok else (
            "starting or hung" if pid else "stopped")
        rows.append(Status(broker, state, settings.display_url(broker), pid,
                           paths(broker, settings).log))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brokerlab", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "restart", "fetch-kafka"])
    parser.add_argument("brokers", nargs="*", help=f"any of {', '.join(BROKERS)} (default: all)")
    parser.add_argument("--crash", action="store_true", help="stop/restart with SIGKILL")
    args = parser.parse_args(argv)
    brokers = args.brokers or list(BROKERS)
    unknown = [b for b in brokers if b not in BROKERS]
    if unknown:
        parser.error(f"unknown broker(s) {unknown}; expected any of {', '.join(BROKERS)}")
    failures = 0
    try:
        if args.command == "fetch-kafka":
            print(fetch_kafka())
            return 0
        if args.command == "status":
            for row in status():
                print(f"{row.broker:9} {row.state:19} {row.address:40} log: {row.log}")
            return 0
        for broker in brokers:
            try:
                if args.command == "start":
                    start(broker)
                elif args.command == "stop":
                    stop(broker, crash=args.crash)
                else:
                    restart(broker, crash=args.crash)
            except LauncherError as exc:
                failures += 1
                print(f"\nFAILED: {broker}: {exc}\n", file=sys.stderr)
    except LauncherError as exc:
        print(f"\nFAILED: {exc}\n", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The single-node brokers the lessons use (`make brokers`), natively, without Docker.

Each broker runs as the current user, root or not, under <state_dir>/<broker> (data,
log, pid file), on the ports its URL in Settings names, so CI, Binder's notebook user and
a laptop work the same way, and a throw-away instance can run beside the course's:

- Redis: Debian's redis-server on REDIS_URL's port, persistence off (as Redis ships).
- RabbitMQ: Debian's rabbitmq-server through /usr/lib/rabbitmq/bin (the /usr/sbin wrapper
  refuses non-root users): AMQP on RABBITMQ_URL's port, the management UI on
  RABBITMQ_MANAGEMENT_URL's, Erlang distribution on AMQP + 20000; a node name fixed per
  port, so durable queues survive a restart.
- Kafka: Apache Kafka's own jars from Maven Central (kafka/pom.xml pins the version), one
  KRaft node on KAFKA_BOOTSTRAP_SERVERS's port, its controller on the next port.

A broker that already answers is reused and never stopped by us. The Kafka helpers
(properties, storage format, command line) serve the clusters too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from brokerlab.backstage import process
from brokerlab.backstage.process import LauncherError, Place
from brokerlab.health import check, port_open
from brokerlab.settings import Settings, default_cache_dir, get_settings

BROKERS = ("redis", "rabbitmq", "kafka")
JAR_POMS = Path(__file__).parent  # <name>/pom.xml pins each tool's jars
POM = JAR_POMS / "kafka" / "pom.xml"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
READY_TIMEOUT = {"redis": 15.0, "rabbitmq": 60.0, "kafka": 60.0}
FORMAT_STAMP = "brokerlab format 2"


def place(broker: str, settings: Settings) -> Place:
    if broker not in BROKERS:
        raise LauncherError(f"unknown broker {broker!r}; expected one of {', '.join(BROKERS)}")
    return Place(broker, settings.state_dir / broker)


def redis_port(settings: Settings) -> int:
    return process.port_of(settings.redis_url, 6379)


def kafka_port(settings: Settings) -> int:
    return process.port_of(settings.kafka_bootstrap_servers[0], 9092)


def rabbitmq_ports(settings: Settings) -> tuple[int, int, int]:
    """AMQP, management and Erlang distribution ports."""
    amqp = process.port_of(settings.rabbitmq_url, 5672)
    return amqp, process.port_of(settings.rabbitmq_management_url, 15672), amqp + 20000


def rabbitmq_node(settings: Settings) -> str:
    """rabbit@localhost for the course's port; a second instance needs another name."""
    amqp = rabbitmq_ports(settings)[0]
    return "rabbit@localhost" if amqp == 5672 else f"rabbit{amqp}@localhost"


# ---------------------------------------------------------------- RabbitMQ


def rabbitmq_node_env(root: Path, node: str, ports: tuple[int, int, int], *, watermark: str,
                      schedulers: str, extra_conf: str = "",
                      stream_port: int | None = None, plain: bool = True) -> dict[str, str]:
    """Config files and environment that run one RabbitMQ node as any user from `root`
    (the course's node here, and each cluster node). With `stream_port` the node also
    speaks the stream protocol (07.04), advertising 127.0.0.1 so clients reach it.
    `plain=False` leaves out the plain AMQP and HTTP listeners (and the environment
    variables that would add one back): `extra_conf` then names the TLS ones (classroom)."""
    amqp, management, dist = ports
    root.mkdir(parents=True, exist_ok=True)
    plugins = ["rabbitmq_management"]
    if stream_port is not None:
        plugins.append("rabbitmq_stream")
        extra_conf += (f"stream.listeners.tcp.default = 127.0.0.1:{stream_port}\n"
                       "stream.advertised_host = 127.0.0.1\n"
                       f"stream.advertised_port = {stream_port}\n")
    conf = root / "rabbitmq.conf"
    listeners = (f"listeners.tcp.default = 127.0.0.1:{amqp}\n"
                 f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management}\n")
    conf.write_text(
        "# Written by brokerlab\n" + (listeners if plain else "") +
        # Small enough for Binder's 2 GB; the broker blocks publishers above this.
        f"vm_memory_high_watermark.absolute = {watermark}\n"
        "disk_free_limit.absolute = 50MB\n" + extra_conf
    )
    (root / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
    (root / "rabbitmq-env.conf").write_text("# brokerlab: no overrides\n")
    env = dict(
        os.environ,
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
    if not plain:  # RabbitMQ turns these two into a plain TCP listener
        env.pop("RABBITMQ_NODE_IP_ADDRESS")
        env.pop("RABBITMQ_NODE_PORT")
    return env


def rabbitmq_env(settings: Settings) -> dict[str, str]:
    return rabbitmq_node_env(place("rabbitmq", settings).root, rabbitmq_node(settings),
                             rabbitmq_ports(settings), watermark="512MB",
                             schedulers="+S 2:2 +A 8",
                             stream_port=process.port_of(settings.rabbitmq_stream_url, 5552))


def rabbitmqctl(node: str, env: dict[str, str], *args: str,
                timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RABBITMQCTL), "-n", node, *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def stop_idle_epmd() -> None:
    """Stop Erlang's port mapper once no node is registered with it (RabbitMQ starts it
    and leaves it running; with no node left it serves nothing)."""
    epmd = shutil.which("epmd")
    if not epmd or not port_open("127.0.0.1", 4369):
        return
    names = subprocess.run([epmd, "-names"], capture_output=True, text=True, timeout=10)
    if names.returncode == 0 and "name " not in names.stdout:
        subprocess.run([epmd, "-kill"], capture_output=True, timeout=10)


# ---------------------------------------------------------------- Kafka (also the clusters')


def kafka_version() -> str:
    """The pinned Kafka version: the single source is kafka/pom.xml beside this module."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not match:
        raise LauncherError(f"no <kafka.version> in {POM}")
    return match.group(1)


def jar_dir(name: str) -> Path:
    """The jars of `<name>/pom.xml` beside this module, cached outside the state folder
    (survives `rm -rf state`), one folder per pom: a changed pin fetches anew.
    brokerlab.bench.find_jars finds them by the same `<name>-*/lib` pattern."""
    pom = JAR_POMS / name / "pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    version = kafka_version() if name == "kafka" else "pinned"
    return default_cache_dir() / f"{name}-{version}-{digest}" / "lib"


JARS = {"kafka": "Apache Kafka's", "perftest": "RabbitMQ PerfTest's"}


def fetch_jars(name: str, echo: Callable[[str], None] = print) -> Path:
    """Download the jars `<name>/pom.xml` pins with Maven (once; ~/.m2 caches them too)."""
    lib = jar_dir(name)
    if (lib / ".complete").exists():
        return lib
    what = JARS[name]
    mvn = process.require_binary("mvn", f"Maven (needed once to fetch {what} jars)")
    tmp = lib.with_name("lib.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    echo(f"fetching {what} jars from Maven Central into {lib} ...")
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(JAR_POMS / name / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"],
        capture_output=True, text=True, timeout=900,
    )
    if result.returncode != 0:
        raise LauncherError(f"Maven could not fetch {what} jars (is Maven Central reachable?):\n"
                            + (result.stdout + result.stderr)[-2000:])
    shutil.rmtree(lib, ignore_errors=True)
    tmp.rename(lib)
    (lib / ".complete").write_text(name + "\n")
    return lib


def kafka_properties(node_id: int, port: int, controller: int, data: Path,
                     overrides: dict[str, object]) -> str:
    """server.properties of one KRaft node, broker and controller in one process;
    `overrides` add or replace keys (quorum, replication)."""
    values: dict[str, object] = {
        "process.roles": "broker,controller", "node.id": node_id,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": data, "auto.create.topics.enable": "true",
        # No 3-second wait before the first rebalance of a new group (lessons stay snappy).
        "group.initial.rebalance.delay.ms": 0,
        "log.cleaner.dedupe.buffer.size": 4194304, "log.segment.bytes": 16777216,
        "num.network.threads": 2, "num.io.threads": 2, "background.threads": 2,
        **overrides,
    }
    return "# Written by brokerlab\n" + "".join(f"{k}={v}\n" for k, v in values.items())


LOG4J2 = """\
# Written by brokerlab: Kafka's own log to stdout (our broker.log), INFO and up.
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


def java() -> str:
    found = process.require_binary("java", "Java 17 (for Kafka)")
    out = subprocess.run([found, "-version"], capture_output=True, text=True,
                         timeout=30).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < 17:
        raise LauncherError(f"Kafka {kafka_version()} needs Java 17 or newer; found: {out.strip()}")
    return found


def kafka_argv(where: Place, properties: str, *, cluster_id: str, standalone: bool,
               heap: str, secret_format_args: Sequence[str] = ()) -> list[str]:
    """Write Kafka's files at `where`, format its storage when needed, return its command.

    The storage is formatted once per stamp (Kafka version + properties): a state folder
    from another version or config must never break the next start, so it is wiped and
    reformatted. Folders stamped by the launcher before this one are adopted as they are.
    `secret_format_args` (e.g. `--add-scram` with a password) reach the format tool through
    a java @argfile readable by this user only, never on a command line others can read.
    """
    java_bin, lib = java(), fetch_jars("kafka")  # fetched when missing
    where.root.mkdir(parents=True, exist_ok=True)
    props, log4j = where.root / "server.properties", where.root / "log4j2.properties"
    props.write_text(properties)
    log4j.write_text(LOG4J2)
    body = "".join(sorted(line + "\n" for line in properties.splitlines()
                          if line and not line.startswith("#")))
    stamp = f"{FORMAT_STAMP} {hashlib.sha256(f'{kafka_version()}{body}'.encode()).hexdigest()}"
    stamp_file, data = where.root / "format.stamp", where.root / "data"
    old = stamp_file.read_text().strip() if stamp_file.exists() else ""
    formatted = (data / "meta.properties").exists()
    if formatted and old and not old.startswith(FORMAT_STAMP):
        stamp_file.write_text(stamp + "\n")  # formatted by the previous launcher: keep
    elif not formatted or old != stamp:
        shutil.rmtree(data, ignore_errors=True)
        # java reads @argfiles only before the main class: the class and its arguments go in.
        tool = ["kafka.tools.StorageTool", "format", *(["--standalone"] if standalone else []),
                "-t", cluster_id, "-c", str(props), *secret_format_args]
        argfile = where.root / "format.args"
        fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f'"{arg}"\n' for arg in tool))
        try:
            result = subprocess.run(
                [java_bin, "-Xmx128m", "-cp", f"{lib}/*",
                 f"-Dlog4j2.configurationFile={log4j}", f"@{argfile}"],
                capture_output=True, text=True, timeout=120,
            )
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise LauncherError(f"{where.name}: Kafka storage format failed:\n"
                                + (result.stdout + result.stderr)[-2000:])
        stamp_file.write_text(stamp + "\n")
    return [java_bin, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseSerialGC",
            "-XX:MaxMetaspaceSize=96m", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={where.root / 'logs'}",
            "-cp", f"{lib}/*", "kafka.Kafka", str(props)]


def forget_kafka_storage(where: Place) -> None:
    shutil.rmtree(where.root / "data", ignore_errors=True)
    (where.root / "format.stamp").unlink(missing_ok=True)


def kafka_single_node(controller_port: int) -> dict[str, object]:
    """The overrides of a one-node KRaft broker (the course's, the classroom's)."""
    return {
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        # One node: internal topics with one replica and one partition (small and fast).
        "num.partitions": 1, "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 1, "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1, "transaction.state.log.num.partitions": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "share.coordinator.state.topic.num.partitions": 1,
    }


def new_cluster_id() -> str:
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cluster_id.replace("-", "x")


def _kafka_single_argv(settings: Settings) -> list[str]:
    where, port = place("kafka", settings), kafka_port(settings)
    properties = kafka_properties(1, port, port + 1, where.root / "data",
                                  kafka_single_node(port + 1))
    return kafka_argv(where, properties, cluster_id=new_cluster_id(),
                      standalone=True, heap=os.environ.get("BROKERLAB_KAFKA_HEAP", "256m"))


# ---------------------------------------------------------------- Redis


def _redis_argv(settings: Settings, fresh_config: bool) -> list[str]:
    server = process.require_binary("redis-server", "Redis")
    root = place("redis", settings).root
    conf, data = root / "redis.conf", root / "data"
    data.mkdir(parents=True, exist_ok=True)
    if fresh_config or not conf.exists():
        # Notebooks may change persistence with CONFIG SET + CONFIG REWRITE; a restart
        # from a notebook keeps that, `make brokers` starts from these defaults.
        conf.write_text(
            "# Written by brokerlab; CONFIG REWRITE may change it.\n"
            f"bind 127.0.0.1\nport {redis_port(settings)}\nprotected-mode yes\ndaemonize no\n"
            f'dir "{data}"\nsave ""\nappendonly no\n'
            "maxmemory 256mb\nmaxmemory-policy noeviction\n"
        )
    return [server, str(conf)]


# ---------------------------------------------------------------- start / stop


def is_managed(broker: str, settings: Settings | None = None) -> bool:
    """True if this launcher runs `broker` here (so it may restart it)."""
    return process.managed_pid(place(broker, settings or get_settings())) is not None


def _spawn_and_wait(broker: str, settings: Settings, fresh_config: bool) -> tuple[int, float]:
    where = place(broker, settings)
    if broker == "redis":
        pid = process.spawn(where, _redis_argv(settings, fresh_config), dict(os.environ))
    elif broker == "rabbitmq":
        process.require_binary(str(RABBITMQ_SERVER), "RabbitMQ")
        pid = process.spawn(where, [str(RABBITMQ_SERVER)], rabbitmq_env(settings))
    else:
        pid = process.spawn(where, _kafka_single_argv(settings), dict(os.environ))
    seconds = process.wait_ready(
        broker, lambda: check(broker, settings, timeout=3.0, deep=True).ok,
        READY_TIMEOUT[broker], [where])
    return pid, seconds


def start(broker: str, settings: Settings | None = None, *, fresh_config: bool = True,
          echo: Callable[[str], None] = print) -> str:
    """Start one broker unless it already answers; wait (bounded) until it really serves."""
    settings = settings or get_settings()
    where = place(broker, settings)
    if check(broker, settings, timeout=3.0).ok:
        how = "started by this launcher" if is_managed(broker, settings) else "not ours: reused"
        echo(f"{broker:9} already running at {settings.display_url(broker)} ({how})")
        return "reused"
    if process.managed_pid(where) is not None:
        # Ours but not answering (hung, or still booting from an earlier call): replace it.
        stop(broker, settings, echo=echo)
    ports = {"redis": [redis_port(settings)], "rabbitmq": list(rabbitmq_ports(settings)),
             "kafka": [kafka_port(settings), kafka_port(settings) + 1]}[broker]
    process.require_free(broker, ports)
    try:
        pid, seconds = _spawn_and_wait(broker, settings, fresh_config)
    except LauncherError as exc:
        if broker != "kafka" or process.managed_pid(where) is not None:
            raise
        # A Kafka log folder left by an earlier run (another cluster id, a half-written
        # format, a crash mid-write) must not block the course: reformat once and retry.
        echo(f"kafka     could not start on its old data ({str(exc).splitlines()[0]}); "
             f"reformatting {where.root / 'data'} and retrying")
        forget_kafka_storage(where)
        pid, seconds = _spawn_and_wait(broker, settings, fresh_config)
    echo(f"{broker:9} started at {settings.display_url(broker)} in {seconds:.1f} s "
         f"(pid {pid}, log {where.log})")
    return "started"


def stop(broker: str, settings: Settings | None = None, *, crash: bool = False,
         echo: Callable[[str], None] = print) -> str:
    """Stop a broker we started (gracefully, or `crash=True`: SIGKILL, as a power cut)."""
    settings = settings or get_settings()
    pid = process.stop(place(broker, settings), crash=crash)
    if pid is None:
        if check(broker, settings, timeout=2.0).ok:
            echo(f"{broker:9} is running but was not started here: left alone")
            return "not-ours"
        echo(f"{broker:9} not running")
        return "not-running"
    if broker == "rabbitmq":
        stop_idle_epmd()
    echo(f"{broker:9} {'killed' if crash else 'stopped'} (pid {pid})")
    return "stopped"


def restart(broker: str, settings: Settings | None = None, *, crash: bool = False,
            echo: Callable[[str], None] = print) -> float:
    """Stop and start a broker this launcher runs, keeping its data; return the seconds
    until it answered a real round trip again."""
    settings = settings or get_settings()
    if not is_managed(broker, settings):
        raise LauncherError(
            f"{broker} at {settings.display_url(broker)} was not started by this course's "
            f"launcher, so it cannot be restarted from here. Restart it yourself, e.g. "
            f"`docker compose restart {broker}`."
        )
    started = time.monotonic()
    stop(broker, settings, crash=crash, echo=echo)
    start(broker, settings, fresh_config=False, echo=echo)
    return time.monotonic() - started


def status(settings: Settings | None = None) -> list[process.Status]:
    settings = settings or get_settings()
    rows = []
    for broker in BROKERS:
        where = place(broker, settings)
        pid = process.managed_pid(where)
        ok = check(broker, settings, timeout=2.0).ok
        state = ("running (ours)" if pid else "running (not ours)") if ok else (
            "starting or hung" if pid else "stopped")
        rows.append(process.Status(broker, state, settings.display_url(broker), pid, where.log))
    return rows

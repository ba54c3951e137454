"""Where the brokers are: one frozen object read from environment variables.

Every address has a localhost default, so the course runs on a laptop as it is, and
the same notebooks run against a classroom or cloud cluster by setting variables:

    RABBITMQ_URL             amqp://guest:guest@127.0.0.1:5672/%2F   (amqps:// for TLS)
    RABBITMQ_MANAGEMENT_URL  http://127.0.0.1:15672                  (the management UI)
    RABBITMQ_STREAM_URL      rabbitmq-stream://guest:guest@127.0.0.1:5552/%2F (streams, 07.04)
    REDIS_URL                redis://127.0.0.1:6379/0                (rediss:// for TLS)
    KAFKA_BOOTSTRAP_SERVERS  127.0.0.1:9092                          (comma-separated)
    KAFKA_SECURITY_PROTOCOL  PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    KAFKA_SASL_MECHANISM     PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE
    COURSE_NAMESPACE         a prefix for every queue/topic/key, e.g. a student's login
    Clusters (module 04; `make cluster` starts them natively on these addresses):
    KAFKA_CLUSTER_BOOTSTRAP_SERVERS  127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094
    RABBITMQ_CLUSTER_URLS    amqp://guest:guest@127.0.0.1:5673/%2F,...:5674/..,...:5675/..
    RABBITMQ_CLUSTER_MANAGEMENT_URLS  http://127.0.0.1:15673,...:15674,...:15675
    REDIS_CLUSTER_NODES      127.0.0.1:6380,127.0.0.1:6381,127.0.0.1:6382 (primary first)
    REDIS_SENTINELS          127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381
    REDIS_SENTINEL_MASTER    course
    BROKERLAB_STATE_DIR      where the natively started brokers keep data and logs
    Faults (how a lesson restarts a broker or kills a node where the course's launcher
    does not run it; docker compose sets these; placeholders {broker}, {node}, {mode}):
    BROKERLAB_RESTART_COMMAND     e.g. docker compose restart {broker}
    BROKERLAB_KILL_NODE_COMMAND   e.g. docker compose -f ... kill {node}
    BROKERLAB_START_NODE_COMMAND  e.g. docker compose -f ... start {node}

Taught in 00.01 (welcome and setup check).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_RABBITMQ_MANAGEMENT_URL = "http://127.0.0.1:15672"
DEFAULT_RABBITMQ_STREAM_URL = "rabbitmq-stream://guest:guest@127.0.0.1:5552/%2F"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_KAFKA_CLUSTER = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
DEFAULT_RABBITMQ_CLUSTER = ",".join(
    f"amqp://guest:guest@127.0.0.1:{port}/%2F" for port in (5673, 5674, 5675))
DEFAULT_RABBITMQ_CLUSTER_MANAGEMENT = ",".join(
    f"http://127.0.0.1:{port}" for port in (15673, 15674, 15675))
DEFAULT_REDIS_CLUSTER_NODES = "127.0.0.1:6380,127.0.0.1:6381,127.0.0.1:6382"
DEFAULT_REDIS_SENTINELS = "127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381"

KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_NAMESPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class SettingsError(ValueError):
    """A setting has a value the course cannot use; the message says which and why."""


def default_state_dir() -> Path:
    """The folder for the native brokers' data and logs (never /var/lib: any user can run it)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "brokerlab"


def default_cache_dir() -> Path:
    """Downloaded jars (Kafka, PerfTest), kept outside the state folder: they survive
    `make clean-state`. BROKERLAB_CACHE_DIR moves it."""
    return Path(os.environ.get("BROKERLAB_CACHE_DIR") or Path.home() / ".cache" / "brokerlab")


@dataclass(frozen=True)
class Settings:
    """The course's connection settings. Build it with `Settings.from_env()`."""

    rabbitmq_url: str = DEFAULT_RABBITMQ_URL
    rabbitmq_management_url: str = DEFAULT_RABBITMQ_MANAGEMENT_URL
    rabbitmq_stream_url: str = DEFAULT_RABBITMQ_STREAM_URL
    redis_url: str = DEFAULT_REDIS_URL
    kafka_bootstrap_servers: tuple[str, ...] = (DEFAULT_KAFKA_BOOTSTRAP_SERVERS,)
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    kafka_ssl_cafile: str | None = None
    namespace: str = "course"
    state_dir: Path = field(default_factory=default_state_dir)
    kafka_cluster_bootstrap_servers: tuple[str, ...] = tuple(DEFAULT_KAFKA_CLUSTER.split(","))
    rabbitmq_cluster_urls: tuple[str, ...] = tuple(DEFAULT_RABBITMQ_CLUSTER.split(","))
    redis_sentinels: tuple[str, ...] = tuple(DEFAULT_REDIS_SENTINELS.split(","))
    redis_sentinel_master: str = "course"
    rabbitmq_cluster_management_urls: tuple[str, ...] = tuple(
        DEFAULT_RABBITMQ_CLUSTER_MANAGEMENT.split(","))
    redis_cluster_nodes: tuple[str, ...] = tuple(DEFAULT_REDIS_CLUSTER_NODES.split(","))
    restart_command: str | None = None
    kill_node_command: str | None = None
    start_node_command: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read the settings from `env` (default: os.environ) and validate them."""
        env = dict(os.environ if env is None else env)

        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        settings = cls(
            rabbitmq_url=get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL),
            rabbitmq_management_url=get("RABBITMQ_MANAGEMENT_URL", DEFAULT_RABBITMQ_MANAGEMENT_URL),
            rabbitmq_stream_url=get("RABBITMQ_STREAM_URL", DEFAULT_RABBITMQ_STREAM_URL),
            redis_url=get("REDIS_URL", DEFAULT_REDIS_URL),
            kafka_bootstrap_servers=tuple(
                s.strip()
                for s in get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_BOOTSTRAP_SERVERS).split(",")
                if s.strip()
            ),
            kafka_security_protocol=get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
            kafka_sasl_mechanism=env.get("KAFKA_SASL_MECHANISM") or None,
            kafka_sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
            kafka_sasl_password=env.get("KAFKA_SASL_PASSWORD") or None,
            kafka_ssl_cafile=env.get("KAFKA_SSL_CAFILE") or None,
            namespace=get("COURSE_NAMESPACE", "course").lower(),
            state_dir=Path(get("BROKERLAB_STATE_DIR", str(default_state_dir()))).expanduser(),
            kafka_cluster_bootstrap_servers=_split(
                get("KAFKA_CLUSTER_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_CLUSTER)),
            rabbitmq_cluster_urls=_split(get("RABBITMQ_CLUSTER_URLS", DEFAULT_RABBITMQ_CLUSTER)),
            redis_sentinels=_split(get("REDIS_SENTINELS", DEFAULT_REDIS_SENTINELS)),
            redis_sentinel_master=get("REDIS_SENTINEL_MASTER", "course"),
            rabbitmq_cluster_management_urls=_split(get(
                "RABBITMQ_CLUSTER_MANAGEMENT_URLS", DEFAULT_RABBITMQ_CLUSTER_MANAGEMENT)),
            redis_cluster_nodes=_split(get("REDIS_CLUSTER_NODES", DEFAULT_REDIS_CLUSTER_NODES)),
            restart_command=env.get("BROKERLAB_RESTART_COMMAND", "").strip() or None,
            kill_node_command=env.get("BROKERLAB_KILL_NODE_COMMAND", "").strip() or None,
            start_node_command=env.get("BROKERLAB_START_NODE_COMMAND", "").strip() or None,
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise SettingsError naming the variable when a value cannot work."""
        if urlsplit(self.rabbitmq_url).scheme not in ("amqp", "amqps"):
            raise SettingsError(
                f"RABBITMQ_URL must start with amqp:// or amqps://, got {self.rabbitmq_url!r}"
            )
        if urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            raise SettingsError(
                f"REDIS_URL must start with redis://, rediss:// or unix://, got {self.redis_url!r}"
            )
        if not self.kafka_bootstrap_servers:
            raise SettingsError("KAFKA_BOOTSTRAP_SERVERS is empty; e.g. 127.0.0.1:9092")
        for server in self.kafka_bootstrap_servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                raise SettingsError(
                    f"KAFKA_BOOTSTRAP_SERVERS entries must be host:port, got {server!r}"
                )
        if self.kafka_security_protocol not in KAFKA_SECURITY_PROTOCOLS:
            raise SettingsError(
                "KAFKA_SECURITY_PROTOCOL must be one of "
                f"{', '.join(KAFKA_SECURITY_PROTOCOLS)}, got {self.kafka_security_protocol!r}"
            )
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise SettingsError(
                "KAFKA_SECURITY_PROTOCOL is SASL_*: set KAFKA_SASL_MECHANISM, "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD too"
            )
        if not _NAMESPACE_RE.match(self.namespace):
            raise SettingsError(
                "COURSE_NAMESPACE must be 1-32 characters of a-z, 0-9, '-' or '_', "
                f"starting with a letter or digit, got {self.namespace!r}"
            )

    def kafka_client_config(self) -> dict[str, object]:
        """Connection keyword arguments shared by every kafka-python client."""
        config: dict[str, object] = {
            "bootstrap_servers": list(self.kafka_bootstrap_servers),
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username
            config["sasl_plain_password"] = self.kafka_sasl_password
        if self.kafka_ssl_cafile:
            config["ssl_cafile"] = self.kafka_ssl_cafile
        return config

    def __repr__(self) -> str:
        # Never show passwords: settings get printed in notebooks and tracebacks.
        return (
            f"Settings(rabbitmq_url={redact(self.rabbitmq_url)!r}, "
            f"redis_url={redact(self.redis_url)!r}, "
            f"kafka_bootstrap_servers={self.kafka_bootstrap_servers!r}, "
            f"kafka_security_protocol={self.kafka_security_protocol!r}, "
            f"namespace={self.namespace!r}, state_dir={str(self.state_dir)!r})"
        )

    def display_url(self, broker: str) -> str:
        """The broker's address for messages, with any password hidden."""
        if broker == "rabbitmq":
            return redact(self.rabbitmq_url)
        if broker == "redis":
            return redact(self.redis_url)
        if broker == "kafka":
            return ",".join(self.kafka_bootstrap_servers)
        raise ValueError(f"unknown broker {broker!r}; expected rabbitmq, redis or kafka")


def redact(url: str) -> str:
    """Hide the password in a URL: amqp://guest:***@host:5672/ (safe to print)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def read_env_file(path: Path | str) -> dict[str, str]:
    """The KEY=VALUE lines of an env file, such as a classroom's `<login>.env` (comments,
    blanks, `export ` and shell quotes allowed); `Settings.from_env(read_env_file(p))`."""
    values: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def get_settings() -> Settings:
    """The settings from the current environment (re-read on every call: cheap)."""
    return Settings.from_env()

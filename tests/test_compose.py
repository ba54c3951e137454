"""Static checks of docker-compose.yml, the Dockerfile and the CI wrapper (no Docker needed).

What they guard: brokers published on 127.0.0.1 only, healthchecks that JupyterLab waits for,
durable data in named volumes, image versions that match what the lessons are written for
(Kafka = the pom's version, Redis 7.0 = Debian 12's, RabbitMQ 4.x), and Kafka's two
advertised listeners (a wrong advertised.listeners is the classic "no brokers available").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from brokerlab.backstage.single import kafka_version

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
WORKFLOW = ROOT / ".github" / "workflows" / "notebooks.yml"
BROKERS = ("rabbitmq", "redis", "kafka")
SERVICES = (*BROKERS, "jupyter")
DATA_DIRS = {
    "rabbitmq": "/var/lib/rabbitmq",
    "redis": "/data",
    "kafka": "/var/lib/kafka/data",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def image_tag(image: str) -> tuple[str, str]:
    """('rabbitmq', '4.1-management') from 'rabbitmq:4.1-management' (registry ports allowed)."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag at all (a ':' belonged to a registry port)
        return image, ""
    return name, tag


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, from either the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def published(service: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    """(host_ip, host_port, container_port) for each published port, short or long syntax."""
    rows: list[tuple[str | None, str, str]] = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            rows.append((port.get("host_ip"), str(port.get("published", "")),
                         str(port["target"])))
            continue
        spec = str(port).split("/", 1)[0]
        match = re.fullmatch(r"(?:(\[[^\]]+\]|[^:]+):)?(?:([^:]*):)?([^:]+)", spec)
        assert match, f"cannot parse port {port!r}"
        host_ip, host_port, container_port = match.groups()
        if host_port is None and host_ip is not None and not re.search(r"[.\[]", host_ip):
            host_ip, host_port = None, host_ip  # "HOST:CONTAINER" without an address
        rows.append((host_ip, host_port or "", container_port))
    return rows


def command_list(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command if isinstance(command, list) else command.split()


# ------------------------------------------------------------------- structure


def test_compose_spec_without_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the Compose spec has no `version:` key; drop it"


def test_all_services_exist(services: dict[str, dict[str, Any]]) -> None:
    missing = [name for name in SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks services {missing}"


@pytest.mark.parametrize("name", SERVICES)
def test_every_published_port_is_loopback_only(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    rows = published(services[name])
    assert rows, f"{name} publishes no port"
    for host_ip, host_port, container_port in rows:
        assert host_ip == "127.0.0.1", (
            f"{name}: port {container_port} is published on {host_ip or 'all interfaces'}; "
            "bind it to 127.0.0.1 so the brokers (guest/guest) are not on the LAN"
        )
        assert host_port == container_port, (
            f"{name}: host port {host_port} != container port {container_port}; the course's "
            "localhost defaults expect the usual ports"
        )


def test_expected_ports(services: dict[str, dict[str, Any]]) -> None:
    ports = {name: {row[1] for row in published(services[name])} for name in SERVICES}
    assert ports["rabbitmq"] == {"5672", "15672", "5552"}
    assert ports["redis"] == {"6379"}
    assert ports["kafka"] == {"9092"}
    assert ports["jupyter"] == {"8888"}


@pytest.mark.parametrize("name", BROKERS)
def test_every_broker_has_a_healthcheck(services: dict[str, dict[str, Any]], name: str) -> None:
    check = services[name].get("healthcheck") or {}
    assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in check, f"{name}'s healthcheck lacks {key}"


def test_healthchecks_use_the_brokers_own_tools(services: dict[str, dict[str, Any]]) -> None:
    def text(name: str) -> str:
        test = services[name]["healthcheck"]["test"]
        return " ".join(test) if isinstance(test, list) else test

    assert "rabbitmq-diagnostics -q ping" in text("rabbitmq")
    assert "redis-cli ping" in text("redis")
    kafka = text("kafka")
    assert "/opt/kafka/bin/" in kafka and "--bootstrap-server localhost:9092" in kafka


def test_jupyter_waits_for_healthy_brokers(services: dict[str, dict[str, Any]]) -> None:
    depends = services["jupyter"].get("depends_on") or {}
    assert isinstance(depends, dict), "use the long depends_on form with conditions"
    for broker in BROKERS:
        assert broker in depends, f"jupyter does not depend on {broker}"
        assert depends[broker].get("condition") == "service_healthy", (
            f"jupyter must wait for {broker} with condition: service_healthy"
        )


def test_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                source, kind = volume.get("source", ""), volume.get("type", "volume")
            else:
                source, kind = str(volume).split(":", 1)[0], "volume"
                if source.startswith((".", "/", "~", "$")):
                    kind = "bind"
            if kind == "volume":
                assert source in declared, f"{name}: volume {source!r} is not declared"


@pytest.mark.parametrize("name", BROKERS)
def test_broker_data_is_in_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], name: str
) -> None:
    declared = set(compose.get("volumes") or {})
    mounts = {}
    for volume in services[name].get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        mounts[rest.split(":", 1)[0]] = source
    target = DATA_DIRS[name]
    assert mounts.get(target) in declared, f"{name}: {target} is not a named volume"


def test_rabbitmq_has_a_fixed_hostname(services: dict[str, dict[str, Any]]) -> None:
    # The node name is rabbit@<hostname> and the data folder is named after it: a random
    # container hostname would start an empty node after each container re-creation.
    assert services["rabbitmq"].get("hostname") == "rabbitmq"


def test_jupyter_is_built_never_pulled(services: dict[str, dict[str, Any]]) -> None:
    # With both image: and build:, Compose pulls first unless told the image is built here.
    assert services["jupyter"].get("pull_policy") == "build"


def test_jupyter_runs_as_your_uid_and_the_readme_says_how(
        services: dict[str, dict[str, Any]]) -> None:
    args = services["jupyter"]["build"]["args"]
    assert args == {"NB_UID": "${NB_UID:-1000}", "NB_GID": "${NB_GID:-1000}"}
    for path in (COMPOSE, ROOT / "README.md"):
        text = path.read_text()
        assert "NB_UID" in text and "id -u" in text, f"{path.name} should say how to set NB_UID"


def test_jupyter_bind_mounts_the_repo(services: dict[str, dict[str, Any]]) -> None:
    jupyter = services["jupyter"]
    build = jupyter.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    assert context == ".", "jupyter must be built from the repo's Dockerfile"
    assert ".:/course" in [str(v) for v in jupyter.get("volumes") or []]


# ------------------------------------------------------------------- versions


def test_kafka_image_matches_the_pom(services: dict[str, dict[str, Any]]) -> None:
    name, tag = image_tag(services["kafka"]["image"])
    assert name == "apache/kafka"
    assert tag == kafka_version(), (
        f"docker-compose.yml runs Kafka {tag}, the native launcher {kafka_version()} "
        "(src/brokerlab/backstage/kafka/pom.xml): change both together"
    )


def test_redis_is_a_pinned_8x_image(services: dict[str, dict[str, Any]]) -> None:
    name, tag = image_tag(services["redis"]["image"])
    assert name == "redis"
    assert re.fullmatch(r"8\.\d+(\.\d+)?", tag), (
        f"redis:{tag}: expected a pinned 8.x release line (versions.toml [compose])"
    )


def test_rabbitmq_is_a_4x_management_image(services: dict[str, dict[str, Any]]) -> None:
    name, tag = image_tag(services["rabbitmq"]["image"])
    assert name == "rabbitmq"
    assert re.fullmatch(r"4(\.\d+){0,2}-management(-alpine)?", tag), (
        f"rabbitmq:{tag}: expected a pinned 4.x management image, e.g. 4.3-management"
    )


def test_redis_starts_without_persistence(services: dict[str, dict[str, Any]]) -> None:
    command = command_list(services["redis"])
    assert command[:1] == ["redis-server"]
    if command[1:] == ["/data/redis.conf"]:
        # From a config file (so 02.04's CONFIG REWRITE has one), copied into the data volume.
        assert ("./compose/redis.conf:/usr/local/etc/redis/redis.conf:ro"
                in services["redis"]["volumes"])
        text = (ROOT / "compose" / "redis.conf").read_text()
        pairs = dict(line.strip().split(" ", 1) for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))
        pairs = {f"--{key}": value.strip('"') for key, value in pairs.items()}
    else:
        pairs = dict(zip(command[1::2], command[2::2], strict=False))
    assert pairs.get("--save") == "", "redis must start with save \"\" (as natively)"
    assert pairs.get("--appendonly") == "no", "redis must start with appendonly no"


# ------------------------------------------------------------------- addresses


def test_jupyter_reaches_brokers_by_service_name(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["jupyter"])
    assert urlsplit(env["RABBITMQ_URL"]).hostname == "rabbitmq"
    assert urlsplit(env["RABBITMQ_URL"]).port == 5672
    assert urlsplit(env["RABBITMQ_MANAGEMENT_URL"]).hostname == "rabbitmq"
    assert urlsplit(env["RABBITMQ_STREAM_URL"]).hostname == "rabbitmq"
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert "COURSE_NAMESPACE" in env


def test_kafka_listeners(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["kafka"])
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "localhost:9092" in advertised, "the host must be told localhost:9092"
    assert "kafka:19092" in advertised, "containers must be told kafka:19092"

    def by_name(value: str) -> dict[str, str]:
        return dict(item.split("://", 1) for item in value.split(","))

    listeners = by_name(env["KAFKA_LISTENERS"])
    protocols = dict(item.split(":", 1) for item in
                     env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    for name, address in by_name(advertised).items():
        assert name in listeners, f"advertised listener {name} is not in KAFKA_LISTENERS"
        assert name in protocols, f"listener {name} has no security protocol"
        port = address.rsplit(":", 1)[1]
        assert listeners[name].endswith(f":{port}"), (
            f"{name} is advertised on port {port} but listens on {listeners[name]}"
        )
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_NODE_ID"] == "1"


def test_kafka_is_sized_for_one_small_node(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["kafka"])
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
                "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS",
                "KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS",
                "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_NUM_PARTITIONS"):
        assert env.get(key) == "1", f"{key} must be 1 on a single node"
    assert env.get("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS") == "0"
    assert env.get("KAFKA_LOG_DIRS") == DATA_DIRS["kafka"]
    assert "-Xmx256m" in env.get("KAFKA_HEAP_OPTS", "")


# ------------------------------------------------------------------- image and CI


def test_dockerfile_is_slim_non_root_and_broker_free() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^FROM python:(3\.\d+)\.\d+-slim-[a-z]+\s*$", text, re.M)
    assert base, "pin the base to a patch and a Debian release: python:3.11.N-slim-bookworm"
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert runtime == f"python-{base.group(1)}", "the image and Binder should run the same Python"
    assert re.search(r"^COPY requirements\.txt /tmp/requirements\.txt$", text, re.M), (
        "the image installs the learner's requirements only (no test tools)")
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), "JupyterLab must not run as root"
    assert re.search(r"^WORKDIR /course\b", text, re.M)
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"redis-server|rabbitmq-server|openjdk|kafka", code, re.I), (
        "the brokers run in their own containers; keep them out of the JupyterLab image"
    )
    assert "--IdentityProvider.token=" in text and "JUPYTER_TOKEN" in text


def test_dockerignore_keeps_the_context_small() -> None:
    entries = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".git", ".venv"} <= entries


def test_ci_workflow_runs_make_test_against_compose() -> None:
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    assert "notebooks" in workflow["jobs"]
    assert "docker compose up -d --wait" in text
    assert "make test BROKERS=external" in text
    assert "docker compose down -v" in text


def test_rabbitmq_runs_the_stream_plugin(services: dict[str, dict[str, Any]]) -> None:
    """07.04 speaks RabbitMQ's stream protocol: the plugin is enabled from a mounted file
    that keeps the image's own plugins."""
    mounts = [v for v in services["rabbitmq"]["volumes"]
              if v.endswith("/etc/rabbitmq/enabled_plugins:ro")]
    assert mounts, "mount compose/rabbitmq/enabled_plugins at /etc/rabbitmq/enabled_plugins"
    text = (ROOT / mounts[0].split(":")[0]).read_text()
    for plugin in ("rabbitmq_management", "rabbitmq_prometheus", "rabbitmq_stream"):
        assert plugin in text, f"{plugin} missing from {mounts[0].split(':')[0]}"

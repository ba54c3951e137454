"""Static checks of docker-compose.cluster.yml, the `cluster` profile (no Docker needed).

It must be the same clusters as the native launcher (src/brokerlab/backstage/clusters.py), so the
module 04 notebooks run unchanged against either: service names = node names, published
ports = the launcher's ports (on 127.0.0.1 only), Kafka's version = the pom's, the same
replication settings, RabbitMQ nodes that find each other, Redis with three Sentinels.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from brokerlab.backstage import clusters
from brokerlab.backstage.single import kafka_version
from brokerlab.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "docker-compose.yml"
CLUSTER = ROOT / "docker-compose.cluster.yml"
DEFAULTS = Settings()  # the launcher's default addresses
NODES = [n.name for n in clusters.nodes(settings=DEFAULTS)]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(CLUSTER.read_text())
    assert isinstance(data, dict), "docker-compose.cluster.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def base_services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(BASE.read_text())["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host_ip, host_port, container_port) of each published port (short syntax)."""
    rows = []
    for port in service.get("ports") or []:
        match = re.fullmatch(r"([\d.]+):(\d+):(\d+)(?:/tcp)?", str(port))
        assert match, f"write ports as HOST_IP:HOST:CONTAINER, got {port!r}"
        rows.append((match.group(1), int(match.group(2)), int(match.group(3))))
    return rows


def conf_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def native_redis_conf(name: str, tmp_path: Path) -> list[str]:
    settings = Settings(state_dir=tmp_path)
    return conf_lines(clusters.redis_conf(clusters.node(name, settings), settings).read_text())


# ------------------------------------------------------------------ structure


def test_no_version_key_and_extension_fields_only_at_the_top(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the Compose spec has no `version:` key"
    assert set(compose) <= {"services", "volumes", "configs"} | {
        k for k in compose if k.startswith("x-")}


def test_one_service_per_native_node_all_in_the_cluster_profile(
        services: dict[str, dict[str, Any]]) -> None:
    cluster_services = [name for name in services if name != "jupyter"]
    assert sorted(cluster_services) == sorted(NODES), (
        "service names must be the launcher's node names, so `kill <node>` is one command")
    for name in cluster_services:
        assert services[name].get("profiles") == ["cluster"], (
            f"{name} must be in the cluster profile")
        assert services[name].get("hostname") == name, (
            f"{name}: a fixed hostname equal to the service name (other nodes resolve it)")


def test_it_extends_docker_compose_yml_without_clashing(
        services: dict[str, dict[str, Any]], base_services: dict[str, dict[str, Any]]) -> None:
    clash = (set(services) & set(base_services)) - {"jupyter"}
    assert not clash, f"services also in docker-compose.yml: {clash}"
    base_ports = {row[1] for s in base_services.values() for row in published(s)}
    ours = {row[1] for name, s in services.items() if name != "jupyter" for row in published(s)}
    assert not base_ports & ours, f"host ports used twice: {base_ports & ours}"


@pytest.mark.parametrize("name", NODES)
def test_every_port_is_loopback_only_and_matches_the_launcher(
        services: dict[str, dict[str, Any]], name: str) -> None:
    node = clusters.node(name, DEFAULTS)
    rows = published(services[name])
    assert rows and all(ip == "127.0.0.1" for ip, _, _ in rows), (
        f"{name}: publish on 127.0.0.1 only (guest/guest must not be on the LAN): {rows}")
    host_ports = {host for _, host, _ in rows}
    if node.broker == "rabbitmq":
        amqp, management, _dist = clusters.rabbit_ports(node, DEFAULTS)
        assert host_ports == {amqp, management}
        assert {(h, c) for _, h, c in rows} == {(amqp, 5672), (management, 15672)}
    else:
        assert host_ports == {node.port}, (
            f"{name} should publish {node.port}, publishes {host_ports}")
        assert all(h == c for _, h, c in rows), (
            f"{name}: same port inside and outside (advertised and Sentinel-reported addresses)")


def test_ports_match_the_course_settings(services: dict[str, dict[str, Any]]) -> None:
    defaults = Settings()
    kafka = [int(s.rpartition(":")[2]) for s in defaults.kafka_cluster_bootstrap_servers]
    rabbit = [urlsplit(u).port for u in defaults.rabbitmq_cluster_urls]
    sentinels = [int(s.rpartition(":")[2]) for s in defaults.redis_sentinels]
    assert kafka == [published(services[f"kafka-{i}"])[0][1] for i in (1, 2, 3)]
    assert rabbit == [min(r[1] for r in published(services[f"rabbit-{i}"])) for i in (1, 2, 3)]
    assert sentinels == [published(services[f"sentinel-{i}"])[0][1] for i in (1, 2, 3)]


@pytest.mark.parametrize("name", NODES)
def test_every_node_has_a_healthcheck(services: dict[str, dict[str, Any]], name: str) -> None:
    check = services[name].get("healthcheck") or {}
    assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in check, f"{name}'s healthcheck lacks {key}"


def test_named_volumes_are_declared(compose: dict[str, Any],
                                    services: dict[str, dict[str, Any]]) -> None:
    used = {v.split(":", 1)[0] for s in services.values() for v in s.get("volumes") or []}
    assert used == set(compose.get("volumes") or {}), "declare exactly the volumes in use"
    assert len(used) == len(NODES), "one data volume per node"


# ------------------------------------------------------------------ versions


def test_images_match_the_native_and_single_node_versions(
        services: dict[str, dict[str, Any]], base_services: dict[str, dict[str, Any]]) -> None:
    for node in clusters.nodes(settings=DEFAULTS):
        image = services[node.name]["image"]
        if node.broker == "kafka":
            assert image == f"apache/kafka:{kafka_version()}", (
                f"{node.name}: keep the tag equal to <kafka.version> in the pom")
        elif node.broker == "rabbitmq":
            assert image == base_services["rabbitmq"]["image"]
        else:
            assert image == base_services["redis"]["image"]


# ------------------------------------------------------------------ Kafka


def kafka_env(services: dict[str, dict[str, Any]], i: int) -> dict[str, str]:
    return environment(services[f"kafka-{i}"])


def test_kafka_is_one_three_voter_quorum_in_combined_mode(
        services: dict[str, dict[str, Any]]) -> None:
    envs = [kafka_env(services, i) for i in (1, 2, 3)]
    assert [e["KAFKA_NODE_ID"] for e in envs] == ["1", "2", "3"]
    assert {e["KAFKA_PROCESS_ROLES"] for e in envs} == {"broker,controller"}
    assert {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs} == {
        "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert len({e["CLUSTER_ID"] for e in envs}) == 1, "the three brokers must share CLUSTER_ID"


@pytest.mark.parametrize("i", [1, 2, 3])
def test_kafka_advertises_localhost_to_the_host_and_its_name_inside(
        services: dict[str, dict[str, Any]], i: int) -> None:
    env = kafka_env(services, i)
    port = clusters.node(f"kafka-{i}", DEFAULTS).port
    assert f"PLAINTEXT_HOST://:{port}" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == (
        f"PLAINTEXT://kafka-{i}:9092,PLAINTEXT_HOST://localhost:{port}")


def test_kafka_replication_settings_equal_the_native_launcher(
        services: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    props = clusters.kafka_node_properties(clusters.node("kafka-1", settings), settings)
    native = dict(line.split("=", 1) for line in conf_lines(props))
    env = kafka_env(services, 1)
    keys = ["default.replication.factor", "min.insync.replicas",
            "unclean.leader.election.enable", "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
            "broker.session.timeout.ms", "broker.heartbeat.interval.ms",
            "replica.lag.time.max.ms", "num.partitions", "group.initial.rebalance.delay.ms"]
    for key in keys:
        variable = "KAFKA_" + key.upper().replace(".", "_")
        assert env.get(variable) == native[key], (
            f"{variable} is {env.get(variable)!r}, the native cluster uses {key}={native[key]}")
    assert native["default.replication.factor"] == "3" and native["min.insync.replicas"] == "2"


# ------------------------------------------------------------------ RabbitMQ


def test_rabbitmq_nodes_share_a_cookie_and_a_cluster_config(
        compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    # The cookie is a file (RABBITMQ_ERLANG_COOKIE is deprecated), as the image's docs say:
    # /var/lib/rabbitmq/.erlang.cookie, owned by the rabbitmq user, readable by it only.
    cookie_file = {"source": "rabbitmq-erlang-cookie", "target": "/var/lib/rabbitmq/.erlang.cookie",
                   "uid": "999", "gid": "999", "mode": 0o600}
    for i in (1, 2, 3):
        assert "RABBITMQ_ERLANG_COOKIE" not in environment(services[f"rabbit-{i}"])
        configs = services[f"rabbit-{i}"].get("configs") or []
        assert {"source": "rabbitmq-cluster",
                "target": "/etc/rabbitmq/conf.d/20-cluster.conf"} in configs
        assert cookie_file in configs
    assert len(compose["configs"]["rabbitmq-erlang-cookie"]["content"].strip()) >= 20
    lines = conf_lines(compose["configs"]["rabbitmq-cluster"]["content"])
    assert "cluster_formation.peer_discovery_backend = classic_config" in lines
    listed = sorted(line.split("=")[1].strip() for line in lines
                    if line.startswith("cluster_formation.classic_config.nodes."))
    assert listed == [f"rabbit@{services[f'rabbit-{i}']['hostname']}" for i in (1, 2, 3)]
    assert "cluster_partition_handling = pause_minority" in lines


def test_rabbitmq_members_map_to_node_names(services: dict[str, dict[str, Any]]) -> None:
    from brokerlab.rabbitmq import cluster_node_name as rabbit_node_name

    for i in (1, 2, 3):
        assert rabbit_node_name(f"rabbit@{services[f'rabbit-{i}']['hostname']}") == f"rabbit-{i}"


# ------------------------------------------------------------------ Redis and Sentinel


def redis_conf(services: dict[str, dict[str, Any]], name: str) -> list[str]:
    return conf_lines(environment(services[name])["NODE_CONF"])


def test_redis_nodes_write_their_config_and_run_under_the_entrypoint(
        compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    script = compose["x-redis"]["command"][0]
    assert "$$NODE_CONF" in script and "$$NODE_MODE" in script, (
        "escape $ as $$ so compose does not interpolate the shell's variables")
    assert "exec docker-entrypoint.sh redis-server /data/node.conf" in script
    for name in NODES:
        if clusters.node(name, DEFAULTS).broker == "redis":
            mode = environment(services[name])["NODE_MODE"]
            assert mode == ("--sentinel" if name.startswith("sentinel") else "")


@pytest.mark.parametrize("name", ["redis-primary", "redis-replica-1", "redis-replica-2"])
def test_redis_data_nodes(services: dict[str, dict[str, Any]], name: str, tmp_path: Path
                          ) -> None:
    lines = redis_conf(services, name)
    assert f"port {clusters.node(name, DEFAULTS).port}" in lines
    assert f"replica-announce-ip {name}" in lines
    replicaof = [line for line in lines if line.startswith("replicaof")]
    native = [line.replace("127.0.0.1", "redis-primary")
              for line in native_redis_conf(name, tmp_path) if line.startswith("replicaof")]
    assert replicaof == native, f"{name}: replicaof should follow the native launcher"
    for setting in ("appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction"):
        assert setting in lines and setting in native_redis_conf(name, tmp_path)


@pytest.mark.parametrize("i", [1, 2, 3])
def test_sentinels_watch_course_like_the_native_ones(
        services: dict[str, dict[str, Any]], i: int, tmp_path: Path) -> None:
    name = f"sentinel-{i}"
    lines = redis_conf(services, name)
    assert f"port {clusters.node(name, DEFAULTS).port}" in lines
    resolve = lines.index("sentinel resolve-hostnames yes")
    monitor = lines.index(f"sentinel monitor {DEFAULTS.redis_sentinel_master} redis-primary 6380 2")
    assert resolve < monitor, "resolve-hostnames must come before a monitor line naming a host"
    assert "sentinel announce-hostnames yes" in lines
    native = native_redis_conf(name, tmp_path)
    for line in native:
        if line.startswith(("sentinel down-after", "sentinel failover-timeout",
                            "sentinel parallel-syncs")):
            assert line in lines, f"{name} should have {line!r} as the native Sentinels"
    assert services[name]["depends_on"]["redis-primary"]["condition"] == "service_healthy"


# ------------------------------------------------------------------ JupyterLab


def test_jupyter_gets_the_cluster_addresses_inside_the_network(
        services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["jupyter"])
    settings = Settings.from_env(env)
    assert settings.kafka_cluster_bootstrap_servers == tuple(
        f"kafka-{i}:9092" for i in (1, 2, 3))
    assert [urlsplit(u).hostname for u in settings.rabbitmq_cluster_urls] == [
        f"rabbit-{i}" for i in (1, 2, 3)]
    assert {urlsplit(u).port for u in settings.rabbitmq_cluster_urls} == {5672}
    assert settings.redis_sentinels == tuple(
        f"sentinel-{i}:{clusters.node(f'sentinel-{i}', DEFAULTS).port}" for i in (1, 2, 3))
    assert settings.redis_sentinel_master == DEFAULTS.redis_sentinel_master
    assert set(services["jupyter"]) == {"environment"}, "only add variables to jupyter"

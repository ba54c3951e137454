"""The cluster launcher's generated configuration (pure; no broker started)."""

from pathlib import Path

import pytest

from brokerlab.backstage import clusters, single
from brokerlab.settings import Settings

SHIFTED = Settings.from_env({
    "KAFKA_CLUSTER_BOOTSTRAP_SERVERS": "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094",
    "RABBITMQ_CLUSTER_URLS": ",".join(
        f"amqp://guest:guest@127.0.0.1:{p}/%2F" for p in (6673, 6674, 6675)),
    "RABBITMQ_CLUSTER_MANAGEMENT_URLS": ",".join(
        f"http://127.0.0.1:{p}" for p in (16673, 16674, 16675)),
    "REDIS_CLUSTER_NODES": "127.0.0.1:7380,127.0.0.1:7381,127.0.0.1:7382",
    "REDIS_SENTINELS": "127.0.0.1:27379,127.0.0.1:27380,127.0.0.1:27381",
    "REDIS_SENTINEL_MASTER": "other",
})


def test_kafka_nodes_form_one_three_voter_quorum_with_safe_defaults(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    props = [clusters.kafka_node_properties(n, settings) for n in clusters.nodes("kafka", settings)]
    voters = {line for p in props for line in p.splitlines() if "quorum.voters" in line}
    assert voters == {
        "controller.quorum.voters=1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"}
    for p in props:
        assert "default.replication.factor=3" in p and "min.insync.replicas=2" in p
        assert "unclean.leader.election.enable=false" in p
    assert len({line for p in props for line in p.splitlines() if line.startswith("node.id")}) == 3


def test_node_names_and_ports_are_distinct_and_the_defaults_unchanged() -> None:
    settings = Settings()
    nodes = clusters.nodes(settings=settings)
    assert len(nodes) == 12
    assert len({n.name for n in nodes}) == len({n.port for n in nodes}) == 12
    assert [n.name for n in clusters.nodes("kafka", settings)] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [n.port for n in nodes] == [19092, 19093, 19094, 5673, 5674, 5675,
                                       6380, 6381, 6382, 26379, 26380, 26381]
    rabbit = clusters.nodes("rabbitmq", settings)
    assert [clusters.rabbit_node_name(n) for n in rabbit] == [
        "rabbit1@localhost", "rabbit2@localhost", "rabbit3@localhost"]
    assert clusters.rabbit_ports(rabbit[0], settings) == (5673, 15673, 25673)


def test_addresses_come_from_settings(tmp_path: Path) -> None:
    kafka = clusters.nodes("kafka", SHIFTED)
    assert [n.port for n in kafka] == [29092, 29093, 29094]
    assert clusters.ports(kafka[0], SHIFTED) == [29092, 29192]
    rabbit = clusters.nodes("rabbitmq", SHIFTED)
    assert clusters.rabbit_ports(rabbit[1], SHIFTED) == (6674, 16674, 26674)
    # A second cluster beside the course's needs its own Erlang node names.
    names = [clusters.rabbit_node_name(n) for n in rabbit]
    assert names == ["rabbit6673@localhost", "rabbit6674@localhost", "rabbit6675@localhost"]
    env = clusters.rabbit_env(rabbit[2], Settings.from_env({
        "BROKERLAB_STATE_DIR": str(tmp_path), "RABBITMQ_CLUSTER_URLS": ",".join(
            f"amqp://guest:guest@127.0.0.1:{p}/%2F" for p in (6673, 6674, 6675))}))
    conf = (tmp_path / "cluster" / "rabbit-3" / "rabbitmq.conf").read_text()
    assert "classic_config.nodes.1 = rabbit6673@localhost" in conf
    assert "stream" not in conf, "cluster nodes have no stream port; only the course node has"
    assert env["RABBITMQ_NODENAME"] == "rabbit6675@localhost"
    redis = Settings.from_env({
        "BROKERLAB_STATE_DIR": str(tmp_path), "REDIS_CLUSTER_NODES": "127.0.0.1:7380",
        "REDIS_SENTINELS": "127.0.0.1:27379", "REDIS_SENTINEL_MASTER": "other"})
    text = clusters.redis_conf(clusters.node("sentinel-1", redis), redis).read_text()
    assert "port 27379" in text and "sentinel monitor other 127.0.0.1 7380 2" in text


def test_single_node_ports_come_from_settings() -> None:
    settings = Settings.from_env({"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5772/%2F",
                                  "RABBITMQ_MANAGEMENT_URL": "http://127.0.0.1:15772"})
    assert single.rabbitmq_ports(settings) == (5772, 15772, 25772)
    assert single.rabbitmq_node(settings) == "rabbit5772@localhost"
    assert single.rabbitmq_node(Settings()) == "rabbit@localhost"
    assert single.rabbitmq_ports(Settings()) == (5672, 15672, 25672)


def test_the_single_node_speaks_the_stream_protocol_on_its_setting(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "BROKERLAB_STATE_DIR": str(tmp_path),
        "RABBITMQ_STREAM_URL": "rabbitmq-stream://guest:guest@127.0.0.1:5652/%2F"})
    env = single.rabbitmq_env(settings)
    conf = Path(env["RABBITMQ_CONFIG_FILE"]).read_text()
    assert "stream.listeners.tcp.default = 127.0.0.1:5652" in conf
    # Clients reconnect to the advertised address: it must be one they can reach.
    assert "stream.advertised_host = 127.0.0.1" in conf
    assert "stream.advertised_port = 5652" in conf
    plugins = Path(env["RABBITMQ_ENABLED_PLUGINS_FILE"]).read_text()
    assert plugins == "[rabbitmq_management,rabbitmq_stream].\n"


def test_a_cluster_started_while_none_of_its_nodes_runs_starts_empty(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A RabbitMQ cluster killed uncleanly waits for the node that stopped last; a whole
    start forgets the past run instead (and Sentinels forget their failovers)."""
    settings = Settings(state_dir=tmp_path)
    for n in clusters.nodes(settings=settings):
        root = n.place(settings).root
        (root / "mnesia").mkdir(parents=True)
        (root / "data").mkdir()
        (root / "redis.conf").write_text("sentinel monitor course 127.0.0.1 6381 2\n")
    running: set[str] = {"rabbit-2"}
    monkeypatch.setattr(clusters, "runs", lambda name, settings=None: name in running)
    monkeypatch.setattr(clusters, "answers", lambda n, settings, timeout=2.0: False)
    said: list[str] = []

    clusters._forget_past_runs("rabbitmq", settings, said.append)  # rabbit-2 still runs
    assert (tmp_path / "cluster" / "rabbit-1" / "mnesia").exists() and not said

    running.clear()
    clusters._forget_past_runs("rabbitmq", settings, said.append)
    clusters._forget_past_runs("redis", settings, said.append)
    for n in clusters.nodes(settings=settings):
        left = sorted(p.name for p in n.place(settings).root.iterdir())
        assert left == (["data", "mnesia", "redis.conf"] if n.broker == "kafka" else []), n
    assert said == ["rabbitmq cluster: no node was running; starting it empty",
                    "redis cluster: no node was running; starting it empty"]

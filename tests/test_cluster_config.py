"""The cluster launcher's generated configuration (pure; no broker started)."""

from pathlib import Path

from brokerlab import cluster


def test_kafka_nodes_form_one_three_voter_quorum_with_safe_defaults(tmp_path: Path) -> None:
    props = [cluster._kafka_props(i, tmp_path / str(i)) for i in (1, 2, 3)]
    voters = {line for p in props for line in p.splitlines() if "quorum.voters" in line}
    assert voters == {
        "controller.quorum.voters=1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"}
    for p in props:
        assert "default.replication.factor=3" in p and "min.insync.replicas=2" in p
        assert "unclean.leader.election.enable=false" in p
    assert len({line for p in props for line in p.splitlines() if line.startswith("node.id")}) == 3


def test_node_names_and_ports_are_distinct() -> None:
    nodes = cluster.nodes()
    assert len(nodes) == 12
    assert len({n.name for n in nodes}) == len({n.port for n in nodes}) == 12
    assert [n.name for n in cluster.nodes("kafka")] == ["kafka-1", "kafka-2", "kafka-3"]

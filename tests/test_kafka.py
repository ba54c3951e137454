"""Tests for the pure parts of brokerlab.kafka (no Kafka needed)."""

from __future__ import annotations

import doctest

import pytest

from brokerlab import kafka as kfk


def test_doctests() -> None:
    assert doctest.testmod(kfk).failed == 0


# Kafka's own UtilsTest.testMurmur2 vectors (signed 32-bit results of the Java client).
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "signed"), sorted(JAVA_MURMUR2.items()))
@pytest.mark.parametrize("partitions", [1, 3, 7, 12])
def test_partition_for_key_matches_the_java_client(key: bytes, signed: int,
                                                   partitions: int) -> None:
    # Java: Utils.toPositive(Utils.murmur2(key)) % numPartitions
    expected = (signed & 0x7FFFFFFF) % partitions
    assert kfk.partition_for_key(key, partitions) == expected


def test_partition_for_key_takes_text_as_utf8() -> None:
    assert kfk.partition_for_key("foobar", 5) == kfk.partition_for_key(b"foobar", 5)
    assert kfk.partition_for_key("zoë", 5) == kfk.partition_for_key("zoë".encode(), 5)


def test_partition_for_key_is_stable_and_in_range() -> None:
    keys = [f"customer-{i}" for i in range(200)]
    first = [kfk.partition_for_key(k, 6) for k in keys]
    assert first == [kfk.partition_for_key(k, 6) for k in keys]
    assert set(first) == set(range(6)), "200 keys should reach all 6 partitions"


def test_partition_for_key_refuses_zero_partitions() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        kfk.partition_for_key("a", 0)


@pytest.mark.parametrize(
    ("assignment", "partitions", "balanced"),
    [
        ({"a": [0, 1, 2]}, 3, True),
        ({"a": [0], "b": [1], "c": [2]}, 3, True),
        ({"a": [0, 2], "b": [1], "c": []}, 3, True),   # an idle member is fine
        ({"a": [0], "b": [1]}, 3, False),              # partition 2 unread
        ({"a": [0, 1], "b": [1, 2]}, 3, False),        # partition 1 read twice
        ({"a": [0, 1, 2, 3]}, 3, False),               # a partition that does not exist
        ({}, 3, False),
    ],
)
def test_is_balanced(assignment: dict[str, list[int]], partitions: int, balanced: bool) -> None:
    assert kfk.is_balanced(assignment, partitions) is balanced


@pytest.mark.parametrize(
    ("item", "split"),
    [
        ("v", (None, "v", None)),
        (b"v", (None, b"v", None)),
        (("k", "v"), ("k", "v", None)),
        (("k", "v", 1700000000000), ("k", "v", 1700000000000)),
        ((None, "v"), (None, "v", None)),
        (("k", None), ("k", None, None)),                # a tombstone
    ],
)
def test_items_to_send(item, split) -> None:
    assert kfk._split(item) == split


def test_fast_group_settings_are_consistent() -> None:
    fast = kfk.FAST_GROUP
    assert fast["session_timeout_ms"] >= 6000, "the broker refuses sessions under 6 s"
    assert fast["heartbeat_interval_ms"] * 3 <= fast["session_timeout_ms"]
    assert fast["max_poll_interval_ms"] >= fast["session_timeout_ms"]


def test_node_name() -> None:
    assert kfk.node_name(2) == "kafka-2"
    with pytest.raises(ValueError, match="unknown node"):
        kfk.node_name(7)


def test_cluster_settings_point_kafka_at_the_cluster() -> None:
    from brokerlab.settings import get_settings

    cluster = kfk.cluster_settings(get_settings())
    assert cluster.kafka_bootstrap_servers == get_settings().kafka_cluster_bootstrap_servers
    assert kfk.cluster_settings(cluster) == cluster, "pointing twice changes nothing"


class _FakeAdmin:
    def close(self) -> None:
        pass


def test_admin_call_waits_out_retriable_errors(monkeypatch) -> None:
    from kafka.errors import CoordinatorLoadInProgressError

    monkeypatch.setattr(kfk, "admin_at", lambda *a, **k: _FakeAdmin())
    answers = iter([CoordinatorLoadInProgressError(), CoordinatorLoadInProgressError(), "ok"])

    def call(_admin):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert kfk.admin_call(call, timeout=5) == "ok"


def test_admin_call_raises_other_errors_at_once(monkeypatch) -> None:
    from kafka.errors import TopicAuthorizationFailedError

    monkeypatch.setattr(kfk, "admin_at", lambda *a, **k: _FakeAdmin())
    calls = []

    def call(_admin):
        calls.append(1)
        raise TopicAuthorizationFailedError()

    with pytest.raises(TopicAuthorizationFailedError):
        kfk.admin_call(call, timeout=5)
    assert len(calls) == 1, "a non-retriable error must not be retried"


def test_admin_call_gives_up_in_time(monkeypatch) -> None:
    from kafka.errors import KafkaConnectionError

    def down(*_a, **_k):
        raise KafkaConnectionError()

    monkeypatch.setattr(kfk, "admin_at", down)
    with pytest.raises(TimeoutError, match="answered within"):
        kfk.admin_call(lambda admin: None, timeout=0.5)


def test_partition_table() -> None:
    states = [kfk.PartitionState("t", 0, 2, (1, 2), (2,), ()),
              kfk.PartitionState("t", 1, -1, (1, 2), (), (1,))]
    lines = kfk.partition_table(states).splitlines()
    assert "none" in lines[2] and not states[1].online


# ---------------------------------------------------------------- real brokers


@pytest.mark.brokers
def test_cleanup_evicts_a_crashed_member_and_deletes_its_group() -> None:
    """A consumer that dies without leaving keeps its group non-empty until its session
    times out (45 s here); `bl.cleanup` evicts it, so the group and topic go at once."""
    import brokerlab as bl
    from brokerlab.clients import kafka_consumer

    run = bl.Run("99.96", brokers=("kafka",))
    topic, group = run.topic("orders"), run.group("readers")
    kfk.create_topic(topic, settings=run.settings)
    consumer = kafka_consumer(topic, settings=run.settings, group_id=group,
                              session_timeout_ms=45_000)
    try:
        assert bl.wait_until(lambda: consumer.poll(200) is not None and consumer.assignment(),
                             timeout=30), "the consumer never joined its group"
        kfk.abandon(consumer)
        assert kfk.group_members(group, run.settings).members, "the crashed member left its group"
        deleted = bl.cleanup(run)
        assert deleted["evicted members"] == 1, deleted
        assert not any(bl.leftovers(run.prefix, brokers=("kafka",)).values())
    finally:
        bl.cleanup(run)

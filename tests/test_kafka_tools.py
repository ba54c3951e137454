"""Tests for the pure parts of brokerlab.kafka_tools (no Kafka needed)."""

from __future__ import annotations

import doctest

import pytest

from brokerlab import kafka_tools as kt


def test_doctests() -> None:
    assert doctest.testmod(kt).failed == 0


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
    assert kt.partition_for_key(key, partitions) == expected


def test_partition_for_key_takes_text_as_utf8() -> None:
    assert kt.partition_for_key("foobar", 5) == kt.partition_for_key(b"foobar", 5)
    assert kt.partition_for_key("zoë", 5) == kt.partition_for_key("zoë".encode(), 5)


def test_partition_for_key_is_stable_and_in_range() -> None:
    keys = [f"customer-{i}" for i in range(200)]
    first = [kt.partition_for_key(k, 6) for k in keys]
    assert first == [kt.partition_for_key(k, 6) for k in keys]
    assert set(first) == set(range(6)), "200 keys should reach all 6 partitions"


def test_partition_for_key_refuses_zero_partitions() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        kt.partition_for_key("a", 0)


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
    assert kt.is_balanced(assignment, partitions) is balanced


@pytest.mark.parametrize(
    ("expected", "processed", "tally"),
    [
        (range(5), [0, 1, 2, 3, 4], (0, 0)),
        (range(5), [0, 1, 2, 2, 3, 3, 4], (2, 0)),    # at-least-once after a crash
        (range(5), [0, 1, 4], (0, 2)),                # at-most-once after a crash
        (range(3), [], (0, 3)),
        ([], [7, 7, 7], (2, 0)),
    ],
)
def test_duplicates_and_losses(expected, processed, tally) -> None:
    assert kt.duplicates_and_losses(expected, processed) == tally


@pytest.mark.parametrize(
    ("item", "split"),
    [
        ("v", (None, "v", None)),
        (b"v", (None, b"v", None)),
        (("k", "v"), ("k", "v", None)),
        (("k", "v", 1700000000000), ("k", "v", 1700000000000)),
        ((None, "v"), (None, "v", None)),
    ],
)
def test_items_to_send(item, split) -> None:
    assert kt._split(item) == split


def test_bytes_and_text() -> None:
    assert kt._bytes("é") == "é".encode()
    assert kt._bytes(b"x") == b"x"
    assert kt._bytes(None) is None
    assert kt._bytes(42) == b"42"
    assert kt._text(None) is None
    assert kt._text("é".encode()) == "é"


def test_consumer_worker_refuses_an_unknown_commit_policy() -> None:
    with pytest.raises(ValueError, match="commit must be one of"):
        kt.consumer_worker("w", "t", "g", commit="sometimes")


def test_fast_group_settings_are_consistent() -> None:
    fast = kt.FAST_GROUP
    assert fast["session_timeout_ms"] >= 6000, "the broker refuses sessions under 6 s"
    assert fast["heartbeat_interval_ms"] * 3 <= fast["session_timeout_ms"]
    assert fast["max_poll_interval_ms"] >= fast["session_timeout_ms"]


def test_kafka_worker_repr_and_defaults() -> None:
    worker = kt.KafkaWorker("w", lambda w: None)
    assert worker.records == [] and worker.partitions == [] and worker.lag == {}
    assert repr(worker) == "<KafkaWorker w stopped partitions=[] records=0 lag=0>"


def test_retrying_waits_out_retriable_errors() -> None:
    from kafka.errors import CoordinatorLoadInProgressError

    answers = iter([CoordinatorLoadInProgressError(), CoordinatorLoadInProgressError(), "ok"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert kt._retrying(call, timeout=5) == "ok"


def test_retrying_raises_other_errors_at_once() -> None:
    from kafka.errors import TopicAuthorizationFailedError

    calls = []

    def call():
        calls.append(1)
        raise TopicAuthorizationFailedError()

    with pytest.raises(TopicAuthorizationFailedError):
        kt._retrying(call, timeout=5)
    assert len(calls) == 1, "a non-retriable error must not be retried"

"""Tests for the pure parts of brokerlab.redis (no Redis needed)."""

from __future__ import annotations

import doctest

import pytest

from brokerlab import redis as rds
from brokerlab.settings import Settings


def test_doctests() -> None:
    assert doctest.testmod(rds).failed == 0


def test_module_uses_the_library_not_itself() -> None:
    # inside brokerlab/redis.py, `import redis` must be redis-py (absolute imports)
    assert rds.redis.__name__ == "redis" and hasattr(rds.redis, "Redis")


@pytest.mark.parametrize(
    ("entry_id", "expected"),
    [("1700000000000-0", (1700000000000, 0)), ("5-12", (5, 12)), ("7", (7, 0))],
)
def test_parse_id(entry_id: str, expected: tuple[int, int]) -> None:
    assert rds.parse_id(entry_id) == expected


def test_parse_id_sorts_numerically_not_as_text() -> None:
    ids = ["10-0", "9-5", "9-10"]
    assert sorted(ids, key=rds.parse_id) == ["9-5", "9-10", "10-0"]


@pytest.mark.parametrize("bad", ["", "abc", "1-x", "-1", "1--2"])
def test_parse_id_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError, match="not a stream entry id"):
        rds.parse_id(bad)


def test_split_save_rules() -> None:
    assert rds.split_save_rules("3600 1 300 100 60 10000") == [(3600, 1), (300, 100), (60, 10000)]
    assert rds.split_save_rules("") == []
    assert rds.split_save_rules('""') == []


@pytest.mark.parametrize("bad", ["3600", "3600 1 300", "a b"])
def test_split_save_rules_rejects_odd_or_non_numeric(bad: str) -> None:
    with pytest.raises(ValueError, match="pairs"):
        rds.split_save_rules(bad)


def test_describe_persistence() -> None:
    assert rds.describe_persistence(rds.COURSE_DEFAULTS) == "no automatic RDB snapshots; AOF off"
    text = rds.describe_persistence({"save": "3600 1 60 100", "appendonly": "yes",
                                     "appendfsync": "always"})
    assert text == ("RDB snapshots after 3600 s if 1+ change, after 60 s if 100+ changes; "
                    "AOF on (appendfsync always)")


def test_course_defaults_are_what_the_launcher_writes() -> None:
    assert rds.COURSE_DEFAULTS["save"] == ""
    assert rds.COURSE_DEFAULTS["appendonly"] == "no"


def test_translate_address_keeps_resolvable_hosts() -> None:
    assert rds.translate_address("localhost", 6380, resolvable=lambda h: True,
                                 fallback_host="10.0.0.1") == ("localhost", 6380)
    assert rds.translate_address("redis-replica-2", 6382, resolvable=lambda h: False,
                                 fallback_host="10.0.0.1") == ("10.0.0.1", 6382)


def test_node_names_follow_the_cluster_settings() -> None:
    settings = Settings(redis_cluster_nodes=("h:7000", "h:7001", "h:7002"))
    assert rds.node_name(7001, settings) == "redis-replica-1"
    assert rds.node_address("redis-replica-2", settings) == "h:7002"
    with pytest.raises(ValueError, match="no Redis node"):
        rds.node_name(6379, settings)
    with pytest.raises(ValueError, match="not a Redis data node"):
        rds.node_address("sentinel-1", settings)


def test_node_client_fails_fast_without_retries() -> None:
    client = rds.node_client("127.0.0.1:1", timeout=0.2)
    with pytest.raises(rds.redis.ConnectionError):
        client.ping()


def test_host_sentinel_is_redis_pys_sentinel() -> None:
    from redis.sentinel import Sentinel

    s = rds.sentinel(Settings(redis_sentinels=("10.1.2.3:26379",)))
    assert isinstance(s, Sentinel)
    assert s._fallback_host() == "10.1.2.3"

"""The pure parts of brokerlab.cluster_tools (module 04): no broker, no cluster needed.

Counting (tally, longest_gap), names and addresses of nodes, the compose commands the
lessons print, Sentinel address translation, measurements and the comparison table.
"""

from __future__ import annotations

import doctest
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from brokerlab import cluster_tools as ct
from brokerlab.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def test_doctests_hold() -> None:
    result = doctest.testmod(ct)
    assert result.attempted >= 5 and result.failed == 0  # translate_address's is in brokerlab.redis


# ------------------------------------------------------------------ counting


def test_tally_counts_lost_duplicates_and_unacknowledged() -> None:
    result = ct.tally(["a", "b", "c", "d"], ["a", "b", "b", "b", "d", "x"])
    assert result.acknowledged == 4
    assert result.delivered == 4  # a, b, d, x
    assert result.lost == ("c",)
    assert result.duplicates == 2
    assert result.unacknowledged_delivered == 1
    assert "lost 1" in str(result)


def test_tally_keeps_the_order_of_lost_values_and_ignores_repeated_acks() -> None:
    result = ct.tally(["b-2", "b-1", "b-2", "a-0"], ["a-0"])
    assert result.acknowledged == 3
    assert result.lost == ("b-2", "b-1")


def test_tally_of_nothing() -> None:
    result = ct.tally([], [])
    assert (result.acknowledged, result.delivered, result.lost, result.duplicates) == (0, 0, (), 0)


def test_tally_accepts_mappings_of_acknowledged_values() -> None:
    # 04.02 and 04.05 keep {value: offset or WAIT answer}: the keys are the values.
    assert ct.tally({"a-0": 0, "a-1": 1}, ["a-0"]).lost == ("a-1",)


def test_longest_gap() -> None:
    assert ct.longest_gap([]) == 0.0
    assert ct.longest_gap([5.0]) == 0.0
    assert ct.longest_gap([3.0, 0.0, 1.0]) == 2.0  # unordered times are sorted first


def test_ledger_records_acks_failures_and_error_kinds() -> None:
    ledger = ct.Ledger()
    before = time.monotonic()
    ledger.ack("m-0")
    ledger.fail("m-1", ConnectionError("refused"))
    ledger.error("NackError: 0 message(s) NACKed")
    ledger.error(TimeoutError("x" * 500))
    assert ledger.acknowledged == ["m-0"] and ledger.failed == ["m-1"]
    assert ledger.ack_times[0] >= before
    assert ledger.error_kinds() == {"ConnectionError": 1, "NackError": 1, "TimeoutError": 1}
    assert all(len(e) <= 200 for e in ledger.errors)


def test_wait_done_is_bounded_and_reports() -> None:
    def body(w: ct.TrackedWorker) -> None:
        w.ledger.ack("only")
        w.ledger.done = True

    quick = ct.TrackedWorker("test-quick", body).start()
    assert ct.wait_done(quick, timeout=5)
    assert quick.ledger.acknowledged == ["only"]

    def slow_body(w: ct.TrackedWorker) -> None:
        while not w.should_stop():
            time.sleep(0.01)

    slow = ct.TrackedWorker("test-slow", slow_body).start()
    started = time.monotonic()
    try:
        assert ct.wait_done(slow, timeout=0.2) is False
        assert time.monotonic() - started < 2
    finally:
        slow.stop()


# ------------------------------------------------------------------ nodes and addresses


def test_node_names_follow_the_launcher() -> None:
    assert ct.node_names("kafka") == ["kafka-1", "kafka-2", "kafka-3"]
    assert ct.node_names("rabbitmq") == ["rabbit-1", "rabbit-2", "rabbit-3"]
    assert ct.node_names("redis")[:3] == ["redis-primary", "redis-replica-1", "redis-replica-2"]
    with pytest.raises(ValueError):
        ct.node_names("zookeeper")


def test_kafka_and_rabbit_node_names() -> None:
    assert ct.kafka_node_name(2) == "kafka-2"
    assert ct.rabbit_node_name("rabbit2@localhost") == "rabbit-2"  # native node name
    assert ct.rabbit_node_name("rabbit@rabbit3") == "rabbit-3"  # compose: rabbit@<hostname>
    with pytest.raises(ValueError):
        ct.rabbit_node_name("rabbit@localhost")
    with pytest.raises(Exception, match="unknown node"):
        ct.kafka_node_name(7)


def test_compose_commands_name_the_service_of_the_node() -> None:
    assert ct.compose_command("kill", "kafka-2") == (
        "docker compose -f docker-compose.yml -f docker-compose.cluster.yml "
        "--profile cluster kill kafka-2")
    assert ct.compose_command("start", "redis-primary").endswith("start redis-primary")
    with pytest.raises(ValueError):
        ct.compose_command("rm", "kafka-2")
    with pytest.raises(Exception, match="unknown node"):
        ct.compose_command("kill", "kafka-9")


def test_node_addresses_come_from_the_settings() -> None:
    s = Settings(
        kafka_cluster_bootstrap_servers=("k1:9092", "k2:9092", "k3:9092"),
        rabbitmq_cluster_urls=tuple(f"amqp://u:p@rabbit-{i}:5672/%2F" for i in (1, 2, 3)),
        redis_sentinels=("10.0.0.5:26379", "10.0.0.5:26380", "10.0.0.5:26381"),
    )
    assert ct.node_address("kafka-3", s) == ("k3", 9092)
    assert ct.node_address("rabbit-2", s) == ("rabbit-2", 5672)
    assert ct.node_address("sentinel-2", s) == ("10.0.0.5", 26380)
    assert ct.node_address("redis-replica-1", s) == ("10.0.0.5", 6381)  # sentinels' host


def test_a_node_without_a_pid_file_is_not_managed(settings: Settings) -> None:
    assert ct.is_managed_node("kafka-1", settings) is False
    assert ct.launcher_runs("redis", settings) is False


def test_kafka_settings_point_the_clients_at_the_cluster() -> None:
    s = Settings(kafka_cluster_bootstrap_servers=("a:1", "b:2"))
    assert ct.kafka_settings(s).kafka_bootstrap_servers == ("a:1", "b:2")
    assert s.kafka_bootstrap_servers == ("127.0.0.1:9092",)  # the original is untouched


# ------------------------------------------------------------------ Kafka views


def test_partition_table_shows_offline_partitions() -> None:
    states = [ct.PartitionState("t", 0, 2, (1, 2), (2,), ()),
              ct.PartitionState("t", 1, -1, (1, 2), (), (1,))]
    table = ct.partition_table(states).splitlines()
    assert table[0].split()[:2] == ["partition", "leader"]
    assert table[1].split() == ["0", "2", "1,2", "2", "-"]
    assert table[2].split() == ["1", "none", "1,2", "-", "1"]
    assert states[0].online and not states[1].online


# ------------------------------------------------------------------ measurements and table


def test_measurements_round_trip(settings: Settings) -> None:
    assert ct.load_measurements(settings) == {}
    path = ct.record_measurement("kafka", {"acknowledged": 10, "lost": 0}, settings)
    assert path == ct.measurements_path(settings) and path.exists()
    ct.record_measurement("redis", {"acknowledged": 5, "lost": 1}, settings)
    loaded = ct.load_measurements(settings)
    assert set(loaded) == {"kafka", "redis"}
    assert loaded["kafka"]["acknowledged"] == 10 and "measured_at" in loaded["kafka"]


def test_old_or_broken_measurements_are_ignored(settings: Settings) -> None:
    path = ct.measurements_path(settings)
    path.parent.mkdir(parents=True)
    old = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat()
    path.write_text(json.dumps({
        "kafka": {"acknowledged": 1, "lost": 0, "measured_at": old},
        "redis": {"acknowledged": 1, "lost": 0},  # no time stamp
        "rabbitmq": {"acknowledged": 1, "lost": 0,
                     "measured_at": datetime.now(timezone.utc).isoformat()},
    }))
    assert set(ct.load_measurements(settings)) == {"rabbitmq"}
    assert set(ct.load_measurements(settings, max_age=3 * 86400)) == {"kafka", "rabbitmq"}
    path.write_text("{not json")
    assert ct.load_measurements(settings) == {}


def test_comparison_rows_in_fixed_order_with_defaults() -> None:
    rows = ct.comparison_rows({
        "redis": {"acknowledged": 300, "lost": 0, "outage": 3.0, "source": "04.04"},
        "kafka": {"acknowledged": "1500", "lost": 0, "duplicates": 0},
        "rabbitmq-classic": {"acknowledged": 20, "lost": None, "unreachable": 20},
        "something-else": {"acknowledged": 1, "lost": 1},
    })
    assert [r["key"] for r in rows] == ["kafka", "rabbitmq-classic", "redis"]
    kafka, classic, redis = rows
    assert kafka["acknowledged"] == 1500 and kafka["producer paused (s)"] == "-"
    assert classic["lost"] == "not checked" and classic["unreachable during the fault"] == 20
    assert redis["measured in"] == "04.04" and redis["fault"] == "primary killed"


def test_markdown_table_has_a_header_and_a_line_per_row() -> None:
    rows = ct.comparison_rows({"kafka": {"acknowledged": 3, "lost": 0}})
    lines = ct.markdown_table(rows).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("| broker | setting |")
    assert lines[1] == "|" + "---|" * len(ct.COMPARISON_COLUMNS)
    assert lines[2].startswith("| Kafka | acks=all")


def test_rss_kb() -> None:
    assert ct.rss_kb("Name:\tredis\nVmRSS:\t   12712 kB\nVmSwap:\t0 kB\n") == 12712
    assert ct.rss_kb("Name:\tzombie\n") == 0


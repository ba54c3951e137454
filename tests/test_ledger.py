"""brokerlab.ledger: counting promises, recorded measurements, the comparison table of
04.06 (which fault each row measured) and the clusters' memory. No broker needed."""

from __future__ import annotations

import doctest
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from brokerlab import ledger as ct
from brokerlab.bench import measurements as ms
from brokerlab.settings import Settings
from brokerlab.workers import Worker


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def test_doctests_hold() -> None:
    result = doctest.testmod(ct)
    assert result.failed == 0 and result.attempted > 0
    result = doctest.testmod(ms)
    assert result.attempted >= 2 and result.failed == 0


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
    """Every Worker carries a Ledger its thread fills (the old TrackedWorker)."""
    def body(w: Worker) -> None:
        w.ledger.ack("only")
        w.ledger.done = True

    quick = Worker("test-quick", body).start()
    assert ct.wait_done(quick, timeout=5)
    assert quick.ledger.acknowledged == ["only"]

    def slow_body(w: Worker) -> None:
        while not w.should_stop():
            time.sleep(0.01)

    slow = Worker("test-slow", slow_body).start()
    started = time.monotonic()
    try:
        assert ct.wait_done(slow, timeout=0.2) is False
        assert time.monotonic() - started < 2
    finally:
        slow.stop()


def test_measurements_round_trip(settings: Settings) -> None:
    assert ms.load_measurements(settings) == {}
    path = ms.record_measurement("kafka", {"acknowledged": 10, "lost": 0}, settings)
    assert path == ms.measurements_path(settings) and path.exists()
    ms.record_measurement("redis", {"acknowledged": 5, "lost": 1}, settings)
    loaded = ms.load_measurements(settings)
    assert set(loaded) == {"kafka", "redis"}
    assert loaded["kafka"]["acknowledged"] == 10 and "measured_at" in loaded["kafka"]


def test_old_or_broken_measurements_are_ignored(settings: Settings) -> None:
    path = ms.measurements_path(settings)
    path.parent.mkdir(parents=True)
    old = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat()
    path.write_text(json.dumps({
        "kafka": {"acknowledged": 1, "lost": 0, "measured_at": old},
        "redis": {"acknowledged": 1, "lost": 0},  # no time stamp
        "rabbitmq": {"acknowledged": 1, "lost": 0,
                     "measured_at": datetime.now(timezone.utc).isoformat()},
    }))
    assert set(ms.load_measurements(settings)) == {"rabbitmq"}
    assert set(ms.load_measurements(settings, max_age=3 * 86400)) == {"kafka", "rabbitmq"}
    path.write_text("{not json")
    assert ms.load_measurements(settings) == {}


def test_comparison_rows_in_fixed_order_with_defaults() -> None:
    rows = ms.comparison_rows({
        "redis": {"acknowledged": 300, "lost": 0, "outage": 3.0, "source": "04.04"},
        "kafka": {"acknowledged": "1500", "lost": 0, "duplicates": 0},
        "rabbitmq-classic": {"acknowledged": 20, "lost": None, "unreachable": 20},
        "something-else": {"acknowledged": 1, "lost": 1},
    })
    assert [r["key"] for r in rows] == ["kafka", "rabbitmq-classic", "redis"]
    kafka, classic, redis = rows
    assert kafka["acknowledged"] == 1500 and kafka["producer paused (s)"] == "-"
    assert classic["lost"] == "not checked" and classic["unreachable during the fault"] == 20
    assert redis["measured in"] == "04.04" and redis["fault"] == "SIGKILL of the primary"
    assert all(r["fault"].startswith("SIGKILL") and r["peers notice"] for r in rows), (
        "each row says which fault it measured and how the other nodes notice it")
    assert "net_ticktime" in classic["peers notice"], "a lost host is noticed later by RabbitMQ"


def test_markdown_table_has_a_header_and_a_line_per_row() -> None:
    rows = ms.comparison_rows({"kafka": {"acknowledged": 3, "lost": 0}})
    lines = ms.markdown_table(rows).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("| broker | setting | fault | peers notice |")
    assert lines[1] == "|" + "---|" * len(ms.COMPARISON_COLUMNS)
    assert lines[2].startswith("| Kafka | acks=all, RF 3, min ISR 2 | SIGKILL")


def test_rss_kb() -> None:
    assert ms.rss_kb("Name:\tredis\nVmRSS:\t   12712 kB\nVmSwap:\t0 kB\n") == 12712
    assert ms.rss_kb("Name:\tzombie\n") == 0

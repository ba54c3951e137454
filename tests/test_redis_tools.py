"""Tests for the pure parts of brokerlab.redis_tools (no Redis needed)."""

from __future__ import annotations

import doctest
import time

import pytest

from brokerlab import redis_tools as rt


def test_doctests() -> None:
    assert doctest.testmod(rt).failed == 0


@pytest.mark.parametrize(
    ("entry_id", "expected"),
    [("1700000000000-0", (1700000000000, 0)), ("5-12", (5, 12)), ("7", (7, 0))],
)
def test_parse_id(entry_id: str, expected: tuple[int, int]) -> None:
    assert rt.parse_id(entry_id) == expected


def test_parse_id_sorts_numerically_not_as_text() -> None:
    ids = ["10-0", "9-5", "9-10"]
    assert sorted(ids, key=rt.parse_id) == ["9-5", "9-10", "10-0"]


@pytest.mark.parametrize("bad", ["", "abc", "1-x", "-1", "1--2"])
def test_parse_id_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError, match="not a stream entry id"):
        rt.parse_id(bad)


def test_split_save_rules() -> None:
    assert rt.split_save_rules("3600 1 300 100 60 10000") == [(3600, 1), (300, 100), (60, 10000)]
    assert rt.split_save_rules("") == []
    assert rt.split_save_rules('""') == []


@pytest.mark.parametrize("bad", ["3600", "3600 1 300", "a b"])
def test_split_save_rules_rejects_odd_or_non_numeric(bad: str) -> None:
    with pytest.raises(ValueError, match="pairs"):
        rt.split_save_rules(bad)


def test_describe_persistence() -> None:
    assert rt.describe_persistence(rt.COURSE_DEFAULTS) == "no automatic RDB snapshots; AOF off"
    text = rt.describe_persistence({"save": "3600 1 60 100", "appendonly": "yes",
                                    "appendfsync": "always"})
    assert text == ("RDB snapshots after 3600 s if 1+ change, after 60 s if 100+ changes; "
                    "AOF on (appendfsync always)")


def test_course_defaults_are_what_the_launcher_writes() -> None:
    assert rt.COURSE_DEFAULTS["save"] == ""
    assert rt.COURSE_DEFAULTS["appendonly"] == "no"


def test_restart_command() -> None:
    assert rt.restart_command() == "docker compose restart redis"
    crash = rt.restart_command(crash=True)
    assert crash == "docker compose kill redis && docker compose start redis"
    assert rt.restart_command(service="cache") == "docker compose restart cache"


def test_subscriber_needs_something_to_subscribe_to() -> None:
    with pytest.raises(ValueError, match="channel or pattern"):
        rt.subscriber("nothing")


def test_wait_ready_times_out_with_the_worker_name() -> None:
    idle = rt.RedisWorker("course-test-idle", lambda w: None)  # never started, never ready
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="course-test-idle"):
        rt.wait_ready(idle, timeout=0.3)
    assert time.monotonic() - started < 2


def test_wait_ready_returns_at_once_when_ready() -> None:
    ready = rt.RedisWorker("course-test-ready", lambda w: None)
    ready.ready.set()
    rt.wait_ready(ready, timeout=0.1)


def test_work_stops_early_when_killed() -> None:
    worker = rt.RedisWorker("course-test-work", lambda w: None)
    assert rt._work(worker, 0.05) is True
    worker.crashed = True
    started = time.monotonic()
    assert rt._work(worker, 5.0) is False
    assert time.monotonic() - started < 0.5

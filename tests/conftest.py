"""Markers that really gate, so `pytest tests` runs anywhere and says what it skipped.

    @pytest.mark.brokers  needs the brokers at the Settings' addresses (RABBITMQ_URL,
                          REDIS_URL, KAFKA_BOOTSTRAP_SERVERS); skipped, with the reason,
                          when one of them does not answer a round trip.
    @pytest.mark.native   needs the course's launcher running the brokers here (tests
                          that restart or start them); skipped with BROKERS=external, or
                          when `python -m brokerlab.backstage runs BROKER` says no.
    @pytest.mark.classroom  needs a classroom (student isolation, tests/test_classroom.py):
                          BROKERLAB_TEST_CLASSROOM=1 starts one of two students in a
                          temporary folder for the session (`make test-classroom`);
                          =DIR uses the one running from DIR; unset: skipped.

Each question is asked once per session, and only if a collected test carries the marker.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

BROKERS = ("rabbitmq", "redis", "kafka")


@functools.cache
def brokers_problem() -> str | None:
    """None if every broker answers at the Settings' addresses, else which do not."""
    from brokerlab.health import check
    from brokerlab.settings import Settings

    settings = Settings.from_env()
    down = [s for s in (check(b, settings, timeout=3.0) for b in BROKERS) if not s.ok]
    if not down:
        return None
    return "brokers not answering: " + "; ".join(f"{s.broker} at {s.address} ({s.detail})"
                                                   for s in down)


@functools.cache
def native_problem() -> str | None:
    """None if the course's launcher runs all three brokers here, else why not."""
    if os.environ.get("BROKERS", "native") != "native":
        return f"BROKERS={os.environ['BROKERS']}: the course's launcher does not run the brokers"
    from brokerlab.faults import launcher_runs
    from brokerlab.settings import Settings

    settings = Settings.from_env()
    missing = [b for b in BROKERS if not launcher_runs(b, settings)]
    if missing:
        return (f"the course's launcher does not run {', '.join(missing)} here "
                "(`make brokers` starts them)")
    return None


@functools.cache
def classroom_problem() -> str | None:
    """None if the classroom tests may run (a classroom to start or to use), else why not."""
    wanted = os.environ.get("BROKERLAB_TEST_CLASSROOM", "")
    if wanted == "1":
        return None
    if not wanted:
        return ("BROKERLAB_TEST_CLASSROOM is not set (`make test-classroom` starts a "
                "classroom for these tests)")
    from brokerlab.backstage import classroom

    problems = [f"{r.name} {r.state}" for r in classroom.status(Path(wanted))
                if r.state != "running"]
    if problems:
        return f"the classroom at {wanted} does not run: {', '.join(problems)}"
    if len(classroom.students_of(Path(wanted))) < 2:
        return f"the classroom at {wanted} has fewer than two students"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker, problem in (("native", native_problem), ("brokers", brokers_problem),
                                ("classroom", classroom_problem)):
            if item.get_closest_marker(marker) is not None:
                reason = problem()
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
                    break

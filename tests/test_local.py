"""The native launcher, on throw-away Redis and Kafka instances beside the course's.

Each test gets its own state folder and free ports (the launcher listens where
REDIS_URL / KAFKA_BOOTSTRAP_SERVERS say), so the brokers the notebooks use are untouched.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from brokerlab import local
from brokerlab.health import check
from brokerlab.settings import Settings

pytestmark = pytest.mark.brokers


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        if port < 65000 and not local._port_open("127.0.0.1", port + 1):
            return port
    raise RuntimeError("no free port pair")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    port = _free_port_pair()
    return Settings.from_env({
        "BROKERLAB_STATE_DIR": str(tmp_path / "state"),
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
    })


def _quiet(_: str) -> None:
    pass


def test_redis_start_is_idempotent_restart_keeps_config_and_stop_leaves_nothing(
        settings: Settings) -> None:
    try:
        assert local.start("redis", settings, echo=_quiet) == "started"
        pid = local.managed_pid("redis", settings)
        assert pid and check("redis", settings).ok
        assert local.start("redis", settings, echo=_quiet) == "reused"
        assert local.managed_pid("redis", settings) == pid
        local.restart("redis", settings, crash=True, echo=_quiet)
        new_pid = local.managed_pid("redis", settings)
        assert new_pid and new_pid != pid and check("redis", settings).ok
    finally:
        local.stop("redis", settings, echo=_quiet)
    assert local.managed_pid("redis", settings) is None
    assert not local._alive(new_pid)
    assert not check("redis", settings, timeout=1).ok


def test_stop_never_kills_a_process_it_did_not_start(settings: Settings) -> None:
    p = local.paths("redis", settings)
    p.root.mkdir(parents=True)
    p.pid.write_text(f"{os.getpid()}\n")  # a stale pid file naming this test process
    assert local.stop("redis", settings, echo=_quiet) == "not-running"
    assert not p.pid.exists()


def test_restart_refuses_a_broker_it_does_not_run(settings: Settings) -> None:
    with pytest.raises(local.LauncherError, match="docker compose restart redis"):
        local.restart("redis", settings, echo=_quiet)


def test_kafka_starts_over_a_broken_state_folder(settings: Settings) -> None:
    try:
        assert local.start("kafka", settings, echo=_quiet) == "started"
        local.stop("kafka", settings, echo=_quiet)
        meta = local.paths("kafka", settings).root / "data" / "meta.properties"
        meta.write_text("version=1\nnode.id=7\n")  # half-written, another node's
        lines: list[str] = []
        assert local.start("kafka", settings, echo=lines.append) == "started"
        assert check("kafka", settings, deep=True).ok
        assert any("reformatting" in line for line in lines), lines
    finally:
        local.stop("kafka", settings, echo=_quiet)
    assert local.managed_pid("kafka", settings) is None


def test_a_busy_port_gives_a_clear_error(settings: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", local.redis_port(settings)))
        squatter.listen(1)
        with pytest.raises(local.LauncherError, match="taken by a process"):
            local.start("redis", settings, echo=_quiet)


def test_kafka_version_is_pinned_once() -> None:
    assert local.kafka_version().startswith("4.")

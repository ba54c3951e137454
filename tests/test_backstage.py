"""The launcher (brokerlab.backstage) on throw-away brokers beside the course's.

Each test gets its own state folder and free ports (the launcher listens where
REDIS_URL / KAFKA_BOOTSTRAP_SERVERS say), so the brokers the notebooks use are untouched.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brokerlab.backstage import clusters, process, single
from brokerlab.checks import wait_until
from brokerlab.health import check
from brokerlab.settings import Settings

pytestmark = pytest.mark.native


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


_GIVEN: set[int] = set()


def _free_port_pair() -> int:
    """A port p with p and p + 1 free, below the kernel's ephemeral range, and not given
    to another test or node of this session.

    A port the kernel hands out for `bind(0)` can also become the local end of any
    outgoing connection on this machine before the broker binds it (Kafka once failed
    with "Address already in use" that way); ports below the range are never used so.
    """
    range_file = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(range_file.read_text().split()[0]) if range_file.exists() else 32768
    for _ in range(200):
        port = random.randrange(20000, low - 1)
        if _GIVEN.isdisjoint({port - 1, port, port + 1}) and _bindable(port) \
                and _bindable(port + 1):
            _GIVEN.add(port)
            return port
    raise RuntimeError(f"no free port pair between 20000 and {low}")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    port = _free_port_pair()
    return {**os.environ, "BROKERLAB_STATE_DIR": str(tmp_path / "state"),
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


def _quiet(_: str) -> None:
    pass


def backstage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brokerlab.backstage", *args], env=env,
                          capture_output=True, text=True, timeout=180)


def test_redis_start_is_idempotent_restart_replaces_it_and_stop_leaves_nothing(
        settings: Settings) -> None:
    try:
        assert single.start("redis", settings, echo=_quiet) == "started"
        pid = process.managed_pid(single.place("redis", settings))
        assert pid and check("redis", settings).ok
        assert single.start("redis", settings, echo=_quiet) == "reused"
        assert process.managed_pid(single.place("redis", settings)) == pid
        single.restart("redis", settings, crash=True, echo=_quiet)
        new_pid = process.managed_pid(single.place("redis", settings))
        assert new_pid and new_pid != pid and check("redis", settings).ok
        assert not process.alive(pid), "the killed Redis is reaped, not a zombie"
    finally:
        single.stop("redis", settings, echo=_quiet)
    assert not single.is_managed("redis", settings)
    assert not process.alive(new_pid)
    assert not check("redis", settings, timeout=1).ok


def _open_files(pid: int) -> set[str]:
    try:
        return {os.path.realpath(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    except OSError:
        return set()


def test_two_starts_at_once_make_one_broker(env: dict[str, str], settings: Settings) -> None:
    command = [sys.executable, "-m", "brokerlab.backstage", "start", "redis"]
    try:
        # Hold the lock until both have opened it (so both meet it), then let them race.
        lock = str(settings.state_dir / ".lock")
        with process.state_lock(settings.state_dir):
            starts = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True) for _ in range(2)]
            assert wait_until(lambda: all(lock in _open_files(p.pid) for p in starts), 60)
            time.sleep(0.5)
        results = [p.communicate(timeout=120) for p in starts]
        assert [p.returncode for p in starts] == [0, 0], results
        out = "".join(stdout for stdout, _ in results)
        assert out.count("waiting") == 2, out
        assert out.count("started at") == 1 and out.count("already running") == 1, out
    finally:
        backstage(env, "stop", "redis")
    assert not check("redis", settings, timeout=1).ok


def test_a_stale_pid_file_never_kills_a_foreign_process(settings: Settings,
                                                         tmp_path: Path) -> None:
    foreign = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    try:
        where = single.place("redis", settings)
        where.root.mkdir(parents=True)
        where.pid_file.write_text(f"{foreign.pid}\n")  # a stale pid, reused by another process
        assert not single.is_managed("redis", settings)
        assert single.stop("redis", settings, echo=_quiet) == "not-running"
        assert foreign.poll() is None, "the foreign process must survive"
        assert not where.pid_file.exists()
    finally:
        foreign.kill()
        foreign.wait()


def test_restart_runs_and_stop_through_the_command_line(env: dict[str, str]) -> None:
    assert backstage(env, "runs", "redis").returncode == 1
    refused = backstage(env, "restart", "redis")
    assert refused.returncode == 1 and "docker compose restart redis" in refused.stderr
    try:
        assert backstage(env, "start", "redis").returncode == 0
        assert backstage(env, "runs", "redis").returncode == 0
        restarted = backstage(env, "restart", "redis", "--crash")
        assert restarted.returncode == 0, restarted.stderr
        assert "answers again" in restarted.stdout
        assert check("redis", Settings.from_env(env)).ok
    finally:
        assert backstage(env, "stop", "redis").returncode == 0
    assert backstage(env, "runs", "redis").returncode == 1


def test_a_failed_start_names_its_log_on_stderr(env: dict[str, str], tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "redis-server"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'fake redis: cannot start'\nexit 1\n")
    fake.chmod(0o755)
    result = backstage({**env, "PATH": f"{fake.parent}:{env['PATH']}"}, "start", "redis")
    assert result.returncode == 1
    assert "redis/broker.log" in result.stderr and "fake redis: cannot start" in result.stderr
    assert result.stdout == ""


def test_a_busy_port_gives_a_clear_error(settings: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", single.redis_port(settings)))
        squatter.listen(1)
        with pytest.raises(process.LauncherError, match="taken by a process"):
            single.start("redis", settings, echo=_quiet)


def test_kafka_starts_over_a_broken_state_folder(settings: Settings) -> None:
    try:
        assert single.start("kafka", settings, echo=_quiet) == "started"
        single.stop("kafka", settings, echo=_quiet)
        meta = single.place("kafka", settings).root / "data" / "meta.properties"
        meta.write_text("version=1\nnode.id=7\n")  # half-written, another node's
        lines: list[str] = []
        assert single.start("kafka", settings, echo=lines.append) == "started"
        assert check("kafka", settings, deep=True).ok
        assert any("reformatting" in line for line in lines), lines
    finally:
        single.stop("kafka", settings, echo=_quiet)
    assert not single.is_managed("kafka", settings)


def test_kafka_storage_stamped_by_the_old_launcher_is_kept(settings: Settings) -> None:
    where = single.place("kafka", settings)
    (where.root / "data").mkdir(parents=True)
    meta = where.root / "data" / "meta.properties"
    meta.write_text("node.id=1\ncluster.id=kept\nversion=1\n")
    (where.root / "format.stamp").write_text("0123abcd\n")  # the old launcher's hash
    single.kafka_argv(where, "node.id=1\n", cluster_id="unused", standalone=True, heap="64m")
    assert meta.read_text() == "node.id=1\ncluster.id=kept\nversion=1\n", "not reformatted"
    assert (where.root / "format.stamp").read_text().startswith(single.FORMAT_STAMP)


def test_kafka_version_is_pinned_once() -> None:
    assert single.kafka_version().startswith("4.")


def test_a_redis_cluster_node_is_killed_and_started_through_the_command_line(
        env: dict[str, str], settings: Settings) -> None:
    ports = [_free_port_pair() for _ in range(6)]
    env = {**env, "REDIS_CLUSTER_NODES": ",".join(f"127.0.0.1:{p}" for p in ports[:3]),
           "REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in ports[3:])}
    try:
        started = backstage(env, "cluster", "start", "redis")
        assert started.returncode == 0, started.stderr
        assert "redis cluster ready" in started.stdout
        assert backstage(env, "node", "kill", "redis-replica-2").returncode == 0
        assert backstage(env, "runs", "redis-replica-2").returncode == 1
        assert backstage(env, "runs", "redis-primary").returncode == 0
        restarted = backstage(env, "node", "start", "redis-replica-2")
        assert restarted.returncode == 0 and f"127.0.0.1:{ports[2]}" in restarted.stdout
        states = {n.name: n.state for n in clusters.status(Settings.from_env(env), ("redis",))}
        assert len(states) == 6 and set(states.values()) == {"up"}, states
    finally:
        backstage(env, "cluster", "stop", "redis")
    assert backstage(env, "runs", "redis-primary").returncode == 1

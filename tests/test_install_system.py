"""tools/install_system.sh's version checks, with stand-in tools on PATH (nothing installed).

The course needs Redis >= 6.2 (LMOVE, XAUTOCLAIM) and RabbitMQ >= 3.8 (quorum queues). A
distribution that ships older ones (Ubuntu 22.04's Redis 6.0) must be told so, with what to
do instead, before anything is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "install_system.sh"
# Real tools the script uses; everything else on PATH is a stand-in.
REAL = ("bash", "sed", "head", "tail", "cat", "dirname", "mkdir", "date", "dpkg")

pytestmark = pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg (Debian/Ubuntu)")


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def run(tmp_path: Path, *, redis: str | None, rabbitmq: str, candidate: str = "",
        uid: int = 1000) -> subprocess.CompletedProcess[str]:
    """The script with redis-server (None: missing), RabbitMQ's package version, apt's
    candidate for redis-server, Java 17 and Maven present, and the given uid (no sudo)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in REAL:
        real = shutil.which(name)
        assert real, name
        (bin_dir / name).symlink_to(real)
    if redis is not None:
        stub(bin_dir, "redis-server", f'echo "Redis server v={redis} sha=00000000:0 bits=64"')
    stub(bin_dir, "dpkg-query", f'[ "$3" = rabbitmq-server ] && printf %s "{rabbitmq}"')
    stub(bin_dir, "apt-cache", f'echo "redis-server:"; echo "  Candidate: {candidate or "(none)"}"')
    stub(bin_dir, "java", "echo 'openjdk version \"17.0.13\" 2024-10-15' >&2")
    stub(bin_dir, "mvn", "true")
    stub(bin_dir, "openssl", "true")
    stub(bin_dir, "python3", "true")  # python3-venv present
    stub(bin_dir, "id", f"echo {uid}")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path),
           "BROKERLAB_INSTALL_LOG": str(tmp_path / "install.log")}
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        pytest.skip("needs rabbitmq-server installed (the script looks for its launcher)")
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env,
                          timeout=60)


def test_new_enough_brokers_pass_with_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, redis="7.0.15", rabbitmq="3.10.8-1.1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        "system packages: Redis 7.0.15, RabbitMQ 3.10.8, Java 17 "
        "(needs Redis >= 6.2, RabbitMQ >= 3.8)"]


def test_ubuntu_2204_redis_is_too_old_and_the_learner_is_told_what_to_do(
        tmp_path: Path) -> None:
    result = run(tmp_path, redis="6.0.16", rabbitmq="3.9.27-0ubuntu0.1")
    assert result.returncode == 1
    message = result.stderr
    assert "Redis 6.0.16" in message and "too old" in message and ">= 6.2" in message
    assert "packages.redis.io" in message, "name Redis's own APT repository"
    assert "make lab BROKERS=external" in message, "offer the Docker way too"


def test_old_rabbitmq_is_too_old(tmp_path: Path) -> None:
    result = run(tmp_path, redis="7.0.15", rabbitmq="3.7.8-1")
    assert result.returncode == 1
    assert "RabbitMQ 3.7.8" in result.stderr and ">= 3.8" in result.stderr
    assert "rabbitmq.com/docs/install-debian" in result.stderr


def test_a_too_old_candidate_is_refused_before_installing(tmp_path: Path) -> None:
    # redis-server missing, apt would bring 6.0: say so instead of printing an apt-get line.
    result = run(tmp_path, redis=None, rabbitmq="3.9.27-0ubuntu0.1", candidate="5:6.0.16-1ubuntu1")
    assert result.returncode == 1
    assert "system packages: missing redis-server" in result.stdout
    assert "Redis 6.0.16" in result.stderr and "too old" in result.stderr
    assert "apt-get install -y redis-server" not in result.stdout

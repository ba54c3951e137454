"""Static checks of binder/ (mybinder.org's build and launch files), plus the launch script's
contract with a stand-in `python`: whatever the brokers do, JupyterLab must open.

The real smoke test (binder/start with the native brokers) is `make binder-smoke`.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
SCRIPTS = ("postBuild", "start")


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a pip requirements file, without comments and blank lines."""
    lines = []
    for line in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            lines.append(line)
    return lines


def code_lines(path: Path) -> list[str]:
    """A shell script's lines without comments and blank lines (heredoc text included)."""
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def test_binder_requirements_equal_the_repos() -> None:
    ours, binders = requirement_lines(ROOT / "requirements.txt"), requirement_lines(
        BINDER / "requirements.txt"
    )
    assert binders == ours, (
        "binder/requirements.txt must be a copy of requirements.txt (Binder ignores the root "
        "one when binder/ exists): cp requirements.txt binder/requirements.txt"
    )


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_are_executable_bash(name: str) -> None:
    path = BINDER / name
    assert path.stat().st_mode & stat.S_IXUSR, f"chmod +x binder/{name}"
    assert path.read_text().splitlines()[0] in ("#!/usr/bin/env bash", "#!/bin/bash")


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_pass_bash_syntax_check(name: str) -> None:
    result = subprocess.run(["bash", "-n", str(BINDER / name)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_start_ends_with_exec() -> None:
    assert code_lines(BINDER / "start")[-1] == 'exec "$@"', (
        "binder/start must end with exec \"$@\" or Binder's JupyterLab never starts"
    )


def test_start_starts_the_brokers_without_set_e() -> None:
    lines = code_lines(BINDER / "start")
    assert any("python -m brokerlab.local start" in line for line in lines)
    assert not any(re.match(r"set\s+-\w*e", line) for line in lines), (
        "no `set -e` in binder/start: a broker that fails must not keep JupyterLab closed"
    )


def test_post_build_installs_the_package_and_kafka() -> None:
    lines = code_lines(BINDER / "postBuild")
    assert "set -euo pipefail" in lines
    assert any("pip install --no-deps -e ." in line for line in lines)
    assert any("python -m brokerlab.local fetch-kafka" in line for line in lines)


def test_apt_lists_brokers_java_and_maven() -> None:
    packages = set(requirement_lines(BINDER / "apt.txt"))
    assert {"redis-server", "rabbitmq-server", "openjdk-17-jre-headless", "maven"} <= packages


@pytest.mark.parametrize("launcher_rc, warns", [(0, False), (1, True)])
def test_start_always_execs_the_command(
    tmp_path: Path, launcher_rc: int, warns: bool
) -> None:
    # A stand-in `python` first on PATH plays the launcher: it succeeds or fails.
    fake = tmp_path / "python"
    fake.write_text(f'#!/usr/bin/env bash\necho "launcher: $*"\nexit {launcher_rc}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(BINDER / "start"), "echo", "jupyterlab opens"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "launcher: -m brokerlab.local start" in result.stdout
    assert result.stdout.rstrip().endswith("jupyterlab opens")
    assert ("WARNING" in result.stderr) is warns

"""Checks of binder/ (mybinder.org's build and launch files), without Docker.

- what repo2docker will build, from the real tool (`repo2docker --no-build --debug` prints
  the Dockerfile; skipped when jupyter-repo2docker is not installed, see requirements-dev.txt);
- the pins against repo2docker's own environment for binder/runtime.txt's Python;
- binder/start's contract with a stand-in `python`: JupyterLab opens at once, whatever the
  brokers do, while the brokers start in the background with a log and a marker file;
- the one Binder repository setting and the links made from it.

The real run (binder/start with the native brokers, under Binder's limits) is tools/binder_check.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
SCRIPTS = ("postBuild", "start")
DEV_TOOLS = ("pytest", "ruff", "playwright", "nbstripout", "nbval", "jupyter-repo2docker")
# repo2docker's own environment pins notebook 7.4, which needs jupyterlab < 4.5.
REPO2DOCKER_JUPYTERLAB = re.compile(r"/jupyterlab-(\d+\.\d+\.\d+)-py")


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a pip requirements file, without comments and blank lines."""
    lines = []
    for line in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            lines.append(line)
    return lines


def pins(path: Path) -> dict[str, str]:
    """{name: version} of a requirements file's `name==version` lines."""
    return dict(line.split("==", 1) for line in requirement_lines(path) if "==" in line)


def code_lines(path: Path) -> list[str]:
    """A shell script's lines without comments and blank lines (heredoc text included)."""
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def runtime_python() -> str:
    """'3.11' from binder/runtime.txt's `python-3.11`."""
    text = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(3\.\d+)", text)
    assert match, f"binder/runtime.txt should say python-3.X, not {text!r}"
    return match.group(1)


# ------------------------------------------------------------------ Python and pins


def test_runtime_is_a_python_the_pins_have_wheels_for() -> None:
    # repo2docker's default is 3.10; matplotlib 3.11 has no wheels for it.
    assert runtime_python() in ("3.11", "3.12")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert low and int(runtime_python().split(".")[1]) >= int(low.group(1))


def test_learner_requirements_carry_no_dev_tools() -> None:
    learner = pins(ROOT / "requirements.txt")
    assert not set(DEV_TOOLS) & set(learner), (
        "test and lint tools belong in requirements-dev.txt, not in the learner's requirements")
    dev = requirement_lines(ROOT / "requirements-dev.txt")
    assert dev[0] == "-r requirements.txt"
    assert not set(learner) & set(pins(ROOT / "requirements-dev.txt")), "one pin per tool"


def test_binder_requirements_are_the_learners_with_repo2dockers_jupyterlab() -> None:
    ours, binders = pins(ROOT / "requirements.txt"), pins(BINDER / "requirements.txt")
    assert set(binders) == set(ours), (
        "binder/requirements.txt must list what requirements.txt lists (Binder ignores the "
        "root file when binder/ exists)")
    differ = {name for name in ours if ours[name] != binders[name]}
    assert differ <= {"jupyterlab"}, f"only JupyterLab's pin may differ on Binder, not {differ}"
    major, minor, _ = (int(x) for x in binders["jupyterlab"].split("."))
    assert (major, minor) == (4, 4), "repo2docker's notebook 7.4 needs jupyterlab >= 4.4, < 4.5"


@pytest.fixture(scope="module")
def repo2docker_dir() -> Path:
    spec = importlib.util.find_spec("repo2docker")
    if spec is None or spec.origin is None:
        pytest.skip("jupyter-repo2docker is not installed (pip install -r requirements-dev.txt)")
    return Path(spec.origin).parent


def test_binder_jupyterlab_is_the_one_in_repo2dockers_lock(repo2docker_dir: Path) -> None:
    lock = (repo2docker_dir / "buildpacks" / "conda"
            / f"environment.py-{runtime_python()}-linux-64.lock").read_text()
    found = REPO2DOCKER_JUPYTERLAB.findall(lock)
    assert found, "repo2docker's lock file names no jupyterlab"
    assert pins(BINDER / "requirements.txt")["jupyterlab"] == found[0], (
        f"repo2docker's environment has jupyterlab {found[0]} (and a notebook that needs "
        "it): pin that version in binder/requirements.txt")


# ------------------------------------------------------------------ what repo2docker builds


@pytest.fixture(scope="module")
def dockerfile(repo2docker_dir: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "repo2docker", "--no-build", "--no-run", "--debug", str(ROOT)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def test_repo2docker_uses_our_runtime(dockerfile: str) -> None:
    python = runtime_python()
    assert f"Building conda environment for python={python}" in dockerfile
    # repo2docker escapes the copied file names ("-2e" is ".", "-2d" is "-").
    copied = re.sub(r"-([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), dockerfile)
    assert f"conda/environment.py-{python}-linux-64.lock" in copied


def test_repo2docker_installs_our_requirements_and_apt_packages(dockerfile: str) -> None:
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in dockerfile
    packages = sorted(requirement_lines(BINDER / "apt.txt"))
    assert f"apt-get install --yes --no-install-recommends {' '.join(packages)}" in dockerfile


def test_repo2docker_runs_post_build_and_start(dockerfile: str) -> None:
    assert "RUN ./binder/postBuild" in dockerfile
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile


# ------------------------------------------------------------------ the scripts


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_are_executable_bash(name: str) -> None:
    path = BINDER / name
    assert path.stat().st_mode & stat.S_IXUSR, f"chmod +x binder/{name}"
    assert path.read_text().splitlines()[0] in ("#!/usr/bin/env bash", "#!/bin/bash")


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_pass_bash_syntax_check(name: str) -> None:
    result = subprocess.run(["bash", "-n", str(BINDER / name)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_start_ends_with_exec_and_has_no_set_e() -> None:
    lines = code_lines(BINDER / "start")
    assert lines[-1] == 'exec "$@"', "binder/start must end with exec \"$@\" (JupyterLab)"
    assert not any(re.match(r"set\s+-\w*e", line) for line in lines), (
        "no `set -e` in binder/start: a broker that fails must not keep JupyterLab closed")


def test_post_build_installs_the_package_and_kafka() -> None:
    lines = code_lines(BINDER / "postBuild")
    assert "set -euo pipefail" in lines
    assert any("pip install --no-deps -e ." in line for line in lines)
    assert any("fetch kafka perftest" in line for line in lines)


def test_apt_lists_brokers_java_and_maven() -> None:
    packages = set(requirement_lines(BINDER / "apt.txt"))
    assert {"redis-server", "rabbitmq-server", "openjdk-17-jre-headless", "maven"} <= packages


def run_start(tmp_path: Path, launcher_seconds: float, launcher_rc: int,
              command: list[str]) -> tuple[subprocess.CompletedProcess[str], float, Path]:
    """binder/start with a stand-in `python` (the launcher) that sleeps, then exits."""
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text(f'#!/usr/bin/env bash\necho "launcher: $*"\nsleep {launcher_seconds}\n'
                    f"exit {launcher_rc}\n")
    fake.chmod(0o755)
    state = tmp_path / "state"
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
           "BROKERLAB_STATE_DIR": str(state)}
    began = time.monotonic()
    result = subprocess.run([str(BINDER / "start"), *command], capture_output=True, text=True,
                            env=env, timeout=60)
    return result, time.monotonic() - began, state


@pytest.mark.parametrize("launcher_rc", [0, 1])
def test_start_execs_at_once_and_starts_the_brokers_in_the_background(
        tmp_path: Path, launcher_rc: int) -> None:
    from brokerlab.checks import wait_until

    result, seconds, state = run_start(
        tmp_path, 3, launcher_rc, ["bash", "-c", 'echo "opens; marker: $(head -1 "$0")"',
                                   str(tmp_path / "state" / "starting")])
    assert result.returncode == 0, result.stderr
    assert seconds < 2, f"binder/start took {seconds:.1f} s; it must hand over at once"
    assert re.fullmatch(r"opens; marker: \d+", result.stdout.strip()), (
        "while the brokers start, <state>/starting must exist with the start's pid")
    assert str(state / "binder-start.log") in result.stderr, "say where the log is"
    log = state / "binder-start.log"
    assert wait_until(lambda: not (state / "starting").exists(), timeout=20), (
        "the marker must go when the background start ends")
    text = log.read_text()
    assert "launcher: -m brokerlab." in text and " start" in text
    assert f"exit code {launcher_rc}" in text


def test_start_execs_even_when_the_state_folder_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = {**os.environ, "BROKERLAB_STATE_DIR": str(blocker / "state")}
    result = subprocess.run([str(BINDER / "start"), "echo", "opens"], capture_output=True,
                            text=True, env=env, timeout=30)
    assert result.stdout.strip() == "opens"
    assert "WARNING" in result.stderr


# ------------------------------------------------------------------ the Binder link


def binder_repository() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    repository = data["tool"]["brokerlab"]["repository"]
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", repository), "repository is owner/name"
    return repository


def binder_links() -> dict[str, list[str]]:
    """Every mybinder.org launch link in the README, docs/ and the notebooks, by file."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "notebooks").glob("*.ipynb"))]
    found = {}
    for path in files:
        links = re.findall(r"https://mybinder\.org/v2/[^\s)\"'\\]+", path.read_text())
        if links:
            found[str(path.relative_to(ROOT))] = links
    return found


def test_binder_links_come_from_the_one_repository_setting() -> None:
    repository = binder_repository()
    links = binder_links()
    assert "README.md" in links, "the README needs its Binder badge"
    expected = (f"https://mybinder.org/v2/gh/{repository}/HEAD"
                "?urlpath=lab/tree/notebooks/00.00-index.ipynb")
    assert expected in links["README.md"], f"README's badge should link to {expected}"
    for name, urls in links.items():
        for url in urls:
            assert url.startswith(f"https://mybinder.org/v2/gh/{repository}/"), (
                f"{name}: {url} is not [tool.brokerlab] repository = {repository!r} "
                f"(pyproject.toml); use https://mybinder.org/v2/gh/{repository}/HEAD?urlpath=...")

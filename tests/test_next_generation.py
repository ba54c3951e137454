"""tools/next_generation.py without brokers or root: where it puts things, which ports and
node name it derives from the course's variables, and the marker that caches a build.
(Running it is `make test-next`.)"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from brokerlab.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def nextgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "next_generation", ROOT / "tools" / "next_generation.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["next_generation"] = module
    spec.loader.exec_module(module)
    return module


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"BROKERLAB_STATE_DIR": str(tmp_path), **env})


def test_default_ports_run_the_course_node(nextgen: ModuleType, tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert nextgen.rabbitmq_ports(s) == (5672, 15672, 25672)
    assert nextgen.rabbitmq_node(s) == "rabbit@localhost"
    assert nextgen.instance("redis", s).folder == tmp_path / "next" / "redis-6379"
    assert nextgen.root_dir(s) == tmp_path / "next" / "root"


def test_other_ports_run_a_distinct_node(nextgen: ModuleType, tmp_path: Path) -> None:
    s = settings(tmp_path, REDIS_URL="redis://127.0.0.1:16479/0",
                 RABBITMQ_URL="amqp://guest:guest@127.0.0.1:5782/%2F",
                 RABBITMQ_MANAGEMENT_URL="http://127.0.0.1:15782")
    assert nextgen.rabbitmq_ports(s) == (5782, 15782, 25782)
    assert nextgen.rabbitmq_node(s) == "rabbit-next-5782@localhost"
    assert nextgen.instance("rabbitmq", s).folder.name == "rabbitmq-5782"
    assert nextgen.instance("redis", s).ports == (16479,)
    with pytest.raises(nextgen.NextError):
        nextgen.instance("kafka", s)


def test_marker_caches_a_build(nextgen: ModuleType, tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert nextgen.built(s) is None
    root = nextgen.root_dir(s)
    root.mkdir(parents=True)
    packages = {"rabbitmq-server": "4.0.5-6+deb13u2", "redis-server": "5:8.0.2-3+deb13u3"}
    (root / nextgen.MARKER).write_text(json.dumps({"suite": "trixie", "packages": packages}))
    assert nextgen.built(s) == packages
    (root / nextgen.MARKER).write_text(json.dumps({"suite": "sid", "packages": packages}))
    assert nextgen.built(s) is None, "a root of another suite must be rebuilt"


def test_rabbitmq_refuses_transient_queues_as_43_does(nextgen: ModuleType,
                                                      tmp_path: Path) -> None:
    env = nextgen.node_env(tmp_path / "rabbitmq", "rabbit@localhost", (5672, 15672, 25672),
                           stream_port=5552)
    conf = Path(env["RABBITMQ_CONFIG_FILE"]).read_text()
    assert "deprecated_features.permit.transient_nonexcl_queues = false" in conf
    assert "stream.listeners.tcp.default = 127.0.0.1:5552" in conf
    assert "rabbitmq_stream" in Path(env["RABBITMQ_ENABLED_PLUGINS_FILE"]).read_text()
    assert "management.tcp.port = 15672" in conf
    assert env["RABBITMQ_NODENAME"] == "rabbit@localhost"
    assert env["RABBITMQ_MNESIA_BASE"].startswith(str(tmp_path))


def test_make_test_next_restarts_through_the_tool() -> None:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^NEXT_RESTART := (.+)$", makefile, re.M)
    assert match, "Makefile defines NEXT_RESTART (BROKERLAB_RESTART_COMMAND for test-next)"
    assert "tools/next_generation.py restart {broker} --mode {mode}" in match.group(1)
    assert "BROKERLAB_RESTART_COMMAND='$(NEXT_RESTART)'" in makefile


def test_the_next_generation_runs_only_lessons_that_meet_its_brokers(nextgen: ModuleType
                                                                     ) -> None:
    """Kafka-only lessons and module 04's cluster lessons meet the same native brokers
    as the first run; every lesson on single-node Redis or RabbitMQ runs again."""
    chosen = {p.name for p in nextgen.notebooks(ROOT)}
    assert "01.03-durability.ipynb" in chosen
    assert "02.04-redis-persistence.ipynb" in chosen
    assert "00.01-welcome-and-setup-check.ipynb" in chosen
    assert "03.01-topics-partitions-and-keys.ipynb" not in chosen
    assert "04.03-rabbitmq-quorum-queues.ipynb" not in chosen
    every = {p.relative_to(ROOT).as_posix() for folder in ("notebooks", "solutions")
             for p in ROOT.glob(f"{folder}/*.ipynb")}
    left_out = every - {p.relative_to(ROOT).as_posix() for p in nextgen.notebooks(ROOT)}
    # Today: module 03 (Kafka), module 04 (clusters), 05.04 (Kafka), lessons and labs,
    # lab 07.02 (Kafka; its lesson also meets Redis), and 06.01 (its own secured classroom
    # brokers, started from the native packages: `start_lesson(..., settings=...)`).
    assert "06.01-securing-each-broker.ipynb" not in chosen
    assert left_out == {rel for rel in every
                        if rel.split("/")[1][:2] in ("03", "04") or "/05.04-" in rel
                        or rel.startswith("solutions/07.02-")
                        or rel == "notebooks/06.01-securing-each-broker.ipynb"}


def test_the_selection_rule_examples_hold(nextgen: ModuleType) -> None:
    import doctest

    result = doctest.testmod(nextgen, raise_on_error=True)
    assert result.attempted > 0 and result.failed == 0

"""brokerlab.faults without brokers: nodes from Settings, the three backends with fakes,
commands that fail or hang, and the course's message for a broker that died."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import kafka.errors
import pika.exceptions
import pytest
import redis.exceptions

from brokerlab import faults, health
from brokerlab.health import BrokerStatus
from brokerlab.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"BROKERLAB_STATE_DIR": str(tmp_path / "state")})


@pytest.fixture
def no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "launcher_runs", lambda name, settings=None: False)


@pytest.fixture(autouse=True)
def forget_kills() -> Iterator[None]:
    faults._KILLED.clear()
    yield
    faults._KILLED.clear()


# ---------------------------------------------------------------- nodes from Settings


def test_node_names_and_addresses_come_from_settings() -> None:
    s = Settings.from_env({
        "KAFKA_CLUSTER_BOOTSTRAP_SERVERS": "k1:9001,k2:9002,k3:9003",
        "RABBITMQ_CLUSTER_URLS": "amqp://u:p@r1:7001/%2F,amqp://u:p@r2:7002/%2F",
        "REDIS_CLUSTER_NODES": "h:6390,h:6391,h:6392",
        "REDIS_SENTINELS": "s:26390,s:26391,s:26392",
    })
    assert faults.node_names("kafka", s) == ["kafka-1", "kafka-2", "kafka-3"]
    assert faults.node_names("rabbitmq", s) == ["rabbit-1", "rabbit-2"]
    assert faults.node_names("redis", s) == [
        "redis-primary", "redis-replica-1", "redis-replica-2",
        "sentinel-1", "sentinel-2", "sentinel-3"]
    assert faults.node_address("kafka-2", s) == ("k2", 9002)
    assert faults.node_address("rabbit-2", s) == ("r2", 7002)
    assert faults.node_address("redis-replica-2", s) == ("h", 6392)
    assert faults.node_address("sentinel-3", s) == ("s", 26392)
    assert faults.node_broker("sentinel-1", s) == "redis"
    with pytest.raises(ValueError, match="unknown node 'kafka-4'"):
        faults.node_address("kafka-4", s)
    with pytest.raises(ValueError, match="unknown broker"):
        faults.node_names("zookeeper", s)


def test_default_node_names_match_the_compose_services() -> None:
    compose = Path(__file__).parents[1] / "docker-compose.cluster.yml"
    text = compose.read_text()
    for broker in faults.BROKERS:
        for name in faults.node_names(broker, Settings()):
            assert f"\n  {name}:" in text, f"{name} is not a service of {compose.name}"


def test_a_stopped_node_does_not_answer_and_costs_little(settings: Settings) -> None:
    s = replace(settings, kafka_cluster_bootstrap_servers=("127.0.0.1:1", "127.0.0.1:2"),
                redis_cluster_nodes=("127.0.0.1:3",), redis_sentinels=("127.0.0.1:4",),
                rabbitmq_cluster_urls=("amqp://guest:guest@127.0.0.1:5/%2F",))
    started = time.monotonic()
    assert faults.down_nodes("kafka", s) == ["kafka-1", "kafka-2"]
    assert faults.down_nodes("redis", s) == ["redis-primary", "sentinel-1"]
    assert faults.down_nodes("rabbitmq", s) == ["rabbit-1"]
    assert time.monotonic() - started < 2


def test_compose_commands() -> None:
    assert faults.compose_command("restart", "redis") == "docker compose restart redis"
    assert faults.compose_command("kill", "kafka-2") == (
        "docker compose -f docker-compose.yml -f docker-compose.cluster.yml "
        "--profile cluster kill kafka-2")
    with pytest.raises(ValueError):
        faults.compose_command("rm", "kafka-2")


# ---------------------------------------------------------------- commands


def test_a_failing_command_names_itself_its_exit_code_and_output(settings: Settings) -> None:
    with pytest.raises(faults.FaultError) as info:
        faults.run_command("echo the broker said no; exit 3", settings)
    message = str(info.value)
    assert "`echo the broker said no; exit 3`" in message
    assert "exit code 3" in message and "the broker said no" in message


def test_a_missing_command_fails_with_the_shells_127(settings: Settings) -> None:
    with pytest.raises(faults.FaultError, match="exit code 127") as info:
        faults.run_command("no-such-command-brokerlab restart redis", settings)
    assert "no-such-command-brokerlab" in str(info.value)


def test_a_hanging_command_is_stopped(settings: Settings) -> None:
    started = time.monotonic()
    with pytest.raises(faults.FaultError, match="did not finish within"):
        faults.run_command("sleep 30", settings, timeout=0.5)
    assert time.monotonic() - started < 5


def test_a_command_that_leaves_a_process_running_returns(settings: Settings) -> None:
    # A restart command starts a broker that lives on with the command's output open.
    started = time.monotonic()
    output = faults.run_command("sleep 5 & echo started", settings, timeout=10)
    assert output == "started" and time.monotonic() - started < 3


def test_commands_see_the_settings_they_were_given(settings: Settings) -> None:
    s = replace(settings, redis_url="redis://example.test:6399/0")
    assert faults.run_command("echo $REDIS_URL", s) == "redis://example.test:6399/0"


def test_a_template_with_an_unknown_placeholder_is_refused(settings: Settings) -> None:
    s = replace(settings, restart_command="restart {service}")
    with pytest.raises(faults.FaultError, match="placeholder"):
        faults.restart("redis", settings=s, echo=lambda _: None)


# ---------------------------------------------------------------- restart


def _fake_broker(monkeypatch: pytest.MonkeyPatch, answers: list[bool],
                 uptimes: list[float | None]) -> None:
    """Answers and uptimes in turn; the last one repeats."""
    def next_of(values: list) -> object:
        return values.pop(0) if len(values) > 1 else values[0]

    monkeypatch.setattr(faults, "_answers", lambda broker, settings: next_of(answers))
    monkeypatch.setattr(faults, "_uptime", lambda broker, settings: next_of(uptimes))


def test_restart_through_a_template(settings: Settings, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    done = tmp_path / "done"
    s = replace(settings, restart_command=f"echo {{broker}} {{mode}} > {done}")
    _fake_broker(monkeypatch, [True], [5000.0, 0.5])
    lines: list[str] = []
    seconds = faults.restart("redis", crash=True, settings=s, echo=lines.append)
    assert done.read_text().strip() == "redis crash"
    assert seconds < 5 and "Restarting Redis (crash)" in lines[0]


def test_restart_that_did_not_restart_is_an_error(settings: Settings, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    s = replace(settings, restart_command="true")
    _fake_broker(monkeypatch, [True], [5000.0])
    with pytest.raises(faults.FaultError, match="did not restart"):
        faults.restart("rabbitmq", settings=s, echo=lambda _: None)


def test_restart_with_a_failing_template_stops_at_once(settings: Settings,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    s = replace(settings, restart_command="docker-not-here compose restart {broker}")
    _fake_broker(monkeypatch, [True], [5000.0])
    started = time.monotonic()
    with pytest.raises(faults.FaultError, match="exit code 127") as info:
        faults.restart("kafka", settings=s, echo=lambda _: None)
    assert "docker-not-here compose restart kafka" in str(info.value)
    assert time.monotonic() - started < 5


def test_restart_through_the_launcher_uses_its_command_line(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(faults, "launcher_runs", lambda name, settings=None: name == "kafka")
    monkeypatch.setattr(faults, "run_command",
                        lambda command, settings, timeout=0: calls.append(command) or "")
    _fake_broker(monkeypatch, [True], [None])
    faults.restart("kafka", crash=True, settings=settings, echo=lambda _: None)
    assert calls == [[*faults.LAUNCHER, "restart", "kafka", "--crash"]]


def test_restart_by_the_learner_waits_for_down_then_up(
        settings: Settings, no_launcher: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_broker(monkeypatch, [True, True, False, False, True], [None])
    lines: list[str] = []
    faults.restart("rabbitmq", settings=settings, timeout=10, echo=lines.append)
    assert "docker compose restart rabbitmq" in lines[0]
    assert lines[-1].startswith("RabbitMQ is back")


def test_restart_by_the_learner_is_bounded(settings: Settings, no_launcher: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_broker(monkeypatch, [True], [9999.0])
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="kept running"):
        faults.restart("redis", crash=True, settings=settings, timeout=0.5,
                       echo=lambda _: None)
    assert time.monotonic() - started < 3


# ---------------------------------------------------------------- kill and start nodes


def test_kill_and_start_through_templates(settings: Settings, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "commands"
    s = replace(settings, kill_node_command=f"echo kill {{node}} {{broker}} {{mode}} >> {log}",
                start_node_command=f"echo start {{node}} {{broker}} {{mode}} >> {log}")
    alive = {"kafka-2": True}
    monkeypatch.setattr(faults, "port_open", lambda host, port, timeout=0.5: alive["kafka-2"])
    monkeypatch.setattr(faults, "node_answers",
                        lambda name, settings=None, timeout=2.0: alive[name])

    def run_and_flip(command: object, settings: Settings, timeout: float = 0) -> str:
        output = real_run(command, settings)
        alive["kafka-2"] = str(command).startswith("echo start")
        return output

    real_run = faults.run_command
    monkeypatch.setattr(faults, "run_command", run_and_flip)
    faults.kill_node("kafka-2", settings=s, echo=lambda _: None)
    assert faults._KILLED == {"kafka-2": "template"}
    faults.start_node("kafka-2", settings=s, echo=lambda _: None)
    assert log.read_text().splitlines() == ["kill kafka-2 kafka crash",
                                            "start kafka-2 kafka graceful"]
    assert faults._KILLED == {}


def test_kill_by_the_learner_says_what_to_run_and_is_bounded(
        settings: Settings, no_launcher: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "port_open", lambda host, port, timeout=0.5: True)
    lines: list[str] = []
    with pytest.raises(TimeoutError, match="still listens"):
        faults.kill_node("rabbit-2", settings=settings, timeout=0.3, echo=lines.append)
    assert "--profile cluster kill rabbit-2" in lines[0]


def test_a_node_the_launcher_killed_is_started_by_the_launcher(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    up = {"redis-replica-1": False}
    monkeypatch.setattr(faults, "launcher_runs", lambda name, settings=None: True)
    monkeypatch.setattr(faults, "node_answers",
                        lambda name, settings=None, timeout=2.0: up.get(name, True))
    monkeypatch.setattr(faults, "port_open", lambda host, port, timeout=0.5: False)

    def fake_run(command: object, settings: Settings, timeout: float = 0) -> str:
        calls.append(command)
        up["redis-replica-1"] = "start" in list(command)  # type: ignore[arg-type]
        return ""

    monkeypatch.setattr(faults, "run_command", fake_run)
    faults.kill_node("redis-replica-1", settings=settings, echo=lambda _: None)
    assert faults.restore_nodes("redis", settings=settings, echo=lambda _: None) == [
        "redis-replica-1"]
    assert calls == [[*faults.LAUNCHER, "node", "kill", "redis-replica-1"],
                     [*faults.LAUNCHER, "node", "start", "redis-replica-1"]]


# ---------------------------------------------------------------- a broker that died


ERRORS = {
    "rabbitmq": pika.exceptions.StreamLostError("Transport indicated EOF"),
    "redis": redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379."),
    # kafka-python 3.0's error when no bootstrap server answers (2.x: NoBrokersAvailable).
    "kafka": kafka.errors.KafkaTimeoutError("Unable to bootstrap from ['127.0.0.1:9092']"),
}


def _down(broker: str, settings: Settings | None = None, *, timeout: float = 4.0,
          deep: bool = False) -> BrokerStatus:
    return BrokerStatus(broker, False, "somewhere", "connection refused", 0.0)


@pytest.mark.parametrize("broker, name", [
    ("rabbitmq", "RabbitMQ"), ("redis", "Redis"), ("kafka", "Kafka")])
def test_a_dead_broker_gets_the_courses_message(broker: str, name: str, settings: Settings,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "check", _down)
    log = health.launcher_log(broker, settings)
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(40)) + "killed by the OOM killer\n")
    message = health.explain_failure(ERRORS[broker], settings)
    assert message is not None
    assert message.startswith(f"{name} stopped answering at {settings.display_url(broker)}")
    assert type(ERRORS[broker]).__name__ in message
    assert "killed by the OOM killer" in message and "line 10\n" not in message
    assert "make brokers" in message and f"backstage start {broker}" in message


def test_without_a_launcher_log_the_message_says_how_to_start_it(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "check", _down)
    message = health.explain_failure(ERRORS["redis"], settings)
    assert message is not None and "docker compose up -d redis" in message
    assert "log" not in message.split("\n")[1]


def test_an_error_from_a_broker_that_answers_keeps_its_traceback(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "check", lambda broker, settings=None, **kw: BrokerStatus(
        broker, True, "somewhere", "ok", 0.0))
    assert health.explain_failure(ERRORS["kafka"], settings) is None
    assert health.explain_failure(ValueError("not a broker's"), settings) is None


def test_the_handler_shows_the_message_in_place_of_the_bare_error(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython

    class Shell:
        def set_custom_exc(self, kinds: tuple, handler: object) -> None:
            self.kinds, self.handler = kinds, handler

        def showtraceback(self, exc_tuple: tuple, tb_offset: int | None = None) -> None:
            self.shown = exc_tuple

    shell = Shell()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    monkeypatch.setattr(health, "check", _down)
    assert health.install_failure_handler(settings)
    assert pika.exceptions.AMQPConnectionError in shell.kinds
    shell.handler(shell, type(ERRORS["redis"]), ERRORS["redis"], None)
    etype, value, _ = shell.shown
    assert etype is health.BrokerDown and "Redis stopped answering" in str(value)

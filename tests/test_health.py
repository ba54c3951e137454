"""require() fails fast with an actionable message when a broker is down or hangs."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from brokerlab.health import BrokerUnavailable, check, require
from brokerlab.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a hung broker."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def _settings(port: int) -> Settings:
    return Settings.from_env({
        "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{port}/%2F",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
    })


@pytest.mark.parametrize("broker, name, hint", [
    ("redis", "Redis", "REDIS_URL"),
    ("rabbitmq", "RabbitMQ", "RABBITMQ_URL"),
    ("kafka", "Kafka", "KAFKA_BOOTSTRAP_SERVERS"),
])
@pytest.mark.parametrize("kind", ["stopped", "hung"])
def test_require_fails_within_5_seconds(broker: str, name: str, hint: str, kind: str,
                                        silent_port: int) -> None:
    port = _free_port() if kind == "stopped" else silent_port
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        require(broker, settings=_settings(port))
    elapsed = time.monotonic() - t0
    message = str(info.value)
    assert elapsed < 5.5, f"require({broker!r}) took {elapsed:.1f} s on a {kind} broker"
    assert f"{name} is not reachable at" in message and str(port) in message
    assert "make brokers" in message and hint in message


@pytest.mark.brokers
@pytest.mark.parametrize("broker", ["redis", "rabbitmq", "kafka"])
def test_running_brokers_answer_a_round_trip(broker: str) -> None:
    status = check(broker, deep=True)
    assert status.ok, status.detail


def test_login_refusals_are_told_apart_from_brokers_down() -> None:
    import pika.exceptions
    import redis.exceptions

    from brokerlab.health import login_refused, login_user

    assert login_refused("rabbitmq", pika.exceptions.ProbableAuthenticationError("403"))
    assert login_refused("redis", redis.exceptions.AuthenticationError("WRONGPASS"))
    assert not login_refused("redis", redis.exceptions.ConnectionError("refused"))
    assert not login_refused("rabbitmq", pika.exceptions.AMQPConnectionError("refused"))
    settings = Settings(rabbitmq_url="amqps://alice:pw@h:5671/alice",
                        redis_url="rediss://h:6390/0")
    assert login_user("rabbitmq", settings) == "alice"
    assert login_user("redis", settings) == "default"


@pytest.mark.brokers
def test_a_wrong_password_says_authentication_failed_without_a_traceback() -> None:
    from brokerlab.health import LoginRefused

    good = Settings.from_env()
    url = good.rabbitmq_url.replace(":guest@", ":not-the-password@")
    if url == good.rabbitmq_url:
        pytest.skip("RABBITMQ_URL does not log in as guest:guest here")
    wrong = Settings(rabbitmq_url=url, redis_url=good.redis_url,
                     kafka_bootstrap_servers=good.kafka_bootstrap_servers)
    started = time.monotonic()
    with pytest.raises(LoginRefused) as refused:
        require("rabbitmq", settings=wrong)
    assert time.monotonic() - started < 10
    message = str(refused.value)
    assert "authentication failed for guest" in message and "not-the-password" not in message
    assert "Start it with" not in message  # the broker runs: starting it is not the answer
    assert refused.value._render_traceback_()[0].startswith("LoginRefused: RabbitMQ")

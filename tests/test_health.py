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

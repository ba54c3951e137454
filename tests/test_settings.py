from pathlib import Path

import pytest

from brokerlab.settings import Settings, SettingsError, redact


def test_defaults_are_localhost() -> None:
    s = Settings.from_env({})
    assert s.rabbitmq_url.startswith("amqp://guest:guest@127.0.0.1:5672")
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.kafka_bootstrap_servers == ("127.0.0.1:9092",)
    assert s.namespace == "course"
    assert s.kafka_client_config() == {
        "bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "PLAINTEXT"}


def test_tls_and_sasl_urls_are_accepted() -> None:
    s = Settings.from_env({
        "RABBITMQ_URL": "amqps://alice:secret@mq.example.org:5671/course",
        "REDIS_URL": "rediss://:pw@cache.example.org:6380/2",
        "KAFKA_BOOTSTRAP_SERVERS": "k1.example.org:9093, k2.example.org:9093",
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "alice",
        "KAFKA_SASL_PASSWORD": "secret",
        "KAFKA_SSL_CAFILE": "/etc/ssl/ca.pem",
        "COURSE_NAMESPACE": "Alice",
    })
    assert s.kafka_bootstrap_servers == ("k1.example.org:9093", "k2.example.org:9093")
    config = s.kafka_client_config()
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "alice"
    assert config["ssl_cafile"] == "/etc/ssl/ca.pem"
    assert s.namespace == "alice"
    assert "secret" not in s.display_url("rabbitmq")
    assert "secret" not in repr(s)


@pytest.mark.parametrize("env, words", [
    ({"RABBITMQ_URL": "http://x"}, "RABBITMQ_URL"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
    ({"KAFKA_BOOTSTRAP_SERVERS": "localhost"}, "host:port"),
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "KAFKA_SASL_MECHANISM"),
    ({"COURSE_NAMESPACE": "bad name!"}, "COURSE_NAMESPACE"),
])
def test_bad_values_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        Settings.from_env(env)


def test_redact_hides_only_the_password() -> None:
    assert redact("amqp://guest:guest@h:5672/%2F") == "amqp://guest:***@h:5672/%2F"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"


def test_state_dir_from_env(tmp_path: Path) -> None:
    s = Settings.from_env({"BROKERLAB_STATE_DIR": str(tmp_path)})
    assert s.state_dir == tmp_path

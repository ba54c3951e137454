"""brokerlab.bench.kafka: parsing Kafka's own benchmark tools (pure: captured output, no
broker, no Java)."""

import pytest

from brokerlab import bench
from brokerlab.bench import kafka as kbench
from brokerlab.settings import Settings

# Captured from Kafka 4.3.1's tools against the course's single-node broker.
PRODUCER_PLAIN = (
    "20000 records sent, 12300.123001 records/sec (1.17 MB/sec), 227.13 ms avg latency, "
    "677.00 ms max latency, 230 ms 50th, 366 ms 95th, 371 ms 99th, 372 ms 99.9th.\n")
PRODUCER_WARMUP = (
    "Warmup first 1000 records. Steady state results will print after the complete "
    "test summary.\n"
    "5000 records sent, 5605.381166 records/sec (0.53 MB/sec), 35.52 ms avg latency, "
    "584.00 ms max latency, 35 ms 50th, 53 ms 95th, 59 ms 99th, 74 ms 99.9th.\n"
    "4000 steady state records sent, 14234.875445 records/sec (1.36 MB/sec), 31.62 ms avg "
    "latency, 54.00 ms max latency, 32 ms 50th, 45 ms 95th, 49 ms 99th, 50 ms 99.9th.\n")
CONSUMER = (
    "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
    "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
    "2026-12-01 05:52:37:661, 2026-12-01 05:52:39:198, 1.9073, 1.2410, 20000, 13012.3617, "
    "875, 662, 2.8812, 30211.4804\n")


def test_producer_summary_becomes_a_row_in_microseconds() -> None:
    row = kbench.parse_producer_performance(PRODUCER_PLAIN, "pp", {"role": "native"})
    assert row.source == "ProducerPerformance"
    assert row.messages == 20000
    assert row.rate == pytest.approx(12300.12, rel=1e-3)
    assert (row.p50_us, row.p99_us, row.p999_us) == (230_000, 371_000, 372_000)
    assert row.extra["role"] == "native" and row.extra["max_ms"] == 677.0


def test_producer_steady_state_line_wins_after_a_warm_up() -> None:
    row = kbench.parse_producer_performance(PRODUCER_WARMUP, "pp")
    assert row.messages == 4000
    assert row.rate == pytest.approx(14234.9, rel=1e-3)
    assert row.p99_us == 49_000
    assert "steady" in row.note


def test_consumer_summary_rate_excludes_joining_the_group() -> None:
    row = kbench.parse_consumer_performance(CONSUMER, "cp", {"side": "consume"})
    assert row.source == "ConsumerPerformance"
    assert row.messages == 20000
    assert row.seconds == pytest.approx(0.662)
    assert row.rate == pytest.approx(30211.48, rel=1e-3)
    assert row.p99_us is None
    assert row.extra == {"rebalance_ms": 875.0, "mb_per_s": 2.8812, "side": "consume"}


@pytest.mark.parametrize("output", ["", "Exception in thread main\n", "start.time, end.time\n"])
def test_output_without_a_summary_is_an_error(output: str) -> None:
    with pytest.raises(ValueError, match="summary"):
        kbench.parse_producer_performance(output, "pp")
    with pytest.raises(ValueError, match="summary"):
        kbench.parse_consumer_performance(output, "cp")


def test_no_jars_gives_a_row_that_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_jars(name: str) -> None:
        raise bench.ToolMissing(f"{name} jars not found")

    monkeypatch.setattr(kbench, "find_jars", no_jars)
    produced = kbench.producer_performance(Settings(), label="pp", topic="t", records=10,
                                           size=100, acks="all")
    consumed = kbench.consumer_performance(Settings(), label="cp", topic="t", messages=10,
                                           group="g")
    for row in (produced, consumed):
        assert row.rate is None and "jars not found" in row.note
    assert produced.extra["role"] == "native" and produced.extra["side"] == "produce"
    assert consumed.extra["side"] == "consume" and consumed.source == "ConsumerPerformance"


def test_java_properties_follow_the_settings() -> None:
    assert kbench.java_properties(Settings()) == {}
    props = kbench.java_properties(Settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="u", kafka_sasl_password="p", kafka_ssl_cafile="/ca.pem"))
    assert props["security.protocol"] == "SASL_SSL"
    assert "ScramLoginModule" in props["sasl.jaas.config"] and 'password="p"' in props[
        "sasl.jaas.config"]
    assert props["ssl.truststore.type"] == "PEM"

"""brokerlab.bench.redis: redis-benchmark's command line and CSV (pure: no broker)."""

import pytest

from brokerlab import bench
from brokerlab.bench import redis as rb
from brokerlab.settings import Settings

# Captured from redis-benchmark 7.0.15 (Debian redis-tools) against Redis 7.0.15:
#   redis-benchmark -n 20000 -c 1 -P 100 --csv XADD probe-bench-stream '*' f xxxx
SAMPLE = (
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
    '"p99_latency_ms","max_latency_ms"\n'
    '"XADD probe-bench-stream * f xxxx","285714.28","0.332","0.136","0.247","0.959",'
    '"2.687","4.671"\n'
)


def test_the_csv_row_is_parsed_into_numbers() -> None:
    figures = rb.parse_csv(SAMPLE)
    assert figures["rps"] == pytest.approx(285714.28)
    assert figures["p99_latency_ms"] == pytest.approx(2.687)
    assert figures["p50_latency_ms"] == pytest.approx(0.247)


def test_a_row_has_the_rate_and_p99_in_microseconds() -> None:
    row = rb.result_from(rb.parse_csv(SAMPLE), label="XADD P100", requests=20000,
                         extra={"pipeline": 100})
    assert row.source == "redis-benchmark"
    assert row.rate == pytest.approx(285714, rel=1e-3)
    assert row.p99_us == pytest.approx(2687)
    assert row.p50_us == pytest.approx(247)
    assert row.p999_us is None
    assert row.extra["pipeline"] == 100


def test_output_without_a_result_row_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no result row"):
        rb.parse_csv("Could not connect to Redis at 127.0.0.1:1: Connection refused\n")


def test_the_command_line_names_the_server_the_command_and_csv() -> None:
    argv = rb.benchmark_argv("redis://:s3cret@redis.example:6380/2", ["SET", "ns-k", "v"],
                             requests=1000, pipeline=10)
    assert argv[0] == "redis-benchmark"
    assert argv[-4:] == ["--csv", "SET", "ns-k", "v"]
    joined = " ".join(argv)
    for part in ("-h redis.example", "-p 6380", "--dbnum 2", "-a s3cret", "-n 1000",
                 "-P 10", "-c 1"):
        assert part in joined
    assert "-r" not in argv  # never __rand_int__ keys


def test_tls_unix_and_default_urls() -> None:
    assert "--tls" in rb.connection_args("rediss://h:6379/0")
    assert rb.connection_args("unix:///run/redis.sock?db=3") == ["-s", "/run/redis.sock",
                                                                 "--dbnum", "3"]
    assert rb.connection_args("redis://127.0.0.1:6379") == ["-h", "127.0.0.1", "-p", "6379",
                                                            "--dbnum", "0"]
    assert rb.connection_args("redis://alice:pw@h/0")[-4:] == ["-a", "pw", "--user", "alice"]


def test_without_a_command_it_refuses_to_run_the_default_suite() -> None:
    with pytest.raises(ValueError, match="explicit command"):
        rb.benchmark_argv("redis://127.0.0.1:6379/0", [], requests=10)


def test_an_unreachable_redis_gives_a_missing_row_saying_why() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    row = rb.redis_benchmark(settings, label="SET", command=["SET", "k", "v"], requests=10)
    assert row.rate is None and row.source == "redis-benchmark"
    assert "did not answer" in row.note


def test_a_missing_tool_gives_a_missing_row(monkeypatch) -> None:
    monkeypatch.setattr(rb, "reachable", lambda settings: None)
    monkeypatch.setattr(rb, "TOOL", "redis-benchmark-not-installed")
    row = rb.redis_benchmark(Settings(), label="SET", command=["SET", "k", "v"], requests=10)
    assert row.rate is None and "not found" in row.note
    assert isinstance(bench.ToolMissing("x"), RuntimeError)

"""brokerlab.bench.rabbitmq: PerfTest's command line and summary (pure: no broker, no Java)."""

import pytest

from brokerlab import bench
from brokerlab.bench import rabbitmq as perf
from brokerlab.settings import Settings

# The end of a real 3 s run (PerfTest 2.22.1, -x 1 -y 1 -s 100 -c 50 -f persistent).
SAMPLE = """\
id: t1, starting consumer #0
id: t1, starting consumer #0, channel #0
id: t1, starting producer #0
id: t1, starting producer #0, channel #0
id: t1, time 1.001 s, sent: 3365 msg/s, confirmed: 3366 msg/s, nacked: 0 msg/s, \
received: 3361 msg/s, min/median/75th/95th/99th consumer latency: 251/3687/5903/12254/24535 µs, \
confirm latency: 188/1434/3183/5567/18183 µs
id: t1, time 2.001 s, sent: 7059 msg/s, confirmed: 7008 msg/s, nacked: 0 msg/s, \
received: 7063 msg/s, min/median/75th/95th/99th consumer latency: \
254/45958/78537/177666/219916 µs, \
confirm latency: 221/1920/2822/6293/9433 µs
test stopped (Reached time limit)
id: t1, sending rate avg: 2334 msg/s
id: t1, receiving rate avg: 2334 msg/s
id: t1, consumer latency min/median/75th/95th/99th 176/486/737/2980/4250 µs
id: t1, confirm latency min/median/75th/95th/99th 117/290/377/540/1633 µs
"""


def test_the_summary_not_the_per_second_lines_is_read() -> None:
    summary = perf.parse_summary(SAMPLE)
    assert summary.sending_rate == 2334 and summary.receiving_rate == 2334
    assert (summary.consumer_p50_us, summary.consumer_p99_us) == (486, 4250)
    assert (summary.confirm_p50_us, summary.confirm_p99_us) == (290, 1633)


def test_without_confirms_or_consumers_the_latencies_are_none() -> None:
    output = "id: a, sending rate avg: 90000 msg/s\nid: a, receiving rate avg: 0 msg/s\n"
    summary = perf.parse_summary(output)
    assert summary.sending_rate == 90000 and summary.receiving_rate == 0
    assert summary.confirm_p99_us is None and summary.consumer_p99_us is None


def test_milliseconds_are_turned_into_microseconds() -> None:
    output = ("id: a, sending rate avg: 10 msg/s\nid: a, receiving rate avg: 10 msg/s\n"
              "id: a, consumer latency min/median/75th/95th/99th 1/2/3/4/5 ms\n")
    assert perf.parse_summary(output).consumer_p99_us == 5000


def test_output_without_a_summary_is_an_error_that_shows_it() -> None:
    with pytest.raises(ValueError, match="vhost  not found"):
        perf.parse_summary("NOT_ALLOWED - vhost  not found\ntest stopped\n")


def test_the_command_line_names_the_queue_and_uses_amq_direct(tmp_path, monkeypatch) -> None:
    (tmp_path / "perftest-x" / "lib").mkdir(parents=True)
    (tmp_path / "perftest-x" / "lib" / ".complete").touch()
    monkeypatch.setenv("BROKERLAB_CACHE_DIR", str(tmp_path))
    argv = perf.perftest_argv(Settings(), label="t", seconds=2, size=100, queue="course-q",
                              confirm=500, consumers=0, prefetch=50, multi_ack=10)
    assert argv[:4] == ["java", "-cp", f"{tmp_path}/perftest-x/lib/*",
                        "com.rabbitmq.perf.PerfTest"]
    pairs = dict(zip(argv[4::2], argv[5::2], strict=False))
    assert pairs["-u"] == pairs["-k"] == "course-q" and pairs["-e"] == "amq.direct"
    assert (pairs["-c"], pairs["-y"], pairs["-q"], pairs["-A"]) == ("500", "0", "50", "10")
    assert "-a" not in argv and ["-f", "persistent"] == argv[argv.index("-f"):][:2]


def test_no_jars_make_a_row_that_says_why(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BROKERLAB_CACHE_DIR", str(tmp_path))
    row = perf.perftest(label="PerfTest", seconds=1, size=100, queue="course-q")
    assert row.rate is None and row.source == "PerfTest"
    assert "make brokers" in row.note


def test_a_run_becomes_a_row_of_its_side(monkeypatch) -> None:
    monkeypatch.setattr(perf, "perftest_argv", lambda *a, **k: ["java"])
    monkeypatch.setattr(perf, "run_tool", lambda *a, **k: SAMPLE)
    produce = perf.perftest(label="p", seconds=3, size=100, confirm=50, queue="q")
    consume = perf.perftest(label="c", seconds=3, size=100, queue="q", side="consume")
    assert produce.rate == pytest.approx(2334, abs=1) and produce.p99_us == 1633
    assert consume.p99_us == 4250 and consume.extra["side"] == "consume"
    assert produce.extra["role"] == "native" and produce.source == "PerfTest"


def test_a_failed_run_is_a_missing_row_without_the_password(monkeypatch) -> None:
    settings = Settings(rabbitmq_url="amqp://u:secret@example.invalid:5672/%2F")

    def fails(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError(f"PerfTest failed: cannot reach {settings.rabbitmq_url}")

    monkeypatch.setattr(perf, "perftest_argv", lambda *a, **k: ["java"])
    monkeypatch.setattr(perf, "run_tool", fails)
    row = perf.perftest(settings, label="p", seconds=1, size=10, queue="q")
    assert row.rate is None and "secret" not in row.note and "example.invalid" in row.note
    assert isinstance(row, bench.Result)

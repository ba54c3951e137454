"""Kafka's own benchmark tools, run from the course's install (lesson 05.04).

`ProducerPerformance` and `ConsumerPerformance` ship in the `kafka-tools` jar of the
broker's release (`kafka-producer-perf-test.sh` / `kafka-consumer-perf-test.sh` in the
Kafka distribution); `make brokers` fetched it with the broker's jars. Each runner starts
one small JVM, waits for it (bounded), and parses its summary into a `bench.Result`
comparable with the lesson's Python rows. Where Java or the jars are missing (external
brokers, the compose image) the row is `Result.missing(...)` saying why.

    from brokerlab.bench import kafka as kbench
    row = kbench.producer_performance(run.settings, label="ProducerPerformance",
                                      topic=run.topic("perf"), records=20_000, size=100,
                                      acks="all")
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from brokerlab.bench import Result, ToolMissing, find_jars, run_tool
from brokerlab.settings import Settings, get_settings

__all__ = ["CONSUMER_TOOL", "PRODUCER_TOOL", "java_command", "java_properties",
           "parse_consumer_performance", "parse_producer_performance",
           "producer_performance", "consumer_performance"]

PRODUCER_TOOL = "ProducerPerformance"
CONSUMER_TOOL = "ConsumerPerformance"
# A small heap and the serial collector: the tools need little memory, and the lesson
# runs on Binder's one CPU next to the broker's own JVM.
JVM_OPTIONS = ("-Xmx256m", "-Xms64m", "-XX:+UseSerialGC")

# "20000 records sent, 12300.1 records/sec (1.17 MB/sec), 227.13 ms avg latency,
#  677.00 ms max latency, 230 ms 50th, 366 ms 95th, 371 ms 99th, 372 ms 99.9th."
# With --warmup-records a second line follows: "4000 steady state records sent, ...".
_PRODUCER_LINE = re.compile(
    r"(?P<records>\d+) (?P<steady>steady state )?records sent, "
    r"(?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>[\d.]+) ms 50th, (?P<p95>[\d.]+) ms 95th, "
    r"(?P<p99>[\d.]+) ms 99th, (?P<p999>[\d.]+) ms 99\.9th\.")


def java_properties(settings: Settings) -> dict[str, str]:
    """The Java client properties matching `settings.kafka_client_config()` beyond the
    bootstrap servers (security protocol, SASL, a PEM CA file); empty for PLAINTEXT."""
    props: dict[str, str] = {}
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return props
    props["security.protocol"] = protocol
    if protocol.startswith("SASL"):
        mechanism = settings.kafka_sasl_mechanism or "PLAIN"
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule"
                  if mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        props["sasl.mechanism"] = mechanism
        props["sasl.jaas.config"] = (f'{module} required username="{settings.kafka_sasl_username}" '
                                     f'password="{settings.kafka_sasl_password}";')
    if settings.kafka_ssl_cafile:
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = settings.kafka_ssl_cafile
    return props


def java_command(tool_class: str, args: Sequence[str]) -> list[str]:
    """`java ... -cp '<kafka jars>/*' <tool_class> <args>`; ToolMissing without the jars."""
    jars = find_jars("kafka")
    return ["java", *JVM_OPTIONS, "-cp", f"{jars}/*", tool_class, *args]


def _run_java(tool_class: str, args: Sequence[str], settings: Settings, *,
              timeout: float, what: str) -> str:
    """Run a tool with the connection properties in a temporary file (so a password
    never shows in the process list)."""
    props = java_properties(settings)
    with tempfile.TemporaryDirectory(prefix="brokerlab-kafka-") as folder:
        extra: list[str] = []
        if props:
            path = Path(folder) / "client.properties"
            path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
            extra = ["--command-config", str(path)]
        return run_tool(java_command(tool_class, [*args, *extra]), timeout=timeout, what=what)


def parse_producer_performance(output: str, label: str,
                               extra: Mapping[str, object] | None = None) -> Result:
    """The tool's summary as a Result: the steady-state line when the run had warm-up
    records, else the whole-run line. Latencies are the tool's, send to acknowledgement."""
    found = list(_PRODUCER_LINE.finditer(output))
    if not found:
        raise ValueError(f"no ProducerPerformance summary in:\n{output[-800:]}")
    line = next((m for m in found if m["steady"]), found[-1])
    records, rate = int(line["records"]), float(line["rate"])
    return Result(
        label=label, messages=records, seconds=round(records / rate, 4) if rate else 0.0,
        p50_us=float(line["p50"]) * 1000, p99_us=float(line["p99"]) * 1000,
        p999_us=float(line["p999"]) * 1000, source=PRODUCER_TOOL,
        note="steady state after warm-up" if line["steady"] else "",
        extra={"avg_ms": float(line["avg"]), "max_ms": float(line["max"]),
               "p95_ms": float(line["p95"]), "mb_per_s": float(line["mb"]), **(extra or {})})


def parse_consumer_performance(output: str, label: str,
                               extra: Mapping[str, object] | None = None) -> Result:
    """The tool's CSV-like summary (a header line, then one line of values) as a Result.

    The rate is over `fetch.time.ms`: the tool's time minus joining the group
    (`rebalance.time.ms`, kept in `extra`), like a Python loop timed from its first
    record. No latencies: the tool does not measure them."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    header = next((i for i, line in enumerate(lines) if line.startswith("start.time")), None)
    if header is None or header + 1 >= len(lines):
        raise ValueError(f"no ConsumerPerformance summary in:\n{output[-800:]}")
    names = [n.strip() for n in lines[header].split(",")]
    values = [v.strip() for v in lines[header + 1].split(",")]
    row = dict(zip(names, values, strict=False))
    messages = int(row["data.consumed.in.nMsg"])
    fetch_ms = float(row["fetch.time.ms"])
    return Result(
        label=label, messages=messages, seconds=round(fetch_ms / 1000, 4),
        source=CONSUMER_TOOL, note="rate excludes joining the group",
        extra={"rebalance_ms": float(row["rebalance.time.ms"]),
               "mb_per_s": float(row["fetch.MB.sec"]), **(extra or {})})


def producer_performance(settings: Settings | None = None, *, label: str, topic: str,
                         records: int, size: int, acks: str | int, linger_ms: int = 0,
                         batch_size: int = 16384, compression: str = "none",
                         warmup: int = 0, timeout: float = 60.0) -> Result:
    """Run Kafka's ProducerPerformance (05.04): `records` records of `size` bytes to
    `topic` as fast as it can (`--throughput -1`), with these producer settings.

    `warmup` records are left out of the figures (the JVM compiles its hot paths first).
    Returns `Result.missing` when Java or the jars are not here; raises RuntimeError
    when the tool ran and failed."""
    settings = settings or get_settings()
    shape = {"role": "native", "side": "produce", "size": size, "acks": str(acks),
             "linger_ms": linger_ms, "batch_size": batch_size, "compression": compression}
    args = ["--bootstrap-server", ",".join(settings.kafka_bootstrap_servers),
            "--topic", topic, "--num-records", str(records + warmup),
            "--record-size", str(size), "--throughput", "-1",
            "--command-property", f"acks={acks}", f"linger.ms={linger_ms}",
            f"batch.size={batch_size}", f"compression.type={compression}"]
    if warmup:
        args += ["--warmup-records", str(warmup)]
    return _tool_result("org.apache.kafka.tools.ProducerPerformance", PRODUCER_TOOL, args,
                        parse_producer_performance, settings, timeout, label, shape)


def consumer_performance(settings: Settings | None = None, *, label: str, topic: str,
                         messages: int, group: str, timeout: float = 60.0,
                         idle_ms: int = 5000) -> Result:
    """Run Kafka's ConsumerPerformance (05.04): read `messages` records of `topic` from
    the beginning in consumer group `group` (name it under the run's prefix, so the
    lesson's cleanup deletes it). `idle_ms` bounds the wait between records.

    Returns `Result.missing` when Java or the jars are not here; raises RuntimeError
    when the tool ran and failed."""
    settings = settings or get_settings()
    shape = {"role": "native", "side": "consume", "group": group}
    args = ["--bootstrap-server", ",".join(settings.kafka_bootstrap_servers),
            "--topic", topic, "--num-records", str(messages), "--group", group,
            "--timeout", str(idle_ms)]
    return _tool_result("org.apache.kafka.tools.ConsumerPerformance", CONSUMER_TOOL, args,
                        parse_consumer_performance, settings, timeout, label, shape)


def _tool_result(main: str, what: str, args: list[str],
                 parse: Callable[[str, str, dict[str, Any]], Result], settings: Settings,
                 timeout: float, label: str, shape: dict[str, Any]) -> Result:
    """Run one of Kafka's performance tools and parse its output into a Result row, or
    a `Result.missing` row (with the row's shape) when Java or the jars are not here."""
    try:
        output = _run_java(main, args, settings, timeout=timeout, what=what)
    except ToolMissing as why:
        return replace(Result.missing(label, str(why), what), extra=shape)
    return parse(output, label, shape)

"""RabbitMQ's own benchmark tool, PerfTest, run and read into a `bench.Result` (05.02).

05.02 compares its Python publishers and consumers with PerfTest at the same message
size and confirm setting. PerfTest (`com.rabbitmq:perf-test`, fetched by `make brokers`)
is a Java program; this module only builds its command line, runs it bounded in time
and reads the summary it prints at the end of a run:

    id: t1, sending rate avg: 2334 msg/s
    id: t1, receiving rate avg: 2334 msg/s
    id: t1, consumer latency min/median/75th/95th/99th 176/486/737/2980/4250 µs
    id: t1, confirm latency min/median/75th/95th/99th 117/290/377/540/1633 µs

Where it cannot run (no Java, no jars, a broker this machine cannot reach) the row is
`Result.missing(...)` saying why, and the lesson carries on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from brokerlab.bench import Result, ToolMissing, find_jars, run_tool
from brokerlab.settings import Settings, get_settings

__all__ = ["PerfTestSummary", "parse_summary", "perftest", "perftest_argv"]

SOURCE = "PerfTest"
# PerfTest publishes through an exchange and binds its queue to it with a routing key.
# amq.direct exists on every broker, so PerfTest leaves no exchange of its own behind
# (its default, "direct", would stay on the broker after the run).
EXCHANGE = "amq.direct"

_RATE = re.compile(r"(sending|receiving) rate avg: (\d+(?:\.\d+)?) msg/s")
_LATENCY = re.compile(r"(consumer|confirm) latency min/median/75th/95th/99th "
                      r"([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) (µs|us|ms)")


@dataclass(frozen=True)
class PerfTestSummary:
    """What PerfTest's last lines say: average rates (msg/s) and latencies (µs)."""

    sending_rate: float
    receiving_rate: float
    consumer_p50_us: float | None = None
    consumer_p99_us: float | None = None
    confirm_p50_us: float | None = None
    confirm_p99_us: float | None = None


def parse_summary(output: str) -> PerfTestSummary:
    """Read PerfTest's end-of-run summary; ValueError when the rates are not there.

    Only the summary counts: the per-second lines before it say `sent: ... msg/s`, not
    `sending rate avg`, and their latencies say `consumer latency: ...` (with a colon).
    """
    rates = {kind: float(value) for kind, value in _RATE.findall(output)}
    if "sending" not in rates or "receiving" not in rates:
        raise ValueError("no 'sending rate avg' / 'receiving rate avg' in PerfTest's output:\n"
                         + output[-800:])
    latency: dict[str, tuple[float, float]] = {}
    for kind, _low, median, _p75, _p95, p99, unit in _LATENCY.findall(output):
        scale = 1000.0 if unit == "ms" else 1.0  # -ms (--use-millis) prints milliseconds
        latency[kind] = (float(median) * scale, float(p99) * scale)
    consumer = latency.get("consumer", (None, None))
    confirm = latency.get("confirm", (None, None))
    return PerfTestSummary(rates["sending"], rates["receiving"],
                           consumer[0], consumer[1], confirm[0], confirm[1])


def perftest_argv(settings: Settings, *, label: str, seconds: int, size: int, queue: str,
                  confirm: int | None = None, producers: int = 1, consumers: int = 1,
                  prefetch: int | None = None, multi_ack: int | None = None,
                  autoack: bool = False) -> list[str]:
    """The java command line for one PerfTest run (see `java ... PerfTest --help`)."""
    argv = ["java", "-cp", f"{find_jars('perftest')}/*", "com.rabbitmq.perf.PerfTest",
            "-h", settings.rabbitmq_url,
            "--id", label,
            "-x", str(producers), "-y", str(consumers),
            "-s", str(size), "-z", str(seconds),
            "-u", queue, "-e", EXCHANGE, "-k", queue,
            # A durable queue and persistent messages (delivery mode 2), like the lesson's;
            # RabbitMQ 4 deprecates the transient shared queue PerfTest declares without it.
            "-f", "persistent"]
    if confirm is not None:
        argv += ["-c", str(confirm)]   # at most this many published, not yet confirmed
    if prefetch is not None:
        argv += ["-q", str(prefetch)]
    if multi_ack is not None:
        argv += ["-A", str(multi_ack)]  # basic.ack(multiple=true) every N messages
    if autoack:
        argv += ["-a"]
    return argv


def perftest(settings: Settings | None = None, *, label: str, seconds: int, size: int,
             confirm: int | None = None, producers: int = 1, consumers: int = 1,
             prefetch: int | None = None, multi_ack: int | None = None,
             autoack: bool = False, queue: str,
             side: Literal["produce", "consume"] = "produce",
             timeout: float | None = None) -> Result:
    """Run PerfTest for `seconds` against this course's RabbitMQ; one row (source PerfTest).

    `side="produce"` makes the row's rate the sending rate and its latency the confirm
    latency (publish to confirm); `side="consume"` the receiving rate and the consumer
    latency (publish to delivery). Both sets are kept in `extra`.
    `queue` is a name of the lesson's run (`run.queue("perftest")`): PerfTest
    declares it durable and auto-delete, so it vanishes once its consumers stop; a run
    without consumers leaves it for the lesson's cleanup. Returns `Result.missing` when
    Java, the jars or the broker cannot be reached from here.
    """
    settings = settings or get_settings()
    try:
        argv = perftest_argv(settings, label=label, seconds=seconds, size=size, queue=queue,
                             confirm=confirm, producers=producers, consumers=consumers,
                             prefetch=prefetch, multi_ack=multi_ack, autoack=autoack)
        output = run_tool(argv, timeout=timeout or seconds + 30.0, what="PerfTest")
        summary = parse_summary(output)
    except (ToolMissing, RuntimeError, ValueError) as error:
        why = str(error).replace(settings.rabbitmq_url, settings.display_url("rabbitmq"))
        return Result.missing(label, why[-600:], SOURCE)
    produce = side == "produce"
    rate = summary.sending_rate if produce else summary.receiving_rate
    p50 = summary.confirm_p50_us if produce else summary.consumer_p50_us
    p99 = summary.confirm_p99_us if produce else summary.consumer_p99_us
    extra = {"role": "native", "side": side, "size": size, "confirm": confirm,
             "producers": producers, "consumers": consumers, "prefetch": prefetch,
             "multi_ack": multi_ack, "autoack": autoack,
             "sending_rate": summary.sending_rate, "receiving_rate": summary.receiving_rate,
             "consumer_p99_us": summary.consumer_p99_us,
             "confirm_p99_us": summary.confirm_p99_us}
    # PerfTest reports an average rate, not a count: messages = rate x duration keeps
    # Result.rate equal to PerfTest's figure.
    return Result(label, messages=round(rate * seconds), seconds=float(seconds),
                  p50_us=p50, p99_us=p99, source=SOURCE, extra=extra)

"""redis-benchmark, Redis's own benchmark tool, run from Python (05.03 Redis fast).

`redis_benchmark(label=..., command=[...], requests=..., pipeline=...)` runs
`redis-benchmark` (Debian's redis-tools) against REDIS_URL with `--csv` and an explicit
command, and parses its requests per second and latency percentiles into a
`bench.Result` (source "redis-benchmark"), so the lesson compares it with its own
redis-py loops at the same pipeline depth and the same command.

Always with an explicit command: without one, redis-benchmark runs its default suite,
which writes `key:__rand_int__`, `mylist`, `myset` ... outside the run's names. With
one, it sends exactly that command `requests` times (no `-r`: `__rand_int__` is never
expanded), so it touches only the keys the command names, which the lesson takes from
its Run, and the cleanup deletes them.

Where the tool is not installed, or Redis does not answer, the row is
`Result.missing(label, why, "redis-benchmark")` and the lesson goes on.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from brokerlab.bench import Result, ToolMissing, run_tool
from brokerlab.health import check
from brokerlab.settings import Settings, get_settings

__all__ = ["benchmark_argv", "connection_args", "parse_csv", "redis_benchmark"]

SOURCE = "redis-benchmark"
TOOL = "redis-benchmark"  # /usr/bin/redis-benchmark on Debian (package redis-tools)


def connection_args(redis_url: str) -> list[str]:
    """redis-benchmark's options for the server, database and password of `redis_url`
    (redis://, rediss:// with --tls, or unix:///path?db=N)."""
    url = urlsplit(redis_url)
    if url.scheme == "unix":
        args = ["-s", url.path]
        db = parse_qs(url.query).get("db", ["0"])[0]
    else:
        args = ["-h", url.hostname or "127.0.0.1", "-p", str(url.port or 6379)]
        db = url.path.lstrip("/") or "0"
        if url.scheme == "rediss":
            args.append("--tls")
    args += ["--dbnum", str(int(db))]
    if url.password:
        # The password is on the command line (redis-benchmark reads no variable for it).
        args += ["-a", unquote(url.password)]
        if url.username:
            args += ["--user", unquote(url.username)]
    return args


def benchmark_argv(redis_url: str, command: Sequence[str], *, requests: int,
                   pipeline: int = 1, clients: int = 1) -> list[str]:
    """The full command line: one explicit command, `requests` times, `pipeline` deep,
    over `clients` connections, in CSV."""
    if not command:
        raise ValueError("give redis-benchmark an explicit command: without one it runs "
                         "its default suite on keys outside the run's names")
    if requests < 1 or pipeline < 1 or clients < 1:
        raise ValueError("requests, pipeline and clients must be at least 1")
    return [TOOL, *connection_args(redis_url), "-n", str(requests), "-P", str(pipeline),
            "-c", str(clients), "--csv", *command]


def parse_csv(output: str) -> dict[str, float]:
    """The first result row of `redis-benchmark --csv` as numbers: rps and the latencies
    in ms (avg, min, p50, p95, p99, max), keyed by the header's names."""
    rows = list(csv.reader(io.StringIO(output)))
    for head, row in zip(rows, rows[1:], strict=False):
        if head and head[0] == "test" and "rps" in head and len(row) == len(head):
            return {name: float(value) for name, value in zip(head[1:], row[1:], strict=True)}
    raise RuntimeError("no result row in redis-benchmark's output:\n" + output[-500:])


def result_from(figures: Mapping[str, float], *, label: str, requests: int,
                extra: Mapping[str, Any]) -> Result:
    """A Result row from parsed figures (ms -> µs; the tool gives no p99.9)."""
    rps = figures["rps"]

    def micros(name: str) -> float | None:
        return figures[name] * 1000 if name in figures else None

    return Result(label, messages=requests, seconds=round(requests / rps, 4) if rps else 0.0,
                  p50_us=micros("p50_latency_ms"), p99_us=micros("p99_latency_ms"),
                  p999_us=None, source=SOURCE,
                  extra={"avg_us": micros("avg_latency_ms"), **extra})


def reachable(settings: Settings) -> str | None:
    """None when Redis answers, else why not. Checked first because redis-benchmark,
    refused, retries at full CPU until its timeout."""
    status = check("redis", settings, timeout=2.0)
    return None if status.ok else f"Redis at {status.address} did not answer: {status.detail}"


def redis_benchmark(settings: Settings | None = None, *, label: str,
                    command: Sequence[str], requests: int, pipeline: int = 1,
                    clients: int = 1, timeout: float = 30.0,
                    extra: Mapping[str, Any] | None = None) -> Result:
    """Run redis-benchmark with `command` (e.g. ["SET", run.key("bench-key"), value])
    and return its row; a missing row saying why when it cannot run. Used by 05.03."""
    settings = settings or get_settings()
    argv = benchmark_argv(settings.redis_url, command, requests=requests,
                          pipeline=pipeline, clients=clients)
    why = reachable(settings)
    if why is not None:
        return Result.missing(label, why, SOURCE)
    try:
        output = run_tool(argv, timeout=timeout, what=TOOL)
        figures = parse_csv(output)
    except ToolMissing as error:
        return Result.missing(label, f"{error} (Debian: apt install redis-tools)", SOURCE)
    except RuntimeError as error:
        return Result.missing(label, str(error)[-600:], SOURCE)  # what the tool said
    return result_from(figures, label=label, requests=requests,
                       extra={"pipeline": pipeline, "clients": clients,
                              "command": command[0].upper(), **(extra or {})})

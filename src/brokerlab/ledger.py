"""Counting promises: what a producer was acknowledged against what consumers got.

Every `brokerlab.Worker` carries a `Ledger` (`worker.ledger`) that its thread fills;
cells read it and count with `tally`:

    result = tally(producer.ledger.acknowledged, consumer.ledger.delivered)
    assert not result.lost

The fault lessons (04.01-04.05) store what they counted with `record_measurement`;
04.06 loads them (`load_measurements`) and lays them side by side (`comparison_rows`,
`markdown_table`). Plumbing only: no broker is contacted here.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from brokerlab.checks import wait_until
from brokerlab.settings import Settings, get_settings

__all__ = [
    "COMPARISON_COLUMNS", "Ledger", "Tally", "cluster_memory_mb", "comparison_rows",
    "load_measurements", "longest_gap", "markdown_table", "measurements_path",
    "record_measurement", "rss_kb", "tally", "wait_done",
]

MEASUREMENTS_MAX_AGE = 12 * 3600.0  # seconds: older measurements are measured again


@dataclass
class Ledger:
    """What a producer was promised and what consumers got, filled by background threads.

    `acknowledged`: the broker confirmed it (Kafka ack, RabbitMQ publisher confirm, Redis
    reply). `failed`: the client was told it failed (and may retry). `confirmed`: Redis
    only, acknowledged *and* WAIT saw it on a replica. `delivered`: what consumers got,
    duplicates included. Appends from threads are safe (one list operation each).
    """

    acknowledged: list[str] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connected_to: list[str] = field(default_factory=list)
    reconnects: int = 0
    done: bool = False

    def ack(self, value: str) -> None:
        self.acknowledged.append(value)
        self.ack_times.append(time.monotonic())

    def fail(self, value: str, error: BaseException | str) -> None:
        self.failed.append(value)
        self.error(error)

    def error(self, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.errors.append(text[:200])

    def error_kinds(self) -> dict[str, int]:
        """How often each kind of error happened, e.g. {'KafkaConnectionError': 3}."""
        return dict(Counter(e.split(":", 1)[0] for e in self.errors))


@dataclass(frozen=True)
class Tally:
    """Acknowledged versus delivered: the count every 04 check cell asserts."""

    acknowledged: int
    delivered: int           # distinct values delivered
    lost: tuple[str, ...]    # acknowledged, never delivered
    duplicates: int          # deliveries beyond the first of a value
    unacknowledged_delivered: int  # delivered although the producer never got an ack

    def __str__(self) -> str:
        return (f"acknowledged {self.acknowledged}, delivered {self.delivered} distinct "
                f"(+{self.duplicates} duplicates), lost {len(self.lost)}"
                + (f", {self.unacknowledged_delivered} delivered without an ack"
                   if self.unacknowledged_delivered else ""))


def tally(acknowledged: Iterable[str], delivered: Iterable[str]) -> Tally:
    """Count what was promised against what arrived. Taught in 04.01, used in 04.02-04.06.

    >>> str(tally(["a", "b", "c"], ["a", "a", "c", "d"]))
    'acknowledged 3, delivered 3 distinct (+1 duplicates), lost 1, 1 delivered without an ack'
    """
    acked = list(dict.fromkeys(acknowledged))
    got = list(delivered)
    seen = set(got)
    counts = Counter(got)
    return Tally(
        acknowledged=len(acked),
        delivered=len(seen),
        lost=tuple(v for v in acked if v not in seen),
        duplicates=sum(c - 1 for c in counts.values()),
        unacknowledged_delivered=len(seen - set(acked)),
    )


def longest_gap(times: Sequence[float]) -> float:
    """The longest pause between consecutive acknowledgements: what the producer saw of
    the outage (0.0 with fewer than two). Taught in 04.01.

    >>> longest_gap([0.0, 0.1, 2.6, 2.7])
    2.5
    """
    ordered = sorted(times)
    return round(max((b - a for a, b in zip(ordered, ordered[1:], strict=False)), default=0.0), 3)


class _Running(Protocol):
    @property
    def running(self) -> bool: ...


def wait_done(*workers: _Running, timeout: float = 60.0) -> bool:
    """Wait, bounded, until each worker's thread has finished (producers that send a
    fixed count end by themselves); True if they all did. Used in 04.01-04.06."""
    return bool(wait_until(lambda: not any(w.running for w in workers), timeout=timeout,
                           interval=0.05))


# ---------------------------------------------------------------- measurements (04.06)


def measurements_path(settings: Settings | None = None, module: str = "04") -> Path:
    """Where a module's lessons store what they measured (a small JSON in the state
    folder): module 04's faults, module 05's throughput (brokerlab.bench)."""
    settings = settings or get_settings()
    return settings.state_dir / "measurements" / f"module-{module}.json"


def record_measurement(key: str, data: Mapping[str, Any], settings: Settings | None = None,
                       module: str = "04") -> Path:
    """Store one lesson's measurement under `key` (e.g. 'kafka'), stamped with the time."""
    path = measurements_path(settings, module)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    stored[key] = {**data, "measured_at": datetime.now(timezone.utc).isoformat(
        timespec="seconds")}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stored, indent=2, sort_keys=True))
    os.replace(tmp, path)  # a reader never sees half a file
    return path


def load_measurements(settings: Settings | None = None, *, module: str = "04",
                      max_age: float = MEASUREMENTS_MAX_AGE,
                      now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """The stored measurements younger than `max_age` seconds ({} when none)."""
    try:
        stored = json.loads(measurements_path(settings, module).read_text())
    except (OSError, ValueError):
        return {}
    now = now or datetime.now(timezone.utc)
    fresh = {}
    for key, data in stored.items():
        try:
            age = (now - datetime.fromisoformat(data["measured_at"])).total_seconds()
        except (KeyError, TypeError, ValueError):
            continue
        if 0 <= age <= max_age:
            fresh[key] = data
    return fresh


COMPARISON_COLUMNS = ("broker", "setting", "fault", "peers notice", "acknowledged", "lost",
                      "unreachable during the fault", "duplicates", "producer paused (s)",
                      "measured in")

# How the surviving nodes learn that a SIGKILLed node is gone. A killed process's
# sockets are closed by the kernel at once; a lost host (power cut, cable) closes
# nothing, and only timeouts tell. Every fault of module 04 is a SIGKILL.
_NOTICE = {
    "Kafka": "controller fences it after broker.session.timeout.ms (3 s here), "
             "whether the process died or the host was lost",
    "RabbitMQ": "at once: the Erlang distribution link closes (a lost host: only after "
                "net_ticktime, 60 s by default)",
    "Redis": "Sentinels after down-after-milliseconds (2 s here), whether the process "
             "died or the host was lost",
}

_ROWS = (
    # key in the measurements, broker, the setting the row measures, the fault
    ("kafka", "Kafka", "acks=all, RF 3, min ISR 2", "SIGKILL of the leader's broker"),
    ("kafka-acks1", "Kafka", "acks=1, then an unclean election",
     "SIGKILL of a follower, then of the leader"),
    ("rabbitmq", "RabbitMQ", "quorum queue + publisher confirms",
     "SIGKILL of the leader's node"),
    ("rabbitmq-classic", "RabbitMQ", "classic queue + confirms", "SIGKILL of its node"),
    ("redis", "Redis", "async replication + Sentinel", "SIGKILL of the primary"),
    ("redis-wait", "Redis", "only writes WAIT confirmed on a replica",
     "SIGKILL of the primary"),
    ("redis-unreplicated", "Redis", "writes acknowledged, WAIT said 0 replicas",
     "SIGKILL of the replicas, then of the primary"),
)


def comparison_rows(measurements: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per measured setting, in a fixed order (missing measurements are skipped).

    Each measurement holds `acknowledged` and `lost` (None: not checked); `unreachable`,
    `duplicates`, `outage` and `source` are optional. Every row says which fault it
    measured (the one its lesson injects) and how the other nodes notice it. Taught in 04.06.
    """
    rows = []
    for key, broker, setting, fault in _ROWS:
        m = measurements.get(key)
        if not m:
            continue
        lost = m.get("lost")
        rows.append({
            "key": key, "broker": broker, "setting": setting, "fault": fault,
            "peers notice": _NOTICE[broker],
            "acknowledged": int(m["acknowledged"]),
            "lost": "not checked" if lost is None else int(lost),
            "unreachable during the fault": m.get("unreachable", 0),
            "duplicates": m.get("duplicates", "-"),
            "producer paused (s)": m.get("outage", "-"),
            "measured in": m.get("source", "-"),
        })
    return rows


def markdown_table(rows: Sequence[Mapping[str, Any]],
                   columns: Sequence[str] = COMPARISON_COLUMNS) -> str:
    """Rows as a Markdown table (for IPython.display.Markdown).

    >>> print(markdown_table([{"a": 1, "b": "x"}], ["a", "b"]))
    | a | b |
    |---|---|
    | 1 | x |
    """
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- memory (04.06)


def rss_kb(status_text: str) -> int:
    """VmRSS in kB from the text of /proc/<pid>/status (0 when absent).

    >>> rss_kb("Name:\\tjava\\nVmRSS:\\t  228116 kB\\n")
    228116
    """
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status_text, re.MULTILINE)
    return int(match.group(1)) if match else 0


_NODE_BROKER = {"kafka": "kafka", "rabbit": "rabbitmq", "redis": "redis", "sentinel": "redis"}


def cluster_memory_mb(settings: Settings | None = None) -> dict[str, float]:
    """Resident memory (MB) of the natively started cluster nodes, by broker (04.06).

    The launcher runs each node in its own folder, `<state dir>/cluster/<node>`; every
    process working there counts (helper processes too). 0 under Docker.
    """
    settings = settings or get_settings()
    root = str(settings.state_dir / "cluster") + os.sep
    totals: dict[str, float] = {b: 0.0 for b in ("kafka", "rabbitmq", "redis")}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if not cwd.startswith(root):
            continue
        node = cwd[len(root):].split(os.sep, 1)[0]        # e.g. "kafka-2", "sentinel-1"
        broker = _NODE_BROKER.get(node.split("-", 1)[0])
        if broker:
            totals[broker] += rss_kb(status) / 1024
    return {b: round(v, 1) for b, v in totals.items()}

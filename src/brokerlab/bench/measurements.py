"""What the lessons measured, kept between notebooks: module 04's faults and module 05's
throughput are stored as small JSON files in the state folder, and laid side by side in
04.06 and 05.06 (`comparison_rows`, `markdown_table`). No broker is contacted here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from brokerlab.settings import Settings, get_settings

__all__ = [
    "COMPARISON_COLUMNS", "cluster_memory_mb", "comparison_rows", "load_measurements",
    "markdown_table", "measurements_path", "record_measurement", "rss_kb",
]

MEASUREMENTS_MAX_AGE = 12 * 3600.0  # seconds: older measurements are measured again


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
